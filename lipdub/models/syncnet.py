"""The lip-sync expert (Wav2Lip's ``SyncNet_color``): does this mouth move with this audio?

It embeds five consecutive lower-half face crops (15 channels = 5 RGB/BGR frames, 48 x 96) and the
0.2 s mel window that covers them into the same 512-d unit sphere; the cosine of the two embeddings
is the sync score. It is frozen during generator training (the sync loss) and is also our
evaluation metric. Names match ``lipsync_expert.pth`` (16,449,183 elements).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lipdub.models.conv import Conv2d


def _res(channels: int) -> Conv2d:
    return Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, residual=True)


class SyncNet(nn.Module):
    """audio (B, 1, 80, 16) + faces (B, 15, 48, 96) -> (audio (B, 512), face (B, 512)), unit norm."""

    def __init__(self):
        super().__init__()
        self.face_encoder = nn.Sequential(
            Conv2d(15, 32, kernel_size=7, stride=1, padding=3),  # 32 x 48 x 96
            Conv2d(32, 64, kernel_size=5, stride=(1, 2), padding=1),  # 64 x 46 x 47
            _res(64),
            _res(64),
            Conv2d(64, 128, kernel_size=3, stride=2, padding=1),  # 128 x 23 x 24
            _res(128),
            _res(128),
            _res(128),
            Conv2d(128, 256, kernel_size=3, stride=2, padding=1),  # 256 x 12 x 12
            _res(256),
            _res(256),
            Conv2d(256, 512, kernel_size=3, stride=2, padding=1),  # 512 x 6 x 6
            _res(512),
            _res(512),
            Conv2d(512, 512, kernel_size=3, stride=2, padding=1),  # 512 x 3 x 3
            Conv2d(512, 512, kernel_size=3, stride=1, padding=0),  # 512 x 1 x 1
            Conv2d(512, 512, kernel_size=1, stride=1, padding=0),  # 512 x 1 x 1
        )
        self.audio_encoder = nn.Sequential(
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
            _res(256),
            Conv2d(256, 512, kernel_size=3, stride=1, padding=0),  # 512 x 1 x 1
            Conv2d(512, 512, kernel_size=1, stride=1, padding=0),  # 512 x 1 x 1
        )

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor):
        face = self.face_encoder(face_sequences).flatten(1)  # (B, 512)
        audio = self.audio_encoder(audio_sequences).flatten(1)  # (B, 512)
        return F.normalize(audio, p=2, dim=1), F.normalize(face, p=2, dim=1)
