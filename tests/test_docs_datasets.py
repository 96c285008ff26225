"""docs/datasets.md checked against the code.

The page's commands and Python block are run on small DISFA / WFLW trees in the exact
on-disk layout (tests/builder_fixtures.py), and the numbers, names, columns, flags and
metadata keys the page states are read from the page and compared with the code, so a
stale page fails here.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from builder_fixtures import face, fast, make_disfa, make_wflw, rulebase  # noqa: E402

import builders.disfa as disfa  # noqa: E402
import builders.wflw as wflw  # noqa: E402
from fuzzyemo import _report  # noqa: E402
from fuzzyemo._table import read_metadata  # noqa: E402
from fuzzyemo._vocab import CLASS_NAMES, COMPONENTS, EMOTIONS  # noqa: E402

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
FLAT = " ".join(DOC.split())  # whitespace-normalised, for sentences that wrap

HAS_PIL = importlib.util.find_spec("PIL") is not None


# ----------------------------------------------------------------------------- page helpers
def section(title: str) -> str:
    """The text under a heading (``## title`` or ``### title``) up to the next heading of
    the same or a higher level."""
    m = re.search(rf"^(#+) {re.escape(title)}\s*$", DOC, re.MULTILINE)
    assert m, f"heading {title!r} not in docs/datasets.md"
    level = len(m.group(1))
    rest = DOC[m.end():]
    nxt = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: nxt.start()] if nxt else rest


def code_blocks(lang: str, text: str = DOC) -> list[str]:
    """The fenced blocks of one info string (``""``: bare fences), in page order."""
    blocks, current, fence = [], [], None
    for line in text.splitlines():
        if fence is None and line.startswith("```"):
            fence = line[3:].strip()
            current = []
        elif fence is not None and line.strip() == "```":
            if fence == lang:
                blocks.append("\n".join(current) + "\n")
            fence = None
        elif fence is not None:
            current.append(line)
    return blocks


def flat(text: str) -> str:
    return " ".join(text.split())


def find(pattern: str, text: str = FLAT) -> re.Match:
    m = re.search(pattern, text)
    assert m, f"docs/datasets.md no longer says {pattern!r}"
    return m


def table_rows(text: str) -> list[tuple[str, str]]:
    """(column cell, type cell) of the first markdown table in ``text``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[0] not in ("column", "---"):
            rows.append((cells[0], cells[1]))
    return rows


ARROW = {"string": pa.string(), "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(),
         "float32": pa.float32(), "float64": pa.float64(), "bool": pa.bool_()}
PLACEHOLDERS = {"<component>": COMPONENTS, "<emotion>": EMOTIONS}


def expand(cell: str, names: list[str]) -> list[list[str]]:
    """The column names one table cell stands for, as groups (one group per comma-separated
    item, so ``label``, ``class_index`` with types ``string, int16`` pair up).

    ``a`` ... ``b`` is the run of schema columns from a to b; ``<component>`` and
    ``<emotion>`` stand for every component / emotion."""
    groups = []
    for item in re.split(r",\s*(?=`)", cell):
        ticks = re.findall(r"`([^`]+)`", item)
        if "..." in item and len(ticks) == 2:
            a, b = names.index(ticks[0]), names.index(ticks[1])
            assert a <= b, f"{ticks[0]} ... {ticks[1]} runs backwards in the schema"
            groups.append(names[a: b + 1])
            continue
        for t in ticks:
            ph = next((p for p in PLACEHOLDERS if p in t), None)
            groups.append([t.replace(ph, v) for v in PLACEHOLDERS[ph]] if ph else [t])
    return groups


def check_table(title: str, schema: pa.Schema, inherited: pa.Schema | None = None) -> None:
    names = schema.names
    types = {f.name: f.type for f in schema}
    seen: list[str] = []
    for cell, type_cell in table_rows(section(title)):
        if not cell.startswith("`"):  # "components, codes, ... | | as DISFA-FER"
            assert inherited is not None, cell
            for f in inherited:
                assert types[f.name] == f.type, f"{title}: {f.name} is not as in DISFA-FER"
            seen += inherited.names
            continue
        groups = expand(cell, names)
        kinds = [t.strip() for t in type_cell.split(",")]
        if len(kinds) == 1:
            kinds *= len(groups)
        assert len(kinds) == len(groups), cell
        for group, kind in zip(groups, kinds, strict=True):
            for name in group:
                assert name in types, f"{title}: documented column {name} is not in the schema"
                assert types[name] == ARROW[kind], f"{title}: {name} is {types[name]}, not {kind}"
            seen += group
    assert sorted(seen) == sorted(names), \
        f"{title}: undocumented columns {sorted(set(names) - set(seen))[:5]}"
    assert len(seen) == len(set(seen)), f"{title}: a column is documented twice"


def cli_app() -> typer.Typer:
    from fuzzyemo.cli import app

    return app


def cli_params(*path: str) -> set[str]:
    cmd = typer.main.get_command(cli_app())
    for p in path:
        cmd = cmd.commands[p]
    return {o for prm in cmd.params for o in (*prm.opts, *prm.secondary_opts)
            if o.startswith("-")}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ran_commands(tmp_path_factory):
    """The page's bash block, run with the CLI in a fresh folder (``/data`` -> fixtures).

    The two figures are recorded, not drawn (matplotlib would be most of the time here;
    test_builders_disfa and test_report draw them): what matters here is where they go."""
    base = tmp_path_factory.mktemp("docs_datasets")
    data = base / "data"
    make_disfa(data / "DISFA", subjects=("SN001", "SN031"), n_frames=10, missing={},
               collapsed={})
    make_wflw(data / "WFLW", n_train=5, n_test=3, images=HAS_PIL, malformed=False)
    work = base / "work"
    work.mkdir()
    (block,) = code_blocks("bash", section("Datasets: DISFA-FER and WFLW-FER"))
    import builders._base as base_mod
    from fuzzyemo import _report as report_mod
    from fuzzyemo.cli import _build

    results, figures = [], []

    def record(*args):
        figures.append(Path(args[1]).resolve())
        Path(args[1]).write_bytes(b"figure")
        return True

    load_rules = _build.load_rules
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base_mod, "class_balance_plot", record)
        mp.setattr(report_mod, "save_figure", record)
        mp.chdir(work)
        # The shipped rule base, parsed once (the YAML is the slow part of a tiny build).
        mp.setattr(_build, "load_rules", lambda rules, **kw: (
            rulebase() if rules is None else load_rules(rules)).with_options(**kw))
        for line in block.splitlines():
            line = line.split("#", 1)[0].replace("/data/", f"{data}/").strip()
            # The optional [--crops ...]: used when Pillow is there.
            line = re.sub(r"\[(.*?)\]", r"\1" if HAS_PIL else "", line)
            argv = shlex.split(line)
            if not argv:
                continue
            if argv[:2] == ["mkdir", "-p"]:
                for d in argv[2:]:
                    Path(d).mkdir(parents=True, exist_ok=True)
                continue
            assert argv[0] == "fuzzyemo", line
            # One worker: no process pool to start for a tiny tree (same bytes, "whatever
            # --workers", as the page says and test_builders_disfa checks).
            extra = ["--workers", "1"] if argv[1] == "build-dataset" else []
            r = CliRunner().invoke(cli_app(), argv[1:] + extra)
            assert r.exit_code == 0, f"{line}\n{r.output}"
            results.append((argv, r.output))
    return work, results, figures


@pytest.fixture(scope="module")
def disfa_tree(tmp_path_factory):
    """Two official subjects (fold0, fold1), two unknown ones, a truncated label file."""
    root = tmp_path_factory.mktemp("disfa_api") / "DISFA"
    make_disfa(root, subjects=("SN001", "SN013", "SN014", "SN015"), n_frames=6, missing={},
               collapsed={}, truncated={"SN013": 12})
    return root


# ----------------------------------------------------------------------------- commands
def test_bash_block_runs_and_writes_what_the_page_says(ran_commands):
    work, results, figures = ran_commands
    assert [a[1:3] for a, _ in results] == [["build-dataset", "disfa"],
                                           ["build-dataset", "wflw"], ["report", "disfa-fer"]]
    for argv, _ in results[:2]:
        out = work / argv[argv.index("-o") + 1]
        # "Every build writes, beside the parquet file: dataset_card.md, <name>_class_balance.png"
        assert out.is_file() and (out.parent / "dataset_card.md").is_file()
        plot = out.parent / f"{out.stem}_class_balance.png"
        assert plot.resolve() in figures and plot.is_file()
        card = (out.parent / "dataset_card.md").read_text()
        for heading in ("## How the labels were made", "## Counts per class and split",
                        "## Skipped or damaged source files", "## Provenance",
                        "## Licence of the source", "## Citation"):
            assert heading in card
    disfa_card = (work / "disfa" / "dataset_card.md").read_text()
    # "A subset also builds (the card lists the absent ones)"; per-subject baselines.
    assert "subjects absent from the source (25 of the official 27)" in disfa_card
    assert "## Baselines" in disfa_card and "- SN031: " in disfa_card
    # The report "prints two tables and writes a figure (default <table>_validity.png)".
    report = results[2][1]
    assert "1. Components vs the AUs" in report and "2. Labels vs FACS prototypes" in report
    assert figures[-1] == (work / "disfa" / "disfa_fer_validity.png").resolve()
    assert len(figures) == 3


def test_crops_paths_and_index(ran_commands):
    if not HAS_PIL:
        pytest.skip("--crops needs Pillow")
    work = ran_commands[0]
    text = section("`--crops DIR` (WFLW)")
    crops = work / "wflw" / "crops"
    index = pd.read_csv(crops / "crops.csv")
    cols = find(r"`DIR/crops\.csv` \(([^)]*)\)", flat(text)).group(1)
    assert list(index.columns) == [c.strip() for c in cols.split(",")]
    assert "`DIR/<split>/<image path without extension, / as __>_<face_id>.png`" in flat(text)
    for row in index.itertuples():
        stem = Path(row.image).with_suffix("").as_posix().replace("/", "__")
        assert row.crop == f"{row.split}/{stem}_{row.face_id}.png"
        assert (crops / row.crop).is_file()
    from PIL import Image

    w, h = map(int, find(r"one aligned (\d+) x (\d+) PNG per face", flat(text)).groups())
    with Image.open(crops / index["crop"].iloc[0]) as im:
        assert im.size == (w, h) == (wflw.CROP_SIZE, wflw.CROP_SIZE)


def test_options_paragraph_matches_the_cli():
    m = find(r"Options \(both builders\): (.*?) DISFA only: (.*?) WFLW only: (.*?)\. ")
    both, disfa_only, wflw_only = (set(re.findall(r"--[a-z-]+", g)) for g in m.groups())
    d, w = cli_params("build-dataset", "disfa"), cli_params("build-dataset", "wflw")
    assert both and both <= d and both <= w
    assert disfa_only and disfa_only <= d - w
    assert wflw_only and wflw_only <= w - d
    # Every option of the builders is on the page (--source, -o and --progress aside).
    assert (d | w) - both - disfa_only - wflw_only <= {"--source", "-o", "--output",
                                                       "--progress", "--help"}
    # The report command line.
    m = find(r"`fuzzyemo report disfa-fer OUT\.parquet ([^`]*)`")
    flags = set(re.findall(r"--[a-z-]+", m.group(1)))
    assert flags == cli_params("report", "disfa-fer") - {"--help"}


# ----------------------------------------------------------------------------- source layout
def _expand_subjects(text: str) -> list[str]:
    out = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        lo, hi = int(a[2:]), int((b or a)[2:])
        out += [f"SN{i:03d}" for i in range(lo, hi + 1)]
    return out


def test_disfa_layout_facts():
    m = find(r"(\d+) subjects: (SN[\dSN ,-]+)\. A subset")
    subjects = _expand_subjects(m.group(2))
    assert int(m.group(1)) == len(subjects) == len(disfa.SUBJECTS)
    assert tuple(subjects) == disfa.SUBJECTS
    aus = find(r"Label files, for AUs ([\d, ]+):").group(1)
    assert tuple(int(a) for a in aus.split(",")) == disfa.AUS
    n = int(re.search(r"(\d+) AUs per subject", DOC).group(1))
    assert n == len(disfa.AUS) == len(disfa.AU_COLUMNS)
    # Output table facts: frame rate, invalid reasons.
    fps = find(r"`\(frame - 1\) / (\d+)` \(DISFA is (\d+) fps\)")
    assert float(fps.group(1)) == float(fps.group(2)) == disfa.FPS
    reasons = find(r"null when valid, else ([^|]+)\|").group(1)
    assert re.findall(r"`([^`]+)`", reasons) == list(disfa.REASONS[1:])
    # Homepages.
    assert f"DISFA: <{disfa.HOMEPAGE}>" in FLAT and f"WFLW: <{wflw.HOMEPAGE}>" in FLAT


def test_disfa_folds_are_the_documented_partition():
    text = flat(section("DISFA-FER (one row per frame, sorted by subject, frame)"))
    folds = dict(re.findall(r"`(fold\d)` = ((?:SN\d{3}(?:, )?)+)", text))
    assert set(folds) == set(disfa.FOLDS)
    for name, members in folds.items():
        assert sorted(members.replace(" ", "").rstrip(",").split(",")) == \
            sorted(disfa.FOLDS[name])
    # "Subjects outside these lists go round-robin over the folds in sorted order."
    assert disfa.fold_of(["SN099", "SN014", "SN015", "SN001"]) == {
        "SN001": "fold0", "SN014": "fold0", "SN015": "fold1", "SN099": "fold2"}


def test_wflw_line_format():
    text = flat(section("WFLW"))
    m = find(r"Each line: (\d+) whitespace-separated tokens = (\d+) landmark coordinates", text)
    assert int(m.group(1)) == wflw.N_TOKENS and int(m.group(2)) == 2 * wflw.N_POINTS
    m = find(r"(\d+) flags \(([^;)]*); 0/1\)", text)
    flags = [f.strip().replace("-", "_") for f in m.group(2).split(",")]
    assert int(m.group(1)) == len(flags) and tuple(flags) == wflw.FLAGS
    (tree,) = [b for b in code_blocks("") if b.startswith("WFLW/")]
    for split in ("train", "test"):
        rel = wflw.annotation_path(Path("WFLW"), split).as_posix()
        assert rel.replace("WFLW/", "  ", 1) in tree


# ----------------------------------------------------------------------------- columns
def test_disfa_fer_columns_and_types():
    info = disfa.DisfaBuilder.info()
    check_table("DISFA-FER (one row per frame, sorted by subject, frame)", info.schema)
    assert info.sort_keys == ("subject", "frame")


def test_wflw_fer_columns_and_types():
    info = wflw.WflwBuilder.info()
    from builders._base import result_fields

    # "components, codes, activations, eccentricities, scores, label, class_index: as DISFA-FER"
    disfa_schema = disfa.DisfaBuilder.info().schema
    as_disfa = pa.schema([disfa_schema.field(f.name) for f in result_fields()])
    check_table("WFLW-FER (one row per face, sorted by split, image, face_id)", info.schema,
                as_disfa)
    assert info.sort_keys == ("split", "image", "face_id")
    # "WFLW keys are "<split>/<image>#<face_id>"".
    assert '`"<split>/<image>#<face_id>"`' in FLAT
    df = pd.DataFrame({"split": ["test"], "image": ["0--Parade/a.jpg"], "face_id": [1]})
    assert wflw.WflwBuilder.example_keys(None, df) == ["test/0--Parade/a.jpg#1"]


def test_class_index_and_score_names():
    text = section("DISFA-FER (one row per frame, sorted by subject, frame)")
    m = find(r"class name / 0-(\d+); `neutral` = (-\d), `unknown` = (-\d)", flat(text))
    from fuzzyemo._vocab import NEUTRAL_INDEX, UNKNOWN_INDEX

    assert int(m.group(1)) == len(CLASS_NAMES) - 1
    assert (int(m.group(2)), int(m.group(3))) == (NEUTRAL_INDEX, UNKNOWN_INDEX)
    assert "the 18 intensity scores" in flat(text) and len(CLASS_NAMES) == 18


# ----------------------------------------------------------------------------- Python API
def test_python_api_block_runs(disfa_tree, tmp_path, monkeypatch):
    (block,) = code_blocks("python", section("Python API"))
    monkeypatch.chdir(tmp_path)
    # The shipped rule base parsed once and no plot: the same build, faster.
    monkeypatch.setattr(disfa, "DisfaBuilder", fast(disfa.DisfaBuilder))
    monkeypatch.setattr(wflw, "WflwBuilder", fast(wflw.WflwBuilder))
    ns: dict = {}
    exec(compile(block.replace("/data/DISFA", str(disfa_tree)), "datasets.md", "exec"), ns)
    b, summary = ns["b"], ns["summary"]
    assert b.workers == int(re.search(r"workers=(\d+)", block).group(1))
    info = b.info()
    assert info.name == "DISFA-FER" and isinstance(info.schema, pa.Schema)
    assert info.version and info.license and info.citation
    splits = b.split_generators()
    assert list(splits) == ["fold0", "fold1", "fold2"]
    # The comment's example: {"fold0": ["SN001", ...], ...}; unknown subjects round-robin.
    assert splits == {"fold0": ["SN001", "SN014"], "fold1": ["SN013", "SN015"], "fold2": []}
    key = re.search(r'stable keys "([^"]+)"', block).group(1)
    first = next(iter(b.generate_examples("fold0")))
    assert first[0] == key and first[1]["subject"] == key.split("/")[0]
    assert summary.output == Path("disfa_fer.parquet") and summary.output.is_file()
    assert summary.rows == 4 * 6
    # "DisfaBuilder(None) with FUZZYEMO_DATA_DIR" (a folder holding DISFA/).
    monkeypatch.setenv("FUZZYEMO_DATA_DIR", str(disfa_tree.parent))
    assert disfa.DisfaBuilder(None).source == disfa_tree


# ----------------------------------------------------------------------------- metadata
def _metadata_keys() -> tuple[set[str], set[str], set[str]]:
    text = flat(section("Metadata")).split("Readers:")[0]
    common, _, per = text.partition("and, per dataset,")
    disfa_part, _, wflw_part = per.partition("(DISFA) or")
    keys = [re.findall(r"`([a-z_0-9]+)`", t) for t in (common, disfa_part, wflw_part)]
    keys[0] = [k for k in keys[0] if k != "fuzzyemo"]  # the schema key itself
    return set(keys[0]), set(keys[1]), set(keys[2])


def test_metadata_fields_are_the_documented_ones(disfa_tree, tmp_path):
    common, disfa_keys, wflw_keys = _metadata_keys()
    assert common and disfa_keys and wflw_keys
    out = tmp_path / "d" / "disfa_fer.parquet"
    out.parent.mkdir()
    fast(disfa.DisfaBuilder)(disfa_tree, workers=1).build(out)
    meta = read_metadata(out)
    assert set(meta) == common | disfa_keys
    # "recorded per subject as frame_index_base in the metadata's source_checksums"
    assert all(v["frame_index_base"] == 0 for v in meta["source_checksums"].values())
    assert meta["command"] == "fuzzyemo build-dataset disfa --source $SOURCE -o disfa_fer.parquet"
    root = tmp_path / "WFLW"
    make_wflw(root, n_train=4, n_test=2, malformed=False)
    out = tmp_path / "w" / "wflw_fer.parquet"
    out.parent.mkdir()
    fast(wflw.WflwBuilder)(root, workers=1).build(out)
    meta = read_metadata(out)
    assert set(meta) == common | wflw_keys
    assert sorted(meta["source_checksums"]) == sorted(
        wflw.annotation_path(Path("."), s).as_posix() for s in ("train", "test"))


def test_null_au_values_in_pandas(disfa_tree, tmp_path):
    assert 'Null AU values come back as float NaN in pandas (or use `dtype_backend="numpy_nullable"`)' in FLAT
    out = tmp_path / "disfa_fer.parquet"
    fast(disfa.DisfaBuilder)(disfa_tree, workers=1).build(out)
    au = pd.read_parquet(out, columns=["AU12_r"])["AU12_r"]
    assert au.dtype == np.float64 and au.isna().any()
    au = pd.read_parquet(out, columns=["AU12_r"], dtype_backend="numpy_nullable")["AU12_r"]
    assert str(au.dtype) == "Int8" and au.isna().any()


# ----------------------------------------------------------------------------- bad landmarks
def _faces(n: int = 9) -> np.ndarray:
    return np.stack([face("disfa66", {}, scale=50.0) for _ in range(n)])


def _stub(iod: float, width: float) -> np.ndarray:
    """66 points: the eye centres ``iod`` apart, two points ``width`` apart, rest central."""
    p = np.tile([512.0, 384.0], (66, 1))
    p[36:42, 0] -= iod / 2
    p[42:48, 0] += iod / 2
    p[0, 0], p[1, 0] = 512.0 - width / 2, 512.0 + width / 2
    return p


def test_bad_landmark_thresholds_are_the_documented_ones():
    text = flat(section("How the labels are made"))
    iod_px, width_px = map(float, find(
        r"inter-ocular distance >= (\d+) px and face >= (\d+) px wide", text).groups())
    w, h, margin = map(float, find(
        r"within the (\d+) x (\d+) frame with a (\d+) % margin", text).groups())
    lo_m, hi_m = map(float, find(r"mouth must lie ([\d.]+)-([\d.]+) IODs below", text).groups())
    lo_i, hi_i = map(float, find(r"IOD must be within ([\d.]+)-([\d.]+)x the subject", text).groups())
    max_dist = float(find(r"median shape must be under ([\d.]+) IOD", text).group(1))
    assert (w, h) == disfa.FRAME_SIZE
    assert "all 132 coordinates finite" in text and 2 * disfa.N_POINTS == 132

    def reasons(extra: list[np.ndarray]) -> list[str]:
        lm = np.concatenate([_faces(), np.stack(extra)])
        r = disfa.landmark_quality(lm, np.ones(len(lm), dtype=bool))
        assert (r[:9] == 0).all()
        return [disfa.REASONS[i] or "ok" for i in r[9:]]

    eps = 0.05
    # Degenerate: eyes closer than iod_px, or a face narrower than width_px.
    got = reasons([_stub(iod_px - eps, 40), _stub(iod_px + eps, 40),
                   _stub(12, width_px - eps), _stub(12, width_px + eps)])
    assert got[0] == got[2] == "degenerate" and "degenerate" not in (got[1], got[3])
    # Outside the frame: the margin on each side.
    f0 = _faces(1)[0]
    shifted = []
    for axis, size in ((0, w), (1, h)):
        for sign in (1, -1):
            for d in (-eps, eps):
                edge = f0[:, axis].max() if sign > 0 else f0[:, axis].min()
                target = (size * (1 + margin / 100) if sign > 0 else -size * margin / 100)
                p = f0.copy()
                p[:, axis] += target - edge + sign * d
                shifted.append(p)
    assert reasons(shifted) == ["ok", "outside the frame"] * 4
    # IOD within lo_i-hi_i x the subject's median: scale a face about its centre.
    centre = f0.mean(axis=0)
    scaled = [(f0 - centre) * k + centre for k in (lo_i - 0.01, lo_i + 0.01, hi_i - 0.01,
                                                     hi_i + 0.01)]
    assert reasons(scaled) == ["implausible shape", "ok", "ok", "implausible shape"]
    # Mouth depth lo_m-hi_m IODs below the eye line (moving the 12 outer-lip points down).
    right, left = f0[36:42].mean(axis=0), f0[42:48].mean(axis=0)
    iod = float(np.hypot(*(left - right)))
    u = (left - right) / iod           # along the eye line
    v = np.array([-u[1], u[0]])        # down the face (image y points down)
    depth = float(((f0[48:60] - (left + right) / 2) @ v).mean()) / iod
    moved = []
    for target in (lo_m - 0.01, lo_m + 0.01, hi_m - 0.01, hi_m + 0.01):
        p = f0.copy()
        p[48:60] += (target - depth) * iod * v
        moved.append(p)
    assert reasons(moved) == ["implausible shape", "ok", "ok", "implausible shape"]
    # Mean point distance to the median shape under max_dist IOD: shift the 36 jaw, brow
    # and nose points sideways (eyes and mouth stay, so nothing else changes).
    drift = []
    for dist in (max_dist - 0.01, max_dist + 0.01):
        p = f0.copy()
        p[:36] += dist * 66 / 36 * iod * u
        drift.append(p)
    assert reasons(drift) == ["ok", "implausible shape"]


def test_bad_frame_ranges_in_the_card_text():
    limit = int(find(r"lists the bad frames per subject and reason as ranges \(the first "
                     r"(\d+) ranges, then how many more\)").group(1))
    frames = np.arange(1, 2 * (limit + 2), 2)  # limit + 2 separate runs
    shown = ", ".join(str(f) for f in frames[:limit])
    assert disfa._ranges(frames) == f"{shown}, ... (2 more ranges)"
    assert disfa._ranges(np.array([2, 3, 4, 9])) == "2-4, 9"


# ----------------------------------------------------------------------------- crops
def test_crop_alignment_numbers():
    text = flat(section("`--crops DIR` (WFLW)"))
    m = find(r"right eye centre \(mean of points (\d+)-(\d+)\) at \(([\d.]+), ([\d.]+)\) x (\d+) "
             r"and the left one \((\d+)-(\d+)\) at \(([\d.]+), ([\d.]+)\) x (\d+)", text)
    r0, r1, rx, ry, size, l0, l1, lx, ly, size2 = m.groups()
    assert int(size) == int(size2) == wflw.CROP_SIZE
    rng = np.random.default_rng(0)
    lm = np.stack([face("wflw98", {}, scale=60, centre=(300, 250), roll=0.2)])
    lm += rng.normal(0, 0.5, lm.shape)
    a, b, c, d, e, f = wflw.crop_transform(lm)[0]
    for (x, y), lo, hi in (((float(rx), float(ry)), r0, r1), ((float(lx), float(ly)), l0, l1)):
        x, y = x * wflw.CROP_SIZE, y * wflw.CROP_SIZE
        np.testing.assert_allclose([a * x + b * y + c, d * x + e * y + f],
                                   lm[0, int(lo): int(hi) + 1].mean(axis=0), atol=1e-9)
    iod = int(find(r"inter-ocular distance = (\d+) px", text).group(1))
    assert iod == round((float(lx) - float(rx)) * wflw.CROP_SIZE)
    assert b == pytest.approx(-d) and a == pytest.approx(e)  # similarity: no shear


# ----------------------------------------------------------------------------- report
NAMES = {"brows": ("left_eyebrow", "right_eyebrow"), "brow crest": ("brow_crest",),
         "eyes": ("left_eye", "right_eye"), "nose": ("nose",),
         "mouth corners": ("left_mouth_corner", "right_mouth_corner"),
         "lower lip": ("lower_lip",), "mouth": ("mouth",)}


def test_report_pairs_prototypes_and_thresholds():
    text = flat(section("The validity report"))
    pairs_text = find(r"expects and the share of subjects whose own correlation has that "
                      r"sign: (.*?)\. Verdict", text).group(1)
    pairs = set()
    for item in pairs_text.split(";"):
        name, _, rest = item.partition("~")
        for aus, sign in re.findall(r"((?:AU\d+(?:,\s*)?)+)\s*\(([+-])", rest):
            for au in re.findall(r"AU(\d+)", aus):
                for comp in NAMES[name.strip()]:
                    pairs.add((comp, f"AU{int(au):02d}_r", 1 if sign == "+" else -1))
    assert pairs == set(_report.AU_PAIRS)
    assert float(find(r"`ok` \(expected sign, \|r\| >= ([\d.]+)\)", text).group(1)) \
        == _report.MIN_ABS_R
    assert int(find(r"\(on at intensity >= (\d+)\)", text).group(1)) == _report.ON_LEVEL
    protos = find(r"reduced to DISFA's AUs: (.*?) \(AU7", text).group(1)
    got = {e: tuple(sorted(int(a) for a in aus.split("+")))
           for e, aus in re.findall(r"(\w+) ([\d+]+)", protos)}
    assert got == {e: tuple(sorted(a)) for e, a in _report.PROTOTYPES.items()}
    uncoded = re.findall(r"AU(\d+)", find(r"\((AU7, AU16, AU23) are not coded", text).group(1))
    assert not set(map(int, uncoded)) & set(disfa.AUS)


def test_page_still_points_at_files_that_exist():
    root = DOC_PATH.parents[1]
    for rel in ("rules/landmarks/disfa66.yaml", "rules/calibration.yaml", "docs/geometry.md",
                "benchmarks/build.py"):
        assert rel in DOC and (root / rel).is_file()
    assert "`wflw98.yaml`" in DOC and (root / "rules/landmarks/wflw98.yaml").is_file()
    assert "`mediapipe478` scheme" in DOC and (root / "rules/landmarks/mediapipe478.yaml").is_file()
    assert '"Dataset builders"' in DOC
    assert "## Dataset builders" in (root / "docs/performance.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- failures
def _shape(example: str) -> str:
    """A regex of an example line: numbers and paths generalised, the wording kept."""
    out = re.escape(example)
    out = re.sub(r"(?:\\\.)?[\w./-]*out\\\.parquet(?:\\\.parts)?", r"\\S+", out)
    return re.sub(r"\d[\d,.]*", r"[\\d,.]+", out)


def test_interrupted_and_progress_examples_are_what_a_build_prints(disfa_tree, tmp_path,
                                                                 monkeypatch):
    import builders._base as base
    from fuzzyemo.cli import app

    interrupted = find(r"Interrupted, the build says what is on disk \(exit 130\): `([^`]+)`")[1]
    progress = find(r"one line per tenth of the work, e\.g\. `([^`]+)`")[1]
    runner = CliRunner()
    argv = ["build-dataset", "disfa", "--source", str(disfa_tree), "-o",
            str(tmp_path / "out.parquet"), "--workers", "1"]
    res = runner.invoke(app, argv)  # CliRunner's stderr is not a terminal: progress lines
    assert res.exit_code == 0, res.output
    assert any(re.fullmatch(_shape(progress), ln) for ln in res.output.splitlines()), (
        progress, res.output)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(base.pq, "write_table", interrupt)
    res = runner.invoke(app, [*argv, "--no-progress"])  # over the finished build
    assert res.exit_code == 130
    assert re.fullmatch(_shape(interrupted), res.output.strip()), (interrupted, res.output)
