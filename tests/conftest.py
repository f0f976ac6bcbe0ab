"""Shared fixtures: real media from ../shared/data, skipped cleanly when it is absent."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
REFERENCE = SHARED / "reference"


def shared_file(relative: str) -> Path:
    """Path of a file under ../shared, or skip the test when it is not there."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared media not available: {path}")
    return path


@pytest.fixture
def shared():
    return shared_file


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """A compact generator with random weights, saved like a user's checkpoint.

    Only for exercising the pipeline's mechanics (frames, timing, blending, errors): its pictures
    mean nothing, and no test presents them as lip sync.
    """
    import torch

    from lipdub.models.compact import CompactGenerator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_compact.pth"
    torch.save({"state_dict": CompactGenerator().state_dict(), "global_step": 0}, path)
    return path
