"""Can Face Mesh read this speaker's lips? A retest on a few frames of the tracking pass.

Why: the motion engine moves the pixels where the tracker says the lips are. On some faces Face
Mesh does not find them: on ``man_bald_beard_couch`` (a dark beard round pale lips, 640x360, a
grin showing the upper teeth) it puts the lower lip on the teeth, above the real lower lip, and
the same frame read again after a slight re-compression often gets a different opening. A dub of
such a video moves the wrong pixels, and nothing later in the pipeline can tell; the user should
know before publishing it (`docs/model-card.md`, "What the judge can read").

The retest: on `RETEST_FRAMES` frames spread over the video, Face Mesh reads the face twice in
still-image mode, on the frame as decoded and after a JPEG round trip at quality `RETEST_QUALITY`
(a change of the pixels no viewer notices), and the mouth openings (inner lips over the eye
corners, `lipdub.eval.mouth.mouth_aperture`) are compared. Measured at stop 27 with 40 frames per
clip (``python experiments/lip_retest_clips.py``, `docs/runs/lip-retest/results.json`): the mean
change is 0.037 eye widths on ``man_bald_beard_couch`` and 0.0002-0.0114 on 38 other clips of
``../shared/data`` (the ten validation clips, every third other real clip, expressive, silent and
two-face clips); hence `UNRELIABLE_CHANGE` 0.02. Cost: two Face Mesh calls and a JPEG round trip
of the face per retested frame, about 0.6 s of a 9 s dub of a 720p clip on two cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from lipdub.eval.mouth import mouth_aperture
from lipdub.face.detect import mesh_crop_window

logger = logging.getLogger(__name__)

#: Frames of a video read twice.
RETEST_FRAMES = 24
#: JPEG quality of the second reading's pixels.
RETEST_QUALITY = 75
#: Mean change of the opening (eye-corner units) above which the lips count as unreadable.
UNRELIABLE_CHANGE = 0.02


def retest_frames(frame_count: int, samples: int = RETEST_FRAMES) -> frozenset[int]:
    """Indices of ``samples`` frames spread evenly over ``frame_count`` (all of them when fewer)."""
    if frame_count <= 0 or samples <= 0:
        return frozenset()
    return frozenset(np.linspace(0, frame_count - 1, min(samples, frame_count)).round().astype(int).tolist())


def recompressed(image: np.ndarray, quality: int = RETEST_QUALITY) -> np.ndarray:
    """``image`` (RGB uint8) after a JPEG round trip at ``quality``."""
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def opening_change(first: np.ndarray, second: np.ndarray) -> float:
    """Mean absolute difference of two readings of the same openings (NaN pairs skipped; NaN if none)."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    both = np.isfinite(first) & np.isfinite(second)
    return float(np.abs(first[both] - second[both]).mean()) if both.any() else float("nan")


def face_region(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(the part of ``image`` Face Mesh sees for ``box``, the box in that part's pixels); None when
    the window lies outside the frame.

    Face Mesh reads the same pixels either way (the window moves by whole pixels, onto the same
    thinning grid: `lipdub.face.detect.cut_square`), and only this part need be re-compressed: a
    720p frame's JPEG round trip costs 8 ms, a face's 1.
    """
    x1, y1, side = mesh_crop_window(box)
    height, width = image.shape[:2]
    left, top = max(x1, 0), max(y1, 0)
    right, bottom = min(x1 + side, width), min(y1 + side, height)
    if right <= left or bottom <= top:
        return None, box
    return image[top:bottom, left:right], box - np.array([left, top, left, top], np.float32)


@dataclass(frozen=True)
class LipReading:
    """What the retest found: how many frames it read twice and how much their openings changed."""

    frames: int
    mean_change: float

    @property
    def reliable(self) -> bool:
        """False only when enough frames were read and their openings changed too much."""
        return self.frames == 0 or not np.isfinite(self.mean_change) or self.mean_change <= UNRELIABLE_CHANGE

    def warning(self) -> str:
        return (f"the lips are hard to track in this video: Face Mesh reads its mouth openings {self.mean_change:.3f} "
                f"eye widths differently on average after a slight re-compression ({self.frames} frames; over "
                f"{UNRELIABLE_CHANGE} the lips cannot be trusted), so the dub may move the wrong pixels; look at it "
                "before using it (a closer, sharper or better-lit shot helps)")


def lip_caution(reading: LipReading | None) -> str | None:
    """The one-line warning every entry point shows for ``reading`` (None where there was no
    retest, a photo or a generator run, or where the lips read steadily)."""
    return None if reading is None or reading.reliable else reading.warning()


class LipRetest:
    """Collects the retest during a tracking pass: `add` every frame, read `result` at the end."""

    def __init__(self, frame_count: int, samples: int = RETEST_FRAMES, quality: int = RETEST_QUALITY):
        self._wanted = retest_frames(frame_count, samples)
        self._quality = quality
        self._first: list[float] = []
        self._second: list[float] = []

    def add(self, detector, index: int, image: np.ndarray, face) -> None:
        """Read frame ``index`` twice (with ``detector``, a `lipdub.face.detect.FaceDetector`)
        if it is one of the retested frames and its face (a TrackedFace or None) was found."""
        if index not in self._wanted or face is None:
            return
        region, box = face_region(image, np.asarray(face.box, np.float32))
        if region is None:
            return
        first = detector.landmarks_in(region, box)
        second = detector.landmarks_in(recompressed(region, self._quality), box)
        if first is None or second is None:
            return
        openings = mouth_aperture(np.stack([first, second])[..., :2])
        self._first.append(float(openings[0]))
        self._second.append(float(openings[1]))

    def result(self) -> LipReading:
        return LipReading(len(self._first), opening_change(np.array(self._first), np.array(self._second)))
