"""docs/rules.md, sections 1 and 3-8: the page's examples run and its statements hold.

The worked example of section 3 (copy the rules, add ``sadness-1-4-17``, check, show, infer,
explain from Python) is replayed from the page's own code blocks and prose. Section 2 (lambda)
is checked by tests/test_rulebase_content.py::test_lambda_facts_stated_in_rules_md.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from docs_fixtures import markdown_tables
from typer.testing import CliRunner

import fuzzyemo
import fuzzyemo._lint as lint_module
from fuzzyemo import (
    COMPONENT_TERMS,
    COMPONENTS,
    INTENSITIES,
    RuleBase,
    RuleBaseError,
    parse_coding,
)
from fuzzyemo.cli import app

ROOT = Path(__file__).resolve().parents[1]
RULES_ROOT = ROOT / "rules"
RULES_DIR = RULES_ROOT / "paper"  # the content the page describes: the paper profile
TEXT = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
NEW_RULE = "sadness-1-4-17"  # the rule the walkthrough adds
runner = CliRunner()


def section(n: int) -> str:
    m = re.search(rf"^## {n}\. .*?(?=^## |\Z)", TEXT, re.M | re.S)
    assert m, f"docs/rules.md has no section {n}"
    return m.group(0)


def fences(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block in ``text``."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


def fence_after(text: str, marker: str, lang: str = "") -> str:
    start = text.index(marker)
    lang_found, body = fences(text[start:])[0]
    assert lang_found == lang, (marker, lang_found)
    return body


def printed_and_promised(code: str) -> tuple[list[str], list[str]]:
    """Run a Python block of the page: the lines it prints, and the lines its comments say
    it prints (a ``# line`` of its own, or the comment after a ``print(...)``)."""
    expected = []
    for line in code.splitlines():
        if line.startswith("# "):
            expected.append(line[2:])
        elif line.startswith("print(") and "#" in line:
            expected.append(line.split("#", 1)[1].strip())
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "docs/rules.md", "exec"), {"__name__": "__docs__"})
    return buf.getvalue().splitlines(), expected


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def rb() -> RuleBase:
    return RuleBase.load(RULES_DIR)


@pytest.fixture(scope="module")
def engine(rb):
    return rb.compile()


def is_table_ii(rule) -> bool:
    return rule.source.startswith("Table II, ")


# ------------------------------------------------------------------ section 1
def test_file_tree_lists_every_rule_file():
    tree = fences(section(1))[0][1]
    lines = tree.splitlines()
    assert lines[0] == "rules/"
    listed: set[Path] = set()
    for line in lines[1:]:
        pattern = line.split()[0]
        found = sorted(RULES_ROOT.glob(pattern.rstrip("/")))
        assert found, f"docs/rules.md lists rules/{pattern}, which matches no file"
        listed.update(p for p in found if p.is_file())
    shipped = {p for p in RULES_ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert listed == shipped, sorted(str(p.relative_to(RULES_ROOT)) for p in shipped ^ listed)
    # The profiles the tree names are the shipped ones.
    named = [ln.split()[0].rstrip("/") for ln in lines[1:] if ln.split()[0].endswith("/")]
    assert sorted(named) == list(fuzzyemo.profiles())
    # "Every file starts with a comment block that explains its keys".
    for p in shipped:
        assert p.read_text(encoding="utf-8").startswith("# "), p


def test_component_table_matches_vocabulary_and_fcis(rb):
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (.+?) \|$", section(1), re.M)
    assert [int(n) for n, _, _ in rows] == list(range(1, 13))
    table = {name: {int(code): term for term, code in re.findall(r"(\w+) \((-?\d)\)", terms)}
             for _, name, terms in rows}
    assert list(table) == list(COMPONENTS)
    assert table == COMPONENT_TERMS
    assert {c.name: {t.code: t.name for t in c.terms} for c in rb.components} == table


def test_rule_example_is_the_shipped_rule(rb):
    (spec,) = yaml.safe_load(fence_after(section(1), "**Rules.**", "yaml"))
    rule = next(r for r in rb.rules if r.id == spec["id"])
    want = {c: next(k for k, t in COMPONENT_TERMS[c].items() if t == term)
            for c, term in spec["when"].items()}
    assert dict(rule.conditions) == want
    assert (rule.then, rule.weight) == (spec["then"], spec["weight"])
    # The page shortens source and note with "...".
    assert rule.source.startswith(spec["source"].split("...")[0].rstrip())
    assert rule.note.startswith(spec["note"].split("...")[0].rstrip())


def test_three_ways_to_write_an_antecedent_are_the_same(rules_copy):
    block = fence_after(section(1), "These three rules are the same", "yaml")
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    assert [ln.split(":")[0] for ln in lines] == ["when", "if", "coding"]
    # "codes work too: mouth: -1"
    lines.append("when: {brow_crest: frowning, mouth: -1}")
    path = rules_copy / "fkis" / "anger.yaml"
    text = path.read_text(encoding="utf-8")
    for i, line in enumerate(lines):
        text += f'  - id: anger-doc-{i}\n    {line}\n    then: low\n    source: "docs"\n'
    path.write_text(text, encoding="utf-8")
    rules = [r for r in RuleBase.load(rules_copy).rules if r.id.startswith("anger-doc-")]
    assert len(rules) == len(lines)
    assert {r.conditions for r in rules} == {(("brow_crest", 1), ("mouth", -1))}
    assert {r.weight for r in rules} == {1.0}  # "weight ... default 1"
    # "each symbol is -1 or (-1), 0, 1, or * for don't care"
    assert parse_coding("**1****-1****") == parse_coding("**1****(-1)****")


# ------------------------------------------------------------------ section 3: the walkthrough
@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    """A working directory after steps 1 and 4: my-rules with the new rule, and face.csv."""
    s3 = section(3)
    root = tmp_path_factory.mktemp("walk")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert "`fuzzyemo rules init my-rules --profile paper`" in s3
        result = run("rules", "init", "my-rules", "--profile", "paper")
        assert result.exit_code == 0, result.output
        path = Path("my-rules/fkis/sadness.yaml")
        assert f"Append to `{path.as_posix()}`" in s3
        path.write_text(path.read_text(encoding="utf-8") + fence_after(s3, "Append to", "yaml"),
                        encoding="utf-8")
        Path("face.csv").write_text(fence_after(s3, "**4. Try it on a face.**", "csv"),
                                    encoding="utf-8")
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture(scope="module")
def mine(walk) -> RuleBase:
    return RuleBase.load(walk / "my-rules")


def test_step_1_rule_is_new_and_tells_its_neighbours_apart(mine, rb):
    new = next(r for r in mine.rules if r.id == NEW_RULE)
    assert NEW_RULE not in {r.id for r in rb.rules}
    assert new.conditions not in {r.conditions for r in rb.rules}
    # "corners normal: with AU15 it is `sadness-1-4-15-17`"
    neighbour = re.search(r"corners normal: with AU15 it is `([\w-]+)`", section(3)).group(1)
    with_au15 = dict(new.conditions) | {"left_mouth_corner": -1, "right_mouth_corner": -1}
    assert dict(next(r for r in rb.rules if r.id == neighbour).conditions) == with_au15
    # Step 6: the conventions hold for it, at its own prototype point.
    engine = mine.compile()
    x = np.zeros((1, 12))
    for c, v in new.conditions:
        x[0, COMPONENTS.index(c)] = v
    res = engine.evaluate(x, strengths=True)
    assert res.labels[0] == f"{new.emotion}_{new.then}"
    fired = [r for r, s in zip(mine.rules, res.strengths[0], strict=True)
             if s > 0 and r.emotion == new.emotion and r.then != new.then]
    assert not fired, [r.id for r in fired]


def test_step_2_rules_check(walk, monkeypatch):
    monkeypatch.chdir(walk)
    s3 = section(3)
    result = run("rules", "check", "my-rules")
    assert result.exit_code == 0, result.output
    table_row, summary = fence_after(s3, "It prints the rule counts").splitlines()
    assert table_row in result.output.splitlines()
    assert summary.endswith(" ...")
    assert summary[:-4] in result.output
    assert "(--verbose lists them)" in result.output and "[shadowed]" not in result.output
    # "`--region mouth=-0.5:1` (repeatable) restricts the measurements"
    region = re.search(r"`--region (\S+)` \(repeatable\)", flat(s3)).group(1)
    narrowed = run("rules", "check", "my-rules", "--region", region, "--region",
                   "nose=0:0.2")
    assert narrowed.exit_code == 0, narrowed.output
    assert "region: nose [0, 0.2], mouth [-0.5, 1]" in narrowed.output  # component order
    assert "[unreachable-rule]" in narrowed.output  # the nose rules cannot wrinkle enough
    # The verbose run only adds notes (found at the rules' prototypes): sample little.
    monkeypatch.setattr(lint_module, "crisp_grid", lambda: np.zeros((1, len(COMPONENTS))))
    monkeypatch.setattr(lint_module, "lint", functools.partial(lint_module.lint, samples=100))
    verbose = run("rules", "check", "my-rules", "--verbose").output
    # Section 5: "`fuzzyemo rules check --verbose` lists shadowed rules as notes."
    assert "'happiness-6-12'" in verbose and "[shadowed]" in verbose


def test_step_2_typo_message(walk, tmp_path, monkeypatch):
    m = re.search(r"a typo such as\s+`(\w+): (\w+)` is reported as\s+`(my-rules/\S+):LINE:COL: "
                  r"([^`]+)`", section(3))
    assert m, "section 3 states the typo message"
    comp, typo, shown, message = m.group(1), m.group(2), m.group(3), flat(m.group(4))
    shutil.copytree(walk / "my-rules", tmp_path / "my-rules")
    path = tmp_path / shown
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    good = f"{comp}: thick,"
    line_no = max(i for i, ln in enumerate(lines) if good in ln)  # the new rule's line
    col = lines[line_no].index(good) + 1  # the position of the condition's key
    lines[line_no] = lines[line_no].replace(good, f"{comp}: {typo},")
    path.write_text("".join(lines), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = run("rules", "check", "my-rules")
    assert result.exit_code == 2
    assert f"error: {shown}:{line_no + 1}:{col}: {message}" in result.output.splitlines()


def test_step_3_rules_show(walk, monkeypatch):
    monkeypatch.chdir(walk)
    s3 = section(3)
    assert "`fuzzyemo rules show my-rules --emotion sadness`" in s3
    result = run("rules", "show", "my-rules", "--emotion", "sadness")
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    head, sentence = fence_after(s3, "**3. Read it back.**").splitlines()
    assert head in out
    start, end = sentence.split(" ... ")
    assert out[out.index(head) + 1].startswith(start)
    assert out[out.index(head) + 1].endswith(end)


def test_step_4_infer_before_and_after(walk, mine, rb, monkeypatch):
    monkeypatch.chdir(walk)
    s3 = flat(section(3))
    m = re.search(r"`fuzzyemo infer face\.csv -o before\.csv --rules paper` \(the shipped profile\) "
                  r"labels it `(\w+)`: "
                  r"no shipped rule covers this face \(the one-brow `([\w-]+)` fires at ([\d.]+), "
                  r"below `min_activation`\)", s3)
    assert m, "section 3 states the label before"
    before_label, weak_rule, weak_strength = m.group(1), m.group(2), float(m.group(3))
    m = re.search(r"`fuzzyemo infer face\.csv -o after\.csv --rules my-rules` labels it `(\w+)` "
                  r"\(activation ([\d.]+) = weight ([\d.]+) x the weakest condition, (\w+) (\w+) "
                  r"at x = ([\d.]+) -> ([\d.]+); eccentricity ([\d.]+)\)", s3)
    assert m, "section 3 states the label after"
    after_label, act, weight, comp, term = m.group(1), *map(float, m.group(2, 3)), *m.group(4, 5)
    x_at, mu, ecc = map(float, m.group(6, 7, 8))

    assert run("infer", "face.csv", "-o", "before.csv", "--rules", "paper").exit_code == 0
    assert run("infer", "face.csv", "-o", "after.csv", "--rules", "my-rules").exit_code == 0
    before, after = pd.read_csv("before.csv"), pd.read_csv("after.csv")
    assert before.loc[0, "label"] == before_label
    assert after.loc[0, "label"] == after_label
    emotion = after_label.split("_")[0]
    assert after.loc[0, f"activation_{emotion}"] == pytest.approx(act, abs=5e-4)
    assert after.loc[0, f"eccentricity_{emotion}"] == pytest.approx(ecc, abs=5e-4)
    assert after.loc[0, comp] == x_at

    # The arithmetic: weight x the weakest condition, and that condition's membership.
    (why,) = mine.compile().explain(after.loc[0, list(COMPONENTS)].to_numpy(float), top=1)
    assert (why["rule"], why["weight"]) == (NEW_RULE, weight)
    weakest = min(why["conditions"], key=lambda c: c["membership"])
    assert (weakest["component"], weakest["term"]) == (comp, term)
    assert weakest["membership"] == pytest.approx(mu, abs=5e-3)
    assert why["strength"] == pytest.approx(weight * weakest["membership"], abs=1e-6)

    # Before: the strongest shipped rule is the one-brow rule, below min_activation.
    (top,) = rb.compile().explain(before.loc[0, list(COMPONENTS)].to_numpy(float), top=1)
    assert top["rule"] == weak_rule
    assert top["strength"] == pytest.approx(weak_strength, abs=5e-4)
    assert top["strength"] < rb.options.min_activation


def test_step_5_explain_cli_and_python_block(walk, monkeypatch):
    monkeypatch.chdir(walk)
    s3 = section(3)
    assert "`fuzzyemo explain face.csv --rules my-rules`" in s3
    result = run("explain", "face.csv", "--rules", "my-rules")
    assert result.exit_code == 0, result.output
    assert "row 1: label sadness_medium" in result.output

    code = fence_after(s3, "**5. See why.**", "python")
    got, expected = printed_and_promised(code)
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        if e.endswith(", ...]"):
            assert g.startswith(e[: -len("...]")]), (g, e)
        else:
            assert g == e


# ------------------------------------------------------------------ sections 4 and 5
def test_rule_ids_named_on_the_page_exist(rb):
    ids = {r.id for r in rb.rules}
    before_facs = TEXT[:TEXT.index("## 10. The facs profile")]
    named = set(re.findall(r"`((?:happiness|anger|sadness|disgust|fear|surprise)-[\w.-]+)`",
                           before_facs))
    assert len(named) > 15
    for name in named - {NEW_RULE}:
        if name.endswith("-..."):
            assert any(i.startswith(name[:-3]) for i in ids), name
        else:
            assert name in ids, name


def _aus(rule) -> set[str]:
    return set(re.findall(r"(?<=-)[lr]?\d+", rule.id))


def test_section_4_readings(rb):
    s4 = flat(section(4))
    assert "`brow_crest: frowning` with `left/right_eyebrow: normal`" in s4
    assert "`brow_crest: frowning` with the eyebrows `raised`; anger's AU4 has them `low`" in s4
    facs = [r for r in rb.rules if not is_table_ii(r)]
    brows = {}
    for r in facs:
        aus, d = _aus(r), dict(r.conditions)
        if {"1", "4"} <= aus:
            brows[r.id] = (d.get("brow_crest"), d.get("left_eyebrow"), d.get("right_eyebrow"))
            want = 1 if "2" in aus else 0  # AU1+AU4: grief brows; fear's AU1+2+4: raised
            assert brows[r.id] == (1, want, want), r.id
        elif r.emotion == "anger" and "4" in aus:
            assert (d.get("brow_crest"), d.get("left_eyebrow"), d.get("right_eyebrow")) \
                == (1, -1, -1), r.id
    assert len(brows) > 20
    # AU5+AU7: anger has both forms of every prototype.
    ids = {r.id: r for r in facs}
    wide = [i for i in ids if i.startswith("anger-4-5")]
    assert wide
    for i in wide:
        twin = ids.get(i.replace("anger-4-5", "anger-4-7", 1))
        assert twin is not None, i
        swapped = dict(ids[i].conditions) | {"left_eye": -1, "right_eye": -1}
        assert dict(twin.conditions) == swapped, i
    # AU20's platysma part: the fear rules ending in -15 have the mouth corners low.
    terror = [r for r in facs if r.emotion == "fear" and r.id.endswith("-15")]
    assert terror
    for r in terror:
        d = dict(r.conditions)
        assert (d.get("left_mouth_corner"), d.get("right_mouth_corner")) == (-1, -1), r.id


def test_section_5_levels_name_their_distinguishing_components(rb):
    groups = {"eyes": ("left_eye", "right_eye"), "lips": ("upper_lip", "lower_lip"),
              "corners": ("left_mouth_corner", "right_mouth_corner"), "mouth": ("mouth",),
              "nose": ("nose",), "nostril": ("nostril",)}
    s5 = flat(section(5))
    found = re.findall(r"`(anger-[\d-]+)` \((low|medium|high)\) names ([^;.]+)", s5)
    assert [f[0] for f in found] == ["anger-4", "anger-4-7", "anger-4-7-24"]
    by_id = {r.id: r for r in rb.rules}
    for rule_id, level, phrase in found:
        rule = by_id[rule_id]
        assert rule.then == level
        stated: dict[str, int] = {}
        term = None
        for item in reversed(re.split(r", | and ", phrase.strip())):
            word, *rest = item.split()
            term = rest[0] if rest else term
            for c in groups[word]:
                stated[c] = next(k for k, t in COMPONENT_TERMS[c].items() if t == term)
        cond = dict(rule.conditions)
        assert {c: cond.get(c) for c in stated} == stated, rule_id
        named_normal = {c for c, v in cond.items() if v == 0}
        assert named_normal == {c for c, v in stated.items() if v == 0}, rule_id


def test_section_5_weights(rb):
    s5 = flat(section(5))
    weights = {float(w) for w in re.findall(r"(\d\.\d)", s5[s5.index("**Weights.**"):
                                                          s5.index("**Levels of one")])}
    assert {r.weight for r in rb.rules} <= weights
    m = re.search(r"\(one mouth corner, one brow\) are one level below the two-sided form, with "
                  r"weight (\d\.\d)-(\d\.\d)", s5)
    lo, hi = float(m.group(1)), float(m.group(2))
    by_id = {r.id: r for r in rb.rules}
    unilateral = [r for r in rb.rules if re.search(r"-[lr]\d", r.id)]
    assert len(unilateral) > 10
    for r in unilateral:
        assert lo <= r.weight <= hi, r.id
        two_sided = by_id.get(re.sub(r"-[lr](\d)", r"-\1", r.id))
        if two_sided is not None:
            want = max(0, INTENSITIES.index(two_sided.then) - 1)
            assert INTENSITIES.index(r.then) == want, (r.id, two_sided.id)
    m = re.search(r"`(anger-4)` \(a lone brow lowerer\).*?hence weight ([\d.]+)", s5)
    assert by_id[m.group(1)].weight == float(m.group(2))


def test_section_5_shadowed_rules(rb):
    m = re.search(r"The shipped base has one such rule, `([\w-]+)` \([^)]*\), shadowed by "
                  r"`([\w-]+)`", flat(section(5)))
    assert m
    notes = {r.id: re.search(r"shadowed by (\S+?)[:;,.]?(?:\s|$)", r.note)
             for r in rb.rules}
    shadowed = {i: n.group(1) for i, n in notes.items() if n}
    assert shadowed == {m.group(1): m.group(2)}


def test_section_5_compounds_are_filed_as_stated(rb):
    s5 = flat(section(5))
    para = s5[s5.index("**Compounds**"):s5.index("**Unilateral forms**")]
    filed = dict(re.findall(r'"([a-z ]+)"(?: is| \([a-z-]+\))? (happiness|anger|sadness|'
                            r'disgust|fear|surprise)\b', para))
    assert len(filed) == 6, filed
    m = re.search(r"fearfully surprised \([\d+]+\) is the one exception: it is filed under (\w+)",
                  para)
    filed["fearfully surprised"] = m.group(1)
    for name, emotion in filed.items():
        citing = {r.emotion for r in rb.rules if f"'{name}'" in r.source}
        assert citing == {emotion}, (name, citing)


# ------------------------------------------------------------------ section 6
def test_section_6_table_ii_oddities(rb, engine):
    s6 = flat(section(6))
    t2 = {r.source.removeprefix("Table II, "): r for r in rb.rules if is_table_ii(r)}
    assert len(t2) == 12
    assert all("*" not in r.coding for r in t2.values())  # section 1: no '*' in Table II rows
    quoted = re.findall(r"\*\*([A-Z][a-z]+-(?:Low|Medium|High)), `([^`]+)`", s6)
    assert len(quoted) == 4
    for row, coding in quoted:
        assert t2[row].coding == coding, row
    assert dict(t2["Angry-Low"].conditions)["nostril"] == 1  # "Angry-Low also has dilated nostrils"

    facs = [r for r in rb.rules if not is_table_ii(r)]
    for r in facs:
        d = dict(r.conditions)
        corners = {d.get("left_mouth_corner"), d.get("right_mouth_corner")}
        if r.emotion == "happiness":  # "all of them need raised corners (AU12)"
            assert 1 in corners and -1 not in corners, r.id
        if r.emotion == "anger":  # "No FACS anger rule has raised corners"
            assert 1 not in corners, r.id
    # "At that point the Table II row (weight 1) beats `happiness-6-12` (0.9)" and the levels.
    by_id = {r.id: r for r in rb.rules}
    m = re.search(r"beats `([\w-]+)` \(([\d.]+)\)", s6)
    assert by_id[m.group(1)].weight == float(m.group(2))
    for rule_id, level in re.findall(r"\(`(happiness-[\w-]+)`, (low|medium|high)\)", s6):
        assert by_id[rule_id].then == level
    # "our AU9/AU10 disgust rules never fire on them" (the Disgust rows).
    au9_10 = [i for i, r in enumerate(rb.rules) if r.emotion == "disgust" and not is_table_ii(r)
              and {("nose", 1), ("upper_lip", 1)} & set(r.conditions)]
    assert au9_10
    rows = [r for name, r in t2.items() if name.startswith("Disgust-")]
    x = np.array([parse_coding(r.coding) for r in rows], dtype=float)
    assert not engine.evaluate(x, strengths=True).strengths[:, au9_10].any()
    # Scaled-down codings keep their class.
    m = re.search(r"scaled down to (\d+)% or (\d+)% of its code", s6)
    x = np.array([parse_coding(r.coding) for r in t2.values()], dtype=float)
    want = [f"{r.emotion}_{r.then}" for r in t2.values()]
    for pct in map(int, m.groups()):
        assert list(engine.evaluate(x * pct / 100).labels) == want, pct


# ------------------------------------------------------------------ sections 7 and 8
def test_section_7_rule_counts(rb):
    s7 = section(7)
    total = int(re.search(r"The shipped base has (\d+) rules", s7).group(1))
    assert len(rb.rules) == total
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", s7, re.M)
    assert {r[0] for r in rows} == {e.name for e in rb.emotions}
    for name, low, medium, high, tot, t2 in rows:
        rules = next(e for e in rb.emotions if e.name == name).rules
        counts = [sum(r.then == k for r in rules) for k in INTENSITIES]
        assert counts + [len(rules), sum(map(is_table_ii, rules))] \
            == [int(v) for v in (low, medium, high, tot, t2)], name
    assert sum(int(r[4]) for r in rows) == total


def test_section_7_states_the_content_tests_thresholds():
    m = re.search(r"The tests require at least (\d+) anger rules, (\d+) disgust rules and (\d+) "
                  r"for every emotion", flat(section(7)))
    spec = importlib.util.spec_from_file_location(
        "_rulebase_content_for_docs", ROOT / "tests" / "test_rulebase_content.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (mod.MIN_RULES["anger"], mod.MIN_RULES["disgust"], mod.MIN_RULES_ANY) \
        == tuple(map(int, m.groups()))


def test_section_8_every_short_form_is_cited(rb):
    forms = re.findall(r"^- \*\*(.+?)\*\*:", section(8), re.M)
    assert len(forms) >= 10
    cited = " ".join(r.source + " " + r.note for r in rb.rules)
    for form in forms:
        assert form in cited, form


# ------------------------------------------------------------------ section 9: hedges
def test_section_9_hedge_table_is_fuzzylites():
    from fuzzyemo._hedges import HEDGES, hedge_value

    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| .+? \|$", section(9), re.M)
    # The page's formulas, as Python (m is the membership).
    formulas = {
        "m^2": lambda m: m * m,
        "2 m^2 if m <= 0.5, else 1 - 2 (1 - m)^2":
            lambda m: 2 * m * m if m <= 0.5 else 1 - 2 * (1 - m) ** 2,
        "sqrt(m)": lambda m: m ** 0.5,
        "sqrt(0.5 m) if m <= 0.5, else 1 - sqrt(0.5 (1 - m))":
            lambda m: (0.5 * m) ** 0.5 if m <= 0.5 else 1 - (0.5 * (1 - m)) ** 0.5,
        "1 - m": lambda m: 1 - m,
        "1": lambda m: 1.0,
    }
    assert sorted(name for name, _ in rows) == sorted(HEDGES)
    for name, formula in rows:
        for m in np.linspace(0, 1, 41):
            assert hedge_value([name], m) == pytest.approx(formulas[formula](m), abs=1e-15)
    # "not very raised is not(very(raised))": right to left.
    assert hedge_value(["not", "very"], 0.5) == 0.75
    assert hedge_value(["very", "not"], 0.2) == pytest.approx(0.64)


def test_section_9_syntax_block_and_messages(rules_copy):
    block = fence_after(section(9), "in `if:`, where a component may appear more than once", "yaml")
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    assert [ln.split(":")[0] for ln in lines] == ["when", "if"]
    path = rules_copy / "fkis" / "anger.yaml"
    text = path.read_text(encoding="utf-8")
    for i, line in enumerate(lines):
        text += f'  - id: anger-hedge-{i}\n    {line}\n    then: low\n    source: "docs"\n'
    path.write_text(text, encoding="utf-8")
    rules = {r.id: r for r in RuleBase.load(rules_copy).rules if r.id.startswith("anger-hedge-")}
    assert [tuple(c) for c in rules["anger-hedge-0"].terms] == [
        ("mouth", 1, ("not",)), ("left_mouth_corner", 1, ()),
        ("left_mouth_corner", 1, ("not", "very"))]
    assert [tuple(c) for c in rules["anger-hedge-1"].terms] == [
        ("mouth", 1, ("very",)), ("mouth", 1, ("not", "extremely"))]
    # "mouth: very 1 is an error, mouth: 1 is fine"; the misspelt hedge's message.
    s9 = flat(section(9))
    m = re.search(r"\(`(unknown hedge '(\w+)' in '(\w+) is \w+ (\w+)' \(hint: [^`]+\))`\)", s9)
    assert m
    message, typo, comp, term = m.groups()
    for key, value, want in ((comp, f"{typo} {term}", message),
                             ("mouth", "very 1", "hedges apply to term names, not codes"),
                             ("mouth", "[open, open]", "duplicate condition 'mouth is open'")):
        path.write_text(text + f'  - id: anger-bad\n    when: {{{key}: {value}}}\n'
                        '    then: low\n    source: "docs"\n', encoding="utf-8")
        with pytest.raises(RuleBaseError) as info:
            RuleBase.load(rules_copy)
        (problem,) = info.value.problems
        assert re.search(r"anger\.yaml:\d+:\d+: ", str(problem)) and want in str(problem)


def test_section_9_worked_example(tmp_path, monkeypatch):
    s9 = section(9)
    monkeypatch.chdir(tmp_path)
    assert "`fuzzyemo rules init smiles --profile paper`" in s9
    assert run("rules", "init", "smiles", "--profile", "paper").exit_code == 0
    path = Path("smiles/fkis/happiness.yaml")
    assert f"in\n`{path.as_posix()}`, replace the list after `rules:`" in s9
    text = path.read_text(encoding="utf-8")
    block = fence_after(s9, "replace the list after `rules:`", "yaml")
    path.write_text(text[:text.index("\nrules:") + 1] + block, encoding="utf-8")
    rb = RuleBase.load("smiles")
    assert [r.id for r in rb.rules if r.emotion == "happiness"] == [
        "happiness-smile-slight", "happiness-smile-broad"]
    # The page's table, recomputed: r, 1 - r^2, the two strengths and the label.
    assert rb.component_mf("left_mouth_corner", 1).params == (0.15, 0.6, 1.0, 1.0)
    rows = re.findall(r"^\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| "
                      r"`(\w+)` \|$", s9, re.M)
    assert len(rows) == 3
    x = np.zeros((3, len(COMPONENTS)))
    corners = [COMPONENTS.index("left_mouth_corner"), COMPONENTS.index("right_mouth_corner")]
    x[:, corners] = [[float(r[0])] for r in rows]
    for precision in ("single", "double"):
        res = rb.compile(precision=precision).evaluate(x, strengths=True, memberships=True)
        for i, (_, r, not_very, slight, broad, label) in enumerate(rows):
            mu = res.memberships[i, corners[0], 2]
            assert mu == pytest.approx(float(r), abs=5e-4)
            assert 1 - mu * mu == pytest.approx(float(not_very), abs=5e-4)
            ids = [r.id for r in rb.rules]
            got = [res.strengths[i, ids.index(k)] for k in ("happiness-smile-slight",
                                                            "happiness-smile-broad")]
            assert got == pytest.approx([float(slight), float(broad)], abs=5e-4)
            assert res.labels[i] == label
    # The Python block prints what its comments say.
    code = fence_after(s9, "The same from Python:", "python")
    got, expected = printed_and_promised(code)
    assert got == expected


# ------------------------------------------------------------------ section 2
def test_section_2_edit_example(rules_copy):
    s2 = section(2)
    block = fence_after(s2, "**To change one,**", "yaml")
    new = re.search(r"raised:\s+(\{.*?\})", block).group(1)
    old = re.search(r"# was (\[.*?\])", block).group(1)
    path = rules_copy / "fcis.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  left_eyebrow:")
    line = next(ln for ln in text[start:].splitlines() if ln.strip().startswith("raised:"))
    assert old in line  # "was": the shipped parameters
    path.write_text(text[:start] + text[start:].replace(line, f"      raised:   {new}", 1),
                    encoding="utf-8")
    rb = RuleBase.load(rules_copy)
    mf = rb.component_mf("left_eyebrow", 1)
    assert mf.params == tuple(yaml.safe_load(new)["params"])
    assert float(mf(0.5)) == 1.0 and float(RuleBase.load("paper").component_mf(
        "left_eyebrow", 1)(0.5)) < 1.0
    m = re.search(r"then run `fuzzyemo rules check (\S+)`", s2)
    assert run("rules", "check", ROOT / m.group(1)).exit_code == 0


# ------------------------------------------------------------------ section 10 (facs)
def test_section_10_prototype_table_is_the_facs_profile():
    facs = RuleBase.default("facs")
    rows = next(t for t in markdown_tables(section(10)) if t[0][0] == "rule")[1:]
    base: dict[str, list] = {}
    for rule in facs.rules:
        base.setdefault(rule.id.split("/")[0], []).append(rule)
    assert [r[0].strip("`") for r in rows] == list(base)
    for row in rows:
        rules = base[row[0].strip("`")]
        assert float(row[3]) == rules[0].weight, row[0]
        graded = "/" in rules[0].id
        assert row[1].startswith("(not graded:") != graded, row[0]
        assert len(rules) == (3 if graded else 1)


def test_section_10_grading_block_and_table():
    facs = RuleBase.default("facs")
    block = re.search(r"```yaml\ngrading:\n(.*?)```", section(10), re.S).group(1)
    engine_yaml = (Path(facs.source) / "engine.yaml").read_text()
    for line in block.strip().splitlines():
        assert line.split("#")[0].rstrip() in engine_yaml, line
    engine = facs.compile(precision="double")
    rows = next(t for t in markdown_tables(section(10)) if t[0][0] == "corners x")[1:]
    assert [float(r[0]) for r in rows] == [0.3, 0.6, 1.0]
    corners = [COMPONENTS.index("left_mouth_corner"), COMPONENTS.index("right_mouth_corner")]
    for row in rows:
        x = np.zeros(12)
        x[corners] = float(row[0])
        res = engine.evaluate(x[None])
        st = {r["rule"]: r["strength"] for r in engine.explain(x, top=len(engine.rule_ids))}
        for cell, level in zip(row[1:4], ("low", "medium", "high"), strict=True):
            assert float(cell) == pytest.approx(st[f"happiness-12/{level}"], abs=5e-4), row
        assert float(row[4]) == pytest.approx(res.eccentricity[0, 0], abs=5e-4)
        assert row[5] == f"`{res.labels[0]}`"
    assert f"`min_activation` is {facs.options.min_activation:g}" in flat(section(10))
