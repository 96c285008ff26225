"""Time the dataset builders on full-size layouts generated in a temp dir.

    python benchmarks/build.py [--subjects 27] [--frames 4845] [--workers 2] [--keep DIR]

Generates DISFA (27 subjects x 4,845 frames: one ``.mat`` per frame, 12 label files per
subject, the usual layout variants) and WFLW (7,500 + 2,500 annotation lines), then times
``DisfaBuilder.build`` and ``WflwBuilder.build`` and where the time goes: reading the source
(worker processes), geometry, rule inference, writing parquet, the card. Targets on a 2-core
machine: DISFA-FER <= 60 s, WFLW-FER <= 5 s.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from builder_fixtures import AUS, au_pattern, face, make_wflw  # noqa: E402

import builders._base as base  # noqa: E402
from builders.disfa import SUBJECTS, DisfaBuilder  # noqa: E402
from builders.wflw import WflwBuilder  # noqa: E402
from fuzzyemo._engine import Engine  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)


@contextmanager
def timed(name: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        TIMES[name] += time.perf_counter() - t


def wrap(obj, attr: str, name: str) -> None:
    real = getattr(obj, attr)

    def inner(*a, **k):
        with timed(name):
            return real(*a, **k)

    setattr(obj, attr, inner)


def mat_template() -> tuple[bytes, int]:
    """A savemat image of a 66 x 2 ``pts`` and the byte offset of its data (column-major),
    so each frame's file is the template with 1,056 bytes replaced (fast to generate)."""
    from scipy.io import loadmat, savemat

    marker = np.arange(132, dtype=np.float64).reshape(66, 2) + 0.123456789
    buf = io.BytesIO()
    savemat(buf, {"pts": marker})
    data = buf.getvalue()
    offset = data.index(marker.tobytes(order="F"))
    check = np.full((66, 2), 7.5)
    patched = data[:offset] + check.tobytes(order="F") + data[offset + 1056:]
    assert (loadmat(io.BytesIO(patched))["pts"] == check).all()
    return data, offset


def make_full_disfa(root: Path, subjects: int, frames: int) -> int:
    template, offset = mat_template()
    rng = np.random.default_rng(0)
    au = au_pattern(frames)
    n_files = 0
    for k, subject in enumerate(SUBJECTS[:subjects]):
        ldir = root / "ActionUnit_Labels" / subject
        ldir.mkdir(parents=True)
        for j, a in enumerate(AUS):
            lines = np.char.add(np.char.add(np.arange(1, frames + 1).astype(str), ","),
                                au[:, j].astype(str))
            (ldir / f"{subject}_au{a}.txt").write_text("\n".join(lines) + "\n")
        # Faces per distinct AU row, then per-frame tracker jitter (vectorised).
        rows, inverse = np.unique(au, axis=0, return_inverse=True)
        faces = np.stack([face("disfa66", dict(zip(AUS, r, strict=True)), scale=110 + k,
                               centre=(500.0 + k, 380.0), roll=0.01 * k) for r in rows])
        pts = faces[inverse.ravel()] + rng.normal(0, 0.3, (frames, 66, 2))
        sub = ("tmp_frame_lm", "frame_lm", "")[k % 3]
        sdir = root / "Landmark_Points" / subject / sub
        sdir.mkdir(parents=True, exist_ok=True)
        skip = frames // 2 if subject == "SN031" else -1  # SN031 lacks one frame
        head, tail = template[:offset], template[offset + 1056:]
        for f in range(frames):
            if f == skip:
                continue
            name = f"{subject}_{f:04d}_lm.mat" if k % 2 == 0 else f"l0{f:04d}_lm.mat"
            with open(sdir / name, "wb") as fh:
                fh.write(head + pts[f].tobytes(order="F") + tail)
            n_files += 1
    return n_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=27)
    ap.add_argument("--frames", type=int, default=4845)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path,
                    help="generate into this folder and keep it (reused when already there)")
    args = ap.parse_args()

    tmp = None
    if args.keep:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="fuzzyemo-bench-")
        work = Path(tmp.name)
    print(f"cpus: {os.cpu_count()}, workers: {args.workers}, data in {work}")

    t = time.perf_counter()
    if args.keep and (work / "DISFA").is_dir() and (work / "WFLW").is_dir():
        n_files = sum(1 for _ in (work / "DISFA").rglob("*_lm.mat"))
        print(f"reusing {n_files} .mat files and WFLW annotations in {work}")
    else:
        n_files = make_full_disfa(work / "DISFA", args.subjects, args.frames)
        make_wflw(work / "WFLW", n_train=7500, n_test=2500)
        print(f"generated {n_files} .mat files and WFLW annotations in "
              f"{time.perf_counter() - t:.1f} s")
    (work / "out").mkdir(exist_ok=True)

    wrap(Engine, "evaluate", "rule inference")
    wrap(base, "write_parquet", "write parquet")
    wrap(base, "class_balance_plot", "card + plot")
    for name, cls, kwargs in (("DISFA-FER", DisfaBuilder, {}), ("WFLW-FER", WflwBuilder, {})):
        TIMES.clear()
        b = cls(work / name.split("-")[0], workers=args.workers, **kwargs)
        wrap(b, "read_all" if cls is DisfaBuilder else "read", "read source")
        out = work / "out" / name / f"{name.lower().replace('-', '_')}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)  # one folder each: dataset_card.md
        with timed("total"):
            summary = b.build(out)
        size = out.stat().st_size / 2**20
        other = TIMES["total"] - sum(v for k, v in TIMES.items() if k != "total")
        print(f"\n{name}: {summary.rows} rows, {size:.1f} MiB, total {TIMES['total']:.2f} s")
        for k in ("read source", "rule inference", "write parquet", "card + plot"):
            print(f"  {k:<16}{TIMES[k]:7.2f} s")
        print(f"  {'geometry+table':<16}{other:7.2f} s  (landmarks -> components, columns)")
        if cls is DisfaBuilder:
            per_file = TIMES["read source"] * args.workers / max(n_files, 1) * 1e6
            print(f"  read: {per_file:.0f} us of worker time per .mat file "
                  f"(read wall time x workers / files: open, read, sha256, parse)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
