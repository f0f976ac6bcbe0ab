"""Write frames (and optionally speech) to an H.264 + AAC MP4, atomically.

Design points, each one a way a lip-sync output goes wrong otherwise:

- **Atomic output.** Frames go to an unnamed file in the target's directory (`lipdub.fileio.AtomicFile`:
  Linux ``O_TMPFILE``, else a hidden ``.name.<random>.tmp`` beside it) that gets its name only
  when `close` succeeds, with the user's umask mode (0644 under 022), not mkstemp's 0600. A
  crash, Ctrl-C or exception inside ``with VideoWriter(...)`` leaves no file behind and any
  existing target as it was; with ``O_TMPFILE`` so does SIGKILL. The output directory is checked (by creating that
  file) in ``__init__``, before the caller spends minutes generating frames.
- **Audio/video sync.** Video pts are frame numbers in a 1/fps time base and audio pts are
  sample numbers from 0, so both start at time 0. FFmpeg's AAC encoder prepends 1024 priming
  samples and shifts its packet timestamps back by them; the MP4 muxer records that shift in an
  edit list, which FFmpeg-based readers (`lipdub.media.audio.load_audio`, PyAV, ffmpeg, browsers
  and players) honour, so the click of sample ``k`` plays at ``k / sample_rate`` exactly. The
  round trip is tested to within 1 ms.
- **Flat memory.** Audio is fed to the encoder in step with the video (up to the end of each
  written frame), so the muxer interleaves both and nothing accumulates whatever the length.
  The audio may be an array or an iterable of pieces (`lipdub.media.audio.iter_audio` through
  `lipdub.timeline.fit_audio_stream`), read only as far as the video has got: a one-hour track
  is never in memory.
- **Odd sizes.** yuv420p (what every player decodes) stores colour at half resolution, so
  libx264 needs even width and height. An odd-sized frame is padded by repeating its last
  column and/or row; the file is then at most one pixel wider/taller than asked. Even sizes
  are written exactly as given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from lipdub.errors import LipdubError
from lipdub.fileio import AtomicFile

logger = logging.getLogger(__name__)

_NTSC_TOLERANCE = 0.005
_AUDIO_CHUNK = 1024  # AAC frame size
_AUDIO_BIT_RATE = 128_000


def fps_to_rational(fps: float) -> Fraction:
    """Exact frame rate for the encoder's time base.

    Integer rates stay integers; the NTSC family (23.976, 29.97, 59.94 ... written with 2-3
    decimals) is N*1000/1001, which is what the camera meant and keeps timestamps exact over
    hours; anything else is the closest fraction with a denominator of at most 1001.
    """
    if fps <= 0 or not np.isfinite(fps):
        raise ValueError(f"frame rate must be positive, got {fps}")
    nearest = round(fps)
    if abs(fps - nearest) < 1e-6:
        return Fraction(nearest)
    ntsc = round(fps * 1001 / 1000)
    if ntsc > 0 and abs(fps - ntsc * 1000 / 1001) < _NTSC_TOLERANCE:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def even_size(width: int, height: int) -> tuple[int, int]:
    """Smallest even (width, height) that holds a ``width`` x ``height`` picture."""
    return width + width % 2, height + height % 2


def pad_to_even(image: np.ndarray) -> np.ndarray:
    """Pad an HxWx3 image to even H and W by repeating its last row / column (edge padding)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def rgb_to_yuv420p(image: np.ndarray) -> av.VideoFrame:
    """An even-sized RGB frame as the encoder's yuv420p (BT.601, limited range, as swscale's default).

    OpenCV's converter does the same arithmetic as FFmpeg's swscale (values agree within 1) in a
    sixth of the time (1.2 vs 6.9 ms a 720p frame measured here), and the encoder would otherwise
    convert every frame on the way in.
    """
    planes = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def audio_samples_until(frame_count: int, fps: Fraction, sample_rate: int) -> int:
    """Number of audio samples that lie before the end of frame ``frame_count - 1``."""
    return int(Fraction(frame_count) / fps * sample_rate)


#: x264 settings on top of the preset: `veryfast` with `superfast`'s motion search (diamond, one
#: subpixel refinement) but `veryfast`'s macroblock tree and partitions. Measured on 150 frames of
#: a 720p clip at crf 18: encoder CPU 23.5 -> 13.6 ms a frame, file +6 %, PSNR 44.23 -> 43.96 dB;
#: the `superfast` preset itself saves as much CPU but doubles the file (it drops the mb-tree).
#: The encoder was the largest CPU cost of the render pass on a two-core machine.
FAST_MOTION_SEARCH = "subme=1:me=dia"
#: x264's macroblock tree off. With it, the x264 bundled with PyAV read memory it had not written:
#: the same frames, encoded after filling fresh heap memory with two different bytes
#: (`MALLOC_PERTURB_`), gave two different bitstreams, and a `lipdub sync` run twice gave two
#: different files (woman_flag + French: frame 0 decoded up to 38 levels apart) whenever the
#: encoder ran beside the render threads. Every setting with the mb-tree showed it (one thread or
#: several, any motion search); `mbtree=0` and `rc-lookahead=0` did not. A dub that changes when
#: nothing changed defeats caching, diffing and regression checks. Cost, measured on 150 frames
#: of a 720p clip at crf 18: file 1.84x (a real dub, woman_flag + French: 1.56x) at 0.6 dB more
#: PSNR, and 7 % less encoder CPU; `--crf 22` gives the old size at 0.26 dB less (0.05 dB more
#: in the face's region).
NO_MBTREE = "mbtree=0"


class VideoWriter:
    """Streamed MP4 writer: ``write`` RGB frames, then ``close`` to publish the file.

    Use as a context manager: leaving the block normally closes (publishes) the file, leaving it
    with an exception aborts (nothing is published, the target is untouched).
    """

    def __init__(
        self,
        path: Path | str,
        width: int,
        height: int,
        fps: float,
        audio: np.ndarray | Iterable[np.ndarray] | None = None,
        sample_rate: int = 16000,
        crf: int = 18,
        preset: str = "veryfast",
        overwrite: bool = False,
        x264_params: str = f"{FAST_MOTION_SEARCH}:{NO_MBTREE}",
    ) -> None:
        self.path = Path(path)
        self.width = int(width)
        self.height = int(height)
        self.rate = fps_to_rational(fps)
        self.sample_rate = int(sample_rate)
        self.frames_written = 0
        self._closed = False
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self._audio = None if audio is None else _AudioFeed(audio)
        self._audio_sent = 0

        try:
            self._check_target(overwrite)
            self._file = self._make_temp(overwrite)
        except BaseException:
            if self._audio is not None:
                self._audio.close()
            raise
        try:
            self._open(crf, preset, x264_params)
        except BaseException:
            self._discard()
            raise

    # -- setup --------------------------------------------------------------------------------

    def _check_target(self, overwrite: bool) -> None:
        parent = self.path.parent
        if not parent.exists():
            raise LipdubError(f"{self.path}: output directory {parent} does not exist")
        if not parent.is_dir():
            raise LipdubError(f"{self.path}: {parent} is not a directory")
        if self.path.is_dir():
            raise LipdubError(f"{self.path}: is a directory")
        if self.path.exists() and not overwrite:
            raise LipdubError(f"{self.path}: already exists (use overwrite to replace it)")

    def _make_temp(self, overwrite: bool) -> AtomicFile:
        try:
            return AtomicFile(self.path, overwrite=overwrite)
        except OSError as exc:
            raise LipdubError(f"{self.path}: cannot write to {self.path.parent} ({exc.strerror})") from None

    def _open(self, crf: int, preset: str, x264_params: str) -> None:
        # FFmpeg opens by name (and reopens the file to move the index up front for +faststart);
        # the name of an unnamed file is /proc/self/fd/N.
        self._container = av.open(self._file.path, mode="w", format="mp4", options={"movflags": "+faststart"})
        coded_w, coded_h = even_size(self.width, self.height)
        video = self._container.add_stream("libx264", rate=self.rate)
        video.width = coded_w
        video.height = coded_h
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = 1 / self.rate
        video.options = {"crf": str(crf), "preset": preset, **({"x264-params": x264_params} if x264_params else {})}
        self._video = video
        self._audio_stream = None
        if self._audio is not None:
            audio = self._container.add_stream("aac", rate=self.sample_rate, layout="mono")
            audio.bit_rate = _AUDIO_BIT_RATE
            audio.codec_context.time_base = Fraction(1, self.sample_rate)
            self._audio_stream = audio

    # -- writing ------------------------------------------------------------------------------

    def write(self, image: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame of exactly the size given to the constructor."""
        if self._closed:
            raise RuntimeError("write() on a closed VideoWriter")
        if image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            raise ValueError(
                f"expected a {self.height}x{self.width}x3 uint8 frame, got {image.shape} {image.dtype}"
            )
        frame = rgb_to_yuv420p(pad_to_even(image))
        frame.pts = self.frames_written
        frame.time_base = self._video.codec_context.time_base
        self._container.mux(self._video.encode(frame))
        self.frames_written += 1
        if self._audio is not None:
            self._send_audio(audio_samples_until(self.frames_written, self.rate, self.sample_rate))

    def _send_audio(self, until: int | None, final: bool = False) -> None:
        """Encode audio samples up to ``until`` (None: all) in whole AAC frames (a partial one only if final)."""
        assert self._audio is not None and self._audio_stream is not None
        while not self._audio.exhausted:
            wanted = _AUDIO_CHUNK if until is None else min(_AUDIO_CHUNK, until - self._audio_sent)
            if wanted < _AUDIO_CHUNK and not (final and wanted > 0):
                return
            chunk = self._audio.take(wanted, whole=not final)
            if chunk is None:
                return
            frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :], format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self._audio_sent
            frame.time_base = Fraction(1, self.sample_rate)
            self._container.mux(self._audio_stream.encode(frame))
            self._audio_sent += len(chunk)

    @property
    def bytes_on_disk(self) -> int:
        """Size of the (not yet published) file so far: the muxer writes as it goes."""
        return os.fstat(self._file.file.fileno()).st_size

    # -- finishing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoders, finish the MP4 and move it onto the target path."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise LipdubError(f"{self.path}: no frames were written")
            if self._audio is not None:
                self._send_audio(None, final=True)
                self._container.mux(self._audio_stream.encode(None))
                self._audio.close()
            self._container.mux(self._video.encode(None))
            self._container.close()
            self._file.publish()
        except FileExistsError:
            self.abort()
            raise LipdubError(f"{self.path}: appeared while writing; left as it is") from None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        logger.info("wrote %s: %d frames at %s fps", self.path, self.frames_written, self.rate)

    def abort(self) -> None:
        """Stop without publishing: the temporary file is removed, the target left untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:  # a half-written file may fail to finalise; it is deleted anyway
            logger.debug("ignoring error while closing aborted %s", self.path, exc_info=True)
        self._discard()

    def _discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
        self._file.discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _as_mono_float(audio: np.ndarray) -> np.ndarray:
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise ValueError(f"audio must be a 1-D mono array, got shape {samples.shape}")
    return np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32)


class _AudioFeed:
    """Mono samples handed out in pieces of a chosen size, read from an array or an iterable.

    Holds at most one source piece plus the AAC frame being assembled, so a streamed track costs
    the same memory at one minute and at one hour.
    """

    def __init__(self, audio: np.ndarray | Iterable[np.ndarray]) -> None:
        if isinstance(audio, np.ndarray):
            audio = [audio]
        self._pieces: Iterator[np.ndarray] = iter(audio)
        self._buffer = np.zeros(0, np.float32)
        self._source_done = False

    @property
    def exhausted(self) -> bool:
        """True once every sample has been taken."""
        return self._source_done and self._buffer.size == 0

    def take(self, count: int, whole: bool) -> np.ndarray | None:
        """The next ``count`` samples; fewer only at the end, and then None if ``whole``."""
        while self._buffer.size < count and not self._source_done:
            try:
                piece = next(self._pieces)
            except StopIteration:
                self._source_done = True
                break
            piece = _as_mono_float(piece)
            self._buffer = piece if self._buffer.size == 0 else np.concatenate([self._buffer, piece])
        if self._buffer.size == 0 or (whole and self._buffer.size < count):
            return None
        chunk, self._buffer = self._buffer[:count], self._buffer[count:]
        return chunk

    def close(self) -> None:
        """Release the source (a decoder generator closes its file)."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        self._source_done = True
        self._buffer = np.zeros(0, np.float32)
