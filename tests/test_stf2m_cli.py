"""`fuzzyemo train / evaluate / experiment` through typer's CliRunner on an assembled app."""

from __future__ import annotations

import json

import pytest
import typer
from stf2m_fixtures import TINY_TRAIN_CONFIG
from typer.testing import CliRunner

from fuzzyemo.cli import _train

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    for command in (_train.train, _train.evaluate, _train.experiment, _train.predict,
                    _train.export):
        app.command()(command)
    return app


def test_missing_torch_prints_the_install_hint(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    for args in (["train", "x.parquet", "-o", str(tmp_path / "r")],
                 ["evaluate", str(tmp_path), "x.parquet"],
                 ["experiment", "ablation", "x.parquet", "-o", str(tmp_path)],
                 ["predict", str(tmp_path), "x.parquet", "-o", str(tmp_path / "p.parquet")],
                 ["export", str(tmp_path), "-o", str(tmp_path / "m.pt")]):
        res = runner.invoke(_app(), args)
        assert res.exit_code == 2
        assert 'pip install "fuzzyemo[train]"' in res.output
        assert "Traceback" not in res.output


pytest.importorskip("torch")


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    import stf2m_fixtures as fx

    path = tmp_path_factory.mktemp("cli") / "disfa.parquet"
    return fx.write(fx.disfa_like(n_subjects=10, n_frames=500, seed=4), path)


CONFIG = TINY_TRAIN_CONFIG


def test_train_then_evaluate_writes_model_card_metrics_and_figures(parquet, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    res = runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--config", str(cfg),
                                 "--device", "cpu", "--first-order", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "trained 6 steps" in res.output and "3/6" not in res.output  # --no-progress
    for name in ("config.yaml", "prep.json", "rules.json", "model.pt", "checkpoint.pt",
                 "support.pt", "history.csv", "MODEL_CARD.md", "train.json"):
        assert (run / name).is_file(), name
    assert "first_order: true" in (run / "config.yaml").read_text()
    assert "rules: paper" in (run / "config.yaml").read_text()  # the dataset's own profile
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
    assert "meta-test classes" in res.output
    ev = json.loads((run / "evaluation.json").read_text())
    info = json.loads((run / "train.json").read_text())
    assert ev["episodes"] == 10 and 0 <= ev["classes18"]["accuracy"]["mean"] <= 1
    assert set(ev["test_classes"]) <= set(info["test_classes"])
    assert not set(info["train_classes"]) & set(info["test_classes"])
    assert sum(map(sum, ev["confusion18"])) == 10 * 4 * 2
    card = (run / "MODEL_CARD.md").read_text()
    assert "## Evaluation" in card and "± " in card and "meta-test classes:" in card
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for png in ("confusion_18.png", "confusion_6.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_lines_when_stderr_is_not_a_terminal(parquet, tmp_path):
    """CliRunner's stderr is no terminal: one line per logged step, and the loss history
    is on disk while training runs."""
    from stf2m_model import train as train_mod

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    seen = []
    real = train_mod._write_history

    def spy(run_dir, history):
        real(run_dir, history)
        seen.append((run_dir / "history.csv").read_text().count("\n") - 1)

    train_mod._write_history = spy
    try:
        res = runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--config",
                                     str(cfg)])
    finally:
        train_mod._write_history = real
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("meta-training: ")]
    assert [ln.split()[1] for ln in lines] == ["3/6", "6/6"]  # log_every: 3
    assert "loss" in lines[0] and "steps/s" in lines[0] and "s left" in lines[0]
    assert seen[:2] == [1, 2]  # history.csv grew as training went


def test_bad_devices_and_damaged_runs_are_one_line(parquet, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG + "seed: 3\n")
    run = tmp_path / "run"
    for device in ("mps", "gpu", "tpu", "cuda:x"):
        res = runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--config",
                                     str(cfg), "--device", device])
        assert res.exit_code == 2 and "is not a device" in res.output, res.output
        assert "Traceback" not in res.output and res.output.count("\n") == 1
        assert not run.exists()  # refused before any work
    assert runner.invoke(_app(), ["train", str(parquet), "-o", str(run), "--config", str(cfg),
                                  "--no-meta", "--no-progress"]).exit_code == 0
    res = runner.invoke(_app(), ["evaluate", str(run), str(parquet), "--episodes", "4",
                                 "--corruption", "occlusion", "--level", "0.5"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "evaluation.json").read_text())["corruption"]["kind"] == "occlusion"
    (run / "model.pt").write_bytes(b"not a checkpoint")
    for args in (["evaluate", str(run), str(parquet)],
                 ["predict", str(run), str(parquet), "-o", str(tmp_path / "p.parquet")]):
        res = runner.invoke(_app(), args)
        assert res.exit_code == 2 and "damaged" in res.output, res.output
        assert "Traceback" not in res.output and res.output.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("windw: 8\n")
    res = runner.invoke(_app(), ["train", str(parquet), "-o", str(tmp_path / "r2"),
                                 "--config", str(bad)])
    assert res.exit_code == 2 and "windw" in res.output and "window" in res.output
    res = runner.invoke(_app(), ["evaluate", str(tmp_path), str(parquet)])
    assert res.exit_code == 2 and "not a run directory" in res.output
    res = runner.invoke(_app(), ["evaluate", str(run), str(parquet), "--corruption", "fog"])
    assert res.exit_code == 2 and "fog" in res.output


def test_experiment_over_seeds_with_config_keyed_runs(parquet, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("steps: 6", "steps: 2"))
    out = tmp_path / "x"
    args = ["experiment", "baselines", str(parquet), "-o", str(out), "--config", str(cfg),
            "--episodes", "4", "--device", "cpu", "--seeds", "3"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output
    table = (out / "baselines.md").read_text()
    for variant in ("st_f2m", "maml", "fomaml", "anil", "reptile", "protonet", "supervised"):
        assert f"| baselines | {variant} |" in table
    assert "95% CI across seeds" in table
    rows = (out / "baselines.csv").read_text().strip().splitlines()
    assert len(rows) == 8 and rows[0].startswith("set,variant,")
    assert all(len(r.split(",")[rows[0].split(",").index("acc18_per_seed")].split()) == 3
               for r in rows[1:])
    runs = sorted(p.name for p in (out / "runs" / "st_f2m").iterdir())
    assert [r.split("-")[0] for r in runs] == ["seed0", "seed1", "seed2"]
    # the same command reuses every run; a changed setting trains new ones
    again = runner.invoke(_app(), args)
    assert again.exit_code == 0 and "reusing" in again.output and ": training (" not in again.output
    changed = runner.invoke(_app(), [*args[:-2], "--seeds", "3", "--steps", "3"])
    assert changed.exit_code == 0 and ": training (" in changed.output
    assert len(list((out / "runs" / "st_f2m").iterdir())) == 6
    res = runner.invoke(_app(), ["experiment", "nope", str(parquet), "-o", str(tmp_path / "y")])
    assert res.exit_code == 2 and "ablation" in res.output


def test_lambda_experiment_records_the_choice_and_draws_the_surface(parquet, tmp_path,
                                                                     monkeypatch):
    from stf2m_model import experiments

    monkeypatch.setattr(experiments, "LAMBDAS", (0.2, 0.4))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("steps: 6", "steps: 2") + "seeds: 2\n")
    out = tmp_path / "lam"
    res = runner.invoke(_app(), ["experiment", "lambda", str(parquet), "-o", str(out),
                                 "--config", str(cfg), "--episodes", "4"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "lambda.json").read_text())
    assert len(record["surface"]) == 4 and record["seeds"] == [0, 1]
    chosen = next(r for r in record["surface"]
                  if (r["lambda1"], r["lambda2"]) == (record["chosen"]["lambda_fcis"],
                                                      record["chosen"]["lambda_fkis"]))
    assert chosen["loss"] == min(r["loss"] for r in record["surface"])
    assert "cross-entropy" in record["fitness"]
    assert set(record["meta_test_acc18"]) == {"config", "chosen"}
    # one trained model per seed, held fixed while the lambdas change
    assert len(list((out / "runs" / "st_f2m").iterdir())) == 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "lambda.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
