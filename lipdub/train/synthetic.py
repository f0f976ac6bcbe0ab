"""A tiny synthetic dataset in the lipdub dataset format, for tests and smoke runs of training.

Each clip is a cartoon face whose mouth opening follows the loudness envelope of its noise
"speech" at the frame's time: audio and mouth are causally linked, so a sync expert can learn
the pairing and offset detection has a right answer. Nothing here is realistic; it exercises
the mechanics (decoding, windows, losses, resume) in seconds.
"""

from __future__ import annotations

import csv
import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SyntheticClipSpec:
    clip_id: str
    speaker: str
    split: str
    frames: int = 100
    fps: float = 25.0
    invalid_frames: tuple[int, ...] = ()
    kind: str = "real"


def envelope(frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Mouth opening / loudness per frame in [0, 1]: smoothed random syllables (~4 per second)."""
    raw = rng.random(frames + 8)
    raw = (raw > 0.5).astype(np.float64) * rng.uniform(0.5, 1.0, size=raw.shape)
    kernel = np.array([0.25, 0.5, 0.25])
    return np.convolve(raw, kernel, mode="same")[4 : 4 + frames].clip(0.0, 1.0)


def draw_face(opening: float, tint: np.ndarray, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A 96 x 96 RGB uint8 cartoon face with a mouth opened by ``opening`` in [0, 1]."""
    import cv2

    img = np.full((size, size, 3), 40, np.uint8)
    cv2.ellipse(img, (48, 50), (36, 44), 0, 0, 360, tuple(int(c) for c in tint), -1)
    for x in (34, 62):
        cv2.circle(img, (x, 36), 5, (30, 30, 30), -1)
    height = int(2 + 14 * opening)
    cv2.ellipse(img, (48, 72), (14, height), 0, 0, 360, (60, 10, 20), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    import fractions

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "14"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_wav(path: Path, samples: np.ndarray) -> None:
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(data.tobytes())


def speech_like(env: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise whose amplitude follows the per-frame envelope."""
    n = int(round(len(env) / fps * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    per_sample = env[np.minimum((t * fps).astype(int), len(env) - 1)]
    tone = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    return 0.5 * per_sample * (0.6 * tone + 0.4 * rng.normal(0, 1, n)) + 0.003 * rng.normal(0, 1, n)


def write_synthetic_dataset(root: Path, specs: list[SyntheticClipSpec], seed: int = 0) -> Path:
    """Write DATASET/ (dataset.json, clips.csv, skipped.csv, clips/<id>/...) and return it."""
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for spec in specs:
        clip_dir = root / "clips" / spec.clip_id
        clip_dir.mkdir(parents=True, exist_ok=True)
        env = envelope(spec.frames, spec.fps, rng)
        tint = rng.uniform(120, 230, size=3)
        frames = np.stack([draw_face(o, tint, rng) for o in env])
        write_video(clip_dir / "frames.mp4", frames, spec.fps)
        write_wav(clip_dir / "audio.wav", speech_like(env, spec.fps, rng))
        valid = np.ones(spec.frames, dtype=bool)
        valid[list(spec.invalid_frames)] = False
        np.savez(clip_dir / "landmarks.npz", points=np.zeros((spec.frames, 478, 2), np.float16), valid=valid)
        rows.append(
            {
                "clip_id": spec.clip_id,
                "source": f"synthetic/{spec.clip_id}",
                "speaker": spec.speaker,
                "split": spec.split,
                "kind": spec.kind,
                "fps": spec.fps,
                "frames": spec.frames,
                "seconds": round(spec.frames / spec.fps, 3),
                "has_audio": 1,
                "face_ratio": round(float(valid.mean()), 3),
                "flags": "",
            }
        )
    meta = {"format": "lipdub-dataset", "version": 1, "crop_size": 96, "sample_rate": SAMPLE_RATE, "pads": [0, 10, 0, 0], "created": "synthetic", "lipdub_version": "test", "sources": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    with open(root / "clips.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "skipped.csv").write_text("source,reason\n")
    return root


def default_specs(frames: int = 100) -> list[SyntheticClipSpec]:
    """Three train speakers (one with faceless frames) and one val speaker."""
    return [
        SyntheticClipSpec("a1", "alice", "train", frames, invalid_frames=(10, 11)),
        SyntheticClipSpec("b1", "bob", "train", frames),
        SyntheticClipSpec("c1", "carol", "train", frames, fps=30.0),
        SyntheticClipSpec("d1", "dave", "val", frames),
    ]
