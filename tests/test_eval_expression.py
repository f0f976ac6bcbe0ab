"""Mouth-width expression figures on hand-built Face Mesh landmarks."""

import math

import numpy as np
import pytest

from lipdub.eval.expression import expression_fidelity, lowpass, mouth_width_ratio


def faces(width_ratios):
    """(N, 478, 2) landmarks: eyes 100 px apart, mouth corners ``ratio`` × 100 px apart."""
    ratios = np.asarray(width_ratios, dtype=np.float64)
    points = np.zeros((len(ratios), 478, 2))
    points[:, 33], points[:, 263] = (0.0, 0.0), (100.0, 0.0)
    points[:, 61, 0], points[:, 291, 0] = 50.0 - 50.0 * ratios, 50.0 + 50.0 * ratios
    points[:, 61, 1] = points[:, 291, 1] = 60.0
    return points


def test_mouth_width_ratio_by_hand():
    points = np.zeros((4, 478, 2))
    points[:, 33], points[:, 263] = (0.0, 0.0), (10.0, 0.0)
    points[0, 61], points[0, 291] = (2.0, 5.0), (8.0, 5.0)  # 6 / 10
    points[1, 61], points[1, 291] = (1.0, 5.0), (9.0, 11.0)  # hypot(8, 6) = 10 → 1.0
    points[2] = np.nan  # no face
    points[3, 263] = (0.0, 0.0)  # eyes on top of each other: no scale
    ratio = mouth_width_ratio(points)
    np.testing.assert_allclose(ratio[:2], [0.6, 1.0])
    assert np.isnan(ratio[2]) and np.isnan(ratio[3])


def test_lowpass_is_a_centred_mean_shortened_at_the_ends():
    # 4 fps × 1 s: 2 frames either side (5-frame window).
    np.testing.assert_allclose(lowpass([1, 2, 3, 4, 5, 6], fps=4), [2.0, 2.5, 3.0, 4.0, 4.5, 5.0])
    # 2 fps: 1 frame either side; NaN is left out of the mean, an all-NaN window stays NaN.
    np.testing.assert_allclose(lowpass([1.0, np.nan, 3.0], fps=2), [1.0, 2.0, 3.0])
    out = lowpass([np.nan, np.nan, np.nan, 4.0], fps=2)
    assert np.isnan(out[:2]).all() and out[2] == 4.0 and out[3] == 4.0
    # 25 fps: a 25-frame window, so a step is spread over 25 frames.
    step = lowpass(np.r_[np.zeros(50), np.ones(50)], fps=25)
    assert step[37] == 0.0 and step[38] == pytest.approx(1 / 25) and step[62] == 1.0


def test_expression_fidelity_known_values():
    fps = 25.0
    t = np.arange(200) / fps
    smile = 0.75 + 0.1 * np.sin(2 * np.pi * 0.25 * t)  # a slow smile, 4 s period
    same = expression_fidelity(faces(smile), faces(smile), fps)
    assert same["r"] == pytest.approx(1.0) and same["range_ratio"] == pytest.approx(1.0)
    halved = expression_fidelity(faces(0.375 + 0.5 * smile), faces(smile), fps)  # half the excursion
    assert halved["r"] == pytest.approx(1.0) and halved["range_ratio"] == pytest.approx(0.5)
    opposite = expression_fidelity(faces(1.5 - smile), faces(smile), fps)
    assert opposite["r"] == pytest.approx(-1.0) and opposite["range_ratio"] == pytest.approx(1.0)
    frozen = expression_fidelity(faces(np.full(200, 0.75)), faces(smile), fps)
    assert frozen == {"r": 0.0, "range_ratio": 0.0}


def test_fast_articulation_is_filtered_out_and_missing_faces_are_skipped():
    fps = 25.0
    t = np.arange(250) / fps
    smile = 0.75 + 0.1 * np.sin(2 * np.pi * 0.2 * t)
    chatter = smile + 0.05 * np.sign(np.sin(2 * np.pi * 5.0 * t + 0.1))  # 5 Hz lip motion on top
    output = faces(chatter)
    output[::7] = np.nan  # frames without a face
    result = expression_fidelity(output, faces(smile), fps)
    assert result["r"] > 0.99 and result["range_ratio"] == pytest.approx(1.0, abs=0.05)
    nothing = expression_fidelity(np.full((10, 478, 2), np.nan), faces(smile[:10]), fps)
    assert math.isnan(nothing["r"]) and math.isnan(nothing["range_ratio"])
