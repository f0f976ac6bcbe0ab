"""The tracking pass's lip retest (`lipdub.face.lip_retest`): its pure parts against known values,
the collector with a scripted detector, and on real clips: a face Face Mesh cannot read
(``man_bald_beard_couch``) is flagged by `sync`, a clear one is not."""

import logging

import numpy as np
import pytest

from conftest import shared_file
from lipdub.face.lip_retest import (
    UNRELIABLE_CHANGE,
    LipReading,
    LipRetest,
    opening_change,
    recompressed,
    retest_frames,
)


def test_retest_frames_spread_evenly_and_never_exceed_the_video():
    assert retest_frames(100, 5) == {0, 25, 50, 74, 99}
    assert retest_frames(3, 24) == {0, 1, 2}
    assert retest_frames(1, 24) == {0}
    assert retest_frames(0) == frozenset()
    assert len(retest_frames(1000)) == 24


def test_opening_change_is_the_mean_absolute_difference_of_the_pairs_both_read():
    assert opening_change(np.array([0.1, 0.2, np.nan]), np.array([0.1, 0.25, 0.3])) == pytest.approx(0.025)
    assert opening_change(np.array([0.0, 0.1]), np.array([0.1, 0.0])) == pytest.approx(0.1)
    assert np.isnan(opening_change(np.array([np.nan]), np.array([0.1])))
    assert np.isnan(opening_change(np.zeros(0), np.zeros(0)))


def test_recompression_keeps_the_picture_but_changes_fine_detail():
    rng = np.random.default_rng(0)
    gradient = np.repeat(np.linspace(0, 255, 128)[None, :, None], 96, axis=0).repeat(3, axis=2).astype(np.uint8)
    smooth = recompressed(gradient)
    assert smooth.shape == gradient.shape and smooth.dtype == np.uint8
    assert np.abs(smooth.astype(int) - gradient).mean() < 2.0
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    assert np.abs(recompressed(noise).astype(int) - noise).mean() > 10.0  # JPEG really ran
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200  # RGB in, RGB out: a red picture stays red
    assert recompressed(red)[..., 0].mean() > 190 and recompressed(red)[..., 2].mean() < 10


def test_reliable_only_fails_on_enough_change():
    assert LipReading(0, float("nan")).reliable
    assert LipReading(24, UNRELIABLE_CHANGE / 2).reliable
    assert not LipReading(24, UNRELIABLE_CHANGE * 1.5).reliable
    assert "hard to track" in LipReading(24, 0.04).warning()


def _mouth(opening: float) -> np.ndarray:
    """478 points whose eye corners are 1 apart and whose inner lips are ``opening`` apart."""
    points = np.zeros((478, 2), np.float32)
    points[33], points[263] = (0.0, 0.0), (1.0, 0.0)
    points[13], points[14] = (0.5, 1.0), (0.5, 1.0 + opening)
    return points


class _ScriptedDetector:
    """`landmarks_in` answers from a script of openings, one per call, and records the calls."""

    def __init__(self, openings):
        self.openings = list(openings)
        self.calls = 0

    def landmarks_in(self, image, box):
        self.calls += 1
        opening = self.openings.pop(0)
        return None if opening is None else _mouth(opening)


class _Face:
    box = np.array([0, 0, 10, 10], np.float32)


def test_retest_reads_only_its_frames_with_a_face_and_averages_the_change():
    retest = LipRetest(frame_count=10, samples=3)  # frames 0, 4 (4.5 rounds to even), 9
    detector = _ScriptedDetector([0.10, 0.14, 0.05, 0.05, 0.20, None])
    image = np.zeros((8, 8, 3), np.uint8)
    for index in range(10):
        retest.add(detector, index, image, None if index == 9 else _Face())
    assert detector.calls == 4  # frame 9 had no face; the other frames were not wanted
    reading = retest.result()
    assert reading.frames == 2
    assert reading.mean_change == pytest.approx((0.04 + 0.0) / 2, abs=1e-6)
    retest.add(_ScriptedDetector([0.2, None]), 9, image, _Face())  # a reading Face Mesh misses is left out
    assert retest.result().frames == 2


def test_sync_warns_about_a_face_whose_lips_face_mesh_cannot_read(tmp_path, caplog):
    from lipdub.pipeline import sync

    clip = shared_file("data/train/real/man_bald_beard_couch.mp4")
    speech = shared_file("data/audio/english_male_1.wav")
    with caplog.at_level(logging.WARNING, logger="lipdub.pipeline"):
        result = sync(clip, speech, tmp_path / "out.mp4", length_mode="cut")
    assert result.lip_reading.frames >= 20
    assert result.lip_reading.mean_change > UNRELIABLE_CHANGE  # measured: 0.041
    assert not result.lip_reading.reliable
    assert any("hard to track" in record.getMessage() for record in caplog.records)


def test_a_clear_face_passes_the_retest():
    from lipdub.face.detect import FaceDetector
    from lipdub.face.track import FaceTracker, SmoothingConfig
    from lipdub.media.decode import iter_frames, probe_video

    clip = shared_file("data/train/real/woman_flag.mp4")
    info = probe_video(clip)
    retest = LipRetest(info.frame_count)
    with FaceDetector() as detector:
        tracker = FaceTracker(detector, smoothing=SmoothingConfig(fps=info.fps))
        for frame in iter_frames(clip):
            retest.add(detector, frame.index, frame.image, tracker.update(frame.image))
    reading = retest.result()
    assert reading.frames >= 20
    assert reading.mean_change < UNRELIABLE_CHANGE / 2  # measured: 0.001
    assert reading.reliable


def test_face_mesh_reads_the_same_points_in_the_face_region_as_in_the_frame():
    """`face_region` hands Face Mesh the very pixels it would cut from the whole frame."""
    from lipdub.face.detect import FaceDetector
    from lipdub.face.lip_retest import face_region
    from lipdub.media.decode import iter_frames

    clip = shared_file("data/train/real/woman_flag.mp4")
    image = next(iter_frames(clip)).image
    with FaceDetector() as detector:
        face = detector.detect(image)[0]
        height, width = image.shape[:2]
        # the face's own box, then one whose window runs over the frame's left and top edges
        for box in (face.box, face.box - np.float32([face.box[0] - 5, face.box[1] - 5] * 2)):
            whole = detector.landmarks_in(image, box)
            region, local = face_region(image, box)
            assert region.shape[0] <= height and region.shape[1] <= width
            part = detector.landmarks_in(region, local)
            assert whole is not None and part is not None
            offset = np.array(box[:2] - local[:2], np.float64)
            assert np.abs(part[:, :2] + offset - whole[:, :2]).max() < 1e-3
    assert face_region(image, np.array([-500, -500, -400, -400], np.float32))[0] is None
