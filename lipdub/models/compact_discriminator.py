"""lipdub's small visual-quality discriminator: Wav2Lip's contract at a twentieth of the size.

Same input/output as :class:`lipdub.models.discriminator.VisualQualityDiscriminator`: faces
(B, 3, [T,] 96, 96) in [0, 1] -> P(real) (N, 1), judged on the lower (mouth) half only. Why a second
one: Wav2Lip's 14 M-parameter discriminator more than doubles a generator step on a 2-core CPU, and
with minutes of data a large discriminator memorises the training mouths within a few hundred
steps. This one is a PatchGAN-style stack (each output cell sees a ~30 px patch, the scale of lips
and teeth, which is where the blur is) whose patch verdicts are averaged into one probability.
"""

from __future__ import annotations

import torch
from torch import nn

from lipdub.models.conv import nonorm_Conv2d
from lipdub.models.sequences import lower_half


class CompactDiscriminator(nn.Module):
    """faces (B, 3, H, W) or sequences (B, 3, T, H, W), in [0, 1] -> P(real) of shape (N, 1)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(nonorm_Conv2d(3, w, kernel_size=4, stride=2, padding=1)),  # w x 24 x 48
                nn.Sequential(nonorm_Conv2d(w, 2 * w, kernel_size=4, stride=2, padding=1)),  # 2w x 12 x 24
                nn.Sequential(nonorm_Conv2d(2 * w, 4 * w, kernel_size=4, stride=2, padding=1)),  # 4w x 6 x 12
                nn.Sequential(nonorm_Conv2d(4 * w, 8 * w, kernel_size=3, stride=1, padding=1)),  # 8w x 6 x 12
            ]
        )
        self.patch_logits = nn.Conv2d(8 * w, 1, kernel_size=3, stride=1, padding=1)  # 1 x 6 x 12

    def forward(self, face_sequences: torch.Tensor) -> torch.Tensor:
        x = lower_half(face_sequences) * 2.0 - 1.0  # centred input: no batch norm to do it
        for block in self.face_encoder_blocks:
            x = block(x)
        logits = self.patch_logits(x).mean(dim=(1, 2, 3))  # one verdict per face
        return torch.sigmoid(logits).view(-1, 1)
