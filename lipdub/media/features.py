"""Audio features: the mel spectrogram Wav2Lip's networks were trained on, and its per-frame windows.

Every Wav2Lip checkpoint (and the expert SyncNet) saw one exact feature: 16 kHz mono audio,
pre-emphasis 0.97, an STFT with an 800-sample Hann window every 200 samples (80 columns per second),
80 Slaney mel bands between 55 and 7600 Hz, decibels relative to 20 dB, and a symmetric
normalisation clipped to [-4, 4]. A feature that differs in any of these quietly degrades a
pretrained model, so this module re-implements the recipe in numpy (no librosa) and the tests pin
each step to its formula.

Padding choice. Wav2Lip calls ``librosa.stft`` with its defaults, ``center=True``, and pins
librosa 0.7, whose default ``pad_mode`` was ``"reflect"`` (librosa 0.10 changed the default to
zero padding). We reflect-pad ``n_fft // 2`` samples on both sides like librosa 0.7, so column
``j`` is centred on sample ``j * hop_length`` and a signal of ``n`` samples yields
``1 + n // hop_length`` columns.

Train/inference alignment. Wav2Lip is not consistent here. Its frames are numbered from 0
(``preprocess.py``); ``color_syncnet_train.py`` pairs the five frames starting at ``f`` with the
16 columns starting at ``int(80 * f / fps)``; ``wav2lip_train.py`` (``get_segmented_mels``) gives
the generator, for frame ``f``, the window starting at frame ``f - 1`` (it adds 1 "to go to
1-indexing" and then crops at ``i - 2``); ``inference.py`` gives frame ``f`` the window starting at
frame ``f``. The pretrained generator was therefore trained one video frame (40 ms at 25 fps)
earlier than it is run. lipdub uses ONE convention everywhere, in training and inference: frame
``f`` is conditioned on the 16 columns starting at ``int(80 * f / fps)``, i.e. on the 0.2 s of
audio that begins at the frame's own time (each column reaches +-25 ms around its centre). This
is what Wav2Lip's inference does, so pretrained checkpoints behave exactly as upstream.

Edges. A window that would run past the last column is replaced by the last 16 columns, as
Wav2Lip's inference does (the final frames keep the final mouth shape instead of reading silence
that is not there). Audio shorter than one window (under 0.2 s) is padded on the right with the
value silence normalises to (``-max_abs_value``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lipdub.errors import LipdubError

logger = logging.getLogger(__name__)

# Columns processed per STFT block: bounds memory (a block is ~26 MB of float64) for long audio.
_STFT_BLOCK_COLUMNS = 4096


@dataclass(frozen=True)
class MelConfig:
    """The feature recipe of Wav2Lip's ``hparams.py``; change it only for a model trained on it."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    window_frames: int = 16

    @property
    def frames_per_second(self) -> float:
        """Spectrogram columns per second of audio (80 for the defaults)."""
        return self.sample_rate / self.hop_length


# --- Slaney mel scale (Auditory Toolbox; librosa's default, htk=False) -------------------------
# Linear below 1 kHz (200/3 Hz per mel, so 1000 Hz = 15 mel), logarithmic above it
# (27 mel per factor 6.4 in frequency).
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15.0
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> Slaney mel."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        log = _SLANEY_BREAK_MEL + np.log(np.maximum(hz, 1e-12) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mel -> frequency in Hz (inverse of :func:`hz_to_mel`)."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, log, linear)


def mel_band_edges(config: MelConfig = MelConfig()) -> np.ndarray:
    """The ``n_mels + 2`` frequencies (Hz), equally spaced in mel, that bound the triangles.

    Band ``i`` rises from edge ``i`` to its peak at edge ``i + 1`` and falls to edge ``i + 2``.
    """
    mels = np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2)
    return mel_to_hz(mels)


def mel_filterbank(config: MelConfig = MelConfig()) -> np.ndarray:
    """Triangular Slaney mel filters with area normalisation, shape (n_mels, 1 + n_fft // 2).

    Each triangle is scaled by ``2 / (upper_edge - lower_edge)`` so that every band has the same
    area (librosa's ``norm="slaney"``, ``norm=1`` in librosa 0.7): wide high bands do not
    dominate narrow low ones.
    """
    if config.fmax > config.sample_rate / 2:
        raise ValueError(f"fmax {config.fmax} is above Nyquist ({config.sample_rate / 2})")
    fft_hz = np.linspace(0.0, config.sample_rate / 2, 1 + config.n_fft // 2)  # (F,)
    edges = mel_band_edges(config)  # (n_mels + 2,)
    widths = np.diff(edges)  # (n_mels + 1,)
    offsets = edges[:, None] - fft_hz[None, :]  # (n_mels + 2, F): edge minus bin frequency
    rising = -offsets[:-2] / widths[:-1, None]  # (n_mels, F): 0 at lower edge, 1 at the peak
    falling = offsets[2:] / widths[1:, None]  # (n_mels, F): 1 at the peak, 0 at upper edge
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


# --- The spectrogram, step by step --------------------------------------------------------------


def preemphasis(samples: np.ndarray, coefficient: float) -> np.ndarray:
    """``y[n] = x[n] - k * x[n-1]`` (``lfilter([1, -k], [1], x)``), with ``y[0] = x[0]``."""
    x = np.asarray(samples, dtype=np.float64)
    y = x.copy()
    y[1:] -= coefficient * x[:-1]
    return y


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``, librosa's)."""
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def _stft_blocks(samples: np.ndarray, config: MelConfig, preemphasis_coefficient: float | None = None):
    """Yield ``(first_column, |STFT| block)`` of centred, reflect-padded frames, block by block.

    Only one block of the padded (and, if asked, pre-emphasised) signal exists at a time, so an
    hour of speech costs its output, not 2-3 float64 copies of itself plus a (401, T) float64
    magnitude. Values are those of padding and filtering the whole signal first: every padded
    sample is computed from the input by the same float64 operations.
    """
    if config.win_length != config.n_fft:
        raise ValueError("win_length != n_fft is not supported (Wav2Lip uses 800 for both)")
    x = np.asarray(samples)
    n = x.size
    pad, hop, n_fft = config.n_fft // 2, config.hop_length, config.n_fft
    n_columns = 1 + n // hop
    window = hann_window(n_fft)
    whole = None
    if n <= pad:  # shorter than half a window: np.pad reflects more than once; tiny, do it whole
        whole = x.astype(np.float64)
        if preemphasis_coefficient is not None:
            whole = preemphasis(whole, preemphasis_coefficient)
        whole = np.pad(whole, pad, mode="reflect")
    for start in range(0, n_columns, _STFT_BLOCK_COLUMNS):
        stop = min(n_columns, start + _STFT_BLOCK_COLUMNS)
        if whole is not None:
            segment = whole[start * hop : (stop - 1) * hop + n_fft]
        else:
            index = np.arange(start * hop, (stop - 1) * hop + n_fft) - pad  # positions in the signal
            index = np.abs(index)  # reflect at the start (np.pad "reflect": x[1], x[2] ...)
            index = np.where(index >= n, 2 * (n - 1) - index, index)  # and at the end
            segment = x[index].astype(np.float64)
            if preemphasis_coefficient is not None:  # y[i] = x[i] - k x[i-1], y[0] = x[0]
                previous = x[np.maximum(index - 1, 0)].astype(np.float64)
                segment = np.where(index > 0, segment - preemphasis_coefficient * previous, segment)
        frames = np.lib.stride_tricks.sliding_window_view(segment, n_fft)[::hop][: stop - start]
        yield start, np.abs(np.fft.rfft(frames * window, axis=1)).T  # (1 + n_fft // 2, block)


def stft_magnitude(samples: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """|STFT| with centred, reflect-padded frames, shape (1 + n_fft // 2, 1 + len // hop)."""
    n_columns = 1 + len(samples) // config.hop_length
    out = np.empty((1 + config.n_fft // 2, n_columns), dtype=np.float64)
    for start, block in _stft_blocks(np.asarray(samples, dtype=np.float64), config):
        out[:, start : start + block.shape[1]] = block
    return out


def amplitude_to_db(amplitude: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """``20 log10(max(floor, a)) - ref_level_db`` with floor ``10^(min_level_db / 20)`` = 1e-5."""
    floor = 10.0 ** (config.min_level_db / 20.0)
    return 20.0 * np.log10(np.maximum(floor, amplitude)) - config.ref_level_db


def normalize_db(db: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """Map [min_level_db, 0] dB linearly onto [-max_abs, max_abs] and clip (symmetric mels)."""
    m = config.max_abs_value
    scaled = (2.0 * m) * ((db - config.min_level_db) / (-config.min_level_db)) - m
    return np.clip(scaled, -m, m)


def melspectrogram(samples: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of mono float samples at ``config.sample_rate``.

    ``samples``: (N,) float, nominally in [-1, 1]. Returns (n_mels, 1 + N // hop_length) float32.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (N,), got {samples.shape}")
    if samples.size == 0:
        raise LipdubError("the audio has no samples")
    # Pre-emphasis, STFT and mel filtering block by block: memory is the (n_mels, T) float32 result
    # (26 KB a second), not the float64 copies and (401, T) magnitude of the whole signal.
    filters = mel_filterbank(config)  # (n_mels, 1 + n_fft // 2)
    out = np.empty((config.n_mels, 1 + samples.size // config.hop_length), dtype=np.float32)
    for start, magnitude in _stft_blocks(samples, config, config.preemphasis):  # (F, block)
        mel = filters @ magnitude  # (n_mels, block)
        out[:, start : start + mel.shape[1]] = normalize_db(amplitude_to_db(mel, config), config)
    return out


# --- Per-frame windows ---------------------------------------------------------------------------


def mel_window_start(frame_index: int, fps: float, config: MelConfig = MelConfig()) -> int:
    """First spectrogram column of video frame ``frame_index``: ``int(80 * frame_index / fps)``.

    Works at any frame rate (23.976, 29.97, 60 ...). A product within 1e-6 of an integer counts
    as that integer, so that float rounding of e.g. 29.97 cannot shift an exact boundary down by
    one column (Wav2Lip's plain ``int()`` could, rarely).
    """
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    position = config.frames_per_second * frame_index / float(fps)
    nearest = round(position)
    if abs(position - nearest) < 1e-6:
        return int(nearest)
    return int(np.floor(position))


def mel_windows(
    mel: np.ndarray,
    frame_indices: Sequence[int] | np.ndarray,
    fps: float,
    config: MelConfig = MelConfig(),
) -> np.ndarray:
    """The ``window_frames`` columns that condition each frame, shape (N, n_mels, window_frames).

    ``mel``: (n_mels, T) from :func:`melspectrogram`. Windows past the end are the last
    ``window_frames`` columns; a spectrogram shorter than one window is right-padded with
    silence (``-max_abs_value``). See the module docstring for why.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2:
        raise ValueError(f"expected a (n_mels, T) spectrogram, got {mel.shape}")
    width = config.window_frames
    if mel.shape[1] < width:
        silence = np.full((mel.shape[0], width - mel.shape[1]), -config.max_abs_value, np.float32)
        mel = np.concatenate([mel, silence], axis=1)  # (n_mels, width)
    last_start = mel.shape[1] - width
    indices = [int(i) for i in np.asarray(frame_indices).reshape(-1)]
    out = np.empty((len(indices), mel.shape[0], width), dtype=np.float32)
    for row, frame_index in enumerate(indices):
        start = min(mel_window_start(frame_index, fps, config), last_start)
        out[row] = mel[:, start : start + width]
    return out
