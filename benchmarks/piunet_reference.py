"""A plain, straightforward PIUNet implementation: the speed reference.

Written the obvious way (Conv3d [1,3,3] on (B, C, T, H, W), explicit softmax
attention, permutes back and forth), with the same parameters as core.piunet so
that the same weights can be loaded into both and the outputs compared.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from stacksr.core.learned.piunet import PIUNetConfig


class RefAttention(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x):  # (B, C, T, H, W)
        B, C, T, H, W = x.shape
        seq = x.permute(0, 3, 4, 2, 1).reshape(B * H * W, T, C)
        q, k, v = self.qkv(self.norm(seq)).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / C ** 0.5, dim=-1)
        out = self.proj(att @ v)
        return x + out.reshape(B, H, W, T, C).permute(0, 4, 3, 1, 2)


class RefSE(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        h = max(c // 4, 4)
        self.fc = nn.Sequential(nn.Linear(c, h), nn.ReLU(), nn.Linear(h, c), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(dim=(2, 3, 4)))[:, :, None, None, None]


class RefBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.attention = RefAttention(c)
        self.conv1 = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))
        self.conv2 = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))
        self.se = RefSE(c)

    def forward(self, x):
        x = self.attention(x)
        return x + self.se(self.conv2(F.relu(self.conv1(x))))


class RefTERN(nn.Module):
    def __init__(self, c: int, k: int):
        super().__init__()
        self.k = k
        self.conv = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))
        self.head = nn.Linear(c, k * k)

    def forward(self, x):
        B, C, T, H, W = x.shape
        filt = torch.softmax(self.head(F.relu(self.conv(x)).mean(dim=(3, 4)).transpose(1, 2)), dim=-1)
        out = torch.zeros_like(x)
        pad = F.pad(x.reshape(B, C * T, H, W), (self.k // 2,) * 4, mode="replicate").reshape(B, C, T, H + self.k - 1, W + self.k - 1)
        for i in range(self.k):  # explicit shifted sums
            for j in range(self.k):
                out = out + filt[:, :, i * self.k + j].reshape(B, 1, T, 1, 1) * pad[:, :, :, i:i + H, j:j + W]
        return out


class ReferencePIUNet(nn.Module):
    def __init__(self, config: PIUNetConfig):
        super().__init__()
        c, s = config.features, config.scale
        self.config = config
        self.head = nn.Conv3d(1, c, (1, 3, 3), padding=(0, 1, 1))
        self.blocks = nn.ModuleList([RefBlock(c) for _ in range(config.blocks)])
        self.tern = RefTERN(c, config.tern_kernel)
        self.body_out = nn.Conv2d(c, c, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(c, c * s * s, 3, padding=1), nn.PixelShuffle(s), nn.ReLU(),
                                      nn.Conv2d(c, 2, 3, padding=1))

    def forward(self, frames):
        s = self.config.scale
        x0 = self.head(frames[:, None])
        x = x0
        for b in self.blocks:
            x = b(x)
        x = self.tern(x0 + x).mean(dim=2)
        x = x + self.body_out(x)
        out = self.upsample(x)
        base = F.interpolate(frames.mean(dim=1, keepdim=True), scale_factor=s, mode="bilinear", align_corners=False)
        return out[:, 0] + base[:, 0], out[:, 1]

    def load_from(self, optimized: nn.Module) -> "ReferencePIUNet":
        """Copy the weights of a core.piunet.PIUNet (Conv2d frame convs become Conv3d [1,3,3])."""
        own = self.state_dict()
        for k, v in optimized.state_dict().items():
            own[k] = v[:, :, None] if own[k].dim() == 5 else v
        self.load_state_dict(own)
        return self
