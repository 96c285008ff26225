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
    for profile in ("facs", "paper"):
        for emotion in ("happiness", "anger", "sadness", "disgust", "fear", "surprise"):
            assert f"fuzzyemo/_rules/{profile}/fkis/{emotion}.yaml" in names
        assert f"fuzzyemo/_rules/{profile}/fcis.yaml" in names
        assert f"fuzzyemo/_rules/{profile}/engine.yaml" in names
    assert "fuzzyemo/_rules/calibration.yaml" in names  # shared by the profiles
    assert "fuzzyemo/_rules/landmarks/ibug68.yaml" in names
    assert "fuzzyemo/data/sample_components.csv" in names
    assert any(n.startswith("builders/") for n in names)
    assert any(n.startswith("stf2m_model/") for n in names)


def test_rules_load_from_unpacked_wheel(wheel, tmp_path):
    """Both shipped profiles load from the installed wheel, by name, with the same bytes as
    the checkout's rules/<profile>/, and the default is facs."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import fuzzyemo, sys; print(fuzzyemo.__file__); print(fuzzyemo.default_rules_dir())\n"
            "print(','.join(fuzzyemo.profiles())); print(fuzzyemo.RuleBase.default().profile)\n"
            "for name in fuzzyemo.profiles():\n"
            "    rb = fuzzyemo.RuleBase.load(name)\n"
            "    rb.compile().evaluate(__import__('numpy').zeros((2, 12)))\n"
            "    print(name, rb.profile, rb.source, rb.sha256, len(rb.rules))\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    module, rules_dir, names, default, *loaded = res.stdout.splitlines()
    assert module.startswith(str(site)) and rules_dir.startswith(str(site))
    assert names == "facs,paper" and default == "facs"
    from fuzzyemo import RuleBase

    assert len(loaded) == 2
    for line in loaded:
        name, profile, source, sha, n = line.split()
        assert profile == name and source.startswith(str(site / "fuzzyemo" / "_rules"))
        ours = RuleBase.load(ROOT / "rules" / name)  # same bytes as the checkout's profile
        assert (sha, int(n)) == (ours.sha256, len(ours.rules)), name


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
