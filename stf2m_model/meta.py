"""Bi-level optimisation (Eqs. 6 and 7) with ``torch.func``, vmapped over tasks.

Inner level (Eq. 6): ``theta_i = theta - alpha * grad L(support; theta)``, ``inner_steps``
times, written with :func:`torch.func.grad` on :func:`torch.func.functional_call`, so the
adapted parameters stay a differentiable function of theta. Outer level (Eq. 7): the mean
query loss over the batch of tasks is back-propagated to theta (through the inner steps:
second order) and an Adam step with rate beta is taken. ``first_order`` detaches the
inner gradients (first-order MAML). Tasks are batched with :func:`torch.func.vmap` (as in
PyTorch's functorch MAML example); :func:`meta_loss_loop` is the same computation as a
plain per-task Python loop (the reference for tests and the benchmark).

Also here: the ProtoNet loss (prototypes = class means of the support embeddings) and the
single-level loss of ``--no-meta`` (no inner loop; the model is trained directly on the
tasks' labelled windows and only fine-tuned on the support set at test time).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]


def params_of(model: nn.Module) -> Params:
    return dict(model.named_parameters())


def _logits(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    return functional_call(model, params, (x,))


def adapt(model: nn.Module, params: Params, xs: torch.Tensor, ys: torch.Tensor, steps: int,
          alpha: float, first_order: bool = False) -> Params:
    """Eq. 6: ``steps`` gradient steps of rate alpha on the support set."""

    def support_loss(p: Params) -> torch.Tensor:
        return F.cross_entropy(_logits(model, p, xs), ys)

    for _ in range(steps):
        g = grad(support_loss)(params)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        params = {k: params[k] - alpha * g[k] for k in params}
    return params


def maml_task(model: nn.Module, params: Params, xs, ys, xq, yq, steps: int, alpha: float,
              first_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Query loss and accuracy of one task after adaptation (the summand of Eq. 7)."""
    adapted = adapt(model, params, xs, ys, steps, alpha, first_order)
    logits = _logits(model, adapted, xq)
    return F.cross_entropy(logits, yq), (logits.argmax(-1) == yq).float().mean()


def _prototype_logits(model: nn.Module, params: Params, xs, ys, xq, n_way: int):
    es = functional_call(model, params, (xs,), {"embed_only": True})
    eq = functional_call(model, params, (xq,), {"embed_only": True})
    onehot = F.one_hot(ys, n_way).to(es.dtype)                     # (S, N)
    protos = onehot.T @ es / onehot.sum(0).clamp_min(1)[:, None]   # (N, E)
    return -((eq[:, None, :] - protos[None]) ** 2).sum(-1)


def protonet_task(model: nn.Module, params: Params, xs, ys, xq, yq, n_way: int):
    logits = _prototype_logits(model, params, xs, ys, xq, n_way)
    return F.cross_entropy(logits, yq), (logits.argmax(-1) == yq).float().mean()


def single_task(model: nn.Module, params: Params, xs, ys, xq, yq):
    """--no-meta: one level, the plain loss on all of the task's labelled windows."""
    logits = _logits(model, params, torch.cat([xs, xq]))
    y = torch.cat([ys, yq])
    return F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()


def task_function(model: nn.Module, config, train: bool = True) -> Callable:
    """``f(params, xs, ys, xq, yq) -> (loss, acc)`` for the configured method."""
    if config.method == "protonet":
        return lambda p, xs, ys, xq, yq: protonet_task(model, p, xs, ys, xq, yq, config.n_way)
    if config.method == "single" and train:
        return lambda p, xs, ys, xq, yq: single_task(model, p, xs, ys, xq, yq)
    steps = config.inner_steps if train else config.inner_steps_test
    first_order = config.first_order if train else True
    return lambda p, xs, ys, xq, yq: maml_task(model, p, xs, ys, xq, yq, steps, config.alpha,
                                               first_order)


def meta_loss(model: nn.Module, params: Params, xs, ys, xq, yq, config, train: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7 objective: mean query loss over a batch of tasks (leading dim), vmapped."""
    f = task_function(model, config, train)
    losses, accs = vmap(f, in_dims=(None, 0, 0, 0, 0))(params, xs, ys, xq, yq)
    return losses.mean(), accs.mean()


def meta_loss_loop(model: nn.Module, params: Params, xs, ys, xq, yq, config,
                   train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`meta_loss` as a plain Python loop over tasks (reference implementation)."""
    f = task_function(model, config, train)
    out = [f(params, xs[i], ys[i], xq[i], yq[i]) for i in range(xs.shape[0])]
    return torch.stack([o[0] for o in out]).mean(), torch.stack([o[1] for o in out]).mean()


def predict(model: nn.Module, params: Params, xs, ys, xq, config) -> torch.Tensor:
    """Task-local predictions for the query windows of a batch of tasks (vmapped)."""

    def one(xs, ys, xq):
        if config.method == "protonet":
            return _prototype_logits(model, params, xs, ys, xq, config.n_way).argmax(-1)
        p = adapt(model, params, xs, ys, config.inner_steps_test, config.alpha, True)
        return _logits(model, p, xq).argmax(-1)

    return vmap(one)(xs, ys, xq)
