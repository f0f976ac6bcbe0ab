"""Shape transfer: what the lower face of each output frame should look like.

target(t) = rest(t) + scale * motion(t), in the canonical frame (`lipdub.motion.shape`):

- ``rest(t)``: the input frame's own closed-mouth shape of the moment (its rest track), which
  carries the smile, the frown and everything slow the input face does; for a photo, the photo.
- ``motion(t)``: predicted from the new speech (articulation units).
- ``scale``: how widely this speaker articulates, measured on the input video's own motion when
  the input speaks, else the training corpus' median (`speaker_scale`).

The rest track is the *most closed* mouth of the moment, so a grin that shows teeth for seconds
would come back narrower than it was. `keep_slow_expression` therefore gives the target the input's
own slow horizontal layout (mouth width, corners pulled sideways) and the corners' slow height
(a smile lifts them): whatever the new speech adds, its one-second average in those coordinates is
the input's.

Both the rest track and that slow layout are one-second averages, so the target lags wherever the
head turns faster than that: in the canonical frame (anchored on the eyes) a turning head's mouth
slides sideways with the nose. `follow_fast_pose` adds the nose base's own fast movement back.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lipdub.motion.shape import LIP_INNER, LIP_OUTER, MOTION_POINTS, gaussian_smooth, moving_average

#: Mouth corners (outer 61/291, inner 78/308): their slow height is expression, not speech.
CORNERS = tuple(MOTION_POINTS.index(p) for p in (61, 291, 78, 308))
#: Middles of the upper and lower lips (outer 0/17, inner 13/14): a corner's height is measured from
#: their mean (`expression_coordinates`).
LIP_MIDDLES = tuple(MOTION_POINTS.index(p) for p in (0, 17, 13, 14))
#: A corner's slow height spreads along its lip ring with a Gaussian of this many ring steps.
CORNER_SPREAD = 2.0
EXPRESSION_SECONDS = 1.0
#: Sigma (seconds) of the Gaussian that smooths `keep_slow_expression`'s refinement passes.
REFINE_SIGMA_SECONDS = 0.32
#: Refinement passes of `keep_slow_expression`. woman_seated_vertical dubbed in Russian and Korean
#: (an ad-hoc probe: the output re-measured with Face Mesh, its 1 s mouth width against the input's):
#: range 0.670 / 0.763 and r 0.915 / 0.922 with one pass, 0.731 / 0.810 and 0.953 / 0.944 with
#: eight; sixteen add under 0.01, and a narrower Gaussian (0.16-0.24 s) did worse in eight.
REFINE_PASSES = 8

#: Alar base and subnasale: fixed to the head, just above the mouth and at about its depth.
POSE_POINTS = (98, 327, 2)
#: Share of the nose base's fast (x, y) movement the mouth follows. Sideways, measured on four real
#: clips (fast part = minus a one-second average, canonical frame), the lips' centroid moves with it
#: at slope 0.99-1.16 (r 0.90-0.97 on the three that turn their heads). Vertically the corners
#: follow at only 0.54-0.64 (r 0.43-0.73), and following that share made the re-measured output
#: opening track the target worse (render r, video protocol: woman_flag 0.909 -> 0.887,
#: man_bald_beard_couch 0.449 -> 0.266): the nose base's fast height moves with the upper lip, so
#: it is partly the input's own speech. Only the sideways part is followed.
POSE_GAIN = (1.0, 0.0)

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


def follow_fast_pose(targets: np.ndarray, anchor: np.ndarray, fps: float, seconds: float = EXPRESSION_SECONDS,
                     gain: tuple[float, float] = POSE_GAIN) -> np.ndarray:
    """(T, P, 2) targets moved by the fast part of ``anchor``'s (T, 2) canonical track.

    ``anchor`` is where the frames shown put the nose base (`POSE_POINTS`). Its fast part (itself
    minus its centred moving average over ``seconds``, the span the slow targets were averaged
    over), times ``gain``, moves every target point. Why: without it the target is where the head
    *was* on average. On a real clip turning its head (man_restaurant_noisy dubbed in French) the
    target mouth sat up to 0.11 eye units (9 px) beside the frame's own (rms 0.028; 0.015 after),
    and the warp dragging the lower face that far folded triangles at the far cheek into a visible
    seam. Frames without an anchor are left as they are.
    """
    targets = np.asarray(targets, np.float64)
    anchor = np.asarray(anchor, np.float64)
    if len(targets) < 2:
        return targets.copy()
    span = max(1, int(round(seconds * fps)))
    fast = np.nan_to_num(anchor - moving_average(anchor, span)) * np.asarray(gain, np.float64)
    return targets + fast[:, None, :]


def keep_slow_expression(targets: np.ndarray, own: np.ndarray, fps: float,
                         seconds: float = EXPRESSION_SECONDS, refine_sigma: float = REFINE_SIGMA_SECONDS,
                         refine_passes: int = REFINE_PASSES) -> np.ndarray:
    """Targets whose slow x (all points) and corner height (above the lips' middle,
    `expression_coordinates`) follow the input's own shapes ``own``.

    Both (T, P, 2) canonical. Each corrected coordinate gets the difference of the two centred
    moving averages over ``seconds`` added, so its fast (speech) part is the target's and its slow
    part the input's. Frames without an input shape (NaN) are left as they are.

    One such pass leaves the corrected target's own moving average short of the input's: the
    correction is itself averaged again (a one-second smile comes back at about 0.87 of its slow
    peak). Each of ``refine_passes`` further passes adds the remaining difference, Gaussian-smoothed
    with sigma ``refine_sigma`` seconds: a box average's residual has ripples at speech rates (its
    side lobes), and passing those on would add width wobble the input never made. A pass removes
    only part of the residual near 0.5-1 Hz, where the Gaussian passes little, so several are run
    (`REFINE_PASSES`). ``refine_sigma`` 0 or ``refine_passes`` 0 skips them.
    """
    targets = np.asarray(targets, np.float64)
    own = np.asarray(own, np.float64)
    span = max(1, int(round(seconds * fps)))
    if len(targets) < 2:
        return targets.copy()
    own_slow = moving_average(expression_coordinates(own), span)
    correction = np.nan_to_num(own_slow - moving_average(expression_coordinates(targets), span))
    if refine_sigma > 0:
        for _ in range(refine_passes):
            corrected = expression_coordinates(_corrected(targets, correction))
            residual = np.nan_to_num(own_slow - moving_average(corrected, span))
            correction = correction + gaussian_smooth(residual, refine_sigma * fps)
    return _corrected(targets, correction)


def expression_coordinates(shapes: np.ndarray) -> np.ndarray:
    """(T, P, 2) ``shapes`` with each corner's (`CORNERS`) y measured from the lips' middle height
    (the mean y of `LIP_MIDDLES`) instead of the canonical frame's origin; every other coordinate
    as it is. `keep_slow_expression` keeps the slow part of these.

    Why: a corner's absolute height also falls with the jaw. A wide yawn drops the corners to the
    middle of its opening, half the opening below where a closed mouth has them; kept absolute, that
    drop came back on the small mouth the new speech asked for as a frown with hooked corners
    (`expressive/d18.mp4` dubbed with English, frames 70-90). From the lips' middle, a smile still
    lifts the corners, and a yawn, whose corners sit at its middle, lifts or drops nothing.
    """
    shapes = np.asarray(shapes, np.float64)
    out = shapes.copy()
    middle = shapes[:, list(LIP_MIDDLES), 1].mean(axis=1)
    out[:, list(CORNERS), 1] = shapes[:, list(CORNERS), 1] - middle[:, None]
    return out


@lru_cache(maxsize=4)
def corner_spread(spread: float = CORNER_SPREAD) -> np.ndarray:
    """(P, 4) how much of each corner's (`CORNERS`) height correction every motion point takes
    (a constant table, built once and read-only).

    Each lip ring (`LIP_OUTER`, `LIP_INNER`: 20 points, corners at steps 0 and 10) takes its own two
    corners' with weight exp(-d^2 / 2 spread^2), d the steps round the ring (1 at the corner);
    every other point none. Why: raised alone, a corner of a grimace (0.08 eye units on
    expressive/d3.mp4) left its neighbours behind, and the inner corner stood above the upper lip:
    a spike at the corner and lips torn shut around it. Facing upper and lower points are as far from
    a corner, so they rise alike and no opening changes.
    """
    weights = np.zeros((len(MOTION_POINTS), len(CORNERS)))
    for ring in (LIP_OUTER, LIP_INNER):
        size = len(ring)
        for column, corner in enumerate(CORNERS):
            point = MOTION_POINTS[corner]
            if point not in ring:
                continue
            at = ring.index(point)
            for step, vertex in enumerate(ring):
                d = min(abs(step - at), size - abs(step - at))
                weights[MOTION_POINTS.index(vertex), column] = np.exp(-0.5 * (d / spread) ** 2) if spread > 0 else float(d == 0)
    weights.setflags(write=False)
    return weights


def _corrected(targets: np.ndarray, correction: np.ndarray) -> np.ndarray:
    """``targets`` with ``correction`` added to every x, and the corners' y correction added to
    them and, tapering, to their lip rings (`corner_spread`; `keep_slow_expression`)."""
    out = targets.copy()
    out[..., 0] += correction[..., 0]
    out[..., 1] += correction[:, list(CORNERS), 1] @ corner_spread().T
    return out
