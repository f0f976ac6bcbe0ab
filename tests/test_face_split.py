"""Tracking a long video's halves at once: split point, join rule and cross-fade (hand-computed),
then the whole tracking pass on a real clip, split against a single pass."""

import numpy as np
import pytest

from lipdub.face import split as S
from lipdub.face.track import TrackedFace
from tests.conftest import shared_file

CLIP = "data/train/real/mead_man_disgusted.mp4"  # 8.1 s, 203 frames, one face


def face(offset: float, size: float = 100.0) -> TrackedFace:
    """A square 'face' of 478 points spread over ``size`` pixels, shifted by ``offset``."""
    grid = np.linspace(0.0, size, 478, dtype=np.float32)
    points = np.stack([grid, grid[::-1]], axis=1) + np.float32(offset)
    box = np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()], np.float32)
    return TrackedFace(box, points, False, points + np.float32(0.5))


def test_split_point_gives_both_trackers_the_same_number_of_frames():
    assert S.split_point(119) is None and S.split_point(10, overlap=16, min_frames=0) is None
    split = S.split_point(200, overlap=16)
    assert split == 108
    assert split == 200 - (split - 16)  # frames [0, 108) and [92, 200): 108 each


def test_join_weights_ramp_strictly_between_the_tracks():
    np.testing.assert_allclose(S.join_weights(3), [0.25, 0.5, 0.75])


def test_tracks_agree_on_the_same_face_and_not_on_another_or_a_lost_one():
    first = [face(0.0) for _ in range(8)]
    assert S.tracks_agree(first, [face(2.0) for _ in range(8)])  # 2 px on a 100 px face: 2.8 % apart
    assert not S.tracks_agree(first, [face(3.0) for _ in range(8)])  # 4.2 % > 3 %
    assert not S.tracks_agree(first, [face(60.0) for _ in range(8)])  # someone else
    settled_late = [None] * 4 + [face(0.0)] * 4  # the cold tracker may need the first half to find it
    assert S.tracks_agree(first, settled_late)
    assert not S.tracks_agree(first, [face(0.0)] * 7 + [None])
    assert not S.tracks_agree(first, first[:7]) and not S.tracks_agree([], [])


def test_join_cross_fades_the_shared_frames():
    first = [face(0.0) for _ in range(6)]  # frames 0..5
    second = [None] + [face(8.0) for _ in range(5)]  # frames 3..8; its first shared frame lost
    joined = S.join_tracks(first, second, split=6, overlap=3)
    assert len(joined) == 9
    assert joined[3] is first[3]  # nothing to blend with
    np.testing.assert_allclose(joined[4].landmarks, first[4].landmarks + 8.0 * 0.5, atol=1e-5)
    np.testing.assert_allclose(joined[5].landmarks, first[5].landmarks + 8.0 * 0.75, atol=1e-5)
    np.testing.assert_allclose(joined[5].raw_landmarks, first[5].raw_landmarks + 6.0, atol=1e-5)
    np.testing.assert_allclose(joined[5].box, first[5].box + 6.0, atol=1e-5)
    assert joined[6] is second[3] and joined[:3] == first[:3]
    with pytest.raises(ValueError):
        S.join_tracks(first, second, split=5, overlap=3)


# --- the tracking pass on a real clip -------------------------------------------------------------


class Bank:
    """An engine that records what `observe` kept, as the motion engine's bank does."""

    def __init__(self):
        from lipdub.render.bank import MouthBank

        self.bank = MouthBank()

    def observe(self, index, image, face):
        if face is None:
            self.bank.discard_input(index)
        else:
            self.bank.add_input(index, image[:8, :8], (0, 0))


def _track(path, monkeypatch, split: bool, agree: bool = True):
    from lipdub.media.decode import probe_video
    from lipdub.pipeline import SyncOptions, StageClock, track_input

    info = probe_video(path)
    engine = Bank()
    with monkeypatch.context() as patch:
        if not split:
            patch.setattr(S, "split_point", lambda *args, **kwargs: None)
        if not agree:
            patch.setattr(S, "tracks_agree", lambda *args, **kwargs: False)
        faces = track_input(path, False, info.fps, SyncOptions(), engine, StageClock(), info.frame_count)
    engine.bank._order_inputs(len(faces))
    return faces, engine.bank.frames, info.frame_count


def test_a_split_pass_tracks_like_a_single_pass_and_joins_without_a_jump(monkeypatch):
    path = shared_file(CLIP)
    single, single_bank, count = _track(path, monkeypatch, split=False)
    split, split_bank, _ = _track(path, monkeypatch, split=True)
    assert len(split) == len(single) == count and all(f is not None for f in split + single)
    np.testing.assert_array_equal(split_bank, single_bank)  # every frame kept once, in order
    a = np.stack([f.landmarks for f in single])
    b = np.stack([f.landmarks for f in split])
    join = S.split_point(count)
    assert np.abs(a[: join - S.OVERLAP] - b[: join - S.OVERLAP]).max() == 0  # the first half is the same pass
    size = np.mean([S.face_size(f) for f in single])
    assert np.linalg.norm(a - b, axis=2).mean(axis=1).max() < 0.01 * size  # measured: 0.2-0.5 % after the join
    steps = np.linalg.norm(np.diff(b, axis=0), axis=2).mean(axis=1)  # per-frame movement of the split track
    single_steps = np.linalg.norm(np.diff(a, axis=0), axis=2).mean(axis=1)
    assert steps.max() <= 1.5 * single_steps.max()


def test_halves_that_do_not_join_are_tracked_again_as_one_pass(monkeypatch):
    path = shared_file(CLIP)
    single, single_bank, _ = _track(path, monkeypatch, split=False)
    again, again_bank, _ = _track(path, monkeypatch, split=True, agree=False)
    np.testing.assert_array_equal(np.stack([f.landmarks for f in again]), np.stack([f.landmarks for f in single]))
    np.testing.assert_array_equal(again_bank, single_bank)
