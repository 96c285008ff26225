"""``annotate`` end to end on real faces, plus its parts: reader, smoothing, writer, plots.

The test video is built here with cv2.VideoWriter from faces that ship with installed
packages (scikit-image's astronaut, matplotlib's grace_hopper.jpg): 3 astronaut frames, a
blank frame, 3 Grace Hopper frames. Nothing is downloaded.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from fuzzyemo import CLASS_NAMES, COMPONENTS, EMOTIONS
from fuzzyemo._errors import InputError
from fuzzyemo._smoothing import OneEuro, one_euro, smooth_tracks

# ----------------------------------------------------------------------------- smoothing
# (pure numpy: runs without mediapipe)


def test_one_euro_keeps_constants_and_passes_nan_gaps():
    t = np.arange(50) / 30
    x = np.full((50, 4, 2), 3.5)
    np.testing.assert_allclose(one_euro(x, t), x)
    x[10:13] = np.nan
    y = one_euro(x, t)
    assert np.isnan(y[10:13]).all() and np.isfinite(y[13:]).all()


def test_one_euro_reduces_jitter_and_follows_fast_moves():
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30
    clean = np.where(t < 5, 0.0, 1.0)[:, None] * np.ones((1, 6))  # a step at 5 s
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    y = one_euro(noisy, t, min_cutoff=1.0, beta=1.0)
    still = (t > 1) & (t < 4.9)
    assert np.std(y[still] - clean[still]) < 0.5 * np.std(noisy[still] - clean[still])
    # The step is followed: 0.3 s after it, more than 80% of the way there.
    after = (t > 5.3) & (t < 6)
    assert (y[after] > 0.8).all()
    # beta = 0 is a plain low-pass filter: smoother still, but it lags the step more.
    lag = one_euro(noisy, t, min_cutoff=1.0, beta=0.0)
    assert y[np.searchsorted(t, 5.2)].mean() > lag[np.searchsorted(t, 5.2)].mean()


def test_one_euro_is_vectorised_and_uses_real_time():
    t = np.array([0.0, 0.1, 0.2, 1.2])  # a dropped stretch before the last frame
    x = np.array([0.0, 0.0, 0.0, 1.0])[:, None, None] * np.ones((1, 478, 2))
    y = one_euro(x, t, min_cutoff=1.0, beta=0.0)
    assert y.shape == x.shape
    # Same alpha for every point; a long gap lets the output move further (larger dt).
    a = 1 / (1 + 1 / (2 * np.pi * 1.0 * 1.0))
    np.testing.assert_allclose(y[3], a, rtol=1e-12)
    with pytest.raises(InputError, match="one time per frame"):
        one_euro(x, t[:2])


def test_smooth_tracks_keeps_tracks_apart():
    t = np.tile(np.arange(20) / 30, 2)
    v = np.concatenate([np.zeros(20), np.ones(20)])[:, None]
    tracks = np.repeat([0, 1], 20)
    out = smooth_tracks(v, t, tracks, OneEuro("measurements", beta=0.0))
    np.testing.assert_allclose(out, v)  # each track constant: nothing bleeds across


def test_one_euro_settings_are_checked():
    assert OneEuro.parse(None) is None and OneEuro.parse("landmarks").beta == 10.0
    assert OneEuro.parse("measurements").beta == 1.0
    with pytest.raises(InputError, match="target"):
        OneEuro.parse("pixels")
    with pytest.raises(InputError, match="min_cutoff"):
        OneEuro(min_cutoff=0)
    with pytest.raises(InputError, match="beta"):
        OneEuro(beta=-1)
    with pytest.raises(InputError, match="smoothing must be"):
        OneEuro.parse(3)


# ----------------------------------------------------------------------------- fixtures
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'fuzzyemo[video]')")


@pytest.fixture(scope="module")
def faces_bgr():
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the astronaut face")
    cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib provides grace_hopper.jpg")
    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    grace = cv2.resize(grace[44:556], (512, 512))
    return astro, grace


@pytest.fixture(scope="module")
def media(tmp_path_factory, faces_bgr):
    """Images, a folder, a 7-frame test video (frame 4 blank) and broken files."""
    d = tmp_path_factory.mktemp("media")
    astro, grace = faces_bgr
    cv2.imwrite(str(d / "astronaut.png"), astro)
    cv2.imwrite(str(d / "grace.jpg"), grace)
    cv2.imwrite(str(d / "blank.png"), np.full((240, 320, 3), 200, np.uint8))
    video = d / "clip.avi"  # MJPG in AVI: written by every OpenCV build
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (512, 512))
    assert writer.isOpened()
    for f in (astro, astro, astro, np.zeros_like(astro), grace, grace, grace):
        writer.write(f)
    writer.release()
    folder = d / "folder"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), astro)
    cv2.imwrite(str(folder / "b.jpg"), grace)
    (folder / "notes.txt").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    (d / "corrupt.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (d / "empty_dir").mkdir()
    return d


mp_needed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mediapipe") is None,
    reason="mediapipe is not installed (pip install 'fuzzyemo[video]')")


@pytest.fixture(scope="module")
def rb():
    """The shipped rules, parsed once (annotate also takes a loaded RuleBase)."""
    from fuzzyemo import RuleBase

    return RuleBase.default()


@pytest.fixture(scope="module")
def video_df(media):
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    from fuzzyemo._annotate import annotate

    return annotate(media / "clip.avi", progress=False)


# ----------------------------------------------------------------------------- reader
def test_sources_and_frames(media):
    from fuzzyemo._video import collect_sources, read_frames

    src = collect_sources([media / "clip.avi", media / "folder", media / "grace.jpg"])
    assert [s.kind for s in src] == ["video", "image", "image", "image"]
    assert [s.path.name for s in src] == ["clip.avi", "a.png", "b.jpg", "grace.jpg"]
    v = src[0]
    assert (v.width, v.height, v.fps) == (512, 512, 10.0) and v.n_frames == 7
    frames = list(read_frames(src, every=3))
    got = [(f.source.path.name, f.number, round(f.timestamp, 3)) for f in frames]
    assert got == [("clip.avi", 1, 0.0), ("clip.avi", 4, 0.3), ("clip.avi", 7, 0.6),
                   ("a.png", 1, 0.0), ("b.jpg", 1, 0.0), ("grace.jpg", 1, 0.0)]
    assert all(f.rgb.dtype == np.uint8 and f.rgb.shape == (512, 512, 3) for f in frames)
    # RGB, not BGR: the astronaut's orange suit (red > blue) in the bottom-left area.
    img = frames[3].rgb
    assert img[400:500, 50:150, 0].mean() > img[400:500, 50:150, 2].mean() + 40
    # The threaded and the plain reader agree.
    plain = list(read_frames(src, every=3, threaded=False))
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(frames, plain, strict=True))


def test_reader_queue_is_bounded_and_stops_when_closed(media):
    from fuzzyemo._video import collect_sources, read_frames

    src = collect_sources([media / "clip.avi"] * 6)  # 42 frames
    before = threading.active_count()
    gen = read_frames(src, queue_size=2)
    first = next(gen)
    time.sleep(0.3)  # the producer fills the queue and must then wait, not decode everything
    assert first.number == 1
    gen.close()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
    assert not any(t.name == "fuzzyemo-decode" for t in threading.enumerate())


@pytest.mark.parametrize("name, message", [
    ("missing.png", "no such file"),
    ("empty.png", "file is empty"),
    ("corrupt.jpg", "not a readable image"),
    ("corrupt.mp4", "cannot decode|no decodable frames"),
    ("empty_dir", "folder has no images or videos"),
])
def test_bad_inputs_are_one_line_errors_naming_the_file(media, name, message):
    from fuzzyemo._video import collect_sources

    with pytest.raises(InputError, match=message) as info:
        collect_sources([media / "astronaut.png", media / name])
    text = str(info.value)
    assert name in text and "\n" not in text


def test_every_must_be_positive(media):
    from fuzzyemo._video import read_frames

    with pytest.raises(InputError, match="every"):
        next(read_frames([], every=0))


# ----------------------------------------------------------------------------- annotate
@mp_needed
def test_video_rows_columns_and_unknown_frame(video_df):
    df = video_df
    assert len(df) == 7 and df["frame"].tolist() == list(range(1, 8))
    np.testing.assert_allclose(df["timestamp"], np.arange(7) / 10.0)
    assert df["face_id"].eq(0).all() and df["source"].str.endswith("clip.avi").all()
    assert df["success"].tolist() == [1, 1, 1, 0, 1, 1, 1]
    # Column layout (OpenFace-like), in order.
    cols = list(df.columns)
    assert cols[:6] == ["source", "frame", "face_id", "timestamp", "confidence", "success"]
    # OpenFace's pose columns right after success, then the quality reasons.
    assert cols[6:13] == ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz",
                          "quality"]
    x0 = cols.index("x_0")
    assert cols[x0 + 1] == "x_1" and cols[x0 + 478] == "y_0" and cols[x0 + 956 - 1] == "y_477"
    comp = cols.index("left_eyebrow")
    assert cols[comp:comp + 12] == list(COMPONENTS)
    for name in ([f"{c}_code" for c in COMPONENTS] + [f"activation_{e}" for e in EMOTIONS]
                 + [f"eccentricity_{e}" for e in EMOTIONS] + list(CLASS_NAMES)
                 + ["label", "class_index", "bs_neutral", "bs_mouthSmileLeft", "bs_jawOpen"]):
        assert name in df.columns, name
    assert sum(c.startswith("bs_") for c in cols) == 52
    # The blank frame: unknown, class -2, NaN numbers, confidence 0.
    blank = df.iloc[3]
    assert blank["label"] == "unknown" and blank["class_index"] == -2
    assert blank["confidence"] == 0.0
    assert np.isnan(blank[["x_0", "y_477", "mouth", "anger_high", "bs_jawOpen", "pose_Tx",
                           "pose_Rz"]].astype(float)).all()
    assert blank["quality"] == ""
    assert pd.isna(blank["mouth_code"])
    # Face frames: finite landmarks in pixels and measurements, known labels.
    faces = df[df["success"] == 1]
    assert np.isfinite(faces[list(COMPONENTS)].to_numpy(float)).all()
    assert faces["x_0"].between(0, 512).all() and faces["y_0"].between(0, 512).all()
    # Frontal, whole, large faces that re-landmark consistently: no reason, confidence 1.
    assert faces["quality"].eq("").all() and faces["confidence"].eq(1.0).all()
    assert (np.degrees(faces[["pose_Rx", "pose_Ry", "pose_Rz"]].abs()) < 20).all().all()
    assert (faces["class_index"] >= -1).all()
    assert (faces["bs_mouthSmileLeft"].iloc[:3] > 0.5).all()  # the astronaut smiles


@mp_needed
def test_video_self_calibration_puts_the_smile_above_the_neutral_face(video_df):
    """Self-calibrated on the video's own frames, the astronaut's smiling frames read raised
    mouth corners relative to the Grace Hopper frames (both faces share the track here)."""
    astro = video_df.iloc[:3]
    grace = video_df.iloc[4:]
    for side in ("left_mouth_corner", "right_mouth_corner"):
        assert astro[side].min() > grace[side].max() + 0.3


@mp_needed
def test_images_folder_and_every(media, rb):
    from fuzzyemo._annotate import annotate

    df = annotate([media / "folder", media / "blank.png"], rules=rb, progress=False)
    assert [p.rsplit("/", 1)[-1] for p in df["source"]] == ["a.png", "b.jpg", "blank.png"]
    assert df["frame"].tolist() == [1, 1, 1] and df["timestamp"].tolist() == [0.0, 0.0, 0.0]
    assert df["success"].tolist() == [1, 1, 0]
    assert df["label"].iloc[2] == "unknown"
    # Still images use the population baseline by default: the smile reads raised corners.
    a = df.iloc[0]
    assert a["left_mouth_corner"] >= 0.6 and a["right_mouth_corner"] >= 0.6
    assert df.attrs["fuzzyemo"]["baseline"].startswith("auto")
    stepped = annotate(media / "clip.avi", every=2, rules=rb, progress=False)
    assert stepped["frame"].tolist() == [1, 3, 5, 7]
    assert stepped["success"].tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(stepped["timestamp"], [0.0, 0.2, 0.4, 0.6])


@mp_needed
def test_baseline_options(media, tmp_path, rb):
    from fuzzyemo._annotate import annotate
    from fuzzyemo._geometry import Baseline

    img = media / "astronaut.png"
    pop = annotate(img, baseline="population", rules=rb, progress=False)
    auto = annotate(img, rules=rb, progress=False)
    np.testing.assert_allclose(pop[list(COMPONENTS)], auto[list(COMPONENTS)])
    # "self" on one still of a broad smile: the blendshapes show an expression, so the smile
    # is not taken as the neutral face; the population's is used, with a warning.
    from fuzzyemo import NeutralWarning

    with pytest.warns(NeutralWarning, match="no neutral stretch"):
        own = annotate(img, baseline="self", rules=rb, progress=False)
    np.testing.assert_allclose(own[list(COMPONENTS)], pop[list(COMPONENTS)])
    assert not own["baseline_frame"].any() and own["label"].iloc[0].startswith("happiness")
    # A baseline file of the astronaut's own face (geometry and blendshapes): zeros.
    from fuzzyemo._geometry import Calibration, raw_features
    from fuzzyemo._landmarks import LandmarkScheme

    lm = np.stack([own.filter(regex=r"^x_\d+$").to_numpy(float),
                   own.filter(regex=r"^y_\d+$").to_numpy(float)], axis=2)
    bs = own.filter(regex=r"^bs_").to_numpy(float)
    b = Baseline(raw_features(LandmarkScheme.load("mediapipe478").named(lm))[0], "astronaut",
                 1, evidence=Calibration.default().evidence(bs)[0])
    path = tmp_path / "neutral.json"
    b.save(path)
    np.testing.assert_allclose(Baseline.load(path).evidence, b.evidence)
    given = annotate(img, baseline=path, rules=rb, progress=False)
    np.testing.assert_allclose(given[list(COMPONENTS)].to_numpy(float), 0.0, atol=1e-5)
    with pytest.raises(InputError, match="baseline"):
        annotate(img, baseline="median", rules=rb, progress=False)


@mp_needed
def test_inference_is_one_batched_call(media, monkeypatch, rb):
    from fuzzyemo import _engine
    from fuzzyemo._annotate import annotate

    calls = []
    real = _engine.Engine.evaluate

    def spy(self, x, **kw):
        calls.append(np.shape(x))
        return real(self, x, **kw)

    monkeypatch.setattr(_engine.Engine, "evaluate", spy)
    df = annotate([media / "clip.avi", media / "folder"], rules=rb, progress=False)
    # One call per unit of work (the video's 7 frames, each still), never one per frame.
    assert calls == [(7, 12), (1, 12), (1, 12)] and len(df) == 9
    calls.clear()
    annotate([media / "folder"], rules=rb, progress=False, baseline="self")
    assert calls == [(2, 12)]  # under "self" a folder's stills are one unit


@mp_needed
def test_smoothing_options(media, video_df, rb):
    from fuzzyemo._annotate import annotate

    raw = video_df
    for spec in ("landmarks", "measurements", OneEuro("measurements", min_cutoff=0.5)):
        sm = annotate(media / "clip.avi", smoothing=spec, rules=rb, progress=False)
        assert sm["success"].tolist() == raw["success"].tolist()
        assert sm["label"].iloc[3] == "unknown"
        # The first frame of a track passes unchanged (for landmark smoothing its landmarks:
        # its measurements move with the self-calibrated baseline, made of smoothed frames).
        target = spec if isinstance(spec, str) else spec.target
        col = "x_0" if target == "landmarks" else "left_mouth_corner"
        assert sm[col].iloc[0] == pytest.approx(raw[col].iloc[0], abs=1e-6)
        # Within the run of astronaut frames the smoothed values vary less than the raw ones.
        assert np.ptp(sm[col].iloc[:3]) <= np.ptp(raw[col].iloc[:3]) + 1e-9
        x = sm[list(COMPONENTS)].to_numpy(float)
        assert np.nanmax(np.abs(x)) <= 1.0
        assert sm.attrs["fuzzyemo"]["smoothing"]["target"] == (
            spec if isinstance(spec, str) else spec.target)
    # The blank frame restarts the filter: the first Grace frame after it passes unchanged.
    assert sm["left_mouth_corner"].iloc[4] == pytest.approx(raw["left_mouth_corner"].iloc[4],
                                                            abs=1e-6)


@mp_needed
def test_option_errors(media, rb):
    from fuzzyemo._annotate import annotate

    for kwargs, msg in (({"every": 0}, "every"), ({"max_faces": 0}, "max_faces"),
                        ({"smoothing": "pixels"}, "smoothing target")):
        with pytest.raises(InputError, match=msg):
            annotate(media / "astronaut.png", rules=rb, progress=False, **kwargs)
    with pytest.raises(InputError, match="corrupt.jpg"):
        annotate([media / "astronaut.png", media / "corrupt.jpg"], rules=rb, progress=False)


@mp_needed
def test_two_faces_get_ids(tmp_path, faces_bgr, rb):
    from fuzzyemo._annotate import annotate

    astro, grace = faces_bgr
    both = np.zeros((300, 600, 3), np.uint8)
    both[:, :300] = astro[20:320, 100:400]
    both[:, 300:] = grace[20:320, 80:380]
    cv2.imwrite(str(tmp_path / "two.png"), both)
    df = annotate(tmp_path / "two.png", max_faces=2, rules=rb, progress=False)
    assert df["face_id"].tolist() == [0, 1] and df["success"].tolist() == [1, 1]
    assert df["x_1"].iloc[0] < 300 < df["x_1"].iloc[1]  # ids left to right
    video = tmp_path / "two.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (600, 300))
    for _ in range(4):
        w.write(both)
    w.release()
    dv = annotate(video, max_faces=2, rules=rb, progress=False)
    assert len(dv) == 8 and dv["success"].eq(1).all()
    for fid in (0, 1):  # each id stays on its face
        xs = dv.loc[dv["face_id"] == fid, "x_1"]
        assert np.ptp(xs) < 20


@mp_needed
def test_progress_bar_on_stderr(media, capfd, rb):
    from fuzzyemo._annotate import annotate

    annotate(media / "clip.avi", rules=rb, progress=True)
    out, err = capfd.readouterr()
    assert "frames/s" in err and "7/7" in err and "frames/s" not in out


# ----------------------------------------------------------------------------- writing
@mp_needed
def test_write_parquet_metadata_and_identical_bytes(video_df, media, tmp_path):
    from fuzzyemo import RuleBase, __version__
    from fuzzyemo._annotate import annotate, read_annotations, write_table
    from fuzzyemo._mediapipe import MODEL_SHA256

    a = write_table(video_df, tmp_path / "a.parquet")
    again = annotate(media / "clip.avi", progress=False)  # a second, independent run
    b = write_table(again, tmp_path / "b.parquet")
    assert a.read_bytes() == b.read_bytes()
    back, meta = read_annotations(a)
    assert meta["rules_sha256"] == RuleBase.default().sha256
    assert meta["fuzzyemo_version"] == __version__
    assert meta["model_sha256"] == MODEL_SHA256
    assert meta["landmark_scheme"] == "mediapipe478" and meta["frames"] == 7
    assert "timing" not in str(meta)
    pd.testing.assert_frame_equal(back, video_df, check_dtype=False)
    assert {p.name for p in tmp_path.iterdir()} == {"a.parquet", "b.parquet"}  # no temp files
    from fuzzyemo._files import default_mode as _default_mode

    assert a.stat().st_mode & 0o777 == _default_mode()  # not mkstemp's private 0600


@mp_needed
def test_write_csv_by_suffix(video_df, tmp_path):
    from fuzzyemo._annotate import write_table

    path = write_table(video_df, tmp_path / "out.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == list(video_df.columns) and len(back) == 7
    assert back["label"].iloc[3] == "unknown"
    with pytest.raises(InputError, match="does not exist"):
        write_table(video_df, tmp_path / "nope" / "out.parquet")


# ----------------------------------------------------------------------------- plots
@mp_needed
def test_timeline_png(video_df, media, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    from fuzzyemo._plots import plot_timeline

    out = plot_timeline(video_df, tmp_path / "timeline.png")
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 500 and img.shape[1] > 800
    # Same table, same picture.
    plot_timeline(video_df, tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == out.read_bytes()
    with pytest.raises(InputError, match="not in the table"):
        plot_timeline(video_df, tmp_path / "x.png", source="other.mp4")


@mp_needed
def test_overlay_mp4(video_df, tmp_path):
    from face_fixtures import video_frames

    from fuzzyemo._plots import write_overlay

    out = write_overlay(video_df, tmp_path / "overlay.mp4")
    frames = video_frames(cv2, out)
    assert len(frames) == 7 and frames[0].shape == (512, 512, 3)
    # Landmarks are drawn on face frames (the picture changes) and not on the blank one.
    src = cv2.VideoCapture(str(video_df["source"].iloc[0]))
    originals = [src.read()[1] for _ in range(7)]
    src.release()
    diff = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in
            zip(frames, originals, strict=True)]
    assert diff[0] > 2 * diff[3]


@mp_needed
def test_broken_rules_stop_the_run(media, rules_copy):
    from fuzzyemo import RuleBaseError
    from fuzzyemo._annotate import annotate

    f = rules_copy / "engine.yaml"
    f.write_text(f.read_text().replace("tnorm: min", "tnorm: minimum"))
    with pytest.raises(RuleBaseError, match="engine.yaml"):
        annotate(media / "clip.avi", rules=rules_copy, progress=False)


@mp_needed
def test_rules_directory_calibration_is_used(media, rules_copy, rb):
    """A rule directory's own calibration.yaml is read: with the right mouth corner measured
    by geometry alone against Grace Hopper's face (no dead zone, no blendshapes), doubling its
    'plus' and 'minus' constants halves its (unclipped) reading."""
    import re

    from fuzzyemo._annotate import annotate

    cal = rules_copy / "calibration.yaml"
    text = cal.read_text()
    start = text.index("  right_mouth_corner:")
    geometry_only = re.sub(r"(?m)^    spread: .*\n", "    spread: 0.0\n",
                           text[start:].split("    blendshapes:")[0], count=1)
    cal.write_text(text[:start] + geometry_only)
    base = annotate(media / "grace.jpg", rules=rules_copy, progress=False)
    cal.write_text(text[:start] + geometry_only.replace("plus: 0.10", "plus: 0.20", 1)
                   .replace("minus: 0.06", "minus: 0.12", 1))
    wide = annotate(media / "grace.jpg", rules=rules_copy, progress=False)
    a, b = base["right_mouth_corner"].iloc[0], wide["right_mouth_corner"].iloc[0]
    assert abs(a) > 0.01 and b == pytest.approx(a / 2, rel=1e-6)
    assert wide["left_mouth_corner"].iloc[0] == base["left_mouth_corner"].iloc[0]
    assert wide.attrs["fuzzyemo"]["calibration_sha256"] != base.attrs["fuzzyemo"][
        "calibration_sha256"]


@mp_needed
def test_cli_detector_verify_and_min_confidence(media, tmp_path):
    from typer.testing import CliRunner

    from fuzzyemo._annotate import read_annotations
    from fuzzyemo.cli import app

    out = tmp_path / "a.parquet"
    res = CliRunner().invoke(app, ["annotate", str(media / "astronaut.png"), "-o", str(out),
                                   "--max-faces", "3", "--detector", "short-range",
                                   "--no-verify", "--min-confidence", "0.5",
                                   "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    df, meta = read_annotations(out)
    assert (meta["detector"], meta["verify"], meta["min_confidence"]) == (
        "short-range", False, 0.5)
    assert df["success"].tolist() == [1] and df["quality"].tolist() == [""]
    bad = CliRunner().invoke(app, ["annotate", str(media / "astronaut.png"), "-o", str(out),
                                   "--detector", "yunet"])
    assert bad.exit_code == 2 and "detector" in bad.output
