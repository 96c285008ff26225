"""MediaPipe front end on real faces that ship with installed packages (no network).

Faces: scikit-image's ``astronaut`` (Eileen Collins, smiling with parted lips) and
matplotlib's ``grace_hopper.jpg`` (neutral-ish portrait); both public domain.
"""

from __future__ import annotations

import hashlib
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="mediapipe is not installed (pip install 'fuzzyemo[video]')")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (comes with mediapipe)")

from fuzzyemo import COMPONENTS, RuleBase  # noqa: E402
from fuzzyemo._errors import InputError  # noqa: E402
from fuzzyemo._geometry import Baseline, measure, raw_features  # noqa: E402
from fuzzyemo._landmarks import LandmarkScheme  # noqa: E402
from fuzzyemo._mediapipe import (  # noqa: E402
    BLENDSHAPE_NAMES,
    MODEL_PATH,
    MODEL_SHA256,
    FaceLandmarker,
    load_model,
    require_mediapipe,
)

C = {c: i for i, c in enumerate(COMPONENTS)}

# The MediaPipe -> iBUG-68 correspondence (the one rules/landmarks/mediapipe478.yaml cites):
# jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips 60-67.
MP_TO_IBUG68 = [
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    78, 82, 13, 312, 308, 317, 14, 87,
]


@pytest.fixture(scope="module")
def faces(astronaut, grace):
    with FaceLandmarker("image") as lm:
        return {"astronaut": lm.detect(astronaut), "grace": lm.detect(grace),
                "blank": lm.detect(np.zeros((480, 640, 3), np.uint8))}


# ----------------------------------------------------------------------------- model
def test_vendored_model_is_the_official_one():
    assert MODEL_PATH.is_file()
    assert hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest() == MODEL_SHA256
    notice = (MODEL_PATH.parent / "NOTICE.md").read_text()
    assert MODEL_SHA256 in notice and "Apache" in notice
    assert (MODEL_PATH.parent / "LICENSE-APACHE-2.0").is_file()


def test_corrupt_model_is_refused_with_the_file_named(tmp_path):
    bad = tmp_path / "face_landmarker.task"
    data = bytearray(MODEL_PATH.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"face_landmarker\.task: .*sha256.*expected"):
        load_model(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_model(tmp_path / "missing.task")
    # A user's own model skips the hash check but must still exist.
    shutil.copy(MODEL_PATH, tmp_path / "mine.task")
    assert load_model(tmp_path / "mine.task", sha256=None) == MODEL_PATH.read_bytes()


def test_missing_mediapipe_gives_one_line_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(InputError) as info:
        require_mediapipe()
    msg = str(info.value)
    assert "\n" not in msg and 'pip install "fuzzyemo[video]"' in msg
    with pytest.raises(InputError, match="fuzzyemo\\[video\\]"):
        FaceLandmarker("image")


# ----------------------------------------------------------------------------- landmarks
@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_landmarks_found_in_pixels(faces, astronaut, grace, name):
    img = {"astronaut": astronaut, "grace": grace}[name]
    f = faces[name]
    assert len(f) == 1
    assert f.landmarks.shape == (1, 478, 3) and f.landmarks.dtype == np.float32
    assert f.blendshapes.shape == (1, 52) and np.isfinite(f.blendshapes).all()
    assert f.confidence.tolist() == [1.0] and f.quality.tolist() == [""]
    assert f.pose.shape == (1, 6) and np.isfinite(f.pose).all()
    h, w = img.shape[:2]
    x, y = f.landmarks[0, :, 0], f.landmarks[0, :, 1]
    # Pixels, not normalised: the face spans tens of pixels and lies inside the image.
    assert x.min() >= 0 and x.max() <= w and y.min() >= 0 and y.max() <= h
    assert np.ptp(x) > 60 and np.ptp(y) > 60
    # Subject's right eye (33) is on the image's left of the left eye (263); mouth below eyes.
    assert x[33] < x[263] and y[13] > y[33]


def test_no_face_gives_empty_arrays(faces):
    f = faces["blank"]
    assert len(f) == 0 and f.landmarks.shape == (0, 478, 3) and f.blendshapes.shape == (0, 52)


def test_blendshape_names_match_the_model(astronaut):
    mp, vision, base = require_mediapipe()
    opts = vision.FaceLandmarkerOptions(base_options=base(model_asset_path=str(MODEL_PATH)),
                                        output_face_blendshapes=True)
    with vision.FaceLandmarker.create_from_options(opts) as task:
        res = task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=astronaut))
    assert tuple(c.category_name for c in res.face_blendshapes[0]) == BLENDSHAPE_NAMES
    assert [c.index for c in res.face_blendshapes[0]] == list(range(52))


def test_smile_blendshapes(faces):
    bs = dict(zip(BLENDSHAPE_NAMES, faces["astronaut"].blendshapes[0], strict=True))
    assert bs["mouthSmileLeft"] > 0.5 and bs["mouthSmileRight"] > 0.5
    gs = dict(zip(BLENDSHAPE_NAMES, faces["grace"].blendshapes[0], strict=True))
    assert gs["mouthSmileLeft"] < 0.2 and gs["mouthSmileRight"] < 0.2


def test_same_image_same_landmarks(astronaut, faces):
    with FaceLandmarker("image") as lm:
        again = lm.detect(astronaut)
    np.testing.assert_array_equal(again.landmarks, faces["astronaut"].landmarks)


# ----------------------------------------------------------------------------- modes, lifetime
def test_video_mode_tracks_and_fixes_non_increasing_timestamps(astronaut):
    with FaceLandmarker("video") as lm:
        a = lm.detect(astronaut, timestamp_ms=0)
        b = lm.detect(astronaut, timestamp_ms=0)    # repeated: moved to 1 ms, no error
        c = lm.detect(astronaut, timestamp_ms=-5)   # backwards: moved to 2 ms
        assert len(a) == len(b) == len(c) == 1
        assert lm._last_ms == 2
        with pytest.raises(InputError, match="timestamp"):
            lm.detect(astronaut)
    # Tracking refines the same still frame only slightly.
    assert np.abs(b.landmarks - a.landmarks)[..., :2].max() < 5


def test_closed_after_with_block_and_bad_arguments(astronaut):
    with FaceLandmarker("image") as lm:
        pass
    assert lm._task is None
    with pytest.raises(InputError, match="closed"):
        lm.detect(astronaut)
    lm.close()  # closing twice is harmless
    with pytest.raises(InputError, match="mode"):
        FaceLandmarker("stream")
    with pytest.raises(InputError, match="max_faces"):
        FaceLandmarker("image", max_faces=0)
    with FaceLandmarker("image") as lm2, pytest.raises(InputError, match="RGB uint8"):
        lm2.detect(astronaut.astype(np.float32))


def test_closed_even_when_the_block_raises(astronaut):
    with pytest.raises(RuntimeError, match="boom"), FaceLandmarker("image") as lm:
        raise RuntimeError("boom")
    assert lm._task is None


def test_two_faces(astronaut, grace):
    # Side by side, each face filling its half (MediaPipe's short-range detector misses
    # faces that are small in a wide picture).
    both = np.zeros((300, 600, 3), np.uint8)
    both[:, :300] = astronaut[20:320, 100:400]
    both[:, 300:] = grace[50:350, 100:400]
    with FaceLandmarker("image", max_faces=2) as lm:
        f = lm.detect(both)
    with FaceLandmarker("image", max_faces=1) as lm:
        assert len(lm.detect(both)) == 1
    assert len(f) == 2
    centres = np.sort(f.landmarks[:, :, 0].mean(axis=1))
    assert centres[0] < 300 < centres[1]


# ----------------------------------------------------------------------------- geometry
def test_measurements_finite_on_real_faces(faces):
    for name in ("astronaut", "grace"):
        x = measure(faces[name].landmarks, "mediapipe478", baseline="population")
        assert x.shape == (1, 12) and np.isfinite(x).all(), name
        assert (np.abs(x) <= 1).all()


def test_grace_is_close_to_the_population_face(faces):
    """A relaxed portrait reads near 0 on every component against the mean face."""
    x = measure(faces["grace"].landmarks, "mediapipe478", baseline="population")[0]
    assert np.abs(x).max() < 0.4, dict(zip(COMPONENTS, x.round(2), strict=True))


def test_smiling_astronaut_has_raised_mouth_corners(faces):
    for baseline in ("population", Baseline.from_landmarks(faces["grace"].landmarks,
                                                           "mediapipe478")):
        x = measure(faces["astronaut"].landmarks, "mediapipe478", baseline=baseline)[0]
        assert x[C["left_mouth_corner"]] >= 0.6 and x[C["right_mouth_corner"]] >= 0.6
    # Against another person's neutral face (no population dead zone) the parted lips show;
    # against the population's, the smile's 0.1 IOD is within people's ordinary spread.
    assert x[C["mouth"]] > 0.2
    g = measure(faces["grace"].landmarks, "mediapipe478", baseline="population")[0]
    assert x[C["left_mouth_corner"]] > g[C["left_mouth_corner"]] + 0.5


def test_smiling_astronaut_is_labelled_happiness(faces):
    x = measure(faces["astronaut"].landmarks, "mediapipe478", baseline="population")
    res = RuleBase.default().compile().evaluate(x)
    assert str(res.labels[0]).startswith("happiness")


def test_478_points_and_their_68_point_subset_measure_alike(faces):
    """The same face through the mediapipe478 scheme and through iBUG-68 (its 478 points
    picked with the MediaPipe -> iBUG correspondence): the raw features agree exactly except
    the brow ones (mediapipe478 averages the inner brow's upper and lower contour, iBUG has one
    point), which differ by a constant that each scheme's own baseline cancels; measurements
    then agree within 0.05 on every component (stated tolerance)."""
    mp, ib = LandmarkScheme.load("mediapipe478"), LandmarkScheme.load("ibug68")
    A, G = faces["astronaut"].landmarks, faces["grace"].landmarks
    for L in (A, G):
        r_mp = raw_features(mp.named(L))[0]
        r_ib = raw_features(ib.named(L[:, MP_TO_IBUG68]))[0]
        same = [i for i in range(12) if i not in (0, 1, 2)]
        np.testing.assert_allclose(r_mp[same], r_ib[same], atol=1e-5)
        assert np.abs(r_mp - r_ib).max() < 0.15  # brows: a few hundredths of an IOD
    x_mp = measure(A, mp, baseline=Baseline.from_landmarks(G, mp))
    x_ib = measure(A[:, MP_TO_IBUG68], ib, baseline=Baseline.from_landmarks(G[:, MP_TO_IBUG68],
                                                                            ib))
    np.testing.assert_allclose(x_mp, x_ib, atol=0.05)


@pytest.mark.parametrize("mode", ["image", "video"])
def test_c_struct_results_equal_the_public_api(astronaut, grace, mode):
    """The fast path (arrays read from MediaPipe's C result struct) is active on mediapipe
    1.2 and gives exactly the numbers of MediaPipe's public result objects."""
    blank = np.zeros_like(astronaut)
    with FaceLandmarker(mode) as fast, FaceLandmarker(mode, fast=False) as public:
        assert fast._fast is not None and public._fast is None
        for i, img in enumerate((astronaut, astronaut, blank, grace, grace)):
            a, b = fast.detect(img, i * 40), public.detect(img, i * 40)
            assert len(a) == len(b)
            np.testing.assert_array_equal(a.landmarks, b.landmarks)
            np.testing.assert_array_equal(a.blendshapes, b.blendshapes)
            np.testing.assert_array_equal(a.confidence, b.confidence)
            np.testing.assert_array_equal(a.pose, b.pose)  # from the matrices, read both ways
            assert a.quality.tolist() == b.quality.tolist()
