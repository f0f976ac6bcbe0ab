"""The mouth bank: the input video's own lower faces, and which one each output frame borrows.

A dubbed frame needs a mouth in a shape the input frame never had. Warping that frame's own closed
lips wide open smears them; borrowing a frame of the same video whose lips already have (nearly)
the target shape and warping it the last small step keeps real teeth, tongue and skin at the
video's own resolution (Video Rewrite, IP_LAP and DINet do the same with more machinery).

`choose_sources` picks one bank frame per output frame by a Viterbi path: the cost of a frame is
how far the bank frame's lip/jaw shape is from the target shape plus how different its head pose
is; moving to another bank frame costs ``switch_cost`` unless it is the next frame of the input
(playing the input forward is free). Without the switch cost the choice flickers between frames
that match about equally well, and teeth visibly jump.

Pixels live on disk (`PatchSpool`), never as a list of frames in memory: a bank frame is a crop of
the lower face only, and long videos keep at most ``capacity`` of them, evenly spaced.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np

from lipdub.eval.mouth import LIP_INNER, LIP_OUTER

#: Weights of the motion points in the shape distance: inner lips (the opening, teeth) count most.
INNER_WEIGHT, OUTER_WEIGHT, JAW_WEIGHT = 3.0, 1.5, 0.5
CANDIDATES = 12
SWITCH_COST = 0.02
POSE_WEIGHT = 1.0


def shape_weights(points: int) -> np.ndarray:
    """(points,) weights for the motion points in `lipdub.motion.shape.MOTION_POINTS` order."""
    weights = np.full(points, JAW_WEIGHT)
    weights[: len(LIP_OUTER)] = OUTER_WEIGHT
    weights[len(LIP_OUTER): len(LIP_OUTER) + len(LIP_INNER)] = INNER_WEIGHT
    return weights / weights.sum()


def shape_distances(targets: np.ndarray, bank: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(T, B) weighted RMS point distance between (T, P, 2) target and (B, P, 2) bank shapes."""
    w = np.sqrt(np.asarray(weights, np.float64))[None, :, None]
    a = (np.asarray(targets, np.float64) * w).reshape(len(targets), -1)
    b = (np.asarray(bank, np.float64) * w).reshape(len(bank), -1)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def viterbi_path(costs: np.ndarray, candidates: np.ndarray, frame_of: np.ndarray, switch_cost: float) -> np.ndarray:
    """(T,) chosen bank ids: the path through per-frame candidates of least total cost.

    costs, candidates: (T, K); ``frame_of``: input frame index of each bank id. A step from bank
    id a to b is free when frame_of[b] - frame_of[a] is 0 or 1 (holding or playing forward), else
    costs ``switch_cost``.
    """
    costs = np.asarray(costs, np.float64)
    t_count, k = costs.shape
    total = costs[0].copy()
    back = np.zeros((t_count, k), np.int64)
    for t in range(1, t_count):
        step = frame_of[candidates[t]][None, :] - frame_of[candidates[t - 1]][:, None]  # (K_prev, K)
        transition = np.where((step == 0) | (step == 1), 0.0, switch_cost)
        options = total[:, None] + transition
        back[t] = np.argmin(options, axis=0)
        total = options[back[t], np.arange(k)] + costs[t]
    path = np.empty(t_count, np.int64)
    path[-1] = int(np.argmin(total))
    for t in range(t_count - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return candidates[np.arange(t_count), path]


def choose_sources(target_shapes: np.ndarray, target_pose: np.ndarray, target_frames: np.ndarray,
                   bank_shapes: np.ndarray, bank_pose: np.ndarray, bank_frames: np.ndarray,
                   exclude_within: int | None = None, candidates: int = CANDIDATES,
                   switch_cost: float = SWITCH_COST, pose_weight: float = POSE_WEIGHT,
                   chunk: int = 512) -> np.ndarray:
    """(T,) bank ids for T output frames (see the module docstring).

    ``target_frames``: the input frame each output frame shows; with ``exclude_within`` = n, bank
    frames within n frames of it are never chosen (the evaluation uses this so that a reconstruction
    cannot copy the real mouth of the moment). Shapes are canonical motion points, poses small
    canonical vectors (nose position); both weigh in eye units.
    """
    weights = shape_weights(np.asarray(bank_shapes).shape[1])
    bank_frames = np.asarray(bank_frames, np.int64)
    k = min(candidates, len(bank_frames))
    chosen_ids, chosen_costs = [], []
    for start in range(0, len(target_shapes), chunk):
        stop = min(len(target_shapes), start + chunk)
        cost = shape_distances(target_shapes[start:stop], bank_shapes, weights)
        pose = np.linalg.norm(np.asarray(target_pose[start:stop], np.float64)[:, None, :]
                              - np.asarray(bank_pose, np.float64)[None, :, :], axis=-1)
        cost = cost + pose_weight * pose
        if exclude_within is not None:
            near = np.abs(np.asarray(target_frames[start:stop])[:, None] - bank_frames[None, :]) <= exclude_within
            cost = np.where(near, np.inf, cost)
        ids = np.argpartition(cost, k - 1, axis=1)[:, :k]
        chosen_ids.append(ids)
        chosen_costs.append(np.take_along_axis(cost, ids, axis=1))
    ids = np.concatenate(chosen_ids)
    costs = np.concatenate(chosen_costs)
    if not np.isfinite(costs).any(axis=1).all():
        raise ValueError("some output frame has no allowed bank frame")
    costs = np.where(np.isfinite(costs), costs, 1e6)
    return viterbi_path(costs, ids, bank_frames, switch_cost)


@dataclass(frozen=True)
class Patch:
    """Where one bank frame's pixels are: a crop of the input frame with its top-left pixel."""

    offset: int
    shape: tuple[int, int, int]
    origin: tuple[int, int]


class PatchSpool:
    """Image crops appended to an anonymous temporary file and read back by reference."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="lipdub-bank-")
        self._size = 0
        self._map: np.memmap | None = None

    def add(self, image: np.ndarray, origin: tuple[int, int]) -> Patch:
        data = np.ascontiguousarray(image, np.uint8)
        self._file.seek(self._size)
        self._file.write(data.tobytes())
        patch = Patch(self._size, tuple(data.shape), origin)
        self._size += data.nbytes
        self._map = None
        return patch

    def read(self, patch: Patch) -> np.ndarray:
        if self._map is None:
            self._file.flush()
            self._map = np.memmap(self._file, dtype=np.uint8, mode="r", shape=(max(1, self._size),))
        count = int(np.prod(patch.shape))
        return np.asarray(self._map[patch.offset: patch.offset + count]).reshape(patch.shape)

    def close(self) -> None:
        self._map = None
        self._file.close()
