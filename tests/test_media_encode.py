"""Encoding: audio/video sync to the millisecond, lengths, odd sizes, atomic publishing."""

import os
import stat
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.fileio import AtomicFile
from lipdub.media.audio import load_audio
from lipdub.media.decode import iter_frames, probe_video
from lipdub.media.encode import (
    VideoWriter,
    audio_samples_until,
    even_size,
    fps_to_rational,
    pad_to_even,
)

SR = 16000

# ------------------------------------------------------------------------------------------------
# Pure helpers


def test_fps_to_rational():
    assert fps_to_rational(29.97) == Fraction(30000, 1001)
    assert fps_to_rational(23.976) == Fraction(24000, 1001)
    assert fps_to_rational(59.94) == Fraction(60000, 1001)
    assert fps_to_rational(30000 / 1001) == Fraction(30000, 1001)
    assert fps_to_rational(25) == 25 and fps_to_rational(25.0).denominator == 1
    assert fps_to_rational(30.0) == 30
    assert fps_to_rational(22.13) == Fraction(2213, 100)
    assert abs(float(fps_to_rational(1350 / 61)) - 1350 / 61) < 1e-6
    with pytest.raises(ValueError):
        fps_to_rational(0)


def test_even_size_and_padding():
    assert even_size(64, 48) == (64, 48) and even_size(65, 47) == (66, 48)
    image = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    padded = pad_to_even(image)
    assert padded.shape == (4, 6, 3)
    np.testing.assert_array_equal(padded[:3, :5], image)
    np.testing.assert_array_equal(padded[3, :5], image[2])  # last row repeated
    np.testing.assert_array_equal(padded[:3, 5], image[:, 4])  # last column repeated
    assert pad_to_even(np.zeros((4, 6, 3), np.uint8)).shape == (4, 6, 3)


def test_audio_samples_until():
    assert audio_samples_until(25, Fraction(25), 16000) == 16000
    assert audio_samples_until(1, Fraction(30000, 1001), 16000) == 533  # 533.87 floored
    assert audio_samples_until(0, Fraction(25), 16000) == 0


# ------------------------------------------------------------------------------------------------
# The key property: a click at frame k's time plays exactly with frame k


def click_onset_seconds(samples: np.ndarray) -> float:
    """Time of the first sample above half of the peak (AAC pre-echo stays well below it)."""
    peak = float(np.abs(samples).max())
    return int(np.argmax(np.abs(samples) > 0.5 * peak)) / SR


@pytest.mark.parametrize("fps", [25.0, 29.97])
def test_click_and_white_frame_stay_within_a_millisecond(tmp_path, fps):
    n_frames, k = 50, 31
    rate = fps_to_rational(fps)
    white_time = float(k / rate)
    audio = np.zeros(int(n_frames / rate * SR), np.float32)
    start = round(white_time * SR)
    audio[start : start + 48] = 0.8  # a 3 ms click starting exactly at frame k
    path = tmp_path / "sync.mp4"
    with VideoWriter(path, 64, 48, fps, audio=audio, sample_rate=SR) as writer:
        for i in range(n_frames):
            writer.write(np.full((48, 64, 3), 255 if i == k else 0, np.uint8))
    assert writer.frames_written == n_frames

    frames = list(iter_frames(path))
    white = [f for f in frames if f.image.mean() > 128]
    assert [f.index for f in white] == [k]
    samples = load_audio(path, SR)
    assert abs(click_onset_seconds(samples) - white[0].time) < 0.001
    assert abs(white[0].time - white_time) < 1e-9

    # An independent reader agrees: PyAV's own timestamps put the click at the same time.
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        first = next(container.decode(stream))
        assert first.pts * first.time_base == 0


def test_frame_count_duration_and_audio_length_preserved(tmp_path):
    fps, n_frames = 29.97, 45
    audio = (0.1 * np.sin(2 * np.pi * 440 * np.arange(24000) / SR)).astype(np.float32)
    path = tmp_path / "len.mp4"
    with VideoWriter(path, 32, 32, fps, audio=audio) as writer:
        for _ in range(n_frames):
            writer.write(np.zeros((32, 32, 3), np.uint8))
    info = probe_video(path)
    assert info.frame_count == n_frames and info.fps == pytest.approx(30000 / 1001)
    assert info.duration == pytest.approx(n_frames * 1001 / 30000, abs=1e-3)
    assert sum(1 for _ in iter_frames(path)) == n_frames
    # Audio shorter than the video (1.5 s against 1.5015 s) is kept as given, not padded.
    # MP4 states the audio length in milliseconds; 1.5 s is exact, so we get every sample back.
    assert len(load_audio(path)) == len(audio)


def test_packets_reach_the_disk_while_writing(tmp_path):
    # Audio is fed as frames arrive, so the muxer can interleave and write as it goes. Had the
    # audio waited until close, the muxer would hold every video packet in memory meanwhile
    # (up to 10 s of it) and the temporary file would stay empty.
    path = tmp_path / "flat.mp4"
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (4, 192, 192, 3), dtype=np.uint8)  # incompressible pictures
    with VideoWriter(path, 192, 192, 25, audio=np.zeros(4 * SR, np.float32)) as writer:
        for i in range(75):
            writer.write(noise[i % 4])
        written = writer.bytes_on_disk
    # x264 holds back a few dozen frames (lookahead, threads); the rest must be on disk.
    assert written > 0.3 * path.stat().st_size
    with av.open(str(path)) as container:
        kinds = [p.stream.type for p in container.demux() if p.size]
    assert kinds.count("audio") > 50 and kinds.count("video") == 75


def test_pixels_survive_the_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    image = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    path = tmp_path / "px.mp4"
    with VideoWriter(path, 64, 48, 25, crf=10) as writer:
        writer.write(image)
        writer.write(image)
    (first, second) = [f.image for f in iter_frames(path)]
    assert np.abs(first.astype(int) - image).mean() < 6  # yuv420p + crf 10: small error only


def test_odd_size_is_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    image = np.zeros((47, 63, 3), np.uint8)
    image[:, -1] = 255  # last column white: replicated into the padding column
    with VideoWriter(path, 63, 47, 25) as writer:
        for _ in range(3):
            writer.write(image)
    info = probe_video(path)
    assert (info.width, info.height) == (64, 48)
    frame = next(iter_frames(path))
    assert frame.image[:, 62:].mean() > 200 and frame.image[:, :60].mean() < 30


def test_video_only(tmp_path):
    path = tmp_path / "mute.mp4"
    with VideoWriter(path, 32, 32, 25) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0 and len(container.streams.video) == 1
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: playable while downloading


# ------------------------------------------------------------------------------------------------
# Atomic publishing and refusals


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_exception_inside_with_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 32, 32, 25, audio=np.zeros(8000, np.float32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            assert leftovers(tmp_path) == []  # unnamed until published (O_TMPFILE)
            raise RuntimeError("boom")
    assert leftovers(tmp_path) == []


def test_without_o_tmpfile_a_hidden_temporary_is_cleaned_up(tmp_path, monkeypatch):
    monkeypatch.setattr(AtomicFile, "_open_unnamed", staticmethod(lambda directory: None))
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 32, 32, 25, audio=np.zeros(8000, np.float32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            assert len(leftovers(tmp_path)) == 1 and leftovers(tmp_path)[0].startswith(".out.mp4.")
            raise RuntimeError("boom")
    assert leftovers(tmp_path) == []
    with VideoWriter(path, 32, 32, 25) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert leftovers(tmp_path) == ["out.mp4"] and path.read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("unnamed", [True, False])
def test_published_video_follows_the_umask(tmp_path, monkeypatch, umask, unnamed):
    if not unnamed:
        monkeypatch.setattr(AtomicFile, "_open_unnamed", staticmethod(lambda directory: None))
    path = tmp_path / "out.mp4"
    old = os.umask(umask)
    try:
        with VideoWriter(path, 32, 32, 25) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_streamed_audio_is_muxed_like_an_array(tmp_path):
    # The same samples given as one array and as uneven pieces make the same audio track.
    rng = np.random.default_rng(3)
    audio = (0.3 * rng.standard_normal(3 * SR + 123)).astype(np.float32)
    cuts = [0, 1, 700, 5000, 5001, 30000, len(audio)]
    pieces = (audio[a:b] for a, b in zip(cuts, cuts[1:]))
    outputs = []
    for name, source in (("array.mp4", audio), ("stream.mp4", pieces)):
        with VideoWriter(tmp_path / name, 32, 32, 25, audio=source, sample_rate=SR) as writer:
            for _ in range(75):
                writer.write(np.zeros((32, 32, 3), np.uint8))
        outputs.append(load_audio(tmp_path / name, SR))
    assert len(outputs[0]) == len(outputs[1]) >= len(audio)  # the track is not cut at the video's end
    assert np.array_equal(outputs[0], outputs[1])


def test_abort_keeps_existing_target(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous result")
    writer = VideoWriter(path, 32, 32, 25, overwrite=True)
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.abort()
    assert path.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == ["out.mp4"]


def test_overwrite(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous result")
    with pytest.raises(LipdubError, match="already exists"):
        VideoWriter(path, 32, 32, 25)
    assert leftovers(tmp_path) == ["out.mp4"]
    with VideoWriter(path, 32, 32, 25, overwrite=True) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert path.read_bytes()[4:8] == b"ftyp" and leftovers(tmp_path) == ["out.mp4"]


def test_output_directory_must_exist(tmp_path):
    with pytest.raises(LipdubError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 32, 32, 25)
    (tmp_path / "file").write_text("x")
    with pytest.raises(LipdubError, match="not a directory"):
        VideoWriter(tmp_path / "file" / "out.mp4", 32, 32, 25)


def test_wrong_frame_shape_is_a_bug(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", 32, 32, 25) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((32, 30, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((32, 32, 3), np.float32))


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "out.mp4", 32, 32, 25)
    with pytest.raises(LipdubError, match="no frames"):
        writer.close()
    assert leftovers(tmp_path) == []


def test_rgb_to_yuv420p_matches_ffmpeg_swscale():
    """OpenCV's conversion (six times faster) against FFmpeg's, on a real photo."""
    import cv2

    from lipdub.media.encode import rgb_to_yuv420p

    photo = cv2.imread(str(Path(__file__).resolve().parents[1] / "lipdub" / "assets" / "sample_face.jpg"))
    image = np.ascontiguousarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)[:320, :320])
    ours = rgb_to_yuv420p(image).to_ndarray().astype(int)
    theirs = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    assert ours.shape == theirs.shape == (480, 320)
    difference = np.abs(ours - theirs)
    assert difference[:320].max() <= 1  # luma: the same BT.601 limited-range arithmetic
    # chroma: the same matrix, a slightly different subsampling filter (shows only at sharp edges)
    assert difference[320:].mean() < 0.5


_ENCODE_ONCE = """
import hashlib, sys
import cv2
import numpy as np
from lipdub.media.encode import VideoWriter
rng = np.random.default_rng(0)
base = cv2.GaussianBlur(rng.integers(0, 256, (72, 192, 3), dtype=np.uint8), (0, 0), 3)
frames = [np.ascontiguousarray(base[:, 2 * k: 2 * k + 96]) for k in range(30)]  # a smooth pan
with VideoWriter(sys.argv[1], 96, 72, 25) as writer:
    for frame in frames:
        writer.write(frame)
print(hashlib.md5(open(sys.argv[1], "rb").read()).hexdigest())
"""


def test_the_bitstream_does_not_depend_on_uninitialised_memory(tmp_path):
    """glibc fills fresh heap memory with the MALLOC_PERTURB_ byte: two bytes, one bitstream.
    With x264's mb-tree on (`NO_MBTREE`) the two files differed."""
    import subprocess
    import sys

    digests = []
    for index, byte in enumerate(("165", "77")):
        env = {**os.environ, "MALLOC_PERTURB_": byte}
        run = subprocess.run([sys.executable, "-c", _ENCODE_ONCE, str(tmp_path / f"{index}.mp4")],
                             env=env, capture_output=True, text=True, check=True)
        digests.append(run.stdout.strip())
    assert len(digests[0]) == 32 and digests[0] == digests[1]
