"""Reading and writing network weights, safely.

A ``.pth`` file is a pickle, and unpickling runs code: a checkpoint downloaded from a forum can
execute anything on load. We therefore only ever load with ``torch.load(weights_only=True)``,
which refuses every object except tensors and plain containers, and turn every failure into a
one-line :class:`LipdubError`.

Two layouts are accepted: a bare state dict, and Wav2Lip's training format
``{"state_dict": ..., "optimizer": ..., "global_step": ..., "global_epoch": ...}`` (everything but
the state dict is ignored). Keys saved from ``nn.DataParallel`` start with ``module.``; that
prefix is stripped, as Wav2Lip's own loader does.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lipdub.errors import LipdubError
from lipdub.fileio import AtomicFile

logger = logging.getLogger(__name__)

_PARALLEL_PREFIX = "module."


def strip_parallel_prefix(key: str) -> str:
    """``module.face_encoder...`` -> ``face_encoder...`` (only a leading prefix)."""
    return key[len(_PARALLEL_PREFIX) :] if key.startswith(_PARALLEL_PREFIX) else key


def _first_line(error: BaseException) -> str:
    """The first sentence of an error message: enough for a one-line report."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return lines[0].split(". ")[0].rstrip(".")


def _unpickling_detail(error: BaseException) -> str:
    """The informative line of torch's long weights-only refusal (e.g. the blocked global)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line
    return lines[-1] if lines else type(error).__name__


def load_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, keys without ``module.``, on the CPU.

    Raises LipdubError when the file is missing, unreadable, not a checkpoint, holds anything but
    tensors and plain data (a pickle that would run code), or holds no ``str -> Tensor`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise LipdubError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise LipdubError(
            f"refusing checkpoint {path}: it holds more than plain tensors (loading it could run "
            f"code) or is corrupt ({_unpickling_detail(error)})"
        ) from error
    except Exception as error:  # noqa: BLE001 - every other failure here is the file's fault too
        raise LipdubError(f"cannot read checkpoint {path}: {_first_line(error)}") from error

    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]
    if not isinstance(payload, Mapping) or not payload:
        raise LipdubError(f"checkpoint {path} holds no state dict (got {type(payload).__name__})")

    state: dict[str, torch.Tensor] = {}
    for key, value in payload.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise LipdubError(
                f"checkpoint {path} is not a state dict: entry {key!r} is a {type(value).__name__}"
            )
        state[strip_parallel_prefix(key)] = value
    logger.debug("loaded %d tensors from %s", len(state), path)
    return state


def save_checkpoint(
    path: Path | str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    extra: dict | None = None,
) -> None:
    """Write ``{"state_dict", "optimizer", "global_step", "extra"}`` atomically.

    The file is written beside the target and renamed over it, so an interrupted run never leaves
    a half-written checkpoint where a good one was. ``extra`` must hold plain data (str, numbers,
    lists, dicts) so that :func:`load_state_dict`'s safe loader can read the file back.
    """
    path = Path(path)
    payload = {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "global_step": int(step),
        "extra": dict(extra or {}),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with AtomicFile(path, overwrite=True) as handle:  # umask mode, nothing left if killed
            torch.save(payload, handle.file)
    except OSError as error:
        raise LipdubError(f"cannot write checkpoint {path}: {_first_line(error)}") from error
    logger.info("saved checkpoint %s (step %d)", path, step)


def weights_file(name_or_path, folder: Path, what: str) -> Path:
    """The weights file a user named: a path as given, or a bare name (no suffix) as
    ``<folder>/<name>.pt`` (a bundled model); a one-line `LipdubError` naming ``what`` when it
    does not exist."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path(folder) / f"{path.name}.pt"
    if not path.is_file():
        raise LipdubError(f"{what} not found: {path}")
    return path
