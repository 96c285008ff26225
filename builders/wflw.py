"""WFLW-FER: every WFLW face labelled with emotion and intensity by the rule engine.

Reads WFLW exactly as distributed (see docs/datasets.md)::

    WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt
    WFLW_images/<event>/<name>.jpg                   (only for --crops)

Each annotation line has 207 whitespace-separated tokens: 196 landmark coordinates
(x0 y0 ... x97 y97), the face box (x_min y_min x_max y_max), 6 attribute flags (pose,
expression, illumination, make-up, occlusion, blur) and the image path under WFLW_images/.
One image can have several faces (several lines); ``face_id`` numbers them in file order.

Baseline: one population neutral face, the per-feature median of the raw features of the
training faces whose expression flag is 0 (WFLW marks "exaggerated expression" with 1), so
x = 0 means "a typical non-expressive WFLW face".
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from fuzzyemo._errors import InputError
from fuzzyemo._files import atomic_path
from fuzzyemo._scale.pool import TaskFailed, run_tasks
from fuzzyemo._table import results_frame
from fuzzyemo._vocab import COMPONENTS

from ._base import (
    DatasetBuilder,
    DatasetInfo,
    Progress,
    SourceError,
    landmark_fields,
    result_fields,
    write_text_atomic,
)

VERSION = "1.0.0"
N_POINTS = 98
N_TOKENS = 2 * N_POINTS + 4 + 6 + 1
FLAGS: tuple[str, ...] = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
BOX: tuple[str, ...] = ("x_min", "y_min", "x_max", "y_max")
SPLITS: tuple[str, ...] = ("test", "train")
ANNOTATION_DIR = "WFLW_annotations/list_98pt_rect_attr_train_test"
IMAGE_DIR = "WFLW_images"
CROP_SIZE = 224
CROP_SHARD = 64  # images per task when writing crops (a task costs ~ms to schedule)
HOMEPAGE = "https://wywu.github.io/projects/LAB/WFLW.html"
LICENSE = ("WFLW's annotations are released by their authors for non-commercial research "
           "purposes; its images come from WIDER FACE (images from the web, for research "
           "use). WFLW-FER holds WFLW's landmarks and attributes, so the same terms apply; "
           "check the homepage before any other use.")
CITATION = ("W. Wu, C. Qian, S. Yang, Q. Wang, Y. Cai and Q. Zhou, \"Look at Boundary: A "
            "Boundary-Aware Face Alignment Algorithm\", CVPR 2018.")


def annotation_path(source: Path, split: str) -> Path:
    return source / ANNOTATION_DIR / f"list_98pt_rect_attr_{split}.txt"


def parse_annotations(data: bytes, shown: str, split: str
                      ) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Arrays of one annotation file: ``lm`` (n, 98, 2), ``box`` (n, 4), ``flags`` (n, 6),
    ``image`` (n,), ``line`` (n,) and ``face_id`` (n,); plus (path:line, message) issues for
    malformed lines, which are skipped."""
    issues: list[tuple[str, str]] = []
    heads: list[str] = []
    images: list[str] = []
    line_no: list[int] = []
    for no, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        # Fast split for the usual single-space lines; anything else is normalised.
        head, _, image = line.rpartition(" ")
        if head.count(" ") != N_TOKENS - 2 or "\t" in line or "  " in head:
            toks = line.split()
            if len(toks) != N_TOKENS:
                issues.append((f"{shown}:{no}", f"expected {N_TOKENS} tokens (196 coordinates, "
                                                f"4 box, 6 flags, image path), got {len(toks)}"))
                continue
            head, image = " ".join(toks[:-1]), toks[-1]
        heads.append(head)
        images.append(image)
        line_no.append(no)
    nums, good = _parse_numbers(heads)
    for i in np.flatnonzero(~good):
        bad = next((tok for tok in heads[i].split() if not _is_float(tok)), "nan")
        issues.append((f"{shown}:{line_no[i]}", f"not a number: {bad!r}"))
    ints = nums[:, 2 * N_POINTS:]
    with np.errstate(invalid="ignore"):
        flags_ok = np.isin(nums[:, -6:], (0.0, 1.0)).all(axis=1)
        integral = (ints == np.round(ints)).all(axis=1)
        finite = np.isfinite(nums[:, :2 * N_POINTS]).all(axis=1)
    for i in np.flatnonzero(good & ~(flags_ok & integral & finite)):
        issues.append((f"{shown}:{line_no[i]}", "box must be integers, flags 0 or 1 and "
                                                "coordinates finite"))
    good &= flags_ok & integral & finite
    nums = nums[good]
    image = np.array(images, dtype=object)[good]
    # face_id: the face's position among its image's lines, in file order.
    face_id = np.zeros(len(image), dtype=np.int32)
    if len(image):
        _, inverse = np.unique(image.astype(str), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        sorted_inv = inverse[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_inv)) + 1]
        run_start = np.repeat(starts, np.diff(np.r_[starts, len(sorted_inv)]))
        face_id[order] = np.arange(len(sorted_inv)) - run_start
    return {
        "lm": nums[:, :2 * N_POINTS].reshape(-1, N_POINTS, 2),
        "box": nums[:, 2 * N_POINTS:2 * N_POINTS + 4].astype(np.int32),
        "flags": nums[:, -6:].astype(np.int8),
        "image": image, "face_id": face_id,
        "line": np.array(line_no, dtype=np.int64)[good],
        "split": np.full(len(image), split, dtype=object),
    }, issues


def _parse_numbers(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Space-separated numbers, one row per line, in one pass of pandas' C parser.

    Returns the ``(n, 206)`` values and which rows are all numbers. A column holding a
    non-number comes back as text; only such columns are converted again, so a bad token
    costs one column, not a second pass over the file.
    """
    if not lines:
        return np.empty((0, N_TOKENS - 1)), np.ones(0, dtype=bool)
    raw = pd.read_csv(io.StringIO("\n".join(lines)), sep=" ", header=None, engine="c",
                      na_filter=False, low_memory=False)
    good = np.ones(len(raw), dtype=bool)
    for col in raw.columns:
        if not pd.api.types.is_numeric_dtype(raw[col]):
            conv = pd.to_numeric(raw[col], errors="coerce")
            good &= conv.notna().to_numpy()
            raw[col] = conv
    return raw.to_numpy(dtype=np.float64), good


def _is_float(token: str) -> bool:
    try:
        return bool(np.isfinite(float(token)))
    except ValueError:
        return False


# ----------------------------------------------------------------------------- crops
def crop_transform(lm: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Per face, PIL AFFINE coefficients (a, b, c, d, e, f) mapping crop pixels to image pixels.

    A similarity transform puts the subject's right eye centre (WFLW 60-67) at
    (0.35 size, 0.40 size) and the left eye centre (68-75) at (0.65 size, 0.40 size):
    roll removed, inter-ocular distance = 0.3 size.
    """
    right = lm[:, 60:68].mean(axis=1)
    left = lm[:, 68:76].mean(axis=1)
    dst_r = np.array([0.35 * size, 0.40 * size])
    dst_l = np.array([0.65 * size, 0.40 * size])
    # Complex-number similarity: image = s * crop + t, s = (left - right) / (dst_l - dst_r).
    src_r = right[:, 0] + 1j * right[:, 1]
    src_l = left[:, 0] + 1j * left[:, 1]
    s = (src_l - src_r) / complex(*(dst_l - dst_r))
    t = src_r - s * complex(*dst_r)
    return np.stack([s.real, -s.imag, t.real, s.imag, s.real, t.imag], axis=1)


def crop_image(task: tuple[str, str, list[tuple[str, list[float]]], int]) -> list[str]:
    """Write the aligned crops of one image; returns problems (runs in a worker)."""
    image_path, shown, faces, size = task
    try:
        from PIL import Image

        with Image.open(image_path) as im:
            im.load()
            rgb = im.convert("RGB")
    except ImportError:
        raise InputError("--crops requires Pillow: pip install pillow") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the user's file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"{shown}\tcannot read image: {first}"]
    for out, coeffs in faces:
        crop = rgb.transform((size, size), Image.Transform.AFFINE, data=tuple(coeffs),
                             resample=Image.Resampling.BILINEAR)
        with atomic_path(out, ".png") as tmp:
            crop.save(tmp, format="PNG")
    return []


def crop_shard(tasks: list[tuple[str, str, list[tuple[str, list[float]]], int]]) -> list[str]:
    """Write the crops of a shard of images (one worker task); returns the problems."""
    return [p for t in tasks for p in crop_image(t)]


# ----------------------------------------------------------------------------- builder
class WflwBuilder(DatasetBuilder):
    """WFLW -> WFLW-FER (one row per face: 7,500 train + 2,500 test)."""

    name: ClassVar[str] = "wflw"
    VERSION: ClassVar[str] = VERSION
    source_dirnames: ClassVar[tuple[str, ...]] = ("WFLW", "wflw")

    def __init__(self, source: str | os.PathLike | None = None, *,
                 crops: str | os.PathLike | None = None, **kwargs: Any):
        super().__init__(source, **kwargs)
        self.crops = Path(crops) if crops is not None else None
        self._output: Path | None = None

    @classmethod
    def info(cls) -> DatasetInfo:
        fields = [pa.field("image", pa.string()), pa.field("face_id", pa.int32()),
                  pa.field("split", pa.string()),
                  *[pa.field(c, pa.int32()) for c in BOX],
                  *[pa.field(c, pa.int8()) for c in FLAGS],
                  *landmark_fields(N_POINTS), *result_fields()]
        return DatasetInfo(
            name="WFLW-FER", version=VERSION,
            description="WFLW faces with fine-grained emotion labels (6 emotions x 3 "
                        "intensities) from fuzzyemo's rules, with WFLW's boxes and attributes.",
            homepage=HOMEPAGE, license=LICENSE, citation=CITATION,
            schema=pa.schema(fields), splits=SPLITS, sort_keys=("split", "image", "face_id"))

    def check_source(self) -> None:
        missing = [annotation_path(self.source, s) for s in ("train", "test")]
        missing = [p for p in missing if not p.is_file()]
        if self.crops is not None and not (self.source / IMAGE_DIR).is_dir():
            missing.append(self.source / IMAGE_DIR / "<event>/<image>.jpg")
        if missing:
            raise SourceError(
                f"{self.source}: not a WFLW folder (missing {len(missing)} expected path(s))\n"
                + "\n".join(f"  expected: {p}" for p in missing)
                + "\n  rerun with: fuzzyemo build-dataset wflw --source DIR -o OUT (or set "
                  "FUZZYEMO_DATA_DIR to the folder holding WFLW/)\n"
                  f"  WFLW (annotations and images) is available from {HOMEPAGE}")

    def split_generators(self) -> dict[str, Path]:
        return {s: annotation_path(self.source, s) for s in SPLITS}

    def example_keys(self, df: pd.DataFrame) -> list[str]:
        return [f"{s}/{i}#{f}" for s, i, f in zip(df["split"], df["image"], df["face_id"],
                                                   strict=True)]

    def read(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        parts, checksums = [], {}
        for split, path in self.split_generators().items():
            rel = path.relative_to(self.source).as_posix()
            data = path.read_bytes()
            checksums[rel] = hashlib.sha256(data).hexdigest()
            arrays, issues = parse_annotations(data, rel, split)
            self.issues.extend(issues)
            parts.append(arrays)
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return merged, checksums

    def build_table(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        from fuzzyemo._geometry import Baseline, Calibration, raw_features
        from fuzzyemo._landmarks import LandmarkScheme

        a, checksums = self.read()
        # Sort by (split, image, face_id) up front so every later array is in output order.
        order = np.lexsort((a["face_id"], a["image"].astype(str), a["split"].astype(str)))
        a = {k: v[order] for k, v in a.items()}
        scheme = LandmarkScheme.load("wflw98", self.rules_dir)
        cal = Calibration.load(self.rules_dir)
        raw = raw_features(scheme.named(a["lm"]))
        expr = FLAGS.index("expression")
        finite = np.isfinite(raw).all(axis=1)
        neutral_train = finite & (a["flags"][:, expr] == 0) & (a["split"] == "train")
        neutral_all = finite & (a["flags"][:, expr] == 0)
        if neutral_train.any():
            base = Baseline.from_frames(raw[neutral_train], f"median of {neutral_train.sum()} "
                                        "training faces without the expression flag")
        elif neutral_all.any():
            base = Baseline.from_frames(raw[neutral_all], f"median of {neutral_all.sum()} "
                                        "faces without the expression flag")
        else:
            base = Baseline.population(scheme)
        x = cal.apply(raw, base.values)
        res = results_frame(self.rulebase.compile().evaluate(x))
        lm = a["lm"].astype(np.float32)
        data: dict[str, Any] = {"image": a["image"], "face_id": a["face_id"],
                                "split": a["split"]}
        data.update({c: a["box"][:, j] for j, c in enumerate(BOX)})
        data.update({c: a["flags"][:, j] for j, c in enumerate(FLAGS)})
        data.update({f"x_{i}": lm[:, i, 0] for i in range(N_POINTS)})
        data.update({f"y_{i}": lm[:, i, 1] for i in range(N_POINTS)})
        data.update({c: x[:, j] for j, c in enumerate(COMPONENTS)})
        df = pd.concat([pd.DataFrame(data), res], axis=1)
        if self.crops is not None:
            self.write_crops(df, a["lm"])
        provenance = {"source_checksums": checksums, "baseline": base.to_dict(),
                      "calibration_sha256": cal.sha256,
                      "landmarks": "wflw98 (WFLW annotations)"}
        return df, provenance

    def write_crops(self, df: pd.DataFrame, lm: np.ndarray) -> None:
        """Aligned ``CROP_SIZE`` PNG crops, one per face, and ``crops.csv`` indexing them."""
        assert self.crops is not None
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise InputError("--crops requires Pillow: pip install pillow") from None
        coeffs = crop_transform(lm)
        names = [f"{s}/{Path(i).with_suffix('').as_posix().replace('/', '__')}_{f}.png"
                 for s, i, f in zip(df["split"], df["image"], df["face_id"], strict=True)]
        for s in SPLITS:
            (self.crops / s).mkdir(parents=True, exist_ok=True)
        tasks: dict[str, tuple[str, str, list, int]] = {}
        for k, (img, name) in enumerate(zip(df["image"], names, strict=True)):
            rel = f"{IMAGE_DIR}/{img}"
            if rel not in tasks:
                tasks[rel] = (str(self.source / IMAGE_DIR / img), rel, [], CROP_SIZE)
            tasks[rel][2].append((str(self.crops / name), coeffs[k].tolist()))
        ordered = [tasks[k] for k in sorted(tasks)]
        shards = [ordered[k:k + CROP_SHARD] for k in range(0, len(ordered), CROP_SHARD)]
        per_shard: dict[int, list[str]] = {}
        with Progress(self.progress, "WFLW crops", len(ordered)) as bar:
            def done(k: int, res: Any) -> None:
                if isinstance(res, TaskFailed):
                    raise InputError(f"WFLW crops of {shards[k][0][1]} ...: {res}")
                per_shard[k] = res
                bar.advance(len(shards[k]))

            # One task per shard of images, here or on a Dask cluster (--scheduler).
            run_tasks(crop_shard, shards, self.where, done, label="fuzzyemo-wflw")
        problems: list[str] = [p for k in range(len(shards)) for p in per_shard[k]]
        failed = set()
        for p in problems:
            path, msg = p.split("\t", 1)
            self.issues.add(path, msg)
            failed.add(path)
        ok = [f"{IMAGE_DIR}/{i}" not in failed for i in df["image"]]
        index = pd.DataFrame({"image": df["image"], "face_id": df["face_id"],
                              "split": df["split"], "crop": names, "label": df["label"],
                              "class_index": df["class_index"]})[ok]
        write_text_atomic(self.crops / "crops.csv", index.to_csv(index=False))

    def default_command(self) -> str:
        assert self._output is not None
        flags = " --strict" if self.strict else ""
        flags += " --crops $CROPS" if self.crops is not None else ""
        return f"fuzzyemo build-dataset wflw --source $SOURCE -o {self._output.name}{flags}"

    def card(self, df: pd.DataFrame, meta: Mapping[str, Any], counts: pd.DataFrame,
             plot: str | None) -> str:
        info = self.info()
        per_split = df["split"].value_counts().reindex(SPLITS, fill_value=0)
        multi = int((df.groupby(["split", "image"]).size() > 1).sum())
        flag_rates = {f: f"{df[f].mean():.1%}" for f in FLAGS}
        lines = [
            f"# {info.name}", "", info.description, "",
            f"- rows: {len(df)} faces ({', '.join(f'{s} {n}' for s, n in per_split.items())}); "
            f"{multi} images hold several faces",
            f"- attribute flags set: {', '.join(f'{k} {v}' for k, v in flag_rates.items())}",
            f"- file: `{self._output.name if self._output else ''}` (parquet; columns and "
            "types in docs/datasets.md)",
            "", "## How the labels were made", "",
            "1. Landmarks: WFLW's 98 manual landmarks, mapped to named points by "
            "rules/landmarks/wflw98.yaml.",
            "2. Geometry: the 12 raw component features (docs/geometry.md) relative to one "
            f"population baseline ({meta['baseline']['source']}), mapped to [-1, 1] by "
            "rules/calibration.yaml. WFLW has one photo per person, so a per-person "
            "baseline is impossible: faces that differ from the typical face at rest (thick "
            "lips, low brows) are read as expressive.",
            "3. Rules: the FCIS/FKIS rule base (hash below) gives activations, "
            "eccentricities, the 18 intensity scores and the label.",
            "", "## Splits", "", "The official WFLW train (7,500 faces) and test (2,500 "
            "faces) lists.", "",
            self.card_common(meta, counts, plot),
            "## Licence of the source", "", LICENSE, "", "## Citation", "", CITATION, "",
        ]
        return "\n".join(lines)

