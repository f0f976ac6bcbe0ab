"""Square face crops for the generator, with the affine transform that undoes them.

The crop follows Wav2Lip's framing (the detector box plus `pads`, default 10 px more chin) but
is made square around the padded box, so the generator sees an undistorted face, and may reach
past the frame (border replicated) instead of being cut at the frame edge, so a face near the
edge keeps the same scale and position in the crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceCrop:
    image: np.ndarray  # (S, S, 3) uint8 RGB
    matrix: np.ndarray  # (2, 3) float64 affine, frame pixel centres -> crop pixel centres
    size: int


def crop_region(face_box: np.ndarray, frame_shape: tuple[int, int],
                pads: tuple[int, int, int, int] = (0, 10, 0, 0)) -> np.ndarray:
    """Square (x1, y1, x2, y2) around the padded face box, in whole pixels.

    pads are Wav2Lip's order: top, bottom, left, right (pixels added outward). As in Wav2Lip the
    padded box is first clipped to the frame (`frame_shape` = height, width), then the square of
    side max(width, height) is centred on it; that square may extend past the frame.
    """
    height, width = frame_shape[:2]
    top, bottom, left, right = pads
    x1, y1, x2, y2 = (float(v) for v in face_box)
    x1, x2 = max(0.0, x1 - left), min(float(width), x2 + right)
    y1, y2 = max(0.0, y1 - top), min(float(height), y2 + bottom)
    side = max(1, int(round(max(x2 - x1, y2 - y1))))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    sx, sy = int(round(cx - side / 2)), int(round(cy - side / 2))
    return np.array([sx, sy, sx + side, sy + side], np.float32)


def crop_matrix(region: np.ndarray, size: int) -> np.ndarray:
    """Affine frame -> crop for resizing `region` to size x size, pixel-centre convention.

    Matches cv2.resize: crop pixel u samples frame x = x1 + (u + 0.5) * w / size - 0.5.
    """
    x1, y1, x2, y2 = (float(v) for v in region)
    sx, sy = size / (x2 - x1), size / (y2 - y1)
    return np.array([[sx, 0.0, (0.5 - x1) * sx - 0.5], [0.0, sy, (0.5 - y1) * sy - 0.5]])


def extract_crop(image: np.ndarray, region: np.ndarray, size: int) -> FaceCrop:
    """Cut `region` (snapped to whole pixels, border replicated outside the frame), resize to size."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in region)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    ax1, ay1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
    ax2, ay2 = max(min(x2, w), ax1 + 1), max(min(y2, h), ay1 + 1)
    window = image[ay1:ay2, ax1:ax2]
    pad = (ay1 - y1, y2 - ay2, ax1 - x1, x2 - ax2)
    if any(p > 0 for p in pad):
        window = cv2.copyMakeBorder(window, *(max(0, p) for p in pad), cv2.BORDER_REPLICATE)
    if window.shape[:2] != (y2 - y1, x2 - x1):  # region entirely outside: replicate the edge
        window = cv2.resize(window, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    shrinking = (x2 - x1) > size
    resized = cv2.resize(window, (size, size),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    matrix = crop_matrix(np.array([x1, y1, x2, y2], np.float64), size)
    return FaceCrop(np.ascontiguousarray(resized), matrix, size)
