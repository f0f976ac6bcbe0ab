"""Square crops and their affine transform, checked by hand."""

import cv2
import numpy as np

from lipdub.face.align import crop_matrix, crop_region, extract_crop


def test_crop_region_default_pads_squares_by_hand():
    # 80 x 100 box + 10 px chin -> 80 x 110 -> side 110 centred on (140, 105)
    region = crop_region(np.array([100, 50, 180, 150]), (480, 640))
    np.testing.assert_array_equal(region, [85, 50, 195, 160])


def test_crop_region_pad_order_top_bottom_left_right():
    # x: 100-10 .. 180+30 = 90..210 (120 wide); y: 50-0 .. 150+10 = 50..160 (110 high)
    region = crop_region(np.array([100, 50, 180, 150]), (480, 640), pads=(0, 10, 10, 30))
    np.testing.assert_array_equal(region, [90, 45, 210, 165])
    # top pad moves y1 up: y 30..150 -> 80 x 120, side 120, centre (140, 90)
    region = crop_region(np.array([100, 50, 180, 150]), (480, 640), pads=(20, 0, 0, 0))
    np.testing.assert_array_equal(region, [80, 30, 200, 150])


def test_crop_region_clips_padding_to_frame_then_may_extend_past_it():
    # Padded box clipped to x 0..60, y 10..100 (60 x 90) -> side 90 centred on (30, 55).
    region = crop_region(np.array([-20, 10, 60, 90]), (100, 100))
    np.testing.assert_array_equal(region, [-15, 10, 75, 100])
    assert region[2] - region[0] == region[3] - region[1]


def test_crop_matrix_maps_pixel_centres_like_resize():
    m = crop_matrix(np.array([40, 30, 240, 230]), 100)  # 2 frame pixels per crop pixel
    # crop pixel 0 samples frame x = 40 + 0.5 * 2 - 0.5 = 40.5
    np.testing.assert_allclose(m @ [40.5, 30.5, 1], [0, 0])
    np.testing.assert_allclose(m @ [238.5, 228.5, 1], [99, 99])


def _ramp(h=200, w=300):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, (x + y) // 2 % 256], axis=-1).astype(np.uint8)


def test_extract_crop_identity_scale_is_a_slice():
    image = _ramp()
    crop = extract_crop(image, np.array([40, 30, 140, 130]), 100)
    np.testing.assert_array_equal(crop.image, image[30:130, 40:140])
    np.testing.assert_allclose(crop.matrix, [[1, 0, -40], [0, 1, -30]])
    assert crop.size == 100 and crop.image.shape == (100, 100, 3)


def test_extract_crop_downscale_values_follow_the_matrix():
    image = _ramp()
    crop = extract_crop(image, np.array([20, 10, 220, 210]), 100)
    # Red = x: crop column u averages frame columns 20 + 2u and 21 + 2u.
    u = np.arange(100)
    np.testing.assert_allclose(crop.image[50, :, 0], 20 + 2 * u + 0.5, atol=0.6)
    frame_x = (u - crop.matrix[0, 2]) / crop.matrix[0, 0]
    np.testing.assert_allclose(crop.image[50, :, 0], frame_x, atol=0.6)


def test_extract_crop_round_trip():
    image = cv2.GaussianBlur(_ramp(), (0, 0), 3)
    region = np.array([60, 20, 180, 140])
    crop = extract_crop(image, region, 96)
    back = cv2.warpAffine(crop.image, crop.matrix, (image.shape[1], image.shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inner = (slice(30, 130), slice(70, 170))
    error = np.abs(back[inner].astype(int) - image[inner].astype(int))
    assert error.mean() < 1.0 and error.max() <= 3


def test_extract_crop_replicates_border_outside_frame():
    image = _ramp()
    crop = extract_crop(image, np.array([-20, 0, 80, 100]), 100)
    np.testing.assert_array_equal(crop.image[:, :20], np.repeat(image[0:100, :1], 20, axis=1))
    np.testing.assert_array_equal(crop.image[:, 20:], image[0:100, 0:80])
