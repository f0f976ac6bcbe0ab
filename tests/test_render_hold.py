"""Pause hold: which output frames are held, how much, and on which input frame."""

import numpy as np
import pytest

from lipdub.render.hold import choose_hold_frame, choose_slit_frame, hold_weights, pause_runs


def test_pause_runs_keep_only_long_shut_stretches():
    gate = np.array([1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0], float)
    # at 10 fps, 0.4 s = 4 frames: the 5-frame and the final 4-frame stretches, not the 2-frame gap
    assert pause_runs(gate, fps=10) == [(2, 7), (11, 15)]
    assert pause_runs(np.ones(20), fps=25) == []
    assert pause_runs(np.zeros(0), fps=25) == []
    assert pause_runs(np.full(30, 0.04), fps=25) == [(0, 30)]


def test_hold_weights_ramp_in_and_out():
    weights = hold_weights(12, [(2, 10)], fade_frames=2)
    np.testing.assert_allclose(weights, [0, 0, 1 / 3, 2 / 3, 1, 1, 1, 1, 2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(hold_weights(5, [(1, 4)], fade_frames=0), [0, 1, 1, 1, 0])
    short = hold_weights(6, [(1, 4)], fade_frames=5)
    assert short.max() < 1 and short[0] == 0 and short[4] == 0
    # at the clip's own start and end there is nothing to fade from: whole at once
    np.testing.assert_allclose(hold_weights(6, [(0, 3)], fade_frames=2), [1, 2 / 3, 1 / 3, 0, 0, 0])
    np.testing.assert_allclose(hold_weights(6, [(3, 6)], fade_frames=2), [0, 0, 0, 1 / 3, 2 / 3, 1])


def test_live_hold_step_fades_in_after_the_pause_is_long_enough_and_out_when_it_ends():
    from lipdub.render.hold import live_hold_step

    gate_shut = [True] * 7 + [False] * 4
    weight, run, weights = 0.0, 0, []
    for shut in gate_shut:
        weight, run = live_hold_step(weight, run, shut, holdable=True, min_frames=3, fade_frames=2)
        weights.append(weight)
    # Held from the 3rd shut frame, rising a third a frame; falling as fast once the gate opens.
    np.testing.assert_allclose(weights, [0, 0, 1 / 3, 2 / 3, 1, 1, 1, 2 / 3, 1 / 3, 0, 0])
    assert run == 0
    # A short gap between words is never held; a hold that no longer fits (the head turned) fades.
    weight, run = 0.0, 0
    for shut in [True, True, False, True, True]:
        weight, run = live_hold_step(weight, run, shut, True, 3, 2)
        assert weight == 0.0
    assert live_hold_step(1.0, 10, True, False, 3, 2) == (2 / 3, 11)
    assert live_hold_step(0.5, 4, True, True, 3, 0) == (1.0, 5)  # no fade: whole at once
    # A wide-open mouth aimed shut is held whole at once, pause or not (when a hold frame fits).
    assert live_hold_step(0.0, 0, False, True, 3, 2, at_once=True) == (1.0, 0)
    assert live_hold_step(0.0, 0, False, False, 3, 2, at_once=True) == (0.0, 0)


def test_closing_needed_marks_wide_open_mouths_aimed_shut_and_squeezed_gapes():
    from lipdub.render.hold import closing_needed

    own = np.array([0.15, 0.15, 0.05, 0.3, 0.3])
    target = np.array([0.04, 0.08, 0.0, 0.1, 0.2])
    np.testing.assert_array_equal(closing_needed(own, target), [True, False, False, True, False])


def test_closing_runs_cover_wide_open_mouths_aimed_shut_grown_by_the_fade():
    from lipdub.render.hold import closing_runs, runs_of

    own = np.array([0.30, 0.20, 0.05, 0.20, 0.20, 0.02, 0.20, 0.20, 0.20, 0.20])
    target = np.array([0.00, 0.10, 0.00, 0.20, 0.00, 0.00, 0.20, 0.20, 0.20, 0.04])
    # frame 0 (wide open, aimed shut), 4, and 9; frame 2 is already closed, 5 too
    assert closing_runs(own, target, grow=0) == [(0, 1), (4, 5), (9, 10)]
    assert closing_runs(own, target, grow=1) == [(0, 2), (3, 6), (8, 10)]
    assert closing_runs(own, np.full(10, 0.2), grow=2) == []
    assert runs_of(np.array([True, True, False, True])) == [(0, 2), (3, 4)] and runs_of(np.zeros(0, bool)) == []


def test_closing_runs_cover_gaping_mouths_aimed_much_smaller():
    """A yawn (0.5 eye units) aimed at 0.15 would squeeze its tongue into a pink lip: held; aimed
    at 0.3, or a speaking mouth (0.15) aimed at 0.06, it is warped as usual."""
    from lipdub.render.hold import closing_runs

    own = np.array([0.50, 0.50, 0.50, 0.15, 0.19])
    target = np.array([0.15, 0.30, 0.20, 0.06, 0.04])
    assert closing_runs(own, target, grow=0) == [(0, 1), (2, 3), (4, 5)]
    assert closing_runs(own, target, grow=0, gaping=1.0) == [(4, 5)]  # the shut rule alone


def test_hold_frame_is_the_most_closed_within_reach():
    frames = np.array([0, 10, 20, 30, 40, 200])
    openings = np.array([0.01, 0.20, 0.05, np.nan, 0.02, 0.0])
    # within 15 frames of 20: frames 10 (0.20), 20 (0.05) and 30 (no face); 0 and 40 are out of reach
    assert choose_hold_frame(frames, openings, centre=20, reach=15) == 2
    assert choose_hold_frame(frames, openings, centre=20, reach=50) == 0
    # equally closed: the nearer one
    assert choose_hold_frame(np.array([0, 30]), np.array([0.01, 0.01]), centre=20, reach=30) == 1
    # nothing within reach: the nearest with a face (frame 30 has none)
    assert choose_hold_frame(frames, openings, centre=31, reach=2) == 4
    assert choose_hold_frame(frames[:1], np.array([np.nan]), centre=0, reach=5) == -1


def test_slit_frame_fits_the_most_parted_targets_of_the_hold():
    """Openings fit a target t within 0.7 t .. t / 0.7 + 0.015 (`opening_fits`)."""
    frames = np.array([0, 10, 20, 30, 40])
    openings = np.array([0.029, 0.040, 0.001, np.nan, 0.150])
    targets = np.array([0.032, 0.045, 0.056])
    # 0.029 fits only 0.032 (0.7 x 0.045 = 0.0315 > 0.029); 0.040 fits all three; shut or gaping fit none
    assert choose_slit_frame(frames, openings, centre=20, reach=40, targets=targets) == 1
    # out of reach: the next best within it
    assert choose_slit_frame(frames, openings, centre=0, reach=5, targets=targets) == 0
    # equally good: the nearer one
    assert choose_slit_frame(np.array([0, 30]), np.array([0.04, 0.04]), centre=20, reach=30, targets=targets) == 1
    # nothing fits (only shut and gaping mouths), or no face: -1, and the slit is painted
    assert choose_slit_frame(frames[[2, 4]], openings[[2, 4]], centre=20, reach=40, targets=targets) == -1
    assert choose_slit_frame(frames[:1], np.array([np.nan]), centre=0, reach=5, targets=targets) == -1
    # with widths: of two that fit, the one as wide as the target, though its opening is further off
    two = dict(candidates=np.array([0, 10]), openings=np.array([0.045, 0.040]), centre=0, reach=40, targets=targets)
    assert choose_slit_frame(**two) == 0
    assert choose_slit_frame(**two, widths=np.array([0.41, 0.53]), target_width=0.52) == 1


def test_a_hold_frame_much_narrower_than_its_targets_is_not_held():
    from lipdub.render.hold import HOLD_WIDTH_RATIO, fits_hold_width

    assert fits_hold_width(0.5, np.array([0.5, 0.55, 0.6]))
    assert fits_hold_width(0.5, np.full(3, 0.5 * HOLD_WIDTH_RATIO))
    # a grin 0.72 wide over a closed pucker 0.48 wide (silent/woman_smiling_expressive.mp4)
    assert not fits_hold_width(0.48, np.array([0.70, 0.72, 0.73, np.nan]))
    assert fits_hold_width(np.nan, np.array([0.7])) and fits_hold_width(0.5, np.array([np.nan]))


def test_own_mouths_that_would_have_to_shut_keep_their_hold():
    from lipdub.render.hold import OWN_FOLLOW_SHARE, own_mouths_can_follow

    # a grin 0.22 open kept 0.14 open: its own frames can be drawn
    assert own_mouths_can_follow(np.array([0.22, 0.24, 0.2]), np.array([0.14, 0.19, 0.12]))
    # a gaping mouth (expressive/d6.mp4) aimed nearly shut: not without its hold
    assert not own_mouths_can_follow(np.array([0.4, 0.45, 0.3]), np.array([0.05, 0.1, 0.02]))
    assert own_mouths_can_follow(np.array([0.2]), np.array([0.2 * OWN_FOLLOW_SHARE]))
    assert own_mouths_can_follow(np.array([0.0, np.nan]), np.array([0.1, 0.1]))


def test_head_yaw_is_the_nose_offset_from_between_the_eyes_in_eye_distances():
    from lipdub.render.hold import head_yaw

    points = np.zeros((2, 468, 2))
    points[:, 33] = (100.0, 50.0)
    points[:, 263] = (200.0, 50.0)
    points[0, 1] = (150.0, 120.0)  # facing the camera
    points[1, 1] = (180.0, 120.0)  # turned: the nose 30 px right of the eyes' middle, eyes 100 apart
    np.testing.assert_allclose(head_yaw(points), [0.0, 0.3])
    points[1, 263] = points[1, 33]
    assert np.isnan(head_yaw(points[1]))


def test_yaw_segments_cut_a_run_where_the_head_turns_away_from_the_hold_frame():
    from lipdub.render.hold import yaw_segments

    yaws = np.array([0.0, 0.05, 0.3, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.3, np.nan, 0.0])  # limit 0.21
    assert yaw_segments(yaws, 0.0, 0.21) == [(0, 2, True), (2, 3, False), (3, 4, True), (4, 5, False),
                                             (5, 13, True), (13, 15, False), (15, 17, True)]
    # grown by 1 frame each side, and the 4-frame gap 7-10 between two misfits is too short to hold
    assert yaw_segments(yaws, 0.0, 0.21, min_frames=3) == [(0, 1, True), (1, 6, False), (6, 12, True),
                                                           (12, 16, False), (16, 17, True)]
    assert yaw_segments(yaws, 0.0, 0.21, min_frames=5) == [(0, 17, False)]
    assert yaw_segments(yaws, 0.3, 0.21)[0] == (0, 2, False)
    assert yaw_segments(np.array([]), 0.0) == []


@pytest.mark.slow
def test_a_pause_is_never_held_on_a_frame_the_head_has_turned_far_from():
    """style_nice_clip1 (a man eating, turning between three-quarter and frontal) held on one
    nearly frontal frame drew a sliver of the wall under his nose where he had turned away."""
    from lipdub.render.hold import HOLD_YAW_LIMIT, head_yaw
    from tests.conftest import shared_file
    from tests.test_engine_motion import ZeroMotion, _prepared

    engine, jobs, _ = _prepared(shared_file("data/silent/style_nice_clip1.mp4"), ZeroMotion())
    yaw = head_yaw(engine._canonical)
    held = np.flatnonzero(engine._hold_bank >= 0)
    assert len(held) > 100
    holds = engine._bank.frames[engine._hold_bank[held]]
    assert len(set(holds.tolist())) >= 2  # the turned stretches got hold frames of their own
    turn = np.abs(yaw[engine._sources[held]] - yaw[holds])
    assert np.nanmax(turn) <= HOLD_YAW_LIMIT
    engine.close()


def test_fades_beside_a_frame_shown_as_it_is_morph_one_mouth_instead_of_mixing_two():
    from lipdub.engines.motion import morph_fades

    edit = np.array([0.0, 0.25, 0.5, 1.0])
    own = np.zeros((4, 2, 2))
    targets = np.ones((4, 2, 2))
    hold = np.array([0.0, 1.0, 1.0, 1.0])
    weights = morph_fades(edit, targets, own, hold)
    # Shown as it is stays so; a fading frame is drawn whole, its shape that share of the way.
    np.testing.assert_array_equal(weights, [0.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(targets[:, 0, 0], [1.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(hold, [0.0, 0.25, 0.5, 1.0])
