"""``lipdub train motion``: teach the lip motion model to predict lower-face motion from speech.

Data: every clip of a ``lipdub preprocess`` dataset that has its own synchronous speech (real and
synthetic talking heads). The Face Mesh points already in the dataset are the targets, so
training never decodes a picture: loading the whole shared corpus takes about a minute, training a
few minutes on two cores.

Targets, per frame (see `lipdub.motion.shape`): the canonical motion points minus the clip's rest
track, projected on a PCA basis fitted on the training split, divided by the clip's articulation
scale. The loss is the mean squared error of those coefficients plus, weighted by
``aperture_weight``, the error of the mouth opening they imply (the figure users see first).

Features (recipe ``features``): ``"mel"`` (default), the project's log-mel in 0.6 s windows
(`lipdub.motion.features`), or ``"whisper"``: frozen Whisper tiny.en encoder states
(`lipdub.media.speech_encoder`, the ``lipdub[whisper]`` extra), 384 channels at 50 a second in
0.62 s windows, each clip encoded alone (as inference does), cached per clip as
``<dataset>/features/whisper-tiny.en/<clip_id>.npy``: encoding the corpus takes about 90 s on the
2 cores; or ``"whisper-base"``: multilingual Whisper base (the ``lipdub[whisper-base]`` extra),
512 channels, cached in ``features/whisper-base/``, about three times the encoding time.

Validation is by speaker (the dataset's split). The headline figure is the Pearson r between the
predicted and the real mouth aperture per clip at lag 0, averaged per speaker and then over
speakers, so that 60 GRID sentences of one man weigh as much as one TV clip; the lag that
maximises r (within +-5 frames) is reported beside it.

Sampling is speaker-balanced in the same spirit: a speaker is drawn with probability proportional
to the square root of their frame count, then a clip of theirs by length, then a random window of
``sequence`` frames.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from lipdub.errors import LipdubError
from lipdub.eval.mouth import aperture_correlation
from lipdub.media.audio import is_silent
from lipdub.media.features import MelConfig, melspectrogram
from lipdub.models.lip_motion import POOLS, LipMotionNet
from lipdub.motion import shape as S
from lipdub.motion.features import (FEATURES, WINDOW_COLUMNS, feature_channels, feature_window, frame_windows, is_whisper,
                                    normalise_mel, whisper_windows)

logger = logging.getLogger(__name__)

MEL = MelConfig()


@dataclass
class MotionRecipe:
    """One training run's settings (saved as config.json beside the checkpoint)."""

    steps: int = 2500
    batch: int = 24
    sequence: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    coefficients: int = 12
    width: int = 128
    aperture_weight: float = 1.0
    #: Weight of 1 - r, the Pearson correlation of predicted and true mouth opening over each training
    #: sequence (weighted by how much the true opening moves in it): what the held-out figure
    #: measures, while the squared errors reward predicting the mean where the speech is ambiguous.
    correlation_weight: float = 0.0
    normalise_mel: bool = True
    standardise_mel: bool = False
    gain_jitter: float = 0.8  # +- uniform global mel shift (about +-10 dB)
    band_mask: int = 0  # widest run of mel bands blanked per training sequence (SpecAugment-style)
    dropout: float = 0.1
    #: How a frame window's encoded columns become one vector (`lipdub.models.lip_motion.POOLS`).
    pool: str = "mean"
    causal: bool = False
    lookahead: int = 8  # mel columns after the frame in the causal variant (100 ms)
    kinds: tuple[str, ...] = ("real", "synthetic")
    #: Which of the dataset's points are the targets: "measured" (Face Mesh per frame, no lag) or
    #: "smoothed" (the tracker's causal One-Euro output, one or two frames late on fast lips; what
    #: runs before this field existed trained on).
    landmarks: str = "measured"
    eval_every: int = 250
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    features: str = "mel"  # "mel" | "whisper" (Whisper tiny.en states; lipdub[whisper]) | "whisper-base"
    #: What the motion is measured from (`lipdub.motion.shape.video_rest`): "closed" (the moment's most
    #: closed mouth with the lips together: the model predicts the whole opening) or "envelope" (that
    #: mouth as it is; what runs before this field existed trained on).
    rest: str = "closed"

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        if self.features not in FEATURES:
            raise LipdubError(f"features must be one of {', '.join(FEATURES)}, not {self.features!r}")
        if self.pool not in POOLS:
            raise LipdubError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        if self.rest not in S.REST_KINDS:
            raise LipdubError(f"rest must be one of {', '.join(S.REST_KINDS)}, not {self.rest!r}")
        if is_whisper(self.features) and self.causal:
            raise LipdubError("Whisper features are offline only (the encoder reads 30 s windows): use causal=false")

    @property
    def in_bands(self) -> int:
        return feature_channels(self.features, MEL.n_mels)

    @classmethod
    def of_member(cls, recipe: dict) -> MotionRecipe:
        """The recipe a trained member's saved ``recipe`` dict describes (unknown keys dropped; a
        run from before the ``rest`` field measured its motion from the envelope)."""
        known = {k: v for k, v in recipe.items() if k in cls.__dataclass_fields__}
        return cls(**{"rest": "envelope", **known})

    @classmethod
    def from_json(cls, path: Path) -> MotionRecipe:
        from lipdub.train.common import config_from_json

        return config_from_json(cls, path)


@dataclass
class MotionClip:
    """One clip as the motion model sees it."""

    clip_id: str
    speaker: str
    kind: str
    split: str
    fps: float
    windows: np.ndarray  # (T, 80, 49) float16 mel, or (T, C, 31) `StateWindows` of Whisper states
    shapes: np.ndarray  # (T, P, 2) canonical motion points
    rest: np.ndarray  # (T, P, 2)
    motion: np.ndarray  # (T, P * 2)
    valid: np.ndarray  # (T,) bool
    scale: float
    features: str = "mel"  # what ``windows`` are
    #: The same frames' windows of the other feature kinds an ensemble reads ({"whisper": ...}).
    other_windows: dict = field(default_factory=dict)

    def windows_of(self, features: str):
        """The windows of feature kind ``features`` (this clip's own kind or one of `other_windows`)."""
        if features == self.features:
            return self.windows
        if features not in self.other_windows:
            raise LipdubError(f"clip {self.clip_id} was loaded without {features} features")
        return self.other_windows[features]


def clip_shapes(landmarks: np.ndarray, valid: np.ndarray, fps: float,
                rest_kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shapes, rest, motion) of one clip's (T, 478, 2) landmarks; invalid frames are NaN.
    ``rest_kind``: `lipdub.motion.shape.video_rest`'s ``kind``."""
    points = np.asarray(landmarks, np.float64).copy()
    points[~np.asarray(valid, bool)] = np.nan
    template = S.stable_template(points)
    transforms = S.canonical_transforms(points, template)
    shapes = S.canonical_motion_points(points, transforms)
    rest = S.video_rest(shapes, fps, rest_kind)
    return shapes, rest, S.speech_motion(shapes, rest)


def audio_windows(samples: np.ndarray, frames: int, fps: float, recipe: MotionRecipe) -> np.ndarray:
    """(frames, 80, 49) float32 motion-model windows of 16 kHz speech."""
    mel = melspectrogram(np.asarray(samples, np.float32), MEL)
    if recipe.normalise_mel:
        mel = normalise_mel(mel, standardise=recipe.standardise_mel)
    lookahead = recipe.lookahead if recipe.causal else None
    return frame_windows(mel, frames, fps, MEL, WINDOW_COLUMNS, lookahead=lookahead)


class WhisperStates:
    """Whisper encoder states of clips, each encoded alone, cached as ``<cache>/<clip_id>.npy``.

    ``features``: which Whisper variant (a `lipdub.media.speech_encoder.WHISPER_VARIANTS` key)."""

    def __init__(self, cache: Path | None, threads: int = 0, features: str = "whisper"):
        self.cache = Path(cache) if cache is not None else None
        self.threads = threads
        self.features = features
        self._encoder = None

    def states(self, clip_id: str, samples: np.ndarray) -> np.ndarray:
        """(ceil(len(samples) / 320), C) float16 states of one clip's 16 kHz samples."""
        path = self.cache / f"{clip_id}.npy" if self.cache is not None else None
        if path is not None and path.is_file():
            return np.load(path)
        if self._encoder is None:
            from lipdub.media.speech_encoder import WHISPER_VARIANTS, WhisperEncoder

            self._encoder = WhisperEncoder(threads=self.threads, variant=WHISPER_VARIANTS[self.features])
        states = self._encoder.features(np.asarray(samples, np.float32))[: -(-len(samples) // 320)].astype(np.float16)
        if path is not None:
            from lipdub.fileio import AtomicFile

            path.parent.mkdir(parents=True, exist_ok=True)
            with AtomicFile(path, overwrite=True) as handle:
                np.save(handle.file, states)
        return states


def whisper_cache(dataset: Path, features: str = "whisper") -> Path:
    """Where a dataset's Whisper states of one variant are cached (derived data of its audio):
    ``<dataset>/features/whisper-tiny.en`` or ``whisper-base``."""
    from lipdub.media.speech_encoder import WHISPER_VARIANTS

    return Path(dataset) / "features" / f"whisper-{WHISPER_VARIANTS[features].name}"


def load_motion_clips(dataset: Path, recipe: MotionRecipe,
                      progress: Callable[[int, int], None] | None = None,
                      also: Sequence[str] = ()) -> list[MotionClip]:
    """Every clip with audio of the kinds in ``recipe`` (both splits), ready for training.

    ``also``: other feature kinds to load beside the recipe's (an ensemble of mel and Whisper
    members reads both).
    """
    from lipdub.train.data import read_clips_table

    dataset = Path(dataset)
    rows = [r for r in read_clips_table(dataset) if r["kind"] in recipe.kinds and str(r.get("has_audio", "1")) == "1"]
    whisper = {kind: WhisperStates(whisper_cache(dataset, kind), recipe.threads, kind)
               for kind in dict.fromkeys([recipe.features, *also]) if is_whisper(kind)}
    clips = []
    for done, row in enumerate(rows):
        clip = load_motion_clip(dataset / "clips" / row["clip_id"], row, recipe, also=also, whisper=whisper)
        if clip is not None:
            clips.append(clip)
        if progress is not None:
            progress(done + 1, len(rows))
    return clips


def load_motion_clip(folder: Path, row: dict, recipe: MotionRecipe, also: Sequence[str] = (),
                     whisper: dict[str, WhisperStates] | None = None) -> MotionClip | None:
    """One dataset clip folder as a `MotionClip`; None (with a warning) when it cannot teach motion.

    ``also``: other feature kinds to load beside the recipe's; ``whisper``: the states source of
    each Whisper kind (default: encode without a cache)."""
    from lipdub.train.data import read_wav_mono16k

    with np.load(folder / "landmarks.npz") as npz:
        key = {"measured": "measured", "smoothed": "points"}.get(recipe.landmarks)
        if key is None:
            raise LipdubError(f"landmarks must be 'measured' or 'smoothed', got {recipe.landmarks!r}")
        if key not in npz.files:
            raise LipdubError(f"{folder} has no {recipe.landmarks} landmarks (a dataset from an older "
                              "`lipdub preprocess`): preprocess again, or --set landmarks=smoothed")
        points = np.asarray(npz[key], np.float32)
        valid = np.asarray(npz["valid"], bool)
    fps = float(row["fps"])
    try:
        shapes, rest, motion = clip_shapes(points, valid, fps, recipe.rest)
    except ValueError as error:
        logger.warning("skipping %s: %s", row["clip_id"], error)
        return None
    samples = read_wav_mono16k(folder / "audio.wav")
    if is_silent(samples):
        # A moving mouth over digital silence (a clip whose audio track is empty) would teach
        # the model that silence moves the lips.
        logger.warning("skipping %s: its audio is silent", row["clip_id"])
        return None
    windows = {}
    for kind in dict.fromkeys([recipe.features, *also]):
        if is_whisper(kind):
            source = (whisper or {}).get(kind) or WhisperStates(None, recipe.threads, kind)
            states = source.states(row["clip_id"], samples)
            windows[kind] = whisper_windows(states, len(points), fps)
        else:
            windows[kind] = audio_windows(samples, len(points), fps, recipe).astype(np.float16)
    ok = valid & np.isfinite(motion).all(axis=1)
    own = windows.pop(recipe.features)
    return MotionClip(row["clip_id"], row["speaker"], row["kind"], row["split"], fps,
                      own, shapes, rest, motion, ok, S.articulation_scale(motion[ok]), recipe.features, windows)


def aperture_direction(basis: S.MotionBasis) -> np.ndarray:
    """(K,) linear read-out of the aperture change (lower minus upper inner lip, y) from coefficients."""
    components = basis.components.astype(np.float64)
    return components[:, S.LOWER_INNER * 2 + 1] - components[:, S.UPPER_INNER * 2 + 1]


class _Sampler:
    """Speaker-balanced random windows of ``sequence`` frames (see the module docstring)."""

    def __init__(self, clips: Sequence[MotionClip], sequence: int, seed: int):
        self.clips = [c for c in clips if len(c.valid) >= sequence and c.valid.mean() > 0.5]
        if not self.clips:
            raise LipdubError(f"no training clip has {sequence} frames with a face")
        self.sequence = sequence
        self.rng = np.random.default_rng(seed)
        by_speaker: dict[str, list[int]] = defaultdict(list)
        for i, clip in enumerate(self.clips):
            by_speaker[clip.speaker].append(i)
        self.speakers = sorted(by_speaker)
        self.members = [by_speaker[s] for s in self.speakers]
        frames = np.array([sum(len(self.clips[i].valid) for i in m) for m in self.members], np.float64)
        self.speaker_p = np.sqrt(frames) / np.sqrt(frames).sum()

    def draw(self) -> tuple[MotionClip, int]:
        members = self.members[self.rng.choice(len(self.members), p=self.speaker_p)]
        lengths = np.array([len(self.clips[i].valid) for i in members], np.float64)
        clip = self.clips[members[self.rng.choice(len(members), p=lengths / lengths.sum())]]
        start = int(self.rng.integers(0, len(clip.valid) - self.sequence + 1))
        return clip, start


def _targets(clip: MotionClip, basis: S.MotionBasis, scale: float) -> np.ndarray:
    motion = np.nan_to_num(clip.motion)
    return (basis.encode(motion) / max(scale, 1e-6)).astype(np.float32)


def predict_coefficients(model: LipMotionNet, windows: np.ndarray) -> np.ndarray:
    """(T, K) coefficients for a whole clip's (T, 80, 49) windows, in eval mode."""
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(windows, np.float32))[None])
    return out[0].numpy().astype(np.float64)


def evaluate_clips(model: LipMotionNet, basis: S.MotionBasis, clips: Sequence[MotionClip]) -> dict:
    """Per-clip and per-speaker aperture r (prediction only) of ``clips``.

    Prediction only: the predicted motion is added to the clip's *mean* rest shape (a constant),
    so no slow information from the real video enters the predicted aperture.
    """
    rows = [aperture_figures(basis.decode(predict_coefficients(model, clip.windows)) * clip.scale, clip)
            for clip in clips if clip.valid.sum() >= 10]
    return summarise(rows)


def aperture_figures(motion: np.ndarray, clip: MotionClip) -> dict:
    """One clip's row: r (lag 0) and the best r within +-5 frames, with its lag, of the opening the
    (T, P * 2) predicted ``motion`` implies on the clip's mean rest shape, against the real opening."""
    predicted = S.aperture(np.nanmean(clip.rest, axis=0)[None] + motion.reshape(len(motion), -1, 2))
    real = np.where(clip.valid, S.aperture(clip.shapes), np.nan)
    best = aperture_correlation(predicted, real, max_lag=5)
    return {"clip": clip.clip_id, "speaker": clip.speaker, "kind": clip.kind, "frames": int(clip.valid.sum()),
            "r": aperture_correlation(predicted, real, max_lag=0).r, "best_r": best.r, "lag": best.lag}


def amplitude_gain(predict: Callable[[MotionClip], np.ndarray], clips: Sequence[MotionClip],
                   limits: tuple[float, float] = (1.0, 2.0)) -> float:
    """How much to amplify predictions so their mouth opening swings as widely as the real one.

    A regression trained on squared error shrinks towards the mean (an ensemble average shrinks a
    little more), so predicted openings are too timid. The gain is the RMS of the real opening
    motion over the RMS of the predicted one, both in articulation units, on *training* clips (no
    validation data touches the shipped model), clipped to ``limits``. ``predict`` maps a clip to
    its (T, P * 2) predicted motion in articulation units.
    """
    lower, upper = S.LOWER_INNER * 2 + 1, S.UPPER_INNER * 2 + 1
    real, predicted = [], []
    for clip in clips:
        motion = predict(clip)
        target = np.nan_to_num(clip.motion) / max(clip.scale, 1e-6)
        real.append((target[:, lower] - target[:, upper])[clip.valid])
        predicted.append((motion[:, lower] - motion[:, upper])[clip.valid])
    if not real:
        return 1.0
    real_rms = float(np.sqrt(np.mean(np.concatenate(real) ** 2)))
    predicted_rms = float(np.sqrt(np.mean(np.concatenate(predicted) ** 2)))
    return float(np.clip(real_rms / max(predicted_rms, 1e-9), *limits))


def summarise(rows: list[dict]) -> dict:
    """Means per speaker, then over speakers, separately for each kind of footage."""
    summary: dict = {"clips": rows}
    for kind in sorted({r["kind"] for r in rows}):
        speakers: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row["kind"] == kind:
                speakers[row["speaker"]].append(row)
        per_speaker = {s: {"r": float(np.mean([r["r"] for r in rs])),
                           "lag": float(np.mean([r["lag"] for r in rs])), "clips": len(rs)}
                       for s, rs in sorted(speakers.items())}
        summary[kind] = {
            "speakers": len(per_speaker),
            "r": float(np.mean([v["r"] for v in per_speaker.values()])),
            "mean_lag": float(np.mean([v["lag"] for v in per_speaker.values()])),
            "per_speaker": per_speaker,
        }
    return summary


def sequence_correlation(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                         eps: float = 1e-8) -> torch.Tensor:
    """Mean Pearson r of (B, T) ``predicted`` against ``target`` over the frames ``mask`` keeps,
    each sequence weighted by its target's standard deviation (a still mouth says nothing about
    timing, and its r is noise)."""
    count = mask.sum(dim=1).clamp(min=1.0)
    p = predicted - (predicted * mask).sum(dim=1, keepdim=True) / count[:, None]
    t = target - (target * mask).sum(dim=1, keepdim=True) / count[:, None]
    p, t = p * mask, t * mask
    covariance = (p * t).sum(dim=1)
    spread_p, spread_t = (p * p).sum(dim=1).sqrt(), (t * t).sum(dim=1).sqrt()
    r = covariance / (spread_p * spread_t + eps)
    weight = spread_t / count.sqrt()
    return (weight * r).sum() / (weight.sum() + eps)


def train_motion(dataset: Path, run_dir: Path, recipe: MotionRecipe,
                 progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Train, validate by speaker, and save checkpoint.pt + config.json + data.json + metrics.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    started = time.time()
    clips = load_motion_clips(dataset, recipe)
    train = [c for c in clips if c.split == "train"]
    val = [c for c in clips if c.split == "val"]
    if not train:
        raise LipdubError(f"{dataset} has no training clips with audio")
    overlap = {c.speaker for c in train} & {c.speaker for c in val}
    if overlap:
        raise LipdubError(f"speakers in both splits: {', '.join(sorted(overlap))}")
    logger.info("motion data: %d train clips (%d speakers), %d val clips (%d speakers), loaded in %.0f s",
                len(train), len({c.speaker for c in train}), len(val), len({c.speaker for c in val}),
                time.time() - started)
    motion = np.concatenate([c.motion[c.valid] / max(c.scale, 1e-6) for c in train])
    basis = S.MotionBasis.fit(motion, recipe.coefficients)
    default_scale = float(np.median([c.scale for c in train if c.kind == "real"] or [c.scale for c in train]))
    a_dir = torch.from_numpy(aperture_direction(basis).astype(np.float32))
    (run_dir / "data.json").write_text(json.dumps(
        {"dataset": str(dataset), "train": [c.clip_id for c in train], "val": [c.clip_id for c in val],
         "train_speakers": sorted({c.speaker for c in train}), "val_speakers": sorted({c.speaker for c in val})},
        indent=1))
    (run_dir / "config.json").write_text(json.dumps(asdict(recipe), indent=1))

    targets = {c.clip_id: _targets(c, basis, c.scale) for c in train}
    sampler = _Sampler(train, recipe.sequence, recipe.seed)
    model = LipMotionNet(recipe.coefficients, recipe.width, causal=recipe.causal, in_bands=recipe.in_bands,
                         dropout=recipe.dropout, pool=recipe.pool, window=feature_window(recipe.features))
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=recipe.lr, total_steps=recipe.steps,
                                                   pct_start=0.1)
    rng = np.random.default_rng(recipe.seed + 1)
    history, best = [], None
    for step in range(1, recipe.steps + 1):
        model.train()
        windows, target, mask = [], [], []
        for _ in range(recipe.batch):
            clip, start = sampler.draw()
            stop = start + recipe.sequence
            w = clip.windows[start:stop].astype(np.float32)
            if recipe.features == "mel":  # a level shift of the log-mel; Whisper states have no such axis
                w = w + rng.uniform(-recipe.gain_jitter, recipe.gain_jitter)
            if recipe.band_mask > 0:
                width = int(rng.integers(0, recipe.band_mask + 1))
                low = int(rng.integers(0, w.shape[1] - width + 1))
                w[:, low:low + width] = 0.0
            windows.append(w)
            target.append(targets[clip.clip_id][start:stop])
            mask.append(clip.valid[start:stop])
        x = torch.from_numpy(np.stack(windows))
        y = torch.from_numpy(np.stack(target))
        m = torch.from_numpy(np.stack(mask).astype(np.float32))[..., None]
        out = model(x)
        coefficient_loss = ((out - y) ** 2 * m).sum() / (m.sum() * recipe.coefficients)
        aperture_loss = (((out - y) @ a_dir) ** 2 * m[..., 0]).sum() / m.sum() / (a_dir @ a_dir)
        loss = coefficient_loss + recipe.aperture_weight * aperture_loss
        if recipe.correlation_weight:
            loss = loss + recipe.correlation_weight * (1.0 - sequence_correlation(out @ a_dir, y @ a_dir, m[..., 0]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % recipe.eval_every == 0 or step == recipe.steps:
            metrics = evaluate_clips(model, basis, val) if val else {}
            entry = {"step": step, "loss": float(loss.detach()), "coefficient_loss": float(coefficient_loss.detach()),
                     "aperture_loss": float(aperture_loss.detach()),
                     "val_real_r": metrics.get("real", {}).get("r"),
                     "val_synthetic_r": metrics.get("synthetic", {}).get("r"),
                     "seconds": round(time.time() - started, 1)}
            history.append(entry)
            logger.info("motion step %d: %s", step, entry)
            if progress is not None:
                progress(step, recipe.steps, entry)
    gain = amplitude_gain(lambda clip: basis.decode(predict_coefficients(model, clip.windows)),
                          [c for c in train if c.kind == "real"])
    state = {
        "state_dict": model.state_dict(),
        "basis": basis.to_dict(),
        "default_scale": default_scale,
        "gain": gain,
        "recipe": asdict(recipe),
        "step": recipe.steps,
    }
    torch.save(state, run_dir / "checkpoint.pt")
    final = evaluate_clips(model, basis, val) if val else {}
    train_fit = evaluate_clips(model, basis, [c for c in train if c.kind == "real"][:40])
    result = {"history": history, "val": final, "train_real_r": train_fit.get("real", {}).get("r"),
              "default_scale": default_scale, "gain": gain, "seconds": round(time.time() - started, 1)}
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=1))
    return result


# --- personalisation -----------------------------------------------------------------------------


def split_motion_clip(clip: MotionClip, fraction: float) -> tuple[MotionClip, MotionClip]:
    """The first ``fraction`` of a clip's frames and the rest, as two clips (same speaker, scale)."""
    from dataclasses import replace

    cut = int(round(len(clip.valid) * fraction))
    parts = []
    for part in (slice(0, cut), slice(cut, None)):
        parts.append(replace(clip, windows=clip.windows[part], shapes=clip.shapes[part], rest=clip.rest[part],
                             motion=clip.motion[part], valid=clip.valid[part],
                             other_windows={k: v[part] for k, v in clip.other_windows.items()}))
    return parts[0], parts[1]


def ensemble_motion(members, clip: MotionClip) -> np.ndarray:
    """(T, P * 2) mean decoded prediction of `lipdub.motion.predictor.MotionMember`s for a clip."""
    return np.mean([m.basis.decode(predict_coefficients(m.network, clip.windows_of(m.features))) for m in members],
                   axis=0)


def personalize_motion(clip: MotionClip, members, steps: int = 200, lr: float = 3e-4, sequence: int = 32,
                       batch: int = 8, train_fraction: float = 0.7, seed: int = 0) -> dict:
    """Fine-tune every member on the first ``train_fraction`` of one speaker's clip, in place.

    Returns the aperture r on the held-out rest of the clip before and after. Small learning rate,
    few steps, batch-norm statistics frozen (eval mode for BN): the model adapts to this voice and
    mouth without forgetting what speech does in general.
    """
    head, tail = split_motion_clip(clip, train_fraction)
    if len(head.valid) < sequence + 1 or len(tail.valid) < 10:
        raise LipdubError(f"the video is too short to personalise on ({len(clip.valid)} frames; need "
                          f"{int((sequence + 10) / train_fraction) + 1})")
    generic = aperture_figures(ensemble_motion(members, tail), tail)["r"]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    starts = np.flatnonzero([head.valid[s: s + sequence].mean() > 0.8 for s in range(len(head.valid) - sequence)])
    if len(starts) == 0:
        raise LipdubError("too few frames with a face to personalise on")
    for member in members:
        target = (member.basis.encode(np.nan_to_num(head.motion)) / max(head.scale, 1e-6)).astype(np.float32)
        optimiser = torch.optim.Adam(member.network.parameters(), lr=lr)
        for _ in range(steps):
            member.network.train()
            for module in member.network.modules():
                if isinstance(module, torch.nn.BatchNorm1d):
                    module.eval()
            picks = rng.choice(starts, size=batch)
            windows = head.windows_of(member.features)
            x = torch.from_numpy(np.stack([np.asarray(windows[s: s + sequence], np.float32) for s in picks]))
            y = torch.from_numpy(np.stack([target[s: s + sequence] for s in picks]))
            m = torch.from_numpy(np.stack([head.valid[s: s + sequence] for s in picks]).astype(np.float32))[..., None]
            loss = ((member.network(x) - y) ** 2 * m).sum() / (m.sum() * y.shape[-1])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        member.network.eval()
    personalised = aperture_figures(ensemble_motion(members, tail), tail)["r"]
    return {"frames_trained": int(len(head.valid)), "frames_held_out": int(len(tail.valid)), "steps": steps,
            "generic_r": generic, "personalised_r": personalised}
