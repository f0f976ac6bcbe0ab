"""Speech -> lower-face motion for every output frame, with the trained lip motion model.

`MotionPredictor` wraps the network, its PCA basis and the recipe its features were made with
(log-mel or frozen Whisper encoder states, normalisation, window, causal look-ahead), all read
from one checkpoint, so a caller only hands over 16 kHz samples and a frame rate. A member trained
on Whisper states (recipe ``features="whisper"``) needs the ``lipdub[whisper]`` extra. Its output is motion in *articulation units* (the speaker's
scale divides it out in training); `lipdub.motion.transfer` multiplies the speaker's scale back in.

Silence gives the rest shape, by construction rather than by hope: the predicted motion is
multiplied by a speech gate (`speech_gate`) computed from the loudness of the frame's own audio
relative to the track's loud level, so a pause closes the mouth even where the network would
still mumble. The gate is deliberately simple and documented: 1 within `GATE_OPEN` mel units
(about 19 dB) of the track's 90th-percentile level, 0 below `GATE_SHUT` (about 31 dB), smooth
in between, then widened by 2 frames each side so plosive onsets are not clipped.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lipdub.errors import LipdubError
from lipdub.fileio import AtomicFile
from lipdub.media.features import MelConfig, melspectrogram
from lipdub.models.checkpoint import weights_file
from lipdub.models.lip_motion import LipMotionNet
from lipdub.motion.features import (FEATURES, SILENCE, WHISPER_COLUMNS_PER_SECOND, WHISPER_FILL, WHISPER_WINDOW_COLUMNS,
                                    WINDOW_COLUMNS, feature_channels, feature_window, frame_windows, is_whisper, normalise_mel)
from lipdub.motion.shape import MOTION_POINTS, MotionBasis, gaussian_smooth

logger = logging.getLogger(__name__)

MEL = MelConfig()
GATE_OPEN = 1.5
GATE_SHUT = 2.5
#: Frames the speech gate is widened by on each side (plosive onsets), and the mel columns around a
#: frame its loudness is the mean of (62 ms).
GATE_WIDEN = 2
LOUDNESS_COLUMNS = 5
DEFAULT_MOTION_MODEL = "lipdub-motion"
#: The default where the ``lipdub[whisper]`` extra is installed (and this model is bundled).
WHISPER_MOTION_MODEL = "lipdub-motion-whisper"
#: The default where both Whisper extras are installed (``lipdub[whisper,whisper-base]``).
TINY_BASE_MOTION_MODEL = "lipdub-motion-whisper-tiny-base"
#: Bundled models, best first: the default is the first one this installation can run.
MOTION_MODEL_PREFERENCE = (TINY_BASE_MOTION_MODEL, WHISPER_MOTION_MODEL, DEFAULT_MOTION_MODEL)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "motion"


def frame_loudness(mel: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """(frames,) mean raw-mel level of the 5 columns (62 ms) around each frame."""
    windows = frame_windows(mel, frames, fps, MEL, columns=LOUDNESS_COLUMNS)
    return windows.mean(axis=(1, 2))


def speech_gate(loudness: np.ndarray, open_below_peak: float = GATE_OPEN, shut_below_peak: float = GATE_SHUT,
                widen: int = GATE_WIDEN, peak: float | None = None) -> np.ndarray:
    """(T,) 0..1 per frame: how much speech motion to allow (see the module docstring).

    ``peak``: the loud level the thresholds are measured from; None = the 90th percentile of
    ``loudness`` (the whole track's). A stream passes its running estimate
    (`lipdub.motion.streaming`)."""
    loudness = np.asarray(loudness, np.float64)
    if len(loudness) == 0:
        return loudness
    if peak is None:
        peak = np.percentile(loudness, 90)
    if peak <= -3.9:  # the whole track is silence
        return np.zeros_like(loudness)
    t = np.clip((loudness - (peak - shut_below_peak)) / (shut_below_peak - open_below_peak), 0.0, 1.0)
    gate = t * t * (3.0 - 2.0 * t)
    if widen > 0:
        padded = np.pad(gate, widen, mode="edge")
        gate = np.max(np.stack([padded[i: i + len(gate)] for i in range(2 * widen + 1)]), axis=0)
    return gate


class SpeechFeatures:
    """One speech track's feature tracks, each computed once however many members read it.

    The raw mel is always made (the speech gate reads it); the states of a Whisper variant only
    when a member asks, through ``whisper_encoder(features)``, the predictor's encoder of that
    variant (loaded once per predictor, not per call).
    """

    def __init__(self, samples: np.ndarray, whisper_encoder=None):
        self.samples = samples
        self.raw_mel = melspectrogram(samples, MEL)
        self._whisper_encoder = whisper_encoder
        self._states: dict[str, np.ndarray] = {}

    def whisper(self, features: str = "whisper") -> np.ndarray:
        """(C, S) states of the Whisper variant ``features`` over the whole track, 50 a second."""
        if features not in self._states:
            if self._whisper_encoder is None:
                raise LipdubError("this motion model reads Whisper features, but no encoder was loaded")
            encoder = self._whisper_encoder(features)
            self._states[features] = np.asarray(encoder.features(self.samples), np.float32).T
        return self._states[features]


@dataclass
class MotionMember:
    """One trained network with the basis and feature recipe it was trained with."""

    network: LipMotionNet
    basis: MotionBasis
    recipe: dict

    @property
    def features(self) -> str:
        return self.recipe.get("features", "mel")

    @property
    def rest(self) -> str:
        """What its motion is measured from (`lipdub.motion.shape.video_rest`); runs from before
        the recipe had the field used the envelope."""
        return self.recipe.get("rest", "envelope")

    def motion(self, features: SpeechFeatures, frames: int, fps: float) -> np.ndarray:
        """(frames, P * 2) motion in articulation units, before gain, smoothing and gate."""
        recipe = self.recipe
        if is_whisper(self.features):
            track, columns, per_second, fill, lookahead = (features.whisper(self.features), WHISPER_WINDOW_COLUMNS,
                                                           WHISPER_COLUMNS_PER_SECOND, WHISPER_FILL, None)
        else:
            raw_mel = features.raw_mel
            track = normalise_mel(raw_mel, standardise=recipe.get("standardise_mel", False)) \
                if recipe.get("normalise_mel", True) else raw_mel
            columns, per_second, fill = WINDOW_COLUMNS, None, SILENCE
            lookahead = recipe.get("lookahead", 8) if recipe.get("causal", False) else None
        self.network.eval()
        coefficients = []
        with torch.no_grad():
            # Chunks of 1000 frames (40 s at 25 fps) with 50 frames of context each side; only a
            # chunk's windows are ever in memory.
            step, context = 1000, 50
            for start in range(0, frames, step):
                lo, hi = max(0, start - context), min(frames, start + step + context)
                windows = frame_windows(track, hi, fps, MEL, columns, lookahead=lookahead, fill=fill, first=lo,
                                        columns_per_second=per_second)
                out = self.network(torch.from_numpy(windows)[None])[0].numpy()
                coefficients.append(out[start - lo: start - lo + min(step, frames - start)])
        return self.basis.decode(np.concatenate(coefficients))


@dataclass
class MotionPredictor:
    """A trained lip motion model ready to run (load with `load_motion_model`).

    A model may be an ensemble: its members' predictions (decoded to point motion, so their PCA
    bases need not agree in sign) are averaged, which on held-out speakers beat any single member
    (docs/model-card.md). ``gain`` undoes the regression's shrinkage (see
    `lipdub.train.motion.amplitude_gain`); ``smoothing`` is a Gaussian over frames (sigma).
    """

    name: str
    members: list[MotionMember]
    default_scale: float
    gain: float = 1.0
    smoothing: float = 1.0

    def __post_init__(self) -> None:
        self._encoders: dict = {}

    @property
    def rest(self) -> str:
        """The rest kind all its members' motion is measured from (`lipdub.motion.shape.video_rest`)."""
        return common_rest(self.members, f"motion model {self.name}")

    @property
    def needs_whisper(self) -> bool:
        return any(is_whisper(member.features) for member in self.members)

    def whisper_encoder(self, features: str = "whisper"):
        """The frozen encoder of the Whisper variant ``features`` its members read (loaded on first use)."""
        if features not in self._encoders:
            from lipdub.media.speech_encoder import WHISPER_VARIANTS, WhisperEncoder

            variant = WHISPER_VARIANTS[features]
            try:
                self._encoders[features] = WhisperEncoder(variant=variant)
            except LipdubError:
                raise LipdubError(f"motion model {self.name} reads Whisper {variant.name} features: "
                                  f"{variant.install_hint}") from None
        return self._encoders[features]

    def predict(self, samples: np.ndarray, frames: int, fps: float) -> np.ndarray:
        """(frames, P, 2) speech motion in articulation units (multiply by a speaker's scale)."""
        return self.predict_with_gate(samples, frames, fps)[0]

    def predict_with_gate(self, samples: np.ndarray, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
        """`predict`'s motion and the (frames,) speech gate it applied (0 where the speech pauses,
        1 where it speaks), from one mel spectrogram of the track."""
        samples = np.asarray(samples, np.float32)
        if samples.size == 0:
            raise LipdubError("the audio has no samples")
        if frames <= 0:
            return np.zeros((0, len(MOTION_POINTS), 2)), np.zeros(0)
        features = SpeechFeatures(samples, self.whisper_encoder)
        motion = np.mean([member.motion(features, frames, fps) for member in self.members], axis=0)
        motion = self.gain * gaussian_smooth(motion, self.smoothing)
        gate = speech_gate(frame_loudness(features.raw_mel, frames, fps))
        return (motion * gate[:, None]).reshape(frames, len(MOTION_POINTS), 2), gate


def common_rest(members: list[MotionMember], what: str) -> str:
    """The one rest kind ``members`` were trained on; a one-line error naming ``what`` if they mix."""
    kinds = {member.rest for member in members}
    if len(kinds) != 1:
        raise LipdubError(f"{what} mixes members trained on different rests (recipe `rest`): {sorted(kinds)}")
    return kinds.pop()


class AnticipatedMotion:
    """One `MotionPredictor.predict_with_gate` call started early, in a background thread.

    Why: the motion depends only on the speech, which is known before the tracking pass, while the
    tracking pass (Face Mesh on every frame) leaves CPU time free. `lipdub.pipeline` guesses the
    output length from the probe's frame count and starts the prediction then; `take` hands it over
    only if the guess was right (the same samples, frames and fps), so a wrong guess costs nothing
    but the wasted work.
    """

    def __init__(self, predictor: MotionPredictor, samples: np.ndarray, frames: int, fps: float):
        from concurrent.futures import ThreadPoolExecutor

        self._samples, self._frames, self._fps = samples, frames, fps
        executor = ThreadPoolExecutor(1, thread_name_prefix="lipdub-motion")
        self._future = executor.submit(predictor.predict_with_gate, samples, frames, fps)
        executor.shutdown(wait=False)

    def take(self, samples: np.ndarray, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The early prediction if it was made for exactly these arguments, else None. Waits for
        it either way (never two predictions at once); its error is raised only when it matches."""
        matches = frames == self._frames and fps == self._fps and np.array_equal(samples, self._samples)
        error = self._future.exception()
        if not matches:
            return None
        if error is not None:
            raise error
        return self._future.result()


def member_from_state(state: dict) -> MotionMember:
    """A `MotionMember` from a training checkpoint's (or an ensemble entry's) dict."""
    recipe = state["recipe"]
    features = recipe.get("features", "mel")
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}")
    network = LipMotionNet(recipe["coefficients"], recipe["width"], causal=recipe.get("causal", False),
                           in_bands=feature_channels(features, MEL.n_mels), pool=recipe.get("pool", "mean"),
                           window=feature_window(features))
    network.load_state_dict(state["state_dict"])
    return MotionMember(network, MotionBasis.from_dict(state["basis"]), recipe)


def whisper_extra_installed(features: str = "whisper") -> bool:
    """Whether motion models reading the Whisper variant ``features`` can run here (ctranslate2 +
    that variant's model package)."""
    import importlib.util

    from lipdub.media.speech_encoder import WHISPER_VARIANTS, bundled_model_dir

    try:
        if importlib.util.find_spec("ctranslate2") is None:
            return False
        bundled_model_dir(WHISPER_VARIANTS[features])
    except (LipdubError, ImportError, ValueError, AttributeError):  # missing, or blocked in sys.modules
        return False
    return True


def bundled_model_features(name: str) -> set[str]:
    """The feature kinds the members of bundled motion model ``name`` read, from its card."""
    import json

    card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    return {recipe.get("features", "mel") for recipe in card.get("recipes", [])} or {"mel"}


def default_motion_model_name() -> str:
    """The first of `MOTION_MODEL_PREFERENCE` that ships and whose Whisper variants are all
    installed; `DEFAULT_MOTION_MODEL` (mel only, no extra) at the latest: the best model the
    installation can run."""
    for name in MOTION_MODEL_PREFERENCE:
        if name == DEFAULT_MOTION_MODEL:
            break
        if not (WEIGHTS_DIR / f"{name}.pt").is_file():
            continue
        try:
            needed = {kind for kind in bundled_model_features(name) if is_whisper(kind)}
        except (OSError, ValueError):
            continue  # no readable card: do not guess what it needs
        if all(whisper_extra_installed(kind) for kind in needed):
            return name
    return DEFAULT_MOTION_MODEL


def load_motion_model(name_or_path: str | Path | None = None) -> MotionPredictor:
    """The bundled motion model (default), another bundled name, or a checkpoint file.

    A training run's ``checkpoint.pt`` loads as a one-member model; an exported ensemble
    (``lipdub train export-motion``) as all its members.
    """
    if name_or_path is None:
        name_or_path = default_motion_model_name()
        logger.info("motion model: %s", name_or_path)
    path = weights_file(name_or_path, WEIGHTS_DIR, "motion model")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict):
            raise TypeError(f"holds a {type(state).__name__}, not a checkpoint dict")
        members = [member_from_state(m) for m in state.get("members", [state])]
        for features in sorted({member.features for member in members if is_whisper(member.features)}):
            _check_whisper_extra(path, features)
        common_rest(members, f"motion model {path.stem}")  # a one-line error now rather than mid-dub
        return MotionPredictor(path.stem, members, float(state["default_scale"]), gain=float(state.get("gain", 1.0)),
                               smoothing=float(state.get("smoothing", 1.0 if "members" in state else 0.0)))
    except (KeyError, RuntimeError, OSError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as error:
        raise LipdubError(f"{path} is not a lipdub motion model: {error}") from error


def save_motion_model(predictor: MotionPredictor, path: Path) -> None:
    """Write ``predictor`` in the bundled format (`load_motion_model` reads it): float16 weights."""
    members = [{"state_dict": {k: v.half() if v.is_floating_point() else v
                               for k, v in member.network.state_dict().items()},
                "basis": member.basis.to_dict(), "recipe": member.recipe} for member in predictor.members]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path, overwrite=True) as handle:
        torch.save({"members": members, "default_scale": predictor.default_scale, "gain": predictor.gain,
                    "smoothing": predictor.smoothing}, handle.file)


def _check_whisper_extra(path: Path, features: str) -> None:
    """Fail at load, in one line, when a Whisper-reading model cannot run here (not mid-dub)."""
    from lipdub.media.speech_encoder import WHISPER_VARIANTS

    variant = WHISPER_VARIANTS[features]
    if not whisper_extra_installed(features):
        raise LipdubError(f"motion model {path.stem} reads Whisper {variant.name} features: {variant.install_hint}")
