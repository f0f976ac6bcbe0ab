"""A second, independent landmark judge for the renderer: dlib's 68-point shape predictor.

Why: `lipdub eval-set`'s "render r" re-measures the output's mouth opening with MediaPipe Face Mesh
and correlates it with the opening the engine aimed for. On some clips (a bald, bearded man on a
couch; a phone film) that figure stays low, and it was never clear whether the renderer misses the
target or Face Mesh misreads the face. dlib's predictor (an ensemble of regression trees trained on
iBUG 300-W, found by dlib's own HOG detector) shares neither model, training data nor face box with
Face Mesh, so where the two judges agree on the input but only Face Mesh disagrees with the target
on the output, the judge is the suspect; where both miss the target, the renderer is.

Needs ``pip install dlib-bin face_recognition_models`` (the second ships the 68-point model file,
100 MB, iBUG 300-W terms: research use); neither is a lipdub dependency, which is why this is an
experiment and not an `eval-set` option.

    python experiments/second_judge.py CLIP... [-o out/judge2] [--speech AUDIO]

For each clip: the video protocol's reconstruction (the clip re-dubbed with its own speech; or with
``--speech``, a dub as in the cross-dub protocol), then per clip the Pearson r (lag 0) of

- ``fm_render`` / ``dlib_render``: each judge's opening of the output against the target opening,
- ``judges_input`` / ``judges_output``: the two judges' openings against each other, on the input
  and on the output (how much the judges agree about the same pixels),
- ``fm_range`` / ``dlib_range``: each judge's expression range ratio (`lipdub.eval.expression.slow_width_fidelity`:
  the output's 1 s low-passed mouth width, p95 - p5, over the input's), and ``judges_width_input`` the
  two judges' raw widths against each other on the input.

Openings: Face Mesh inner-lip 13-14 over eye corners 33-263 (`lipdub.eval.mouth.mouth_aperture`);
dlib the mean of the inner-lip pairs 61-67, 62-66, 63-65 over the eye corners 36-45 (0-based).
Widths: Face Mesh 61-291, dlib 48-54, over the same eye corners.
Frames either judge misses are left out of that pair's r.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DETECT_WIDTH = 640  # frames are scaled to this width for dlib's HOG detector (speed), not for the predictor
INNER_PAIRS = ((61, 67), (62, 66), (63, 65))
EYE_CORNERS = (36, 45)
MOUTH_CORNERS = (48, 54)


def predictor_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        sys.exit("needs: pip install dlib-bin face_recognition_models")
    return Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"


def dlib_mouth(points: np.ndarray) -> tuple[float, float]:
    """(inner-lip opening, mouth-corner width) of one (68, 2) dlib shape, in eye-corner units."""
    opening = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in INNER_PAIRS])
    width = np.linalg.norm(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]])
    eyes = np.linalg.norm(points[EYE_CORNERS[0]] - points[EYE_CORNERS[1]])
    return (float(opening / eyes), float(width / eyes)) if eyes > 0 else (float("nan"), float("nan"))


def dlib_mouths(video: Path) -> np.ndarray:
    """(N, 2) dlib openings and widths (`dlib_mouth`) of every frame of ``video``; NaN where its
    detector finds no face.

    The largest detection is used; a frame without one reuses the last frame's box (a detector
    blink should not drop a frame the predictor can still read)."""
    import cv2
    import dlib

    from lipdub.media.decode import iter_frames

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path()))
    values, last_box = [], None
    for frame in iter_frames(video):
        image = np.ascontiguousarray(frame.image)
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_WIDTH / width)
        small = image if scale == 1.0 else np.ascontiguousarray(
            cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA))
        boxes = detector(small, 1)
        if len(boxes):
            best = max(boxes, key=lambda b: b.area())
            last_box = dlib.rectangle(int(best.left() / scale), int(best.top() / scale),
                                      int(best.right() / scale), int(best.bottom() / scale))
        if last_box is None:
            values.append((np.nan, np.nan))
            continue
        shape = predictor(image, last_box)
        values.append(dlib_mouth(np.array([(p.x, p.y) for p in shape.parts()], np.float64)))
    return np.array(values).reshape(-1, 2)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Lag-0 Pearson r over the frames both signals have (`lipdub.eval.mouth.aperture_correlation`)."""
    from lipdub.eval.mouth import aperture_correlation

    n = min(len(a), len(b))
    return aperture_correlation(np.asarray(a[:n], float), np.asarray(b[:n], float), max_lag=0).r


def judge_clip(clip: Path, out_dir: Path, speech: Path | None) -> dict:
    from lipdub.eval.expression import mouth_width_ratio, slow_width_fidelity
    from lipdub.eval.mouth import mouth_aperture
    from lipdub.eval.protocols import crossdub, reconstruct
    from lipdub.eval.report import track_video
    from lipdub.media.decode import probe_video

    output = out_dir / (f"{clip.stem}__{speech.stem}.mp4" if speech else f"{clip.stem}.mp4")
    result = crossdub(clip, speech, output) if speech else reconstruct(clip, "video", output)
    target = np.asarray(result.target_aperture, np.float64)
    fm_out_lm, fm_in_lm = track_video(output).landmark_array(), track_video(clip).landmark_array()
    fm_out, fm_in = mouth_aperture(fm_out_lm), mouth_aperture(fm_in_lm)
    dl_out, dl_in = dlib_mouths(output), dlib_mouths(clip)
    fps = float(probe_video(output).fps)
    np.savez(output.with_suffix(".npz"), target=target, fm_out=fm_out, fm_in=fm_in, dl_out=dl_out, dl_in=dl_in,
             fm_width_out=mouth_width_ratio(fm_out_lm), fm_width_in=mouth_width_ratio(fm_in_lm))
    # Both signals cut to their common length before low-passing, as the dub protocol does.
    n = min(len(fm_out), len(fm_in))
    fm_range = slow_width_fidelity(mouth_width_ratio(fm_out_lm)[:n], mouth_width_ratio(fm_in_lm)[:n], fps)["range_ratio"]
    dlib_range = slow_width_fidelity(dl_out[:n, 1], dl_in[:n, 1], fps)["range_ratio"]
    return {"clip": output.stem, "fm_render": pearson(fm_out, target), "dlib_render": pearson(dl_out[:, 0], target),
            "judges_input": pearson(fm_in, dl_in[:, 0]), "judges_output": pearson(fm_out, dl_out[:, 0]),
            "fm_range": fm_range, "dlib_range": dlib_range,
            "judges_width_input": pearson(mouth_width_ratio(fm_in_lm), dl_in[:, 1]),
            "dlib_missing": float(np.mean(~np.isfinite(dl_out[:, 0])))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("out/judge2"))
    parser.add_argument("--speech", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in args.clips:
        row = judge_clip(clip, args.out, args.speech)
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = ("fm_render", "dlib_render", "judges_input", "judges_output", "fm_range", "dlib_range",
            "judges_width_input")
    print("mean", json.dumps({k: round(float(np.nanmean([r[k] for r in rows])), 3) for k in keys}))
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
