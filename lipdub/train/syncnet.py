"""Training the lip-sync expert (SyncNet) and measuring it.

Loss (Wav2Lip's ``color_syncnet_train.py``): the cosine similarity of the audio and face
embeddings is used directly as the probability "in sync" and scored with binary cross-entropy.
Both networks end in a ReLU, so embeddings are non-negative and the cosine lies in [0, 1]; we
clamp it to [1e-6, 1 - 1e-6] so BCE stays finite. Keeping the raw cosine (rather than
(cos + 1) / 2) keeps the expert interchangeable with Wav2Lip's pretrained ``lipsync_expert.pth``
in the generator's sync loss.

Evaluation on val speakers: pair accuracy (cosine > 0.5 <=> in sync) on fixed in-sync and
off-sync pairs, and offset detection (:func:`offset_detection_accuracy`), the test that matters
for dubbing: can the expert tell which audio shift lines up with the mouth?
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lipdub.errors import LipdubError
from lipdub.media.features import mel_window_start
from lipdub.train import common
from lipdub.train.data import (
    MEL_CONFIG,
    SYNC_FRAMES,
    AugmentConfig,
    LIP_FEATURES,
    Clip,
    SyncCandidates,
    SyncPairs,
    apply_jitter,
    audio_frame_count,
    load_dataset,
    stack_lower_halves,
    valid_window_starts,
)

log = logging.getLogger(__name__)

SYNC_KINDS = ("real", "synthetic")  # clips whose audio is the face's own, synchronous speech


@dataclass
class SyncTrainConfig:
    """A SyncNet training recipe (configs/syncnet_*.json)."""

    architecture: str = "compact"  # "compact" (CompactSyncNet) | "wav2lip" (SyncNet_color)
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    steps: int = 3000
    eval_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 50
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    amp: bool = True
    augment: bool = True
    min_negative_offset: int = SYNC_FRAMES
    kinds: list[str] = field(default_factory=lambda: list(SYNC_KINDS))
    val_pairs: int = 512
    offset_window_seconds: float = 1.0
    max_offset: int = 15
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    loss: str = "bce"  # "bce": Wav2Lip's pairs; "multiway": BCE + a choice among same-clip offsets
    candidates: int = 8  # multiway: audio windows per face window (1 in sync)
    temperature: float = 0.1  # multiway: softmax temperature on the cosine similarities
    min_candidate_offset: int = 3  # multiway: nearest off-sync candidate, in frames
    aux_lip_weight: float = 0.0  # multiway: weight of predicting lip shape from both embeddings

    @classmethod
    def from_json(cls, path: Path) -> "SyncTrainConfig":
        return common.config_from_json(cls, path)


def model_embedding_size(model: nn.Module) -> int:
    """Size of the expert's embeddings (512 for both architectures), read off a dummy pass."""
    with torch.no_grad():
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        audio, _ = model(torch.zeros(1, 1, 80, 16, device=device), torch.zeros(1, 15, 48, 96, device=device))
        model.train(was_training)
    return int(audio.shape[1])


def build_syncnet(architecture: str) -> nn.Module:
    if architecture == "compact":
        from lipdub.models.compact_syncnet import CompactSyncNet

        return CompactSyncNet()
    if architecture == "wav2lip":
        from lipdub.models.syncnet import SyncNet

        return SyncNet()
    raise LipdubError(f"unknown SyncNet architecture {architecture!r} (compact | wav2lip)")


def load_syncnet(path: Path, architecture: str = "auto") -> nn.Module:
    """A trained expert from a checkpoint, in eval mode. "auto" tries both architectures."""
    from lipdub.models.checkpoint import load_state_dict

    state = load_state_dict(path)
    candidates = ["compact", "wav2lip"] if architecture == "auto" else [architecture]
    for name in candidates:
        model = build_syncnet(name)
        try:
            model.load_state_dict(state)
        except RuntimeError:
            continue
        return model.eval()
    raise LipdubError(f"{path} is not a SyncNet checkpoint ({' or '.join(candidates)})")


def sync_probability(audio_emb: torch.Tensor, face_emb: torch.Tensor) -> torch.Tensor:
    """Wav2Lip's P(in sync): cosine similarity of the unit embeddings, clamped into (0, 1)."""
    cosine = F.cosine_similarity(audio_emb.float(), face_emb.float(), dim=1)
    return cosine.clamp(1e-6, 1.0 - 1e-6)


def multiway_loss(audio_emb: torch.Tensor, face_emb: torch.Tensor, temperature: float) -> torch.Tensor:
    """Loss on multi-way samples: cross-entropy of choosing the in-sync window among the
    candidates (cosine / temperature as logits), plus Wav2Lip's BCE on the in-sync candidate and one
    off-sync candidate, which keeps the cosine usable as a probability by the generator's sync loss.

    audio_emb (B * K, D) of the candidates, sample-major with candidate 0 in sync; face_emb (B, D).
    """
    batch = face_emb.shape[0]
    candidates = audio_emb.shape[0] // batch
    cosine = (audio_emb.float().view(batch, candidates, -1) * face_emb.float()[:, None]).sum(-1)  # (B, K)
    choice = F.cross_entropy(cosine / temperature, torch.zeros(batch, dtype=torch.long, device=cosine.device))
    pairs = torch.stack([cosine[:, 0], cosine[:, 1]], dim=1).clamp(1e-6, 1 - 1e-6)
    labels = torch.zeros_like(pairs)
    labels[:, 0] = 1.0
    return choice + F.binary_cross_entropy(pairs, labels)


class LipShapeHeads(nn.Module):
    """Training-only linear heads that read the window's lip shape off each embedding.

    Why: with minutes of video the sync objective alone gives the encoders almost no signal for
    hundreds of steps (the mouth must be found before it can be matched). Face Mesh gives exact
    lip landmarks for every frame for free; asking the face embedding to predict them teaches the
    face encoder where and what the mouth is, and asking the in-sync audio embedding to predict the
    same shapes is the audio -> mouth-shape task itself. The heads are not part of the expert and
    are dropped after training; targets are standardised with train-set statistics.
    """

    def __init__(self, embedding: int, targets: int, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.face = nn.Linear(embedding, targets)
        self.audio = nn.Linear(embedding, targets)
        # Unit-length embeddings have entries ~ 1/sqrt(D): rescale them to unit scale, or the heads'
        # weights must grow ~sqrt(D)-fold at the optimiser's step size before they predict anything.
        self.input_scale = float(embedding) ** 0.5
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-4))

    def loss(self, face_emb: torch.Tensor, audio_emb: torch.Tensor, lips: torch.Tensor, has_lips: torch.Tensor) -> torch.Tensor:
        if not bool(has_lips.any()):
            return face_emb.new_zeros(())
        target = ((lips - self.mean) / self.std)[has_lips]
        face_error = F.mse_loss(self.face(face_emb.float()[has_lips] * self.input_scale), target)
        audio_error = F.mse_loss(self.audio(audio_emb.float()[has_lips] * self.input_scale), target)
        return face_error + audio_error


def _lip_statistics(clips: Sequence[Clip]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the 5-frame lip-shape target over the train clips' valid frames."""
    rows = [clip.lips[clip.valid[: len(clip.lips)]] for clip in clips if clip.lips is not None]
    features = np.concatenate(rows) if rows else np.zeros((1, 1), np.float32)
    mean, std = features.mean(axis=0), features.std(axis=0)
    return torch.from_numpy(np.tile(mean, SYNC_FRAMES)), torch.from_numpy(np.tile(std, SYNC_FRAMES))


def sync_loss(audio_emb: torch.Tensor, face_emb: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """BCE of :func:`sync_probability` against labels (1 = in sync), in float32 (AMP-safe)."""
    return F.binary_cross_entropy(sync_probability(audio_emb, face_emb), label.float())


# --- Offset detection ----------------------------------------------------------------------------


def offset_distances(face_emb: np.ndarray, audio_emb: np.ndarray, starts: np.ndarray, max_offset: int) -> np.ndarray:
    """Mean embedding distance over a window for each audio shift -max_offset .. +max_offset.

    ``face_emb[t]``: embedding of the 5 frames starting at t; ``audio_emb[s]``: of the mel
    window starting at frame s; ``starts``: the window's frame starts t. Entry k is the mean
    over t of ||face_emb[t] - audio_emb[t + k - max_offset]|| (the caller guarantees indices
    are in range). Returns (2 * max_offset + 1,).
    """
    offsets = np.arange(-max_offset, max_offset + 1)
    out = np.empty(len(offsets))
    for k, offset in enumerate(offsets):
        diff = face_emb[starts] - audio_emb[starts + offset]
        out[k] = np.linalg.norm(diff, axis=1).mean()
    return out


@dataclass
class ClipEmbeddings:
    """Per-frame embeddings of one clip under a SyncNet: ``face`` (N, D) for the 5-frame window
    starting at each frame (NaN where any of its frames has no face or it runs off the end);
    ``audio`` (M, D) for the mel window starting at each of the M frames with a full window."""

    face: np.ndarray
    audio: np.ndarray


@torch.no_grad()
def clip_embeddings(model: nn.Module, clip: Clip, device: torch.device | None = None, batch_size: int = 64) -> ClipEmbeddings:
    """Embed every face window and every audio window of a clip (no augmentation)."""
    if clip.mel is None:
        raise LipdubError(f"clip {clip.clip_id} has no audio")
    device = device or next(model.parameters(), torch.empty(0)).device
    n_faces = len(clip.frames) - SYNC_FRAMES + 1
    n_audio = audio_frame_count(clip.mel.shape[1], clip.fps)
    face_ok = np.zeros(max(n_faces, 0), dtype=bool)
    face_ok[valid_window_starts(clip.valid, SYNC_FRAMES)] = True
    total = max(n_faces, n_audio)
    face_out, audio_out = [], []
    for begin in range(0, total, batch_size):
        idx = range(begin, min(begin + batch_size, total))
        faces = np.stack(
            [stack_lower_halves(apply_jitter(clip.frames[min(i, n_faces - 1) : min(i, n_faces - 1) + SYNC_FRAMES], None)) for i in idx]
        )
        mels = np.stack([_mel_at(clip, min(i, n_audio - 1)) for i in idx])[:, None]
        audio_emb, face_emb = model(torch.from_numpy(mels).to(device), torch.from_numpy(faces).to(device))
        audio_out.append(audio_emb.float().cpu().numpy())
        face_out.append(face_emb.float().cpu().numpy())
    face = np.concatenate(face_out)[:n_faces]
    face[~face_ok] = np.nan
    return ClipEmbeddings(face=face, audio=np.concatenate(audio_out)[:n_audio])


def _mel_at(clip: Clip, frame_index: int) -> np.ndarray:
    start = mel_window_start(frame_index, clip.fps, MEL_CONFIG)
    return clip.mel[:, start : start + MEL_CONFIG.window_frames]


def offset_windows(embeddings: ClipEmbeddings, window: int, max_offset: int) -> list[np.ndarray]:
    """Non-overlapping windows of ``window`` face starts where every face embedding exists and
    every shift in +-max_offset has audio: the frame starts of each window."""
    n_faces, n_audio = len(embeddings.face), len(embeddings.audio)
    face_ok = ~np.isnan(embeddings.face).any(axis=1)
    windows = []
    t = max_offset
    while t + window - 1 + max_offset < n_audio and t + window <= n_faces:
        starts = np.arange(t, t + window)
        if face_ok[starts].all():
            windows.append(starts)
            t += window
        else:
            t += 1
    return windows


@dataclass
class ClipOffsets:
    """What an expert says about one clip's audio-visual alignment.

    ``window_offsets``: the best audio shift (frames) of each non-overlapping window;
    ``clip_offset``: the best shift of the curve averaged over the whole clip (syncnet_python's
    per-video offset) and ``confidence`` its median - minimum distance. A clip whose recording
    carries its own lag (common in broadcast footage) shows windows clustered around a non-zero
    ``clip_offset``: the expert is consistent, the file's "0" is not true sync.
    """

    clip_id: str
    window_offsets: list[int]
    clip_offset: int
    confidence: float

    def hits(self, around: int = 0, tolerance: int = 1) -> int:
        """Windows whose best shift is within +-``tolerance`` frames of ``around``."""
        return sum(abs(o - around) <= tolerance for o in self.window_offsets)


def whole_clip_curve(embeddings: ClipEmbeddings, max_offset: int) -> np.ndarray | None:
    """Mean distance per shift over every face window that has audio at all shifts, or None."""
    n_faces, n_audio = len(embeddings.face), len(embeddings.audio)
    face_ok = ~np.isnan(embeddings.face).any(axis=1)
    starts = np.arange(max_offset, min(n_faces, n_audio - max_offset))
    starts = starts[face_ok[starts]]
    if len(starts) == 0:
        return None
    return offset_distances(embeddings.face, embeddings.audio, starts, max_offset)


def offsets_from_embeddings(clip_id: str, embeddings: ClipEmbeddings, window: int, max_offset: int) -> ClipOffsets:
    """A clip's per-window best shifts (``window`` frames each) and whole-clip shift with its
    confidence, from its face and audio embeddings, whatever network made them."""
    offsets = [
        int(np.argmin(offset_distances(embeddings.face, embeddings.audio, starts, max_offset))) - max_offset
        for starts in offset_windows(embeddings, window, max_offset)
    ]
    curve = whole_clip_curve(embeddings, max_offset)
    if curve is None:
        return ClipOffsets(clip_id, offsets, 0, 0.0)
    return ClipOffsets(clip_id, offsets, int(np.argmin(curve)) - max_offset, float(np.median(curve) - curve.min()))


def clip_offsets(
    model: nn.Module,
    clips: Sequence[Clip],
    window_seconds: float = 1.0,
    max_offset: int = 15,
    device: torch.device | None = None,
) -> list[ClipOffsets]:
    """Per clip with audio: the best shift of each ``window_seconds`` window and of the whole clip,
    searched over -max_offset .. +max_offset frames (windows as in :func:`offset_windows`)."""
    model_was_training = model.training
    model.eval()
    out = []
    try:
        for clip in clips:
            if clip.mel is None:
                continue
            window = max(1, int(round(clip.fps * window_seconds)))
            out.append(offsets_from_embeddings(clip.clip_id, clip_embeddings(model, clip, device), window, max_offset))
    finally:
        model.train(model_was_training)
    return out


def offset_detection_accuracy(
    model: nn.Module,
    clips: Sequence[Clip],
    window_seconds: float = 1.0,
    max_offset: int = 15,
    device: torch.device | None = None,
    tolerance: int = 1,
) -> float:
    """Fraction of 1-second windows where the audio shift of minimum mean embedding distance,
    searched over -max_offset .. +max_offset frames, is within +-``tolerance`` frames of 0.

    Windows are ``round(fps * window_seconds)`` frames, non-overlapping, all with a face. A
    random expert scores about (2 * tolerance + 1) / (2 * max_offset + 1) (= 0.10 by default).
    """
    per_clip = clip_offsets(model, clips, window_seconds, max_offset, device)
    if not any(c.window_offsets for c in per_clip):
        raise LipdubError(f"no clip is long enough for a {window_seconds:g} s window with +-{max_offset} frames of shift")
    return window_hit_rate(per_clip, tolerance=tolerance)


def window_hit_rate(per_clip: Sequence[ClipOffsets], own_offset: bool = False, tolerance: int = 1) -> float:
    """Fraction of all windows (of clips that have some) whose best shift is within +-``tolerance``
    frames of 0, or of their own clip's offset with ``own_offset``."""
    total = sum(len(c.window_offsets) for c in per_clip)
    hits = sum(c.hits(c.clip_offset if own_offset else 0, tolerance) for c in per_clip)
    return hits / total


@torch.no_grad()
def pair_accuracy(model: nn.Module, pairs: SyncPairs, count: int, device: torch.device, batch_size: int = 64) -> dict[str, float]:
    """Accuracy of "cosine > 0.5 means in sync" on the first ``count`` pairs (fixed by the
    sampler's seed), overall and on positives / negatives, plus the mean BCE."""
    model.eval()
    correct = {1.0: 0, 0.0: 0}
    seen = {1.0: 0, 0.0: 0}
    losses = []
    for begin in range(0, count, batch_size):
        items = [pairs[i] for i in range(begin, min(begin + batch_size, count))]
        face = torch.stack([it["face"] for it in items]).to(device)
        mel = torch.stack([it["mel"] for it in items]).to(device)
        label = torch.stack([it["label"] for it in items]).to(device)
        audio_emb, face_emb = model(mel, face)
        prob = sync_probability(audio_emb, face_emb)
        losses.append(F.binary_cross_entropy(prob, label, reduction="sum").item())
        for y in (0.0, 1.0):
            mask = label == y
            seen[y] += int(mask.sum())
            correct[y] += int(((prob > 0.5).float() == label)[mask].sum())
    model.train()
    n = max(1, seen[0.0] + seen[1.0])
    return {
        "val_loss": sum(losses) / n,
        "val_pair_acc": (correct[0.0] + correct[1.0]) / n,
        "val_pos_acc": correct[1.0] / max(1, seen[1.0]),
        "val_neg_acc": correct[0.0] / max(1, seen[0.0]),
    }


# --- Training ------------------------------------------------------------------------------------


def _optional_sampler(build, clips):
    """A validation sampler, or None (with a warning) when no val clip has usable windows."""
    if not clips:
        log.warning("no validation clips: best.pt follows the training loss")
        return None
    try:
        return build()
    except LipdubError as exc:
        log.warning("validation disabled: %s", exc)
        return None


def train_syncnet(dataset: Path, run_dir: Path, config: SyncTrainConfig, resume: bool = True) -> dict[str, float]:
    """Train a SyncNet on a preprocessed dataset; returns the last evaluation's metrics.

    Writes config.json, seed.txt, data_list.txt, metrics.csv, checkpoint.pt and best.pt (best =
    highest offset-detection accuracy, ties broken by pair accuracy) into ``run_dir``. With
    ``resume`` and an existing run_dir/checkpoint.pt, continues from its step and optimizer.
    """
    run_dir = Path(run_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    common.seed_everything(config.seed)
    device = common.resolve_device(config.device)
    train_clips = load_dataset(dataset, "train", kinds=config.kinds)
    val_clips = load_dataset(dataset, "val", kinds=config.kinds)
    if not train_clips:
        raise LipdubError(f"{dataset}: no training clips of kind {', '.join(config.kinds)} with audio")
    common.prepare_run_dir(
        run_dir, config, config.seed, {"train": [c.clip_id for c in train_clips], "val": [c.clip_id for c in val_clips]}
    )

    model = build_syncnet(config.architecture).to(device)
    heads = None
    parameters = list(model.parameters())
    if config.aux_lip_weight > 0:
        if config.loss != "multiway":
            raise LipdubError("aux_lip_weight needs loss=multiway")
        heads = LipShapeHeads(model_embedding_size(model), SYNC_FRAMES * LIP_FEATURES, *_lip_statistics(train_clips)).to(device)
        parameters += list(heads.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    scaler = common.make_scaler(device, config.amp)
    step, best_score = 0, -math.inf
    state = common.load_training_state(run_dir / common.LATEST_CHECKPOINT) if resume else None
    if state is not None:
        model.load_state_dict(state["state_dict"])
        if heads is not None and "aux_heads" in state.get("extra", {}):
            heads.load_state_dict(state["extra"]["aux_heads"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["global_step"])
        best_score = float(state.get("extra", {}).get("best_score", -math.inf))
        if "scaler" in state.get("extra", {}):
            scaler.load_state_dict(state["extra"]["scaler"])
        log.info("resuming %s from step %d", run_dir, step)
    metrics_log = common.MetricsLog(run_dir / common.METRICS_FILE, resume_step=step)

    augment = AugmentConfig() if config.augment else None
    if config.loss == "multiway":
        train_pairs = SyncCandidates(train_clips, seed=config.seed, augment=augment, candidates=config.candidates,
                                     min_offset=config.min_candidate_offset, max_offset=config.max_offset)
    elif config.loss == "bce":
        train_pairs = SyncPairs(train_clips, seed=config.seed, augment=augment, min_offset=config.min_negative_offset)
    else:
        raise LipdubError(f"unknown SyncNet loss {config.loss!r} (bce or multiway)")
    val_pairs = _optional_sampler(lambda: SyncPairs(val_clips, seed=12345, min_offset=config.min_negative_offset), val_clips)

    def checkpoint(path: Path, metrics: dict[str, float]) -> None:
        extra = {"architecture": config.architecture, "best_score": best_score, "metrics": metrics, "scaler": scaler.state_dict()}
        if heads is not None:
            extra["aux_heads"] = heads.state_dict()
        common.save_training_state(path, model, optimizer, step, extra)

    last: dict[str, float] = {"step": step}
    running: list[float] = []
    started = time.perf_counter()
    model.train()
    for batch in common.batches(train_pairs, step, config.steps, config.batch_size, config.num_workers):
        face = batch["face"].to(device, non_blocking=True)
        if config.loss == "multiway":
            mels = batch["mels"].to(device, non_blocking=True)
            with common.autocast(device, config.amp):
                audio_emb, face_emb = model(mels.flatten(0, 1), face)  # the two encoders run independently
            loss = multiway_loss(audio_emb, face_emb, config.temperature)
            if heads is not None:
                in_sync = audio_emb.view(face_emb.shape[0], -1, audio_emb.shape[-1])[:, 0]
                lips, has_lips = batch["lips"].to(device), batch["has_lips"].to(device)
                loss = loss + config.aux_lip_weight * heads.loss(face_emb, in_sync, lips, has_lips)
        else:
            mel = batch["mel"].to(device, non_blocking=True)
            label = batch["label"].to(device, non_blocking=True)
            with common.autocast(device, config.amp):
                audio_emb, face_emb = model(mel, face)
            loss = sync_loss(audio_emb, face_emb, label)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        running.append(loss.item())
        if step % config.log_every == 0:
            log.info("step %d loss %.4f (%.2f steps/s)", step, np.mean(running[-config.log_every :]), len(running) / (time.perf_counter() - started))
        if step % config.eval_every == 0 or step == config.steps:
            last = {"step": step, "loss": float(np.mean(running[-config.eval_every :]))}
            last["steps_per_s"] = len(running) / (time.perf_counter() - started)
            if val_pairs is not None:
                last.update(pair_accuracy(model, val_pairs, config.val_pairs, device))
                try:
                    last["val_offset_acc"] = offset_detection_accuracy(
                        model, val_clips, config.offset_window_seconds, config.max_offset, device
                    )
                except LipdubError:
                    last["val_offset_acc"] = float("nan")
            metrics_log.append(last)
            log.info("eval %s", {k: round(v, 4) for k, v in last.items()})
            score = (last.get("val_offset_acc", float("nan")), last.get("val_pair_acc", -last["loss"]))
            score_value = (0.0 if math.isnan(score[0]) else score[0]) * 10 + score[1]
            if score_value > best_score:
                best_score = score_value
                checkpoint(run_dir / common.BEST_CHECKPOINT, last)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint(run_dir / common.LATEST_CHECKPOINT, last)
    return last
