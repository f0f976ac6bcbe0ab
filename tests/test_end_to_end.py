"""`lipdub sync` end to end on real clips from ../shared/data.

The generator here has random weights (see the `random_checkpoint` fixture): these tests check the
pipeline's promises (length, timing, audio, untouched pixels outside the face), not lip-sync quality.
"""

import subprocess
import sys
import wave

import numpy as np
import pytest

from tests.conftest import shared_file

pytestmark = pytest.mark.slow


def read_video(path):
    from lipdub.media.decode import iter_frames, probe_video

    return probe_video(path), [frame.image for frame in iter_frames(path)]


def psnr_outside(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> float:
    diff = a.astype(np.float64)[keep] - b.astype(np.float64)[keep]
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def outside_face(image: np.ndarray, margin: float = 0.35) -> np.ndarray:
    """Boolean mask of the pixels well away from the (largest) detected face."""
    from lipdub.face.detect import FaceDetector

    with FaceDetector(still_image=True) as detector:
        faces = detector.detect(image)
    assert faces, "the test clip should show a face"
    x1, y1, x2, y2 = faces[0].box
    w, h = x2 - x1, y2 - y1
    keep = np.ones(image.shape[:2], bool)
    keep[max(0, int(y1 - margin * h)) : int(y2 + margin * h), max(0, int(x1 - margin * w)) : int(x2 + margin * w)] = False
    return keep


def test_video_with_new_speech(tmp_path, random_checkpoint):
    from lipdub.media.audio import load_audio
    from lipdub.pipeline import sync

    face = shared_file("data/train/real/woman_flag.mp4")
    audio = shared_file("data/audio/english_male_1.wav")
    output = tmp_path / "dubbed.mp4"
    result = sync(face, audio, output, checkpoint=random_checkpoint)

    assert output.exists() and [p.name for p in tmp_path.iterdir()] == ["dubbed.mp4"]
    info, frames = read_video(output)
    source_info, source_frames = read_video(face)
    assert (info.width, info.height) == (source_info.width, source_info.height)
    assert info.fps == pytest.approx(source_info.fps, rel=1e-3)
    speech = load_audio(audio)
    audio_seconds = len(speech) / 16000
    assert abs(len(frames) - audio_seconds * info.fps) <= 1
    assert result.frames == len(frames)
    muxed = load_audio(output)
    assert abs(len(muxed) / 16000 - audio_seconds) <= 1 / info.fps
    assert result.frames_with_face >= 0.9 * result.frames
    assert result.lip_reading is None  # a generator redraws a box: no lip retest (`lipdub.face.lip_retest`)

    keep = outside_face(source_frames[0])
    for index in (0, len(source_frames) // 2, min(len(frames), len(source_frames)) - 1):
        assert psnr_outside(frames[index], source_frames[index], keep) >= 35.0


def test_photo_lasts_as_long_as_the_audio(tmp_path, random_checkpoint):
    from lipdub.pipeline import sync

    photo = shared_file("data/photos/full4.jpeg")
    audio = shared_file("data/audio/english_female_1.wav")
    result = sync(photo, audio, tmp_path / "photo.mp4", checkpoint=random_checkpoint, photo_fps=25)
    info, frames = read_video(tmp_path / "photo.mp4")
    assert info.fps == pytest.approx(25.0)
    assert len(frames) == result.frames == pytest.approx(5.0 * 25, abs=1)
    assert result.frames_with_face == result.frames


@pytest.mark.parametrize("mode, expected_seconds", [("bounce", 5.0), ("cut", 3.0), ("silence", 3.0)])
def test_length_modes_with_a_short_video(tmp_path, random_checkpoint, mode, expected_seconds):
    from lipdub.pipeline import sync

    face = shared_file("data/train/real/grid_man_glasses.mpg")  # 3.0 s at 25 fps
    audio = shared_file("data/audio/english_female_1.wav")  # 5.0 s
    result = sync(face, audio, tmp_path / "out.mp4", checkpoint=random_checkpoint, length_mode=mode)
    _, frames = read_video(tmp_path / "out.mp4")
    assert len(frames) == result.frames
    assert abs(len(frames) - expected_seconds * 25) <= 1


def test_silent_audio_warns_and_still_writes(tmp_path, random_checkpoint):
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(np.zeros(16000 * 2, np.int16).tobytes())
    face = shared_file("data/train/real/grid_man_denim.mpg")
    result = subprocess.run(
        [sys.executable, "-m", "lipdub", "sync", str(face), str(silent), "-o", str(tmp_path / "out.mp4"),
         "--checkpoint", str(random_checkpoint)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "silent" in result.stderr
    _, frames = read_video(tmp_path / "out.mp4")
    assert abs(len(frames) - 50) <= 1


def test_demo_runs_on_the_bundled_model(tmp_path):
    from lipdub.models.registry import bundled_models

    if not bundled_models():
        pytest.skip("no bundled model in this install")
    output = tmp_path / "demo.mp4"
    result = subprocess.run([sys.executable, "-m", "lipdub", "demo", "-o", str(output), "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    info, frames = read_video(output)
    assert info.fps == pytest.approx(25.0)
    assert abs(len(frames) - 7.96 * 25) <= 1  # the bundled speech lasts 7.96 s


def test_reference_first_frame_option(tmp_path, random_checkpoint):
    from lipdub.pipeline import sync

    face = shared_file("data/train/real/grid_man_glasses.mpg")
    result = sync(face, face, tmp_path / "out.mp4", checkpoint=random_checkpoint, reference="first", length_mode="cut")
    _, frames = read_video(tmp_path / "out.mp4")
    assert len(frames) == result.frames
    assert abs(result.frames - 75) <= 1  # 3 s at 25 fps; "cut" stops at the shorter of video and audio


@pytest.mark.parametrize("engine", ["motion", "generator"])
def test_personalize_then_sync_with_the_profile(tmp_path, engine):
    from lipdub.models.registry import bundled_models

    if not bundled_models():
        pytest.skip("no bundled model to personalise")
    clip = shared_file("data/train/real/grid_man_denim.mpg")
    profile = tmp_path / "profile"
    made = subprocess.run([sys.executable, "-m", "lipdub", "personalize", str(clip), "-o", str(profile), "--steps", "3",
                           "--engine", engine], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert (profile / "profile.json").is_file() and (profile / "report.json").is_file()
    assert (profile / ("motion.pt" if engine == "motion" else "generator.pt")).is_file()
    if engine == "motion":  # with the speaker's mouths, from the 70 % the model trained on
        import json

        bank = json.loads((profile / "profile.json").read_text())["mouth_bank"]
        assert 0 < bank["entries"] <= 96 and bank["bytes"] == (profile / bank["file"]).stat().st_size
        assert bank["source_frames"] == [0, json.loads((profile / "report.json").read_text())["frames_trained"]]
    again = subprocess.run([sys.executable, "-m", "lipdub", "personalize", str(clip), "-o", str(profile), "--steps", "3"],
                           capture_output=True, text=True)
    assert again.returncode != 0 and "already exists" in again.stderr
    output = tmp_path / "dubbed.mp4"
    synced = subprocess.run([sys.executable, "-m", "lipdub", "sync", str(clip), str(clip), "-o", str(output),
                             "--profile", str(profile), "--quiet"], capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr
    _, frames = read_video(output)
    assert abs(len(frames) - 75) <= 1
    # A profile of one engine is refused by the other, in one line.
    other = "generator" if engine == "motion" else "motion"
    refused = subprocess.run([sys.executable, "-m", "lipdub", "sync", str(clip), str(clip), "-o", str(tmp_path / "x.mp4"),
                              "--profile", str(profile), "--engine", other, "--quiet"], capture_output=True, text=True)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
