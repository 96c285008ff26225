"""ST-F2M model (PyTorch, optional extra ``[train]``). See docs/model.md."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Lazy exports: ``import stf2m_model`` (and the config) works without torch; the names
# that need torch import it on first use.
_EXPORTS = {
    "Config": "config",
    "Corruption": "data",
    "EpisodeSampler": "data",
    "FrameData": "data",
    "STF2M": "model",
    "build_model": "model",
    "meta_loss": "meta",
    "meta_loss_loop": "meta",
    "train": "train",
    "load_run": "train",
    "evaluate": "evaluate",
    "evaluate_model": "evaluate",
    "run_experiment": "experiments",
    "REGIONS": "graph",
    "FuzzyInference": "fuzzy",
    "rules_dict": "fuzzy",
    "Predictor": "predict",
    "DeployedModel": "predict",
    "class_partition": "data",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
