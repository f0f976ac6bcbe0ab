"""How the output's frames map onto the input's frames when video and audio lengths differ.

A dub rarely has exactly the length of the footage it is laid on. The output follows the audio
(the new speech must be heard in full) unless the user asks otherwise, and a shorter video is
extended without a visible jump:

- ``bounce`` (default): play forwards, then backwards, then forwards ... (ping-pong). Motion stays
  continuous at the turning points, which a plain loop cannot promise.
- ``loop``: start again from the first frame.
- ``hold``: freeze the last frame.
- ``cut``: stop at the shorter of the two; the audio is trimmed to match.
- ``silence``: keep the whole video; the audio is padded with silence (a closed mouth) or trimmed.

Everything here is a pure function of frame counts, so it is tested exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


class LengthMode(str, enum.Enum):
    """What to do when the video and the audio have different lengths."""

    bounce = "bounce"
    loop = "loop"
    hold = "hold"
    cut = "cut"
    silence = "silence"


@dataclass(frozen=True)
class Timeline:
    """The output's length and where each output frame comes from.

    ``output_frames`` frames are written; output frame ``i`` shows input frame
    ``source_index(i)``; the muxed audio lasts exactly ``output_frames / fps`` seconds.
    """

    mode: LengthMode
    source_frames: int
    output_frames: int

    def source_index(self, output_index: int) -> int:
        """Input frame shown at output frame ``output_index``."""
        return source_index(output_index, self.source_frames, self.mode)

    @property
    def extends_video(self) -> bool:
        """Whether some input frames are shown more than once."""
        return self.output_frames > self.source_frames


def frames_for_duration(seconds: float, fps: float) -> int:
    """Number of whole frames that cover ``seconds`` at ``fps`` (rounded to nearest, at least 1)."""
    return max(1, int(round(seconds * fps)))


def source_index(output_index: int, source_frames: int, mode: LengthMode) -> int:
    """Input frame index for an output frame, following the length mode's extension rule."""
    if output_index < 0:
        raise ValueError("output_index must be >= 0")
    if source_frames <= 0:
        raise ValueError("source_frames must be >= 1")
    if output_index < source_frames or source_frames == 1:
        return min(output_index, source_frames - 1)
    if mode is LengthMode.loop:
        return output_index % source_frames
    if mode is LengthMode.bounce:
        period = 2 * (source_frames - 1)
        phase = output_index % period
        return phase if phase < source_frames else period - phase
    # hold, and cut/silence (which never ask past the end) freeze the last frame.
    return source_frames - 1


def plan_timeline(source_frames: int, audio_frames: int, mode: LengthMode, is_photo: bool = False) -> Timeline:
    """Decide the output length for a video of ``source_frames`` and audio covering ``audio_frames``.

    A photo always lasts as long as the audio: there is nothing to cut or loop.
    """
    if source_frames < 1 or audio_frames < 1:
        raise ValueError("both lengths must be at least one frame")
    if is_photo:
        return Timeline(LengthMode.hold, 1, audio_frames)
    if mode is LengthMode.cut:
        output = min(source_frames, audio_frames)
    elif mode is LengthMode.silence:
        output = source_frames
    else:
        output = audio_frames
    return Timeline(mode, source_frames, output)


def fitted_length(sample_rate: int, output_frames: int, fps: float) -> int:
    """Samples in a track that lasts exactly ``output_frames / fps`` seconds (what `fit_audio` makes)."""
    return int(round(output_frames * sample_rate / fps))


def fit_audio(samples: np.ndarray, sample_rate: int, output_frames: int, fps: float) -> np.ndarray:
    """Trim or pad (with silence) ``samples`` to last exactly ``output_frames / fps`` seconds."""
    target = fitted_length(sample_rate, output_frames, fps)
    if len(samples) >= target:
        return samples[:target]
    padded = np.zeros(target, dtype=samples.dtype)
    padded[: len(samples)] = samples
    return padded


def fit_audio_stream(pieces: Iterable[np.ndarray], sample_rate: int, output_frames: int, fps: float,
                     pad_piece: int = 48000) -> Iterator[np.ndarray]:
    """`fit_audio` on a stream of pieces: the same samples, never more than one piece in memory.

    Stops reading ``pieces`` (and closes it, so a decoder behind it is released) once the target
    length is reached; pads with silence in pieces of at most ``pad_piece`` samples if it ends early.
    """
    target = fitted_length(sample_rate, output_frames, fps)
    sent = 0
    iterator = iter(pieces)
    try:
        for piece in iterator:
            piece = piece[: target - sent]
            sent += len(piece)
            if len(piece):
                yield piece
            if sent >= target:
                break
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    while sent < target:
        size = min(pad_piece, target - sent)
        sent += size
        yield np.zeros(size, dtype=np.float32)
