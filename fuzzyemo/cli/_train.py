"""`fuzzyemo train / evaluate / experiment / predict / export` (the ST-F2M model).

PyTorch is an optional extra: without it these commands print one line with the install
hint and exit 2; nothing here imports torch at module import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from .._errors import InputError
from .._preflight import check_device, check_input_file, check_output, check_output_dir
from .._progress import Reporter
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


def _progress_bar(total: int, enabled: bool = True) -> Reporter:
    """A bar on a terminal; off a terminal (a log, CI) one line per logged step (log_every),
    with the running loss and accuracy that history.csv gets."""
    return Reporter("meta-training", total, unit="steps", console=err, enabled=enabled,
                    field_format="loss {loss:.3f} acc {acc:.2f}", auto_lines=False)


def _files_in(folder: Path) -> dict[Path, tuple[int, int]]:
    """(mtime, size) of every file under ``folder``: what a command wrote is what changed."""
    if not folder.is_dir():
        return {}
    return {p: (st.st_mtime_ns, st.st_size) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") for st in [p.stat()]}


def _written(folder: Path, before: dict[Path, tuple[int, int]]) -> str:
    after = _files_in(folder)
    names = [p.relative_to(folder).as_posix() for p, stamp in after.items()
             if before.get(p) != stamp]
    return f"wrote {len(names)} file(s) in {folder}: {', '.join(names)}"


@contextlib.contextmanager
def _torch_write_errors(folder: Path) -> Iterator[None]:
    """torch.save given a path reports a failed write (a full disk) as a RuntimeError of its
    zip writer ('unexpected pos'), not an OSError: one line naming the run folder instead
    of a traceback. (OSErrors are named by the atomic writers themselves.)"""
    first = None
    try:
        yield
    except RuntimeError as exc:
        text = str(exc)
        if "inline_container" not in text and "unexpected pos" not in text:
            raise
        first = (text.strip().splitlines() or ["write failed"])[0]
    if first is None:
        return
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    why = "no space left on device" if free < 1 << 20 else first
    raise InputError(f"{folder}: cannot write the model files ({why}; {free / 1e6:,.1f} MB "
                     "free)")


def _check_weights(run_dir: Path) -> None:
    """The weights evaluate and predict will load (model.pt, else checkpoint.pt) must be
    readable: a damaged file is one line naming it, before the data is read."""
    from stf2m_model.train import load_torch

    for name in ("model.pt", "checkpoint.pt"):
        path = run_dir / name
        if path.is_file():
            load_torch(path)
            return


def train(
    data: Annotated[Path, typer.Argument(
        metavar="DATA", readable=False,
        help="Built dataset (.parquet), e.g. DISFA-FER.")],
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

        check_device(device)
        check_input_file(data, "dataset")
        check_output_dir(output)
        before = _files_in(output)
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
        with _torch_write_errors(output), _progress_bar(cfg.steps, progress) as bar:

            def tick(step: int, total: int, stats: dict) -> None:
                bar.update(step, total, loss=stats["loss"], acc=stats["acc"])
                if "logged" in stats:  # off a terminal: a line per logged step
                    bar.line(loss=stats["logged"]["loss"], acc=stats["logged"]["acc"])

            summary = run_train(data, output, cfg, resume=resume, device=device, steps=steps,
                                progress=tick if progress else None)
        out.print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s on "
                  f"{summary['device']}; final query accuracy "
                  f"{100 * (summary['final_train_acc'] or 0):.1f}% -> {output}", markup=False)
        out.print(_written(output, before), markup=False)


def evaluate(
    run_dir: Annotated[Path, typer.Argument(
        metavar="RUN_DIR", readable=False,
        help="Run directory written by `fuzzyemo train`.")],
    data: Annotated[Path, typer.Argument(
        metavar="DATA", readable=False,
        help="Dataset (.parquet) with a meta-test split.")],
    episodes: Annotated[int | None, typer.Option(help="Test episodes (default: config).")
                        ] = None,
    corruption: Annotated[str, typer.Option(
        help="Robustness: none, occlusion, noise or speed.")] = "none",
    level: Annotated[float, typer.Option(help="Corruption level in [0, 1].")] = 0.3,
    device: DeviceOpt = "auto",
    progress: Annotated[bool, typer.Option(
        help="Progress on stderr: a bar on a terminal, else a line every tenth of the "
             "episodes.")] = True,
) -> None:
    """Accuracy and macro recall (95% CI) over meta-test episodes, confusion PNGs, card."""
    _need_torch()
    with user_errors():
        from stf2m_model.data import Corruption
        from stf2m_model.evaluate import evaluate as run_eval
        from stf2m_model.evaluate import format_metric

        check_device(device)
        if episodes is not None and episodes < 2:
            raise ValueError("--episodes must be >= 2 (a confidence interval needs two)")
        corr = Corruption(corruption, level if corruption != "none" else 0.0)  # options first
        check_input_file(data, "dataset")
        _check_weights(run_dir)
        before = _files_in(run_dir)
        with Reporter("evaluation", episodes, unit="episodes", console=err,
                      enabled=progress) as bar:
            m = run_eval(run_dir, data, episodes=episodes, corruption=corr, device=device,
                         progress=lambda done, total: bar.update(done, total))
        out.print(f"{m['episodes']} episodes, {m['n_way']}-way {m['k_shot']}-shot on the "
                  f"meta-test classes (chance {100 * m['chance_accuracy']:.1f}%), one model: "
                  "mean ± 95% CI over episodes (%)", markup=False)
        for key, label in (("classes18", "18 classes"), ("emotions6", "6 emotions")):
            out.print(f"  {label}: accuracy {format_metric(m[key]['accuracy'])}, "
                      f"recall {format_metric(m[key]['recall_macro'])}", markup=False)
        if not m.get("figures"):
            err.print('note: confusion PNGs need matplotlib (pip install "fuzzyemo[train]")',
                      markup=False)
        out.print(_written(run_dir, before), markup=False)


def experiment(
    name: Annotated[str, typer.Argument(
        metavar="NAME",
        help="ablation, baselines, robustness, lambda or all.")],
    data: Annotated[Path, typer.Argument(metavar="DATA", readable=False,
                                        help="Dataset (.parquet).")],
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

        check_device(device)
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

        check_device(device)
        check_input_file(table, "table")
        if support is not None:
            check_input_file(support, "support table")
        check_output(output, suffixes=(".parquet", ".csv"), inputs=[table, support or table])
        if batch_size < 1:
            raise ValueError("--batch-size must be >= 1")
        _check_weights(run_dir)
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

        if support is not None:
            check_input_file(support, "support table")
        check_output(output, suffixes=None)
        _check_weights(run_dir)
        predictor = Predictor.load(run_dir, support=support, device="cpu")
        predictor.export(output)
        out.print(f"wrote {output} ({len(predictor.classes)} classes: "
                  f"{', '.join(predictor.class_names)})", markup=False)
