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

``pool`` says how a window's encoded columns become the frame's vector. ``"mean"`` (every model
before stop 19) averages them, which forgets *where* in the 0.6 s a sound was: a plosive 0.2 s
before the frame and one at the frame give the same vector, although only the second shapes this
frame's mouth. ``"flatten"`` keeps the columns in order and mixes them with a linear layer, so the
network can weigh the frame's own moment more than the window's edges.
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


POOLS = ("mean", "flatten")


class LipMotionNet(nn.Module):
    """mel windows (B, T, 80, 49) -> motion coefficients (B, T, coefficients).

    ``window`` (columns per frame window) is needed only by ``pool="flatten"``, whose linear layer
    reads every encoded column; ``"mean"`` takes any window length.
    """

    def __init__(self, coefficients: int = 12, width: int = 128, causal: bool = False,
                 in_bands: int = MEL_BANDS, dropout: float = 0.1, pool: str = "mean",
                 window: int = WINDOW_COLUMNS):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, not {pool!r}")
        self.coefficients = coefficients
        self.pool = pool
        self.window_encoder = nn.Sequential(
            _conv(in_bands, 96, 3),  # 96 x 49
            _conv(96, width, 3, stride=2),  # w x 25
            _conv(width, width, 3, stride=2),  # w x 13
            _conv(width, width, 3, stride=2),  # w x 7
        )
        if pool == "flatten":
            columns = encoded_columns(window)
            self.pool_mix = nn.Sequential(nn.Linear(width * columns, width), nn.ReLU(inplace=True))
        self.temporal = nn.Sequential(
            TemporalBlock(width, 5, 1, causal),
            TemporalBlock(width, 5, 2, causal),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv1d(width, coefficients, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, t = windows.shape[:2]
        frames = self.window_encoder(windows.reshape(b * t, *windows.shape[2:]))  # (B*T, w, 7)
        if self.pool == "flatten":
            frames = self.pool_mix(frames.flatten(1))  # (B*T, w)
        else:
            frames = frames.mean(dim=2)
        frames = frames.reshape(b, t, -1).transpose(1, 2)  # (B, w, T)
        hidden = self.temporal(frames)
        return self.head(self.dropout(hidden)).transpose(1, 2)  # (B, T, K)


def encoded_columns(window: int) -> int:
    """Columns left of a ``window``-column input after the window encoder's three stride-2 convs
    (kernel 3, padding 1): 49 -> 7 (mel), 31 -> 4 (Whisper states)."""
    for _ in range(3):
        window = (window - 1) // 2 + 1
    return window
