"""``lipdub personalize``'s mouth bank: the few frames of a speaker's video worth keeping for their teeth.

A profile keeps at most `CAPACITY` mouths (`lipdub.render.profile_bank`), so which ones matters.
Only open mouths can lend an opening (a closed one has no teeth or cavity to give: the engine
borrows a mouth only where the target opens wider than the input), and the engine picks by lip
shape and head pose, so the bank must *cover* the openings and poses the speaker shows rather than
repeat the most common one: `select_bank_frames` starts from the widest-open frame and adds, one at
a time, the frame farthest (in opening, mouth width and head pose) from every frame already
chosen, each distance weighed by how sharp that frame's mouth is (motion blur smears teeth most in
fast speech). The first N frames, or N evenly spaced ones, would be mostly half-closed mid-word
mouths of one pose.

Two passes over the video, as in `lipdub sync`: the first tracks every frame with the same face
tracker (so the points are the ones the engine measures in a dub) and keeps only points and a
sharpness number per frame; the second decodes again and crops the chosen frames' lips.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lipdub.errors import LipdubError
from lipdub.render.profile_bank import ProfileBank

logger = logging.getLogger(__name__)

#: Mouths a profile keeps at most.
CAPACITY = 96
#: A mouth opened less than this (eye units, inner lips) has no interior worth lending.
MIN_OPENING = 0.03
#: Feature scales of `select_bank_frames` (eye units): one scale step of opening counts as much as
#: one of mouth width or of one pose coordinate. The opening's is the finest: it matters most.
OPENING_SCALE, WIDTH_SCALE, POSE_SCALE = 0.01, 0.03, 0.03
#: Crops of faces larger than this (eye distance, pixels) are scaled down to it.
MAX_EYE_PIXELS = 320
#: Margin around the outer lips kept in each crop, in eye units.
CROP_MARGIN = 0.12


def select_bank_frames(openings: np.ndarray, widths: np.ndarray, poses: np.ndarray, sharpness: np.ndarray,
                       capacity: int = CAPACITY, min_opening: float = MIN_OPENING) -> np.ndarray:
    """Sorted indices of at most ``capacity`` frames covering the open mouths (module docstring).

    openings, widths: (N,) eye units (NaN = no face); poses: (N, D) canonical pose features;
    sharpness: (N,) any positive measure, only its rank is used (quality 0.5 for the blurriest
    frame to 1 for the sharpest). Frames opened less than ``min_opening`` are never chosen; the
    widest-open frame always is.
    """
    openings = np.asarray(openings, np.float64)
    poses = np.asarray(poses, np.float64).reshape(len(openings), -1)
    features = np.column_stack([openings / OPENING_SCALE, np.asarray(widths, np.float64) / WIDTH_SCALE,
                                poses / POSE_SCALE])
    usable = np.isfinite(features).all(axis=1) & (openings >= min_opening)
    candidates = np.flatnonzero(usable)
    if len(candidates) == 0 or capacity <= 0:
        return np.zeros(0, np.int64)
    features = features[candidates]
    quality = 0.5 + 0.5 * sharpness_rank(np.nan_to_num(np.asarray(sharpness, np.float64)[candidates], nan=0.0))
    chosen = [int(np.argmax(openings[candidates]))]
    nearest = np.linalg.norm(features - features[chosen[0]], axis=1)
    while len(chosen) < min(capacity, len(candidates)):
        score = nearest * quality
        score[chosen] = -1.0
        pick = int(np.argmax(score))
        if score[pick] <= 0.0:  # only exact duplicates are left
            break
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
    return np.sort(candidates[chosen])


def sharpness_rank(values: np.ndarray) -> np.ndarray:
    """(N,) 0..1: the share of the other values below each one, ties counting half (all equal: 0.5)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return np.full(len(values), 0.5)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, "left")
    not_above = np.searchsorted(ordered, values, "right")
    return (below + not_above - 1) / 2 / (len(values) - 1)


def lip_box(points: np.ndarray, eye: float, shape: tuple[int, int], margin: float = CROP_MARGIN) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) around the outer lips plus ``margin`` eye units, clipped to an (h, w) frame."""
    from lipdub.eval.mouth import LIP_OUTER
    from lipdub.render.warp import bounding_rect

    return bounding_rect(np.asarray(points, np.float64)[list(LIP_OUTER)], shape, int(np.ceil(margin * eye)))


def crop_mouth(image: np.ndarray, points: np.ndarray, eye: float, max_eye: float = MAX_EYE_PIXELS):
    """(crop, to_crop) of one frame's lips: the crop (scaled down when the eye distance exceeds
    ``max_eye``) and the (2, 3) affine taking frame pixels to its pixels; None off the frame."""
    rect = lip_box(points, eye, image.shape)
    if rect is None:
        return None
    x1, y1, x2, y2 = rect
    crop = image[y1:y2, x1:x2]
    scale = min(1.0, max_eye / max(eye, 1e-6))
    h, w = crop.shape[:2]
    out_w, out_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    if (out_w, out_h) != (w, h):
        crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
    sx, sy = out_w / w, out_h / h
    # cv2.resize maps pixel centres: u' + 0.5 = (u + 0.5) * s.
    to_crop = np.array([[sx, 0.0, (0.5 - x1) * sx - 0.5], [0.0, sy, (0.5 - y1) * sy - 0.5]])
    return np.ascontiguousarray(crop), to_crop


def build_profile_bank(video: Path, stop_frame: int | None = None, capacity: int = CAPACITY,
                       progress: Callable[[int, int], None] | None = None,
                       min_opening: float = MIN_OPENING) -> ProfileBank | None:
    """The mouth bank of ``video``'s frames before ``stop_frame`` (default: all of them); None when
    the speaker never opens their mouth there.

    ``lipdub personalize`` stops where the motion model's training part ends, so a profile holds
    nothing of the held-out part it is scored on. ``progress(done, total)`` is called while
    tracking (the slow part).
    """
    from lipdub.eval.image import laplacian_sharpness
    from lipdub.eval.mouth import LIP_INNER
    from lipdub.face.detect import FaceDetector
    from lipdub.face.track import FaceTracker, SmoothingConfig
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.motion import shape as S
    from lipdub.render.bank import pose_features

    info = probe_video(video)
    if info.is_photo:
        raise LipdubError(f"{video} is a photo: a mouth bank needs a video of the speaker talking")
    limit = max(1, int(info.frame_count if stop_frame is None else stop_frame))
    smoothed, raw, sharp = [], [], []
    with FaceDetector(still_image=False) as detector:
        tracker = FaceTracker(detector, smoothing=SmoothingConfig(fps=info.fps))
        for frame in iter_frames(video):
            if frame.index >= limit:
                break
            face = tracker.update(frame.image)
            if face is None:
                smoothed.append(np.full((478, 2), np.nan))
                raw.append(np.full((478, 2), np.nan))
                sharp.append(np.nan)
            else:
                points = np.asarray(face.landmarks if face.raw_landmarks is None else face.raw_landmarks, np.float64)
                smoothed.append(np.asarray(face.landmarks, np.float64))
                raw.append(points)
                # Sharpness of the opening itself: teeth edges, or their blur.
                inner = points[list(LIP_INNER)]
                x1, y1 = np.floor(inner.min(axis=0)).astype(int)
                x2, y2 = np.ceil(inner.max(axis=0)).astype(int) + 1
                region = frame.image[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
                sharp.append(laplacian_sharpness(region) if region.size >= 12 else np.nan)
            if progress is not None and frame.index % 25 == 0:
                progress(frame.index + 1, limit)
    if not raw:
        raise LipdubError(f"{video} contains no video frames")
    smoothed, raw = np.stack(smoothed), np.stack(raw)
    valid = np.isfinite(raw).all(axis=(1, 2))
    if not valid.any():
        raise LipdubError(f"no face found in {video}")
    transforms, canonical = S.canonical_mesh(smoothed, raw)
    shapes = canonical[:, list(S.MOTION_POINTS)]
    openings = S.aperture(shapes)
    widths = S.mouth_width(shapes)
    poses = pose_features(canonical)
    picks = select_bank_frames(openings, widths, poses, np.asarray(sharp), capacity, min_opening)
    if len(picks) == 0:
        logger.warning("%s never opens its mouth wider than %.2f eye units: no mouth bank", video, min_opening)
        return None
    rest = S.rest_track(S.apply_affine(transforms, smoothed[:, list(S.MOTION_POINTS)]), info.fps)
    eyes = np.linalg.norm(raw[:, S.RIGHT_EYE_OUTER] - raw[:, S.LEFT_EYE_OUTER], axis=-1)
    wanted = {int(k) for k in picks}
    crops, to_crop, kept = [], [], []
    for frame in iter_frames(video):
        if frame.index > picks[-1]:
            break
        if frame.index not in wanted:
            continue
        cut = crop_mouth(frame.image, raw[frame.index], float(eyes[frame.index]))
        if cut is None:
            continue
        crop, frame_to_crop = cut
        crops.append(crop)
        # canonical -> frame pixels -> crop pixels
        to_crop.append(_compose(frame_to_crop, S.invert_affine(transforms[frame.index])))
        kept.append(frame.index)
    kept = np.asarray(kept, np.int64)
    logger.info("mouth bank: %d of %d frames (openings %.3f-%.3f eye units)", len(kept), limit,
                float(openings[kept].min()), float(openings[kept].max()))
    return ProfileBank(tuple(crops), canonical[kept].astype(np.float32), np.stack(to_crop), kept,
                       rest[kept].astype(np.float32), np.nanmedian(poses[valid], axis=0).astype(np.float32),
                       float(info.fps))


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine of ``outer`` after ``inner``."""
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)
