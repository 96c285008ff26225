"""`fuzzyemo train / evaluate / experiment / predict / export` (the ST-F2M model).

PyTorch is an optional extra: without it these commands print one line with the install
hint and exit 2; nothing here imports torch at module import time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from ._common import err, out, user_errors

HINT = 'training needs PyTorch: pip install "fuzzyemo[train]"'

DeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto (GPU when present), cpu, cuda or cuda:N.")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="YAML/JSON file with hyperparameters (see docs/model.md).",
    show_default=False)]


def _need_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        err.print(f"error: {HINT}", markup=False)
        raise typer.Exit(2)


def _config(path: Path | None, **overrides):
    from stf2m_model.config import Config

    cfg = Config.load(path) if path is not None else Config()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg


def _check_device(device: str) -> None:
    """A bad --device is one line, before any data is read."""
    from stf2m_model.config import check_device

    check_device(device)


def _progress_lines(every: int):
    """Progress for a non-terminal stderr (a log file, CI): one line per logged step."""
    import time

    start = time.perf_counter()

    def tick(step: int, total: int, stats: dict) -> None:
        if "logged" not in stats:
            return
        rate = step / max(time.perf_counter() - start, 1e-9)
        eta = (total - step) / rate if rate > 0 else 0.0
        err.print(f"step {step}/{total}  loss {stats['logged']['loss']:.4f}  "
                  f"acc {stats['logged']['acc']:.3f}  {rate:.2f} steps/s  "
                  f"eta {eta:.0f} s", markup=False)

    return tick


def _progress_bar():
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("meta-training"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} steps"),
                    TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.2f}"),
                    TimeRemainingColumn(), console=err, transient=True)


def train(
    data: Annotated[Path, typer.Argument(help="Built dataset (.parquet), e.g. DISFA-FER.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory to create.")],
    config: ConfigOpt = None,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN_DIR/checkpoint.pt.")
                      ] = False,
    no_spatiotemporal: Annotated[bool, typer.Option(
        "--no-spatiotemporal", help="Ablation: plain per-frame encoder instead of g.")] = False,
    no_fuzzy: Annotated[bool, typer.Option("--no-fuzzy", help="Ablation: no fuzzy layer F.")
                        ] = False,
    no_meta: Annotated[bool, typer.Option(
        "--no-meta", help="Ablation: single-level training instead of bi-level.")] = False,
    first_order: Annotated[bool, typer.Option(
        "--first-order", help="First-order meta-gradients (default: second order).")] = False,
    positions: Annotated[bool | None, typer.Option(
        "--positions/--no-positions",
        help="Positional-encoding input (default: the config's; off by default).")] = None,
    method: Annotated[str | None, typer.Option(
        help="maml, anil, reptile, protonet or supervised (default: the config's).")] = None,
    steps: Annotated[int | None, typer.Option(
        help="Override the number of outer steps (with --resume: train on to this step).")
                     ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the seed.")] = None,
    progress: Annotated[bool, typer.Option(
        help="Progress on stderr: a bar on a terminal, else a line every log_every steps.")
                        ] = True,
) -> None:
    """Meta-train the ST-F2M model (Algorithm 1) on a built dataset."""
    _need_torch()
    with user_errors():
        from stf2m_model.experiments import apply_flags
        from stf2m_model.train import train as run_train

        _check_device(device)
        cfg = apply_flags(_config(config, seed=seed, positions=positions, method=method),
                          no_spatiotemporal, no_fuzzy, no_meta, first_order)
        if steps is not None:
            cfg = cfg.replace(steps=steps)
        if resume:
            from stf2m_model.config import Config

            saved = output / "config.yaml"
            if saved.is_file():
                cfg = Config.load(saved).replace(steps=steps if steps is not None else
                                                 Config.load(saved).steps)
            if (config is not None or no_spatiotemporal or no_fuzzy or no_meta or first_order
                    or seed is not None or positions is not None or method is not None):
                err.print("warning: --resume continues with the run's own config.yaml; "
                          "options other than --steps and --device are ignored", markup=False)
        if progress and not err.is_terminal:
            summary = run_train(data, output, cfg, resume=resume, device=device, steps=steps,
                                progress=_progress_lines(cfg.log_every))
        elif progress:
            with _progress_bar() as bar:
                task = bar.add_task("steps", total=cfg.steps, loss=float("nan"), acc=0.0)

                def tick(step: int, total: int, stats: dict) -> None:
                    bar.update(task, completed=step, total=total, **stats)

                summary = run_train(data, output, cfg, resume=resume, progress=tick,
                                    device=device, steps=steps)
        else:
            summary = run_train(data, output, cfg, resume=resume, device=device, steps=steps)
        out.print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s on "
                  f"{summary['device']}; final query accuracy "
                  f"{100 * (summary['final_train_acc'] or 0):.1f}% -> {output}", markup=False)


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `fuzzyemo train`.")],
    data: Annotated[Path, typer.Argument(help="Dataset (.parquet) with a meta-test split.")],
    episodes: Annotated[int | None, typer.Option(help="Test episodes (default: config).")
                        ] = None,
    corruption: Annotated[str, typer.Option(
        help="Robustness: none, occlusion, noise or speed.")] = "none",
    level: Annotated[float, typer.Option(help="Corruption level in [0, 1].")] = 0.3,
    device: DeviceOpt = "auto",
) -> None:
    """Accuracy and macro recall (95% CI) over meta-test episodes, confusion PNGs, card."""
    _need_torch()
    with user_errors():
        from stf2m_model.data import Corruption
        from stf2m_model.evaluate import evaluate as run_eval
        from stf2m_model.evaluate import format_metric

        _check_device(device)
        if episodes is not None and episodes < 2:
            raise ValueError("--episodes must be >= 2 (a confidence interval needs two)")
        corr = Corruption(corruption, level if corruption != "none" else 0.0)
        m = run_eval(run_dir, data, episodes=episodes, corruption=corr, device=device)
        out.print(f"{m['episodes']} episodes, {m['n_way']}-way {m['k_shot']}-shot on the "
                  f"meta-test classes (chance {100 * m['chance_accuracy']:.1f}%), one model: "
                  "mean ± 95% CI over episodes (%)", markup=False)
        for key, label in (("classes18", "18 classes"), ("emotions6", "6 emotions")):
            out.print(f"  {label}: accuracy {format_metric(m[key]['accuracy'])}, "
                      f"recall {format_metric(m[key]['recall_macro'])}", markup=False)
        if not m.get("figures"):
            err.print('note: confusion PNGs need matplotlib (pip install "fuzzyemo[train]")',
                      markup=False)
        out.print(f"wrote {run_dir / 'evaluation.json'} and {run_dir / 'MODEL_CARD.md'}",
                  markup=False)


def experiment(
    name: Annotated[str, typer.Argument(
        help="ablation, baselines, robustness, lambda or all.")],
    data: Annotated[Path, typer.Argument(help="Dataset (.parquet).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")],
    config: ConfigOpt = None,
    steps: Annotated[int | None, typer.Option(help="Override training steps per variant.")
                     ] = None,
    episodes: Annotated[int | None, typer.Option(help="Test episodes per evaluation.")] = None,
    seeds: Annotated[int | None, typer.Option(
        help="Models per variant (default: the config's seeds, 3).")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Run a named set of trainings/evaluations over seeds and write one comparison table."""
    _need_torch()
    with user_errors():
        from stf2m_model.experiments import EXPERIMENTS, run_experiment

        _check_device(device)
        if name not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
        if episodes is not None and episodes < 2:
            raise ValueError("--episodes must be >= 2")
        cfg = _config(config, steps=steps, device=device, seeds=seeds)
        path = run_experiment(name, data, output, cfg,
                              log=lambda s: err.print(s, markup=False), episodes=episodes)
        out.print(path.read_text(), markup=False)
        out.print(f"wrote {path} and {path.with_suffix('.csv')}", markup=False)


def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `fuzzyemo train`.")],
    table: Annotated[Path, typer.Argument(
        help="Frames to label: `fuzzyemo annotate` output or a DISFA-FER-like table.")],
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Output table (.parquet or .csv).")],
    support: Annotated[Path | None, typer.Option(
        help="Labelled table to adapt on (few-shot); default: the run's reference support.",
        show_default=False)] = None,
    device: DeviceOpt = "cpu",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 512,
) -> None:
    """Label every face frame of a table with a class and probabilities."""
    _need_torch()
    with user_errors():
        from fuzzyemo._table import read_table, write_table
        from stf2m_model.predict import Predictor

        _check_device(device)
        if output.suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"{output}: the output must end in .parquet or .csv")
        if batch_size < 1:
            raise ValueError("--batch-size must be >= 1")
        frame = read_table(table)  # bad input fails before the model is adapted
        predictor = Predictor.load(run_dir, support=support, device=device)
        result = predictor.predict(frame, batch_size=batch_size, source=str(table))
        write_table(result, output, metadata=predictor.metadata())
        labelled = int((result["pred_class_index"] > -2).sum())
        out.print(f"labelled {labelled} of {len(result)} rows with "
                  f"{len(predictor.classes)} classes ({predictor.support}) -> {output}",
                  markup=False)


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `fuzzyemo train`.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="File to write: .pt2 for torch.export, else TorchScript.")],
    support: Annotated[Path | None, typer.Option(
        help="Labelled table to adapt on first; default: the run's reference support.",
        show_default=False)] = None,
) -> None:
    """Export the run, adapted to its support set (windows -> probabilities)."""
    _need_torch()
    with user_errors():
        from stf2m_model.predict import Predictor

        predictor = Predictor.load(run_dir, support=support, device="cpu")
        predictor.export(output)
        out.print(f"wrote {output} ({len(predictor.classes)} classes: "
                  f"{', '.join(predictor.class_names)})", markup=False)
