"""Audio features for the lip motion model: one log-mel window per video frame.

The mel itself is Wav2Lip's (`lipdub.media.features.melspectrogram`, 80 columns per second), so
the whole project has one audio front end. What differs from the generator's 0.2 s window is the
context: the mouth starts moving for a sound before it is heard (co-articulation, ~100-200 ms), so
the motion model sees `WINDOW_COLUMNS` columns (0.6 s) *centred* on the frame for offline dubbing,
or a window ending `lookahead` columns after the frame for streaming.

`normalise_mel` removes the recording's spectral tilt (microphone, room, codec) by subtracting each
band's mean over the louder half of the columns: a level that is constant over a clip says nothing
about the mouth, and the corpus mixes studio, TV, phone and webcam audio.

The alternative front ends (recipe ``features="whisper"``, the ``lipdub[whisper]`` extra, or
``features="whisper-base"``, the ``lipdub[whisper-base]`` extra) read frozen Whisper encoder
states (`lipdub.media.speech_encoder`: tiny.en 384 channels, multilingual base 512; 50 per
second, state j centred at 0.02 * j s) through the same `frame_windows`, with
``columns_per_second=WHISPER_COLUMNS_PER_SECOND``, `WHISPER_WINDOW_COLUMNS` (0.62 s) and edge
fill `WHISPER_FILL`; neither `normalise_mel` nor the mel gain jitter applies to them.
"""

from __future__ import annotations

import numpy as np

from lipdub.media.features import MelConfig
from lipdub.media.speech_encoder import WHISPER_VARIANTS

WINDOW_COLUMNS = 49
#: Value of a silent column in Wav2Lip's normalised mel (-max_abs_value).
SILENCE = -4.0

#: The motion recipe's ``features`` values: the log-mel, or the states of a Whisper variant.
FEATURES = ("mel", *WHISPER_VARIANTS)
WHISPER_COLUMNS_PER_SECOND = 50.0
WHISPER_WINDOW_COLUMNS = 31  # 0.62 s of encoder states centred on the frame
WHISPER_FILL = 0.0


def feature_channels(features: str, mel_bands: int = 80) -> int:
    """Input channels of a motion network reading ``features`` (one of `FEATURES`)."""
    return WHISPER_VARIANTS[features].channels if features in WHISPER_VARIANTS else mel_bands


def feature_window(features: str) -> int:
    """Columns in one frame's window of ``features``: `WHISPER_WINDOW_COLUMNS` or `WINDOW_COLUMNS`."""
    return WHISPER_WINDOW_COLUMNS if features in WHISPER_VARIANTS else WINDOW_COLUMNS


def is_whisper(features: str) -> bool:
    """Whether ``features`` are Whisper encoder states (of any variant) rather than the log-mel."""
    return features in WHISPER_VARIANTS


def normalise_mel(mel: np.ndarray, standardise: bool = False) -> np.ndarray:
    """(80, C) mel minus each band's mean over the loudest half of the columns (see module doc).

    ``standardise`` also divides each band by its spread over those columns (floored at 0.25 so a
    band that never changes is not blown up), removing the recording's dynamic range as well.
    """
    mel = np.asarray(mel, np.float32)
    if mel.shape[1] == 0:
        return mel.copy()
    out = mel - band_levels(mel)
    if standardise:
        out = out / np.maximum(mel[:, loud_columns(mel)].std(axis=1, keepdims=True), 0.25)
    return out.astype(np.float32)


def loud_columns(mel: np.ndarray) -> np.ndarray:
    """(C,) bool: the columns of an (80, C) mel at or above its median column energy (the louder half)."""
    energy = np.asarray(mel).mean(axis=0)
    return energy >= np.median(energy)


def band_levels(mel: np.ndarray) -> np.ndarray:
    """(80, 1) each band's mean over the louder half of the columns: what `normalise_mel` subtracts.
    A stream (`lipdub.motion.streaming`) estimates it from what it has heard."""
    mel = np.asarray(mel, np.float32)
    return mel[:, loud_columns(mel)].mean(axis=1, keepdims=True)


def window_index(frames: int, fps: float, columns_per_second: float, columns: int = WINDOW_COLUMNS,
                 lookahead: int | None = None, first: int = 0) -> np.ndarray:
    """(frames - first, columns) int64: the feature column each window position of frames
    first..frames-1 reads (may fall outside the track: the caller fills those).

    Frame t sits at column c = round(t * columns_per_second / fps) (column j is centred at time
    j / columns_per_second). Centred windows cover c - columns // 2 .. c + columns // 2; with
    ``lookahead`` = L they end at c + L instead (causal up to L columns).
    """
    centres = np.round(np.arange(first, frames) * columns_per_second / fps).astype(np.int64)
    last = centres + (columns // 2 if lookahead is None else lookahead)
    return last[:, None] - np.arange(columns - 1, -1, -1)[None, :]


def gather_windows(track: np.ndarray, index: np.ndarray, fill: float, dtype=np.float32) -> np.ndarray:
    """(len(index), C, columns) windows of the (C, S) ``track`` at ``index``; ``fill`` outside it."""
    track = np.asarray(track)
    padded = np.concatenate([track, np.full((track.shape[0], 1), fill, track.dtype)], axis=1)
    outside = (index < 0) | (index >= track.shape[1])
    index = np.where(outside, track.shape[1], index)
    return np.ascontiguousarray(padded[:, index].transpose(1, 0, 2), dtype=dtype)


def frame_windows(mel: np.ndarray, frames: int, fps: float, config: MelConfig = MelConfig(),
                  columns: int = WINDOW_COLUMNS, lookahead: int | None = None,
                  fill: float = SILENCE, first: int = 0, columns_per_second: float | None = None) -> np.ndarray:
    """(frames - first, C, columns) float32: the feature window of every video frame first..frames-1
    (``first`` lets a long track be windowed a chunk at a time: 16 KB a frame adds up to 1.4 GB an
    hour at 25 fps).

    ``mel`` is any (C, S) track of evenly spaced columns, ``columns_per_second`` of them (default:
    the mel's, ``config.sample_rate / config.hop_length`` = 80, column j centred on sample j * hop;
    Whisper states: 50). Columns outside the track are ``fill`` (silence for the mel), so the first
    and last frames hear the silence that is really there. See `window_index`.
    """
    if columns_per_second is None:
        columns_per_second = config.sample_rate / config.hop_length
    index = window_index(frames, fps, columns_per_second, columns, lookahead, first)
    return gather_windows(np.asarray(mel, np.float32), index, fill)


class StateWindows:
    """Per-frame windows of one (C, S) feature track, gathered when indexed.

    A Whisper window is 384 x 31 values (24 KB a frame in float16): the corpus' windows would not
    fit in memory, its states (C x S, 50 a second) do. Indexing with a slice or index array gives
    float32 windows like `frame_windows`'s.
    """

    def __init__(self, track: np.ndarray, index: np.ndarray, fill: float):
        track = np.asarray(track, np.float16)
        self.channels, n = track.shape
        # One fill column after the states, made once (training indexes a clip many times a step);
        # indices outside the track point at it.
        self.padded = np.concatenate([track, np.full((self.channels, 1), fill, np.float16)], axis=1)
        self.index = np.where((index < 0) | (index >= n), n, index)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.index), self.channels, self.index.shape[1])

    def __getitem__(self, key) -> np.ndarray:
        return np.ascontiguousarray(self.padded[:, self.index[key]].transpose(1, 0, 2), dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        windows = self[:]
        return windows if dtype is None else windows.astype(dtype)


def whisper_windows(states: np.ndarray, frames: int, fps: float) -> StateWindows:
    """Lazy (frames, C, 31) windows of (S, C) Whisper encoder states, centred on each frame."""
    index = window_index(frames, fps, WHISPER_COLUMNS_PER_SECOND, WHISPER_WINDOW_COLUMNS)
    return StateWindows(np.asarray(states).T, index, WHISPER_FILL)
