"""The motion engine on real footage: identity at zero motion, rest in silence, and whole runs.

The bundled lip motion model is trained (docs/model-card.md); these tests check the engine's
promises, not its quality figures, which come from `lipdub eval-set` and live in the model card.
"""

import numpy as np
import pytest

from tests.conftest import shared_file

pytestmark = pytest.mark.slow


class ZeroMotion:
    """A predictor that asks for no speech motion at all."""

    name = "zero"
    default_scale = 0.3
    rest = "closed"

    def predict_with_gate(self, samples, frames, fps):
        from lipdub.motion.shape import MOTION_POINTS

        return np.zeros((frames, len(MOTION_POINTS), 2)), np.zeros(frames)  # every frame a pause


def _prepared(path, predictor, seconds=None, speech_path=None):
    from lipdub.engines.base import FrameJob, RenderPlan
    from lipdub.engines.motion import MotionEngine
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.pipeline import SyncOptions, StageClock, track_input
    from lipdub.timeline import LengthMode, Timeline

    info = probe_video(path)
    engine = MotionEngine(predictor)
    faces = track_input(path, info.is_photo, info.fps, SyncOptions(), engine, StageClock(), info.frame_count)
    frames = len(faces)
    timeline = Timeline(LengthMode.cut, frames, frames)
    speech = np.zeros(int(frames / info.fps * 16000), np.float32)
    if speech_path is not None:
        from lipdub.media.audio import load_audio

        voice = load_audio(speech_path, sample_rate=16000)[: len(speech)]
        speech[: len(voice)] = voice
    engine.prepare(RenderPlan(info.fps, timeline, faces, speech, info.is_photo, (info.height, info.width)))
    images = [f.image for f in iter_frames(path)][:frames]
    jobs = [FrameJob(i, i, image, faces[i]) for i, image in enumerate(images)]
    return engine, jobs, faces


def test_zero_motion_gives_back_the_input_outside_the_mouth_opening():
    import cv2

    from lipdub.eval.mouth import LIP_INNER

    engine, jobs, faces = _prepared(shared_file("data/train/real/woman_flag.mp4"), ZeroMotion())
    engine.use_targets(engine.own_shapes())
    np.testing.assert_array_equal(engine.chosen_sources, np.arange(len(jobs)))
    outputs = engine.render(jobs)
    for job, out in zip(jobs, outputs):
        keep = np.ones(out.shape[:2], np.uint8)
        if job.face is not None:
            cv2.fillPoly(keep, [np.round(job.face.landmarks[list(LIP_INNER)]).astype(np.int32)], 0)
        diff = np.abs(out.astype(int) - job.image.astype(int)).max(axis=2)
        assert diff[keep.astype(bool)].max() <= 1
    engine.close()


def test_silence_gives_the_rest_shape_with_the_bundled_model():
    from lipdub.motion.predictor import load_motion_model

    from lipdub.motion.shape import MOTION_POINTS
    from lipdub.motion.transfer import CORNERS

    predictor = load_motion_model()
    assert np.abs(predictor.predict(np.zeros(32000, np.float32), 50, 25.0)).max() == 0.0
    engine, jobs, _ = _prepared(shared_file("data/train/real/woman_flag.mp4"), predictor)
    # Heights are the rest shape's but for the corners' slow height (the input's own expression,
    # keep_slow_expression), which the lip rings share (corner_spread): the jaw and chin are the
    # rest's exactly, and the opening too (facing lip points rise alike).
    from lipdub.motion import shape as S
    from lipdub.motion.transfer import corner_spread

    rest = engine._rest[engine._sources]
    still = [p for p in range(len(MOTION_POINTS)) if not corner_spread()[p].any()]
    assert len(still) == len(MOTION_POINTS) - 40 and not set(CORNERS) & set(still)
    np.testing.assert_allclose(engine._targets[:, still, 1], rest[:, still, 1])
    upper, lower = S.UPPER_INNER, S.LOWER_INNER
    np.testing.assert_allclose(engine._targets[:, lower, 1] - engine._targets[:, upper, 1],
                               rest[:, lower, 1] - rest[:, upper, 1], atol=1e-12)
    engine.close()


def test_a_pause_shows_one_closed_mouth_of_the_input():
    from lipdub.motion.shape import aperture

    engine, jobs, _ = _prepared(shared_file("data/train/real/woman_flag.mp4"), ZeroMotion())
    held = engine._hold_bank[engine._has_face]
    assert len(held) and (held == held[0]).all()  # the whole silent clip is one pause: one hold frame
    assert (engine._hold_weight == 1.0).all()  # the pause is the whole clip: nothing to fade from
    frame = engine._bank_frames[held[0]]
    openings = aperture(engine._shapes[engine._bank_frames])
    # the most closed mouth the bank has, nearer frames winning near-ties (`choose_hold_frame`)
    assert openings[held[0]] <= np.nanmin(openings) + 0.002
    outputs = engine.render(jobs[10:12])
    for out, job in zip(outputs, jobs[10:12]):
        assert out.shape == job.image.shape and engine.chosen_sources[job.index] == frame
    engine.close()


def test_a_pause_aimed_slightly_open_borrows_one_real_parted_mouth():
    """A hold whose target parts the lips (0.02-0.05 eye units) shows one real, slightly open mouth
    of the input (`choose_slit_frame`), not a painted slit, and no paint is drawn over it."""
    from unittest import mock

    import lipdub.engines.motion as M
    from lipdub.motion import shape as S

    engine, jobs, _ = _prepared(shared_file("data/train/real/woman_flag.mp4"), ZeroMotion())
    targets = engine._targets.copy()
    lower = [S.MOTION_POINTS.index(p) for p in S.LIP_INNER[1:10]]
    targets[:, lower, 1] += 0.04  # part the lips of the closed rest shape
    engine.use_targets(targets)
    engine.hold_pauses(np.zeros(len(targets)))
    wanted = S.aperture(engine._targets)
    assert ((wanted > 0.02) & (wanted <= 0.05)).mean() > 0.9
    slit = engine._hold_slit[engine._has_face]
    assert len(slit) and (slit == slit[0]).all() and slit[0] >= 0  # one mouth for the whole pause
    assert engine._bank.from_input[slit[0]]
    job = jobs[10]
    with mock.patch.object(M, "interior_alpha", wraps=M.interior_alpha) as alpha:
        engine.render([job])
    assert engine.chosen_sources[job.index] == engine._bank_frames[slit[0]]
    assert all(M.interior_alpha(*c.args, **c.kwargs) == 0 for c in alpha.call_args_list)
    engine.close()


def test_a_turning_head_keeps_the_target_mouth_on_its_own_mouth():
    """The target follows the head's quick sideways turns (`follow_fast_pose`): on a clip that
    turns to three-quarter view, the target lips sit beside the frame's own by 0.015 eye units rms
    (0.054 at most); one-second averages alone left 0.029 rms and 0.12 at most, and dragging the
    lower face that far folded the mesh into a seam."""
    from lipdub.motion import shape as S

    engine, _, _ = _prepared(shared_file("data/train/real/man_restaurant_noisy.mp4"), ZeroMotion())
    lips = [S.MOTION_POINTS.index(p) for p in S.LIP_OUTER]
    offset = engine._targets[:, lips, 0].mean(axis=1) - engine.own_shapes()[:, lips, 0].mean(axis=1)
    assert np.sqrt(np.nanmean(offset ** 2)) < 0.02
    assert np.nanmax(np.abs(offset)) < 0.08
    engine.close()


def test_bank_only_lends_frames_of_the_input():
    engine, jobs, _ = _prepared(shared_file("data/train/real/woman_flag.mp4"), ZeroMotion())
    rng = np.random.default_rng(0)
    engine.use_targets(engine.own_shapes() + rng.normal(scale=0.02, size=engine.own_shapes().shape))
    assert ((engine.chosen_sources >= 0) & (engine.chosen_sources < len(jobs))).all()
    engine.close()


def test_sync_video_and_photo_with_the_default_engine(tmp_path):
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.pipeline import sync

    audio = shared_file("data/audio/english_male_1.wav")
    face = shared_file("data/train/real/woman_flag.mp4")
    out = tmp_path / "video.mp4"
    result = sync(face, audio, out)
    from lipdub.motion.predictor import default_motion_model_name

    assert result.model == default_motion_model_name()
    assert out.is_file() and (out.stat().st_mode & 0o777) != 0
    info = probe_video(out)
    assert (info.width, info.height) == (probe_video(face).width, probe_video(face).height)
    assert result.frames_with_face == result.frames

    photo = shared_file("data/photos/echomimic_a.png")
    out_photo = tmp_path / "photo.mp4"
    result = sync(photo, audio, out_photo)
    frames = [f.image for f in iter_frames(out_photo)]
    assert len(frames) == result.frames
    # The mouth moves: the lower face differs between frames, while a corner of the picture never does.
    spread = np.std(np.stack([f[:, :, 0].astype(float) for f in frames[:60]]), axis=0)
    h, w = spread.shape
    assert spread[: h // 8, : w // 8].max() < 2.0
    assert spread.max() > 10.0


def test_the_same_dub_twice_gives_the_same_file(tmp_path):
    """The renderer draws the same frames in any thread order, and the encoder must not add
    noise of its own (`NO_MBTREE` in lipdub.media.encode): same input, same bytes."""
    from lipdub.pipeline import sync

    face, audio = shared_file("data/train/real/woman_flag.mp4"), shared_file("data/audio/french1.wav")
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    sync(face, audio, first, render_threads=2)
    sync(face, audio, second, render_threads=2)
    assert first.read_bytes() == second.read_bytes()


def test_frames_drawn_in_threads_equal_frames_drawn_in_turn():
    """Render threads change only the speed: the same targets give the same pictures and records."""
    from dataclasses import replace

    engine, jobs, _ = _prepared(shared_file("data/train/real/woman_flag.mp4"), ZeroMotion())
    targets = engine.own_shapes().copy()
    targets[:, :, 1] += 0.03 * np.sin(np.arange(len(targets)) / 2.0)[:, None]  # move the mouth up and down
    jobs = jobs[:24]
    outputs = {}
    for threads in (1, 2):
        engine.options = replace(engine.options, render_threads=threads)
        engine.use_targets(targets)
        outputs[threads] = (engine.render(jobs), list(engine.target_aperture[:24]), engine.chosen_sources[:24].copy())
    for a, b in zip(outputs[1][0], outputs[2][0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(outputs[1][1], outputs[2][1])
    np.testing.assert_array_equal(outputs[1][2], outputs[2][2])
    engine.close()


def test_a_grin_wider_than_any_closed_mouth_keeps_its_teeth_through_a_pause():
    """silent/woman_smiling_expressive.mp4 opens on a broad grin (0.69-0.73 eye units wide, teeth
    showing); her closed mouths are at most 0.58 wide. Dubbed with japan2.wav, whose first 0.6 s
    are silent, the pause keeps the grin open (`keep_unclosable_openings`) and is not held on a
    narrow closed mouth (`fits_hold_width`), whose lips, stretched to the grin, became a one-pixel
    upper lip."""
    from lipdub.motion import shape as S
    from lipdub.motion.predictor import load_motion_model

    engine, jobs, _ = _prepared(shared_file("data/silent/woman_smiling_expressive.mp4"), load_motion_model(),
                                speech_path=shared_file("data/audio/japan2.wav"))
    grin = slice(0, 10)
    assert (engine._hold_bank[grin] < 0).all()
    assert (S.aperture(engine._targets[grin]) > 0.1).all()
    # later, where she talks with ordinary widths, the rest is closed as the model was trained
    assert np.median(S.aperture(engine._rest[40:60])) < 0.02
    engine.close()
