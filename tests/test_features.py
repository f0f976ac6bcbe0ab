"""Audio features against their formulas and hand-computed values."""

import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.media.features import (
    MelConfig,
    amplitude_to_db,
    hann_window,
    hz_to_mel,
    mel_band_edges,
    mel_filterbank,
    mel_to_hz,
    mel_window_start,
    mel_windows,
    melspectrogram,
    normalize_db,
    preemphasis,
    stft_magnitude,
)

CFG = MelConfig()


def test_config_defaults_match_wav2lip_hparams():
    assert CFG.frames_per_second == 80.0
    assert (CFG.n_fft, CFG.hop_length, CFG.win_length, CFG.n_mels) == (800, 200, 800, 80)
    assert (CFG.fmin, CFG.fmax, CFG.window_frames) == (55.0, 7600.0, 16)


# --- mel scale -----------------------------------------------------------------------------------


def test_slaney_mel_scale_known_points():
    # Linear part: 200/3 Hz per mel.
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    assert hz_to_mel(0.0) == pytest.approx(0.0)
    # Log part: 27 mel per factor 6.4 -> 6400 Hz is 15 + 27 = 42 mel.
    assert hz_to_mel(6400.0) == pytest.approx(42.0)
    assert hz_to_mel(2000.0) == pytest.approx(15.0 + 27.0 * np.log(2.0) / np.log(6.4))
    assert mel_to_hz(42.0) == pytest.approx(6400.0)
    assert mel_to_hz(3.0) == pytest.approx(200.0)
    hz = np.array([55.0, 440.0, 999.0, 1000.0, 1001.0, 3000.0, 7600.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12)


def test_filterbank_peaks_at_mel_spaced_centres():
    fb = mel_filterbank(CFG)
    assert fb.shape == (80, 401)
    edges = mel_band_edges(CFG)
    assert edges[0] == pytest.approx(55.0) and edges[-1] == pytest.approx(7600.0)
    # Edges are equally spaced in mel.
    np.testing.assert_allclose(np.diff(hz_to_mel(edges)), np.diff(hz_to_mel(edges))[0], rtol=1e-9)
    bin_hz = 20.0  # 16000 / 800
    for band in (0, 10, 40, 79):
        peak_bin = int(np.argmax(fb[band]))
        assert abs(peak_bin * bin_hz - edges[band + 1]) <= bin_hz / 2 + 1e-9
        # Zero at and outside the triangle's edges.
        outside = (np.arange(401) * bin_hz <= edges[band]) | (np.arange(401) * bin_hz >= edges[band + 2])
        assert np.all(fb[band][outside] == 0.0)


def test_filterbank_weight_by_formula_at_one_bin():
    fb = mel_filterbank(CFG)
    edges = mel_band_edges(CFG)
    band, f = 40, None
    # The first FFT bin above this band's lower edge, on the rising slope.
    k = int(np.ceil(edges[band] / 20.0))
    f = 20.0 * k
    assert f < edges[band + 1]
    expected = (f - edges[band]) / (edges[band + 1] - edges[band]) * 2.0 / (edges[band + 2] - edges[band])
    assert fb[band, k] == pytest.approx(expected, rel=1e-12)


def test_slaney_area_normalisation_gives_equal_areas():
    # Triangle area = 0.5 * base * height; the normalised height 2/base makes every area 1 (in Hz).
    fb = mel_filterbank(CFG)
    edges = mel_band_edges(CFG)
    heights = 2.0 / (edges[2:] - edges[:-2])
    # Sampled peaks never exceed the analytic peak height and come close for wide bands.
    assert np.all(fb.max(axis=1) <= heights + 1e-12)
    assert fb[79].max() == pytest.approx(heights[79], rel=0.05)


# --- the spectrogram steps -----------------------------------------------------------------------


def test_preemphasis_by_hand():
    np.testing.assert_allclose(preemphasis(np.array([1.0, 2.0, 0.0, -1.0]), 0.97), [1.0, 1.03, -1.94, -1.0])


def test_hann_window_is_periodic():
    w = hann_window(4)
    np.testing.assert_allclose(w, [0.0, 0.5, 1.0, 0.5], atol=1e-15)


def test_amplitude_to_db_and_normalisation_by_hand():
    a = np.array([1.0, 0.1, 1e-5, 1e-7, 0.0, 10.0])
    # 20 log10(a) - 20, floored at 1e-5 -> -100 - 20.
    np.testing.assert_allclose(amplitude_to_db(a), [-20.0, -40.0, -120.0, -120.0, -120.0, 0.0])
    # 8 * (S + 100) / 100 - 4, clipped to [-4, 4].
    db = np.array([-100.0, -50.0, 0.0, -20.0, -120.0, 10.0, -75.0])
    np.testing.assert_allclose(normalize_db(db), [-4.0, 0.0, 4.0, 2.4, -4.0, 4.0, -2.0])


def test_frame_count_is_one_plus_len_over_hop():
    rng = np.random.default_rng(0)
    for n in (401, 799, 800, 16000, 16199, 16200, 33333):
        x = rng.uniform(-0.5, 0.5, n)
        assert melspectrogram(x).shape == (80, 1 + n // 200)
        assert stft_magnitude(x).shape == (401, 1 + n // 200)


def test_stft_column_is_centred_and_reflect_padded():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3000)
    mag = stft_magnitude(x)
    # Column 5 is centred on sample 1000: samples 600..1399, Hann-windowed.
    np.testing.assert_allclose(mag[:, 5], np.abs(np.fft.rfft(x[600:1400] * hann_window(800))), rtol=1e-10)
    # Column 0 is centred on sample 0: left half is the reflection x[400], ..., x[1].
    frame0 = np.concatenate([x[400:0:-1], x[:400]])
    np.testing.assert_allclose(mag[:, 0], np.abs(np.fft.rfft(frame0 * hann_window(800))), rtol=1e-10)


def test_silence_is_minus_four_everywhere():
    mel = melspectrogram(np.zeros(8000))
    assert mel.dtype == np.float32
    assert np.all(mel == -4.0)


def test_sine_1khz_loudest_band_is_nearest_to_1khz():
    t = np.arange(16000) / 16000.0
    mel = melspectrogram(0.5 * np.sin(2 * np.pi * 1000.0 * t))
    centres = mel_band_edges(CFG)[1:-1]
    expected_band = int(np.argmin(np.abs(centres - 1000.0)))
    loudest = np.argmax(mel[:, 10:-10].mean(axis=1))
    assert loudest == expected_band
    # A loud tone is far above the silence floor in its band, and the whole range is respected.
    assert mel[expected_band, 40] > 1.0
    assert mel.min() >= -4.0 and mel.max() <= 4.0


def test_empty_audio_is_a_user_error():
    with pytest.raises(LipdubError):
        melspectrogram(np.zeros(0))


# --- windows -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fps, frame, expected",
    [
        (25.0, 0, 0),
        (25.0, 1, 3),  # 3.2
        (25.0, 5, 16),  # exactly 16
        (25.0, 7, 22),  # 22.4
        (30.0, 1, 2),  # 2.667
        (30.0, 3, 8),  # exactly 8
        (30.0, 10, 26),  # 26.667
        (60.0, 1, 1),  # 1.333
        (60.0, 3, 4),  # exactly 4
        (60.0, 100, 133),  # 133.33
        (29.97, 1, 2),  # 2.669
        (29.97, 30, 80),  # 80.08
        (29.97, 2997, 8000),  # exactly 8000 despite float rounding of 29.97
        (30000 / 1001, 375, 1001),  # exactly 1001 at NTSC 29.97
        (23.976, 1, 3),  # 3.3367
        (23.976, 24, 80),  # 80.08
        (24000 / 1001, 24, 80),  # 80.08
        (23.976, 100, 333),  # 333.67
    ],
)
def test_window_start_by_hand(fps, frame, expected):
    assert mel_window_start(frame, fps) == expected


def test_window_start_rejects_bad_input():
    with pytest.raises(ValueError):
        mel_window_start(-1, 25.0)
    with pytest.raises(ValueError):
        mel_window_start(0, 0.0)


def test_windows_slice_and_edges():
    t_cols = 40
    mel = np.tile(np.arange(t_cols, dtype=np.float32), (80, 1))  # column j holds the value j
    wins = mel_windows(mel, [0, 1, 7, 8, 100], fps=25.0)
    assert wins.shape == (5, 80, 16) and wins.dtype == np.float32
    assert wins[0, 0, 0] == 0 and wins[0, 0, -1] == 15
    assert wins[1, 0, 0] == 3  # int(3.2)
    assert wins[2, 3, 0] == 22  # int(22.4) = 22 <= 40 - 16 = 24
    # Frame 8 starts at 25.6 -> 25 > 24: takes the last 16 columns, like Wav2Lip's inference.
    np.testing.assert_array_equal(wins[3, 0], np.arange(24, 40))
    np.testing.assert_array_equal(wins[4, 0], np.arange(24, 40))


def test_short_spectrogram_is_padded_with_silence():
    mel = np.zeros((80, 10), dtype=np.float32)
    wins = mel_windows(mel, np.array([0, 3]), fps=25.0)
    assert wins.shape == (2, 80, 16)
    assert np.all(wins[:, :, :10] == 0.0) and np.all(wins[:, :, 10:] == -4.0)


@pytest.mark.parametrize("n", [300, 401, 16000, 4096 * 200 + 7])
def test_blockwise_melspectrogram_equals_the_whole_signal_recipe(n):
    # The spectrogram is computed block by block (flat memory for long speech); it must equal the
    # recipe applied to the whole signal at once: pre-emphasis, reflect pad, STFT, mel, dB.
    from lipdub.media.features import (
        amplitude_to_db, hann_window, mel_filterbank, melspectrogram, normalize_db, preemphasis,
    )

    config = MelConfig()
    samples = (0.3 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    padded = np.pad(preemphasis(samples, config.preemphasis), config.n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[:: config.hop_length][: 1 + n // config.hop_length]
    magnitude = np.abs(np.fft.rfft(frames * hann_window(config.n_fft), axis=1)).T
    expected = normalize_db(amplitude_to_db(mel_filterbank(config) @ magnitude, config), config).astype(np.float32)
    np.testing.assert_allclose(melspectrogram(samples, config), expected, rtol=0, atol=1e-5)
