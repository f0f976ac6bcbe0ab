"""The occlusion test: a hand before the mouth is found, light, speech and a new shot are not."""

import numpy as np
import pytest

from lipdub.render.occlusion import (LOWER_FACE_POINTS, OCCLUDED_SHARE, face_colours, occluded, occlusion_scores,
                                     sample_colours)
from tests.conftest import shared_file


def test_sample_colours_known_values():
    image = np.zeros((20, 30, 3), np.uint8)
    image[:10, :15] = (10, 20, 30)
    image[10:, 15:] = (200, 100, 50)
    points = np.array([[5.0, 5.0], [22.0, 15.0], [14.6, 9.4], [40.0, 5.0]])
    colours = sample_colours(image, points, [0, 1, 2, 3], radius=1)
    np.testing.assert_allclose(colours[0], (10, 20, 30))
    np.testing.assert_allclose(colours[1], (200, 100, 50))
    # (15, 9) rounded: rows 8-10, columns 14-16: 2 of the 9 pixels in each block, 5 black
    np.testing.assert_allclose(colours[2], (np.array([10, 20, 30]) * 2 + np.array([200, 100, 50]) * 2) / 9)
    assert np.isnan(colours[3]).all()  # off the image


def _clip(frames=40, seed=0):
    rng = np.random.default_rng(seed)
    face = rng.uniform(60, 200, (len(LOWER_FACE_POINTS), 3))
    return face, face[None] + rng.normal(0, 1.5, (frames, len(LOWER_FACE_POINTS), 3))


def test_a_hand_is_found_light_and_speech_are_not():
    face, colours = _clip()
    points = len(LOWER_FACE_POINTS)
    colours[10, : int(0.6 * points)] = (180, 140, 120)  # a palm over 60 % of the points
    colours[20] *= 1.3  # the camera's exposure
    colours[21] *= (1.2, 1.0, 0.85)  # warmer light
    colours[25, :4] = (40, 20, 20)  # an opening mouth darkens the few points by the lips
    scores = occlusion_scores(colours)
    assert scores[10] >= 0.55
    assert scores[20] < 0.05 and scores[21] < 0.05
    assert scores[25] <= 4 / points + 1e-9 < OCCLUDED_SHARE
    np.testing.assert_array_equal(np.flatnonzero(occluded(scores)), [10])


def test_each_shot_is_compared_with_itself():
    _, first = _clip(30, seed=1)
    _, second = _clip(12, seed=2)  # another person after a cut
    colours = np.concatenate([first, second])
    shots = np.r_[np.zeros(30, int), np.ones(12, int)]
    assert occluded(occlusion_scores(colours))[30:].all()  # one median for both: the cut looks covered
    assert not occluded(occlusion_scores(colours, shots)).any()
    short = np.r_[np.zeros(40, int), np.ones(2, int)]  # a shot of two frames is not judged
    np.testing.assert_array_equal(occlusion_scores(colours, short)[40:], [0.0, 0.0])


def test_a_lasting_change_is_not_a_hand_but_a_quick_hand_still_is():
    """In a 40 s shot half the points darken to 0.6 after 28 s and stay so (the head turned into
    shade). Judged against the whole shot, the last 12 s look covered; against 10 s around each
    frame (250 frames), only frames near the change. A hand over 60 % of the points for five
    frames is found either way."""
    face, colours = _clip(1000, seed=3)
    half = len(LOWER_FACE_POINTS) // 2
    colours[700:, :half] *= 0.6
    colours[300:305, : int(0.6 * len(LOWER_FACE_POINTS))] = (180, 140, 120)
    whole = occluded(occlusion_scores(colours))
    assert whole[700:].all() and whole[300:305].all()
    local = occluded(occlusion_scores(colours, window=250))
    assert local[300:305].all() and local[:300].sum() + local[305:650].sum() + local[760:].sum() == 0


def test_frames_without_a_face_are_not_judged():
    _, colours = _clip(10)
    colours[3] = np.nan
    scores = occlusion_scores(colours)
    assert np.isnan(scores[3]) and not occluded(scores)[3]
    assert np.isfinite(np.delete(scores, 3)).all()


def test_face_colours_patch_grows_with_the_face():
    image = np.zeros((400, 400, 3), np.uint8)
    points = np.full((478, 2), 200.0)
    points[33], points[263] = (100.0, 100.0), (300.0, 100.0)  # eye distance 200: radius 8
    image[192:209, 192:209] = 90  # the 17x17 patch around (200, 200)
    np.testing.assert_allclose(face_colours(image, points), 90.0)


class LeadingPause:
    """Speech that starts after 18 frames (as spanish1.wav does) and then holds the lower lip and
    jaw half open, so that no frame needs shutting (`closing_runs`) and the only hold is the pause."""

    name = "leading-pause"
    default_scale = 1.0
    rest = "closed"

    def predict_with_gate(self, samples, frames, fps):
        from lipdub.motion.shape import MOTION_POINTS

        lower = [k for k, p in enumerate(MOTION_POINTS) if p in LOWER_LIP_AND_JAW]
        motion = np.zeros((frames, len(MOTION_POINTS), 2))
        motion[18:, lower, 1] = 0.15
        gate = np.ones(frames)
        gate[:18] = 0.0
        return motion, gate


#: Face Mesh's lower lip (outer and inner) and chin points.
LOWER_LIP_AND_JAW = {17, 84, 181, 91, 146, 314, 405, 321, 375, 14, 87, 178, 88, 95, 317, 402, 318, 324,
                     152, 148, 176, 149, 150, 377, 400, 378, 379, 18, 200, 199, 175, 83, 313, 201, 421}


def test_a_hand_before_the_mouth_is_never_held_and_is_shown_as_it_is():
    """tv_debate_two_men: a palm crosses the right-hand man's mouth in frames 0-5. Dubbed with
    speech that starts after a pause, the pause was held on frame 2, the palm (Face Mesh reads a
    covered mouth as shut), and 18 frames showed a ghostly hand where his mouth should be."""
    from tests.test_engine_motion import _prepared

    engine, jobs, _ = _prepared(shared_file("data/multiface/tv_debate_two_men.mp4"), LeadingPause())
    covered = set(np.flatnonzero(engine._covered).tolist())  # the colour test's verdict
    assert 2 in covered and len(covered) <= 8
    never_lent = set(engine._bank.frames[engine._occluded_entries].tolist())
    assert covered <= never_lent  # and the frames with a hand over the lips (`tests/test_face_hands.py`)
    held = set(engine._bank.frames[engine._hold_bank[:18]].tolist())
    assert len(held) == 1 and not (held & never_lent)
    assert (engine._edit_weight[:2] == 0).all() and engine._edit_weight[30] == 1.0
    for job, out in zip(jobs[:2], engine.render(jobs[:2])):
        np.testing.assert_array_equal(out, job.image)
    engine.close()


def test_robust_centre_and_spread_known_values():
    from lipdub.render.occlusion import robust_centre_and_spread

    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0], [100.0, 10.0]])
    median, spread = robust_centre_and_spread(values)
    np.testing.assert_allclose(median, [3.0, 10.0])
    np.testing.assert_allclose(spread, [1.4826 * 1.0, 0.0])  # |deviations| 2, 1, 0, 1, 97: median 1
