"""Head pose (``pose_Tx..pose_Rz``) in OpenFace 2.0's convention, from MediaPipe's matrix.

The Euler conversion is checked against OpenFace's own formulas (``Euler2RotationMatrix``,
``RotationMatrix2Euler`` in its ``RotationHelpers.h``); the port of MediaPipe's geometry
pipeline against MediaPipe's own matrices; the signs against real faces re-rendered with a
known rotation (tests/face_fixtures.py) and against mirrored and rotated photos.
"""

from __future__ import annotations

import numpy as np
import pytest

from fuzzyemo._pose import POSE_COLUMNS, openface_pose

F = np.diag([1.0, -1.0, -1.0])


def openface_euler(r: np.ndarray) -> np.ndarray:
    """OpenFace's RotationMatrix2Euler (quaternion form), transcribed: (pitch, yaw, roll)."""
    q0 = np.sqrt(1 + r[0, 0] + r[1, 1] + r[2, 2]) / 2
    q1 = (r[2, 1] - r[1, 2]) / (4 * q0)
    q2 = (r[0, 2] - r[2, 0]) / (4 * q0)
    q3 = (r[1, 0] - r[0, 1]) / (4 * q0)
    yaw = np.arcsin(np.clip(2 * (q0 * q2 + q1 * q3), -1, 1))
    pitch = np.arctan2(2 * (q0 * q1 - q2 * q3), q0 ** 2 - q1 ** 2 - q2 ** 2 + q3 ** 2)
    roll = np.arctan2(2 * (q0 * q3 - q1 * q2), q0 ** 2 + q1 ** 2 - q2 ** 2 - q3 ** 2)
    return np.array([pitch, yaw, roll])


def test_euler_angles_are_openfaces():
    """A MediaPipe matrix built from OpenFace's R = Rx Ry Rz (in MediaPipe's OpenGL axes,
    with MediaPipe's scale and a translation in cm) comes back as the same angles, equal to
    OpenFace's own quaternion formula, and the translation in mm in OpenCV axes."""
    from face_fixtures import rotation

    rng = np.random.default_rng(1)
    for _ in range(200):
        angles = rng.uniform(-80, 80, 3)
        r = rotation(*angles)
        m = np.eye(4)
        m[:3, :3] = F @ r @ F * rng.uniform(0.8, 1.2)   # OpenCV -> OpenGL axes, scaled
        t = rng.normal(0, 20, 3)
        m[:3, 3] = t
        pose = openface_pose(m)[0]
        np.testing.assert_allclose(np.degrees(pose[3:]), angles, atol=1e-9)
        np.testing.assert_allclose(pose[3:], openface_euler(r), atol=1e-9)
        np.testing.assert_allclose(pose[:3], [10 * t[0], -10 * t[1], -10 * t[2]], atol=1e-9)
    assert POSE_COLUMNS == ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
    assert np.isnan(openface_pose(np.full((4, 4), np.nan))).all()


# ----------------------------------------------------------------------------- real faces
mp = pytest.importorskip("mediapipe", reason="mediapipe is not installed")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (comes with mediapipe)")
pytest.importorskip("skimage", reason="scikit-image provides the astronaut face")
pytest.importorskip("matplotlib", reason="matplotlib provides grace_hopper.jpg")

from face_fixtures import rotate_image, turn  # noqa: E402

from fuzzyemo._mediapipe import FaceLandmarker, load_model, require_mediapipe  # noqa: E402
from fuzzyemo._pose import VERTICAL_FOV_DEG, canonical_face, transform_matrices  # noqa: E402


@pytest.fixture(scope="module")
def lm():
    with FaceLandmarker("image", verify=False) as landmarker:
        yield landmarker


@pytest.fixture(scope="module")
def triangles():
    return canonical_face(load_model()).triangles


def degrees(faces) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of the only face."""
    assert len(faces) == 1
    return np.degrees(faces.pose[0, 3:])


def test_canonical_face_from_the_bundle():
    c = canonical_face(load_model())
    assert c.vertices.shape == (468, 3) and c.triangles.shape == (898, 3)
    assert c.input_source == 1  # FACE_LANDMARK_PIPELINE: MediaPipe keeps the landmark z
    assert (c.weights > 0).sum() == 33 and c.triangles.max() == 467
    # x right, y up, z out of the face: the nose tip is the nearest point, eyes mirror-equal.
    assert c.vertices[:, 2].argmax() in (1, 4)
    np.testing.assert_allclose(c.vertices[33] * [-1, 1, 1], c.vertices[263], atol=1e-5)
    assert c.vertices[33, 0] < 0 < c.vertices[263, 0] and c.vertices[152, 1] < c.vertices[33, 1]


def test_port_reproduces_mediapipes_matrices(grace, astronaut):
    """MediaPipe's geometry pipeline, ported, gives MediaPipe's own matrix from the same
    landmarks (so faces landmarked on a crop get exactly the pose MediaPipe would give them
    in the whole picture)."""
    mpl, vision, base = require_mediapipe()
    opts = vision.FaceLandmarkerOptions(base_options=base(model_asset_buffer=load_model()),
                                        output_facial_transformation_matrixes=True,
                                        num_faces=2)
    canonical = canonical_face(load_model())
    with vision.FaceLandmarker.create_from_options(opts) as task:
        for img in (grace, astronaut, np.ascontiguousarray(grace[:, ::-1]),
                    rotate_image(cv2, astronaut, 25)):
            res = task.detect(mpl.Image(image_format=mpl.ImageFormat.SRGB,
                                        data=np.ascontiguousarray(img)))
            h, w = img.shape[:2]
            assert len(res.face_landmarks) == 1
            pts = np.array([[p.x * w, p.y * h, p.z * w] for p in res.face_landmarks[0]])
            ours = transform_matrices(pts[None], w, h, canonical)[0]
            theirs = res.facial_transformation_matrixes[0]
            np.testing.assert_allclose(ours[:3, :3], theirs[:3, :3], atol=1e-5)
            np.testing.assert_allclose(ours[:3, 3], theirs[:3, 3], atol=2e-3)  # cm


def test_frontal_faces_have_small_angles(lm, grace, astronaut):
    g = degrees(lm.detect(grace))
    assert np.abs(g).max() < 10, g
    a = degrees(lm.detect(astronaut))
    assert abs(a[1]) < 5 and abs(a[2]) < 8 and 0 < a[0] < 20, a  # she looks slightly down


def test_translation_is_the_head_position_in_mm(lm, grace):
    """pose_T*: where the head is, in mm, camera at the origin, z away from the camera; it
    projects (MediaPipe's camera: 63 degree vertical field of view, centred) into the face."""
    f = lm.detect(grace)
    tx, ty, tz = f.pose[0, :3]
    h, w = grace.shape[:2]
    focal = (h / 2) / np.tan(np.radians(VERTICAL_FOV_DEG) / 2)
    u, v = w / 2 + focal * tx / tz, h / 2 + focal * ty / tz
    xs, ys = f.landmarks[0, :, 0], f.landmarks[0, :, 1]
    assert xs.min() < u < xs.max() and ys.min() < v < ys.max()
    assert 300 < tz < 600  # a portrait: about half a metre for MediaPipe's average face


@pytest.mark.parametrize("yaw", [-30, -15, 15, 30])
def test_turning_the_head_gives_yaw_with_openfaces_sign(lm, grace, triangles, yaw):
    """A head turned to the subject's right (the nose to the image's left) has pose_Ry > 0.
    MediaPipe's z is flatter than a real head, so it reads about 0.7 of the rendered turn."""
    base = degrees(lm.detect(grace))
    turned = degrees(lm.detect(turn(cv2, grace, lm.detect(grace).landmarks[0], triangles,
                                    yaw=yaw))) - base
    assert np.sign(turned[1]) == np.sign(yaw) and 0.45 * abs(yaw) < abs(turned[1]) < 1.2 * abs(
        yaw), turned
    assert abs(turned[0]) < 6 and abs(turned[2]) < 4, turned


@pytest.mark.parametrize("pitch", [-20, 20])
def test_nodding_gives_pitch_with_openfaces_sign(lm, grace, triangles, pitch):
    """Chin down is pose_Rx > 0, chin up < 0."""
    base = degrees(lm.detect(grace))
    nod = degrees(lm.detect(turn(cv2, grace, lm.detect(grace).landmarks[0], triangles,
                                 pitch=pitch))) - base
    assert np.sign(nod[0]) == np.sign(pitch) and 0.5 * abs(pitch) < abs(nod[0]) < 1.3 * abs(
        pitch), nod
    assert abs(nod[1]) < 4 and abs(nod[2]) < 4, nod


def test_mirrored_image_flips_yaw_and_roll_not_pitch(lm, grace, astronaut, triangles):
    for img in (turn(cv2, grace, lm.detect(grace).landmarks[0], triangles, yaw=25, roll=20),
                turn(cv2, astronaut, lm.detect(astronaut).landmarks[0], triangles, yaw=-25,
                     roll=-20)):
        a = degrees(lm.detect(img))
        b = degrees(lm.detect(np.ascontiguousarray(img[:, ::-1])))
        assert abs(a[1]) > 8 and abs(a[2]) > 5, a
        assert np.sign(a[1]) == -np.sign(b[1]) and abs(a[1] + b[1]) < 4, (a, b)
        assert np.sign(a[2]) == -np.sign(b[2]) and abs(a[2] + b[2]) < 4, (a, b)
        assert abs(a[0] - b[0]) < 3, (a, b)


@pytest.mark.parametrize("theta", [-30, -15, 15, 30])
def test_rotating_the_picture_changes_roll_by_the_angle(lm, grace, astronaut, theta):
    """Rotating the photo counter-clockwise by theta rolls the head counter-clockwise on
    screen: pose_Rz changes by about -theta (positive roll is clockwise). Exactly, the head's
    rotation is pre-multiplied by a rotation about the camera axis, Rz(-theta) @ R, which
    also moves some of a pitched head's pitch into yaw (the astronaut looks down 15 deg)."""
    from face_fixtures import rotation

    for img in (grace, astronaut):
        base = degrees(lm.detect(img))
        rolled = degrees(lm.detect(rotate_image(cv2, img, theta)))
        assert abs((rolled[2] - base[2]) + theta) < 3, (theta, base, rolled)
        m = np.eye(4)
        m[:3, :3] = F @ rotation(0, 0, -theta) @ rotation(*base) @ F
        expected = np.degrees(openface_pose(m)[0, 3:])
        assert np.abs(rolled - expected).max() < 3, (theta, expected, rolled)


@pytest.mark.parametrize("mode", ["image", "video"])
def test_pose_identical_from_c_struct_and_public_api(grace, astronaut, mode):
    with FaceLandmarker(mode, verify=False) as fast, \
            FaceLandmarker(mode, fast=False, verify=False) as public:
        assert fast._fast is not None and public._fast is None
        for i, img in enumerate((grace, astronaut, np.zeros_like(grace), grace)):
            a, b = fast.detect(img, i * 40), public.detect(img, i * 40)
            np.testing.assert_array_equal(a.pose, b.pose)
            assert np.isfinite(a.pose).all()
