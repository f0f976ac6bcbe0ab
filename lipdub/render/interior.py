"""The mouth opening when no input frame can supply it: a photo, or a video that never opens wide.

When the borrowed frame's own opening is much smaller than the target's, its cavity pixels would be
stretched from a thin line (vertical stripes); instead the opening is painted: a dark cavity whose
colour comes from the speaker's own lips (so lighting and white balance match), an upper-teeth band
under the upper lip that shows more as the mouth opens, and a faint lower-teeth band, with a soft
edge. It gives the opening a plausible structure at the face's own resolution instead of a blur or a
smear, and is the engine's default: the learned alternative (`lipdub.render.learned_interior`,
``--interior learned``) is twice as close to real mouths but smooth, and in the engine its openings
read as less open (docs/models.md, "The learned mouth interior").

`interior_alpha` decides how much of the painted interior to use: none while the borrowed frame
opens at least `OWN_INTERIOR_RATIO` as wide as the target, all of it below half that.
"""

from __future__ import annotations

import cv2
import numpy as np

from lipdub.render.warp import bounding_rect

OWN_INTERIOR_RATIO = 0.7
#: A painted opening shows a tongue from this height (eye units), fully from this much more.
TONGUE_FROM, TONGUE_FADE = 0.05, 0.08
TEETH_WHITE = np.array([232.0, 226.0, 214.0])
#: Blur (eye units) of the painted colours: teeth, cavity and tongue meet as softly as in a real
#: mouth at the face's resolution. Unblurred, the painting was 10-15 times as sharp inside the
#: opening as real mouths (Laplacian variance, interior samples of 70 training speakers; 1.4 / 0.6
#: at 64 / 128 px with this blur and `TEETH_CORNER_SHADE`: docs/models.md, "The opening").
PAINT_SOFTNESS = 0.01
#: How much darker the upper teeth are at the mouth's corners than in its middle (0..1).
TEETH_CORNER_SHADE = 0.4


#: A borrowed mouth open at least this wide (eye units) shows real teeth and cavity: stretching them
#: looks better than any painting.
OPEN_ENOUGH = 0.05


#: Openings (eye units) a borrowed interior may exceed the target's by and still be squeezed shut.
FIT_SLACK = 0.015


def opening_fits(own, target, slack: float = FIT_SLACK, closed: float | None = None):
    """Whether a mouth opened ``own`` (eye units) can be warped to a ``target`` opening (broadcasts).

    Stretching a narrow opening wide smears it; squeezing a wide one shut leaves a dark line of
    compressed teeth and cavity between the lips. Within ``OWN_INTERIOR_RATIO * target <= own <=
    target / OWN_INTERIOR_RATIO + slack`` neither shows. With ``closed`` given, a target at most
    that open needs no interior at all, so any mouth not too open for it fits.
    """
    own, target = np.asarray(own, np.float64), np.asarray(target, np.float64)
    lower = OWN_INTERIOR_RATIO * target
    if closed is not None:
        lower = np.where(target <= closed, 0.0, lower)
    return (lower <= own) & (own <= target / OWN_INTERIOR_RATIO + slack)


def interior_alpha(source_opening, target_opening, closed: float = 0.02):
    """0..1 weight of the painted interior, from the two openings (eye units; broadcasts, a float
    for two numbers)."""
    source = np.asarray(source_opening, np.float64)
    target = np.asarray(target_opening, np.float64)
    ratio = source / np.maximum(target, 1e-9)
    alpha = np.clip((OWN_INTERIOR_RATIO - ratio) / (OWN_INTERIOR_RATIO / 2), 0.0, 1.0)
    alpha = np.where((target <= closed) | (source >= OPEN_ENOUGH), 0.0, alpha)
    return float(alpha) if alpha.ndim == 0 else alpha


def teeth_colour(image: np.ndarray, eye_rings: list[np.ndarray], lips_rgb: np.ndarray) -> np.ndarray:
    """A plausible teeth white under this picture's light: the brightest eye-white pixels.

    The sclera is the nearest thing to enamel that every face shows; its 90th-percentile
    brightness inside the eye contours, slightly warmed, sets the colour. Falls back to a neutral
    white scaled by the lips' brightness when the eyes are too small to sample.
    """
    pixels = _pixels_inside(image, [np.round(ring) for ring in eye_rings]).astype(np.float64)
    if len(pixels) < 12:
        return TEETH_WHITE * float(np.clip(lips_rgb.mean() / 140.0, 0.45, 1.0))
    brightness = pixels.mean(axis=1)
    bright = pixels[brightness >= np.percentile(brightness, 85)].mean(axis=0)
    return np.clip(bright * np.array([1.0, 0.97, 0.92]) * 1.05, 0, 255)


def _pixels_inside(image: np.ndarray, rings: list[np.ndarray], holes: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """(n, 3) pixels of ``image`` inside any of the polygons ``rings`` (frame pixels, rounded to the
    pixel grid) and outside every one of ``holes``, in row order, as a full-frame mask would give
    them, but touching only the rings' bounding box (a full 720p mask cost ~7 ms a frame)."""
    rect = bounding_rect(np.concatenate(rings), image.shape, 0) if len(rings) else None
    if rect is None:
        return np.zeros((0, 3), image.dtype)
    x1, y1, x2, y2 = rect
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
    for polygons, value in ((rings, 1), (holes, 0)):
        for ring in polygons:
            cv2.fillPoly(mask, [np.round(np.asarray(ring, np.float64) - (x1, y1)).astype(np.int32)], value)
    return image[y1:y2, x1:x2][mask.astype(bool)].reshape(-1, 3)


def lip_colour(image: np.ndarray, outer: np.ndarray, inner: np.ndarray, depth: float = 1.0) -> np.ndarray:
    """Mean RGB of the lips (between the outer and inner lip contours) in ``image``.

    ``depth`` < 1 samples only the outer part of that band: the inner ring is moved that share of
    the way from the outer ring to itself (same point order, corners to corners). Why: where a
    tracker puts the inner lip on the teeth, the whole band takes in enamel and reads paler the
    more teeth show (`lip_band`).
    Only the lips' bounding box is touched, so the cost does not grow with the frame size.
    """
    outer = np.asarray(outer, np.float64)
    pixels = _pixels_inside(image, [outer], holes=(lip_band(outer, inner, depth),))
    if len(pixels) < 4:
        return np.array([150.0, 80.0, 80.0])
    return pixels.astype(np.float64).mean(axis=0)


def lip_band(outer: np.ndarray, inner: np.ndarray, depth: float) -> np.ndarray:
    """The inner edge of the lips' outer ``depth`` share: each inner-ring point moved onto the
    segment from its outer-ring partner (same index, `LIP_OUTER` / `LIP_INNER` order), ``depth``
    of the way (1: the inner ring itself, 0: the outer ring)."""
    outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    return outer + float(np.clip(depth, 0.0, 1.0)) * (inner - outer)


def anchored_inner_ring(target: np.ndarray, source: np.ndarray, scale: float) -> np.ndarray:
    """(20, 2) the target's inner-lip ring with its lower lip raised to keep the source's own gaps.

    Both rings are in `lipdub.eval.mouth.LIP_INNER` order (right corner, lower lip 1-9, left corner,
    upper lip 11-19), so lower point k faces upper point 20 - k. Each lower point is put on the
    target's own gap line from its upper point, as far as the source's gap there (times ``scale``,
    the target's pixels per source pixel) reaches along it: never below the target's lower lip, nor
    above its upper lip (Face Mesh's lips of a shut mouth may cross). Warping a too-closed mouth's interior into this
    ring keeps its teeth their own size under the upper lip, as a jaw opening moves the lower teeth
    and leaves the upper ones: stretched to the whole target ring, a photo's teeth became long grey
    bars over the painted cavity.
    """
    target = np.asarray(target, np.float64)
    source = np.asarray(source, np.float64)
    ring = target.copy()
    lower = np.arange(1, 10)
    upper = 20 - lower
    gap = scale * (source[lower] - source[upper])
    target_gap = target[lower] - target[upper]
    length = np.linalg.norm(target_gap, axis=1)
    along = np.einsum("ij,ij->i", gap, target_gap) / np.maximum(length, 1e-9)
    share = np.clip(along / np.maximum(length, 1e-9), 0.0, 1.0)
    ring[lower] = target[upper] + share[:, None] * target_gap
    return ring


def paint_interior(patch: np.ndarray, origin: tuple[int, int], inner: np.ndarray, lips_rgb: np.ndarray,
                   eye_distance: float, white: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(painted patch, alpha (h, w) float32): a mouth interior inside the ``inner`` lip ring.

    ``inner``: the 20 inner-lip points (`lipdub.eval.mouth.LIP_INNER` order: right corner, lower
    lip, left corner, upper lip) in frame pixels; ``origin``: frame pixel of the patch's top-left.
    """
    h, w = patch.shape[:2]
    ring = np.asarray(inner, np.float64) - np.asarray(origin, np.float64)
    sigma = max(0.6, eye_distance / 250.0)
    # Work on the ring's box, grown by the blur's reach (OpenCV's float kernel ends at 4 sigma)
    # plus the anti-aliased edge: outside it the alpha is exactly 0, so nothing else is painted.
    # A lower-face patch is several times the opening's size: this is what keeps the cost small.
    box = bounding_rect(ring, (h, w), int(np.ceil(4.0 * sigma)) + 3)
    alpha_full = np.zeros((h, w), np.float32)
    if box is None:
        return patch, alpha_full
    bx1, by1, bx2, by2 = box
    mask = np.zeros((by2 - by1, bx2 - bx1), np.uint8)
    cv2.fillPoly(mask, [np.round((ring - (bx1, by1)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    if not mask.any():
        return patch, alpha_full
    lower, upper = ring[:11], ring[list(range(10, 20)) + [0]]
    ys, xs = np.mgrid[by1:by2, bx1:bx2].astype(np.float64)
    # Upper and lower lip height at every column, by interpolation along x.
    up_order, lo_order = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
    y_up = np.interp(xs[0], upper[up_order, 0], upper[up_order, 1])
    y_lo = np.interp(xs[0], lower[lo_order, 0], lower[lo_order, 1])
    gap = np.maximum(y_lo - y_up, 1e-3)[None, :]
    depth = (ys - y_up[None, :]) / gap  # 0 at the upper lip, 1 at the lower lip
    left, right = ring[:, 0].min(), ring[:, 0].max()
    across = np.clip((xs - left) / max(right - left, 1e-3), 0.0, 1.0)
    centre = 1.0 - (2.0 * across - 1.0) ** 2  # 1 in the middle, 0 at the corners

    cavity = np.clip(lips_rgb * 0.28, 0, 255)
    shade = 0.55 + 0.45 * np.clip(np.abs(depth - 0.55) * 1.6, 0.0, 1.0)
    colour = cavity[None, None, :] * shade[..., None]
    # The tongue: a muted lip-coloured mass in the lower middle, once the opening is tall enough to
    # show it (0.05-0.13 eye units fading in). Without it a wide photo mouth was a flat black hole.
    shows = np.clip((gap / eye_distance - TONGUE_FROM) / TONGUE_FADE, 0.0, 1.0)
    tongue = np.clip((depth - 0.5) / 0.2, 0.0, 1.0) * np.clip((centre - 0.25) / 0.35, 0.0, 1.0) * shows
    tongue_rgb = lips_rgb[None, None, :] * (0.55 + 0.2 * np.clip((depth - 0.55) / 0.45, 0.0, 1.0))[..., None]
    colour = colour * (1.0 - tongue[..., None]) + tongue_rgb * tongue[..., None]
    # Upper teeth: a band under the upper lip, at most ~0.07 eye units tall, brightest mid-mouth.
    teeth_height = np.minimum(0.07 * eye_distance, 0.45 * gap)
    teeth = np.clip((y_up[None, :] + teeth_height - ys) / np.maximum(teeth_height * 0.25, 1.0), 0.0, 1.0)
    teeth *= np.clip(centre * 1.6, 0.0, 1.0)
    if white is None:
        white = TEETH_WHITE * float(np.clip(lips_rgb.mean() / 140.0, 0.45, 1.0))
    white = np.asarray(white, np.float64)
    teeth_shade = 1.0 - TEETH_CORNER_SHADE * (1.0 - centre[..., None])
    colour = colour * (1.0 - teeth[..., None]) + white[None, None, :] * teeth[..., None] * teeth_shade
    # A hint of lower teeth just above the lower lip.
    lower_teeth = np.clip((ys - (y_lo[None, :] - 0.25 * teeth_height)) / np.maximum(teeth_height * 0.2, 1.0), 0, 1)
    lower_teeth *= 0.35 * np.clip(centre * 1.4, 0.0, 1.0)
    colour = colour * (1.0 - lower_teeth[..., None]) + white[None, None, :] * 0.75 * lower_teeth[..., None]
    softness = PAINT_SOFTNESS * eye_distance
    if softness >= 0.3:  # below a third of a pixel a blur changes nothing
        colour = cv2.GaussianBlur(colour, (0, 0), softness)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)
    alpha = np.minimum(alpha, mask.astype(np.float32) / 255.0 * 1.5).clip(0.0, 1.0)
    painted = np.array(patch, np.uint8, copy=True)
    painted[by1:by2, bx1:bx2] = np.clip(colour, 0, 255).astype(np.uint8)
    alpha_full[by1:by2, bx1:bx2] = alpha
    return painted, alpha_full
