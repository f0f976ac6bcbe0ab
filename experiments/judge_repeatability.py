"""How far Face Mesh agrees with itself: the judge's test-retest reliability on each clip.

Why: `lipdub eval-set`'s "render r" re-measures the output's mouth opening with Face Mesh and
correlates it with the opening the engine aimed for. A renderer that reproduced the input exactly
would still be written through lipdub's own encoder (H.264, crf 18), so the least a judge must do is
read the same opening from a clip and from that clip re-encoded. Where it does not, no renderer can
reach a high render r on that clip: with independent reading noise of that size, a perfect render's
expected r is bounded by about sqrt(retest r) (the reliability of one reading).

    python experiments/judge_repeatability.py CLIP... [-o out/judge-retest]

Per clip: the clip is decoded and written again with `lipdub.media.encode.VideoWriter` (the
encoder and settings every lipdub output goes through; nothing else changes), both are tracked
with `lipdub.eval.report.track_video` (the judge `eval-set` uses), and the Face Mesh openings
(`lipdub.eval.mouth.mouth_aperture`) compared frame by frame:

- ``retest_r``: Pearson r at lag 0 between the two readings;
- ``ceiling``: sqrt(retest_r), the r a perfect render could expect against a noiseless target;
- ``mean_abs``: mean absolute difference of the two readings (eye-corner units);
- ``flips``: share of frames whose two readings differ by more than 0.05 (an ordinary speech
  opening is about 0.10).

Writes ``results.json`` and ``table.md`` to the output folder.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

FLIP = 0.05  # eye-corner units: half an ordinary speech opening


def reencode(clip: Path, output: Path) -> Path:
    """``clip``'s frames written again through lipdub's own encoder (no audio)."""
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.media.encode import VideoWriter

    info = probe_video(clip)
    writer = None
    for frame in iter_frames(clip):
        if writer is None:
            height, width = frame.image.shape[:2]
            writer = VideoWriter(output, width, height, info.fps, overwrite=True)
        writer.write(frame.image)
    writer.close()
    return output


def retest(first: np.ndarray, second: np.ndarray) -> dict:
    """Agreement of two (N,) readings of the same frames (NaN where a reading is missing)."""
    from lipdub.eval.mouth import aperture_correlation

    n = min(len(first), len(second))
    a, b = np.asarray(first[:n], np.float64), np.asarray(second[:n], np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    r = aperture_correlation(a, b, max_lag=0).r
    difference = np.abs(a[both] - b[both])
    return {"retest_r": r, "ceiling": math.sqrt(max(r, 0.0)), "mean_abs": float(difference.mean()),
            "flips": float(np.mean(difference > FLIP))}


def main() -> None:
    from lipdub.eval.mouth import mouth_aperture
    from lipdub.eval.report import track_video

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("out/judge-retest"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in args.clips:
        copy = reencode(clip, args.out / f"{clip.stem}_crf18.mp4")
        row = {"clip": clip.name, **retest(mouth_aperture(track_video(clip).landmark_array()),
                                           mouth_aperture(track_video(copy).landmark_array()))}
        copy.unlink()
        rows.append(row)
        print(json.dumps(row))
    keys = ("retest_r", "ceiling", "mean_abs", "flips")
    mean = {key: float(np.mean([row[key] for row in rows])) for key in keys}
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "mean": mean}, indent=1) + "\n")
    lines = ["| clip | retest r | ceiling | mean abs | flips |", "|---|---|---|---|---|"]
    lines += [f"| {row['clip']} | " + " | ".join(f"{row[key]:.3f}" for key in keys) + " |" for row in rows]
    lines.append("| **mean** | " + " | ".join(f"{mean[key]:.3f}" for key in keys) + " |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
