"""docs/model.md against the code: the numbers, defaults, flags, graph and files it states.

Every expected value is read from the page itself, so a test fails when the page and the
code disagree. Tests that need PyTorch skip without it.
"""

from __future__ import annotations

import dataclasses
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
from stf2m_model.data import POS_DIM, Corruption, FrameData, _test_splits
from stf2m_model.graph import COMPONENT_REGION, EDGES, REGIONS, named_adjacency, region_assignment

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
FLAT = re.sub(r"\s+", " ", PAGE)  # prose with line breaks folded
SMALL = Config(window=8, stride=4, n_way=4, k_shot=2, q_query=2, hidden=8)


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
    return fx.disfa_like(n_subjects=6, n_frames=120, seed=2)


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
               "fuzzy_source": config_mod.FUZZY_SOURCES, "baseline": config_mod.BASELINES}
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
            for name in names:
                Config(**{key: name})  # every listed choice is accepted
        elif value.startswith("["):
            assert getattr(default, key) == [v.strip() for v in value[1:-1].split(",")], key
        else:
            assert getattr(default, key) == pytest.approx(_number(value)), key
        checked += 1
    assert checked >= 20


def test_keys_said_to_be_unused_are_read_nowhere():
    unused = re.findall(r"`([a-z_0-9]+)` \([^()]*not used yet\)", _config_paragraph())
    for key in unused:
        readers = [p.name for p in (ROOT / "stf2m_model").glob("*.py")
                   if p.name != "config.py" and re.search(rf"\b{key}\b", p.read_text())]
        assert not readers, f"{key} is used in {readers}: update docs/model.md"


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


# ----------------------------------------------------------------------------- region graph
def test_region_graph_nodes_and_edges():
    nodes = re.search(r"Nodes: `([^`]*)`", PAGE).group(1)
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


# ----------------------------------------------------------------------------- inputs
def test_position_features_and_fuzzy_widths(disfa):
    assert int(re.search(r"position \((\d+)\)", PAGE).group(1)) == POS_DIM
    pairs = int(re.search(r"relative place in the video \+ (\d+) sinusoid pairs", FLAT).group(1))
    assert 1 + 2 * pairs == POS_DIM
    m = re.search(r"Ẑ\^t = \[Z\^t ‖ (\d+) intensity scores ‖ (\d+) activations "
                  r"\(‖ (\d+)×(\d+) FCIS memberships\)\]", PAGE)
    scores, acts, comps, terms = map(int, m.groups())
    plain = FrameData.build(disfa, SMALL).prep.layout
    assert plain.fuzzy == scores + acts
    full = FrameData.build(disfa, SMALL.replace(fuzzy_source="engine", fuzzy_memberships=True))
    assert full.prep.layout.fuzzy == scores + acts + comps * terms
    assert FrameData.build(disfa, SMALL.replace(fuzzy=False)).prep.layout.fuzzy == 0


def test_meta_test_split_rule():
    from builders.disfa import FOLDS

    last = re.search(r"\(DISFA-FER: `(\w+)`\)", PAGE).group(1)
    assert _test_splits(np.array(sorted(FOLDS)), Config()) == {last}
    assert _test_splits(np.array(["train", "test", "zzz"]), Config()) == {"test"}
    assert _test_splits(np.array(list(FOLDS)), Config(test_split="fold0")) == {"fold0"}


def test_noise_corruption_magnitudes(disfa):
    """Noise p x 0.1 x the face's spread on landmarks and p x 0.5 on the components."""
    m = re.search(r"noise adds Gaussian noise of p × ([\d.]+) × the face's spread to the "
                  r"landmarks and p × ([\d.]+) to the components", FLAT)
    lm_factor, comp_factor = map(float, m.groups())
    p = 0.4
    clean = FrameData.build(disfa, SMALL)
    prep, lay = clean.prep, clean.prep.layout
    noisy = FrameData.build(disfa, SMALL, prep=prep, corruption=Corruption("noise", p, 3))
    n = clean.n_frames
    shape = (n, len(REGIONS), lay.node_features)
    a = clean.table[:n, lay.slices()["nodes"]].reshape(shape)
    b = noisy.table[:n, lay.slices()["nodes"]].reshape(shape)
    ok = clean.table[:n, 0] > 0
    # components: the extra node features after the landmark slots, in COMPONENTS order
    pmax = prep.slots.shape[1]
    fill = dict.fromkeys(range(len(REGIONS)), 0)
    diffs = []
    for region in COMPONENT_REGION.values():
        col = 2 * pmax + fill[region]
        fill[region] += 1
        inside = ok & (np.abs(a[:, region, col]) < 0.3)  # far from the clip at +-1
        diffs.append(b[inside, region, col] - a[inside, region, col])
    assert np.std(np.concatenate(diffs)) == pytest.approx(p * comp_factor, rel=0.1)
    # landmarks: noise of p * f * spread per coordinate, seen after unit-RMS normalisation
    # and division by the global scale
    xy = np.stack([disfa[[f"x_{i}" for i in range(prep.n_points)]].to_numpy(),
                   disfa[[f"y_{i}" for i in range(prep.n_points)]].to_numpy()], -1)[ok]
    spread = xy[..., 0].std(1) + xy[..., 1].std(1)
    rms = np.sqrt(((xy - xy.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    expected = p * lm_factor * np.mean(spread / rms) / prep.scale
    mask = np.zeros((len(REGIONS), lay.node_features), dtype=bool)
    mask[:, : 2 * pmax] = np.repeat(prep.slots >= 0, 2, axis=1)
    got = (b[ok][:, mask] - a[ok][:, mask]).std()
    assert got == pytest.approx(expected, rel=0.15)


# ----------------------------------------------------------------------------- CLI
def test_every_flag_on_the_page_exists():
    import typer

    from fuzzyemo.cli import app

    group = typer.main.get_command(app)
    opts = {o for name in ("train", "evaluate", "experiment")
            for prm in group.commands[name].params for o in prm.opts + prm.secondary_opts}
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", PAGE))
    assert flags and flags <= opts, sorted(flags - opts)
    for cmd in re.findall(r"fuzzyemo (\w+) ", PAGE):
        assert cmd in group.commands, cmd
    kinds = re.search(r"--corruption ([\w|]+)", PAGE).group(1).split("|")
    for kind in kinds:
        assert Corruption(kind, 0.1).active
    extra = re.search(r"^train = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert set(re.findall(r'"([\w-]+)', extra.group(1))) >= {"torch", "matplotlib"}
    assert 'pip install "fuzzyemo[train]"        # torch (+ matplotlib' in PAGE


def test_methods_table_flags_and_variants():
    table = _section("Methods and ablations")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| (.+?) \|", table, re.M)}
    base = Config()
    for flag, kw in (("--no-spatiotemporal", "no_spatiotemporal"), ("--no-fuzzy", "no_fuzzy"),
                     ("--no-meta", "no_meta"), ("--first-order", "first_order")):
        cfg = experiments.apply_flags(base, **{kw: True})
        what = rows[f"`{flag}`"]
        for key, value in re.findall(r"`(\w+): (\w+)`", what):
            assert str(getattr(cfg, key)) == value, flag
        changed = {f.name for f in dataclasses.fields(Config)
                   if getattr(cfg, f.name) != getattr(base, f.name)}
        assert len(changed) == 1, (flag, changed)
    assert not experiments.apply_flags(base, no_fuzzy=True).fuzzy
    assert experiments.apply_flags(base, first_order=True).first_order
    assert "stgcn encoder, fuzzy layer, second-order bi-level" in rows["(default)"]
    assert (base.encoder, base.fuzzy, base.first_order) == ("stgcn", True, False)
    assert "`method: protonet`" in rows
    m = re.search(r"variant `(\w+)` \(experiment `(\w+)`\)", table)
    name, exp = m.groups()
    maml = experiments.variant(base, name)
    assert (maml.encoder, maml.fuzzy, maml.method) == ("plain", False, "maml")
    assert exp in experiments.EXPERIMENTS


class _FakeRunner:
    """Stands in for experiments.Runner: records what would be trained and evaluated."""

    def __init__(self, data_path, out_dir, config, log=print, episodes=None):
        self.config, self.rows, self.current = config, [], ""
        self.trained: dict[str, Config] = {}

    def train(self, name, config):
        self.trained[name] = config
        return config

    def evaluate(self, name, loaded, corruption=None, **extra):
        c = corruption or Corruption()
        row = {"set": self.current, "variant": name, **extra, "corruption": c.kind,
               "level": c.level}
        row |= {k: 0.5 for k in ("acc18", "acc18_ci95", "recall18", "recall18_ci95", "acc6",
                                 "acc6_ci95", "recall6", "recall6_ci95")}
        self.rows.append(row)
        return row


def test_experiment_sets(monkeypatch, tmp_path):
    runners: list[_FakeRunner] = []

    def make(*a, **k):
        runners.append(_FakeRunner(*a, **k))
        return runners[-1]

    monkeypatch.setattr(experiments, "Runner", make)
    text = re.search(r"`fuzzyemo experiment NAME DATA -o DIR` with NAME in (.*?) writes", FLAT)
    names = re.findall(r"`(\w+)`", text.group(1))
    assert tuple(names) == experiments.EXPERIMENTS
    results = {}
    for name in names:
        path = experiments.run_experiment(name, "x.parquet", tmp_path, Config())
        assert path == tmp_path / f"{name}.md" and path.with_suffix(".csv").is_file()
        results[name] = runners[-1]
    # ablation: the four variants of the methods table, clean / occlusion / speed
    occ, speed = (int(x) / 100 for x in re.search(
        r"clean, with (\d+)% occlusion and with (\d+)% speed change", FLAT).groups())
    abl = results["ablation"]
    assert set(abl.trained) == {"st_f2m", "no_spatiotemporal", "no_fuzzy", "no_meta"}
    for v in abl.trained:
        got = {(r["corruption"], r["level"]) for r in abl.rows if r["variant"] == v}
        assert got == {("none", 0.0), ("occlusion", occ), ("speed", speed)}
    assert set(results["baselines"].trained) == {"st_f2m", "maml", "protonet"}
    levels = re.search(r"`robustness` \(Table IV / Fig\. 6: ([\d/]+)%\)", FLAT).group(1)
    levels = {int(x) / 100 for x in levels.split("/")}
    rob = results["robustness"]
    assert {r["level"] for r in rob.rows} == levels
    assert {r["corruption"] for r in rob.rows} == {"none", "occlusion", "noise", "speed"}
    grid = re.search(r"λ1 × λ2 ∈ \{([\d., ]+)\}²", FLAT).group(1)
    grid = [float(x) for x in grid.split(",")]
    lam = results["lambda"]
    pairs = {(c.lambda_fcis, c.lambda_fkis) for c in lam.trained.values()}
    assert pairs == {(a, b) for a in grid for b in grid}
    assert all(c.fuzzy_source == "engine" for c in lam.trained.values())
    assert set(results["all"].trained) == set().union(
        *(results[n].trained for n in names if n != "all"))


def test_trained_variants_are_kept_in_runs_and_reused(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    from stf2m_model import train as train_mod

    assert "trained variants are kept in `DIR/runs/` and reused" in FLAT
    calls = []

    def fake_train(data, run, config, frame=None):
        calls.append(run)
        run.mkdir(parents=True)
        (run / "model.pt").write_bytes(b"")

    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(train_mod, "load_run", lambda run, device: run)
    r = object.__new__(experiments.Runner)
    r.out, r.data_path, r.df, r.device, r.log = tmp_path, Path("x.parquet"), None, None, str
    assert r.train("st_f2m", Config()) == tmp_path / "runs" / "st_f2m"
    assert r.train("st_f2m", Config()) == tmp_path / "runs" / "st_f2m"
    assert calls == [tmp_path / "runs" / "st_f2m"]


# ----------------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def default_model():
    pytest.importorskip("torch")
    from stf2m_model.model import build_model

    df = fx.disfa_like(n_subjects=4, n_frames=60, seed=5)  # 66 landmarks, as DISFA-FER
    data = FrameData.build(df, Config())
    return build_model(data.prep.layout, data.prep.adjacency, Config())


def test_default_config_and_parameter_count(default_model):
    speed = re.sub(r"\s+", " ", _section("Speed"))
    m = re.search(r"\((\d+)-way (\d+)-shot (\d+)-query, (\d+)-frame windows, meta-batch (\d+), "
                  r"hidden (\d+), ([\d,]+) parameters, second order\)", speed)
    c = Config()
    assert tuple(map(int, m.groups()[:6])) == (c.n_way, c.k_shot, c.q_query, c.window,
                                              c.meta_batch, c.hidden)
    assert not c.first_order
    assert sum(p.numel() for p in default_model.parameters()) == _number(m.group(7))


def test_pure_function_of_the_parameters(default_model):
    from torch import nn

    assert "no buffers with state, no batch statistics, no dropout" in FLAT
    params = {k for k, _ in default_model.named_parameters()}
    assert set(default_model.state_dict()) == params
    banned = (nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    assert not [m for m in default_model.modules() if isinstance(m, banned)]


def test_architecture_pieces(default_model):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from stf2m_model.data import Layout
    from stf2m_model.model import ChannelNorm, Conv4Encoder, GroupNorm2d

    g = default_model.g
    assert "`STEncoder.pos`, a 2-layer MLP" in FLAT
    assert sum(isinstance(m, nn.Linear) for m in g.pos) == 2
    assert len(g.blocks) == Config().blocks
    assert g.readout.in_features == len(REGIONS) * Config().hidden
    assert "masked mean over the window's frames → Linear → ReLU → Linear → N logits" in PAGE
    assert [type(m) for m in default_model.h.net] == [nn.Linear, nn.ReLU, nn.Linear]
    assert default_model.h.net[-1].out_features == Config().n_way
    # Conv4: 4 x [conv3x3, GroupNorm, ReLU, max-pool]
    assert "4 × [conv3×3, GroupNorm, ReLU, max-pool]" in PAGE
    conv4 = Conv4Encoder(Layout(nodes=8, node_features=1, fuzzy=0, extra=0, image=24 * 24),
                         8, 24)
    kinds = [type(m) for m in conv4.net]
    assert kinds == [nn.Conv2d, GroupNorm2d, nn.ReLU, nn.MaxPool2d] * 4
    assert all(m.kernel_size == (3, 3) for m in conv4.net if isinstance(m, nn.Conv2d))
    # ChannelNorm / GroupNorm2d: the same normalisations as LayerNorm / GroupNorm
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
    from stf2m_model.data import EpisodeSampler
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
    from stf2m_model.model import build_model

    m = re.search(r"torch 2\.13 \(relative errors of (\S+) to (\S+) in the meta-gradient on "
                  r"the tasks tried, while the per-task loop agreed with the finite "
                  r"differences to ≈(1e-\d+)", FLAT)
    low, high, fd_tol = map(float, m.groups())
    # the configuration of tests/test_stf2m_meta.py on smaller data
    cfg = Config(window=4, stride=4, n_way=3, k_shot=2, q_query=2, hidden=4, inner_steps=2,
                 alpha=0.3)
    data, batch = _meta_batch(disfa, cfg, 3, torch.float64)
    torch.manual_seed(0)
    model = build_model(data.prep.layout, data.prep.adjacency, cfg)
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


def test_no_vmap_fallback_in_second_order_meta_steps(disfa):
    torch = pytest.importorskip("torch")
    from stf2m_model import meta
    from stf2m_model.model import build_model

    assert "no operation of either encoder falls back to `vmap`'s slow per-sample loop" in FLAT
    flag = torch._C._functorch._set_vmap_fallback_warning_enabled
    flag(True)
    try:
        for encoder in ("stgcn", "conv4"):
            cfg = SMALL.replace(encoder=encoder, image_size=16)
            data, batch = _meta_batch(disfa, cfg, 2)
            model = build_model(data.prep.layout, data.prep.adjacency, cfg)
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
    from stf2m_model.evaluate import evaluate, evaluate_model
    from stf2m_model.model import build_model
    from stf2m_model.train import load_run, train

    path = fx.write(disfa, tmp_path / "d.parquet")
    run = tmp_path / "run"
    cfg = SMALL.replace(steps=2, log_every=1, checkpoint_every=1, inner_steps_test=1)
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
    # evaluation.json: per-class recall, both confusion matrices; balanced queries
    ev = json.loads((run / "evaluation.json").read_text())
    assert {"per_class_recall", "confusion18", "confusion6"} <= set(ev)
    assert np.array(ev["confusion18"]).shape == (18, 18)
    assert np.array(ev["confusion6"]).shape == (6, 6)
    assert "the 18-class per-episode recall equals the accuracy" in FLAT
    assert ev["classes18"]["recall_macro"]["mean"] == pytest.approx(
        ev["classes18"]["accuracy"]["mean"])
    # every model sees the same episodes: same true labels for a different model
    config, prep, _ = load_run(run)
    data = FrameData.build(disfa, config, prep=prep)
    torch.manual_seed(7)
    other = build_model(prep.layout, prep.adjacency, config)
    m2 = evaluate_model(other, config, data, episodes=4)
    assert np.array_equal(np.array(m2["confusion18"]).sum(1), np.array(ev["confusion18"]).sum(1))
    # the card: the caveat and the sampling unit
    card = (run / "MODEL_CARD.md").read_text()
    assert "circular" in card and "`--no-fuzzy`" in card
    assert f"sampling unit: {m['sample_unit']}" in card
    assert "(`sample_unit`, recorded in the card)" in FLAT
