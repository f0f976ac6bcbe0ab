"""Training data: window bookkeeping by hand, and the two samplers on a tiny synthetic dataset."""

import numpy as np
import pytest
import torch

from lipdub.media.features import mel_window_start
from lipdub.train.data import (
    AugmentConfig,
    GeneratorWindows,
    SyncPairs,
    audio_frame_count,
    augment_mel,
    load_dataset,
    pick_far_start,
    stack_lower_halves,
    valid_window_starts,
)
from lipdub.train.synthetic import default_specs, write_synthetic_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), default_specs(frames=80))


@pytest.fixture(scope="module")
def train_clips(dataset):
    return load_dataset(dataset, "train")


def test_valid_window_starts_skip_faceless_frames():
    valid = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1], dtype=bool)
    # windows of 5 must avoid frame 6: starts 0, 1 and 7, 8
    assert valid_window_starts(valid, 5).tolist() == [0, 1, 7, 8]
    # audio for only the first 12 frames: the window at 8 needs frame 12
    assert valid_window_starts(valid, 5, audio_frames=12).tolist() == [0, 1, 7]


def test_audio_frame_count_matches_the_window_formula():
    # 25 fps: start(f) = 3.2 f; 100 columns hold windows while 3.2 f + 16 <= 100, f <= 26.25
    assert audio_frame_count(100, 25.0) == 27
    assert audio_frame_count(15, 25.0) == 0
    for fps in (22.13, 29.97, 30.0):
        n = audio_frame_count(321, fps)
        assert mel_window_start(n - 1, fps) + 16 <= 321 < mel_window_start(n, fps) + 16


def test_pick_far_start_respects_gap_or_takes_farthest():
    rng = np.random.default_rng(0)
    starts = np.arange(20)
    picks = {pick_far_start(starts, 10, 8, rng) for _ in range(100)}
    assert picks <= {0, 1, 2, 18, 19} and len(picks) > 2
    assert pick_far_start(np.arange(6), 2, 50, rng) == 5


def test_stack_lower_halves_orders_channels_frame_major():
    frames = np.zeros((5, 96, 96, 3), np.float32)
    for k in range(5):
        frames[k, 48:, :, 2] = k + 1  # blue channel of frame k, lower half only
    stacked = stack_lower_halves(frames)
    assert stacked.shape == (15, 48, 96)
    assert [float(stacked[3 * k + 2].mean()) for k in range(5)] == [1, 2, 3, 4, 5]
    assert float(stacked[0].sum()) == 0.0


def test_augment_mel_gain_is_a_shift_of_0_08_per_db():
    config = AugmentConfig(mel_gain_db=3.0, mel_noise=0.0)
    mel = np.zeros((80, 16), np.float32)
    out = augment_mel(mel, np.random.default_rng(1), config)
    shift = float(out[0, 0])
    assert np.allclose(out, shift) and 0 < abs(shift) <= 0.24 + 1e-6
    assert augment_mel(np.full((2, 2), 4.0, np.float32), np.random.default_rng(2), AugmentConfig(mel_noise=1.0)).max() <= 4.0


def test_sync_pairs_shapes_labels_and_negative_offsets(train_clips):
    pairs = SyncPairs(train_clips, seed=3)
    items = [pairs[i] for i in range(200)]
    assert items[0]["face"].shape == (15, 48, 96) and items[0]["mel"].shape == (1, 80, 16)
    labels = np.array([it["label"].item() for it in items])
    offsets = np.array([it["offset"].item() for it in items])
    assert 0.35 < labels.mean() < 0.65
    assert (offsets[labels == 1] == 0).all()
    assert (np.abs(offsets[labels == 0]) >= 5).all()
    for it in items[:40]:
        clip = pairs.clips[it["clip"].item()]
        t = it["start"].item()
        assert clip.valid[t : t + 5].all()
        audio_t = t + it["offset"].item()
        start = mel_window_start(audio_t, clip.fps)
        assert torch.equal(it["mel"][0], torch.from_numpy(clip.mel[:, start : start + 16]))
        face = stack_lower_halves(clip.frames[t : t + 5].astype(np.float32) / 255)
        assert torch.allclose(it["face"], torch.from_numpy(face))
    # the same index always gives the same sample (resume / workers)
    assert torch.equal(pairs[7]["face"], pairs[7]["face"])
    assert float(items[0]["face"].min()) >= 0 and float(items[0]["face"].max()) <= 1


def test_sync_pairs_augmentation_keeps_ranges(train_clips):
    pairs = SyncPairs(train_clips, seed=3, augment=AugmentConfig())
    it = pairs[5]
    plain = SyncPairs(train_clips, seed=3)[5]
    assert it["start"] == plain["start"] and not torch.equal(it["face"], plain["face"])
    assert 0 <= float(it["face"].min()) and float(it["face"].max()) <= 1
    assert float(it["mel"].abs().max()) <= 4


def test_generator_windows(train_clips):
    windows = GeneratorWindows(train_clips, seed=1, reference_gap=25)
    for i in range(30):
        it = windows[i]
        clip = windows.clips[it["clip"].item()]
        t, r = it["start"].item(), it["reference_start"].item()
        assert it["gt"].shape == (3, 5, 96, 96) and it["mels"].shape == (5, 1, 80, 16)
        assert abs(t - r) >= 25
        assert float(it["masked"][:, :, 48:].abs().sum()) == 0.0
        assert torch.equal(it["masked"][:, :, :48], it["gt"][:, :, :48])
        assert clip.valid[t : t + 5].all() and clip.valid[r : r + 5].all()
        for k in range(5):
            start = mel_window_start(t + k, clip.fps)
            assert torch.equal(it["mels"][k, 0], torch.from_numpy(clip.mel[:, start : start + 16]))
        assert torch.equal(it["sync_mel"], it["mels"][0])
        gt = torch.from_numpy(clip.frames[t : t + 5].astype(np.float32) / 255).permute(3, 0, 1, 2)
        assert torch.allclose(it["gt"], gt)


def test_load_dataset_splits_and_validity(dataset):
    train = load_dataset(dataset, "train")
    val = load_dataset(dataset, "val")
    assert [c.speaker for c in train] == ["alice", "bob", "carol"] and [c.speaker for c in val] == ["dave"]
    alice = train[0]
    assert alice.frames.shape == (80, 96, 96, 3) and alice.frames.dtype == np.uint8
    assert not alice.valid[10] and alice.valid.sum() == 78
    assert train[2].fps == 30.0 and alice.mel.shape[0] == 80


def test_generator_windows_augmentation_is_shared_by_target_and_audio(train_clips):
    plain = GeneratorWindows(train_clips, seed=2)[4]
    augmented = GeneratorWindows(train_clips, seed=2, augment=AugmentConfig())[4]
    assert augmented["start"] == plain["start"] and augmented["reference_start"] == plain["reference_start"]
    assert not torch.equal(augmented["gt"], plain["gt"])
    assert torch.equal(augmented["sync_mel"], augmented["mels"][0])
    assert float(augmented["masked"][:, :, 48:].abs().sum()) == 0.0
    assert 0 <= float(augmented["reference"].min()) and float(augmented["reference"].max()) <= 1
