"""Loading and validation: every mistake is reported as path:line:col with a hint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fuzzyemo
from fuzzyemo import RuleBase, RuleBaseError, parse_coding

ANGER_RULE = """  - id: anger-test
    {key}: {value}
    then: {then}
    weight: {weight}
    source: "test"
"""


def add_rule(rules: Path, key: str, value: str, then: str = "low", weight: str = "0.5") -> int:
    """Append a rule to anger.yaml; return the 1-based line of its antecedent."""
    path = rules / "fkis" / "anger.yaml"
    text = path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    line = text.count("\n") + 2
    path.write_text(text + ANGER_RULE.format(key=key, value=value, then=then, weight=weight))
    return line


def problems(rules: Path) -> list[str]:
    with pytest.raises(RuleBaseError) as info:
        RuleBase.load(rules)
    return [str(p) for p in info.value.problems]


def test_shipped_rules_load():
    rb = RuleBase.default()
    assert [c.name for c in rb.components][:3] == ["left_eyebrow", "right_eyebrow", "brow_crest"]
    assert [e.name for e in rb.emotions] == ["happiness", "anger", "sadness", "disgust", "fear",
                                             "surprise"]
    assert len(rb.sha256) == 64


def test_profiles_by_name_path_and_environment(tmp_path, monkeypatch):
    """SPEC 'Rule profiles': shipped names, paths, $FUZZYEMO_RULES, a directory wins."""
    monkeypatch.delenv("FUZZYEMO_RULES", raising=False)
    assert fuzzyemo.profiles() == ("facs", "paper")
    root = fuzzyemo.profile_dir("paper").parent
    assert {p.name for p in root.iterdir()} >= {"facs", "paper", "calibration.yaml", "landmarks"}
    assert RuleBase.default().profile == "facs" == fuzzyemo._rulebase.DEFAULT_PROFILE
    assert fuzzyemo.default_rules_dir() == fuzzyemo.profile_dir("facs")
    paper = RuleBase.default("paper")
    assert paper.profile == "paper" and paper.source == str(fuzzyemo.profile_dir("paper"))
    # A path to a shipped profile is that profile; a copy is the user's own directory.
    assert RuleBase.load(fuzzyemo.profile_dir("paper")).profile == "paper"
    copy = fuzzyemo._rulebase.copy_profile("paper", tmp_path / "mine")
    mine = RuleBase.load(copy)
    assert mine.profile is None and mine.sha256 == paper.sha256
    # A relative directory named like a profile wins over the profile.
    monkeypatch.chdir(tmp_path)
    fuzzyemo._rulebase.copy_profile("facs", tmp_path / "paper")
    assert RuleBase.load("paper").profile is None
    assert RuleBase.load("paper").sha256 == RuleBase.load("facs").sha256
    monkeypatch.chdir(root)
    # $FUZZYEMO_RULES: a name or a path.
    monkeypatch.setenv("FUZZYEMO_RULES", "paper")
    assert RuleBase.default().profile == "paper" and RuleBase.load().profile == "paper"
    assert RuleBase.default("facs").profile == "facs"  # an explicit name wins
    monkeypatch.setenv("FUZZYEMO_RULES", str(copy))
    assert RuleBase.default().source == str(copy)
    # Unknown: one problem naming the profiles, with a did-you-mean.
    for bad, words in (("papr", ["no rule profile or directory 'papr'", "did you mean 'paper'",
                                 "shipped profiles: facs, paper"]),
                       (str(tmp_path / "nope"), ["rule directory not found", "facs, paper"])):
        with pytest.raises(RuleBaseError) as info:
            RuleBase.load(bad)
        (problem,) = info.value.problems
        assert all(w in str(problem) for w in words), str(problem)


def test_unknown_component_has_position_and_hint(rules_copy):
    line = add_rule(rules_copy, "when", "{brow_crst: frowning}")
    (msg,) = problems(rules_copy)
    assert re.match(rf".*anger\.yaml:{line}:\d+: unknown component 'brow_crst'", msg)
    assert "did you mean 'brow_crest'" in msg


def test_unknown_term_hint(rules_copy):
    line = add_rule(rules_copy, "when", "{brow_crest: frowing}")
    (msg,) = problems(rules_copy)
    assert f"anger.yaml:{line}:" in msg and "brow_crest has no term 'frowing'" in msg
    assert "did you mean 'frowning'" in msg


def test_code_outside_domain(rules_copy):
    add_rule(rules_copy, "when", "{nose: -1}")
    (msg,) = problems(rules_copy)
    assert "code -1 is outside nose's domain [0, 1]" in msg


def test_eleven_symbol_coding(rules_copy):
    line = add_rule(rules_copy, "coding", '"0010010(-1)(-1)(-1)(-1)"')
    (msg,) = problems(rules_copy)
    assert f"anger.yaml:{line}:" in msg and "this one has 11" in msg


def test_weight_out_of_range(rules_copy):
    add_rule(rules_copy, "when", "{brow_crest: frowning}", weight="1.5")
    (msg,) = problems(rules_copy)
    assert "weight" in msg and "less than or equal to 1" in msg


def test_bad_then_level_hint(rules_copy):
    add_rule(rules_copy, "when", "{brow_crest: frowning}", then="hihg")
    (msg,) = problems(rules_copy)
    assert "did you mean 'high'" in msg


def test_sentence_rule(rules_copy):
    add_rule(rules_copy, "if", '"brow_crest is frowning and mouth is pressed"')
    rb = RuleBase.load(rules_copy)
    rule = next(r for r in rb.rules if r.id == "anger-test")
    assert rule.conditions == (("brow_crest", 1), ("mouth", -1))
    assert rule.coding == "**1****(-1)****"


def test_bad_sentence(rules_copy):
    add_rule(rules_copy, "if", '"brow_crest frowning"')
    (msg,) = problems(rules_copy)
    assert "cannot read 'brow_crest frowning'" in msg


def test_duplicate_rule_id(rules_copy):
    path = rules_copy / "fkis" / "anger.yaml"
    first_id = next(r.id for r in RuleBase.load(rules_copy).rules if r.emotion == "anger")
    add_rule(rules_copy, "when", "{brow_crest: frowning}")
    path.write_text(path.read_text().replace("id: anger-test", f"id: {first_id}"))
    (msg,) = problems(rules_copy)
    assert f"duplicate rule id {first_id!r}" in msg and "first defined at" in msg


def test_mf_params_out_of_order(rules_copy):
    path = rules_copy / "fcis.yaml"
    text = path.read_text()
    path.write_text(text.replace("params: [-0.5, -0.15, 0.15, 0.5]", "params: [0.4, 0, 0.1, 0.5]", 1))
    msgs = problems(rules_copy)
    assert any("fcis.yaml:" in m and "a=0.4 > b=0.0" in m for m in msgs)


def test_term_must_peak_at_its_code(rules_copy):
    path = rules_copy / "fcis.yaml"
    path.write_text(path.read_text().replace("params: [0.15, 0.6, 1, 1]", "params: [0, 0.3, 0.6, 1]", 1))
    msgs = problems(rules_copy)
    assert any("must have membership 1 at its code x=1" in m for m in msgs)


def test_invalid_yaml_position(rules_copy):
    path = rules_copy / "fkis" / "fear.yaml"
    path.write_text(path.read_text() + "  - id: [unclosed\n")
    (msg,) = problems(rules_copy)
    assert re.search(r"fear\.yaml:\d+:\d+: invalid YAML", msg)


def test_unknown_key_hint(rules_copy):
    path = rules_copy / "engine.yaml"
    path.write_text(path.read_text().replace("tnorm: min", "tnrom: min"))
    (msg,) = problems(rules_copy)
    assert re.search(r"engine\.yaml:\d+:1: unknown key 'tnrom'", msg) and "'tnorm'" in msg


def test_duplicate_yaml_key(rules_copy):
    path = rules_copy / "engine.yaml"
    path.write_text(path.read_text() + "tnorm: product\n")
    (msg,) = problems(rules_copy)
    assert "duplicate key 'tnorm'" in msg


def test_missing_emotion_file(rules_copy):
    (rules_copy / "fkis" / "fear.yaml").unlink()
    (msg,) = problems(rules_copy)
    assert "fear.yaml:1:1: missing FKIS file for fear" in msg


def test_all_problems_reported_at_once(rules_copy):
    add_rule(rules_copy, "when", "{brow_crst: frowning}")
    add_rule(rules_copy, "when", "{nose: -1}")
    assert len(problems(rules_copy)) == 2


@pytest.mark.parametrize("coding, expected", [
    ("0010010(-1)(-1)(-1)(-1)(-1)", [0, 0, 1, 0, 0, 1, 0, -1, -1, -1, -1, -1]),
    ("**1****-1****", [None, None, 1, None, None, None, None, -1, None, None, None, None]),
    ("0 0 1 0 0 1 0 -1 -1 -1 -1 -1", [0, 0, 1, 0, 0, 1, 0, -1, -1, -1, -1, -1]),
])
def test_parse_coding(coding, expected):
    assert parse_coding(coding) == expected


@pytest.mark.parametrize("coding", ["001001", "0010010(-1)(-1)(-1)(-1)(-1)0", "00100x0(-1)(-1)(-1)(-1)(-1)"])
def test_parse_coding_rejects(coding):
    with pytest.raises(ValueError):
        parse_coding(coding)


def test_lambda_scaling_keeps_cores(rules_copy):
    rb = RuleBase.load(rules_copy)
    wide = rb.with_options(lambda_fcis=0.8, lambda_fkis=0.2)
    for comp in rb.components:
        for term in comp.terms:
            a, b = rb.component_mf(comp.name, term.code), wide.component_mf(comp.name, term.code)
            assert a.core == b.core and float(b(term.code)) == 1.0
    # lambda1 doubled: the normal term's slopes double, its core stays.
    a, b, c, d = rb.component_mf("mouth", 0).params
    assert wide.component_mf("mouth", 0).params == pytest.approx(
        (b - 2 * (b - a), b, c, c + 2 * (d - c)))
    # Editing the file's lambda has the same effect as the override.
    path = rules_copy / "fcis.yaml"
    path.write_text(path.read_text().replace("lambda: 0.4", "lambda: 0.8", 1))
    assert RuleBase.load(rules_copy).component_mf("mouth", 0) == wide.component_mf("mouth", 0)


def test_anger_fig3_example():
    rb = RuleBase.default()
    assert float(rb.intensity_mf("anger", "low")(0.2)) == 0.0
    assert float(rb.intensity_mf("anger", "medium")(0.2)) == pytest.approx(0.34, abs=0.01)


def test_engine_options_validated():
    with pytest.raises(ValueError, match="tnorm"):
        RuleBase.default().with_options(tnorm="max")
    with pytest.raises(ValueError, match="lambda_fcis"):
        RuleBase.default().with_options(lambda_fcis=0)


# ------------------------------------------------------------------ hedges (docs/semantics.md: our extension of SPEC 3.2)
def _terms(rules: Path, rule_id: str = "anger-test") -> list[tuple]:
    return [tuple(c) for c in next(r for r in RuleBase.load(rules).rules if r.id == rule_id).terms]


@pytest.mark.parametrize(("key", "value", "terms"), [
    ("when", "{mouth: very open}", [("mouth", 1, ("very",))]),
    ("when", "{mouth: not very open, nose: wrinkled}",
     [("nose", 1, ()), ("mouth", 1, ("not", "very"))]),
    ("when", "{left_mouth_corner: [raised, not very raised]}",
     [("left_mouth_corner", 1, ()), ("left_mouth_corner", 1, ("not", "very"))]),
    ("when", "{mouth: [1, seldom open], brow_crest: somewhat frowning}",
     [("brow_crest", 1, ("somewhat",)), ("mouth", 1, ()), ("mouth", 1, ("seldom",))]),
    ("when", "{mouth: any, nose: 1}", [("nose", 1, ()), ("mouth", 0, ("any",))]),
    ("when", "{mouth: [low, pressed], lower_lip: extremely thick}", None),  # 'low': no term
    ("if", '"mouth is very open and mouth is not extremely open"',
     [("mouth", 1, ("very",)), ("mouth", 1, ("not", "extremely"))]),
    ("if", '"if nose is not not wrinkled and mouth is pressed and mouth is open"',
     [("nose", 1, ("not", "not")), ("mouth", -1, ()), ("mouth", 1, ())]),
    ("if", '"mouth is not any"', [("mouth", 0, ("not", "any"))]),
])
def test_hedged_conditions_parse(rules_copy, key, value, terms):
    add_rule(rules_copy, key, value)
    if terms is None:
        (msg,) = problems(rules_copy)
        assert "mouth has no term 'low'" in msg
        return
    assert _terms(rules_copy) == terms


def test_hedged_rule_model_and_texts(rules_copy):
    add_rule(rules_copy, "when",
             "{left_mouth_corner: [raised, not very raised], mouth: normal, nose: any}")
    rule = next(r for r in RuleBase.load(rules_copy).rules if r.id == "anger-test")
    # conditions keep (component, code) pairs; hedges is the parallel tuple.
    assert rule.conditions == (("nose", 0), ("mouth", 0), ("left_mouth_corner", 1),
                               ("left_mouth_corner", 1))
    assert rule.hedges == (("any",), (), (), ("not", "very"))
    assert rule.hedged and rule.coding == "*******0****"
    assert rule.sentence() == ("if nose is any and mouth is normal and left_mouth_corner is "
                               "raised and left_mouth_corner is not very raised then anger is low")
    from fuzzyemo._rulebase import when_dict

    assert when_dict(rule) == {
        "nose": [{"term": None, "code": None, "hedges": ["any"]}], "mouth": 0,
        "left_mouth_corner": [{"term": "raised", "code": 1, "hedges": []},
                              {"term": "raised", "code": 1, "hedges": ["not", "very"]}]}
    # A plain rule: no hedges anywhere, the JSON form of rev. 1, and the Rule constructor
    # without hedges still works.
    plain = fuzzyemo.Rule("x-1", "anger", (("mouth", 1),), "low", 1.0, "s", "f:1")
    assert plain.hedges == ((),) and not plain.hedged and when_dict(plain) == {"mouth": 1}
    with pytest.raises(ValueError, match="hedge tuples"):
        fuzzyemo.Rule("x-2", "anger", (("mouth", 1),), "low", 1.0, "s", "f:1", "",
                      (("very",), ()))


@pytest.mark.parametrize(("key", "value", "message", "word"), [
    ("when", "{left_mouth_corner: vry raised}", "unknown hedge 'vry'", "vry"),
    ("when", "{left_mouth_corner: [raised, somwhat raised]}", "unknown hedge 'somwhat'",
     "somwhat"),
    ("if", '"mouth is open and mouth is extremly open"', "unknown hedge 'extremly'", "extremly"),
    ("when", "{mouth: very 1}", "hedges apply to term names, not codes", "very"),
    ("when", "{mouth: [open, open]}", "duplicate condition 'mouth is open'", None),
    ("if", '"mouth is very open and mouth is very open"', "duplicate condition", None),
    ("when", "{mouth: any open}", "'any' ends a condition", "any"),
    ("when", "{mouth: open very}", "a hedge comes before its term", "open"),
    ("when", "{mouth: very}", "the hedge 'very' needs a term after it", "very"),
    ("when", "{mouth: []}", "an empty list of conditions", None),
    ("when", "{mouth: {a: 1}}", "expected a term name or a code", None),
])
def test_hedge_errors_have_positions_and_hints(rules_copy, key, value, message, word):
    line = add_rule(rules_copy, key, value)
    (msg,) = problems(rules_copy)
    m = re.match(rf".*anger\.yaml:{line}:(\d+): (.*)", msg)
    assert m and message in m.group(2), msg
    if word is not None:  # the column points at the offending word
        text = (rules_copy / "fkis" / "anger.yaml").read_text().splitlines()[line - 1]
        col = int(m.group(1))
        assert text[col - 1:].startswith(word), (text, col)
    if "unknown hedge" in message:
        meant = {"vry": "very", "somwhat": "somewhat", "extremly": "extremely"}[word]
        assert f"did you mean '{meant}'?" in msg


def test_plain_repeated_component_and_coding_stay_crisp(rules_copy):
    # The same component with two different plain terms is a valid (if unusual) antecedent.
    add_rule(rules_copy, "if", '"mouth is normal and mouth is open"')
    assert _terms(rules_copy) == [("mouth", 0, ()), ("mouth", 1, ())]
    assert next(r for r in RuleBase.load(rules_copy).rules if r.id == "anger-test").coding \
        == "*" * 12
