"""YUV4MPEG2 (.y4m): the uncompressed video stream `lipdub live` writes, to a file or a pipe.

Why y4m: a live avatar's frames must leave as soon as they are drawn, without a container that
needs an index at the end (MP4) or an encoder's look-ahead. Every player and encoder reads it
from a pipe (``lipdub live face.jpg | ffplay -``, ``| mpv -``, ``| ffmpeg -i - out.mp4``) because
its header says everything: size, frame rate, colour layout. Each frame is ``FRAME\\n`` and the
three planes.

Colour: 4:4:4 (no chroma subsampling, so any width and height work, odd ones included) in
BT.601 studio range (Y 16-235, Cb/Cr 16-240), which is what players assume for y4m without a
colour-range tag; `rgb_to_ycbcr` is the conversion, tested against its known values.
"""

from __future__ import annotations

from fractions import Fraction
from typing import BinaryIO

import numpy as np

#: BT.601 studio-range RGB (0-255) -> Y'CbCr (ITU-R BT.601-7, section 2.5.3 scaled to 8 bits).
_MATRIX = np.array([[65.481, 128.553, 24.966],
                    [-37.797, -74.203, 112.0],
                    [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 planes Y, Cb, Cr of an (H, W, 3) uint8 RGB image (BT.601 studio range).

    White is (235, 128, 128), black (16, 128, 128), pure red (81, 90, 240).
    """
    rgb = np.asarray(image, np.float32)
    planes = np.tensordot(_MATRIX.astype(np.float32), rgb, axes=([1], [2])) + _OFFSET.astype(np.float32)[:, None, None]
    return np.clip(planes + 0.5, 0, 255).astype(np.uint8)


def frame_rate_fraction(fps: float) -> Fraction:
    """``fps`` as the exact ratio the header needs (29.97 -> 30000/1001, 25 -> 25/1)."""
    for denominator in (1, 1001):
        numerator = fps * denominator
        if abs(numerator - round(numerator)) < 1e-3 * denominator:
            return Fraction(int(round(numerator)), denominator)
    return Fraction(fps).limit_denominator(100000)


def header(width: int, height: int, fps: float) -> bytes:
    """The stream header: size, frame rate, progressive, square pixels, 4:4:4."""
    rate = frame_rate_fraction(fps)
    return f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C444\n".encode("ascii")


class Y4MWriter:
    """Writes RGB frames to a binary file object as a y4m stream; the header goes with the first."""

    def __init__(self, file: BinaryIO, width: int, height: int, fps: float, flush_each_frame: bool = False):
        self.file = file
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.flush_each_frame = flush_each_frame
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame of the stream's size."""
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, the stream {self.width}x{self.height}")
        if self.frames_written == 0:
            self.file.write(header(self.width, self.height, self.fps))
        self.file.write(b"FRAME\n")
        self.file.write(rgb_to_ycbcr(image).tobytes())
        if self.flush_each_frame:
            self.file.flush()
        self.frames_written += 1
