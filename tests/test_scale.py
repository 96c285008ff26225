"""Annotate and build at scale (fuzzyemo._scale): parallel runs give the serial run's bytes,
partitioned outputs read by four libraries, resume, bad sources, Ctrl-C, progress, fsspec
URLs, and a real Dask ``LocalCluster`` on loopback (2 worker processes): same rows as the
local run, a killed worker's source retried, resume.

Media are generated here from faces that ship with installed packages (scikit-image's
astronaut, matplotlib's grace_hopper.jpg); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fuzzyemo._errors import InputError
from fuzzyemo._scale.progress import RunProgress
from fuzzyemo._scale.units import media_units
from fuzzyemo._video import Source

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- no media
def test_units_group_a_folders_stills_only_under_self(tmp_path):
    a, b = Source(tmp_path / "x" / "a.png", "image"), Source(tmp_path / "x" / "b.png", "image")
    v = Source(tmp_path / "v.mp4", "video", 30, 30.0)
    c = Source(tmp_path / "y" / "c b?.png", "image")
    auto = media_units([a, v, b, c], "auto")
    assert [u.sources for u in auto] == [(a,), (v,), (b,), (c,)]
    own = media_units([a, v, b, c], "self")
    # The folder's stills are one unit, placed at its first member; other folders apart.
    assert [u.sources for u in own] == [(a, b), (v,), (c,)]
    assert own[0].label == f"stills in {tmp_path / 'x'}" and own[0].frames == 2
    names = [u.part_name for u in auto] + [own[0].part_name, own[2].part_name]
    assert len(set(names)) == len(names)  # one part per unit, never two units in one file
    assert own[1].part_name == auto[1].part_name  # the video is the same unit either way
    assert all(n.endswith(".parquet") and "/" not in n and " " not in n and "?" not in n
               for n in names)
    # Stable across runs and independent of the other inputs (that is what resume finds).
    assert media_units([c], "auto")[0].part_name == auto[3].part_name
    assert v.name.endswith("v.mp4") and auto[1].part_name.startswith("v.mp4-")


def test_progress_counts_frames_across_workers_and_retries():
    import io

    stream = io.StringIO()
    bar = RunProgress(3, 30, enabled=True, every=1, stream=stream)
    bar.event(["start", 0, "host:1"])
    bar.event(["frames", 0, 6])
    bar.event(["start", 1, "host:2"])
    bar.event(["frames", 1, 4])
    assert bar.frames_done == 10
    bar.event(["start", 0, "host:3"])  # unit 0 again: its worker died, it starts over
    assert bar.frames_done == 4
    bar.event(["frames", 0, 10])
    bar.finished(0, 12, estimate=10)  # the container said 10, the video had 12 frames
    assert (bar.frames_done, bar.frames_total) == (16, 32)
    bar.finished(1, 10, estimate=10)
    bar.finished(2, 0, estimate=10, failed=True)
    assert (bar.frames_done, bar.frames_total, bar.units_done, bar.units_failed) == \
        (22, 22, 2, 1)
    bar.close()
    lines = stream.getvalue().splitlines()
    # Not a terminal: a line per finished unit (every=1) and a last one, no bar.
    assert len(lines) == 3 and lines[0].startswith("annotate: 1/3 sources, 16/32 frames, ")
    assert "frames/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("annotate: 2/3 sources, 22/22 frames") and "1 failed" in lines[-1]


def test_performance_page_names_the_benchmarks_real_flags():
    import re

    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    section = text[text.index("## Annotate at scale"):].split("**Machine:**")[0]
    assert "`python benchmarks/scale.py --frames 300 --repeats 7`" in section
    flags = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", section))
    usage = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--help"],
                           capture_output=True, text=True, check=True).stdout
    assert flags and all(f in usage for f in flags), flags


def test_output_paths(tmp_path):
    from fuzzyemo._scale.parts import Output

    f = Output.parse(str(tmp_path / "a.parquet"))
    assert not f.dataset and not f.remote
    d = Output.parse(str(tmp_path / "run") + "/")
    assert d.dataset and d.path == str(tmp_path / "run")
    d.check()
    assert (tmp_path / "run").is_dir() and Output.parse(tmp_path / "run").dataset
    assert Output.parse("s3://bucket/run/").remote and Output.parse("s3://b/run/").dataset
    assert Output.parse(f"file://{tmp_path}/b.parquet").path == f"{tmp_path}/b.parquet"
    with pytest.raises(InputError, match="output directory .* does not exist"):
        Output.parse(str(tmp_path / "no" / "run") + "/").check()
    with pytest.raises(InputError, match="does not exist"):
        Output.parse(tmp_path / "no" / "a.parquet").check()


# ----------------------------------------------------------------------------- media
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'fuzzyemo[video]')")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                reason="mediapipe is not installed")


def _video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Two stills, a 7-frame clip (frame 4 blank), a 60-frame clip, and damaged files."""
    from face_fixtures import load_grace
    from skimage import data

    d = tmp_path_factory.mktemp("scale_media")
    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    grace = cv2.resize(cv2.cvtColor(load_grace(cv2), cv2.COLOR_RGB2BGR)[44:556], (512, 512))
    cv2.imwrite(str(d / "astronaut.png"), astro)
    cv2.imwrite(str(d / "grace.jpg"), grace)
    _video(d / "clip.avi", [astro, astro, astro, np.zeros_like(astro), grace, grace, grace])
    small = [cv2.resize(f, (256, 256)) for f in (astro, grace)]
    _video(d / "long.avi", [small[(k // 15) % 2] for k in range(60)])
    (d / "corrupt.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    png = (d / "astronaut.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 2])  # a good header, then nothing
    return d


def inputs(media: Path) -> list[str]:
    return [str(media / n) for n in ("clip.avi", "astronaut.png", "grace.jpg")]


def annotate_to(*args, **kwargs):
    import fuzzyemo

    kwargs.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short clips have no neutral stretch
        return fuzzyemo.annotate_to(*args, **kwargs)


def parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def serial(media, tmp_path_factory):
    """The serial run (one worker): a single file and a dataset folder."""
    d = tmp_path_factory.mktemp("serial")
    one = annotate_to(inputs(media), d / "one.parquet", workers=1)
    ds = annotate_to(inputs(media), str(d / "parts") + "/", workers=1)
    return d, one, ds


def test_parallel_run_writes_the_serial_runs_bytes(media, serial, tmp_path):
    d, one, ds = serial
    assert one.rows == 9 and one.faces == 8 and not one.failed
    two = annotate_to(inputs(media), tmp_path / "two.parquet", workers=2)
    assert (tmp_path / "two.parquet").read_bytes() == (d / "one.parquet").read_bytes()
    out = annotate_to(inputs(media), str(tmp_path / "parts") + "/", workers=2)
    assert parts(tmp_path / "parts") == parts(d / "parts")  # same names, same bytes
    assert len(out.written) == 3 and two.rows == out.rows == ds.rows == 9
    # The dataset's rows are the single file's rows (a part per source, in any order).
    single = pd.read_parquet(d / "one.parquet")
    rows = pd.read_parquet(d / "parts")
    order = {s: i for i, s in enumerate(inputs(media))}
    rows = rows.sort_values(["source", "frame", "face_id"], key=lambda c: c.map(order)
                            if c.name == "source" else c, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, single)
    # And the in-memory API gives the same table with workers=2.
    import fuzzyemo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = fuzzyemo.annotate(inputs(media), progress=False, workers=2)
    pd.testing.assert_frame_equal(df, single)


def test_parts_carry_provenance_and_four_libraries_read_the_folder(media, serial):
    import pyarrow.dataset as pads

    from fuzzyemo import RuleBase
    from fuzzyemo._table import read_metadata

    d, _, ds = serial
    folder = d / "parts"
    names = sorted(p.name for p in folder.iterdir())
    units = media_units([Source(Path(s), "x") for s in inputs(media)], "auto")
    assert names == sorted(u.part_name for u in units)
    meta = read_metadata(folder / units[0].part_name)
    assert meta["rules_sha256"] == RuleBase.default().sha256
    assert meta["inputs"] == [inputs(media)[0]] and meta["rows"] == 7 and meta["frames"] == 7
    part = meta["part"]
    assert part["sources"][0]["name"] == inputs(media)[0]
    assert part["sources"][0]["bytes"] == os.path.getsize(inputs(media)[0])
    assert len(part["sources"][0]["sha256"]) == 64 and len(part["resume_key"]) == 64
    assert (meta["every"], meta["max_faces"], meta["detector"]) == (1, 1, "auto")

    expected = pd.read_parquet(d / "one.parquet")
    key = ["source", "frame", "face_id"]

    def same(df: pd.DataFrame) -> None:
        df = df.sort_values(key).reset_index(drop=True)
        want = expected.sort_values(key).reset_index(drop=True)
        assert list(df.columns) == list(want.columns) and len(df) == len(want) == 9
        assert df["label"].tolist() == want["label"].tolist()
        np.testing.assert_array_equal(df["x_0"].to_numpy(float), want["x_0"].to_numpy(float))

    same(pd.read_parquet(folder))
    same(pads.dataset(folder, format="parquet").to_table().to_pandas())
    dd = pytest.importorskip("dask.dataframe", reason="the [distributed] extra")
    same(dd.read_parquet(str(folder)).compute())
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets")
    hf = datasets.load_dataset("parquet", data_dir=str(folder), split="train",
                               cache_dir=str(d / "hf-cache"))
    same(hf.to_pandas())


def test_rerun_skips_finished_parts_and_redoes_changed_ones(media, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for n in ("clip.avi", "astronaut.png", "grace.jpg"):
        (src / n).write_bytes((media / n).read_bytes())
    ins = [str(src / n) for n in ("clip.avi", "astronaut.png", "grace.jpg")]
    out = str(tmp_path / "run") + "/"
    first = annotate_to(ins, out, workers=1)
    assert len(first.written) == 3 and not first.reused
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    # A temp file left by a killed worker is cleared; readers ignore it meanwhile.
    stale = tmp_path / "run" / f".{media_units([Source(Path(ins[1]), 'image')], 'auto')[0].part_name}.x1.tmp"
    stale.write_bytes(b"half a part")
    again = annotate_to(ins, out, workers=1)
    assert len(again.reused) == 3 and not again.written and again.rows == first.rows == 9
    assert again.faces == first.faces == 8
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == stamp
    # Another size (the PNG with bytes after its end): only that source is redone.
    with open(src / "astronaut.png", "ab") as f:
        f.write(b"\0" * 16)
    changed = annotate_to(ins, out, workers=1)
    assert len(changed.reused) == 2 and [Path(p).name for p in changed.written] == [
        n for n in stamp if n.startswith("astronaut")]
    # Replaced by another file of exactly the same size and mtime: the probe notices.
    grace = src / "grace.jpg"
    st = grace.stat()
    data = bytearray(grace.read_bytes())
    data[-3] ^= 0xFF  # a byte inside the last 64 KiB (the JPEG's end marker stays)
    grace.write_bytes(bytes(data))
    os.utime(grace, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert grace.stat().st_size == st.st_size and grace.stat().st_mtime_ns == st.st_mtime_ns
    replaced = annotate_to(ins, out, workers=1)
    assert len(replaced.reused) == 2 and [Path(p).name for p in replaced.written] == [
        n for n in stamp if n.startswith("grace")]
    # Other options change the rows: every part is redone (same names, replaced).
    other = annotate_to(ins, out, workers=1, min_confidence=0.5)
    assert len(other.written) == 3 and not other.reused
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(stamp)
    no = annotate_to(ins, out, workers=1, min_confidence=0.5, resume=False)
    assert len(no.written) == 3
    # A subset run leaves the other parts alone and says so.
    sub = annotate_to(ins[:1], out, workers=1, min_confidence=0.5)
    assert len(sub.reused) == 1 and sub.other_parts == 2


def test_bad_sources_are_reported_and_skipped_or_stop_under_strict(media, tmp_path):
    ins = [str(media / "astronaut.png"), str(media / "corrupt.jpg"),
           str(media / "truncated.png"), str(media / "grace.jpg")]
    out = str(tmp_path / "run") + "/"
    rep = annotate_to(ins, out, workers=1)
    assert len(rep.failed) == 2 and len(rep.written) == 2 and rep.rows == 2
    assert rep.failed[0].startswith(str(media / "corrupt.jpg")) and "\n" not in rep.failed[0]
    assert rep.failed[1].startswith(str(media / "truncated.png"))
    assert "damaged image" in rep.failed[1]  # found by the end-marker walk (issue 12)
    # One file: the others' rows are written all the same.
    single = annotate_to(ins, tmp_path / "one.parquet", workers=1)
    assert single.rows == 2 and len(single.failed) == 2
    # --strict: a bad header stops before any work; a bad body stops at it, keeping the
    # parts finished before it.
    with pytest.raises(InputError, match="corrupt.jpg"):
        annotate_to(ins, str(tmp_path / "strict") + "/", workers=1, strict=True)
    assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").iterdir())
    # A PNG cut short is found by the image check (its end-marker walk) before any work
    # starts, so --strict stops with no part written.
    with pytest.raises(InputError, match=r"truncated.png: damaged image"):
        annotate_to([ins[0], ins[2], ins[3]], str(tmp_path / "strict") + "/", workers=1,
                    strict=True)
    assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").iterdir())
    # Nothing usable at all is an error (found before any work: the one input is damaged).
    with pytest.raises(InputError, match=r"no usable inputs \(1 bad: .*truncated.png"):
        annotate_to([ins[2]], tmp_path / "none.parquet", workers=1)


def test_output_is_checked_before_any_work(media, tmp_path, monkeypatch):
    from fuzzyemo import _annotate

    def boom(*a, **k):
        raise AssertionError("landmarking started before the output was checked")

    monkeypatch.setattr(_annotate, "_landmark_all", boom)
    with pytest.raises(InputError, match="does not exist"):
        annotate_to(inputs(media), tmp_path / "missing" / "out.parquet")
    with pytest.raises(InputError, match="does not exist"):
        annotate_to(inputs(media), str(tmp_path / "missing" / "run") + "/")


def test_fsspec_urls(media, serial, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    d, _, _ = serial
    ins = inputs(media)[1:]
    rep = annotate_to(ins, "memory://fuzzyemo-test/run/", workers=1)
    fs = fsspec.filesystem("memory")
    got = {p.rsplit("/", 1)[-1]: fs.cat(p) for p in fs.ls("/fuzzyemo-test/run", detail=False)}
    want = {n: b for n, b in parts(d / "parts").items() if n in got}
    assert len(got) == 2 and got == want  # an upload holds the bytes a local write has
    again = annotate_to(ins, "memory://fuzzyemo-test/run/", workers=1)
    assert len(again.reused) == 2 and rep.rows == again.rows == 2
    annotate_to(inputs(media), f"file://{tmp_path}/one.parquet", workers=1)
    assert (tmp_path / "one.parquet").read_bytes() == (d / "one.parquet").read_bytes()


def test_progress_is_a_bar_on_a_terminal():
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    with RunProgress(2, 20, enabled=True, stream=stream) as bar:
        bar.event(["start", 0, "host:1"])
        bar.event(["frames", 0, 10])
        bar.finished(0, 10, estimate=10)
        bar.finished(1, 10, estimate=10)
    out = stream.getvalue()
    # The shared bar layout (fuzzyemo._progress.rich_bar) with the frames/s column; no lines.
    assert "━" in out and "20/20" in out and "frames/s" in out and "annotate 2/2 sources" in out
    assert "annotate: " not in out


def test_progress_lines_when_stderr_is_not_a_terminal(media, capfd):
    import fuzzyemo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fuzzyemo.annotate(inputs(media), progress=True)
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("annotate: ")]
    assert lines[-1].startswith("annotate: 3/3 sources, 9/9 frames, ") and "frames/s" in \
        lines[-1]
    assert any(ln.startswith("annotate: 1/3 sources") for ln in lines)


def _killer(monkeypatch, target: int, seen: list[list]) -> None:
    """Kill the worker process running unit ``target`` at its first frame count."""
    real = RunProgress.event
    pids: dict[int, int] = {}
    killed: list[int] = []

    def event(self, ev):
        seen.append(list(ev))
        if ev[0] == "start":
            pids[int(ev[1])] = int(str(ev[2]).rsplit(":", 1)[1])
        elif ev[0] == "frames" and int(ev[1]) == target and not killed:
            killed.append(pids[target])
            os.kill(pids[target], signal.SIGKILL)
        return real(self, ev)

    monkeypatch.setattr(RunProgress, "event", event)


def _poison(x: int) -> int:
    """A task for the local pool: task 1 kills its worker process every time."""
    from fuzzyemo._scale.pool import emit

    emit(["start", x])
    if x == 1:
        time.sleep(0.2)  # task 0 is in flight in the other worker when this one dies
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return 2 * x


def test_local_pool_gives_up_on_a_task_that_keeps_killing_its_worker():
    from fuzzyemo._scale.pool import MAX_ATTEMPTS, TaskFailed, Where, run_tasks

    got: dict[int, object] = {}
    run_tasks(_poison, [0, 1, 2], Where(workers=2), got.__setitem__)
    assert got[0] == 0 and got[2] == 4  # the bystanders are redone and finish
    assert isinstance(got[1], TaskFailed) and f"{MAX_ATTEMPTS} tries on its own" in str(got[1])


def test_a_killed_local_worker_s_source_is_retried(media, tmp_path, monkeypatch):
    ins = [str(media / "long.avi"), str(media / "astronaut.png")]
    ref = annotate_to(ins, str(tmp_path / "ref") + "/", workers=1)
    seen: list[list] = []
    _killer(monkeypatch, 0, seen)
    rep = annotate_to(ins, str(tmp_path / "run") + "/", workers=2, progress=True)
    assert not rep.failed and len(rep.written) == 2
    assert sum(1 for e in seen if e[0] == "start" and e[1] == 0) >= 2  # it ran again
    assert parts(tmp_path / "run") == parts(tmp_path / "ref") and ref.rows == rep.rows


def test_ctrl_c_leaves_only_complete_parts_and_a_rerun_resumes(media, tmp_path):
    import pyarrow.parquet as pq

    ins = [str(media / "long.avi")] * 1 + [str(tmp_path / f"v{i}.avi") for i in range(3)]
    for p in ins[1:]:
        Path(p).write_bytes((media / "long.avi").read_bytes())
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "fuzzyemo", "annotate", *ins, "-o", str(out) + "/",
           "--workers", "2"]
    # Its own process group, signalled as a terminal's Ctrl-C signals the foreground group.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.suffix == ".parquet" and not p.name.startswith(".")
                                for p in out.iterdir()):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    done = sorted(out.iterdir())
    assert done and len(done) < 4 and all(not p.name.startswith(".") for p in done)
    for p in done:  # every part there is whole
        table = pq.read_table(p)
        assert table.num_rows == 60
    rerun = annotate_to(ins, str(out) + "/", workers=2)
    assert len(rerun.reused) == len(done) and len(rerun.written) == 4 - len(done)


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="the [distributed] extra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=40) as c:
            yield c


def test_dask_cluster_gives_the_local_runs_rows(media, serial, cluster, tmp_path):
    d, _, _ = serial
    rep = annotate_to(inputs(media), str(tmp_path / "dask") + "/",
                      scheduler=cluster.scheduler_address)
    assert not rep.failed and len(rep.written) == 3
    assert parts(tmp_path / "dask") == parts(d / "parts")
    annotate_to(inputs(media), tmp_path / "dask.parquet", scheduler=cluster.scheduler_address)
    assert (tmp_path / "dask.parquet").read_bytes() == (d / "one.parquet").read_bytes()
    # Resume on the cluster: nothing is submitted again.
    again = annotate_to(inputs(media), str(tmp_path / "dask") + "/",
                        scheduler=cluster.scheduler_address)
    assert len(again.reused) == 3 and not again.written


def test_dask_workers_find_relative_paths(media, cluster, tmp_path, monkeypatch):
    """Inputs and output given relative to a working directory the workers do not share
    (their processes started in another one): they get absolute paths, the table keeps the
    names as given."""
    (tmp_path / "grace.jpg").write_bytes((media / "grace.jpg").read_bytes())
    monkeypatch.chdir(tmp_path)
    rep = annotate_to(["grace.jpg"], "rel/", scheduler=cluster.scheduler_address)
    assert not rep.failed and len(rep.written) == 1
    df = pd.read_parquet(tmp_path / "rel")
    assert df["source"].tolist() == ["grace.jpg"]
    local = annotate_to(["grace.jpg"], tmp_path / "g.parquet", workers=1)
    assert local.rows == 1 and pd.read_parquet(tmp_path / "g.parquet").equals(df)


def test_dask_retries_the_source_of_a_killed_worker(media, cluster, tmp_path, monkeypatch):
    ins = [str(media / "long.avi"), str(media / "grace.jpg")]
    ref = annotate_to(ins, str(tmp_path / "ref") + "/", workers=1)
    seen: list[list] = []
    _killer(monkeypatch, 0, seen)
    rep = annotate_to(ins, str(tmp_path / "run") + "/", scheduler=cluster.scheduler_address,
                      progress=True)
    assert not rep.failed and rep.rows == ref.rows
    starts = [e for e in seen if e[0] == "start" and e[1] == 0]
    assert len(starts) >= 2 and starts[0][2] != starts[-1][2]  # another worker process
    assert parts(tmp_path / "run") == parts(tmp_path / "ref")
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts the killed one


def test_dask_ctrl_c_stops_running_tasks(media, cluster, tmp_path, monkeypatch):
    """Ctrl-C (here: KeyboardInterrupt at the first frame count) cancels the run; the task
    already running on a worker sees the cancel flag and stops: its part never appears."""
    from face_fixtures import video_frames

    frames = video_frames(cv2, media / "long.avi")
    _video(tmp_path / "longer.avi", frames * 5)  # 300 frames: several seconds of work
    real = RunProgress.event

    def event(self, ev):
        real(self, ev)
        if ev[0] == "frames":
            raise KeyboardInterrupt

    monkeypatch.setattr(RunProgress, "event", event)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        annotate_to([str(tmp_path / "longer.avi")], str(out) + "/",
                    scheduler=cluster.scheduler_address, progress=True)
    time.sleep(8)  # the whole video would be done by now had the task gone on
    assert list(out.iterdir()) == []


def test_dask_errors_are_one_line(media, tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason="the [distributed] extra")
    from fuzzyemo._scale import pool

    monkeypatch.setattr(pool, "DASK_CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InputError, match="cannot reach the Dask scheduler tcp://127.0.0.1:9"):
        annotate_to(inputs(media)[1:], tmp_path / "x.parquet", scheduler="tcp://127.0.0.1:9")
    with pytest.raises(InputError, match="scheduler file not found"):
        annotate_to(inputs(media)[1:], tmp_path / "x.parquet",
                    scheduler_file=tmp_path / "none.json")


def test_disfa_build_on_dask_equals_the_local_build(cluster, tmp_path):
    from builder_fixtures import fast, make_disfa

    from builders.disfa import DisfaBuilder

    make_disfa(tmp_path / "DISFA", subjects=("SN001", "SN002", "SN003"), n_frames=40)
    builder = fast(DisfaBuilder)
    for d in ("local", "dask"):
        (tmp_path / d).mkdir()
    local = builder(tmp_path / "DISFA", workers=1).build(tmp_path / "local" / "d.parquet")
    dask = builder(tmp_path / "DISFA", scheduler=cluster.scheduler_address).build(
        tmp_path / "dask" / "d.parquet")
    assert local.rows == dask.rows == 120
    assert (tmp_path / "local" / "d.parquet").read_bytes() == \
        (tmp_path / "dask" / "d.parquet").read_bytes()
