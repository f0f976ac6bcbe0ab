"""Every network's state dict against the public checkpoints' tensor names and shapes."""

import json
import math

import pytest
import torch

from lipdub.models.compact import CompactGenerator
from lipdub.models.discriminator import VisualQualityDiscriminator
from lipdub.models.syncnet import SyncNet
from lipdub.models.wav2lip import Wav2Lip


@pytest.fixture
def reference(shared):
    return json.loads(shared("reference/wav2lip_checkpoint_layout.json").read_text())


def layout(factory):
    with torch.device("meta"):
        net = factory()
    return {name: list(t.shape) for name, t in net.state_dict().items()}


@pytest.mark.parametrize(
    "entry, factory, prefix",
    [
        ("wav2lip", Wav2Lip, "module."),
        ("wav2lip_gan", Wav2Lip, ""),
        ("lipsync_expert", SyncNet, ""),
        ("visual_quality_disc", VisualQualityDiscriminator, ""),
    ],
)
def test_layout_matches_public_checkpoint(reference, entry, factory, prefix):
    expected = reference[entry]["tensors"]
    ours = {prefix + name: shape for name, shape in layout(factory).items()}
    assert set(ours) == set(expected), (sorted(set(ours) ^ set(expected)))[:5]
    for name, shape in expected.items():
        assert ours[name] == shape, name
    total = sum(math.prod(shape) for shape in ours.values())
    assert total == reference[entry]["total_elements"]


def test_known_totals():
    # Independent of the JSON: the element counts quoted in the docs.
    assert sum(math.prod(s) for s in layout(Wav2Lip).values()) == 36_320_837
    assert sum(math.prod(s) for s in layout(SyncNet).values()) == 16_449_183
    assert sum(math.prod(s) for s in layout(VisualQualityDiscriminator).values()) == 14_113_793


def test_wav2lip_shapes_single_and_sequence():
    torch.manual_seed(0)
    net = Wav2Lip().eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96))
        assert out.shape == (2, 3, 96, 96)
        assert out.min() >= 0 and out.max() <= 1
        seq = net(torch.randn(2, 3, 1, 80, 16), torch.rand(2, 6, 3, 96, 96))
    assert seq.shape == (2, 3, 3, 96, 96)


def test_sequence_mode_is_framewise():
    # Folding time into the batch and back must put each frame's output in its own slot.
    torch.manual_seed(0)
    net = CompactGenerator(width=0.5).eval()
    audio, faces = torch.randn(2, 3, 1, 80, 16), torch.rand(2, 6, 3, 96, 96)
    with torch.inference_mode():
        seq = net(audio, faces)
        single = net(audio[1, 2:3].reshape(1, 1, 80, 16), faces[1:2, :, 2])
    torch.testing.assert_close(seq[1:2, :, 2], single, rtol=1e-4, atol=1e-5)


def test_syncnet_embeddings_are_unit_vectors():
    torch.manual_seed(0)
    net = SyncNet().eval()
    with torch.inference_mode():
        audio, face = net(torch.randn(3, 1, 80, 16), torch.rand(3, 15, 48, 96))
    assert audio.shape == (3, 512) and face.shape == (3, 512)
    torch.testing.assert_close(audio.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(face.norm(dim=1), torch.ones(3))


def test_discriminator_reads_lower_half_and_gives_probabilities():
    torch.manual_seed(0)
    net = VisualQualityDiscriminator().eval()
    faces = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        p = net(faces)
        p_seq = net(faces.unsqueeze(2).expand(-1, -1, 2, -1, -1))
        changed = faces.clone()
        changed[:, :, :48] = 0.0  # the upper half must not matter
        p_changed = net(changed)
    assert p.shape == (2, 1) and p_seq.shape == (4, 1)
    assert torch.all((p > 0) & (p < 1))
    torch.testing.assert_close(p, p_changed)
    loss = net.perceptual_forward(faces)
    assert loss.dim() == 0 and torch.isclose(loss, -torch.log(p).mean(), rtol=1e-4)


def test_compact_contract_and_size():
    torch.manual_seed(0)
    net = CompactGenerator().eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert 2_000_000 <= n_params <= 5_000_000
    with torch.inference_mode():
        out = net(torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96))
    assert out.shape == (2, 3, 96, 96) and out.min() >= 0 and out.max() <= 1
    assert sum(p.numel() for p in CompactGenerator(width=0.5).parameters()) < n_params / 3
