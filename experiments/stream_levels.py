"""Write the starting levels a live stream assumes before it has heard its speaker
(`lipdub/motion/stream_levels.json`, read by `lipdub.motion.streaming`).

    python experiments/stream_levels.py [--model lipdub-motion-causal] [--data ../shared/data]

For every real training clip of the motion model (its card's ``train_clips``; validation
speakers are never read): the mel's per-band level over the louder half of its columns
(`band_levels`, what `normalise_mel` subtracts) and the 90th percentile of its frame loudness
(the speech gate's reference). The file keeps their medians over the clips, and the clips' names.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lipdub.media.audio import load_audio
from lipdub.media.decode import probe_video
from lipdub.motion.features import band_levels
from lipdub.motion.predictor import WEIGHTS_DIR, SpeechFeatures, frame_loudness
from lipdub.motion.streaming import LEVELS_FILE
from lipdub.timeline import frames_for_duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lipdub-motion-causal")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("-o", "--output", type=Path, default=LEVELS_FILE)
    args = parser.parse_args()
    card = json.loads((WEIGHTS_DIR / f"{args.model}.json").read_text())
    wanted = {clip.rsplit("-", 1)[0] for clip in card["train_clips"]}
    levels, louds, names = [], [], []
    for path in sorted((args.data / "train" / "real").iterdir()):
        if path.stem not in wanted:
            continue
        samples = load_audio(path)
        raw = SpeechFeatures(samples).raw_mel
        fps = probe_video(path).fps
        loudness = frame_loudness(raw, frames_for_duration(len(samples) / 16000, fps), fps)
        levels.append(band_levels(raw)[:, 0])
        louds.append(float(np.percentile(loudness, 90)))
        names.append(path.name)
    if not names:
        raise SystemExit(f"no training clip of {args.model} under {args.data / 'train' / 'real'}")
    record = {
        "description": "Levels a live stream assumes before it has heard its speaker (lipdub.motion.streaming): "
                       f"medians over the real training clips of {args.model}.",
        "band_levels": [round(float(v), 5) for v in np.median(np.stack(levels), axis=0)],
        "loud_level": round(float(np.median(louds)), 5),
        "clips": names,
    }
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.output}: {len(names)} clips, loud level {record['loud_level']:.2f} "
          f"(clips {min(louds):.2f}..{max(louds):.2f})")


if __name__ == "__main__":
    main()
