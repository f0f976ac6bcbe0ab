"""Decoding: constant-rate mapping, rotation, photos, real clips and bad inputs."""

import logging
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.media.decode import (
    ConstantRateMapper,
    choose_fps,
    iter_frames,
    normalize_rotation,
    probe_video,
    rotate_image,
    rotated_size,
    rotation_from_tag,
    slot_index,
)

# ------------------------------------------------------------------------------------------------
# Synthesised media


def numbered_image(value: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A flat grey picture whose level encodes a number (survives H.264 at 10-level steps)."""
    return np.full((height, width, 3), value, np.uint8)


def level_of(image: np.ndarray) -> int:
    return int(round(float(image.mean())))


def write_video(path, times_ms, levels, width=64, height=48, rotation=None, rate=25):
    """Write an MP4 with pictures at the given millisecond timestamps (VFR when irregular)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": "10", "bf": "0"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for t, level in zip(times_ms, levels):
            frame = av.VideoFrame.from_ndarray(numbered_image(level, width, height), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# ------------------------------------------------------------------------------------------------
# Pure helpers


def test_slot_index_rounds_to_nearest_slot_exactly():
    fps = Fraction(30000, 1001)
    # Frame 1000 of an NTSC clip sits at 1001/30 s: slot 1000 exactly, no float drift.
    assert slot_index(Fraction(1000 * 1001, 30000), fps) == 1000
    assert slot_index(Fraction(19, 1000), Fraction(25)) == 0  # 0.475 of a slot
    assert slot_index(Fraction(20, 1000), Fraction(25)) == 1  # exactly half: rounds up
    assert slot_index(Fraction(-30, 1000), Fraction(25)) == -1


def test_mapper_constant_rate_passes_every_picture_once():
    mapper = ConstantRateMapper()
    out = []
    for i in range(5):
        out += mapper.push(i, f"p{i}")
    out += mapper.finish()
    assert out == [(i, f"p{i}") for i in range(5)]


def test_mapper_duplicates_gaps_and_drops_shared_slots():
    mapper = ConstantRateMapper()
    out = []
    # a at 0, b at 3 (gap 1-2 repeats a), c and d both in slot 4 (c dropped), e at 5
    for slot, pic in [(0, "a"), (3, "b"), (4, "c"), (4, "d"), (5, "e")]:
        out += mapper.push(slot, pic)
    out += mapper.finish()
    assert out == [(0, "a"), (1, "a"), (2, "a"), (3, "b"), (4, "d"), (5, "e")]


def test_mapper_fills_leading_slots_with_first_picture():
    mapper = ConstantRateMapper()
    out = mapper.push(2, "a") + mapper.push(3, "b") + mapper.finish()
    assert out == [(0, "a"), (1, "a"), (2, "a"), (3, "b")]


def test_choose_fps():
    assert choose_fps(Fraction(174400, 7093), Fraction(25)) == 25  # CFR with a long tail
    assert choose_fps(Fraction(1350, 61), Fraction(30)) == Fraction(1350, 61)  # real VFR
    assert choose_fps(Fraction(25), Fraction(50)) == 25  # MPEG field rate
    assert choose_fps(None, Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert choose_fps(None, None) == 25


def test_rotation_helpers():
    assert [normalize_rotation(a) for a in (0, 90, -90, 180, -180, 89.6, 270)] == [0, 90, 270, 180, 180, 90, 270]
    assert rotation_from_tag("90") == 270  # tag is clockwise, ours counter-clockwise
    assert rotation_from_tag("270") == 90
    assert rotation_from_tag(None) == 0 and rotation_from_tag("bogus") == 0
    assert rotated_size(640, 480, 90) == (480, 640) and rotated_size(640, 480, 180) == (640, 480)
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)  # [[0 1 2] [3 4 5]]
    ccw = rotate_image(image, 90)
    assert ccw[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert ccw.flags.c_contiguous
    assert rotate_image(image, 180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_image(image, 270)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]


# ------------------------------------------------------------------------------------------------
# Synthesised files


def test_constant_rate_file_yields_every_frame_in_order(tmp_path):
    levels = [20 + 10 * i for i in range(20)]
    path = write_video(tmp_path / "cfr.mp4", [40 * i for i in range(20)], levels)
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.frame_count) == (64, 48, 25.0, 20)
    assert info.duration == pytest.approx(0.8, abs=1e-3)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(20))
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(20)])
    assert [level_of(f.image) for f in frames] == pytest.approx(levels, abs=2)
    assert all(f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3) for f in frames)


def test_variable_rate_file_is_resampled_by_timestamp(tmp_path):
    # Pictures at 0, 40, 160, 200, 210, 240 ms. The MP4 states 6 frames in 280 ms (the last one
    # lasts 40 ms), an average of 150/7 = 21.43 fps, one slot every 46.67 ms. Nearest slots:
    # 0 -> 0, 40 -> 0.86 -> 1, 160 -> 3.43 -> 3, 200 -> 4.29 -> 4, 210 -> 4.5 -> 5, 240 -> 5.14 -> 5.
    # So slot 2 repeats the picture of slot 1 and the 210 ms picture is dropped for the 240 ms one.
    times = [0, 40, 160, 200, 210, 240]
    levels = [20, 60, 100, 140, 180, 220]
    path = write_video(tmp_path / "vfr.mp4", times, levels)
    info = probe_video(path)
    assert info.fps == pytest.approx(150 / 7)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5]
    assert [level_of(f.image) for f in frames] == pytest.approx([20, 60, 60, 100, 140, 220], abs=2)
    assert frames[5].time == pytest.approx(5 * 7 / 150)
    assert frames[2].image is not frames[1].image  # a repeated picture is its own array


def test_decoding_from_a_start_frame_yields_exactly_the_frames_of_a_full_pass(tmp_path):
    # The variable-rate file above: slot 2 repeats slot 1's picture, so starting at 2 must still
    # show that picture (decoded before the start, converted only when it is shown).
    path = write_video(tmp_path / "vfr.mp4", [0, 40, 160, 200, 210, 240], [20, 60, 100, 140, 180, 220])
    full = list(iter_frames(path))
    for start in (1, 2, 3, 5, 6, 40):
        part = list(iter_frames(path, start=start))
        assert [f.index for f in part] == [f.index for f in full[start:]]
        for a, b in zip(part, full[start:]):
            np.testing.assert_array_equal(a.image, b.image)
            assert a.time == b.time


def test_rotated_file_is_turned_upright(tmp_path):
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise, like a phone held the other way
        for _ in range(3):
            image = np.zeros((32, 64, 3), np.uint8)
            image[:8, :16] = 255  # white block in the stored top-left corner
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    info = probe_video(path)
    assert (info.rotation, info.width, info.height) == (90, 32, 64)
    frame = next(iter_frames(path))
    assert frame.image.shape == (64, 32, 3) and frame.image.flags.c_contiguous
    # Rotating 90 degrees counter-clockwise moves the top-left corner to the bottom-left.
    assert frame.image[60, 2].mean() > 200
    assert frame.image[2, 2].mean() < 50


def test_photo(tmp_path):
    image = np.zeros((30, 40, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    info = probe_video(path, photo_fps=30.0)
    assert info.is_photo and (info.width, info.height, info.frame_count, info.fps) == (40, 30, 1, 30.0)
    frames = list(iter_frames(path))
    assert len(frames) == 1 and frames[0].index == 0
    np.testing.assert_array_equal(frames[0].image, image)


def test_photo_with_a_video_suffix_is_still_a_photo(tmp_path):
    path = tmp_path / "face.mp4"
    ok, data = cv2.imencode(".png", np.full((10, 12, 3), 50, np.uint8))
    path.write_bytes(data.tobytes())
    info = probe_video(path)
    assert info.is_photo and (info.width, info.height) == (12, 10)
    assert len(list(iter_frames(path))) == 1


# ------------------------------------------------------------------------------------------------
# Bad inputs


def test_missing_file(tmp_path):
    with pytest.raises(LipdubError, match="no such file"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(LipdubError, match="no such file"):
        list(iter_frames(tmp_path / "nope.mp4"))


def test_directory(tmp_path):
    with pytest.raises(LipdubError, match="directory"):
        probe_video(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(LipdubError, match="empty"):
        list(iter_frames(path))


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(LipdubError, match="notes.mp4"):
        probe_video(path)
    with pytest.raises(LipdubError, match="notes.mp4"):
        list(iter_frames(path))


def test_broken_photo(tmp_path):
    path = tmp_path / "face.jpg"
    path.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(LipdubError, match="face.jpg"):
        list(iter_frames(path))


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "speech.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(LipdubError, match="no video stream"):
        probe_video(path)


def test_truncated_mp4_without_index_raises(tmp_path):
    # moov at the end (the default): a cut file has no index at all.
    full = write_video(tmp_path / "full.mp4", [40 * i for i in range(25)], [100] * 25)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(LipdubError, match="cut.mp4"):
        list(iter_frames(cut))


def test_truncated_stream_keeps_good_frames_and_warns(tmp_path, caplog):
    # MKV (like faststart MP4) is decodable up to the cut.
    path = tmp_path / "full.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(50):
            noise = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)  # incompressible
            container.mux(stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="lipdub.media.decode"):
        frames = list(iter_frames(cut))
    assert 10 < len(frames) < 50
    assert "truncated" in caplog.text


# ------------------------------------------------------------------------------------------------
# Real clips


@pytest.mark.parametrize(
    "name, fps, duration, size",
    [
        ("train/real/woman_flag.mp4", 25.0, 5.0, (590, 590)),
        ("train/real/man_glasses_radio.mp4", 30000 / 1001, 2.1, (512, 512)),
        ("train/real/woman_lecturer_3.mkv", 30.0, 7.1, (256, 256)),
        ("train/real/grid_man_denim.mpg", 25.0, 3.0, (360, 288)),
        ("train/real/asian_man_suit.mp4", 1350 / 61, 6.1, (700, 700)),  # variable frame rate
    ],
)
def test_real_clips(shared, name, fps, duration, size):
    path = shared(f"data/{name}")
    info = probe_video(path)
    assert info.fps == pytest.approx(fps, rel=1e-4)
    assert (info.width, info.height) == size and not info.is_photo and info.rotation == 0
    count = 0
    for frame in iter_frames(path):
        assert frame.index == count and frame.image.shape == (size[1], size[0], 3)
        count += 1
    assert abs(count - duration * fps) <= 2
    assert abs(count - info.frame_count) <= 1


@pytest.mark.parametrize("name", ["train/real/asian_man_suit.mp4", "train/real/grid_man_denim.mpg"])
def test_real_clip_from_a_start_frame(shared, name):
    path = shared(f"data/{name}")
    full = [f.image for f in iter_frames(path)]
    start = len(full) // 2
    part = list(iter_frames(path, start=start))
    assert [f.index for f in part] == list(range(start, len(full)))
    for frame in part:
        np.testing.assert_array_equal(frame.image, full[frame.index])


def test_real_clip_that_only_looks_variable_rate_keeps_every_frame(shared):
    # 109 frames exactly 40 ms apart, but the header duration gives an average of 24.59 fps.
    path = shared("data/train/synthetic/vasa1_short_10.mp4")
    info = probe_video(path)
    assert info.fps == 25.0
    assert sum(1 for _ in iter_frames(path)) == 109 == info.frame_count


def test_real_photo(shared):
    path = shared("data/photos/full4.jpeg")
    info = probe_video(path)
    assert info.is_photo and (info.width, info.height) == (450, 675)
    (frame,) = list(iter_frames(path))
    assert frame.image.shape == (675, 450, 3)
