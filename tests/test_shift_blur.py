"""IBP's operator as strided convolutions (core/shift_blur.py) and the slice path of shift_images: the same numbers
as the reference composition (shift_images, then blur_downsample), an exact adjoint, shifts' gradients kept."""
import pytest
import torch

from stacksr.core.degradation import operators
from stacksr.core.degradation.operators import blur_downsample, gaussian_kernels, shift_images
from stacksr.core.classic.shift_blur import ShiftBlur, margin_px


def _case(scale: int, T: int, batch: int | None, shifted: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    K = 4 * scale + 3
    kernels = gaussian_kernels(torch.rand(T, generator=g, dtype=torch.float64) * scale + 0.5,
                               torch.rand(T, generator=g, dtype=torch.float64) * scale + 0.5,
                               torch.rand(T, generator=g, dtype=torch.float64) * 3, K, scale)
    lead = () if batch is None else (batch,)
    shifts = (torch.rand(*lead, T, 2, generator=g, dtype=torch.float64) * 4 - 2) * scale if shifted else None
    return kernels, shifts


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("batch,shifted", [(None, True), (None, False), (3, True)])
def test_operator_equals_shift_then_blur_inside_and_its_adjoint_is_exact(scale, batch, shifted):
    T, h, w = 4, 17, 21
    kernels, shifts = _case(scale, T, batch, shifted)
    m = margin_px(kernels.shape[-1], shifts, scale)
    hp, wp = h + 2 * m, w + 2 * m
    op = ShiftBlur(kernels, scale, shifts, (hp, wp))
    lead = () if batch is None else (batch,)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*lead, hp * scale, wp * scale, generator=g, dtype=torch.float64)
    y = op.forward(x)
    assert y.shape == (*lead, T, hp, wp)
    for b in range(batch or 1):
        xb, yb = (x, y) if batch is None else (x[b], y[b])
        stack = xb.expand(T, -1, -1)
        if shifts is not None:
            stack = shift_images(stack, shifts if batch is None else shifts[b])
        reference = blur_downsample(stack, kernels, scale)
        torch.testing.assert_close(yb[:, m:m + h, m:m + w], reference[:, m:m + h, m:m + w], rtol=0, atol=1e-12)
    v = torch.randn(*lead, T, hp, wp, generator=g, dtype=torch.float64)
    back = op.adjoint(v, tuple(x.shape[-2:]))
    assert abs(float((y * v).sum() - (x * back).sum())) < 1e-9 * float(y.abs().sum())


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "bicubic-magnitude"])
def test_shift_of_a_few_large_images_takes_the_slice_path_with_the_gather_paths_numbers(mode, monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 80, 90, generator=g)
    d = (torch.rand(5, 2, generator=g) * 8 - 4).requires_grad_(True)
    fast = shift_images(x, d, mode)
    grad_fast = torch.autograd.grad(fast.square().sum(), d)[0]
    monkeypatch.setattr(operators, "FEW_IMAGES", 0)  # force the per-pixel gather
    slow = shift_images(x, d, mode)
    grad_slow = torch.autograd.grad(slow.square().sum(), d)[0]
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-4)
    torch.testing.assert_close(grad_fast, grad_slow, rtol=1e-3, atol=1e-3)
