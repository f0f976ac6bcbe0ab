"""Face detection (BlazeFace full range) and 478-point Face Mesh landmarks, offline.

Both models ship inside the mediapipe 0.10.14 wheel, so nothing is downloaded. Speed matters more
than anything else here (the whole pipeline must keep up with 25 fps at 720p on two cores), so:

- the detector sees a downscaled copy of the frame: BlazeFace letterboxes its input to 192x192
  anyway, so a 1920-pixel frame gains nothing over a 640-pixel one but costs the conversion;
- Face Mesh never sees the whole frame: it runs on a square crop around one face, resized to
  `MESH_CROP_SIZE`, which keeps the landmark precision independent of the frame size (a small
  face in a 1080x1920 phone video gets as many crop pixels as a close-up) and the cost constant.

`FaceDetector.detect` is the stateless path (photos, the first frame of a track). The tracker uses
`FaceDetector.detect_boxes` plus `FaceDetector.track_landmarks`, which keeps Face Mesh in video mode
so that, between detections, it follows the face from its own previous landmarks instead of
re-running a detector each frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

NUM_LANDMARKS = 478
DETECT_LONG_SIDE = 640
MESH_CROP_SIZE = 256
# Side of the Face Mesh crop relative to the longer side of the face box it is centred on.
# 1.8x leaves the whole head in view when the box is BlazeFace's brow-to-chin box and room for
# the face to move between frames in video mode.
MESH_CROP_SCALE = 1.8
# A tracked face whose new landmark box overlaps the previous box less than this is not trusted.
MIN_TRACK_IOU = 0.2


@dataclass(frozen=True)
class FaceObservation:
    """One face in one frame, as the detector and Face Mesh saw it (no smoothing)."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in frame pixels (tight face box)
    score: float
    landmarks: np.ndarray | None  # (478, 2) float32 in frame pixels, None if Face Mesh failed


@dataclass(frozen=True)
class MeshCrop:
    """A square, axis-aligned window of the frame fed to Face Mesh, and how to map back.

    frame = crop * scale + origin, in continuous pixel coordinates.
    """

    image: np.ndarray
    origin: np.ndarray  # (2,) float64 frame coordinates of the crop's top-left corner
    scale: float  # frame pixels per crop pixel


def box_area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def landmarks_box(landmarks: np.ndarray) -> np.ndarray:
    """Bounding box of Face Mesh points: forehead to chin, cheek to cheek."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float32)


def mesh_crop_window(box: np.ndarray, scale: float = MESH_CROP_SCALE) -> tuple[int, int, int]:
    """Integer (x1, y1, side) of the square window, centred on `box`, that Face Mesh will see."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(8, int(round(scale * max(box[2] - box[0], box[3] - box[1]))))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def cut_square(image: np.ndarray, x1: int, y1: int, side: int, size: int) -> MeshCrop:
    """Cut a square window (black outside the frame) and resize it to `size` pixels.

    A window larger than `size` is first thinned by taking every k-th pixel so that between
    `size` and 2x `size` pixels remain, then resized bilinearly (which at a ratio under 2 still
    uses every pixel). OpenCV's area resize at non-integer ratios costs 1-2 ms per crop, a fifth
    of the whole tracking budget, and Face Mesh does not see the difference.
    """
    h, w = image.shape[:2]
    k = max(1, side // size)
    n = -(-side // k)  # thinned window side
    ax1, ay1 = max(x1, 0), max(y1, 0)
    ax2, ay2 = min(x1 + side, w), min(y1 + side, h)
    if ax2 <= ax1 or ay2 <= ay1:
        window = np.zeros((n, n, 3), np.uint8)
    else:
        # Start on the thinning grid of the (virtual) full window so padding stays aligned.
        sx, sy = x1 + -(-(ax1 - x1) // k) * k, y1 + -(-(ay1 - y1) // k) * k
        window = image[sy:ay2:k, sx:ax2:k]
        left, top = (sx - x1) // k, (sy - y1) // k
        right, bottom = n - left - window.shape[1], n - top - window.shape[0]
        if (left, top, right, bottom) != (0, 0, 0, 0) or k > 1:
            window = cv2.copyMakeBorder(window, top, bottom, left, right,
                                        cv2.BORDER_CONSTANT, value=(0, 0, 0))
    resized = cv2.resize(window, (size, size), interpolation=cv2.INTER_LINEAR)
    # Thinned pixel j is source pixel x1 + j*k; shifting the origin by (k - 1) / 2 maps its
    # centre there exactly.
    origin = np.array([x1, y1], np.float64) - (k - 1) / 2
    return MeshCrop(np.ascontiguousarray(resized), origin, n * k / size)


def mesh_to_frame(normalized: np.ndarray, crop: MeshCrop) -> np.ndarray:
    """Map Face Mesh's normalised crop coordinates to frame pixel-centre coordinates."""
    size = crop.image.shape[0]
    continuous = normalized * size * crop.scale + crop.origin
    return (continuous - 0.5).astype(np.float32)


def _landmark_array(face_landmarks) -> np.ndarray:
    return np.array([(p.x, p.y) for p in face_landmarks.landmark], np.float64)


class _StderrSilencer:
    """Descriptor 2 on /dev/null while any thread is inside (mediapipe's C++ start-up chatter).

    mediapipe's graphs print TFLite and absl log lines straight to the process's stderr when they
    start and on their first frame; a CLI whose errors must fit on one line cannot let them through.
    mediapipe reports real failures as Python exceptions, which this does not touch.

    One per process, because descriptor 2 is: two trackers run in two threads (`lipdub.face.split`),
    and two independent save/redirect/restore windows that interleave would leave descriptor 2 on
    /dev/null for good. So the first thread in redirects and the last one out restores.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved: int | None = None

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            if self._inside == 0:
                sys.stderr.flush()
                self._saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    os.dup2(self._saved, 2)
                    os.close(self._saved)
                    self._saved = None


_native_stderr_silenced = _StderrSilencer()


def _run_graph(graph, image: np.ndarray):
    """``graph.process(image)`` with mediapipe's log chatter and protobuf's deprecation warning dropped.

    The native lines come back whenever a graph (re)starts its inner models, which happens on any
    frame after a lost track, so every call is wrapped; the cost is three system calls.
    """
    with warnings.catch_warnings(), _native_stderr_silenced():
        warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
        return graph.process(image)


class FaceDetector:
    """BlazeFace (full range) + Face Mesh (478 points, refined lips/eyes/irises).

    A context manager: `close()` releases the mediapipe graphs, which hold native threads.
    `still_image=True` favours accuracy over speed (no downscaling before detection) and is meant
    for photos; video callers should leave it False.
    """

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5, still_image: bool = False):
        with _native_stderr_silenced():
            import mediapipe as mp  # imported here: it is slow to import and logs on import

        self.max_faces = max_faces
        self.min_confidence = min_confidence
        self.still_image = still_image
        self._mp = mp
        with _native_stderr_silenced():
            self._detection = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_confidence
            )
        self._static_mesh = None
        self._video_mesh = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with _native_stderr_silenced():
            for graph in (self._detection, self._static_mesh, self._video_mesh):
                if graph is not None:
                    graph.close()
        self._detection = self._static_mesh = self._video_mesh = None

    def _mesh(self, video: bool):
        """Face Mesh graphs are created on first use: detection-only callers never pay for them."""
        face_mesh = self._mp.solutions.face_mesh
        if video:
            if self._video_mesh is None:
                with _native_stderr_silenced():
                    self._video_mesh = face_mesh.FaceMesh(
                        static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                        min_detection_confidence=self.min_confidence, min_tracking_confidence=0.5,
                    )
            return self._video_mesh
        if self._static_mesh is None:
            # Two faces: a crop around one face may also hold part of a neighbour; we keep the
            # one that overlaps the detector's box.
            with _native_stderr_silenced():
                self._static_mesh = face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=2, refine_landmarks=True,
                    min_detection_confidence=self.min_confidence,
                )
        return self._static_mesh

    def _process(self, graph, image: np.ndarray):
        return _run_graph(graph, image)

    # -- detection ---------------------------------------------------------------------------
    def detect_boxes(self, image: np.ndarray) -> list[FaceObservation]:
        """Faces found by BlazeFace alone (landmarks None), largest first. About 3-6 ms."""
        h, w = image.shape[:2]
        small = image
        long_side = max(h, w)
        if not self.still_image and long_side > DETECT_LONG_SIDE:
            factor = DETECT_LONG_SIDE / long_side
            small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                               interpolation=cv2.INTER_AREA)
        result = self._process(self._detection, np.ascontiguousarray(small))
        faces = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            box = np.array([rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w,
                            (rel.ymin + rel.height) * h], np.float32)
            box = np.clip(box, [-w, -h, -w, -h], [2 * w, 2 * h, 2 * w, 2 * h]).astype(np.float32)
            if box_area(box) > 0:
                faces.append(FaceObservation(box, float(detection.score[0]), None))
        faces.sort(key=lambda face: box_area(face.box), reverse=True)
        return faces[: self.max_faces]

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """All faces with landmarks (RGB uint8 in), sorted by box area, largest first."""
        faces = []
        for face in self.detect_boxes(image):
            landmarks = self.landmarks_in(image, face.box)
            faces.append(FaceObservation(face.box, face.score, landmarks))
        return faces

    def landmarks_in(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Face Mesh on a crop around `box` (stateless), or None if it finds no face there.

        When the crop holds more than one face, the one whose landmark box overlaps `box` most
        is returned, so a neighbour's face never replaces the requested one.
        """
        crop = cut_square(image, *mesh_crop_window(box), MESH_CROP_SIZE)
        result = self._process(self._mesh(video=False), crop.image)
        best, best_iou = None, 0.0
        for face_landmarks in result.multi_face_landmarks or []:
            points = mesh_to_frame(_landmark_array(face_landmarks), crop)
            iou = box_iou(landmarks_box(points), box)
            if iou > best_iou:
                best, best_iou = points, iou
        return best

    def track_landmarks(self, image: np.ndarray, box: np.ndarray, crop_scale: float = MESH_CROP_SCALE,
                        min_iou: float = MIN_TRACK_IOU) -> np.ndarray | None:
        """Face Mesh in video mode on a crop around `box` (the face's previous position).

        Between calls Face Mesh keeps its own region of interest from the previous landmarks and
        skips its internal detector, which is what makes per-frame tracking cheap (~5 ms). The
        crop follows the face, so that region stays valid as long as motion between two frames
        is small; call `reset_tracking` whenever the face may have jumped (a scene cut, a new
        track). Landmarks whose box overlaps `box` less than `min_iou` are rejected.
        """
        crop = cut_square(image, *mesh_crop_window(box, crop_scale), MESH_CROP_SIZE)
        result = self._process(self._mesh(video=True), crop.image)
        if not result.multi_face_landmarks:
            return None
        points = mesh_to_frame(_landmark_array(result.multi_face_landmarks[0]), crop)
        if box_iou(landmarks_box(points), box) < min_iou:
            return None  # Face Mesh locked onto someone else in the crop
        return points

    def reset_tracking(self) -> None:
        """Forget Face Mesh's video-mode state (a few ms: the graph restarts)."""
        if self._video_mesh is not None:
            with _native_stderr_silenced():
                self._video_mesh.reset()
