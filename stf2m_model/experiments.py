"""The paper's analyses as named experiment sets, each ending in one comparison table.

Every variant is trained ``seeds`` times (seed, seed + 1, ...) and every trained model is
evaluated on the same meta-test episodes (same classes, same draw); a table cell is the
mean over seeds with a 95% confidence interval across seeds (Student's t), and the CSV
also holds every seed's value.

- ``ablation`` (Fig. 9): the full model and each part removed (``no_spatiotemporal``:
  plain per-frame encoder; ``no_temporal``; ``no_message_passing``; ``no_fuzzy``: no F and
  no component inputs; ``precomputed_fuzzy``: F replaced by the input's engine scores;
  ``no_meta``: supervised training + fine-tuning); each evaluated clean (group A), with
  30% occlusion (B) and at 30% speed change (C).
- ``baselines`` (Table III): ST-F2M and, with the same encoder g and the same inputs but
  no fuzzy layer, MAML, first-order MAML, ANIL, Reptile, ProtoNet and supervised
  training + fine-tuning.
- ``robustness`` (Table IV / Fig. 6): ST-F2M, MAML and ProtoNet under occlusion,
  landmark/component noise and speed changes at 0/10/30/50%.
- ``lambda`` (Eq. 5, Fig. 10): ST-F2M is meta-trained once per seed at the config's
  lambdas and then held fixed; for every lambda1 x lambda2 of the grid its fuzzy layer is
  rebuilt from the rule base at those lambdas and the fixed model is evaluated on
  validation episodes (the ``val`` split, else meta-train episodes) of the meta-train
  classes: the fitness surface (the query cross-entropy, which still ranks models whose
  accuracy is at its ceiling; accuracy is reported beside it). The best pair is recorded
  (``lambda.json``) and drawn (``lambda.png``); the meta-test accuracy at the config's and
  at the chosen lambdas is reported beside it.
- ``all``: every set above.

Trained runs live in ``DIR/runs/<variant>/seed<k>-<key>``, where ``key`` hashes every
setting of the run's config, the data file, the rule base and the model code: a rerun
reuses a run only when all of them are unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fuzzyemo._errors import InputError

from ._io import atomic_write_text
from .config import Config
from .data import Corruption, FrameData, read_parquet

EXPERIMENTS = ("ablation", "baselines", "robustness", "lambda", "all")
LEVELS = (0.0, 0.1, 0.3, 0.5)
LAMBDAS = (0.2, 0.3, 0.4, 0.5, 0.6)
METRICS = ("acc18", "recall18", "acc6", "recall6")
LOSS = "loss"  # validation query cross-entropy: the lambda search's fitness
NO_F = {"fuzzy": "none"}  # the baselines: same encoder and inputs, no fuzzy layer
REPTILE_STEPS = 5  # Reptile needs k > 1 inner steps (k = 1 is joint training); its paper: 5-10
VARIANTS: dict[str, dict[str, Any]] = {
    "st_f2m": {},
    "no_spatiotemporal": {"encoder": "plain"},
    "no_temporal": {"temporal": False},
    "no_message_passing": {"spatial": "none"},
    "no_fuzzy": {"fuzzy": "none", "use_components": False},
    "precomputed_fuzzy": {"fuzzy": "precomputed"},
    "no_meta": {"method": "supervised"},
    "maml": {**NO_F, "method": "maml"},
    "fomaml": {**NO_F, "method": "maml", "first_order": True},
    "anil": {**NO_F, "method": "anil"},
    "reptile": {**NO_F, "method": "reptile", "inner_steps": REPTILE_STEPS,
                "inner_steps_test": REPTILE_STEPS},
    "protonet": {**NO_F, "method": "protonet"},
    "supervised": {**NO_F, "method": "supervised"},
}
ABLATION = ("st_f2m", "no_spatiotemporal", "no_temporal", "no_message_passing", "no_fuzzy",
            "precomputed_fuzzy", "no_meta")
BASELINES = ("st_f2m", "maml", "fomaml", "anil", "reptile", "protonet", "supervised")
ROBUSTNESS = ("st_f2m", "maml", "protonet")


def variant(config: Config, name: str) -> Config:
    """The config of a named model variant derived from the base config."""
    if name not in VARIANTS:
        raise InputError(f"unknown variant {name!r}")
    return config.replace(**VARIANTS[name])


def apply_flags(config: Config, no_spatiotemporal: bool = False, no_fuzzy: bool = False,
                no_meta: bool = False, first_order: bool = False) -> Config:
    """The CLI's ablation flags as config changes."""
    if no_spatiotemporal:
        config = variant(config, "no_spatiotemporal")
    if no_fuzzy:
        config = config.replace(**VARIANTS["no_fuzzy"])
    if no_meta:
        config = config.replace(**VARIANTS["no_meta"])
    if first_order:
        config = config.replace(first_order=True)
    return config


def t_quantile(dof: int) -> float:
    """Two-sided 95% quantile of Student's t (the normal's 1.96 for large dof)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
             8: 2.306, 9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}
    if dof in table:
        return table[dof]
    below = [d for d in table if d < dof]
    return table[max(below)] if dof <= 30 else 1.96


def across_seeds(values: list[float]) -> tuple[float, float]:
    """(mean, 95% CI half-width across seeds); the half-width is NaN for one seed."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(t_quantile(len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


# The modules whose code decides what a trained run is; their text is part of run keys.
CODE_MODULES = ("config", "data", "fuzzy", "graph", "meta", "model", "train")


def code_hash() -> str:
    """sha256 of the model code: an edited architecture never reuses an old run."""
    import hashlib

    h = hashlib.sha256()
    for name in CODE_MODULES:
        h.update((Path(__file__).parent / f"{name}.py").read_bytes())
    return h.hexdigest()


def _rules_hash(config: Config) -> str:
    import hashlib

    from .fuzzy import rules_dict

    text = json.dumps(rules_dict(config.rules, config.lambda_fcis, config.lambda_fkis),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Runner:
    """Trains (or reuses) and evaluates variants on one table (read once)."""

    def __init__(self, data_path: str | os.PathLike, out_dir: str | os.PathLike, config: Config,
                 log: Callable[[str], None] = print, episodes: int | None = None) -> None:
        from fuzzyemo._files import file_sha256

        from .train import resolve_device

        self.data_path = Path(data_path)
        self.out = Path(out_dir)
        if config.rules is None:  # every variant's F(Z) is the dataset's own rule profile
            from .data import dataset_rules

            config = config.replace(rules=dataset_rules(data_path))
        self.config = config
        self.log = log
        self.episodes = episodes
        self.device = resolve_device(config.device)  # one-line error before any work
        self.df = read_parquet(data_path)
        self.data_sha = file_sha256(self.data_path)
        self.code_sha = code_hash()
        self.rows: list[dict[str, Any]] = []
        self.current = ""

    def run_dir(self, name: str, config: Config) -> Path:
        key = config.key(self.data_sha, _rules_hash(config), self.code_sha)
        return self.out / "runs" / name / f"seed{config.seed}-{key}"

    def train(self, name: str, config: Config):
        """Train one variant at one seed, or reuse the run with the same key."""
        from .train import load_run, train

        run = self.run_dir(name, config)
        if (run / "model.pt").is_file() and (run / "train.json").is_file():
            self.log(f"{name} seed {config.seed}: reusing {run}")
        else:
            if run.exists():
                shutil.rmtree(run)  # an interrupted run of ours: start it again
            self.log(f"{name} seed {config.seed}: training ({config.steps} steps)")
            train(self.data_path, run, config, frame=self.df)
        return run, load_run(run, self.device)

    def seeds(self, config: Config) -> list[Config]:
        return [config.replace(seed=config.seed + i) for i in range(config.seeds)]

    def evaluate(self, loaded, run: Path, corruption: Corruption | None = None,
                 split: str = "test", config: Config | None = None, model=None
                 ) -> dict[str, float]:
        from .evaluate import evaluate_model
        from .train import recorded_partition

        cfg, prep, trained = loaded
        cfg = config or cfg
        data = FrameData.build(self.df, cfg, prep=prep, corruption=corruption,
                               source=str(self.data_path))
        m = evaluate_model(model or trained, cfg, data, self.episodes, self.device,
                           partition=recorded_partition(run), split=split)
        return {"acc18": m["classes18"]["accuracy"]["mean"],
                "recall18": m["classes18"]["recall_macro"]["mean"],
                "acc6": m["emotions6"]["accuracy"]["mean"],
                "recall6": m["emotions6"]["recall_macro"]["mean"],
                LOSS: m["query_loss"]["mean"], "episodes": m["episodes"]}

    def add_row(self, name: str, per_seed: list[dict[str, float]], seeds: list[int],
                **extra: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"set": self.current, "variant": name, **extra,
                               "seeds": len(per_seed)}
        for k in (*METRICS, LOSS):
            if k not in per_seed[0]:
                continue
            row[k], row[k + "_ci95"] = across_seeds([r[k] for r in per_seed])
            row[k + "_per_seed"] = " ".join(f"{r[k]:.4f}" for r in per_seed)
        row["seed_list"] = " ".join(map(str, seeds))
        self.rows.append(row)
        ci = row["acc18_ci95"]
        self.log(f"  {name} {extra}: acc18 {100 * row['acc18']:.1f}% ± {100 * ci:.1f} "
                 f"over {len(per_seed)} seeds")
        return row

    def variant_rows(self, name: str, settings: list[tuple[dict[str, Any], Corruption | None]]
                     ) -> None:
        """Train ``name`` at every seed and add one row per (labels, corruption) setting."""
        cfgs = self.seeds(variant(self.config, name))
        runs = [self.train(name, c) for c in cfgs]
        for extra, corruption in settings:
            per_seed = [self.evaluate(loaded, run, corruption) for run, loaded in runs]
            c = corruption or Corruption()
            self.add_row(name, per_seed, [x.seed for x in cfgs], **extra, corruption=c.kind,
                         level=c.level)


def run_experiment(name: str, data_path: str | os.PathLike, out_dir: str | os.PathLike,
                   config: Config, log: Callable[[str], None] = print,
                   episodes: int | None = None) -> Path:
    """Run a named set; returns the path of the Markdown table."""
    if name not in EXPERIMENTS:
        raise InputError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
    r = Runner(data_path, out_dir, config, log, episodes)
    names = ["ablation", "baselines", "robustness", "lambda"] if name == "all" else [name]
    seed = config.seed
    for n in names:
        r.current = n
        if n == "ablation":
            groups = [({"group": "A"}, None),
                      ({"group": "B"}, Corruption("occlusion", 0.3, seed)),
                      ({"group": "C"}, Corruption("speed", 0.3, seed))]
            for v in ABLATION:
                r.variant_rows(v, groups)
        elif n == "baselines":
            for v in BASELINES:
                r.variant_rows(v, [({}, None)])
        elif n == "robustness":
            settings: list[tuple[dict[str, Any], Corruption | None]] = [({}, None)]
            settings += [({}, Corruption(kind, level, seed))
                         for kind in ("occlusion", "noise", "speed") for level in LEVELS[1:]]
            for v in ROBUSTNESS:
                r.variant_rows(v, settings)
        elif n == "lambda":
            lambda_search(r)
    return write_table(r.rows, Path(out_dir), name, config, r.episodes)


def lambda_search(r: Runner) -> dict[str, Any]:
    """Eq. 5: fix meta-trained models, search lambda1 x lambda2 for the fuzzy layer."""
    from .fuzzy import FuzzyInference, rules_dict

    base = r.config.replace(fuzzy="learned")
    cfgs = r.seeds(base)
    runs = [r.train("st_f2m", c) for c in cfgs]
    surface = []
    for l1 in LAMBDAS:
        for l2 in LAMBDAS:
            rules = rules_dict(base.rules, l1, l2)
            per_seed = []
            for run, loaded in runs:
                model = loaded[2]
                saved = model.F.fis
                model.F.fis = FuzzyInference(rules).to(r.device)  # the fixed model, new F
                try:
                    per_seed.append(r.evaluate(loaded, run, split="val"))
                finally:
                    model.F.fis = saved
            row = r.add_row("st_f2m", per_seed, [c.seed for c in cfgs], lambda1=l1,
                            lambda2=l2, episodes_from="validation")
            surface.append(row)
    # lowest validation query loss; ties to the pair nearest the paper's 0.4, 0.4
    best = min(surface, key=lambda row: (round(row[LOSS], 9), abs(row["lambda1"] - 0.4)
                                         + abs(row["lambda2"] - 0.4)))
    chosen = {"lambda_fcis": best["lambda1"], "lambda_fkis": best["lambda2"]}
    # meta-test accuracy of the fixed models at the config's and at the chosen lambdas
    own = rules_dict(base.rules, base.lambda_fcis, base.lambda_fkis)
    test = {}
    for label, rules in (("config", own), ("chosen", rules_dict(base.rules, best["lambda1"],
                                                                 best["lambda2"]))):
        per_seed = []
        for run, loaded in runs:
            model = loaded[2]
            saved = model.F.fis
            model.F.fis = FuzzyInference(rules).to(r.device)
            try:
                per_seed.append(r.evaluate(loaded, run))
            finally:
                model.F.fis = saved
        test[label] = r.add_row("st_f2m", per_seed, [c.seed for c in cfgs],
                                lambda1=best["lambda1"] if label == "chosen" else
                                (base.lambda_fcis or "rules"),
                                lambda2=best["lambda2"] if label == "chosen" else
                                (base.lambda_fkis or "rules"), episodes_from="meta-test")
    record = {"chosen": chosen,
              "fitness": "mean validation query cross-entropy over seeds (lower is better)",
              "grid": list(LAMBDAS), "seeds": [c.seed for c in cfgs],
              "surface": [{k: row[k] for k in ("lambda1", "lambda2", LOSS, LOSS + "_ci95",
                                               "acc18", "acc18_ci95")} for row in surface],
              "meta_test_acc18": {k: {"mean": v["acc18"], "ci95": v["acc18_ci95"]}
                                  for k, v in test.items()}}
    r.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(r.out / "lambda.json", json.dumps(record, indent=2))
    plot_lambda_surface(surface, r.out / "lambda.png")
    r.log(f"chosen lambda1={chosen['lambda_fcis']}, lambda2={chosen['lambda_fkis']} "
          f"(validation query loss {best[LOSS]:.4f}, acc18 {100 * best['acc18']:.1f}%)")
    return record


def plot_lambda_surface(surface: list[dict[str, Any]], path: Path) -> bool:
    """3-D bars of the fitness (validation query loss) over lambda1 x lambda2 (Fig. 10)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from fuzzyemo._files import save_png

    l1 = np.array([row["lambda1"] for row in surface], dtype=float)
    l2 = np.array([row["lambda2"] for row in surface], dtype=float)
    loss = np.array([row[LOSS] for row in surface])
    fig = plt.figure(figsize=(6, 4.6))
    ax = fig.add_subplot(projection="3d")
    w = 0.07
    best = min(range(len(loss)), key=lambda i: (round(loss[i], 9), abs(l1[i] - 0.4)
                                                 + abs(l2[i] - 0.4)))
    colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(loss))]
    ax.bar3d(l1 - w / 2, l2 - w / 2, np.zeros_like(loss), w, w, loss, color=colors, shade=True)
    ax.set_xlabel("λ1 (FCIS)")
    ax.set_ylabel("λ2 (FKIS)")
    ax.set_zlabel("validation query loss")
    ax.set_title(f"Fitness over λ1 × λ2 (best: {l1[best]:g}, {l2[best]:g})")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return True


def write_table(rows: list[dict[str, Any]], out: Path, name: str, config: Config,
                episodes: int | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / f"{name}.csv", buf.getvalue())

    def pct(row: dict, k: str) -> str:
        ci = row[k + "_ci95"]
        return f"{100 * row[k]:.2f} ± {100 * ci:.2f}" if np.isfinite(ci) else \
            f"{100 * row[k]:.2f}"

    lead = [k for k in keys if k in ("set", "variant", "group", "lambda1", "lambda2",
                                     "episodes_from", "corruption", "level")]
    head = [*lead, "ACC 18", "RECALL 18", "ACC 6", "RECALL 6"]
    with_loss = name == "lambda" or any(row.get("set") == "lambda" for row in rows)
    if with_loss:
        head.append("QUERY LOSS")
    n_ep = episodes if episodes is not None else config.eval_episodes
    lines = [f"# Experiment `{name}`", "",
             f"{config.n_way}-way {config.k_shot}-shot tasks, {config.steps} training steps "
             f"per model, seeds {config.seed}..{config.seed + config.seeds - 1} "
             f"({config.seeds} models per variant); each model is scored on the same "
             f"{n_ep} episodes. Mean over seeds ± 95% CI across seeds (Student's t), %. "
             f"Meta-train/meta-test classes: {config.class_split}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row.get(k, "")) for k in lead]
        cells += [pct(row, k) for k in METRICS]
        if with_loss:
            ci = row.get(LOSS + "_ci95", float("nan"))
            cells.append(f"{row[LOSS]:.4f} ± {ci:.4f}" if LOSS in row else "")
        lines.append("| " + " | ".join(cells) + " |")
    return atomic_write_text(out / f"{name}.md", "\n".join(lines) + "\n")
