"""PIUNet architecture: size, any T, frame-order invariance, scales."""
import pytest
import torch

from stacksr.core.learned.piunet import PIUNet, PIUNetConfig, count_parameters


def test_published_configuration_has_about_083m_parameters():
    assert 0.78e6 < count_parameters(PIUNet(PIUNetConfig(scale=3))) < 0.88e6


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_invariant_to_frame_order_and_accepts_any_t(scale):
    torch.manual_seed(0)
    net = PIUNet(PIUNetConfig(scale=scale, features=12, blocks=2)).eval()
    x = torch.randn(2, 5, 10, 12)
    with torch.no_grad():
        sr, log_scale = net(x)
        sr_perm, _ = net(x[:, torch.tensor([3, 0, 4, 2, 1])])
        sr7, _ = net(torch.randn(1, 7, 10, 12))
    assert sr.shape == log_scale.shape == (2, 10 * scale, 12 * scale)
    assert torch.allclose(sr, sr_perm, atol=1e-5)
    assert sr7.shape == (1, 10 * scale, 12 * scale)


def test_untrained_network_starts_near_the_bilinear_mean():
    torch.manual_seed(0)
    net = PIUNet(PIUNetConfig(scale=3, features=12, blocks=2)).eval()
    x = torch.ones(1, 4, 8, 8) * 2.0
    with torch.no_grad():
        sr, _ = net(x)
    assert (sr - 2.0).abs().mean() < 0.5


def test_ibp_residual_network_adds_its_correction_to_the_given_ibp_estimate():
    from stacksr.core.classic.baselines import ibp
    from stacksr.core.learned.piunet import residual_base

    cfg = PIUNetConfig(scale=3, features=8, blocks=1, residual="ibp", ibp_iterations=5)
    net = PIUNet(cfg).eval()
    frames = torch.randn(4, 12, 12)
    valid = torch.ones_like(frames, dtype=torch.bool)
    shifts = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-0.4, 0.1], [0.2, 0.4]])
    base = residual_base(cfg, frames, valid, shifts)
    assert torch.allclose(base, ibp(frames, valid, 3, shifts, iterations=5))
    with torch.no_grad():
        sr, _ = net(frames[None], base=base[None])
        sr2, _ = net(frames[None], base=base[None] + 1.0)
    assert torch.equal(sr[0], base)  # untrained, it is exactly IBP: training only adds corrections
    assert torch.allclose(sr2 - sr, torch.ones_like(sr), atol=1e-5)
    with pytest.raises(ValueError, match="pass base"):
        net(frames[None])
    assert residual_base(PIUNetConfig(scale=3), frames, valid, shifts) is None


@pytest.mark.parametrize("layout,heads", [(torch.channels_last, 1), (torch.contiguous_format, 1), (torch.channels_last, 2)])
def test_inference_with_folded_attention_in_bands_and_in_place_equals_the_training_pass(layout, heads):
    """Without autograd the attention runs with folded weights, in bands of rows, in place, and the blocks
    update in place (less memory); the result is the one autograd's single out-of-place pass gives, for a
    batch of two stacks."""
    from stacksr.core.learned.piunet import ATTENTION_CHUNK

    torch.manual_seed(0)
    net = PIUNet(PIUNetConfig(scale=2, features=8, blocks=2, heads=heads)).eval().to(memory_format=layout)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    side = int(ATTENTION_CHUNK ** 0.5) + 5  # more pixels than one band, not a multiple of it
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        fast = net(x)
    slow = net(x)
    assert slow[0].requires_grad
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b.detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("inner", [(True, True, True, True), (False, True, True, False), (True, False, False, False)])
def test_a_window_with_inner_sides_gives_the_whole_pass_less_the_receptive_radius_along_them(inner):
    """A tile's window drops its halo layer by layer: the output is the untrimmed one without
    receptive_radius() LR px (times the scale) along the sides that continue in the raster."""
    torch.manual_seed(1)
    net = PIUNet(PIUNetConfig(scale=3, features=8, blocks=2)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(1, 4, 40, 36)
    context = net.context(x)
    cut = 3 * net.receptive_radius()
    top, bottom, left, right = (cut * side for side in inner)
    with torch.no_grad():
        whole = net(x, context)
        trimmed = net(x, context, None, inner)
    for a, b in zip(trimmed, whole):
        assert a.shape == (1, 120 - top - bottom, 108 - left - right)
        assert torch.allclose(a, b[:, top:120 - bottom, left:108 - right], atol=1e-5, rtol=0)
