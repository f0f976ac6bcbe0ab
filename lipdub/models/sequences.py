"""Folding Wav2Lip's (B, C, T, H, W) time sequences into plain batches and back.

Wav2Lip's training feeds the generator 5-frame clips; every frame is processed independently, so a
clip is just T more images in the batch. Frames are stacked time-major (all of t=0, then t=1 ...),
as upstream does, so that ``unfold_time`` can split them back.
"""

from __future__ import annotations

import torch


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (T*B, C, H, W), time-major."""
    b, c, t, h, w = x.shape
    return x.permute(2, 0, 1, 3, 4).reshape(t * b, c, h, w)


def fold_audio_time(x: torch.Tensor) -> torch.Tensor:
    """(B, T, 1, 80, 16) -> (T*B, 1, 80, 16), time-major like :func:`fold_time`."""
    b, t = x.shape[:2]
    return x.transpose(0, 1).reshape(t * b, *x.shape[2:])


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(T*B, C, H, W) -> (B, C, T, H, W), the inverse of :func:`fold_time`."""
    tb, c, h, w = x.shape
    return x.reshape(tb // batch, batch, c, h, w).permute(1, 2, 0, 3, 4)


def lower_half(face_sequences: torch.Tensor) -> torch.Tensor:
    """(B, 3, [T,] H, W) -> (N, 3, H // 2 .. H, W): fold time, keep the mouth half (what the
    visual-quality discriminators judge: the half the generator paints)."""
    if face_sequences.dim() > 4:
        face_sequences = fold_time(face_sequences)
    return face_sequences[:, :, face_sequences.size(2) // 2 :]
