"""docs/validity.md: every figure on the page is the recorded benchmark output
(docs/validity/*.json, written by `python benchmarks/validity.py --json`), and that output was
measured with the rules, calibration and corpus that ship now."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from docs_fixtures import first_table

from fuzzyemo import Calibration, RuleBase
from fuzzyemo._files import file_sha256
from fuzzyemo._vocab import COMPONENTS

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "validity.md").read_text()
RUNS = {name: json.loads((ROOT / "docs" / "validity" / f"{name}.json").read_text())
        for name in ("dev", "heldout", "heldout-run1", "heldout-run2", "heldout-run3",
                     "fresh", "fresh-run1")}


def table(heading: str) -> list[list[str]]:
    """The first Markdown table after a line containing ``heading``."""
    return first_table(PAGE[PAGE.index(heading):])


def close(stated: str, value: float, digits: int) -> bool:
    if stated == "-":
        return math.isnan(value)
    return abs(float(stated) - value) <= 0.5 * 10 ** -digits + 1e-12


def test_recorded_figures_are_of_the_shipped_rules_calibration_and_corpus():
    rb = RuleBase.default()
    cal = Calibration.load(rb.source)
    corpus = file_sha256(ROOT / "benchmarks" / "validity" / "corpus.yaml")
    for name in ("dev", "heldout", "fresh"):
        run = RUNS[name]
        assert run["split"] == name and run["rules"] == "facs"
        assert run["rules_sha256"] == rb.sha256, \
            f"{name}: rules changed since docs/validity was measured: rerun benchmarks/validity.py"
        assert run["calibration_sha256"] == cal.sha256, f"{name}: calibration changed"
        assert run["corpus_sha256"] == corpus, f"{name}: corpus changed"


def test_targets_table():
    rows = table("## The targets")[1:]
    keys = ["clearly_expressive_stills", "video_frames", "smiles_happiness", "crying_sadness",
            "false_alarms_neutral_smiling"]
    assert len(rows) == len(keys)
    for row, key in zip(rows, keys, strict=True):
        for n, rate, run in ((row[1], row[2], RUNS["dev"]), (row[3], row[4], RUNS["heldout"])):
            t = run["targets"][key]
            assert int(n) == t["n"] and close(rate, t["rate"], 3), (key, row)


@pytest.mark.parametrize("heading, run, part", [
    ("Stills, dev (", "dev", "stills"), ("Stills, held-out (", "heldout", "stills"),
    ("Video frames, dev (", "dev", "video"), ("Video frames, held-out (", "heldout", "video"),
    ("Stills, fresh (", "fresh", "stills"), ("Video frames, fresh (", "fresh", "video"),
    ("Video frames, fresh run 1 (", "fresh-run1", "video")])
def test_confusion_tables(heading, run, part):
    res = RUNS[run][part]
    m = re.search(re.escape(heading) + r"([\d,]+) (?:faces|frames)[^,]*, agreement ([\d.]+)\)",
                  PAGE)
    assert m, heading
    assert int(m.group(1).replace(",", "")) == res["n"]
    assert close(m.group(2), res["agreement"], 3)
    rows = table(heading)
    heads = rows[0][1:-1]
    body = {r[0]: r for r in rows[1:]}
    assert set(body) == set(res["confusion"])
    for truth, got in res["confusion"].items():
        row = body[truth]
        assert [int(v) for v in row[1:-1]] == [got.get(h, 0) for h in heads], truth
        assert close(row[-1], got.get(truth, 0) / sum(got.values()), 2)


def test_fresh_targets_table_and_prose():
    """The fresh part (stage 3, measured once): its targets table and the figures its
    prose quotes are fresh.json's, and every fresh medium is stage 3 on the fresh side."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks" / "validity"))
    from fetch import load_manifest

    rows = table("## Fresh faces")[1:]
    keys = ["clearly_expressive_stills", "video_frames", "smiles_happiness", "crying_sadness",
            "false_alarms_neutral_smiling"]
    fresh, run1 = RUNS["fresh"], RUNS["fresh-run1"]
    assert len(rows) == len(keys)
    for row, key in zip(rows, keys, strict=True):
        t, t1 = fresh["targets"][key], run1["targets"][key]
        assert int(row[1]) == t["n"] == t1["n"], (key, row)
        assert close(row[2], t1["rate"], 3) and close(row[3], t["rate"], 3), (key, row)
    # Run 1 is the same corpus with the rules before the one change the page describes.
    assert run1["corpus_sha256"] == fresh["corpus_sha256"]
    assert run1["rules_sha256"] != fresh["rules_sha256"]
    assert run1["stills"] == fresh["stills"]
    media = [m for m in load_manifest()["media"] if m["split"] == "fresh"]
    assert media and all(m.get("stage") == 3 for m in media)
    section = " ".join(PAGE[PAGE.index("## Fresh faces"):PAGE.index("## Held-out runs")].split())
    assert f"{len(media)} media of {len({m['group'] for m in media})} people or sources" in section
    ns = run1["neutral_spread"]
    assert ns == fresh["neutral_spread"]
    low = f"brows within +-0.3: {ns['within_0.3']['left_eyebrow']:.2f} left, " \
          f"{ns['within_0.3']['right_eyebrow']:.2f} right, crest {ns['within_0.3']['brow_crest']:.2f}"
    assert low in section
    ff = fresh["face_finding"]
    found = round(ff["recall"] * ff["group_faces"])
    assert f"{found} of {ff['group_faces']} ({ff['recall']:.3f}" in section


def test_neutral_strangers_table():
    rows = table("## Neutral strangers")[1:]
    assert [r[0] for r in rows] == list(COMPONENTS)
    for row in rows:
        c = row[0]
        for (within, p90), run in (((row[1], row[2]), RUNS["dev"]),
                                   ((row[3], row[4]), RUNS["heldout"])):
            ns = run["neutral_spread"]
            assert close(within, ns["within_0.3"][c], 2) and close(p90, ns["p90_abs"][c], 2)


def test_cross_scheme_table():
    rows = table("## Cross-scheme differences")
    assert rows[0][1:] == ["dev hand (1)", "dev 68-model (24)", "held-out hand (2)",
                           "held-out 68-model (19)"]
    cols = [(RUNS["dev"], "hand_annotated"), (RUNS["dev"], "model_68"),
            (RUNS["heldout"], "hand_annotated"), (RUNS["heldout"], "model_68")]
    for (run, kind), head in zip(cols, rows[0][1:], strict=True):
        assert int(re.search(r"\((\d+)\)", head)[1]) == run["cross_scheme"][kind]["n"]
    for row in rows[1:]:
        for cell, (run, kind) in zip(row[1:], cols, strict=True):
            assert close(cell, run["cross_scheme"][kind]["median"][row[0]], 2), row


def test_prose_figures():
    flat = " ".join(PAGE.split())
    d, h = RUNS["dev"], RUNS["heldout"]
    m = re.search(r"Share of components within 0.25: dev ([\d.]+) \(hand-annotated\) and "
                  r"([\d.]+) \(68 points from dlib's model\), held-out ([\d.]+) and ([\d]\.[\d]+)", flat)
    vals = [d["cross_scheme"]["hand_annotated"], d["cross_scheme"]["model_68"],
            h["cross_scheme"]["hand_annotated"], h["cross_scheme"]["model_68"]]
    assert m and all(close(s, v["within_0.25"], 2) for s, v in zip(m.groups(), vals,
                                                                    strict=True))
    ff = re.search(r"72 of 73 \(([\d.]+)\) dev and 48 of 49 \(([\d.]+)\) held-out", flat)
    assert ff and close(ff[1], d["face_finding"]["recall"], 3)
    assert close(ff[2], h["face_finding"]["recall"], 3)
    assert d["face_finding"]["group_faces"] == 73 and h["face_finding"]["group_faces"] == 49
    p = re.search(r"(\d+) of (\d+) \(dev\) and (\d+) of (\d+) \(held-out\) are beyond", flat)
    assert p and [int(v) for v in p.groups()] == [
        d["pose"]["flagged_pose"], d["pose"]["turned_or_profile"],
        h["pose"]["flagged_pose"], h["pose"]["turned_or_profile"]]


def test_held_out_runs_table():
    rows = table("## Held-out runs, in order")[1:]
    for row, name in zip(rows, ("heldout-run1", "heldout-run2", "heldout-run3", "heldout"),
                         strict=True):
        run = RUNS[name]
        assert f"`{name}.json`" in row[0]
        t = run["targets"]
        for cell, key in zip(row[2:6], ("clearly_expressive_stills", "video_frames",
                                        "smiles_happiness", "false_alarms_neutral_smiling"),
                             strict=True):
            assert close(cell, t[key]["rate"], 3), (name, key)
        assert close(row[6], min(run["neutral_spread"]["within_0.3"].values()), 3)


def test_reproduce_commands_exist():
    for path in re.findall(r"python ((?:benchmarks|docs)/[\w/]+\.py)", PAGE):
        assert (ROOT / path).is_file(), path
    assert (ROOT / "docs" / "img" / "validity-sheet.png").stat().st_size > 0
