"""Probe: can CompactDiscriminator tell our generator's mouths from real ones at all?

Freezes a generator checkpoint, trains a fresh discriminator for 150 steps on real vs generated
training windows (Wav2Lip's BCE, Adam with betas (0.5, 0.999)), and prints its mean verdict on
held-out real and generated windows every 25 steps. In the GAN runs the discriminator sat near
chance; if it separates the two here, the generator was fooling it rather than it failing to learn.

    python experiments/discriminator_probe.py DATASET GENERATOR_CHECKPOINT [--lr 1e-4]
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F

from lipdub.models.checkpoint import load_state_dict
from lipdub.train.data import AugmentConfig, GeneratorWindows, load_dataset
from lipdub.train.generator import build_discriminator, build_generator, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("checkpoint")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = build_generator("compact")
    generator.load_state_dict(load_state_dict(args.checkpoint))
    generator.eval()
    train = GeneratorWindows(load_dataset(args.dataset, "train", kinds=["real", "synthetic"]), seed=0, augment=AugmentConfig())
    held_out = GeneratorWindows(load_dataset(args.dataset, "val", kinds=["real"]), seed=1)

    def real_and_generated(windows, indices):
        items = [windows[i] for i in indices]
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        with torch.no_grad():
            return batch["gt"], generate(generator, batch["masked"], batch["reference"], batch["mels"])

    held_real, held_generated = real_and_generated(held_out, range(16))
    disc = build_discriminator("compact")
    optimizer = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.999))
    for step in range(1, args.steps + 1):
        real, fake = real_and_generated(train, range(step * 8, step * 8 + 8))
        real_verdict, fake_verdict = disc(real), disc(fake)
        loss = F.binary_cross_entropy(real_verdict, torch.ones_like(real_verdict)) + F.binary_cross_entropy(
            fake_verdict, torch.zeros_like(fake_verdict)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            with torch.no_grad():
                print(f"step {step} loss {loss.item():.3f} held-out verdict: real {disc(held_real).mean():.3f} "
                      f"generated {disc(held_generated).mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
