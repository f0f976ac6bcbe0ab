"""Peak memory of `lipdub sync` against video length: it must stay flat.

    python benchmarks/memory.py [--lengths 30 300] [--size 720p]

For each length it builds a test video from a real clip (see `throughput.py`), runs the pipeline in
a fresh subprocess with a speech track as long as the video (the driving audio is looped to that
length) and prints the child's peak RSS. ``--engine motion`` (default) runs the bundled motion
engine; ``compact`` / ``wav2lip`` the generator engine with random weights (memory only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SHARED, SIZES, make_checkpoint, make_input  # noqa: E402


def write_long_speech(source: Path, seconds: float, path: Path) -> None:
    """The source speech repeated to ``seconds`` (16 kHz mono wav)."""
    import numpy as np

    from lipdub.media.audio import load_audio

    speech = load_audio(source)
    repeats = int(np.ceil(seconds * 16000 / len(speech)))
    samples = np.tile(speech, repeats)[: int(seconds * 16000)]
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=float, nargs="+", default=[30.0, 300.0], help="video lengths in seconds")
    parser.add_argument("--size", choices=list(SIZES), default="720p")
    parser.add_argument("--engine", choices=["motion", "compact", "wav2lip"], default="motion")
    parser.add_argument("--source", type=Path, default=SHARED / "train/real/woman_blue_wall.mp4")
    parser.add_argument("--audio", type=Path, default=SHARED / "audio/english_lecture_intro_46s.wav")
    args = parser.parse_args()
    throughput = Path(__file__).resolve().parent / "throughput.py"
    print(f"# lipdub peak memory vs length, {time.strftime('%Y-%m-%d')}, {args.size}, engine {args.engine}")
    with tempfile.TemporaryDirectory(prefix="lipdub-mem-") as tmp:
        tmp = Path(tmp)
        checkpoint = Path("-")
        if args.engine != "motion":
            checkpoint = tmp / "generator.pth"
            make_checkpoint(args.engine, checkpoint)
        for seconds in args.lengths:
            video, speech = tmp / f"video_{seconds:g}.mp4", tmp / f"speech_{seconds:g}.wav"
            make_input(args.source, SIZES[args.size], seconds, video)
            write_long_speech(args.audio, seconds, speech)
            child = subprocess.run(
                [sys.executable, str(throughput), "--child", str(video), str(speech), str(checkpoint), str(tmp / "out.mp4")],
                capture_output=True, text=True,
            )
            if child.returncode != 0:
                print(child.stderr[-2000:], file=sys.stderr)
                sys.exit(f"run failed for {seconds:g} s")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"{seconds:6.0f} s  {figures['frames']:6d} frames  peak RSS {figures['peak_rss_mib']:7.0f} MiB  "
                  f"end-to-end {figures['end_to_end_fps']:5.1f} fps")
            video.unlink()


if __name__ == "__main__":
    main()
