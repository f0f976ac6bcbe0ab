"""LSE-D and LSE-C: lip-sync error as the SyncNet protocol measures it.

Wav2Lip and every paper after it report "LSE-D" (distance) and "LSE-C" (confidence) computed by
joonson/syncnet_python (`SyncNetInstance.evaluate`). The numbers are only comparable with the
published ones if the arithmetic after the network is the same, so this module reproduces it step by
step on embeddings someone else computed (the SyncNet judge, written elsewhere):

1. The audio embeddings are zero-padded by `max_offset` rows at both ends.
2. For window i, the video embedding is compared with the padded audio rows i .. i+2*max_offset,
   i.e. with the audio windows i-max_offset .. i+max_offset, by `pairwise_distance`:
   ``||v - a + 1e-6||_2`` (torch's default eps, kept so the distances match to the last digit).
   Near the clip's ends some of those rows are the zero padding; their distances are kept in the
   mean, exactly as syncnet_python does.
3. The distances are averaged over all windows per offset (`mean_distances`).
4. LSE-D is the minimum of that curve, LSE-C is its median minus the minimum, and the AV offset is
   ``max_offset - argmin``.

Sign of the offset (syncnet_python's convention, tested): ``av_offset == k > 0`` means video window
i looks like audio window i-k: the audio runs k frames *ahead* of the video, and delaying the audio
by k frames would put them in sync. A negative offset means the audio lags behind the video.

The functions take embeddings as given: syncnet_python feeds unnormalised ones, a judge may feed
L2-normalised ones; the distances (and therefore LSE-D's scale) follow whatever comes in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

# torch.nn.functional.pairwise_distance adds eps to the difference before taking the norm.
PAIRWISE_EPS = 1e-6
# syncnet_python smooths its framewise confidence with a 9-tap median filter.
CONFIDENCE_MEDIAN_KERNEL = 9


@dataclass(frozen=True)
class SyncScores:
    """The clip-level result of the SyncNet protocol.

    offsets: (2*max_offset+1,) int, -max_offset .. +max_offset, in syncnet_python's sign
        convention (see the module docstring: positive = audio ahead of video).
    mean_distances: (2*max_offset+1,) the mean distance per offset, same order as `offsets`.
    lse_d: the minimum of `mean_distances` (lower is better synced).
    lse_c: median(mean_distances) - lse_d (higher is more confidently synced).
    av_offset: the offset at the minimum; the first one when several tie, as torch.min returns.
    """

    offsets: np.ndarray
    mean_distances: np.ndarray
    lse_d: float
    lse_c: float
    av_offset: int


def _check_embeddings(video_embeddings: np.ndarray, audio_embeddings: np.ndarray, max_offset: int):
    video = np.asarray(video_embeddings, dtype=np.float64)
    audio = np.asarray(audio_embeddings, dtype=np.float64)
    if video.ndim != 2 or audio.ndim != 2:
        raise ValueError(f"embeddings must be (N, D); got {video.shape} and {audio.shape}")
    if video.shape != audio.shape:
        raise ValueError(f"video and audio embeddings differ: {video.shape} vs {audio.shape}")
    if len(video) == 0:
        raise ValueError("no embeddings: the clip is shorter than one 5-frame window")
    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    return video, audio


def sync_offsets(max_offset: int = 15) -> np.ndarray:
    """The offsets, in syncnet_python's sign, that label the columns of `sync_distances`."""
    return max_offset - np.arange(2 * max_offset + 1)


def sync_distances(
    video_embeddings: np.ndarray, audio_embeddings: np.ndarray, max_offset: int = 15
) -> np.ndarray:
    """Distances from each video window to the audio windows around it, as `calc_pdist` gives them.

    video_embeddings, audio_embeddings: (N, D), one row per 5-frame video window and its matching
    audio window (same N). Returns (N, 2*max_offset+1): column j compares video window i with audio
    window i + j - max_offset (zero vector outside the clip), which is offset
    ``sync_offsets(max_offset)[j] == max_offset - j``. Column order is kept as syncnet_python's
    so that its per-window dumps can be compared directly.
    """
    video, audio = _check_embeddings(video_embeddings, audio_embeddings, max_offset)
    n, dim = video.shape
    width = 2 * max_offset + 1
    padded = np.zeros((n + 2 * max_offset, dim))
    padded[max_offset : max_offset + n] = audio
    distances = np.empty((n, width))
    # One column at a time keeps memory at N x D (a minute of SyncNet's 1024-d embeddings would
    # be 0.4 GB as one N x D x width block).
    for j in range(width):
        diff = video - padded[j : j + n] + PAIRWISE_EPS  # row i meets padded row i + j
        distances[:, j] = np.sqrt(np.einsum("nd,nd->n", diff, diff))
    return distances


def median_filter(values: np.ndarray, kernel_size: int = CONFIDENCE_MEDIAN_KERNEL) -> np.ndarray:
    """Running median over an odd window with zeros beyond both ends, like scipy.signal.medfilt.

    Written out (a few lines) so that the package does not depend on scipy for it; the zero
    padding is kept because syncnet_python's smoothed confidence has it.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    half = kernel_size // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half)
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, kernel_size), axis=1)


def _scores_from_distances(distances: np.ndarray, max_offset: int) -> SyncScores:
    mean_distances = distances.mean(axis=0)
    best = int(np.argmin(mean_distances))  # first minimum, like torch.min
    lse_d = float(mean_distances[best])
    # The curve has an odd number of points, so numpy's and torch's medians agree.
    lse_c = float(np.median(mean_distances)) - lse_d
    return SyncScores(
        offsets=sync_offsets(max_offset),
        mean_distances=mean_distances,
        lse_d=lse_d,
        lse_c=lse_c,
        av_offset=max_offset - best,
    )


def sync_scores(
    video_embeddings: np.ndarray, audio_embeddings: np.ndarray, max_offset: int = 15
) -> SyncScores:
    """LSE-D, LSE-C and the AV offset of one clip (syncnet_python's `evaluate`, after the network).

    Wav2Lip's published LSE numbers use max_offset=15 (`--vshift 15`); syncnet_python's own
    default is 10.
    """
    distances = sync_distances(video_embeddings, audio_embeddings, max_offset)
    scores = _scores_from_distances(distances, max_offset)
    logger.debug(
        "sync: %d windows, offset %d, LSE-D %.3f, LSE-C %.3f",
        len(distances),
        scores.av_offset,
        scores.lse_d,
        scores.lse_c,
    )
    return scores


def frame_confidence(
    video_embeddings: np.ndarray, audio_embeddings: np.ndarray, max_offset: int = 15
) -> np.ndarray:
    """Per-window sync confidence, smoothed, as syncnet_python logs it ("Framewise conf").

    Returns (N,): median(mean_distances) - d_i, where d_i is window i's distance at the *clip's*
    best offset (not each window's own best), then a 9-tap median filter with zero padding at the
    ends (`median_filter`, what syncnet_python's scipy.signal.medfilt call does). Useful to find
    the stretches of a clip where the mouth goes out of sync; the clip's LSE-C is the unsmoothed
    mean of these values.
    """
    distances = sync_distances(video_embeddings, audio_embeddings, max_offset)
    mean_distances = distances.mean(axis=0)
    best = int(np.argmin(mean_distances))
    confidence = np.median(mean_distances) - distances[:, best]
    return median_filter(confidence, CONFIDENCE_MEDIAN_KERNEL)
