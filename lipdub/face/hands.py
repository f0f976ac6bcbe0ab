"""Hands in front of the face: where they are, so that a renderer leaves their pixels alone.

A speaker who touches the chin or waves a hand across the face puts fingers over the very pixels a
lip-sync renderer redraws. Redrawn, a finger is bent by the warp, or wiped off the face where a
pause is held on another frame (`lipdub.render.hold`); the colour test of `lipdub.render.occlusion`
catches a palm across the mouth but not fingers at the edge of the face, which change too few of
its sample points. So the tracking pass also finds hands, with MediaPipe's hand landmarker (palm
detector + 21-point hand model, both shipped inside the `mediapipe` wheel), and the renderer keeps
the input's pixels under `hand_mask`.

The landmarker runs on a square crop around the lower face (`hand_crop`), not on the whole frame:
a hand that matters is near the face, and a crop makes a small face's hand large enough for the
palm detector (which sees 192 x 192 pixels whatever it is given). In tracking mode it runs the
hand model alone while it follows a hand, and the palm detector (about 7 ms a frame on the 2-core
CPU) while it follows none; `HandPass` runs that search on one frame in three only
(`SEARCH_EVERY`), and searches the skipped frames again when a hand turns up, so a hand is never
missed and a video without hands pays a third.
"""

from __future__ import annotations

import logging
import warnings

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: Side of the square searched for hands, in face-box sizes (the larger of its width and height),
#: centred under the face's centre by `HAND_CROP_DROP` box heights: a hand at the chin is mostly
#: below the face. On `multiface/tv_debate_two_men.mp4` a hand resting on the chin spans 1.2 face
#: heights, from the mouth down.
HAND_CROP_SIDE = 3.0
HAND_CROP_DROP = 0.5
#: Pixels of the crop the landmarker is given.
HAND_CROP_PIXELS = 256

#: Face Mesh's silhouette of the face, in order around it.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
#: While no hand is followed, `HandPass` searches one frame in this many (the skipped ones are
#: searched again when a hand turns up, so none is missed). At 720p the search cost 16-17 % end to
#: end with 2 and 6-10 % with 3 (docs/benchmarks.md, stop 24); the debate clip's dub is the same.
SEARCH_EVERY = 3
#: The palm: wrist, the thumb's base and the four fingers' knuckles (MediaPipe hand points).
PALM_POINTS = (0, 1, 5, 9, 13, 17)
#: Each finger as a chain of points from its base to its tip.
FINGER_CHAINS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
#: A finger's half-width over the palm's width (index to little-finger knuckle): four fingers
#: span the palm, so a half-width is an eighth of it; a third more covers the blur of a finger in
#: motion and the landmarks' error (looked at on the debate clip's waving hand).
FINGER_HALF_WIDTH = 1.0 / 6.0


#: The palm detector's and the hand model's score a hand needs. At MediaPipe's 0.5 the landmarker
#: found "hands" on faces without one, a few frames at a time: on a grimacing woman's cheek and nose
#: (`expressive/d6.mp4`, 9 frames, 2 of them over her lips) and on a man's chin and collar
#: (`train/real/man_congressman_60s.mp4`, 9 frames); at 0.7 neither, while the debate clip's waving
#: hand and `man_phone_film.mp4`'s hand on a telephone receiver are still followed in every frame.
MIN_CONFIDENCE = 0.7


def hand_crop(box: np.ndarray, frame_shape: tuple[int, int], side: float = HAND_CROP_SIDE,
              drop: float = HAND_CROP_DROP, pixels: int = HAND_CROP_PIXELS) -> np.ndarray:
    """(2, 3) affine matrix taking frame pixels to the hand search crop of the face ``box``
    (x1, y1, x2, y2): a square of ``side`` face sizes, ``pixels`` wide, centred ``drop`` face
    heights below the face's centre. ``frame_shape`` is unused by the mapping (the crop may
    reach past the frame, which is padded black) but kept to say whose pixels these are."""
    x1, y1, x2, y2 = (float(v) for v in box)
    size = max(x2 - x1, y2 - y1, 1.0) * side
    centre_x = 0.5 * (x1 + x2)
    centre_y = 0.5 * (y1 + y2) + drop * (y2 - y1)
    scale = pixels / size
    return np.array([[scale, 0.0, pixels / 2 - scale * centre_x],
                     [0.0, scale, pixels / 2 - scale * centre_y]], np.float64)


def finger_half_width(hand: np.ndarray, ratio: float = FINGER_HALF_WIDTH) -> float:
    """Half the width of a finger of ``hand`` ((21, 2) points), from its palm's width."""
    return ratio * float(np.linalg.norm(hand[5] - hand[17]))


def hand_mask(hands: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0),
              grow: float = 0.0) -> np.ndarray:
    """(H, W) uint8 mask (1 = hand) of ``hands`` ((K, 21, 2) frame pixels) over the ``shape``
    region whose top-left is frame pixel ``origin``: the palm's polygon and each finger as a chain
    of round-ended strokes `finger_half_width` wide, grown by ``grow`` pixels all round."""
    mask = np.zeros(shape, np.uint8)
    for hand in np.asarray(hands, np.float64).reshape(-1, 21, 2):
        if not np.isfinite(hand).all():
            continue
        points = hand - np.asarray(origin, np.float64)
        half = finger_half_width(hand) + grow
        palm = np.round(points[list(PALM_POINTS)]).astype(np.int32)
        cv2.fillPoly(mask, [cv2.convexHull(palm)], 1)
        thickness = max(1, int(round(2 * half)))
        for chain in FINGER_CHAINS + (PALM_POINTS,):
            line = np.round(points[list(chain)]).astype(np.int32)
            cv2.polylines(mask, [line], False, 1, thickness, cv2.LINE_8)
            for x, y in line:  # round ends and joints
                cv2.circle(mask, (int(x), int(y)), int(round(half)), 1, -1)
    return mask


def hand_keep_weights(hands: np.ndarray, shape: tuple[int, int], origin: tuple[int, int], margin: float,
                      feather: float) -> np.ndarray:
    """(H, W) float32 share (0..1) of the input's own pixel to keep over the region ``shape`` whose
    top-left is frame pixel ``origin``: 1 on ``hands`` grown by ``margin`` pixels, falling to 0
    over about ``feather`` pixels outside, so an edit fades out beside a finger instead of ending in
    a seam along it. All 0 where no hand reaches the region."""
    hard = hand_mask(hands, shape, origin, margin)
    if not hard.any():
        return np.zeros(shape, np.float32)
    reach = hand_mask(hands, shape, origin, margin + feather)
    weights = cv2.GaussianBlur(reach.astype(np.float32), (0, 0), max(0.5, feather / 2.0))
    return np.maximum(weights, hard.astype(np.float32))


def palm_centre(hand: np.ndarray) -> np.ndarray:
    """(2,) the mean of ``hand``'s palm points (`PALM_POINTS`)."""
    return np.asarray(hand, np.float64)[list(PALM_POINTS)].mean(axis=0)


def hands_beside_face(hands: np.ndarray, face_outline: np.ndarray) -> np.ndarray:
    """The hands of ``hands`` (K, 21, 2) whose palm centre lies outside ``face_outline`` (the face's
    silhouette, `FACE_OVAL` points): a hand at the chin or the jaw has its palm beside the face,
    while a "hand" inside it is, unless something says otherwise, the face itself."""
    hands = np.asarray(hands, np.float32).reshape(-1, 21, 2)
    outline = np.asarray(face_outline, np.float32).reshape(-1, 1, 2)
    keep = [cv2.pointPolygonTest(outline, tuple(float(v) for v in palm_centre(hand)), False) < 0 for hand in hands]
    return hands[np.asarray(keep, bool)] if len(hands) else hands


def hands_cover(hands: np.ndarray | None, region: np.ndarray, grow: float = 0.0) -> float:
    """Share (0..1) of the polygon ``region`` ((P, 2) frame pixels) under ``hands``' mask."""
    if hands is None or not len(hands):
        return 0.0
    region = np.asarray(region, np.float64)
    origin = np.floor(region.min(axis=0)).astype(int)
    size = np.ceil(region.max(axis=0)).astype(int) - origin + 1
    inside = np.zeros((int(size[1]), int(size[0])), np.uint8)
    cv2.fillPoly(inside, [np.round(region - origin).astype(np.int32)], 1)
    area = int(inside.sum())
    if area == 0:
        return 0.0
    covered = hand_mask(hands, inside.shape, (int(origin[0]), int(origin[1])), grow)
    return float((covered & inside).sum()) / area


class HandFinder:
    """MediaPipe's hand landmarker in tracking mode, on the crop around one face per frame.

    Call `find` on a video's frames in order (it follows hands from frame to frame); one finder
    per thread. The model is loaded lazily, so a finder that is never used costs nothing.
    """

    def __init__(self, max_hands: int = 2, min_confidence: float = MIN_CONFIDENCE, still_images: bool = False):
        self.max_hands = max_hands
        self.min_confidence = min_confidence
        self.still_images = still_images  # True: every call searches afresh (frames out of order)
        self.following = False  # whether the last call found a hand (the next one will not search)
        self._hands = None

    def _landmarker(self):
        if self._hands is None:
            import mediapipe as mp

            # MediaPipe's legacy solutions call a protobuf API that warns on every frame.
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
            self._hands = mp.solutions.hands.Hands(static_image_mode=self.still_images, max_num_hands=self.max_hands,
                                                   model_complexity=0,
                                                   min_detection_confidence=self.min_confidence,
                                                   min_tracking_confidence=self.min_confidence)
        return self._hands

    def find(self, image: np.ndarray, face_box: np.ndarray) -> np.ndarray:
        """(K, 21, 2) float32 frame pixels of the hands near the face in ``face_box``; K may be 0."""
        matrix = hand_crop(face_box, image.shape[:2])
        crop = cv2.warpAffine(image, matrix, (HAND_CROP_PIXELS, HAND_CROP_PIXELS), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        found = self._landmarker().process(np.ascontiguousarray(crop)).multi_hand_landmarks or []
        self.following = bool(found)
        if not found:
            return np.zeros((0, 21, 2), np.float32)
        in_crop = np.array([[[p.x, p.y] for p in hand.landmark] for hand in found], np.float64) * HAND_CROP_PIXELS
        inverse = cv2.invertAffineTransform(matrix)
        frame = in_crop @ inverse[:, :2].T + inverse[:, 2]
        return frame.astype(np.float32)

    def close(self) -> None:
        if self._hands is not None:
            self._hands.close()
            self._hands = None

    def __enter__(self) -> "HandFinder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HandPass:
    """The hands by each tracked face of one video, frames given in order (one pass per thread).

    While no hand is followed, only every ``search_every``-th frame with a face is searched (the
    palm detector is most of the landmarker's cost); when a search finds a hand, the frames
    skipped since the last search are searched again, each as a still image, and handed back
    with their hands, so the caller records them again.
    """

    def __init__(self, search_every: int = SEARCH_EVERY, finder: HandFinder | None = None, again: HandFinder | None = None):
        self.search_every = max(1, search_every)
        self.finder = finder if finder is not None else HandFinder()
        self._again = again  # made when first needed
        self._skipped: list = []  # (key, image, face) not searched since the last search
        self._since_search = self.search_every  # frames with a face since the last search: search the first

    def add(self, key, image: np.ndarray, face) -> list:
        """[(key, image, face)]: this frame's face with its hands (``face.hands``, K x 21 x 2; empty
        while not searched), then any skipped frame whose hands this search brought to light."""
        import dataclasses

        if face is None:
            return [(key, image, face)]
        if not self.finder.following and self._since_search < self.search_every - 1:
            self._since_search += 1
            self._skipped.append((key, image, face))
            return [(key, image, dataclasses.replace(face, hands=np.zeros((0, 21, 2), np.float32)))]
        hands = self.finder.find(image, face.box)
        updates = [(key, image, dataclasses.replace(face, hands=hands))]
        if len(hands) and self._skipped:
            if self._again is None:
                self._again = HandFinder(self.finder.max_hands, self.finder.min_confidence, still_images=True)
            for old_key, old_image, old_face in self._skipped:
                found = self._again.find(old_image, old_face.box)
                if len(found):
                    updates.append((old_key, old_image, dataclasses.replace(old_face, hands=found)))
        self._skipped = []
        self._since_search = 0
        return updates

    def close(self) -> None:
        self.finder.close()
        if self._again is not None:
            self._again.close()

    def __enter__(self) -> "HandPass":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
