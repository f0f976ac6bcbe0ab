"""One-Euro smoothing, scene cuts and face choice: pure functions, hand-computed answers."""

import math

import numpy as np
import pytest

from lipdub.face.detect import FaceObservation
from lipdub.face.track import (
    OneEuroFilter, SmoothingConfig, choose_face, is_scene_cut, order_left_to_right, scene_signature,
    smoothing_factor,
)

DT_UNIT = 1.0 / (2.0 * math.pi)  # makes r = 2*pi*fc*dt equal to fc


def test_smoothing_factor_formula():
    assert smoothing_factor(1.0, DT_UNIT) == pytest.approx(0.5)
    assert smoothing_factor(3.0, DT_UNIT) == pytest.approx(0.75)
    # 25 fps, 1 Hz: r = 2*pi/25 = 0.2513 -> 0.2009
    assert smoothing_factor(1.0, 1 / 25) == pytest.approx(0.25133 / 1.25133, abs=1e-5)


def test_one_euro_hand_computed_without_speed_term():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0)
    assert f(np.array([0.0]), DT_UNIT)[0] == 0.0  # first sample passes through
    assert f(np.array([1.0]), DT_UNIT)[0] == pytest.approx(0.5)
    assert f(np.array([1.0]), DT_UNIT)[0] == pytest.approx(0.75)


def test_one_euro_hand_computed_with_speed_term():
    f = OneEuroFilter(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)
    f(np.array([0.0]), DT_UNIT)
    # dx_hat = 0.5 * (2 - 0) / dt = 2*pi; cutoff = 1 + 2*pi; a = (1 + 2*pi) / (2 + 2*pi)
    a = (1 + 2 * math.pi) / (2 + 2 * math.pi)
    assert f(np.array([2.0]), DT_UNIT)[0] == pytest.approx(2 * a)


def test_one_euro_constant_signal_is_unchanged():
    cfg = SmoothingConfig()
    f = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
    value = np.array([3.25, -1.5, 100.0])
    for _ in range(50):
        out = f(value, 1 / cfg.fps)
        np.testing.assert_allclose(out, value, rtol=0, atol=1e-12)


def test_one_euro_step_converges_with_bounded_lag():
    """A 0.5 face-size jump (a fast head move) is followed within a few frames."""
    cfg = SmoothingConfig()
    f = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
    f(np.array([0.0]), 1 / cfg.fps)
    outputs = [f(np.array([0.5]), 1 / cfg.fps)[0] for _ in range(40)]
    assert outputs[0] > 0.4  # most of the jump in the first frame: speed opens the filter
    assert all(b >= a for a, b in zip(outputs, outputs[1:]))  # monotonic, no overshoot
    assert max(outputs) <= 0.5 + 1e-12
    frames_to_95 = next(i for i, v in enumerate(outputs) if v >= 0.95 * 0.5)
    assert frames_to_95 <= 3
    assert outputs[-1] == pytest.approx(0.5, abs=1e-3)
    # The same step through a plain 1 Hz low-pass (beta = 0) lags far more.
    slow = OneEuroFilter(cfg.min_cutoff, 0.0, cfg.d_cutoff)
    slow(np.array([0.0]), 1 / cfg.fps)
    assert slow(np.array([0.5]), 1 / cfg.fps)[0] < outputs[0] / 2


def test_one_euro_reduces_jitter_on_constant():
    rng = np.random.default_rng(0)
    cfg = SmoothingConfig()
    f = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
    noisy = 1.0 + 0.005 * rng.standard_normal((200, 2))  # 0.5 % of a face size of landmark jitter
    smoothed = np.array([f(x, 1 / cfg.fps) for x in noisy])
    raw_motion = np.abs(np.diff(noisy, axis=0)).mean()
    smooth_motion = np.abs(np.diff(smoothed[20:], axis=0)).mean()
    assert smooth_motion < 0.4 * raw_motion
    assert np.abs(smoothed[20:] - 1.0).mean() < np.abs(noisy[20:] - 1.0).mean()


def test_one_euro_reset_forgets_state():
    f = OneEuroFilter(1.0, 0.0, 1.0)
    f(np.array([0.0]), DT_UNIT)
    f.reset()
    assert f(np.array([7.0]), DT_UNIT)[0] == 7.0


def test_scene_cut_identical_and_different_frames():
    rng = np.random.default_rng(1)
    a = rng.random((32, 32)).astype(np.float32)
    assert not is_scene_cut(a, a.copy(), 0.12)
    assert is_scene_cut(a, 1.0 - a, 0.12)  # mean |diff| ~ 0.33
    shifted = np.roll(a, 1, axis=1)  # a 1-pixel pan of a textured frame is not a cut
    assert not is_scene_cut(a, shifted, 0.12)
    assert is_scene_cut(np.zeros((32, 32)), np.full((32, 32), 0.2), 0.12)
    assert not is_scene_cut(np.zeros((32, 32)), np.full((32, 32), 0.1), 0.12)


def test_scene_signature_is_small_grey():
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:, 640:] = 255
    sig = scene_signature(image)
    assert sig.shape == (32, 32) and sig.dtype == np.float32
    assert sig[:, :15].max() == 0.0 and sig[:, 17:].min() == pytest.approx(1.0)


def _face(x1, y1, x2, y2):
    return FaceObservation(np.array([x1, y1, x2, y2], np.float32), 0.9, None)


def test_choose_face_rules():
    left, middle_big, right = _face(0, 0, 50, 50), _face(100, 0, 200, 100), _face(300, 0, 340, 40)
    faces = [middle_big, right, left]  # detector order: largest first
    assert order_left_to_right(faces) == [left, middle_big, right]
    assert choose_face(faces, None, None) is middle_big
    assert choose_face(faces, 0, None) is left
    assert choose_face(faces, 2, None) is right
    assert choose_face(faces, 3, None) is None
    assert choose_face([], None, None) is None
    # With a last known box, the overlapping face wins whatever the index says.
    assert choose_face(faces, 0, np.array([295, 0, 335, 40], np.float32)) is right
    assert choose_face(faces, None, np.array([5, 5, 55, 55], np.float32)) is left
