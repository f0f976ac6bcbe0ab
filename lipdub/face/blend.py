"""Paste the generated lower face back into the frame without a visible seam.

The reference Wav2Lip pastes the whole generated rectangle back, which leaves a box edge and a
colour step around the face. Here the region that is replaced is the part of the face below the
nose, outlined by Face Mesh's jaw line, with a soft edge; the generated patch is first given the
frame's colour statistics inside that region; and every pixel outside the mask is left exactly
as decoded.
"""

from __future__ import annotations

import cv2
import numpy as np

from lipdub.face.align import FaceCrop

# Face Mesh face-oval points from the left cheek at nose height, down the jaw, round the chin and
# up to the right cheek (subject's right is image left), then the nose base (2 = subnasale) and
# the cheek points beside the nostrils, which close the region just under the nose.
LOWER_FACE_OUTLINE = (
    93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323,
    # back across under the nose, right to left in the image
    425, 426, 2, 206, 205,
)
LIP_POINTS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39,
              40, 185)


def to_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def feathered_polygon(polygon: np.ndarray, size: int, width: float) -> np.ndarray:
    """(size, size) float32: 1 inside the polygon, 0 outside, a smoothstep ramp `width` pixels
    wide centred on its outline (signed distance, so exactly 0 beyond width / 2 outside)."""
    return feathered_polygons([polygon], (size, size), width)


def feathered_polygons(polygons: list[np.ndarray], shape: tuple[int, int], width: float) -> np.ndarray:
    """(h, w) float32 `feathered_polygon` of the *union* of several polygons: one fill, one pair of
    distance transforms, however many polygons."""
    inside = np.zeros(shape, np.uint8)
    for polygon in polygons:
        cv2.fillPoly(inside, [np.round(np.asarray(polygon) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    if width <= 0:
        return inside.astype(np.float32)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    t = np.clip(0.5 + (d_in - d_out) / width, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def inner_feather(region: np.ndarray, width: float) -> np.ndarray:
    """float32 like ``region`` (bool): 0 outside and on its outer edge, rising (smoothstep) to 1 at
    ``width`` pixels inside. Holes in the region (not connected to the border through uncovered
    pixels) count as inside: only the outer edge fades.

    Pixels borrowed from another frame must fade out *before* the edge of what they cover, or the
    edge shows as a line where two slightly different shadings meet; but a hole of a few pixels
    (the closed mouth's seam between two warped meshes) must not open a wide window onto the
    frame underneath.
    """
    inside = np.pad(np.asarray(region, np.uint8), 1)  # the rect's border counts as outside
    outside = (1 - inside).astype(np.uint8)
    reached = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, reached, (0, 0), 2, flags=4)
    filled = (outside != 2).astype(np.uint8)  # region plus its holes
    if width <= 0:
        return filled[1:-1, 1:-1].astype(np.float32)
    distance = cv2.distanceTransform(filled, cv2.DIST_L2, 5)[1:-1, 1:-1]
    t = np.clip(distance / width, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def lower_face_mask(landmarks: np.ndarray, crop: FaceCrop, feather: float = 0.08) -> np.ndarray:
    """(S, S) float32 in [0, 1] in crop coordinates: the face below the nose, soft-edged.

    The soft edge is feather * S wide, centred on the jaw-line outline, so the replaced region
    reaches slightly past the chin (room for an opened jaw) and fades out before any box edge.
    """
    polygon = to_crop(np.asarray(landmarks, np.float64)[list(LOWER_FACE_OUTLINE)], crop.matrix)
    return feathered_polygon(polygon, crop.size, feather * crop.size)


def weighted_mean_std(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of (N, C) values under (N,) non-negative weights."""
    total = weights.sum()
    mean = weights @ values / total
    var = weights @ (values - mean) ** 2 / total
    return mean, np.sqrt(np.maximum(var, 0.0))


def match_colors(generated: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`generated` with the per-channel LAB mean and std of `reference` inside the (soft) mask.

    Both are (S, S, 3) RGB uint8 crops of the same face; the statistics are weighted by the mask
    so only the replaced region counts. The std ratio is clamped to [0.5, 2] so a flat patch
    never gets its noise amplified into speckle. 8-bit LAB (OpenCV's table-driven conversion)
    keeps this well under a millisecond at 96 px.
    """
    weights = np.asarray(mask, np.float64)
    inside = weights > 0
    if weights[inside].sum() < 1.0:
        return generated.copy()
    gen_lab = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB)
    ref_lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB)
    w = weights[inside]
    gen_mean, gen_std = weighted_mean_std(gen_lab[inside].astype(np.float64), w)
    ref_mean, ref_std = weighted_mean_std(ref_lab[inside].astype(np.float64), w)
    ratio = np.clip(ref_std / np.maximum(gen_std, 1e-6), 0.5, 2.0)
    offset = ref_mean - gen_mean * ratio
    matched = gen_lab.astype(np.float32) * ratio.astype(np.float32) + offset.astype(np.float32)
    matched = np.clip(matched + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(matched, cv2.COLOR_LAB2RGB)


def mask_frame_rect(mask: np.ndarray, crop: FaceCrop,
                    frame_shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Frame rectangle (x1, y1, x2, y2, exclusive) that holds every non-zero warped mask pixel."""
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        return None
    corners = np.array([[xs.min() - 1, ys.min() - 1], [xs.max() + 1, ys.min() - 1],
                        [xs.min() - 1, ys.max() + 1], [xs.max() + 1, ys.max() + 1]], np.float64)
    inverse = cv2.invertAffineTransform(crop.matrix)
    frame_corners = to_crop(corners, inverse)
    h, w = frame_shape[:2]
    x1 = max(0, int(np.floor(frame_corners[:, 0].min())) - 1)
    y1 = max(0, int(np.floor(frame_corners[:, 1].min())) - 1)
    x2 = min(w, int(np.ceil(frame_corners[:, 0].max())) + 2)
    y2 = min(h, int(np.ceil(frame_corners[:, 1].max())) + 2)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def blend_face(frame: np.ndarray, generated: np.ndarray, crop: FaceCrop, mask: np.ndarray) -> np.ndarray:
    """A new frame with `generated` (crop space) alpha-blended in under `mask` (crop space).

    Only the mask's bounding rectangle in the frame is warped (cheap at any resolution); pixels
    where the warped mask is 0 keep their exact input values.
    """
    out = frame.copy()
    rect = mask_frame_rect(mask, crop, frame.shape)
    if rect is None:
        return out
    x1, y1, x2, y2 = rect
    # Frame -> crop matrix for the rectangle's own coordinates: crop = M @ (p + (x1, y1)).
    matrix = crop.matrix.copy()
    matrix[:, 2] += matrix[:, :2] @ np.array([x1, y1], np.float64)
    size = (x2 - x1, y2 - y1)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    alpha = cv2.warpAffine(np.asarray(mask, np.float32), matrix, size, flags=flags,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    patch = cv2.warpAffine(generated, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    region = frame[y1:y2, x1:x2]
    mixed = region.astype(np.float32) * (1.0 - alpha) + patch.astype(np.float32) * alpha
    mixed = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    out[y1:y2, x1:x2] = np.where(alpha > 0, mixed, region)
    return out
