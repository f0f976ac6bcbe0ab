"""Speech with a real pause in it: two speech files joined by seconds of silence (16 kHz mono WAV).

No natural clip in ../shared/data pauses for 2 s, so the pause figure of `lipdub eval-set`
(how much the mouth moves in a pause of 2 s or more, against while speaking) needs audio made
for it:

    python experiments/splice_pause.py ../shared/data/audio/english_male_1.wav \
        ../shared/data/audio/english_female_1.wav --pause 2.5 -o out/pause_speech.wav
    lipdub eval-set CLIP.mp4 --protocol dub --speech out/pause_speech.wav -o out/pause-eval
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np

from lipdub.media.audio import load_audio

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--pause", type=float, default=2.5, help="seconds of silence between them")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    parts = [load_audio(args.first, RATE), np.zeros(int(args.pause * RATE), np.float32), load_audio(args.second, RATE)]
    samples = np.clip(np.concatenate(parts), -1.0, 1.0)
    with wave.open(str(args.output), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((samples * 32767).astype("<i2").tobytes())
    print(f"wrote {args.output}: {len(samples) / RATE:.2f} s with a {args.pause:g} s pause at "
          f"{len(parts[0]) / RATE:.2f} s")


if __name__ == "__main__":
    main()
