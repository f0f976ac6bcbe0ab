"""The GPU recipes' mixed-precision path (float16 autocast + gradient scaling), exercised on the CPU.

The training loops switch autocast and the GradScaler on only for CUDA. CI has no GPU, so these
tests route both to the CPU's float16 autocast and GradScaler: every float16 activation, every
cast back to float32 in the losses, the scaler stepping two optimisers (generator and
discriminator) and its state in the checkpoint run as they would on the H100.
"""

import math

import pytest
import torch

from lipdub.models.checkpoint import save_checkpoint
from lipdub.models.compact_syncnet import CompactSyncNet
from lipdub.train import common
from lipdub.train.common import read_metrics
from lipdub.train.generator import GeneratorTrainConfig, train_generator
from lipdub.train.synthetic import default_specs, write_synthetic_dataset
from lipdub.train.syncnet import SyncTrainConfig, train_syncnet


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), default_specs(frames=90))


@pytest.fixture
def float16_on_cpu(monkeypatch):
    """Routes autocast and the scaler to the CPU; yields how many regions ran in float16."""
    regions = []

    def autocast(device, enabled):
        regions.append(enabled)
        return torch.autocast(device_type="cpu", dtype=torch.float16, enabled=enabled)

    def make_scaler(device, enabled):
        return torch.amp.GradScaler("cpu", enabled=enabled)

    monkeypatch.setattr(common, "autocast", autocast)
    monkeypatch.setattr(common, "make_scaler", make_scaler)
    torch.set_num_threads(1)
    yield regions


def _finite(row: dict, keys) -> bool:
    return all(math.isfinite(float(row[k])) for k in keys)


def test_expert_training_in_float16(dataset, tmp_path, float16_on_cpu):
    config = SyncTrainConfig(batch_size=4, steps=4, eval_every=2, checkpoint_every=2, log_every=1, device="cpu",
                             amp=True, val_pairs=8, loss="multiway", candidates=4, aux_lip_weight=1.0)
    train_syncnet(dataset, tmp_path / "run", config)
    assert sum(float16_on_cpu) >= 4  # every training step's forward ran under float16 autocast
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["step"] for r in rows] == [2, 4] and all(_finite(r, ["loss", "val_loss"]) for r in rows)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["extra"]["scaler"]["scale"] > 0  # a live scaler was saved, so a resume restores it
    assert all(v.dtype == torch.float32 for v in state["state_dict"].values() if v.is_floating_point())
    train_syncnet(dataset, tmp_path / "run", SyncTrainConfig(**{**config.__dict__, "steps": 6}), resume=True)
    assert read_metrics(tmp_path / "run" / "metrics.csv")[-1]["step"] == 6


def test_generator_training_with_expert_and_gan_in_float16(dataset, tmp_path, float16_on_cpu):
    torch.manual_seed(0)
    expert = tmp_path / "expert.pt"
    save_checkpoint(expert, CompactSyncNet(), step=0, extra={"architecture": "compact"})
    config = GeneratorTrainConfig(width=0.25, batch_size=2, steps=4, eval_every=2, checkpoint_every=2, log_every=1,
                                  device="cpu", amp=True, syncnet_checkpoint=str(expert), sync_start_step=0,
                                  sync_ramp_steps=0, disc_start_step=1, val_windows=4)
    train_generator(dataset, tmp_path / "run", config)
    assert sum(float16_on_cpu) >= 4 * 3  # generator, expert and discriminator passes of every step
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert all(_finite(r, ["loss", "l1", "sync", "gan", "disc", "val_l1", "val_sync_dist"]) for r in rows)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["extra"]["scaler"]["scale"] > 0 and "disc" in state["extra"]
