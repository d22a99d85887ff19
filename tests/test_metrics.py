"""cPSNR (Proba-V), PSNR and SSIM."""
import math

import numpy as np
import pytest

from stacksr.core.metrics import cpsnr, default_data_range, psnr, ssim


@pytest.fixture()
def image():
    rng = np.random.default_rng(0)
    return rng.random((40, 40))


def test_cpsnr_ignores_brightness_bias(image):
    r = cpsnr(image + 0.1, image, data_range=1.0)
    assert r.cpsnr > 200 and abs(r.bias + 0.1) < 1e-9


def test_cpsnr_searches_shifts_up_to_max_shift(image):
    big = np.random.default_rng(1).random((50, 50))
    hr = big[5:45, 5:45]
    sr = big[7:47, 4:44]  # the SR content is offset by (2, -1) pixels
    r = cpsnr(sr, hr, max_shift=3)
    assert r.cpsnr > 200 and r.shift == (-2, 1)
    assert cpsnr(sr, hr, max_shift=1).cpsnr < 30


def test_cpsnr_matches_known_mse(image):
    noise = np.where(np.indices(image.shape).sum(0) % 2 == 0, 0.01, -0.01)
    r = cpsnr(image + noise, image, max_shift=0)
    assert math.isclose(r.cpsnr, 40.0, abs_tol=1e-3)


def test_cpsnr_only_counts_clear_pixels(image):
    sr = image.copy()
    sr[10:20, 10:20] += 0.5
    clear = np.ones_like(image, dtype=bool)
    clear[8:22, 8:22] = False
    assert cpsnr(sr, image, clear, max_shift=0).cpsnr > 200
    assert cpsnr(sr, image, max_shift=0).cpsnr < 30


def test_psnr_and_ssim_of_identical_images(image):
    assert psnr(image, image) > 200
    assert math.isclose(ssim(image, image), 1.0, abs_tol=1e-9)
    noise = np.random.default_rng(3).standard_normal(image.shape)
    assert 1.0 > ssim(image + 0.05 * noise, image) > ssim(image + 0.2 * noise, image)


def test_data_range_defaults_to_integer_type_range():
    assert default_data_range("uint16") == 65535
    assert default_data_range("int16") == 65535
    assert default_data_range("float32", np.array([0.2, 0.5])) == 0.5


def test_cpsnr_rejects_mismatched_sizes(image):
    with pytest.raises(ValueError, match="differs"):
        cpsnr(image[:-1], image)
