"""Contact sheets: input vs output mouth crops of `lipdub sync`, so that a person can look.

    python experiments/contact_sheet.py FACE AUDIO -o docs/images/sheet.jpg [--frames 10] [--start 0]
    python experiments/contact_sheet.py FACE AUDIO -o docs/images/sheet.png --interior both

Runs `lipdub.sync` (default engine, `--length-mode cut`), tracks the input, and writes a PNG with
two rows: the input's mouth region and the output's at the same frames (evenly spaced from
``--start``), each crop centred on that frame's tracked mouth at the input's own resolution
(resized only to a common height for the sheet). For a photo the top row repeats the photo.

``--interior painted|learned`` chooses the motion engine's mouth interior (default painted);
``both`` runs the two and writes three rows (input, painted, learned) at the frames where they
differ most, i.e. where the interior was painted at all.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np


def mouth_window(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box around the lower face: eye-distance sized, centred a little below the mouth."""
    eye = float(np.linalg.norm(landmarks[33] - landmarks[263]))
    cx, cy = landmarks[[61, 291, 13, 14]].mean(axis=0)
    half_w, half_h = 0.95 * eye, 0.65 * eye
    h, w = shape[:2]
    x1, y1 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
    return x1, y1, int(min(w, cx + half_w)), int(min(h, cy + half_h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("face", type=Path)
    parser.add_argument("audio", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--height", type=int, default=150)
    parser.add_argument("--interior", choices=("learned", "painted", "both"), default="painted")
    args = parser.parse_args()

    from lipdub.eval.report import track_video
    from lipdub.media.decode import iter_frames
    from lipdub.pipeline import sync

    with tempfile.TemporaryDirectory(prefix="lipdub-sheet-") as tmp:
        interiors = ("painted", "learned") if args.interior == "both" else (args.interior,)
        results = []
        for interior in interiors:
            out = Path(tmp) / f"out-{interior}.mp4"
            sync(args.face, args.audio, out, length_mode="cut", overwrite=True, interior=interior)
            results.append([f.image for f in iter_frames(out)])
        source = [f.image for f in iter_frames(args.face)]
        track = track_video(args.face).landmark_array()
    stop = min(len(results[0]), args.start + 5 * args.frames)
    picks = np.linspace(args.start, stop - 1, args.frames).astype(int)
    if len(results) == 2:  # the frames whose mouth interior was painted: where the two differ most
        first = track[0] if np.isfinite(track[0]).all() else np.nanmedian(track, axis=0)
        x1, y1, x2, y2 = mouth_window(first, source[0].shape)
        change = np.array([np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2]).mean()
                           for a, b in zip(*results)])
        spread = np.argsort(-change[args.start:])[: 4 * args.frames] + args.start
        picks = np.sort(spread[np.linspace(0, len(spread) - 1, args.frames).astype(int)])
    rows = [[] for _ in range(1 + len(results))]
    for index in picks:
        landmarks = track[min(index, len(track) - 1)]
        if not np.isfinite(landmarks).all():
            continue
        x1, y1, x2, y2 = mouth_window(landmarks, source[0].shape)
        for row, frames in zip(rows, (source, *results)):
            crop = frames[min(index, len(frames) - 1)][y1:y2, x1:x2]
            width = int(round(crop.shape[1] * args.height / crop.shape[0]))
            row.append(cv2.resize(crop, (width, args.height), interpolation=cv2.INTER_AREA))
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output}: frames {list(picks)}")


if __name__ == "__main__":
    main()
