"""Lower-face shapes in a head-centred canonical frame: the space the lip motion model works in.

Why a canonical frame: the same spoken vowel opens the mouth by the same *fraction of the face*
whatever the head's position, roll and size in the picture. Each frame's 478 Face Mesh points are
mapped by a similarity transform (scale, rotation, translation; `similarity_fit`, Umeyama 1991)
that puts the points speech never moves (`STABLE_POINTS`: eye corners, nose bridge, forehead,
temples) onto a template in which the outer eye corners are one unit apart, level, and centred on
the origin. Every other quantity here is in those units ("eye units").

Why a rest track: a dub must keep what the input face does *besides* speaking (a smile, a frown,
a slow head turn) and replace only the speech. `rest_track` estimates, for every frame, the closed-
mouth shape of the moment: the most closed frame within half a second either side, low-passed over
about a second. Speech motion is what a frame adds on top of that (`speech_motion`), so silence
means "back to the rest shape", never "back to the average open mouth".

Why PCA: lip and jaw points move together (the jaw drops, both lips follow), so a dozen
coefficients (`MotionBasis`) capture almost all speech motion; the motion model predicts those,
normalised by the speaker's own articulation scale so that a mumbler and a declaimer train the
same network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipdub.eval.mouth import LIP_INNER, LIP_OUTER

# Points that speech does not move: outer/inner eye corners, nose bridge, forehead, temples.
STABLE_POINTS: tuple[int, ...] = (33, 133, 263, 362, 168, 6, 197, 10, 151, 9, 234, 454, 127, 356, 70, 300)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263

# Jaw line from the right jaw angle round the chin to the left one, and the chin/lower-cheek points
# inside it: they move with the jaw when the mouth opens.
JAW_POINTS: tuple[int, ...] = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288)
CHIN_POINTS: tuple[int, ...] = (18, 200, 199, 175, 83, 313, 182, 406, 106, 335, 43, 273, 57, 287, 204, 424,
                                32, 262, 208, 428, 171, 396, 140, 369)
#: The points the motion model predicts (lips first: `LIP_INNER` 13/14 give the aperture).
MOTION_POINTS: tuple[int, ...] = LIP_OUTER + LIP_INNER + JAW_POINTS + CHIN_POINTS
UPPER_INNER, LOWER_INNER = MOTION_POINTS.index(13), MOTION_POINTS.index(14)
LEFT_CORNER, RIGHT_CORNER = MOTION_POINTS.index(291), MOTION_POINTS.index(61)

#: Rest track: how far (seconds, each side) to look for the most closed mouth, and the low-pass span.
REST_SEARCH_SECONDS = 0.5
REST_SMOOTH_SECONDS = 1.0
#: Aperture (eye units) a frame may be more open than the most closed one and still win by being nearer.
TIE_BREAK = 2e-3


def similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) similarity transform M minimising sum |M [s; 1] - t|^2 over point pairs (Umeyama).

    source, target: (N, 2), N >= 2. No reflection. With exact correspondences the transform is
    recovered exactly (tested), which is what makes the canonical frame repeatable.
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    var_s = (s * s).sum() / len(s)
    cov = t.T @ s / len(s)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = float((d * np.diag(sign)).sum() / max(var_s, 1e-12))
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_t - scale * rotation @ mu_s
    return matrix


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 2) points through a (2, 3) affine, or (T, ..., 2) through (T, 2, 3) per-frame affines."""
    matrix = np.asarray(matrix, np.float64)
    points = np.asarray(points, np.float64)
    if matrix.ndim == 2:
        return points @ matrix[:, :2].T + matrix[:, 2]
    return np.einsum("tij,t...j->t...i", matrix[:, :, :2], points) + matrix[:, None, :, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine (or a stack of them)."""
    matrix = np.asarray(matrix, np.float64)
    linear = np.linalg.inv(matrix[..., :2])
    offset = -np.einsum("...ij,...j->...i", linear, matrix[..., 2])
    return np.concatenate([linear, offset[..., None]], axis=-1)


def eye_normalised(points: np.ndarray) -> np.ndarray:
    """One face's points moved so the outer eye corners sit at (-0.5, 0) and (0.5, 0)."""
    points = np.asarray(points, np.float64)
    pairs = points[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER]]
    # In the image the subject's right eye is on the left: it goes to x = -0.5.
    return apply_affine(similarity_fit(pairs, np.array([[-0.5, 0.0], [0.5, 0.0]])), points)


def stable_template(landmarks: np.ndarray, iterations: int = 2) -> np.ndarray:
    """(len(STABLE_POINTS), 2) mean stable-point layout of a clip in eye units (generalised Procrustes).

    landmarks: (T, 478, 2); frames with NaN are ignored. Starting from the eye-normalised median
    frame, every frame is aligned to the template and the template re-estimated.
    """
    landmarks = np.asarray(landmarks, np.float64)
    good = np.isfinite(landmarks).all(axis=(1, 2))
    if not good.any():
        raise ValueError("no frame with landmarks")
    frames = landmarks[good][:, list(STABLE_POINTS)]
    template = eye_normalised(np.median(landmarks[good], axis=0))[list(STABLE_POINTS)]
    for _ in range(iterations):
        aligned = np.stack([apply_affine(similarity_fit(f, template), f) for f in frames])
        mean = aligned.mean(axis=0)
        # Re-anchor so the eye corners keep defining the units (Procrustes means drift in scale).
        eyes = [STABLE_POINTS.index(RIGHT_EYE_OUTER), STABLE_POINTS.index(LEFT_EYE_OUTER)]
        template = apply_affine(similarity_fit(mean[eyes], np.array([[-0.5, 0.0], [0.5, 0.0]])), mean)
    return template


def canonical_transforms(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(T, 2, 3) frame -> canonical similarity per frame; NaN where the frame has no landmarks."""
    landmarks = np.asarray(landmarks, np.float64)
    out = np.full((len(landmarks), 2, 3), np.nan)
    for t, points in enumerate(landmarks):
        stable = points[list(STABLE_POINTS)]
        if np.isfinite(stable).all():
            out[t] = similarity_fit(stable, template)
    return out


def canonical_mesh(landmarks: np.ndarray, raw: np.ndarray, points: int = 468) -> tuple[np.ndarray, np.ndarray]:
    """(transforms (T, 2, 3), canonical (T, points, 2)) of one clip's faces.

    The head is placed from the smoothed ``landmarks`` (a steady canonical frame), the points
    mapped are the ``raw`` ones (where each frame's pixels really are): what the motion engine
    and a profile's mouth bank both measure shapes in.
    """
    transforms = canonical_transforms(landmarks, stable_template(landmarks))
    return transforms, apply_affine(transforms, np.asarray(raw, np.float64)[:, :points])


def canonical_motion_points(landmarks: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """(T, len(MOTION_POINTS), 2) motion points in the canonical frame."""
    points = np.asarray(landmarks, np.float64)[:, list(MOTION_POINTS)]
    return apply_affine(transforms, points)


def aperture(shapes: np.ndarray) -> np.ndarray:
    """(T,) inner-lip opening (points 13-14) of canonical motion shapes, in eye units."""
    shapes = np.asarray(shapes, np.float64)
    return np.linalg.norm(shapes[:, UPPER_INNER] - shapes[:, LOWER_INNER], axis=-1)


def mouth_width(shapes: np.ndarray) -> np.ndarray:
    """(T,) distance between the outer mouth corners (61, 291) of canonical motion shapes, in eye units."""
    shapes = np.asarray(shapes, np.float64)
    return np.linalg.norm(shapes[:, LEFT_CORNER] - shapes[:, RIGHT_CORNER], axis=-1)


def moving_average(values: np.ndarray, span: int) -> np.ndarray:
    """Centred moving average over ``span`` samples along axis 0, edges using what exists; NaN-aware."""
    values = np.asarray(values, np.float64)
    if span <= 1 or len(values) == 0:
        return values.copy()
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    half_left = (span - 1) // 2
    half_right = span - 1 - half_left
    pad = [(half_left + 1, half_right)] + [(0, 0)] * (values.ndim - 1)
    sums = np.cumsum(np.pad(filled, pad), axis=0)
    counts = np.cumsum(np.pad(finite.astype(np.float64), pad), axis=0)
    total = sums[span:] - sums[:-span]
    count = counts[span:] - counts[:-span]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def smoothing_radius(sigma: float) -> int:
    """Frames `gaussian_smooth` reads on each side at ``sigma`` (0 when it does not smooth)."""
    return 0 if sigma <= 0 else max(1, int(round(3 * sigma)))


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass along axis 0 (frames), edges padded with the edge value; sigma in frames."""
    values = np.asarray(values, np.float64)
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = smoothing_radius(sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    out = np.zeros_like(values)
    for k, weight in enumerate(kernel):
        out += weight * padded[k: k + len(values)]
    return out


def rest_track(shapes: np.ndarray, fps: float, search_seconds: float = REST_SEARCH_SECONDS,
               smooth_seconds: float = REST_SMOOTH_SECONDS) -> np.ndarray:
    """(T, P, 2) closed-mouth shape of every moment (see the module docstring).

    For frame t: the shape of the most closed frame within ``search_seconds`` either side, then a
    centred moving average over ``smooth_seconds``. A clip with one frame (a photo) is its own rest.
    """
    shapes = np.asarray(shapes, np.float64)
    opening = aperture(shapes)
    opening = np.where(np.isfinite(opening), opening, np.inf)
    reach = max(0, int(round(search_seconds * fps)))
    n = len(shapes)
    closest = np.empty(n, np.int64)
    for t in range(n):
        lo, hi = max(0, t - reach), min(n, t + reach + 1)
        # Among (nearly) equally closed frames, the nearest in time: a closed mouth that slowly
        # smiles must not lag by half the search window.
        nearness = TIE_BREAK * np.abs(np.arange(lo, hi) - t) / max(1, reach)
        closest[t] = lo + int(np.argmin(opening[lo:hi] + nearness))
    picked = shapes[closest]
    return moving_average(picked, max(1, int(round(smooth_seconds * fps))))


#: Jaw and chin follow this share of the lower lip's movement when `closed_mouth` closes the lips.
JAW_FOLLOW = 0.6


def closed_mouth(shapes: np.ndarray) -> np.ndarray:
    """(T, P, 2) shapes with the lips brought together: the rest shape of a single photo.

    A photo shows one moment, often with the mouth open (a smile, mid-word); as a rest it would
    never let the mouth close. Each pair of facing inner-lip points meets at its midpoint, the
    outer lip points move with their inner partners (the lips keep their thickness) and the jaw
    and chin follow the lower lip by `JAW_FOLLOW`. A closed mouth is returned unchanged.
    """
    shapes = np.asarray(shapes, np.float64).copy()
    n_outer = len(LIP_OUTER)
    lower_moves = []
    for i in range(1, 10):  # lower-lip point i faces upper-lip point 20 - i on both rings
        lo, up = n_outer + i, n_outer + 20 - i
        mid = (shapes[:, lo] + shapes[:, up]) / 2
        d_lo, d_up = mid - shapes[:, lo], mid - shapes[:, up]
        shapes[:, lo] += d_lo
        shapes[:, up] += d_up
        shapes[:, i] += d_lo
        shapes[:, 20 - i] += d_up
        lower_moves.append(d_lo)
    jaw = slice(2 * n_outer, len(MOTION_POINTS))
    shapes[:, jaw] += JAW_FOLLOW * np.mean(lower_moves, axis=0)[:, None, :]
    return shapes


#: A photo opened wider than this (eye units) shows teeth that closing would squeeze into a dark
#: line; its rest keeps `PHOTO_KEEP` of the opening instead of shutting it.
PHOTO_OPEN = 0.06
PHOTO_KEEP = 0.5


#: What "rest" means for a video (a motion recipe's ``rest``): ``"closed"``, the moment's most closed
#: mouth with the lips brought together (`closed_mouth`), or ``"envelope"``, that mouth as it is.
REST_KINDS = ("closed", "envelope")


def video_rest(shapes: np.ndarray, fps: float, kind: str = "closed") -> np.ndarray:
    """(T, P, 2) rest shapes of a video: `rest_track`, closed (`closed_mouth`) unless ``kind`` is
    ``"envelope"``.

    Why closed. A speaker who talks without pause for a second or two never closes the mouth
    inside `rest_track`'s search window, so the envelope itself opens and shuts with the input's
    own speech. Dubbing other speech onto it, that slow opening is the *old* speech showing through
    (measured, offline targets on the 10 validation cross-dub pairs: aperture r with the new
    speaker's real mouth 0.498 with the envelope, 0.563 closed; woman_politician_uk dubbed with
    woman_seated_vertical 0.15 -> 0.66). With a closed rest the speech motion is the whole opening,
    and the model (trained on the same definition) predicts it from the speech. The input's slow
    expression stays: `keep_slow_expression` restores its width and corner height.
    """
    return rest_of_moment(rest_track(shapes, fps), kind)


def rest_of_moment(moment: np.ndarray, kind: str = "closed") -> np.ndarray:
    """`video_rest` from an already computed `rest_track` ``moment`` (T, P, 2): closed
    (`closed_mouth`) unless ``kind`` is ``"envelope"``. For callers that need the moment too."""
    if kind not in REST_KINDS:
        raise ValueError(f"rest must be one of {', '.join(REST_KINDS)}, not {kind!r}")
    return closed_mouth(moment) if kind == "closed" else moment


def photo_rest(shapes: np.ndarray) -> np.ndarray:
    """The rest shape of a photo: lips together when nearly closed, half-parted when wide open.

    On the bundled smiling demo photo (opening 0.116), shutting the lips left a dark seam of
    squeezed teeth between them (looked at in a contact sheet); half-parted keeps the smile's teeth
    and still lets speech close and open the mouth around it.
    """
    shapes = np.asarray(shapes, np.float64)
    closed = closed_mouth(shapes)
    keep = np.where(aperture(shapes) > PHOTO_OPEN, PHOTO_KEEP, 0.0)[:, None, None]
    return closed + keep * (shapes - closed)


#: A moment's rest wider than this multiple of the widest closed mouth the video shows cannot be
#: drawn shut from its own pixels (`keep_unclosable_openings`); the keep ramps in over `GRIN_RAMP`.
GRIN_WIDTH_RATIO = 1.12
GRIN_RAMP = 0.08
GRIN_KEEP = 1.0
#: A frame opened less than this (eye units) counts as closed for `widest_closed_width`.
CLOSED_BELOW = 0.05


def widest_closed_width(shapes: np.ndarray, closed_below: float = CLOSED_BELOW) -> float:
    """95th percentile of the mouth width (eye units) over the frames of ``shapes`` whose opening is
    under ``closed_below``; 0.0 when the video never closes its mouth."""
    shapes = np.asarray(shapes, np.float64)
    opening, width = aperture(shapes), mouth_width(shapes)
    closed = np.isfinite(opening) & np.isfinite(width) & (opening < closed_below)
    return float(np.percentile(width[closed], 95)) if closed.any() else 0.0


def unclosable_share(moment: np.ndarray, widths: np.ndarray, widest_closed: float,
                     ratio: float = GRIN_WIDTH_RATIO, ramp: float = GRIN_RAMP, keep: float = GRIN_KEEP,
                     open_above: float = PHOTO_OPEN) -> np.ndarray:
    """(T,) 0..``keep``: how much of the moment's opening a rest keeps (`keep_unclosable_openings`).

    ``moment`` (T, P, 2) is `rest_track`'s most closed mouth of each moment; ``widths`` (T,) how
    wide the mouth will be drawn (the input's own slow width: the targets keep it,
    `lipdub.motion.transfer.keep_slow_expression`), in eye units. A moment wider than ``ratio``
    times ``widest_closed`` (`widest_closed_width`) keeps ``keep``, ramping in over ``ramp`` of that
    ratio; only moments opened wider than ``open_above`` keep anything. A video that never closes
    its mouth (``widest_closed`` 0) keeps every such opening.
    """
    moment = np.asarray(moment, np.float64)
    if widest_closed <= 0:
        excess = np.ones(len(moment))
    else:
        excess = np.clip((np.asarray(widths, np.float64) / widest_closed - ratio) / ramp, 0.0, 1.0)
    return keep * np.nan_to_num(excess) * (np.nan_to_num(aperture(moment)) > open_above)


def keep_unclosable_openings(closed: np.ndarray, moment: np.ndarray, share: np.ndarray) -> np.ndarray:
    """(T, P, 2) closed rest shapes that keep ``share`` (T,) of the moment's opening, where no
    closed mouth the video shows is wide enough to draw them shut (`unclosable_share`).

    ``closed`` is `closed_mouth` of ``moment`` (`rest_track`'s most closed mouth of each moment).
    Why: a speaker who grins with her teeth for seconds (silent/woman_smiling_expressive.mp4: mouth
    0.69-0.73 eye units wide, 0.2-0.24 open) never closes her lips at that width; her closed mouths
    are at most 0.58 wide. Shut, the rest asks for lips that no frame has: the renderer stretched a
    narrow closed mouth to the grin's width and drew a one-pixel upper lip, and warping the grin's
    own teeth shut squeezes them into a jagged white line. Kept open, the grin keeps its own teeth
    and speech still moves around it.
    """
    closed = np.asarray(closed, np.float64)
    moment = np.asarray(moment, np.float64)
    return closed + np.asarray(share, np.float64)[:, None, None] * (moment - closed)


#: The upper lip's points on both rings (`LIP_OUTER` / `LIP_INNER` order: corner, lower lip, corner,
#: upper lip).
UPPER_LIP = tuple(range(11, 20)) + tuple(len(LIP_OUTER) + i for i in range(11, 20))


def hold_raised_upper_lip(motion: np.ndarray, share: np.ndarray) -> np.ndarray:
    """(T, P, 2) speech ``motion`` whose raising of the upper lip (upward y) is scaled by
    1 - ``share`` (T,), the share of an opening a kept grin already shows (`unclosable_share`).

    Why: a grin has already raised the upper lip as far as it goes; speech opens a grinning mouth
    with the jaw. Raised further, the lip was pushed 4-6 px into the still skin under the nose and
    that skin folded into a seam of dark dots along the lip's top edge
    (silent/mead_W009_front_happy_level3_001.mp4 dubbed with English, frames 0-4).
    """
    motion = np.asarray(motion, np.float64).copy()
    factor = 1.0 - np.clip(np.asarray(share, np.float64), 0.0, 1.0)
    upper = motion[:, UPPER_LIP, 1]
    motion[:, UPPER_LIP, 1] = np.where(upper < 0, upper * factor[:, None], upper)
    return motion


def speech_motion(shapes: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """(T, P * 2) flattened motion of each frame away from its rest shape."""
    return (np.asarray(shapes, np.float64) - np.asarray(rest, np.float64)).reshape(len(shapes), -1)


def articulation_scale(motion: np.ndarray) -> float:
    """How strongly a speaker articulates: RMS norm of the motion over frames that move at all.

    The quietest third of frames (mostly pauses, where the motion is ~0) are left out so a clip
    with long silences does not read as a mumbler.
    """
    norms = np.linalg.norm(np.asarray(motion, np.float64), axis=1)
    norms = norms[np.isfinite(norms)]
    if len(norms) == 0:
        return 0.0
    kept = np.sort(norms)[len(norms) // 3:]
    return float(np.sqrt(np.mean(kept ** 2))) if len(kept) else 0.0


@dataclass(frozen=True)
class MotionBasis:
    """PCA of speech motion: motion ≈ coefficients @ components (no mean: rest means zero motion)."""

    components: np.ndarray  # (K, P * 2)
    variance: np.ndarray  # (K,) variance of each coefficient in the data it was fitted on

    @classmethod
    def fit(cls, motion: np.ndarray, count: int) -> MotionBasis:
        """Principal directions of (N, P * 2) motion vectors, uncentred (zero motion stays zero)."""
        motion = np.asarray(motion, np.float64)
        motion = motion[np.isfinite(motion).all(axis=1)]
        _, singular, vt = np.linalg.svd(motion, full_matrices=False)
        variance = singular[:count] ** 2 / max(1, len(motion))
        return cls(vt[:count].astype(np.float32), variance.astype(np.float32))

    def encode(self, motion: np.ndarray) -> np.ndarray:
        return np.asarray(motion, np.float64) @ self.components.T.astype(np.float64)

    def decode(self, coefficients: np.ndarray) -> np.ndarray:
        return np.asarray(coefficients, np.float64) @ self.components.astype(np.float64)

    def to_dict(self) -> dict:
        return {"components": self.components.tolist(), "variance": self.variance.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> MotionBasis:
        return cls(np.asarray(data["components"], np.float32), np.asarray(data["variance"], np.float32))
