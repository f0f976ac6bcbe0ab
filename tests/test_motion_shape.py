"""Canonical frame, rest track, PCA basis, shape transfer and the speech gate, against known values."""

import numpy as np
import pytest

from lipdub.motion import shape as S
from lipdub.motion.features import frame_windows, normalise_mel
from lipdub.motion.predictor import speech_gate
from lipdub.motion.transfer import speaker_scale, target_shapes


def _similarity(scale, angle, shift):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 2))
    matrix = _similarity(2.5, 0.3, (4.0, -7.0))
    fitted = S.similarity_fit(points, S.apply_affine(matrix, points))
    np.testing.assert_allclose(fitted, matrix, atol=1e-10)


def test_invert_affine():
    matrix = _similarity(0.7, -1.1, (3.0, 2.0))
    points = np.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(S.apply_affine(S.invert_affine(matrix), S.apply_affine(matrix, points)), points)


def test_canonical_frame_removes_head_position_roll_and_size():
    rng = np.random.default_rng(1)
    face = rng.normal(size=(478, 2))
    frames = np.stack([S.apply_affine(_similarity(s, a, (x, y)), face)
                       for s, a, x, y in [(50, 0.0, 100, 80), (80, 0.4, 300, 200), (30, -0.2, 10, 500)]])
    template = S.stable_template(frames)
    canon = S.canonical_motion_points(frames, S.canonical_transforms(frames, template))
    np.testing.assert_allclose(canon[1], canon[0], atol=1e-9)
    np.testing.assert_allclose(canon[2], canon[0], atol=1e-9)
    eyes = [S.STABLE_POINTS.index(S.RIGHT_EYE_OUTER), S.STABLE_POINTS.index(S.LEFT_EYE_OUTER)]
    np.testing.assert_allclose(template[eyes], [[-0.5, 0.0], [0.5, 0.0]], atol=1e-9)


def test_moving_average_known_values_and_nan():
    np.testing.assert_allclose(S.moving_average(np.array([0.0, 3.0, 6.0, 9.0]), 3), [1.5, 3.0, 6.0, 7.5])
    np.testing.assert_allclose(S.moving_average(np.array([1.0, np.nan, 3.0]), 3), [1.0, 2.0, 3.0])


def _shapes_with_opening(openings):
    shapes = np.zeros((len(openings), len(S.MOTION_POINTS), 2))
    shapes[:, S.LOWER_INNER, 1] = openings
    return shapes


def test_rest_track_is_the_closed_mouth_not_the_average():
    # Speech at 25 fps: the mouth opens to 0.2 and closes every 4 frames.
    openings = np.tile([0.0, 0.1, 0.2, 0.1], 25)
    rest = S.rest_track(_shapes_with_opening(openings), fps=25.0)
    np.testing.assert_allclose(S.aperture(rest), 0.0, atol=1e-12)
    motion = S.speech_motion(_shapes_with_opening(openings), rest)
    np.testing.assert_allclose(motion.reshape(100, -1, 2)[:, S.LOWER_INNER, 1], openings)


def test_rest_track_keeps_a_slow_smile():
    # The mouth widens slowly (a smile over 4 s) while closed: the rest follows it.
    t = np.arange(100)
    shapes = np.zeros((100, len(S.MOTION_POINTS), 2))
    shapes[:, S.LEFT_CORNER, 0] = 0.2 + 0.1 * t / 99
    rest = S.rest_track(shapes, fps=25.0)
    assert np.abs(rest[13:87, S.LEFT_CORNER, 0] - shapes[13:87, S.LEFT_CORNER, 0]).max() < 1e-9


def test_articulation_scale_ignores_pauses():
    moving = np.ones((60, 4))
    with_pauses = np.concatenate([moving, np.zeros((30, 4))])
    assert S.articulation_scale(moving) == pytest.approx(2.0)
    assert S.articulation_scale(with_pauses) == pytest.approx(2.0)


def test_motion_basis_round_trip_and_zero_motion():
    rng = np.random.default_rng(2)
    directions = rng.normal(size=(3, 20))
    motion = rng.normal(size=(500, 3)) @ directions
    basis = S.MotionBasis.fit(motion, 3)
    np.testing.assert_allclose(basis.decode(basis.encode(motion)), motion, atol=1e-4)
    np.testing.assert_allclose(basis.decode(np.zeros(3)), 0.0)
    restored = S.MotionBasis.from_dict(basis.to_dict())
    np.testing.assert_allclose(restored.components, basis.components)


def test_target_shape_and_scale_rules():
    rest = np.ones((2, 3, 2))
    motion = np.full((2, 3, 2), 0.5)
    np.testing.assert_allclose(target_shapes(rest, motion, 2.0), 2.0)
    np.testing.assert_allclose(target_shapes(rest, np.zeros_like(motion), 2.0), rest)
    assert speaker_scale(None, 0.3) == 0.3
    assert speaker_scale(0.05, 0.3) == 0.3  # a silent input reads low: the default is used
    assert speaker_scale(0.36, 0.3) == pytest.approx(0.36)
    assert speaker_scale(3.0, 0.3) == pytest.approx(0.48)


def test_frame_windows_centre_and_silence_padding():
    mel = np.tile(np.arange(100, dtype=np.float32), (80, 1))  # column j holds j
    windows = frame_windows(mel, frames=3, fps=40.0, columns=5)  # 2 columns per frame
    np.testing.assert_array_equal(windows[1, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(windows[0, 0], [-4, -4, 0, 1, 2])
    causal = frame_windows(mel, frames=3, fps=40.0, columns=5, lookahead=1)
    np.testing.assert_array_equal(causal[2, 0], [1, 2, 3, 4, 5])
    # a chunk of frames is the same slice of the whole
    whole = frame_windows(mel, frames=60, fps=40.0, columns=5)
    np.testing.assert_array_equal(frame_windows(mel, frames=50, fps=40.0, columns=5, first=20), whole[20:50])


def test_normalise_mel_removes_a_constant_band_offset():
    rng = np.random.default_rng(3)
    mel = rng.normal(size=(80, 200)).astype(np.float32)
    tilted = mel + np.linspace(-1, 1, 80, dtype=np.float32)[:, None]
    np.testing.assert_allclose(normalise_mel(tilted), normalise_mel(mel), atol=1e-5)


def test_speech_gate_shuts_in_silence_and_opens_in_speech():
    loud = np.r_[np.full(50, -1.0), np.full(50, -4.0), np.full(50, -1.0)]
    gate = speech_gate(loud, widen=2)
    assert gate[:50].min() == 1.0 and gate[100:].min() == 1.0
    assert gate[55:95].max() == 0.0
    assert speech_gate(np.full(30, -4.0)).max() == 0.0


def test_gaussian_smooth_known_values_and_constant():
    from lipdub.motion.shape import gaussian_smooth

    impulse = gaussian_smooth(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 1.0)
    kernel = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    kernel /= kernel.sum()
    np.testing.assert_allclose(impulse, kernel[1:6])
    np.testing.assert_allclose(gaussian_smooth(np.full((6, 2), 3.0), 2.0), 3.0)


def test_an_ensemble_of_copies_predicts_like_one_member_and_silence_is_still():
    import torch

    from lipdub.models.lip_motion import LipMotionNet
    from lipdub.motion.predictor import MotionMember, MotionPredictor

    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    basis = S.MotionBasis.fit(rng.normal(size=(200, len(S.MOTION_POINTS) * 2)), 12)
    member = MotionMember(LipMotionNet(12, 32), basis, {"normalise_mel": True})
    speech = (0.3 * np.sin(np.arange(16000) * 0.05) * (np.arange(16000) % 4000 < 2000)).astype(np.float32)
    one = MotionPredictor("one", [member], 0.3).predict(speech, 25, 25.0)
    two = MotionPredictor("two", [member, member], 0.3).predict(speech, 25, 25.0)
    np.testing.assert_allclose(one, two, atol=1e-6)
    assert one.shape == (25, len(S.MOTION_POINTS), 2)
    silent = MotionPredictor("one", [member], 0.3).predict(np.zeros(16000, np.float32), 25, 25.0)
    assert np.abs(silent).max() == 0.0


def test_keep_slow_expression_restores_the_input_slow_width_but_keeps_fast_motion():
    from lipdub.motion.transfer import CORNERS, keep_slow_expression

    t = np.arange(100)
    own = np.zeros((100, len(S.MOTION_POINTS), 2))
    own[:, S.LEFT_CORNER, 0] = 0.3 + 0.05 * np.sin(2 * np.pi * t / 100)  # a slow smile, 4 s period
    fast = 0.02 * np.sin(t * 2.0)  # speech: fast width changes
    targets = np.zeros_like(own)
    targets[:, S.LEFT_CORNER, 0] = 0.3 + fast
    a = S.LEFT_CORNER
    single = keep_slow_expression(targets, own, fps=25.0, refine_sigma=0.0)
    np.testing.assert_allclose(single[:, a, 0] - targets[:, a, 0],
                               S.moving_average(own[:, a, 0], 25) - S.moving_average(targets[:, a, 0], 25))
    kept = keep_slow_expression(targets, own, fps=25.0)
    slow = S.moving_average(kept[:, a, 0], 25)
    assert np.corrcoef(slow, S.moving_average(own[:, a, 0], 25))[0, 1] > 0.99
    # The fast part survives: the residual around the slow part is the speech motion's.
    assert np.std(kept[:, a, 0] - slow) > 0.01
    np.testing.assert_allclose(kept[:, S.UPPER_INNER, 1], targets[:, S.UPPER_INNER, 1])  # openings untouched
    assert S.LEFT_CORNER in CORNERS


def test_keep_slow_expression_refinement_passes_restore_a_short_smile_that_one_pass_flattens():
    from lipdub.motion.transfer import REFINE_PASSES, keep_slow_expression

    t = np.arange(150)
    own = np.zeros((150, len(S.MOTION_POINTS), 2))
    own[:, S.LEFT_CORNER, 0] = 0.04 * np.exp(-0.5 * ((t - 75) / 10.0) ** 2)  # a smile of about 1 s
    targets = np.zeros_like(own)
    a = S.LEFT_CORNER
    want = S.moving_average(own[:, a, 0], 25)
    single = S.moving_average(keep_slow_expression(targets, own, 25.0, refine_sigma=0.0)[:, a, 0], 25)
    double = S.moving_average(keep_slow_expression(targets, own, 25.0, refine_passes=1)[:, a, 0], 25)
    default = S.moving_average(keep_slow_expression(targets, own, 25.0)[:, a, 0], 25)
    # One pass averages the smile twice: its slow peak comes back at 0.865 of the input's; one
    # refinement pass brings it to 0.93 and halves the largest error; the default passes to 0.99.
    assert single.max() / want.max() == pytest.approx(0.865, abs=0.005)
    assert double.max() / want.max() == pytest.approx(0.930, abs=0.005)
    assert np.abs(double - want).max() < 0.55 * np.abs(single - want).max()
    assert REFINE_PASSES == 8
    assert default.max() / want.max() == pytest.approx(0.990, abs=0.005)
    assert np.abs(default - want).max() < 0.2 * np.abs(single - want).max()


def test_closed_mouth_brings_the_lips_together_and_keeps_a_closed_one():
    shapes = np.zeros((1, len(S.MOTION_POINTS), 2))
    n = len(S.LIP_OUTER)
    for i in range(1, 10):
        shapes[0, n + i, 1] = 0.1  # inner lower lip 0.1 below
        shapes[0, i, 1] = 0.15  # outer lower lip, lip 0.05 thick
        shapes[0, 20 - i, 1] = -0.05  # outer upper lip
    shapes[0, 2 * n:, 1] = 0.5  # jaw
    closed = S.closed_mouth(shapes)
    assert S.aperture(closed)[0] == pytest.approx(0.0)
    assert closed[0, S.LOWER_INNER, 1] == pytest.approx(0.05) and closed[0, S.UPPER_INNER, 1] == pytest.approx(0.05)
    assert closed[0, 5, 1] - closed[0, n + 5, 1] == pytest.approx(0.05)  # lip thickness kept
    assert closed[0, 2 * n, 1] == pytest.approx(0.5 - S.JAW_FOLLOW * 0.05)
    np.testing.assert_allclose(S.closed_mouth(closed), closed)


def test_photo_rest_shuts_a_nearly_closed_mouth_and_half_parts_a_wide_one():
    shapes = np.zeros((2, len(S.MOTION_POINTS), 2))
    n = len(S.LIP_OUTER)
    shapes[0, n + 5, 1] = 0.04  # nearly closed: inner lower lip (14) 0.04 below the upper (13)
    shapes[1, n + 5, 1] = 0.2  # wide open
    rest = S.photo_rest(shapes)
    assert S.aperture(rest)[0] == pytest.approx(0.0)
    assert S.aperture(rest)[1] == pytest.approx(S.PHOTO_KEEP * 0.2)


def test_video_rest_closes_an_envelope_that_talk_without_pause_holds_open():
    # 3 s of talk that never closes: the opening swings 0.1..0.3 every 4 frames, so the envelope
    # (the most closed frame within 0.5 s) sits at 0.1, and closing it brings the lips together.
    openings = np.tile([0.1, 0.2, 0.3, 0.2], 19)
    shapes = _shapes_with_opening(openings)
    envelope = S.video_rest(shapes, 25.0, "envelope")
    np.testing.assert_allclose(envelope, S.rest_track(shapes, 25.0))
    np.testing.assert_allclose(S.aperture(envelope), 0.1, atol=1e-12)
    closed = S.video_rest(shapes, 25.0)  # the default: "closed"
    np.testing.assert_allclose(S.aperture(closed), 0.0, atol=1e-12)
    motion = S.speech_motion(shapes, closed).reshape(len(openings), -1, 2)
    # From a closed rest the speech motion is the whole opening (here the lower lip moves, and
    # closing meets it half-way: 0.05 of the 0.1 comes from the upper lip).
    np.testing.assert_allclose(motion[:, S.LOWER_INNER, 1] - motion[:, S.UPPER_INNER, 1], openings, atol=1e-12)
    with pytest.raises(ValueError, match="rest must be"):
        S.video_rest(shapes, 25.0, "open")


def test_follow_fast_pose_adds_the_nose_fast_movement_and_leaves_slow_drift():
    from lipdub.motion.transfer import follow_fast_pose

    t = np.arange(200)
    targets = np.zeros((200, len(S.MOTION_POINTS), 2))
    anchor = np.zeros((200, 2))
    anchor[:, 0] = 0.001 * t  # a slow drift: the one-second average already follows it
    anchor[:, 0] += 0.05 * np.sin(2 * np.pi * t / 10)  # a quick head shake, 2.5 Hz at 25 fps
    anchor[:, 1] = 0.02 * np.sin(2 * np.pi * t / 10)
    moved = follow_fast_pose(targets, anchor, fps=25.0, gain=(1.0, 0.5))
    inside = slice(20, 180)  # away from the ends, where the average is one-sided
    # Every point moves alike (a translation) ...
    np.testing.assert_allclose(moved[:, 0], moved[:, -1])
    # ... by the shake less its own one-second average (25 frames hold 2.5 periods, so a little
    # remains), not by the drift, and in y by the gain.
    shake = 0.05 * np.sin(2 * np.pi * t / 10)
    remainder = S.moving_average(shake, 25)
    np.testing.assert_allclose(moved[inside, 0, 0], (shake - remainder)[inside], atol=1e-12)
    np.testing.assert_allclose(moved[inside, 0, 1], 0.5 * 0.4 * (shake - remainder)[inside], atol=1e-12)
    # A head that holds still, or a single frame, moves nothing.
    still = follow_fast_pose(targets, np.ones((200, 2)), fps=25.0)
    np.testing.assert_allclose(still, targets)
    np.testing.assert_allclose(follow_fast_pose(targets[:1], anchor[:1], 25.0), targets[:1])


def test_a_raised_corner_takes_its_lip_ring_along():
    from lipdub.motion.transfer import CORNERS, corner_spread, keep_slow_expression

    weights = corner_spread()
    n = len(S.LIP_OUTER)
    left_outer = CORNERS.index(S.LEFT_CORNER)
    np.testing.assert_allclose(weights[list(CORNERS), range(4)], 1.0)  # each corner takes all of its own
    assert weights[2 * n:].sum() == 0.0  # jaw and chin: none
    # Round the ring from corner 291 (step 10): 1 step away exp(-1/8), 3 steps exp(-9/8).
    np.testing.assert_allclose(weights[[9, 11], left_outer], np.exp(-0.125))
    np.testing.assert_allclose(weights[[7, 13], left_outer], np.exp(-1.125))
    for i in range(1, 10):  # facing upper and lower points rise alike: no opening changes
        np.testing.assert_allclose(weights[i], weights[20 - i])
        np.testing.assert_allclose(weights[n + i], weights[n + 20 - i])

    # A grimace lifts one corner by 0.08 eye units for two seconds: the lip around it rises with it.
    own = np.zeros((100, len(S.MOTION_POINTS), 2))
    own[:, S.LEFT_CORNER, 1] = -0.08
    kept = keep_slow_expression(np.zeros_like(own), own, fps=25.0)
    corner = kept[50, S.LEFT_CORNER, 1]
    neighbours = kept[50, [9, 11], 1]
    assert corner == pytest.approx(-0.08, abs=0.005)
    assert np.abs(corner - neighbours).max() < 0.15 * abs(corner)  # no spike at the corner


def test_expression_coordinates_measure_the_corners_from_the_lips_middle():
    from lipdub.motion.transfer import CORNERS, LIP_MIDDLES, expression_coordinates

    shapes = np.random.default_rng(0).normal(size=(3, len(S.MOTION_POINTS), 2))
    out = expression_coordinates(shapes)
    middle = shapes[:, list(LIP_MIDDLES), 1].mean(axis=1)
    np.testing.assert_allclose(out[:, list(CORNERS), 1], shapes[:, list(CORNERS), 1] - middle[:, None])
    others = [i for i in range(len(S.MOTION_POINTS)) if i not in CORNERS]
    np.testing.assert_array_equal(out[:, others], shapes[:, others])
    np.testing.assert_array_equal(out[..., 0], shapes[..., 0])
    assert S.MOTION_POINTS[LIP_MIDDLES[0]] == 0 and S.MOTION_POINTS[LIP_MIDDLES[3]] == 14


def test_a_yawn_gives_no_frown_and_a_smile_still_lifts_the_corners():
    """The input yawns for 4 s (lips 0.2 apart, corners at the opening's middle, 0.1 below a closed
    mouth's); the new speech asks for a closed mouth. The corners stay level with its lips instead
    of taking the yawn's drop. A smile (corners 0.03 above the lips' middle) still comes through."""
    from lipdub.motion.transfer import CORNERS, LIP_MIDDLES, keep_slow_expression

    upper, lower = [LIP_MIDDLES[0], LIP_MIDDLES[2]], [LIP_MIDDLES[1], LIP_MIDDLES[3]]
    yawn = np.zeros((100, len(S.MOTION_POINTS), 2))
    yawn[:, upper, 1], yawn[:, lower, 1] = -0.1, 0.1  # corners at y = 0: the middle
    closed = np.zeros_like(yawn)
    closed[:, upper + lower, 1] = -0.1  # lips together where the yawn's upper lip is
    closed[:, list(CORNERS), 1] = -0.1
    kept = keep_slow_expression(closed, yawn, fps=25.0)
    middle = kept[50, list(LIP_MIDDLES), 1].mean()
    assert np.abs(kept[50, list(CORNERS), 1] - middle).max() < 0.01  # absolute heights: 0.1 lower

    smile = closed.copy()
    smile[:, list(CORNERS), 1] = -0.1 - 0.03
    kept = keep_slow_expression(closed, smile, fps=25.0)
    middle = kept[50, list(LIP_MIDDLES), 1].mean()
    np.testing.assert_allclose(kept[50, list(CORNERS), 1] - middle, -0.03, atol=0.004)


def test_keep_slow_expression_correction_stays_below_speech_rates():
    """The eight refinement passes add the input's slow band, not wobble: with speech-rate width
    motion (4-6 Hz) on both sides and a slow smile (0.25 Hz) in the input, the correction the
    target receives carries almost nothing above 2 Hz."""
    from lipdub.motion.transfer import keep_slow_expression

    fps, n = 25.0, 250
    t = np.arange(n) / fps
    own = np.zeros((n, len(S.MOTION_POINTS), 2))
    own[:, S.LEFT_CORNER, 0] = 0.04 * np.sin(2 * np.pi * 0.25 * t) + 0.01 * np.sin(2 * np.pi * 5.0 * t)
    targets = np.zeros_like(own)
    targets[:, S.LEFT_CORNER, 0] = 0.01 * np.sin(2 * np.pi * 4.3 * t + 1.0)
    correction = (keep_slow_expression(targets, own, fps) - targets)[:, S.LEFT_CORNER, 0]
    power = np.abs(np.fft.rfft(correction - correction.mean())) ** 2
    freqs = np.fft.rfftfreq(n, 1 / fps)
    assert power[freqs > 2.0].sum() < 0.003 * power.sum()  # 0.0004 here; 0.006 with a 0.04 s Gaussian
    assert power[freqs < 0.5].sum() > 0.9 * power.sum()


def _mouths(openings, widths):
    shapes = _shapes_with_opening(openings)
    shapes[:, S.RIGHT_CORNER, 0] = -np.asarray(widths) / 2
    shapes[:, S.LEFT_CORNER, 0] = np.asarray(widths) / 2
    return shapes


def test_widest_closed_width_reads_only_closed_frames():
    # closed mouths 0.50-0.54 wide, an open grin 0.8 wide that must not count
    shapes = _mouths([0.0, 0.01, 0.02, 0.2, 0.25], [0.50, 0.52, 0.54, 0.8, 0.8])
    assert S.widest_closed_width(shapes) == pytest.approx(np.percentile([0.50, 0.52, 0.54], 95))
    assert S.widest_closed_width(_mouths([0.2, 0.3], [0.5, 0.5])) == 0.0


def test_keep_unclosable_openings_keeps_a_grin_wider_than_any_closed_mouth():
    moment = _mouths([0.2, 0.2, 0.2, 0.05], [0.5, 0.5, 0.5, 0.5])
    closed = S.closed_mouth(moment)
    widest = 0.5
    # drawn as wide as a closed mouth, (ratio + ramp / 2) x and (ratio + ramp) x as wide; a narrow opening
    widths = np.array([1.0, S.GRIN_WIDTH_RATIO + S.GRIN_RAMP / 2, S.GRIN_WIDTH_RATIO + S.GRIN_RAMP, 1.5]) * widest
    share = S.unclosable_share(moment, widths, widest, keep=0.8)
    np.testing.assert_allclose(share, [0.0, 0.4, 0.8, 0.0], atol=1e-12)
    rest = S.keep_unclosable_openings(closed, moment, share)
    np.testing.assert_allclose(S.aperture(rest), [0.0, 0.4 * 0.2, 0.8 * 0.2, 0.0], atol=1e-12)
    # a video that never closes its mouth keeps every wide-enough opening
    np.testing.assert_allclose(S.unclosable_share(moment, widths, 0.0, keep=1.0), [1, 1, 1, 0])


def test_a_kept_grin_opens_with_the_jaw_not_by_raising_the_upper_lip_further():
    motion = np.zeros((2, len(S.MOTION_POINTS), 2))
    upper, lower = S.UPPER_LIP[4], S.MOTION_POINTS.index(14)
    motion[:, upper, 1] = -0.04  # speech raises the upper lip ...
    motion[:, lower, 1] = 0.1  # ... and drops the lower one
    motion[1, upper, 0] = 0.01
    held = S.hold_raised_upper_lip(motion, np.array([0.0, 0.75]))
    np.testing.assert_allclose(held[0], motion[0])  # no grin: the motion as predicted
    assert held[1, upper, 1] == pytest.approx(-0.01) and held[1, upper, 0] == pytest.approx(0.01)
    assert held[1, lower, 1] == pytest.approx(0.1)
    assert S.MOTION_POINTS[S.UPPER_LIP[0]] in (409, 415) and len(S.UPPER_LIP) == 18
    # a lip moving down (closing) is never held
    motion[:, upper, 1] = 0.03
    np.testing.assert_allclose(S.hold_raised_upper_lip(motion, np.array([1.0, 1.0])), motion)
