"""docs/annotate.md checked against the code: its Python block runs, and its numbers, flags,
signatures, file paths, metadata keys and the astronaut example are read from the page and
compared with what the code does (so the test fails when the page and the code disagree).

The faces come with installed packages (scikit-image's astronaut, matplotlib's
grace_hopper.jpg); nothing is downloaded. Tests that landmark need mediapipe and OpenCV.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fuzzyemo
from fuzzyemo import CLASS_NAMES, COMPONENTS, EMOTIONS, RuleBase

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "annotate.md").read_text(encoding="utf-8")
FLAT = " ".join(PAGE.split())  # prose with line breaks folded, for phrases across lines


def section(title: str) -> str:
    start = PAGE.index(f"\n## {title}\n")
    end = PAGE.find("\n## ", start + 1)
    return " ".join(PAGE[start:end if end >= 0 else None].split())


def number(pattern: str, text: str = FLAT) -> str:
    m = re.search(pattern, text)
    assert m, f"docs/annotate.md no longer says {pattern!r}"
    return m.group(1)


# ----------------------------------------------------------------------------- static claims
def test_counts_on_the_page_match_the_code():
    from fuzzyemo._mediapipe import N_BLENDSHAPES, N_LANDMARKS

    assert int(number(r"MediaPipe finds (\d+) face landmarks")) == N_LANDMARKS
    assert int(number(r"into the (\d+) component measurements")) == len(COMPONENTS)
    assert int(number(r"the (\d+) scores and a label")) == len(CLASS_NAMES)
    assert int(number(r"MediaPipe's (\d+) blendshape scores")) == N_BLENDSHAPES
    assert f"`x_0..x_{N_LANDMARKS - 1}`" in FLAT
    assert f"`{COMPONENTS[0]}` ... `{COMPONENTS[-1]}`" in FLAT
    assert f"`{CLASS_NAMES[0]}` ... `{CLASS_NAMES[-1]}`" in FLAT


def test_numbers_and_defaults_match_the_code():
    from fuzzyemo._annotate import BASELINES
    from fuzzyemo._mediapipe import FaceLandmarker
    from fuzzyemo._smoothing import OneEuro
    from fuzzyemo._video import read_frames

    queue = int(number(r"bounded queue \((\d+) frames\)"))
    assert inspect.signature(fuzzyemo.annotate).parameters["queue_size"].default == queue
    assert inspect.signature(read_frames).parameters["queue_size"].default == queue
    presence = float(number(r"passed its presence threshold \((\d+(?:\.\d+)?)\)"))
    assert inspect.signature(FaceLandmarker).parameters[
        "min_presence_confidence"].default == presence
    params = inspect.signature(fuzzyemo.annotate).parameters
    assert number(r'`"(\w+)"` \(default\)', section("Baselines: what \"neutral\" is")) == \
        params["baseline"].default
    assert params["smoothing"].default is None and "Smoothing is off by default" in FLAT
    for word in BASELINES:
        assert f'`"{word}"`' in FLAT, word
    assert OneEuro("landmarks").beta == float(number(r"\(default (\d+) for landmarks"))
    assert OneEuro("measurements").beta == float(number(r"\(default \d+ for landmarks, (\d+) for"))


def test_signatures_on_the_page_match_the_code():
    """Every `name(args)` the page writes for a public fuzzyemo name: same parameter names in
    the same order and the same defaults (the code may have more, later parameters)."""
    calls = re.findall(r"`(?:[^`=()]*=\s*)?(?:fuzzyemo\.)?([A-Za-z_]\w*)\(([^`()]*)\)`", PAGE)
    checked = set()
    for name, args in calls:
        if not hasattr(fuzzyemo, name):
            continue
        call = ast.parse(f"f({args})", mode="eval").body
        page = [(a.id, inspect.Parameter.empty) for a in call.args]
        page += [(k.arg, ast.literal_eval(k.value)) for k in call.keywords]
        code = list(inspect.signature(getattr(fuzzyemo, name)).parameters.values())
        assert [p for p, _ in page] == [p.name for p in code[:len(page)]], name
        for (pname, default), param in zip(page, code, strict=False):
            if default is not inspect.Parameter.empty:
                assert param.default == default, (name, pname)
        checked.add(name)
    assert {"write_annotations", "read_annotations", "plot_timeline", "write_overlay",
            "OneEuro"} <= checked


def test_cli_synopsis_flags_exist():
    import typer

    from fuzzyemo.cli import app

    synopsis = number(r"`(fuzzyemo annotate [^`]*)`")
    flags = re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", synopsis)
    assert {"-o", "--rules", "--every", "--plot", "--overlay"} <= set(flags)
    cmd = typer.main.get_command(app).commands["annotate"]
    opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    assert set(flags) <= opts, set(flags) - opts


def test_install_commands_match_the_code():
    from fuzzyemo._mediapipe import APT_HINT, INSTALL_HINT

    assert INSTALL_HINT in FLAT
    apt = number(r"apt-get install -y --no-install-recommends ([\w .-]+?)\s*```", PAGE)
    assert apt.split() == APT_HINT.split("install ", 1)[1].split()
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["video"]
    minor = number(r"# mediapipe (\d+\.\d+)\.x")
    assert any(re.fullmatch(rf"mediapipe>={re.escape(minor)}(\.\d+)?,<.*", d) for d in extra)
    assert any(d.startswith("matplotlib") for d in extra)
    assert "opencv-python" not in " ".join(extra)


def test_suffixes_on_the_page_are_recognised():
    from fuzzyemo._video import _VIDEO_SUFFIXES, IMAGE_SUFFIXES

    images = number(r"\*\*Images\*\* \(`([^`]*)`\)").split()
    videos = number(r"OpenCV decodes \(`([^`]*)`\)").split()
    assert set(images) - {"..."} <= IMAGE_SUFFIXES
    assert set(videos) - {"..."} <= _VIDEO_SUFFIXES


def test_paths_and_cross_references_exist():
    paths = set(re.findall(r"\b((?:docs|fuzzyemo|benchmarks)/[\w./-]*\w)", PAGE))
    assert "fuzzyemo/models/face_landmarker.task" in paths
    for p in paths:
        assert (ROOT / p).exists(), p
    geometry = (ROOT / "docs" / "geometry.md").read_text()
    assert re.search(r"^## 5\. Baselines", geometry, re.M)
    assert re.search(r"^## 7\. .*\n+\* \*\*Head pitch and yaw are not removed", geometry, re.M)
    assert re.search(r"^## Annotate$", (ROOT / "docs" / "performance.md").read_text(), re.M)


def test_rules_named_on_the_page_exist():
    ids = set(RuleBase.default().compile().rule_ids)
    named = set(re.findall(r"`((?:happiness|surprise|anger|disgust|fear|sadness)-[\w/-]+)`",
                           PAGE))
    assert "happiness-12/high" in named
    assert named <= ids, named - ids


# ----------------------------------------------------------------------------- running it
# (the tests above need no optional package; the ones below skip without them)


@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'fuzzyemo[video]')")


@pytest.fixture(scope="module")
def ran(tmp_path_factory, cv2):
    """The page's Python block, run in a folder holding its placeholder inputs:
    interview.mp4 (astronaut, blank, astronaut) and photos/ (astronaut.png, grace.jpg)."""
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    pytest.importorskip("matplotlib", reason="plot_timeline needs matplotlib")
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the astronaut face")
    from matplotlib import cbook

    d = tmp_path_factory.mktemp("annotate_doc")
    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(d / "interview.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (512, 512))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v")
    for frame in (astro, np.zeros_like(astro), astro):
        writer.write(frame)
    writer.release()
    (d / "photos").mkdir()
    cv2.imwrite(str(d / "photos" / "astronaut.png"), astro)
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False),
                d / "photos" / "grace.jpg")
    blocks = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    assert len(blocks) == 1
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(d)
    try:
        exec(compile(blocks[0], "docs/annotate.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    return d, scope["df"]


def test_the_python_block_runs_and_writes_its_files(ran, cv2):
    d, df = ran
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 3 + 2  # one row per frame per face: 3 video frames, 2 photos
    assert df["source"].tolist() == ["interview.mp4"] * 3 + ["photos/astronaut.png",
                                                             "photos/grace.jpg"]
    back, meta = fuzzyemo.read_annotations(d / "interview.parquet")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert meta["rows"] == 5
    assert (d / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cap = cv2.VideoCapture(str(d / "overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 3


def test_parquet_metadata_keys_are_the_pages(ran):
    d, _ = ran
    text = number(r"schema metadata key `fuzzyemo`: (.*?) Read it back")
    listed = set(re.findall(r"`(\w+)`", text))
    _, meta = fuzzyemo.read_annotations(d / "interview.parquet")
    assert listed == set(meta)


def test_overlay_repeats_the_latest_annotated_frame(ran, cv2, tmp_path):
    """`every=2` landmarks frames 1 and 3; the overlay draws frame 1's landmarks on frame 2
    (blank in the source video), so its face area gets the dots."""
    d, _ = ran
    df = fuzzyemo.annotate(d / "interview.mp4", every=2, progress=False)
    assert df["frame"].tolist() == [1, 3]
    out = fuzzyemo.write_overlay(df, tmp_path / "o.mp4")
    cap = cv2.VideoCapture(str(out))
    frames = [cap.read()[1] for _ in range(3)]
    cap.release()
    xs, ys = df.filter(regex=r"^x_\d+$").iloc[0], df.filter(regex=r"^y_\d+$").iloc[0]
    box = frames[1][int(ys.min()):int(ys.max()), int(xs.min()):int(xs.max())]
    assert (box.max(axis=2) > 80).sum() > 300


def test_known_limits_astronaut_example(ran):
    """The numbers of the 'Known limits' astronaut bullet, read from the page."""
    d, df = ran
    bullet = number(r"(\* A broad smile drags .*?)\* Head pitch", section("Known limits"))
    row = df[df["source"] == "photos/astronaut.png"].iloc[0]  # still image: population face

    def close(value: float, stated: str, tol: float = 0.01) -> None:
        assert abs(value - float(stated)) <= tol, (value, stated)

    corners = number(r"both mouth corners fully raised \(x = (\d+(?:\.\d+)?)\)", bullet)
    close(row["left_mouth_corner"], corners)
    close(row["right_mouth_corner"], corners, 0.04)
    close(row["upper_lip"], number(r"upper lip raised \(\+(\d+(?:\.\d+)?)", bullet))
    close(row["bs_mouthUpperUpLeft"], number(r"`bs_mouthUpperUpLeft` (\d+(?:\.\d+)?)", bullet))
    close(row["nostril"], number(r"nostrils wide\s+\(\+(\d+(?:\.\d+)?)", bullet))
    close(row["mouth"], number(r"mouth barely open \(\+(\d+(?:\.\d+)?)", bullet))
    close(row["bs_mouthSmileLeft"], number(r"`bs_mouthSmileLeft` (\d+(?:\.\d+)?)", bullet))
    assert row["label"] == number(r"labels her `(\w+)`", bullet)
    engine = RuleBase.default().compile()
    x = row[list(COMPONENTS)].to_numpy(float)
    strength = {r["rule"]: r["strength"] for r in engine.explain(x, top=len(engine.rule_ids))}
    close(strength["happiness-12/high"],
          number(r"`happiness-12/high` fires at (\d+(?:\.\d+)?)", bullet))
    assert all(row[f"activation_{e}"] == 0 for e in EMOTIONS if e != "happiness")


# ----------------------------------------------------------------------------- input checks
def _example(prefix: str) -> str:
    """The page's indented example line starting with ``prefix``."""
    lines = [ln.strip() for ln in PAGE.splitlines() if ln.startswith("    " + prefix)]
    assert len(lines) == 1, f"docs/annotate.md has no single example line {prefix!r}"
    return lines[0]


def test_cut_short_jpeg_example_is_what_annotate_says(tmp_path, cv2, monkeypatch):
    """The page's error line, produced from matplotlib's grace_hopper.jpg cut in half."""
    from fuzzyemo._errors import InputError
    from fuzzyemo._video import collect_sources

    cbook = pytest.importorskip("matplotlib.cbook")
    data = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    example = _example("error: ")
    name = re.search(r"error: (\S+): damaged", example)[1]
    monkeypatch.chdir(tmp_path)
    Path(name).parent.mkdir(parents=True)
    Path(name).write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as info:
        collect_sources([name])
    assert f"error: {info.value}" == example


def test_truncated_video_example_is_the_warnings_wording():
    from fuzzyemo._video import Source, VideoEndedEarly

    example = _example("warning: clip.avi")
    m = re.fullmatch(r"warning: (\S+): the video ends after frame (\d+) of the (\d+) .*", example)
    assert m, example
    notice = VideoEndedEarly(Source(Path(m[1]), "video", int(m[3])), int(m[2]))
    assert f"warning: {notice.message()}" == example


def test_wrote_example_has_the_commands_form():
    """The same form tests/test_bad_inputs.py checks on a real run with all three outputs."""
    example = _example("wrote ")
    assert re.fullmatch(r"wrote \S+\.parquet \(\d+ rows, \d+ with a face\); timeline \S+\.png; "
                        r"overlay \S+\.mp4", example), example
    assert "test_annotate_lists_every_file_and_the_overlay_has_progress" in (
        ROOT / "tests" / "test_bad_inputs.py").read_text()
