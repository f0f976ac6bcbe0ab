"""A profile's mouth bank on a photo of its speaker: held-out figures and a contact sheet.

    python experiments/profile_bank_eval.py ../shared/data/train/real/man_congressman_60s.mp4 \\
        -o runs/profile-bank [--profile runs/profile-bank/profile] [--sheet docs/images/NAME.jpg]

1. ``lipdub personalize VIDEO -o OUT/profile`` (unless ``--profile`` names one): the motion model is
   fine-tuned on the first 70 % of the video and the mouth bank chosen from the same frames;
2. the rest of the video (the held-out 30 %, which neither saw) is written to ``OUT/heldout.mp4``
   with its own audio;
3. `lipdub eval-set --protocol image` on that clip (its first frame as a photo, driven by the
   clip's own speech, compared with the real clip) three times: the bundled model, the profile
   without its bank (``OUT/profile-nobank``, a copy whose profile.json names no bank, as an older
   profile's), and the profile with its bank;
4. a contact sheet: the real held-out mouth (top), the photo dubbed with the profile without its
   bank (middle, painted interior) and with it (bottom), at the frames where the target opens most.

Prints the figures and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def write_heldout(video: Path, start: int, output: Path) -> int:
    """Frames ``start``.. of ``video`` with the matching audio, as a near-lossless MP4; frame count."""
    from lipdub.media.audio import load_audio
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.media.encode import VideoWriter

    info = probe_video(video)
    rate = 48000
    audio = load_audio(video, sample_rate=rate)[int(round(start / info.fps * rate)):]
    count = 0
    with VideoWriter(output, info.width, info.height, info.fps, audio=audio, sample_rate=rate, crf=10,
                     overwrite=True) as writer:
        for frame in iter_frames(video):
            if frame.index >= start:
                writer.write(frame.image)
                count += 1
    return count


def without_bank(profile: Path, target: Path) -> Path:
    """A copy of ``profile`` whose profile.json names no mouth bank (what older profiles look like)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(profile, target)
    meta = json.loads((target / "profile.json").read_text())
    meta["mouth_bank"] = None
    (target / "profile.json").write_text(json.dumps(meta, indent=2) + "\n")
    (target / "mouth_bank.npz").unlink(missing_ok=True)
    return target


def sheet_frames(openings: np.ndarray, count: int, spacing: int) -> list[int]:
    """Up to ``count`` frames with the widest target openings, at least ``spacing`` frames apart, in order."""
    picks: list[int] = []
    for index in np.argsort(-np.nan_to_num(np.asarray(openings, np.float64), nan=-1.0)):
        if all(abs(int(index) - p) >= spacing for p in picks):
            picks.append(int(index))
        if len(picks) == count:
            break
    return sorted(picks)


def contact_sheet(heldout: Path, nobank: Path, profile: Path, output: Path, frames: int = 8, height: int = 160) -> list[int]:
    from lipdub.eval.report import track_video
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.pipeline import sync
    from lipdub.eval.protocols import first_frame_photo

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from contact_sheet import mouth_window

    with tempfile.TemporaryDirectory(prefix="lipdub-bank-sheet-") as tmp:
        photo = first_frame_photo(heldout, Path(tmp) / "photo.png")
        fps = probe_video(heldout).fps
        results, videos = {}, {}
        for name, folder in (("nobank", nobank), ("bank", profile)):
            out = Path(tmp) / f"{name}.mp4"
            results[name] = sync(photo, heldout, out, profile=folder, photo_fps=fps, overwrite=True)
            videos[name] = [f.image for f in iter_frames(out)]
        real = [f.image for f in iter_frames(heldout)]
        track = track_video(heldout).landmark_array()
    picks = sheet_frames(results["bank"].target_aperture, frames, max(3, int(fps // 2)))
    photo_landmarks = track[0]
    rows = [[], [], []]
    for index in picks:
        for row, images, landmarks in zip(rows, (real, videos["nobank"], videos["bank"]),
                                          (track[min(index, len(track) - 1)], photo_landmarks, photo_landmarks)):
            x1, y1, x2, y2 = mouth_window(landmarks, images[0].shape)
            crop = images[min(index, len(images) - 1)][y1:y2, x1:x2]
            width = int(round(crop.shape[1] * height / crop.shape[0]))
            row.append(cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC))
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="An existing profile of VIDEO (default: personalise now).")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--sheet", type=Path, help="Where to write the contact sheet (JPEG).")
    args = parser.parse_args()

    from lipdub.eval.protocols import evaluate_set

    args.output.mkdir(parents=True, exist_ok=True)
    profile = args.profile
    if profile is None:
        profile = args.output / "profile"
        command = [sys.executable, "-m", "lipdub", "personalize", str(args.video), "-o", str(profile), "--overwrite"]
        if args.steps:
            command += ["--steps", str(args.steps)]
        subprocess.run(command, check=True)
    meta = json.loads((profile / "profile.json").read_text())
    if not meta.get("mouth_bank"):
        raise SystemExit(f"{profile} has no mouth bank")
    start = int(meta["mouth_bank"]["source_frames"][1])
    heldout = args.output / "heldout.mp4"
    frames = write_heldout(args.video, start, heldout)
    nobank = without_bank(profile, args.output / "profile-nobank")
    figures = {"video": str(args.video), "heldout_frames": [start, start + frames], "mouth_bank": meta["mouth_bank"]}
    for name, folder in (("generic", None), ("profile without bank", nobank), ("profile with bank", profile)):
        options = {} if folder is None else {"profile": folder}
        result = evaluate_set([heldout], "image", args.output / f"eval-{name.replace(' ', '-')}", **options)
        row = result["rows"][0]
        figures[name] = {key: row.get(key) for key in ("sharpness", "aperture_r", "aperture_lag", "aperture_r0",
                                                       "render_r", "lse_d", "lse_c")}
        print(name, json.dumps(figures[name]))
    if args.sheet is not None:
        figures["sheet_frames"] = contact_sheet(heldout, nobank, profile, args.sheet)
        print(f"wrote {args.sheet}: held-out frames {figures['sheet_frames']}")
    (args.output / "results.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
