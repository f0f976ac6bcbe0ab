"""Wav2Lip's visual-quality discriminator (``Wav2Lip_disc_qual``): does this mouth look real?

It only looks at the lower half of each 96 px face (3 x 48 x 96), where the generator paints, and
returns the probability that the crop is a real frame. ``perceptual_forward`` is the generator's
adversarial loss: binary cross-entropy of the discriminator's verdict on generated faces against
the label "real". Names match ``visual_quality_disc.pth`` (14,113,793 elements).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lipdub.models.conv import nonorm_Conv2d
from lipdub.models.sequences import lower_half


class VisualQualityDiscriminator(nn.Module):
    """faces (B, 3, H, W) or sequences (B, 3, T, H, W), in [0, 1] -> P(real) of shape (N, 1)."""

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(nonorm_Conv2d(3, 32, kernel_size=7, stride=1, padding=3)),  # 32 x 48 x 96
                nn.Sequential(
                    nonorm_Conv2d(32, 64, kernel_size=5, stride=(1, 2), padding=2),
                    nonorm_Conv2d(64, 64, kernel_size=5, stride=1, padding=2),
                ),  # 64 x 48 x 48
                nn.Sequential(
                    nonorm_Conv2d(64, 128, kernel_size=5, stride=2, padding=2),
                    nonorm_Conv2d(128, 128, kernel_size=5, stride=1, padding=2),
                ),  # 128 x 24 x 24
                nn.Sequential(
                    nonorm_Conv2d(128, 256, kernel_size=5, stride=2, padding=2),
                    nonorm_Conv2d(256, 256, kernel_size=5, stride=1, padding=2),
                ),  # 256 x 12 x 12
                nn.Sequential(
                    nonorm_Conv2d(256, 512, kernel_size=3, stride=2, padding=1),
                    nonorm_Conv2d(512, 512, kernel_size=3, stride=1, padding=1),
                ),  # 512 x 6 x 6
                nn.Sequential(
                    nonorm_Conv2d(512, 512, kernel_size=3, stride=2, padding=1),
                    nonorm_Conv2d(512, 512, kernel_size=3, stride=1, padding=1),
                ),  # 512 x 3 x 3
                nn.Sequential(
                    nonorm_Conv2d(512, 512, kernel_size=3, stride=1, padding=0),
                    nonorm_Conv2d(512, 512, kernel_size=1, stride=1, padding=0),
                ),  # 512 x 1 x 1
            ]
        )
        self.binary_pred = nn.Sequential(nn.Conv2d(512, 1, kernel_size=1, stride=1, padding=0), nn.Sigmoid())

    def forward(self, face_sequences: torch.Tensor) -> torch.Tensor:
        x = lower_half(face_sequences)  # (N, 3, 48, 96)
        for block in self.face_encoder_blocks:
            x = block(x)  # ... -> (N, 512, 1, 1)
        return self.binary_pred(x).view(len(x), -1)  # (N, 1)

    def perceptual_forward(self, fake_face_sequences: torch.Tensor) -> torch.Tensor:
        """The generator's GAN loss: BCE of the verdict on generated faces against "real"."""
        pred = self.forward(fake_face_sequences)
        return F.binary_cross_entropy(pred, torch.ones_like(pred))
