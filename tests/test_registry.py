"""The registry: one option picks the generator, and nothing falls back to random weights."""

import json

import numpy as np
import pytest
import torch

from lipdub.errors import LipdubError
from lipdub.models import registry
from lipdub.models.checkpoint import save_checkpoint
from lipdub.models.compact import CompactGenerator
from lipdub.models.registry import (
    Generator,
    ModelSpec,
    build_network,
    bundled_models,
    infer_spec,
    resolve_generator,
)
from lipdub.models.syncnet import SyncNet
from lipdub.models.wav2lip import Wav2Lip


def crops(batch, seed=0, size=96):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def mels(batch, seed=0):
    return np.random.default_rng(seed).uniform(-4, 4, (batch, 80, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def wav2lip_checkpoint(tmp_path_factory):
    """A random Wav2Lip saved exactly like the original training script (DataParallel names)."""
    torch.manual_seed(0)
    net = Wav2Lip()
    path = tmp_path_factory.mktemp("w2l") / "wav2lip_gan.pth"
    torch.save(
        {
            "state_dict": {"module." + k: v for k, v in net.state_dict().items()},
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
            "global_step": 5,
            "global_epoch": 1,
        },
        path,
    )
    return path


@pytest.fixture
def no_bundled(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "weights")
    return tmp_path / "weights"


def test_wav2lip_checkpoint_in_original_format(wav2lip_checkpoint):
    gen = resolve_generator(checkpoint=wav2lip_checkpoint)
    assert isinstance(gen, Generator)
    assert gen.spec.architecture == "wav2lip" and gen.spec.channel_order == "bgr"
    assert gen.spec.name == "wav2lip_gan"
    out = gen.generate(mels(3), crops(3, 1), crops(3, 2))
    assert out.shape == (3, 96, 96, 3) and out.dtype == np.uint8
    assert not gen.network.training


def test_generate_masks_lower_half_and_swaps_channels():
    """Feed a recording network and check exactly what reaches it."""

    class Recorder(torch.nn.Module):
        def forward(self, audio, faces):
            self.audio, self.faces = audio.clone(), faces.clone()
            return faces[:, 3:6]  # echo the reference (in the network's channel order)

    for order in ("bgr", "rgb"):
        net = Recorder()
        gen = Generator(net, ModelSpec("t", "wav2lip", channel_order=order))
        target, reference, mel = crops(2, 1), crops(2, 2), mels(2)
        out = gen.generate(mel, target, reference)
        faces = net.faces.permute(0, 2, 3, 1).numpy() * 255.0  # (B, S, S, 6)
        swap = [2, 1, 0] if order == "bgr" else [0, 1, 2]
        np.testing.assert_allclose(faces[:, :48, :, :3], target[:, :48][..., swap], atol=1e-3)
        assert np.all(faces[:, 48:, :, :3] == 0)  # lower half masked
        np.testing.assert_allclose(faces[..., 3:], reference[..., swap], atol=1e-3)
        assert net.audio.shape == (2, 1, 80, 16)
        np.testing.assert_allclose(net.audio[:, 0].numpy(), mel)
        np.testing.assert_array_equal(out, reference)  # converted back to RGB exactly


def test_generate_rejects_wrong_shapes():
    gen = Generator(CompactGenerator(0.25), ModelSpec("c", "compact", channel_order="rgb", width=0.25))
    with pytest.raises(ValueError):
        gen.generate(mels(2), crops(2, size=64), crops(2, size=64))
    with pytest.raises(ValueError):
        gen.generate(mels(2), crops(2).astype(np.float32), crops(2))
    assert gen.generate(mels(0), crops(0), crops(0)).shape == (0, 96, 96, 3)


def test_compact_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    net = CompactGenerator(width=0.5).eval()
    path = tmp_path / "mine.pt"
    save_checkpoint(path, net, step=3)
    gen = resolve_generator(checkpoint=path)
    assert gen.spec.architecture == "compact" and gen.spec.width == 0.5
    assert gen.spec.channel_order == "rgb"
    m, t, r = mels(2), crops(2, 3), crops(2, 4)
    expected = Generator(net, gen.spec).generate(m, t, r)
    np.testing.assert_array_equal(gen.generate(m, t, r), expected)


def test_profile_directory(tmp_path):
    torch.manual_seed(2)
    net = CompactGenerator(width=0.5)
    spec = ModelSpec("alice", "compact", channel_order="rgb", width=0.5, description="fine-tuned")
    save_checkpoint(tmp_path / "weights.pt", net)
    (tmp_path / "profile.json").write_text(json.dumps({**spec.to_dict(), "weights": "weights.pt"}))
    gen = resolve_generator(profile=tmp_path)
    assert gen.spec == spec
    assert gen.generate(mels(1), crops(1), crops(1)).shape == (1, 96, 96, 3)

    # A profile whose spec disagrees with its weights is refused.
    bad = {**spec.to_dict(), "width": 1.0, "weights": "weights.pt"}
    (tmp_path / "profile.json").write_text(json.dumps(bad))
    with pytest.raises(LipdubError, match="do not fit"):
        resolve_generator(profile=tmp_path)
    (tmp_path / "profile.json").write_text(json.dumps({**spec.to_dict(), "colour": "x", "weights": "weights.pt"}))
    with pytest.raises(LipdubError, match="colour"):
        resolve_generator(profile=tmp_path)
    with pytest.raises(LipdubError, match="not found"):
        resolve_generator(profile=tmp_path / "missing")


def test_no_bundled_model_is_a_clear_error(no_bundled):
    assert bundled_models() == []
    with pytest.raises(LipdubError, match=r"no bundled model is installed.*--checkpoint"):
        resolve_generator()
    with pytest.raises(LipdubError, match="no bundled model"):
        resolve_generator(model="lipdub-compact")


def test_the_bundled_default_is_a_documented_trained_model():
    # Shipped weights must load as the default, stay under 16 MiB, and have a model card entry.
    from pathlib import Path

    weights = registry.WEIGHTS_DIR / f"{registry.DEFAULT_MODEL}.pt"
    if not weights.exists():
        with pytest.raises(LipdubError, match="no bundled model"):
            resolve_generator(None)
        return
    generator = resolve_generator(None)
    assert generator.spec.name == registry.DEFAULT_MODEL
    assert generator.spec.architecture == "compact" and generator.spec.channel_order == "rgb"
    assert weights.stat().st_size < 16 * 1024 * 1024
    card = Path(__file__).resolve().parents[1] / "docs" / "model-card.md"
    assert registry.DEFAULT_MODEL in card.read_text()


def test_bundled_model_is_found(no_bundled):
    no_bundled.mkdir()
    torch.manual_seed(3)
    save_checkpoint(no_bundled / "tiny.pt", CompactGenerator(width=0.25))
    spec = ModelSpec("tiny", "compact", channel_order="rgb", width=0.25)
    (no_bundled / "tiny.json").write_text(json.dumps(spec.to_dict()))
    assert bundled_models() == [spec]
    assert resolve_generator(model="tiny").spec == spec
    with pytest.raises(LipdubError, match="unknown model 'other'; installed: tiny"):
        resolve_generator(model="other")


def test_at_most_one_source(wav2lip_checkpoint, tmp_path):
    with pytest.raises(LipdubError, match="one generator source"):
        resolve_generator(model="x", checkpoint=wav2lip_checkpoint)
    with pytest.raises(LipdubError, match="one generator source"):
        resolve_generator(checkpoint=wav2lip_checkpoint, profile=tmp_path)


def test_mismatched_state_dict_is_refused(tmp_path):
    state = Wav2Lip().state_dict()
    state.pop("output_block.1.bias")
    state["face_encoder_blocks.0.0.conv_block.0.weight"] = torch.zeros(16, 3, 7, 7)
    torch.save({"state_dict": state}, tmp_path / "broken.pth")
    with pytest.raises(LipdubError, match=r"fits no known generator; closest is wav2lip.*1 missing"):
        resolve_generator(checkpoint=tmp_path / "broken.pth")

    torch.save({"something.else": torch.ones(3)}, tmp_path / "other.pth")
    with pytest.raises(LipdubError, match="fits no known generator"):
        resolve_generator(checkpoint=tmp_path / "other.pth")


def test_syncnet_checkpoint_is_named_as_such(tmp_path):
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in SyncNet().state_dict().items()}
    torch.save({"state_dict": {k: torch.zeros(s) for k, s in shapes.items()}}, tmp_path / "lipsync_expert.pth")
    with pytest.raises(LipdubError, match="lip-sync expert"):
        resolve_generator(checkpoint=tmp_path / "lipsync_expert.pth")


def test_spec_validation_and_json_round_trip():
    spec = ModelSpec("x", "compact", channel_order="rgb", width=0.75)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError):
        ModelSpec("x", "unet")
    with pytest.raises(ValueError):
        ModelSpec("x", "wav2lip", channel_order="rbg")
    with pytest.raises(ValueError):
        ModelSpec("x", "wav2lip", img_size=192)
    assert isinstance(build_network(spec), CompactGenerator)
    assert infer_spec(CompactGenerator(0.75).state_dict(), "n").width == 0.75
