"""Image-quality metrics for generated frames: fidelity, sharpness and flicker.

Lip sync can be perfect while the mouth region is blurry, blotchy or shimmering from frame to
frame; these numbers catch that. They compare a generated frame with the reference frame it
replaces, usually restricted to the mouth region by a boolean mask (HxW, True = pixel counted), so
that the untouched rest of the frame does not dilute the score.

Images are RGB uint8 HxWx3 (an HxW grey image is accepted too). Structure-based measures work on
luma, Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, what OpenCV's RGB2GRAY uses), kept in float
without rounding.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

MAX_VALUE = 255.0
# Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * MAX_VALUE) ** 2
SSIM_C2 = (0.03 * MAX_VALUE) ** 2
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image (or a grey image as is), float64 in 0..255."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        return pixels.astype(np.float64)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels.astype(np.float64) @ LUMA_WEIGHTS
    raise ValueError(f"expected an HxWx3 RGB or HxW grey image, got shape {pixels.shape}")


def _pixel_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    selected = np.asarray(mask, dtype=bool)
    if selected.shape != shape:
        raise ValueError(f"mask shape {selected.shape} does not match image {shape}")
    if not selected.any():
        raise ValueError("mask selects no pixels")
    return selected


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(255^2 / MSE), over the masked pixels.

    The MSE averages every channel of every selected pixel (RGB, not luma, since colour errors in
    the mouth, e.g. grey teeth, are errors too). Identical inputs give inf.
    """
    a, b = _same_shape(a, b)
    selected = _pixel_mask(mask, a.shape[:2])
    diff = a.astype(np.float64)[selected] - b.astype(np.float64)[selected]
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(MAX_VALUE**2 / mse))


def _gaussian_valid(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean over each fully-inside 11x11 window ('valid' filtering)."""
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)
    blurred = cv2.sepFilter2D(image, cv2.CV_64F, kernel, kernel)
    half = SSIM_WINDOW // 2
    # Away from the border by half a window, the border rule never enters the sum.
    return blurred[half:-half, half:-half]


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-window SSIM of the lumas, (H-10, W-10): one value per window centre inside the image.

    Wang et al. 2004 as their reference code computes it: Gaussian window 11x11, sigma 1.5,
    biased (window-weighted) variances, C1 = (0.01*255)^2, C2 = (0.03*255)^2, only windows that
    lie wholly inside the image. Entry [i, j] belongs to pixel (i + 5, j + 5).
    """
    a, b = _same_shape(a, b)
    x, y = luma(a), luma(b)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape}")
    mu_x, mu_y = _gaussian_valid(x), _gaussian_valid(y)
    var_x = _gaussian_valid(x * x) - mu_x * mu_x
    var_y = _gaussian_valid(y * y) - mu_y * mu_y
    cov = _gaussian_valid(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return numerator / denominator


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean structural similarity of the lumas (1 = identical), see `ssim_map`.

    With a mask, the mean is over the windows centred on a selected pixel (at least 5 pixels from
    the image border); a mask that selects only border pixels is an error.
    """
    values = ssim_map(a, b)
    selected = _pixel_mask(mask, np.asarray(a).shape[:2])
    half = SSIM_WINDOW // 2
    inside = selected[half:-half, half:-half]
    if not inside.any():
        raise ValueError(f"mask selects no pixel at least {half} pixels inside the image")
    return float(values[inside].mean())


def laplacian(image: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the luma (kernel [[0,1,0],[1,-4,1],[0,1,0]], borders reflected)."""
    return cv2.Laplacian(luma(image), cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)


def laplacian_sharpness(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian of the luma over the masked pixels (Pech-Pacheco et al. 2000).

    Edges and fine texture give large second derivatives; blur flattens them, so the variance
    drops. Only meaningful relative to another image of the same content, see `sharpness_ratio`.
    """
    response = laplacian(image)
    selected = _pixel_mask(mask, response.shape)
    return float(response[selected].var())


def sharpness_ratio(
    generated: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """laplacian_sharpness(generated) / laplacian_sharpness(reference), over the same mask.

    Below 1 the generated region is blurrier than the real one (Wav2Lip's typical failure), above
    1 it is sharper or noisier. When the reference region is perfectly flat the ratio is 1.0 if the
    generated one is flat too, inf otherwise.
    """
    generated, reference = _same_shape(generated, reference)
    numerator = laplacian_sharpness(generated, mask)
    denominator = laplacian_sharpness(reference, mask)
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else float("inf")
    return numerator / denominator


def temporal_flicker(frames: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute frame-to-frame luma change inside the mask, in grey levels (0..255).

    frames: (T, H, W, 3) RGB or (T, H, W) grey, T >= 2. mask: None, one (H, W) mask for all frames,
    or (T, H, W) per frame, in which case a pair of consecutive frames counts the pixels selected in
    both. Returns the mean over the T-1 consecutive pairs of the mean |Y[t+1] - Y[t]| over the
    pair's pixels. Real motion counts too, so compare a generated clip's value with the
    reference clip's (same mask): the excess is flicker.
    """
    stack = np.asarray(frames)
    if stack.ndim not in (3, 4) or len(stack) < 2:
        raise ValueError(f"expected at least two frames as (T, H, W[, 3]), got shape {stack.shape}")
    lumas = np.stack([luma(frame) for frame in stack])
    height_width = lumas.shape[1:]
    if mask is None:
        pair_masks = np.ones((len(lumas) - 1, *height_width), dtype=bool)
    else:
        selected = np.asarray(mask, dtype=bool)
        if selected.shape == height_width:
            pair_masks = np.broadcast_to(selected, (len(lumas) - 1, *height_width))
        elif selected.shape == lumas.shape:
            pair_masks = selected[1:] & selected[:-1]
        else:
            raise ValueError(f"mask shape {selected.shape} fits neither (H, W) nor (T, H, W)")
    changes = np.abs(np.diff(lumas, axis=0))
    per_pair = []
    for change, pair_mask in zip(changes, pair_masks):
        if not pair_mask.any():
            raise ValueError("mask selects no pixels in a pair of consecutive frames")
        per_pair.append(change[pair_mask].mean())
    return float(np.mean(per_pair))
