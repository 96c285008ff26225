"""Every command through typer's CliRunner: results, and one-line errors for user mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fuzzyemo import COMPONENTS, RuleBase
from fuzzyemo._table import read_metadata
from fuzzyemo.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert lines, text
    for f in fragments:
        assert f in text, text


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rows = np.array([
        [0, 0, 1, 0, 0, 1, 0, -1, -1, -1, -1, -1],  # Table II Angry-High
        [0] * 12,
        [0, 0, 0, 0, 0, 0, 0, np.nan, 0, 0, 0, 0],
    ], dtype=float)
    df = pd.DataFrame(rows, columns=COMPONENTS)
    df.insert(0, "id", ["a", "b", "c"])
    path = tmp_path / "in.csv"
    df.to_csv(path, index=False)
    return path


def test_demo():
    # The sample holds the paper's Table II codings: the paper profile labels them.
    result = run("demo", "--rules", "paper")
    assert result.exit_code == 0
    assert "anger_high" in result.output and "unknown" in result.output
    assert "profile paper" in result.output
    result = run("demo")  # the default profile
    assert result.exit_code == 0 and "profile facs" in result.output


def test_infer_parquet(table, tmp_path):
    out = tmp_path / "out.parquet"
    result = run("infer", table, "-o", out, "--rules", "paper")
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert list(df["id"]) == ["a", "b", "c"]
    assert list(df["label"]) == ["anger_high", "neutral", "unknown"]
    assert list(df["class_index"]) == [5, -1, -2]
    assert df["brow_crest_code"].isna().tolist() == [False, False, True]
    assert np.isnan(df.loc[2, "anger_high"])
    meta = read_metadata(out)
    assert meta["rules_sha256"] == RuleBase.default("paper").sha256
    assert meta["rules_profile"] == "paper"  # the profile is recorded when one was used
    assert meta["engine"]["tnorm"] == "min"


def test_infer_is_deterministic(table, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run("infer", table, "-o", a)
    run("infer", table, "-o", b)
    assert a.read_bytes() == b.read_bytes()


def test_infer_csv_and_overrides(table, tmp_path):
    out = tmp_path / "out.csv"
    result = run("infer", table, "-o", out, "--tnorm", "product", "--min-activation", "0.95",
                 "--resolution", "2001", "--lambda-fcis", "0.5", "--rules", "paper")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert df["label"].tolist() == ["anger_high", "neutral", "unknown"]


def test_infer_missing_column(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"left_eyebrow": [0.0], "brow_crst": [0.1]}).to_csv(path, index=False)
    out = tmp_path / "out.parquet"
    result = run("infer", path, "-o", out)
    assert_one_line_error(result, "bad.csv", "missing component column(s)", "brow_crest")
    assert not out.exists()


def test_infer_non_numeric(table, tmp_path):
    df = pd.read_csv(table)
    df["mouth"] = df["mouth"].astype(object)
    df.loc[1, "mouth"] = "open"
    df.to_csv(table, index=False)
    result = run("infer", table, "-o", tmp_path / "o.parquet")
    assert_one_line_error(result, "column 'mouth'", "row 2")


def test_infer_missing_file(tmp_path):
    result = run("infer", tmp_path / "nope.csv", "-o", tmp_path / "o.parquet")
    assert_one_line_error(result, "nope.csv: file not found")


def test_infer_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = run("infer", path, "-o", tmp_path / "o.parquet")
    assert_one_line_error(result, "empty.csv")
    assert not (tmp_path / "o.parquet").exists()


def test_infer_bad_option(table, tmp_path):
    result = run("infer", table, "-o", tmp_path / "o.parquet", "--tnorm", "max")
    assert_one_line_error(result, "tnorm")


def test_infer_bad_rules(table, tmp_path, rules_copy):
    (rules_copy / "fkis" / "anger.yaml").write_text("format: fuzzyemo-fkis/1\nemotion: [\n")
    result = run("infer", table, "-o", tmp_path / "o.parquet", "--rules", rules_copy)
    assert_one_line_error(result, "anger.yaml:", "invalid YAML")


def test_explain(table):
    result = run("explain", table, "--row", "1", "--rules", "paper")
    assert result.exit_code == 0, result.output
    assert "anger_high" in result.output and "anger-" in result.output
    result = run("explain", table, "--row", "3")
    assert "missing measurement(s): mouth" in result.output
    assert_one_line_error(run("explain", table, "--row", "9"), "out of range")


def test_rules_check_ok():
    result = run("rules", "check", "paper")
    assert result.exit_code == 0, result.output
    assert "18/18 classes reachable" in result.output and "(profile paper)" in result.output
    result = run("rules", "check")  # the default profile is lint-clean too
    assert result.exit_code == 0, result.output
    assert "(profile facs)" in result.output


def test_rules_check_conflict(rules_copy):
    path = rules_copy / "fkis" / "sadness.yaml"
    path.write_text(path.read_text() + (
        '  - id: sadness-conflict\n    coding: "0010010(-1)(-1)(-1)(-1)(-1)"\n'
        '    then: low\n    source: "test"\n'))
    result = run("rules", "check", rules_copy)
    assert result.exit_code == 1
    assert "[conflict]" in result.output and "sadness-conflict" in result.output


def test_rules_check_never_fires(rules_copy):
    path = rules_copy / "fcis.yaml"
    # Push the nostril's 'dilated' term outside [-1, 1]: every rule using it is dead.
    text = path.read_text()
    start = text.index("  nostril:")
    block = text[start:].replace("dilated:  {code: 1, mf: trapmf, params: [0.15, 0.6, 1, 1]}",
                                 "dilated:  {code: 1, mf: trapmf, params: [1, 1, 1, 1]}", 1)
    path.write_text(text[:start] + block)
    rb = RuleBase.load(rules_copy)
    assert float(rb.component_mf("nostril", 1)(1.0)) == 1.0  # still valid: 1 at its code
    result = run("rules", "check", rules_copy)
    # a term that is 1 only at the single point x=1 still fires, so no error here ...
    assert "[never-fires]" not in result.output
    # ... but a term with no support inside [-1, 1] cannot be written (its code must peak).


def test_rules_check_invalid(rules_copy):
    (rules_copy / "fcis.yaml").write_text("format: fuzzyemo-fcis/1\ncomponents: {}\n")
    result = run("rules", "check", rules_copy)
    assert result.exit_code == 2
    assert "component 'left_eyebrow' is missing" in result.output


def test_rules_check_missing_dir(tmp_path):
    assert_one_line_error(run("rules", "check", tmp_path / "nope"), "rule directory not found")


def test_rules_show():
    result = run("rules", "show", "paper", "--emotion", "anger")
    assert result.exit_code == 0
    assert "anger-" in result.output and "0010010(-1)(-1)(-1)(-1)(-1)" in result.output
    assert_one_line_error(run("rules", "show", "--emotion", "joy"), "unknown emotion")


def test_rules_init(tmp_path):
    dest = tmp_path / "mine"
    assert run("rules", "init", dest).exit_code == 0
    assert RuleBase.load(dest).sha256 == RuleBase.default().sha256 == RuleBase.load("facs").sha256
    assert RuleBase.load(dest).profile is None  # a copy is the user's own directory
    # Self-contained: the shared measurement data comes along.
    assert (dest / "calibration.yaml").is_file() and (dest / "landmarks" / "ibug68.yaml").is_file()
    assert_one_line_error(run("rules", "init", dest), "already exists")
    paper = tmp_path / "paper-copy"
    assert run("rules", "init", paper, "--profile", "paper").exit_code == 0
    assert RuleBase.load(paper).sha256 == RuleBase.load("paper").sha256
    assert_one_line_error(run("rules", "init", tmp_path / "x", "--profile", "papr"),
                          "no rule profile or directory 'papr'", "did you mean 'paper'",
                          "facs, paper")
    assert not (tmp_path / "x").exists()


def test_rules_list():
    result = run("rules", "list")
    assert result.exit_code == 0, result.output
    assert "facs (default)" in result.output and "paper" in result.output


def test_rules_option_takes_a_name_or_a_path(table, tmp_path, monkeypatch):
    """--rules NAME|PATH everywhere; an existing directory wins over a profile name; an
    unknown name that is no directory either is a one-line error listing the profiles."""
    by_name, by_path = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert run("infer", table, "-o", by_name, "--rules", "paper").exit_code == 0
    paper_dir = Path(__file__).resolve().parents[1] / "rules" / "paper"
    assert run("infer", table, "-o", by_path, "--rules", paper_dir).exit_code == 0
    assert read_metadata(by_path)["rules_profile"] == "paper"
    assert pd.read_parquet(by_name).equals(pd.read_parquet(by_path))
    for args in (("infer", table, "-o", tmp_path / "c.parquet"), ("explain", table), ("demo",),
                 ("rules", "export"), ("rules", "check"), ("rules", "show")):
        rules = ("--rules", "nope") if args[0] != "rules" or args[1] == "export" else ("nope",)
        assert_one_line_error(run(*args, *rules), "no rule profile or directory 'nope'",
                              "shipped profiles: facs, paper")
    # A directory called 'paper' in the working directory wins over the profile.
    monkeypatch.chdir(tmp_path)
    assert run("rules", "init", "paper", "--profile", "facs").exit_code == 0
    assert run("infer", table, "-o", "d.parquet", "--rules", "paper").exit_code == 0
    meta = read_metadata(tmp_path / "d.parquet")
    assert meta["rules_sha256"] == RuleBase.load("facs").sha256 and "rules_profile" not in meta
    # $FUZZYEMO_RULES holds a name or a path.
    monkeypatch.chdir(Path(__file__).resolve().parent)
    monkeypatch.setenv("FUZZYEMO_RULES", "paper")
    assert run("infer", table, "-o", tmp_path / "e.parquet").exit_code == 0
    assert read_metadata(tmp_path / "e.parquet")["rules_profile"] == "paper"
    monkeypatch.setenv("FUZZYEMO_RULES", str(tmp_path / "paper"))
    assert RuleBase.default().sha256 == RuleBase.load("facs").sha256


def test_rules_export_json(tmp_path):
    out = tmp_path / "rb.json"
    result = run("rules", "export", "--format", "json", "-o", out, "--lambda-fcis", "0.6")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    # The default profile (facs) grades with hedges: SPEC's form plus condition lists.
    assert data["format"] == "fuzzyemo-rulebase/1+hedges" and data["lambda_fcis"] == 0.6
    assert_one_line_error(run("rules", "export", "--format", "xml"), "--format")


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("fuzzyemo ")


def test_rules_check_intensity_gap(rules_copy):
    # lambda2 = 0.2 halves anger's slopes: its intensity functions no longer cover U.
    path = rules_copy / "fkis" / "anger.yaml"
    path.write_text(path.read_text().replace("\nlambda: 0.4", "\nlambda: 0.2", 1))
    result = run("rules", "check", rules_copy)
    assert result.exit_code == 0, result.output  # a warning ...
    assert "[gap]" in result.output and "anger's intensity functions" in result.output
    assert run("rules", "check", rules_copy, "--strict").exit_code == 1  # ... fails --strict


def test_hedged_rules_through_the_cli(hedged_rules, tmp_path):
    """check, show, export, infer and explain all take a hedged rule base."""
    result = run("rules", "show", hedged_rules, "--emotion", "happiness")
    assert result.exit_code == 0, result.output
    assert ("if nose is any and mouth is normal and left_mouth_corner is raised and "
            "left_mouth_corner is not very raised") in result.output
    data = json.loads(run("rules", "export", "--rules", hedged_rules).output)
    happiness = next(e for e in data["emotions"] if e["name"] == "happiness")
    rule = next(r for r in happiness["rules"] if r["id"] == "happiness-h-low")
    assert rule["when"]["left_mouth_corner"] == [
        {"term": "raised", "code": 1, "hedges": []},
        {"term": "raised", "code": 1, "hedges": ["not", "very"]}]
    assert rule["when"]["mouth"] == 0
    assert "left_mouth_corner is not very raised" in run(
        "rules", "export", "--rules", hedged_rules, "--format", "fll").output
    path = tmp_path / "smile.csv"
    row = dict.fromkeys(COMPONENTS, 0.0) | {"left_mouth_corner": 0.4, "right_mouth_corner": 0.4}
    pd.DataFrame([row]).to_csv(path, index=False)
    result = run("explain", path, "--rules", hedged_rules, "--top", "2")
    assert result.exit_code == 0, result.output
    # The table folds long cells: read its columns back, line by line.
    cells = [ln.split("│")[1:-1] for ln in result.output.splitlines() if ln.startswith("│")]
    rules = "".join(c[0].strip() for c in cells)
    conditions = "".join(c[3].strip() for c in cells).replace(" ", "")
    assert "happiness-h-low" in rules
    assert "left_mouth_cornerisnotveryraised(+0.40->0.69)" in conditions
