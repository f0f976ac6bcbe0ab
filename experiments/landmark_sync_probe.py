"""Probe: is the held-out offset failure the pixels' fault, or the clips'?

Trains a sync model whose face side never sees pixels: it reads the window's Face Mesh lip-shape
features (``lip_shape_features``, minus each clip's mean shape, plus frame-to-frame velocities)
through a small MLP; the audio side is CompactSyncNet's audio encoder; the loss is the same
multi-way loss as the bundled expert's. Then it reports, for every held-out real clip, the best
audio shift of each 1-second window (searched over +-15 frames). If this model, which shares no
visual features with the pixel expert, finds the same non-zero shift on a clip, the shift belongs
to the recording, not to either model.

    python experiments/landmark_sync_probe.py DATASET [--steps 500] [--split val] [--record]

Result on datasets/shared-v1 (2-core CPU, ~6 min): see docs/model-card.md ("What the held-out
offset figure measures").
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lipdub.models.compact_syncnet import CompactSyncNet
from lipdub.train import syncnet as expert_training
from lipdub.train.align import align_dataset
from lipdub.train.data import LIP_FEATURES, SYNC_FRAMES, AugmentConfig, SyncCandidates, augment_mel, load_dataset, mel_window


class LipShapeEncoder(nn.Module):
    """(B, 5 * LIP_FEATURES) lip shapes -> (B, 512) unit embeddings, non-negative like SyncNet's."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)
        self.net = nn.Sequential(
            nn.Linear(SYNC_FRAMES * LIP_FEATURES * 2, 512), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
        )

    def forward(self, lips: torch.Tensor) -> torch.Tensor:
        x = lips.view(-1, SYNC_FRAMES, LIP_FEATURES) / self.scale
        velocity = torch.diff(x, dim=1, prepend=x[:, :1])
        return F.normalize(self.net(torch.cat([x, velocity], dim=2).flatten(1)), dim=1)


def centre_lip_shapes(clips) -> None:
    """Subtract each clip's mean lip shape (speaker normalisation), in place."""
    for clip in clips:
        clip.lips = clip.lips - clip.lips[clip.valid[: len(clip.lips)]].mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--split", default="val", help="which clips to measure (e.g. heldout in a cross_fit_offsets.py fold view)")
    parser.add_argument("--record", action="store_true", help="record the measured lags in DATASET/av_offsets.csv, as align-dataset does")
    args = parser.parse_args()
    torch.manual_seed(0)
    train = load_dataset(args.dataset, "train", kinds=["real", "synthetic"])
    held_out = load_dataset(args.dataset, args.split, kinds=["real"])
    centre_lip_shapes(train)
    centre_lip_shapes(held_out)
    scale = torch.from_numpy(np.concatenate([c.lips[c.valid] for c in train]).std(axis=0) + 1e-4)
    audio_encoder, face_encoder = CompactSyncNet().audio_encoder, LipShapeEncoder(scale)

    class Probe(nn.Module):  # SyncNet's (audio, faces) contract, faces replaced by lip shapes
        def forward(self, mels, lips):
            return F.normalize(audio_encoder(mels).flatten(1), dim=1), face_encoder(lips)

    probe = Probe()
    optimizer = torch.optim.Adam([*audio_encoder.parameters(), *face_encoder.parameters()], lr=5e-4)
    sampler = SyncCandidates(train, seed=0, augment=AugmentConfig(), candidates=8, min_offset=3, max_offset=15)

    def sample(index: int):
        rng = sampler.rng(index)
        c, t = sampler.draw_window(rng)
        clip = sampler.clips[c]
        starts = np.concatenate([[t], sampler.negative_starts(sampler.starts[c], t, rng)])
        mels = np.stack([augment_mel(mel_window(clip, int(s)), rng, sampler.augment) for s in starts])
        return torch.from_numpy(mels.astype(np.float32))[:, None], torch.from_numpy(clip.lips[t : t + SYNC_FRAMES].reshape(-1).copy())

    for step in range(1, args.steps + 1):
        mels, lips = zip(*(sample(step * args.batch + i) for i in range(args.batch)))
        audio_emb, face_emb = probe(torch.stack(mels).flatten(0, 1), torch.stack(lips))
        loss = expert_training.multiway_loss(audio_emb, face_emb, 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)

    probe.eval()

    def measure(clips) -> list[expert_training.ClipOffsets]:
        out = []
        with torch.no_grad():
            for clip in clips:
                n_audio = expert_training.audio_frame_count(clip.mel.shape[1], clip.fps)
                mels = torch.from_numpy(np.stack([expert_training._mel_at(clip, i) for i in range(n_audio)])[:, None])
                n_faces = len(clip.frames) - SYNC_FRAMES + 1
                lips = torch.from_numpy(np.stack([clip.lips[i : i + SYNC_FRAMES].reshape(-1) for i in range(n_faces)]))
                audio_emb, face_emb = probe(mels, lips)
                face = face_emb.numpy()
                ok = np.zeros(n_faces, dtype=bool)
                ok[expert_training.valid_window_starts(clip.valid, SYNC_FRAMES)] = True
                face[~ok] = np.nan
                embeddings = expert_training.ClipEmbeddings(face=face, audio=audio_emb.numpy())
                m = expert_training.offsets_from_embeddings(clip.clip_id, embeddings, int(round(clip.fps)), 15)
                print(f"{clip.clip_id}: whole clip {m.clip_offset:+d} (confidence {m.confidence:.3f}); "
                      f"{len(m.window_offsets)} windows, best shifts {collections.Counter(m.window_offsets).most_common(4)}")
                out.append(m)
        return out

    if args.record:  # same decision rules as `lipdub align-dataset` (confidence, min and max shift)
        decisions = align_dataset(args.dataset, held_out, measure, f"landmark probe ({args.steps} steps)")
        print(f"recorded in {args.dataset}/av_offsets.csv:", {d.clip_id: d.new for d in decisions if not d.reason})
    else:
        measure(held_out)

if __name__ == "__main__":
    main()
