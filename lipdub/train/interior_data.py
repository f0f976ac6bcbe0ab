"""Mouth crops for the interior network: every face clip of a corpus, tracked once and cached.

The interior network needs no audio, so silent and expressive clips teach it as much as synced
ones. For each clip, every frame is tracked (`lipdub.face.track`, video mode, unsmoothed points)
and the frames kept are cut into `lipdub.render.mouth_frame` crops at twice the training size (so
the evaluation can also be run at a finer scale) with their inner and outer lip rings in crop
pixels and the teeth white the painted stand-in would use (`lipdub.render.interior.teeth_colour`,
from the frame's eye whites). Kept per clip: open mouths (the ones whose interior the network must
learn, evenly spaced in time) and a few closed ones (so it also learns that a thin opening is a
dark line).

Split: the validation speakers of the bundled lip motion model (`lipdub/weights/motion/lipdub-motion.json`)
are never trained on, nor is any clip whose speaker name starts with one of theirs (the silent
`woman_flag_redlips` is `woman_flag`); their real clips are the held-out set.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lipdub.eval.mouth import LIP_INNER, LIP_OUTER, mouth_aperture
from lipdub.render.mouth_frame import cut_mouth, mouth_crop_transform, transform_points

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mpg", ".mov", ".avi", ".webm"}
#: Corpus folders the network learns from (no audio needed) and the kind each holds.
FOLDERS = {"train/real": "real", "train/synthetic": "synthetic", "silent": "silent", "expressive": "expressive"}
RIGHT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE_RING = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)


@dataclass(frozen=True)
class ExtractConfig:
    """What to cut from each clip (saved with the cache; a change makes a new cache file)."""

    size: int = 128  # stored crop side (pixels); training downsamples to its own size
    max_seconds: float = 30.0  # frames tracked per clip at most (long clips: the first 30 s)
    open_aperture: float = 0.05  # eye units: a mouth at least this open is "open"
    train_open: int = 90  # open frames kept per training clip (evenly spaced)
    train_closed: int = 15  # other frames kept per training clip
    val_per_speaker: int = 120  # open frames kept per validation speaker (spread over their clips)
    val_open_aperture: float = 0.07  # held-out frames must be clearly open

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Clip:
    path: Path
    name: str
    speaker: str
    kind: str
    split: str  # "train" / "val"


def validation_speakers(motion_card: Path | None = None) -> list[str]:
    """The speakers the bundled lip motion model was validated on (kept out of every training set)."""
    if motion_card is None:
        motion_card = Path(__file__).resolve().parents[1] / "weights" / "motion" / "lipdub-motion.json"
    return sorted(json.loads(Path(motion_card).read_text())["val_speakers"])


def list_clips(root: Path, val_speakers: Sequence[str]) -> list[Clip]:
    """Every video under the corpus `FOLDERS` with its speaker, kind and split (see module doc)."""
    from lipdub.train.speakers import infer_speaker, load_manifests

    root = Path(root)
    paths = []
    for folder, kind in FOLDERS.items():
        base = root / folder
        if base.is_dir():
            paths += [(p, kind) for p in sorted(base.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    manifest = load_manifests([p for p, _ in paths])
    clips = []
    for path, kind in paths:
        speaker = infer_speaker(path, [root / f for f in FOLDERS], manifest)
        held = any(speaker == s or speaker.startswith(s + "_") for s in val_speakers)
        split = "val" if held else "train"
        if split == "val" and kind != "real":
            split = "excluded"  # held-out person, but not real footage: neither trained on nor reported
        clips.append(Clip(path, path.stem, speaker, kind, split))
    return clips


def evenly(indices: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` of ``indices``, evenly spaced (all of them if there are fewer)."""
    indices = np.asarray(indices)
    if len(indices) <= count:
        return indices
    return indices[np.round(np.linspace(0, len(indices) - 1, count)).astype(np.int64)]


def choose_frames(apertures: np.ndarray, open_aperture: float, open_count: int, closed_count: int) -> np.ndarray:
    """Frame numbers to keep: ``open_count`` open ones and ``closed_count`` others, evenly spaced."""
    apertures = np.asarray(apertures, np.float64)
    valid = np.isfinite(apertures)
    opened = np.flatnonzero(valid & (apertures >= open_aperture))
    closed = np.flatnonzero(valid & (apertures < open_aperture))
    return np.sort(np.concatenate([evenly(opened, open_count), evenly(closed, closed_count)]).astype(np.int64))


def _track_clip(path: Path, max_seconds: float, size: int):
    """(apertures (T,), crops (T, size, size, 3) or None per frame, rings, whites) for one clip."""
    from lipdub.face.detect import FaceDetector
    from lipdub.face.track import FaceTracker
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.render.interior import lip_colour, teeth_colour

    info = probe_video(path)
    limit = int(max_seconds * max(info.fps, 1.0))
    records = []
    with FaceDetector(max_faces=1) as detector:
        tracker = FaceTracker(detector)
        for frame in iter_frames(path):
            if frame.index >= limit:
                break
            face = tracker.update(frame.image)
            if face is None:
                records.append(None)
                continue
            points = np.asarray(face.raw_landmarks if face.raw_landmarks is not None else face.landmarks, np.float64)
            eye = float(np.linalg.norm(points[33] - points[263]))
            if eye < 8:
                records.append(None)
                continue
            outer, inner = points[list(LIP_OUTER)], points[list(LIP_INNER)]
            matrix = mouth_crop_transform(outer, eye, size)
            crop = cut_mouth(frame.image, matrix, size)
            lips = lip_colour(frame.image, outer, inner)
            white = teeth_colour(frame.image, [points[list(r)] for r in (RIGHT_EYE_RING, LEFT_EYE_RING)], lips)
            records.append((float(mouth_aperture(points[None])[0]), crop,
                            transform_points(matrix, inner).astype(np.float32),
                            transform_points(matrix, outer).astype(np.float32), white.astype(np.float32)))
    return records


def extract(root: Path, cache: Path, config: ExtractConfig = ExtractConfig(),
            val_speakers: Sequence[str] | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Track and cut every clip (or reuse the cache); returns the ``.npz`` holding all samples.

    Per clip results are cached too (``clips/<name>-<key>.npz``), so an interrupted extraction
    resumes where it stopped.
    """
    cache = Path(cache)
    val_speakers = validation_speakers() if val_speakers is None else list(val_speakers)
    clips = [c for c in list_clips(root, val_speakers) if c.split != "excluded"]
    key = hashlib.sha256((config.key() + json.dumps(sorted(val_speakers))
                          + json.dumps([(c.name, c.split) for c in clips])).encode()).hexdigest()[:10]
    out = cache / f"interior-samples-{key}.npz"
    if out.is_file():
        return out
    (cache / "clips").mkdir(parents=True, exist_ok=True)
    per_speaker: dict[str, int] = {}
    for clip in clips:
        if clip.split == "val":
            per_speaker[clip.speaker] = per_speaker.get(clip.speaker, 0) + 1
    parts = []
    for number, clip in enumerate(clips):
        if progress:
            progress(number, len(clips), clip.name)
        part = cache / "clips" / f"{clip.kind}-{clip.name}-{clip.split}-{config.key()}.npz"
        if not part.is_file():
            records = _track_clip(clip.path, config.max_seconds, config.size)
            apertures = np.array([np.nan if r is None else r[0] for r in records])
            if clip.split == "train":
                keep = choose_frames(apertures, config.open_aperture, config.train_open, config.train_closed)
            else:
                per_clip = max(3, config.val_per_speaker // per_speaker[clip.speaker])
                keep = choose_frames(apertures, config.val_open_aperture, per_clip, 0)
            fields = {"frame": keep, "aperture": apertures[keep].astype(np.float32)}
            if len(keep):
                fields.update(crop=np.stack([records[i][1] for i in keep]), inner=np.stack([records[i][2] for i in keep]),
                              outer=np.stack([records[i][3] for i in keep]), white=np.stack([records[i][4] for i in keep]))
            _save_npz(part, fields)
            logger.info("%s (%s, %s): %d of %d frames kept", clip.name, clip.kind, clip.split, len(keep), len(records))
        parts.append((clip, part))
    if progress:
        progress(len(clips), len(clips), "")
    return _merge(parts, out, config.size)


def _save_npz(path: Path, fields: dict) -> None:
    """Write atomically (a killed extraction leaves no half file that looks complete)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **fields)
    tmp.replace(path)


def _merge(parts: list[tuple[Clip, Path]], out: Path, size: int) -> Path:
    crops, inner, outer, white, aperture, rows = [], [], [], [], [], []
    for clip, part in parts:
        data = np.load(part)
        if len(data["frame"]) == 0:
            continue
        crops.append(data["crop"])
        inner.append(data["inner"])
        outer.append(data["outer"])
        white.append(data["white"])
        aperture.append(data["aperture"])
        rows += [(clip.name, clip.speaker, clip.kind, clip.split, int(f)) for f in data["frame"]]
    empty = np.zeros((0, size, size, 3), np.uint8)
    _save_npz(out, {
        "crop": np.concatenate(crops) if crops else empty,
        "inner": np.concatenate(inner), "outer": np.concatenate(outer), "white": np.concatenate(white),
        "aperture": np.concatenate(aperture),
        "clip": np.array([r[0] for r in rows]), "speaker": np.array([r[1] for r in rows]),
        "kind": np.array([r[2] for r in rows]), "split": np.array([r[3] for r in rows]),
        "frame": np.array([r[4] for r in rows], np.int64),
    })
    return out


@dataclass
class Samples:
    """All cached crops in memory (uint8) with their rings, split and provenance."""

    crop: np.ndarray  # (N, S, S, 3) uint8 RGB
    inner: np.ndarray  # (N, 20, 2) float32 crop pixels
    outer: np.ndarray  # (N, 20, 2)
    white: np.ndarray  # (N, 3) teeth white from the frame's eyes (painted stand-in's input)
    aperture: np.ndarray  # (N,) eye units
    clip: np.ndarray
    speaker: np.ndarray
    kind: np.ndarray
    split: np.ndarray
    frame: np.ndarray

    @classmethod
    def load(cls, path: Path) -> Samples:
        data = np.load(path)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def subset(self, mask: np.ndarray) -> Samples:
        return Samples(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.crop)


__all__ = ["Clip", "ExtractConfig", "Samples", "choose_frames", "evenly", "extract", "list_clips", "validation_speakers"]
