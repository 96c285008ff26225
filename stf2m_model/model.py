"""The ST-F2M network f = h o F o g (Section IV-B).

- g, the shared encoder (:class:`STEncoder`): a per-frame embedding of the landmark points
  and component measurements (one linear map per facial region with ``spatial: regions``)
  plus, with ``positions``, an MLP of the positional encoding; then ``blocks`` STGCN
  "sandwich" blocks: gated temporal convolution (GLU, Eq. 3) -> spatial message passing
  (Eq. 4) -> gated temporal convolution -> channel norm. The spatial step is
  :class:`ViewGraphConv` by default: at every time step the task's views exchange
  messages over a per-task adjacency from feature similarity (the paper's Z_i^t, whose
  rows are the support views, and A_i). Support views send; every view receives from the
  support and itself, so a query never sees another query. ``spatial: regions`` uses a
  fixed facial-region graph inside each frame instead (:class:`RegionGraphConv`, ours).
  ``--no-spatiotemporal`` swaps g for :class:`PlainEncoder` (a per-frame MLP);
  :class:`Conv4Encoder` is the Conv4 image backbone.
- F, the fuzzy layer (:class:`LearnedFuzzy`): Z_hat = F(Z). A learned projection maps each
  view's pooled embedding to the 12 components (tanh: the measurement range [-1, 1]); the
  differentiable FCIS/FKIS (:class:`stf2m_model.fuzzy.FuzzyInference`, the rule engine's
  semantics) turns them into 18 intensity scores and 6 activations, appended to Z as the
  fuzzy semantic dimensions. ``fuzzy: precomputed`` appends the engine's scores of the
  input instead (the table's columns; a baseline), ``none`` nothing.
- h, the classifier (:class:`Head`): a two-layer MLP to N logits. Its output layer is one
  weight row and one bias, repeated for every class of a task (Unicorn-MAML, Ye & Chao
  2022): the model serves any N (an 18-class support set at prediction time) and is
  invariant to the order of a task's classes.

Every module is functional-call friendly (no buffers with state, no batch statistics),
so the meta-learner can ``vmap`` tasks over it. Inputs are one tensor ``(B, T, width)``
laid out as in :class:`stf2m_model.data.Layout`; ``n_senders`` says that the first rows
are the task's support views (the senders of Eq. 4), ``None`` that every row is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import N_REGIONS, POS_DIM, Layout
from .fuzzy import FuzzyInference
from .graph import normalized_adjacency

N_COMPONENTS = 12
N_CLASSES = 18


class GatedTemporalConv(nn.Module):
    """GLU temporal convolution (STGCN): P * sigmoid(Q) + residual, same length.

    Written as k shifted time slices + one linear layer instead of ``nn.Conv1d``: the same
    operator, whose double backward under ``vmap`` stays batched matrix products (a Conv1d
    version measured about 1.3x slower on CPU with torch 2.13).
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.lin = nn.Linear(channels * kernel, 2 * channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, T, R, C)
        k = self.kernel
        t = z.shape[1]
        zp = F.pad(z, (0, 0, 0, 0, k // 2, k // 2))       # pad the time axis
        win = torch.cat([zp[:, j:j + t] for j in range(k)], -1)  # (B, T, R, k * C)
        p, q = self.lin(win).chunk(2, dim=-1)
        return p * torch.sigmoid(q) + z


class ViewGraphConv(nn.Module):
    """Eq. 4 over the task's views: at each time step t, Z^t <- relu(W A^t Z^t) + Z^t.

    A^t is the task's adjacency at t from feature similarity: softmax over the senders u
    of ``scale * cos(z_v^t, z_u^t)``, where the senders of view v are the support views
    with a valid frame at t, and v itself. Query views only receive, so each query's
    output depends on the support set and on nothing else in the batch.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.lin = nn.Linear(channels, channels)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(5.0))))

    def forward(self, z: torch.Tensor, m: torch.Tensor, n_senders: int | None
                ) -> torch.Tensor:  # z (B, T, R, C), m (B, T, 1, 1)
        b = z.shape[0]
        s = b if n_senders is None else n_senders
        h = z.flatten(2)                                        # (B, T, F)
        # cosine similarity; not h.norm(): its gradient at a padded (all-zero) frame is NaN
        hn = h * torch.rsqrt((h * h).sum(-1, keepdim=True) + 1e-8)
        scale = self.log_scale.exp()
        valid = m[:, :, 0, 0] > 0                               # (B, T)
        send_h, send_n = h[:s], hn[:s]
        logits = scale * torch.einsum("itf,jtf->tij", hn, send_n)   # (T, B, S)
        eye = torch.arange(b, device=z.device)[:, None] == torch.arange(s, device=z.device)[None]
        allowed = valid[:s].T.unsqueeze(1) & ~eye                     # (T, 1|B, S)
        logits = torch.where(allowed, logits, torch.full_like(logits, -1e9))
        self_logit = scale * (hn * hn).sum(-1).T.unsqueeze(-1)      # (T, B, 1)
        att = torch.softmax(torch.cat([logits, self_logit], -1), -1)
        msg = torch.einsum("tij,jtf->itf", att[..., :s], send_h) + \
            att[..., s:].permute(1, 0, 2) * h
        out = F.relu(self.lin(msg.unflatten(-1, z.shape[2:]))) + z
        return out


class RegionGraphConv(nn.Module):
    """Ours (``spatial: regions``): message passing over the facial-region graph of each
    frame, relu(A_hat Z W) + Z, A_hat = D^-1/2 (A + I) D^-1/2."""

    def __init__(self, channels: int, adjacency) -> None:
        super().__init__()
        self.register_buffer("a_hat", torch.as_tensor(normalized_adjacency(adjacency),
                                                      dtype=torch.float32), persistent=False)
        self.lin = nn.Linear(channels, channels)

    def forward(self, z: torch.Tensor, m: torch.Tensor, n_senders: int | None
                ) -> torch.Tensor:  # (B, T, R, C)
        return F.relu(self.lin(torch.einsum("ij,btjc->btic", self.a_hat.to(z.dtype), z))) + z


class ChannelNorm(nn.Module):
    """Layer normalisation over channels, written out in elementary operations.

    ``nn.LayerNorm``'s fused kernel gives a wrong double backward under ``vmap`` in
    torch 2.13 (second-order meta-gradients off by 5e-4 to 6e-3 relative, caught by the
    finite-difference test); this version is exact.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        mu = z.mean(-1, keepdim=True)
        var = ((z - mu) ** 2).mean(-1, keepdim=True)
        return (z - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class STBlock(nn.Module):
    """GLU temporal conv -> spatial message passing -> GLU temporal conv -> norm."""

    def __init__(self, channels: int, kernel: int, spatial: str, temporal: bool,
                 adjacency) -> None:
        super().__init__()
        self.t1 = GatedTemporalConv(channels, kernel) if temporal else None
        self.sp: nn.Module | None = None
        if spatial == "views":
            self.sp = ViewGraphConv(channels)
        elif spatial == "regions":
            self.sp = RegionGraphConv(channels, adjacency)
        self.t2 = GatedTemporalConv(channels, kernel) if temporal else None
        self.norm = ChannelNorm(channels)

    def forward(self, z: torch.Tensor, m: torch.Tensor, n_senders: int | None
                ) -> torch.Tensor:
        if self.t1 is not None:
            z = self.t1(z) * m
        if self.sp is not None:
            z = self.sp(z, m, n_senders) * m
        if self.t2 is not None:
            z = self.t2(z) * m
        return self.norm(z) * m


class STEncoder(nn.Module):
    """g: spatio-temporal encoder; (B, T, width) -> per-frame Z^t (B, T, hidden)."""

    def __init__(self, layout: Layout, region_columns: np.ndarray, adjacency, hidden: int,
                 kernel: int, blocks: int, spatial: str, temporal: bool) -> None:
        super().__init__()
        self.layout = layout
        self.by_region = spatial == "regions"
        if self.by_region:
            cols = torch.as_tensor(np.asarray(region_columns), dtype=torch.long)
            self.register_buffer("region_columns", cols, persistent=False)
            nf = cols.shape[1]
            self.node_w = nn.Parameter(torch.randn(N_REGIONS, nf, hidden) / nf ** 0.5)
            self.node_b = nn.Parameter(torch.zeros(N_REGIONS, hidden))
            nodes = N_REGIONS
        else:
            self.embed = nn.Linear(max(layout.features, 1), hidden)
            nodes = 1
        self.pos = nn.Sequential(nn.Linear(POS_DIM, hidden), nn.Tanh(),
                                 nn.Linear(hidden, hidden)) if layout.pos else None
        self.blocks = nn.ModuleList(STBlock(hidden, kernel, spatial, temporal, adjacency)
                                    for _ in range(blocks))
        self.readout = nn.Linear(nodes * hidden, hidden)

    def forward(self, x: torch.Tensor, n_senders: int | None = None) -> torch.Tensor:
        sl = self.layout.slices()
        m = x[..., :1]                                          # (B, T, 1)
        feats = x[..., sl["features"]]
        if self.by_region:
            padded = torch.cat([feats, torch.zeros_like(feats[..., :1])], -1)
            nodes = padded[..., self.region_columns]            # (B, T, R, W)
            z = torch.einsum("btrf,rfh->btrh", nodes, self.node_w) + self.node_b
        else:
            if self.layout.features == 0:
                feats = torch.zeros_like(m)
            z = self.embed(feats).unsqueeze(2)                  # (B, T, 1, C)
        if self.pos is not None:
            z = z + self.pos(x[..., sl["pos"]]).unsqueeze(2)
        m4 = m.unsqueeze(-1)
        z = torch.relu(z) * m4
        for block in self.blocks:
            z = block(z, m4, n_senders)
        return torch.relu(self.readout(z.flatten(2))) * m


class PlainEncoder(nn.Module):
    """Ablation of g (--no-spatiotemporal): a per-frame MLP of the same inputs."""

    def __init__(self, layout: Layout, hidden: int) -> None:
        super().__init__()
        self.layout = layout
        self.net = nn.Sequential(nn.Linear(max(layout.features + layout.pos, 1), 2 * hidden),
                                 nn.ReLU(), nn.Linear(2 * hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor, n_senders: int | None = None) -> torch.Tensor:
        sl = self.layout.slices()
        inp = torch.cat([x[..., sl["pos"]], x[..., sl["features"]]], -1)
        if self.layout.features + self.layout.pos == 0:
            inp = torch.zeros_like(x[..., :1])
        return self.net(inp) * x[..., :1]


class GroupNorm2d(ChannelNorm):
    """GroupNorm for (N, C, H, W) in elementary operations (same reason as ChannelNorm)."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__(channels, eps)
        self.groups = groups

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c, h, w = z.shape
        g = z.reshape(n, self.groups, -1)
        mu = g.mean(-1, keepdim=True)
        var = ((g - mu) ** 2).mean(-1, keepdim=True)
        g = ((g - mu) / torch.sqrt(var + self.eps)).reshape(n, c, h, w)
        return g * self.weight[:, None, None] + self.bias[:, None, None]


class Conv4Encoder(nn.Module):
    """The Conv4 backbone (MAML's): 4 x [conv3x3, GroupNorm, ReLU, 2x2 max-pool] per frame.

    GroupNorm replaces BatchNorm so that the network has no running statistics and stays
    a pure function of its parameters under ``vmap`` (per-task batch norm is what MAML's
    Conv4 does in "transductive" mode; GroupNorm is the per-sample equivalent).
    """

    def __init__(self, layout: Layout, hidden: int, side: int, channels: int = 16) -> None:
        super().__init__()
        self.layout, self.side = layout, side
        layers: list[nn.Module] = []
        c_in, s = 1, side
        for _ in range(4):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1), GroupNorm2d(4, channels),
                       nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c_in, s = channels, -(-s // 2)
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(channels * s * s, hidden)

    def forward(self, x: torch.Tensor, n_senders: int | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        img = x[..., self.layout.slices()["image"]].reshape(b * t, 1, self.side, self.side)
        z = self.net(img).flatten(1)
        return torch.relu(self.out(z)).reshape(b, t, -1) * x[..., :1]


class LearnedFuzzy(nn.Module):
    """F(Z): project each view's embedding to the 12 components, run FCIS/FKIS on them."""

    def __init__(self, dim: int, rules: Mapping[str, Any]) -> None:
        super().__init__()
        self.to_components = nn.Linear(dim, N_COMPONENTS)
        self.fis = FuzzyInference(rules)
        self.extra_dims = N_CLASSES + 6

    def components(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_components(z))

    def forward(self, z: torch.Tensor, pooled_table: torch.Tensor) -> torch.Tensor:
        out = self.fis(self.components(z))
        return torch.cat([z, out["scores"].to(z.dtype), out["activations"].to(z.dtype)], -1)


class PrecomputedFuzzy(nn.Module):
    """The baseline: append the input's own precomputed engine outputs (pooled)."""

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        self.layout = layout
        self.extra_dims = layout.fuzzy

    def forward(self, z: torch.Tensor, pooled_table: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, pooled_table[..., self.layout.slices()["fuzzy"]]], -1)


class Head(nn.Module):
    """h: Linear -> ReLU -> one output row repeated for every class of the task."""

    def __init__(self, dim: int, hidden: int, n_out: int = 1) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, n_out)

    def features(self, e: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(e))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(e))


def pool(z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Masked mean over the time axis: (B, T, C), (B, T, 1) -> (B, C)."""
    return (z * m).sum(1) / m.sum(1).clamp_min(1.0)


class STF2M(nn.Module):
    """f = h o F o g. ``forward`` gives logits (B, N); ``embed`` the pooled Z_hat."""

    def __init__(self, layout: Layout, config, rules: Mapping[str, Any] | None = None,
                 region_columns: np.ndarray | None = None, adjacency=None,
                 n_out: int = 1) -> None:
        super().__init__()
        self.layout = layout
        hidden = config.hidden
        if config.encoder == "stgcn":
            if region_columns is None:
                region_columns = np.zeros((N_REGIONS, 1), np.int64)
            if adjacency is None:
                adjacency = np.zeros((N_REGIONS, N_REGIONS))
            self.g: nn.Module = STEncoder(layout, region_columns, adjacency, hidden,
                                          config.kernel, config.blocks, config.spatial,
                                          config.temporal)
        elif config.encoder == "plain":
            self.g = PlainEncoder(layout, hidden)
        elif config.encoder == "conv4":
            if not layout.image:
                raise ValueError("conv4 needs a layout with an image block")
            self.g = Conv4Encoder(layout, hidden, config.image_size)
        else:
            raise ValueError(f"unknown encoder {config.encoder!r}")
        # Eq. 4 over views needs the support rows next to the rows being classified.
        self.uses_context = config.encoder == "stgcn" and config.spatial == "views" \
            and config.blocks > 0
        # further modalities (e.g. a text embedding per view): own projection, same frames
        self.modal = nn.Linear(layout.extra, hidden) if layout.extra else None
        z_dim = hidden * (2 if self.modal is not None else 1)
        if config.fuzzy == "learned":
            if rules is None:
                raise ValueError("fuzzy: learned needs the compiled rule base")
            self.F: nn.Module | None = LearnedFuzzy(z_dim, rules)
        elif config.fuzzy == "precomputed":
            self.F = PrecomputedFuzzy(layout)
        else:
            self.F = None
        self.dim = z_dim + (self.F.extra_dims if self.F is not None else 0)
        self.h = Head(self.dim, hidden, n_out)
        # supervised pre-training (the non-meta baseline) classifies the 18 global classes
        self.sup = nn.Linear(hidden, N_CLASSES) if config.method == "supervised" else None

    def encode(self, x: torch.Tensor, n_senders: int | None = None) -> torch.Tensor:
        """Z of each view (B, z_dim): g per frame, pooled over the window's valid frames."""
        m = x[..., :1]
        x = x * m  # masked frames (padding, bridged unknowns) carry nothing
        z = self.g(x, n_senders)
        if self.modal is not None:
            z = torch.cat([z, torch.relu(self.modal(x[..., self.layout.slices()["extra"]])) * m],
                          -1)
        return pool(z, m)

    def embed(self, x: torch.Tensor, n_senders: int | None = None) -> torch.Tensor:
        """Z_hat = F(Z) of each view (B, dim)."""
        z = self.encode(x, n_senders)
        if self.F is None:
            return z
        return self.F(z, pool(x, x[..., :1]))

    def forward(self, x: torch.Tensor, n_senders: int | None = None,
                embed_only: bool = False) -> torch.Tensor:
        e = self.embed(x, n_senders)
        return e if embed_only else self.h(e)

    def fuzzy_components(self, x: torch.Tensor, n_senders: int | None = None) -> torch.Tensor:
        """The 12 component values F feeds to the fuzzy systems for each view."""
        if not isinstance(self.F, LearnedFuzzy):
            raise ValueError("only fuzzy: learned projects embeddings to components")
        return self.F.components(self.encode(x, n_senders))


def build_model(layout: Layout, config, rules: Mapping[str, Any] | None = None,
                prep=None, n_out: int = 1) -> STF2M:
    """The network for a layout (and the run's preprocessing, for the region graph)."""
    region_columns = prep.region_columns if prep is not None else None
    adjacency = prep.adjacency if prep is not None else None
    return STF2M(layout, config, rules, region_columns, adjacency, n_out)
