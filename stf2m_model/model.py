"""The ST-F2M network f = h o F o g (Section IV-B).

- g, the shared encoder (:class:`STEncoder`): per-region node embeddings of the facial
  landmarks (+ the component measurements of each region) plus an MLP of the positional
  encoding, then ``blocks`` STGCN "sandwich" blocks: gated temporal convolution (GLU,
  Eq. 3) -> message passing over the region graph, Z <- relu(A_hat Z W) (Eq. 4) -> gated
  temporal convolution; a readout gives one embedding Z^t per frame.
  ``--no-spatiotemporal`` swaps it for :class:`PlainEncoder` (a per-frame MLP of the same
  inputs: no temporal convolution, no graph); :class:`Conv4Encoder` is the Conv4 image
  backbone (per-frame aligned face crops, or the landmarks drawn as an image).
- F, the fuzzy layer (:class:`FuzzyLayer`): appends the fuzzy semantic information of the
  rule engine (the 18 intensity scores and 6 activations, optionally the 12x3 FCIS
  memberships) of each frame to Z^t. It has no parameters: the fuzzy systems are built
  before meta-training (Eq. 5) and stay fixed.
- h, the classifier (:class:`Head`): masked mean over the window's frames, then a
  two-layer MLP to N task-local logits.

Every module is functional-call friendly (no buffers, no batch statistics), so the
meta-learner can ``vmap`` tasks over it; inputs are one tensor ``(B, T, width)`` laid out
as in :class:`stf2m_model.data.Layout`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import N_REGIONS, POS_DIM, Layout
from .graph import normalized_adjacency


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


class GraphConv(nn.Module):
    """Message passing over the facial-region graph: relu(A_hat Z W)."""

    def __init__(self, channels: int, adjacency) -> None:
        super().__init__()
        self.register_buffer("a_hat", torch.as_tensor(normalized_adjacency(adjacency),
                                                      dtype=torch.float32), persistent=False)
        self.lin = nn.Linear(channels, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, T, R, C)
        return F.relu(self.lin(torch.einsum("ij,btjc->btic", self.a_hat, z))) + z


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
    def __init__(self, channels: int, kernel: int, adjacency) -> None:
        super().__init__()
        self.t1 = GatedTemporalConv(channels, kernel)
        self.sp = GraphConv(channels, adjacency)
        self.t2 = GatedTemporalConv(channels, kernel)
        self.norm = ChannelNorm(channels)

    def forward(self, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        z = self.t1(z) * m
        z = self.sp(z) * m
        return self.norm(self.t2(z)) * m


class STEncoder(nn.Module):
    """g: spatio-temporal encoder over region nodes; (B, T, width) -> (B, T, hidden)."""

    def __init__(self, layout: Layout, adjacency, hidden: int, kernel: int, blocks: int
                 ) -> None:
        super().__init__()
        self.layout = layout
        nf = layout.node_features
        self.node_w = nn.Parameter(torch.randn(N_REGIONS, nf, hidden) / nf ** 0.5)
        self.node_b = nn.Parameter(torch.zeros(N_REGIONS, hidden))
        self.pos = nn.Sequential(nn.Linear(POS_DIM, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(STBlock(hidden, kernel, adjacency) for _ in range(blocks))
        self.readout = nn.Linear(N_REGIONS * hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sl = self.layout.slices()
        m = x[..., :1]                                          # (B, T, 1)
        nodes = x[..., sl["nodes"]].unflatten(-1, (N_REGIONS, self.layout.node_features))
        z = torch.einsum("btrf,rfh->btrh", nodes, self.node_w) + self.node_b
        z = torch.relu(z + self.pos(x[..., sl["pos"]]).unsqueeze(2))
        m4 = m.unsqueeze(-1)
        z = z * m4
        for block in self.blocks:
            z = block(z, m4)
        return torch.relu(self.readout(z.flatten(2))) * m


class PlainEncoder(nn.Module):
    """Ablation of g (--no-spatiotemporal): a per-frame MLP of the same inputs."""

    def __init__(self, layout: Layout, hidden: int) -> None:
        super().__init__()
        self.layout = layout
        self.net = nn.Sequential(nn.Linear(layout.nodes + POS_DIM, 2 * hidden), nn.ReLU(),
                                 nn.Linear(2 * hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sl = self.layout.slices()
        inp = torch.cat([x[..., sl["pos"]], x[..., sl["nodes"]]], -1)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        img = x[..., self.layout.slices()["image"]].reshape(b * t, 1, self.side, self.side)
        z = self.net(img).flatten(1)
        return torch.relu(self.out(z)).reshape(b, t, -1) * x[..., :1]


class FuzzyLayer(nn.Module):
    """F: append each frame's fuzzy semantic information to its embedding (no parameters)."""

    def __init__(self, layout: Layout, enabled: bool) -> None:
        super().__init__()
        self.layout = layout
        self.enabled = enabled and layout.fuzzy > 0
        self.extra_dims = layout.fuzzy if self.enabled else 0

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return z
        return torch.cat([z, x[..., self.layout.slices()["fuzzy"]] * x[..., :1]], -1)


class Head(nn.Module):
    """h: masked temporal mean, then an MLP to the task's N logits."""

    def __init__(self, dim: int, hidden: int, n_way: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_way))

    @staticmethod
    def pool(z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (z * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class STF2M(nn.Module):
    """f = h o F o g. ``forward`` gives logits (B, n_way); ``embed`` the pooled Z-hat."""

    def __init__(self, layout: Layout, adjacency, n_way: int, encoder: str = "stgcn",
                 hidden: int = 32, kernel: int = 3, blocks: int = 1, fuzzy: bool = True,
                 image_size: int = 24) -> None:
        super().__init__()
        self.layout = layout
        if encoder == "stgcn":
            self.g: nn.Module = STEncoder(layout, adjacency, hidden, kernel, blocks)
        elif encoder == "plain":
            self.g = PlainEncoder(layout, hidden)
        elif encoder == "conv4":
            if not layout.image:
                raise ValueError("conv4 needs a layout with an image block")
            self.g = Conv4Encoder(layout, hidden, image_size)
        else:
            raise ValueError(f"unknown encoder {encoder!r}")
        # further modalities (e.g. a text embedding per view): own projection, same frames
        self.modal = nn.Linear(layout.extra, hidden) if layout.extra else None
        self.F = FuzzyLayer(layout, fuzzy)
        self.dim = hidden * (2 if self.modal is not None else 1) + self.F.extra_dims
        self.h = Head(self.dim, hidden, n_way)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        m = x[..., :1]
        x = x * m  # masked frames (padding, bridged unknowns) carry nothing
        z = self.g(x)
        if self.modal is not None:
            z = torch.cat([z, torch.relu(self.modal(x[..., self.layout.slices()["extra"]])) * m],
                          -1)
        return Head.pool(self.F(z, x), m)

    def forward(self, x: torch.Tensor, embed_only: bool = False) -> torch.Tensor:
        e = self.embed(x)
        return e if embed_only else self.h(e)


def build_model(layout: Layout, adjacency, config) -> STF2M:
    return STF2M(layout, adjacency, config.n_way, encoder=config.encoder, hidden=config.hidden,
                 kernel=config.kernel, blocks=config.blocks, fuzzy=config.fuzzy,
                 image_size=config.image_size)
