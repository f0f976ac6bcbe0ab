"""Detector and tracker on real media from ../shared/data (skipped when it is absent)."""


import av
import cv2
import numpy as np
import pytest

from lipdub.face.detect import NUM_LANDMARKS, FaceDetector, box_iou, landmarks_box
from lipdub.face.track import FaceTracker, is_scene_cut, scene_signature

CLIP_A = "data/train/real/man_us_president_1.mkv"  # 256x256, 30 fps
CLIP_B = "data/train/real/woman_blue_wall.mp4"  # 700x700, 30 fps
PHOTO = "data/photos/full4.jpeg"


def read_frames(path, count, size=None):
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            frames.append(image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return frames


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as d:
        yield d


def centre(box):
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def assert_one_good_face(faces, image):
    assert len(faces) == 1
    face = faces[0]
    h, w = image.shape[:2]
    assert face.score > 0.5
    assert face.box.shape == (4,) and face.box.dtype == np.float32
    assert 0.05 * w < face.box[2] - face.box[0] < w
    assert face.landmarks is not None and face.landmarks.shape == (NUM_LANDMARKS, 2)
    # Landmarks lie on the face: most inside the box grown by 25 %, their box overlapping it.
    x1, y1, x2, y2 = face.box
    mx, my = 0.25 * (x2 - x1), 0.25 * (y2 - y1)
    inside = ((face.landmarks[:, 0] > x1 - mx) & (face.landmarks[:, 0] < x2 + mx)
              & (face.landmarks[:, 1] > y1 - my) & (face.landmarks[:, 1] < y2 + my))
    assert inside.mean() > 0.95
    assert box_iou(landmarks_box(face.landmarks), face.box) > 0.4
    # The mouth (13 upper lip, 14 lower lip) is in the lower half of the box.
    assert face.landmarks[13, 1] > (y1 + y2) / 2 and face.landmarks[14, 1] < y2 + my


def test_detector_finds_one_face_in_clip_frame(shared, detector):
    image = read_frames(shared(CLIP_B), 1)[0]
    assert_one_good_face(detector.detect(image), image)


def test_detector_finds_one_face_in_photo(shared):
    image = cv2.cvtColor(cv2.imread(str(shared(PHOTO))), cv2.COLOR_BGR2RGB)
    with FaceDetector(still_image=True) as still:
        assert_one_good_face(still.detect(image), image)


def test_detector_finds_no_face_in_black_or_noise(detector):
    assert detector.detect(np.zeros((360, 640, 3), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


def test_tracker_follows_face_with_less_jitter_than_detector(shared, detector):
    frames = read_frames(shared(CLIP_A), 90)
    tracker = FaceTracker(detector)
    tracked = [tracker.update(f) for f in frames]
    assert sum(t is not None for t in tracked) >= 0.95 * len(frames)
    assert tracked[0].is_new_track and not any(t.is_new_track for t in tracked[1:] if t)
    assert all(t.landmarks.shape == (NUM_LANDMARKS, 2) for t in tracked if t)
    raw = [detector.detect_boxes(f) for f in frames]
    raw_centres = np.array([centre(r[0].box) for r in raw if r])
    smooth_centres = np.array([centre(t.box) for t in tracked if t])
    raw_jitter = np.linalg.norm(np.diff(raw_centres, axis=0), axis=1).mean()
    smooth_jitter = np.linalg.norm(np.diff(smooth_centres, axis=0), axis=1).mean()
    assert smooth_jitter < 0.8 * raw_jitter, (smooth_jitter, raw_jitter)
    # The smoothed box is still on the face the detector sees.
    ious = [box_iou(t.box, r[0].box) for t, r in zip(tracked, raw) if t and r]
    assert np.median(ious) > 0.5


def test_scene_cut_between_two_real_clips(shared, detector):
    first = read_frames(shared(CLIP_A), 20, size=(512, 512))
    second = read_frames(shared(CLIP_B), 20, size=(512, 512))
    signatures = [scene_signature(f) for f in first + second]
    cuts = [i for i in range(1, len(signatures)) if is_scene_cut(signatures[i - 1], signatures[i])]
    assert cuts == [20]
    tracker = FaceTracker(detector)
    tracked = [tracker.update(f) for f in first + second]
    assert tracker.scene_cuts == 1
    assert all(t is not None for t in tracked)
    assert [i for i, t in enumerate(tracked) if t.is_new_track] == [0, 20]
    # No smoothing across the cut: the first box of the new shot is the new face, not a blend.
    raw = detector.detect_boxes(second[0])[0].box
    assert box_iou(tracked[20].box, raw) > 0.5


def test_tracker_without_face_returns_none_and_recovers(shared, detector):
    frames = read_frames(shared(CLIP_A), 10)
    black = np.zeros_like(frames[0])
    tracker = FaceTracker(detector)
    results = [tracker.update(f) for f in frames[:5] + [black, black] + frames[5:]]
    assert results[5] is None and results[6] is None
    assert all(r is not None for r in results[:5] + results[7:])
    assert results[7].is_new_track


def test_tracker_face_index_follows_same_person(shared, detector):
    left = read_frames(shared(CLIP_A), 30, size=(300, 300))
    right = read_frames(shared(CLIP_B), 30, size=(300, 300))
    frames = [np.hstack([a, b]) for a, b in zip(left, right)]
    for index, side in ((0, "left"), (1, "right")):
        tracker = FaceTracker(detector, face_index=index)
        tracked = [tracker.update(f) for f in frames]
        assert all(t is not None for t in tracked)
        xs = np.array([centre(t.box)[0] for t in tracked])
        assert (xs < 300).all() if side == "left" else (xs > 300).all()
    tracker = FaceTracker(detector, face_index=2)
    assert tracker.update(frames[0]) is None


def test_tracker_forced_box(shared, detector):
    frames = read_frames(shared(CLIP_B), 10)
    face = detector.detect(frames[0])[0]
    box = tuple(int(v) for v in face.box)
    tracker = FaceTracker(detector, forced_box=box)
    tracked = [tracker.update(f) for f in frames]
    assert all(t is not None for t in tracked)
    for t in tracked:
        np.testing.assert_array_equal(t.box, np.array(box, np.float32))
        assert box_iou(landmarks_box(t.landmarks), face.box) > 0.4


@pytest.mark.slow
@pytest.mark.parametrize("size", [None, (1280, 720)])
def test_tracker_follows_every_frame(shared, detector, size):
    """60 frames of a real clip, native and scaled into 720p: a face every frame, no re-detection gap.

    Its speed is a benchmark figure (`benchmarks/throughput.py`, "detect+track"), not a test.
    """
    frames = read_frames(shared(CLIP_B), 60, size=size)
    tracker = FaceTracker(detector)
    tracker.update(frames[0])
    tracked = [tracker.update(f) for f in frames[1:]]
    assert all(t is not None for t in tracked)
