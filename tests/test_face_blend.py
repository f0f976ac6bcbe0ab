"""Lower-face mask, colour matching and paste-back on synthetic landmarks."""

import cv2
import numpy as np

from lipdub.face.align import extract_crop
from lipdub.face.blend import (
    LIP_POINTS, LOWER_FACE_OUTLINE, blend_face, lower_face_mask, match_colors,
)

CENTRE = np.array([200.0, 150.0])


def synthetic_landmarks() -> np.ndarray:
    """478 points: a jaw half-ellipse (radius 60 x 70 around CENTRE) closed at nose height,
    lips on a small ellipse 30 px below CENTRE, everything else at the eyes (y = 100)."""
    points = np.tile([200.0, 100.0], (478, 1))
    jaw = LOWER_FACE_OUTLINE[:19]
    angles = np.linspace(np.pi, 0.0, len(jaw))  # image left, down round the chin, image right
    points[list(jaw)] = CENTRE + np.stack([60 * np.cos(angles), 70 * np.sin(angles)], 1)
    nose = LOWER_FACE_OUTLINE[19:]
    points[list(nose)] = np.stack([np.linspace(45, -45, len(nose)) + 200, np.full(len(nose), 150.0)], 1)
    lip_angles = np.linspace(0, 2 * np.pi, len(LIP_POINTS), endpoint=False)
    points[list(LIP_POINTS)] = CENTRE + [0, 30] + np.stack([25 * np.cos(lip_angles), 8 * np.sin(lip_angles)], 1)
    return points.astype(np.float32)


def _crop(size=128):
    frame = np.full((300, 400, 3), 90, np.uint8)
    return frame, extract_crop(frame, np.array([100, 60, 300, 260]), size)


def test_mask_zero_outside_one_on_lips_in_range():
    _, crop = _crop()
    mask = lower_face_mask(synthetic_landmarks(), crop)
    assert mask.shape == (128, 128) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    lips = (synthetic_landmarks()[list(LIP_POINTS)] - [100, 60]) * 128 / 200
    for x, y in np.round(lips).astype(int):
        assert mask[y, x] == 1.0
    # Far from the mouth: the eyes (frame y = 100 -> crop 26) and the crop's corners.
    assert mask[:40].max() == 0.0
    assert mask[-5:, :10].max() == 0.0 and mask[-5:, -10:].max() == 0.0
    # Soft edge: some values strictly between 0 and 1, no hard box edge.
    assert ((mask > 0) & (mask < 1)).sum() > 100


def test_mask_feather_monotonic():
    _, crop = _crop()
    landmarks = synthetic_landmarks()
    masks = [lower_face_mask(landmarks, crop, feather) for feather in (0.0, 0.04, 0.08, 0.16)]
    nonzero = [int((m > 0).sum()) for m in masks]
    full = [int((m >= 1).sum()) for m in masks]
    assert nonzero == sorted(nonzero) and nonzero[0] < nonzero[-1]
    assert full == sorted(full, reverse=True) and full[0] > full[-1]
    # Along a line from the mouth down through the chin the mask never increases.
    column = masks[2][:, 64]
    below_mouth = column[int((180 - 60) * 128 / 200):]
    assert np.all(np.diff(below_mouth) <= 1e-6)


def test_blend_leaves_unmasked_pixels_bit_identical():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    original = frame.copy()
    crop = extract_crop(frame, np.array([100, 60, 300, 260]), 128)
    mask = lower_face_mask(synthetic_landmarks(), crop)
    generated = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    out = blend_face(frame, generated, crop, mask)
    np.testing.assert_array_equal(frame, original)  # input not mutated
    alpha = cv2.warpAffine(mask, crop.matrix, (400, 300),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    outside = alpha == 0
    assert outside.sum() > 0.8 * outside.size
    np.testing.assert_array_equal(out[outside], frame[outside])
    changed = np.any(out != frame, axis=-1)
    assert changed.sum() > 1000 and not changed[outside].any()
    # Where the mask is fully on, the result is the warped generated patch (OpenCV's fixed-point
    # interpolation may round a sub-rectangle warp 1 level differently from a full-frame one).
    patch = cv2.warpAffine(generated, crop.matrix, (400, 300),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inside = alpha >= 1.0
    assert np.abs(out[inside].astype(int) - patch[inside].astype(int)).max() <= 1


def test_blend_with_empty_mask_is_a_copy():
    frame = np.full((50, 60, 3), 7, np.uint8)
    crop = extract_crop(frame, np.array([0, 0, 40, 40]), 32)
    out = blend_face(frame, np.zeros((32, 32, 3), np.uint8), crop, np.zeros((32, 32), np.float32))
    np.testing.assert_array_equal(out, frame)
    assert out is not frame


def test_match_colors_moves_mean_to_reference():
    rng = np.random.default_rng(3)
    reference = np.clip(rng.normal([150, 110, 90], 12, (64, 64, 3)), 0, 255).astype(np.uint8)
    generated = np.clip(rng.normal([110, 100, 110], 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    matched = match_colors(generated, reference, mask)
    region = mask > 0
    before = np.abs(generated[region].mean(0) - reference[region].mean(0))
    after = np.abs(matched[region].mean(0) - reference[region].mean(0))
    assert np.all(after < 3.0) and np.all(after < before / 4)
    assert matched[region].std(0).mean() < generated[region].std(0).mean()  # std follows too
    assert matched.dtype == np.uint8 and matched.shape == generated.shape


def test_match_colors_with_empty_mask_returns_generated():
    generated = np.full((8, 8, 3), 40, np.uint8)
    out = match_colors(generated, np.full((8, 8, 3), 200, np.uint8), np.zeros((8, 8), np.float32))
    np.testing.assert_array_equal(out, generated)


def test_inner_feather_is_zero_at_the_edge_and_one_deep_inside():
    from lipdub.face.blend import inner_feather

    region = np.zeros((21, 21), bool)
    region[:, 5:] = True  # covered from column 5 to the right border
    soft = inner_feather(region, width=4.0)
    assert soft[:, :5].max() == 0.0
    np.testing.assert_allclose(soft[10, 5], 0.25 ** 2 * (3 - 2 * 0.25), atol=1e-6)  # 1 px in: smoothstep(1/4)
    assert soft[10, 12] == 1.0  # 8 px from the left edge, 9 from the right border, 11 from the top
    assert soft[10, 20] < 1.0 and soft[0, 12] < 1.0  # the rect's border is an edge
    assert (np.diff(soft[10, 5:12]) >= 0).all()
    holed = region.copy()
    holed[10, 12] = False  # a one-pixel hole deep inside is not an edge
    np.testing.assert_array_equal(inner_feather(holed, 4.0), soft)
