"""One option picks the generator: a bundled model, a user's Wav2Lip checkpoint, or a profile.

Like a diffusers pipeline's ``from_pretrained``, a single call turns a name or a path into a
ready network plus the facts needed to feed it (:class:`ModelSpec`): the architecture, the crop
size, the channel order it was trained in, the audio features. The pipeline only ever talks to the
resulting :class:`Generator`, so it never needs to know which network it is running.

Three sources, exactly one at a time:

- ``checkpoint``: a ``wav2lip.pth`` / ``wav2lip_gan.pth`` (or one of our compact checkpoints); the
  architecture is recognised from the tensor names and shapes, never guessed from the file name.
- ``profile``: a directory with ``profile.json`` (a ModelSpec as JSON plus ``"weights"``: the
  weights file name in that directory), e.g. a model fine-tuned on one person.
- ``model``: the name of a model installed in ``lipdub/weights/`` as ``<name>.pt`` +
  ``<name>.json``; ``None`` means the default, ``lipdub-compact``.

There is no silent fallback: a missing model is an error, never random weights that would
produce a plausible-looking blur.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lipdub.errors import LipdubError
from lipdub.media.features import MelConfig
from lipdub.models.checkpoint import load_state_dict
from lipdub.models.compact import BASE_CHANNELS, CompactGenerator
from lipdub.models.discriminator import VisualQualityDiscriminator
from lipdub.models.syncnet import SyncNet
from lipdub.models.wav2lip import Wav2Lip

logger = logging.getLogger(__name__)

ARCHITECTURES = ("wav2lip", "compact")
CHANNEL_ORDERS = ("rgb", "bgr")
DEFAULT_MODEL = "lipdub-compact"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PROFILE_FILE = "profile.json"

# The first convolution of the compact face encoder; its out-channels reveal the width.
_COMPACT_WIDTH_KEY = "face_encoder.0.0.conv_block.0.weight"


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline must know to feed a generator and read its output."""

    name: str
    architecture: str  # "wav2lip" | "compact"
    img_size: int = 96
    channel_order: str = "bgr"  # Wav2Lip checkpoints were trained on cv2 BGR frames; ours use "rgb"
    mel: MelConfig = field(default_factory=MelConfig)
    description: str = ""
    width: float = 1.0  # compact only: the channel multiplier

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; known: {', '.join(ARCHITECTURES)}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")
        if self.architecture == "wav2lip" and self.img_size != 96:
            raise ValueError("the Wav2Lip architecture only works on 96 px crops")
        if self.img_size <= 0 or self.img_size % 16:
            raise ValueError(f"img_size must be a positive multiple of 16, got {self.img_size}")

    def to_dict(self) -> dict:
        """JSON-ready form (the ``mel`` recipe nested as a dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not be ignored)."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model spec field(s): {', '.join(unknown)}")
        if isinstance(data.get("mel"), dict):
            data["mel"] = MelConfig(**data["mel"])
        return cls(**data)


def build_network(spec: ModelSpec) -> nn.Module:
    """A freshly initialised (untrained) network for ``spec``."""
    if spec.architecture == "wav2lip":
        return Wav2Lip()
    if spec.architecture == "compact":
        return CompactGenerator(width=spec.width)
    raise ValueError(f"unknown architecture {spec.architecture!r}")


# --- recognising a state dict ----------------------------------------------------------------------


def _layout(factory) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a network, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        net = factory()
    return {name: tuple(t.shape) for name, t in net.state_dict().items()}


def _mismatch(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> tuple[int, str]:
    """(number of problems, one-line summary) of ``state`` against an expected layout."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} with other shapes (e.g. {k}: {list(state[k].shape)} vs {list(expected[k])})")
    return len(missing) + len(unexpected) + len(wrong), ", ".join(parts)


def _compact_width(state: dict[str, torch.Tensor]) -> float:
    weight = state.get(_COMPACT_WIDTH_KEY)
    if weight is None or weight.dim() != 4:
        return 1.0
    return weight.shape[0] / BASE_CHANNELS


def infer_spec(state: dict[str, torch.Tensor], name: str) -> ModelSpec:
    """The spec of the generator whose layout ``state`` matches exactly, else LipdubError."""
    width = _compact_width(state)
    candidates = {
        "wav2lip": (_layout(Wav2Lip), ModelSpec(name, "wav2lip", channel_order="bgr",
                                                 description="Wav2Lip checkpoint")),
        "compact": (_layout(lambda: CompactGenerator(width)),
                    ModelSpec(name, "compact", channel_order="rgb", width=width,
                              description="lipdub compact checkpoint")),
    }
    results = {}
    for arch, (layout, spec) in candidates.items():
        problems, summary = _mismatch(state, layout)
        if problems == 0:
            return spec
        results[arch] = (problems, summary)

    # Not a generator we know. Name the common mix-up (the other Wav2Lip files) plainly.
    for label, factory in (("the lip-sync expert (SyncNet)", SyncNet),
                           ("the visual quality discriminator", VisualQualityDiscriminator)):
        if _mismatch(state, _layout(factory))[0] == 0:
            raise LipdubError(f"checkpoint {name!r} is {label}, not a generator; "
                              "pass wav2lip.pth or wav2lip_gan.pth")
    arch, (problems, summary) = min(results.items(), key=lambda item: item[1][0])
    raise LipdubError(f"checkpoint {name!r} fits no known generator; closest is {arch}: {summary}")


# --- the generator the pipeline uses -------------------------------------------------------------


class Generator:
    """A loaded network + its spec: uint8 RGB crops and mel windows in, uint8 RGB crops out."""

    def __init__(self, network: nn.Module, spec: ModelSpec, device: str = "cpu"):
        self.spec = spec
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    def __repr__(self) -> str:
        return f"Generator({self.spec.name!r}, {self.spec.architecture}, {self.device})"

    def generate(self, mels: np.ndarray, targets: np.ndarray, references: np.ndarray) -> np.ndarray:
        """Re-draw the lower half of each target face to match its mel window.

        mels: (B, n_mels, window_frames) float32; targets, references: (B, S, S, 3) uint8 RGB
        with S = ``spec.img_size``. The target's lower half (rows S//2:) is zeroed, as in Wav2Lip,
        so the network must paint the mouth from the audio; the reference (another frame of the
        same face) supplies identity and texture. Returns (B, S, S, 3) uint8 RGB.
        """
        size, mel_cfg = self.spec.img_size, self.spec.mel
        batch = len(mels)
        expected_crops = (batch, size, size, 3)
        if mels.shape != (batch, mel_cfg.n_mels, mel_cfg.window_frames):
            raise ValueError(f"mels must be (B, {mel_cfg.n_mels}, {mel_cfg.window_frames}), got {mels.shape}")
        for label, crops in (("targets", targets), ("references", references)):
            if crops.shape != expected_crops or crops.dtype != np.uint8:
                raise ValueError(f"{label} must be uint8 {expected_crops}, got {crops.dtype} {crops.shape}")
        if batch == 0:
            return np.zeros(expected_crops, dtype=np.uint8)

        masked = targets.copy()
        masked[:, size // 2 :] = 0  # (B, S, S, 3): mouth half blanked
        faces = np.concatenate([masked, references], axis=3)  # (B, S, S, 6) RGB RGB
        if self.spec.channel_order == "bgr":
            faces = faces[..., [2, 1, 0, 5, 4, 3]]
        face_t = torch.from_numpy(np.ascontiguousarray(faces)).to(self.device)
        face_t = face_t.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 6, S, S) in [0, 1]
        mel_t = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)).to(self.device)
        mel_t = mel_t.unsqueeze(1)  # (B, 1, n_mels, window_frames)

        with torch.inference_mode():
            out = self.network(mel_t, face_t)  # (B, 3, S, S) in [0, 1]
        out = out.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        images = out.permute(0, 2, 3, 1).cpu().numpy()  # (B, S, S, 3)
        if self.spec.channel_order == "bgr":
            images = images[..., ::-1]
        return np.ascontiguousarray(images)


def _instantiate(spec: ModelSpec, state: dict[str, torch.Tensor], source: str, device: str) -> Generator:
    try:
        torch_device = torch.device(device)
    except RuntimeError as error:
        raise LipdubError(f"unknown device {device!r}") from error
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise LipdubError(f"device {device!r} requested but no CUDA GPU is available")
    network = build_network(spec)
    problems, summary = _mismatch(state, _layout(lambda: build_network(spec)))
    if problems:
        raise LipdubError(f"weights in {source} do not fit the {spec.architecture} architecture: {summary}")
    network.load_state_dict(state, strict=True)
    logger.info("loaded generator %s (%s) from %s", spec.name, spec.architecture, source)
    return Generator(network, spec, device)


# --- profiles and bundled models -------------------------------------------------------------------


def _read_spec_file(path: Path, default_weights: str | None) -> tuple[ModelSpec, Path]:
    """(spec, weights path) from a profile.json / bundled <name>.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise LipdubError(f"{path} not found") from error
    except (OSError, ValueError) as error:
        raise LipdubError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise LipdubError(f"{path} must hold a JSON object")
    weights = data.pop("weights", default_weights)
    if not isinstance(weights, str) or not weights:
        raise LipdubError(f"{path} does not name its weights file (\"weights\": \"...\")")
    try:
        spec = ModelSpec.from_dict(data)
    except (TypeError, ValueError) as error:
        raise LipdubError(f"invalid model spec in {path}: {error}") from error
    weights_path = path.parent / weights
    if not weights_path.is_file():
        raise LipdubError(f"weights file {weights_path} named in {path} is missing")
    return spec, weights_path


def bundled_models() -> list[ModelSpec]:
    """The models installed in ``lipdub/weights/`` (``<name>.json`` beside ``<name>.pt``)."""
    if not WEIGHTS_DIR.is_dir():
        return []
    specs = []
    for spec_path in sorted(WEIGHTS_DIR.glob("*.json")):
        try:
            spec, _ = _read_spec_file(spec_path, default_weights=f"{spec_path.stem}.pt")
        except LipdubError as error:
            logger.warning("ignoring bundled model %s: %s", spec_path.name, error)
            continue
        specs.append(spec)
    return specs


def resolve_generator(
    model: str | None = None,
    checkpoint: Path | str | None = None,
    profile: Path | str | None = None,
    device: str = "cpu",
) -> Generator:
    """Turn exactly one of ``model`` / ``checkpoint`` / ``profile`` into a ready Generator."""
    chosen = [label for label, value in (("--model", model), ("--checkpoint", checkpoint),
                                         ("--profile", profile)) if value is not None]
    if len(chosen) > 1:
        raise LipdubError(f"choose one generator source, not {' and '.join(chosen)}")

    if checkpoint is not None:
        path = Path(checkpoint)
        state = load_state_dict(path)
        spec = infer_spec(state, name=path.stem)
        return _instantiate(spec, state, str(path), device)

    if profile is not None:
        directory = Path(profile)
        if not directory.is_dir():
            raise LipdubError(f"profile directory not found: {directory}")
        spec, weights = _read_spec_file(directory / PROFILE_FILE, default_weights=None)
        return _instantiate(spec, load_state_dict(weights), str(weights), device)

    name = model or DEFAULT_MODEL
    spec_path = WEIGHTS_DIR / f"{name}.json"
    if not spec_path.is_file():
        installed = [spec.name for spec in bundled_models()]
        if not installed:
            raise LipdubError(
                f"no bundled model is installed (looked for {name!r} in {WEIGHTS_DIR}); "
                "pass --checkpoint path/to/wav2lip_gan.pth"
            )
        raise LipdubError(f"unknown model {name!r}; installed: {', '.join(installed)}")
    spec, weights = _read_spec_file(spec_path, default_weights=f"{name}.pt")
    return _instantiate(spec, load_state_dict(weights), str(weights), device)
