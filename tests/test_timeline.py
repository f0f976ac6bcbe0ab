import numpy as np
import pytest

from lipdub.timeline import LengthMode, fit_audio, fit_audio_stream, frames_for_duration, plan_timeline, source_index


def indices(n_out, n_src, mode):
    return [source_index(i, n_src, mode) for i in range(n_out)]


def test_bounce_is_ping_pong():
    assert indices(12, 4, LengthMode.bounce) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]


def test_loop_restarts():
    assert indices(9, 4, LengthMode.loop) == [0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_hold_freezes_last_frame():
    assert indices(6, 3, LengthMode.hold) == [0, 1, 2, 2, 2, 2]


def test_single_frame_source_is_held_in_every_mode():
    for mode in LengthMode:
        assert indices(5, 1, mode) == [0] * 5


def test_inside_the_video_every_mode_is_identity():
    for mode in LengthMode:
        assert indices(7, 7, mode) == list(range(7))


@pytest.mark.parametrize(
    "mode, expected",
    [
        (LengthMode.bounce, 100),
        (LengthMode.loop, 100),
        (LengthMode.hold, 100),
        (LengthMode.cut, 40),
        (LengthMode.silence, 40),
    ],
)
def test_output_length_short_video(mode, expected):
    assert plan_timeline(40, 100, mode).output_frames == expected


@pytest.mark.parametrize(
    "mode, expected",
    [(LengthMode.bounce, 30), (LengthMode.cut, 30), (LengthMode.silence, 90)],
)
def test_output_length_long_video(mode, expected):
    timeline = plan_timeline(90, 30, mode)
    assert timeline.output_frames == expected
    assert not timeline.extends_video


def test_photo_lasts_as_long_as_the_audio():
    timeline = plan_timeline(1, 75, LengthMode.cut, is_photo=True)
    assert timeline.output_frames == 75
    assert timeline.source_index(74) == 0


def test_frames_for_duration():
    assert frames_for_duration(2.0, 25) == 50
    assert frames_for_duration(1.0, 29.97) == 30
    assert frames_for_duration(0.001, 25) == 1


def test_fit_audio_pads_with_silence_and_trims():
    samples = np.ones(1000, dtype=np.float32)
    padded = fit_audio(samples, 16000, 50, 25.0)  # 2 s
    assert len(padded) == 32000
    assert padded[:1000].sum() == 1000 and not padded[1000:].any()
    trimmed = fit_audio(samples, 16000, 1, 25.0)  # 40 ms
    assert len(trimmed) == 640


@pytest.mark.parametrize("frames", [1, 25, 50, 80])
def test_fit_audio_stream_matches_fit_audio(frames):
    # 1.5 s in uneven pieces, fitted to 40 ms (cut mid-piece), 1 s, 2 s and 3.2 s (padded).
    samples = np.arange(1, 24001, dtype=np.float32)
    cuts = [0, 7, 1000, 1001, 16000, 24000]
    pieces = [samples[a:b] for a, b in zip(cuts, cuts[1:])]
    streamed = list(fit_audio_stream(iter(pieces), 16000, frames, 25.0, pad_piece=5000))
    assert np.array_equal(np.concatenate(streamed), fit_audio(samples, 16000, frames, 25.0))
    assert max(len(p) for p in streamed) <= 15000  # never more than one source piece at once


def test_fit_audio_stream_stops_reading_once_long_enough():
    read = []

    def source():
        for i in range(100):
            read.append(i)
            yield np.ones(1600, np.float32)

    out = np.concatenate(list(fit_audio_stream(source(), 16000, 1, 25.0)))  # 640 samples
    assert len(out) == 640 and read == [0]
