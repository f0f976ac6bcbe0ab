"""The y4m stream `lipdub live` writes: known colour values, and FFmpeg reads it back."""

import io
from fractions import Fraction

import av
import numpy as np

from lipdub.media.y4m import Y4MWriter, frame_rate_fraction, header, rgb_to_ycbcr


def test_bt601_studio_range_known_values():
    image = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    planes = rgb_to_ycbcr(image)[:, 0].T
    np.testing.assert_array_equal(planes, [[235, 128, 128], [16, 128, 128], [81, 90, 240], [145, 54, 34], [41, 240, 110]])


def test_frame_rates_are_exact_ratios():
    assert frame_rate_fraction(25.0) == Fraction(25, 1)
    assert frame_rate_fraction(29.97) == Fraction(30000, 1001)
    assert frame_rate_fraction(23.976) == Fraction(24000, 1001)
    assert header(321, 240, 25.0) == b"YUV4MPEG2 W321 H240 F25:1 Ip A1:1 C444\n"


def test_ffmpeg_reads_the_stream_back_with_its_size_rate_and_colours():
    rng = np.random.default_rng(0)
    frames = [np.clip(rng.normal(128, 40, (31, 45, 3)), 0, 255).astype(np.uint8) for _ in range(3)]
    buffer = io.BytesIO()
    writer = Y4MWriter(buffer, 45, 31, 25.0)
    for frame in frames:
        writer.write(frame)
    buffer.seek(0)
    with av.open(buffer, format="yuv4mpegpipe") as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (45, 31, 25)
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 3
    for got, sent in zip(decoded, frames):
        # 8-bit studio range both ways: within a few levels.
        assert np.abs(got.astype(int) - sent).mean() < 2.0
