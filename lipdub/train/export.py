"""Turn a training checkpoint into weights that ship inside the package.

Bundled files must stay well under 16 MiB each, so tensors are stored in float16 (the networks
load them into float32; the rounding error, ~1e-3 relative, is far below what the pictures show).
A generator goes to ``lipdub/weights/<name>.pt`` with its ``<name>.json`` spec (what the registry
reads); the sync expert goes to ``lipdub/weights/experts/`` where the judge looks for it; lip
motion models (one run or an ensemble of runs) go to ``lipdub/weights/motion/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from lipdub.errors import LipdubError
from lipdub.fileio import AtomicFile
from lipdub.models.checkpoint import load_state_dict
from lipdub.models.registry import WEIGHTS_DIR, ModelSpec, infer_spec

logger = logging.getLogger(__name__)

EXPERTS_DIR = WEIGHTS_DIR / "experts"
MAX_BUNDLED_BYTES = 16 * 1024 * 1024


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors in float16; integer buffers (BatchNorm's counters) unchanged."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def _save(state: dict[str, torch.Tensor], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path, overwrite=True) as handle:
        torch.save(state, handle.file)
        size = handle.file.tell()
        if size >= MAX_BUNDLED_BYTES:  # raising discards the file
            raise LipdubError(f"{path.name} would be {size / 2**20:.1f} MiB; bundled files must stay under 16 MiB")
    return size


def export_generator(checkpoint: Path, name: str, description: str, out_dir: Path = WEIGHTS_DIR) -> Path:
    """Write ``<out_dir>/<name>.pt`` (float16) and ``<name>.json``; returns the weights path."""
    state = load_state_dict(checkpoint)
    spec = infer_spec(state, name=name)
    spec = ModelSpec(**{**spec.to_dict(), "name": name, "description": description, "channel_order": "rgb",
                        "mel": spec.mel})
    weights = Path(out_dir) / f"{name}.pt"
    size = _save(_half(state), weights)
    (Path(out_dir) / f"{name}.json").write_text(json.dumps({**spec.to_dict(), "weights": weights.name}, indent=1) + "\n")
    logger.info("exported %s (%s, %.1f MiB)", weights, spec.architecture, size / 2**20)
    return weights


def export_expert(checkpoint: Path, name: str, description: str, facts: dict | None = None,
                  out_dir: Path = EXPERTS_DIR) -> Path:
    """Write the sync expert as ``<out_dir>/<name>.pt`` (float16) + ``<name>.json`` (its card facts)."""
    from lipdub.train.syncnet import load_syncnet

    network = load_syncnet(Path(checkpoint))
    weights = Path(out_dir) / f"{name}.pt"
    size = _save(_half(network.state_dict()), weights)
    meta = {"name": name, "architecture": type(network).__name__, "description": description, **(facts or {})}
    (Path(out_dir) / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    logger.info("exported %s (%.1f MiB)", weights, size / 2**20)
    return weights


def export_motion(run_dirs: Sequence[Path], name: str, description: str = "", smoothing: float = 1.0,
                  out_dir: Path | None = None) -> Path:
    """Bundle one or more lip motion runs (same data split) as ``lipdub/weights/motion/<name>.pt``.

    Several runs become an ensemble (their decoded predictions are averaged at inference). The
    amplitude gain is measured again on the runs' *training* clips for the ensemble as shipped;
    weights are stored in float16. Beside the weights, ``<name>.json`` records the runs, their
    data split, recipes and validation figures (the facts the model card quotes).
    """
    import numpy as np

    from lipdub.motion.predictor import (WEIGHTS_DIR as MOTION_DIR, MotionPredictor, common_rest, member_from_state,
                                         save_motion_model)
    from lipdub.motion.shape import gaussian_smooth
    from lipdub.train.motion import (MotionRecipe, amplitude_gain, aperture_figures, ensemble_motion,
                                     load_motion_clips, summarise)

    if not run_dirs:
        raise LipdubError("name at least one motion run")
    states, splits = [], []
    for run in map(Path, run_dirs):
        try:
            states.append(torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False))
            splits.append(json.loads((run / "data.json").read_text()))
        except (OSError, ValueError) as error:
            raise LipdubError(f"{run} is not a finished motion run: {error}") from error
    if any(split["val_speakers"] != splits[0]["val_speakers"] for split in splits):
        raise LipdubError("the runs were validated on different speakers; ensemble runs of one split only")
    members = [member_from_state(state) for state in states]
    common_rest(members, "this ensemble")
    recipe = MotionRecipe.of_member(states[0]["recipe"])
    also = sorted({member.features for member in members} - {recipe.features})  # a mixed mel + Whisper ensemble
    loaded = load_motion_clips(Path(splits[0]["dataset"]), recipe, also=also)
    clips = [c for c in loaded if c.split == "train" and c.kind == "real"]

    def ensemble(clip):
        return gaussian_smooth(ensemble_motion(members, clip), smoothing)

    gain = amplitude_gain(ensemble, clips)
    # The shipped model's own held-out figure (the runs' metrics are each member's alone).
    validation = summarise([aperture_figures(ensemble(clip), clip) for clip in loaded
                            if clip.split == "val" and clip.valid.sum() >= 10])
    for kind in ("real", "synthetic"):
        if kind in validation:
            logger.info("ensemble of %d, val %s: aperture r %.3f over %d speakers (mean best lag %+.2f)", len(members),
                        kind, validation[kind]["r"], validation[kind]["speakers"], validation[kind]["mean_lag"])
    default_scale = float(np.median([state["default_scale"] for state in states]))
    out_dir = Path(out_dir) if out_dir is not None else MOTION_DIR
    path = out_dir / f"{name}.pt"
    save_motion_model(MotionPredictor(name, members, default_scale, gain, smoothing), path)
    card = {"name": name, "description": description, "runs": [str(r) for r in run_dirs], "gain": gain,
            "default_scale": default_scale, "smoothing": smoothing, "train_clips": splits[0]["train"],
            "val_clips": splits[0]["val"], "val_speakers": splits[0]["val_speakers"],
            "recipes": [state["recipe"] for state in states],
            "validation": {k: v for k, v in validation.items() if k != "clips"}, "validation_clips": validation["clips"]}
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    return path


def export_interior(checkpoint: Path, name: str = "lipdub-interior", description: str = "",
                    facts: dict | None = None, out_dir: Path | None = None) -> Path:
    """Write a `lipdub train interior` checkpoint as ``<out_dir>/<name>.pt`` (float16 state dict +
    recipe, what `lipdub.render.learned_interior.load_learned_interior` reads) and ``<name>.json``."""
    from lipdub.render.learned_interior import INTERIOR_DIR

    out_dir = Path(out_dir) if out_dir is not None else INTERIOR_DIR
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        bundle = {"state_dict": _half(state["state_dict"]), "recipe": state["recipe"], "step": state.get("step")}
    except (KeyError, OSError, RuntimeError, TypeError) as error:
        raise LipdubError(f"{checkpoint} is not a lipdub interior checkpoint: {error}") from error
    weights = out_dir / f"{name}.pt"
    size = _save(bundle, weights)
    card = {"name": name, "description": description, "weights": weights.name, "bytes": size,
            "recipe": state["recipe"], "step": state.get("step"), **(facts or {})}
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    logger.info("exported %s (%.2f MiB)", weights, size / 2**20)
    return weights
