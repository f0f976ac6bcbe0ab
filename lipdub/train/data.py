"""Training data: a preprocessed dataset (see DATASET_FORMAT.md) held in memory, and the two samplers.

The corpus is minutes of video (~20k crops of 96 x 96 x 3 = well under 1 GB at uint8), so every
clip is decoded once into a uint8 array and samples are cut from memory: no per-sample video
seeks, no cache files. Pixels become float only inside a sample.

Samplers are indexed by a global sample number and draw their randomness from
``numpy.random.default_rng([seed, index])``: the sample for a given (seed, index) is always the
same, whichever worker builds it, so a resumed run sees exactly the data the uninterrupted run
would have seen (the training loop feeds indices ``step * batch ...``).

Pairing convention (lipdub's, in training and inference alike): frame ``f`` is paired with the
16-column mel window STARTING at frame ``f``'s time (:func:`lipdub.media.features.mel_window_start`).
A 5-frame window starting at frame ``t`` is therefore paired with the 16 columns (0.2 s) starting
at ``t``, which cover exactly those 5 frames at 25 fps.
"""

from __future__ import annotations

import csv
import json
import logging
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lipdub.errors import LipdubError
from lipdub.media.features import MelConfig, mel_window_start, melspectrogram

log = logging.getLogger(__name__)

SYNC_FRAMES = 5  # frames per SyncNet / generator window (Wav2Lip's syncnet_T)
CROP_SIZE = 96
HALF = CROP_SIZE // 2  # the generator paints rows HALF: (the mouth half)
MEL_CONFIG = MelConfig()


@dataclass
class Clip:
    """One preprocessed clip in memory.

    ``frames``: (N, 96, 96, 3) uint8 RGB crops; ``valid``: (N,) bool, False where no face was
    found (those crops repeat the last known region and must not be trained on); ``mel``:
    (80, T) float32 log-mel of the clip's audio, or None for a clip without audio; ``av_offset``:
    the audio lag (frames) the mel was re-timed by when loaded (see :func:`shift_mel`).
    """

    clip_id: str
    frames: np.ndarray
    valid: np.ndarray
    mel: np.ndarray | None
    fps: float
    speaker: str
    kind: str
    split: str
    lips: np.ndarray | None = None  # (N, LIP_FEATURES) lip-shape features, see lip_shape_features
    av_offset: int = 0


#: Per frame: the vertical position of the 40 Face Mesh lip points (relative to their mean) and the
#: mouth's width, both over the face size. Flip-invariant, so they survive horizontal-flip
#: augmentation unchanged; shift- and scale-invariant like the crops' other augmentations.
LIP_FEATURES = 41


def lip_shape_features(points: np.ndarray) -> np.ndarray:
    """(N, 478, 2) Face Mesh points -> (N, 41) float32 lip-shape features (see LIP_FEATURES)."""
    from lipdub.eval.mouth import LIP_OUTER, LIPS, face_size

    points = np.asarray(points, dtype=np.float32)
    size = np.maximum(face_size(points), 1e-3)[:, None]
    lips_y = points[:, list(LIPS), 1]
    vertical = (lips_y - lips_y.mean(axis=1, keepdims=True)) / size
    outer_x = points[:, list(LIP_OUTER), 0]
    width = (outer_x.max(axis=1) - outer_x.min(axis=1))[:, None] / size
    return np.concatenate([vertical, width], axis=1).astype(np.float32)


# --- Reading -------------------------------------------------------------------------------------


def read_frames(path: Path) -> np.ndarray:
    """Decode every frame of a crops video into (N, H, W, 3) uint8 RGB."""
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError) as exc:
        raise LipdubError(f"cannot decode {path}: {exc}") from exc
    if not frames:
        raise LipdubError(f"{path} has no frames")
    return np.stack(frames)


def read_wav_mono16k(path: Path) -> np.ndarray:
    """A 16 kHz mono int16 WAV (the dataset's audio) as float32 samples in [-1, 1]."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise LipdubError(f"{path}: expected 16-bit mono audio")
        if handle.getframerate() != MEL_CONFIG.sample_rate:
            raise LipdubError(f"{path}: expected {MEL_CONFIG.sample_rate} Hz, got {handle.getframerate()}")
        data = handle.readframes(handle.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def read_clips_table(dataset: Path) -> list[dict[str, str]]:
    """Rows of clips.csv after checking dataset.json says this is a lipdub dataset we can read."""
    meta_path = dataset / "dataset.json"
    if not meta_path.is_file():
        raise LipdubError(f"{dataset} is not a lipdub dataset (no dataset.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != "lipdub-dataset" or meta.get("version") != 1:
        raise LipdubError(f"{meta_path}: unsupported dataset format {meta.get('format')} v{meta.get('version')}")
    if int(meta.get("crop_size", CROP_SIZE)) != CROP_SIZE:
        raise LipdubError(f"{meta_path}: crop_size {meta.get('crop_size')} != {CROP_SIZE}")
    with open(dataset / "clips.csv", newline="") as handle:
        return list(csv.DictReader(handle))


#: Optional per-dataset table of measured audio lags (``lipdub align-dataset``): clip_id, av_offset
#: (frames; the audio of frame t sits at frame t + av_offset in the file), confidence, judge. Kept
#: apart from clips.csv so that re-running ``lipdub preprocess`` never drops it.
AV_OFFSETS_FILE = "av_offsets.csv"


def read_av_offsets(dataset: Path, table: Path | None = None) -> dict[str, int]:
    """clip_id -> av_offset from the dataset's av_offsets.csv ({} when there is none), or from
    ``table``, a file of the same columns kept elsewhere (reference offsets to evaluate against).

    Raises ValueError when ``table`` does not exist, or a table lacks the clip_id / av_offset
    columns or holds a non-integer."""
    path = Path(table) if table is not None else Path(dataset) / AV_OFFSETS_FILE
    if not path.is_file():
        if table is not None:
            raise ValueError(f"{path}: no such offsets table")
        return {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"clip_id", "av_offset"} <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: not an offsets table (needs clip_id and av_offset columns)")
        return {row["clip_id"]: int(row["av_offset"]) for row in reader if (row.get("av_offset") or "").strip()}


def shift_mel(mel: np.ndarray, av_offset: int, fps: float, config: MelConfig = MEL_CONFIG) -> np.ndarray:
    """The log-mel re-timed so that frame t pairs with audio recorded ``av_offset`` frames later.

    A clip whose audio lags its picture by k frames (k > 0) loses its first round(k / fps * 80)
    columns; a clip whose audio leads (k < 0) gets that many columns of the clip's quietest level
    in front. Pairing code downstream then needs no notion of offsets.
    """
    columns = int(round(av_offset / fps * config.frames_per_second))
    if columns > 0:
        return np.ascontiguousarray(mel[:, columns:])
    if columns < 0:
        silence = np.full((mel.shape[0], -columns), mel.min(), dtype=mel.dtype)
        return np.concatenate([silence, mel], axis=1)
    return mel


def load_clip_dir(clip_dir: Path, row: dict[str, str], av_offset: int = 0) -> Clip:
    """Load clips/<clip_id>/ (frames.mp4, audio.wav when has_audio, landmarks.npz) into a Clip,
    its audio re-timed by ``av_offset`` frames (see :func:`shift_mel`)."""
    frames = read_frames(clip_dir / "frames.mp4")
    valid = np.ones(len(frames), dtype=bool)
    lips = None
    landmarks = clip_dir / "landmarks.npz"
    if landmarks.is_file():
        with np.load(landmarks) as npz:
            valid = np.asarray(npz["valid"], dtype=bool)
            if "points" in npz:
                lips = lip_shape_features(npz["points"])
    count = min(len(frames), len(valid))
    if count != len(frames) or count != len(valid):
        log.warning("%s: %d frames but %d validity flags; using %d", clip_dir, len(frames), len(valid), count)
    mel = None
    audio = clip_dir / "audio.wav"
    if str(row.get("has_audio", "1")) == "1" and audio.is_file():
        mel = shift_mel(melspectrogram(read_wav_mono16k(audio), MEL_CONFIG), av_offset, float(row["fps"]))
    return Clip(
        clip_id=row.get("clip_id", clip_dir.name),
        frames=frames[:count],
        valid=valid[:count],
        mel=mel,
        fps=float(row["fps"]),
        speaker=row.get("speaker", ""),
        kind=row.get("kind", "other"),
        split=row.get("split", "train"),
        lips=lips[:count] if lips is not None and len(lips) >= count else None,
        av_offset=av_offset if mel is not None else 0,
    )


def load_dataset(
    path: Path,
    split: str,
    kinds: Sequence[str] | None = None,
    require_audio: bool = True,
    offsets_table: Path | None = None,
) -> list[Clip]:
    """All clips of one split ("train" | "val" | "all"), decoded into memory, audio re-timed by
    the dataset's av_offsets.csv when it has one (or by ``offsets_table`` instead).

    ``kinds`` keeps only those kinds (e.g. ("real", "synthetic") for sync training: the
    expressive clips' audio is not the person's speech). ``require_audio`` drops clips without
    audio, which can teach neither sync nor audio-driven generation.
    """
    path = Path(path)
    rows = read_clips_table(path)
    offsets = read_av_offsets(path, offsets_table)
    clips = []
    for row in rows:
        if split != "all" and row["split"] != split:
            continue
        if kinds is not None and row["kind"] not in kinds:
            continue
        if require_audio and str(row.get("has_audio", "1")) != "1":
            continue
        clips.append(load_clip_dir(path / "clips" / row["clip_id"], row, offsets.get(row["clip_id"], 0)))
    log.info("loaded %d %s clips (%d frames) from %s", len(clips), split, sum(len(c.frames) for c in clips), path)
    return clips


# --- Where windows may start ---------------------------------------------------------------------


def audio_frame_count(mel_columns: int, fps: float, config: MelConfig = MEL_CONFIG) -> int:
    """How many leading frames f have a full mel window (start(f) + 16 <= columns)."""
    if mel_columns < config.window_frames:
        return 0
    # start(f) grows monotonically with f, so the frames with a full window are a prefix.
    upper = int((mel_columns - config.window_frames) * fps / config.frames_per_second) + 3
    count = 0
    for f in range(upper + 1):
        if mel_window_start(f, fps, config) + config.window_frames <= mel_columns:
            count = f + 1
    return count


def valid_window_starts(valid: np.ndarray, length: int = SYNC_FRAMES, audio_frames: int | None = None) -> np.ndarray:
    """Frames t where frames t .. t+length-1 all have a face (and, when ``audio_frames`` is
    given, all of them have a full mel window: t + length <= audio_frames)."""
    valid = np.asarray(valid, dtype=bool)
    n = len(valid) - length + 1
    if audio_frames is not None:
        n = min(n, audio_frames - length + 1)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    run = np.ones(n, dtype=bool)
    for k in range(length):
        run &= valid[k : k + n]
    return np.flatnonzero(run)


def clip_window_starts(clip: Clip, length: int = SYNC_FRAMES) -> np.ndarray:
    """Valid window starts of a clip with audio (face in all frames, full mel windows)."""
    if clip.mel is None:
        return np.zeros(0, dtype=np.int64)
    return valid_window_starts(clip.valid, length, audio_frame_count(clip.mel.shape[1], clip.fps))


def mel_window(clip: Clip, frame_index: int) -> np.ndarray:
    """(80, 16) mel columns starting at frame ``frame_index``'s time (caller checked it fits)."""
    start = mel_window_start(frame_index, clip.fps, MEL_CONFIG)
    return clip.mel[:, start : start + MEL_CONFIG.window_frames]


def pick_far_start(starts: np.ndarray, t: int, min_gap: int, rng: np.random.Generator) -> int:
    """A random start from ``starts`` with |s - t| >= min_gap; the farthest one if none is."""
    far = starts[np.abs(starts - t) >= min_gap]
    if len(far):
        return int(rng.choice(far))
    return int(starts[np.argmax(np.abs(starts - t))])


# --- Augmentation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation for tiny data, applied identically to every frame of a sample (so motion
    between frames stays real). Geometric: shift up to ``shift_px`` pixels and scale by
    1 +- ``scale``; photometric: brightness +- ``brightness``, contrast and saturation
    x(1 +- ``contrast``/``saturation``); horizontal flip with probability ``flip`` (faces and
    speech are left-right symmetric enough). Audio: gain +- ``mel_gain_db`` dB (a shift of the
    normalised log-mel) and Gaussian noise of std ``mel_noise`` (in normalised units)."""

    shift_px: float = 3.0
    scale: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.15
    saturation: float = 0.15
    flip: float = 0.5
    mel_gain_db: float = 3.0
    mel_noise: float = 0.05


@dataclass(frozen=True)
class ImageJitter:
    """One draw of the image augmentation, shared by the frames of a sample."""

    matrix: np.ndarray  # 2 x 3 affine on 96 x 96 crops
    flip: bool
    brightness: float
    contrast: float
    saturation: float


def draw_jitter(rng: np.random.Generator, config: AugmentConfig) -> ImageJitter:
    scale = 1.0 + rng.uniform(-config.scale, config.scale)
    dx, dy = rng.uniform(-config.shift_px, config.shift_px, size=2)
    centre = (CROP_SIZE - 1) / 2.0
    matrix = np.array(
        [[scale, 0.0, centre - scale * centre + dx], [0.0, scale, centre - scale * centre + dy]], dtype=np.float32
    )
    return ImageJitter(
        matrix=matrix,
        flip=bool(rng.random() < config.flip),
        brightness=float(rng.uniform(-config.brightness, config.brightness)),
        contrast=float(1.0 + rng.uniform(-config.contrast, config.contrast)),
        saturation=float(1.0 + rng.uniform(-config.saturation, config.saturation)),
    )


def apply_jitter(frames: np.ndarray, jitter: ImageJitter | None) -> np.ndarray:
    """(T, 96, 96, 3) uint8 -> (T, 96, 96, 3) float32 in [0, 1], augmented when ``jitter``."""
    out = frames.astype(np.float32) / 255.0
    if jitter is None:
        return out
    import cv2

    out = np.stack(
        [cv2.warpAffine(f, jitter.matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for f in out]
    )
    if jitter.flip:
        out = out[:, :, ::-1]
    grey = out.mean(axis=3, keepdims=True)
    out = grey + (out - grey) * jitter.saturation
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * jitter.contrast + mean + jitter.brightness
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def augment_mel(mel: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Gain and noise on a normalised log-mel window. Wav2Lip's normalisation maps 100 dB onto
    8 units, so g dB of gain is a shift of 0.08 g."""
    m = MEL_CONFIG.max_abs_value
    shift = rng.uniform(-config.mel_gain_db, config.mel_gain_db) * 2.0 * m / -MEL_CONFIG.min_level_db
    noisy = mel + shift + rng.normal(0.0, config.mel_noise, size=mel.shape)
    return np.clip(noisy, -m, m).astype(np.float32)


def stack_lower_halves(frames: np.ndarray) -> np.ndarray:
    """(5, 96, 96, 3) float -> (15, 48, 96): lower halves, channels stacked frame-major (frame k
    holds channels 3k .. 3k+2), SyncNet's face input."""
    lower = frames[:, HALF:]  # (5, 48, 96, 3)
    return np.ascontiguousarray(lower.transpose(0, 3, 1, 2).reshape(-1, HALF, CROP_SIZE))


# --- Samplers ------------------------------------------------------------------------------------


class _IndexedSampler(Dataset):
    """Common part: the clips with at least one usable window, and a per-index generator."""

    def __init__(self, clips: Sequence[Clip], length: int, seed: int, augment: AugmentConfig | None):
        self.clips = []
        self.starts = []
        for clip in clips:
            starts = clip_window_starts(clip, SYNC_FRAMES)
            if len(starts) >= 2:
                self.clips.append(clip)
                self.starts.append(starts)
        if not self.clips:
            raise LipdubError("no clip has two usable 5-frame windows with audio")
        # Clips are drawn in proportion to their usable windows: every window equally likely.
        weights = np.array([len(s) for s in self.starts], dtype=np.float64)
        self.clip_probabilities = weights / weights.sum()
        self.length = length
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def draw_window(self, rng: np.random.Generator) -> tuple[int, int]:
        """(clip number, window start)."""
        c = int(rng.choice(len(self.clips), p=self.clip_probabilities))
        return c, int(rng.choice(self.starts[c]))


class SyncPairs(_IndexedSampler):
    """Wav2Lip's SyncNet protocol: a random clip and 5-frame window at t (all frames with a face).

    Half of the samples (label 1) pair it with the mel window at t; the other half (label 0) with
    the window at t' from the SAME clip, |t' - t| >= ``min_offset`` frames (5 by default: the
    negative's audio shares no frame with the face window, so the net must read the mouth rather
    than the speaker or the recording). Same-clip negatives are harder than other-clip ones and
    are what offset detection needs. Items: ``face`` (15, 48, 96) float in [0, 1], ``mel``
    (1, 80, 16), ``label`` () float, ``offset`` () int (t' - t, 0 for positives), ``start`` () int (t) and
    ``clip`` () int (index into ``self.clips``).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        length: int = 1_000_000,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        min_offset: int = SYNC_FRAMES,
    ):
        super().__init__(clips, length, seed, augment)
        self.min_offset = min_offset

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        c, t = self.draw_window(rng)
        clip = self.clips[c]
        positive = bool(rng.random() < 0.5)
        audio_t = t if positive else pick_far_start(self.starts[c], t, self.min_offset, rng)
        jitter = draw_jitter(rng, self.augment) if self.augment else None
        face = stack_lower_halves(apply_jitter(clip.frames[t : t + SYNC_FRAMES], jitter))
        mel = mel_window(clip, audio_t)
        if self.augment:
            mel = augment_mel(mel, rng, self.augment)
        label = 1.0 if audio_t == t else 0.0
        return {
            "face": torch.from_numpy(face),
            "mel": torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None],
            "label": torch.tensor(label, dtype=torch.float32),
            "offset": torch.tensor(audio_t - t, dtype=torch.int64),
            "start": torch.tensor(t, dtype=torch.int64),
            "clip": torch.tensor(c, dtype=torch.int64),
        }


class SyncCandidates(_IndexedSampler):
    """Multi-way sync samples: one 5-frame face window at t and ``candidates`` audio windows.

    Candidate 0 is the window at t (in sync); the others come from the SAME clip at offsets
    ``min_offset`` .. ``max_offset`` frames away, i.e. exactly the shifts offset detection has to
    tell apart. Training on them as a ``candidates``-way choice (the "multi-way matching" of Chung
    & Zisserman's later SyncNet work) gives every step many hard negatives; on our few minutes of
    video the plain Wav2Lip pair protocol sat at chance for hundreds of steps. Items: ``face``
    (15, 48, 96), ``mels`` (candidates, 1, 80, 16), ``offsets`` (candidates,) int, ``lips``
    (5 * LIP_FEATURES,) the window's lip-shape features (for the auxiliary loss) and ``has_lips``.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        length: int = 1_000_000,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        candidates: int = 8,
        min_offset: int = 3,
        max_offset: int = 15,
    ):
        super().__init__(clips, length, seed, augment)
        if candidates < 2:
            raise ValueError("a multi-way sample needs at least 2 candidates")
        self.candidates = candidates
        self.min_offset = min_offset
        self.max_offset = max_offset

    def negative_starts(self, starts: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        """``candidates - 1`` audio window starts near t but at least ``min_offset`` away."""
        distance = np.abs(starts - t)
        pool = starts[(distance >= self.min_offset) & (distance <= self.max_offset)]
        if len(pool) == 0:
            pool = starts[distance >= 1] if np.any(distance >= 1) else starts
        return rng.choice(pool, size=self.candidates - 1, replace=len(pool) < self.candidates - 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        c, t = self.draw_window(rng)
        clip = self.clips[c]
        audio_starts = np.concatenate([[t], self.negative_starts(self.starts[c], t, rng)]).astype(np.int64)
        jitter = draw_jitter(rng, self.augment) if self.augment else None
        face = stack_lower_halves(apply_jitter(clip.frames[t : t + SYNC_FRAMES], jitter))
        mels = []
        for start in audio_starts:
            mel = mel_window(clip, int(start))
            mels.append(augment_mel(mel, rng, self.augment) if self.augment else mel)
        lips = clip.lips[t : t + SYNC_FRAMES] if clip.lips is not None else np.zeros((SYNC_FRAMES, LIP_FEATURES), np.float32)
        return {
            "face": torch.from_numpy(face),
            "mels": torch.from_numpy(np.ascontiguousarray(np.stack(mels), dtype=np.float32))[:, None],
            "offsets": torch.from_numpy(audio_starts - t),
            "lips": torch.from_numpy(np.ascontiguousarray(lips, dtype=np.float32)).flatten(),
            "has_lips": torch.tensor(clip.lips is not None),
        }


class GeneratorWindows(_IndexedSampler):
    """Wav2Lip's generator protocol: 5 consecutive frames at t with their audio.

    Items (Wav2Lip's (C, T, H, W) layout, floats in [0, 1]): ``gt`` (3, 5, 96, 96) the real
    frames; ``masked`` the same with rows 48: zeroed (what the generator must paint);
    ``reference`` (3, 5, 96, 96) a window from the same clip starting at least
    ``reference_gap`` frames away (the farthest one if the clip is too short), so the mouth
    cannot be copied from it; ``mels`` (5, 1, 80, 16) each frame's window; ``sync_mel``
    (1, 80, 16) the window's audio for the sync expert. The same augmentation applies to target
    and reference (one camera), so the model learns appearance from the reference.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        length: int = 1_000_000,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        reference_gap: int = 25,
    ):
        super().__init__(clips, length, seed, augment)
        self.reference_gap = reference_gap

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        c, t = self.draw_window(rng)
        clip = self.clips[c]
        r = pick_far_start(self.starts[c], t, self.reference_gap, rng)
        jitter = draw_jitter(rng, self.augment) if self.augment else None
        both = apply_jitter(np.concatenate([clip.frames[t : t + SYNC_FRAMES], clip.frames[r : r + SYNC_FRAMES]]), jitter)
        gt = both[:SYNC_FRAMES].transpose(3, 0, 1, 2)  # (3, 5, 96, 96)
        reference = both[SYNC_FRAMES:].transpose(3, 0, 1, 2)
        masked = gt.copy()
        masked[:, :, HALF:] = 0.0
        mels = np.stack([mel_window(clip, t + k) for k in range(SYNC_FRAMES)])  # (5, 80, 16)
        if self.augment:
            mels = augment_mel(mels, rng, self.augment)  # one gain for the whole window
        sync_mel = mels[0]  # the window's audio = frame t's window (same start)
        return {
            "gt": torch.from_numpy(np.ascontiguousarray(gt)),
            "masked": torch.from_numpy(np.ascontiguousarray(masked)),
            "reference": torch.from_numpy(np.ascontiguousarray(reference)),
            "mels": torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32))[:, None],
            "sync_mel": torch.from_numpy(np.ascontiguousarray(sync_mel, dtype=np.float32))[None],
            "start": torch.tensor(t, dtype=torch.int64),
            "reference_start": torch.tensor(r, dtype=torch.int64),
            "clip": torch.tensor(c, dtype=torch.int64),
        }
