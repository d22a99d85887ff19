"""Deep Image Prior generator: an encoder-decoder with skip connections fed fixed noise."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DIPConfig:
    depth: int = 5
    channels: int = 128
    skip_channels: int = 16
    input_channels: int = 8


def _block(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, padding=k // 2, padding_mode="reflect"), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]


class SkipNet(nn.Module):
    """U-Net-like DIP generator; output in (0, 1) through a sigmoid.

    Input and output sizes are equal; any size works (inputs are padded to a
    multiple of ``2**depth`` and the output is cropped back).
    """

    def __init__(self, config: DIPConfig = DIPConfig(), out_channels: int = 1):
        super().__init__()
        c, s = config.channels, config.skip_channels
        self.config = config
        self.down = nn.ModuleList()
        self.skip = nn.ModuleList()
        self.up = nn.ModuleList()
        cin = config.input_channels
        for _ in range(config.depth):
            self.skip.append(nn.Sequential(*_block(cin, s, 1)) if s > 0 else nn.Identity())
            self.down.append(nn.Sequential(*_block(cin, c, 3, 2), *_block(c, c, 3)))
            cin = c
        for _ in range(config.depth):
            self.up.append(nn.Sequential(nn.BatchNorm2d(c + s), *_block(c + s, c, 3), *_block(c, c, 1)))
        self.out = nn.Conv2d(c, out_channels, 1)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        H, W = noise.shape[-2:]
        m = 2 ** self.config.depth
        ph, pw = (-H) % m, (-W) % m
        x = F.pad(noise, (0, pw, 0, ph), mode="reflect") if (ph or pw) else noise
        skips = []
        for down, skip in zip(self.down, self.skip):
            skips.append(skip(x))
            x = down(x)
        for up, sk in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=sk.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, sk], dim=1) if self.config.skip_channels > 0 else x)
        return torch.sigmoid(self.out(x))[..., :H, :W]


def dip_noise(channels: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """The fixed DIP input: uniform noise scaled by 0.1."""
    return 0.1 * torch.rand(1, channels, height, width, generator=generator)
