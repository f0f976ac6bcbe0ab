"""Speech -> lower-face motion for every output frame, with the trained lip motion model.

`MotionPredictor` wraps the network, its PCA basis and the recipe its features were made with
(normalisation, window, causal look-ahead), all read from one checkpoint, so a caller only hands
over 16 kHz samples and a frame rate. Its output is motion in *articulation units* (the speaker's
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lipdub.errors import LipdubError
from lipdub.media.features import MelConfig, melspectrogram
from lipdub.models.lip_motion import LipMotionNet
from lipdub.motion.features import WINDOW_COLUMNS, frame_windows, normalise_mel
from lipdub.motion.shape import MOTION_POINTS, MotionBasis

logger = logging.getLogger(__name__)

MEL = MelConfig()
GATE_OPEN = 1.5
GATE_SHUT = 2.5
DEFAULT_MOTION_MODEL = "lipdub-motion"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "motion"


def frame_loudness(mel: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """(frames,) mean raw-mel level of the 5 columns (62 ms) around each frame."""
    windows = frame_windows(mel, frames, fps, MEL, columns=5)
    return windows.mean(axis=(1, 2))


def speech_gate(loudness: np.ndarray, open_below_peak: float = GATE_OPEN, shut_below_peak: float = GATE_SHUT,
                widen: int = 2) -> np.ndarray:
    """(T,) 0..1 per frame: how much speech motion to allow (see the module docstring)."""
    loudness = np.asarray(loudness, np.float64)
    if len(loudness) == 0:
        return loudness
    peak = np.percentile(loudness, 90)
    if peak <= -3.9:  # the whole track is silence
        return np.zeros_like(loudness)
    t = np.clip((loudness - (peak - shut_below_peak)) / (shut_below_peak - open_below_peak), 0.0, 1.0)
    gate = t * t * (3.0 - 2.0 * t)
    if widen > 0:
        padded = np.pad(gate, widen, mode="edge")
        gate = np.max(np.stack([padded[i: i + len(gate)] for i in range(2 * widen + 1)]), axis=0)
    return gate


@dataclass
class MotionPredictor:
    """A trained lip motion model ready to run (load with `load_motion_model`)."""

    name: str
    network: LipMotionNet
    basis: MotionBasis
    default_scale: float
    gain: float = 1.0
    normalise: bool = True
    causal: bool = False
    lookahead: int = 8

    def predict(self, samples: np.ndarray, frames: int, fps: float) -> np.ndarray:
        """(frames, P, 2) speech motion in articulation units (multiply by a speaker's scale)."""
        samples = np.asarray(samples, np.float32)
        if samples.size == 0:
            raise LipdubError("the audio has no samples")
        raw = melspectrogram(samples, MEL)
        mel = normalise_mel(raw) if self.normalise else raw
        windows = frame_windows(mel, frames, fps, MEL, WINDOW_COLUMNS,
                                lookahead=self.lookahead if self.causal else None)
        self.network.eval()
        coefficients = []
        with torch.no_grad():
            # Chunks of 1000 frames (40 s at 25 fps) with 50 frames of context each side.
            step, context = 1000, 50
            for start in range(0, frames, step):
                lo, hi = max(0, start - context), min(frames, start + step + context)
                out = self.network(torch.from_numpy(windows[lo:hi])[None])[0].numpy()
                coefficients.append(out[start - lo: start - lo + min(step, frames - start)])
        motion = self.gain * self.basis.decode(np.concatenate(coefficients)) if coefficients else np.zeros((0, len(MOTION_POINTS) * 2))
        gate = speech_gate(frame_loudness(raw, frames, fps))
        return (motion * gate[:, None]).reshape(frames, len(MOTION_POINTS), 2)


def load_motion_model(name_or_path: str | Path | None = None) -> MotionPredictor:
    """The bundled motion model (default), another bundled name, or a checkpoint file."""
    if name_or_path is None:
        name_or_path = DEFAULT_MOTION_MODEL
    path = Path(name_or_path)
    if not path.suffix:
        path = WEIGHTS_DIR / f"{name_or_path}.pt"
    if not path.is_file():
        raise LipdubError(f"motion model not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        recipe = state["recipe"]
        network = LipMotionNet(recipe["coefficients"], recipe["width"], causal=recipe.get("causal", False))
        network.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, OSError, ValueError) as error:
        raise LipdubError(f"{path} is not a lipdub motion model: {error}") from error
    return MotionPredictor(path.stem, network, MotionBasis.from_dict(state["basis"]), float(state["default_scale"]),
                           gain=float(state.get("gain", 1.0)), normalise=recipe.get("normalise_mel", True), causal=recipe.get("causal", False),
                           lookahead=recipe.get("lookahead", 8))
