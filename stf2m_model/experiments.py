"""The paper's analyses as named experiment sets, each ending in one comparison table.

- ``ablation`` (Fig. 9): full model, ``no_spatiotemporal``, ``no_fuzzy``, ``no_meta``;
  each evaluated clean (group A), with 30% occlusion (B) and at 30% speed change (C).
- ``baselines`` (Table III): ST-F2M, plain MAML (plain encoder, no fuzzy layer) and
  ProtoNet (plain encoder, no fuzzy layer) on the same tasks and test episodes.
- ``robustness`` (Table IV / Fig. 6): ST-F2M, MAML and ProtoNet under occlusion masks,
  landmark/component noise and temporal speed changes at 0/10/30/50%.
- ``lambda`` (Fig. 10): the fuzzy layer recomputed by the rule engine for every
  lambda1 x lambda2 in the grid (labels stay the dataset's), one training each.
- ``all``: every set above.

Every variant trains into ``DIR/runs/<variant>`` and is evaluated on the same
meta-test episodes; ``DIR/<name>.md`` and ``DIR/<name>.csv`` hold the table.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzzyemo._errors import InputError

from ._io import atomic_write_text
from .config import Config
from .data import Corruption, FrameData, read_parquet

EXPERIMENTS = ("ablation", "baselines", "robustness", "lambda", "all")
LEVELS = (0.0, 0.1, 0.3, 0.5)
LAMBDAS = (0.2, 0.4, 0.6)


def variant(config: Config, name: str) -> Config:
    """The config of a named model variant derived from the base config."""
    changes: dict[str, dict[str, Any]] = {
        "st_f2m": {},
        "no_spatiotemporal": {"encoder": "plain"},
        "no_fuzzy": {"fuzzy": False},
        "no_meta": {"method": "single"},
        "first_order": {"first_order": True},
        "maml": {"encoder": "plain", "fuzzy": False, "method": "maml"},
        "protonet": {"encoder": "plain", "fuzzy": False, "method": "protonet"},
    }
    if name not in changes:
        raise InputError(f"unknown variant {name!r}")
    return config.replace(**changes[name])


def apply_flags(config: Config, no_spatiotemporal: bool = False, no_fuzzy: bool = False,
                no_meta: bool = False, first_order: bool = False) -> Config:
    """The CLI's ablation flags as config changes."""
    if no_spatiotemporal:
        config = variant(config, "no_spatiotemporal")
    if no_fuzzy:
        config = config.replace(fuzzy=False)
    if no_meta:
        config = config.replace(method="single")
    if first_order:
        config = config.replace(first_order=True)
    return config


class Runner:
    """Trains and evaluates variants on one parquet (read once), collecting table rows."""

    def __init__(self, data_path: str | os.PathLike, out_dir: str | os.PathLike, config: Config,
                 log: Callable[[str], None] = print, episodes: int | None = None) -> None:
        self.data_path = Path(data_path)
        self.out = Path(out_dir)
        self.config = config
        self.log = log
        self.episodes = episodes
        self.df = read_parquet(data_path)
        self.rows: list[dict[str, Any]] = []
        self.current = ""
        from .train import resolve_device

        self.device = resolve_device(config.device)

    def train(self, name: str, config: Config):
        from .train import load_run, train

        run = self.out / "runs" / name
        if (run / "model.pt").is_file():
            self.log(f"{name}: reusing {run}")
        else:
            if run.exists():
                import shutil

                shutil.rmtree(run)  # an interrupted run of ours: start it again
            self.log(f"{name}: training ({config.steps} steps)")
            train(self.data_path, run, config, frame=self.df)
        return load_run(run, self.device)

    def evaluate(self, name: str, loaded, corruption: Corruption | None = None,
                 **extra: Any) -> dict[str, Any]:
        from .evaluate import evaluate_model

        config, prep, model = loaded
        data = FrameData.build(self.df, config, prep=prep, corruption=corruption,
                               source=str(self.data_path))
        m = evaluate_model(model, config, data, self.episodes, self.device)
        c = corruption or Corruption()
        row = {"set": self.current, "variant": name, **extra, "corruption": c.kind, "level": c.level,
               "acc18": m["classes18"]["accuracy"]["mean"],
               "acc18_ci95": m["classes18"]["accuracy"]["ci95"],
               "recall18": m["classes18"]["recall_macro"]["mean"],
               "recall18_ci95": m["classes18"]["recall_macro"]["ci95"],
               "acc6": m["emotions6"]["accuracy"]["mean"],
               "acc6_ci95": m["emotions6"]["accuracy"]["ci95"],
               "recall6": m["emotions6"]["recall_macro"]["mean"],
               "recall6_ci95": m["emotions6"]["recall_macro"]["ci95"]}
        self.rows.append(row)
        self.log(f"  {name} {c.kind} {c.level:g}: acc18 {100 * row['acc18']:.1f}% "
                 f"acc6 {100 * row['acc6']:.1f}%")
        return row


def run_experiment(name: str, data_path: str | os.PathLike, out_dir: str | os.PathLike,
                   config: Config, log: Callable[[str], None] = print,
                   episodes: int | None = None) -> Path:
    """Run a named set; returns the path of the Markdown table."""
    if name not in EXPERIMENTS:
        raise InputError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
    r = Runner(data_path, out_dir, config, log, episodes)
    names = ["ablation", "baselines", "robustness", "lambda"] if name == "all" else [name]
    for n in names:
        r.current = n
        if n == "ablation":
            for v in ("st_f2m", "no_spatiotemporal", "no_fuzzy", "no_meta"):
                loaded = r.train(v, variant(config, v))
                r.evaluate(v, loaded, None, group="A")
                r.evaluate(v, loaded, Corruption("occlusion", 0.3, config.seed), group="B")
                r.evaluate(v, loaded, Corruption("speed", 0.3, config.seed), group="C")
        elif n == "baselines":
            for v in ("st_f2m", "maml", "protonet"):
                r.evaluate(v, r.train(v, variant(config, v)))
        elif n == "robustness":
            for v in ("st_f2m", "maml", "protonet"):
                loaded = r.train(v, variant(config, v))
                r.evaluate(v, loaded)
                for kind in ("occlusion", "noise", "speed"):
                    for level in LEVELS[1:]:
                        r.evaluate(v, loaded, Corruption(kind, level, config.seed))
        elif n == "lambda":
            for l1 in LAMBDAS:
                for l2 in LAMBDAS:
                    cfg = config.replace(fuzzy=True, fuzzy_source="engine", lambda_fcis=l1,
                                         lambda_fkis=l2)
                    v = f"lambda_{l1:g}_{l2:g}"
                    r.evaluate(v, r.train(v, cfg), lambda1=l1, lambda2=l2)
    return write_table(r.rows, Path(out_dir), name, config)


def write_table(rows: list[dict[str, Any]], out: Path, name: str, config: Config) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / f"{name}.csv", buf.getvalue())

    def pct(row: dict, k: str) -> str:
        return f"{100 * row[k]:.2f} ± {100 * row[k + '_ci95']:.2f}"

    lead = [k for k in keys if k in ("set", "variant", "group", "lambda1", "lambda2", "corruption",
                                     "level")]
    head = [*lead, "ACC 18", "RECALL 18", "ACC 6", "RECALL 6"]
    lines = [f"# Experiment `{name}`", "",
             f"{config.n_way}-way {config.k_shot}-shot meta-test episodes (same episodes for "
             f"every variant), {config.steps} training steps per variant, seed {config.seed}. "
             "Mean ± 95% CI, %.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row.get(k, "")) for k in lead]
        cells += [pct(row, "acc18"), pct(row, "recall18"), pct(row, "acc6"), pct(row, "recall6")]
        lines.append("| " + " | ".join(cells) + " |")
    return atomic_write_text(out / f"{name}.md", "\n".join(lines) + "\n")
