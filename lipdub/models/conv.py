"""The building blocks every network here is a list of (Wav2Lip's ``models/conv.py``).

Each block keeps its layers in a ``conv_block`` ``nn.Sequential`` so that the state-dict names are
``...conv_block.0.weight`` (the convolution) and ``...conv_block.1.*`` (the batch norm), exactly as
in the public Wav2Lip checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


class Conv2d(nn.Module):
    """Convolution + batch norm + ReLU; ``residual=True`` adds the input before the ReLU.

    A residual block must keep the shape (cin == cout, stride 1, "same" padding).
    """

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, padding),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class nonorm_Conv2d(nn.Module):  # noqa: N801 - the upstream name, kept so readers can map the code
    """Convolution + LeakyReLU(0.01), no normalisation: the visual-quality discriminator's block."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


class Conv2dTranspose(nn.Module):
    """Transposed convolution + batch norm + ReLU: the decoder's upsampling step."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))
