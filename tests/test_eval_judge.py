"""Judge loading: a user's Wav2Lip lipsync_expert.pth (BGR) and lipdub's compact expert (RGB)."""

import numpy as np
import pytest
import torch

from lipdub.errors import LipdubError
from lipdub.eval.judge import load_judge
from lipdub.models.compact_syncnet import CompactSyncNet
from lipdub.models.syncnet import SyncNet


def test_wav2lip_expert_in_its_training_format_is_fed_bgr(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "lipsync_expert.pth"
    state = {f"module.{k}": v for k, v in SyncNet().state_dict().items()}
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 7}, path)
    judge = load_judge(path)
    assert judge.channel_order == "bgr"
    assert "SyncNet" in judge.name and judge.source == str(path)
    faces = np.random.default_rng(0).integers(0, 255, (3, 5, 48, 96, 3), dtype=np.uint8)
    video, audio = judge.embed(faces, np.zeros((3, 80, 16), np.float32))
    assert video.shape == audio.shape == (3, 512)


def test_channel_order_reaches_the_network(tmp_path):
    """A BGR judge sees the blue channel first: swapping R and B of the input must not matter to it
    exactly when it is fed in its own order."""
    torch.manual_seed(0)
    path = tmp_path / "compact.pth"
    torch.save(CompactSyncNet().state_dict(), path)
    rgb_judge = load_judge(path)
    assert rgb_judge.channel_order == "rgb"
    faces = np.random.default_rng(1).integers(0, 255, (2, 5, 48, 96, 3), dtype=np.uint8)
    mels = np.zeros((2, 80, 16), np.float32)
    as_rgb, _ = rgb_judge.embed(faces, mels)
    rgb_judge.channel_order = "bgr"
    swapped, _ = rgb_judge.embed(faces[..., ::-1].copy(), mels)
    np.testing.assert_allclose(as_rgb, swapped, rtol=1e-5, atol=1e-6)


def test_a_generator_is_not_a_judge(tmp_path):
    from lipdub.models.compact import CompactGenerator

    path = tmp_path / "generator.pth"
    torch.save(CompactGenerator().state_dict(), path)
    with pytest.raises(LipdubError):
        load_judge(path)
