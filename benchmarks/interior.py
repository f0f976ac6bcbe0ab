"""Per-frame cost of the mouth interior: the learned network vs the procedural painting.

    python benchmarks/interior.py [--repeat 200] [--threads 1]

Detects the face of the bundled sample photo, opens its target mouth by moving the lower inner
lip down 0.15 eye units (a wide vowel), and times what `MotionEngine._draw` calls for one frame
whose opening must be painted: `LearnedInterior.paint` (crop, network, map back, alpha) and
`paint_interior` + `teeth_colour` (the stand-in), on the same lower-face patch. Prints the median
and 90th percentile in milliseconds. Only frames with an opening no input frame can supply pay
this (always for a photo, rarely for a video).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"


def timed(function, repeat: int) -> tuple[float, float]:
    function()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lipdub.engines.motion import LEFT_EYE_RING, RIGHT_EYE_RING
    from lipdub.eval.mouth import LIP_INNER, LIP_OUTER
    from lipdub.face.detect import FaceDetector
    from lipdub.render.interior import lip_colour, paint_interior, teeth_colour
    from lipdub.render.learned_interior import load_learned_interior

    image = cv2.cvtColor(cv2.imread(str(ASSETS / "sample_face.jpg")), cv2.COLOR_BGR2RGB)
    with FaceDetector(still_image=True) as detector:
        points = detector.detect(image)[0].landmarks.astype(np.float64)
    eye = float(np.linalg.norm(points[33] - points[263]))
    target = points.copy()
    lower = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
    target[lower[1:-1], 1] += 0.15 * eye * np.sin(np.linspace(0, np.pi, len(lower))[1:-1])
    inner, outer = target[list(LIP_INNER)], target[list(LIP_OUTER)]
    x1, y1 = (int(v) for v in points[:, :2].min(axis=0))
    x2, y2 = int(points[:, 0].max()), int(points[:, 1].max())
    y1 = int(points[2, 1])  # from the nose base down, like the engine's lower-face patch
    patch = np.ascontiguousarray(image[y1:y2, x1:x2])
    learned = load_learned_interior()

    def run_learned():
        return learned.paint(patch, (x1, y1), inner, outer, eye)

    def run_painted():
        lips = lip_colour(image, outer, inner)
        eyes = [points[list(r)] for r in (RIGHT_EYE_RING, LEFT_EYE_RING)]
        return paint_interior(patch, (x1, y1), inner, lips, eye, teeth_colour(image, eyes, lips))

    print(f"sample photo {image.shape[1]}x{image.shape[0]}, eye distance {eye:.0f} px, patch {patch.shape[1]}x{patch.shape[0]}, "
          f"{args.threads} torch thread(s)")
    for name, function in (("learned", run_learned), ("painted", run_painted)):
        median, p90 = timed(function, args.repeat)
        print(f"{name:8s} median {median:.2f} ms, p90 {p90:.2f} ms")


if __name__ == "__main__":
    main()
