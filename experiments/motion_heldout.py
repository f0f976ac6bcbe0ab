"""Held-out prediction-only aperture r of bundled or exported motion models on a dataset's validation clips.

    python experiments/motion_heldout.py datasets/shared-v3 lipdub-motion runs/x/checkpoint.pt ...
        [--landmarks measured|smoothed] [--smoothing 1.0]

A model named ``a.pt+b.pt+...`` is the ensemble of those runs (decoded predictions averaged), as
`lipdub train export-motion` would bundle it.

The figure `lipdub train export-motion` prints for the ensemble it writes (mean over speakers of the
per-clip Pearson r at lag 0, best lag within +-5 frames), here for any model against either kind of
landmarks, so models trained on one kind can be compared on the same truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lipdub.motion.predictor import MotionPredictor, load_motion_model
from lipdub.motion.shape import gaussian_smooth
from lipdub.train.motion import MotionRecipe, aperture_figures, ensemble_motion, load_motion_clips, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--landmarks", default="measured")
    parser.add_argument("--smoothing", type=float, default=None, help="Gaussian sigma (frames); default: the model's")
    args = parser.parse_args()
    predictors = []
    for name in args.models:
        parts = [load_motion_model(part) for part in name.split("+")]
        predictor = parts[0]
        if len(parts) > 1:
            predictor = MotionPredictor(name, [m for p in parts for m in p.members], parts[0].default_scale, smoothing=1.0)
        predictors.append(predictor)
    kinds = sorted({member.features for p in predictors for member in p.members})
    # The rest kind only shifts the constant opening the predictions are drawn on: one load serves all.
    # A causal model reads windows that end `lookahead` columns after the frame: load those for it.
    first = predictors[0].members[0].recipe
    causal = bool(first.get("causal", False))
    if any(bool(m.recipe.get("causal", False)) != causal for p in predictors for m in p.members):
        parser.error("compare causal models with causal ones only (they read other windows)")
    recipe = MotionRecipe(kinds=("real",), landmarks=args.landmarks, features=kinds[0], rest=predictors[0].rest,
                          causal=causal, lookahead=int(first.get("lookahead", 8)))
    clips = [c for c in load_motion_clips(args.dataset, recipe, also=kinds[1:]) if c.split == "val" and c.valid.sum() >= 10]
    for name, predictor in zip(args.models, predictors):
        sigma = predictor.smoothing if args.smoothing is None else args.smoothing
        rows = [aperture_figures(gaussian_smooth(ensemble_motion(predictor.members, clip), sigma), clip) for clip in clips]
        real = summarise(rows)["real"]
        per = ", ".join(f"{s} {v['r']:.3f}/{v['lag']:+.1f}" for s, v in real["per_speaker"].items())
        print(f"{name}: r {real['r']:.4f} over {real['speakers']} speakers, mean best lag {real['mean_lag']:+.2f}  [{per}]")


if __name__ == "__main__":
    main()
