"""Reconstruction protocols: re-create real clips from their own audio and compare with the real thing.

A real talking clip is its own ground truth: drive the generator with the clip's audio and the
measured mouth should move like the real one. Two protocols, as in the literature:

- ``image`` (image-driven): the first frame alone, as a photo, plus the clip's audio. Nothing of
  the real mouth motion is visible to the model.
- ``video`` (video-driven): the clip itself as the face input (pose and upper face follow the real
  video), but the generator's reference is the clip's FIRST frame for every output frame instead of
  the frame itself, so the model cannot copy the true mouth from its reference. (Wav2Lip's own
  inference feeds the frame itself as reference, which leaks the real mouth into the result.)

`evaluate_set` runs one protocol over a set of clips and reports, per clip and on average, the
figures of the generated clip next to the same figures for the real clip (the yardstick).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lipdub.errors import LipdubError

logger = logging.getLogger(__name__)

PROTOCOLS = ("image", "video")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v")


def find_clips(sources: Sequence[Path]) -> list[Path]:
    """Video files among ``sources`` (files, or folders searched recursively), sorted."""
    clips: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_file():
            clips.append(source)
        elif source.is_dir():
            clips.extend(p for p in sorted(source.rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        else:
            raise LipdubError(f"not found: {source}")
    if not clips:
        raise LipdubError("no video clips found in " + ", ".join(map(str, sources)))
    return clips


def first_frame_photo(clip: Path, path: Path) -> Path:
    """Write the clip's first frame as a PNG photo (the image-driven protocol's only input)."""
    import cv2

    from lipdub.media.decode import iter_frames

    frame = next(iter(iter_frames(clip)))
    cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    return path


def reconstruct(clip: Path, protocol: str, output: Path, **sync_options) -> Path:
    """Generate ``clip`` again from its own audio under ``protocol``; returns the output path."""
    from lipdub.media.decode import probe_video
    from lipdub.pipeline import sync

    if protocol not in PROTOCOLS:
        raise LipdubError(f"unknown protocol {protocol!r}: choose from {', '.join(PROTOCOLS)}")
    if protocol == "image":
        photo = first_frame_photo(clip, output.with_suffix(".png"))
        sync(photo, clip, output, photo_fps=probe_video(clip).fps, overwrite=True, **sync_options)
    else:
        sync(clip, clip, output, reference="first", length_mode="cut", overwrite=True, **sync_options)
    return output


def _row(name: str, report: dict) -> dict:
    mouth = report.get("mouth") or {}
    image = report.get("image") or {}
    return {
        "clip": name,
        "lse_d": report["sync"]["lse_d"],
        "lse_c": report["sync"]["lse_c"],
        "av_offset": report["sync"]["av_offset_frames"],
        "lmd": mouth.get("lmd"),
        "aperture_r": mouth.get("aperture_correlation"),
        "sharpness": image.get("mouth_sharpness_ratio"),
    }


def evaluate_set(clips: Sequence[Path], protocol: str, output_dir: Path, judge_path: Path | None = None,
                 progress: Callable[[int, int, str], None] | None = None, **sync_options) -> dict:
    """Run ``protocol`` over ``clips``; returns {"protocol", "judge", "rows": [...], "mean": {...}}.

    Each row holds the generated clip's LSE-D/LSE-C/AV offset (its audio = the clip's own), LMD,
    mouth-aperture correlation and mouth sharpness (Laplacian variance, generated / real; 1 = as
    sharp as the real mouth) against the real clip, and the real clip's own LSE-D/LSE-C.
    """
    from lipdub.eval.report import evaluate

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    judge_name = None
    with tempfile.TemporaryDirectory(prefix="lipdub-evalset-") as work:
        for done, clip in enumerate(clips):
            if progress is not None:
                progress(done, len(clips), clip.name)
            try:
                real = evaluate(clip, output_dir / clip.stem / "real", judge_path=judge_path)
                generated_path = reconstruct(clip, protocol, Path(work) / f"{clip.stem}.mp4", **sync_options)
                generated = evaluate(generated_path, output_dir / clip.stem / protocol, audio=clip,
                                     reference=clip, judge_path=judge_path)
            except LipdubError as error:
                logger.warning("skipping %s: %s", clip, error)
                continue
            judge_name = generated["sync"]["judge"]["name"]
            row = _row(clip.name, generated)
            row.update(real_lse_d=real["sync"]["lse_d"], real_lse_c=real["sync"]["lse_c"],
                       real_av_offset=real["sync"]["av_offset_frames"])
            rows.append(row)
    if progress is not None:
        progress(len(clips), len(clips), "")
    if not rows:
        raise LipdubError("no clip could be evaluated")
    keys = [k for k in rows[0] if k != "clip"]
    mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys if any(r[k] is not None for r in rows)}
    return {"protocol": protocol, "judge": judge_name, "rows": rows, "mean": mean}


def format_table(result: dict) -> str:
    """Markdown table of `evaluate_set`'s result, one row per clip and the mean."""
    header = ("| clip | LSE-D | LSE-C | offset | LMD | aperture r | mouth sharpness | real LSE-D | real LSE-C | real offset |\n"
              "|---|---|---|---|---|---|---|---|---|---|")

    def cell(value, digits=3):
        return "n/a" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    lines = [f"protocol: {result['protocol']}; judge: {result['judge']}", "", header]
    for row in [*result["rows"], {"clip": "**mean**", **result["mean"]}]:
        lines.append("| " + " | ".join([
            row["clip"], cell(row.get("lse_d")), cell(row.get("lse_c")), cell(row.get("av_offset"), 1),
            cell(row.get("lmd"), 4), cell(row.get("aperture_r")), cell(row.get("sharpness")), cell(row.get("real_lse_d")),
            cell(row.get("real_lse_c")), cell(row.get("real_av_offset"), 1),
        ]) + " |")
    return "\n".join(lines)
