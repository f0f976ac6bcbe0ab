"""Where a dubbed mouth's delay comes from: engine target vs real mouth, output vs target, output vs real.

    python experiments/lag_probe.py ../shared/data/train/real/woman_seated_vertical.mp4 [image|video]
        [--motion-model NAME_OR_PT]

Runs one `lipdub eval-set` protocol reconstruction of the clip from its own speech, re-measures the
output with the judge's tracker and prints, for each pair of mouth-opening signals, the best
Pearson r within +-6 frames with its lag (positive: the first signal is late) and r at lag 0. This
is how the tracker's causal smoothing showed up as a one-frame delay (docs/models.md, "Timing of
the mouth").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from lipdub.eval.mouth import aperture_correlation, mouth_aperture
from lipdub.eval.protocols import reconstruct
from lipdub.eval.report import track_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("protocol", nargs="?", default="image", choices=("image", "video"))
    parser.add_argument("--motion-model")
    args = parser.parse_args()
    real = mouth_aperture(track_video(args.clip).landmark_array())
    options = {"motion_model": args.motion_model} if args.motion_model else {}
    with tempfile.TemporaryDirectory() as work:
        result = reconstruct(args.clip, args.protocol, Path(work) / "out.mp4", **options)
        output = mouth_aperture(track_video(result.output).landmark_array())
    target = np.asarray(result.target_aperture, np.float64)
    n = min(len(real), len(output), len(target))
    for name, a, b in (("target vs real", target, real), ("output vs target", output, target),
                       ("output vs real", output, real)):
        best = aperture_correlation(a[:n], b[:n], max_lag=6)
        print(f"{name:18s} best r {best.r:.3f} at lag {best.lag:+d}; lag 0: {aperture_correlation(a[:n], b[:n], max_lag=0).r:.3f}")


if __name__ == "__main__":
    main()
