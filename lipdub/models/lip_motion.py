"""The lip motion network: speech (log-mel windows) -> per-frame lower-face motion coefficients.

Two stages, as the data flow reads:

- ``window_encoder``: each video frame's mel window (80 bands x ``WINDOW_COLUMNS`` columns =
  0.6 s centred on the frame) through a small 1-D conv stack over time, pooled to one vector.
  Per-frame windows (instead of one conv over the whole spectrogram) make the network independent
  of the video's frame rate: 22, 25 and 30 fps clips train the same weights.
- ``temporal``: 1-D convs over the sequence of frame vectors (kernel 5, dilations 1 and 2: about
  +-0.5 s more context) so neighbouring frames agree, then a 1x1 conv to ``coefficients`` outputs
  (the PCA coefficients of `lipdub.motion.shape.MotionBasis`, in units of the speaker's
  articulation scale).

``causal=True`` pads the temporal convs on the left only, for streaming; the window itself then
should end at most 100 ms after the frame (the features module decides that, not this file).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

MEL_BANDS = 80
WINDOW_COLUMNS = 49  # 0.6 s at 80 mel columns per second


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2),
                         nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class TemporalBlock(nn.Module):
    """Residual dilated conv over frames; left-padded when causal."""

    def __init__(self, channels: int, kernel: int, dilation: int, causal: bool):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.causal = causal
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.causal:
            padded = F.pad(x, (self.pad, 0), mode="replicate")
        else:
            padded = F.pad(x, (self.pad // 2, self.pad - self.pad // 2), mode="replicate")
        return x + F.relu(self.norm(self.conv(padded)))


class LipMotionNet(nn.Module):
    """mel windows (B, T, 80, 49) -> motion coefficients (B, T, coefficients)."""

    def __init__(self, coefficients: int = 12, width: int = 128, causal: bool = False,
                 in_bands: int = MEL_BANDS, dropout: float = 0.1):
        super().__init__()
        self.coefficients = coefficients
        self.window_encoder = nn.Sequential(
            _conv(in_bands, 96, 3),  # 96 x 49
            _conv(96, width, 3, stride=2),  # w x 25
            _conv(width, width, 3, stride=2),  # w x 13
            _conv(width, width, 3, stride=2),  # w x 7
        )
        self.temporal = nn.Sequential(
            TemporalBlock(width, 5, 1, causal),
            TemporalBlock(width, 5, 2, causal),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv1d(width, coefficients, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, t = windows.shape[:2]
        frames = self.window_encoder(windows.reshape(b * t, *windows.shape[2:]))  # (B*T, w, 7)
        frames = frames.mean(dim=2).reshape(b, t, -1).transpose(1, 2)  # (B, w, T)
        hidden = self.temporal(frames)
        return self.head(self.dropout(hidden)).transpose(1, 2)  # (B, T, K)
