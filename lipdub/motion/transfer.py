"""Shape transfer: what the lower face of each output frame should look like.

target(t) = rest(t) + scale * motion(t), in the canonical frame (`lipdub.motion.shape`):

- ``rest(t)``: the input frame's own closed-mouth shape of the moment (its rest track), which
  carries the smile, the frown and everything slow the input face does; for a photo, the photo.
- ``motion(t)``: predicted from the new speech (articulation units).
- ``scale``: how widely this speaker articulates, measured on the input video's own motion when
  the input speaks, else the training corpus' median (`speaker_scale`).
"""

from __future__ import annotations

import numpy as np

#: A measured scale is trusted within this range of the model's default (a silent input reads low).
SCALE_RANGE = (0.6, 1.6)


def speaker_scale(measured: float | None, default: float, trust_from: float = 0.5) -> float:
    """The articulation scale to apply: the input's own when it clearly speaks, else the default."""
    if measured is None or not np.isfinite(measured) or measured < trust_from * default:
        return float(default)
    low, high = SCALE_RANGE
    return float(np.clip(measured, low * default, high * default))


def target_shapes(rest: np.ndarray, motion: np.ndarray, scale: float) -> np.ndarray:
    """(T, P, 2) canonical target shapes from (T, P, 2) rest shapes and articulation-unit motion."""
    return np.asarray(rest, np.float64) + float(scale) * np.asarray(motion, np.float64)
