"""Pause hold: through a pause in the speech, every frame shows one real closed mouth.

Warping each input frame's lips shut gives the right *shape* in a pause, but the input speaker
keeps talking underneath: their lips change thickness, the closing warp leaves a faint dark seam
where the cavity was, and the re-measured mouth follows the input's words at a small amplitude
(measured on woman_seated_vertical with a spliced 2.5 s pause: target pause ratio 0.30, output
1.37, input 0.91). A real speaker in a pause shows one resting mouth. So inside a pause the skin,
lips and opening come from a single *hold frame* — the most closed input frame near the pause,
from the mouth bank — warped onto each frame's (still) target, and the frame's own pixels fade
back in over `FADE_SECONDS` at either end, where the mouth is already closed in both.

Pure functions here; the motion engine applies them (`lipdub.engines.motion`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipdub.eval.mouth import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from lipdub.render.mesh import NOSE_TIP

#: The speech gate is "shut" below this (`lipdub.motion.predictor.speech_gate`, 0..1).
GATE_SHUT_BELOW = 0.05
#: Only pauses at least this long are held: a short gap between words is articulation.
MIN_HOLD_SECONDS = 0.4
#: Cross-fade between the frame's own pixels and the hold frame at each end of a pause.
FADE_SECONDS = 0.12
#: Hold frames are looked for this far (seconds of input) around the pause's own input frames.
SEARCH_SECONDS = 1.0
#: A hold frame serves only frames whose head turns at most this much from it (`head_yaw` units:
#: the nose tip's sideways offset from between the eyes, in eye distances). Warping a nearly frontal
#: mouth onto a head turned further drew seams and slivers of the wall where the turned-away cheek
#: meets the background (`silent/style_nice_clip1.mp4` dubbed with `english_male_1.wav`, frames
#: 158-170 held on frame 182 at 0.26-0.32; frames 37-38, held on frame 30, 0.29-0.32). The holds of
#: the evaluation clips turn by at most 0.23 (man_phone_film's video protocol, which looks right
#: held; cutting it at 0.21 gave it a hold switch whose cross-fade ghosted the lips).
HOLD_YAW_LIMIT = 0.25


def head_yaw(points: np.ndarray) -> np.ndarray:
    """(...,) how far each face turns sideways: the nose tip's x offset from the middle of the outer
    eye corners, over the eye distance, of (..., 468+, 2) Face Mesh points (0 facing the camera,
    about +-0.3 at three-quarter view; its sign says which way). NaN without a face."""
    points = np.asarray(points, np.float64)
    eyes = points[..., [RIGHT_EYE_OUTER, LEFT_EYE_OUTER], :]
    distance = np.linalg.norm(eyes[..., 0, :] - eyes[..., 1, :], axis=-1)
    offset = points[..., NOSE_TIP, 0] - eyes[..., 0].mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(distance > 0, offset / distance, np.nan)


def yaw_segments(yaws: np.ndarray, hold_yaw: float, limit: float = HOLD_YAW_LIMIT,
                 min_frames: int = 1) -> list[tuple[int, int, bool]]:
    """[(start, stop, fits)) the run of frames with head turns ``yaws`` cut where they fit a hold frame
    turned ``hold_yaw`` (within ``limit``) and where they do not; NaN (no face) fits.

    Each stretch that does not fit is grown by ``min_frames // 2`` frames at both ends, and fitting
    gaps shorter than ``min_frames`` between two are given to them: a head hovering at the limit
    must not switch hold frames every other frame."""
    yaws = np.asarray(yaws, np.float64)
    misfit = np.abs(yaws - hold_yaw) > limit
    if min_frames > 1 and misfit.any():
        from scipy.ndimage import binary_closing, binary_dilation

        grown = binary_dilation(misfit, np.ones(2 * (min_frames // 2) + 1, bool))
        padded = np.concatenate([[False] * min_frames, grown, [False] * min_frames])
        misfit = binary_closing(padded, np.ones(min_frames, bool))[min_frames:-min_frames] | grown
    return sorted([(a, b, True) for a, b in runs_of(~misfit)] + [(a, b, False) for a, b in runs_of(misfit)])


def pause_runs(gate: np.ndarray, fps: float, min_seconds: float = MIN_HOLD_SECONDS,
               shut_below: float = GATE_SHUT_BELOW) -> list[tuple[int, int]]:
    """[(start, stop)) runs of output frames where the gate is shut for at least ``min_seconds``."""
    shortest = max(1, int(round(min_seconds * fps)))
    return [(a, b) for a, b in runs_of(np.asarray(gate, np.float64) < shut_below) if b - a >= shortest]


#: A frame whose own mouth is at least this open (eye units) while its target is at most
#: `NEARLY_SHUT` is drawn from a closed hold frame too (`closing_runs`). 0.12 until stop 26:
#: `woman_flag.mp4` live with the sample speech, loop frames 79-78 (openings 0.106-0.117 aimed at
#: 0.027-0.032) had their teeth squeezed into two dark fangs on the lower lip; at 0.10 they are held
#: shut (looked at). The engine figures moved little (docs/model-card.md, "Figures of stop 26").
WIDE_OPEN = 0.10
NEARLY_SHUT = 0.05
#: ... and so is a frame whose own mouth gapes (at least `GAPING`: a yawn, a scream) while its
#: target opens at most `SQUEEZE` of that.
GAPING = 0.2
SQUEEZE = 0.4


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) runs of True in a 1-D boolean mask."""
    mask = np.asarray(mask, bool)
    if mask.size == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [mask.size]])
    return [(int(a), int(b)) for a, b in zip(starts, stops) if mask[a]]


def closing_runs(own: np.ndarray, target: np.ndarray, grow: int, wide: float = WIDE_OPEN,
                 shut: float = NEARLY_SHUT, gaping: float = GAPING, squeeze: float = SQUEEZE) -> list[tuple[int, int]]:
    """Runs of output frames whose wide-open input mouth (``own`` >= ``wide``) must look shut
    (``target`` <= ``shut``), or whose gaping one (``own`` >= ``gaping``) must open at most
    ``squeeze`` of that, each grown by ``grow`` frames on both sides.

    Why: warping a wide-open mouth shut cannot make lips out of what lay between them; a tongue
    or a row of teeth is squeezed into a pink or white bar where the lips should meet (seen on
    woman_flag's first frame, tongue out, and on politician frames that read open although aimed
    shut). Such frames take their lower face from a closed frame, as a pause does; growing the
    run by the fade length lets the cross-fade finish before the frames that need it.
    The same holds for a yawn or a scream dubbed with speech: on expressive/d18.mp4 (openings
    0.4-0.58 eye units, targets 0.06-0.19) the tongue and the inside of the lower lip were squeezed
    into a swollen pink lower lip under a thin dark arc. A closed frame opened to the target shows
    lips and an opening instead.
    """
    need = closing_needed(own, target, wide, shut, gaping, squeeze)
    if grow > 0 and need.any():
        need = np.convolve(need.astype(np.float64), np.ones(2 * grow + 1), mode="same") > 0
    return runs_of(need)


def closing_needed(own, target, wide: float = WIDE_OPEN, shut: float = NEARLY_SHUT, gaping: float = GAPING,
                   squeeze: float = SQUEEZE) -> np.ndarray:
    """Per frame (same shape as ``own`` and ``target``, eye units): whether its wide-open mouth must
    look shut or its gaping one must open at most ``squeeze`` of that (`closing_runs`, ungrown)."""
    own = np.asarray(own, np.float64)
    target = np.asarray(target, np.float64)
    return ((own >= wide) & (target <= shut)) | ((own >= gaping) & (target <= squeeze * own))


@dataclass(frozen=True)
class LiveHold:
    """Where a live stream's pause hold stands after its last frame (`live_hold_step`): the hold's
    weight, the gate's shut frames in a row, the bank entry held (-1: none) and the slightly open
    mouth it borrows while the speech parts its lips (-1: none yet)."""

    weight: float = 0.0
    shut_run: int = 0
    entry: int = -1
    slit: int = -1


def live_hold_step(weight: float, shut_run: int, shut: bool, holdable: bool, min_frames: int,
                   fade_frames: int, at_once: bool = False) -> tuple[float, int]:
    """(weight, shut_run) of the next frame of a stream: `hold_weights` drawn causally, one frame at
    a time, for a live avatar that cannot see where a pause ends.

    ``shut_run`` counts the frames in a row whose gate is shut (this one included when ``shut``).
    Once it reaches ``min_frames`` (the pause is long enough to hold) and ``holdable`` (a hold
    frame fits this frame), the weight rises by 1 / (``fade_frames`` + 1) a frame up to 1; on any
    other frame it falls as fast down to 0. A dub fades in before the pause and out before the
    speech; live, both fades come after the fact, over the first frames of the pause and of the
    speech (a held frame is warped to the speech's target, so its mouth opens on time).
    ``at_once``: this frame needs the hold whole now (`closing_needed`: a wide-open mouth aimed
    shut, whose half-faded warp would show the squeezed bar the hold is there to avoid).
    """
    shut_run = shut_run + 1 if shut else 0
    step = 1.0 / (fade_frames + 1) if fade_frames > 0 else 1.0
    if at_once and holdable:
        return 1.0, shut_run
    weight = weight + step if shut_run >= min_frames and holdable else weight - step
    # Whole steps (so a fade ends at exactly 0 or 1, never a rounding error above 0 that keeps drawing the hold).
    return float(np.clip(round(weight / step) * step, 0.0, 1.0)), shut_run


def hold_weights(frames: int, runs: list[tuple[int, int]], fade_frames: int) -> np.ndarray:
    """(frames,) 0..1: how much of each output frame comes from its pause's hold frame.

    1 inside a run, ramping linearly from 0 over ``fade_frames`` at each end (a run shorter than two
    fades peaks below 1), 0 outside every run. A run that starts the clip or ends it has no fade
    at that end: there is no frame of its own to fade from.
    """
    weights = np.zeros(frames)
    for a, b in runs:
        k = np.arange(a, b)
        if fade_frames <= 0:
            ramp = np.ones(len(k))
        else:
            rise = np.inf if a == 0 else k - a + 1
            fall = np.inf if b >= frames else b - k
            ramp = np.minimum(np.minimum(rise, fall) / (fade_frames + 1), 1.0)
        weights[a:b] = np.maximum(weights[a:b], ramp)
    return weights


#: A hold frame narrower than its run's target mouth by more than this factor is not held: its lips
#: would be stretched thin across a grin (`fits_hold_width`).
HOLD_WIDTH_RATIO = 1.25


def fits_hold_width(hold_width: float, target_widths: np.ndarray, ratio: float = HOLD_WIDTH_RATIO) -> bool:
    """Whether a hold frame of mouth width ``hold_width`` may be warped onto targets this wide.

    Why: a pause inside a broad grin (silent/woman_smiling_expressive.mp4 dubbed with Japanese,
    target width 0.69-0.73 eye units) held the clip's most closed mouth, a pucker 0.48 wide;
    stretched 1.5x, its upper lip became a one-pixel line. Such a run is better drawn from its own
    frames. Judged on the median target width; True when either width is unknown.
    """
    widths = np.asarray(target_widths, np.float64)
    widths = widths[np.isfinite(widths)]
    if not widths.size or not np.isfinite(hold_width) or hold_width <= 0:
        return True
    return bool(np.median(widths) <= ratio * hold_width)


#: ... unless its own mouths would have to shut to less than this share of their opening
#: (`own_mouths_can_follow`).
OWN_FOLLOW_SHARE = 0.5


def own_mouths_can_follow(own_openings: np.ndarray, target_openings: np.ndarray,
                          share: float = OWN_FOLLOW_SHARE) -> bool:
    """Whether a run's own mouths, warped to its targets, keep at least ``share`` of their opening
    (median over the frames with a known, nonzero opening); True when none has one.

    Why: when a hold does not fit (`fits_hold_width`), the run is drawn from its own frames, which
    is right for a grin kept open, but a gaping mouth warped nearly shut smears its tongue and teeth
    into stripes (expressive/d6.mp4 dubbed with English, frames 104-124: render r 0.867 -> 0.633
    when its closing run was refused the hold). Such a run keeps its hold, however narrow.
    """
    own = np.asarray(own_openings, np.float64)
    target = np.asarray(target_openings, np.float64)
    known = np.isfinite(own) & np.isfinite(target) & (own > 0)
    if not known.any():
        return True
    return bool(np.median(target[known] / own[known]) >= share)


def choose_hold_frame(candidates: np.ndarray, openings: np.ndarray, centre: float,
                      reach: float, tie_break: float = 0.002) -> int:
    """Index into ``candidates`` (input frame numbers) of the hold frame for a pause near ``centre``.

    The most closed mouth (``openings``, eye units, NaN = no face) among candidates within
    ``reach`` frames of ``centre``, nearer ones winning ties (``tie_break`` eye units per ``reach``);
    when none is within reach, the nearest candidate with a face. -1 when no candidate has a face.
    """
    candidates = np.asarray(candidates, np.float64)
    openings = np.asarray(openings, np.float64)
    valid = np.isfinite(openings)
    if not valid.any():
        return -1
    distance = np.abs(candidates - centre)
    near = valid & (distance <= reach)
    if not near.any():
        return int(np.argmin(np.where(valid, distance, np.inf)))
    cost = openings + tie_break * distance / max(reach, 1.0)
    return int(np.argmin(np.where(near, cost, np.inf)))


def choose_slit_frame(candidates: np.ndarray, openings: np.ndarray, centre: float, reach: float,
                      targets: np.ndarray, widths: np.ndarray | None = None, target_width: float = 0.0,
                      tie_break: float = 0.002) -> int:
    """Index into ``candidates`` (input frame numbers) of a mouth a held frame may borrow its opening
    from while its target parts the lips a little (``targets``: the hold's openings in eye units
    above `lipdub.render.bank.CLOSED_TARGET`).

    A hold frame is closed, and painting a 2-5 px slit into it drew a hard black line over a white
    one. One mouth serves the whole hold, so its interior does not flicker: among candidates within
    ``reach`` frames of ``centre``, the one whose opening fits (`lipdub.render.interior.opening_fits`)
    the most of ``targets``, then whose opening is nearest their median plus, with ``widths`` (the
    candidates' mouth widths), whose width is nearest ``target_width`` (eye units both), nearer
    frames winning ties (``tie_break`` eye units per ``reach``); -1 when none fits any (the slit is
    painted as before). Face Mesh reads part of a borrowed mouth's width into the output: chosen by
    opening alone, `expressive/d6` borrowed a pucker 0.11 narrower than its target, and the kept
    expression's r fell from 0.82 to 0.64.
    """
    from lipdub.render.interior import opening_fits

    candidates = np.asarray(candidates, np.float64)
    openings = np.asarray(openings, np.float64)
    targets = np.asarray(targets, np.float64).ravel()
    usable = np.isfinite(openings) & (np.abs(candidates - centre) <= reach)
    if not usable.any() or not len(targets):
        return -1
    served = np.zeros(len(openings), np.int64)
    served[usable] = opening_fits(openings[usable, None], targets[None, :]).sum(axis=1)
    if served.max() == 0:
        return -1
    cost = np.abs(openings - np.median(targets)) + tie_break * np.abs(candidates - centre) / max(reach, 1.0)
    if widths is not None:
        cost = cost + np.abs(np.asarray(widths, np.float64) - target_width)
    return int(np.argmin(np.where(served == served.max(), cost, np.inf)))
