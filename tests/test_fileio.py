"""Atomic publishing: umask modes, nothing visible before publish, no debris, no clobbering."""

import os
import stat

import pytest
import torch

from lipdub.fileio import AtomicFile, current_umask, default_file_mode, publish_directory, write_atomic


@pytest.fixture
def umask():
    """Set a process umask for the test and restore the old one afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.fixture(params=[True, False], ids=["unnamed", "named-fallback"])
def flavour(request, monkeypatch):
    """Run a test with O_TMPFILE and with the named-temporary fallback."""
    if not request.param:
        monkeypatch.setattr(AtomicFile, "_open_unnamed", staticmethod(lambda directory: None))
    return request.param


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_what_was_set(umask):
    for mask in (0o022, 0o077, 0o002):
        umask(mask)
        assert current_umask() == mask
        assert default_file_mode() == 0o666 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_published_file_follows_the_umask(tmp_path, umask, flavour, mask):
    umask(mask)
    target = tmp_path / "out.bin"
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data"
    assert mode(target) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_nothing_is_visible_until_published(tmp_path, flavour):
    target = tmp_path / "out.bin"
    with AtomicFile(target) as handle:
        handle.file.write(b"half")
        names = [p.name for p in tmp_path.iterdir()]
        assert "out.bin" not in names
        assert names == ([] if flavour else [names[0]]) and all(n.startswith(".out.bin.") for n in names)
        with open(handle.path, "rb") as again:  # the path names the same file
            handle.file.flush()
            assert again.read() == b"half"
    assert target.read_bytes() == b"half"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_keeps_the_old_target_and_leaves_nothing(tmp_path, flavour):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with AtomicFile(target, overwrite=True) as handle:
            handle.file.write(b"new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_overwrite_replaces_and_refusal_keeps(tmp_path, flavour):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_atomic(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        write_atomic(target, b"newer", overwrite=False)
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_checkpoint_follows_the_umask(tmp_path, umask):
    from lipdub.models.checkpoint import load_state_dict, save_checkpoint

    umask(0o022)
    model = torch.nn.Linear(2, 3)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, step=1)
    assert mode(path) == 0o644
    assert set(load_state_dict(path)) == {"weight", "bias"}
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_dataset_table_follows_the_umask(tmp_path, umask):
    from lipdub.train.preprocess import write_csv_atomic

    umask(0o002)
    path = tmp_path / "clips.csv"
    write_csv_atomic(path, ["a", "b"], [{"a": "1", "b": "2"}])
    assert path.read_text() == "a,b\n1,2\n"
    assert mode(path) == 0o664


def test_publish_directory_replaces_whole(tmp_path, umask):
    umask(0o022)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "profile.json").write_text("{}")
    target = tmp_path / "profile"
    target.mkdir()
    (target / "stale.pt").write_text("old")
    with pytest.raises(FileExistsError):
        publish_directory(staging, target)
    assert (target / "stale.pt").exists()
    publish_directory(staging, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["profile.json"]
    assert mode(target / "profile.json") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile", "staging"]
