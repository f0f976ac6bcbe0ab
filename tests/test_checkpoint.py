"""Checkpoint loading is safe and strict; saving is atomic."""

import os
import pickle

import pytest
import torch
from torch import nn

from lipdub.errors import LipdubError
from lipdub.models.checkpoint import load_state_dict, save_checkpoint, strip_parallel_prefix


class _Exploit:
    """Unpickling this calls os.system, which creates a marker file: what a hostile .pth does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_strip_parallel_prefix_only_leading():
    assert strip_parallel_prefix("module.a.b") == "a.b"
    assert strip_parallel_prefix("a.module.b") == "a.module.b"
    assert strip_parallel_prefix("module.module.x") == "module.x"


def test_plain_state_dict(tmp_path):
    state = {"a.weight": torch.ones(2, 3), "b": torch.zeros(1)}
    torch.save(state, tmp_path / "w.pt")
    loaded = load_state_dict(tmp_path / "w.pt")
    assert set(loaded) == {"a.weight", "b"}
    torch.testing.assert_close(loaded["a.weight"], torch.ones(2, 3))


def test_wav2lip_training_format_with_module_prefix(tmp_path):
    payload = {
        "state_dict": {"module.x.weight": torch.arange(4.0), "module.y": torch.ones(1)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
        "global_step": 5,
        "global_epoch": 2,
    }
    torch.save(payload, tmp_path / "c.pth")
    loaded = load_state_dict(str(tmp_path / "c.pth"))
    assert set(loaded) == {"x.weight", "y"}
    torch.testing.assert_close(loaded["x.weight"], torch.arange(4.0))


def test_legacy_format_with_adam_state(tmp_path):
    # The public Wav2Lip files predate PyTorch 1.6's zip format; they must load with weights_only.
    model = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    payload = {
        "state_dict": {"module." + k: v for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "global_step": 250000,
        "global_epoch": 77,
    }
    torch.save(payload, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert set(load_state_dict(tmp_path / "legacy.pth")) == {"weight", "bias"}


def test_missing_file(tmp_path):
    with pytest.raises(LipdubError, match="not found"):
        load_state_dict(tmp_path / "nope.pth")


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(LipdubError, match="checkpoint"):
        load_state_dict(path)
    torch.save({"a": torch.ones(3)}, tmp_path / "ok.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((tmp_path / "ok.pth").read_bytes()[:100])
    with pytest.raises(LipdubError):
        load_state_dict(truncated)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.ones(1)}, "evil": _Exploit(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    # The exploit works when unpickled unsafely (so the test can fail) ...
    with open(tmp_path / "control.pkl", "wb") as handle:
        pickle.dump(_Exploit(tmp_path / "control"), handle)
    with open(tmp_path / "control.pkl", "rb") as handle:
        pickle.load(handle)
    assert (tmp_path / "control").exists()
    # ... and our loader refuses it without running it.
    with pytest.raises(LipdubError, match="refusing checkpoint"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        [torch.ones(1)],  # a list, not a mapping
        {"a": torch.ones(1), "b": 3},  # a non-tensor value
        {"state_dict": {"a": "text"}},
        {},  # empty
        torch.ones(3),
    ],
)
def test_payload_that_is_not_a_state_dict(tmp_path, payload):
    torch.save(payload, tmp_path / "x.pth")
    with pytest.raises(LipdubError):
        load_state_dict(tmp_path / "x.pth")


def test_save_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    path = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(path, model, optimizer, step=42, extra={"config": {"lr": 1e-3}, "seed": 7})
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left behind

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["global_step"] == 42 and raw["extra"] == {"config": {"lr": 1e-3}, "seed": 7}
    assert raw["optimizer"]["param_groups"][0]["lr"] == 1e-3
    loaded = load_state_dict(path)
    assert set(loaded) == set(model.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded[key], value)


def test_save_checkpoint_replaces_atomically(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, nn.Linear(2, 2), step=1)
    save_checkpoint(path, nn.Linear(2, 2), step=2)
    assert torch.load(path, weights_only=True)["global_step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_weights_file_takes_paths_as_given_and_bare_names_from_the_folder(tmp_path):
    from lipdub.errors import LipdubError
    from lipdub.models.checkpoint import weights_file

    (tmp_path / "bundled.pt").write_bytes(b"x")
    (tmp_path / "mine.pth").write_bytes(b"x")
    assert weights_file("bundled", tmp_path, "motion model") == tmp_path / "bundled.pt"
    assert weights_file(tmp_path / "mine.pth", tmp_path / "elsewhere", "motion model") == tmp_path / "mine.pth"
    with pytest.raises(LipdubError, match=r"^motion model not found: .*absent\.pt$"):
        weights_file("absent", tmp_path, "motion model")
