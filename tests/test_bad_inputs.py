"""The bad-input corpus (tests/bad_inputs/corpus.yaml): every user mistake is one clear line,
exit code 2, found before the work starts, and leaves the user's files as they were.

Each corpus entry runs in a fresh workspace; the makers below build what it needs there.
Read-only file systems and full disks are real where this machine allows it (root: a tmpfs
mounted read-only, a tmpfs filled to the last page); where it does not, those entries are
skipped and the monkeypatched tests at the end (which always run) raise the same OSError
with the right errno. Permission errors are real too: without root, chmod; as root, a
subprocess started by setpriv without CAP_DAC_OVERRIDE (root ignores file modes otherwise).
"""

from __future__ import annotations

import errno
import gc
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from stf2m_fixtures import TINY_TRAIN_CONFIG
from typer.testing import CliRunner

from fuzzyemo.cli import app

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "bad_inputs"
CORPUS = yaml.safe_load((HERE / "corpus.yaml").read_text())
runner = CliRunner()

TRAIN_CONFIG = TINY_TRAIN_CONFIG  # a tiny ST-F2M run: seconds, not minutes


def test_the_corpus_is_well_formed():
    ids = [c["id"] for c in CORPUS]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    known = {"id", "run", "make", "exit", "error", "errors", "warning", "output", "quiet",
             "writes", "before", "runner", "needs"}
    for case in CORPUS:
        assert set(case) <= known, (case["id"], set(case) - known)
        assert "run" in case and ("error" in case or case.get("exit", 2) != 2), case["id"]
    assert len(CORPUS) >= 72  # the new user's pass, and the mistakes found since


# ----------------------------------------------------------------------------- makers
def _can_mount() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/fuzzyemo-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


CAN_MOUNT = _can_mount()


class Workspace:
    """A fresh folder holding the corpus's static files; makers add to it; mounts made here
    are undone at the end."""

    def __init__(self, path: Path, cache: Path) -> None:
        self.path, self.cache = path, cache
        self.mounts: list[Path] = []
        self.locked: list[Path] = []
        for f in HERE.glob("*.csv"):
            shutil.copy(f, path / f.name)

    def close(self) -> None:
        for p in self.locked:
            p.chmod(0o755 if p.is_dir() else 0o644)
        gc.collect()  # failed writers in reference cycles (tracebacks) close their files
        for m in reversed(self.mounts):
            # A file still open on the mount after that (a leaked handle) makes it busy: a
            # bug, reported after a lazy unmount so no mount outlives the test.
            busy = subprocess.run(["umount", str(m)], capture_output=True).returncode != 0
            if busy:
                subprocess.run(["umount", "-l", str(m)], check=False)
                raise AssertionError(f"{m}: still in use after the command (a file handle "
                                     "left open?)")

    # -- makers: each builds one kind of input or obstacle ------------------------------
    def make(self, spec: Any) -> None:
        """``name``, ``{name: argument}``, or ``{dir|copy: ..., mode: ...}``."""
        if isinstance(spec, str):
            getattr(self, f"make_{spec}")(None)
        elif "dir" in spec:
            self.make_dir(spec)
        elif "copy" in spec:
            self.make_copy(spec)
        else:
            ((name, arg),) = spec.items()
            getattr(self, f"make_{name}")(arg)

    def _lock(self, p: Path, spec: dict) -> None:
        if "mode" in spec:
            p.chmod(int(str(spec["mode"]), 0))  # YAML 1.1 reads 0o555 as text
            self.locked.append(p)

    def make_dir(self, spec: dict) -> None:
        p = self.path / spec["dir"]
        p.mkdir(parents=True, exist_ok=True)
        self._lock(p, spec)

    def make_copy(self, spec: dict) -> None:
        for src, dst in spec["copy"].items():
            shutil.copy(self.path / src, self.path / dst)
            self._lock(self.path / dst, spec)

    def make_repo_file(self, pairs: dict) -> None:
        """Files of this repository (e.g. third-party landmark tables), copied in."""
        for src, dst in pairs.items():
            shutil.copy(ROOT / src, self.path / dst)

    def make_media(self, _: Any) -> None:
        """grace.jpg/.png, a 24-frame clip.avi, and damaged copies: a JPEG and a PNG cut in
        half, a PNG with one flipped byte, the clip cut in half (truncated.avi)."""
        cv2 = pytest.importorskip("cv2")
        cached = self.cache / "media"
        if not cached.is_dir():
            cbook = pytest.importorskip("matplotlib.cbook")
            tmp = self.cache / "media.tmp"
            tmp.mkdir(parents=True, exist_ok=True)
            grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
            grace = cv2.resize(grace[44:556], (256, 256))
            cv2.imwrite(str(tmp / "grace.jpg"), grace)
            cv2.imwrite(str(tmp / "grace.png"), grace)
            writer = cv2.VideoWriter(str(tmp / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                                     10.0, (256, 256))
            for i in range(24):
                frame = grace.copy()
                cv2.putText(frame, str(i), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 255), 2)
                writer.write(frame)
            writer.release()
            for src, dst in (("grace.jpg", "truncated.jpg"), ("grace.png", "truncated.png"),
                             ("clip.avi", "truncated.avi")):
                data = (tmp / src).read_bytes()
                (tmp / dst).write_bytes(data[: len(data) // 2])
            png = bytearray((tmp / "grace.png").read_bytes())
            at = png.index(b"IDAT") + 200
            png[at] ^= 0xFF
            (tmp / "flipped.png").write_bytes(bytes(png))
            tmp.rename(cached)
        for f in cached.iterdir():
            shutil.copy(f, self.path / f.name)

    def make_rules(self, edits: dict) -> None:
        """A copy of the paper profile (rules, calibration.yaml, landmarks/) in rules/,
        edited: write, replace (first occurrence), append, rename, remove, mkdir,
        drop_from (cut the file at a line starting with the text)."""
        from fuzzyemo._rulebase import copy_profile

        d = copy_profile("paper", self.path / "rules")
        for rel, text in (edits.get("write") or {}).items():
            (d / rel).write_text(text)
        for rel, (old, new) in (edits.get("replace") or {}).items():
            body = (d / rel).read_text()
            assert old in body, (rel, old)
            (d / rel).write_text(body.replace(old, new, 1))
        for rel, text in (edits.get("append") or {}).items():
            (d / rel).write_text((d / rel).read_text().rstrip("\n") + "\n" + text)
        for rel, new in (edits.get("rename") or {}).items():
            (d / rel).rename(d / new)
        for rel in edits.get("remove") or ():
            (d / rel).unlink()
        for rel in edits.get("mkdir") or ():
            (d / rel).mkdir()
        for rel, start in (edits.get("drop_from") or {}).items():
            lines = (d / rel).read_text().splitlines(keepends=True)
            cut = next(i for i, ln in enumerate(lines) if ln.startswith(start))
            (d / rel).write_text("".join(lines[:cut]))

    def make_mount(self, spec: dict) -> None:
        """A real tmpfs at ``at``: ``read-only``, or ``full`` (filled to its last page, so
        creating a file works and writing any byte to it fails)."""
        if not CAN_MOUNT:
            pytest.skip("mounting a tmpfs needs root on Linux (the monkeypatched tests below "
                        "cover the same errors everywhere)")
        at = self.path / spec["at"]
        at.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(at)],
                       check=True)
        self.mounts.append(at)
        if spec["kind"] == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(at)], check=True)
        else:  # fill it, then give back ``free_kb`` (whole pages) for the first writes
            fd = os.open(at / ".filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
            if spec.get("free_kb"):
                size = (at / ".filler").stat().st_size
                os.truncate(at / ".filler", size - 1024 * spec["free_kb"])

    def make_wflw(self, _: Any) -> None:
        from builder_fixtures import make_wflw

        make_wflw(self.path / "WFLW", n_train=6, n_test=3)

    def make_dataset(self, _: Any) -> None:
        pytest.importorskip("torch")
        cached = self.cache / "disfa.parquet"
        if not cached.is_file():
            import stf2m_fixtures as fx

            fx.write(fx.disfa_like(n_subjects=9, n_frames=160, seed=4), cached)
        shutil.copy(cached, self.path / "disfa.parquet")
        (self.path / "train.yaml").write_text(TRAIN_CONFIG)

    def make_run(self, spec: dict) -> None:
        """A real run directory (a tiny training, once per session), optionally with its
        model.pt cut short (``corrupt``) or replaced by text (``replace_with_text``)."""
        cached = self.cache / "run"
        if not cached.is_dir():
            self.make_dataset(None)
            cfg = self.cache / "train.yaml"
            cfg.write_text(TRAIN_CONFIG)
            res = runner.invoke(app, ["train", str(self.cache / "disfa.parquet"), "-o",
                                      str(cached), "--config", str(cfg), "--device", "cpu",
                                      "--no-progress"])
            assert res.exit_code == 0, res.output
        shutil.copytree(cached, self.path / "run")
        if spec.get("corrupt"):
            p = self.path / "run" / spec["corrupt"]
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        if spec.get("replace_with_text"):
            (self.path / "run" / spec["replace_with_text"]).write_text("not a model\n")


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-inputs-cache")


@pytest.fixture
def workspace(tmp_path, cache, monkeypatch) -> Iterator[Workspace]:
    ws = Workspace(tmp_path, cache)
    monkeypatch.chdir(tmp_path)
    try:
        yield ws
    finally:
        ws.close()


# ----------------------------------------------------------------------------- running
def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in root.rglob("*"):
        try:
            if p.is_file():
                st = p.stat()
                out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
        except PermissionError:
            continue
    return out


def _run_unprivileged(args: list[str], cwd: Path) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "fuzzyemo", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root, a permission error needs setpriv to drop CAP_DAC_OVERRIDE")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    return res.returncode, res.stdout + res.stderr


class _Spy:
    """Records calls of ``module:Class.method`` (or ``module:function``): the work that a
    preflight error must come before."""

    def __init__(self, target: str, monkeypatch) -> None:
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        owner: Any = module
        *parents, name = attr.split(".")
        for p in parents:
            owner = getattr(owner, p)
        real = getattr(owner, name)
        self.calls = 0

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_bad_input(case: dict, workspace: Workspace, monkeypatch) -> None:
    for module in case.get("needs", ()):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    for spec in case.get("make", ()):
        workspace.make(spec)
    before = _snapshot(workspace.path)
    args = shlex.split(case["run"])
    spy = _Spy(case["before"], monkeypatch) if "before" in case else None
    if case.get("runner") == "unprivileged":
        code, output = _run_unprivileged(args, workspace.path)
    else:
        res = runner.invoke(app, args)
        code, output = res.exit_code, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), output
    want = case.get("exit", 2)
    assert code == want, output
    assert "Traceback" not in output, output
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    if want == 2:
        assert len(errors) == case.get("errors", 1), output
        assert any(re.search(case["error"], ln) for ln in errors), output
    else:
        assert not errors, output
    if "warning" in case:
        warnings = [ln for ln in output.splitlines() if ln.startswith("warning:")]
        assert any(re.search(case["warning"], ln) for ln in warnings), output
    if "output" in case:
        assert re.search(case["output"], output), output
    if "quiet" in case:
        assert not re.search(case["quiet"], output), output
    if spy is not None:
        assert spy.calls == 0, f"the work started before the mistake was found: {output}"
    after = _snapshot(workspace.path)
    allowed = set(case.get("writes", ()))
    changed = {k for k in after if before.get(k) != after[k]} - allowed
    assert not changed, f"files written or changed: {sorted(changed)}"
    leftovers = [k for k in after if Path(k).name.startswith(".") and k not in before]
    assert not leftovers, f"temp files left behind: {leftovers}"
    for name in allowed:
        assert (workspace.path / name).is_file(), name


# ----------------------------------------------------------------------------- high
def test_with_options_resolution_below_101_is_one_line_not_an_index_error():
    from fuzzyemo import RuleBase

    rb = RuleBase.default("paper")
    for bad in (5, 100, 0, -3):
        with pytest.raises(ValueError) as info:
            rb.with_options(resolution=bad)
        text = str(info.value)
        assert text == (f"engine option resolution: must be 'exact' or an integer >= 101, "
                        f"got {bad}"), text
    assert rb.with_options(resolution=101).options.resolution == 101


def test_engine_yaml_resolution_error_points_at_its_line(tmp_path):
    from fuzzyemo import RuleBase, RuleBaseError
    from fuzzyemo._rulebase import copy_profile

    d = copy_profile("paper", tmp_path / "r")
    text = (d / "engine.yaml").read_text().replace("resolution: exact", "resolution: 7")
    (d / "engine.yaml").write_text(text)
    line = 1 + next(i for i, ln in enumerate(text.splitlines()) if ln.startswith("resolution:"))
    assert line > 1
    with pytest.raises(RuleBaseError) as info:
        RuleBase.load(d)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (line, 1), str(problem)


# Where a real read-only mount or full disk is impossible (no root), these raise the OSError
# the kernel would, with its errno, at the same call: the message must name the user's path.
@pytest.mark.parametrize("code, reason", [
    (errno.EROFS, "read-only file system"), (errno.ENOSPC, "no space left on device"),
    (errno.EACCES, "permission denied"), (errno.EDQUOT, "disk quota exceeded")])
def test_atomic_write_failures_name_the_users_path(tmp_path, monkeypatch, code, reason):
    """Monkeypatched: the write itself fails as the kernel would (a real one needs a mount)."""
    from fuzzyemo._errors import InputError
    from fuzzyemo._files import write_text_atomic

    target = tmp_path / "labels.json"
    real_open = open

    def failing_open(path, *args, **kwargs):
        if Path(path).name.startswith(".labels.json."):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(InputError) as info:
        write_text_atomic(target, "{}")
    assert str(info.value) == f"{target}: cannot write ({reason})"
    assert list(tmp_path.iterdir()) == []  # no temp file left


def test_a_pyarrow_style_error_without_errno_still_gives_the_reason(tmp_path, monkeypatch):
    """pyarrow puts the errno into the message only ('[errno 28] No space left on device')."""
    import pandas as pd
    import pyarrow.parquet as pq

    from fuzzyemo._errors import InputError
    from fuzzyemo._table import write_table

    def full(*args, **kwargs):
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "t.parquet"
    with pytest.raises(InputError, match=r"t\.parquet: cannot write \(no space left on device\)"):
        write_table(pd.DataFrame({"a": [1.0]}), out)
    assert list(tmp_path.iterdir()) == []


def test_temp_file_creation_refused_names_the_target(tmp_path, monkeypatch):
    """Monkeypatched mkstemp (a read-only mount refuses it there): the user's path, not the
    temp name, is in the message."""
    import tempfile

    from fuzzyemo._errors import InputError
    from fuzzyemo._files import atomic_path

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".x.tmp123"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(InputError) as info, atomic_path(tmp_path / "x.parquet"):
        pass
    assert str(info.value) == f"{tmp_path / 'x.parquet'}: cannot write (read-only file system)"
    assert ".tmp" not in str(info.value)


def test_a_directory_appearing_in_the_way_names_the_output(tmp_path, monkeypatch):
    """The rename fails with EISDIR when a directory took the output's name after the
    checks (monkeypatched os.replace, as the kernel answers): named, temp removed."""
    from fuzzyemo._errors import InputError
    from fuzzyemo._files import write_text_atomic

    def in_the_way(src, dst):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", src, dst)

    monkeypatch.setattr(os, "replace", in_the_way)
    with pytest.raises(InputError) as info:
        write_text_atomic(tmp_path / "card.md", "x")
    assert str(info.value) == f"{tmp_path / 'card.md'}: is a directory; give a file name"
    assert list(tmp_path.iterdir()) == []


def test_cli_read_only_probe_without_a_mount(tmp_path, monkeypatch):
    """Monkeypatched probe (the read-only mount entries need root): one line, exit 2."""
    import tempfile

    real = tempfile.mkstemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir", "")).endswith("ro"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    (tmp_path / "ro").mkdir()
    shutil.copy(HERE / "good.csv", tmp_path / "good.csv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    for args in (["infer", "good.csv", "-o", "ro/out.parquet"], ["demo", "-o", "ro/d.csv"],
                 ["rules", "export", "-o", "ro/r.json"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        (line,) = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert f"{args[-1]}: cannot write to ro (read-only file system)" in line


def test_readme_warns_before_the_install_command_and_gives_the_cpu_variant():
    from packaging.specifiers import SpecifierSet

    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set-up"):readme.index("## Tour")]
    first_install = setup.index('pip install -e ".[test,video,train,distributed]"')
    warning = setup.index("CUDA build")
    cpu = re.search(r'pip install "torch==([\d.]+)" --index-url (\S+)', setup)
    assert cpu and warning < cpu.start() < first_install  # told before the command
    assert cpu[2] == "https://download.pytorch.org/whl/cpu"
    pyproject = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"torch(==[\d.]+)"', pyproject)[1]
    assert pin == f"=={cpu[1]}"
    # The CPU wheel's version satisfies the extra's pin, so installing the extras keeps it.
    assert f"{cpu[1]}+cpu" in SpecifierSet(pin)
    # The pyproject comment no longer calls the pin "the CPU build": it says what PyPI gives.
    comment = pyproject[:pyproject.index('train = ["torch')].rsplit("\n\n", 1)[-1]
    assert "CUDA build" in comment and "download.pytorch.org/whl/cpu" in comment
    assert "pinned to the CPU build" not in comment


# ----------------------------------------------------------------------------- medium
@pytest.fixture(scope="module")
def images(tmp_path_factory, cache) -> Path:
    ws = Workspace(tmp_path_factory.mktemp("images"), cache)
    ws.make("media")
    return ws.path


def test_damaged_images_are_found_before_any_frame(images):
    cv2 = pytest.importorskip("cv2")
    from fuzzyemo._errors import InputError
    from fuzzyemo._video import collect_sources, image_damage

    for name in ("grace.jpg", "grace.png"):
        assert image_damage(cv2, images / name) is None
    for name in ("truncated.jpg", "truncated.png", "flipped.png"):
        with pytest.raises(InputError, match=re.escape(name) + ": damaged image"):
            collect_sources([images / "grace.jpg", images / name])


def test_jpeg_check_has_no_false_alarms(tmp_path):
    """Progressive and optimised JPEGs, EXIF thumbnails, data after the end marker (phones
    append videos there), and the real photos of the validity corpus are all whole."""
    cv2 = pytest.importorskip("cv2")
    image = pytest.importorskip("PIL.Image")
    from fuzzyemo._video import image_damage

    cbook = pytest.importorskip("matplotlib.cbook")
    src = image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    src.save(tmp_path / "progressive.jpg", progressive=True, quality=85)
    src.save(tmp_path / "optimised.jpg", optimize=True, quality=60)
    thumb = src.copy()
    thumb.thumbnail((64, 64))
    exif = image.Exif()
    exif[0x010F] = "camera"
    src.save(tmp_path / "exif.jpg", exif=exif)
    data = (tmp_path / "progressive.jpg").read_bytes()
    (tmp_path / "trailer.jpg").write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + bytes(4096)
                                           + b"\xff\xda\x00\x10")
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * 0.9)])
    for f in [*tmp_path.glob("*.jpg"), *(ROOT / "tests" / "data" / "validity").glob("*.jpg")]:
        want = "cut short" if f.name == "cut.jpg" else None
        got = image_damage(cv2, f)
        assert (got is None) if want is None else (want in got), (f.name, got)


def test_truncated_video_warning_counts_frames(images):
    """The decoder's view (no MediaPipe): the warning names the file and both counts, and
    the frames decoded are all yielded."""
    pytest.importorskip("cv2")
    import fuzzyemo
    from fuzzyemo._video import MediaWarning, collect_sources, read_frames

    assert fuzzyemo.MediaWarning is MediaWarning  # public, as docs/annotate.md names it

    (src,) = collect_sources([images / "truncated.avi"])
    assert src.n_frames == 24
    with pytest.warns(MediaWarning) as record:
        frames = list(read_frames([src]))
    (w,) = record
    n = len(frames)
    assert 0 < n < 24
    assert str(w.message).startswith(f"{images / 'truncated.avi'}: the video ends after "
                                     f"frame {n} of the 24 its header announces")
    # The whole clip gives no warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)
        assert len(list(read_frames(collect_sources([images / "clip.avi"])))) == 24


def test_rules_check_reads_what_annotate_reads(tmp_path):
    """Every broken measurement file `rules check` rejects is one annotate would reject (so
    the check is not stricter than the use) and the other way round: the calibration and the
    MediaPipe scheme, through the loaders annotate uses."""
    from fuzzyemo import RuleBaseError
    from fuzzyemo._geometry import Baseline, Calibration
    from fuzzyemo._landmarks import LandmarkScheme
    from fuzzyemo._rulebase import copy_profile

    breakages = {
        "calibration.yaml": [("    plus: 0.12\n", "    plus: -0.12\n"),
                             ("format: fuzzyemo-calibration/2", "format: fuzzyemo-calibration/9"),
                             ("weight: 0.75", "weight: 1.75")],
        "landmarks/mediapipe478.yaml": [("n_points: 478", "n_points: 480")],
    }
    for rel, edits in breakages.items():
        for old, new in edits:
            d = copy_profile("paper", tmp_path / f"r{abs(hash((rel, old)))}")
            text = (d / rel).read_text()
            assert old in text
            (d / rel).write_text(text.replace(old, new, 1))
            res = runner.invoke(app, ["rules", "check", str(d)])
            assert res.exit_code == 2 and rel in res.output, res.output
            with pytest.raises(RuleBaseError):  # what annotate loads for this directory
                Calibration.load(d)
                Baseline.population(LandmarkScheme.load(d / "landmarks" / "mediapipe478.yaml"))


def test_infinite_values_are_missing_and_their_rows_unknown(tmp_path, monkeypatch):
    import pandas as pd

    shutil.copy(HERE / "infinite.csv", tmp_path / "in.csv")
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["infer", "in.csv", "-o", "out.parquet", "--rules", "paper"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert df["label"].tolist() == ["unknown", "unknown", "neutral"]
    assert df["class_index"].tolist() == [-2, -2, -1]


def test_clipped_values_are_counted_and_still_clipped(tmp_path, monkeypatch):
    import pandas as pd

    from fuzzyemo import RuleBase

    shutil.copy(HERE / "outside_range.csv", tmp_path / "in.csv")
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["infer", "in.csv", "-o", "out.parquet"])
    assert res.exit_code == 0
    assert res.output.count("warning:") == 1
    df = pd.read_parquet(tmp_path / "out.parquet")
    from fuzzyemo import COMPONENTS

    x = pd.read_csv(tmp_path / "in.csv")[list(COMPONENTS)].to_numpy(float)
    want = RuleBase.default().compile().evaluate(np.clip(x, -1, 1)).labels
    assert df["label"].tolist() == list(want)


@pytest.fixture(scope="module")
def disfa_source(tmp_path_factory) -> Path:
    from builder_fixtures import make_disfa

    root = tmp_path_factory.mktemp("disfa")
    make_disfa(root / "DISFA", n_frames=12, missing={}, collapsed={})
    return root / "DISFA"


def _build(source: Path, out: Path, *extra: str):
    return runner.invoke(app, ["build-dataset", "disfa", "--source", str(source), "-o",
                               str(out), "--workers", "1", *extra])


def test_interrupted_build_writes_nothing_and_says_so(disfa_source, tmp_path, monkeypatch):
    """Ctrl-C while the parquet is being written: no parquet, no card, no plot, the old
    ones untouched, and the message says the dataset was not written (exit 130)."""
    import builders._base as base

    out = tmp_path / "disfa-fer.parquet"
    assert _build(disfa_source, out, "--no-progress").exit_code == 0
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert set(old) == {"disfa-fer.parquet", "dataset_card.md", "disfa-fer_class_balance.png"}

    real = base.pq.write_table

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(base.pq, "write_table", interrupted)
    res = _build(disfa_source, out, "--no-progress", "--lambda-fcis", "0.5")
    assert res.exit_code == 130, res.output
    assert "wrote" not in res.output
    assert re.search(r"interrupted: the dataset was not written \(.*disfa-fer.parquet "
                     r"unchanged, no card written\)", res.output), res.output
    now = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert now == old  # nothing new, nothing changed, no temp files
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    res = _build(disfa_source, fresh / "d.parquet", "--no-progress")
    assert res.exit_code == 130 and "d.parquet not written" in res.output
    # Only the finished subjects, kept for the next run (which the message says).
    assert [p.name for p in fresh.iterdir()] == [".d.parquet.parts"]
    assert f"finished subjects are kept in {fresh / '.d.parquet.parts'}" in res.output


def test_build_renames_the_parquet_last(disfa_source, tmp_path, monkeypatch):
    import fuzzyemo._files as files

    order: list[str] = []
    real = os.replace

    def record(src, dst):
        order.append(Path(dst).name)
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", record)
    assert _build(disfa_source, tmp_path / "d.parquet", "--no-progress").exit_code == 0
    # The subjects' resumable parts first (while reading), then the outputs, parquet last.
    assert order[-3:] == ["d_class_balance.png", "dataset_card.md", "d.parquet"]
    assert all(name.endswith(".npz") for name in order[:-3])


def test_ctrl_c_during_the_renames_is_honest(disfa_source, tmp_path, monkeypatch):
    """Ctrl-C (a real SIGINT) while the finished files are renamed into place: all of them
    are, and the message says so instead of 'wrote' + exit 130."""
    import signal

    import fuzzyemo._files as files

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a non-default handler here")
    real = os.replace
    sent = []

    def replace_and_interrupt(src, dst):
        if not sent and str(dst).endswith("_class_balance.png"):  # the first output renamed
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGINT)
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_and_interrupt)
    out = tmp_path / "d.parquet"
    res = _build(disfa_source, out, "--no-progress")
    assert res.exit_code == 130, res.output
    assert "wrote" not in res.output.replace("written:", "")
    assert "interrupted after the outputs were complete; written: " in res.output
    assert str(out) in res.output and out.is_file() and (tmp_path / "dataset_card.md").is_file()
    assert not (tmp_path / ".d.parquet.parts").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache) -> Path:
    ws = Workspace(tmp_path_factory.mktemp("trained"), cache)
    ws.make({"run": {}})
    ws.make("dataset")
    return ws.path


def test_train_progress_lines_off_a_terminal_and_every_file_listed(trained, tmp_path):
    res = runner.invoke(app, ["train", str(trained / "disfa.parquet"), "-o", str(tmp_path / "r"),
                              "--config", str(trained / "train.yaml"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("meta-training: ")]
    assert len(lines) >= 2 and lines[-1].startswith("meta-training: 6/6 steps (100%)"), lines
    assert all(re.search(r"steps/s|loss", ln) for ln in lines[1:])
    (listing,) = [ln for ln in res.output.splitlines() if ln.startswith("wrote ")]
    files = sorted(p.relative_to(tmp_path / "r").as_posix()
                   for p in (tmp_path / "r").rglob("*") if p.is_file())
    assert listing == f"wrote {len(files)} file(s) in {tmp_path / 'r'}: {', '.join(files)}"
    assert {"model.pt", "checkpoint.pt", "config.yaml", "history.csv"} <= set(files)


def test_evaluate_progress_and_every_file_listed(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    res = runner.invoke(app, ["evaluate", str(run), str(trained / "disfa.parquet"),
                              "--episodes", "60", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("evaluation: ")]
    assert [ln.split(",")[0] for ln in lines] == ["evaluation: 50/60 episodes (83%)",
                                                 "evaluation: 60/60 episodes (100%)"], lines
    (listing,) = [ln for ln in res.output.splitlines() if ln.startswith("wrote ")]
    for name in ("evaluation.json", "MODEL_CARD.md"):
        assert name in listing
    if importlib.util.find_spec("matplotlib") is not None:
        assert "confusion_18.png" in listing and "confusion_6.png" in listing
    assert "train.json" not in listing and "model.pt" not in listing  # not written by it


def test_build_progress_lines_off_a_terminal_and_every_file_listed(disfa_source, tmp_path):
    res = _build(disfa_source, tmp_path / "d.parquet")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("DISFA subjects: ")]
    assert [ln.split(" (")[0] for ln in lines] == [
        "DISFA subjects: 1/3", "DISFA subjects: 2/3", "DISFA subjects: 3/3"], lines
    (listing,) = [ln for ln in res.output.splitlines() if ln.startswith("wrote ")]
    assert listing.startswith(f"wrote {tmp_path / 'd.parquet'} (")
    assert f"card {tmp_path / 'dataset_card.md'}" in listing
    assert f"plot {tmp_path / 'd_class_balance.png'}" in listing


def test_wflw_crops_are_in_the_listing(tmp_path):
    pytest.importorskip("PIL")
    from builder_fixtures import make_wflw

    make_wflw(tmp_path / "WFLW", n_train=4, n_test=2, images=True, malformed=False)
    res = runner.invoke(app, ["build-dataset", "wflw", "--source", str(tmp_path / "WFLW"),
                              "-o", str(tmp_path / "w.parquet"), "--crops",
                              str(tmp_path / "crops"), "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    n = len(list((tmp_path / "crops").glob("*/*.png")))
    assert n > 0 and f"{n} crop PNGs and {tmp_path / 'crops' / 'crops.csv'}" in res.output


mp_needed = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                               reason="needs mediapipe")


@mp_needed
def test_annotate_lists_every_file_and_the_overlay_has_progress(images, tmp_path):
    res = runner.invoke(app, ["annotate", str(images / "clip.avi"), "-o", str(tmp_path / "a.csv"),
                              "--plot", str(tmp_path / "t.png"), "--overlay",
                              str(tmp_path / "o.mp4"), "--every", "4"])
    assert res.exit_code == 0, res.output
    overlay = [ln for ln in res.output.splitlines() if ln.startswith("overlay: ")]
    assert overlay and overlay[-1].startswith("overlay: 24/24 frames (100%)"), res.output
    (listing,) = [ln for ln in res.output.splitlines() if ln.startswith("wrote ")]
    assert listing == (f"wrote {tmp_path / 'a.csv'} (6 rows, 6 with a face); timeline "
                       f"{tmp_path / 't.png'}; overlay {tmp_path / 'o.mp4'}")


# ----------------------------------------------------------------------------- low
def test_explain_lists_only_rules_that_fired():
    res = runner.invoke(app, ["explain", str(HERE / "good.csv"), "--row", "1", "--top", "50",
                              "--rules", "paper"])
    assert res.exit_code == 0, res.output
    m = re.search(r"strongest rules that fired \((\d+)\)", res.output)
    assert m and 1 <= int(m[1]) < 50, res.output
    strengths = re.findall(r"│ (\d\.\d{3}) +│", res.output)
    assert len(strengths) == int(m[1]) and all(float(s) > 0 for s in strengths), res.output


def test_every_command_help_has_plain_metavars():
    """No `<bool>` column for flags, no `{input}` braces: arguments by name (INPUT...)."""
    import typer.main

    group = typer.main.get_command(app)

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    seen = 0
    for path, _ in walk(group, []):
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert res.exit_code == 0, path
        assert "<bool>" not in res.output and "{" not in res.output, (path, res.output)
        assert "list[" not in res.output, (path, res.output)
        seen += 1
    assert seen >= 17
    usage = runner.invoke(app, ["annotate", "--help"]).output.splitlines()[0]
    assert usage.endswith("annotate [OPTIONS] INPUT...")
    usage = runner.invoke(app, ["evaluate", "--help"]).output.splitlines()[0]
    assert usage.endswith("evaluate [OPTIONS] RUN_DIR DATA")


def test_typer_is_pinned_to_the_range_this_suite_runs_on():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    pyproject = (ROOT / "pyproject.toml").read_text()
    (req,) = [Requirement(r) for r in re.findall(r'"(typer[^"]*)"', pyproject)]
    assert req.specifier and version("typer") in req.specifier
    assert any(s.operator == "<" for s in req.specifier)  # an upper bound: a tested range


def test_native_log_lines_are_dropped_and_errors_kept(capfd):
    from fuzzyemo._quiet import native_logs_quieted

    with native_logs_quieted():
        os.write(2, b"WARNING: Logging before InitGoogle() is written to STDERR\n")
        os.write(2, b"W0000 00:00:1796013944.220217   18537 face_landmarker_graph.cc:181] "
                    b"Sets FaceBlendshapesGraph acceleration to xnnpack by default.\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"E0000 00:00:1796013944.2 18537 graph.cc:12] a real problem\n")
        with native_logs_quieted():  # nested (another thread starting a task): one capture
            os.write(2, b"I0000 00:00:1.0 1 x.cc:1] more routine\n")
    _, err = capfd.readouterr()
    assert err == "E0000 00:00:1796013944.2 18537 graph.cc:12] a real problem\n"
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # stderr is back


@mp_needed
def test_annotate_prints_no_mediapipe_log_lines(images, tmp_path):
    """A real process (the lines go to file descriptor 2, under Python's sys.stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "fuzzyemo", "annotate",
                          str(images / "grace.jpg"), str(images / "clip.avi"), "--every", "8",
                          "-o", str(tmp_path / "a.parquet"), "--no-progress",
                          "--baseline", "population"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines == [f"wrote {tmp_path / 'a.parquet'} (4 rows, 4 with a face)"], lines


def test_csv_output_has_no_float32_noise(tmp_path):
    import pandas as pd

    csv, pq = tmp_path / "d.csv", tmp_path / "d.parquet"
    assert runner.invoke(app, ["demo", "-o", str(csv)]).exit_code == 0
    assert runner.invoke(app, ["demo", "-o", str(pq)]).exit_code == 0
    text = csv.read_text()
    assert "0.8999999761581421" not in text and "0.9," in text
    a, b = pd.read_csv(csv), pd.read_parquet(pq)
    for col in b.columns:
        if b[col].dtype == np.float64:
            want = b[col].to_numpy()
            exact32 = np.isnan(want) | (want.astype(np.float32).astype(np.float64) == want)
            got = a[col].to_numpy(float)
            if exact32.all():  # written short: the same float32
                assert np.array_equal(got.astype(np.float32), want.astype(np.float32),
                                      equal_nan=True), col
            else:  # real float64 data: every digit kept
                assert np.array_equal(got, want, equal_nan=True), col


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    import io

    from rich.console import Console

    from fuzzyemo._progress import Reporter

    tty = io.StringIO()
    with Reporter("meta-training", 4, unit="steps", transient=False,
                  console=Console(file=tty, force_terminal=True, width=120),
                  field_format="loss {loss:.3f}") as bar:
        for i in range(1, 5):
            bar.update(i, loss=1 / i)
    assert "━" in tty.getvalue() and "4/4" in tty.getvalue() and "loss 0.250" in tty.getvalue()
    assert "meta-training: " not in tty.getvalue()  # no plain lines on a terminal
    log = io.StringIO()
    with Reporter("meta-training", 20, unit="steps",
                  console=Console(file=log, force_terminal=False)) as bar:
        for i in range(1, 21):
            bar.update(i)
    lines = log.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [f"meta-training: {2 * k}/20 steps"
                                                   for k in range(1, 11)]
    assert "━" not in log.getvalue()
