"""The fixed vocabulary of SPEC.md: the 12 components, their codes, and the 18 classes.

These names are an interface contract (column names, class indices, JSON export), so they
live in code; everything tunable about them (membership functions, rules) lives in rules/.
"""

from __future__ import annotations

# SPEC section 1, in this order. Each component maps code -> term name.
COMPONENT_TERMS: dict[str, dict[int, str]] = {
    "left_eyebrow": {-1: "low", 0: "normal", 1: "raised"},
    "right_eyebrow": {-1: "low", 0: "normal", 1: "raised"},
    "brow_crest": {-1: "smooth", 0: "normal", 1: "frowning"},
    "left_eye": {-1: "narrow", 0: "normal", 1: "wide"},
    "right_eye": {-1: "narrow", 0: "normal", 1: "wide"},
    "nose": {0: "normal", 1: "wrinkled"},
    "nostril": {0: "normal", 1: "dilated"},
    "mouth": {-1: "pressed", 0: "normal", 1: "open"},
    "upper_lip": {-1: "thin", 0: "normal", 1: "thick"},
    "lower_lip": {-1: "thin", 0: "normal", 1: "thick"},
    "left_mouth_corner": {-1: "low", 0: "normal", 1: "raised"},
    "right_mouth_corner": {-1: "low", 0: "normal", 1: "raised"},
}
COMPONENTS: tuple[str, ...] = tuple(COMPONENT_TERMS)

# SPEC section 2.
EMOTIONS: tuple[str, ...] = ("happiness", "anger", "sadness", "disgust", "fear", "surprise")
INTENSITIES: tuple[str, ...] = ("low", "medium", "high")
CLASS_NAMES: tuple[str, ...] = tuple(f"{e}_{k}" for e in EMOTIONS for k in INTENSITIES)

NEUTRAL_INDEX = -1
UNKNOWN_INDEX = -2
NEUTRAL = "neutral"
UNKNOWN = "unknown"

# Every component has at most three terms (codes -1, 0, 1); arrays of memberships are
# laid out as (..., 12, 3) with slot = code + 1, and absent terms hold membership 0.
MAX_TERMS = 3


def class_index(emotion: str, intensity: str) -> int:
    """Class index of SPEC section 2: 3 * emotion_index + intensity_index."""
    return 3 * EMOTIONS.index(emotion) + INTENSITIES.index(intensity)


def class_name(index: int) -> str:
    """Class name for an index, including the two special labels (-1 neutral, -2 unknown)."""
    if index == NEUTRAL_INDEX:
        return NEUTRAL
    if index == UNKNOWN_INDEX:
        return UNKNOWN
    return CLASS_NAMES[index]
