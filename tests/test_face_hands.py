"""Hands by the face: the search crop, the hand mask, and a renderer that leaves fingers alone."""

import numpy as np
import pytest

from lipdub.face.hands import (HAND_CROP_PIXELS, HandFinder, finger_half_width, hand_crop, hand_keep_weights, hand_mask,
                               hands_cover)
from tests.conftest import shared_file


def _open_hand(x0=100.0, y0=200.0, palm=40.0):
    """(21, 2) an upright open hand: wrist at (x0, y0), knuckles ``palm`` wide, fingers straight up."""
    points = np.zeros((21, 2))
    points[0] = (x0, y0)
    knuckles = np.linspace(x0 - palm / 2, x0 + palm / 2, 4)  # index, middle, ring, little
    points[1:5] = [(x0 - palm / 2 - 10 - 6 * k, y0 - 20 - 10 * k) for k in range(4)]  # thumb, out to the side
    for finger, x in enumerate(knuckles):
        base = 5 + 4 * finger
        for k in range(4):
            points[base + k] = (x, y0 - 50 - 15 * k)
    return points


def test_hand_crop_maps_the_square_under_the_face_onto_the_crop():
    matrix = hand_crop(np.array([100.0, 100.0, 200.0, 180.0]), (720, 1280))
    # 3 face sizes (100 px) wide, centred at x 150 and 0.5 face heights (40 px) below y 140
    corners = np.array([[0.0, 30.0, 1.0], [300.0, 330.0, 1.0], [150.0, 180.0, 1.0]])
    mapped = corners @ matrix.T
    np.testing.assert_allclose(mapped, [[0.0, 0.0], [HAND_CROP_PIXELS, HAND_CROP_PIXELS],
                                        [HAND_CROP_PIXELS / 2, HAND_CROP_PIXELS / 2]], atol=1e-9)


def test_finger_half_width_is_a_sixth_of_the_palm():
    hand = _open_hand(palm=48.0)
    assert finger_half_width(hand) == pytest.approx(8.0)


def test_hand_mask_covers_palm_and_fingers_and_nothing_between_or_beyond():
    hand = _open_hand()  # fingers at x 80, 93.3, 106.7, 120, from y 150 up to 105; half-width 40/6
    mask = hand_mask(hand[None], (260, 220))
    assert mask[180, 100] == 1  # palm
    assert mask[110, 80] == 1 and mask[110, 120] == 1  # index and little finger near their tips
    assert mask[105 - 5, 93] == 1  # the round end reaches past the tip landmark
    assert mask[80, 100] == 0  # above the fingertips
    assert mask[200, 200] == 0 and mask[20, 20] == 0  # far away
    grown = hand_mask(hand[None], (260, 220), grow=5.0)
    assert grown.sum() > mask.sum() and (grown >= mask).all()
    # the same hand in a region whose top-left is frame pixel (50, 100)
    moved = hand_mask(hand[None], (260, 220), origin=(50, 100))
    assert moved[180 - 100, 100 - 50] == 1 and moved.sum() < mask.sum()  # its fingers leave the region
    assert not hand_mask(np.zeros((0, 21, 2)), (10, 10)).any()


def test_hands_cover_is_the_share_of_the_region_under_the_hand():
    hand = _open_hand()
    square = np.array([[60.0, 160.0], [140.0, 160.0], [140.0, 240.0], [60.0, 240.0]])  # the palm's rows and below
    share = hands_cover(hand[None], square)
    mask = hand_mask(hand[None], (260, 220))
    assert share == pytest.approx(mask[160:241, 60:141].mean(), abs=0.03)
    assert 0.1 < share < 0.6
    far = square + (500.0, 0.0)
    assert hands_cover(hand[None], far) == 0.0
    assert hands_cover(None, square) == 0.0
    assert hands_cover(hand[None], square, grow=10.0) > share


def test_hand_keep_weights_are_one_on_the_hand_and_fade_to_zero_beside_it():
    hand = _open_hand()
    weights = hand_keep_weights(hand[None], (260, 220), (0, 0), margin=2.0, feather=6.0)
    assert weights[180, 100] == 1.0 and weights[120, 80] == 1.0
    beside = weights[130, int(120 + 40 / 6 + 2 + 3)]  # 3 px past the grown little finger's edge
    assert 0.0 < beside < 1.0
    assert weights[130, 160] == 0.0 and weights[20, 20] == 0.0
    assert not hand_keep_weights(hand[None] + 1000.0, (50, 50), (0, 0), 2.0, 6.0).any()


@pytest.mark.slow
def test_the_hand_finder_finds_the_waving_hand_by_the_face():
    """tv_debate_two_men: the right-hand man waves an open hand by his chin (frame 8: the hand spans
    about x 740-925, y 255-485 of the 1280x720 frame, found on the whole frame)."""
    from lipdub.eval.report import track_video
    from lipdub.media.decode import iter_frames

    path = shared_file("data/multiface/tv_debate_two_men.mp4")
    track = track_video(path)
    landmarks = track.landmark_array()
    finder = HandFinder()
    found = None
    for index, frame in enumerate(iter_frames(path)):
        box = np.array([*landmarks[index].min(axis=0), *landmarks[index].max(axis=0)])
        hands = finder.find(frame.image, box)
        if index == 8:
            found = hands
            break
    finder.close()
    assert found is not None and len(found) == 1
    low, high = found[0].min(axis=0), found[0].max(axis=0)
    assert 700 < low[0] < 780 and 890 < high[0] < 960
    assert 220 < low[1] < 290 and 450 < high[1] < 520


@pytest.mark.slow
def test_fingers_by_the_chin_are_kept_through_a_held_pause():
    """tv_debate_two_men + a leading pause: the pause was held on a clean closed mouth, which wiped
    the waving fingers off his chin in frames 8-16 (a faded finger). Now every pixel under the hand
    is the input's, and the hold frame is not one with a hand over its lips."""
    import cv2

    from tests.test_engine_motion import _prepared
    from tests.test_render_occlusion import LeadingPause

    engine, jobs, faces = _prepared(shared_file("data/multiface/tv_debate_two_men.mp4"), LeadingPause())
    hold = int(engine._bank.frames[engine._hold_bank[10]])
    assert engine._hold_bank[10] >= 0 and engine._hand_touched[hold] < 2
    checked = 0
    for job, out in zip(jobs[8:17], engine.render(jobs[8:17])):
        hands = faces[job.index].hands
        assert hands is not None and len(hands) == 1
        mask = hand_mask(hands, out.shape[:2]).astype(np.uint8)
        diff = np.abs(out.astype(int) - job.image.astype(int)).max(axis=2)
        assert diff[mask.astype(bool)].max() == 0  # the hand, exactly as it was
        near = cv2.dilate(mask, np.ones((41, 41), np.uint8)).astype(bool) & ~mask.astype(bool)
        checked += int((diff[near] > 8).sum() > 0)  # the edit still reaches past the fingers
    assert checked >= 5
    engine.close()


class _FakeFinder:
    """Finds a hand on the frames named in ``hands_on`` (keyed by the image's single value)."""

    def __init__(self, hands_on, still_images=False):
        self.hands_on, self.still_images, self.following = set(hands_on), still_images, False
        self.max_hands, self.min_confidence = 2, 0.5
        self.searched = []

    def find(self, image, box):
        key = int(image[0, 0, 0])
        self.searched.append(key)
        found = key in self.hands_on
        if not self.still_images:
            self.following = found
        return np.full((1 if found else 0, 21, 2), float(key), np.float32)

    def close(self):
        pass


def test_the_hand_pass_searches_every_other_frame_and_looks_back_when_a_hand_appears():
    from lipdub.face.hands import HandPass
    from lipdub.face.track import TrackedFace

    face = TrackedFace(np.zeros(4, np.float32), np.zeros((478, 2), np.float32), False)
    hands_on = {5, 6, 7}
    finder, again = _FakeFinder(hands_on), _FakeFinder(hands_on, still_images=True)
    hand_pass = HandPass(search_every=2, finder=finder, again=again)
    recorded = {}
    for key in range(10):
        image = np.full((2, 2, 3), key, np.uint8)
        for seen, _, tracked in hand_pass.add(key, image, face if key != 8 else None):
            recorded[seen] = None if tracked is None else len(tracked.hands)
    # searched: 0, 2, 4, 6 (a hand: 5, skipped, is searched again), 7 (following), 9 (8 has no face)
    assert finder.searched == [0, 2, 4, 6, 7, 9] and again.searched == [5]
    assert recorded == {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1, 8: None, 9: 0}


def test_a_hand_whose_palm_lies_on_the_face_is_taken_for_the_face():
    from lipdub.face.hands import hands_beside_face, palm_centre

    hand = _open_hand()  # palm centre: the mean of the wrist, the thumb's base and the knuckles
    np.testing.assert_allclose(palm_centre(hand), hand[[0, 1, 5, 9, 13, 17]].mean(axis=0))
    centre = palm_centre(hand)
    face = centre + np.array([[-60.0, -80.0], [60.0, -80.0], [60.0, 80.0], [-60.0, 80.0]])  # around the palm
    below = face - (0.0, 200.0)  # a face above the hand: the hand is at its chin
    both = np.stack([hand, hand + (0.0, 400.0)])
    assert len(hands_beside_face(hand[None], face)) == 0
    assert len(hands_beside_face(hand[None], below)) == 1
    kept = hands_beside_face(both, face)
    assert len(kept) == 1 and kept[0, 0, 1] == pytest.approx(both[1, 0, 1])
    assert hands_beside_face(np.zeros((0, 21, 2)), face).shape == (0, 21, 2)


def test_the_hand_pass_searching_one_frame_in_three_looks_back_at_both_skipped_frames():
    from lipdub.face.hands import HandPass
    from lipdub.face.track import TrackedFace

    face = TrackedFace(np.zeros(4, np.float32), np.zeros((478, 2), np.float32), False)
    finder, again = _FakeFinder({4, 5, 6}), _FakeFinder({4, 5, 6}, still_images=True)
    hand_pass = HandPass(search_every=3, finder=finder, again=again)
    recorded = {}
    for key in range(9):
        for seen, _, tracked in hand_pass.add(key, np.full((2, 2, 3), key, np.uint8), face):
            recorded[seen] = len(tracked.hands)
    # searched: 0, 3, 6 (a hand: 4 and 5, skipped, are searched again), 7 (following; none), 8 skipped
    assert finder.searched == [0, 3, 6, 7] and again.searched == [4, 5]
    assert recorded == {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1, 7: 0, 8: 0}
