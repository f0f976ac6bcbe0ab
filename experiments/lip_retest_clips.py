"""The tracking pass's lip retest (`lipdub.face.lip_retest`) on many clips: where its threshold sits.

    python experiments/lip_retest_clips.py CLIP_OR_FOLDER... [--frames 40] [-o out/lip-retest]

Each clip is tracked as `lipdub sync` tracks it (one thread), and ``--frames`` frames spread over it
are read twice by Face Mesh, as decoded and after a JPEG round trip of the face, exactly as `sync`
does with 24. Prints and writes (``results.json``) each clip's mean change of the mouth opening
(eye widths) and whether it passes `UNRELIABLE_CHANGE`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mkv", ".mov", ".avi", ".webm"}


def retest_clip(clip: Path, frames: int):
    from lipdub.face.detect import FaceDetector
    from lipdub.face.lip_retest import LipRetest
    from lipdub.face.track import FaceTracker, SmoothingConfig
    from lipdub.media.decode import iter_frames, probe_video

    info = probe_video(clip)
    retest = LipRetest(info.frame_count, samples=frames)
    with FaceDetector() as detector:
        tracker = FaceTracker(detector, smoothing=SmoothingConfig(fps=info.fps))
        for frame in iter_frames(clip):
            retest.add(detector, frame.index, frame.image, tracker.update(frame.image))
    return retest.result()


def main() -> None:
    from lipdub.face.lip_retest import UNRELIABLE_CHANGE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("-o", "--out", type=Path, default=Path("out/lip-retest"))
    args = parser.parse_args()
    clips = [path for source in args.sources
             for path in (sorted(source.iterdir()) if source.is_dir() else [source])
             if path.suffix.lower() in VIDEO_SUFFIXES]
    rows = []
    for clip in clips:
        reading = retest_clip(clip, args.frames)
        rows.append({"clip": str(clip), "frames": reading.frames, "mean_change": reading.mean_change,
                     "reliable": reading.reliable})
        print(f"{clip.name}: {reading.mean_change:.4f} over {reading.frames} frames"
              f"{'' if reading.reliable else '  <- over ' + str(UNRELIABLE_CHANGE)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
