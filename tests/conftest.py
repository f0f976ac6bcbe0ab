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
