"""Quality reasons and confidence (fuzzyemo._quality), on numbers and on real faces.

Real faces: matplotlib's grace_hopper.jpg and scikit-image's astronaut (public domain),
moved, cut, shrunk and re-rendered with known head turns (tests/face_fixtures.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fuzzyemo._quality import (
    IOD_MIN_PX,
    MEASURED_POINTS,
    MISFIT_LIMIT,
    PITCH_LIMIT_DEG,
    REASONS,
    YAW_LIMIT_DEG,
    assess,
    pose_excess,
    pose_factor,
)


def face(iod: float = 60.0, shift=(300.0, 300.0)) -> np.ndarray:
    """A stand-in face (478 points) with eye corners giving eye centres ``iod`` apart."""
    rng = np.random.default_rng(0)
    lm = rng.uniform(-iod, iod, (478, 3))
    lm[:, 2] *= 0.2
    lm[[33, 133], :] = [[-iod * 0.75, 0, 0], [-iod * 0.25, 0, 0]]
    lm[[263, 362], :] = [[iod * 0.75, 0, 0], [iod * 0.25, 0, 0]]
    lm[:, :2] += shift
    return lm


def pose_row(pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> np.ndarray:
    return np.array([0.0, 0.0, 500.0, math.radians(pitch), math.radians(yaw),
                     math.radians(roll)])


def one(lm=None, pose=None, w=640, h=480, misfit=np.nan):
    q, c = assess((face() if lm is None else lm)[None], (pose_row() if pose is None else pose
                                                         )[None], w, h, np.array([misfit]))
    return q[0], float(c[0])


# ----------------------------------------------------------------------------- the rules
def test_a_clean_face_has_no_reason_and_confidence_one():
    assert one() == ("", 1.0)
    assert REASONS == ("misfit", "pose", "edge", "small")


@pytest.mark.parametrize("yaw, pitch, flagged", [
    (0, 0, False), (29.9, 0, False), (-29.9, 24.9, False), (30.1, 0, True), (-31, 0, True),
    (0, 25.1, True), (0, -26, True), (60, 0, True), (0, 0, False)])
def test_every_pose_beyond_the_limit_is_flagged(yaw, pitch, flagged):
    q, c = one(pose=pose_row(pitch, yaw, roll=50))  # roll never matters
    assert ("pose" in q) == flagged
    assert (c < 0.5) == flagged and (c == 1.0) == (not flagged)
    assert c == pytest.approx(pose_factor(yaw, pitch))


def test_pose_factor_formula():
    assert (YAW_LIMIT_DEG, PITCH_LIMIT_DEG) == (30.0, 25.0)
    assert pose_factor(30, 25) == 1.0
    assert pose_factor(60, 0) == pytest.approx(0.25)
    assert pose_factor(0, 50) == pytest.approx(0.25)
    assert pose_factor(45, 30) == pytest.approx(0.5 / 1.5)
    np.testing.assert_allclose(pose_excess(np.array([pose_row(10, 45)])), [1.5])
    # A grid: flagged exactly when beyond either limit, and then always below 0.5.
    for yaw in np.linspace(-90, 90, 37):
        for pitch in np.linspace(-60, 60, 25):
            beyond = abs(yaw) > YAW_LIMIT_DEG or abs(pitch) > PITCH_LIMIT_DEG
            f = pose_factor(yaw, pitch)
            assert (f < 0.5) == beyond and (f == 1.0) == (not beyond)


def test_misfit_small_edge_and_their_product():
    assert one(misfit=0.05) == ("", 1.0)
    q, c = one(misfit=0.2)
    assert q == "misfit" and c == pytest.approx(0.5 * MISFIT_LIMIT / 0.2)
    q, c = one(misfit=np.inf)  # not found again: counts as 0.5 IOD
    assert q == "misfit" and c == pytest.approx(0.1)
    q, c = one(face(iod=15.0))
    assert q == "small" and c == pytest.approx(15.0 / IOD_MIN_PX)
    # Half the landmarks beyond the right border, the measured points among them.
    lm = face()
    lm[:, 0] = np.where(np.arange(478) % 2 == 0, 700.0, lm[:, 0])
    lm[MEASURED_POINTS[0], 0] = 700.0
    q, c = one(lm)
    assert q == "edge" and c == pytest.approx(0.4)
    # Only points the geometry does not measure outside: the share inside.
    lm = face()
    outside = np.setdiff1d(np.arange(478), MEASURED_POINTS)[:48]
    lm[outside, 1] = -5.0
    q, c = one(lm)
    assert q == "edge" and c == pytest.approx(1 - 48 / 478)
    # Reasons combine, in order, and their factors multiply.
    q, c = one(face(iod=20.0), pose=pose_row(yaw=45), misfit=0.25)
    assert q == "misfit,pose,small"
    assert c == pytest.approx((0.5 * 0.1 / 0.25) * (0.5 / 1.5) * (20 / 30))


def test_no_face_rows_and_missing_pose():
    lm = np.full((2, 478, 3), np.nan)
    lm[1] = face()
    pose = np.full((2, 6), np.nan)
    q, c = assess(lm, pose, 640, 480)
    assert q.tolist() == ["", ""] and c.tolist() == [0.0, 1.0]
    q, c = assess(np.empty((0, 478, 3)), np.empty((0, 6)), 640, 480)
    assert len(q) == len(c) == 0


def test_measured_points_are_the_schemes():
    from fuzzyemo._landmarks import LandmarkScheme

    scheme = LandmarkScheme.load("mediapipe478")
    used = {i for name, idx in scheme.points.items()
            if name not in ("right_pupil", "left_pupil", "chin", "forehead") for i in idx}
    assert used == set(MEASURED_POINTS.tolist())


# ----------------------------------------------------------------------------- real faces
mp = pytest.importorskip("mediapipe", reason="mediapipe is not installed")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (comes with mediapipe)")
pytest.importorskip("skimage", reason="scikit-image provides the astronaut face")
pytest.importorskip("matplotlib", reason="matplotlib provides grace_hopper.jpg")

from face_fixtures import turn  # noqa: E402

from fuzzyemo._mediapipe import FaceLandmarker, load_model  # noqa: E402
from fuzzyemo._pose import canonical_face  # noqa: E402


@pytest.fixture(scope="module")
def lm():
    with FaceLandmarker("image") as landmarker:
        yield landmarker


def test_real_frontal_faces_are_clean_and_reproduced(lm, grace, astronaut):
    for img in (grace, astronaut):
        f = lm.detect(img)
        assert f.quality.tolist() == [""] and f.confidence.tolist() == [1.0]
        assert 0 <= f.misfit[0] < 0.05  # the second landmarking agrees within 5% of the IOD


def test_misfit_check_catches_landmarks_that_are_not_the_face(lm, grace):
    good = lm.detect(grace).landmarks
    shifted = good.copy()
    shifted[:, :, 0] += 0.35 * np.ptp(good[0, :, 0])  # a mesh a third of a face off
    d = lm.check(grace, np.concatenate([good, shifted]))
    assert d[0] < MISFIT_LIMIT < d[1]
    assert np.isinf(lm.check(np.full_like(grace, 90), good))[0]  # nothing there at all
    q, c = assess(shifted, lm.detect(grace).pose, grace.shape[1], grace.shape[0], d[1:])
    assert q.tolist() == ["misfit"] and c[0] < 0.5


def test_a_slid_mesh_in_a_still_is_replaced_by_the_reproducible_one(lm, grace):
    """Stills: a mesh that the second landmarking contradicts is replaced by the second one
    when a third landmarking reproduces it (the face then is no misfit)."""
    from fuzzyemo._mediapipe import Faces
    from fuzzyemo._quality import iod_3d

    good = lm.detect(grace)
    slid = good.landmarks.copy()
    slid[:, :, 1] += 0.3 * np.ptp(good.landmarks[0, :, 1])  # the mesh slid down the face
    faces = Faces(slid, good.blendshapes, good.confidence, good.pose)
    d, second = lm._check(grace, slid)
    assert d[0] > MISFIT_LIMIT and second[0] is not None
    fixed, d2 = lm._repair(grace, faces, d, second)
    assert d2[0] < MISFIT_LIMIT
    gap = np.linalg.norm(fixed.landmarks[0, :, :2] - good.landmarks[0, :, :2], axis=1).mean()
    assert gap / iod_3d(good.landmarks)[0] < 0.05
    assert np.abs(np.degrees(fixed.pose[0, 3:] - good.pose[0, 3:])).max() < 3


def test_a_face_cut_by_the_border_is_edge(lm, grace):
    f = lm.detect(grace)
    x0 = int(np.median(f.landmarks[0, :, 0]))  # cut through the middle of the face
    cut = np.ascontiguousarray(grace[:, x0 - 20:])
    g = lm.detect(cut)
    assert len(g) == 1 and "edge" in g.quality[0] and g.confidence[0] <= 0.4


def test_a_small_face_is_small(lm, grace):
    tiny = cv2.resize(grace, None, fx=0.28, fy=0.28, interpolation=cv2.INTER_AREA)
    f = lm.detect(np.ascontiguousarray(tiny))
    assert len(f) == 1 and f.quality[0] == "small"
    from fuzzyemo._quality import iod_3d

    assert f.confidence[0] == pytest.approx(iod_3d(f.landmarks)[0] / IOD_MIN_PX, rel=1e-6)


@pytest.fixture(scope="module")
def turned(grace, astronaut, lm, tmp_path_factory):
    """Stills of both faces re-rendered with head turns and nods, some beyond the limits."""
    tri = canonical_face(load_model()).triangles
    d = tmp_path_factory.mktemp("turned")
    poses = [(0, 0), (0, 20), (0, -20), (0, 50), (0, -50), (20, 0), (-20, 0), (40, 0),
             (0, 35), (0, -35)]
    for name, img in (("grace", grace), ("astronaut", astronaut)):
        base = lm.detect(img).landmarks[0]
        for pitch, yaw in poses:
            out = turn(cv2, img, base, tri, pitch=pitch, yaw=yaw)
            cv2.imwrite(str(d / f"{name}_p{pitch:+03d}_y{yaw:+03d}.png"),
                        cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    return d


def test_every_turned_face_beyond_the_limit_is_flagged_in_the_table(turned):
    from fuzzyemo._annotate import annotate

    df = annotate(turned, progress=False)
    faces = df[df["success"] == 1]
    assert len(faces) >= 16  # a few extreme renders may not be found at all
    yaw = np.degrees(faces["pose_Ry"].abs())
    pitch = np.degrees(faces["pose_Rx"].abs())
    beyond = (yaw > YAW_LIMIT_DEG) | (pitch > PITCH_LIMIT_DEG)
    flagged = faces["quality"].str.contains("pose")
    assert (beyond == flagged).all()
    assert (faces.loc[beyond, "confidence"] < 0.5).all()
    assert beyond.sum() >= 4  # the 50 degree turns and the 40 degree nod
    # The rendered 50-degree turns that were found are all beyond the limit.
    wide = faces["source"].str.contains(r"y\+50|y-50")
    assert wide.sum() >= 2 and flagged[wide].all()
    # Labels stay the rule output by default; min_confidence turns them unknown.
    strict = annotate(turned, progress=False, min_confidence=0.5)
    low = strict["success"].eq(1) & strict["confidence"].lt(0.5)
    assert low.sum() == beyond.sum()
    assert strict.loc[low, "label"].eq("unknown").all()
    assert strict.loc[low, "class_index"].eq(-2).all()
    assert np.isfinite(strict.loc[low, "mouth"]).all()  # measurements kept
    keep = ~low
    assert strict.loc[keep, "label"].tolist() == df.loc[keep, "label"].tolist()
    assert strict.attrs["fuzzyemo"]["min_confidence"] == 0.5


def test_video_faces_are_checked_when_tracks_start_and_every_second(tmp_path, grace,
                                                                    monkeypatch):
    from fuzzyemo._annotate import VIDEO_CHECK_S, annotate

    frames = [grace] * 3 + [np.zeros_like(grace)] + [grace] * 16
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                        (grace.shape[1], grace.shape[0]))
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    calls = []
    real = FaceLandmarker.check

    def spy(self, rgb, landmarks):
        calls.append(len(landmarks))
        return real(self, rgb, landmarks)

    monkeypatch.setattr(FaceLandmarker, "check", spy)
    df = annotate(path, progress=False)
    # Track 1 starts at 0.0 s; track 2 starts at 0.4 s (after the blank frame) and is
    # re-checked at 1.5 s (at 1.4 s, 1.4 - 0.4 falls a hair short of 1.0 in floating point):
    # three checks for 19 face frames.
    assert VIDEO_CHECK_S == 1.0 and len(calls) == 3
    faces = df[df["success"] == 1]
    assert len(faces) == 19 and faces["quality"].eq("").all()
    assert faces["confidence"].eq(1.0).all()
    calls.clear()
    annotate(path, progress=False, verify=False)
    assert calls == []

    # The checks run beside the landmarking; each result reaches exactly the frames that
    # carry it, by timestamp: a misfit found by track 2's first check (0.4 s) marks its
    # frames up to the re-check at 1.5 s, and no others.
    def misfit_on_second(self, rgb, landmarks):
        calls.append(len(landmarks))
        return np.full(len(landmarks), 0.5 if len(calls) == 2 else 0.01)

    monkeypatch.setattr(FaceLandmarker, "check", misfit_on_second)
    df = annotate(path, progress=False)
    flagged = df.loc[df["quality"].str.contains("misfit"), "frame"].tolist()
    assert len(calls) == 3 and flagged == list(range(5, 16))  # frames are 1-based
