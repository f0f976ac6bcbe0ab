"""`lipdub eval`: measure one lip-synced video with the field's yardsticks and write a report.

What is measured, and against what:

- **Sync** (always): LSE-D / LSE-C / AV offset by the syncnet_python protocol (`eval.sync`), from
  the judge's embeddings of every 5-frame mouth window and its audio window. The audio is the
  video's own track unless another one is given.
- **Mouth shape** (with a reference video, e.g. the real clip in a reconstruction protocol):
  Face Mesh lip landmarks of both videos, LMD normalised by face size, mouth-aperture correlation
  and the lag that maximises it (`eval.mouth`).
- **Image quality** (with a reference video, e.g. the input of a dub): PSNR/SSIM outside the mouth
  region (identity and background kept), mouth sharpness relative to the reference (variance of the
  Laplacian) and temporal flicker of the mouth (`eval.image`). SSIM on full frames is costly, so the
  image figures use at most `image_samples` evenly spaced frames.

Frames are streamed: only embeddings, landmarks and a few sampled frames are kept, so memory stays
small for long videos.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lipdub.errors import LipdubError

logger = logging.getLogger(__name__)

#: Lip landmarks used to place the mouth box (outer lip contour of the 478-point Face Mesh).
MOUTH_BOX_MARGIN = 0.6
#: Size mouth crops are resized to for the sharpness and flicker figures.
MOUTH_CROP = 64
#: Points per face in `FaceTrack.landmarks` (Face Mesh with iris points).
MESH_LANDMARKS = 478


@dataclass
class FaceTrack:
    """Per-frame face data of one video, as the evaluation needs it."""

    fps: float
    frames: int = 0
    found: list[bool] = field(default_factory=list)
    landmarks: list[np.ndarray | None] = field(default_factory=list)  # (478, 2) frame pixels, as measured

    def add(self, face) -> None:
        """Record one frame's tracked face (None when no face was found).

        The judge keeps what Face Mesh measured on the frame (``raw_landmarks``), not the
        tracker's One-Euro-smoothed points: that filter is causal and lags a fast mouth by one or
        two frames, so measuring with it would delay every output against its audio (and a model
        trained on smoothed points learns that delay). Crops for the sync judge still follow the
        smoothed box.
        """
        self.frames += 1
        self.found.append(face is not None)
        if face is None:
            self.landmarks.append(None)
            return
        measured = face.landmarks if getattr(face, "raw_landmarks", None) is None else face.raw_landmarks
        self.landmarks.append(np.asarray(measured, np.float32))

    def landmark_array(self) -> np.ndarray:
        """(frames, 478, 2) float64 landmarks, NaN in the frames without a face.

        The shape the `lipdub.eval.mouth` / `pauses` / `expression` metrics take, with every frame
        kept in place, so per-frame signals stay aligned with time and with the audio.
        """
        points = np.full((self.frames, MESH_LANDMARKS, 2), np.nan)
        for index, landmarks in enumerate(self.landmarks):
            if landmarks is not None:
                points[index] = landmarks[:MESH_LANDMARKS, :2]
        return points


def mouth_box(landmarks: np.ndarray, frame_shape: tuple[int, int], margin: float = MOUTH_BOX_MARGIN) -> tuple[int, int, int, int]:
    """Integer box (x1, y1, x2, y2) around the lips, enlarged by ``margin`` of its size on each side."""
    from lipdub.eval.mouth import LIP_OUTER

    lips = landmarks[list(LIP_OUTER)]
    (x1, y1), (x2, y2) = lips.min(axis=0), lips.max(axis=0)
    w, h = x2 - x1, y2 - y1
    size = max(w, h)
    x1, x2 = x1 - margin * size, x2 + margin * size
    y1, y2 = y1 - margin * size, y2 + margin * size
    height, width = frame_shape
    return (max(0, int(x1)), max(0, int(y1)), min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2))))


def _tracked_frames(path: Path) -> Iterator[tuple[np.ndarray, object | None, float]]:
    """(frame, tracked face or None, fps) for every frame of a video, with the inference tracker."""
    from lipdub.face.detect import FaceDetector
    from lipdub.face.track import FaceTracker, SmoothingConfig
    from lipdub.media.decode import iter_frames, probe_video

    info = probe_video(path)
    with FaceDetector(still_image=info.is_photo) as detector:
        tracker = FaceTracker(detector, smoothing=SmoothingConfig(fps=info.fps))
        for frame in iter_frames(path):
            yield frame.image, tracker.update(frame.image), info.fps


def track_video(path: Path) -> FaceTrack:
    """The face track of every frame of ``path``, with the inference tracker (no judging)."""
    track: FaceTrack | None = None
    for _, face, fps in _tracked_frames(path):
        if track is None:
            track = FaceTrack(fps=fps)
        track.add(face)
    if track is None:
        raise LipdubError(f"{path} contains no video frames")
    return track


def sync_report(video: Path, audio: Path | None, judge, max_offset: int = 15,
                progress: Callable[[int], None] | None = None) -> tuple[dict, FaceTrack]:
    """Sync scores of ``video`` against ``audio`` (default: its own track) under ``judge``."""
    from lipdub.eval.judge import CROP_SIZE, WINDOW_FRAMES
    from lipdub.eval.sync import sync_scores
    from lipdub.face.align import crop_region, extract_crop
    from lipdub.media.audio import load_audio
    from lipdub.media.features import mel_windows, melspectrogram

    samples = load_audio(audio or video, sample_rate=judge.mel.sample_rate)
    mel = melspectrogram(samples, judge.mel)
    track: FaceTrack | None = None
    window: deque[np.ndarray] = deque(maxlen=WINDOW_FRAMES)
    batch_faces, batch_starts = [], []
    video_embeddings, audio_embeddings = [], []
    last_half: np.ndarray | None = None

    def flush() -> None:
        if batch_faces:
            mels = mel_windows(mel, batch_starts, track.fps, judge.mel)
            v, a = judge.embed(np.stack(batch_faces), mels)
            video_embeddings.append(v)
            audio_embeddings.append(a)
            batch_faces.clear()
            batch_starts.clear()

    for index, (image, face, fps) in enumerate(_tracked_frames(video)):
        if track is None:
            track = FaceTrack(fps=fps)
        track.add(face)
        if face is not None:
            region = crop_region(face.box, image.shape[:2])
            last_half = extract_crop(image, region, CROP_SIZE).image[CROP_SIZE // 2 :]
        if last_half is None:
            continue  # no face seen yet: nothing to judge
        window.append(last_half)
        if len(window) == WINDOW_FRAMES:
            batch_faces.append(np.stack(window))
            batch_starts.append(index - WINDOW_FRAMES + 1)
            if len(batch_faces) == 64:
                flush()
        if progress is not None:
            progress(index + 1)
    if track is None:
        raise LipdubError(f"{video} contains no video frames")
    flush()
    if not video_embeddings:
        raise LipdubError(f"no face found in enough frames of {video} to judge lip sync (needs {WINDOW_FRAMES})")
    scores = sync_scores(np.concatenate(video_embeddings), np.concatenate(audio_embeddings), max_offset=max_offset)
    report = {
        "judge": {"name": judge.name, "source": judge.source},
        "lse_d": float(scores.lse_d),
        "lse_c": float(scores.lse_c),
        "av_offset_frames": int(scores.av_offset),
        "offsets": [int(v) for v in scores.offsets],
        "mean_distances": [float(v) for v in scores.mean_distances],
        "windows": int(sum(len(v) for v in video_embeddings)),
    }
    return report, track


def _sampled_indices(count: int, samples: int) -> set[int]:
    return set(np.linspace(0, count - 1, num=min(count, samples)).astype(int).tolist())


def compare_report(video: Path, reference: Path, track: FaceTrack, reference_track: FaceTrack | None = None,
                   image_samples: int = 40) -> tuple[dict, dict]:
    """Mouth-shape and image-quality figures of ``video`` against ``reference`` (paired by frame index)."""
    from lipdub.eval.image import laplacian_sharpness, psnr, ssim, temporal_flicker
    from lipdub.eval.mouth import aperture_correlation, lip_landmark_distance, mouth_aperture
    from lipdub.media.decode import iter_frames

    if reference_track is None:
        reference_track = track_video(reference)
    count = min(track.frames, reference_track.frames)
    both = [i for i in range(count) if track.landmarks[i] is not None and reference_track.landmarks[i] is not None]
    mouth: dict = {"frames_compared": len(both)}
    if both:
        generated = np.stack([track.landmarks[i] for i in both])
        real = np.stack([reference_track.landmarks[i] for i in both])
        generated_aperture, real_aperture = mouth_aperture(generated), mouth_aperture(real)
        r, lag = aperture_correlation(generated_aperture, real_aperture)
        mouth.update(
            lmd=float(lip_landmark_distance(generated, real)),
            aperture_correlation=float(r),
            aperture_lag_frames=int(lag),
            aperture_generated=[float(v) for v in generated_aperture],
            aperture_reference=[float(v) for v in real_aperture],
            frame_indices=both,
        )

    picks = _sampled_indices(count, image_samples)
    strip_picks = set(sorted(picks)[:: max(1, len(picks) // 6)][:6])
    psnrs, ssims, sharp_generated, sharp_reference, strip = [], [], [], [], []
    mouth_crops: list[np.ndarray] = []
    import cv2

    for index, (frame, ref) in enumerate(zip(iter_frames(video), iter_frames(reference))):
        if index >= count:
            break
        landmarks = track.landmarks[index]
        if landmarks is None:
            continue
        x1, y1, x2, y2 = mouth_box(landmarks, frame.image.shape[:2])
        if x2 <= x1 or y2 <= y1:
            continue
        mouth_crops.append(cv2.resize(frame.image[y1:y2, x1:x2], (MOUTH_CROP, MOUTH_CROP), interpolation=cv2.INTER_AREA))
        if index not in picks or frame.image.shape != ref.image.shape:
            continue
        outside = np.ones(frame.image.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        psnrs.append(psnr(frame.image, ref.image, mask=outside))
        ssims.append(ssim(frame.image, ref.image, mask=outside))
        sharp_generated.append(laplacian_sharpness(frame.image[y1:y2, x1:x2]))
        sharp_reference.append(laplacian_sharpness(ref.image[y1:y2, x1:x2]))
        if index in strip_picks:
            strip.append((mouth_crops[-1], cv2.resize(ref.image[y1:y2, x1:x2], (MOUTH_CROP, MOUTH_CROP), interpolation=cv2.INTER_AREA)))
    finite = [p for p in psnrs if np.isfinite(p)]
    image = {
        "frames_sampled": len(psnrs),
        "psnr_outside_mouth_db": float(np.mean(finite)) if finite else (float("inf") if psnrs else None),
        "ssim_outside_mouth": float(np.mean(ssims)) if ssims else None,
        "mouth_sharpness_ratio": float(np.mean(sharp_generated) / np.mean(sharp_reference)) if sharp_reference and np.mean(sharp_reference) > 0 else None,
        "mouth_flicker": float(temporal_flicker(np.stack(mouth_crops))) if len(mouth_crops) > 1 else None,
    }
    return mouth, {**image, "_strip": strip}


def _plot(report: dict, strip: list, out_dir: Path) -> list[str]:
    """Write the report's PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sync = report["sync"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(sync["offsets"], sync["mean_distances"], marker="o", ms=3)
    ax.axvline(sync["av_offset_frames"], color="tab:red", ls="--", lw=1, label=f"minimum at {sync['av_offset_frames']}")
    ax.set_xlabel("audio offset (frames)")
    ax.set_ylabel("mean SyncNet distance")
    ax.set_title(f"LSE-D {sync['lse_d']:.3f}  LSE-C {sync['lse_c']:.3f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "sync_offsets.png", dpi=110)
    plt.close(fig)
    written.append("sync_offsets.png")

    mouth = report.get("mouth") or {}
    if mouth.get("aperture_generated"):
        fig, ax = plt.subplots(figsize=(7, 3))
        t = np.asarray(mouth["frame_indices"]) / report["fps"]
        ax.plot(t, mouth["aperture_generated"], label="generated")
        ax.plot(t, mouth["aperture_reference"], label="reference", alpha=0.8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mouth aperture / face size")
        ax.set_title(f"aperture correlation {mouth['aperture_correlation']:.2f} (lag {mouth['aperture_lag_frames']})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "mouth_aperture.png", dpi=110)
        plt.close(fig)
        written.append("mouth_aperture.png")

    if strip:
        fig, axes = plt.subplots(2, len(strip), figsize=(1.6 * len(strip), 3.4), squeeze=False)
        for column, (generated, reference) in enumerate(strip):
            for row, (image, label) in enumerate(((generated, "generated"), (reference, "reference"))):
                axes[row][column].imshow(image)
                axes[row][column].set_xticks([])
                axes[row][column].set_yticks([])
                if column == 0:
                    axes[row][column].set_ylabel(label)
        fig.tight_layout()
        fig.savefig(out_dir / "mouth_strip.png", dpi=110)
        plt.close(fig)
        written.append("mouth_strip.png")
    return written


def _markdown(report: dict) -> str:
    sync = report["sync"]
    lines = [
        f"# lipdub eval: {Path(report['video']).name}",
        "",
        f"- audio: {report['audio']}",
        f"- judge: {sync['judge']['name']} ({sync['judge']['source']}); scores from different judges are not comparable",
        f"- frames: {report['frames']} at {report['fps']:.3f} fps, face found in {report['faces_found']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| LSE-D (lower is better) | {sync['lse_d']:.3f} |",
        f"| LSE-C (higher is better) | {sync['lse_c']:.3f} |",
        f"| AV offset (frames) | {sync['av_offset_frames']} |",
    ]
    mouth = report.get("mouth")
    if mouth and "lmd" in mouth:
        lines += [
            f"| LMD (lip landmarks / face size) | {mouth['lmd']:.4f} |",
            f"| mouth-aperture correlation | {mouth['aperture_correlation']:.3f} (lag {mouth['aperture_lag_frames']} frames) |",
        ]
    image = report.get("image")
    if image and image.get("frames_sampled"):
        lines += [
            f"| PSNR outside mouth (dB) | {image['psnr_outside_mouth_db']:.2f} |",
            f"| SSIM outside mouth | {image['ssim_outside_mouth']:.4f} |",
            f"| mouth sharpness ratio | {image['mouth_sharpness_ratio']:.3f} |" if image["mouth_sharpness_ratio"] is not None else "| mouth sharpness ratio | n/a |",
            f"| mouth flicker | {image['mouth_flicker']:.3f} |" if image["mouth_flicker"] is not None else "| mouth flicker | n/a |",
        ]
    lines += ["", *[f"![{name}]({name})" for name in report.get("plots", [])], ""]
    return "\n".join(lines)


class Evaluation(NamedTuple):
    """What `evaluate_tracked` measured: the report, and the face tracks it was computed from.

    The tracks let a caller compute further per-frame figures (pauses, expression) without
    tracking the videos again; ``reference_track`` is None without a reference.
    """

    report: dict
    track: FaceTrack
    reference_track: FaceTrack | None


def evaluate(video: Path | str, output_dir: Path | str, audio: Path | str | None = None,
             reference: Path | str | None = None, judge_path: Path | str | None = None,
             max_offset: int = 15, progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate ``video`` and write ``report.json``, ``report.md`` and PNG plots to ``output_dir``."""
    return evaluate_tracked(video, output_dir, audio, reference, judge_path, max_offset, progress).report


def evaluate_tracked(video: Path | str, output_dir: Path | str, audio: Path | str | None = None,
                     reference: Path | str | None = None, judge_path: Path | str | None = None,
                     max_offset: int = 15, progress: Callable[[int], None] | None = None,
                     reference_track: FaceTrack | None = None) -> Evaluation:
    """`evaluate`, also returning the face tracks; ``reference_track`` (the reference already
    tracked, e.g. by its own evaluation) saves tracking the reference again."""
    from lipdub.eval.judge import load_judge

    video = Path(video)
    for role, path in (("video", video), ("audio", audio), ("reference", reference)):
        if path is not None and not Path(path).is_file():
            raise LipdubError(f"{role} file not found: {path}")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    judge = load_judge(judge_path)
    sync, track = sync_report(video, Path(audio) if audio else None, judge, max_offset, progress)
    report: dict = {
        "video": str(video),
        "audio": str(audio) if audio else f"{video} (own track)",
        "reference": str(reference) if reference else None,
        "fps": track.fps,
        "frames": track.frames,
        "faces_found": int(sum(track.found)),
        "sync": sync,
        "mouth": None,
        "image": None,
    }
    strip: list = []
    if reference is not None:
        if reference_track is None:
            reference_track = track_video(Path(reference))
        mouth, image = compare_report(video, Path(reference), track, reference_track)
        strip = image.pop("_strip")
        report["mouth"], report["image"] = mouth, image
    report["plots"] = _plot(report, strip, out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, allow_nan=True))
    (out_dir / "report.md").write_text(_markdown(report))
    return Evaluation(report, track, reference_track if reference is not None else None)
