"""Checking what a user uploads, by opening it (never by its name or extension).

A server must refuse a bad upload before queueing work: text renamed ``.mp4``, a truncated file,
audio with no samples, an hour of video over the limit. These functions open the file with the
same readers the pipeline uses and return what they found, or raise the same one-line
`LipdubError` the CLI would print.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lipdub.errors import LipdubError
from lipdub.media.container import check_input_file, open_media


@dataclass(frozen=True)
class Upload:
    """What an uploaded file turned out to be."""

    path: Path
    kind: str  # "photo", "video" or "audio"
    duration: float  # seconds (a photo: 0)


def inspect_face(path: Path, max_seconds: float | None = None) -> Upload:
    """A face upload: a photo or a video with at least one decodable frame, within ``max_seconds``."""
    from lipdub.media.decode import iter_frames, probe_video

    info = probe_video(path)
    if not info.is_photo:
        next(iter(iter_frames(path)))  # decodes one frame: a truncated header-only file fails here
    duration = 0.0 if info.is_photo else info.duration
    _check_duration(path, duration, max_seconds)
    return Upload(Path(path), "photo" if info.is_photo else "video", duration)


def inspect_audio(path: Path, max_seconds: float | None = None) -> Upload:
    """A speech upload: any file with an audio stream that decodes to sound, within ``max_seconds``."""
    path = Path(path)
    check_input_file(path, "an audio or video file")
    with open_media(path) as container:
        if not container.streams.audio:
            raise LipdubError(f"{path.name}: has no audio stream")
        stream = container.streams.audio[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else float(container.duration or 0) / 1e6
        _check_duration(path, duration, max_seconds)
        try:
            decoded = any(frame.samples for frame in _first_frames(container, stream, 8))
        except Exception as exc:  # PyAV raises many types for a broken stream
            raise LipdubError(f"{path.name}: audio does not decode ({type(exc).__name__})") from None
    if not decoded:
        raise LipdubError(f"{path.name}: audio stream has no samples")
    return Upload(path, "audio", duration)


def _first_frames(container, stream, count: int):
    for index, frame in enumerate(container.decode(stream)):
        yield frame
        if index + 1 >= count:
            return


def _check_duration(path: Path, duration: float, max_seconds: float | None) -> None:
    if max_seconds is not None and duration > max_seconds:
        raise LipdubError(f"{Path(path).name}: {duration:.0f} s is longer than this server's limit of {max_seconds:.0f} s")
