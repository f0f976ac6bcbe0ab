"""Turn a training checkpoint into weights that ship inside the package.

Bundled files must stay well under 16 MiB each, so tensors are stored in float16 (the networks
load them into float32; the rounding error, ~1e-3 relative, is far below what the pictures show).
A generator goes to ``lipdub/weights/<name>.pt`` with its ``<name>.json`` spec (what the registry
reads); the sync expert goes to ``lipdub/weights/experts/`` where the judge looks for it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from lipdub.errors import LipdubError
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
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    size = temporary.stat().st_size
    if size >= MAX_BUNDLED_BYTES:
        temporary.unlink()
        raise LipdubError(f"{path.name} would be {size / 2**20:.1f} MiB; bundled files must stay under 16 MiB")
    temporary.replace(path)
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
