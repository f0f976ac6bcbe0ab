"""Does the mouth rest when the speech pauses? Speech activity per video frame and pause motion.

A lip-sync model that has only learnt "audio present → mouth moves" keeps mumbling through a
pause (breathing, room noise, the mel window's leftovers), which viewers notice at once and
SyncNet scores barely register: LSE is averaged over every window, and a pause is a few of them.
The figure here, `pause_motion_ratio`, is the mean mouth motion inside pauses of at least two
seconds divided by the mean motion while speaking. Real speakers in their own pauses are put at
about 0.26 (they breathe, swallow, half-close the lips; not re-measured here: no natural clip in
the shared data has a 2 s pause); the target for a dub is ≤ 0.4.

Speech activity is a plain energy detector, not a model: it only has to find two-second holes in
speech, not word boundaries, and it must behave the same on every clip so figures compare.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: Frames quieter than this (dB below the clip's loud level, `LOUD_PERCENTILE`) are not speech.
#: On the shared GRID clips, whose room noise sits 20-35 dB below the loud level, 20 dB keeps the
#: sentence and drops the silence around it, where 25 and 30 dB let noise bursts in. Over the ~100
#: shared files of natural speech it finds no 2 s pause inside speech (longest gap 1.7 s).
THRESHOLD_DB = 20.0
#: Percentile of the per-frame levels that stands for "the clip's loud level".
LOUD_PERCENTILE = 95.0
#: Absolute floor (dBFS): nothing quieter is speech, however quiet the whole clip is.
FLOOR_DB = -60.0
#: Bursts of activity shorter than this (s) are clicks or breaths, not speech.
MIN_SPEECH_SECONDS = 0.1
#: Activity is extended this long (s) after each burst: word ends decay below the threshold,
#: and stop closures or short gaps between words are still speech.
HANGOVER_SECONDS = 0.3
#: Frames trimmed (s) at each edge of a pause: the mouth closing after the last word and opening
#: before the next are part of speaking, not motion in the pause.
PAUSE_TRIM_SECONDS = 0.2


def _runs(mask: np.ndarray) -> list[tuple[bool, int, int]]:
    """Maximal runs of equal values in a boolean array, as (value, start, stop)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return []
    edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [mask.size]])
    return [(bool(mask[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def frame_levels(samples: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """(frames,) RMS level in dBFS of the audio under each video frame; -inf where silent or past the end.

    Frame ``t`` covers samples ``[round(t·sr/fps), round((t+1)·sr/fps))``, the time the frame is
    on screen (sample 0 = frame 0, as `lipdub.media.audio.load_audio` delivers it).
    """
    samples = np.asarray(samples, dtype=np.float64).ravel()
    bounds = np.round(np.arange(frames + 1) * (sample_rate / fps)).astype(np.int64)
    bounds = np.minimum(bounds, samples.size)
    energy = np.concatenate([[0.0], np.cumsum(samples * samples)])
    counts = np.diff(bounds)
    sums = energy[bounds[1:]] - energy[bounds[:-1]]
    levels = np.full(frames, -np.inf)
    has = counts > 0
    mean_square = np.maximum(sums[has] / counts[has], 0.0)  # cumsum differences can go an ulp negative
    with np.errstate(divide="ignore"):
        levels[has] = 10.0 * np.log10(mean_square)
    return levels


def speech_activity(samples: np.ndarray, sample_rate: int, fps: float, frames: int,
                    threshold_db: float = THRESHOLD_DB, floor_db: float = FLOOR_DB,
                    min_speech_seconds: float = MIN_SPEECH_SECONDS,
                    hangover_seconds: float = HANGOVER_SECONDS) -> np.ndarray:
    """(frames,) bool: is there speech under each video frame? An energy detector in four steps.

    1. The RMS level of each frame's audio (`frame_levels`).
    2. A frame is active when its level is within ``threshold_db`` of the clip's loud level (the
       `LOUD_PERCENTILE`-th percentile of the finite frame levels) and above ``floor_db``. Relative
       to the clip, so a quiet recording is judged like a loud one; the floor keeps a silent track
       silent. Noise louder than loud-level − threshold (0 dB SNR speech) reads as speech.
    3. Active runs shorter than ``min_speech_seconds`` are dropped (clicks, a breath).
    4. Every active run is extended by ``hangover_seconds`` (decaying word ends; this also bridges
       gaps between words shorter than the hangover).
    """
    if frames <= 0:
        return np.zeros(0, dtype=bool)
    levels = frame_levels(samples, sample_rate, fps, frames)
    finite = levels[np.isfinite(levels)]
    if finite.size == 0:
        return np.zeros(frames, dtype=bool)
    loud = float(np.percentile(finite, LOUD_PERCENTILE))
    active = (levels > loud - threshold_db) & (levels > floor_db)
    min_frames = min_speech_seconds * fps
    for value, start, stop in _runs(active):
        if value and stop - start < min_frames:
            active[start:stop] = False
    hangover = int(round(hangover_seconds * fps))
    if hangover > 0:
        extended = active.copy()
        for value, start, stop in _runs(active):
            if value:
                extended[stop : stop + hangover] = True
        active = extended
    return active


def pauses(active: np.ndarray, fps: float, min_seconds: float = 2.0,
           trim_seconds: float = PAUSE_TRIM_SECONDS) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) of the inactive runs lasting at least ``min_seconds``.

    The length test is on the whole inactive run; the range returned is then shortened by
    ``round(trim_seconds · fps)`` frames at each end, so the mouth closing after the last word and
    opening for the next one do not count as motion in the pause. Silence before the first word
    and after the last one counts too: the dubbed mouth should be still there as well.
    """
    trim = int(round(trim_seconds * fps))
    found = []
    for value, start, stop in _runs(active):
        if not value and (stop - start) / fps >= min_seconds - 1e-9 and stop - start > 2 * trim:
            found.append((start + trim, stop - trim))
    return found


def mouth_motion(aperture: np.ndarray) -> np.ndarray:
    """(N,) motion of the mouth at each frame: |aperture[t] − aperture[t−1]|; NaN at frame 0.

    Frame-to-frame change of the opening rather than the opening itself: a mouth resting half open
    is still, and speech is the opening and closing. Kept aligned with the frames (NaN at t = 0, and
    wherever either frame has no face) so it can be masked by per-frame speech activity.
    """
    aperture = np.asarray(aperture, dtype=np.float64).ravel()
    motion = np.full(aperture.shape, np.nan)
    motion[1:] = np.abs(np.diff(aperture))
    return motion


def pause_motion_ratio(aperture: np.ndarray, active: np.ndarray, fps: float, min_seconds: float = 2.0) -> float:
    """Mean `mouth_motion` inside the `pauses` of at least ``min_seconds`` / mean motion while speaking.

    0 = the mouth is perfectly still in pauses, 1 = it moves as much as in speech. NaN when there is
    no such pause (or no finite motion in it or in speech), so "no pause to judge" is never read as
    a good score; inf when the mouth moves in pauses but never while speaking. ``aperture`` and
    ``active`` are paired by frame index over their common length.
    """
    motion = mouth_motion(aperture)
    active = np.asarray(active, dtype=bool).ravel()
    n = min(motion.size, active.size)
    motion, active = motion[:n], active[:n]
    in_pause = np.zeros(n, dtype=bool)
    for start, stop in pauses(active, fps, min_seconds):
        in_pause[start:stop] = True
    pause_values = motion[in_pause & np.isfinite(motion)]
    speech_values = motion[active & np.isfinite(motion)]
    if pause_values.size == 0 or speech_values.size == 0:
        return float("nan")
    speaking, resting = float(speech_values.mean()), float(pause_values.mean())
    if speaking == 0.0:
        return float("nan") if resting == 0.0 else float("inf")
    return resting / speaking
