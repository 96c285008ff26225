"""The facial-region graph: an option of ours for the spatial convolution (``spatial: regions``).

The paper's Eq. 4 passes messages between the views of a task (``spatial: views``, the
default; :class:`stf2m_model.model.ViewGraphConv`). This module gives the alternative, a
fixed graph over facial regions inside each frame. Nodes are 8 facial regions; every
landmark point belongs to exactly one region:

    0 left_brow   1 right_brow   2 left_eye   3 right_eye
    4 nose        5 upper_mouth  6 lower_mouth  7 jaw

("left"/"right" are the subject's own.) Edges join anatomically neighbouring regions,
the ones whose muscles pull on each other (FACS): the two brows (corrugator, the brow
crest), each brow with its eye and with the nose root (procerus), each eye with the nose
and with the jaw line (cheek), the nose with the upper lip (levator labii, nostril
flare), the two lips, and the lower lip with the jaw (mentalis, jaw drop).

Named anatomical points (the default input, ``landmarks: named``) have their region in
:data:`POINT_REGION`. With ``landmarks: raw`` and a landmark count of a shipped scheme (66
DISFA, 68 iBUG, 98 WFLW, 478 MediaPipe), each landmark goes to the region of the nearest
named point on the scheme's neutral template; for any other count the landmarks are
clustered (k-means on the mean face) into 8 regions joined by their 3 nearest neighbours.
"""

from __future__ import annotations

import numpy as np

REGIONS: tuple[str, ...] = ("left_brow", "right_brow", "left_eye", "right_eye", "nose",
                            "upper_mouth", "lower_mouth", "jaw")
EDGES: tuple[tuple[str, str], ...] = (
    ("left_brow", "right_brow"), ("left_brow", "left_eye"), ("right_brow", "right_eye"),
    ("left_brow", "nose"), ("right_brow", "nose"), ("left_eye", "nose"),
    ("right_eye", "nose"), ("left_eye", "jaw"), ("right_eye", "jaw"),
    ("nose", "upper_mouth"), ("upper_mouth", "lower_mouth"), ("lower_mouth", "jaw"),
)
# Named anatomical points (fuzzyemo landmark vocabulary) -> region.
POINT_REGION = {
    "left_brow_inner": 0, "left_brow_centre": 0, "left_brow_outer": 0,
    "right_brow_inner": 1, "right_brow_centre": 1, "right_brow_outer": 1,
    "left_eye_inner": 2, "left_eye_outer": 2, "left_eye_top": 2, "left_eye_bottom": 2,
    "left_pupil": 2,
    "right_eye_inner": 3, "right_eye_outer": 3, "right_eye_top": 3, "right_eye_bottom": 3,
    "right_pupil": 3,
    "nose_bridge_top": 4, "nose_tip": 4, "left_ala": 4, "right_ala": 4, "subnasale": 4,
    "upper_lip_top": 5, "upper_lip_bottom": 5, "left_mouth_corner": 5,
    "right_mouth_corner": 5, "left_mouth_inner_corner": 5, "right_mouth_inner_corner": 5,
    "lower_lip_top": 6, "lower_lip_bottom": 6, "chin": 7,
}
# Which component measurements (SPEC order) describe which region: node features.
COMPONENT_REGION = {
    "left_eyebrow": 0, "right_eyebrow": 1, "brow_crest": 4, "left_eye": 2, "right_eye": 3,
    "nose": 4, "nostril": 4, "mouth": 6, "upper_lip": 5, "lower_lip": 6,
    "left_mouth_corner": 5, "right_mouth_corner": 5,
}


def named_adjacency() -> np.ndarray:
    """The (8, 8) 0/1 adjacency of the named regions (symmetric, no self loops)."""
    a = np.zeros((len(REGIONS), len(REGIONS)))
    for u, v in EDGES:
        i, j = REGIONS.index(u), REGIONS.index(v)
        a[i, j] = a[j, i] = 1.0
    return a


def normalized_adjacency(a: np.ndarray) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2, the propagation matrix of a graph convolution."""
    a = np.asarray(a, dtype=float) + np.eye(len(a))
    d = 1.0 / np.sqrt(a.sum(1))
    return a * d[:, None] * d[None, :]


def region_assignment(n_points: int, mean_face: np.ndarray | None = None, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, str]:
    """(region of each landmark (K,), adjacency (8, 8), how it was derived)."""
    try:
        from fuzzyemo._landmarks import LandmarkScheme

        for name in LandmarkScheme.available():
            scheme = LandmarkScheme.load(name)
            if scheme.n_points != n_points or scheme.template is None:
                continue
            tpl = np.asarray(scheme.template, dtype=float)[:, :2]
            anchors, regions = [], []
            for point, idx in scheme.points.items():
                if point in POINT_REGION:
                    anchors.append(tpl[list(idx)].mean(0))
                    regions.append(POINT_REGION[point])
            anchors_a = np.asarray(anchors)
            d = ((tpl[:, None, :] - anchors_a[None]) ** 2).sum(-1)
            assign = np.asarray(regions)[d.argmin(1)]
            if len(np.unique(assign)) == len(REGIONS):
                return assign, named_adjacency(), f"landmark scheme {name}"
    except Exception:  # noqa: BLE001 - schemes are optional here; fall back to clustering
        pass
    if mean_face is None or not np.isfinite(mean_face).all():
        mean_face = np.stack([np.cos(np.arange(n_points)), np.sin(np.arange(n_points))], 1)
    return (*_cluster(np.asarray(mean_face, dtype=float), len(REGIONS), seed), "k-means")


def _cluster(face: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means (Lloyd, fixed seed) of the mean face's points; kNN adjacency of centroids."""
    k = min(k, len(face))
    rng = np.random.default_rng(seed)
    cent = face[rng.choice(len(face), size=k, replace=False)]
    for _ in range(50):
        assign = ((face[:, None] - cent[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([face[assign == j].mean(0) if (assign == j).any() else cent[j]
                        for j in range(k)])
        if np.allclose(new, cent):
            break
        cent = new
    d = ((cent[:, None] - cent[None]) ** 2).sum(-1) + np.eye(k) * 1e9
    a = np.zeros((len(REGIONS), len(REGIONS)))
    for i, nbrs in enumerate(np.argsort(d, 1)[:, :min(3, k - 1)]):
        a[i, nbrs] = a[nbrs, i] = 1.0
    return assign, a
