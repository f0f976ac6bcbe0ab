"""lipdub's own generator: Wav2Lip's input/output contract in a network ~10x smaller and faster.

Same contract as :class:`lipdub.models.wav2lip.Wav2Lip`: audio (B, 1, 80, 16) + faces
(B, 6, 96, 96) [masked target, reference] -> (B, 3, 96, 96) in [0, 1], so the pipeline, the
training losses (SyncNet, discriminator) and the evaluation treat both alike.

What changes and why:
- The face path is a plain U-Net that stops at 6 x 6 instead of 1 x 1: the bottleneck keeps where
  things are, so the decoder does not have to re-invent the face layout from a single vector.
- The audio code (a Wav2Lip-style encoder, narrower) is broadcast over the 6 x 6 bottleneck and
  fused with the face features by a 1 x 1 convolution followed by residual blocks; the mouth shape
  is decided there and refined by the decoder.
- Upsampling is nearest-neighbour + 3 x 3 convolution (no transposed-conv checkerboard) and the
  widths are a fraction of Wav2Lip's; ``width`` scales every channel count.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lipdub.models.conv import Conv2d
from lipdub.models.sequences import fold_audio_time, fold_time, unfold_time

# Channels at 96 px for width 1.0. Every other width is a multiple of this base, so the first
# convolution's out-channels determine the whole layout (the registry reads width from them).
BASE_CHANNELS = 16


def channels_for(width: float) -> list[int]:
    """Channel counts at 96, 48, 24, 12 and 6 px for a width multiplier."""
    base = max(4, int(round(BASE_CHANNELS * width)))
    return [base, 2 * base, 4 * base, 8 * base, 16 * base]


def _res(channels: int) -> Conv2d:
    return Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, residual=True)


class _Up(nn.Module):
    """(B, cin, H, W) -> nearest 2x -> 3 x 3 conv block -> (B, cout, 2H, 2W)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _DecoderLevel(nn.Module):
    """Upsample, concatenate the encoder's skip of the same size, merge, refine."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.up = _Up(cin, cout)
        self.merge = Conv2d(cout + skip, cout, kernel_size=3, stride=1, padding=1)
        self.refine = _res(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, cout, 2H, 2W)
        return self.refine(self.merge(torch.cat((x, skip), dim=1)))


class CompactGenerator(nn.Module):
    """audio (B, 1, 80, 16) + faces (B, 6, 96, 96) -> (B, 3, 96, 96) in [0, 1].

    Like Wav2Lip, also accepts audio (B, T, 1, 80, 16) with faces (B, 6, T, 96, 96).
    ``width`` multiplies every channel count (1.0 = 4.65 M parameters; Wav2Lip has 36.3 M).
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.width = width
        c96, c48, c24, c12, c6 = channels_for(width)
        a = [c48, c24, c12, c6]  # audio widths follow the face widths: one number sets them all

        self.face_encoder = nn.ModuleList(
            [
                nn.Sequential(Conv2d(6, c96, kernel_size=7, stride=1, padding=3)),  # c96 x 96 x 96
                nn.Sequential(Conv2d(c96, c48, 3, 2, 1), _res(c48)),  # c48 x 48 x 48
                nn.Sequential(Conv2d(c48, c24, 3, 2, 1), _res(c24)),  # c24 x 24 x 24
                nn.Sequential(Conv2d(c24, c12, 3, 2, 1), _res(c12)),  # c12 x 12 x 12
                nn.Sequential(Conv2d(c12, c6, 3, 2, 1), _res(c6)),  # c6 x 6 x 6
            ]
        )

        self.audio_encoder = nn.Sequential(
            Conv2d(1, a[0], kernel_size=3, stride=1, padding=1),  # a0 x 80 x 16
            _res(a[0]),
            Conv2d(a[0], a[1], kernel_size=3, stride=(3, 1), padding=1),  # a1 x 27 x 16
            _res(a[1]),
            Conv2d(a[1], a[2], kernel_size=3, stride=3, padding=1),  # a2 x 9 x 6
            _res(a[2]),
            Conv2d(a[2], a[3], kernel_size=3, stride=(3, 2), padding=1),  # a3 x 3 x 3
            Conv2d(a[3], c6, kernel_size=3, stride=1, padding=0),  # c6 x 1 x 1
        )

        self.fusion = nn.Sequential(
            Conv2d(2 * c6, c6, kernel_size=1, stride=1, padding=0),  # c6 x 6 x 6
            _res(c6),
            _res(c6),
        )

        self.decoder = nn.ModuleList(
            [
                _DecoderLevel(c6, c12, c12),  # c12 x 12 x 12
                _DecoderLevel(c12, c24, c24),  # c24 x 24 x 24
                _DecoderLevel(c24, c48, c48),  # c48 x 48 x 48
                _DecoderLevel(c48, c96, c96),  # c96 x 96 x 96
            ]
        )

        self.output_block = nn.Sequential(
            nn.Conv2d(c96, 3, kernel_size=1, stride=1, padding=0),  # 3 x 96 x 96
            nn.Sigmoid(),
        )

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor) -> torch.Tensor:
        batch = audio_sequences.size(0)
        is_sequence = face_sequences.dim() > 4
        if is_sequence:
            audio_sequences = fold_audio_time(audio_sequences)  # (T*B, 1, 80, 16)
            face_sequences = fold_time(face_sequences)  # (T*B, 6, 96, 96)

        skips = []
        x = face_sequences
        for block in self.face_encoder:
            x = block(x)
            skips.append(x)  # 96, 48, 24, 12, 6 px
        x = skips.pop()  # (N, c6, 6, 6)

        audio = self.audio_encoder(audio_sequences)  # (N, c6, 1, 1)
        audio = audio.expand(-1, -1, x.size(2), x.size(3))  # (N, c6, 6, 6)
        x = self.fusion(torch.cat((x, audio), dim=1))  # (N, c6, 6, 6)

        for level in self.decoder:
            x = level(x, skips.pop())  # 12, 24, 48, 96 px

        out = self.output_block(x)  # (N, 3, 96, 96)
        return unfold_time(out, batch) if is_sequence else out
