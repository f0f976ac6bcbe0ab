"""Peak memory of `lipdub sync` against video length: it must stay flat.

    python benchmarks/memory.py [--lengths 30 300] [--size 720p]
    python benchmarks/memory.py --photo-fps 1 --lengths 600 3600   # speech memory at 10 and 60 min

For each length it builds a test video from a real clip (see `throughput.py`), runs the pipeline in
a fresh subprocess with a speech track as long as the video (the driving audio is looped to that
length) and prints the child's peak RSS. ``--engine motion`` (default) runs the bundled motion
engine; ``compact`` / ``wav2lip`` the generator engine with random weights (memory only).

``--photo-fps F`` is the cheap mode for hour-long speech: the face is the bundled 320x320 sample
photo animated at F frames per second (a 60-minute output is 3600 frames at 1 fps instead of
90 000), while the speech track keeps its full length and sample rate. Frames cost almost nothing
then, so what grows with the length is what the pipeline holds per second of *audio* (the 16 kHz
copy the engine reads, its features, and whatever the muxer keeps): exactly the figure this mode
is for. Without ``../shared/data`` it drives the photo with the bundled sample speech, looped.
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


def run_photo(face: Path, speech: Path, output: Path, fps: float) -> dict:
    """Child process: the photo at ``fps`` driven by ``speech``; its figures."""
    import resource

    from lipdub.pipeline import sync

    start = time.perf_counter()
    result = sync(face, speech, output, photo_fps=fps, overwrite=True)
    wall = time.perf_counter() - start
    return {"frames": result.frames, "end_to_end_fps": result.frames / wall,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=float, nargs="+", default=[30.0, 300.0], help="video lengths in seconds")
    parser.add_argument("--size", choices=list(SIZES), default="720p")
    parser.add_argument("--engine", choices=["motion", "compact", "wav2lip"], default="motion")
    parser.add_argument("--source", type=Path, default=SHARED / "train/real/woman_blue_wall.mp4")
    parser.add_argument("--audio", type=Path, default=SHARED / "audio/english_lecture_intro_46s.wav")
    parser.add_argument("--photo-fps", type=float, default=None,
                        help="cheap mode: the bundled photo at this frame rate, full-length speech (motion engine)")
    parser.add_argument("--child-photo", nargs=4, metavar=("FACE", "AUDIO", "OUTPUT", "FPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_photo:
        face, speech, output, fps = args.child_photo
        print(json.dumps(run_photo(Path(face), Path(speech), Path(output), float(fps))))
        return
    if args.photo_fps is not None:
        photo_mode(args)
        return
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
            figures = child_figures([str(throughput), "--child", str(video), str(speech), str(checkpoint),
                                     str(tmp / "out.mp4")], seconds)
            print(f"{seconds:6.0f} s  {figures['frames']:6d} frames  peak RSS {figures['peak_rss_mib']:7.0f} MiB  "
                  f"end-to-end {figures['end_to_end_fps']:5.1f} fps")
            video.unlink()


def child_figures(arguments: list[str], seconds: float) -> dict:
    """Run one measurement in a fresh Python (so its peak RSS is that run's alone); its JSON figures."""
    child = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    if child.returncode != 0:
        print(child.stderr[-2000:], file=sys.stderr)
        sys.exit(f"run failed for {seconds:g} s")
    return json.loads(child.stdout.strip().splitlines()[-1])


def photo_mode(args: argparse.Namespace) -> None:
    """The cheap mode (see the module docstring): photo frames, full-length speech."""
    import lipdub

    assets = Path(lipdub.__file__).resolve().parent / "assets"
    audio = args.audio if args.audio.exists() else assets / "sample_speech.wav"
    print(f"# lipdub peak memory vs speech length, {time.strftime('%Y-%m-%d')}, photo {assets / 'sample_face.jpg'} "
          f"at {args.photo_fps:g} fps, speech {audio.name} looped, motion engine")
    with tempfile.TemporaryDirectory(prefix="lipdub-mem-") as tmp:
        tmp = Path(tmp)
        for seconds in args.lengths:
            speech = tmp / f"speech_{seconds:g}.wav"
            write_long_speech(audio, seconds, speech)
            start = time.perf_counter()
            figures = child_figures([__file__, "--child-photo", str(assets / "sample_face.jpg"), str(speech),
                                     str(tmp / "out.mp4"), str(args.photo_fps)], seconds)
            print(f"{seconds / 60:6.1f} min speech  {figures['frames']:6d} frames  peak RSS {figures['peak_rss_mib']:7.0f} MiB  "
                  f"wall {time.perf_counter() - start:6.1f} s")
            speech.unlink()


if __name__ == "__main__":
    main()
