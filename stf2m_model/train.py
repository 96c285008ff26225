"""Meta-training (Algorithm 1): run directory, progress, checkpoints, resume.

A run directory holds ``config.yaml`` (every hyperparameter and the seed), ``prep.json``
(preprocessing fitted on the meta-train split), ``checkpoint.pt`` (weights, Adam state,
step, sampler RNG: enough to resume bit-for-bit), ``model.pt`` (final weights),
``history.csv`` (loss/accuracy every ``log_every`` steps), ``train.json`` and
``MODEL_CARD.md``.
"""

from __future__ import annotations

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

from . import meta
from ._io import atomic_write, atomic_write_text
from .config import Config
from .data import Episodes, EpisodeSampler, FrameData, prep_from_json, prep_to_json, read_parquet
from .model import STF2M, build_model


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA device is available (use cpu or auto)")
    return torch.device(name)


def setup_torch(config: Config) -> None:
    # Tiny matrices: on a shared 2-core CPU intra-op threads cost more than they gain.
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)


def to_batch(data: FrameData, ep: Episodes, device: torch.device):
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a).to(device)

    return t(data.gather(ep.support)), t(ep.support_y), t(data.gather(ep.query)), t(ep.query_y)


def save_torch(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_run(run_dir: str | os.PathLike, device: torch.device | None = None,
             weights: str = "model.pt") -> tuple[Config, Any, STF2M]:
    """(config, prep, model with trained weights) of a run directory."""
    d = Path(run_dir)
    for name in ("config.yaml", "prep.json"):
        if not (d / name).is_file():
            raise InputError(f"{d}: not a run directory (no {name}; run `fuzzyemo train` first)")
    config = Config.load(d / "config.yaml")
    prep = prep_from_json(json.loads((d / "prep.json").read_text()))
    model = build_model(prep.layout, prep.adjacency, config)
    path = d / weights
    if not path.is_file():
        path = d / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{d}: no model.pt or checkpoint.pt (training never saved a step)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model", state))
    if device is not None:
        model.to(device)
    return config, prep, model


def train(data_path: str | os.PathLike, run_dir: str | os.PathLike, config: Config,
          resume: bool = False, progress: Callable[[int, int, dict], None] | None = None,
          frame: Any = None, device: str | None = None, steps: int | None = None
          ) -> dict[str, Any]:
    """Meta-train on ``data_path``; returns the summary written to ``train.json``.

    ``progress(step, total, stats)`` is called after every outer step. ``frame`` may be a
    DataFrame already read from ``data_path`` (experiments reuse it). ``device`` overrides
    the config's (also on resume, where the config comes from the run directory);
    ``steps`` overrides the number of outer steps (on resume: train on to that step).
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
    setup_torch(config)
    device = resolve_device(device or config.device)
    df = frame if frame is not None else read_parquet(data_path)
    prep = None
    if resume:
        prep = prep_from_json(json.loads((run / "prep.json").read_text()))
    data = FrameData.build(df, config, prep=prep, source=str(data_path))
    train_w = data.split_windows("train")
    if len(train_w) == 0:
        raise InputError(f"{data_path}: no labelled views in the meta-train split")
    sampler = EpisodeSampler(data, train_w, config)
    model = build_model(data.prep.layout, data.prep.adjacency, config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.beta, weight_decay=config.weight_decay)
    history: list[dict[str, float]] = []
    step = 0
    elapsed0 = 0.0
    if resume:
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
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

    def checkpoint(elapsed: float) -> None:
        save_torch({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "sampler": sampler.state(), "torch_rng": torch.get_rng_state(),
                    "history": history, "elapsed": elapsed}, ckpt_path)

    t0 = time.perf_counter()
    run_loss = run_acc = 0.0
    run_n = 0
    while step < config.steps:
        xs, ys, xq, yq = to_batch(data, sampler.sample(config.meta_batch), device)
        loss, acc = meta.meta_loss(model, meta.params_of(model), xs, ys, xq, yq, config)
        loss, acc = loss, acc.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        stats = {"loss": loss.item(), "acc": acc.item()}
        run_loss += stats["loss"]
        run_acc += stats["acc"]
        run_n += 1
        if step % config.log_every == 0 or step == config.steps:
            history.append({"step": step, "loss": run_loss / run_n, "acc": run_acc / run_n,
                            "seconds": elapsed0 + time.perf_counter() - t0})
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
    lines = ["step,loss,acc,seconds"] + [
        f"{h['step']},{h['loss']:.6f},{h['acc']:.6f},{h['seconds']:.3f}" for h in history]
    atomic_write_text(run / "history.csv", "\n".join(lines) + "\n")
    summary = {
        "data": str(data_path),
        "data_sha256": file_sha256(data_path) if Path(data_path).is_file() else None,
        "device": str(device), "steps": step, "seconds": round(seconds, 3),
        "steps_per_second": round(step / seconds, 3) if seconds > 0 else None,
        "final_train_loss": history[-1]["loss"] if history else None,
        "final_train_acc": history[-1]["acc"] if history else None,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "sample_unit": sampler.unit, "train_classes": [int(c) for c in sampler.classes],
        "data_summary": data.summary(), "torch": torch.__version__,
    }
    atomic_write_text(run / "train.json", json.dumps(summary, indent=2))
    from .card import write_card

    write_card(run)
    return summary
