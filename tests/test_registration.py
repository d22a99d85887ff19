"""Sub-pixel registration of real-image stacks with known shifts."""
import torch

from stacksr.core.classic.registration import register_frames


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


def test_registration_keeps_its_bound_when_part_of_the_land_changed_and_a_cloud_is_masked(l8_stack):
    from stacksr.core.classic.registration import register_stack

    lr = l8_stack.lr.clone()
    valid = torch.ones_like(lr, dtype=torch.bool)
    # a field that changed between dates: a quarter of frame 4 replaced by other (real) land
    lr[4, 5:30, 5:30] = l8_stack.lr[0, 30:55, 30:55].flip(0) * 1.4
    # and a masked cloud over frame 6
    lr[6, 30:50, 10:40] = 40000.0
    valid[6, 30:50, 10:40] = False
    reg = register_stack(lr, valid, 0)
    assert float((reg.shifts - l8_stack.shifts).abs().max()) < 0.1
    assert bool(reg.kept(0.9).all())


def test_a_frame_of_other_land_gets_a_low_quality(l8_stack):
    from stacksr.core.classic.registration import register_stack

    lr = l8_stack.lr.clone()
    lr[2] = l8_stack.lr[2].flip(1)  # another place altogether
    reg = register_stack(lr, torch.ones_like(lr, dtype=torch.bool), 0)
    assert float(reg.quality[2]) < 0.5 and float(reg.quality[[0, 1, 3]].min()) > 0.95
    assert reg.kept(0.9).tolist() == [True, True, False] + [True] * 6


def test_registration_holds_when_fields_changed_brightness_each_its_own_way(l8_stack):
    """Real dates change field by field (a mowed meadow, a greening crop): each 20-px block of frame 5
    gets its own gain (0.7 to 1.3) and offset (+-300 DN). The blockwise photometric model keeps the
    shift; one gain and bias for the whole frame (``block`` = the frame) is pulled along the blocks' edges."""
    from stacksr.core.classic.registration import refine_shifts, register_stack

    lr = l8_stack.lr.clone()
    g = torch.Generator().manual_seed(0)
    for r in range(0, 60, 20):
        for c in range(0, 60, 20):
            gain = 0.7 + 0.6 * float(torch.rand(1, generator=g))
            offset = 600.0 * float(torch.rand(1, generator=g) - 0.5)
            lr[5, r:r + 20, c:c + 20] = gain * lr[5, r:r + 20, c:c + 20] + offset
    valid = torch.ones_like(lr, dtype=torch.bool)
    blockwise = float((register_stack(lr, valid, 0).shifts[5] - l8_stack.shifts[5]).norm())
    f = lr.double()
    frame_wide, _ = refine_shifts(f[0], f, valid[0], valid, l8_stack.shifts.double().round(), block=60)
    assert blockwise < 0.05
    assert float((frame_wide[5] - l8_stack.shifts[5].double()).norm()) > 2 * blockwise
