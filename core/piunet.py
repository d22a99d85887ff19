"""PIUNet: permutation-invariant multi-image super-resolution with uncertainty.

Re-implemented from the published description (Valsesia & Magli, TGRS 2021):
per-frame [1,3,3] convolutions (Conv3d in the paper; the same operation here as a
2-D convolution over frames folded into the batch) for feature extraction; TEFA blocks (temporal self-attention
across the T frames at every pixel, then a residual [1,3,3] convolution pair with
squeeze-excitation); TERN registration (a learned K x K filter per frame,
predicted from that frame's features, applied depthwise); mean over time;
pixel-shuffle upsampling; a global residual that upsamples the mean LR frame
bilinearly on the project's grid convention; and a second output head with the
log-scale of a Laplace distribution (uncertainty).

Every operation is either per frame or symmetric across frames, so the output
does not depend on frame order and any T works.

Global context: squeeze-excitation and TERN pool features over the whole input. To
make tiled inference of a large raster equal to one pass over it, these pools can be
given from outside (:meth:`PIUNet.context`, computed once per raster); every other
operation is local, reaching :meth:`PIUNet.receptive_radius` LR pixels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from .convention import check_scale


RESIDUALS = ("bilinear", "ibp")


@dataclass(frozen=True)
class PIUNetConfig:
    scale: int = 3
    features: int = 42
    blocks: int = 16
    heads: int = 1
    tern_kernel: int = 5
    residual: str = "bilinear"  # global residual: "bilinear" (mean frame, as published) or "ibp"
    ibp_iterations: int = 40  # iterations of the IBP residual (the same in training and inference)

    def to_dict(self) -> dict:
        return asdict(self)


def _frame_conv(cin: int, cout: int) -> nn.Conv2d:
    """The paper's Conv3d [1, 3, 3], computed as a 2-D convolution over frames folded into the
    batch: the same weights, and oneDNN's channels-last 2-D path is about 1.5x faster on CPU."""
    return nn.Conv2d(cin, cout, 3, padding=1)


ATTENTION_CHUNK = 4096  # pixels per attention pass on CPU without autograd: the chunk's q, k, v stay in cache, and
# the pass allocates no full-size intermediates (a 302-px window's qkv alone was 315 MB)


class TemporalAttention(nn.Module):
    """Self-attention across the T frames at each pixel (permutation equivariant)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def _attend(self, seq: torch.Tensor) -> torch.Tensor:  # (N, T, C) -> (N, T, C)
        N, T, C = seq.shape
        q, k, v = self.qkv(self.norm(seq)).chunk(3, dim=-1)
        split = lambda t: t.reshape(N, T, self.heads, C // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        if q.device.type == "cpu":
            # T is tiny (the frames): on CPU batched matmuls beat the flash kernel, 1.6 x in fp32 (4096 pixels x 9
            # frames x 32 channels: 4.1 vs 6.6 ms) and 2.5 x in bf16
            att = torch.softmax(q @ k.transpose(-1, -2) * (C // self.heads) ** -0.5, dim=-1)
            out = att.to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # fused kernel
        return self.proj(out.transpose(1, 2).reshape(N, T, C))

    def _residual(self, part: torch.Tensor) -> torch.Tensor:  # (B, T, n, C) -> (B, T, n, C)
        B, T, n, C = part.shape
        return part + self._attend(part.transpose(1, 2).reshape(B * n, T, C)).reshape(B, n, T, C).transpose(1, 2)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (B*T, C, H, W)
        BT, C, H, W = x.shape
        B, T, P = BT // frames, frames, H * W
        xs = x.permute(0, 2, 3, 1).reshape(B, T, P, C)  # a view of channels-last memory
        if torch.is_grad_enabled() or P <= ATTENTION_CHUNK or x.device.type != "cpu":  # a GPU takes it whole
            out = self._residual(xs)
        else:
            out = torch.empty_like(xs)
            for p in range(0, P, ATTENTION_CHUNK):
                out[:, :, p:p + ATTENTION_CHUNK] = self._residual(xs[:, :, p:p + ATTENTION_CHUNK])
        return out.reshape(BT, H, W, C).permute(0, 3, 1, 2)  # channels-last (B*T, C, H, W)


class SqueezeExcitation(nn.Module):
    """Channel gating from features pooled over space and time."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, frames: int, pools: "_Pools") -> torch.Tensor:  # (B*T, C, H, W)
        BT, C = x.shape[:2]
        pooled = pools(lambda: x.mean(dim=(2, 3)).reshape(BT // frames, frames, C).mean(dim=1, keepdim=True))
        w = self.fc(pooled[:, 0]).repeat_interleave(frames, dim=0)[:, :, None, None]
        return x * w if torch.is_grad_enabled() else x.mul_(w)


class TEFABlock(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.attention = TemporalAttention(channels, heads)
        self.conv1 = _frame_conv(channels, channels)
        self.conv2 = _frame_conv(channels, channels)
        self.se = SqueezeExcitation(channels)

    def forward(self, x: torch.Tensor, frames: int, pools: "_Pools") -> torch.Tensor:
        x = self.attention(x, frames)
        y = self.se(self.conv2(F.relu(self.conv1(x), inplace=True)), frames, pools)
        return x + y if torch.is_grad_enabled() else y.add_(x)  # in place: one full-size tensor less per block


class TERN(nn.Module):
    """Temporal registration: one normalised K x K filter per frame, applied to all channels."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = _frame_conv(channels, channels)
        self.head = nn.Linear(channels, kernel * kernel)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():  # start as the identity filter
            self.head.bias.fill_(-8.0)
            self.head.bias[(kernel * kernel) // 2] = 8.0

    def forward(self, x: torch.Tensor, frames: int, pools: "_Pools") -> torch.Tensor:  # (B*T, C, H, W)
        BT, C, H, W = x.shape
        K = self.kernel
        pooled = pools(lambda: F.relu(self.conv(x)).mean(dim=(2, 3)).reshape(BT // frames, frames, C))
        filt = torch.softmax(self.head(pooled.reshape(BT, C)), dim=-1)  # (B*T, K*K)
        weight = filt.reshape(BT, 1, K, K).repeat_interleave(C, dim=0)
        out = F.conv2d(F.pad(x.reshape(1, BT * C, H, W), (K // 2,) * 4, mode="replicate"), weight, groups=BT * C)
        return out.reshape(BT, C, H, W)


class _Pools:
    """Source of the global pools of one forward pass, in layer order. Each pool is
    ``(B, k, C)``: ``k`` = 1 for squeeze-excitation, T (one per frame) for TERN.

    ``given``: pools of a context, ``(1, k, C)`` each, broadcast over the batch.
    ``shared``: average the computed pools over the batch (the crops of one raster) and
    keep them in ``taken``.
    """

    def __init__(self, batch: int, given: list[torch.Tensor] | None = None, shared: bool = False):
        self.batch, self.given, self.shared = batch, given, shared
        self.taken: list[torch.Tensor] = []

    def __call__(self, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.given is not None:
            if len(self.taken) >= len(self.given):
                raise ValueError("the context does not match this network (too few pools)")
            pooled = self.given[len(self.taken)]
            pooled = pooled.to(torch.float32).expand(self.batch, *pooled.shape[1:])
        else:
            pooled = compute()
            if self.shared:
                pooled = pooled.mean(dim=0, keepdim=True).expand_as(pooled)
        self.taken.append(pooled[:1])
        return pooled


def _icnr_(weight: torch.Tensor, scale: int) -> None:
    """ICNR initialisation of the convolution before a pixel shuffle: the s*s sub-pixel
    outputs of a channel start identical, so the untrained upsampler has no checkerboard."""
    out_ch = weight.shape[0] // (scale * scale)
    base = torch.empty(out_ch, *weight.shape[1:])
    nn.init.kaiming_uniform_(base, a=5 ** 0.5)
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))


class PIUNet(nn.Module):
    """``forward(frames (B, T, h, w)) -> (sr (B, s*h, s*w), log_scale (B, s*h, s*w))``.

    Inputs are expected normalised (zero mean, unit variance per stack is what the
    trainer feeds); outputs are in the same units. Frames are folded into the batch
    (``(B*T, C, h, w)``) for all per-frame layers.
    """

    def __init__(self, config: PIUNetConfig = PIUNetConfig()):
        super().__init__()
        check_scale(config.scale)
        if config.residual not in RESIDUALS:
            raise ValueError(f"residual must be one of {RESIDUALS}, got '{config.residual}'")
        self.config = config
        c, s = config.features, config.scale
        self.head = _frame_conv(1, c)
        self.blocks = nn.ModuleList([TEFABlock(c, config.heads) for _ in range(config.blocks)])
        self.tern = TERN(c, config.tern_kernel)
        self.body_out = nn.Conv2d(c, c, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(c, c * s * s, 3, padding=1), nn.PixelShuffle(s), nn.ReLU(),
                                      nn.Conv2d(c, 2, 3, padding=1))
        _icnr_(self.upsample[0].weight, s)
        if config.residual == "ibp":
            with torch.no_grad():  # start exactly at the IBP estimate: only learnt corrections move away from it
                self.upsample[-1].weight[0].zero_()
                self.upsample[-1].bias[0].zero_()

    def receptive_radius(self) -> int:
        """LR pixels beyond which an input pixel cannot change an output pixel (the global
        pools aside): head, two convolutions per block, TERN filter, body, upsampler convolution,
        the HR convolution after the shuffle and the bilinear residual."""
        return 1 + 2 * self.config.blocks + self.config.tern_kernel // 2 + 1 + 1 + 1 + 1

    def _fuse(self, frames: torch.Tensor, pools: _Pools) -> torch.Tensor:
        B, T, h, w = frames.shape
        x0 = self.head(frames.reshape(B * T, 1, h, w).contiguous(memory_format=torch.channels_last))
        x = x0
        for block in self.blocks:
            x = block(x, T, pools)
        x = self.tern(x0 + x, T, pools)
        if pools.given is not None and len(pools.taken) != len(pools.given) - 1:  # the last is the decoder's
            raise ValueError("the context does not match this network (too many pools)")
        return x.reshape(B, T, *x.shape[1:]).mean(dim=1)  # permutation-invariant fusion

    def fuse(self, frames: torch.Tensor, context: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Per-frame trunk (features, TEFA blocks, registration) and the temporal mean:
        ``(B, T, h, w) -> (B, C, h, w)``. ``context``: global pools from :meth:`context`
        (None: pool over each input itself)."""
        return self._fuse(frames, _Pools(frames.shape[0], context))

    def context(self, crops: torch.Tensor) -> list[torch.Tensor]:
        """Global pools of a raster, estimated on crops ``(N, T, h, w)`` of it (averaged over
        the crops layer by layer). Passing them to :meth:`forward` makes the output of any
        window of the raster independent of the window."""
        pools = _Pools(crops.shape[0], shared=True)
        self._upsample(self._fuse(crops, pools), pools)
        return [p.detach() for p in pools.taken]

    def _upsample(self, fused: torch.Tensor, pools: _Pools) -> torch.Tensor:
        """Body convolution and upsampler: ``(B, C, h, w) -> (B, 2, s*h, s*w)``, without the
        stride-``s`` pattern that is the same everywhere (see :func:`remove_phase_pattern`)."""
        out = self.upsample(fused + self.body_out(fused))
        return remove_phase_pattern(out, self.config.scale, pools)

    def decode(self, fused: torch.Tensor, frames: torch.Tensor, base: torch.Tensor | None = None,
               context: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """After fusion: body convolution, upsampler and the global residual: the mean frame
        upsampled bilinearly, or ``base`` ``(B, s*h, s*w)`` (an IBP estimate, see
        :func:`residual_base`) for ``residual="ibp"``. ``context``: as for :meth:`forward` (its
        last pool is the decoder's); None computes the decoder's pool from ``fused`` itself."""
        pools = _Pools(fused.shape[0], context[-1:] if context is not None else None)
        out = self._upsample(fused, pools)
        if self.config.residual == "ibp":
            if base is None:
                raise ValueError("this PIUNet adds to an IBP estimate: pass base (see residual_base)")
        else:
            base = F.interpolate(frames.mean(dim=1, keepdim=True), scale_factor=self.config.scale, mode="bilinear",
                                 align_corners=False)[:, 0]
        return out[:, 0] + base.to(out.dtype), out[:, 1]

    def forward(self, frames: torch.Tensor, context: list[torch.Tensor] | None = None,
                base: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.fuse(frames, context), frames, base, context)


def remove_phase_pattern(out: torch.Tensor, scale: int, pools: "_Pools") -> torch.Tensor:
    """Subtract the stride-``scale`` pattern that is the same over the whole raster from
    ``out`` ``(B, C, s*h, s*w)``: each of the s x s sub-pixel phases is brought to the mean of
    all phases (a pixel-shuffle upsampler gives every phase its own weights and bias, and a
    network trained briefly leaves them unequal: a visible grid). The phase means are a global
    pool, so a raster's context fixes them and tiles stay exact; content-dependent sub-pixel
    detail is untouched."""
    B, C, H, W = out.shape
    s = scale
    blocks = out.reshape(B, C, H // s, s, W // s, s)

    def deviation() -> torch.Tensor:
        m = blocks.mean(dim=(2, 4))
        return (m - m.mean(dim=(2, 3), keepdim=True)).reshape(B, 1, C * s * s)

    dev = pools(deviation).to(out.dtype).reshape(B, C, 1, s, 1, s)
    return (blocks - dev).reshape(B, C, H, W)


def residual_base(config: PIUNetConfig, frames: torch.Tensor, valid: torch.Tensor,
                  shifts: torch.Tensor | None, frame_means: torch.Tensor | None = None) -> torch.Tensor | None:
    """The global residual a ``residual="ibp"`` network adds to: IBP with the default PSF of a
    stack ``(T, h, w)`` or a batch ``(B, T, h, w)`` (``shifts``: each frame w.r.t. the output grid,
    LR px; ``frame_means``: as in :func:`baselines.ibp`); None for the published bilinear residual."""
    if config.residual != "ibp":
        return None
    from .baselines import ibp

    with torch.no_grad():
        return ibp(frames.float(), valid, config.scale, shifts, iterations=config.ibp_iterations, frame_means=frame_means)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
