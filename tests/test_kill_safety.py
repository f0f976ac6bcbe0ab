"""A ``lipdub sync`` killed mid-encode leaves no partial output, no temporary, and the old target.

Runs the real command on the bundled sample in a subprocess, waits until it has had the output
file open for a moment (the writer opens it when the render + encode pass starts, so the kill lands
mid-encode, after the tracking pass), then signals it.
"""

import os
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ASSETS = files("lipdub") / "assets"
PREVIOUS = b"the user's previous result"

#: Runs the CLI without O_TMPFILE, to exercise the named-temporary fallback.
FALLBACK = (
    "import sys; from lipdub.fileio import AtomicFile; from lipdub.cli import main; "
    "AtomicFile._open_unnamed = staticmethod(lambda directory: None); main(sys.argv[1:])"
)


def _writing(pid: int, out_dir: Path) -> bool:
    """True while the process has a file open in ``out_dir`` (the video being encoded)."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(out_dir) + os.sep):
                    return True
            except OSError:
                continue
    except OSError:
        pass
    return False


def _kill_mid_encode(tmp_path: Path, sig: signal.Signals, fallback: bool) -> tuple[subprocess.CompletedProcess, Path, Path]:
    out_dir, scratch = tmp_path / "out", tmp_path / "scratch"
    out_dir.mkdir()
    scratch.mkdir()
    target = out_dir / "dub.mp4"
    target.write_bytes(PREVIOUS)
    args = [str(ASSETS / "sample_face.jpg"), str(ASSETS / "sample_speech.wav"), "-o", str(target), "--overwrite"]
    command = [sys.executable, "-c", FALLBACK, "sync", *args] if fallback else [sys.executable, "-m", "lipdub", "sync", *args]
    env = {**os.environ, "TMPDIR": str(scratch), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 240
        while not _writing(process.pid, out_dir):
            if process.poll() is not None:
                pytest.fail(f"sync ended before it could be killed: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the output file was never opened")
            time.sleep(0.02)
        time.sleep(0.3)  # a few batches into the encode pass
        if not _writing(process.pid, out_dir):
            pytest.fail("sync finished encoding before it could be killed")
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout.decode(), stderr.decode()), out_dir, scratch


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_sync_leaves_nothing_and_keeps_the_target(tmp_path, sig):
    result, out_dir, scratch = _kill_mid_encode(tmp_path, sig, fallback=False)
    assert result.returncode == -signal.SIGKILL if sig is signal.SIGKILL else result.returncode == 143
    assert sorted(p.name for p in out_dir.iterdir()) == ["dub.mp4"]
    assert (out_dir / "dub.mp4").read_bytes() == PREVIOUS
    assert list(scratch.iterdir()) == []  # the frame and mouth-bank spools had no names either
    if sig is signal.SIGTERM:
        lines = result.stderr.strip().splitlines()
        assert lines[-1] == "lipdub: terminated (unfinished output discarded)"
        assert "Traceback" not in result.stderr


def test_sigterm_cleans_the_named_fallback_temporary(tmp_path):
    result, out_dir, scratch = _kill_mid_encode(tmp_path, signal.SIGTERM, fallback=True)
    assert result.returncode == 143, result.stderr[-2000:]
    assert sorted(p.name for p in out_dir.iterdir()) == ["dub.mp4"]
    assert (out_dir / "dub.mp4").read_bytes() == PREVIOUS
    assert list(scratch.iterdir()) == []
