"""What every training run shares: a run directory that explains itself, seeds, devices, resume.

A run directory holds, side by side: ``config.json`` (the recipe, as run), ``seed.txt``,
``data_list.txt`` (the clips of each split), ``metrics.csv`` (one row per evaluation),
``checkpoint.pt`` (latest: weights, optimizer, step) and ``best.pt`` (best validation score).
With those a run can be reproduced or continued; nothing else is written.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import random
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np
import torch

from lipdub.errors import LipdubError
from lipdub.models.checkpoint import save_checkpoint

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SEED_FILE = "seed.txt"
DATA_LIST_FILE = "data_list.txt"
METRICS_FILE = "metrics.csv"
LATEST_CHECKPOINT = "checkpoint.pt"
BEST_CHECKPOINT = "best.pt"

T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LipdubError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Samplers take their own seeds explicitly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a config dataclass, refusing unknown keys (a typo must not silently do nothing)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - {"_comment"})
    if unknown:
        raise LipdubError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    return cls(**{k: v for k, v in values.items() if k in names})


def config_from_json(cls: type[T], path: Path) -> T:
    """A config dataclass from a JSON recipe (e.g. configs/syncnet_cpu.json)."""
    path = Path(path)
    if not path.is_file():
        raise LipdubError(f"config not found: {path}")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LipdubError(f"{path}: not valid JSON ({exc})") from exc
    return config_from_dict(cls, values)


def config_to_dict(config: Any) -> dict[str, Any]:
    values = dataclasses.asdict(config)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}


def prepare_run_dir(run_dir: Path, config: Any, seed: int, splits: dict[str, Sequence[str]]) -> None:
    """Create the run directory and write config.json, seed.txt and data_list.txt.

    ``splits``: split name -> clip ids used. Rewritten on resume (same content for the same run).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
    (run_dir / SEED_FILE).write_text(f"{seed}\n")
    lines = [f"{split}\t{clip_id}" for split, ids in splits.items() for clip_id in ids]
    (run_dir / DATA_LIST_FILE).write_text("\n".join(lines) + "\n")


class MetricsLog:
    """Appends rows to run_dir/metrics.csv; the header comes from the first row ever written.

    On resume, rows after the resumed step (written by the interrupted run past its last
    checkpoint) are dropped so the file reads as one continuous run.
    """

    def __init__(self, path: Path, resume_step: int = 0):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.fields = list(reader.fieldnames or [])
                rows = [r for r in reader if int(float(r.get("step", 0))) <= resume_step]
            if resume_step == 0:
                path.unlink()
                self.fields = None
            else:
                self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, float]) -> None:
        new_file = self.fields is None
        if new_file:
            self.fields = list(row)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_metrics(path: Path) -> list[dict[str, float]]:
    """metrics.csv as a list of {column: float}."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def load_training_state(path: Path) -> dict[str, Any] | None:
    """The full checkpoint payload (state_dict, optimizer, global_step, extra) or None.

    Loaded with ``weights_only=True`` like every checkpoint in lipdub: our own run files hold
    only tensors and plain data, so nothing in a run directory can execute code on resume."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file is the user's to fix
        raise LipdubError(f"cannot resume from {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def save_training_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    extra: dict[str, Any],
) -> None:
    """Atomic checkpoint through lipdub.models.checkpoint (the format inference loads)."""
    save_checkpoint(path, model, optimizer=optimizer, step=step, extra=extra)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA (bfloat16-free float16 autocast), a no-op elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


def make_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=enabled and device.type == "cuda")


def batches(dataset: torch.utils.data.Dataset, first_step: int, steps: int, batch_size: int, num_workers: int):
    """Batches for steps first_step .. steps-1: step s holds samples s*B .. s*B+B-1, so a resumed
    run sees the same data as an uninterrupted one."""
    indices = [list(range(s * batch_size, (s + 1) * batch_size)) for s in range(first_step, steps)]
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=indices,
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
