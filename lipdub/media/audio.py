"""Load speech as float32 mono samples whose sample 0 is the first video frame.

Lip sync is judged to the frame (40 ms at 25 fps), so the audio clock must match the video
clock exactly. What we found with PyAV 18 / FFmpeg 8, and what this module does about it:

- **AAC priming.** AAC encoders emit 1024 samples of encoder delay ("priming") before the signal.
  MP4/M4A files written by FFmpeg, phones and most tools describe it with an edit list (and
  iTunSMPB for iTunes); FFmpeg's mov demuxer turns that into skip-samples side data and the
  decoder drops the priming itself, so the first decoded frame already has pts 0 and holds real
  signal. We verified this end to end (tests/test_media_encode.py writes a click at a known
  frame with `VideoWriter`, and this module reads it back within 1 ms of that frame). We do not
  trim anything ourselves; trimming again would shift the audio 64 ms early at 16 kHz.
  Measured: the first audio packet of a `VideoWriter` file has pts -1024 and a click written at
  sample 8000 is read back at sample 8000. Raw ADTS ``.aac`` files carry no edit list, so their
  priming stays in (a click at 8000 reads back at 9024); every FFmpeg-based reader sees the same
  and we do not guess the encoder's delay.
- **End padding.** The decoder also returns the encoder's padding after the last real sample
  (up to one AAC frame). MP4 states the true duration, so for MP4/MOV we trim to it; the
  round trip then gives back exactly the number of samples written.
- **Start offsets.** MPEG-PS (GRID ``.mpg``), MPEG-TS and some MP4/MKV files start the audio
  stream at a different time than the video stream. We anchor the timeline at the video stream's
  start time (the origin `lipdub.media.decode.iter_frames` uses for frame 0) and pad with
  silence, or trim, by the first audio frame's offset from it, so sample ``k`` is at time
  ``k / sample_rate`` after the first video frame. Files without a video stream are anchored at
  the audio stream's own start. Gaps in the middle of a stream are not repaired.
- **Resampling** uses PyAV's `AudioResampler` (libswresample), which compensates its filter
  delay: a click at input sample ``n`` comes out at ``n * out_rate / in_rate``. It holds samples
  back until flushed, so we flush it at the end or the last few milliseconds would be lost.
- **Downmix** is the mean of the channels (libswresample's own stereo-to-mono matrix uses
  0.707 per channel, which boosts a dual-mono recording by 3 dB and can clip it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lipdub.errors import LipdubError
from lipdub.media.container import check_input_file, error_reason, open_media

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Pure helpers


def rms_db(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (1.0); -inf for digital silence."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def is_silent(samples: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of ``samples`` is below ``threshold_db`` dBFS.

    Used to refuse driving a lip sync with silence (a muted track, a wrong stream), which would
    otherwise produce a closed mouth and no error. RMS rather than peak so that a single click
    in a silent file still counts as silent. An empty array is silent.
    """
    return rms_db(samples) < threshold_db


def audio_duration(samples: np.ndarray, sample_rate: int = 16000) -> float:
    """Duration in seconds of a mono sample array."""
    return len(samples) / float(sample_rate)


def align_start(samples: np.ndarray, offset_samples: int) -> np.ndarray:
    """Shift ``samples`` so that they start ``offset_samples`` after time zero.

    A positive offset (audio starts after the video) prepends that many zeros; a negative one
    (audio starts before the video) drops that many leading samples.
    """
    if offset_samples > 0:
        return np.concatenate([np.zeros(offset_samples, dtype=samples.dtype), samples])
    if offset_samples < 0:
        return samples[-offset_samples:]
    return samples


# ---------------------------------------------------------------------------------------------
# Loading


def _open(path: Path):
    check_input_file(path, "an audio or video file")
    return open_media(path)


def _origin(container, audio_stream) -> Fraction:
    """Time zero of the file in seconds: the video stream's start, else the audio stream's."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue  # cover art in an mp3/m4a is not a timeline
        if stream.start_time is not None:
            return stream.start_time * stream.time_base
    if audio_stream.start_time is not None:
        return audio_stream.start_time * audio_stream.time_base
    return Fraction(0)


def _stated_end(container, stream, origin: Fraction) -> Fraction | None:
    """End of the audio in seconds from ``origin``, where the container states it exactly.

    MP4/MOV give the audio duration to the sample (edit list / sample table), but FFmpeg does
    not drop the encoder's padding after the last real sample (up to one AAC frame, 64 ms at
    16 kHz), so we trim to the stated end. Other containers estimate durations from packet
    timestamps (MPEG-PS misses the last frame), so they are not trusted.
    """
    if not container.format.name.startswith("mov") or stream.duration is None:
        return None
    start = stream.start_time or 0
    return (start + stream.duration) * stream.time_base - origin


def load_audio(path: Path | str, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of any audio or video file to float32 mono at ``sample_rate``.

    Sample ``k`` is at time ``k / sample_rate`` after the first video frame (see the module
    docstring). Values are in [-1, 1]. Raises `LipdubError` for a missing or unreadable file,
    a file without an audio stream, or one that decodes to no samples. The whole track in
    memory (4 bytes a sample); `iter_audio` gives the same samples a piece at a time.
    """
    return np.concatenate(list(iter_audio(path, sample_rate)))


#: Longest run of silence `iter_audio` yields at once when it pads the start (1 s at 48 kHz).
_PAD_PIECE = 48000


def iter_audio(path: Path | str, sample_rate: int = 16000) -> Iterator[np.ndarray]:
    """The samples of `load_audio`, in order, as float32 pieces of a decoded frame or so each.

    Exactly the same timeline (start offset padded or trimmed, MP4 end padding dropped, resampler
    flushed, values clipped to [-1, 1]), so concatenating the pieces gives `load_audio`'s array;
    memory stays at one decoded frame whatever the length, which is what lets the muxer stream a
    one-hour track. The same `LipdubError`s are raised, the ones about the content (no samples,
    nothing after the video's start) only once the whole stream is read.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise LipdubError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        origin = _origin(container, stream)
        shaper = _Shaper()
        resampler: av.AudioResampler | None = None
        decoded = 0
        try:
            for frame in container.decode(stream):
                if not shaper.started and frame.pts is not None:
                    yield from shaper.start(frame.pts * frame.time_base - origin, sample_rate,
                                            _stated_end(container, stream, origin))
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sample_rate)
                for out in resampler.resample(frame):
                    piece = out.to_ndarray().mean(axis=0, dtype=np.float32)
                    decoded += piece.size
                    yield from shaper.feed(piece)
        except av.FFmpegError as exc:
            if not decoded:
                raise LipdubError(f"{path}: cannot decode audio ({error_reason(exc)})") from None
            logger.warning("%s: audio decoding stopped early (%s); keeping what came before", path, error_reason(exc))
        if resampler is not None:
            for out in resampler.resample(None):  # flush: the resampler holds back its last samples
                piece = out.to_ndarray().mean(axis=0, dtype=np.float32)
                decoded += piece.size
                yield from shaper.feed(piece)
        yield from shaper.finish()
    if decoded == 0:
        raise LipdubError(f"{path}: audio stream has no samples")
    if shaper.emitted == 0:
        raise LipdubError(f"{path}: audio ends before the video starts")


class _Shaper:
    """Applies the start offset and the stated end to decoded pieces as they come.

    Until the first timestamped frame is seen the pieces are held (`load_audio` aligns on the
    first frame that has a timestamp); a stream without any timestamp is passed through as is.
    """

    def __init__(self) -> None:
        self.started = False
        self.emitted = 0
        self._held: list[np.ndarray] = []
        self._skip = 0
        self._limit: int | None = None

    def start(self, first_time: Fraction, sample_rate: int, end: Fraction | None) -> Iterator[np.ndarray]:
        self.started = True
        offset = round(first_time * sample_rate)
        if offset:
            logger.debug("audio starts %d samples after the video; aligning", offset)
        self._skip = max(0, -offset)
        if end is not None and round(end * sample_rate) > 0:
            self._limit = round(end * sample_rate)  # drop the encoder's end padding
        held, self._held = self._held, []
        for begin in range(0, max(0, offset), _PAD_PIECE):
            yield from self._emit(np.zeros(min(_PAD_PIECE, offset - begin), np.float32))
        for piece in held:
            yield from self.feed(piece)

    def feed(self, piece: np.ndarray) -> Iterator[np.ndarray]:
        if not self.started:
            self._held.append(piece)
            return
        if self._skip:
            dropped = min(self._skip, piece.size)
            piece, self._skip = piece[dropped:], self._skip - dropped
        yield from self._emit(piece)

    def finish(self) -> Iterator[np.ndarray]:
        for piece in self._held:  # no frame had a timestamp: nothing to align on
            yield from self._emit(piece)
        self._held = []

    def _emit(self, piece: np.ndarray) -> Iterator[np.ndarray]:
        if self._limit is not None:
            piece = piece[: max(0, self._limit - self.emitted)]
        if piece.size:
            self.emitted += piece.size
            yield np.clip(piece, -1.0, 1.0).astype(np.float32, copy=False)


def iter_raw_pcm(read, chunk_samples: int) -> Iterator[np.ndarray]:
    """Float32 pieces of raw signed 16-bit little-endian mono PCM (``s16le``), as it arrives.

    ``read(n)`` returns up to ``n`` bytes, fewer when less has arrived, and b"" at the end (like
    ``os.read`` on a pipe, or ``io.BufferedReader.read1``): a live source's pieces are passed on
    as soon as they come, never held back to fill ``chunk_samples``. An odd byte is kept for the
    next read; one left at the end is dropped (half a sample).
    """
    if chunk_samples < 1:
        raise ValueError("chunk_samples must be at least 1")
    carry = b""
    while True:
        data = read(2 * chunk_samples)
        if not data:
            return
        data = carry + data
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        if whole:
            yield pcm_s16le_to_float(data[:whole])


def pcm_s16le_to_float(data: bytes) -> np.ndarray:
    """Float32 samples in [-1, 1) of raw signed 16-bit little-endian PCM (an even number of bytes)."""
    if len(data) % 2:
        raise LipdubError(f"16-bit PCM comes in whole samples of 2 bytes, got {len(data)} bytes")
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def rechunk(pieces: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The samples of ``pieces`` again, in pieces of exactly ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    pending: list[np.ndarray] = []
    count = 0
    for piece in pieces:
        pending.append(np.asarray(piece, np.float32))
        count += len(piece)
        while count >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, count = [joined[size:]], count - size
    if count:
        yield np.concatenate(pending)
