"""Evaluation over many meta-test episodes (Table III style) and the confusion figures.

Episodes are drawn from the meta-test split over the run's meta-test classes (recorded
in ``train.json``; disjoint from its meta-train classes by default). For every episode
the model adapts on the support set (:func:`stf2m_model.meta.adapt_for_test`) and labels
the query windows; task-local predictions are mapped back to the 18 global classes.
Reported for one model, each as mean +- 95% CI half-width (1.96 standard errors over
episodes; experiments report the spread across seeds instead):

- ``classes18``: accuracy and macro recall over the task's classes;
- ``emotions6``: the same after collapsing classes to their emotion (a prediction of
  ``anger_low`` for ``anger_high`` counts as right), macro over the emotions present;
- ``query_loss``: the query cross-entropy after adaptation (the lambda search's fitness:
  unlike accuracy it still ranks models whose accuracy is at its ceiling).

With balanced query sets (q_query per class) the 18-class macro recall of an episode
equals its accuracy; the pooled per-class recall (``per_class_recall``) and the 6-emotion
recall differ. The pooled confusion matrices are written as PNGs (Figs. 7 and 8).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fuzzyemo._files import save_png
from fuzzyemo._vocab import CLASS_NAMES, EMOTIONS

from ._io import atomic_write_text
from .config import Config
from .data import Corruption, EpisodeSampler, FrameData, class_partition, read_parquet
from .meta import params_of, test_logits
from .train import load_run, recorded_partition, resolve_device, setup_torch, to_batch

N_CLASSES = len(CLASS_NAMES)
EVAL_SEED = 20_241_119  # fixed: every model is compared on the same test episodes


def _ci(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "ci95": float(half)}


def _episode_scores(true: np.ndarray, pred: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode accuracy and macro recall for labels in 0..n-1: true, pred (E, Q)."""
    acc = (true == pred).mean(1)
    hit = np.zeros((len(true), n))
    tot = np.zeros((len(true), n))
    rows = np.repeat(np.arange(len(true)), true.shape[1])
    np.add.at(tot, (rows, true.ravel()), 1)
    np.add.at(hit, (rows, true.ravel()), (true == pred).ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.nanmean(np.where(tot > 0, hit / tot, np.nan), 1)
    return acc, recall


def evaluate_model(model, config: Config, data: FrameData, episodes: int | None = None,
                   device: torch.device | None = None, seed: int = EVAL_SEED,
                   chunk: int = 50, partition: dict | None = None, split: str = "test",
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Metrics of a trained model on the meta-test split of ``data``.

    ``partition`` is the run's recorded class partition (its meta-test classes are used;
    ``split="val"`` with meta-train classes is the lambda search's fitness); None draws it
    from the config as training does. ``progress(done, total)`` is called after every chunk
    of episodes.
    """
    device = device or torch.device("cpu")
    episodes = config.eval_episodes if episodes is None else episodes
    part = class_partition(data, config, partition)
    classes = part["test"] if split == "test" else part["train"]
    windows = data.split_windows(split)
    if split == "val" and len(windows) == 0:  # no validation split: in-sample meta-train
        windows = data.split_windows("train")
    sampler = EpisodeSampler(data, windows, config, classes, part["unit"], seed=seed)
    params = {k: v.detach() for k, v in params_of(model).items()}
    true_all, pred_all, losses = [], [], []
    done = 0

    def episode_logits(s, y, q):
        return test_logits(model, params, s, y, q, config.n_way, config)

    while done < episodes:
        n = min(chunk, episodes - done)
        ep = sampler.sample(n)
        xs, ys, xq, yq = to_batch(data, ep, device)
        with torch.no_grad():
            logits = torch.vmap(episode_logits)(xs, ys, xq)          # (n, Q, N)
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), yq,
                                                   reduction="none").mean(1)
        local = logits.argmax(-1).cpu().numpy()
        losses.append(ce.cpu().numpy())
        rows = np.arange(n)[:, None]
        true_all.append(ep.classes[rows, ep.query_y])
        pred_all.append(ep.classes[rows, local])
        done += n
        if progress is not None:
            progress(done, episodes)
    true = np.concatenate(true_all)
    pred = np.concatenate(pred_all)
    acc, rec = _episode_scores(true, pred, N_CLASSES)
    eacc, erec = _episode_scores(true // 3, pred // 3, len(EMOTIONS))
    conf = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(conf, (true.ravel(), pred.ravel()), 1)
    conf6 = conf.reshape(6, 3, 6, 3).sum((1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = conf.diagonal() / conf.sum(1)
    return {
        "episodes": int(episodes), "n_way": config.n_way, "k_shot": config.k_shot,
        "q_query": config.q_query, "method": config.method, "sample_unit": sampler.unit,
        "test_classes": [CLASS_NAMES[c] for c in sampler.classes],
        "classes18": {"accuracy": _ci(acc), "recall_macro": _ci(rec)},
        "query_loss": _ci(np.concatenate(losses)),
        "emotions6": {"accuracy": _ci(eacc), "recall_macro": _ci(erec)},
        "chance_accuracy": 1.0 / config.n_way,
        "per_class_recall": {CLASS_NAMES[i]: float(r) for i, r in enumerate(per_class)
                             if np.isfinite(r)},
        "confusion18": conf.tolist(), "confusion6": conf6.tolist(),
    }


def plot_confusion(conf: np.ndarray, names: list[str], title: str, path: Path) -> bool:
    """Row-normalised confusion matrix as a PNG; False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    conf = np.asarray(conf, dtype=float)
    keep = (conf.sum(0) + conf.sum(1)) > 0
    conf, names = conf[keep][:, keep], [n for n, k in zip(names, keep, strict=True) if k]
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(conf / conf.sum(1, keepdims=True))
    size = 1.2 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path, dpi=120)
    plt.close(fig)
    return True


def evaluate(run_dir: str | os.PathLike, data_path: str | os.PathLike,
             episodes: int | None = None, corruption: Corruption | None = None,
             device: str | None = None, figures: bool = True, frame: Any = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate a run directory on a parquet; writes evaluation.json, PNGs and the card.
    ``progress(done, total)`` follows the test episodes."""
    run = Path(run_dir)
    dev = resolve_device(device or "auto")
    config, prep, model = load_run(run, dev)
    setup_torch(config)
    df = frame if frame is not None else read_parquet(data_path)
    data = FrameData.build(df, config, prep=prep, corruption=corruption, source=str(data_path))
    metrics = evaluate_model(model, config, data, episodes, dev,
                             partition=recorded_partition(run), progress=progress)
    metrics["data"] = str(data_path)
    metrics["corruption"] = (corruption or Corruption()).__dict__
    if figures:
        ok18 = plot_confusion(np.array(metrics["confusion18"]), list(CLASS_NAMES),
                              "Emotions with intensity (18 classes)", run / "confusion_18.png")
        ok6 = plot_confusion(np.array(metrics["confusion6"]), list(EMOTIONS),
                             "Six emotions", run / "confusion_6.png")
        metrics["figures"] = ["confusion_18.png", "confusion_6.png"] if ok18 and ok6 else []
    atomic_write_text(run / "evaluation.json", json.dumps(metrics, indent=2))
    from .card import write_card

    write_card(run)
    return metrics


def format_metric(m: dict[str, float]) -> str:
    return f"{100 * m['mean']:.2f} ± {100 * m['ci95']:.2f}"
