"""Streaming speech motion (`lipdub.motion.streaming`): the offline prediction, a piece at a time."""

import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.media.audio import load_audio
from lipdub.motion.features import band_levels, normalise_mel
from lipdub.motion.predictor import MEL, SpeechFeatures, frame_loudness, load_motion_model
from lipdub.motion.shape import smoothing_radius
from lipdub.motion.streaming import CONTEXT_FRAMES, MIN_LOUD_LEVEL, SHAPE_STEP, StreamingMotion, loud_level
from lipdub.timeline import frames_for_duration

SAMPLE_SPEECH = "lipdub/assets/sample_speech.wav"
FPS = 25.0


@pytest.fixture(scope="module")
def causal():
    return load_motion_model("lipdub-motion-causal")


@pytest.fixture(scope="module")
def speech():
    return load_audio(SAMPLE_SPEECH, sample_rate=16000)[: 16000 * 5]


def stream(motion: StreamingMotion, samples: np.ndarray, sizes: list[int]) -> np.ndarray:
    pieces, start, k = [], 0, 0
    while start < len(samples):
        size = sizes[k % len(sizes)]
        pieces.append(motion.push(samples[start:start + size]))
        start, k = start + size, k + 1
    pieces.append(motion.finish())
    return np.concatenate(pieces)


@pytest.mark.parametrize("sizes", [[640], [7919], [160, 3000, 17, 1]])
def test_streamed_motion_equals_the_offline_prediction_given_the_tracks_levels(causal, speech, sizes):
    frames = frames_for_duration(len(speech) / MEL.sample_rate, FPS)
    offline, _ = causal.predict_with_gate(speech, frames, FPS)
    raw = SpeechFeatures(speech).raw_mel
    peak = float(np.percentile(frame_loudness(raw, frames, FPS), 90))
    streamed = stream(StreamingMotion(causal, FPS, band_levels=band_levels(raw), loud_level=peak), speech, sizes)
    assert streamed.shape == offline.shape
    assert np.abs(offline).max() > 0.1  # the sample speaks: the comparison is not of zeros
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_running_levels_stay_close_to_the_offline_prediction(causal, speech):
    frames = frames_for_duration(len(speech) / MEL.sample_rate, FPS)
    offline, _ = causal.predict_with_gate(speech, frames, FPS)
    streamed = stream(StreamingMotion(causal, FPS), speech, [640])
    r = np.corrcoef(streamed.ravel(), offline.ravel())[0, 1]
    assert r > 0.9, r  # measured 0.96 on the bundled sample


def test_latency_is_the_lookahead_half_an_stft_window_and_the_smoothing(causal):
    motion = StreamingMotion(causal, FPS)
    assert smoothing_radius(causal.smoothing) == 3
    # 8 columns of 12.5 ms, 400 samples at 16 kHz, 3 frames at 25 fps.
    assert motion.latency_seconds == pytest.approx(0.1 + 0.025 + 0.12)


def test_nothing_is_final_before_its_lookahead_is_heard(causal, speech):
    motion = StreamingMotion(causal, FPS)
    # Frame 0 needs column round(3 * 80 / 25) + 8 = 18 (its smoothing reads frame 3), heard
    # once sample 18 * 200 + 400 = 4000 has arrived.
    assert len(motion.push(speech[:3999])) == 0
    assert len(motion.push(speech[3999:4000])) == 1


def test_silence_gives_no_motion_and_every_frame(causal):
    motion = StreamingMotion(causal, FPS)
    out = stream(motion, np.zeros(16000 * 2, np.float32), [640])
    assert out.shape == (50, *out.shape[1:])
    assert np.abs(out).max() == 0.0
    with pytest.raises(LipdubError):
        motion.push(np.zeros(10, np.float32))


def test_memory_stays_bounded_on_a_long_stream(causal, speech):
    motion = StreamingMotion(causal, FPS)
    for _ in range(6):
        for start in range(0, len(speech), 3200):
            motion.push(speech[start:start + 3200])
    # What the next frames' windows read: the context, one shape step, the window and the look-ahead.
    assert len(motion._samples) < 16000 * ((CONTEXT_FRAMES + SHAPE_STEP + 6) / FPS + 0.6 + 0.25)
    assert motion.frames_done > 700


def test_an_offline_model_cannot_stream():
    with pytest.raises(LipdubError, match="causal"):
        StreamingMotion(load_motion_model("lipdub-motion"), FPS)


def test_band_levels_are_what_normalise_mel_subtracts(speech):
    raw = SpeechFeatures(speech).raw_mel
    np.testing.assert_allclose(raw - band_levels(raw), normalise_mel(raw), atol=1e-6)


def test_loud_level_is_the_90th_percentile_floored():
    assert loud_level(np.arange(11, dtype=float) / 10.0) == pytest.approx(0.9)
    assert loud_level(np.full(20, -3.5)) == MIN_LOUD_LEVEL
    assert loud_level(np.zeros(0)) == MIN_LOUD_LEVEL


@pytest.mark.parametrize("clip", ["grid_man_denim_1.mpg", "woman_flag.mp4"])
def test_a_stream_follows_a_validation_speakers_real_mouth_about_as_well_as_a_dub(causal, clip):
    """Short clips starting in silence are where running levels alone fell short (0.42 against
    0.757 offline on grid_man_denim_1); the starting levels bring the stream back level."""
    from tests.conftest import shared_file

    from lipdub.eval.mouth import aperture_correlation, mouth_aperture
    from lipdub.eval.report import track_video
    from lipdub.media.decode import probe_video
    from lipdub.motion.shape import LOWER_INNER, UPPER_INNER

    path = shared_file(f"data/train/real/{clip}")
    fps = probe_video(path).fps
    samples = load_audio(path)
    real = mouth_aperture(track_video(path).landmark_array())
    frames = frames_for_duration(len(samples) / 16000, fps)
    offline, _ = causal.predict_with_gate(samples, frames, fps)
    streamed = stream(StreamingMotion(causal, fps), samples, [640])

    def r(motion):
        opening = motion[:, LOWER_INNER, 1] - motion[:, UPPER_INNER, 1]
        n = min(len(real), len(opening))
        return aperture_correlation(opening[:n], real[:n], max_lag=0).r

    assert r(streamed) > r(offline) - 0.05, (r(streamed), r(offline))  # measured 0.728 / 0.757, 0.402 / 0.445
