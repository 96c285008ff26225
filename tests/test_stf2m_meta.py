"""stf2m_model bi-level optimisation: meta-gradients, learning, determinism, resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stf2m_fixtures as fx  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads only contend on a small shared CPU
from torch.func import functional_call  # noqa: E402

from stf2m_model import meta  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.data import EpisodeSampler, FrameData  # noqa: E402
from stf2m_model.evaluate import evaluate_model  # noqa: E402
from stf2m_model.model import build_model  # noqa: E402
from stf2m_model.train import load_run, to_batch, train  # noqa: E402

SMALL = Config(window=4, stride=4, n_way=3, k_shot=2, q_query=2, hidden=4, inner_steps=2,
               alpha=0.3)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    df = fx.disfa_like(n_subjects=10, n_frames=200, seed=0)
    path = tmp_path_factory.mktemp("stf2m") / "disfa.parquet"
    return df, fx.write(df, path)


@pytest.fixture(scope="module")
def task_batch(table):
    data = FrameData.build(table[0], SMALL)
    ep = EpisodeSampler(data, data.split_windows("train"), SMALL, seed=1).sample(3)
    torch.manual_seed(0)
    model = build_model(data.prep.layout, data.prep.adjacency, SMALL).double()
    batch = [b.double() if b.is_floating_point() else b for b in to_batch(data, ep, "cpu")]
    return model, batch


def _grads(model, batch, config, fn=meta.meta_loss):
    params = {k: v.detach().clone().requires_grad_(True) for k, v in meta.params_of(model).items()}
    loss, _ = fn(model, params, *batch, config)
    g = torch.autograd.grad(loss, list(params.values()), allow_unused=True, materialize_grads=True)
    return params, loss, dict(zip(params, g, strict=True))


def test_second_order_meta_gradient_matches_finite_differences(task_batch):
    model, batch = task_batch
    params, _, g = _grads(model, batch, SMALL)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = {k: torch.randn(p.shape, generator=gen, dtype=p.dtype) for k, p in params.items()}
        eps = 1e-6
        with torch.no_grad():
            plus = {k: p + eps * v[k] for k, p in params.items()}
            minus = {k: p - eps * v[k] for k, p in params.items()}
        lp = meta.meta_loss(model, plus, *batch, SMALL)[0].item()
        lm = meta.meta_loss(model, minus, *batch, SMALL)[0].item()
        fd = (lp - lm) / (2 * eps)
        analytic = sum((g[k] * v[k]).sum() for k in params).item()
        assert abs(fd - analytic) <= 1e-5 * max(1.0, abs(fd)), (fd, analytic)


def test_vmap_equals_a_plain_per_task_loop(task_batch):
    model, batch = task_batch
    for cfg in (SMALL, SMALL.replace(first_order=True), SMALL.replace(method="protonet"),
                SMALL.replace(method="single")):
        _, l1, g1 = _grads(model, batch, cfg, meta.meta_loss)
        _, l2, g2 = _grads(model, batch, cfg, meta.meta_loss_loop)
        assert torch.allclose(l1, l2, atol=1e-10)
        for k in g1:
            assert torch.allclose(g1[k], g2[k], atol=1e-9), (cfg.method, k)


def test_first_order_is_the_query_gradient_at_the_adapted_parameters(task_batch):
    model, batch = task_batch
    cfg = SMALL.replace(first_order=True)
    params, _, g_fo = _grads(model, batch, cfg)
    _, _, g_so = _grads(model, batch, SMALL)
    xs, ys, xq, yq = batch
    expected = {k: torch.zeros_like(p) for k, p in params.items()}
    for i in range(xs.shape[0]):
        adapted = {k: v.detach().requires_grad_(True) for k, v in
                   meta.adapt(model, params, xs[i], ys[i], cfg.inner_steps, cfg.alpha).items()}
        loss = torch.nn.functional.cross_entropy(functional_call(model, adapted, (xq[i],)), yq[i])
        for k, gk in zip(adapted, torch.autograd.grad(loss, list(adapted.values())), strict=True):
            expected[k] += gk / xs.shape[0]
    for k in params:
        assert torch.allclose(g_fo[k], expected[k], atol=1e-10), k
    assert any(not torch.allclose(g_fo[k], g_so[k], atol=1e-6) for k in params)


LEARN = Config(window=8, stride=4, n_way=5, k_shot=2, q_query=3, hidden=16, steps=50,
               meta_batch=4, beta=3e-3, inner_steps_test=3, log_every=25,
               checkpoint_every=1000, eval_episodes=40)


def test_meta_training_beats_chance_by_a_clear_margin(table, tmp_path):
    df, path = table
    summary = train(path, tmp_path / "run", LEARN, frame=df)
    config, prep, model = load_run(tmp_path / "run")
    data = FrameData.build(df, config, prep=prep)
    m = evaluate_model(model, config, data)
    acc = m["classes18"]["accuracy"]
    # chance is 1/5 on held-out subjects; an untrained model stays near it
    assert acc["mean"] - acc["ci95"] > 0.2 + 0.2, m["classes18"]
    torch.manual_seed(0)
    untrained = build_model(prep.layout, prep.adjacency, config.replace(inner_steps_test=0))
    m0 = evaluate_model(untrained, config.replace(inner_steps_test=0), data)
    assert m0["classes18"]["accuracy"]["mean"] < 0.35
    assert summary["steps"] == 50 and np.isfinite(summary["final_train_loss"])


@pytest.mark.parametrize("changes", [{"encoder": "plain", "fuzzy": False},
                                     {"encoder": "plain", "method": "protonet"}],
                         ids=["maml-landmarks-only", "protonet"])
def test_baselines_learn_from_landmarks_too(table, tmp_path, changes):
    df, path = table
    config = LEARN.replace(**changes)
    train(path, tmp_path / "run", config, frame=df)
    config, prep, model = load_run(tmp_path / "run")
    m = evaluate_model(model, config, FrameData.build(df, config, prep=prep))
    acc = m["classes18"]["accuracy"]
    assert acc["mean"] - acc["ci95"] > 0.4, m["classes18"]


DET = LEARN.replace(steps=6, checkpoint_every=3, log_every=2, hidden=8)


def test_same_seed_same_model_and_resume_is_exact(table, tmp_path):
    df, path = table
    train(path, tmp_path / "a", DET, frame=df)
    train(path, tmp_path / "b", DET, frame=df)

    class Stop(Exception):
        pass

    def stop_at_4(step, total, stats):
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        train(path, tmp_path / "c", DET, frame=df, progress=stop_at_4)
    train(path, tmp_path / "c", DET, frame=df, resume=True)   # from the step-3 checkpoint
    train(path, tmp_path / "d", DET.replace(seed=1), frame=df)
    sa, sb, sc, sd = (load_run(tmp_path / n)[2].state_dict() for n in "abcd")
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
        assert torch.equal(sa[k], sc[k]), k
    assert any(not torch.equal(sa[k], sd[k]) for k in sa)
