"""The mouth's own frame: a square crop centred on the lips, level with the mouth corners, scaled
by the eye distance; the hole the interior network fills and the alpha it is composited with.

Why a normalised crop: the learned interior (`lipdub.render.learned_interior`) sees every mouth at
the same size and roll, whatever the face's size in the picture (a 224 px VoxCeleb crop or a
1080x1920 phone video), so a few thousand training mouths cover the variation that matters (shape,
teeth, light) rather than scale. Training (`lipdub.train.interior`) and inference build the crop,
the hole and the alpha with these same functions, so what the network learnt to fill is exactly
what it is asked to fill.

The hole is the inner-lip polygon dilated by a few pixels: the network then also repaints the
inner edge of the lips, which is where a piecewise-affine warp leaves its seams (a stretched or
squeezed lip edge). The composite alpha is 1 on the polygon and falls linearly to 0 across the
dilation band, and is exactly 0 outside the hole, so nothing else in the picture changes.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Side of the crop in eye units (outer eye corners one unit apart): a mouth is about 0.5 wide and
#: opens up to about 0.35, which leaves a margin of lips and skin around the widest opening.
CROP_SIDE_EYE_UNITS = 0.8
#: The hole is the inner-lip polygon grown by this many pixels of a 64 px crop (scaled with the crop).
HOLE_DILATION = 2.0


def mouth_crop_transform(outer: np.ndarray, eye_distance: float, size: int,
                         side: float = CROP_SIDE_EYE_UNITS) -> np.ndarray:
    """(2, 3) affine mapping frame pixels to crop pixels (a similarity: no shear).

    ``outer``: the 20 outer-lip points (`lipdub.eval.mouth.LIP_OUTER` order: point 0 is the
    subject's right mouth corner, point 10 the left one) in frame pixels. The crop's centre is the
    mean of the ring, its x axis runs from corner 0 to corner 10, and ``side`` eye units span
    ``size`` pixels.
    """
    outer = np.asarray(outer, np.float64)
    centre = outer.mean(axis=0)
    direction = outer[10] - outer[0]
    norm = float(np.hypot(*direction))
    cos, sin = (direction / norm) if norm > 1e-9 else (1.0, 0.0)
    scale = size / (side * max(float(eye_distance), 1e-6))
    rotation = scale * np.array([[cos, sin], [-sin, cos]])
    offset = np.array([size / 2.0, size / 2.0]) - rotation @ centre
    return np.concatenate([rotation, offset[:, None]], axis=1)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a (2, 3) affine."""
    points = np.asarray(points, np.float64)
    return points @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix, np.float64)[:, 2]


def crop_scale(matrix: np.ndarray) -> float:
    """Crop pixels per frame pixel of a similarity `mouth_crop_transform`."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))


def polygon_mask(ring: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 0/1: pixels whose centre lies inside the polygon ``ring`` (pixel coordinates)."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(ring, np.float64) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask


def hole_mask(ring: np.ndarray, shape: tuple[int, int], dilation: float) -> np.ndarray:
    """(h, w) uint8 0/1: the inner-lip polygon grown by ``dilation`` pixels (Euclidean)."""
    mask = polygon_mask(ring, shape)
    if dilation <= 0 or not mask.any():
        return mask
    distance = cv2.distanceTransform(1 - mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (distance <= dilation).astype(np.uint8)


def composite_alpha(ring: np.ndarray, shape: tuple[int, int], dilation: float) -> np.ndarray:
    """(h, w) float32: 1 on the polygon, falling linearly to 0 at ``dilation`` pixels outside it.

    Exactly 0 beyond the dilated hole (`hole_mask` with the same arguments is its support), so a
    composite with this alpha leaves every other pixel as it was.
    """
    mask = polygon_mask(ring, shape)
    if not mask.any():
        return np.zeros(shape, np.float32)
    if dilation <= 0:
        return mask.astype(np.float32)
    distance = cv2.distanceTransform(1 - mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    alpha = np.clip(1.0 - distance / (dilation + 1.0), 0.0, 1.0)
    alpha[distance > dilation] = 0.0
    return alpha.astype(np.float32)


def cut_mouth(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) the crop of ``image`` under ``matrix`` (bilinear, borders replicated).

    When the crop is much smaller than the mouth in the picture, the picture is first blurred so
    that bilinear sampling does not alias (the network never sees the stripes that would make).
    """
    matrix = np.asarray(matrix, np.float64)
    shrink = 1.0 / max(crop_scale(matrix), 1e-9)
    if shrink > 1.5:
        # Blur only the part of the picture the crop covers (a 1080p frame costs ~10 ms whole).
        inverse = cv2.invertAffineTransform(matrix)
        corners = transform_points(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
        margin = int(np.ceil(2 * shrink)) + 2
        h, w = image.shape[:2]
        x1, y1 = (max(0, int(np.floor(v)) - margin) for v in corners.min(axis=0))
        x2, y2 = min(w, int(np.ceil(corners[:, 0].max())) + margin), min(h, int(np.ceil(corners[:, 1].max())) + margin)
        if x2 > x1 and y2 > y1:
            image = cv2.GaussianBlur(np.ascontiguousarray(image[y1:y2, x1:x2]), (0, 0), 0.45 * shrink)
            matrix = matrix.copy()
            matrix[:, 2] += matrix[:, :2] @ np.array([x1, y1], np.float64)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


__all__ = ["CROP_SIDE_EYE_UNITS", "HOLE_DILATION", "composite_alpha", "crop_scale", "cut_mouth", "hole_mask",
           "mouth_crop_transform", "polygon_mask", "transform_points"]
