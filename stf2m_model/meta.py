"""Bi-level optimisation (Eqs. 6 and 7) and the baselines, with ``torch.func``.

Inner level (Eq. 6): ``theta_i = theta - alpha * grad L(support; theta)``, ``inner_steps``
times, written with :func:`torch.func.grad` on :func:`torch.func.functional_call`, so the
adapted parameters stay a differentiable function of theta. Outer level (Eq. 7): the mean
query loss over the batch of tasks is back-propagated to theta (through the inner steps:
second order) and an Adam step with rate beta is taken. Tasks are batched with
:func:`torch.func.vmap`; :func:`meta_loss_loop` is the same computation as a plain
per-task loop (the reference for tests and the benchmark).

Methods (``method``), all on the same network and tasks:

- ``maml``: the above (``first_order`` detaches the inner gradients: FOMAML);
- ``anil``: only the head's output layer adapts in the inner loop (Raghu et al. 2020);
- ``reptile``: theta moves towards the weights adapted on each task's support windows
  (Nichol & Schulman 2018; first order, the difference is fed to Adam; several inner
  steps, see :func:`reptile_direction`);
- ``protonet``: prototypes = class means of the support embeddings, logits = minus squared
  distances (Snell et al. 2017);
- ``supervised`` (``--no-meta``): no inner loop; the network is trained as an 18-class
  classifier on the meta-train classes' windows, then at test time a fresh output layer
  is fine-tuned on the support set (``finetune_steps``): supervised pre-training +
  fine-tuning, the non-meta baseline.

The query views of a task are classified with the support views as the senders of Eq. 4
(:func:`query_logits`), so no query sees another query.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]
HEAD_KEYS = ("h.out.weight", "h.out.bias")


def params_of(model: nn.Module) -> Params:
    return dict(model.named_parameters())


def expand_head(params: Params, n_way: int) -> Params:
    """Repeat the single output row for each of the task's N classes (gradients sum back)."""
    out = dict(params)
    for k in HEAD_KEYS:
        v = params[k]
        if v.shape[0] == 1:
            out[k] = v.expand(n_way, *v.shape[1:])
    return out


def _call(model: nn.Module, params: Params, x: torch.Tensor, n_senders: int | None = None,
          output: str = "logits") -> torch.Tensor:
    kwargs = {"n_senders": n_senders}
    if output == "embed":
        kwargs["embed_only"] = True
        return functional_call(model, params, (x,), kwargs)
    e = functional_call(model, params, (x,), {**kwargs, "embed_only": True})
    feats = torch.relu(F.linear(e, params["h.hidden.weight"], params["h.hidden.bias"]))
    if output == "features":
        return feats
    if output == "supervised":
        return F.linear(feats, params["sup.weight"], params["sup.bias"])
    return F.linear(feats, params["h.out.weight"], params["h.out.bias"])


def query_output(model: nn.Module, params: Params, xs: torch.Tensor, xq: torch.Tensor,
                 output: str = "logits") -> torch.Tensor:
    """An output of the query views, with the support views as the senders of Eq. 4."""
    if not getattr(model, "uses_context", False):
        return _call(model, params, xq, None, output)
    s = xs.shape[0]
    return _call(model, params, torch.cat([xs, xq]), s, output)[s:]


def query_logits(model: nn.Module, params: Params, xs, xq) -> torch.Tensor:
    return query_output(model, params, xs, xq, "logits")


def adapt(model: nn.Module, params: Params, xs: torch.Tensor, ys: torch.Tensor, n_way: int,
          steps: int, alpha: float, first_order: bool = False) -> Params:
    """Eq. 6: ``steps`` gradient steps of rate alpha on the support set (all parameters)."""
    params = expand_head(params, n_way)

    def support_loss(p: Params) -> torch.Tensor:
        return F.cross_entropy(_call(model, p, xs), ys)

    for _ in range(steps):
        g = grad(support_loss)(params)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        params = {k: params[k] - alpha * g[k] for k in params}
    return params


def adapt_head(feats: torch.Tensor, ys: torch.Tensor, weight: torch.Tensor,
               bias: torch.Tensor, steps: int, alpha: float, first_order: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient steps on the output layer only, over fixed features (ANIL; fine-tuning)."""

    def loss(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(feats, w, b), ys)

    for _ in range(steps):
        gw, gb = grad(loss, argnums=(0, 1))(weight, bias)
        if first_order:
            gw, gb = gw.detach(), gb.detach()
        weight, bias = weight - alpha * gw, bias - alpha * gb
    return weight, bias


def _scores(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()


def maml_task(model: nn.Module, params: Params, xs, ys, xq, yq, n_way: int, steps: int,
              alpha: float, first_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Query loss and accuracy of one task after adaptation (the summand of Eq. 7)."""
    adapted = adapt(model, params, xs, ys, n_way, steps, alpha, first_order)
    return _scores(query_logits(model, adapted, xs, xq), yq)


def anil_task(model: nn.Module, params: Params, xs, ys, xq, yq, n_way: int, steps: int,
              alpha: float, first_order: bool):
    fs = _call(model, params, xs, None, "features")
    fq = query_output(model, params, xs, xq, "features")
    p = expand_head(params, n_way)
    w, b = adapt_head(fs, ys, p["h.out.weight"], p["h.out.bias"], steps, alpha, first_order)
    return _scores(F.linear(fq, w, b), yq)


def prototype_logits(model: nn.Module, params: Params, xs, ys, xq, n_way: int):
    es = _call(model, params, xs, None, "embed")
    eq = query_output(model, params, xs, xq, "embed")
    onehot = F.one_hot(ys, n_way).to(es.dtype)                     # (S, N)
    protos = onehot.T @ es / onehot.sum(0).clamp_min(1)[:, None]   # (N, E)
    return -((eq[:, None, :] - protos[None]) ** 2).sum(-1)


def protonet_task(model: nn.Module, params: Params, xs, ys, xq, yq, n_way: int):
    return _scores(prototype_logits(model, params, xs, ys, xq, n_way), yq)


def supervised_task(model: nn.Module, params: Params, xs, ys, xq, yq):
    """--no-meta: one level, 18-class cross-entropy on all of the task's windows (``ys`` and
    ``yq`` are global class indices here)."""
    ls = _call(model, params, xs, None, "supervised")
    lq = query_output(model, params, xs, xq, "supervised")
    logits, y = torch.cat([ls, lq]), torch.cat([ys, yq])
    return _scores(logits, y)


def task_function(model: nn.Module, config) -> Callable:
    """``f(params, xs, ys, xq, yq) -> (loss, acc)``: the training objective of one task."""
    n, steps, alpha, fo = config.n_way, config.inner_steps, config.alpha, config.first_order
    if config.method == "protonet":
        return lambda p, xs, ys, xq, yq: protonet_task(model, p, xs, ys, xq, yq, n)
    if config.method == "supervised":
        return lambda p, xs, ys, xq, yq: supervised_task(model, p, xs, ys, xq, yq)
    if config.method == "anil":
        return lambda p, xs, ys, xq, yq: anil_task(model, p, xs, ys, xq, yq, n, steps, alpha,
                                                   fo)
    if config.method == "reptile":
        raise ValueError("reptile has no differentiable task objective; use outer_step")
    return lambda p, xs, ys, xq, yq: maml_task(model, p, xs, ys, xq, yq, n, steps, alpha, fo)


def meta_loss(model: nn.Module, params: Params, xs, ys, xq, yq, config
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7 objective: mean query loss over a batch of tasks (leading dim), vmapped."""
    f = task_function(model, config)
    losses, accs = vmap(f, in_dims=(None, 0, 0, 0, 0))(params, xs, ys, xq, yq)
    return losses.mean(), accs.mean()


def meta_loss_loop(model: nn.Module, params: Params, xs, ys, xq, yq, config
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`meta_loss` as a plain Python loop over tasks (reference implementation)."""
    f = task_function(model, config)
    out = [f(params, xs[i], ys[i], xq[i], yq[i]) for i in range(xs.shape[0])]
    return torch.stack([o[0] for o in out]).mean(), torch.stack([o[1] for o in out]).mean()


def reptile_direction(model: nn.Module, params: Params, xs, ys, xq, yq, config
                      ) -> tuple[Params, torch.Tensor, torch.Tensor]:
    """Reptile's meta-gradient theta - mean_i theta_i, theta_i: ``inner_steps`` first-order
    SGD steps on task i's support windows; with the query loss and accuracy at theta_i
    (the same numbers MAML logs).

    One inner step would make Reptile plain joint training at theta, where the repeated
    output row gives every class the same logit and so a zero gradient: Reptile needs
    several steps (``variant("reptile")`` uses ``REPTILE_STEPS``).
    """

    def one(xs, ys, xq, yq):
        adapted = adapt(model, params, xs, ys, config.n_way, config.inner_steps, config.alpha,
                        first_order=True)
        loss, acc = _scores(query_logits(model, adapted, xs, xq), yq)
        return adapted, loss, acc

    adapted, losses, accs = vmap(one)(xs, ys, xq, yq)
    direction = {}
    for k, p in params.items():
        a = adapted[k].mean(0)
        if a.shape != p.shape:  # the repeated output row: average over the task's classes
            a = a.mean(0, keepdim=True)
        direction[k] = (p - a).detach()
    return direction, losses.mean(), accs.mean()


def outer_step(model: nn.Module, batch, config) -> tuple[float, float]:
    """Fill ``p.grad`` of the model's parameters for one outer step; returns (loss, acc)."""
    params = params_of(model)
    if config.method == "reptile":
        direction, loss, acc = reptile_direction(model, params, *batch, config)
        for k, p in params.items():
            p.grad = direction[k] / (config.alpha * max(config.inner_steps, 1))
        return loss.item(), acc.item()
    loss, acc = meta_loss(model, params, *batch, config)
    loss.backward()
    return loss.item(), acc.item()


# ----------------------------------------------------------------------------- test time
def adapt_for_test(model: nn.Module, params: Params, xs, ys, n_way: int, config) -> Params:
    """Parameters adapted to one support set, as used at test and prediction time.

    maml / reptile: ``inner_steps_test`` first-order steps on every parameter; anil: on the
    output layer; supervised: a zero output layer fine-tuned for ``finetune_steps`` steps;
    protonet: the parameters unchanged (prototypes are computed from the support set).
    """
    if config.method == "protonet":
        return dict(params)
    if config.method in ("anil", "supervised"):
        fs = _call(model, params, xs, None, "features")
        p = expand_head(params, n_way)
        w, b = p["h.out.weight"], p["h.out.bias"]
        steps = config.inner_steps_test
        if config.method == "supervised":
            w, b, steps = torch.zeros_like(w), torch.zeros_like(b), config.finetune_steps
        w, b = adapt_head(fs, ys, w, b, steps, config.alpha, first_order=True)
        return {**p, "h.out.weight": w, "h.out.bias": b}
    return adapt(model, params, xs, ys, n_way, config.inner_steps_test, config.alpha,
                 first_order=True)


def test_logits(model: nn.Module, params: Params, xs, ys, xq, n_way: int, config
                ) -> torch.Tensor:
    """Query logits of one task after test-time adaptation on its support set."""
    if config.method == "protonet":
        return prototype_logits(model, params, xs, ys, xq, n_way)
    adapted = adapt_for_test(model, params, xs, ys, n_way, config)
    return query_logits(model, adapted, xs, xq)


def predict(model: nn.Module, params: Params, xs, ys, xq, config) -> torch.Tensor:
    """Task-local predictions for the query windows of a batch of tasks (vmapped)."""
    return vmap(lambda s, y, q: test_logits(model, params, s, y, q, config.n_way, config)
                .argmax(-1))(xs, ys, xq)
