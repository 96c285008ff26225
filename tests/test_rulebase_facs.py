"""Content of the `facs` profile, the default (SPEC rev. 2, "Rule profiles"; docs/rules.md,
"The facs profile"): every rule a FACS/EMFACS prototype, intensity that follows expression
strength, and the constraints the issue-9 review asked for."""

from __future__ import annotations

import numpy as np
import pytest

from fuzzyemo import RuleBase
from fuzzyemo._vocab import COMPONENT_TERMS, COMPONENTS, EMOTIONS

FACS = RuleBase.default()
ENGINE = FACS.compile(precision="double")
C = {name: i for i, name in enumerate(COMPONENTS)}


def prototypes() -> dict[str, tuple[str, np.ndarray]]:
    """{graded rule id: (emotion, x of the prototype at full strength)}.

    The prototype is what the rule describes: its graded actions and the actions its `when`
    asks for (a condition without a leading 'not' on a term other than normal) at their
    codes; everything it rules out ('not ...') or leaves free stays at 0 (neutral).
    """
    out: dict[str, tuple[str, np.ndarray]] = {}
    for rule in FACS.rules:
        if not rule.id.endswith("/high"):
            continue
        x = np.zeros(len(COMPONENTS))
        for cond in rule.terms:
            if cond.hedges and cond.hedges[0] == "not":
                continue
            x[C[cond.component]] = cond.code
        out[rule.id.removesuffix("/high")] = (rule.emotion, x)
    return out


PROTOTYPES = prototypes()


def test_the_default_is_the_facs_profile():
    assert FACS.profile == "facs"
    assert RuleBase.default("facs").sha256 == FACS.sha256
    assert RuleBase.load("paper").sha256 != FACS.sha256


def test_every_rule_is_a_traceable_graded_prototype():
    """Every rule cites its FACS/EMFACS source; all are graded prototypes except single-level
    rules that say why in their note."""
    assert len(PROTOTYPES) >= 25
    for rule in FACS.rules:
        assert "/" in rule.id or rule.note.startswith("not graded:"), rule.id
        assert any(k in rule.source for k in ("FACS", "EMFACS", "Ekman")), rule.id
    # Every emotion has prototypes, low/medium/high each.
    for e in EMOTIONS:
        levels = {r.then for r in FACS.rules if r.emotion == e}
        assert levels == {"low", "medium", "high"}, e


@pytest.mark.parametrize("pid", sorted(PROTOTYPES))
def test_intensity_follows_strength_and_the_emotion_never_changes(pid):
    """The same prototype at 30%, 60% and 100% reads low, medium and high; from 30% to 100%
    (every 5%) it is always its own emotion."""
    emotion, x = PROTOTYPES[pid]
    for strength, level in ((0.3, "low"), (0.6, "medium"), (1.0, "high")):
        label = ENGINE.evaluate((strength * x)[None]).labels[0]
        assert label == f"{emotion}_{level}", (pid, strength, label)
    strengths = np.round(np.arange(0.3, 1.0001, 0.05), 2)
    labels = ENGINE.evaluate(strengths[:, None] * x[None]).labels
    assert all(str(lab).startswith(emotion) for lab in labels), (pid, list(labels))


def test_neutral_and_weak_traces_are_neutral():
    assert ENGINE.evaluate(np.zeros((1, 12))).labels[0] == "neutral"
    for pid, (_, x) in PROTOTYPES.items():
        assert ENGINE.evaluate((0.15 * x)[None]).labels[0] == "neutral", pid


def test_ordinary_jitter_on_a_neutral_face_stays_neutral():
    """Simulated neutral frames: every component jitters with sd 0.1 (the spread a neutral
    face shows across frames after self-calibration, docs/validity.md); at most 2% get an
    emotion."""
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0, 0.1, (20000, 12)), -1, 1)
    labels = ENGINE.evaluate(x).labels
    assert np.mean(labels != "neutral") <= 0.02


def test_no_surprise_rule_has_brow_lowering():
    """Every surprise rule rules AU4 out (its brow crest is 'not frowning' or 'smooth'), so a
    surprise prototype with a frown added is no longer surprise: the angry shout is not."""
    for rule in FACS.rules:
        if rule.emotion == "surprise":
            crest = [c for c in rule.terms if c.component == "brow_crest"]
            assert crest and all(
                (c.hedges[:1] == ("not",) and c.code == 1)
                or (c.code == -1 and c.hedges[:1] != ("not",)) for c in crest), rule.id
    for pid, (emotion, x) in PROTOTYPES.items():
        if emotion == "surprise":
            frown = x.copy()
            frown[C["brow_crest"]] = 0.8
            act = ENGINE.evaluate(frown[None]).activations[0, EMOTIONS.index("surprise")]
            assert act < FACS.options.min_activation, (pid, act)


def test_a_smile_never_counts_for_anger_disgust_or_fear():
    for rule in FACS.rules:
        if rule.emotion in ("anger", "disgust", "fear"):
            for side in ("left_mouth_corner", "right_mouth_corner"):
                conds = [c for c in rule.terms if c.component == side]
                assert any(c.code == 1 and c.hedges[:1] == ("not",) for c in conds), \
                    (rule.id, side)


@pytest.mark.parametrize("pid", ["anger-4-10-25", "disgust-9-10-25", "fear-1-2-4-7",
                                 "fear-1-2-4-5", "surprise-1-2-5"])
def test_the_missing_prototypes_are_there(pid):
    """Open-mouth anger, 9+10+25 disgust, fear with AU7 dominant, closed-mouth fear, raised
    brows with a normal crest (surprise without AU1's smoothing)."""
    assert pid in PROTOTYPES


def test_raised_brows_with_a_normal_crest_are_surprise():
    x = np.zeros(12)
    x[[C["left_eyebrow"], C["right_eyebrow"]]] = 0.9
    x[[C["left_eye"], C["right_eye"]]] = 0.5
    x[C["mouth"]] = 0.7
    assert str(ENGINE.evaluate(x[None]).labels[0]).startswith("surprise")


def test_a_broad_smile_is_happiness_even_when_the_brows_read_lowered():
    """MediaPipe reads a Duchenne smile's brow pull as browDown (the public-domain Obama
    portrait: crest +0.72); a weak smile with a real frown is vetoed, a broad one is not."""
    x = np.zeros(12)
    x[[C["left_mouth_corner"], C["right_mouth_corner"]]] = 0.95
    x[C["brow_crest"]] = 0.75
    assert ENGINE.evaluate(x[None]).labels[0] == "happiness_high"
    x[[C["left_mouth_corner"], C["right_mouth_corner"]]] = 0.35
    assert not str(ENGINE.evaluate(x[None]).labels[0]).startswith("happiness")


def test_a_laugh_with_a_raised_upper_lip_is_happiness():
    """The review's laugh: corners up, mouth open, upper lip raised (AU10 comes with a broad
    smile) -- not disgust."""
    x = np.zeros(12)
    x[[C["left_mouth_corner"], C["right_mouth_corner"]]] = 1.0
    x[C["mouth"]] = 0.6
    x[C["upper_lip"]] = 0.8
    x[C["nose"]] = 0.6
    assert str(ENGINE.evaluate(x[None]).labels[0]).startswith("happiness")


def test_an_angry_shout_is_anger_not_surprise():
    x = np.zeros(12)
    x[C["brow_crest"]] = 0.9
    x[[C["left_eyebrow"], C["right_eyebrow"]]] = -0.6
    x[C["mouth"]] = 0.9
    x[[C["left_eye"], C["right_eye"]]] = 0.4
    assert str(ENGINE.evaluate(x[None]).labels[0]).startswith("anger")


def test_talking_with_lowered_brows_is_not_anger_but_a_tense_shout_is():
    """EMFACS anger needs AU5 or AU7 with AU4: lowered, knit brows and parted lips with
    relaxed lids (a heavy-browed person talking; docs/validity.md, "Fresh faces") are not
    anger at medium or high; the same with tensed lids (4+7+25) or a glare (4+5) is."""
    x = np.zeros(12)
    x[[C["left_eyebrow"], C["right_eyebrow"]]] = -0.65
    x[C["brow_crest"]] = 0.65
    x[C["mouth"]] = 0.35
    label = str(ENGINE.evaluate(x[None]).labels[0])
    assert label not in ("anger_medium", "anger_high"), label
    for eyes in (-0.6, 0.5):  # tensed lids, glare
        x[[C["left_eye"], C["right_eye"]]] = eyes
        assert str(ENGINE.evaluate(x[None]).labels[0]) in ("anger_medium", "anger_high"), eyes


def test_a_closed_smile_with_thin_lips_is_happiness():
    x = np.zeros(12)
    x[[C["left_mouth_corner"], C["right_mouth_corner"]]] = 0.6
    x[[C["upper_lip"], C["lower_lip"]]] = -0.6
    x[C["mouth"]] = -0.5
    assert str(ENGINE.evaluate(x[None]).labels[0]).startswith("happiness")


def test_crying_is_sadness():
    """Eyes squeezed, knit brows (1+4), corners down or the lips pressed."""
    x = np.zeros(12)
    x[[C["left_eye"], C["right_eye"]]] = -1.0
    x[C["brow_crest"]] = 0.6
    x[[C["left_mouth_corner"], C["right_mouth_corner"]]] = -0.4
    assert str(ENGINE.evaluate(x[None]).labels[0]).startswith("sadness")
    x[[C["left_mouth_corner"], C["right_mouth_corner"]]] = 0.0
    x[C["mouth"]] = -0.6
    assert str(ENGINE.evaluate(x[None]).labels[0]).startswith("sadness")


def test_component_terms_rise_over_the_range():
    """The action terms reach 1 only at |x| = 0.8, so 'very' and 'very very' mean more of it."""
    for comp in FACS.components:
        for term in comp.terms:
            mf = FACS.component_mf(comp.name, term.code)
            if term.code == 0:
                assert mf(0.2) == 1 and mf(-0.2) == 1
            else:
                assert mf(0.2 * term.code) == 0 and mf(0.8 * term.code) == 1
                assert 0.4 < mf(0.5 * term.code) < 0.6
    assert set(COMPONENT_TERMS) == {c.name for c in FACS.components}
