"""Speech activity, pauses and mouth motion in pauses, on signals whose answers are known by hand."""

import math

import numpy as np
import pytest

from lipdub.eval.pauses import frame_levels, mouth_motion, pause_motion_ratio, pauses, speech_activity
from tests.conftest import shared_file

SR, FPS = 16000, 25.0


def tone(seconds, amplitude=0.5, hz=200.0):
    t = np.arange(int(round(seconds * SR))) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def silence(seconds):
    return np.zeros(int(round(seconds * SR)), np.float32)


def test_frame_levels_by_hand():
    # 10 samples per frame: 0.1 → -20 dB, 0.5 → -6.02 dB, zeros → -inf, past the end → -inf.
    samples = np.concatenate([np.full(10, 0.1), np.full(10, -0.5), np.zeros(10)])
    levels = frame_levels(samples, sample_rate=100, fps=10, frames=4)
    np.testing.assert_allclose(levels[:2], [-20.0, 20 * math.log10(0.5)], atol=1e-9)
    assert levels[2] == -np.inf and levels[3] == -np.inf


def test_tone_with_a_silent_gap_gives_the_gap():
    # 1 s tone (frames 0-24), 3 s silence (25-99), 1 s tone (100-124).
    audio = np.concatenate([tone(1.0), silence(3.0), tone(1.0)])
    raw = speech_activity(audio, SR, FPS, 125, hangover_seconds=0.0)
    expected = np.zeros(125, bool)
    expected[:25] = expected[100:] = True
    np.testing.assert_array_equal(raw, expected)
    assert pauses(raw, FPS) == [(25 + 5, 100 - 5)]  # 0.2 s = 5 frames trimmed at each edge
    # The default hangover (0.3 s = 8 frames at 25 fps) keeps the first tone's end as speech.
    smoothed = speech_activity(audio, SR, FPS, 125)
    assert smoothed[:33].all() and not smoothed[33:100].any() and smoothed[100:].all()
    assert pauses(smoothed, FPS) == [(33 + 5, 100 - 5)]


def test_clicks_quiet_tracks_and_silence_are_not_speech():
    click = np.zeros(SR * 2, np.float32)
    click[SR : SR + 320] = tone(0.02)  # half a frame: shorter than the 0.1 s minimum
    audio = np.concatenate([tone(1.0), click])
    active = speech_activity(audio, SR, FPS, 75, hangover_seconds=0.0)
    assert active[:25].all() and not active[25:].any()
    quiet = tone(2.0, amplitude=0.0005)  # about -69 dBFS: below the absolute floor
    assert not speech_activity(quiet, SR, FPS, 50).any()
    assert not speech_activity(silence(2.0), SR, FPS, 50).any()
    assert speech_activity(silence(1.0), SR, FPS, 0).shape == (0,)


def test_pauses_by_hand():
    active = np.array([True] * 5 + [False] * 25 + [True] * 5 + [False] * 15 + [True] * 3)
    assert pauses(active, fps=10) == [(7, 28)]  # the 2.5 s run; the 1.5 s one is too short
    assert pauses(active, fps=10, min_seconds=1.5) == [(7, 28), (37, 48)]
    leading = np.array([False] * 20 + [True] * 5)  # exactly 2 s before the first word counts
    assert pauses(leading, fps=10) == [(2, 18)]
    assert pauses(np.ones(50, bool), fps=10) == []


def test_mouth_motion_is_the_frame_to_frame_change():
    motion = mouth_motion([0.0, 1.0, 3.0, 3.0, np.nan, 2.0])
    np.testing.assert_array_equal(motion, [np.nan, 1.0, 2.0, 0.0, np.nan, np.nan])


def speech_then_pause(fps=10):
    return np.array([True] * 20 + [False] * 30 + [True] * 20), fps


def test_mouth_still_in_the_pause_scores_zero():
    active, fps = speech_then_pause()
    aperture = np.where(np.arange(70) % 2 == 0, 0.0, 0.1)
    aperture[20:50] = 0.05  # the pause: the mouth rests
    assert pause_motion_ratio(aperture, active, fps) == 0.0


def test_constant_motion_scores_one_and_partial_motion_its_share():
    active, fps = speech_then_pause()
    assert pause_motion_ratio(np.arange(70) * 0.25, active, fps) == pytest.approx(1.0)
    aperture = np.where(np.arange(70) % 2 == 0, 0.0, 0.1)
    aperture[20:50] = np.where(np.arange(30) % 2 == 0, 0.0, 0.02)  # moves 0.02 a frame, speech 0.1
    # Speaking frames: 1-19 and 51-69 move 0.1, frame 50 (0.02 → 0.0) moves 0.02; frame 0 has no motion.
    assert pause_motion_ratio(aperture, active, fps) == pytest.approx(0.02 / ((38 * 0.1 + 0.02) / 39))


def test_no_pause_or_no_speech_is_nan_and_motion_only_in_pauses_is_inf():
    active, fps = speech_then_pause()
    assert math.isnan(pause_motion_ratio(np.arange(70) * 0.25, np.ones(70, bool), fps))
    assert math.isnan(pause_motion_ratio(np.arange(70) * 0.25, np.zeros(70, bool), fps))
    assert math.isnan(pause_motion_ratio(np.zeros(70), active, fps))  # never moves: undefined
    aperture = np.zeros(70)
    aperture[25:45] = np.arange(20) * 0.1
    assert pause_motion_ratio(aperture, active, fps) == math.inf


def test_real_speech_has_no_pause_until_one_is_spliced_in():
    from lipdub.media.audio import load_audio

    speech = load_audio(shared_file("data/audio/english_male_1.wav"), sample_rate=SR)
    frames = int(len(speech) / SR * FPS)
    assert pauses(speech_activity(speech, SR, FPS, frames), FPS) == []
    spliced = np.concatenate([speech, silence(2.5), speech])
    gap_start, gap_stop = frames, frames + int(2.5 * FPS)
    found = pauses(speech_activity(spliced, SR, FPS, int(len(spliced) / SR * FPS)), FPS)
    assert len(found) == 1
    start, stop = found[0]
    assert gap_start < start < stop <= gap_stop and (stop - start) / FPS > 1.5
