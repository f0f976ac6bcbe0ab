"""A personalisation profile's mouth bank: chosen, saved, loaded and borrowed from.

The pure parts (selection, retrieval costs, the crop transform) are checked against values worked
out by hand; the rest on two real GRID clips of one speaker from ../shared/data: the bank is made
from ``grid_man_denim_1`` and lent to a photo (the first frame of ``grid_man_denim_2``) and to
that clip as a video.
"""

import json
import shutil

import cv2
import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.render import bank as B
from lipdub.render.interior import opening_fits
from lipdub.train.mouth_bank import crop_mouth, select_bank_frames
from tests.conftest import shared_file

BANK_CLIP = "data/train/real/grid_man_denim_1.mpg"
OTHER_CLIP = "data/train/real/grid_man_denim_2.mpg"


# --- pure functions -----------------------------------------------------------------------------


def test_selection_starts_at_the_widest_opening_and_spreads_over_the_openings():
    openings = np.array([0.0, 0.031, 0.032, 0.033, 0.09, 0.115, 0.2, 0.01, np.nan])
    widths = np.full(9, 0.5)
    poses = np.zeros((9, 8))
    sharp = np.ones(9)
    three = select_bank_frames(openings, widths, poses, sharp, capacity=3)
    # The widest (6), then the farthest from it (1: the least open that is open enough), then the
    # one farthest from both (5: 0.084 from 0.031 and 0.085 from 0.2; 4 is only 0.059 from 0.031).
    np.testing.assert_array_equal(three, [1, 5, 6])
    everything = select_bank_frames(openings, widths, poses, sharp, capacity=50)
    np.testing.assert_array_equal(everything, [1, 2, 3, 4, 5, 6])  # never closed (0, 7) or faceless (8)
    assert len(select_bank_frames(np.array([0.0, 0.01]), np.ones(2), np.zeros((2, 8)), np.ones(2))) == 0


def test_sharpness_rank_counts_ties_half():
    from lipdub.train.mouth_bank import sharpness_rank

    np.testing.assert_allclose(sharpness_rank(np.array([3.0, 1.0, 3.0, 2.0])), [5 / 6, 0.0, 5 / 6, 1 / 3])
    np.testing.assert_allclose(sharpness_rank(np.ones(4)), 0.5)


def test_selection_prefers_the_sharper_of_two_equal_mouths():
    openings = np.array([0.2, 0.05, 0.05])
    picks = select_bank_frames(openings, np.full(3, 0.5), np.zeros((3, 8)), np.array([1.0, 1.0, 5.0]), capacity=2)
    np.testing.assert_array_equal(picks, [0, 2])


def test_crop_transform_puts_points_on_their_pixels():
    image = np.zeros((400, 600, 3), np.uint8)
    points = np.zeros((478, 2))
    from lipdub.eval.mouth import LIP_OUTER

    ring = np.linspace(0, 2 * np.pi, len(LIP_OUTER), endpoint=False)
    points[list(LIP_OUTER)] = np.stack([300 + 80 * np.cos(ring), 200 + 30 * np.sin(ring)], axis=1)
    points[5] = (317.0, 206.0)
    image[206, 317] = 255
    for eye, max_eye in ((100.0, 320.0), (400.0, 200.0)):  # kept as is, then halved
        crop, to_crop = crop_mouth(image, points, eye, max_eye)
        from lipdub.motion.shape import apply_affine

        x, y = apply_affine(to_crop, points[5])
        peak = np.unravel_index(np.argmax(crop[..., 0].astype(float)), crop.shape[:2])
        assert abs(peak[1] - x) <= 0.5 and abs(peak[0] - y) <= 0.5
        assert crop.shape[1] == pytest.approx((160 + 2 * np.ceil(0.12 * eye) + 1) * min(1.0, max_eye / eye), abs=1)


def test_sequence_keys_make_every_step_to_or_between_outside_entries_a_switch():
    keys = B.sequence_keys(np.array([-1, 4, 5, -1, -1]))
    assert keys[1] == 4 and keys[2] == 5
    outside = keys[[0, 3, 4]]
    assert len(set(outside)) == 3 and (outside < 0).all()
    steps = np.abs(outside[:, None] - np.concatenate([outside, [4, 5]])[None, :])
    assert ((steps == 0) | (steps > 1)).all()


def test_opening_fits_band_and_closed_targets():
    assert bool(opening_fits(0.08, 0.1)) and not bool(opening_fits(0.06, 0.1))  # 0.7 x 0.1 = 0.07
    assert bool(opening_fits(0.157, 0.1)) and not bool(opening_fits(0.16, 0.1))  # 0.1 / 0.7 + 0.015
    assert not bool(opening_fits(0.0, 0.01)) and bool(opening_fits(0.0, 0.01, closed=0.02))
    assert not bool(opening_fits(0.05, 0.01, closed=0.02))  # too open to close


def test_interior_source_pulls_the_inner_ring_in_vertically():
    from lipdub.engines.motion import interior_source
    from lipdub.eval.mouth import LIP_INNER

    points = np.zeros((478, 2))
    ring = np.linspace(0, 2 * np.pi, len(LIP_INNER), endpoint=False)
    points[list(LIP_INNER)] = np.stack([100 + 40 * np.cos(ring), 50 + 10 * np.sin(ring)], axis=1)
    points[0] = (7.0, 8.0)
    moved = interior_source(points, 0.4)
    inner = moved[list(LIP_INNER)]
    np.testing.assert_allclose(inner[:, 0], points[list(LIP_INNER), 0])  # widths kept
    np.testing.assert_allclose(inner[:, 1] - 50, 0.6 * (points[list(LIP_INNER), 1] - 50), atol=1e-9)
    np.testing.assert_array_equal(moved[0], points[0])  # nothing else moves
    assert interior_source(points, 0.0) is not None and np.array_equal(interior_source(points, 0.0), points)


def test_centre_lips_removes_only_the_lips_translation():
    shapes = np.random.default_rng(0).normal(size=(3, 79, 2))
    moved = shapes + np.array([0.3, -0.2])
    np.testing.assert_allclose(B.centre_lips(moved), B.centre_lips(shapes))
    assert np.abs(B.centre_lips(shapes)[:, :40].mean(axis=1)).max() < 1e-12


def test_retrieval_keeps_input_frames_where_they_fit_and_lends_profile_mouths_elsewhere():
    from lipdub.motion.shape import LOWER_INNER

    def shape(opening):
        s = np.zeros((79, 2))
        s[LOWER_INNER, 1] = opening
        return s

    # Bank: one closed input frame (a photo) and two profile mouths that sit elsewhere (+0.05 in x).
    bank_shapes = np.stack([shape(0.0), shape(0.06) + [0.05, 0.0], shape(0.12) + [0.05, 0.0]])
    bank_openings = np.array([0.0, 0.06, 0.12])
    targets = np.stack([shape(o) for o in (0.0, 0.0, 0.06, 0.06, 0.12, 0.12, 0.0, 0.0)])
    target_openings = np.array([0.0, 0.0, 0.06, 0.06, 0.12, 0.12, 0.0, 0.0])
    frames = np.array([0, -1, -1])
    args = (targets, np.zeros((8, 2)), np.zeros(8, np.int64), bank_shapes, np.zeros((3, 2)), frames)
    picked = B.choose_sources(*args, bank_cost=np.array([0.0, B.PROFILE_COST, B.PROFILE_COST]),
                              centred=frames < 0, fit=(bank_openings, target_openings, B.UNFIT_COST))
    np.testing.assert_array_equal(picked, [0, 0, 1, 1, 2, 2, 0, 0])
    # Without the fit cost the closed photo scores about as well as any other mouth: the painted one stays.
    assert (B.choose_sources(*args, bank_cost=np.array([0.0, B.PROFILE_COST, B.PROFILE_COST])) == 0).all()
    # A profile mouth is never excluded as "the real mouth of the moment".
    excluded = B.choose_sources(*args, exclude_within=3, bank_cost=np.array([0.0, 0.01, 0.01]), centred=frames < 0,
                                fit=(bank_openings, target_openings, B.UNFIT_COST))
    assert (excluded > 0).all()


# --- on real clips ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profile_bank():
    from lipdub.train.mouth_bank import build_profile_bank

    return build_profile_bank(shared_file(BANK_CLIP), capacity=16)


def _track(path):
    from lipdub.media.decode import probe_video
    from lipdub.pipeline import SyncOptions, StageClock, track_input

    class Collect:
        def observe(self, index, image, face):
            pass

    info = probe_video(path)
    return track_input(path, info.is_photo, info.fps, SyncOptions(), Collect(), StageClock(), info.frame_count)


def test_saved_bank_round_trips_points_and_pixels(profile_bank, tmp_path):
    from lipdub.eval.image import psnr
    from lipdub.render.profile_bank import load_bank, save_bank

    assert 0 < len(profile_bank) <= 16
    path = tmp_path / "mouth_bank.npz"
    size = save_bank(profile_bank, path)
    assert size == path.stat().st_size and sorted(p.name for p in tmp_path.iterdir()) == ["mouth_bank.npz"]
    with pytest.raises(FileExistsError):
        save_bank(profile_bank, path)  # nothing the user owns is overwritten
    loaded = load_bank(path)
    assert len(loaded) == len(profile_bank)
    np.testing.assert_array_equal(loaded.frames, profile_bank.frames)
    np.testing.assert_allclose(loaded.points(), profile_bank.points(), atol=1e-3)
    np.testing.assert_allclose(loaded.rest, profile_bank.rest, atol=1e-6)
    for a, b in zip(loaded.crops, profile_bank.crops):
        assert a.shape == b.shape
        assert psnr(a, b) > 38.0  # JPEG at quality 95, 4:4:4 (measured: 42-44 dB)
    # Every point of a mouth lies on its crop.
    for crop, points in zip(loaded.crops, loaded.points()):
        from lipdub.eval.mouth import LIPS

        lips = points[list(LIPS)]
        assert (lips >= -0.5).all() and (lips[:, 0] <= crop.shape[1]).all() and (lips[:, 1] <= crop.shape[0]).all()


def test_profile_entries_are_judged_from_a_rest_of_the_inputs_kind(profile_bank):
    """A closed-rest input must not re-base profile mouths from their (more open) envelope rest."""
    from lipdub.motion import shape as S

    envelope = profile_bank.rest_as("envelope")
    closed = profile_bank.rest_as("closed")
    np.testing.assert_array_equal(envelope, profile_bank.rest)
    np.testing.assert_allclose(closed, S.closed_mouth(profile_bank.rest))
    assert np.abs(S.aperture(closed)).max() < 1e-9 and (S.aperture(envelope) > 1e-3).any()
    with pytest.raises(ValueError):
        profile_bank.rest_as("open")

    bank = B.MouthBank(profile_bank)
    input_rest = closed[0]
    count = len(profile_bank)
    canonical = np.zeros((0, 468, 2))
    for kind, own_rest in (("closed", closed), ("envelope", envelope)):
        bank.place(np.zeros((0, 478, 2)), canonical, input_rest, np.zeros(2 * len(B.POSE_POINTS)), rest_kind=kind)
        np.testing.assert_allclose(bank.shapes[:count], input_rest + profile_bank.shapes() - own_rest)


def test_bank_holds_the_widest_open_frame_of_the_clip(profile_bank):
    from lipdub.motion import shape as S

    faces = _track(shared_file(BANK_CLIP))
    raw = np.stack([np.full((478, 2), np.nan) if f is None else f.raw_landmarks for f in faces])
    smoothed = np.stack([np.full((478, 2), np.nan) if f is None else f.landmarks for f in faces])
    _, canonical = S.canonical_mesh(smoothed, raw)
    openings = S.aperture(canonical[:, list(S.MOTION_POINTS)])
    assert int(np.nanargmax(openings)) in set(profile_bank.frames.tolist())
    kept = openings[profile_bank.frames]
    assert kept.min() >= 0.03 and np.nanmax(openings) - kept.max() < 1e-9
    # Covering, not the first N: the kept mouths span most of the clip's open range.
    open_frames = openings[openings >= 0.03]
    assert kept.min() - open_frames.min() < 0.25 * np.ptp(open_frames)


def _photo(tmp_path):
    from lipdub.media.decode import iter_frames

    image = next(iter(iter_frames(shared_file(OTHER_CLIP)))).image
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


class ZeroMotion:
    name = "zero"
    default_scale = 0.3
    rest = "closed"

    def predict_with_gate(self, samples, frames, fps):
        from lipdub.motion.shape import MOTION_POINTS

        return np.zeros((frames, len(MOTION_POINTS), 2)), np.ones(frames)


def _engine(face, bank, output_frames):
    from lipdub.engines.base import FrameJob, RenderPlan
    from lipdub.engines.motion import MotionEngine
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.pipeline import SyncOptions, StageClock, track_input
    from lipdub.timeline import plan_timeline

    info = probe_video(face)
    engine = MotionEngine(ZeroMotion(), profile_bank=bank)
    faces = track_input(face, info.is_photo, info.fps, SyncOptions(), engine, StageClock(), info.frame_count)
    timeline = plan_timeline(len(faces), output_frames, SyncOptions().length_mode, is_photo=info.is_photo)
    speech = np.zeros(int(output_frames / info.fps * 16000), np.float32)
    engine.prepare(RenderPlan(info.fps, timeline, faces, speech, info.is_photo, (info.height, info.width)))
    images = [f.image for f in iter_frames(face)]
    jobs = [FrameJob(i, timeline.source_index(i), images[timeline.source_index(i)], faces[timeline.source_index(i)])
            for i in range(output_frames)]
    return engine, jobs


def test_a_photo_borrows_the_profile_mouths_inside_the_mouth_only(profile_bank, tmp_path):
    from lipdub.engines.motion import FEATHER_EYE_UNITS
    from lipdub.eval.mouth import LIP_INNER
    from lipdub.face.blend import LOWER_FACE_OUTLINE, feathered_polygons
    from lipdub.motion import shape as S

    photo = _photo(tmp_path)
    with_bank, jobs = _engine(photo, profile_bank, 4)
    painted, _ = _engine(photo, None, 4)
    # Targets: closed, then the profile's own open mouths put on the photo's face (exact matches exist).
    profile_shapes = with_bank._bank.shapes[~with_bank._bank.from_input]
    widest = np.argsort(S.aperture(profile_shapes))[-3:]
    targets = np.concatenate([with_bank.own_shapes()[:1], profile_shapes[widest]])
    for engine in (with_bank, painted):
        engine.use_targets(targets)
    outputs = with_bank.render(jobs)
    references = painted.render(jobs)
    assert with_bank.chosen_profile[0] == -1 and with_bank.chosen_sources[0] == 0  # closed: the photo's own
    assert (with_bank.chosen_profile[1:] >= 0).all() and (with_bank.chosen_sources[1:] == -1).all()
    assert (painted.chosen_sources == 0).all() and (painted.chosen_profile == -1).all()
    np.testing.assert_array_equal(outputs[0], references[0])
    for i in range(1, 4):
        target = with_bank.target_frame_points(i)
        frame = np.asarray(jobs[i].face.raw_landmarks, np.float64)
        eye = float(np.linalg.norm(frame[33] - frame[263]))
        opening = np.zeros(outputs[i].shape[:2], np.uint8)
        cv2.fillPoly(opening, [np.round(target[list(LIP_INNER)]).astype(np.int32)], 1)
        mouth = cv2.dilate(opening, np.ones((5, 5), np.uint8)).astype(bool)
        diff = np.abs(outputs[i].astype(int) - references[i]).max(axis=2)
        assert diff[~mouth].max() <= 1  # only the opening differs from the painted one
        assert diff[opening.astype(bool)].mean() > 5  # and there it really differs
        lower = feathered_polygons([p[list(LOWER_FACE_OUTLINE)] for p in (target, frame)], opening.shape,
                                   FEATHER_EYE_UNITS * eye)
        outside = np.abs(outputs[i].astype(int) - jobs[i].image).max(axis=2)[lower == 0]
        assert outside.max() <= 1  # nothing outside the lower-face mask changes
    with_bank.close()
    painted.close()


def test_bank_never_lends_mouths_from_outside_the_input_and_profile(profile_bank):
    engine, jobs = _engine(shared_file(OTHER_CLIP), profile_bank, 40)
    rng = np.random.default_rng(1)
    targets = engine.own_shapes() + rng.normal(scale=0.03, size=engine.own_shapes().shape)
    # The second half: the profile's widest mouth (0.144 eye units; this clip opens 0.133 at most).
    profile_shapes = engine._bank.shapes[~engine._bank.from_input]
    targets[20:] = profile_shapes[np.argmax(engine._bank.openings[~engine._bank.from_input])]
    engine.use_targets(targets)
    engine.render(jobs[::4])
    inputs = set(engine._bank.frames[engine._bank.from_input].tolist())
    sources, profile = engine.chosen_sources, engine.chosen_profile
    assert set(sources[sources >= 0].tolist()) <= inputs
    assert ((profile >= -1) & (profile < len(profile_bank))).all()
    assert ((sources >= 0) != (profile >= 0)).all()  # every frame one mouth, from one of the two
    assert (profile >= 0).any() and (sources >= 0).any()
    # A pause holds an input frame, never a profile mouth.
    engine.hold_pauses(np.zeros(len(jobs)))
    held = engine._hold_bank[engine._hold_bank >= 0]
    assert len(held) and engine._bank.from_input[held].all()
    engine.close()


def _profile_dir(tmp_path, meta_extra):
    from lipdub.motion.predictor import load_motion_model, save_motion_model

    folder = tmp_path / "profile"
    folder.mkdir()
    save_motion_model(load_motion_model(), folder / "motion.pt")
    meta = {"engine": "motion", "name": "profile-test", "weights": "motion.pt", **meta_extra}
    (folder / "profile.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("meta", [{}, {"mouth_bank": None}])
def test_a_profile_without_a_bank_still_loads(tmp_path, meta):
    from lipdub.engines import build_engine
    from lipdub.pipeline import SyncOptions

    engine = build_engine(SyncOptions(profile=_profile_dir(tmp_path, meta)))
    assert engine.name == "motion" and len(engine._bank) == 0
    engine.close()


def test_a_profile_with_its_bank_loads_it_and_a_damaged_one_is_one_line(tmp_path, profile_bank):
    from lipdub.engines import build_engine
    from lipdub.pipeline import SyncOptions
    from lipdub.render.profile_bank import BANK_FILE, save_bank

    folder = _profile_dir(tmp_path, {"mouth_bank": {"file": BANK_FILE, "entries": len(profile_bank)}})
    save_bank(profile_bank, folder / BANK_FILE)
    engine = build_engine(SyncOptions(profile=folder))
    assert len(engine._bank) == len(profile_bank) and not engine._bank.from_input.any()
    engine.close()
    (folder / BANK_FILE).write_bytes(b"not a bank")
    with pytest.raises(LipdubError) as error:
        build_engine(SyncOptions(profile=folder))
    assert "mouth bank" in str(error.value) and "\n" not in str(error.value)
    shutil.rmtree(folder)
