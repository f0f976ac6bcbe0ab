"""Throughput of the lipdub pipeline per stage and end to end, with peak memory.

    python benchmarks/throughput.py [--seconds 10] [--engine motion compact wav2lip] [--sizes 720p 1080p]
        [--render-threads 1 2] [--motion-models lipdub-motion lipdub-motion-whisper-tiny-base] [--hands on off]

For each size it builds a test video from a real clip in ../shared/data (scaled into a 1280x720
or 1920x1080 frame), runs `lipdub.sync` in a fresh subprocess (so peak RSS is that run's alone)
and prints frames per second per stage and end to end. ``motion`` is the default engine with the
bundled lip motion model; ``compact`` / ``wav2lip`` are the generator engine with RANDOM weights of
that architecture (timings only, the pictures mean nothing). Decoding and encoding run in their own
threads beside the rendering, so the per-stage figures of "decode" and "encode (queue)" are the
time the loop *waited* for them, not their cost. Compare figures as ratios within one run: the
machine's load changes absolute numbers from run to run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def make_input(source: Path, size: tuple[int, int], seconds: float, path: Path) -> None:
    """Write a test video: the source clip scaled into the middle of a frame of ``size``."""
    import cv2
    import numpy as np

    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.media.encode import VideoWriter

    width, height = size
    info = probe_video(source)
    count = int(seconds * info.fps)
    scale = height / info.height
    inner_w, inner_h = int(info.width * scale) // 2 * 2, height
    x0 = (width - inner_w) // 2
    canvas = np.full((height, width, 3), 90, np.uint8)
    with VideoWriter(path, width, height, info.fps, overwrite=True) as writer:
        written = 0
        while written < count:
            for frame in iter_frames(source):
                canvas[:, x0 : x0 + inner_w] = cv2.resize(frame.image, (inner_w, inner_h), interpolation=cv2.INTER_LINEAR)
                writer.write(canvas)
                written += 1
                if written >= count:
                    break


def make_checkpoint(architecture: str, path: Path) -> None:
    """A randomly initialised generator checkpoint, for timing only."""
    import torch

    from lipdub.models.compact import CompactGenerator
    from lipdub.models.wav2lip import Wav2Lip

    torch.manual_seed(0)
    network = CompactGenerator() if architecture == "compact" else Wav2Lip()
    torch.save({"state_dict": network.state_dict()}, path)


def run_one(video: Path, audio: Path, checkpoint: Path | None, output: Path, batch_size: int,
            render_threads: int, motion_model: str | None = None, keep_hands: bool = True) -> dict:
    """Child process: one sync run (the motion engine when ``checkpoint`` is None); its figures."""
    from lipdub.pipeline import sync

    start = time.perf_counter()
    result = sync(video, audio, output, checkpoint=checkpoint, batch_size=batch_size, overwrite=True, length_mode="cut",
                  render_threads=render_threads, motion_model=motion_model, keep_hands=keep_hands)
    wall = time.perf_counter() - start
    return {
        "frames": result.frames,
        "wall_s": wall,
        "end_to_end_fps": result.frames / wall,
        "stage_fps": result.stage_fps(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each test video")
    parser.add_argument("--engine", choices=["motion", "compact", "wav2lip"], nargs="+", default=["motion"],
                        help="motion: the default engine; compact / wav2lip: the generator engine, random weights")
    parser.add_argument("--sizes", choices=list(SIZES), nargs="+", default=list(SIZES))
    parser.add_argument("--source", type=Path, default=SHARED / "train/real/woman_blue_wall.mp4")
    parser.add_argument("--audio", type=Path, default=SHARED / "audio/english_lecture_intro_46s.wav")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--render-threads", type=int, nargs="+", default=[2],
                        help="motion engine: frames drawn at once (several values: one run each, compared)")
    parser.add_argument("--motion-models", nargs="+", default=["default"],
                        help="motion engine: bundled lip motion models to time, one run each ('default': the "
                             "installation's default; the Whisper models run their encoders too)")
    parser.add_argument("--hands", choices=["on", "off"], nargs="+", default=["on"],
                        help="motion engine: look for hands by the face while tracking (the default) or not; "
                             "several values: one run each, compared")
    parser.add_argument("--child", nargs=4, metavar=("VIDEO", "AUDIO", "CHECKPOINT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        video, audio, checkpoint, output = map(Path, args.child)
        model = args.motion_models[0]
        print(json.dumps(run_one(video, audio, None if checkpoint.name == "-" else checkpoint, output, args.batch_size,
                                 args.render_threads[0], None if model == "default" else model,
                                 args.hands[0] == "on")))
        return

    for path in (args.source, args.audio):
        if not path.exists():
            sys.exit(f"benchmark input missing: {path} (needs ../shared/data)")
    print(f"# lipdub throughput, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} cores, python {platform.python_version()}")
    print("# motion = bundled lip motion model; compact / wav2lip generator weights are RANDOM (timing only)")
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-") as tmp:
        tmp = Path(tmp)
        for architecture in args.engine:
            checkpoint = Path("-")
            if architecture != "motion":
                checkpoint = tmp / f"{architecture}.pth"
                make_checkpoint(architecture, checkpoint)
            for size in args.sizes:
                video = tmp / f"input_{size}.mp4"
                if not video.exists():
                    make_input(args.source, SIZES[size], args.seconds, video)
                runs = [(threads, model, hands) for model in args.motion_models for threads in args.render_threads
                        for hands in args.hands]
                for threads, model, hands in runs if architecture == "motion" else runs[:1]:
                    child = subprocess.run(
                        [sys.executable, __file__, "--batch-size", str(args.batch_size), "--render-threads", str(threads),
                         "--motion-models", model, "--hands", hands,
                         "--child", str(video), str(args.audio), str(checkpoint), str(tmp / f"out_{size}.mp4")],
                        capture_output=True, text=True,
                    )
                    if child.returncode != 0:
                        print(child.stderr[-2000:], file=sys.stderr)
                        sys.exit(f"benchmark run failed for {architecture} {size}")
                    figures = json.loads(child.stdout.strip().splitlines()[-1])
                    stages = "  ".join(f"{k} {v:7.1f}" for k, v in figures["stage_fps"].items())
                    label = f"{architecture} x{threads}" if architecture == "motion" else architecture
                    if architecture == "motion" and len(args.motion_models) > 1:
                        label += f" {model}"
                    if architecture == "motion" and len(args.hands) > 1:
                        label += f" hands {hands}"
                    print(f"{label:10s} {size:6s} frames {figures['frames']:4d}  end-to-end {figures['end_to_end_fps']:6.1f} fps  "
                          f"peak RSS {figures['peak_rss_mib']:7.0f} MiB  | per-stage fps: {stages}")


if __name__ == "__main__":
    main()
