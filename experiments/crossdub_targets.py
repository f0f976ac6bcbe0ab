"""Offline cross-dub targets: how well the engine's *aim* follows a new speaker, without rendering.

    python experiments/crossdub_targets.py datasets/shared-v3 [MODEL] [--rest closed,envelope]

For each pair of the cross-dub protocol (validation clip i dubbed with clip i+1's speech, the
clips of `experiments/motion_engine_eval.sh`), the target shapes the motion engine would aim for
are built from the dataset's points alone: clip A's rest (smoothed points, as the engine uses
them), A's own articulation scale and slow expression, plus the model's motion for B's speech.
Printed: the Pearson r (lag 0) of the target opening with B's real mouth (the cross-dub figure
before any rendering loss) and, after the slash, the same for A with its own speech against A's
real mouth (the video protocol, where A's own envelope can leak the real mouth). One column per
rest kind (`lipdub.motion.shape.video_rest`); the means close the table. Minutes on the CPU,
against about 15 for `lipdub eval-set --protocol crossdub`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from lipdub.motion import shape as S
from lipdub.motion.predictor import load_motion_model
from lipdub.motion.transfer import keep_slow_expression, speaker_scale, target_shapes
from lipdub.train.data import read_wav_mono16k
from lipdub.train.motion import aperture_correlation

VALIDATION = ("grid_man_denim", "grid_man_denim_1", "man_bald_beard_couch", "man_congressman_60s", "man_phone_film",
              "man_restaurant_noisy", "woman_flag", "woman_flag_closeup", "woman_politician_uk", "woman_seated_vertical")


def load_clip(dataset: Path, row: dict) -> dict:
    """Canonical motion points (smoothed and measured), fps and 16 kHz speech of one dataset clip."""
    folder = dataset / "clips" / row["clip_id"]
    with np.load(folder / "landmarks.npz") as npz:
        valid = np.asarray(npz["valid"], bool)

        def shapes(key):
            points = np.asarray(npz[key], np.float64).copy()
            points[~valid] = np.nan
            return S.canonical_motion_points(points, S.canonical_transforms(points, S.stable_template(points)))

        smoothed, measured = shapes("points"), shapes("measured")
    return {"smoothed": smoothed, "measured": measured, "fps": float(row["fps"]),
            "speech": read_wav_mono16k(folder / "audio.wav")}


def target_opening(face: dict, motion: np.ndarray, rest_kind: str, default_scale: float) -> np.ndarray:
    """The opening of the engine's targets for ``face`` driven by ``motion`` (one row per frame)."""
    frames = len(motion)
    rest = S.video_rest(face["smoothed"], face["fps"], rest_kind)
    faced = np.isfinite(face["smoothed"]).all(axis=(1, 2))
    scale = speaker_scale(S.articulation_scale(S.speech_motion(face["smoothed"], rest)[faced]), default_scale)
    targets = target_shapes(rest[:frames], motion, scale)
    return S.aperture(keep_slow_expression(targets, face["smoothed"][:frames], face["fps"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("model", nargs="?", default=None, help="bundled name or .pt (default: the default model)")
    parser.add_argument("--rest", default="closed,envelope", help="rest kinds to compare, comma-separated")
    args = parser.parse_args()
    rows = {r["clip_id"].rsplit("-", 1)[0]: r for r in csv.DictReader(open(args.dataset / "clips.csv"))}
    clips = {name: load_clip(args.dataset, rows[name]) for name in VALIDATION}
    predictor = load_motion_model(args.model)
    kinds = args.rest.split(",")
    figures = {kind: ([], []) for kind in kinds}
    for i, name in enumerate(VALIDATION):
        face, voice = clips[name], clips[VALIDATION[(i + 1) % len(VALIDATION)]]
        frames = min(len(face["smoothed"]), int(len(voice["speech"]) / 16000 * face["fps"]))
        dubbed = predictor.predict(voice["speech"], frames, face["fps"])
        own = predictor.predict(face["speech"], len(face["smoothed"]), face["fps"])
        times = np.arange(frames) / face["fps"]
        voice_real = np.interp(times, np.arange(len(voice["measured"])) / voice["fps"], S.aperture(voice["measured"]))
        line = f"{name:22s} <- {VALIDATION[(i + 1) % len(VALIDATION)]:22s}"
        for kind in kinds:
            cross = aperture_correlation(target_opening(face, dubbed, kind, predictor.default_scale), voice_real, 0).r
            video = aperture_correlation(target_opening(face, own, kind, predictor.default_scale),
                                         S.aperture(face["measured"]), 0).r
            figures[kind][0].append(cross)
            figures[kind][1].append(video)
            line += f"  {kind} {cross:.2f}/{video:.2f}"
        print(line, flush=True)
    for kind in kinds:
        print(f"{kind}: cross-dub {np.mean(figures[kind][0]):.3f}, video {np.mean(figures[kind][1]):.3f}")


if __name__ == "__main__":
    main()
