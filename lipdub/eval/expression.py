"""Is the speaker's expression kept? Slow changes of mouth width, output against input.

A dub should change what the mouth says, not what the face feels: a smile in the input should
still widen the mouth of the output, and a neutral stretch should stay neutral. Lip motion for
speech is fast (syllables, 3-8 per second); expression is slow (a smile builds and fades over a
second or more). So the mouth width, relative to the eyes, is low-passed over a second to keep
the expression and drop the articulation, and the output's is compared with the input's:

- ``r``: Pearson correlation of the two slow signals (does the output smile when the input does),
- ``range_ratio``: how far the output's slow width travels (5th to 95th percentile) relative to the
  input's (1 = as expressive; a model that flattens every face to its training average scores ≪ 1).

Landmarks are the 478-point Face Mesh in pixels, (N, 478, 2) (see `lipdub.eval.mouth`); frames
without a face are NaN and skipped.
"""

from __future__ import annotations

import logging

import numpy as np

from lipdub.eval.mouth import _pearson, _xy, face_size

logger = logging.getLogger(__name__)

# Face Mesh outer mouth corners: the subject's right (61) and left (291).
RIGHT_MOUTH_CORNER = 61
LEFT_MOUTH_CORNER = 291


def mouth_width_ratio(landmarks: np.ndarray) -> np.ndarray:
    """(N,) distance between the mouth corners (61, 291) / distance between the outer eye corners (33, 263).

    Divided by the eye distance so that it does not depend on resolution or distance to the
    camera. In speech on the shared clips about 0.55-0.6 (median 0.58 on the first 75 frames of
    train/real/grid_man_denim.mpg, 0.55 on woman_flag.mp4); a smile raises it, pursed lips ("oo")
    lower it.
    NaN where the landmarks are NaN or the eye distance is zero.
    """
    points = _xy(landmarks)
    width = np.linalg.norm(points[:, RIGHT_MOUTH_CORNER] - points[:, LEFT_MOUTH_CORNER], axis=-1)
    size = face_size(points)
    ratio = np.full(width.shape, np.nan)
    ok = np.isfinite(width) & np.isfinite(size) & (size > 0)
    ratio[ok] = width[ok] / size[ok]
    return ratio


def lowpass(signal: np.ndarray, fps: float, seconds: float = 1.0) -> np.ndarray:
    """Centred moving average over ``seconds``, ignoring NaN.

    The window is ``2·h + 1`` frames with ``h = floor(seconds · fps / 2)`` (25 frames at 25 fps for
    one second), centred on each frame, and shortened at the ends of the signal rather than padded.
    Each output is the mean of the finite values in its window; NaN when there are none.
    """
    values = np.asarray(signal, dtype=np.float64).ravel()
    n = values.size
    if n == 0:
        return values.copy()
    half = int(np.floor(seconds * fps / 2.0 + 1e-9))
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    index = np.arange(n)
    lo, hi = np.maximum(index - half, 0), np.minimum(index + half + 1, n)
    count = counts[hi] - counts[lo]
    out = np.full(n, np.nan)
    has = count > 0
    out[has] = (sums[hi] - sums[lo])[has] / count[has]
    return out


def _spread(values: np.ndarray) -> float:
    """p95 − p5 of the finite values; NaN when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan")
    low, high = np.percentile(finite, [5.0, 95.0])
    return float(high - low)


def expression_fidelity(output_landmarks: np.ndarray, input_landmarks: np.ndarray, fps: float,
                        seconds: float = 1.0) -> dict[str, float]:
    """{"r", "range_ratio"} of the output's slow mouth width against the input's (module docstring).

    The two videos are paired by frame index over their common length (`slow_width_fidelity`).
    """
    return slow_width_fidelity(mouth_width_ratio(output_landmarks), mouth_width_ratio(input_landmarks), fps, seconds)


def slow_width_fidelity(output_width: np.ndarray, input_width: np.ndarray, fps: float,
                        seconds: float = 1.0) -> dict[str, float]:
    """`expression_fidelity` from per-frame mouth widths (any landmark judge's, NaN where it saw
    no face) rather than Face Mesh landmarks.

    The two are paired by frame index over their common length. ``r`` follows
    `lipdub.eval.mouth.aperture_correlation`'s convention: 0.0 when a signal is constant (a frozen
    expression has no relation to the input's); NaN only when fewer than two frames have both.
    ``range_ratio`` is NaN when the input's range is zero or unknown.
    """
    output_width = lowpass(output_width, fps, seconds)
    input_width = lowpass(input_width, fps, seconds)
    n = min(output_width.size, input_width.size)
    output_width, input_width = output_width[:n], input_width[:n]
    both = np.isfinite(output_width) & np.isfinite(input_width)
    r = _pearson(output_width, input_width) if both.sum() >= 2 else float("nan")
    output_range, input_range = _spread(output_width[both]), _spread(input_width[both])
    range_ratio = output_range / input_range if np.isfinite(input_range) and input_range > 0 else float("nan")
    return {"r": float(r), "range_ratio": float(range_ratio)}
