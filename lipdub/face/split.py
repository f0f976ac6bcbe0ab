"""Tracking a long video's two halves at once: where to split, and how to join the two tracks.

Why: Face Mesh costs ~12 ms a 720p frame on one core, and the tracking pass ran it on one core
while the other mostly waited (decoding is ~5 ms a frame). Two trackers with their own graphs, one
on frames ``[0, split)`` and one on ``[split - OVERLAP, N)``, in two threads, track the whole video
1.7 times as fast on two cores (measured on a 720p clip: 12.2 -> 7.1 ms a frame).

The second tracker starts cold (a fresh detection, a fresh One-Euro filter, Face Mesh without its
own region history), so the halves overlap by `OVERLAP` frames: the second tracker settles there,
the two tracks are compared there (`tracks_agree`: the same face, in the same place) and
cross-faded there (`join_tracks`), so the join shows no jump. Where they disagree (a second face
that the cold start chose instead, a face lost at the join) the caller tracks the second half again
with the first tracker, as a single pass would have.
"""

from __future__ import annotations

import numpy as np

from lipdub.face.track import TrackedFace

#: Frames the two tracks share; the second tracker's filter settles within about 0.3 s.
OVERLAP = 16
#: Shorter inputs are tracked in one pass: a second graph's start-up (~0.2 s) would eat the gain.
SPLIT_MIN_FRAMES = 120
#: Largest mean landmark distance (share of the face's size) at which two tracks are one face.
#: Measured: a cold second track on the same face differs by 0.2-0.5 % after a few frames.
JOIN_TOLERANCE = 0.03


def split_point(expected_frames: int, overlap: int = OVERLAP, min_frames: int = SPLIT_MIN_FRAMES) -> int | None:
    """The first frame the second tracker owns (it starts ``overlap`` frames earlier), or None
    when the input is too short to split. Both trackers then get the same number of frames."""
    if expected_frames < max(min_frames, 2 * overlap + 2):
        return None
    return (expected_frames + overlap) // 2


def face_size(face: TrackedFace) -> float:
    """The longer side of the face's landmark box, in pixels."""
    points = np.asarray(face.landmarks, np.float64)
    extent = points.max(axis=0) - points.min(axis=0)
    return float(max(extent.max(), 1.0))


def tracks_agree(first: list, second: list, tolerance: float = JOIN_TOLERANCE) -> bool:
    """Whether two tracks of the same frames (TrackedFace or None each) follow one face.

    Every frame of the second half of the overlap must have a face in both tracks (the second
    tracker has settled there), at a mean landmark distance of at most ``tolerance`` face sizes.
    """
    if len(first) != len(second) or not first:
        return False
    for a, b in list(zip(first, second))[len(first) // 2:]:
        if a is None or b is None:
            return False
        distance = np.linalg.norm(np.asarray(a.landmarks, np.float64) - np.asarray(b.landmarks, np.float64), axis=1)
        if distance.mean() > tolerance * face_size(a):
            return False
    return True


def join_weights(overlap: int) -> np.ndarray:
    """(overlap,) share of the second track in each shared frame: a ramp that reaches neither 0
    nor 1, so the first track still leads the first shared frame and the second the last."""
    return np.arange(1, overlap + 1, dtype=np.float64) / (overlap + 1)


def blend_faces(a: TrackedFace, b: TrackedFace, weight: float) -> TrackedFace:
    """``a`` moved ``weight`` of the way to ``b`` (box, smoothed and raw landmarks)."""

    def mix(x, y):
        return ((1.0 - weight) * np.asarray(x, np.float64) + weight * np.asarray(y, np.float64)).astype(np.float32)

    raw = None if a.raw_landmarks is None or b.raw_landmarks is None else mix(a.raw_landmarks, b.raw_landmarks)
    return TrackedFace(mix(a.box, b.box), mix(a.landmarks, b.landmarks), a.is_new_track, raw)


def join_tracks(first: list, second: list, split: int, overlap: int = OVERLAP) -> list:
    """The whole video's track from ``first`` (frames ``[0, split)``) and ``second`` (frames
    ``[split - overlap, ...)``), cross-faded over the shared frames (`join_weights`)."""
    if len(first) != split or len(second) < overlap:
        raise ValueError("the tracks do not cover the split")
    start = split - overlap
    shared = [b if a is None else a if b is None else blend_faces(a, b, float(w))
              for a, b, w in zip(first[start:], second[:overlap], join_weights(overlap))]
    return first[:start] + shared + second[overlap:]
