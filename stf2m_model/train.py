"""Meta-training (Algorithm 1): run directory, progress, checkpoints, resume.

A run directory holds ``config.yaml`` (every hyperparameter and the seed), ``prep.json``
(preprocessing fitted on the meta-train split), ``rules.json`` (the compiled rule base of
the fuzzy layer, so later edits of the rules never change a trained model),
``checkpoint.pt`` (weights, Adam state, step, sampler RNG: enough to resume bit-for-bit),
``model.pt`` (final weights), ``support.pt`` (the labelled reference support set that
``fuzzyemo predict`` adapts on by default), ``history.csv`` (loss/accuracy every
``log_every`` steps, rewritten as training goes), ``train.json`` and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fuzzyemo._errors import InputError
from fuzzyemo._files import file_sha256
from fuzzyemo._vocab import CLASS_NAMES, class_name

from . import meta
from ._io import atomic_write, atomic_write_text
from .config import DEVICE_HINT, Config, check_device
from .data import (
    Episodes,
    EpisodeSampler,
    FrameData,
    class_partition,
    dataset_rules,
    prep_from_json,
    prep_to_json,
    read_parquet,
    reference_support,
)
from .fuzzy import rules_dict
from .model import STF2M, build_model

SUPPORT_SEED = 1_000_003  # the reference support set's draw (fixed: reruns give the same)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``auto | cpu | cuda | cuda:N``; one-line errors otherwise."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA device is available (use cpu or auto)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA "
                             f"device(s); {DEVICE_HINT}")
    return torch.device(name)


def setup_torch(config: Config) -> None:
    # Tiny matrices: on a shared 2-core CPU intra-op threads cost more than they gain.
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)


def to_batch(data: FrameData, ep: Episodes, device: torch.device | str, global_labels=False):
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a).to(device)

    ys, yq = ep.support_y, ep.query_y
    if global_labels:  # supervised training classifies the 18 global classes
        rows = np.arange(len(ep.classes))[:, None]
        ys, yq = ep.classes[rows, ys], ep.classes[rows, yq]
    return t(data.gather(ep.support)), t(ys), t(data.gather(ep.query)), t(yq)


def save_torch(obj: Any, path: Path) -> None:
    """torch.save, atomically and byte-reproducibly: serialised in memory first, because
    torch.save names its zip records after the file it writes (here a random temp name)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    """torch.load (tensors and plain values only) with a one-line error for a bad file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means a damaged or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read it as a fuzzyemo model file ({first[:120]}); "
                         "the file is damaged or was not written by `fuzzyemo train`") from None


def load_rules(run: Path) -> dict[str, Any]:
    path = run / "rules.json"
    if not path.is_file():
        raise InputError(f"{run}: no rules.json (the run predates the fuzzy layer F(Z); "
                         "train it again)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg})") from None


def load_state(model: STF2M, state: Any, path: Path) -> None:
    state = state.get("model", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{path}: the weights do not fit this run's model ({first[:120]})"
                         ) from None


def load_run(run_dir: str | os.PathLike, device: torch.device | str | None = None,
             weights: str = "model.pt") -> tuple[Config, Any, STF2M]:
    """(config, prep, model with trained weights) of a run directory."""
    d = Path(run_dir)
    for name in ("config.yaml", "prep.json"):
        if not (d / name).is_file():
            raise InputError(f"{d}: not a run directory (no {name}; run `fuzzyemo train` first)")
    config = Config.load(d / "config.yaml")
    try:
        prep = prep_from_json(json.loads((d / "prep.json").read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{d / 'prep.json'}: damaged ({type(exc).__name__})") from None
    rules = load_rules(d) if config.fuzzy == "learned" else None
    model = build_model(prep.layout, config, rules, prep)
    path = d / weights
    if not path.is_file():
        path = d / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{d}: no model.pt or checkpoint.pt (training never saved a step)")
    load_state(model, load_torch(path), path)
    if device is not None:
        model.to(device)
    return config, prep, model


def run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / "train.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_history(run: Path, history: list[dict[str, float]]) -> None:
    lines = ["step,loss,acc,seconds"] + [
        f"{h['step']},{h['loss']:.6f},{h['acc']:.6f},{h['seconds']:.3f}" for h in history]
    atomic_write_text(run / "history.csv", "\n".join(lines) + "\n")


def train(data_path: str | os.PathLike, run_dir: str | os.PathLike, config: Config,
          resume: bool = False, progress: Callable[[int, int, dict], None] | None = None,
          frame: Any = None, device: str | None = None, steps: int | None = None
          ) -> dict[str, Any]:
    """Meta-train on ``data_path``; returns the summary written to ``train.json``.

    ``progress(step, total, stats)`` is called after every outer step (``stats`` has the
    step's loss and accuracy and, at log steps, ``logged``: the running means written to
    ``history.csv``). ``frame`` may be a DataFrame already read from ``data_path``.
    ``device`` overrides the config's (also on resume, where the config comes from the run
    directory); ``steps`` overrides the number of outer steps (on resume: train on to it).
    """
    run = Path(run_dir)
    ckpt_path = run / "checkpoint.pt"
    if resume:
        if not ckpt_path.is_file():
            raise InputError(f"{run}: nothing to resume (no checkpoint.pt)")
        config = Config.load(run / "config.yaml")
        if steps is not None and steps != config.steps:
            config = config.replace(steps=steps)
            config.dump(run / "config.yaml")
    elif ckpt_path.exists() or (run / "model.pt").exists():
        raise InputError(f"{run}: already holds a run; use --resume or another -o directory")
    if steps is not None and not resume:
        config = config.replace(steps=steps)
    if not resume and config.rules is None:
        # F(Z) is the rule engine that labelled the data: the dataset's own profile
        # (recorded in config.yaml), not whatever the default is today.
        config = config.replace(rules=dataset_rules(data_path))
    dev = resolve_device(device or config.device)  # before any long work
    state = load_torch(ckpt_path, dev) if resume else None
    setup_torch(config)
    df = frame if frame is not None else read_parquet(data_path)
    prep = prep_from_json(json.loads((run / "prep.json").read_text())) if resume else None
    rules = load_rules(run) if resume and config.fuzzy == "learned" else \
        rules_dict(config.rules, config.lambda_fcis, config.lambda_fkis)
    data = FrameData.build(df, config, prep=prep, source=str(data_path))
    part = class_partition(data, config)
    sampler = EpisodeSampler(data, data.split_windows("train"), config, part["train"],
                             part["unit"])
    model = build_model(data.prep.layout, config, rules, data.prep).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.beta, weight_decay=config.weight_decay)
    history: list[dict[str, float]] = []
    step = 0
    elapsed0 = 0.0
    if state is not None:
        load_state(model, state, ckpt_path)
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it
        history = list(state["history"])
        elapsed0 = float(state.get("elapsed", 0.0))
    else:
        run.mkdir(parents=True, exist_ok=True)
        config.dump(run / "config.yaml")
        atomic_write_text(run / "prep.json", json.dumps(prep_to_json(data.prep)))
        atomic_write_text(run / "rules.json", json.dumps(rules, indent=1))

    def checkpoint(elapsed: float) -> None:
        save_torch({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "sampler": sampler.state(), "torch_rng": torch.get_rng_state(),
                    "history": history, "elapsed": elapsed}, ckpt_path)

    t0 = time.perf_counter()
    run_loss = run_acc = 0.0
    run_n = 0
    supervised = config.method == "supervised"
    while step < config.steps:
        batch = to_batch(data, sampler.sample(config.meta_batch), dev, supervised)
        opt.zero_grad(set_to_none=True)
        loss, acc = meta.outer_step(model, batch, config)
        opt.step()
        step += 1
        stats: dict[str, Any] = {"loss": loss, "acc": acc}
        run_loss += loss
        run_acc += acc
        run_n += 1
        if step % config.log_every == 0 or step == config.steps:
            history.append({"step": step, "loss": run_loss / run_n, "acc": run_acc / run_n,
                            "seconds": elapsed0 + time.perf_counter() - t0})
            stats["logged"] = history[-1]
            _write_history(run, history)
            run_loss = run_acc = 0.0
            run_n = 0
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint(elapsed0 + time.perf_counter() - t0)
        if progress is not None:
            progress(step, config.steps, stats)
    seconds = elapsed0 + time.perf_counter() - t0
    if config.steps == 0:
        checkpoint(0.0)
    save_torch(model.state_dict(), run / "model.pt")
    _write_history(run, history)
    # the labelled reference support for `fuzzyemo predict`: K views of every class
    ids, labels = reference_support(data, config, SUPPORT_SEED)
    save_torch({"x": torch.as_tensor(data.gather(ids)), "y": torch.as_tensor(labels)},
               run / "support.pt")
    summary = {
        "data": str(data_path),
        "data_sha256": file_sha256(data_path) if Path(data_path).is_file() else None,
        "device": str(dev), "steps": step, "seconds": round(seconds, 3),
        "steps_per_second": round(step / seconds, 3) if seconds > 0 else None,
        "final_train_loss": history[-1]["loss"] if history else None,
        "final_train_acc": history[-1]["acc"] if history else None,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "sample_unit": part["unit"], "class_split": part["class_split"],
        "train_classes": [CLASS_NAMES[c] for c in part["train"]],
        "test_classes": [CLASS_NAMES[c] for c in part["test"]],
        "support_classes": [class_name(c) for c in sorted(set(labels.tolist()))],
        "data_summary": data.summary(), "torch": torch.__version__,
    }
    atomic_write_text(run / "train.json", json.dumps(summary, indent=2))
    from .card import write_card

    write_card(run)
    return summary


def recorded_partition(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The meta-train / meta-test classes a run was trained with (train.json)."""
    info = run_info(run_dir)
    if "test_classes" not in info:
        return None
    return {"train": [CLASS_NAMES.index(c) for c in info["train_classes"]],
            "test": [CLASS_NAMES.index(c) for c in info["test_classes"]]}
