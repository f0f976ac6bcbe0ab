"""Wav2Lip's generator (Prajwal et al., 2020), layer for layer compatible with the public weights.

A face encoder reads the masked target frame stacked with a reference frame (6 channels, 96 px)
down to a 1x1 code, an audio encoder reads a 0.2 s mel window to a 512-d code, and a decoder grows
the audio code back to 96 px, concatenating the face encoder's feature map of the same size at
every level (a U-Net whose bottleneck is the audio). The module and parameter names are those of
``wav2lip.pth`` / ``wav2lip_gan.pth`` (36,320,837 elements): do not rename anything here.
"""

from __future__ import annotations

import torch
from torch import nn

from lipdub.models.conv import Conv2d, Conv2dTranspose
from lipdub.models.sequences import fold_audio_time, fold_time, unfold_time


def _res(channels: int) -> Conv2d:
    """A shape-preserving residual 3x3 block."""
    return Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, residual=True)


def _up(cin: int, cout: int) -> Conv2dTranspose:
    """A 2x upsampling transposed convolution (H -> 2H)."""
    return Conv2dTranspose(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1)


def audio_encoder_wav2lip() -> nn.Sequential:
    """(B, 1, 80, 16) mel window -> (B, 512, 1, 1)."""
    return nn.Sequential(
        Conv2d(1, 32, kernel_size=3, stride=1, padding=1),  # 32 x 80 x 16
        _res(32),
        _res(32),
        Conv2d(32, 64, kernel_size=3, stride=(3, 1), padding=1),  # 64 x 27 x 16
        _res(64),
        _res(64),
        Conv2d(64, 128, kernel_size=3, stride=3, padding=1),  # 128 x 9 x 6
        _res(128),
        _res(128),
        Conv2d(128, 256, kernel_size=3, stride=(3, 2), padding=1),  # 256 x 3 x 3
        _res(256),
        Conv2d(256, 512, kernel_size=3, stride=1, padding=0),  # 512 x 1 x 1
        Conv2d(512, 512, kernel_size=1, stride=1, padding=0),  # 512 x 1 x 1
    )


class Wav2Lip(nn.Module):
    """audio (B, 1, 80, 16) + faces (B, 6, 96, 96) -> (B, 3, 96, 96) in [0, 1].

    Also accepts Wav2Lip's training sequences: audio (B, T, 1, 80, 16) with faces
    (B, 6, T, 96, 96) -> (B, 3, T, 96, 96). Face channels are [masked target, reference], each in
    the channel order the weights were trained on (BGR for the public checkpoints), scaled to [0, 1].
    """

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(6, 16, kernel_size=7, stride=1, padding=3)),  # 16 x 96 x 96
                nn.Sequential(
                    Conv2d(16, 32, kernel_size=3, stride=2, padding=1), _res(32), _res(32)
                ),  # 32 x 48 x 48
                nn.Sequential(
                    Conv2d(32, 64, kernel_size=3, stride=2, padding=1), _res(64), _res(64), _res(64)
                ),  # 64 x 24 x 24
                nn.Sequential(
                    Conv2d(64, 128, kernel_size=3, stride=2, padding=1), _res(128), _res(128)
                ),  # 128 x 12 x 12
                nn.Sequential(
                    Conv2d(128, 256, kernel_size=3, stride=2, padding=1), _res(256), _res(256)
                ),  # 256 x 6 x 6
                nn.Sequential(
                    Conv2d(256, 512, kernel_size=3, stride=2, padding=1), _res(512)
                ),  # 512 x 3 x 3
                nn.Sequential(
                    Conv2d(512, 512, kernel_size=3, stride=1, padding=0),
                    Conv2d(512, 512, kernel_size=1, stride=1, padding=0),
                ),  # 512 x 1 x 1
            ]
        )

        self.audio_encoder = audio_encoder_wav2lip()

        # Block i's output is concatenated with face feature (6 - i), hence the input widths.
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(512, 512, kernel_size=1, stride=1, padding=0)),  # 512 x 1 x 1 (+512)
                nn.Sequential(
                    Conv2dTranspose(1024, 512, kernel_size=3, stride=1, padding=0), _res(512)
                ),  # 512 x 3 x 3 (+512)
                nn.Sequential(_up(1024, 512), _res(512), _res(512)),  # 512 x 6 x 6 (+256)
                nn.Sequential(_up(768, 384), _res(384), _res(384)),  # 384 x 12 x 12 (+128)
                nn.Sequential(_up(512, 256), _res(256), _res(256)),  # 256 x 24 x 24 (+64)
                nn.Sequential(_up(320, 128), _res(128), _res(128)),  # 128 x 48 x 48 (+32)
                nn.Sequential(_up(160, 64), _res(64), _res(64)),  # 64 x 96 x 96 (+16)
            ]
        )

        self.output_block = nn.Sequential(
            Conv2d(80, 32, kernel_size=3, stride=1, padding=1),  # 32 x 96 x 96
            nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0),  # 3 x 96 x 96
            nn.Sigmoid(),
        )

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor) -> torch.Tensor:
        batch = audio_sequences.size(0)
        is_sequence = face_sequences.dim() > 4
        if is_sequence:
            audio_sequences = fold_audio_time(audio_sequences)  # (T*B, 1, 80, 16)
            face_sequences = fold_time(face_sequences)  # (T*B, 6, 96, 96)

        x = self.audio_encoder(audio_sequences)  # (N, 512, 1, 1)

        skips = []
        feat = face_sequences
        for block in self.face_encoder_blocks:
            feat = block(feat)
            skips.append(feat)  # 96, 48, 24, 12, 6, 3, 1 px

        for block in self.face_decoder_blocks:
            x = block(x)
            x = torch.cat((x, skips.pop()), dim=1)  # smallest skip first

        out = self.output_block(x)  # (N, 3, 96, 96)
        return unfold_time(out, batch) if is_sequence else out
