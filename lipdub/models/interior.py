"""`InteriorNet`: paint the inside of an open mouth (teeth, tongue, cavity) into a mouth crop.

Input: a `lipdub.render.mouth_frame` crop (the mouth level and centred, eye distance fixed) with
the hole to fill blanked, and the hole as a fourth channel. Output: the crop's RGB; only the hole
is used (`InteriorNet.fill` composites it back). A small U-Net: the lips and skin around the hole
say where the teeth should sit and what light and colour the mouth has, the bottleneck sees the
whole mouth at once, and the skips keep the lip edges where they are.

Shapes (batch B, crop side S = 64):

    x (B, 4, S, S) ─ enc1 (B, c1, S, S) ─ enc2 (B, c2, S/2) ─ enc3 (B, c3, S/4) ─ enc4 (B, c4, S/8)
                                                                      2 dilated residual blocks
    dec3 = up(enc4) ++ enc3 -> (B, c3, S/4) ; dec2 = up ++ enc2 -> (B, c2, S/2)
    dec1 = up ++ enc1 -> (B, c1, S) -> 1x1 conv -> sigmoid (B, 3, S, S) in [0, 1]

About 0.42 M parameters at the default widths (16, 32, 64, 96): 0.8 MiB in float16.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution + LeakyReLU (no normalisation: one crop at a time at inference)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
                         nn.LeakyReLU(0.1, inplace=True))


class Residual(nn.Module):
    """x + conv(conv(x)), dilated: widens the bottleneck's view without more downsampling."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, dilation=dilation),
                                  nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.1)


class InteriorNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 96)):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.widths = tuple(widths)
        self.enc1 = nn.Sequential(conv(4, c1), conv(c1, c1))
        self.enc2 = nn.Sequential(conv(c1, c2, stride=2), conv(c2, c2))
        self.enc3 = nn.Sequential(conv(c2, c3, stride=2), conv(c3, c3))
        self.enc4 = nn.Sequential(conv(c3, c4, stride=2), Residual(c4, 1), Residual(c4, 1))
        self.dec3 = nn.Sequential(conv(c4 + c3, c3), conv(c3, c3))
        self.dec2 = nn.Sequential(conv(c3 + c2, c2), conv(c2, c2))
        self.dec1 = conv(c2 + c1, c1)
        self.out = nn.Conv2d(c1, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 4, S, S) = masked RGB in [-0.5, 0.5] (0 in the hole) + hole mask {0, 1}; S % 8 == 0."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([F.interpolate(e4, scale_factor=2.0, mode="nearest"), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1))
        return torch.sigmoid(self.out(d1))

    @staticmethod
    def inputs(rgb: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The network's input from crops ``rgb`` (B, 3, S, S) in [0, 1] and ``hole`` (B, 1, S, S)."""
        return torch.cat([(rgb - 0.5) * (1.0 - hole), hole], 1)

    def fill(self, rgb: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1]: ``rgb`` with its hole painted, everything else untouched."""
        painted = self(self.inputs(rgb, hole))
        return rgb * (1.0 - hole) + painted * hole


__all__ = ["InteriorNet"]
