"""`fuzzyemo train / evaluate / experiment` through typer's CliRunner on an assembled app."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from fuzzyemo.cli import _train

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(_train.train)
    app.command()(_train.evaluate)
    app.command()(_train.experiment)
    return app


def test_missing_torch_prints_the_install_hint(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    for args in (["train", "x.parquet", "-o", str(tmp_path / "r")],
                 ["evaluate", str(tmp_path), "x.parquet"],
                 ["experiment", "ablation", "x.parquet", "-o", str(tmp_path)]):
        res = runner.invoke(_app(), args)
        assert res.exit_code == 2
        assert 'pip install "fuzzyemo[train]"' in res.output
        assert "Traceback" not in res.output


pytest.importorskip("torch")


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    import stf2m_fixtures as fx

    path = tmp_path_factory.mktemp("cli") / "disfa.parquet"
    return fx.write(fx.disfa_like(n_subjects=9, n_frames=160, seed=4), path)


CONFIG = """\
window: 8
stride: 4
n_way: 4
k_shot: 2
q_query: 2
hidden: 8
steps: 6
checkpoint_every: 3
log_every: 3
eval_episodes: 12
inner_steps_test: 2
"""


def test_train_then_evaluate_writes_model_card_metrics_and_figures(parquet, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    res = runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--config", str(cfg),
                                 "--device", "cpu", "--first-order", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "trained 6 steps" in res.output
    for name in ("config.yaml", "prep.json", "model.pt", "checkpoint.pt", "history.csv",
                 "MODEL_CARD.md", "train.json"):
        assert (run / name).is_file(), name
    assert "first_order: true" in (run / "config.yaml").read_text()
    # a second train into the same directory is refused in one line
    again = runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--no-progress"])
    assert again.exit_code == 2 and "--resume" in again.output and "Traceback" not in again.output
    more = runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--resume", "--steps",
                                  "8", "--no-progress"])
    assert more.exit_code == 0 and "trained 8 steps" in more.output, more.output
    assert "steps: 8" in (run / "config.yaml").read_text()
    assert (run / "history.csv").read_text().splitlines()[-1].startswith("8,")

    res = runner.invoke(_app(), ["evaluate", str(run), str(parquet), "--episodes", "10"])
    assert res.exit_code == 0, res.output
    assert "18 classes: accuracy" in res.output and "6 emotions" in res.output
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["episodes"] == 10 and 0 <= ev["classes18"]["accuracy"]["mean"] <= 1
    assert sum(map(sum, ev["confusion18"])) == 10 * 4 * 2
    card = (run / "MODEL_CARD.md").read_text()
    assert "## Evaluation" in card and "± " in card
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for png in ("confusion_18.png", "confusion_6.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_with_a_corruption_and_bad_inputs(parquet, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG + "seed: 3\n")
    run = tmp_path / "run"
    assert runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--config", str(cfg),
                                  "--no-meta", "--no-progress"]).exit_code == 0
    res = runner.invoke(_app(), ["evaluate", str(run), str(parquet), "--episodes", "4",
                                 "--corruption", "occlusion", "--level", "0.5"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "evaluation.json").read_text())["corruption"]["kind"] == "occlusion"
    bad = tmp_path / "bad.yaml"
    bad.write_text("windw: 8\n")
    res = runner.invoke(_app(), ["train", str(parquet), "-o", str(tmp_path / "r2"),
                                 "--config", str(bad)])
    assert res.exit_code == 2 and "windw" in res.output and "window" in res.output
    res = runner.invoke(_app(), ["evaluate", str(tmp_path), str(parquet)])
    assert res.exit_code == 2 and "not a run directory" in res.output
    res = runner.invoke(_app(), ["evaluate", str(run), str(parquet), "--corruption", "fog"])
    assert res.exit_code == 2 and "fog" in res.output


def test_experiment_writes_one_comparison_table(parquet, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("steps: 6", "steps: 3"))
    res = runner.invoke(_app(), ["experiment", "baselines", str(parquet), "-o", str(tmp_path / "x"),
                                 "--config", str(cfg), "--episodes", "4", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "x" / "baselines.md").read_text()
    for variant in ("st_f2m", "maml", "protonet"):
        assert f"| baselines | {variant} |" in table
    rows = (tmp_path / "x" / "baselines.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and rows[0].startswith("set,variant,")
    res = runner.invoke(_app(), ["experiment", "nope", str(parquet), "-o", str(tmp_path / "y")])
    assert res.exit_code == 2 and "ablation" in res.output
