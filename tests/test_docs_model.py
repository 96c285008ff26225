"""docs/model.md against the code: the numbers, defaults, flags, tables and files it states.

Every expected value is read from the page itself, so a test fails when the page and the
code disagree. Tests that need PyTorch skip without it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import stf2m_fixtures as fx

from stf2m_model import config as config_mod
from stf2m_model import experiments
from stf2m_model.config import Config
from stf2m_model.data import Corruption, _test_splits
from stf2m_model.graph import COMPONENT_REGION, EDGES, REGIONS, named_adjacency, region_assignment

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
FLAT = re.sub(r"\s+", " ", PAGE)  # prose with line breaks folded
SMALL = Config(window=8, stride=4, n_way=4, k_shot=2, q_query=2, hidden=8)
MODULES = ("config", "data", "fuzzy", "graph", "model", "meta", "train", "evaluate",
           "experiments", "predict", "card")


def _section(title: str) -> str:
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", PAGE, re.S | re.M)
    assert m, f"docs/model.md has no section {title!r}"
    return m.group(1)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: threads only contend on a small shared CPU (as the other model tests)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def disfa():
    return fx.disfa_like(n_subjects=10, n_frames=400, seed=2)


# ----------------------------------------------------------------------------- paper to code
def _paper_table() -> list[list[str]]:
    table = _section("Paper to code")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return rows[1:]


def test_paper_to_code_table_has_a_verdict_per_part_and_real_names():
    pytest.importorskip("torch")
    rows = _paper_table()
    assert len(rows) >= 15
    verdicts = {"faithful", "simplified", "extended", "ours"}
    for _paper, code, verdict in rows:
        assert re.match(r"(faithful|simplified|extended|ours)\b", verdict), verdict
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", code):
            parts = name.split(".")
            if parts[0] in MODULES and len(parts) == 2:
                mod = importlib.import_module(f"stf2m_model.{parts[0]}")
                assert hasattr(mod, parts[1]), name
            elif name[0].isupper() and "." not in name:  # a class: defined in a module
                assert any(hasattr(importlib.import_module(f"stf2m_model.{m}"), name)
                           for m in MODULES), name
            elif "." in name and parts[0][0].isupper():  # Class.attribute
                owner = next(getattr(importlib.import_module(f"stf2m_model.{m}"), parts[0])
                             for m in MODULES
                             if hasattr(importlib.import_module(f"stf2m_model.{m}"), parts[0]))
                assert parts[1] in owner.__init__.__code__.co_names or hasattr(owner, parts[1])
    counts = {v: sum(r[2].startswith(v) for r in rows) for v in verdicts}
    assert all(counts.values()), counts  # the page uses every verdict


def test_paper_to_code_claims_about_defaults():
    rows = {r[0]: r for r in _paper_table()}
    pos = next(r for k, r in rows.items() if k.startswith("positional encoding"))
    assert "**off by default** (`positions: false`)" in pos[1] and not Config().positions
    cls = next(r for k, r in rows.items() if "class-level overlap" in k)
    assert "`class_split: disjoint`" in cls[1] and Config().class_split == "disjoint"
    table3 = next(r for k, r in rows.items() if k.startswith("Table III"))
    assert "3 rounds by default" in table3[2] and Config().seeds == 3


# ----------------------------------------------------------------------------- configuration
def _config_paragraph() -> str:
    return _section("Configuration").strip().split("\n\n")[0]


def test_configuration_lists_every_key_with_its_default_and_choices():
    para = _config_paragraph()
    found = re.findall(r"`([a-z_0-9]+)`(?:\s\(([^()]*)\))?", para)
    keys = [k for k, _ in found]
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(keys) == fields, (sorted(fields - set(keys)), sorted(set(keys) - fields))
    default = Config()
    choices = {"encoder": config_mod.ENCODERS, "method": config_mod.METHODS,
               "fuzzy": config_mod.FUZZY, "baseline": config_mod.BASELINES,
               "spatial": config_mod.SPATIAL, "landmarks": config_mod.LANDMARKS,
               "class_split": config_mod.CLASS_SPLITS}
    checked = 0
    for key, value in found:
        if not value:
            continue
        value = value.split(";")[0].strip().strip("`")
        if "|" in value:
            names = value.split("|")
            if key in choices:
                assert tuple(names) == choices[key], key
            assert getattr(default, key) in names, key
            for name in names:  # every listed choice is accepted (reptile: with its k > 1)
                Config(**{key: name}, **({"inner_steps": 5} if name == "reptile" else {}))
        elif value.startswith("["):
            assert getattr(default, key) == [v.strip() for v in value[1:-1].split(",")], key
        else:
            assert getattr(default, key) == pytest.approx(_number(value)), key
        checked += 1
    assert checked >= 25


def test_inner_steps_test_follows_inner_steps_by_default():
    assert "`inner_steps_test` equals `inner_steps` by default" in FLAT
    assert Config().inner_steps_test == Config().inner_steps


def test_threads_zero_keeps_torchs_default():
    torch = pytest.importorskip("torch")
    from stf2m_model.train import setup_torch

    assert "`threads: 1` is deliberate" in PAGE and "Set 0 for torch's default" in PAGE
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        setup_torch(Config(threads=0))
        assert torch.get_num_threads() == 2
        setup_torch(Config())
        assert torch.get_num_threads() == Config().threads == 1
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- fuzzy layer
def test_fuzzy_layer_numbers():
    pytest.importorskip("torch")
    from stf2m_model import fuzzy

    sec = re.sub(r"\s+", " ", _section("The fuzzy layer F(Z)"))
    assert int(re.search(r"to 1e-4 \(double and single precision\) on ([\d,]+) rows",
                         sec).group(1).replace(",", "")) == 3000
    import test_stf2m_fuzzy as tf

    assert len(tf._rows()) == 3000
    assert _number(re.search(r"layer-cake integrals \(([\d,]+) levels", sec).group(1)) == \
        fuzzy.TABLE_POINTS
    assert _number(re.search(r"uses a ([\d,]+)-point grid", sec).group(1)) == fuzzy.GAUSS_GRID
    assert len(fuzzy.SUBSETS) == int(re.search(r"over the (\d+) subsets", sec).group(1))
    assert tuple(re.findall(r"`(\w+)`", re.search(r"definitions \((.*?)\)", sec).group(1))) \
        == fuzzy.HEDGES
    tol = float(re.search(r"the two exact methods agree to (1e-\d+)", sec).group(1))
    import torch

    from fuzzyemo import RuleBase

    x = torch.as_tensor(tf._rows(300, seed=9))
    spec = RuleBase.default().to_dict()
    a = fuzzy.FuzzyInference(spec, centroid="tables").double()(x)
    b = fuzzy.FuzzyInference(spec, centroid="breakpoints").double()(x)
    assert (a["eccentricity"] - b["eccentricity"]).abs().max() < tol


# ----------------------------------------------------------------------------- region graph
def test_region_graph_nodes_and_edges():
    nodes = re.search(r"Nodes: `([^`]*)`", FLAT).group(1)
    assert [(int(i), n) for i, n in re.findall(r"(\d+) (\w+)", nodes)] == list(enumerate(REGIONS))
    block = re.search(r"Edges \(symmetric\):\n\n```\n(.*?)```", PAGE, re.S).group(1)
    edges = {frozenset(e) for e in re.findall(r"(\w+) ── (\w+)", block)}
    assert edges == {frozenset(e) for e in EDGES}
    a = named_adjacency()
    assert (a == a.T).all() and a.trace() == 0 and a.sum() == 2 * len(edges)


def test_shipped_landmark_counts_use_the_named_regions_others_k_means():
    from fuzzyemo._landmarks import LandmarkScheme

    counts = [int(n) for n in re.findall(r"(\d+) \((?:DISFA|iBUG|WFLW|MediaPipe)\)", FLAT)]
    assert sorted(counts) == sorted(LandmarkScheme.load(s).n_points
                                    for s in LandmarkScheme.available())
    for k in counts:
        assign, adjacency, how = region_assignment(k)
        assert how.startswith("landmark scheme"), (k, how)
        assert len(assign) == k and set(assign) == set(range(len(REGIONS)))
        assert np.array_equal(adjacency, named_adjacency())
    assert "joined to their 3 nearest neighbours" in FLAT
    face = np.random.default_rng(0).normal(size=(40, 2))
    assign, adjacency, how = region_assignment(40, face)
    assert how == "k-means" and set(assign) == set(range(len(REGIONS)))
    assert (adjacency.sum(1) >= 3).all() and (adjacency == adjacency.T).all()


def test_component_measurement_examples_sit_on_the_stated_nodes():
    example = re.search(r"component measurements of that region \(e\.g\. (.*?)\)", FLAT).group(1)
    pairs = re.findall(r"((?:`\w+`,? ?)+) on `(\w+)`", example)
    assert len(pairs) == 2
    for comps, region in pairs:
        for comp in re.findall(r"`(\w+)`", comps):
            assert COMPONENT_REGION[comp] == REGIONS.index(region), comp


# ----------------------------------------------------------------------------- inputs, protocol
def test_named_points_across_schemes_and_switches(disfa):
    pytest.importorskip("torch")
    from stf2m_model.data import FrameData

    assert "a model trained on 66-point DISFA tables reads 98-point WFLW and 478-point " \
           "MediaPipe (`fuzzyemo annotate`) tables" in FLAT
    d = FrameData.build(disfa, SMALL)
    for k in (98, 478):
        other = fx.disfa_like(n_subjects=2, n_frames=30, seed=1, k=k).drop(columns=["split"])
        assert FrameData.build(other, SMALL, prep=d.prep, labelled=False).prep.layout == \
            d.prep.layout
    assert "`--no-fuzzy` turns off both F and the components" in FLAT
    cfg = experiments.apply_flags(Config(), no_fuzzy=True)
    assert cfg.fuzzy == "none" and not cfg.use_components


def test_meta_test_split_rule():
    from builders.disfa import FOLDS

    last = re.search(r"\(DISFA-FER: `(\w+)`\)", PAGE).group(1)
    assert _test_splits(np.array(sorted(FOLDS)), Config()) == {last}
    assert _test_splits(np.array(["train", "test", "zzz"]), Config()) == {"test"}
    assert _test_splits(np.array(list(FOLDS)), Config(test_split="fold0")) == {"fold0"}


def test_class_protocol_numbers():
    sec = re.sub(r"\s+", " ", _section("Protocol"))
    frac = float(re.search(r"`test_class_fraction` \(([\d.]+)\)", sec).group(1))
    assert frac == Config().test_class_fraction
    assert "`class_split: shared`, which lets classes overlap" in sec


def test_noise_corruption_magnitudes(disfa):
    """Noise p x 0.1 x the face's spread on landmarks and p x 0.5 on the components."""
    pytest.importorskip("torch")
    from stf2m_model.data import FrameData

    m = re.search(r"noise adds Gaussian noise of p × ([\d.]+) × the face's spread to the "
                  r"landmarks and p × ([\d.]+) to the components", FLAT)
    lm_factor, comp_factor = map(float, m.groups())
    p = 0.4
    clean = FrameData.build(disfa, SMALL)
    prep, lay = clean.prep, clean.prep.layout
    noisy = FrameData.build(disfa, SMALL, prep=prep, corruption=Corruption("noise", p, 3))
    n = clean.n_frames
    sl = lay.slices()
    ok = clean.table[:n, 0] > 0
    a, b = clean.table[:n, sl["comps"]], noisy.table[:n, sl["comps"]]
    inside = ok[:, None] & (np.abs(a) < 0.3)  # far from the clip at +-1
    assert np.std((b - a)[inside]) == pytest.approx(p * comp_factor, rel=0.1)
    # landmarks: noise of p * f * spread per coordinate on every landmark; a named point
    # averages its landmarks, and everything is seen after unit-RMS normalisation and
    # division by the global scale, so compare the ratio noisy / expected on single-landmark
    # points only
    from fuzzyemo._landmarks import LandmarkScheme

    scheme = LandmarkScheme.load(prep.scheme)
    single = [i for i, name in enumerate(prep.point_names) if len(scheme.points[name]) == 1]
    xy = np.stack([disfa[[f"x_{i}" for i in range(prep.n_points)]].to_numpy(),
                   disfa[[f"y_{i}" for i in range(prep.n_points)]].to_numpy()], -1)
    xy = xy[ok]  # the fixture is already sorted by (subject, frame), as the table
    spread = xy[..., 0].std(1) + xy[..., 1].std(1)
    named = np.stack([scheme.named(xy)[nm] for nm in prep.point_names], 1)
    rms = np.sqrt(((named - named.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    expected = p * lm_factor * np.mean(spread / rms) / prep.scale
    pa = clean.table[:n, sl["points"]].reshape(n, -1, 2)[ok][:, single]
    pb = noisy.table[:n, sl["points"]].reshape(n, -1, 2)[ok][:, single]
    assert (pb - pa).std() == pytest.approx(expected, rel=0.2)


# ----------------------------------------------------------------------------- CLI
def test_every_flag_on_the_page_exists():
    import typer

    from fuzzyemo.cli import app

    group = typer.main.get_command(app)
    names = ("train", "evaluate", "experiment", "predict", "export")
    opts = {o for name in names for prm in group.commands[name].params
            for o in prm.opts + prm.secondary_opts}
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", PAGE))
    assert flags and flags <= opts, sorted(flags - opts)
    for cmd in re.findall(r"fuzzyemo (\w+) ", PAGE):
        assert cmd in group.commands, cmd
    kinds = re.search(r"--corruption ([\w|]+)", PAGE).group(1).split("|")
    for kind in kinds:
        assert Corruption(kind, 0.1).active
    extra = re.search(r"^train = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert set(re.findall(r'"([\w-]+)', extra.group(1))) >= {"torch", "matplotlib"}


def test_methods_table_flags_and_variants():
    table = _section("Methods and ablations")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| (.+?) \|", table, re.M)}
    base = Config()
    for flag, kw in (("--no-spatiotemporal", "no_spatiotemporal"), ("--no-fuzzy", "no_fuzzy"),
                     ("--no-meta", "no_meta"), ("--first-order", "first_order")):
        cfg = experiments.apply_flags(base, **{kw: True})
        what = rows[f"`{flag}`"]
        stated = re.findall(r"`(\w+): (\w+)`", what)
        for key, value in stated:
            assert str(getattr(cfg, key)).lower() == value.lower(), flag
        changed = {f.name for f in dataclasses.fields(Config)
                   if getattr(cfg, f.name) != getattr(base, f.name)}
        assert changed == ({k for k, _ in stated} or changed), (flag, changed)
    for method in ("anil", "reptile", "protonet"):
        assert f"`--method {method}`" in rows and method in config_mod.METHODS
    k = int(re.search(r"`inner_steps` ≥ 2; the baselines use (\d+)", rows["`--method reptile`"])
            .group(1))
    assert k == experiments.REPTILE_STEPS == experiments.variant(base, "reptile").inner_steps
    assert "stgcn encoder with temporal convs and Eq. 4 over views, learned fuzzy layer, " \
           "second-order bi-level" in rows["(default)"]
    assert (base.encoder, base.temporal, base.spatial, base.fuzzy, base.first_order) == \
        ("stgcn", True, "views", "learned", False)


REAL_RUNNER = experiments.Runner


class _FakeRunner:
    """Stands in for experiments.Runner: records what would be trained and evaluated."""

    def __init__(self, data_path, out_dir, config, log=print, episodes=None):
        self.config, self.rows, self.current, self.episodes = config, [], "", episodes
        self.trained: dict[str, list[Config]] = {}
        self.out = Path(out_dir)

    def seeds(self, config):
        return [config.replace(seed=config.seed + i) for i in range(config.seeds)]

    def train(self, name, config):
        self.trained.setdefault(name, []).append(config)
        return self.out, (config, None, None)

    def evaluate(self, loaded, run, corruption=None, split="test", config=None, model=None):
        return {k: 0.5 for k in (*experiments.METRICS, experiments.LOSS)}

    def add_row(self, name, per_seed, seeds, **extra):
        return REAL_RUNNER.add_row(self, name, per_seed, seeds, **extra)

    def log(self, text):
        pass

    def variant_rows(self, name, settings):
        return REAL_RUNNER.variant_rows(self, name, settings)


def test_experiment_sets(monkeypatch, tmp_path):
    runners: list[_FakeRunner] = []

    def make(*a, **k):
        runners.append(_FakeRunner(*a, **k))
        return runners[-1]

    monkeypatch.setattr(experiments, "Runner", make)
    monkeypatch.setattr(experiments, "lambda_search", lambda r: r.rows.append(
        {"set": "lambda", "variant": "st_f2m", "lambda1": 0.4, "lambda2": 0.4,
         **{k: 0.5 for k in experiments.METRICS}, **{k + "_ci95": 0.0
                                                      for k in experiments.METRICS}}))
    text = re.search(r"`fuzzyemo experiment NAME DATA -o DIR` with NAME in (.*?) writes", FLAT)
    names = re.findall(r"`(\w+)` \(", text.group(1)) + ["all"]
    assert tuple(names) == experiments.EXPERIMENTS
    results = {}
    for name in names:
        path = experiments.run_experiment(name, "x.parquet", tmp_path, Config())
        assert path == tmp_path / f"{name}.md" and path.with_suffix(".csv").is_file()
        results[name] = runners[-1]
    seeds = int(re.search(r"`--seeds`, default (\d+)", FLAT).group(1))
    assert seeds == Config().seeds
    occ, speed = (int(x) / 100 for x in re.search(
        r"clean, with (\d+)% occlusion and with (\d+)% speed change", FLAT).groups())
    abl = results["ablation"]
    assert set(abl.trained) == set(experiments.ABLATION)
    assert all([c.seed for c in cs] == list(range(seeds)) for cs in abl.trained.values())
    for v in abl.trained:
        got = {(r["corruption"], r["level"]) for r in abl.rows if r["variant"] == v}
        assert got == {("none", 0.0), ("occlusion", occ), ("speed", speed)}
    stated = re.search(r"no fuzzy layer, (.*?)\), `robustness`", FLAT).group(1)
    assert len(re.split(r", | and ", stated)) == len(experiments.BASELINES) - 1
    assert set(results["baselines"].trained) == set(experiments.BASELINES)
    for name in experiments.BASELINES[1:]:
        assert experiments.variant(Config(), name).fuzzy == "none"
    levels = re.search(r"`robustness` \(Table IV / Fig\. 6: ([\d/]+)%\)", FLAT).group(1)
    levels = {int(x) / 100 for x in levels.split("/")}
    rob = results["robustness"]
    assert {r["level"] for r in rob.rows} == levels
    assert {r["corruption"] for r in rob.rows} == {"none", "occlusion", "noise", "speed"}
    grid = re.search(r"λ1 × λ2 ∈ \{([\d., ]+)\}²", FLAT).group(1)
    assert tuple(float(x) for x in grid.split(",")) == experiments.LAMBDAS
    csv_head = (tmp_path / "ablation.csv").read_text().splitlines()[0]
    assert "acc18_per_seed" in csv_head and "acc18_ci95" in csv_head


def test_ci_across_seeds_is_students_t():
    assert "95% CI across seeds (Student's t)" in FLAT
    mean, half = experiments.across_seeds([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(4.303 * 0.1 / np.sqrt(3), rel=1e-3)


def test_run_keys_change_with_every_setting():
    assert "the key hashes every setting of the config, the data file, the compiled rule " \
           "base and the model code (`experiments.CODE_MODULES`)" in FLAT
    assert experiments.code_hash() == experiments.code_hash()
    assert set(experiments.CODE_MODULES) <= set(MODULES)
    base = Config()
    k = base.key("data", "rules")
    for f in dataclasses.fields(Config):
        if f.name in config_mod.NOT_IN_KEY:
            continue
        value = getattr(base, f.name)
        if isinstance(value, bool):
            changed = base.replace(**{f.name: not value})
        elif isinstance(value, int):
            changed = base.replace(**{f.name: value + 2})
        elif isinstance(value, float):
            changed = base.replace(**{f.name: value / 2 if value else 0.5})
        else:
            continue
        assert changed.key("data", "rules") != k, f.name
    assert base.key("data2", "rules") != k and base.key("data", "rules2") != k


# ----------------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def default_model(disfa):
    pytest.importorskip("torch")
    from stf2m_model.data import FrameData
    from stf2m_model.fuzzy import rules_dict
    from stf2m_model.model import build_model

    data = FrameData.build(disfa, Config())
    return build_model(data.prep.layout, Config(), rules_dict(), data.prep), data


def test_pure_function_of_the_parameters(default_model):
    from torch import nn

    model = default_model[0]
    assert "no buffers with state, no batch statistics, no dropout" in FLAT
    params = {k for k, _ in model.named_parameters()}
    assert set(model.state_dict()) == params
    banned = (nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    assert not [m for m in model.modules() if isinstance(m, banned)]


def test_architecture_pieces(default_model):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from stf2m_model.data import Layout
    from stf2m_model.model import ChannelNorm, Conv4Encoder, GroupNorm2d, ViewGraphConv

    model = default_model[0]
    g = model.g
    assert "`STEncoder.pos`, a 2-layer MLP" in FLAT
    assert g.pos is None  # positions off by default
    assert len(g.blocks) == Config().blocks
    assert all(isinstance(b.sp, ViewGraphConv) for b in g.blocks)
    assert "Ẑ = [Z ‖ 18 intensity scores ‖ 6 activations]" in PAGE
    assert model.dim == Config().hidden + 18 + 6
    assert "Linear → ReLU → one output row repeated for each of the task's N classes" in PAGE
    assert model.h.out.out_features == 1
    conv4 = Conv4Encoder(Layout(pos=0, points=0, comps=12, fuzzy=0, extra=0, image=24 * 24),
                         8, 24)
    kinds = [type(m) for m in conv4.net]
    assert kinds == [nn.Conv2d, GroupNorm2d, nn.ReLU, nn.MaxPool2d] * 4
    torch.manual_seed(0)
    z = torch.randn(3, 5, 8, 16)
    cn, ln = ChannelNorm(16), nn.LayerNorm(16)
    with torch.no_grad():
        cn.weight.uniform_(), cn.bias.uniform_()
        ln.weight.copy_(cn.weight), ln.bias.copy_(cn.bias)
    assert torch.allclose(cn(z), ln(z), atol=1e-5)
    gn = GroupNorm2d(4, 8)
    with torch.no_grad():
        gn.weight.uniform_(), gn.bias.uniform_()
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(gn(x), F.group_norm(x, 4, gn.weight, gn.bias), atol=1e-5)


def _meta_batch(df, cfg, tasks, dtype=None):
    from stf2m_model.data import EpisodeSampler, FrameData
    from stf2m_model.train import to_batch

    data = FrameData.build(df, cfg)
    ep = EpisodeSampler(data, data.split_windows("train"), cfg, seed=1).sample(tasks)
    batch = to_batch(data, ep, "cpu")
    if dtype is not None:
        batch = [b.to(dtype) if b.is_floating_point() else b for b in batch]
    return data, batch


def test_layer_norm_double_backward_under_vmap_is_off_as_stated(disfa):
    torch = pytest.importorskip("torch")
    if not torch.__version__.startswith("2.13"):
        pytest.skip("the page states this for torch 2.13")
    from torch import nn

    from stf2m_model import meta
    from stf2m_model.fuzzy import rules_dict
    from stf2m_model.model import build_model

    m = re.search(r"torch 2\.13 \(relative errors of (\S+) to (\S+) in the meta-gradient on "
                  r"the tasks tried, while the per-task loop agreed with the finite "
                  r"differences to ≈(1e-\d+)", FLAT)
    low, high, fd_tol = map(float, m.groups())
    cfg = Config(window=4, stride=4, n_way=3, k_shot=2, q_query=2, hidden=4, inner_steps=2,
                 alpha=0.3, spatial="regions", fuzzy="precomputed")
    data, batch = _meta_batch(disfa, cfg, 3, torch.float64)
    torch.manual_seed(0)
    model = build_model(data.prep.layout, cfg, rules_dict(), data.prep)
    for block in model.g.blocks:
        block.norm = nn.LayerNorm(cfg.hidden)
    model = model.double()
    p0 = {k: v.detach().clone() for k, v in meta.params_of(model).items()}

    def flat_grad(fn):
        p = {k: v.clone().requires_grad_(True) for k, v in p0.items()}
        g = torch.autograd.grad(fn(model, p, *batch, cfg)[0], list(p.values()),
                                allow_unused=True, materialize_grads=True)
        return torch.cat([x.flatten() for x in g])

    g_vmap, g_loop = flat_grad(meta.meta_loss), flat_grad(meta.meta_loss_loop)
    err = ((g_vmap - g_loop).norm() / g_loop.norm()).item()
    assert low / 2 < err < high * 2, err
    v = torch.randn(g_loop.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps, at = 1e-6, 0
    plus, minus = {}, {}
    for k, x in p0.items():
        d = v[at:at + x.numel()].reshape(x.shape)
        plus[k], minus[k] = x + eps * d, x - eps * d
        at += x.numel()
    with torch.no_grad():
        fd = (meta.meta_loss_loop(model, plus, *batch, cfg)[0]
              - meta.meta_loss_loop(model, minus, *batch, cfg)[0]).item() / (2 * eps)
    assert abs(fd - (g_loop @ v).item()) < 10 * fd_tol * max(1.0, abs(fd))
    assert abs(fd - (g_vmap @ v).item()) > 100 * fd_tol * max(1.0, abs(fd))


def test_padded_frames_give_finite_gradients(disfa):
    """The note on rsqrt: a task whose windows hold padding trains (no NaN gradient)."""
    torch = pytest.importorskip("torch")
    from stf2m_model import meta
    from stf2m_model.fuzzy import rules_dict
    from stf2m_model.model import build_model

    assert "`rsqrt(Σ z² + ε)`, not `z.norm()`" in PAGE
    cfg = SMALL.replace(window=32, stride=32)  # most windows are longer than their view
    data, batch = _meta_batch(disfa, cfg, 2)
    assert (batch[0][..., 0] == 0).any()
    model = build_model(data.prep.layout, cfg, rules_dict(), data.prep)
    loss, _ = meta.meta_loss(model, meta.params_of(model), *batch, cfg)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_no_vmap_fallback_in_second_order_meta_steps(disfa):
    torch = pytest.importorskip("torch")
    from stf2m_model import meta
    from stf2m_model.fuzzy import rules_dict
    from stf2m_model.model import build_model

    assert "no operation of the stgcn or conv4 encoder falls back to `vmap`'s slow " \
           "per-sample loop" in FLAT
    flag = torch._C._functorch._set_vmap_fallback_warning_enabled
    flag(True)
    try:
        for encoder in ("stgcn", "conv4"):
            cfg = SMALL.replace(encoder=encoder, image_size=16)
            data, batch = _meta_batch(disfa, cfg, 2)
            model = build_model(data.prep.layout, cfg, rules_dict(), data.prep)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loss, _ = meta.meta_loss(model, meta.params_of(model), *batch, cfg)
                loss.backward()
            slow = [str(w.message) for w in caught if "performance drop" in str(w.message)]
            assert not slow, (encoder, slow)
    finally:
        flag(False)


# ----------------------------------------------------------------------------- run directory
def test_run_directory_checkpoint_and_evaluation(disfa, tmp_path):
    torch = pytest.importorskip("torch")
    from stf2m_model.data import FrameData
    from stf2m_model.evaluate import evaluate, evaluate_model
    from stf2m_model.fuzzy import rules_dict
    from stf2m_model.model import build_model
    from stf2m_model.train import load_run, recorded_partition, train

    path = fx.write(disfa, tmp_path / "d.parquet")
    run = tmp_path / "run"
    cfg = SMALL.replace(steps=2, log_every=1, checkpoint_every=1)
    train(path, run, cfg)
    m = evaluate(run, path, episodes=4, device="cpu")
    listed = set(re.findall(r"`([\w.]+\.(?:yaml|json|pt|csv|md))`", _section("Run directory")))
    files = {p.name for p in run.iterdir()}
    pngs = {"confusion_18.png", "confusion_6.png"}
    assert files - pngs == listed
    if m["figures"]:
        assert pngs <= files and "PNGs" in _section("Run directory")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "step", "sampler"} <= set(state) and state["step"] == 2
    # F(Z) is the dataset's own profile (the fixture tables are labelled with `paper`)
    assert json.loads((run / "rules.json").read_text()) == rules_dict("paper")
    assert "dataset's own rule profile" in FLAT
    ev = json.loads((run / "evaluation.json").read_text())
    assert {"per_class_recall", "confusion18", "confusion6"} <= set(ev)
    assert np.array(ev["confusion18"]).shape == (18, 18)
    assert np.array(ev["confusion6"]).shape == (6, 6)
    assert "the 18-class per-episode recall equals the accuracy" in FLAT
    assert ev["classes18"]["recall_macro"]["mean"] == pytest.approx(
        ev["classes18"]["accuracy"]["mean"])
    info = json.loads((run / "train.json").read_text())
    assert set(ev["test_classes"]) <= set(info["test_classes"])
    assert "neutral" in info["support_classes"]
    # every model sees the same episodes: same true labels for a different model
    config, prep, _ = load_run(run)
    data = FrameData.build(disfa, config, prep=prep)
    torch.manual_seed(7)
    other = build_model(prep.layout, config, rules_dict(config.rules), prep)
    m2 = evaluate_model(other, config, data, episodes=4, partition=recorded_partition(run))
    assert np.array_equal(np.array(m2["confusion18"]).sum(1), np.array(ev["confusion18"]).sum(1))
    card = (run / "MODEL_CARD.md").read_text()
    assert "circular" in card and "`--no-fuzzy`" in card
    assert f"sampling unit: {m['sample_unit']}" in card
    assert "(`sample_unit`, recorded in the card)" in FLAT


def test_performance_page_states_the_default_config_it_measured(disfa):
    """docs/performance.md, "Model training": the config and parameter count it names."""
    pytest.importorskip("torch")
    from stf2m_model.data import FrameData
    from stf2m_model.fuzzy import rules_dict
    from stf2m_model.model import build_model

    perf = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    sec = re.sub(r"\s+", " ", perf.split("## Model training", 1)[1].split("\n## ", 1)[0])
    m = re.search(r"\(`Config\(\)`: (\d+)-way (\d+)-shot (\d+)-query, (\d+)-frame windows, "
                  r"meta-batch (\d+), hidden (\d+), one second-order inner step, ([\d,]+) "
                  r"outer steps, ([\d,]+) parameters\)", sec)
    c = Config()
    assert tuple(map(int, m.groups()[:6])) == (c.n_way, c.k_shot, c.q_query, c.window,
                                              c.meta_batch, c.hidden)
    assert (c.inner_steps, c.first_order) == (1, False)
    assert _number(m.group(7)) == c.steps
    data = FrameData.build(disfa, c)  # 66 landmarks, as the benchmark's table
    model = build_model(data.prep.layout, c, rules_dict(), data.prep)
    assert sum(p.numel() for p in model.parameters()) == _number(m.group(8))
    assert "python benchmarks/train.py" in sec


def test_run_directory_key_covers_data_rules_and_code(tmp_path):
    r = object.__new__(experiments.Runner)
    r.out, r.data_sha, r.code_sha = tmp_path, "d" * 64, "c" * 64
    base = r.run_dir("st_f2m", Config())
    assert base.parent == tmp_path / "runs" / "st_f2m" and base.name.startswith("seed0-")
    r.code_sha = "e" * 64
    assert r.run_dir("st_f2m", Config()) != base
    r.code_sha, r.data_sha = "c" * 64, "f" * 64
    assert r.run_dir("st_f2m", Config()) != base
    r.data_sha = "d" * 64
    assert r.run_dir("st_f2m", Config()) == base
    assert r.run_dir("st_f2m", Config(lambda_fcis=0.3)) != base  # another rule base


def test_results_section_matches_the_code_and_the_script():
    """The documented tables were made by benchmarks/experiments.py with the defaults."""
    import ast

    sec = PAGE.split("## Results (generated data)\n", 1)[1].split("\n## ", 1)[0]
    script = (ROOT / "benchmarks" / "experiments.py").read_text()
    defaults = {}
    for n in ast.walk(ast.parse(script)):
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument":
            value = next((k.value for k in n.keywords if k.arg == "default"), None)
            if isinstance(value, ast.Constant):
                defaults[n.args[-1].value] = value.value
    c = Config()
    heads = re.findall(r"^(\d+)-way (\d+)-shot tasks, (\d+) training steps per model, seeds "
                       r"(\d+)\.\.(\d+) \((\d+) models per variant\); each model is scored on "
                       r"the same (\d+) episodes\..*classes: (\w+)\.$", sec, re.M)
    assert len(heads) == 4
    for way, shot, steps, first, last, seeds, episodes, split in heads:
        assert (int(way), int(shot), int(steps)) == (c.n_way, c.k_shot, c.steps)
        assert int(seeds) == defaults["--seeds"] == int(last) - int(first) + 1
        assert int(episodes) == defaults["--episodes"] and split == c.class_split
    assert f"{defaults['--subjects']} subjects x {defaults['--frames']:,} frames" in sec

    def variants(title: str) -> set[str]:
        block = sec.split(title, 1)[1].split("###", 1)[0]
        return {m.group(1) for m in re.finditer(r"^\| \w+ \| (\w+) \|", block, re.M)} - {"variant"}

    assert variants("### Ablation") == set(experiments.ABLATION)
    assert variants("### Baselines") == set(experiments.BASELINES)
    assert variants("### Robustness") == set(experiments.ROBUSTNESS)
    image = re.search(r"\]\((img/[\w.-]+\.png)\)", sec).group(1)
    assert (ROOT / "docs" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the reading quotes the tables
    for quoted in re.findall(r"(\d+\.\d\d) ± (\d+\.\d\d)", sec.split("###", 1)[0]):
        assert f"{quoted[0]} ± {quoted[1]}" in sec.split("###", 1)[1], quoted
