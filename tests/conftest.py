"""Shared fixtures: real media from ../shared/data, skipped cleanly when it is absent; Debian's
Chromium for the browser tests, skipped cleanly when it or Playwright is absent."""

import contextlib
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


CHROMIUM = Path("/usr/bin/chromium")
#: Start flags that keep Chromium itself from calling home (updates, sync, QUIC probes).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def headless_chromium(profile: Path, extra_args=(), **context):
    """(browser context, every URL it requested) of Debian's Chromium, headless, through
    Playwright (never a browser a tool downloads); skips the test when either is absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium; .ci/run does)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e .[dev])")
    requests: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_FLAGS, *extra_args], **context)
        try:
            browser.on("request", lambda request: requests.append(request.url))
            yield browser, requests
        finally:
            browser.close()


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
