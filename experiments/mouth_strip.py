"""Mouth crops of chosen frames: an input video (top row) against a dubbed output (bottom row).

    python experiments/mouth_strip.py INPUT.mp4 OUTPUT.mp4 10,14,32 -o strip.png

Each crop is centred on the input frame's tracked mouth (Face Mesh, as `lipdub eval` measures it),
two eye distances wide, upscaled to 200 px with the frame number in the corner; the output frame
is cut from the same place, so the two rows line up. For looking at particular frames (the ones a
table says are wrong); `experiments/contact_sheet.py` spreads its frames over a stretch instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lipdub.eval.report import track_video
from lipdub.media.decode import iter_frames


def frames_of(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    return {f.index: f.image for f in iter_frames(path) if f.index in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("frames", help="comma-separated frame numbers")
    parser.add_argument("-o", "--png", type=Path, required=True)
    args = parser.parse_args()
    frames = [int(x) for x in args.frames.split(",")]
    landmarks = track_video(args.input).landmark_array()
    before, after = frames_of(args.input, set(frames)), frames_of(args.output, set(frames))
    tiles = []
    for k in frames:
        points = landmarks[k]
        cx, cy = np.nanmean(points[[61, 291, 0, 17, 13, 14]], axis=0)
        half = int(np.linalg.norm(points[33] - points[263]) * 0.9)
        x1, y1 = max(0, int(cx - half)), max(0, int(cy - 0.7 * half))
        x2, y2 = x1 + 2 * half, y1 + int(1.4 * half)
        column = np.concatenate([before[k][y1:y2, x1:x2], after[k][y1:y2, x1:x2]], axis=0)
        column = cv2.resize(column, (200, int(200 * column.shape[0] / column.shape[1])), interpolation=cv2.INTER_CUBIC)
        cv2.putText(column, str(k), (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(column)
    height = min(t.shape[0] for t in tiles)
    cv2.imwrite(str(args.png), cv2.cvtColor(np.concatenate([t[:height] for t in tiles], axis=1), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
