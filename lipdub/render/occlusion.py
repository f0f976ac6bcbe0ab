"""Which input frames show something in front of the speaker's lower face (a hand, an arm).

The engine lends one input frame's pixels to another: a pause is held on the most closed mouth
nearby, and the mouth bank lends openings. Face Mesh still places its points when a hand covers
the mouth, and reads the covered mouth as shut, so the hand frame looked like the best closed
mouth: on `multiface/tv_debate_two_men.mp4` dubbed with Spanish, a leading pause held input frame
2, a palm across the mouth, and 18 output frames showed a ghostly hand where the mouth should be.

The test is what the lower face looks like at fixed anatomical points: each frame's colours at
`LOWER_FACE_POINTS` (logs, less the frame's median over those points, so a change of exposure or
of the light's colour cancels), against the median of its shot's frames within `WINDOW_SECONDS`
at each point, in units of the point's spread over them (in a long shot the head turns and the
light drifts; a hand passes in a second or two). Speech changes a few points by the lips a little; a hand changes
many a lot. A frame where at least `OCCLUDED_SHARE` of the points lie more than `OUTLIER_Z`
spreads from their median is *occluded*. On the 23 clips of the evaluation protocols (validation
speakers, expressive clips with yawns, grimaces and a selfie) the share stayed at or under 0.25;
the debate clip's hand frames (0-5) scored 0.31-0.54, and an angry clip's frames with an arm by the face,
the head turned and blurred, 0.31-0.73.

Pure functions here; the motion engine applies them (`lipdub.engines.motion`).
"""

from __future__ import annotations

import numpy as np

#: Chin, jaw line, the skin around the mouth and the outer lips (Face Mesh indices): what a hand,
#: a microphone or a cup in front of the mouth covers.
LOWER_FACE_POINTS = (152, 148, 176, 149, 150, 377, 400, 378, 379, 136, 172, 58, 365, 397, 288, 57,
                     287, 43, 273, 106, 335, 182, 406, 83, 313, 18, 200, 199, 175, 164, 167, 393,
                     165, 391, 92, 322, 186, 410, 216, 436, 206, 426, 0, 17, 37, 267, 84, 314)
#: Radius of the patch averaged around each point, in eye distances (at least one pixel).
PATCH_EYE_UNITS = 0.04
#: A point is an outlier this many robust spreads (1.4826 x MAD) from its shot's median ...
OUTLIER_Z = 4.0
#: ... where the spread is at least this (log colour units; a still shot's noise is smaller).
MIN_SPREAD = 0.04
#: A frame is occluded when at least this share of its lower-face points are outliers.
OCCLUDED_SHARE = 0.3
#: Fewer frames than this in a shot give no median to compare with: its frames are not judged.
MIN_SHOT_FRAMES = 3
#: A frame is compared with its shot's frames within this many seconds of it (`occlusion_scores`).
WINDOW_SECONDS = 10.0


def sample_colours(image: np.ndarray, points: np.ndarray, ids, radius: int) -> np.ndarray:
    """(len(ids), 3) mean colour of the (2 radius + 1)^2 patch around each point (clipped to the
    image); NaN for a point off the image. One summed-area table over the points' bounding box:
    the tracking pass calls this for every frame."""
    import cv2

    image = np.asarray(image)
    h, w = image.shape[:2]
    centres = np.round(np.asarray(points, np.float64)[list(ids)]).astype(np.int64)
    out = np.full((len(centres), 3), np.nan)
    inside = (centres[:, 0] >= 0) & (centres[:, 0] < w) & (centres[:, 1] >= 0) & (centres[:, 1] < h)
    if not inside.any():
        return out
    c = centres[inside]
    x0, y0 = max(0, int(c[:, 0].min()) - radius), max(0, int(c[:, 1].min()) - radius)
    x1, y1 = min(w, int(c[:, 0].max()) + radius + 1), min(h, int(c[:, 1].max()) + radius + 1)
    table = cv2.integral(np.ascontiguousarray(image[y0:y1, x0:x1, :3]), sdepth=cv2.CV_64F)  # (H+1, W+1, 3)
    left = np.clip(c[:, 0] - radius - x0, 0, x1 - x0)
    right = np.clip(c[:, 0] + radius + 1 - x0, 0, x1 - x0)
    top = np.clip(c[:, 1] - radius - y0, 0, y1 - y0)
    bottom = np.clip(c[:, 1] + radius + 1 - y0, 0, y1 - y0)
    sums = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
    out[inside] = sums / ((right - left) * (bottom - top))[:, None]
    return out


def face_colours(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P, 3) the frame's colours at `LOWER_FACE_POINTS`, patches sized by the eye distance."""
    points = np.asarray(points, np.float64)
    eye = float(np.linalg.norm(points[33] - points[263]))
    radius = max(1, int(round(PATCH_EYE_UNITS * eye))) if np.isfinite(eye) else 1
    return sample_colours(image, points, LOWER_FACE_POINTS, radius)


def occlusion_scores(colours: np.ndarray, shots: np.ndarray | None = None, window: int | None = None,
                     z: float = OUTLIER_Z, min_spread: float = MIN_SPREAD,
                     min_frames: int = MIN_SHOT_FRAMES) -> np.ndarray:
    """(T,) share of each frame's lower-face points whose colour is an outlier for its shot.

    ``colours`` (T, P, 3) from `face_colours`, NaN for a frame without a face; ``shots`` (T,) a
    label per frame (frames of one shot share it; default: one shot). Another shot may show
    another person or light, so each is compared with itself; with ``window`` (frames), only with
    its frames within that many of the frame's own (`_local_statistics`): in a long shot the head
    turns and the light drifts, slowly, while a hand passes in a second or two. NaN for a frame
    without colours, 0 for the frames of a shot with fewer than ``min_frames`` that have them.
    """
    colours = np.asarray(colours, np.float64)
    frames = len(colours)
    shots = np.zeros(frames, np.int64) if shots is None else np.asarray(shots)
    scores = np.full(frames, np.nan)
    known = np.isfinite(colours).all(axis=(1, 2))
    for shot in np.unique(shots[known]):
        rows = np.flatnonzero(known & (shots == shot))
        if len(rows) < min_frames:
            scores[rows] = 0.0
            continue
        logs = np.log1p(colours[rows])
        relative = logs - np.median(logs, axis=1, keepdims=True)
        median, spread = _local_statistics(relative, rows, window)
        spread = np.maximum(spread, min_spread)
        outlier = (np.abs(relative - median) / spread).max(axis=2) > z
        scores[rows] = outlier.mean(axis=1)
    return scores


def _local_statistics(values: np.ndarray, frames: np.ndarray, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust spread (1.4826 x MAD) of ``values`` (N, ...) over the rows whose frame
    number (``frames``, ascending) lies within ``window`` of each row's; over all rows without a
    window, or when every window would hold them all. Computed at anchors a fifth of the window
    apart, each row taking its nearest anchor's: an hour of video costs about a second."""
    if window is None or frames[-1] - frames[0] <= window:
        median, spread = robust_centre_and_spread(values)
        return median[None], spread[None]
    step = max(1, window // 5)
    anchors = np.arange(frames[0], frames[-1] + step, step)
    lows = np.searchsorted(frames, anchors - window, side="left")
    highs = np.searchsorted(frames, anchors + window, side="right")
    medians, spreads = zip(*(robust_centre_and_spread(values[low:high]) for low, high in zip(lows, highs)))
    nearest = np.clip(np.round((frames - frames[0]) / step).astype(np.int64), 0, len(anchors) - 1)
    return np.asarray(medians)[nearest], np.asarray(spreads)[nearest]


def robust_centre_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``values`` over its first axis and its robust spread, 1.4826 x the median absolute
    deviation (the standard deviation, for normal data, that one outlier cannot move)."""
    median = np.median(values, axis=0)
    return median, 1.4826 * np.median(np.abs(values - median), axis=0)


def occluded(scores: np.ndarray, share: float = OCCLUDED_SHARE) -> np.ndarray:
    """(T,) True where a frame's score (`occlusion_scores`) reaches ``share``; NaN counts as not."""
    return np.nan_to_num(np.asarray(scores, np.float64), nan=0.0) >= share
