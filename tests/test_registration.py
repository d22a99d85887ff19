"""Sub-pixel registration of real-image stacks with known shifts."""
import torch

from stacksr.core.registration import register_frames


def test_registration_recovers_known_subpixel_shifts_on_real_image(l8_stack):
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    est = register_frames(l8_stack.lr, valid, 0)
    assert est.shape == (9, 2)
    assert float((est - l8_stack.shifts).abs().max()) < 0.1


def test_registration_ignores_masked_pixels(l8_stack):
    lr = l8_stack.lr.clone()
    valid = torch.ones_like(lr, dtype=torch.bool)
    # a "cloud": bright, masked block in half of the frames
    lr[1::2, 10:30, 15:40] = 30000.0
    valid[1::2, 10:30, 15:40] = False
    est = register_frames(lr, valid, 0)
    assert float((est - l8_stack.shifts).abs().max()) < 0.15


def test_registration_handles_gain_and_offset_between_dates(l8_stack):
    lr = l8_stack.lr.clone()
    lr[3] = 1.3 * lr[3] + 500.0
    est = register_frames(lr, torch.ones_like(lr, dtype=torch.bool), 0)
    assert float((est[3] - l8_stack.shifts[3]).abs().max()) < 0.1
