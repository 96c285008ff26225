"""Loading and validation: every mistake is reported as path:line:col with a hint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
