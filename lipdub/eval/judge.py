"""The SyncNet judge: embeds 5-frame mouth windows and their audio windows for the sync metrics.

A judge is a trained lip-sync expert. Scores from different judges are not comparable (each has its
own embedding space), so every report names the judge it used. lipdub's own trained expert is the
default; ``--judge`` also takes a user's Wav2Lip ``lipsync_expert.pth``.

Inputs follow the Wav2Lip expert's protocol: the lower half (rows 48..95) of five consecutive
96x96 face crops, stacked along channels (15 x 48 x 96, values in [0, 1]), against the 16-frame
mel window that starts at the first of the five frames.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from lipdub.errors import LipdubError
from lipdub.media.features import MelConfig

logger = logging.getLogger(__name__)

#: Frames per judged window, as in Wav2Lip's expert and syncnet_python.
WINDOW_FRAMES = 5
#: Face crop size the judge reads (it sees the lower half: 48 x 96).
CROP_SIZE = 96
#: lipdub's own expert: ``lipdub/weights/experts/<name>.pt`` (+ ``.json`` with its card facts). It
#: lives in its own folder so the generator registry never mistakes it for a generator.
BUNDLED_JUDGE = "lipdub-syncnet"


def bundled_judge_path() -> Path | None:
    """Path of the bundled expert's weights, or None when this install has none."""
    path = Path(str(files("lipdub") / "weights" / "experts" / f"{BUNDLED_JUDGE}.pt"))
    return path if path.is_file() else None


@dataclass
class SyncJudge:
    """A loaded lip-sync expert and how to feed it."""

    name: str
    source: str
    network: object  # torch.nn.Module
    channel_order: str = "rgb"
    mel: MelConfig = MelConfig()

    def embed(self, lower_faces: np.ndarray, mels: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings for ``N`` windows.

        lower_faces: (N, 5, 48, 96, 3) uint8 RGB lower halves of consecutive crops.
        mels: (N, 80, 16) float32 mel windows.
        Returns (video_embeddings, audio_embeddings), each (N, D) float32.
        """
        import torch

        video_out, audio_out = [], []
        with torch.inference_mode():
            for start in range(0, len(lower_faces), batch_size):
                faces = lower_faces[start : start + batch_size]
                if self.channel_order == "bgr":
                    faces = faces[..., ::-1]
                # (B, 5, 48, 96, 3) -> (B, 5, 3, 48, 96) -> (B, 15, 48, 96)
                face = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 1, 4, 2, 3)
                face = face.reshape(face.shape[0], -1, face.shape[3], face.shape[4]).float() / 255.0
                audio = torch.from_numpy(np.ascontiguousarray(mels[start : start + batch_size])).unsqueeze(1).float()
                audio_embedding, face_embedding = self.network(audio, face)
                video_out.append(face_embedding.numpy())
                audio_out.append(audio_embedding.numpy())
        if not video_out:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(video_out), np.concatenate(audio_out)


def load_judge(path: Path | str | None = None) -> SyncJudge:
    """Load a judge: lipdub's bundled expert by default, or a checkpoint file.

    A checkpoint's architecture is recognised from its tensors; a Wav2Lip ``lipsync_expert.pth``
    is fed BGR crops, as it was trained on them, lipdub's compact expert RGB.
    """
    from lipdub.models.syncnet import SyncNet
    from lipdub.train.syncnet import load_syncnet

    if path is None:
        bundled = bundled_judge_path()
        if bundled is None:
            raise LipdubError("no bundled SyncNet judge is installed; pass --judge path/to/lipsync_expert.pth")
        meta_path = bundled.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        path, name, source = bundled, meta.get("name", BUNDLED_JUDGE), f"bundled:{BUNDLED_JUDGE}"
    else:
        name, source = Path(path).stem, str(path)
    network = load_syncnet(Path(path)).float()
    channel_order = "bgr" if isinstance(network, SyncNet) else "rgb"
    logger.info("judge %s (%s, %s input)", name, type(network).__name__, channel_order)
    return SyncJudge(name=f"{name} ({type(network).__name__})", source=source, network=network, channel_order=channel_order)
