"""Audio features for the lip motion model: one log-mel window per video frame.

The mel itself is Wav2Lip's (`lipdub.media.features.melspectrogram`, 80 columns per second), so
the whole project has one audio front end. What differs from the generator's 0.2 s window is the
context: the mouth starts moving for a sound before it is heard (co-articulation, ~100-200 ms), so
the motion model sees `WINDOW_COLUMNS` columns (0.6 s) *centred* on the frame for offline dubbing,
or a window ending `lookahead` columns after the frame for streaming.

`normalise_mel` removes the recording's spectral tilt (microphone, room, codec) by subtracting each
band's mean over the louder half of the columns: a level that is constant over a clip says nothing
about the mouth, and the corpus mixes studio, TV, phone and webcam audio.
"""

from __future__ import annotations

import numpy as np

from lipdub.media.features import MelConfig

WINDOW_COLUMNS = 49
#: Value of a silent column in Wav2Lip's normalised mel (-max_abs_value).
SILENCE = -4.0


def normalise_mel(mel: np.ndarray, standardise: bool = False) -> np.ndarray:
    """(80, C) mel minus each band's mean over the loudest half of the columns (see module doc).

    ``standardise`` also divides each band by its spread over those columns (floored at 0.25 so a
    band that never changes is not blown up), removing the recording's dynamic range as well.
    """
    mel = np.asarray(mel, np.float32)
    if mel.shape[1] == 0:
        return mel.copy()
    energy = mel.mean(axis=0)
    loud = energy >= np.median(energy)
    out = mel - mel[:, loud].mean(axis=1, keepdims=True)
    if standardise:
        out = out / np.maximum(mel[:, loud].std(axis=1, keepdims=True), 0.25)
    return out.astype(np.float32)


def frame_windows(mel: np.ndarray, frames: int, fps: float, config: MelConfig = MelConfig(),
                  columns: int = WINDOW_COLUMNS, lookahead: int | None = None,
                  fill: float = SILENCE, first: int = 0) -> np.ndarray:
    """(frames - first, 80, columns) float32: the mel window of every video frame first..frames-1
    (``first`` lets a long track be windowed a chunk at a time: 16 KB a frame adds up to 1.4 GB an
    hour at 25 fps).

    Frame t sits at column c = round(t * columns_per_second / fps) (column j is centred on sample
    j * hop). Centred windows cover c - columns // 2 .. c + columns // 2; with ``lookahead`` = L
    they end at c + L instead (causal up to L columns). Columns outside the spectrogram are
    ``fill`` (silence), so the first and last frames hear the silence that is really there.
    """
    mel = np.asarray(mel, np.float32)
    per_second = config.sample_rate / config.hop_length
    centres = np.round(np.arange(first, frames) * per_second / fps).astype(np.int64)
    last = centres + (columns // 2 if lookahead is None else lookahead)
    index = last[:, None] - np.arange(columns - 1, -1, -1)[None, :]  # (frames, columns)
    padded = np.concatenate([mel, np.full((mel.shape[0], 1), fill, np.float32)], axis=1)
    outside = (index < 0) | (index >= mel.shape[1])
    index = np.where(outside, mel.shape[1], index)
    return np.ascontiguousarray(padded[:, index].transpose(1, 0, 2))
