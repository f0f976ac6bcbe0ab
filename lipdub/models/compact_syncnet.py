"""lipdub's small lip-sync expert: SyncNet's contract in ~2 M parameters instead of 16 M.

Same input/output as :class:`lipdub.models.syncnet.SyncNet` (Wav2Lip's ``SyncNet_color``):
audio (B, 1, 80, 16) + faces (B, 15, 48, 96) -> (audio (B, 512), face (B, 512)), unit length and
non-negative (the last block ends in a ReLU), so the cosine similarity lies in [0, 1] and Wav2Lip's
BCE-on-cosine loss applies unchanged. Why a second expert: the full SyncNet needs hours of GPU and
far more data than the corpus holds; this one trains on a 2-core CPU in tens of minutes and its
smaller capacity over-fits the few speakers less.

What changes against SyncNet: the first face convolution already halves the width (stride (1, 2))
with a 5 x 5 kernel, where SyncNet spends most of its compute; every stage has one residual block
instead of two or three; the widths are about half.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lipdub.models.conv import Conv2d

EMBEDDING_SIZE = 512


def _res(channels: int) -> Conv2d:
    return Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, residual=True)


class CompactSyncNet(nn.Module):
    """audio (B, 1, 80, 16) + faces (B, 15, 48, 96) -> (audio (B, 512), face (B, 512)), unit norm."""

    def __init__(self):
        super().__init__()
        self.face_encoder = nn.Sequential(
            Conv2d(15, 32, kernel_size=5, stride=(1, 2), padding=2),  # 32 x 48 x 48
            _res(32),
            Conv2d(32, 64, kernel_size=3, stride=2, padding=1),  # 64 x 24 x 24
            _res(64),
            Conv2d(64, 128, kernel_size=3, stride=2, padding=1),  # 128 x 12 x 12
            _res(128),
            Conv2d(128, 192, kernel_size=3, stride=2, padding=1),  # 192 x 6 x 6
            _res(192),
            Conv2d(192, 256, kernel_size=3, stride=2, padding=1),  # 256 x 3 x 3
            Conv2d(256, 256, kernel_size=3, stride=1, padding=0),  # 256 x 1 x 1
            Conv2d(256, EMBEDDING_SIZE, kernel_size=1, stride=1, padding=0),  # 512 x 1 x 1
        )
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, kernel_size=3, stride=1, padding=1),  # 32 x 80 x 16
            Conv2d(32, 32, kernel_size=3, stride=(3, 1), padding=1),  # 32 x 27 x 16
            _res(32),
            Conv2d(32, 64, kernel_size=3, stride=3, padding=1),  # 64 x 9 x 6
            _res(64),
            Conv2d(64, 128, kernel_size=3, stride=(3, 2), padding=1),  # 128 x 3 x 3
            _res(128),
            Conv2d(128, 256, kernel_size=3, stride=1, padding=0),  # 256 x 1 x 1
            Conv2d(256, EMBEDDING_SIZE, kernel_size=1, stride=1, padding=0),  # 512 x 1 x 1
        )

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor):
        face = self.face_encoder(face_sequences).flatten(1)  # (B, 512)
        audio = self.audio_encoder(audio_sequences).flatten(1)  # (B, 512)
        return F.normalize(audio, p=2, dim=1), F.normalize(face, p=2, dim=1)
