"""The wheel carries the rule base, and the package works from it without a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="hatchling (test extra) builds the wheel")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True)
    (path,) = out.glob("fuzzyemo-*.whl")
    return path


def test_wheel_contains_rules_and_packages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for emotion in ("happiness", "anger", "sadness", "disgust", "fear", "surprise"):
        assert f"fuzzyemo/_rules/fkis/{emotion}.yaml" in names
    assert "fuzzyemo/_rules/fcis.yaml" in names and "fuzzyemo/_rules/engine.yaml" in names
    assert "fuzzyemo/data/sample_components.csv" in names
    assert any(n.startswith("builders/") for n in names)
    assert any(n.startswith("stf2m_model/") for n in names)


def test_rules_load_from_unpacked_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import fuzzyemo, sys; rb = fuzzyemo.RuleBase.default(); "
            "print(fuzzyemo.__file__); print(fuzzyemo.default_rules_dir()); print(rb.sha256)")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    module, rules_dir, sha = res.stdout.split()
    assert module.startswith(str(site)) and rules_dir.startswith(str(site))
    from fuzzyemo import RuleBase

    assert sha == RuleBase.load(ROOT / "rules").sha256  # same bytes as the checkout's rules/


def test_import_and_inference_stay_light() -> None:
    """`import fuzzyemo`, rule inference and geometry load none of the heavy optional parts;
    the annotation API is public but imported on first use."""
    heavy = ["mediapipe", "cv2", "torch", "matplotlib", "pandas", "pyarrow", "skfuzzy",
             "typer", "rich", "PIL"]
    code = (
        "import sys, numpy as np, fuzzyemo\n"
        "fuzzyemo.RuleBase.default().compile().evaluate(np.zeros((3, 12)))\n"
        "fuzzyemo.measure(np.random.default_rng(0).random((2, 68, 2)) * 100, 'ibug68')\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
        "assert 'annotate' in fuzzyemo.__all__ and 'annotate' in dir(fuzzyemo)\n"
        "from fuzzyemo import annotate, write_annotations\n"
        "print(annotate.__module__, write_annotations.__name__)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    loaded, names = res.stdout.splitlines()
    assert loaded == "[]"
    assert names == "fuzzyemo._annotate write_table"
