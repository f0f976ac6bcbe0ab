"""Read a video or a photo as a stream of upright, constant-rate RGB frames.

Everything downstream (face tracking, mel windows, the encoder) counts frames at one fixed rate:
frame ``i`` is the picture at time ``i / fps``. Real inputs do not always behave like that:

- Phone videos and clips cut by web tools are often *variable frame rate*. We place each decoded
  picture in the constant-rate slot nearest to its timestamp (FFmpeg's ``fps`` filter does the
  same), repeating a picture over slots it spans and dropping pictures that share a slot, so
  frame ``i`` always shows what was on screen at ``i / fps``. A constant-rate input maps one
  picture to one slot: every frame comes out unchanged and in order.
- Phone videos are stored sideways with a *display matrix* saying how to rotate them. FFmpeg
  attaches it to every decoded frame (``VideoFrame.rotation``, counter-clockwise degrees); we
  rotate the pixels so that the rest of the pipeline never has to know.
- Time zero is the video stream's start time, the same origin `lipdub.media.audio.load_audio`
  uses for the audio track, so frame ``i`` and audio sample ``round(i / fps * sr)`` coincide.

Frames are produced by a generator: at most the current and the previous picture are held,
whatever the length of the video.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from lipdub.errors import LipdubError
from lipdub.media.container import check_input_file, error_reason, open_media

logger = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

# Demuxers FFmpeg uses for single still images (a photo with a misleading suffix). GIF is
# left out: an animated GIF is a video.
_IMAGE_FORMAT_NAMES = frozenset(
    {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"}
)
_FALLBACK_FPS = Fraction(25)
_SAME_RATE_TOLERANCE = Fraction(3, 100)
# Fewer frames than this fraction of the header's count means the file was cut short.
_TRUNCATED_FRACTION = 0.9


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder will produce: size after rotation, constant output rate, length."""

    path: Path
    width: int  # display size, after applying rotation metadata
    height: int
    fps: float  # constant output rate: the stream's average rate, see choose_fps (photo: photo_fps)
    frame_count: int  # best estimate of frames iter_frames will yield (photo: 1)
    duration: float  # seconds (photo: one frame, 1 / photo_fps)
    rotation: int  # 0/90/180/270: counter-clockwise degrees applied to the stored frames
    is_photo: bool


@dataclass(frozen=True)
class Frame:
    """One constant-rate frame: its number, its time and the upright RGB picture."""

    index: int  # 0-based, constant-rate frame number
    time: float  # index / fps
    image: np.ndarray  # HxWx3 uint8 RGB, C-contiguous, rotation applied


# ---------------------------------------------------------------------------------------------
# Pure helpers


def normalize_rotation(degrees: float) -> int:
    """Snap a display-matrix angle (any sign, float) to 0, 90, 180 or 270 counter-clockwise.

    FFmpeg reports angles in [-180, 180]; a phone's portrait clip reads -90 (rotate clockwise).
    Only right angles are supported: other angles are rounded to the nearest one.
    """
    return int(round(degrees / 90.0)) % 4 * 90


def rotate_image(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an HxWxC image counter-clockwise by ``rotation`` (0/90/180/270) degrees.

    Returns a C-contiguous array (``np.rot90`` returns a strided view, which cv2 and torch
    handle badly).
    """
    if rotation % 360 == 0:
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(np.rot90(image, k=(rotation // 90) % 4))


def rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """Display (width, height) of a ``width`` x ``height`` picture after ``rotation``."""
    return (height, width) if rotation % 180 == 90 else (width, height)


def slot_index(time: Fraction, fps: Fraction) -> int:
    """Constant-rate slot nearest to ``time`` seconds: round half up of ``time * fps``.

    Exact rational arithmetic so that a constant-rate stream maps picture ``i`` to slot ``i``
    even at 30000/1001 fps, where floats drift.
    """
    return math.floor(time * fps + Fraction(1, 2))


class ConstantRateMapper:
    """Turn pictures at arbitrary times into a constant-rate sequence of slots.

    Feed pictures in presentation order with `push`; it returns the ``(slot, picture)`` pairs that
    are now final. Slot ``i`` shows the last picture whose nearest slot is ``<= i``; slots before
    the first picture repeat the first picture, so the sequence always starts at slot 0.
    `finish` emits the last picture once more if it has not been emitted yet.
    """

    def __init__(self) -> None:
        self.next_slot = 0
        self._pending = None
        self.last_slot = -1

    def push(self, slot: int, picture) -> list:
        out = []
        if self._pending is None:
            for i in range(self.next_slot, slot):  # leading gap: show the first picture
                out.append((i, picture))
        else:
            for i in range(self.next_slot, slot):
                out.append((i, self._pending))
        self.next_slot = max(self.next_slot, slot)
        self._pending = picture
        self.last_slot = slot
        return out

    def finish(self) -> list:
        if self._pending is None:
            return []
        out = [(self.next_slot, self._pending)]
        self.next_slot += 1
        self._pending = None
        return out


# ---------------------------------------------------------------------------------------------
# Probing


def _check_path(path: Path) -> None:
    check_input_file(path, "a video or photo")


def _is_photo_container(container) -> bool:
    """A container is a photo if FFmpeg opened it with a still-image demuxer."""
    names = set(container.format.name.split(","))
    return bool(names & _IMAGE_FORMAT_NAMES)


def _video_stream(container, path: Path):
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise LipdubError(f"{path}: has no video stream")


def choose_fps(average: Fraction | None, base: Fraction | None) -> Fraction:
    """The constant output rate: the stream's average rate, or its base rate when they nearly agree.

    The average rate is frames / stream duration. Some constant-rate files state a duration a
    little longer than their frames span (the last frame held, an edit list), which drags the
    average just under the true rate (24.59 for a clean 25 fps clip) and would drop frames. When
    the base rate (FFmpeg's r_frame_rate, the rate the timestamps are laid out on) is within
    `_SAME_RATE_TOLERANCE` of the average, the stream is constant-rate at the base rate. Genuinely
    variable-rate files (phone clips with missing frames: average 22.13, base 30) and field-rate
    MPEG (average 25, base 50) differ by far more and keep the average.
    """
    if average is not None and average > 0:
        if base is not None and base > 0 and abs(base - average) <= _SAME_RATE_TOLERANCE * average:
            return Fraction(base)
        return Fraction(average)
    if base is not None and base > 0:
        return Fraction(base)
    return _FALLBACK_FPS


def _stream_fps(stream) -> Fraction:
    fps = choose_fps(stream.average_rate, stream.base_rate or stream.guessed_rate)
    if not (stream.average_rate or stream.base_rate or stream.guessed_rate):
        logger.warning("%s: no frame rate in the file, assuming %s fps", stream.container.name, fps)
    return fps


def _stream_origin(stream) -> Fraction:
    """Time of the stream's first picture in seconds: the origin of frame and audio times."""
    if stream.start_time is not None and stream.time_base is not None:
        return stream.start_time * stream.time_base
    return Fraction(0)


def _stream_duration(stream, container) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return max(0.0, container.duration / av.time_base)
    return 0.0


def _estimate_length(stream, container, fps: Fraction) -> tuple[float, int]:
    """(duration in seconds, frame count) from the headers, without decoding."""
    duration = _stream_duration(stream, container)
    frame_count = stream.frames if stream.frames else math.floor(duration * float(fps) + 0.5)
    if duration <= 0 and frame_count:
        duration = frame_count / float(fps)
    return duration, frame_count


def jpeg_is_truncated(path: Path) -> bool:
    """Whether ``path`` starts like a JPEG (SOI marker) but has no end-of-image marker after it.

    Why: libjpeg decodes a cut-off JPEG anyway, grey below the cut, and prints "Premature end of
    JPEG file" to stderr itself; checked first, the user gets one line that names the problem.
    Only a certain truncation is caught (an EXIF thumbnail's own end marker can hide one).
    """
    import mmap

    try:
        with open(path, "rb") as file:
            if file.read(2) != b"\xff\xd8":
                return False
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(b"\xff\xd9", 2) < 0
    except (OSError, ValueError):  # unreadable or empty: the decoders say so in their own words
        return False


def _read_photo(path: Path) -> np.ndarray:
    """Decode a still image to RGB; cv2 applies the EXIF orientation, PyAV is the fallback."""
    if jpeg_is_truncated(path):
        raise LipdubError(f"{path}: the JPEG is truncated (it ends before its end-of-image marker)")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is not None:
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not path.exists() or path.is_dir():
        _check_path(path)
    with open_media(path) as container:
        stream = _video_stream(container, path)
        try:
            for frame in container.decode(stream):
                return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as exc:
            raise LipdubError(f"{path}: cannot decode image ({error_reason(exc)})") from None
    raise LipdubError(f"{path}: image has no picture")


def _looks_like_photo(path: Path) -> bool:
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return True
    try:
        with av.open(str(path)) as container:
            return _is_photo_container(container)
    except (av.FFmpegError, OSError):
        return False


def _first_frame_rotation(container, stream, path: Path) -> int:
    """Rotation of the first decodable frame; `LipdubError` if not one frame decodes."""
    try:
        for frame in container.decode(stream):
            return _frame_rotation(frame, stream.metadata.get("rotate"))
    except av.FFmpegError as exc:
        raise LipdubError(f"{path}: cannot decode video ({error_reason(exc)})") from None
    raise LipdubError(f"{path}: video has no frames")


def probe_video(path: Path | str, photo_fps: float = 25.0) -> VideoInfo:
    """Describe what `iter_frames` will yield, without decoding more than the first frame."""
    path = Path(path)
    _check_path(path)
    if _looks_like_photo(path):
        image = _read_photo(path)
        height, width = image.shape[:2]
        return VideoInfo(path, width, height, float(photo_fps), 1, 1.0 / photo_fps, 0, True)
    with open_media(path) as container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream)
        rotation = _first_frame_rotation(container, stream, path)
        duration, frame_count = _estimate_length(stream, container, fps)
        width, height = rotated_size(stream.width, stream.height, rotation)
    return VideoInfo(path, width, height, float(fps), frame_count, duration, rotation, False)


# ---------------------------------------------------------------------------------------------
# Decoding


def iter_frames(path: Path | str, photo_fps: float = 25.0, start: int = 0) -> Iterator[Frame]:
    """Yield upright, constant-rate RGB frames of a video (or the single frame of a photo).

    A file that breaks part-way (a truncated download, a corrupt packet the decoder cannot skip)
    ends the sequence with a warning at the last good frame; one with no decodable frame at all
    raises `LipdubError`. ``start`` > 0 yields only the frames from that index on: the pictures
    before it are still decoded (so every frame is exactly the one a full pass yields) but not
    converted to RGB, which is most of the cost of a frame nobody looks at.
    """
    path = Path(path)
    _check_path(path)
    if _looks_like_photo(path):
        if start <= 0:
            yield Frame(0, 0.0, _read_photo(path))
        return
    yield from _iter_video(path, start)


def _iter_video(path: Path, start: int = 0) -> Iterator[Frame]:
    container = open_media(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        origin = _stream_origin(stream)
        legacy_tag = stream.metadata.get("rotate")
        mapper = ConstantRateMapper()
        rotation: int | None = None
        emitted = 0
        previous = None  # (decoded picture, its array) last yielded: a repeat is copied so callers may edit in place
        pictures = container.decode(stream)
        while True:
            try:
                frame = next(pictures)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                if rotation is None:  # not a single picture decoded
                    raise LipdubError(f"{path}: cannot decode video ({error_reason(exc)})") from None
                logger.warning("%s: decoding stopped early (%s); keeping the frames before it", path, error_reason(exc))
                break
            if rotation is None:
                rotation = _frame_rotation(frame, legacy_tag)
            if frame.pts is None:  # no timestamp: assume it follows the previous picture
                slot = mapper.last_slot + 1
            else:
                slot = slot_index(frame.pts * frame.time_base - origin, fps)
            for index, picture in mapper.push(slot, frame):
                emitted += 1
                if index >= start:
                    image, previous = _picture(picture, previous, rotation)
                    yield Frame(index, index / float(fps), image)
        for index, picture in mapper.finish():
            emitted += 1
            if index >= start:
                image, previous = _picture(picture, previous, rotation)
                yield Frame(index, index / float(fps), image)
        if emitted == 0:
            raise LipdubError(f"{path}: video has no frames")
        _, expected = _estimate_length(stream, container, fps)
        if emitted < _TRUNCATED_FRACTION * expected:
            logger.warning("%s: video ended after %d of about %d frames (truncated file?)", path, emitted, expected)
    finally:
        container.close()


def _picture(frame, previous: tuple | None, rotation: int) -> tuple[np.ndarray, tuple]:
    """The upright RGB array of decoded picture ``frame``, converted once: a picture the mapper
    repeats (``previous`` holds the last one) comes back as a copy, so callers may edit in place."""
    if previous is not None and previous[0] is frame:
        return previous[1].copy(), previous
    image = rotate_image(frame.to_ndarray(format="rgb24"), rotation)
    return image, (frame, image)


def _frame_rotation(frame, legacy_tag: str | None) -> int:
    """Counter-clockwise rotation to display ``frame`` upright.

    The display matrix FFmpeg attaches to each frame wins; the legacy ``rotate`` tag (clockwise
    degrees, exported by old demuxers and written by old phones' muxers) is the fallback.
    """
    if frame.side_data.get("DISPLAYMATRIX") is not None:
        return normalize_rotation(frame.rotation)
    return rotation_from_tag(legacy_tag)


def rotation_from_tag(tag: str | None) -> int:
    """Counter-clockwise rotation from a legacy ``rotate`` tag, which is in clockwise degrees.

    FFmpeg 8 neither writes nor exports the tag for MP4 (the display matrix replaced it), but
    other demuxers and old tools still produce it. Unparseable tags count as no rotation.
    """
    if not tag:
        return 0
    try:
        return normalize_rotation(-float(tag))
    except ValueError:
        return 0
