"""stf2m_model bi-level optimisation and baselines: meta-gradients, learning, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stf2m_fixtures as fx  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads only contend on a small shared CPU
from torch.func import functional_call  # noqa: E402

from stf2m_model import meta  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.data import EpisodeSampler, FrameData, class_partition  # noqa: E402
from stf2m_model.evaluate import evaluate_model  # noqa: E402
from stf2m_model.fuzzy import rules_dict  # noqa: E402
from stf2m_model.model import build_model  # noqa: E402
from stf2m_model.train import load_run, recorded_partition, to_batch, train  # noqa: E402

SMALL = Config(window=4, stride=4, n_way=3, k_shot=2, q_query=2, hidden=4, inner_steps=2,
               alpha=0.3)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    df = fx.disfa_like(n_subjects=15, n_frames=700, seed=0)
    path = tmp_path_factory.mktemp("stf2m") / "disfa.parquet"
    return df, fx.write(df, path)


def _batch(df, cfg, tasks=3, dtype=torch.float64, seed=1):
    data = FrameData.build(df, cfg)
    ep = EpisodeSampler(data, data.split_windows("train"), cfg, seed=seed).sample(tasks)
    torch.manual_seed(0)
    model = build_model(data.prep.layout, cfg, rules_dict(), data.prep).to(dtype)
    batch = [b.to(dtype) if b.is_floating_point() else b
             for b in to_batch(data, ep, "cpu", cfg.method == "supervised")]
    return model, batch


@pytest.fixture(scope="module")
def task_batch(table):
    return _batch(table[0], SMALL)


def _grads(model, batch, config, fn=meta.meta_loss):
    params = {k: v.detach().clone().requires_grad_(True) for k, v in meta.params_of(model).items()}
    loss, _ = fn(model, params, *batch, config)
    g = torch.autograd.grad(loss, list(params.values()), allow_unused=True, materialize_grads=True)
    return params, loss, dict(zip(params, g, strict=True))


def _directional_fd(model, batch, config, params, v, eps=1e-6):
    with torch.no_grad():
        plus = {k: p + eps * v[k] for k, p in params.items()}
        minus = {k: p - eps * v[k] for k, p in params.items()}
        return (meta.meta_loss(model, plus, *batch, config)[0].item()
                - meta.meta_loss(model, minus, *batch, config)[0].item()) / (2 * eps)


def test_second_order_meta_gradient_matches_finite_differences(task_batch):
    """Through the whole network: view-graph message passing, temporal convs and F(Z)."""
    model, batch = task_batch
    params, _, g = _grads(model, batch, SMALL)
    assert g["F.to_components.weight"].abs().sum() > 0  # F is on the gradient's path
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = {k: torch.randn(p.shape, generator=gen, dtype=p.dtype) for k, p in params.items()}
        fd = _directional_fd(model, batch, SMALL, params, v)
        analytic = sum((g[k] * v[k]).sum() for k in params).item()
        assert abs(fd - analytic) <= 1e-5 * max(1.0, abs(fd)), (fd, analytic)


@pytest.mark.parametrize("changes", [{}, {"first_order": True}, {"method": "anil"},
                                     {"method": "protonet"}, {"method": "supervised"},
                                     {"spatial": "regions", "fuzzy": "precomputed"}],
                         ids=["maml", "fomaml", "anil", "protonet", "supervised", "regions"])
def test_vmap_equals_a_plain_per_task_loop(table, changes):
    cfg = SMALL.replace(**changes)
    model, batch = _batch(table[0], cfg)
    _, l1, g1 = _grads(model, batch, cfg, meta.meta_loss)
    _, l2, g2 = _grads(model, batch, cfg, meta.meta_loss_loop)
    assert torch.allclose(l1, l2, atol=1e-10)
    for k in g1:
        assert torch.allclose(g1[k], g2[k], atol=1e-9), k


def test_first_order_is_the_query_gradient_at_the_adapted_parameters(task_batch):
    model, batch = task_batch
    cfg = SMALL.replace(first_order=True)
    params, _, g_fo = _grads(model, batch, cfg)
    _, _, g_so = _grads(model, batch, SMALL)
    xs, ys, xq, yq = batch
    expected = {k: torch.zeros_like(p) for k, p in params.items()}
    for i in range(xs.shape[0]):
        adapted = {k: v.detach().requires_grad_(True) for k, v in meta.adapt(
            model, params, xs[i], ys[i], cfg.n_way, cfg.inner_steps, cfg.alpha).items()}
        logits = meta.query_logits(model, adapted, xs[i], xq[i])
        loss = torch.nn.functional.cross_entropy(logits, yq[i])
        grads = torch.autograd.grad(loss, list(adapted.values()), allow_unused=True,
                                    materialize_grads=True)
        for k, gk in zip(adapted, grads, strict=True):
            # the repeated output row: its gradient sums over the task's classes
            expected[k] += (gk.sum(0, keepdim=True) if gk.shape != params[k].shape else gk) \
                / xs.shape[0]
    for k in params:
        assert torch.allclose(g_fo[k], expected[k], atol=1e-10), k
    assert any(not torch.allclose(g_fo[k], g_so[k], atol=1e-6) for k in params)


def test_shared_output_row_makes_the_model_invariant_to_class_order(task_batch):
    """One row repeated per class: permuting a task's labels permutes its logits."""
    model, batch = task_batch
    xs, ys, xq, yq = (b[0] for b in batch)
    params = meta.params_of(model)
    perm = torch.tensor([2, 0, 1])
    a = meta.test_logits(model, params, xs, ys, xq, 3, SMALL)
    b = meta.test_logits(model, params, xs, perm[ys], xq, 3, SMALL)
    assert torch.allclose(b[:, perm], a, atol=1e-10)  # class c of a is class perm[c] of b


def test_reptile_direction_is_theta_minus_the_mean_adapted_weights(task_batch):
    model, batch = task_batch
    cfg = SMALL.replace(method="reptile", inner_steps=3)
    params = {k: v.detach() for k, v in meta.params_of(model).items()}
    direction, loss, _ = meta.reptile_direction(model, params, *batch, cfg)
    xs, ys, xq, yq = batch
    adapted = [meta.adapt(model, params, xs[i], ys[i], cfg.n_way, cfg.inner_steps, cfg.alpha,
                          True) for i in range(len(xs))]
    # the logged loss is the query loss after adaptation (not ln N of the shared row)
    assert abs(loss.item() - np.log(cfg.n_way)) > 1e-4
    for k, p in params.items():
        mean = torch.stack([a[k].mean(0, keepdim=True) if a[k].shape != p.shape else a[k]
                            for a in adapted]).mean(0)
        assert torch.allclose(direction[k], p - mean, atol=1e-10), k
    assert sum(d.abs().sum() for d in direction.values()) > 0


LEARN = Config(window=8, stride=4, n_way=5, k_shot=2, q_query=3, hidden=16, steps=60,
               meta_batch=4, beta=3e-3, log_every=20, checkpoint_every=1000, eval_episodes=40)


def _train_eval(table, tmp_path, config):
    df, path = table
    summary = train(path, tmp_path / "run", config, frame=df)
    config, prep, model = load_run(tmp_path / "run")
    m = evaluate_model(model, config, FrameData.build(df, config, prep=prep),
                       partition=recorded_partition(tmp_path / "run"))
    return summary, m


def test_st_f2m_learns_unseen_classes(table, tmp_path):
    """Meta-test classes never occur in meta-training; chance is 1/5."""
    summary, m = _train_eval(table, tmp_path, LEARN)
    assert not set(summary["train_classes"]) & set(summary["test_classes"])
    acc = m["classes18"]["accuracy"]
    assert acc["mean"] - acc["ci95"] > 0.2 + 0.15, m["classes18"]
    assert summary["steps"] == 60 and np.isfinite(summary["final_train_loss"])


def test_reptile_needs_several_inner_steps():
    from fuzzyemo import InputError

    with pytest.raises(InputError, match="reptile needs inner_steps >= 2"):
        Config(method="reptile")


@pytest.mark.parametrize("method", ["anil", "reptile", "protonet", "supervised"])
def test_baselines_learn(table, tmp_path, method):
    from stf2m_model.experiments import variant

    cfg = variant(LEARN, "reptile") if method == "reptile" else \
        LEARN.replace(method=method, fuzzy="none")
    cfg = cfg.replace(steps=40 if method == "protonet" else 60)
    summary, m = _train_eval(table, tmp_path, cfg)
    acc = m["classes18"]["accuracy"]
    assert acc["mean"] - acc["ci95"] > 0.2 + 0.1, (method, m["classes18"])


def test_the_non_meta_baseline_really_trains(table, tmp_path):
    """Supervised training on the meta-train classes' global labels: its loss falls far
    below the ln(N) of an uninformed classifier (the old --no-meta stayed at ln N)."""
    summary, _ = _train_eval(table, tmp_path, LEARN.replace(method="supervised"))
    n_train = len(summary["train_classes"])
    assert summary["final_train_loss"] < 0.5 * np.log(n_train)


def test_meta_gradient_of_the_fuzzy_projection_is_not_zero(table):
    """The learned projection to the components is trained through F (not a dead end)."""
    model, batch = _batch(table[0], LEARN, tasks=2, dtype=torch.float32)
    params = meta.params_of(model)
    loss, _ = meta.meta_loss(model, params, *batch, LEARN)
    g = torch.autograd.grad(loss, [params["F.to_components.weight"]])[0]
    assert torch.isfinite(g).all() and g.abs().max() > 1e-6


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
    for name in ("model.pt", "support.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_class_partition_is_recorded_and_reused(table, tmp_path):
    df, path = table
    summary = train(path, tmp_path / "r", DET.replace(steps=1), frame=df)
    rec = recorded_partition(tmp_path / "r")
    data = FrameData.build(df, DET)
    part = class_partition(data, DET)
    assert rec == {"train": part["train"], "test": part["test"]}
    assert summary["test_classes"] == [__import__("fuzzyemo").CLASS_NAMES[c]
                                       for c in part["test"]]


def test_functional_call_matches_the_module(task_batch):
    model, batch = task_batch
    x = batch[0][0]
    assert torch.allclose(functional_call(model, meta.params_of(model), (x,)), model(x))
