"""Speech -> lower-face motion while the speech is still arriving (a live microphone, a call).

`MotionPredictor.predict_with_gate` needs the whole track: its mel is normalised by the track's
loud columns, its speech gate by the track's loud level, and its smoothing looks both ways.
`StreamingMotion` gives the same motion a piece of audio at a time, from a *causal* model (recipe
``causal``: each frame's window ends ``lookahead`` columns, 100 ms, after the frame, and its
temporal convolutions look only back), so a frame can be final a fixed time after its moment:

- the frame's window must be heard: ``lookahead`` columns plus half an STFT window (25 ms);
- the Gaussian smoothing (`MotionPredictor.smoothing`, sigma 1 frame) reads `smoothing_radius`
  frames ahead (3 at sigma 1: 120 ms at 25 fps), the speech gate's widening 2.

That is `latency_seconds`: 245 ms at 25 fps, before the time the work itself takes.

Each `push` recomputes only a short tail: the mel of the samples the pending frames' windows
read, the network over those frames plus `CONTEXT_FRAMES` before them (what the causal temporal
convolutions and the smoothing look back over), so the work per second of speech is constant and
memory stays bounded however long the stream runs.

What a stream cannot know is the track-wide statistics. Two running estimates replace them, over
the last `HISTORY_SECONDS` heard: the mel's per-band level over the louder half of its columns
(`lipdub.motion.features.normalise_mel`) and the loud level the speech gate opens relative to
(the 90th percentile of frame loudness, never below `MIN_LOUD_LEVEL`). Until a stream has said
enough, each is blended with a starting value (`stream_levels.json`: medians over the causal
model's real training clips, written by ``experiments/stream_levels.py``), the heard estimate
weighing ``n / (n + PRIOR_SECONDS)`` after ``n`` seconds (of the louder columns, for the mel).
Why: running estimates alone start from a second of whatever came first, often silence, and on
the ten validation clips (3-60 s, 40 ms pieces) the streamed mouth opening followed the real one
with r 0.293 on average against 0.385 offline; with the starting values, 0.383 (ad-hoc probe,
stop 25). Given the whole track's values instead (``band_levels``, ``loud_level``), the streamed
motion equals the offline prediction (tested to 1e-5 whatever the piece sizes).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from lipdub.errors import LipdubError
from lipdub.media.features import melspectrogram
from lipdub.motion.features import SILENCE, WINDOW_COLUMNS, band_levels, gather_windows, window_index
from lipdub.motion.predictor import GATE_WIDEN, LOUDNESS_COLUMNS, MEL, MotionPredictor, speech_gate
from lipdub.motion.shape import MOTION_POINTS, gaussian_smooth, smoothing_radius

logger = logging.getLogger(__name__)

#: Frames computed before the first pending one: the causal temporal convolutions' reach (kernel 5
#: at dilations 1 and 2: 4 + 8 frames), the smoothing radius (3) and the gate's widening (2).
CONTEXT_FRAMES = 4 + 8 + 3 + 2
#: Frames computed per push are rounded up to a multiple of this (`StreamingMotion._emit`).
SHAPE_STEP = 8
#: Span of the running mel level and loud level estimates.
HISTORY_SECONDS = 30.0
#: Lowest loud level (raw mel units, -4 = digital silence) the gate is measured from. The gate
#: shuts `GATE_SHUT` (2.5) below the loud level, so from -1.5 down digital silence itself would
#: open the mouth, as room noise would after a long silent stretch. Measured (stop 25): the 90th
#: percentiles of frame loudness of the first 40 speech tracks of ``../shared/data/audio`` are
#: -1.48 to +0.21, of the causal model's 38 real training clips -2.08 to +0.52 (five below -1.5:
#: a stream gates those quiet speakers a little more than a dub does).
MIN_LOUD_LEVEL = -1.5
#: Seconds of speech the starting levels (`LEVELS_FILE`) weigh as (module docstring).
PRIOR_SECONDS = 2.0
LEVELS_FILE = Path(__file__).with_name("stream_levels.json")


@lru_cache(maxsize=1)
def starting_levels() -> tuple[np.ndarray, float]:
    """((80, 1) band levels, loud level) a stream assumes before it has heard its speaker (`LEVELS_FILE`)."""
    record = json.loads(LEVELS_FILE.read_text())
    levels = np.asarray(record["band_levels"], np.float32).reshape(-1, 1)
    levels.setflags(write=False)
    return levels, float(record["loud_level"])


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def loud_level(loudness: np.ndarray, floor: float = MIN_LOUD_LEVEL) -> float:
    """The gate's reference level: the 90th percentile of ``loudness``, at least ``floor``."""
    loudness = np.asarray(loudness, np.float64)
    return float(max(np.percentile(loudness, 90), floor)) if loudness.size else float(floor)


class StreamingMotion:
    """Causal speech motion of a stream, a piece of audio at a time (module docstring).

    ``push(samples)`` takes the next 16 kHz mono float samples and returns the (k, P, 2) motion of
    the frames that became final (often none, sometimes several); ``finish()`` treats the stream
    as ended and returns the rest. Frames are numbered from the stream's first sample, at ``fps``.
    """

    def __init__(self, predictor: MotionPredictor, fps: float, band_levels: np.ndarray | None = None,
                 loud_level: float | None = None, history_seconds: float = HISTORY_SECONDS):
        for member in predictor.members:
            recipe = member.recipe
            if member.features != "mel" or not recipe.get("causal", False):
                raise LipdubError(f"motion model {predictor.name} cannot stream: live use needs a causal mel model "
                                  "(lipdub-motion-causal)")
            if recipe.get("standardise_mel", False):
                raise LipdubError("streaming does not support models trained on standardised mel")
        lookaheads = {int(member.recipe.get("lookahead", 8)) for member in predictor.members}
        if len(lookaheads) != 1:
            raise LipdubError(f"motion model {predictor.name} mixes members with different look-aheads")
        if fps <= 0:
            raise LipdubError(f"the frame rate must be positive, got {fps}")
        self.predictor = predictor
        self.fps = float(fps)
        self.lookahead = lookaheads.pop()
        self.radius = smoothing_radius(predictor.smoothing)
        # Frames past a frame that must be computed before it is final: the smoothing's and the gate's reach.
        self.ahead = max(self.radius, GATE_WIDEN)
        self._fixed_levels = None if band_levels is None else np.asarray(band_levels, np.float32).reshape(-1, 1)
        self._fixed_loud = loud_level
        self._columns_per_second = MEL.sample_rate / MEL.hop_length
        self._history_columns = int(history_seconds * self._columns_per_second)
        self._history_frames = int(history_seconds * self.fps)
        self._samples = np.zeros(0, np.float32)  # the tail still needed; its first sample is number `_offset`
        self._offset = 0
        self._heard = 0  # samples pushed so far
        self._next = 0  # the first frame not yet returned
        self._mel_history: list[np.ndarray] = []  # raw mel columns heard (for the running estimates)
        self._mel_seen = 0  # global index of the next column to add to the history
        self._loudness_history: list[float] = []
        self._finished = False
        #: The speech gate (0..1) of the frames the last `push` or `finish` returned: a live video
        #: avatar holds a closed mouth where it stays shut (`lipdub.render.hold.live_hold_step`).
        self.last_gate = np.zeros(0)

    # -- what a caller may ask ------------------------------------------------------------------
    @property
    def latency_seconds(self) -> float:
        """How long after a frame's moment its motion is final (module docstring)."""
        return (self.lookahead / self._columns_per_second + MEL.n_fft / 2 / MEL.sample_rate
                + self.ahead / self.fps)

    @property
    def frames_done(self) -> int:
        """Frames returned so far."""
        return self._next

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Motion of the frames the audio heard so far makes final; (0, P, 2) when none."""
        if self._finished:
            raise LipdubError("the stream has finished")
        samples = np.asarray(samples, np.float32).ravel()
        if samples.size:
            self._samples = np.concatenate([self._samples, samples])
            self._heard += samples.size
        last_column = (self._heard - MEL.n_fft // 2) // MEL.hop_length  # the last column fully heard
        # Frame t is final once the column its smoothed motion reads furthest ahead is heard.
        ready = self._next
        while self._column(ready + self.ahead) + self.lookahead <= last_column:
            ready += 1
        if ready == self._next:
            self.last_gate = np.zeros(0)
            return np.zeros((0, len(MOTION_POINTS), 2))
        return self._emit(ready, ready + self.ahead, end_of_track=False)

    def finish(self) -> np.ndarray:
        """Motion of every frame left, the stream ended: as many frames in all as an offline run
        gives the same audio (`lipdub.timeline.frames_for_duration`)."""
        from lipdub.timeline import frames_for_duration

        self.last_gate = np.zeros(0)
        if self._finished:
            return np.zeros((0, len(MOTION_POINTS), 2))
        self._finished = True
        if self._heard == 0:
            return np.zeros((0, len(MOTION_POINTS), 2))
        total = frames_for_duration(self._heard / MEL.sample_rate, self.fps)
        if total <= self._next:
            return np.zeros((0, len(MOTION_POINTS), 2))
        return self._emit(total, total, end_of_track=True)

    # -- the work -------------------------------------------------------------------------------
    def _column(self, frame: int) -> int:
        """The mel column frame ``frame`` sits at (`window_index`)."""
        return int(np.round(frame * self._columns_per_second / self.fps))

    def _emit(self, stop: int, compute_stop: int, end_of_track: bool) -> np.ndarray:
        """Motion of frames ``_next``..``stop - 1``, computing frames up to ``compute_stop`` (the
        smoothing reads that far) from ``CONTEXT_FRAMES`` before ``_next``."""
        # A multiple of SHAPE_STEP frames: the convolutions' CPU kernels are prepared per input shape,
        # and a new shape every push made one push in ten take 100 ms instead of 10.
        first = max(0, compute_stop - _round_up(compute_stop - (self._next - CONTEXT_FRAMES), SHAPE_STEP))
        # Columns the frames' windows and loudness read (outside the track: silence, as offline).
        window_first = self._column(first) + self.lookahead - (WINDOW_COLUMNS - 1)
        loud_first = self._column(first) - LOUDNESS_COLUMNS // 2
        low = max(0, min(window_first, loud_first))
        mel, mel_start = self._mel_from(low, end_of_track)
        self._remember(mel, mel_start)
        levels = self._levels()
        normalised = mel - levels if self.predictor.members[0].recipe.get("normalise_mel", True) else mel
        frames = compute_stop - first
        motion = np.zeros((frames, len(MOTION_POINTS) * 2))
        track_columns = None if not end_of_track else 1 + self._heard // MEL.hop_length
        index = window_index(compute_stop, self.fps, self._columns_per_second, WINDOW_COLUMNS, self.lookahead, first)
        windows = self._gather(normalised, mel_start, index, track_columns)
        with torch.no_grad():
            for member in self.predictor.members:
                member.network.eval()
                out = member.network(torch.from_numpy(windows)[None])[0].numpy()
                motion += member.basis.decode(out)
        motion /= len(self.predictor.members)
        motion = self.predictor.gain * gaussian_smooth(motion, self.predictor.smoothing)
        loud_index = window_index(compute_stop, self.fps, self._columns_per_second, LOUDNESS_COLUMNS, None, first)
        loudness = self._gather(mel, mel_start, loud_index, track_columns).mean(axis=(1, 2))
        self._remember_loudness(loudness[self._next - first:stop - first])
        gate = speech_gate(loudness, peak=self._loud_level())
        out = (motion * gate[:, None])[self._next - first:stop - first]
        self.last_gate = gate[self._next - first:stop - first].copy()
        self._next = stop
        self._drop_before(max(0, self._next - CONTEXT_FRAMES - SHAPE_STEP))
        return out.reshape(len(out), len(MOTION_POINTS), 2)

    def _mel_from(self, column: int, end_of_track: bool) -> tuple[np.ndarray, int]:
        """Raw mel of the heard tail from global column ``column`` on, and the global index of its
        first column. Columns computed from a slice of the stream equal the whole track's where
        their window lies inside the slice, so the slice starts a few columns early (or at the
        stream's start, whose reflect padding is then the track's own)."""
        margin = MEL.n_fft // (2 * MEL.hop_length) + 1
        start_column = max(0, column - margin)
        start = start_column * MEL.hop_length
        if start < self._offset:
            raise AssertionError("streaming motion dropped samples it still needed")  # a bug, not bad input
        piece = self._samples[start - self._offset:]
        mel = melspectrogram(piece, MEL)
        if start_column > 0:  # the slice's first columns saw its reflect padding: not the track's
            mel, start_column = mel[:, margin:], start_column + margin
        if not end_of_track:  # columns whose window runs past what was heard are not final yet
            heard_last = (self._heard - MEL.n_fft // 2) // MEL.hop_length
            mel = mel[:, :max(0, heard_last - start_column + 1)]
        return mel, start_column

    @staticmethod
    def _gather(track: np.ndarray, track_start: int, index: np.ndarray, track_columns: int | None) -> np.ndarray:
        """`gather_windows` of a track that starts at global column ``track_start``; columns before
        the stream or after its end (``track_columns``) read as silence."""
        local = index - track_start
        outside = index < 0
        if track_columns is not None:
            outside |= index >= track_columns
        local = np.where(outside, -1, local)
        return gather_windows(track, local, SILENCE)

    def _remember(self, mel: np.ndarray, mel_start: int) -> None:
        """Add the columns of ``mel`` not yet in the running history (bounded)."""
        if self._fixed_levels is not None:
            return
        new_from = max(self._mel_seen - mel_start, 0)
        if new_from < mel.shape[1]:
            self._mel_history.append(mel[:, new_from:])
            self._mel_seen = mel_start + mel.shape[1]
        while sum(part.shape[1] for part in self._mel_history[1:]) >= self._history_columns:
            self._mel_history.pop(0)

    def _levels(self) -> np.ndarray:
        if self._fixed_levels is not None:
            return self._fixed_levels
        heard = np.concatenate(self._mel_history, axis=1)[:, -self._history_columns:]
        prior, _ = starting_levels()
        loud_columns = heard.shape[1] / 2  # `band_levels` reads the louder half
        weight = loud_columns / (loud_columns + PRIOR_SECONDS * self._columns_per_second)
        return weight * band_levels(heard) + (1.0 - weight) * prior

    def _loud_level(self) -> float:
        if self._fixed_loud is not None:
            return float(self._fixed_loud)
        _, prior = starting_levels()
        heard = np.asarray(self._loudness_history)
        weight = len(heard) / (len(heard) + PRIOR_SECONDS * self.fps)
        return weight * loud_level(heard) + (1.0 - weight) * prior if len(heard) else prior

    def _remember_loudness(self, loudness: np.ndarray) -> None:
        self._loudness_history.extend(float(x) for x in loudness)
        if len(self._loudness_history) > self._history_frames:
            del self._loudness_history[:-self._history_frames]

    def _drop_before(self, frame: int) -> None:
        """Forget the samples no frame from ``frame`` on reads."""
        column = self._column(frame) + self.lookahead - (WINDOW_COLUMNS - 1)
        column = min(column, self._column(frame) - LOUDNESS_COLUMNS // 2)
        keep_from = max(0, (column - MEL.n_fft // (2 * MEL.hop_length) - 2) * MEL.hop_length)
        if keep_from > self._offset:
            self._samples = self._samples[keep_from - self._offset:]
            self._offset = keep_from
