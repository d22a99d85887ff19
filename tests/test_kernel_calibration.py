"""Calibration of blind kernel estimates: the common blur set by the prior, the rest kept."""
import math

import torch

from stacksr.core.classic.baselines import DEFAULT_PSF_SIGMA_FRACTION, default_psf
from stacksr.core.degradation.operators import gaussian_kernels, sigma_range
from stacksr.core.io.kernel_bank import fit_gaussian
from stacksr.core.estimation.kernel_calibration import calibrate_kernels, kernel_covariances


def _bank(sigmas):
    s1, s2, th = (torch.tensor(v, dtype=torch.float64) for v in zip(*sigmas))
    return gaussian_kernels(s1, s2, th, 15, 3)


def test_bank_sharpened_by_a_common_blur_comes_back_whole():
    # mean sigma 1.65 = the default PSF's, so the prior's anchor is the truth's
    truth = [(2.0, 1.3, 0.4), (1.8, 1.5, 2.0), (1.9, 1.2, 1.0), (1.7, 1.8, 0.0)]
    assert abs(sum(s1 + s2 for s1, s2, _ in truth) / 8 - DEFAULT_PSF_SIGMA_FRACTION * 3) < 1e-9
    sharp = [(math.sqrt(s1 ** 2 - 0.9), math.sqrt(s2 ** 2 - 0.9), th) for s1, s2, th in truth]
    out = calibrate_kernels(_bank(sharp), 3)
    want = _bank(truth)
    err = (out - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)
    assert float(err.max()) < 0.03, err
    for k, (s1, s2, th) in zip(out, truth):
        f = fit_gaussian(k, 3)
        assert abs(f.dx) < 1e-6 and abs(f.dy) < 1e-6  # centred
        if abs(s1 - s2) > 0.2:
            d = abs(f.theta - th) % math.pi
            assert min(d, math.pi - d) < 0.02  # orientation kept


def test_isotropic_kernel_of_any_width_calibrates_to_the_default_psf():
    for sigma in (0.6, 1.65, 3.0):
        out = calibrate_kernels(_bank([(sigma, sigma, 0.0)]).float(), 3)
        assert out.dtype == torch.float32
        assert torch.allclose(out[0], default_psf(3), atol=2e-3)


def test_calibrated_sigmas_stay_inside_the_plausible_range():
    lo, hi = sigma_range(3)
    out = calibrate_kernels(_bank([(4.0, 0.5, 0.3), (0.4, 0.4, 0.0), (1.6, 1.5, 1.0)]), 3)
    sig = torch.linalg.eigvalsh(torch.from_numpy(kernel_covariances(out, 3))).sqrt()
    # moments of kernels truncated at 15 x 15 px read a little under the rendered sigma
    assert float(sig.min()) > lo - 0.02 and float(sig.max()) < hi + 0.02, sig
    assert torch.allclose(out.sum(dim=(1, 2)), torch.ones(3, dtype=out.dtype))
