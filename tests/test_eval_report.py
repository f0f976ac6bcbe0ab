"""`lipdub eval` on constructed cases whose answers are known, with the bundled judge."""

import json
import subprocess
import sys
import wave

import cv2
import numpy as np
import pytest

from tests.conftest import shared_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def judge():
    from lipdub.eval.judge import bundled_judge_path

    if bundled_judge_path() is None:
        pytest.skip("no bundled SyncNet judge in this install")
    from lipdub.eval.judge import load_judge

    return load_judge()


def rewrite(source, path, transform=None, frames=None):
    """Re-encode ``source`` (video only), optionally transforming each frame."""
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.media.encode import VideoWriter

    info = probe_video(source)
    with VideoWriter(path, info.width, info.height, info.fps) as writer:
        for index, frame in enumerate(iter_frames(source)):
            if frames is not None and index >= frames:
                break
            writer.write(transform(index, frame.image) if transform else frame.image)
    return path


def write_wav(path, samples, rate=16000):
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_real_clip_against_itself(tmp_path, judge):
    from lipdub.eval.report import evaluate

    clip = shared_file("data/train/real/man_us_president_2.mkv")
    report = evaluate(clip, tmp_path / "report", reference=clip)
    assert abs(report["sync"]["av_offset_frames"]) <= 1
    assert report["mouth"]["lmd"] == pytest.approx(0.0, abs=1e-9)
    assert report["mouth"]["aperture_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert report["mouth"]["aperture_lag_frames"] == 0
    assert report["image"]["psnr_outside_mouth_db"] == float("inf")
    for name in ("report.json", "report.md", "sync_offsets.png", "mouth_aperture.png", "mouth_strip.png"):
        assert (tmp_path / "report" / name).is_file()
    assert report["sync"]["judge"]["source"].startswith("bundled")


@pytest.mark.parametrize("delay_frames", [4, -3])
def test_delayed_audio_is_found_by_the_judge(tmp_path, judge, delay_frames):
    from lipdub.eval.report import evaluate
    from lipdub.media.audio import load_audio
    from lipdub.media.decode import probe_video

    clip = shared_file("data/train/real/man_us_president_2.mkv")
    fps = probe_video(clip).fps
    speech = load_audio(clip)
    shift = int(round(abs(delay_frames) / fps * 16000))
    if delay_frames > 0:  # audio later than the picture
        moved = np.concatenate([np.zeros(shift, np.float32), speech])[: len(speech)]
    else:  # audio earlier than the picture
        moved = np.concatenate([speech[shift:], np.zeros(shift, np.float32)])
    audio = write_wav(tmp_path / "moved.wav", moved)
    report = evaluate(clip, tmp_path / "report", audio=audio)
    # syncnet_python's sign: a positive offset means the audio runs ahead of the video.
    assert abs(report["sync"]["av_offset_frames"] - (-delay_frames)) <= 1


def test_frozen_mouth_has_no_aperture_correlation(tmp_path, judge):
    from lipdub.eval.report import evaluate

    clip = shared_file("data/train/real/grid_man_grey_suit_1.mpg")
    first = {}

    def freeze(index, image):
        first.setdefault("image", image)
        return first["image"]

    frozen = rewrite(clip, tmp_path / "frozen.mp4", freeze)
    report = evaluate(frozen, tmp_path / "report", audio=clip, reference=clip)
    mouth = report["mouth"]
    # The frozen mouth's opening is flat (tracker noise only)...
    assert np.nanstd(mouth["aperture_generated"]) < 0.01 * np.nanstd(mouth["aperture_reference"])
    # ...so its r with the real mouth is the correlation of noise: over 75 frames |r| stays within
    # ~3 standard errors (1 / sqrt(75) = 0.115); seen -0.13 and ~0 with two encoders' noise.
    assert abs(mouth["aperture_correlation"]) < 0.35


def test_blurred_mouth_is_less_sharp(tmp_path, judge):
    from lipdub.eval.report import evaluate, mouth_box
    from lipdub.face.detect import FaceDetector

    clip = shared_file("data/train/real/grid_man_grey_suit_1.mpg")
    detector = FaceDetector(still_image=True)

    def blur_mouth(index, image):
        faces = detector.detect(image)
        if not faces:
            return image
        x1, y1, x2, y2 = mouth_box(faces[0].landmarks, image.shape[:2])
        out = image.copy()
        out[y1:y2, x1:x2] = cv2.GaussianBlur(image[y1:y2, x1:x2], (0, 0), 3)
        return out

    blurred = rewrite(clip, tmp_path / "blurred.mp4", blur_mouth)
    detector.close()
    report = evaluate(blurred, tmp_path / "report", audio=clip, reference=clip)
    assert report["image"]["mouth_sharpness_ratio"] < 0.8


def test_eval_cli_writes_a_report(tmp_path, judge):
    clip = shared_file("data/train/real/grid_man_glasses.mpg")
    result = subprocess.run([sys.executable, "-m", "lipdub", "eval", str(clip), "-o", str(tmp_path / "r"), "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "LSE-D" in result.stdout
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(data["sync"]["mean_distances"]) == 31
