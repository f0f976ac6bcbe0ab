"""Training the generator (Wav2Lip's objective) and personalising it to one speaker.

Loss per step, as in Wav2Lip's ``hq_wav2lip_train.py``:

    loss = sync_w * sync + disc_w * gan + (1 - sync_w - disc_w) * L1

- L1: mean absolute error against the real frames (whole crop; the upper half is given, so
  the error concentrates on the mouth).
- sync: the generated 5-frame window's lower halves and the window's audio go through a
  FROZEN expert SyncNet; BCE of its cosine against "in sync". Its weight is 0 until
  ``sync_start_step``, then ramps linearly to ``sync_weight`` (0.03) over ``sync_ramp_steps``:
  early, blurry outputs give the expert nothing meaningful to judge (Wav2Lip switches it on once
  the L1 has converged enough).
- gan (optional): a visual-quality discriminator on the mouth half from ``disc_start_step`` on,
  weight ``disc_weight`` (0.07): Wav2Lip's own (``disc_architecture="wav2lip"``, 14 M) or lipdub's
  PatchGAN-style ``CompactDiscriminator`` (0.46 M, the default: affordable on a CPU and slower to
  memorise minutes of mouths). L1 alone averages the possible mouths into a blur; the GAN term
  pushes towards one sharp mouth.

Little data: the samplers augment (shift/scale, colour, flip, mel gain/noise) and the reference
window is drawn at least ``reference_gap`` frames away so the mouth cannot be copied.
Validation: L1 on val speakers' windows and the expert's mean embedding distance between each
generated window and its audio (``val_sync_dist``; the real frames' value is ``val_sync_dist_gt``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lipdub.errors import LipdubError
from lipdub.models.sequences import fold_audio_time, fold_time, unfold_time
from lipdub.train import common
from lipdub.train.data import (
    HALF,
    SYNC_FRAMES,
    AugmentConfig,
    Clip,
    GeneratorWindows,
    load_clip_dir,
    read_av_offsets,
    load_dataset,
    read_clips_table,
)
from lipdub.train.syncnet import SYNC_KINDS, _optional_sampler, load_syncnet, sync_loss

log = logging.getLogger(__name__)


@dataclass
class GeneratorTrainConfig:
    """A generator training recipe (configs/generator_*.json)."""

    architecture: str = "compact"  # "compact" (CompactGenerator) | "wav2lip"
    width: float = 1.0  # CompactGenerator's channel multiplier
    batch_size: int = 8  # 5-frame windows per step (x5 frames)
    lr: float = 1e-4
    steps: int = 2000
    eval_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 50
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    amp: bool = True
    augment: bool = True
    reference_gap: int = 25
    kinds: list[str] = field(default_factory=lambda: list(SYNC_KINDS))
    syncnet_checkpoint: str | None = None  # frozen expert; None = no sync loss
    syncnet_architecture: str = "auto"
    sync_weight: float = 0.03
    sync_start_step: int = 0
    sync_ramp_steps: int = 500
    disc_weight: float = 0.07
    disc_start_step: int | None = None  # None = no GAN stage
    disc_architecture: str = "compact"  # "compact" (CompactDiscriminator, 0.46 M) | "wav2lip" (14.1 M)
    disc_lr: float = 1e-4
    init_checkpoint: str | None = None  # start from these generator weights (fine-tuning)
    val_windows: int = 64
    threads: int = 0

    @classmethod
    def from_json(cls, path: Path) -> "GeneratorTrainConfig":
        return common.config_from_json(cls, path)


def build_generator(architecture: str, width: float = 1.0) -> nn.Module:
    if architecture == "compact":
        from lipdub.models.compact import CompactGenerator

        return CompactGenerator(width=width)
    if architecture == "wav2lip":
        from lipdub.models.wav2lip import Wav2Lip

        return Wav2Lip()
    raise LipdubError(f"unknown generator architecture {architecture!r} (compact | wav2lip)")


def build_discriminator(architecture: str) -> nn.Module:
    if architecture == "compact":
        from lipdub.models.compact_discriminator import CompactDiscriminator

        return CompactDiscriminator()
    if architecture == "wav2lip":
        from lipdub.models.discriminator import VisualQualityDiscriminator

        return VisualQualityDiscriminator()
    raise LipdubError(f"unknown discriminator architecture {architecture!r} (compact | wav2lip)")


def ramp_weight(step: int, start: int, ramp_steps: int, final: float) -> float:
    """0 before ``start``, then linear up to ``final`` over ``ramp_steps`` steps, then ``final``."""
    if step < start:
        return 0.0
    if ramp_steps <= 0:
        return final
    return final * min(1.0, (step - start + 1) / ramp_steps)


def generate(model: nn.Module, masked: torch.Tensor, reference: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, 96, 96) x2 + (B, T, 1, 80, 16) -> (B, 3, T, 96, 96): every frame independently."""
    batch = masked.size(0)
    faces = fold_time(torch.cat([masked, reference], dim=1))  # (T*B, 6, 96, 96)
    out = model(fold_audio_time(mels), faces)  # (T*B, 3, 96, 96)
    return unfold_time(out, batch)


def window_lower_halves(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, 96, 96) -> (B, 3T, 48, 96): the expert's face input, frame-major channels."""
    lower = frames[:, :, :, HALF:]  # (B, 3, T, 48, 96)
    return lower.transpose(1, 2).reshape(lower.size(0), -1, lower.size(3), lower.size(4))


def expert_sync_loss(expert: nn.Module, frames: torch.Tensor, sync_mel: torch.Tensor) -> torch.Tensor:
    """BCE of the frozen expert's P(in sync) for generated windows, against 1."""
    audio_emb, face_emb = expert(sync_mel, window_lower_halves(frames))
    return sync_loss(audio_emb, face_emb, torch.ones(frames.size(0), device=frames.device))


def expert_distance(expert: nn.Module, frames: torch.Tensor, sync_mel: torch.Tensor) -> torch.Tensor:
    """(B,) Euclidean distance of the expert's unit embeddings (lower = more in sync)."""
    audio_emb, face_emb = expert(sync_mel, window_lower_halves(frames))
    return (audio_emb.float() - face_emb.float()).norm(dim=1)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate_generator(
    model: nn.Module,
    windows: GeneratorWindows,
    count: int,
    device: torch.device,
    expert: nn.Module | None = None,
    batch_size: int = 16,
) -> dict[str, float]:
    """Val metrics on the first ``count`` windows of a fixed (seeded, unaugmented) sampler."""
    was_training = model.training
    model.eval()
    l1, dist, dist_gt, n = 0.0, 0.0, 0.0, 0
    for begin in range(0, count, batch_size):
        items = [windows[i] for i in range(begin, min(begin + batch_size, count))]
        batch = _to({k: torch.stack([it[k] for it in items]) for k in items[0]}, device)
        fake = generate(model, batch["masked"], batch["reference"], batch["mels"]).float()
        l1 += F.l1_loss(fake, batch["gt"], reduction="none").mean(dim=(1, 2, 3, 4)).sum().item()
        if expert is not None:
            dist += expert_distance(expert, fake, batch["sync_mel"]).sum().item()
            dist_gt += expert_distance(expert, batch["gt"], batch["sync_mel"]).sum().item()
        n += len(items)
    model.train(was_training)
    out = {"val_l1": l1 / max(1, n)}
    if expert is not None:
        out["val_sync_dist"] = dist / max(1, n)
        out["val_sync_dist_gt"] = dist_gt / max(1, n)
    return out


@dataclass
class _Trainer:
    """The objects one generator run moves forward step by step (also used by personalize)."""

    config: GeneratorTrainConfig
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    expert: nn.Module | None
    disc: nn.Module | None
    disc_optimizer: torch.optim.Optimizer | None

    @classmethod
    def create(cls, config: GeneratorTrainConfig) -> "_Trainer":
        device = common.resolve_device(config.device)
        model = build_generator(config.architecture, config.width).to(device)
        if config.init_checkpoint:
            if not Path(config.init_checkpoint).is_file():
                raise LipdubError(f"generator checkpoint not found: {config.init_checkpoint}")
            from lipdub.models.checkpoint import load_state_dict

            model.load_state_dict(load_state_dict(config.init_checkpoint))
        expert = None
        if config.syncnet_checkpoint:
            if not Path(config.syncnet_checkpoint).is_file():
                raise LipdubError(
                    f"sync expert not found: {config.syncnet_checkpoint} "
                    "(train one with `lipdub train syncnet`, or set syncnet_checkpoint to null)"
                )
            expert = load_syncnet(Path(config.syncnet_checkpoint), config.syncnet_architecture).to(device)
            for p in expert.parameters():
                p.requires_grad_(False)
        disc = disc_optimizer = None
        if config.disc_start_step is not None:
            disc = build_discriminator(config.disc_architecture).to(device)
            disc_optimizer = torch.optim.Adam(disc.parameters(), lr=config.disc_lr, betas=(0.5, 0.999))
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.5, 0.999))
        return cls(config, device, model, optimizer, common.make_scaler(device, config.amp), expert, disc, disc_optimizer)

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """One optimisation step at global step ``step`` (0-based); returns its losses."""
        config, device = self.config, self.device
        batch = _to(batch, device)
        sync_w = ramp_weight(step, config.sync_start_step, config.sync_ramp_steps, config.sync_weight) if self.expert else 0.0
        gan_on = self.disc is not None and step >= config.disc_start_step
        disc_w = config.disc_weight if gan_on else 0.0
        with common.autocast(device, config.amp):
            fake = generate(self.model, batch["masked"], batch["reference"], batch["mels"])
        fake = fake.float()
        l1 = F.l1_loss(fake, batch["gt"])
        loss = (1.0 - sync_w - disc_w) * l1
        out = {"l1": l1.item()}
        if self.expert is not None and sync_w > 0:
            with common.autocast(device, config.amp):
                s = expert_sync_loss(self.expert, fake, batch["sync_mel"])
            loss = loss + sync_w * s
            out["sync"] = s.item()
        if gan_on:
            with common.autocast(device, config.amp):
                pred = self.disc(fake)
            g = F.binary_cross_entropy(pred.float().clamp(1e-6, 1 - 1e-6), torch.ones_like(pred, dtype=torch.float32))
            loss = loss + disc_w * g
            out["gan"] = g.item()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        if gan_on:
            with common.autocast(device, config.amp):
                real_pred = self.disc(batch["gt"])
                fake_pred = self.disc(fake.detach())
            d = F.binary_cross_entropy(real_pred.float().clamp(1e-6, 1 - 1e-6), torch.ones_like(real_pred, dtype=torch.float32))
            d = d + F.binary_cross_entropy(fake_pred.float().clamp(1e-6, 1 - 1e-6), torch.zeros_like(fake_pred, dtype=torch.float32))
            self.disc_optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(d).backward()
            self.scaler.step(self.disc_optimizer)
            out["disc"] = d.item()
        self.scaler.update()
        out["loss"] = loss.item()
        out["sync_w"] = sync_w
        return out

    def extra(self, best_score: float, metrics: dict[str, float]) -> dict:
        extra = {
            "architecture": self.config.architecture,
            "width": self.config.width,
            "best_score": best_score,
            "metrics": metrics,
            "scaler": self.scaler.state_dict(),
        }
        if self.disc is not None:
            extra["disc"] = self.disc.state_dict()
            extra["disc_optimizer"] = self.disc_optimizer.state_dict()
        return extra

    def restore(self, state: dict) -> tuple[int, float]:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        extra = state.get("extra", {})
        if "scaler" in extra:
            self.scaler.load_state_dict(extra["scaler"])
        if self.disc is not None and "disc" in extra:
            self.disc.load_state_dict(extra["disc"])
            self.disc_optimizer.load_state_dict(extra["disc_optimizer"])
        return int(state["global_step"]), float(extra.get("best_score", -math.inf))


def _run(
    trainer: _Trainer,
    train_windows: GeneratorWindows,
    val_windows: GeneratorWindows | None,
    run_dir: Path,
    resume: bool,
) -> dict[str, float]:
    """The training loop shared by train_generator and personalize."""
    config = trainer.config
    step, best_score = 0, -math.inf
    state = common.load_training_state(run_dir / common.LATEST_CHECKPOINT) if resume else None
    if state is not None:
        step, best_score = trainer.restore(state)
        log.info("resuming %s from step %d", run_dir, step)
    metrics_log = common.MetricsLog(run_dir / common.METRICS_FILE, resume_step=step)
    last: dict[str, float] = {"step": step}
    running: list[dict[str, float]] = []
    started = time.perf_counter()
    trainer.model.train()
    for batch in common.batches(train_windows, step, config.steps, config.batch_size, config.num_workers):
        running.append(trainer.step(batch, step))
        step += 1
        if step % config.log_every == 0:
            log.info("step %d l1 %.4f (%.2f steps/s)", step, np.mean([r["l1"] for r in running[-config.log_every :]]), len(running) / (time.perf_counter() - started))
        if step % config.eval_every == 0 or step == config.steps:
            recent = running[-config.eval_every :]
            last = {"step": step}
            for key in ("loss", "l1", "sync", "gan", "disc"):
                values = [r[key] for r in recent if key in r]
                last[key] = float(np.mean(values)) if values else float("nan")
            last["sync_w"] = running[-1]["sync_w"]
            last["steps_per_s"] = len(running) / (time.perf_counter() - started)
            if val_windows is not None:
                last.update(evaluate_generator(trainer.model, val_windows, config.val_windows, trainer.device, trainer.expert))
            metrics_log.append(last)
            log.info("eval %s", {k: round(v, 4) for k, v in last.items()})
            score = -last.get("val_l1", last["l1"]) - 0.1 * last.get("val_sync_dist", 0.0)
            if score > best_score:
                best_score = score
                common.save_training_state(run_dir / common.BEST_CHECKPOINT, trainer.model, trainer.optimizer, step, trainer.extra(best_score, last))
        if step % config.checkpoint_every == 0 or step == config.steps:
            common.save_training_state(run_dir / common.LATEST_CHECKPOINT, trainer.model, trainer.optimizer, step, trainer.extra(best_score, last))
    return last


def train_generator(dataset: Path, run_dir: Path, config: GeneratorTrainConfig, resume: bool = True) -> dict[str, float]:
    """Train a generator on a preprocessed dataset; returns the last evaluation's metrics.

    Same run-directory artefacts as :func:`lipdub.train.syncnet.train_syncnet`; best.pt is the
    lowest val L1 (+ 0.1 x val sync distance when an expert is given).
    """
    run_dir = Path(run_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    common.seed_everything(config.seed)
    train_clips = load_dataset(dataset, "train", kinds=config.kinds)
    val_clips = load_dataset(dataset, "val", kinds=config.kinds)
    if not train_clips:
        raise LipdubError(f"{dataset}: no training clips of kind {', '.join(config.kinds)} with audio")
    common.prepare_run_dir(
        run_dir, config, config.seed, {"train": [c.clip_id for c in train_clips], "val": [c.clip_id for c in val_clips]}
    )
    trainer = _Trainer.create(config)
    augment = AugmentConfig() if config.augment else None
    train_windows = GeneratorWindows(train_clips, seed=config.seed, augment=augment, reference_gap=config.reference_gap)
    val_windows = _optional_sampler(lambda: GeneratorWindows(val_clips, seed=12345, reference_gap=config.reference_gap), val_clips)
    return _run(trainer, train_windows, val_windows, run_dir, resume)


# --- Personalisation -----------------------------------------------------------------------------


def split_clip(clip: Clip, train_fraction: float) -> tuple[Clip, Clip]:
    """The first ``train_fraction`` of a clip's frames (and their audio) and the rest.

    The tail keeps its own audio: its mel starts at the tail's first frame time, rounded to a
    column, so pairing stays exact when the split frame falls on a column boundary and within
    1/80 s otherwise.
    """
    from lipdub.media.features import mel_window_start

    cut = int(round(len(clip.frames) * train_fraction))
    if cut < 2 * SYNC_FRAMES or len(clip.frames) - cut < 2 * SYNC_FRAMES:
        raise LipdubError(f"clip {clip.clip_id} is too short to personalise on ({len(clip.frames)} frames)")
    column = mel_window_start(cut, clip.fps)
    head = replace(clip, frames=clip.frames[:cut], valid=clip.valid[:cut], mel=clip.mel)
    tail = replace(clip, frames=clip.frames[cut:], valid=clip.valid[cut:], mel=clip.mel[:, column:] if clip.mel is not None else None)
    return head, tail


def load_single_clip(source: Path, clip_id: str | None = None) -> Clip:
    """One clip from a dataset directory (its only clip, or ``clip_id``) or a clip directory."""
    source = Path(source)
    if (source / "dataset.json").is_file():
        rows = read_clips_table(source)
        if clip_id is not None:
            rows = [r for r in rows if r["clip_id"] == clip_id]
        rows = [r for r in rows if str(r.get("has_audio", "1")) == "1"] or rows
        if not rows:
            raise LipdubError(f"{source}: no clip to personalise on")
        if len(rows) > 1 and clip_id is None:
            log.warning("%s holds %d clips; personalising on the longest", source, len(rows))
            rows.sort(key=lambda r: -int(r["frames"]))
        return load_clip_dir(source / "clips" / rows[0]["clip_id"], rows[0], read_av_offsets(source).get(rows[0]["clip_id"], 0))
    if (source / "frames.mp4").is_file():
        table = source.parent.parent / "clips.csv"  # a clip directory inside a dataset: use its row
        if table.is_file():
            rows = [r for r in read_clips_table(source.parent.parent) if r["clip_id"] == source.name]
            if rows:
                return load_clip_dir(source, rows[0], read_av_offsets(source.parent.parent).get(source.name, 0))
        row = {"clip_id": source.name, "fps": str(_video_fps(source / "frames.mp4")), "has_audio": "1", "split": "train"}
        if (source / "clip.json").is_file():  # preprocess's per-clip record, when present
            meta = json.loads((source / "clip.json").read_text())
            row.update({k: str(meta[k]) for k in ("clip_id", "speaker", "kind", "fps") if k in meta})
            row["has_audio"] = "1" if meta.get("has_audio", True) in (True, 1, "1") else "0"
        return load_clip_dir(source, row)
    raise LipdubError(f"{source} is neither a lipdub dataset nor a clip directory")


def _base_generator(path: Path) -> tuple[Path, float]:
    """(weights file, width) of the generator to fine-tune: a compact checkpoint or a profile
    directory. Wav2Lip checkpoints are refused: they were trained on BGR frames and 16x the size."""
    from lipdub.models.checkpoint import load_state_dict
    from lipdub.models.registry import infer_spec

    if path.is_dir():
        profile = path / "profile.json"
        if not profile.is_file():
            raise LipdubError(f"{path} is a directory without profile.json")
        path = path / json.loads(profile.read_text()).get("weights", "generator.pt")
    spec = infer_spec(load_state_dict(path), name=path.stem)
    if spec.architecture != "compact":
        raise LipdubError(f"{path} is a {spec.architecture} checkpoint; personalisation fine-tunes compact generators")
    return path, spec.width


def _video_fps(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else 25.0


@dataclass
class PersonalizeReport:
    """Generic vs personalised scores on the held-out last part of the clip."""

    profile_dir: Path
    steps: int
    generic: dict[str, float]
    personalized: dict[str, float]


def personalize(
    source: Path,
    base_checkpoint: Path,
    out_profile_dir: Path,
    steps: int = 300,
    syncnet_checkpoint: Path | None = None,
    name: str | None = None,
    train_fraction: float = 0.7,
    config: GeneratorTrainConfig | None = None,
    clip_id: str | None = None,
) -> PersonalizeReport:
    """Fine-tune a compact generator on one speaker's clip and write a profile directory.

    Trains on the first ``train_fraction`` of the frames, evaluates generic and personalised
    weights on the rest (L1, and expert sync distance when ``syncnet_checkpoint`` is given), and
    writes ``profile.json`` + ``generator.pt`` (+ ``metrics.csv``, ``report.json``) into
    ``out_profile_dir``. ``config`` supplies the remaining knobs (lr, batch size, device, ...);
    its steps / init / expert fields are overridden by the arguments.
    """
    out_profile_dir = Path(out_profile_dir)
    base_checkpoint, width = _base_generator(Path(base_checkpoint))
    base = config or GeneratorTrainConfig(batch_size=4, lr=5e-5, eval_every=100, checkpoint_every=100, reference_gap=25)
    # Fine-tuning on one clip: the sync term keeps the mouth following audio while L1 adapts looks.
    config = replace(
        base,
        steps=steps,
        architecture="compact",
        width=width,
        init_checkpoint=str(base_checkpoint),
        syncnet_checkpoint=str(syncnet_checkpoint) if syncnet_checkpoint else None,
        sync_start_step=0,
        sync_ramp_steps=0,
        eval_every=min(base.eval_every, steps),
        checkpoint_every=min(base.checkpoint_every, steps),
    )
    if config.threads:
        torch.set_num_threads(config.threads)
    common.seed_everything(config.seed)
    clip = load_single_clip(source, clip_id)
    if clip.mel is None:
        raise LipdubError(f"clip {clip.clip_id} has no audio: personalisation needs the person speaking")
    head, tail = split_clip(clip, train_fraction)
    out_profile_dir.mkdir(parents=True, exist_ok=True)
    common.prepare_run_dir(out_profile_dir, config, config.seed, {"train": [f"{clip.clip_id}[:{len(head.frames)}]"], "val": [f"{clip.clip_id}[{len(head.frames)}:]"]})
    gap = min(config.reference_gap, max(SYNC_FRAMES, len(tail.frames) // 3))
    train_windows = GeneratorWindows([head], seed=config.seed, augment=AugmentConfig() if config.augment else None, reference_gap=config.reference_gap)
    val_windows = GeneratorWindows([tail], seed=12345, reference_gap=gap)
    trainer = _Trainer.create(config)
    generic = evaluate_generator(trainer.model, val_windows, config.val_windows, trainer.device, trainer.expert)
    _run(trainer, train_windows, val_windows, out_profile_dir, resume=False)
    personalized = evaluate_generator(trainer.model, val_windows, config.val_windows, trainer.device, trainer.expert)

    from lipdub.models.checkpoint import save_checkpoint

    save_checkpoint(out_profile_dir / "generator.pt", trainer.model, step=steps, extra={"architecture": config.architecture, "width": config.width})
    for leftover in (common.LATEST_CHECKPOINT, common.BEST_CHECKPOINT):
        (out_profile_dir / leftover).unlink(missing_ok=True)  # the profile ships generator.pt only
    name = name or clip.speaker or clip.clip_id
    profile = {
        "name": name,
        "architecture": config.architecture,
        "img_size": 96,
        "channel_order": "rgb",
        "weights": "generator.pt",
        "width": config.width,
        "description": f"compact generator fine-tuned for {steps} steps on {len(head.frames)} frames of {clip.clip_id}",
    }
    (out_profile_dir / "profile.json").write_text(json.dumps(profile, indent=2) + "\n")
    report = PersonalizeReport(out_profile_dir, steps, generic, personalized)
    (out_profile_dir / "report.json").write_text(json.dumps({"steps": steps, "generic": generic, "personalized": personalized}, indent=2) + "\n")
    log.info("personalised %s: val L1 %.4f -> %.4f", name, generic["val_l1"], personalized["val_l1"])
    return report
