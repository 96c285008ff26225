"""Content of the shipped ``paper`` profile (rules/paper/): the paper's facts and our design rules.

The ``paper`` profile (SPEC section 3, "Rule profiles") holds Table II's 12 codings and the
FACS rules around them; every test here runs against it explicitly. The ``facs`` profile
(the default) has its own content tests.

docs/rules.md explains the conventions these tests hold the rules to:
- Table II codings have weight 1; FACS-derived rules weight <= 0.9.
- A rule evaluated at its own prototype point (named components at their codes, the others
  neutral) gets its own class, unless its ``note`` says "shadowed by <rule-id>", in which
  case it gets that rule's class (and the note must be true).
- Within one emotion, rules of different levels never fire together at a prototype.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fuzzyemo import RuleBase
from fuzzyemo._rulebase import parse_coding
from fuzzyemo._vocab import CLASS_NAMES, COMPONENTS, EMOTIONS, INTENSITIES

RULES_DIR = Path(__file__).resolve().parents[1] / "rules" / "paper"

# The paper's Table II, verbatim (emotion row name -> coding), with our class names.
TABLE_II = [
    ("Angry-High", "0010010(-1)(-1)(-1)(-1)(-1)", "anger_high"),
    ("Angry-Medium", "(-1)0(-1)000101011", "anger_medium"),
    ("Angry-Low", "0001101(-1)0000", "anger_low"),
    ("Happy-High", "110110100111", "happiness_high"),
    ("Happy-Medium", "011011000(-1)00", "happiness_medium"),
    ("Happy-Low", "(-1)010100010(-1)(-1)", "happiness_low"),
    ("Disgust-High", "11(-1)000001(-1)00", "disgust_high"),
    ("Disgust-Medium", "110000000(-1)00", "disgust_medium"),
    ("Fear-Low", "000(-1)(-1)0000011", "fear_low"),
    ("Sad-High", "(-1)(-1)0(-1)(-1)100(-1)(-1)00", "sadness_high"),
    ("Sad-Medium", "(-1)(-1)0001000(-1)00", "sadness_medium"),
    ("Surprise-Low", "000110000011", "surprise_low"),
]
SHADOWED = re.compile(r"shadowed by ([a-z]+-[A-Za-z0-9-]+)")
MIN_RULES = {"anger": 40, "disgust": 30}
MIN_RULES_ANY = 25


@pytest.fixture(scope="module")
def rb() -> RuleBase:
    return RuleBase.load(RULES_DIR)


@pytest.fixture(scope="module")
def engine(rb):
    return rb.compile()


def _cls(rule) -> int:
    return 3 * EMOTIONS.index(rule.emotion) + INTENSITIES.index(rule.then)


def _prototype(rule) -> np.ndarray:
    x = np.zeros(len(COMPONENTS))
    for c, v in rule.conditions:
        x[COMPONENTS.index(c)] = v
    return x


def _conditions(coding: str) -> tuple[tuple[str, int], ...]:
    symbols = parse_coding(coding)
    return tuple((c, v) for c, v in zip(COMPONENTS, symbols, strict=True) if v is not None)


TABLE_II_CONDITIONS = {_conditions(coding) for _, coding, _ in TABLE_II}


def _is_table_ii(rule) -> bool:
    return rule.conditions in TABLE_II_CONDITIONS


@pytest.fixture(scope="module")
def prototypes(rb, engine):
    """Every rule's prototype point evaluated once, with rule strengths."""
    x = np.stack([_prototype(r) for r in rb.rules])
    return x, engine.evaluate(x, strengths=True)


# ------------------------------------------------------------------ paper facts
@pytest.mark.parametrize(("row", "coding", "cls"), TABLE_II, ids=[t[0] for t in TABLE_II])
def test_table_ii_row_is_a_weight_1_rule_and_labels_its_class(rb, engine, row, coding, cls):
    symbols = parse_coding(coding)
    want = _conditions(coding)
    emotion, level = cls.split("_")
    matches = [r for r in rb.rules if r.conditions == want]
    assert [(r.emotion, r.then, r.weight) for r in matches] == [(emotion, level, 1.0)], row
    res = engine.evaluate(np.array([symbols], dtype=float))
    assert res.labels[0] == cls, f"{row}: coding {coding} is labelled {res.labels[0]}"


def test_anger_intensity_example_of_fig_3a(rb):
    low = rb.intensity_mf("anger", "low")
    medium = rb.intensity_mf("anger", "medium")
    assert float(low(0.2)) == 0.0
    assert float(medium(0.2)) == pytest.approx(0.34, abs=0.01)


# ------------------------------------------------------------------ richness and hygiene
def test_rule_counts(rb):
    counts = {e.name: len(e.rules) for e in rb.emotions}
    for emotion, n in counts.items():
        assert n >= MIN_RULES.get(emotion, MIN_RULES_ANY), counts
    # Every level of every emotion has FACS rules, not only Table II rows.
    for e in rb.emotions:
        for level in INTENSITIES:
            assert any(r.then == level and not _is_table_ii(r) for r in e.rules), (e.name, level)


def test_ids_sources_weights_and_antecedents(rb):
    ids = [r.id for r in rb.rules]
    assert len(ids) == len(set(ids))
    seen: dict[tuple, str] = {}
    for r in rb.rules:
        assert re.fullmatch(rf"{r.emotion}-[a-z0-9][a-z0-9-]*", r.id), r.id
        assert r.conditions, f"{r.id} has an empty antecedent"
        assert r.conditions not in seen, f"{r.id} has the same antecedent as {seen.get(r.conditions)}"
        seen[r.conditions] = r.id
        assert len(r.source.strip()) > 10, f"{r.id} needs a precise source"
        if _is_table_ii(r):
            assert r.weight == 1.0, r.id
        else:
            # A FACS rule never outweighs a Table II coding (design rule 1).
            assert 0 < r.weight <= 0.9, r.id
    # Exactly the 12 Table II rows are Table II rules.
    assert sum(_is_table_ii(r) for r in rb.rules) == len(TABLE_II)


# ------------------------------------------------------------------ behaviour at prototypes
def test_each_rule_labels_its_own_prototype_unless_noted(rb, prototypes):
    x, res = prototypes
    by_id = {r.id: r for r in rb.rules}
    wrong = []
    for i, r in enumerate(rb.rules):
        got = int(res.class_index[i])
        m = SHADOWED.search(r.note)
        if m:
            winner = by_id.get(m.group(1))
            assert winner is not None, f"{r.id}: note names unknown rule {m.group(1)!r}"
            # The note must be true: the named rule's class wins, not this rule's.
            if got != _cls(winner) or got == _cls(r):
                wrong.append(f"{r.id}: note says shadowed by {winner.id}, label is "
                             f"{res.labels[i]}")
        elif got != _cls(r):
            wrong.append(f"{r.id} ({r.emotion} {r.then}): prototype {r.coding} is labelled "
                         f"{res.labels[i]}")
    assert not wrong, "\n".join(wrong)


def test_every_class_is_some_prototypes_label(prototypes):
    _, res = prototypes
    reached = {int(c) for c in res.class_index if c >= 0}
    missing = [CLASS_NAMES[i] for i in range(18) if i not in reached]
    assert not missing, missing


def test_levels_of_one_emotion_never_fire_together_at_a_prototype(rb, prototypes):
    """Design rule 2: centroid defuzzification would blend them into a third level."""
    _, res = prototypes
    rules = rb.rules
    emo = np.array([EMOTIONS.index(r.emotion) for r in rules])
    lvl = np.array([INTENSITIES.index(r.then) for r in rules])
    clashes = []
    for i, r in enumerate(rules):
        fired = res.strengths[i] > 0
        other = fired & (emo == emo[i]) & (lvl != lvl[i])
        clashes += [f"{r.id} with {rules[j].id}" for j in np.flatnonzero(other)]
    assert not clashes, "\n".join(clashes)


def test_no_ties_at_the_top_of_any_prototype(prototypes):
    """Design rule 3: a label decided by the tie-break (lower class index) hides a conflict."""
    _, res = prototypes
    top2 = np.sort(res.scores, axis=1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    assert (gaps > 0.05).all(), np.flatnonzero(gaps <= 0.05)


def test_weak_expressions_keep_their_emotion(rb, engine):
    """Half-strength prototypes (x = code / 2) still read as the rule's emotion (fuzzy sanity)."""
    rules = [r for r in rb.rules if not _is_table_ii(r) and not SHADOWED.search(r.note)]
    x = np.stack([_prototype(r) for r in rules]) * 0.5
    labels = engine.evaluate(x).labels
    off = [f"{r.id}: {lab}" for r, lab in zip(rules, labels, strict=True)
           if not lab.startswith(r.emotion + "_")]
    assert not off, "\n".join(off)


def test_lambda_facts_stated_in_rules_md(rb):
    """docs/rules.md section 2: the lambda table and where Table II codings keep their class."""
    x = np.array([parse_coding(c) for _, c, _ in TABLE_II], dtype=float)
    want = [cls for _, _, cls in TABLE_II]

    def moved(l1: float, l2: float) -> dict[str, str]:
        labels = rb.with_options(lambda_fcis=l1, lambda_fkis=l2).compile().evaluate(x).labels
        return {row: lab for (row, _, _), lab, w in zip(TABLE_II, labels, want, strict=True)
                if lab != w}

    for l1 in (0.2, 0.3, 0.4, 0.5):
        for l2 in (0.2, 0.4, 0.6, 0.8):
            assert moved(l1, l2) == {}, (l1, l2)
    assert moved(0.6, 0.4) == {"Angry-Low": "anger_medium"}
    assert moved(0.6, 0.2) == {}  # rev. 1 labelled Angry-Low disgust_high here
    assert moved(0.7, 0.4) == {"Angry-Low": "anger_medium", "Surprise-Low": "surprise_medium"}
    assert set(moved(0.7, 0.2)) == {"Angry-Low", "Disgust-Medium", "Sad-Medium"}
    # "The emotion of every coding stays right at all these lambdas".
    for l1 in (0.6, 0.7):
        for l2 in (0.2, 0.4, 0.6, 0.8):
            assert all(lab.split("_")[0] == row_cls.split("_")[0] for row, lab in moved(l1, l2).items()
                       for name, _, row_cls in TABLE_II if name == row), (l1, l2)
    # The table: params of left_eyebrow's normal / raised and anger's medium at three lambdas.
    table = {0.2: ([-0.325, -0.15, 0.15, 0.325], [0.375, 0.6, 1, 1], [0.245, 0.39, 0.535], 0.0),
             0.4: ([-0.5, -0.15, 0.15, 0.5], [0.15, 0.6, 1, 1], [0.1, 0.39, 0.68], 0.345),
             0.8: ([-0.85, -0.15, 0.15, 0.85], [-0.3, 0.6, 1, 1], [-0.19, 0.39, 0.97], 0.672)}
    for lam, (normal, raised, medium, nu) in table.items():
        d = rb.with_options(lambda_fcis=lam, lambda_fkis=lam).to_dict()
        terms = {t["name"]: t["params"] for t in d["components"][0]["terms"]}
        anger = next(e for e in d["emotions"] if e["name"] == "anger")
        inten = {t["name"]: t["params"] for t in anger["intensity"]}
        assert terms["normal"] == pytest.approx(normal) and terms["raised"] == pytest.approx(raised)
        assert inten["medium"] == pytest.approx(medium)
        mf = rb.with_options(lambda_fkis=lam).intensity_mf("anger", "medium")
        assert float(mf(0.2)) == pytest.approx(nu, abs=5e-4)
