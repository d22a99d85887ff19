"""The degradation operator and its sub-pixel alignment convention."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from stacksr.core.convention import check_scale, default_kernel_size, kernel_center_offset
from stacksr.core.degradation.operators import blur_downsample, degrade, gaussian_kernels, shift_images, upsample_bicubic


def _centroid(k: torch.Tensor) -> tuple[float, float]:
    idx = torch.arange(k.shape[-1], dtype=torch.float64)
    k = k.double()
    return float((k.sum(1) * idx).sum()), float((k.sum(0) * idx).sum())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kernels_are_normalized_and_centred_per_convention(scale):
    size = default_kernel_size(scale)
    k = gaussian_kernels(1.1 * scale / 2, 0.6 * scale / 2, 0.7, size, scale)
    assert k.shape == (size, size)
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-6)
    r = size // 2 + kernel_center_offset(scale)
    cy, cx = _centroid(k)
    assert abs(cy - r) < 1e-3 and abs(cx - r) < 1e-3


def test_kernel_angle_orients_the_long_axis():
    wide_cols = gaussian_kernels(2.0, 0.7, 0.0, 15, 3)
    wide_rows = gaussian_kernels(2.0, 0.7, math.pi / 2, 15, 3)
    var = lambda k, dim: float((k.sum(dim) * (torch.arange(15) - 7.0) ** 2).sum())
    assert var(wide_cols, 0) > 3 * var(wide_cols, 1)  # spread along columns (x)
    assert var(wide_rows, 1) > 3 * var(wide_rows, 0)  # spread along rows (y)
    batch = gaussian_kernels(torch.tensor([2.0, 2.0]), torch.tensor([0.7, 0.7]), torch.tensor([0.0, math.pi / 2]), 15, 3)
    assert torch.allclose(batch[0], wide_cols) and torch.allclose(batch[1], wide_rows)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_linear_ramp_lands_on_lr_pixel_centres(scale):
    H = 20 * scale
    ramp = torch.arange(H, dtype=torch.float64)[None, :].expand(H, H).clone()
    k = gaussian_kernels(0.5 * scale, 0.4 * scale, 0.3, default_kernel_size(scale), scale).double()
    y = blur_downsample(ramp[None], k, scale)[0]
    centres = torch.tensor([scale * j + (scale - 1) / 2 for j in range(20)], dtype=torch.float64)
    interior = slice(3, 17)  # away from the padded borders
    assert torch.allclose(y[5, interior], centres[interior], atol=1e-6)
    up = upsample_bicubic(y[None], scale)[0]
    assert torch.allclose(up[10, 4 * scale:16 * scale], ramp[0, 4 * scale:16 * scale], atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shifted_delta_lands_where_the_convention_says(scale):
    size = default_kernel_size(scale)
    k = gaussian_kernels(0.45 * scale, 0.7 * scale, 1.0, size, scale)
    r, o = size // 2, (scale - 1) // 2
    H = 16 * scale
    for q in [(8 * scale + o, 8 * scale + o), (8 * scale + o + 1, 7 * scale)]:
        x = torch.zeros(H, H)
        x[q] = 1.0
        y = blur_downsample(x[None], k, scale)[0]
        for i in range(5, 11):
            for j in range(5, 11):
                u, v = q[0] - scale * i - o + r, q[1] - scale * j - o + r
                want = float(k[u, v]) if 0 <= u < size and 0 <= v < size else 0.0
                assert abs(float(y[i, j]) - want) < 1e-6


def test_centred_delta_peaks_in_its_lr_pixel_for_odd_scale():
    k = gaussian_kernels(1.2, 1.2, 0.0, 15, 3)
    x = torch.zeros(60, 60)
    x[3 * 9 + 1, 3 * 11 + 1] = 1.0  # centre of LR pixel (9, 11)
    y = blur_downsample(x[None], k, 3)[0]
    assert divmod(int(y.argmax()), 20) == (9, 11)


def test_shift_moves_content_by_plus_d():
    x = torch.zeros(1, 20, 20)
    x[0, 5, 7] = 1.0
    y = shift_images(x, torch.tensor([[2.0, -3.0]]))
    assert divmod(int(y.argmax()), 20) == (7, 4)
    ramp = torch.arange(30, dtype=torch.float64)[None, None, :].expand(1, 30, 30).clone()
    z = shift_images(ramp, torch.tensor([[0.0, 0.4]], dtype=torch.float64))
    assert torch.allclose(z[0, 10, 5:25], ramp[0, 10, 5:25] - 0.4, atol=1e-9)


def test_per_frame_kernels_match_individual_blurs():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 30, 30, generator=g)
    ks = gaussian_kernels(torch.tensor([0.8, 1.5, 2.0]), torch.tensor([0.8, 0.9, 1.2]), torch.tensor([0.0, 0.5, 2.0]), 15, 3)
    y = blur_downsample(x, ks, 3)
    for t in range(3):
        assert torch.allclose(y[t], blur_downsample(x[t], ks[t], 3), atol=1e-6)


def test_integer_frame_shift_equals_shifted_reference():
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(60, 60, generator=g)
    k = gaussian_kernels(1.0, 1.0, 0.0, 15, 3)
    lr = degrade(hr, torch.stack([k, k]), 3, torch.tensor([[0.0, 0.0], [1.0, -2.0]]))
    # frame 1 is frame 0 moved by (+1, -2) LR pixels: frame1[i, j] = frame0[i - 1, j + 2]
    assert torch.allclose(lr[1, 5:15, 3:13], lr[0, 4:14, 5:15], atol=1e-5)


def test_unsupported_scale_is_rejected():
    with pytest.raises(ValueError, match="scale must be one of"):
        check_scale(5)


# ---- properties (hypothesis): random sizes, scales, kernels -------------------------------------

_sizes = st.integers(1, 12)
_scales = st.sampled_from([2, 3, 4])


@settings(max_examples=40, deadline=None)
@given(scale=_scales, h=_sizes, w=_sizes, s1=st.floats(0.3, 4.0), s2=st.floats(0.3, 4.0), theta=st.floats(0, 3.2),
       seed=st.integers(0, 2 ** 16), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_degradation_is_linear_preserves_constants_and_maps_to_the_lr_grid(scale, h, w, s1, s2, theta, seed, a, b):
    g = torch.Generator().manual_seed(seed)
    k = gaussian_kernels(s1, s2, theta, default_kernel_size(scale), scale)
    x, y = torch.randn(2, h * scale, w * scale, generator=g, dtype=torch.float64)
    out = blur_downsample(torch.stack([x, y, a * x + b * y]), k.double(), scale)
    assert out.shape == (3, h, w)
    assert torch.allclose(out[2], a * out[0] + b * out[1], atol=1e-9)
    const = blur_downsample(torch.full((h * scale, w * scale), 7.5, dtype=torch.float64), k.double(), scale)
    assert torch.allclose(const, torch.full_like(const, 7.5), atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(scale=_scales, h=st.integers(14, 20), w=st.integers(14, 20), dy=st.integers(-2, 2), dx=st.integers(-2, 2),
       seed=st.integers(0, 2 ** 16))
def test_degradation_commutes_with_whole_lr_pixel_shifts_away_from_the_border(scale, h, w, dy, dx, seed):
    g = torch.Generator().manual_seed(seed)
    k = gaussian_kernels(1.5, 0.9, 0.4, default_kernel_size(scale), scale).double()
    x = torch.randn(h * scale, w * scale, generator=g, dtype=torch.float64)
    moved = torch.roll(x, (dy * scale, dx * scale), dims=(0, 1))
    a, b = blur_downsample(x, k, scale), torch.roll(blur_downsample(moved, k, scale), (-dy, -dx), dims=(0, 1))
    m = 2 + math.ceil(k.shape[-1] / 2 / scale)  # LR pixels the border padding and the roll can reach
    assert torch.allclose(a[m:h - m, m:w - m], b[m:h - m, m:w - m], atol=1e-9)


def test_entry_points_name_the_argument_of_a_wrong_shape():
    import pytest

    from stacksr.core.classic.baselines import ibp
    from stacksr.core.degradation.operators import blur_downsample

    with pytest.raises(ValueError, match=r"kernel must be \(\.\.\., K, K\), got shape \(15,\)"):
        blur_downsample(torch.zeros(30, 30), torch.zeros(15), 3)
    with pytest.raises(ValueError, match=r"valid must have the shape of frames \(3, 8, 8\), got \(3, 8, 9\)"):
        ibp(torch.zeros(3, 8, 8), torch.ones(3, 8, 9, dtype=torch.bool), 3)
