"""``lipdub preprocess``: turn folders of talking-head videos into a training dataset.

The format is written down in ``DATASET_FORMAT.md`` (version 1): per clip, the aligned face crops
as a small H.264 video, the speech as 16 kHz WAV and the Face Mesh points in crop coordinates,
plus ``clips.csv`` (one row per kept clip, with its speaker and split) and ``skipped.csv``.

Why it looks the way it does:

- Crops come from exactly the inference code path (`FaceDetector` → `FaceTracker` →
  `crop_region` → `extract_crop`), so the generator trains on the pictures it will later see.
- Each clip is decoded twice: the first pass tracks the face and keeps only boxes and points
  (kilobytes), the second crops and encodes. Memory stays flat however long the clip is, frames
  before the first detection can use the first known region, and a clip without enough face is
  rejected before anything is encoded.
- It is resumable. A clip is built in a temporary folder and renamed into place when complete; a
  later run reuses every complete clip whose source is unchanged (same size and mtime) and only
  rewrites ``clips.csv``/``skipped.csv`` from what is on disk plus what this run did. Running it
  again on more folders adds to the dataset.
- A bad clip (unreadable, no frames, too little face) is listed in ``skipped.csv`` with the
  reason, never fatal; a clip without audio is kept with ``has_audio = 0`` (visual training).
- Splits are by speaker (`lipdub.train.speakers`), drawn within each kind of footage so that the
  validation set holds real speakers whenever there are at least two.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import os
import re
import shutil
import wave
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from hashlib import sha1
from pathlib import Path

import numpy as np

from lipdub.errors import LipdubError
from lipdub.fileio import write_atomic
from lipdub.train.speakers import (
    clip_kind,
    infer_speaker,
    load_manifests,
    read_manifest,
    split_speakers,
    strip_take_number,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CLIP_COLUMNS",
    "ClipRecord",
    "PreprocessConfig",
    "PreprocessReport",
    "SAMPLE_RATE",
    "assign_splits",
    "write_csv_atomic",
    "clip_id_for",
    "clip_kind",
    "find_media",
    "fit_samples",
    "infer_speaker",
    "load_manifests",
    "preprocess",
    "quantize_points",
    "save_landmarks",
    "read_manifest",
    "split_speakers",
    "strip_take_number",
    "to_crop_coords",
]

FORMAT_NAME = "lipdub-dataset"
FORMAT_VERSION = 1
SAMPLE_RATE = 16000
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v"})
CLIP_COLUMNS = (
    "clip_id", "source", "speaker", "split", "kind", "fps", "frames", "seconds",
    "has_audio", "face_ratio", "flags",
)
SKIPPED_COLUMNS = ("source", "reason")
#: Written last inside a clip folder: its presence (after the rename) marks the clip complete.
CLIP_META = "clip.json"
_TMP_PREFIX = ".tmp-"

#: Called after every clip with (clips done, clips in total, source just finished).
ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class PreprocessConfig:
    """The choices of one ``lipdub preprocess`` run (the CLI maps its flags onto this)."""

    crop_size: int = 96
    pads: tuple[int, int, int, int] = (0, 10, 0, 0)
    val_fraction: float = 0.2
    val_speakers: tuple[str, ...] | None = None
    seed: int = 0
    min_face_ratio: float = 0.5
    workers: int = 1
    crf: int = 14


@dataclass
class PreprocessReport:
    """What a run produced: clips kept (reused ones included), clips skipped with why, where."""

    kept: int
    skipped: list[tuple[str, str]]
    reused: int
    dataset: Path


@dataclass
class ClipRecord:
    """One kept clip as stored in its ``clip.json`` (its split is decided per run, not stored)."""

    clip_id: str
    source: str
    speaker: str
    kind: str
    fps: float
    frames: int
    seconds: float
    has_audio: bool
    face_ratio: float
    flags: list[str] = field(default_factory=list)
    source_size: int = 0
    source_mtime_ns: int = 0

    def row(self, split: str) -> dict[str, str]:
        return {
            "clip_id": self.clip_id,
            "source": self.source,
            "speaker": self.speaker,
            "split": split,
            "kind": self.kind,
            "fps": f"{self.fps:.6g}",
            "frames": str(self.frames),
            "seconds": f"{self.seconds:.3f}",
            "has_audio": "1" if self.has_audio else "0",
            "face_ratio": f"{self.face_ratio:.4f}",
            "flags": ";".join(self.flags),
        }


# --------------------------------------------------------------------------- finding the media


def find_media(sources: Sequence[Path]) -> list[Path]:
    """Every video file under ``sources`` (folders are walked in any layout), sorted, no duplicates.

    A file named directly is taken whatever its suffix, so that a bad file the user points at is
    reported in ``skipped.csv`` rather than silently ignored. Hidden files and folders are skipped.
    """
    found: dict[str, Path] = {}
    for source in sources:
        source = Path(source)
        if not source.exists():
            raise LipdubError(f"source not found: {source}")
        if source.is_file():
            found.setdefault(source.resolve().as_posix(), source)
            continue
        for folder, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if not name.startswith(".") and path.suffix.lower() in VIDEO_SUFFIXES:
                    found.setdefault(path.resolve().as_posix(), path)
    return sorted(found.values(), key=lambda p: p.as_posix())


def clip_id_for(path: Path) -> str:
    """A readable, unique folder name: the file stem plus a hash of the file's resolved path."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._-")[:48] or "clip"
    return f"{stem}-{sha1(Path(path).resolve().as_posix().encode()).hexdigest()[:8]}"


# --------------------------------------------------------------------------- small numeric pieces


def to_crop_coords(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map frame-space points (N, 2) through the crop's 2x3 affine (frame → crop): ``A p + t``."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


#: Landmark precision in crop pixels. An eighth of a pixel (error at most 1/16 px, well below the
#: Face Mesh's own frame-to-frame jitter) makes the float16 values compress ~2x better.
POINT_STEP = 1.0 / 8.0


def quantize_points(points: np.ndarray, step: float = POINT_STEP) -> np.ndarray:
    """Round points to multiples of ``step`` and store them as float16."""
    return (np.round(np.asarray(points, dtype=np.float32) / step) * step).astype(np.float16)


def save_landmarks(path: Path, points: np.ndarray, valid: np.ndarray, measured: np.ndarray | None = None) -> None:
    """Write ``landmarks.npz`` as small as it goes while ``np.load`` reads it like any other npz.

    Two choices make it ~2.4x smaller than ``np.savez_compressed`` (measured on the shared corpus:
    17.2 → 12.4 MiB for the 1/8-px points, lossless): ``points`` are stored in Fortran order, so
    each point's track over time is contiguous (nearly constant values), and the zip members are
    LZMA- rather than deflate-compressed. ``np.load`` gives back the same (frames, 478, 2) float16
    array either way (zipfile decompresses LZMA transparently); it comes back Fortran-ordered,
    which numpy and ``torch.from_numpy`` accept as it is.

    ``points`` are the tracker's smoothed points (the crops follow them); ``measured``, when given,
    are Face Mesh's unfiltered points of the same frames: the lip motion model learns from those,
    because the tracker's One-Euro filter is causal and delays a fast mouth by a frame or two.
    """
    arrays = {
        "points": np.asfortranarray(quantize_points(points)),
        "valid": np.ascontiguousarray(valid, dtype=bool),
    }
    if measured is not None:
        arrays["measured"] = np.asfortranarray(quantize_points(measured))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def fit_samples(samples: np.ndarray, start_time: float, frames: int, fps: float, sample_rate: int) -> tuple[np.ndarray, int]:
    """The audio under the video: from the time of frame 0, exactly ``frames / fps`` seconds long.

    Returns the samples and how many had to be padded with silence at the end (audio shorter than
    the picture). Sample 0 is the instant of frame 0, so training can index audio by frame number.
    """
    skip = max(0, int(round(start_time * sample_rate)))
    wanted = int(round(frames * sample_rate / fps))
    fitted = np.asarray(samples, dtype=np.float32)[skip : skip + wanted]
    padded = wanted - len(fitted)
    if padded > 0:
        fitted = np.concatenate([fitted, np.zeros(padded, dtype=np.float32)])
    return fitted, padded


def fill_regions(regions: list) -> list:
    """Give frames without a face the last known region (the first known one before it appears)."""
    first = next((r for r in regions if r is not None), None)
    filled, last = [], first
    for region in regions:
        last = region if region is not None else last
        filled.append(last)
    return filled


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit mono PCM, clipped (not wrapped) at full scale."""
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())


# --------------------------------------------------------------------------- one clip


@dataclass(frozen=True)
class _ClipJob:
    source: Path
    clip_id: str
    clips_dir: Path
    speaker: str
    kind: str
    crop_size: int
    pads: tuple[int, int, int, int]
    crf: int
    min_face_ratio: float


@dataclass
class _Outcome:
    source: str
    record: ClipRecord | None = None
    reason: str | None = None


def _fingerprint(path: Path) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


@dataclass
class _FaceTrack:
    """Pass 1's result, per source frame: crop region and frame-space points, None without a face."""

    regions: list
    points: list[np.ndarray | None]  # the tracker's One-Euro-smoothed points (steady crops)
    measured: list[np.ndarray | None]  # Face Mesh's own points of each frame (no filter lag)
    start_time: float  # time of frame 0 on the decoder's clock (where audio sample 0 belongs)


def _track(job: _ClipJob) -> _FaceTrack:
    """Pass 1: follow the face through the clip, keeping only regions and points (kilobytes)."""
    from lipdub.face.align import crop_region
    from lipdub.face.detect import FaceDetector
    from lipdub.face.track import FaceTracker, SmoothingConfig
    from lipdub.media.decode import iter_frames, probe_video

    regions: list = []
    points: list[np.ndarray | None] = []
    measured: list[np.ndarray | None] = []
    start_time = None
    with FaceDetector(still_image=False) as detector:
        tracker = FaceTracker(detector, smoothing=SmoothingConfig(fps=probe_video(job.source).fps))
        for frame in iter_frames(job.source):
            if start_time is None:
                start_time = float(frame.time)
            face = tracker.update(frame.image)
            if face is None:
                regions.append(None)
                points.append(None)
                measured.append(None)
            else:
                regions.append(crop_region(face.box, frame.image.shape[:2], job.pads))
                points.append(np.asarray(face.landmarks, dtype=np.float32))
                raw = face.landmarks if face.raw_landmarks is None else face.raw_landmarks
                measured.append(np.asarray(raw, dtype=np.float32))
        tracker.reset()
    return _FaceTrack(regions, points, measured, start_time or 0.0)


def _load_clip_audio(source: Path, flags: list[str]) -> np.ndarray | None:
    from lipdub.media.audio import is_silent, load_audio

    try:
        samples = load_audio(source, sample_rate=SAMPLE_RATE)
    except LipdubError as error:
        if "no audio stream" not in str(error):
            logger.warning("%s: audio unreadable (%s); kept without audio", source, error)
            flags.append("audio_unreadable")
        return None
    if is_silent(samples):
        flags.append("silent_audio")
    return samples


def _build_clip(job: _ClipJob, folder: Path) -> ClipRecord:
    """Both passes for one clip, written into ``folder``. Raises `LipdubError` to skip the clip."""
    from lipdub.face.align import extract_crop
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.media.encode import VideoWriter

    info = probe_video(job.source)
    if info.is_photo:
        raise LipdubError("a still image, not a video")
    fps = float(info.fps)
    size_before = _fingerprint(job.source)

    track = _track(job)
    regions, frame_points = track.regions, track.points
    if not regions:
        raise LipdubError("no video frames")
    with_face = sum(region is not None for region in regions)
    face_ratio = with_face / len(regions)
    if face_ratio < job.min_face_ratio:
        raise LipdubError(f"face in {face_ratio:.0%} of frames (< {job.min_face_ratio:.0%})")
    regions = fill_regions(regions)

    flags: list[str] = []
    samples = _load_clip_audio(job.source, flags)

    count = len(regions)
    points = np.zeros((count, 478, 2), dtype=np.float32)
    measured = np.zeros((count, 478, 2), dtype=np.float32)
    valid = np.zeros(count, dtype=bool)
    written = 0
    size = job.crop_size
    with VideoWriter(folder / "frames.mp4", size, size, fps, audio=None, crf=job.crf) as writer:
        for frame in iter_frames(job.source):
            if written == count:
                # The decoder gave more frames the second time: keep the first pass's count.
                flags.append("decode_count_mismatch")
                break
            crop = extract_crop(frame.image, regions[written], size)
            writer.write(crop.image)
            if frame_points[written] is not None:
                points[written] = to_crop_coords(frame_points[written], crop.matrix)
                measured[written] = to_crop_coords(track.measured[written], crop.matrix)
                valid[written] = True
            written += 1
    if written < count:
        flags.append("decode_count_mismatch")
        points, measured, valid = points[:written], measured[:written], valid[:written]
    if written == 0:
        raise LipdubError("no video frames on the second pass")
    save_landmarks(folder / "landmarks.npz", points, valid, measured)

    if samples is not None:
        fitted, padded = fit_samples(samples, track.start_time, written, fps, SAMPLE_RATE)
        if padded > SAMPLE_RATE / fps:
            flags.append("audio_padded")
        write_wav(folder / "audio.wav", fitted, SAMPLE_RATE)
    if face_ratio < 1.0:
        flags.append("frames_without_face")

    size_bytes, mtime_ns = size_before
    return ClipRecord(
        clip_id=job.clip_id,
        source=job.source.resolve().as_posix(),
        speaker=job.speaker,
        kind=job.kind,
        fps=fps,
        frames=written,
        seconds=written / fps,
        has_audio=samples is not None,
        face_ratio=float(valid.mean()) if written else 0.0,
        flags=flags,
        source_size=size_bytes,
        source_mtime_ns=mtime_ns,
    )


def _process_clip(job: _ClipJob) -> _Outcome:
    """Build one clip into a temporary folder and rename it into place; any failure is a skip."""
    source = job.source.resolve().as_posix()
    folder = job.clips_dir / f"{_TMP_PREFIX}{job.clip_id}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        record = _build_clip(job, folder)
        (folder / CLIP_META).write_text(json.dumps(asdict(record), indent=1))
        final = job.clips_dir / job.clip_id
        shutil.rmtree(final, ignore_errors=True)
        folder.rename(final)
        return _Outcome(source, record=record)
    except Exception as error:  # noqa: BLE001 - one broken file must not end the whole run
        if not isinstance(error, LipdubError):
            logger.debug("%s failed", source, exc_info=True)
        # A clip made earlier from an older version of this file is stale now.
        shutil.rmtree(job.clips_dir / job.clip_id, ignore_errors=True)
        reason = str(error) if isinstance(error, LipdubError) else f"{type(error).__name__}: {error}"
        return _Outcome(source, reason=" ".join(reason.split()) or type(error).__name__)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- the dataset on disk


def _read_complete_clip(folder: Path) -> ClipRecord | None:
    """The record of a complete clip folder, or None for anything incomplete or foreign."""
    meta = folder / CLIP_META
    if folder.name.startswith(".") or not meta.is_file() or not (folder / "frames.mp4").is_file():
        return None
    if not (folder / "landmarks.npz").is_file():
        return None
    try:
        record = ClipRecord(**json.loads(meta.read_text()))
    except (ValueError, TypeError):
        return None
    if record.has_audio and not (folder / "audio.wav").is_file():
        return None
    return record


def _existing_clips(clips_dir: Path) -> dict[str, ClipRecord]:
    records: dict[str, ClipRecord] = {}
    if clips_dir.is_dir():
        for folder in sorted(clips_dir.iterdir()):
            if folder.is_dir() and folder.name.startswith(_TMP_PREFIX):
                # Left over from an interrupted run.
                shutil.rmtree(folder, ignore_errors=True)
                continue
            record = _read_complete_clip(folder) if folder.is_dir() else None
            if record is not None:
                records[record.clip_id] = record
    return records


def _read_skipped(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["source"]: row["reason"] for row in csv.DictReader(handle) if row.get("source")}


def write_csv_atomic(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    """Write atomically: a reader never sees half a table."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def _check_dataset_json(path: Path, config: PreprocessConfig) -> dict:
    """The existing description, after making sure its crops are the kind this run would make."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except ValueError as error:
        raise LipdubError(f"{path} is not valid JSON ({error}); choose an empty folder") from error
    if meta.get("format") != FORMAT_NAME:
        raise LipdubError(f"{path.parent} is not a lipdub dataset; choose an empty folder")
    if meta.get("version") != FORMAT_VERSION:
        raise LipdubError(f"{path.parent} is dataset version {meta.get('version')}, this lipdub writes {FORMAT_VERSION}")
    if meta.get("crop_size") != config.crop_size or list(meta.get("pads", [])) != list(config.pads):
        raise LipdubError(
            f"{path.parent} holds crops of size {meta.get('crop_size')} with pads {meta.get('pads')}; "
            f"this run asks for {config.crop_size} with {list(config.pads)}: choose another folder"
        )
    return meta


def assign_splits(records: Iterable[ClipRecord], config: PreprocessConfig) -> dict[str, str]:
    """Speaker → split, drawn separately within each kind of footage (real, synthetic, ...).

    Per kind, so that validation holds real speakers as soon as there are two; a speaker who
    appears in several kinds is drawn once, in the first kind by name, and keeps one split.
    """
    kinds: dict[str, set[str]] = {}
    for record in records:
        kinds.setdefault(record.speaker, set()).add(record.kind)
    by_kind: dict[str, list[str]] = {}
    for speaker, its_kinds in kinds.items():
        by_kind.setdefault(min(its_kinds), []).append(speaker)
    if config.val_speakers is not None:
        return split_speakers(kinds, config.val_fraction, config.seed, config.val_speakers)
    splits: dict[str, str] = {}
    for speakers in by_kind.values():
        splits.update(split_speakers(speakers, config.val_fraction, config.seed))
    return splits


# --------------------------------------------------------------------------- the whole run


def preprocess(
    sources: Sequence[Path],
    dataset: Path,
    config: PreprocessConfig = PreprocessConfig(),
    progress: ProgressCallback | None = None,
) -> PreprocessReport:
    """Build (or extend, or finish) the dataset in ``dataset`` from the videos under ``sources``."""
    if config.crop_size < 16 or config.crop_size % 2:
        raise LipdubError(f"crop size must be an even number of at least 16, got {config.crop_size}")
    if not 0.0 <= config.min_face_ratio <= 1.0:
        raise LipdubError(f"minimum face ratio must be in [0, 1], got {config.min_face_ratio}")
    if config.workers < 1:
        raise LipdubError("workers must be at least 1")
    roots = [Path(s) for s in sources]
    media = find_media(roots)
    if not media:
        raise LipdubError(f"no video files found in {', '.join(str(r) for r in roots)}")

    dataset = Path(dataset)
    if dataset.exists() and not dataset.is_dir():
        raise LipdubError(f"dataset path is a file: {dataset}")
    meta_path = dataset / "dataset.json"
    old_meta = _check_dataset_json(meta_path, config)
    clips_dir = dataset / "clips"
    try:
        clips_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LipdubError(f"cannot create the dataset folder {dataset}: {error}") from error

    manifest = load_manifests(media)
    existing = _existing_clips(clips_dir)
    skipped_before = _read_skipped(dataset / "skipped.csv")

    records: dict[str, ClipRecord] = dict(existing)
    by_source = {record.source: record for record in existing.values()}
    skipped: dict[str, str] = {}
    jobs: list[_ClipJob] = []
    reused = 0
    this_run: set[str] = set()
    for path in media:
        source = path.resolve().as_posix()
        this_run.add(source)
        speaker, kind = infer_speaker(path, roots, manifest), clip_kind(path)
        record = by_source.get(source)
        if record is not None and (record.source_size, record.source_mtime_ns) == _fingerprint(path):
            # Reused as it is; speaker and kind follow this run's rules and manifests.
            record.speaker, record.kind = speaker, kind
            reused += 1
            continue
        clip_id = record.clip_id if record is not None else clip_id_for(path)
        records.pop(clip_id, None)
        jobs.append(_ClipJob(path, clip_id, clips_dir, speaker, kind, config.crop_size,
                             tuple(config.pads), config.crf, config.min_face_ratio))
    logger.info("%d clips found: %d already done, %d to process", len(media), reused, len(jobs))

    done = reused
    total = len(media)
    if progress is not None and reused:
        progress(done, total, "")

    def collect(outcome: _Outcome) -> None:
        nonlocal done
        done += 1
        if outcome.record is not None:
            records[outcome.record.clip_id] = outcome.record
        else:
            logger.warning("skipped %s: %s", outcome.source, outcome.reason)
            skipped[outcome.source] = outcome.reason or "unknown error"
        if progress is not None:
            progress(done, total, outcome.source)

    if config.workers == 1 or len(jobs) <= 1:
        for job in jobs:
            collect(_process_clip(job))
    else:
        import multiprocessing

        # "spawn": a forked copy of a process holding MediaPipe/FFmpeg threads can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
            futures = [pool.submit(_process_clip, job) for job in jobs]
            for future in as_completed(futures):
                collect(future.result())

    # Skips of earlier runs stay listed unless this run saw that source again.
    for source, reason in skipped_before.items():
        if source not in this_run:
            skipped.setdefault(source, reason)
    kept_sources = {record.source for record in records.values()}
    skipped = {source: reason for source, reason in skipped.items() if source not in kept_sources}

    splits = assign_splits(records.values(), config)
    ordered = sorted(records.values(), key=lambda r: (r.source, r.clip_id))
    write_csv_atomic(dataset / "clips.csv", CLIP_COLUMNS, (r.row(splits[r.speaker]) for r in ordered))
    write_csv_atomic(dataset / "skipped.csv", SKIPPED_COLUMNS,
               ({"source": s, "reason": reason} for s, reason in sorted(skipped.items())))

    from lipdub import __version__

    all_sources = sorted(set(old_meta.get("sources", [])) | {Path(r).resolve().as_posix() for r in roots})
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "crop_size": config.crop_size,
        "sample_rate": SAMPLE_RATE,
        "pads": list(config.pads),
        "created": old_meta.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "lipdub_version": __version__,
        "sources": all_sources,
    }
    write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")

    val = sum(1 for r in ordered if splits[r.speaker] == "val")
    logger.info("dataset %s: %d clips (%d val), %d reused, %d skipped", dataset, len(ordered), val, reused, len(skipped))
    return PreprocessReport(
        kept=len(ordered),
        skipped=sorted(skipped.items()),
        reused=reused,
        dataset=dataset,
    )
