"""Audio loading: formats, resampling, downmix, timing against the video, errors."""

from fractions import Fraction

import av
import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.media.audio import align_start, audio_duration, is_silent, load_audio, rms_db

# ------------------------------------------------------------------------------------------------
# Pure helpers


def test_rms_db_from_formula():
    assert rms_db(np.ones(100, np.float32)) == pytest.approx(0.0)
    assert rms_db(np.full(100, 0.1, np.float32)) == pytest.approx(-20.0)
    # A full-scale sine has RMS 1/sqrt(2): -3.01 dB.
    sine = np.sin(2 * np.pi * np.arange(16000) / 16).astype(np.float32)
    assert rms_db(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert rms_db(np.zeros(10)) == -np.inf and rms_db(np.zeros(0)) == -np.inf


def test_is_silent():
    assert is_silent(np.zeros(16000, np.float32))
    assert is_silent(np.full(16000, 0.0005, np.float32))  # -66 dB
    assert not is_silent(np.full(16000, 0.002, np.float32))  # -54 dB
    assert is_silent(np.full(16000, 0.002, np.float32), threshold_db=-50.0)
    click = np.zeros(160000, np.float32)
    click[0] = 0.1  # one sample in 10 s: RMS 0.1 / 400 = -72 dB
    assert is_silent(click)


def test_audio_duration():
    assert audio_duration(np.zeros(8000)) == 0.5
    assert audio_duration(np.zeros(44100), 44100) == 1.0


def test_align_start():
    x = np.array([1, 2, 3], np.float32)
    assert align_start(x, 2).tolist() == [0, 0, 1, 2, 3]
    assert align_start(x, -1).tolist() == [2, 3]
    assert align_start(x, 0) is x


# ------------------------------------------------------------------------------------------------
# Synthesised files


def write_audio(path, channels: np.ndarray, rate: int, codec: str = "pcm_s16le", start_pts: int = 0):
    """Write planar float ``channels`` (C x N) with the given codec; pts start at start_pts."""
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        step = 1024
        for i in range(0, channels.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(channels[:, i : i + step], np.float32), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start_pts + i, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_stereo_44k_wav_is_downmixed_by_mean_and_resampled(tmp_path):
    rate, n = 44100, 44100 * 2
    left = np.full(n, 0.5, np.float32)
    right = np.full(n, 0.1, np.float32)
    path = write_audio(tmp_path / "st.wav", np.stack([left, right]), rate)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == 32000  # 2 s at 16 kHz, nothing lost in the resampler's tail
    assert np.median(samples) == pytest.approx(0.3, abs=1e-3)  # mean of channels


def test_resampling_keeps_a_click_in_place(tmp_path):
    rate = 44100
    x = np.zeros((1, rate), np.float32)
    x[0, 22050:22050 + 44] = 0.9  # 1 ms click at 0.5 s
    samples = load_audio(write_audio(tmp_path / "click.wav", x, rate))
    onset = int(np.argmax(np.abs(samples) > 0.45))
    assert abs(onset - 8000) <= 2


def test_audio_starting_after_the_video_is_padded(tmp_path):
    # An MKV whose audio stream starts 0.5 s after its video stream: sample 0 must be the video
    # start, so the first 0.5 s are silence and the click (0.25 s into the audio) is at 0.75 s.
    path = tmp_path / "late.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("flac", rate=16000, layout="mono")
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        signal = np.zeros(8000, np.float32)
        signal[4000:4016] = 0.8
        for i in range(0, 8000, 1000):
            frame = av.AudioFrame.from_ndarray(signal[None, i : i + 1000].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, 8000 + i, Fraction(1, 16000)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    samples = load_audio(path)
    assert np.all(samples[:7990] == 0)
    assert int(np.argmax(np.abs(samples) > 0.4)) == pytest.approx(12000, abs=2)
    assert len(samples) == pytest.approx(16000, abs=2)


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        container.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(video.encode(None))
    with pytest.raises(LipdubError, match="silent.mp4: has no audio stream"):
        load_audio(path)


def test_bad_inputs(tmp_path):
    with pytest.raises(LipdubError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(LipdubError, match="directory"):
        load_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(LipdubError, match="empty"):
        load_audio(empty)
    text = tmp_path / "speech.mp3"
    text.write_text("not audio at all\n" * 100)
    with pytest.raises(LipdubError, match="speech.mp3"):
        load_audio(text)


def test_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    with av.open(str(path), "w") as container:
        container.add_stream("pcm_s16le", rate=16000, layout="mono")
    with pytest.raises(LipdubError, match="zero.wav"):
        load_audio(path)


# ------------------------------------------------------------------------------------------------
# Real files (durations from manifest.tsv, 0.1 s precision)


@pytest.mark.parametrize(
    "name, duration",
    [
        ("audio/english_male_1.wav", 5.0),  # 44.1 kHz stereo wav
        ("audio/short_clip.mp3", 4.9),  # 44.1 kHz mp3
        ("audio/LaoTzu2.m4a", 6.3),  # 44.1 kHz stereo AAC
        ("audio/english_teaser_45s.mp3", 45.5),  # 24 kHz mp3
        ("train/real/woman_flag.mp4", 5.0),  # AAC track of a video
        ("train/real/woman_lecturer_3.mkv", 7.0),  # FLAC track of a video (the video runs to 7.1)
        ("train/real/grid_man_denim.mpg", 3.0),  # MPEG audio in MPEG-PS
    ],
)
def test_real_files(shared, name, duration):
    samples = load_audio(shared(f"data/{name}"))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert audio_duration(samples) == pytest.approx(duration, abs=0.06)
    assert np.abs(samples).max() <= 1.0
    assert not is_silent(samples)


def test_real_file_at_another_rate(shared):
    samples = load_audio(shared("data/audio/english_male_1.wav"), sample_rate=22050)
    assert audio_duration(samples, 22050) == pytest.approx(5.0, abs=0.06)


# ------------------------------------------------------------------------------------------------
# Streaming


def test_iter_audio_streams_in_small_pieces_with_flat_memory(tmp_path):
    # 60 s of 44.1 kHz stereo read at 48 kHz: load_audio holds 11 MiB, the stream a frame or so.
    import tracemalloc
    import wave

    from lipdub.media.audio import iter_audio

    rate, seconds = 44100, 60
    t = np.arange(rate * seconds) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.repeat(tone, 2).tobytes())
    del t, tone
    whole = load_audio(path, 48000)
    tracemalloc.start()
    total, largest = 0, 0
    for piece in iter_audio(path, 48000):
        assert piece.dtype == np.float32
        total += piece.size
        largest = max(largest, piece.size)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == whole.size == 48000 * seconds
    assert largest <= 48000  # at most a second at once (in practice one decoded frame)
    assert peak < whole.nbytes / 20


def test_raw_pcm_is_passed_on_as_it_arrives_odd_bytes_kept_for_the_next_read():
    from lipdub.media.audio import iter_raw_pcm

    samples = np.array([0, 16384, -32768, 32767, -1], "<i2").tobytes()
    arrivals = [samples[:3], samples[3:4], samples[4:], b""]  # a pipe hands over what it has
    pieces = list(iter_raw_pcm(lambda n: arrivals.pop(0), chunk_samples=640))
    assert [len(piece) for piece in pieces] == [1, 1, 3]
    np.testing.assert_allclose(np.concatenate(pieces), [0.0, 0.5, -1.0, 32767 / 32768, -1 / 32768])


def test_rechunk_gives_equal_pieces_and_every_sample():
    from lipdub.media.audio import rechunk

    pieces = [np.arange(0, 5), np.arange(5, 6), np.arange(6, 17)]
    out = list(rechunk(iter(pieces), 4))
    assert [len(piece) for piece in out] == [4, 4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate(out), np.arange(17))
