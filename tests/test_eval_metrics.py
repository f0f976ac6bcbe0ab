"""Known-answer tests for the pure evaluation metrics (sync, mouth shape, image quality)."""

import math

import cv2
import numpy as np
import pytest

from lipdub.eval import image, mouth, sync

# ---------------------------------------------------------------- sync (LSE-D / LSE-C)


def test_sync_distances_by_hand():
    # Audio padded with one zero row each side: [0, 10, 20, 30, 0]; column j = audio window i+j-1.
    video = np.array([[1.0], [2.0], [3.0]])
    audio = np.array([[10.0], [20.0], [30.0]])
    distances = sync.sync_distances(video, audio, max_offset=1)
    expected = [[1, 9, 19], [8, 18, 28], [17, 27, 3]]
    np.testing.assert_allclose(distances, expected, atol=1e-5)
    np.testing.assert_array_equal(sync.sync_offsets(1), [1, 0, -1])


def test_sync_distances_match_torch_pairwise_distance_with_zero_padding():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    video = rng.normal(size=(12, 5)).astype(np.float32)
    audio = rng.normal(size=(12, 5)).astype(np.float32)
    vshift = 4
    padded = torch.nn.functional.pad(torch.from_numpy(audio), (0, 0, vshift, vshift))
    rows = [
        torch.nn.functional.pairwise_distance(
            torch.from_numpy(video[[i]]).repeat(2 * vshift + 1, 1), padded[i : i + 2 * vshift + 1]
        ).numpy()
        for i in range(len(video))
    ]
    np.testing.assert_allclose(sync.sync_distances(video, audio, vshift), np.stack(rows), rtol=1e-5)


def _shifted_pair(k, n=200, dim=64, noise=0.01, seed=0):
    """Embeddings where video window i equals audio window i-k (plus noise)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n + abs(k), dim))
    if k >= 0:
        video, audio = base[:n], base[k : k + n]
    else:
        video, audio = base[-k : -k + n], base[:n]
    return video + noise * rng.normal(size=video.shape), audio


@pytest.mark.parametrize("k", [3, -4, 0])
def test_sync_scores_recover_the_shift_with_syncnet_sign(k):
    video, audio = _shifted_pair(k)
    scores = sync.sync_scores(video, audio, max_offset=15)
    # syncnet_python's sign: video[i] ~ audio[i-k] (audio k frames ahead) -> offset +k.
    assert scores.av_offset == k
    assert scores.offsets[np.argmin(scores.mean_distances)] == k
    assert scores.lse_d < 0.3  # others sit near sqrt(2 * 64) = 11.3
    assert scores.lse_c > 10.0
    assert scores.lse_c == pytest.approx(np.median(scores.mean_distances) - scores.lse_d)


def test_lse_d_counts_the_zero_padding_like_syncnet():
    k = 3
    video, audio = _shifted_pair(k, n=50, noise=0.0)
    scores = sync.sync_scores(video, audio, max_offset=15)
    # At the true offset the first k windows meet padding (distance = |video|), the rest match.
    expected = np.linalg.norm(video[:k], axis=1).sum() / len(video)
    assert scores.lse_d == pytest.approx(expected, abs=1e-4)


def test_unrelated_embeddings_have_low_confidence():
    rng = np.random.default_rng(2)
    video, audio = rng.normal(size=(200, 64)), rng.normal(size=(200, 64))
    scores = sync.sync_scores(video, audio)
    assert scores.lse_c < 0.05 * scores.lse_d
    assert scores.lse_d > 10.0
    assert len(scores.offsets) == len(scores.mean_distances) == 31


def test_frame_confidence_drops_where_sync_is_lost():
    video, audio = _shifted_pair(2, n=120)
    rng = np.random.default_rng(3)
    video[60:] = rng.normal(size=(60, video.shape[1]))  # second half: unrelated mouth
    confidence = sync.frame_confidence(video, audio, max_offset=5)
    assert confidence.shape == (120,)
    assert np.all(confidence[10:55] > 5.0)
    assert np.all(np.abs(confidence[65:110]) < 3.0)


def test_median_filter_zero_pads_like_scipy_medfilt():
    values = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    # Window 3 at the first sample sees [0, 5, 1] -> 1; at the last [2, 3, 0] -> 2.
    np.testing.assert_array_equal(sync.median_filter(values, 3), [1, 4, 2, 3, 2])
    signal = pytest.importorskip("scipy.signal")
    noisy = np.random.default_rng(4).normal(size=40)
    np.testing.assert_array_equal(sync.median_filter(noisy, 9), signal.medfilt(noisy, 9))


def test_sync_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        sync.sync_scores(np.zeros((10, 4)), np.zeros((9, 4)))


# ---------------------------------------------------------------- mouth shape


def test_lip_indices_are_the_face_mesh_lip_rings():
    connections = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    expected_edges = {frozenset(edge) for edge in connections.FACEMESH_LIPS}
    ring_edges = set()
    for ring in (mouth.LIP_OUTER, mouth.LIP_INNER):
        assert len(set(ring)) == len(ring) == 20
        ring_edges |= {frozenset((ring[i], ring[(i + 1) % len(ring)])) for i in range(len(ring))}
    assert ring_edges == expected_edges
    assert {13, 14} <= set(mouth.LIP_INNER)


def _face(n=1, seed=0):
    """Landmarks with eye corners 100 px apart and a mouth opening of 30 px."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(100, 300, size=(n, 478, 2))
    points[:, 33] = (100, 100)
    points[:, 263] = (200, 100)
    points[:, 13] = (150, 200)
    points[:, 14] = (150, 230)
    return points


def _rotate(points, degrees, centre=(150, 150)):
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (points - centre) @ rotation.T + centre


def test_face_size_and_aperture_by_hand():
    face = _face()
    np.testing.assert_allclose(mouth.face_size(face), [100.0])
    np.testing.assert_allclose(mouth.mouth_aperture(face), [0.3])
    # Rotation and scale change neither (the opening is a distance, in face-size units).
    np.testing.assert_allclose(mouth.mouth_aperture(_rotate(face, 25) * 3), [0.3])


def test_lmd_identical_is_zero_and_scale_invariant():
    reference = _face(n=4, seed=1)
    generated = _face(n=4, seed=2)
    assert mouth.lip_landmark_distance(reference, reference) == 0.0
    lmd = mouth.lip_landmark_distance(generated, reference)
    assert lmd > 0.1
    assert mouth.lip_landmark_distance(generated * 2, reference * 2) == pytest.approx(lmd)
    # Centred on the mouth: moving the whole generated face does not count.
    assert mouth.lip_landmark_distance(generated + (37, -11), reference) == pytest.approx(lmd)


def test_lmd_of_a_wider_mouth_by_hand():
    reference = _face(n=2, seed=3)
    generated = reference.copy()
    lips = list(mouth.LIPS)
    centre = reference[:, lips].mean(axis=1, keepdims=True)
    generated[:, lips] = centre + 1.5 * (reference[:, lips] - centre)
    # Every lip point moves by 0.5 of its distance to the mouth centre; face size is 100 px.
    expected = 0.5 * np.linalg.norm(reference[:, lips] - centre, axis=-1).mean() / 100.0
    assert mouth.lip_landmark_distance(generated, reference) == pytest.approx(expected)


def test_lmd_skips_frames_without_landmarks():
    reference = _face(n=3, seed=4)
    generated = _face(n=3, seed=5)
    partial = generated.copy()
    partial[1] = np.nan
    expected = mouth.lip_landmark_distance(generated[[0, 2]], reference[[0, 2]])
    assert mouth.lip_landmark_distance(partial, reference) == pytest.approx(expected)


def _speech_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.convolve(rng.random(n + 10), np.ones(5) / 5, mode="valid")[:n]


@pytest.mark.parametrize("lag", [3, -2, 0])
def test_aperture_correlation_finds_the_lag(lag):
    long = _speech_like(300)
    reference = long[10:210]
    generated = long[10 - lag : 210 - lag]  # generated[t + lag] == reference[t]
    r, found = mouth.aperture_correlation(generated, reference, max_lag=5)
    assert found == lag
    assert r == pytest.approx(1.0)


def test_aperture_correlation_frozen_mouth_is_zero():
    result = mouth.aperture_correlation(np.full(100, 0.2), _speech_like(100))
    assert result == (0.0, 0)


def test_aperture_correlation_at_lag_zero_is_pearson():
    reference = _speech_like(80, seed=1)
    generated = _speech_like(80, seed=2)
    r, lag = mouth.aperture_correlation(generated, reference, max_lag=0)
    assert lag == 0
    assert r == pytest.approx(np.corrcoef(generated, reference)[0, 1])
    assert mouth.aperture_correlation(-reference, reference, max_lag=0).r == pytest.approx(-1.0)


# ---------------------------------------------------------------- image quality


def test_psnr_by_hand():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 1] = 10  # squared error 100 over 12 values
    assert image.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (100 / 12)))
    only_that_pixel = np.zeros((2, 2), bool)
    only_that_pixel[0, 0] = True
    assert image.psnr(a, b, only_that_pixel) == pytest.approx(10 * math.log10(255**2 / (100 / 3)))
    assert image.psnr(a, b, ~only_that_pixel) == math.inf
    assert image.psnr(b, b) == math.inf


def test_psnr_does_not_wrap_uint8():
    a = np.zeros((1, 1, 3), np.uint8)
    b = np.full((1, 1, 3), 255, np.uint8)
    assert image.psnr(a, b) == pytest.approx(0.0)
    assert image.psnr(b, a) == pytest.approx(0.0)


def _texture(shape=(32, 40), low=60, high=160, seed=0):
    rng = np.random.default_rng(seed)
    grey = rng.integers(low, high, size=shape).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def test_ssim_identical_is_one():
    picture = _texture()
    assert image.ssim(picture, picture) == pytest.approx(1.0)


def test_ssim_constant_shift_by_formula():
    m, c = 100.0, 30.0
    a = np.full((20, 20, 3), m, np.uint8)
    b = np.full((20, 20, 3), m + c, np.uint8)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    # No variance: the contrast-structure term is c2 / c2 = 1, only luminance is left.
    expected = (2 * m * (m + c) + c1) / (m**2 + (m + c) ** 2 + c1) * (c2 / c2)
    assert image.ssim(a, b) == pytest.approx(expected)


def test_ssim_map_of_shifted_texture_by_formula():
    # b = a + c keeps variances and covariance equal, so SSIM = luminance term of the local means.
    a = _texture(seed=1)
    c = 50.0
    b = a + np.uint8(c)
    gauss_1d = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    weights = np.outer(gauss_1d, gauss_1d) / np.outer(gauss_1d, gauss_1d).sum()
    c1 = (0.01 * 255) ** 2
    values = image.ssim_map(a, b)
    assert values.shape == (32 - 10, 40 - 10)
    grey = a[..., 0].astype(float)
    for row, col in [(5, 5), (12, 20), (26, 34)]:
        mu = (weights * grey[row - 5 : row + 6, col - 5 : col + 6]).sum()
        expected = (2 * mu * (mu + c) + c1) / (mu**2 + (mu + c) ** 2 + c1)
        assert values[row - 5, col - 5] == pytest.approx(expected, rel=1e-9)


def test_ssim_mask_ignores_differences_outside():
    a = _texture(shape=(40, 40), seed=2)
    b = a.copy()
    b[:, 30:] = 0  # damage the right side
    left = np.zeros((40, 40), bool)
    left[:, :20] = True  # windows centred here end at column 24
    assert image.ssim(a, b, left) == pytest.approx(1.0)
    assert image.ssim(a, b) < 0.9


def test_ssim_of_noise_is_low():
    assert image.ssim(_texture(seed=3), _texture(seed=4)) < 0.2


def test_laplacian_sharpness_by_hand():
    dot = np.zeros((5, 5), np.uint8)
    dot[2, 2] = 10
    # Laplacian: -40 at the dot, +10 at its four neighbours, 0 elsewhere; mean 0.
    assert image.laplacian_sharpness(dot) == pytest.approx((40**2 + 4 * 10**2) / 25)
    grey_rgb = np.repeat(dot[..., None], 3, axis=2)
    assert image.laplacian_sharpness(grey_rgb) == pytest.approx(80.0)


def test_blur_lowers_sharpness_ratio():
    sharp = _texture(shape=(48, 48), seed=5)
    blurred = cv2.GaussianBlur(sharp, (5, 5), 1.5)
    assert image.laplacian_sharpness(blurred) < image.laplacian_sharpness(sharp)
    assert image.sharpness_ratio(blurred, sharp) < 0.5
    assert image.sharpness_ratio(sharp, sharp) == pytest.approx(1.0)
    flat = np.full((8, 8, 3), 90, np.uint8)
    assert image.sharpness_ratio(flat, flat) == 1.0


def test_flicker_static_and_alternating():
    still = np.repeat(_texture(shape=(8, 8))[None], 5, axis=0)
    assert image.temporal_flicker(still) == 0.0
    grey = np.array([100, 110, 100, 110], np.uint8)[:, None, None] * np.ones((4, 6, 6), np.uint8)
    assert image.temporal_flicker(grey) == pytest.approx(10.0)
    red = np.zeros((3, 4, 4, 3), np.uint8)
    red[1, ..., 0] = 100  # black, red, black: luma changes by 0.299 * 100 each step
    assert image.temporal_flicker(red) == pytest.approx(29.9)


def test_flicker_mask_static_and_per_frame():
    frames = np.zeros((3, 4, 4), np.uint8)
    frames[1, :, 2:] = 40  # only the right half changes
    right = np.zeros((4, 4), bool)
    right[:, 2:] = True
    assert image.temporal_flicker(frames, right) == pytest.approx(40.0)
    assert image.temporal_flicker(frames, ~right) == 0.0
    assert image.temporal_flicker(frames) == pytest.approx(20.0)
    per_frame = np.stack([right, right, ~right])  # second pair has no common pixel
    with pytest.raises(ValueError):
        image.temporal_flicker(frames, per_frame)
    per_frame = np.ones((3, 4, 4), bool)
    per_frame[0, :, :2] = False
    # Pair 0 counts the right half (change 40), pair 1 all pixels (mean change 20).
    assert image.temporal_flicker(frames, per_frame) == pytest.approx(30.0)
