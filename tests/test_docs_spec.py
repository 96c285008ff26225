"""docs/SPEC.md (the interface contract) and the code agree on the fixed vocabulary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
    profiles,
)

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "docs" / "SPEC.md").read_text(encoding="utf-8")
SHARED = ROOT.parent / "shared" / "SPEC.md"  # the contract as the project keeps it


@pytest.mark.skipif(not SHARED.is_file(), reason="no ../shared/SPEC.md beside this checkout")
def test_docs_spec_is_the_shared_spec() -> None:
    """docs/SPEC.md is a byte-identical copy of ../shared/SPEC.md (copy it over to update)."""
    assert (ROOT / "docs" / "SPEC.md").read_bytes() == SHARED.read_bytes()


def test_spec_is_rev_2() -> None:
    """Rule profiles and the rev. 2 label rule are the contract the code implements."""
    assert "Rule profiles (rev. 2)" in SPEC
    flat = " ".join(SPEC.split())
    assert "the emotion e* with the largest activation a_e" in flat
    assert "k* = argmax_k nu_{e*,k}(eps_e*) (ties: the lower level)" in flat
    names = re.findall(r"^- `(\w+)`(?: \(the default\))?:", SPEC, flags=re.M)
    assert sorted(names) == sorted(profiles())
    assert re.search(r"^- `facs` \(the default\):", SPEC, flags=re.M)


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
