from __future__ import annotations

from pathlib import Path

import pytest

from fuzzyemo._rulebase import copy_profile


@pytest.fixture(scope="session")
def astronaut():
    """skimage's astronaut (public domain, RGB); in-sample for the rules (docs/validity.md)."""
    pytest.importorskip("skimage", reason="scikit-image provides the astronaut face")
    from face_fixtures import load_astronaut

    return load_astronaut()


@pytest.fixture(scope="session")
def grace():
    """matplotlib's grace_hopper.jpg (public domain, RGB); in-sample for the rules."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (comes with mediapipe)")
    pytest.importorskip("matplotlib", reason="matplotlib provides grace_hopper.jpg")
    from face_fixtures import load_grace

    return load_grace(cv2)


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A private, editable, self-contained copy of the shipped ``paper`` profile (its rules
    plus the shared calibration.yaml and landmarks/): tests edit its known content."""
    return copy_profile("paper", tmp_path / "rules")


# Hedged rules appended to a copy of the paper profile (docs/semantics.md: our extension of SPEC 3.2): every hedge, a
# component named twice, 'any', in both the `when:` and the `if:` syntax.
HEDGED_RULES = {
    "happiness": """
  - id: happiness-h-low
    when: {left_mouth_corner: [raised, not very raised], right_mouth_corner: [raised, not very raised], mouth: normal, nose: any}
    then: low
    weight: 0.8
    source: "hedges: corners raised but not very raised, a slight smile"
  - id: happiness-h-high
    if: "left_mouth_corner is very raised and right_mouth_corner is very raised and mouth is somewhat open"
    then: high
    weight: 0.85
    source: "hedges: corners very raised, mouth somewhat open"
""",
    "anger": """
  - id: anger-h-medium
    if: "brow_crest is extremely frowning and mouth is seldom pressed and mouth is not very pressed"
    then: medium
    weight: 0.75
    source: "hedges: an extreme frown with the lips slightly pressed"
""",
    "sadness": """
  - id: sadness-h-medium
    when: {left_mouth_corner: very low, right_mouth_corner: seldom low, brow_crest: not not frowning}
    then: medium
    weight: 0.65
    source: "hedges: corners down, brows knit"
""",
    "disgust": """
  - id: disgust-h-low
    when: {nose: extremely wrinkled, upper_lip: [thick, not very thick]}
    then: low
    weight: 0.7
    source: "hedges: a strong nose wrinkle, the upper lip slightly raised"
""",
    "fear": """
  - id: fear-h-medium
    when: {left_eye: very wide, right_eye: very wide, mouth: seldom open, lower_lip: not thick}
    then: medium
    weight: 0.6
    source: "hedges: eyes very wide, mouth slightly open"
""",
    "surprise": """
  - id: surprise-h-low
    when: {left_eye: somewhat wide, right_eye: somewhat wide, mouth: [open, not extremely open], left_mouth_corner: not low}
    then: low
    weight: 0.7
    source: "hedges: eyes somewhat wide, the mouth open but not extremely"
""",
}


def write_hedged_rules(dest: Path) -> Path:
    """A copy of the paper profile with :data:`HEDGED_RULES` appended; returns ``dest``."""
    copy_profile("paper", dest)
    for emotion, text in HEDGED_RULES.items():
        path = dest / "fkis" / f"{emotion}.yaml"
        body = path.read_text(encoding="utf-8")
        path.write_text(body.rstrip("\n") + "\n" + text.lstrip("\n"), encoding="utf-8")
    return dest


@pytest.fixture(scope="session")
def hedged_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rule directory: the paper profile plus hedged rules (do not edit: shared)."""
    return write_hedged_rules(tmp_path_factory.mktemp("hedged") / "rules")


@pytest.fixture(scope="session")
def hedged_rulebase(hedged_rules: Path):
    from fuzzyemo import RuleBase

    return RuleBase.load(hedged_rules)
