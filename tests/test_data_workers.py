"""The GPU recipes load batches in DataLoader worker processes (num_workers 6 and 12); CPU
recipes and the other tests use none. Every sample is drawn from a generator seeded by its own
index, so a run must see the same batches, and reach the same losses, whatever the worker count:
that is what makes a resumed or re-run GPU training reproducible."""

import pytest
import torch

from lipdub.train.common import read_metrics
from lipdub.train.generator import GeneratorTrainConfig, train_generator
from lipdub.train.synthetic import default_specs, write_synthetic_dataset
from lipdub.train.syncnet import SyncTrainConfig, train_syncnet


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), default_specs(frames=60))


def _losses(run_dir, keys):
    return [float(row[k]) for row in read_metrics(run_dir / "metrics.csv") for k in keys]


@pytest.mark.parametrize("loss", ["bce", "multiway"])
def test_expert_training_is_the_same_with_worker_processes(dataset, tmp_path, loss):
    losses = []
    for workers in (0, 2):
        torch.set_num_threads(1)
        config = SyncTrainConfig(batch_size=4, steps=3, eval_every=3, checkpoint_every=3, log_every=1, device="cpu",
                                 val_pairs=8, loss=loss, candidates=4, num_workers=workers, seed=3)
        train_syncnet(dataset, tmp_path / f"w{workers}", config)
        losses.append(_losses(tmp_path / f"w{workers}", ["loss", "val_loss"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_generator_training_is_the_same_with_worker_processes(dataset, tmp_path):
    losses = []
    for workers in (0, 2):
        torch.set_num_threads(1)
        config = GeneratorTrainConfig(width=0.25, batch_size=2, steps=3, eval_every=3, checkpoint_every=3, log_every=1,
                                      device="cpu", val_windows=4, num_workers=workers, seed=3)
        train_generator(dataset, tmp_path / f"w{workers}", config)
        losses.append(_losses(tmp_path / f"w{workers}", ["loss", "l1", "val_l1"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
