"""``lipdub train interior``: teach `InteriorNet` to paint an open mouth's inside, self-supervised.

No labels and no audio: every real frame with an open mouth is its own target. The inner-lip
polygon of a mouth crop (`lipdub.render.mouth_frame`), grown by a couple of pixels, is blanked,
and the network must paint back what was there (teeth, tongue, cavity, the inner edge of the lips)
from the lips and skin around it. At inference the hole is the *target* shape's opening, with the
speaker's own lips already warped around it, which is the same question.

Augmentation, so that a few thousand mouths of ~100 clips generalise to other people and to what
the warp hands over: random scale (+-6 %), roll (+-5 deg) and shift (+-2 px) of the crop, mirror
images, per-channel gain and offset (light and white balance), noise on the lip ring (landmarks
are never exact) and a hole grown by 1-3 px (inference uses 2).

Loss, inside the hole only: L1 of the colours plus, weighted by ``gradient_weight``, L1 of their
horizontal and vertical differences (edges: an L1-only fill is a smooth blob, which the Laplacian
sharpness figure punishes).

Validation is on the validation speakers of the bundled lip motion model (whole people never
seen in training, `lipdub.train.interior_data`): colour L1 inside the opening and its Laplacian
sharpness (inside a 2 px rim) against the real frame's, for this network, the painted stand-in
(`lipdub.render.interior.paint_interior`) and a flat mean-colour fill, per speaker then averaged
over speakers, at the network's 64 px and at 128 px (the network upsampled; the painting drawn at
128 px), so resolution costs are visible too.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from lipdub.eval.image import laplacian_sharpness
from lipdub.models.interior import InteriorNet
from lipdub.render.interior import lip_colour, paint_interior
from lipdub.render.mouth_frame import CROP_SIDE_EYE_UNITS, HOLE_DILATION, composite_alpha, cut_mouth, hole_mask, polygon_mask, transform_points
from lipdub.train.interior_data import Samples

logger = logging.getLogger(__name__)

#: Pixels (of a 64 px crop) of the opening's rim left out of the sharpness figure.
SHARPNESS_RIM = 2


@dataclass
class InteriorRecipe:
    """One training run's settings (saved as config.json beside the checkpoint)."""

    size: int = 64
    widths: tuple[int, int, int, int] = (12, 24, 48, 64)
    steps: int = 900
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    gradient_weight: float = 3.0
    scale_jitter: float = 0.06
    rotation_jitter: float = 5.0  # degrees
    shift_jitter: float = 2.0  # pixels of the training crop
    ring_noise: float = 0.4  # pixels, per lip point
    dilation_min: float = 1.0
    dilation_max: float = 3.0
    colour_jitter: float = 0.15
    min_train_aperture: float = 0.0  # train only on mouths at least this open (eye units)
    eval_every: int = 300
    eval_aperture: float = 0.07
    max_minutes: float = 25.0  # stop (and keep the best so far) after this long
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)

    @classmethod
    def from_json(cls, path: Path) -> InteriorRecipe:
        from lipdub.train.common import config_from_json

        return config_from_json(cls, Path(path))


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    rgb: torch.Tensor  # (B, 3, S, S) truth in [0, 1]
    hole: torch.Tensor  # (B, 1, S, S) {0, 1}: what the network fills
    opening: torch.Tensor  # (B, 1, S, S) {0, 1}: the undilated inner-lip polygon (the metrics' region)
    inner: np.ndarray  # (B, 20, 2) lip rings in crop pixels
    outer: np.ndarray


def sample_matrix(stored: int, size: int, rng: np.random.Generator | None, recipe: InteriorRecipe) -> np.ndarray:
    """(2, 3) from a stored crop to a training crop: a plain rescale, or with random jitter."""
    scale, angle, shift = size / stored, 0.0, np.zeros(2)
    if rng is not None:
        scale *= 1.0 + rng.uniform(-recipe.scale_jitter, recipe.scale_jitter)
        angle = math.radians(rng.uniform(-recipe.rotation_jitter, recipe.rotation_jitter))
        shift = rng.uniform(-recipe.shift_jitter, recipe.shift_jitter, 2)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    rotation = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([size / 2.0, size / 2.0]) + shift - rotation @ np.array([stored / 2.0, stored / 2.0])
    return np.concatenate([rotation, offset[:, None]], axis=1)


def make_batch(samples: Samples, indices: np.ndarray, size: int, recipe: InteriorRecipe,
               rng: np.random.Generator | None = None, dilation: float | None = None) -> Batch:
    """Crops of ``samples[indices]`` at ``size`` px; jittered when ``rng`` is given (training)."""
    stored = samples.crop.shape[1]
    rgbs, holes, openings, inners, outers = [], [], [], [], []
    for index in indices:
        matrix = sample_matrix(stored, size, rng, recipe)
        crop = cut_mouth(samples.crop[index], matrix, size)
        inner = transform_points(matrix, samples.inner[index])
        outer = transform_points(matrix, samples.outer[index])
        grow = dilation if dilation is not None else HOLE_DILATION * size / 64.0
        if rng is not None:
            if rng.random() < 0.5:  # mirror
                crop = crop[:, ::-1]
                inner[:, 0], outer[:, 0] = size - 1 - inner[:, 0], size - 1 - outer[:, 0]
            rgb = crop.astype(np.float32) / 255.0
            gain = (1.0 + rng.uniform(-recipe.colour_jitter, recipe.colour_jitter)) * \
                (1.0 + rng.uniform(-0.3, 0.3, 3) * recipe.colour_jitter)
            rgb = np.clip(rgb * gain + rng.uniform(-0.3, 0.3) * recipe.colour_jitter, 0.0, 1.0).astype(np.float32)
            noisy = inner + rng.normal(0.0, recipe.ring_noise, inner.shape)
            grow = rng.uniform(recipe.dilation_min, recipe.dilation_max) * size / 64.0
            hole = hole_mask(noisy, (size, size), grow)
        else:
            rgb = crop.astype(np.float32) / 255.0
            hole = hole_mask(inner, (size, size), grow)
        rgbs.append(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        holes.append(hole)
        openings.append(polygon_mask(inner, (size, size)))
        inners.append(inner)
        outers.append(outer)
    return Batch(torch.from_numpy(np.stack(rgbs)), torch.from_numpy(np.stack(holes)[:, None].astype(np.float32)),
                 torch.from_numpy(np.stack(openings)[:, None].astype(np.float32)), np.stack(inners), np.stack(outers))


def interior_loss(painted: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor, gradient_weight: float) -> torch.Tensor:
    """L1 inside the hole + ``gradient_weight`` x L1 of x/y differences touching the hole."""
    area = hole.sum().clamp(min=1.0)
    loss = ((painted - truth).abs() * hole).sum() / (3 * area)
    if gradient_weight > 0:
        for dim in (2, 3):
            dp, dt = painted.diff(dim=dim), truth.diff(dim=dim)
            m = torch.maximum(hole.narrow(dim, 1, hole.shape[dim] - 1), hole.narrow(dim, 0, hole.shape[dim] - 1))
            loss = loss + gradient_weight * ((dp - dt).abs() * m).sum() / (3 * m.sum().clamp(min=1.0))
    return loss


# --------------------------------------------------------------------------- evaluation


def mean_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W, 3) ``rgb`` with its hole painted in the mean colour of the rest of the crop."""
    out = rgb.copy()
    keep = hole == 0
    if keep.any() and (~keep).any():
        out[~keep] = rgb[keep].mean(axis=0)
    return out


def painted_fill(canvas: np.ndarray, truth: np.ndarray, inner: np.ndarray, outer: np.ndarray, white: np.ndarray,
                 size: int) -> np.ndarray:
    """The procedural stand-in, as the engine applies it: painted cavity + teeth over ``canvas``."""
    lips = lip_colour(truth, outer, inner)
    painted, alpha = paint_interior(canvas, (0, 0), inner, lips, size / CROP_SIDE_EYE_UNITS, white)
    a = alpha[..., None]
    return np.clip(canvas * (1.0 - a) + painted * a + 0.5, 0, 255).astype(np.uint8)


def learned_fill(net: InteriorNet, crops: np.ndarray, inners: np.ndarray, net_size: int) -> np.ndarray:
    """(B, S, S, 3) uint8: the network's interior composited into crops of any side S.

    The network runs at ``net_size``; at another S its picture is resized and composited with the
    alpha drawn at S, which is what the engine does at a face's native resolution.
    """
    size = crops.shape[1]
    small = np.stack([cv2.resize(c, (net_size, net_size), interpolation=cv2.INTER_AREA) if size != net_size else c
                      for c in crops])
    rings = inners * (net_size / size)
    holes = np.stack([hole_mask(r, (net_size, net_size), HOLE_DILATION) for r in rings])
    rgb = torch.from_numpy(small.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
    hole = torch.from_numpy(holes[:, None].astype(np.float32))
    with torch.inference_mode():
        painted = net(InteriorNet.inputs(rgb, hole)).numpy().transpose(0, 2, 3, 1) * 255.0
    out = []
    for crop, picture, ring in zip(crops, painted, inners):
        if size != net_size:
            picture = cv2.resize(picture, (size, size), interpolation=cv2.INTER_LINEAR)
        alpha = composite_alpha(ring, (size, size), HOLE_DILATION * size / net_size)[..., None]
        out.append(np.clip(crop * (1.0 - alpha) + picture * alpha + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def compare_fills(net: InteriorNet, samples: Samples, net_size: int, size: int) -> dict:
    """Per sample: L1 (0-255) inside the opening and Laplacian sharpness there, for each method.

    Every method starts from the same canvas: the real crop with its opening (the inner-lip
    polygon) in the mean colour of the rest, so none of them sees the real interior, and the lips
    around it are what the engine would have warped there. The network's input hides the grown
    hole as well (it repaints the lips' inner edge; the others leave it).
    """
    recipe = InteriorRecipe()
    batch = make_batch(samples, np.arange(len(samples)), size, recipe, dilation=HOLE_DILATION * size / net_size)
    truth = (batch.rgb.numpy().transpose(0, 2, 3, 1) * 255.0 + 0.5).astype(np.uint8)
    holes = batch.hole.numpy()[:, 0].astype(np.uint8)
    opening = batch.opening.numpy()[:, 0].astype(bool)
    canvases = np.stack([mean_fill(t, m.astype(np.uint8)) for t, m in zip(truth, opening)])
    results = {"mean": canvases,
               "painted": np.stack([painted_fill(c, t, i, o, w, size) for c, t, i, o, w in
                                    zip(canvases, truth, batch.inner, batch.outer, samples.white)]),
               "learned": learned_fill(net, canvases, batch.inner, net_size)}
    # Sharpness is the texture *inside* the opening: the polygon less a 2 px (at 64 px) rim, or the
    # step from lips to any fill, even a flat one, dominates the Laplacian (a mean-colour fill
    # scored 4.9 times the real mouths' sharpness over the whole polygon).
    rim = max(1, int(round(SHARPNESS_RIM * size / 64)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1))
    core = np.stack([cv2.erode(m.astype(np.uint8), kernel).astype(bool) for m in opening])
    measured = core.reshape(len(core), -1).sum(axis=1) >= 4
    rows = {"l1": {}, "sharpness": {}, "measured": measured}
    rows["sharpness"]["truth"] = np.array([laplacian_sharpness(t, m) if ok else np.nan
                                           for t, m, ok in zip(truth, core, measured)])
    for name, pictures in results.items():
        rows["l1"][name] = np.array([np.abs(p.astype(np.float64) - t)[m].mean() for p, t, m in zip(pictures, truth, opening)])
        rows["sharpness"][name] = np.array([laplacian_sharpness(p, m) if ok else np.nan
                                            for p, m, ok in zip(pictures, core, measured)])
    return {"rows": rows, "pictures": {"truth": truth, **results}, "holes": holes}


def summarise(samples: Samples, rows: dict) -> dict:
    """Means per speaker, then over speakers (one speaker, one vote), of each figure."""
    speakers = sorted(set(samples.speaker))
    summary: dict = {"speakers": len(speakers), "frames": len(samples), "l1": {}, "sharpness_ratio": {}, "per_speaker": {}}
    truth = rows["sharpness"]["truth"]
    for name, values in rows["l1"].items():
        summary["l1"][name] = float(np.mean([values[samples.speaker == s].mean() for s in speakers]))
    for name, values in rows["sharpness"].items():
        # Ratio of the speaker's mean sharpness to the real mouths' (ratios of single frames explode
        # where a real opening is nearly flat); frames too thin to have an inside are left out.
        ratios = [np.nanmean(values[samples.speaker == s]) / max(np.nanmean(truth[samples.speaker == s]), 1e-9)
                  for s in speakers if rows["measured"][samples.speaker == s].any()]
        summary["sharpness_ratio"][name] = float(np.mean(ratios))
    summary["sharpness_frames"] = int(rows["measured"].sum())
    for s in speakers:
        pick = samples.speaker == s
        summary["per_speaker"][s] = {f"l1_{n}": round(float(v[pick].mean()), 2) for n, v in rows["l1"].items()}
    return summary


def evaluate(net: InteriorNet, val: Samples, net_size: int, sizes: tuple[int, ...] = (64, 128)) -> dict:
    net.eval()
    figures = {}
    for size in sizes:
        figures[str(size)] = summarise(val, compare_fills(net, val, net_size, size)["rows"])
    net.train()
    return figures


def contact_sheet(net: InteriorNet, val: Samples, net_size: int, path: Path, count: int = 10, size: int = 128) -> Path:
    """PNG: one column per held-out frame; rows = real frame, the hole, painted stand-in, learned."""
    speakers = sorted(set(val.speaker))
    picks = []
    for k in range(count):  # round-robin over speakers, the most open frame of each first
        s = speakers[k % len(speakers)]
        order = np.flatnonzero(val.speaker == s)[np.argsort(-val.aperture[val.speaker == s])]
        taken = k // len(speakers)
        if taken < len(order):
            picks.append(order[taken * max(1, len(order) // 4) % len(order)])
    chosen = val.subset(np.array(picks))
    result = compare_fills(net, chosen, net_size, size)
    pictures = result["pictures"]
    holed = pictures["mean"].copy()
    holed[result["holes"].astype(bool)] = (0, 255, 0)
    rows = [pictures["truth"], holed, pictures["painted"], pictures["learned"]]
    sheet = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


# --------------------------------------------------------------------------- the run


def train_interior(samples_path: Path, run_dir: Path, recipe: InteriorRecipe = InteriorRecipe(),
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Train on the cached samples' train split, validate by speaker; writes the run folder.

    ``run_dir`` receives config.json, data.json (clips and speakers of both splits), seed.txt,
    metrics.json (every evaluation), train.log lines through `logging`, ``checkpoint.pt`` (float32,
    the last evaluation's weights) and ``contact_sheet.png``.
    """
    from lipdub.train.common import seed_everything

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    seed_everything(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    samples = Samples.load(samples_path)
    train = samples.subset((samples.split == "train") & (samples.aperture >= recipe.min_train_aperture))
    val = samples.subset((samples.split == "val") & (samples.kind == "real") & (samples.aperture >= recipe.eval_aperture))
    if not len(train) or not len(val):
        from lipdub.errors import LipdubError

        raise LipdubError(f"need training and validation mouths; got {len(train)} and {len(val)}")
    overlap = set(train.speaker) & set(val.speaker)
    assert not overlap, f"speakers on both sides of the split: {overlap}"
    (run_dir / "config.json").write_text(json.dumps(asdict(recipe), indent=1) + "\n")
    (run_dir / "seed.txt").write_text(f"{recipe.seed}\n")
    (run_dir / "data.json").write_text(json.dumps({
        "samples": str(samples_path),
        "train": {"frames": len(train), "clips": sorted(set(train.clip)), "speakers": sorted(set(train.speaker)),
                  "kinds": {k: int((train.kind == k).sum()) for k in sorted(set(train.kind))}},
        "val": {"frames": len(val), "clips": sorted(set(val.clip)), "speakers": sorted(set(val.speaker))},
    }, indent=1) + "\n")
    logger.info("train %d mouths (%d speakers), validation %d open mouths (%d speakers)",
                len(train), len(set(train.speaker)), len(val), len(set(val.speaker)))

    net = InteriorNet(recipe.widths)
    optimiser = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, recipe.lr, total_steps=recipe.steps, pct_start=0.1)
    # Speaker-balanced draws: a speaker with sqrt(their mouths) weight, so long clips do not dominate.
    speakers, counts = np.unique(train.speaker, return_counts=True)
    weight_of = dict(zip(speakers, np.sqrt(counts) / counts))
    weights = np.array([weight_of[s] for s in train.speaker])
    weights /= weights.sum()
    history = []
    start = time.monotonic()
    running = 0.0
    step = 0
    for step in range(1, recipe.steps + 1):
        indices = rng.choice(len(train), recipe.batch, p=weights)
        batch = make_batch(train, indices, recipe.size, recipe, rng)
        painted = net(InteriorNet.inputs(batch.rgb, batch.hole))
        loss = interior_loss(painted, batch.rgb, batch.hole, recipe.gradient_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running += float(loss.detach())
        minutes = (time.monotonic() - start) / 60.0
        out_of_time = minutes >= recipe.max_minutes
        if progress:
            progress(step, recipe.steps)
        if step % 50 == 0:
            logger.info("step %d/%d (%.1f min)", step, recipe.steps, minutes)
        if step % recipe.eval_every == 0 or step == recipe.steps or out_of_time:
            figures = evaluate(net, val, recipe.size, sizes=(recipe.size,))
            row = {"step": step, "minutes": round(minutes, 2), "train_loss": running / max(1, step - (history[-1]["step"] if history else 0)),
                   "val": figures}
            running = 0.0
            history.append(row)
            f = figures[str(recipe.size)]
            logger.info("step %d (%.1f min): loss %.4f | val L1 learned %.2f painted %.2f mean %.2f | sharpness learned %.2f painted %.2f",
                        step, minutes, row["train_loss"], f["l1"]["learned"], f["l1"]["painted"], f["l1"]["mean"],
                        f["sharpness_ratio"]["learned"], f["sharpness_ratio"]["painted"])
            torch.save({"state_dict": net.state_dict(), "recipe": asdict(recipe), "step": step}, run_dir / "checkpoint.pt")
            (run_dir / "metrics.json").write_text(json.dumps(history, indent=1) + "\n")
        if out_of_time:
            logger.warning("stopped at step %d: %.1f min is the recipe's limit", step, minutes)
            break
    train_minutes = (time.monotonic() - start) / 60.0
    final = evaluate(net, val, recipe.size)
    contact_sheet(net, val, recipe.size, run_dir / "contact_sheet.png")
    result = {"steps": step, "train_minutes": round(train_minutes, 2), "val": final,
              "parameters": sum(p.numel() for p in net.parameters())}
    (run_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


__all__ = ["InteriorRecipe", "compare_fills", "contact_sheet", "evaluate", "interior_loss", "make_batch",
           "mean_fill", "train_interior"]
