"""The learned mouth interior: `InteriorNet` paints the opening the motion engine could not borrow.

Same contract as the procedural `lipdub.render.interior.paint_interior` (a painted patch and an
alpha, the engine blends them by `interior_alpha`), so the two are interchangeable
(`MotionEngineOptions.interior`). Per call: cut the target mouth out of the warped patch into the
network's normalised crop (`lipdub.render.mouth_frame`), blank the grown inner-lip polygon, run the
network once (64 px: a few milliseconds on one CPU thread), map its picture back onto the patch
with the inverse of the same similarity, and composite with an alpha drawn at the face's own
resolution that is exactly 0 outside the grown polygon.

Weights: ``lipdub/weights/interior/lipdub-interior.pt`` (float16 state dict + recipe), written by
``lipdub train interior``; see docs/model-card.md for its data and held-out figures.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch

from lipdub.errors import LipdubError
from lipdub.models.checkpoint import weights_file
from lipdub.models.interior import InteriorNet
from lipdub.render.mouth_frame import (HOLE_DILATION, composite_alpha, crop_scale, cut_mouth, hole_mask,
                                       mouth_crop_transform, transform_points)

logger = logging.getLogger(__name__)

INTERIOR_DIR = Path(__file__).resolve().parents[1] / "weights" / "interior"
DEFAULT_INTERIOR = "lipdub-interior"


class LearnedInterior:
    """A loaded `InteriorNet` and the crop size it was trained at."""

    def __init__(self, net: InteriorNet, size: int = 64, name: str = DEFAULT_INTERIOR):
        if size % 8:
            raise ValueError(f"crop size must be a multiple of 8, got {size}")
        self.net = net.eval()
        self.size = size
        self.name = name

    def crop_inputs(self, patch: np.ndarray, origin: tuple[int, int], inner: np.ndarray, outer: np.ndarray,
                    eye_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(matrix patch->crop, crop (S, S, 3) uint8, hole (S, S) uint8) for one mouth."""
        matrix = mouth_crop_transform(np.asarray(outer, np.float64) - origin, eye_distance, self.size)
        crop = cut_mouth(patch, matrix, self.size)
        ring = transform_points(matrix, np.asarray(inner, np.float64) - origin)
        return matrix, crop, hole_mask(ring, (self.size, self.size), HOLE_DILATION)

    def paint_crop(self, crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """(S, S, 3) float32 0-255: the network's picture of the whole crop (only the hole is used)."""
        rgb = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), np.float32) / 255.0)[None]
        mask = torch.from_numpy(hole.astype(np.float32))[None, None]
        with torch.inference_mode():
            picture = self.net(InteriorNet.inputs(rgb, mask))[0]
        return picture.numpy().transpose(1, 2, 0) * 255.0

    def paint(self, patch: np.ndarray, origin: tuple[int, int], inner: np.ndarray, outer: np.ndarray,
              eye_distance: float) -> tuple[np.ndarray, np.ndarray]:
        """(painted patch uint8, alpha (h, w) float32) for the mouth whose lip rings are given.

        ``inner`` / ``outer``: the 20 inner / outer lip points (`lipdub.eval.mouth` order) of the
        *target* shape in frame pixels; ``origin``: frame pixel of the patch's top-left;
        ``eye_distance``: outer eye corners, frame pixels. Only the box around the grown opening is
        computed; alpha is 0 everywhere else.
        """
        h, w = patch.shape[:2]
        alpha_full = np.zeros((h, w), np.float32)
        local_inner = np.asarray(inner, np.float64) - origin
        matrix, crop, hole = self.crop_inputs(patch, origin, inner, outer, eye_distance)
        if not hole.any():
            return patch, alpha_full
        grow = HOLE_DILATION / max(crop_scale(matrix), 1e-9)  # the same hole, in patch pixels
        x1, y1 = (max(0, int(np.floor(v - grow)) - 1) for v in local_inner.min(axis=0))
        x2 = min(w, int(np.ceil(local_inner[:, 0].max() + grow)) + 2)
        y2 = min(h, int(np.ceil(local_inner[:, 1].max() + grow)) + 2)
        if x2 <= x1 or y2 <= y1:
            return patch, alpha_full
        picture = self.paint_crop(crop, hole)
        # Sub-box pixel (u, v) is patch pixel (u + x1, v + y1); the matrix maps it into the crop.
        to_crop = matrix.copy()
        to_crop[:, 2] += matrix[:, :2] @ np.array([x1, y1], np.float64)
        back = cv2.warpAffine(picture, to_crop, (x2 - x1, y2 - y1), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        painted = patch.copy()
        painted[y1:y2, x1:x2] = np.clip(back + 0.5, 0, 255).astype(np.uint8)
        alpha_full[y1:y2, x1:x2] = composite_alpha(local_inner - (x1, y1), (y2 - y1, x2 - x1), grow)
        return painted, alpha_full


def load_learned_interior(name_or_path: str | Path | None = None) -> LearnedInterior:
    """The bundled interior network (default), another bundled name, or a weights file.

    Raises `LipdubError` when the file is missing or is not an interior network.
    """
    path = weights_file(name_or_path or DEFAULT_INTERIOR, INTERIOR_DIR, "interior network")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        recipe = state["recipe"]
        net = InteriorNet(tuple(recipe["widths"]))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()})
    except (KeyError, RuntimeError, OSError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as error:
        raise LipdubError(f"{path} is not a lipdub interior network: {error}") from error
    return LearnedInterior(net, int(recipe["size"]), path.stem)


__all__ = ["DEFAULT_INTERIOR", "INTERIOR_DIR", "LearnedInterior", "load_learned_interior"]
