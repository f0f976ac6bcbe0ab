"""Where does a dub move during a pause of the speech? Target, output and input side by side.

    python experiments/pause_probe.py FACE SPEECH -o out/pause-probe [--strip 12]

Runs `lipdub.sync` (default engine, ``--length-mode cut``), re-tracks the output with Face Mesh
(the evaluation's judge), and prints the pause motion ratio (`lipdub.eval.pauses`) of three
aperture series on the same frames: the engine's target, the output as re-measured, and the input
frames underneath. Writes ``probe.png`` (the three curves, pauses shaded) and ``strip.png``
(output mouth crops through the longest pause) to look at.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("face", type=Path)
    parser.add_argument("speech", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--strip", type=int, default=12)
    args = parser.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from contact_sheet import mouth_window
    from lipdub.eval.mouth import mouth_aperture
    from lipdub.eval.pauses import pause_motion_ratio, pauses, speech_activity
    from lipdub.eval.report import track_video
    from lipdub.media.audio import load_audio
    from lipdub.media.decode import iter_frames
    from lipdub.pipeline import sync

    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lipdub-pause-") as tmp:
        out = Path(tmp) / "out.mp4"
        result = sync(args.face, args.speech, out, length_mode="cut", overwrite=True)
        output_track = track_video(out)
        frames = [f.image for f in iter_frames(out)]
        np.save(args.output / "output_landmarks.npy", output_track.landmark_array())
        import shutil
        shutil.copy(out, args.output / "output.mp4")
    input_track = track_video(args.face)
    fps = output_track.fps
    n = len(frames)
    series = {
        "target": np.asarray(result.target_aperture[:n], np.float64),
        "output": mouth_aperture(output_track.landmark_array())[:n],
        "input": mouth_aperture(input_track.landmark_array())[:n],
    }
    active = speech_activity(load_audio(args.speech), 16000, fps, n)
    spans = pauses(active, fps)
    in_pause = np.zeros(n, bool)
    for a, b in spans:
        in_pause[a:b] = True
    for name, values in series.items():
        motion = np.abs(np.diff(values, prepend=np.nan))
        print(f"{name:7s} pause ratio {pause_motion_ratio(values, active, fps):.3f}  (motion per frame: "
              f"pause {np.nanmean(motion[in_pause]):.4f}, speaking {np.nanmean(motion[active[:n]]):.4f})")
    fig, ax = plt.subplots(figsize=(10, 3))
    t = np.arange(n) / fps
    for name, values in series.items():
        ax.plot(t[: len(values)], values, label=name)
    for a, b in spans:
        ax.axvspan(a / fps, b / fps, color="grey", alpha=0.2)
    ax.set_xlabel("s"); ax.set_ylabel("aperture / face"); ax.legend()
    fig.tight_layout(); fig.savefig(args.output / "probe.png", dpi=80)
    if spans:
        a, b = max(spans, key=lambda s: s[1] - s[0])
        landmarks = output_track.landmark_array()
        picks = np.linspace(a, b - 1, args.strip).astype(int)
        crops = []
        for k in picks:
            x1, y1, x2, y2 = mouth_window(landmarks[k], frames[k].shape)
            crop = frames[k][y1:y2, x1:x2]
            crops.append(cv2.resize(crop, (int(crop.shape[1] * 120 / crop.shape[0]), 120)))
        cv2.imwrite(str(args.output / "strip.png"), cv2.cvtColor(np.concatenate(crops, axis=1), cv2.COLOR_RGB2BGR))
        print(f"longest pause: frames {a}-{b}")


if __name__ == "__main__":
    main()
