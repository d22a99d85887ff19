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

from ..convention import check_scale


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


ATTENTION_CHUNK = 4096  # pixels (whole rows) per attention pass on CPU without autograd: the band's intermediates stay
# in cache, and the pass allocates nothing at full size (a 302-px window's qkv alone was 315 MB)


TERN_FRAMES = 3  # frames per registration pass without autograd: as fast as all at once, a third of the copies


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

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's weights folded for inference: ``(A^T, a, B^T, b)`` such that, with ``z`` the
        pixel's standardised features (layer norm without its affine), the block adds
        ``B (softmax_j((A z_i + a) . z_j) z_j) + b`` to frame ``i``.

        Exact algebra, not an approximation: terms of a score that do not depend on the key
        frame ``j`` cancel in the softmax (the key bias, the norm's shift on the key side), so
        ``q_i . k_j`` reduces to ``(A z_i + a) . z_j`` with ``A = diag(g) Wk^T Wq diag(g) / sqrt(d)``
        per head; and because the attention weights sum to one, the values and the output
        projection fold into one matrix ``B``. Two C x C products per pixel and frame instead of
        four, and no keys or values are made."""
        C = self.norm.normalized_shape[0]
        d = C // self.heads
        g, beta = self.norm.weight, self.norm.bias
        wq, wk, wv = self.qkv.weight.chunk(3)
        bq, _, bv = self.qkv.bias.chunk(3)
        a_rows, a_bias, b_cols = [], [], []
        for h in range(self.heads):
            s = slice(h * d, (h + 1) * d)
            a_rows.append(g[:, None] * (wk[s].T @ wq[s]) * g[None, :] / d ** 0.5)
            a_bias.append(g * (wk[s].T @ (wq[s] @ beta + bq[s])) / d ** 0.5)
            b_cols.append(self.proj.weight[:, s] @ wv[s] * g[None, :])
        b = self.proj.weight @ (wv @ beta + bv) + self.proj.bias
        return torch.cat(a_rows).T.contiguous(), torch.cat(a_bias), torch.cat(b_cols, dim=1).T.contiguous(), b

    def _residual_folded(self, part: torch.Tensor, out: torch.Tensor, folded) -> None:
        """``out`` (B, T, n, C; may be ``part`` itself) = ``part`` plus the attention, with :meth:`_folded` weights. Written
        for the CPU's small shapes: the layer norm by hand (the library's is 2 x slower for 32
        channels), the scores key-major so the softmax runs across the frames' rows (2 x faster
        than along a last dimension of T)."""
        a_t, a, b_t, b = folded
        B, T, n, C = part.shape
        z = torch.empty(B, n, T, C, dtype=part.dtype)
        torch.sub(part.transpose(1, 2), part.mean(dim=-1, keepdim=True).transpose(1, 2), out=z)
        z.mul_(torch.linalg.vector_norm(z, dim=-1, keepdim=True).square_().div_(C).add_(self.norm.eps).rsqrt_())
        z = z.view(B * n, T, C)
        q = torch.addmm(a, z.view(-1, C), a_t).view(B * n, T * self.heads, C)  # one row per frame and head
        weights = torch.softmax(torch.bmm(z, q.transpose(1, 2)), dim=1)  # (B*n, key frame, query frame x head)
        y = torch.bmm(weights.transpose(1, 2), z)  # (B*n, T * heads, C)
        delta = torch.addmm(b, y.view(B * n * T, self.heads * C), b_t)
        torch.add(part, delta.view(B, n, T, C).transpose(1, 2), out=out)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (B*T, C, H, W)
        """Without autograd on CPU, ``x`` is updated in place, a band of rows at a time (each band reads
        only its own pixels): no full-size map is made, and ``x`` may be a cropped view (a tile's trim)."""
        BT, C, H, W = x.shape
        B, T = BT // frames, frames
        if torch.is_grad_enabled() or x.device.type != "cpu":  # a GPU takes it whole
            out = self._residual(x.permute(0, 2, 3, 1).reshape(B, T, H * W, C))  # a view of channels-last memory
            return out.reshape(BT, H, W, C).permute(0, 3, 1, 2)  # channels-last (B*T, C, H, W)
        folded = self._folded()
        rows = max(1, ATTENTION_CHUNK // W)
        for r in range(0, H, rows):
            band = x[:, :, r:r + rows]
            part = band.permute(0, 2, 3, 1).reshape(B, T, -1, C)  # a view, unless x is a cropped view
            self._residual_folded(part, part, folded)
            if part.data_ptr() != band.data_ptr():
                band.copy_(part.reshape(BT, -1, W, C).permute(0, 3, 1, 2))
        return x


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
        filt = torch.softmax(self.head(pooled.reshape(BT, C)), dim=-1).reshape(BT, 1, K, K)
        if torch.is_grad_enabled():
            weight = filt.repeat_interleave(C, dim=0)
            out = F.conv2d(F.pad(x.reshape(1, BT * C, H, W), (K // 2,) * 4, mode="replicate"), weight, groups=BT * C)
            return out.reshape(BT, C, H, W)
        out = torch.empty(BT, C, H, W, dtype=x.dtype, device=x.device)
        for f in range(0, BT, TERN_FRAMES):  # a few frames at a time: their padded copy, not the window's
            part = x[f:f + TERN_FRAMES]
            n = part.shape[0]
            padded = F.pad(part.reshape(1, n * C, H, W), (K // 2,) * 4, mode="replicate")
            out[f:f + n] = F.conv2d(padded, filt[f:f + n].repeat_interleave(C, dim=0), groups=n * C).view(n, C, H, W)
        return out


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


Sides = tuple[bool, bool, bool, bool]  # top, bottom, left, right


class _Trim:
    """Where one forward pass stands in dropping a tile's halo: along ``sides`` (those of the window
    that continue in the raster), every layer that reads ``px`` neighbours makes ``px`` more pixels
    inexact (:meth:`grow`), and calling the trim drops them from a map, so no later layer computes
    them. Over the network that is :meth:`PIUNet.receptive_radius` pixels: a 256-px tile's
    302-px window shrinks layer by layer instead of being computed whole, and only its exact core
    comes out. No sides: nothing is dropped (a whole raster, training, TTF)."""

    def __init__(self, sides: Sides | None = None):
        self.sides = tuple(bool(v) for v in sides) if sides is not None else (False,) * 4
        self.reach = self.cut = 0

    def grow(self, px: int) -> None:
        self.reach += px

    def crop(self, x: torch.Tensor, px: int, scale: int = 1) -> torch.Tensor:
        """``x`` (..., H, W) without ``px`` * ``scale`` pixels along the sides (a view)."""
        if px == 0 or not any(self.sides):
            return x
        top, bottom, left, right = (px * scale if side else 0 for side in self.sides)
        return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]

    def __call__(self, x: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """A map that has lost ``cut`` pixels, cut down to the ones still exact (``reach``): a view."""
        x, self.cut = self.crop(x, self.reach - self.cut, scale), self.reach
        return x

    def copy(self, x: torch.Tensor) -> torch.Tensor:
        """As calling it, but a cropped map comes back as a channels-last copy, holding no reference
        to the uncropped map (freed as soon as the caller rebinds its name)."""
        cropped = self(x)
        return cropped if cropped is x else cropped.contiguous(memory_format=torch.channels_last)


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
            self.start_at_base()

    def start_at_base(self) -> None:
        """Zero the output channel of the final convolution: the network then returns its global residual exactly
        (for ``residual="ibp"``, the IBP estimate), and only learnt corrections move it away."""
        with torch.no_grad():
            self.upsample[-1].weight[0].zero_()
            self.upsample[-1].bias[0].zero_()

    def receptive_radius(self) -> int:
        """LR pixels beyond which an input pixel cannot change an output pixel (the global
        pools aside): head, two convolutions per block, TERN filter, body, upsampler convolution,
        the HR convolution after the shuffle and the bilinear residual."""
        return 1 + 2 * self.config.blocks + self.config.tern_kernel // 2 + 1 + 1 + 1 + 1

    def _fuse(self, frames: torch.Tensor, pools: _Pools, trim: _Trim) -> torch.Tensor:
        B, T, h, w = frames.shape
        inputs = frames.reshape(B * T, 1, h, w).contiguous(memory_format=torch.channels_last)
        x = x0 = self.head(inputs)
        trim.grow(1)
        if not torch.is_grad_enabled():
            del x0  # recomputed below: a cheap 1-channel convolution instead of a full-size map held through the blocks
        for block in self.blocks:
            x = trim.copy(x)  # its own statement: the uncropped map is freed before the block runs
            x = block(x, T, pools)
            trim.grow(2)
        x = trim(x)
        if torch.is_grad_enabled():
            x = trim.crop(x0, trim.cut) + x
        else:  # the head again, on the inputs it needs
            x = x.add_(trim.crop(self.head(trim.crop(inputs, trim.cut - 1)), 1))
        x = self.tern(x, T, pools)
        trim.grow(self.config.tern_kernel // 2)
        x = trim(x)
        if pools.given is not None and len(pools.taken) != len(pools.given) - 1:  # the last is the decoder's
            raise ValueError("the context does not match this network (too many pools)")
        return x.reshape(B, T, *x.shape[1:]).mean(dim=1)  # permutation-invariant fusion

    def fuse(self, frames: torch.Tensor, context: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Per-frame trunk (features, TEFA blocks, registration) and the temporal mean:
        ``(B, T, h, w) -> (B, C, h, w)``. ``context``: global pools from :meth:`context`
        (None: pool over each input itself)."""
        return self._fuse(frames, _Pools(frames.shape[0], context), _Trim())

    def context(self, crops: torch.Tensor) -> list[torch.Tensor]:
        """Global pools of a raster, estimated on crops ``(N, T, h, w)`` of it (averaged over
        the crops layer by layer). Passing them to :meth:`forward` makes the output of any
        window of the raster independent of the window."""
        pools = _Pools(crops.shape[0], shared=True)
        trim = _Trim()
        self._upsample(self._fuse(crops, pools, trim), pools, trim)
        return [p.detach() for p in pools.taken]

    def _upsample(self, fused: torch.Tensor, pools: _Pools, trim: _Trim) -> torch.Tensor:
        """Body convolution and upsampler: ``(B, C, h, w) -> (B, 2, s*h, s*w)``, without the
        stride-``s`` pattern that is the same everywhere (see :func:`remove_phase_pattern`)."""
        s = self.config.scale
        lr_conv, shuffle, act, hr_conv = self.upsample
        x = lr_conv(fused + self.body_out(fused))
        trim.grow(2)
        x = trim.copy(x)
        x = shuffle(x)
        x = hr_conv(act(x) if torch.is_grad_enabled() else F.relu(x, inplace=True))
        trim.grow(1)  # one HR pixel, a whole LR pixel's worth of the cut
        return remove_phase_pattern(trim(x, s), s, pools)

    def decode(self, fused: torch.Tensor, frames: torch.Tensor, base: torch.Tensor | None = None,
               context: list[torch.Tensor] | None = None, trim: _Trim | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """After fusion: body convolution, upsampler and the global residual: the mean frame
        upsampled bilinearly, or ``base`` ``(B, s*h, s*w)`` (an IBP estimate, see
        :func:`residual_base`) for ``residual="ibp"``. ``context``: as for :meth:`forward` (its
        last pool is the decoder's); None computes the decoder's pool from ``fused`` itself."""
        trim = trim or _Trim()
        s = self.config.scale
        pools = _Pools(fused.shape[0], context[-1:] if context is not None else None)
        out = self._upsample(fused, pools, trim)
        trim.grow(1)  # the residual's bilinear upsampling
        out = trim(out, s)
        if self.config.residual == "ibp":
            if base is None:
                raise ValueError("this PIUNet adds to an IBP estimate: pass base (see residual_base)")
        else:
            base = F.interpolate(frames.mean(dim=1, keepdim=True), scale_factor=s, mode="bilinear",
                                 align_corners=False)[:, 0]
        base = trim.crop(base, trim.cut, s)
        return out[:, 0] + base.to(out.dtype), out[:, 1]

    def forward(self, frames: torch.Tensor, context: list[torch.Tensor] | None = None,
                base: torch.Tensor | None = None, inner: Sides | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``inner``: for a tile's window, its sides (top, bottom, left, right) that continue in the
        raster; the output then lacks :meth:`receptive_radius` LR pixels (times the scale) along
        them, the pixels the halo could not make exact, and no layer computes them."""
        trim = _Trim(inner)
        out = self.decode(self._fuse(frames, _Pools(frames.shape[0], context), trim), frames, base, context, trim)
        assert trim.reach == self.receptive_radius(), "a layer's reach is not counted"
        return out


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
    from ..classic.baselines import ibp

    with torch.no_grad():
        return ibp(frames.float(), valid, config.scale, shifts, iterations=config.ibp_iterations, frame_means=frame_means)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
