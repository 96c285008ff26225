"""The architecture matters: each part of f = h o F o g is checked for what it must do, so
removing the fuzzy layer, the temporal convolution or the message passing fails here.

Each property is also checked to be absent in the configuration that turns the part off
(the control), so the tests can tell the two apart.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stf2m_fixtures as fx  # noqa: E402

from fuzzyemo import RuleBase  # noqa: E402
from stf2m_model import meta  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.data import EpisodeSampler, FrameData  # noqa: E402
from stf2m_model.fuzzy import rules_dict  # noqa: E402
from stf2m_model.model import LearnedFuzzy, ViewGraphConv, build_model  # noqa: E402
from stf2m_model.train import to_batch  # noqa: E402

torch.set_num_threads(1)
CFG = Config(window=8, stride=4, n_way=3, k_shot=2, q_query=2, hidden=8)


@pytest.fixture(scope="module")
def data():
    return FrameData.build(fx.disfa_like(n_subjects=8, n_frames=300, seed=6), CFG)


@pytest.fixture(scope="module")
def episode(data):
    ep = EpisodeSampler(data, data.split_windows("train"), CFG, seed=3).sample(1)
    xs, ys, xq, yq = (b[0] for b in to_batch(data, ep, "cpu"))
    return xs.double(), ys, xq.double(), yq


def _model(data, **changes):
    torch.manual_seed(0)
    cfg = CFG.replace(**changes)
    return build_model(data.prep.layout, cfg, rules_dict(), data.prep).double(), cfg


# ----------------------------------------------------------------------------- F(Z)
def test_fuzzy_dims_are_the_rule_engine_on_the_projected_encoder_features(data, episode):
    """Z_hat = [Z | scores and activations of the engine at tanh(W Z + b)]."""
    model, _ = _model(data)
    assert isinstance(model.F, LearnedFuzzy)
    xs = episode[0]
    z = model.encode(xs)
    zhat = model.embed(xs)
    comps = model.fuzzy_components(xs)
    assert torch.allclose(comps, torch.tanh(model.F.to_components(z)))
    assert zhat.shape[1] == z.shape[1] + 24
    assert torch.allclose(zhat[:, : z.shape[1]], z)
    res = RuleBase.default().compile(precision="double").evaluate(comps.detach().numpy())
    np.testing.assert_allclose(zhat[:, z.shape[1]:z.shape[1] + 18].detach().numpy(),
                               res.scores, atol=1e-4)
    np.testing.assert_allclose(zhat[:, z.shape[1] + 18:].detach().numpy(), res.activations,
                               atol=1e-4)


def test_fuzzy_dims_follow_the_encoder_not_the_input_scores(data, episode):
    """F reads g's features: change g and the fuzzy dims change; the input carries no
    precomputed scores (the old layer appended those)."""
    model, _ = _model(data)
    assert data.prep.layout.fuzzy == 0
    xs = episode[0]
    # push the projection into the rules' active range so that F responds
    with torch.no_grad():
        model.F.to_components.weight.mul_(8.0)
    before = model.embed(xs)[:, -24:].clone()
    assert before.abs().sum() > 0
    with torch.no_grad():
        model.g.embed.weight.add_(0.5 * torch.randn_like(model.g.embed.weight))
    after = model.embed(xs)[:, -24:]
    assert not torch.allclose(before, after, atol=1e-6)
    # and the meta-loss gradient reaches the projection through the fuzzy systems
    xs, ys, xq, yq = episode
    loss, _ = meta.maml_task(model, meta.params_of(model), xs, ys, xq, yq, 3, 1, 0.4, False)
    loss.backward()
    assert model.F.to_components.weight.grad.abs().sum() > 0


def test_without_f_there_are_no_fuzzy_or_component_inputs(data):
    model, cfg = _model(data, fuzzy="none", use_components=False)
    assert model.F is None
    lm_only = FrameData.build(fx.disfa_like(n_subjects=8, n_frames=300, seed=6), cfg)
    assert lm_only.prep.layout.comps == 0 and lm_only.prep.layout.fuzzy == 0


# ----------------------------------------------------------------------------- Eq. 3
def _frame_dependency(model, x):
    """Per-frame encoder output before pooling, and after perturbing one frame."""
    t = 3
    y = x.clone()
    y[:, t + 1, 1:] += 0.7  # change frame t+1 only (its mask stays)
    return model.g(x)[:, t], model.g(y)[:, t]


def test_temporal_convolution_mixes_neighbouring_frames(data, episode):
    xs = episode[0]
    model, _ = _model(data, spatial="none")
    a, b = _frame_dependency(model, xs)
    assert not torch.allclose(a, b, atol=1e-6)       # frame t sees frame t+1
    control, _ = _model(data, spatial="none", temporal=False)
    a, b = _frame_dependency(control, xs)
    assert torch.allclose(a, b, atol=1e-12)          # per-frame encoder: it does not


def test_temporal_order_changes_the_view_embedding(data, episode):
    """Mean pooling ignores frame order; only the temporal convolution can see it."""
    xs = episode[0]
    rev = xs.flip(1)
    model, _ = _model(data)
    assert not torch.allclose(model.embed(xs), model.embed(rev), atol=1e-6)
    control, _ = _model(data, temporal=False)
    assert torch.allclose(control.embed(xs), control.embed(rev), atol=1e-10)


# ----------------------------------------------------------------------------- Eq. 4
def _query_logits(model, cfg, xs, ys, xq):
    params = meta.params_of(model)
    return meta.test_logits(model, params, xs, ys, xq, cfg.n_way, cfg.replace(
        inner_steps_test=0))


def test_message_passing_makes_a_query_depend_on_the_support_views(data, episode):
    xs, ys, xq, _ = episode
    model, cfg = _model(data)
    assert model.uses_context
    e1 = model.embed(torch.cat([xs, xq]), xs.shape[0])[xs.shape[0]:]
    other = xs.clone()
    other[0, :, 1:] += 0.5                           # one support view changes
    e2 = model.embed(torch.cat([other, xq]), xs.shape[0])[xs.shape[0]:]
    assert not torch.allclose(e1, e2, atol=1e-6)
    control, _ = _model(data, spatial="none")
    c1 = control.embed(torch.cat([xs, xq]), xs.shape[0])[xs.shape[0]:]
    c2 = control.embed(torch.cat([other, xq]), xs.shape[0])[xs.shape[0]:]
    assert torch.allclose(c1, c2, atol=1e-12)


def test_queries_never_see_each_other(data, episode):
    """A query receives from the support views and itself only: no transductive leak."""
    xs, _, xq, _ = episode
    model, _ = _model(data)
    s = xs.shape[0]
    together = model.embed(torch.cat([xs, xq]), s)[s:]
    alone = torch.cat([model.embed(torch.cat([xs, xq[i:i + 1]]), s)[s:]
                       for i in range(len(xq))])
    assert torch.allclose(together, alone, atol=1e-10)


def test_adjacency_is_per_task_from_feature_similarity():
    """A^t: softmax over the senders of scaled cosine similarity; a support view equal to
    the receiving view gets the largest weight, and changing the task changes A."""
    torch.manual_seed(0)
    conv = ViewGraphConv(4).double()
    z = torch.randn(5, 2, 1, 4, dtype=torch.float64)
    z[4] = z[1] * 3.0                                  # a query parallel to support view 1
    m = torch.ones(5, 2, 1, 1, dtype=torch.float64)
    captured = {}
    real_softmax = torch.softmax

    def spy(x, dim):
        out = real_softmax(x, dim)
        captured["att"] = out
        return out

    torch.softmax = spy
    try:
        conv(z, m, n_senders=4)
    finally:
        torch.softmax = real_softmax
    att = captured["att"]                               # (T, B, S + 1): senders, then self
    assert torch.allclose(att.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    assert int(att[0, 4, :4].argmax()) == 1
    # a support view sends to others but not to itself twice (its self term is separate)
    assert float(att[0, 0, 0].detach()) == 0.0


def test_no_message_passing_or_fuzzy_layer_or_temporal_conv_changes_the_parameter_set(data):
    full, _ = _model(data)
    names = {k for k, _ in full.named_parameters()}
    assert any(".sp." in k for k in names) and any(".t1." in k for k in names)
    assert any(k.startswith("F.") for k in names)
    for changes, gone in (({"spatial": "none"}, ".sp."), ({"temporal": False}, ".t1."),
                          ({"fuzzy": "none"}, "F.")):
        m, _ = _model(data, **changes)
        assert not any(gone in k for k, _ in m.named_parameters()), changes
