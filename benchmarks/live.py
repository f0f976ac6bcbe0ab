"""A live avatar's speed and delay: `lipdub.live.LiveAvatar` on a photo or a video, fed speech in pieces.

    python benchmarks/live.py [--photo PATH | --video PATH] [--speech PATH] [--chunk-ms 40] [--threads 1]

Two runs on the same avatar and speech:

- **unpaced**: the speech pushed as fast as the avatar takes it: frames per second drawn, and that
  rate over the stream's own frame rate (how many times faster than real time; below 1 it cannot
  keep up live);
- **paced**: the pieces delivered at their own duration, as a microphone would: each frame's delay
  between its moment and leaving the avatar (median, 95th percentile, maximum), against the
  delay the look-ahead and smoothing alone impose (`LiveAvatar.latency_seconds`).

``--threads`` sets torch's intra-op threads (the `lipdub live` command uses 1: see its comment).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ASSETS / "sample_face.jpg")
    parser.add_argument("--video", type=Path, default=None, help="a video avatar (its first 10 s looped) instead of the photo")
    parser.add_argument("--speech", type=Path, default=ASSETS / "sample_speech.wav")
    parser.add_argument("--chunk-ms", type=float, default=40.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-side", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lipdub.live import LiveAvatar, run_live
    from lipdub.media.audio import load_audio, rechunk

    speech = load_audio(args.speech)
    face = args.video or args.photo
    chunk = int(round(16000 * args.chunk_ms / 1000))
    start = time.perf_counter()
    for paced in (False, True):
        with LiveAvatar(face, fps=None if args.video else args.fps, max_side=args.max_side) as avatar:
            if not paced:
                height, width = avatar.frame_shape
                what = "photo" if avatar.is_photo else f"video ({avatar.loop_frames} frames looped)"
                print(f"{what} {face.name} {width}x{height}, speech {args.speech.name} {len(speech) / 16000:.1f} s, "
                      f"{avatar.fps:g} fps, pieces of {args.chunk_ms:g} ms, torch threads {args.threads}; "
                      f"avatar ready in {time.perf_counter() - start:.2f} s")
            run = run_live(avatar, rechunk(iter([speech]), chunk), lambda frame: None, realtime=paced)
            if not paced:
                print(f"unpaced: {run.frames} frames in {run.wall_seconds:.2f} s = {run.frames_per_second:.1f} fps "
                      f"= {run.frames_per_second / avatar.fps:.2f}x real time")
            else:
                delays = 1000 * np.asarray(run.delays)
                print(f"paced: frame delay median {np.median(delays):.0f} ms, p95 {np.percentile(delays, 95):.0f} ms, "
                      f"max {delays.max():.0f} ms; look-ahead and smoothing alone {1000 * avatar.latency_seconds:.0f} ms")


if __name__ == "__main__":
    main()
