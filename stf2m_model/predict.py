"""Label new data with a trained run: ``fuzzyemo predict`` and ``fuzzyemo export``.

A run is adapted once to a labelled support set (by default ``support.pt``, K views of
every class the training table had; or a user's own labelled table) exactly as in a test
episode (:func:`stf2m_model.meta.adapt_for_test`), which gives a :class:`DeployedModel`: a
plain module from windows ``(B, T, width)`` to class probabilities ``(B, M)`` over the
support's M classes. Each track (a ``subject``, or a ``source`` + ``face_id`` of
``fuzzyemo annotate`` output) is cut into windows; a frame's probabilities are the mean
over the windows that hold it; frames without a usable face are ``unknown``.

    from stf2m_model import Predictor
    predictor = Predictor.load("runs/stf2m")            # or support=<labelled DataFrame>
    table = predictor.predict(frame)                     # one row per input row
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from fuzzyemo._errors import InputError
from fuzzyemo._files import file_sha256
from fuzzyemo._vocab import class_name

from . import meta
from .config import Config
from .data import FrameData, Prep, read_parquet, reference_support
from .model import STF2M, build_model
from .train import (
    SUPPORT_SEED,
    load_rules,
    load_run,
    load_torch,
    resolve_device,
    setup_torch,
)

KEY_COLUMNS = ("source", "subject", "image", "face_id", "frame", "timestamp", "split")


class DeployedModel(nn.Module):
    """A run adapted to a support set: windows (B, T, width) -> probabilities (B, M).

    The support windows are kept as a buffer: with Eq. 4 over views they are the senders
    every window reads from, exactly as the support of a test episode.
    """

    def __init__(self, model: STF2M, support_x: torch.Tensor,
                 prototypes: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("support", support_x)
        self.n_support = int(support_x.shape[0])
        self.uses_context = bool(model.uses_context)
        self.has_prototypes = prototypes is not None
        self.register_buffer("prototypes", prototypes if prototypes is not None
                             else torch.zeros(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses_context:
            e = self.model.embed(torch.cat([self.support, x]), self.n_support)[self.n_support:]
        else:
            e = self.model.embed(x)
        if self.has_prototypes:
            logits = -((e[:, None, :] - self.prototypes[None]) ** 2).sum(-1)
        else:
            logits = self.model.h(e)
        return torch.softmax(logits, -1)


def _support_tensors(run: Path, config: Config, prep: Prep, support: Any, device
                     ) -> tuple[torch.Tensor, np.ndarray, str]:
    """(support windows, their global classes, a description) from the run or a table."""
    if support is None:
        path = run / "support.pt"
        if not path.is_file():
            raise InputError(f"{run}: no support.pt (training did not finish); give a "
                             "labelled support table")
        state = load_torch(path)
        return state["x"].to(device), state["y"].numpy(), "reference support of the run"
    name = "support table"
    if not isinstance(support, pd.DataFrame):
        name = Path(support).name
        support = read_parquet(support)
    data = FrameData.build(support, config, prep=prep, source=name)
    ids, labels = reference_support(data, config, SUPPORT_SEED)
    return torch.as_tensor(data.gather(ids)).to(device), labels, name


def adapt_to_support(model: STF2M, config: Config, rules: dict | None, prep: Prep,
                     xs: torch.Tensor, labels: np.ndarray) -> tuple[DeployedModel, list[int]]:
    """Adapt ``model`` to a labelled support set as in a test episode (all its classes)."""
    classes = sorted(set(labels.tolist()))
    ys = torch.as_tensor([classes.index(c) for c in labels.tolist()], device=xs.device)
    params = {k: v.detach() for k, v in meta.params_of(model).items()}
    with torch.no_grad():
        adapted = meta.adapt_for_test(model, params, xs, ys, len(classes), config)
        deployed = build_model(prep.layout, config, rules, prep, n_out=len(classes))
        state = {k: v.detach().clone() for k, v in adapted.items()}
        if config.method == "protonet":
            state = {k: v for k, v in state.items() if not k.startswith("h.out.")}
            deployed.load_state_dict(state, strict=False)
        else:
            deployed.load_state_dict(state)
        deployed.to(xs.device).eval()
        protos = None
        if config.method == "protonet":
            es = deployed.embed(xs)
            onehot = F.one_hot(ys, len(classes)).to(es.dtype)
            protos = onehot.T @ es / onehot.sum(0)[:, None]
    return DeployedModel(deployed, xs, protos).eval(), classes


class Predictor:
    """A trained run adapted to a support set, ready to label tables of frames."""

    def __init__(self, run_dir: Path, config: Config, prep: Prep, deployed: DeployedModel,
                 classes: list[int], support: str, device: torch.device) -> None:
        self.run_dir, self.config, self.prep = run_dir, config, prep
        self.deployed, self.classes, self.support, self.device = \
            deployed, classes, support, device

    @classmethod
    def load(cls, run_dir: str | os.PathLike, support: Any = None, device: str = "cpu"
             ) -> Predictor:
        """Load a run and adapt it to ``support`` (a labelled table, a path, or None for
        the run's own reference support)."""
        dev = resolve_device(device)
        run = Path(run_dir)
        config, prep, model = load_run(run, dev)
        setup_torch(config)
        rules = load_rules(run) if config.fuzzy == "learned" else None
        xs, labels, name = _support_tensors(run, config, prep, support, dev)
        deployed, classes = adapt_to_support(model, config, rules, prep, xs, labels)
        return cls(run, config, prep, deployed, classes, name, dev)

    @property
    def class_names(self) -> list[str]:
        return [class_name(c) for c in self.classes]

    def window_probabilities(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Probabilities (W, M) of windows (W, T, width) in the frame-table layout."""
        out = []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                xb = torch.as_tensor(x[s:s + batch_size]).to(self.device)
                out.append(self.deployed(xb).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, frame: pd.DataFrame, batch_size: int = 512,
                source: str = "input") -> pd.DataFrame:
        """One output row per input row: its key columns and the predicted class."""
        if len(frame) == 0:
            raise InputError(f"{source}: the table has no rows")
        df = frame.reset_index(drop=True).assign(_row=np.arange(len(frame)))
        data = FrameData.build(df, self.config, prep=self.prep, source=source, labelled=False)
        n = data.n_frames
        probs = self.window_probabilities(data.gather(np.arange(len(data.win_idx))),
                                          batch_size)
        # a frame's probabilities: the mean over the windows that hold it (valid frames)
        total = np.zeros((n + 1, len(self.classes)))
        count = np.zeros(n + 1)
        idx = data.win_idx
        valid = (idx >= 0) & (data.table[idx, 0] > 0)
        rows = np.where(valid, idx, n)
        np.add.at(total, rows.ravel(), np.repeat(probs, idx.shape[1], axis=0))
        np.add.at(count, rows.ravel(), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame_p = (total / count[:, None])[:n]
        covered = count[:n] > 0
        best = np.argmax(np.where(covered[:, None], frame_p, -1.0), 1)
        cls = np.where(covered, np.asarray(self.classes)[best], -2)
        out = pd.DataFrame({k: data.frame[k] for k in KEY_COLUMNS if k in data.frame.columns})
        out["pred_label"] = [class_name(int(c)) for c in cls]
        out["pred_class_index"] = cls.astype(np.int16)
        out["pred_confidence"] = np.where(covered, frame_p.max(1, initial=0.0,
                                                              where=covered[:, None]), np.nan)
        for j, name in enumerate(self.class_names):
            out[f"prob_{name}"] = np.where(covered, frame_p[:, j], np.nan)
        out["_row"] = data.frame["_row"].to_numpy()
        out = out.sort_values("_row", kind="stable").drop(columns="_row")
        return out.reset_index(drop=True)

    def metadata(self) -> dict[str, Any]:
        model = self.run_dir / "model.pt"
        return {"stf2m_run": self.run_dir.name, "classes": self.class_names,
                "support": self.support, "method": self.config.method,
                "model_sha256": file_sha256(model) if model.is_file() else None}

    def export(self, path: str | os.PathLike, batch: int = 4) -> Path:
        """The deployed model (windows -> probabilities) as a file that needs torch only.

        ``.pt2``: ``torch.export`` (an ExportedProgram with a dynamic batch size; load with
        ``torch.export.load(path).module()``); anything else: TorchScript (``torch.jit.load``;
        deprecated in torch 2.13 but still supported). Both carry the class names and the
        input layout: TorchScript as extra files ``classes.json`` / ``layout.json``, ``.pt2`` in
        a JSON file beside it (``model.json`` for ``model.pt2``).
        """
        import io
        import warnings

        from ._io import atomic_write

        out = Path(path)
        example = self.deployed.support[:batch].clone()
        info = {"classes.json": json.dumps(self.class_names),
                "layout.json": json.dumps({"window": self.config.window,
                                           **self.prep.layout.__dict__})}
        buf = io.BytesIO()
        with warnings.catch_warnings():
            # TorchScript's deprecation notices and torch.export's note on CPU weights are
            # not the user's business here; the outputs are checked by the tests.
            warnings.simplefilter("ignore")
            if out.suffix == ".pt2":
                batch_dim = torch.export.Dim("batch", min=1)
                program = torch.export.export(self.deployed, (example,),
                                              dynamic_shapes=({0: batch_dim},))
                torch.export.save(program, buf)
            else:
                with torch.no_grad():
                    traced = torch.jit.trace(self.deployed, (example,), check_trace=False)
                torch.jit.save(traced, buf, _extra_files=info)
        data = buf.getvalue()

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(data)

        atomic_write(out, write)
        if out.suffix == ".pt2":
            sidecar = {k.removesuffix(".json"): json.loads(v) for k, v in info.items()}
            from ._io import atomic_write_text

            atomic_write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=1))
        return out
