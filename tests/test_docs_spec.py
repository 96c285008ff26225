"""docs/SPEC.md (the interface contract) and the code agree on the fixed vocabulary."""

from __future__ import annotations

import re
from pathlib import Path

from fuzzyemo import (
    CLASS_NAMES,
    COMPONENT_TERMS,
    COMPONENTS,
    EMOTIONS,
    INTENSITIES,
    NEUTRAL_INDEX,
    UNKNOWN_INDEX,
    RuleBase,
    class_index,
)

SPEC = (Path(__file__).resolve().parent.parent / "docs" / "SPEC.md").read_text(encoding="utf-8")


def test_components_table_matches_vocabulary_and_shipped_rules() -> None:
    rows = re.findall(r"^\| (\d+) \| (\w+) \| (.+?) \|$", SPEC, flags=re.M)
    assert [int(n) for n, _, _ in rows] == list(range(1, 13))
    assert [name for _, name, _ in rows] == list(COMPONENTS)
    shipped = {c.name: {t.code: t.name for t in c.terms} for c in RuleBase.default().components}
    for _, name, codes in rows:
        terms = {int(v): t for v, t in re.findall(r"(-?\d) (\w+)", codes)}
        assert terms == dict(COMPONENT_TERMS[name]) == shipped[name], name


def test_class_order_and_special_indices() -> None:
    emotions = re.search(r"Emotions, in this order: (.+?)\.\n", SPEC)[1].split(", ")
    intensities = re.search(r"Intensities: (.+?)\. ", SPEC)[1].split(", ")
    assert emotions == list(EMOTIONS) and intensities == list(INTENSITIES)
    assert list(CLASS_NAMES) == [f"{e}_{k}" for e in emotions for k in intensities]
    name, index = re.search(r"e\.g\. `(\w+)` = (\d+)", SPEC).groups()
    assert class_index(*name.split("_")) == CLASS_NAMES.index(name) == int(index)
    assert int(re.search(r"labelled `neutral`\n\(class index (-\d)\)", SPEC)[1]) == NEUTRAL_INDEX
    assert int(re.search(r"labelled `unknown`\n\(class index (-\d)\)", SPEC)[1]) == UNKNOWN_INDEX
