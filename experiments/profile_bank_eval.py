"""A profile's mouth bank on a photo of its speaker: held-out figures and a contact sheet.

    python experiments/profile_bank_eval.py ../shared/data/train/real/man_congressman_60s.mp4 \\
        -o runs/profile-bank [--profile runs/profile-bank/profile] [--sheet docs/images/NAME.jpg]

1. ``lipdub personalize VIDEO -o OUT/profile`` (unless ``--profile`` names one): the motion model is
   fine-tuned on the first 70 % of the video and the mouth bank chosen from the same frames;
2. the rest of the video (the held-out 30 %, which neither saw) is written with its own audio twice:
   from its first frame (``OUT/heldout-first.mp4``) and from its most closed mouth within the first
   2 s (``OUT/heldout-closed.mp4``: a closed-mouth photo, the case the bank is for);
3. `lipdub eval-set --protocol image` on each clip (its first frame as a photo, driven by the
   clip's own speech, compared with the real clip) three times: the bundled model, the profile
   without its bank (``OUT/profile-nobank``, a copy whose profile.json names no bank, as an older
   profile's), and the profile with its bank;
4. a contact sheet of the closed-mouth photo: the real held-out mouth (top), the photo dubbed with
   the profile without its bank (middle, painted interior) and with it (bottom), at the frames
   where the target opens most.

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


def most_closed_frame(video: Path, seconds: float = 2.0) -> int:
    """The frame of ``video``'s first ``seconds`` whose mouth (Face Mesh inner lips) is most closed."""
    from lipdub.eval.mouth import mouth_aperture
    from lipdub.eval.report import track_video

    track = track_video(video)
    openings = mouth_aperture(track.landmark_array())[: max(1, int(round(seconds * track.fps)))]
    return int(np.nanargmin(openings))


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


def profile_share(clip: Path, profile: Path) -> dict:
    """How the photo (``clip``'s first frame) dubbed with ``clip``'s speech and ``profile`` fills its
    opening: the share of output frames whose interior is a profile mouth, and how many different."""
    from lipdub.engines import build_engine
    from lipdub.engines.base import FrameJob, RenderPlan
    from lipdub.eval.protocols import first_frame_photo
    from lipdub.media.audio import load_audio
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.pipeline import SyncOptions, StageClock, track_input
    from lipdub.timeline import fit_audio, frames_for_duration, plan_timeline

    fps = probe_video(clip).fps
    with tempfile.TemporaryDirectory(prefix="lipdub-bank-share-") as tmp:
        photo = first_frame_photo(clip, Path(tmp) / "photo.png")
        options = SyncOptions(profile=profile, photo_fps=fps)
        engine = build_engine(options)
        try:
            faces = track_input(photo, True, fps, options, engine, StageClock(), 1)
            speech = load_audio(clip, sample_rate=engine.sample_rate)
            count = frames_for_duration(len(speech) / engine.sample_rate, fps)
            timeline = plan_timeline(1, count, options.length_mode, is_photo=True)
            speech = fit_audio(speech, engine.sample_rate, count, fps)
            image = next(iter(iter_frames(photo))).image
            engine.prepare(RenderPlan(fps, timeline, faces, speech, True, image.shape[:2]))
            for start in range(0, count, 32):
                engine.render([FrameJob(i, 0, image, faces[0]) for i in range(start, min(count, start + 32))])
            used = engine.chosen_profile[engine.chosen_profile >= 0]
        finally:
            engine.close()
    return {"frames": count, "profile_frames": int(len(used)), "profile_mouths": int(len(set(used.tolist())))}


def sheet_frames(openings: np.ndarray, count: int, spacing: int) -> list[int]:
    """Up to ``count`` frames with the widest target openings, at least ``spacing`` frames apart, in order."""
    picks: list[int] = []
    for index in np.argsort(-np.nan_to_num(np.asarray(openings, np.float64), nan=-1.0)):
        if all(abs(int(index) - p) >= spacing for p in picks):
            picks.append(int(index))
        if len(picks) == count:
            break
    return sorted(picks)


def mouth_box(landmarks: np.ndarray, shape: tuple[int, int], half_w: float = 0.6, half_h: float = 0.33):
    """(x1, y1, x2, y2): a box of 2 * half_w by 2 * half_h eye distances around the mouth."""
    eye = float(np.linalg.norm(landmarks[33] - landmarks[263]))
    cx, cy = landmarks[[61, 291, 13, 14]].mean(axis=0)
    h, w = shape[:2]
    return (int(max(0, cx - half_w * eye)), int(max(0, cy - half_h * eye)),
            int(min(w, cx + half_w * eye)), int(min(h, cy + half_h * eye)))


def contact_sheet(heldout: Path, nobank: Path, profile: Path, output: Path, frames: int = 7, height: int = 150) -> list[int]:
    from lipdub.eval.protocols import first_frame_photo
    from lipdub.eval.report import track_video
    from lipdub.media.decode import iter_frames, probe_video
    from lipdub.pipeline import sync

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
            x1, y1, x2, y2 = mouth_box(landmarks, images[0].shape)
            crop = images[min(index, len(images) - 1)][y1:y2, x1:x2]
            row.append(cv2.resize(crop, (int(round(height * 0.6 / 0.33)), height), interpolation=cv2.INTER_CUBIC))
    gap = np.full((4, sum(tile.shape[1] for tile in rows[0]), 3), 255, np.uint8)
    sheet = np.concatenate([part for row in rows for part in (np.concatenate(row, axis=1), gap)][:-1], axis=0)
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
    parser.add_argument("--skip-eval", action="store_true", help="Only the contact sheet (results.json kept).")
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
    first = args.output / "heldout-first.mp4"
    frames = write_heldout(args.video, start, first)
    closed_start = start + most_closed_frame(first)
    closed = args.output / "heldout-closed.mp4"
    write_heldout(args.video, closed_start, closed)
    nobank = without_bank(profile, args.output / "profile-nobank")
    figures = {"video": str(args.video), "heldout_frames": [start, start + frames], "mouth_bank": meta["mouth_bank"]}
    if args.skip_eval and (args.output / "results.json").is_file():
        figures = {**json.loads((args.output / "results.json").read_text()), **figures}
    for photo, clip, photo_frame in () if args.skip_eval else (("first frame", first, start), ("closed frame", closed, closed_start)):
        figures[photo] = {"photo_frame": photo_frame}
        for name, folder in (("generic", None), ("profile without bank", nobank), ("profile with bank", profile)):
            options = {} if folder is None else {"profile": folder}
            result = evaluate_set([clip], "image", args.output / f"eval-{clip.stem}-{name.replace(' ', '-')}", **options)
            row = result["rows"][0]
            figures[photo][name] = {key: row.get(key) for key in ("sharpness", "aperture_r", "aperture_lag", "aperture_r0",
                                                                  "render_r", "lse_d", "lse_c")}
            print(photo, "|", name, json.dumps(figures[photo][name]), flush=True)
        figures[photo]["borrowed"] = profile_share(clip, profile)
        print(photo, "| borrowed", figures[photo]["borrowed"], flush=True)
    if args.sheet is not None:
        figures["sheet_frames"] = contact_sheet(closed, nobank, profile, args.sheet)
        print(f"wrote {args.sheet}: frames {figures['sheet_frames']} of {closed} (photo = video frame {closed_start})")
    (args.output / "results.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
