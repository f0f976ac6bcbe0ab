"""Evaluation protocols: real clips re-created from their own audio, or dubbed with each other's.

A real talking clip is its own ground truth: drive the generator with the clip's audio and the
measured mouth should move like the real one. Two reconstruction protocols, as in the literature:

- ``image`` (image-driven): the first frame alone, as a photo, plus the clip's audio. Nothing of
  the real mouth motion is visible to the model.
- ``video`` (video-driven): the clip itself as the face input (pose and upper face follow the real
  video), but the generator's reference is the clip's FIRST frame for every output frame instead of
  the frame itself, so the model cannot copy the true mouth from its reference. (Wav2Lip's own
  inference feeds the frame itself as reference, which leaks the real mouth into the result.)

A third protocol measures mouth shape where a reconstruction cannot:

- ``crossdub``: clip A's video dubbed with clip B's speech (clip i with clip i+1 of the set, the
  last with the first), and the dubbed mouth's opening compared with B's REAL mouth saying the
  same words. In a reconstruction the model may copy A's own mouth (through the reference, or
  because pose and jaw come from the video) and score well without following the audio; A's mouth
  said other words, so here it can only cost. The figures are the aperture correlation at lag 0
  and the best one within ±5 frames with its lag (`lipdub.eval.mouth.aperture_correlation`), with
  B's aperture resampled by time onto the output's frames when the frame rates differ.

Every protocol also reports how still the mouth is in the driving audio's pauses of 2 s or more
(`lipdub.eval.pauses.pause_motion_ratio`; n/a when the audio has no such pause, which is the case
for every natural clip in the shared data, so judging it needs audio with a pause spliced in), next
to the same figure for the real clip; and, where the output follows a face video (video,
crossdub), whether the expression of that video is kept (`lipdub.eval.expression`).

And one for what a user does, where no ground truth exists:

- ``dub``: every clip dubbed with every ``speech`` file given (other languages, neutral speech
  over an expressive face), cut to the shorter of the two. It reports what needs no real mouth:
  mouth sharpness against the input, whether the input's expression is kept, how still the mouth
  is in the speech's pauses, and how faithfully the renderer met its own target shape.

`evaluate_set` runs one protocol over a set of clips and reports, per clip and on average, the
figures of the generated clip next to the same figures for the real clip (the yardstick; in a
cross-dub the real clip is the speech source B).
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lipdub.errors import LipdubError

logger = logging.getLogger(__name__)

PROTOCOLS = ("image", "video", "crossdub", "dub")
#: Protocols that re-create a clip from its own audio (`reconstruct`).
RECONSTRUCTIONS = ("image", "video")
#: Largest lag (frames) searched by the aperture correlation, as in `lipdub eval`.
MAX_LAG = 5
#: Sample rate the driving audio is read at for speech activity.
ACTIVITY_SAMPLE_RATE = 16000
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


def reconstruct(clip: Path, protocol: str, output: Path, **sync_options):
    """Generate ``clip`` again from its own audio under ``protocol``; returns the `SyncResult`."""
    from lipdub.media.decode import probe_video
    from lipdub.pipeline import sync

    if protocol not in RECONSTRUCTIONS:
        if protocol in PROTOCOLS:
            raise LipdubError(f"{protocol!r} does not reconstruct a clip from its own audio; see `crossdub`")
        raise LipdubError(f"unknown protocol {protocol!r}: choose from {', '.join(PROTOCOLS)}")
    if protocol == "image":
        photo = first_frame_photo(clip, output.with_suffix(".png"))
        return sync(photo, clip, output, photo_fps=probe_video(clip).fps, overwrite=True, **sync_options)
    return sync(clip, clip, output, reference="first", length_mode="cut", overwrite=True, **sync_options)


def crossdub_pairs(clips: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(face video A, speech source B) pairs of the cross-dub protocol: clip i with clip i+1, the last with the first.

    Every clip is dubbed once and lends its speech once, and no clip is dubbed with its own
    speech. Repeated clips are dropped first (a file named both on its own and inside a folder), so
    A ≠ B holds. Needs at least two different clips.
    """
    unique = list(dict.fromkeys(Path(clip) for clip in clips))
    if len(unique) < 2:
        raise LipdubError("the crossdub protocol needs at least two different clips")
    return [(unique[i], unique[(i + 1) % len(unique)]) for i in range(len(unique))]


def resample_by_time(values: np.ndarray, source_fps: float, target_fps: float, frames: int) -> np.ndarray:
    """(frames,) ``values`` sampled at ``source_fps`` read at the times of ``frames`` frames at ``target_fps``.

    Target frame j is at time j / target_fps, i.e. at source position p = j · source_fps /
    target_fps; the value there is the linear interpolation between source frames floor(p) and
    floor(p) + 1 (exactly source frame p when p is whole). NaN past the last source frame (no
    extrapolation) and wherever a source frame used is NaN, so a frame without a face stays unknown.
    Equal rates give the values back unchanged.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    position = np.arange(frames) * (source_fps / target_fps)
    nearest = np.round(position)
    position = np.where(np.abs(position - nearest) < 1e-9, nearest, position)  # whole frames exactly
    below = np.floor(position).astype(np.int64)
    fraction = position - below
    out = np.full(frames, np.nan)
    inside = below < values.size
    exact = inside & (fraction == 0.0)
    out[exact] = values[below[exact]]
    between = inside & (fraction > 0.0) & (below + 1 < values.size)
    lo, hi, w = values[below[between]], values[below[between] + 1], fraction[between]
    out[between] = (1.0 - w) * lo + w * hi
    return out


def crossdub(face: Path, speech: Path, output: Path, **sync_options):
    """Dub ``face``'s video with ``speech``'s audio (the cross-dub protocol's run); returns the `SyncResult`.

    ``length_mode="cut"``: the output stops at the shorter of the two, so output frame k is frame k
    of ``face`` and time k / fps of ``speech``, with nothing looped or held to compare against.
    """
    from lipdub.pipeline import sync

    return sync(face, speech, output, length_mode="cut", overwrite=True, **sync_options)


def render_faithfulness(landmarks: np.ndarray, target_aperture: np.ndarray | None) -> float | None:
    """Pearson r (lag 0) between the mouth opening re-measured on the output and the one the engine
    aimed for; None when the engine reports no targets (the generator engine)."""
    from lipdub.eval.mouth import aperture_correlation, mouth_aperture

    if target_aperture is None:
        return None
    measured = mouth_aperture(landmarks)
    target = np.asarray(target_aperture, np.float64)
    n = min(len(measured), len(target))
    return aperture_correlation(measured[:n], target[:n], max_lag=0).r


def lip_retest(result) -> float | None:
    """How much Face Mesh's reading of the face video's mouth openings changed in the tracking
    pass's retest (`lipdub.face.lip_retest`; eye-corner units, over 0.02 = lips it cannot read);
    None for a photo. Beside render r: a low render r on a clip whose lips the tracker cannot read
    says more about the tracker and the judge (the same network) than about the renderer."""
    reading = getattr(result, "lip_reading", None)
    return None if reading is None or reading.frames == 0 else reading.mean_change


def crossdub_mouth(output_landmarks: np.ndarray, output_fps: float, speech_landmarks: np.ndarray,
                   speech_fps: float, max_lag: int = MAX_LAG) -> dict:
    """Aperture figures of a dubbed mouth against the speech source's real mouth.

    Both (N, 478, 2) landmark arrays hold every frame (NaN without a face). The real aperture is
    resampled by time onto the output's frames (`resample_by_time`), then correlated with the
    output's: ``aperture_r0`` at lag 0, ``aperture_r`` the best within ±``max_lag`` frames and
    ``aperture_lag`` its lag (positive = the dubbed mouth moves late).
    """
    from lipdub.eval.mouth import aperture_correlation, mouth_aperture

    generated = mouth_aperture(output_landmarks)
    real = resample_by_time(mouth_aperture(speech_landmarks), speech_fps, output_fps, generated.size)
    at_zero = aperture_correlation(generated, real, max_lag=0)
    best = aperture_correlation(generated, real, max_lag=max_lag)
    return {"aperture_r0": at_zero.r, "aperture_r": best.r, "aperture_lag": best.lag}


def pause_ratio(landmarks: np.ndarray, fps: float, samples: np.ndarray, sample_rate: int) -> float:
    """`pause_motion_ratio` of the mouth in ``landmarks`` (every frame, NaN without a face) in the
    pauses of the driving audio ``samples`` (sample 0 = frame 0); NaN when it has no 2 s pause."""
    from lipdub.eval.mouth import mouth_aperture
    from lipdub.eval.pauses import pause_motion_ratio, speech_activity

    aperture = mouth_aperture(landmarks)
    active = speech_activity(samples, sample_rate, fps, aperture.size)
    return pause_motion_ratio(aperture, active, fps)


#: Columns of a row beyond the sync figures, in table order; None = not measured.
_FIGURES = ("lmd", "aperture_r", "sharpness", "real_lse_d", "real_lse_c", "real_av_offset", "aperture_r0",
            "aperture_lag", "pause_ratio", "real_pause_ratio", "expression_r", "expression_range", "render_r",
            "lip_retest")


def _known(value):
    """``value``, or None for a NaN: rows say "not measured" one way, and results.json stays JSON."""
    return None if isinstance(value, float) and np.isnan(value) else value


def _row(name: str, report: dict, figures: dict | None = None) -> dict:
    """One table row: the sync figures of ``report``, its mouth/image figures and ``figures`` on top.

    Every row has every column of `format_table` (None where not measured, NaN turned into None).
    """
    mouth = report.get("mouth") or {}
    image = report.get("image") or {}
    row = {
        "clip": name,
        "lse_d": report["sync"]["lse_d"],
        "lse_c": report["sync"]["lse_c"],
        "av_offset": report["sync"]["av_offset_frames"],
        **dict.fromkeys(_FIGURES),
        "lmd": mouth.get("lmd"),
        "aperture_r": mouth.get("aperture_correlation"),
        "aperture_lag": mouth.get("aperture_lag_frames"),
        "sharpness": image.get("mouth_sharpness_ratio"),
    }
    if mouth.get("aperture_generated"):
        from lipdub.eval.mouth import aperture_correlation

        row["aperture_r0"] = aperture_correlation(mouth["aperture_generated"], mouth["aperture_reference"], max_lag=0).r
    row.update(figures or {})
    return {key: _known(value) for key, value in row.items()}


def _real_figures(real: dict) -> dict:
    return {"real_lse_d": real["sync"]["lse_d"], "real_lse_c": real["sync"]["lse_c"],
            "real_av_offset": real["sync"]["av_offset_frames"]}


def _mean(rows: list[dict]) -> dict:
    """Per column, the mean of the rows' numbers (None, NaN and text skipped); absent when none."""
    mean = {}
    for key in rows[0]:
        values = [row[key] for row in rows if isinstance(row.get(key), (int, float)) and not np.isnan(row[key])]
        if key != "clip" and values:
            mean[key] = float(np.mean(values))
    return mean


def evaluate_set(clips: Sequence[Path], protocol: str, output_dir: Path, judge_path: Path | None = None,
                 progress: Callable[[int, int, str], None] | None = None,
                 speech_files: Sequence[Path] | None = None, **sync_options) -> dict:
    """Run ``protocol`` over ``clips``; returns {"protocol", "judge", "rows": [...], "mean": {...}}.

    Each row holds the generated clip's LSE-D/LSE-C/AV offset against its driving audio; LMD,
    mouth-aperture correlation (best within ±5 frames, its lag, and at lag 0) and mouth sharpness
    (Laplacian variance, generated / real; 1 = as sharp as the real mouth) against the real clip;
    the pause motion ratio against the driving audio's pauses; for the video and crossdub
    protocols the expression figures against the face video; and the real clip's own LSE-D/LSE-C/
    offset and pause ratio. In ``crossdub`` rows (named "A ← B") the real clip is B, the mouth
    figures come from `crossdub_mouth` (no LMD or sharpness: A's frames are no reference for B's
    words) and the rows also carry "face" and "speech" paths. ``sync_options`` go to
    `lipdub.pipeline.sync` (checkpoint, profile, engine, ...). Clips that fail with a
    `LipdubError` are skipped with a warning.
    """
    from lipdub.eval.expression import expression_fidelity
    from lipdub.eval.report import evaluate_tracked, track_video
    from lipdub.media.audio import load_audio

    if protocol not in PROTOCOLS:
        raise LipdubError(f"unknown protocol {protocol!r}: choose from {', '.join(PROTOCOLS)}")
    if protocol == "dub":
        if not speech_files:
            raise LipdubError("the dub protocol needs at least one speech file (--speech)")
        for path in speech_files:
            if not Path(path).is_file():
                raise LipdubError(f"speech file not found: {path}")
        jobs = [(Path(clip), Path(audio)) for clip in clips for audio in speech_files]
    elif protocol == "crossdub":
        jobs = crossdub_pairs(clips)
    else:
        jobs = [(Path(clip), Path(clip)) for clip in clips]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # The real clips' own evaluations (and tracks), each measured once and dropped after its last use:
    # in a cross-dub every clip is the speech of one pair and the face of another.
    uses = Counter(clip for job in jobs for clip in (set(job) if protocol != "dub" else ()))
    reals: dict[Path, object] = {}
    tracks: dict[Path, object] = {}  # dub: the face clips' tracks

    def real_of(clip: Path):
        if clip not in reals:
            try:
                reals[clip] = evaluate_tracked(clip, output_dir / clip.stem / "real", judge_path=judge_path)
            except LipdubError as error:
                reals[clip] = error
        if isinstance(reals[clip], LipdubError):
            raise reals[clip]
        return reals[clip]

    rows = []
    judge_name = None
    with tempfile.TemporaryDirectory(prefix="lipdub-evalset-") as work:
        for done, (face, speech) in enumerate(jobs):
            name = face.name if protocol not in ("crossdub", "dub") else f"{face.name} ← {speech.name}"
            if progress is not None:
                progress(done, len(jobs), name)
            try:
                if protocol == "dub":
                    # The face clip's own audio need not be speech (or exist): only its track is used.
                    if face not in tracks:
                        tracks[face] = track_video(face)
                    figures = _dub_figures(face, speech, Path(work), output_dir, judge_path, tracks[face], sync_options)
                    generated = figures.pop("evaluation")
                    judge_name = generated.report["sync"]["judge"]["name"]
                    rows.append(_row(name, generated.report, figures))
                    continue
                real = real_of(speech)
                samples = load_audio(speech, sample_rate=ACTIVITY_SAMPLE_RATE)
                real_landmarks = real.track.landmark_array()
                figures = {**_real_figures(real.report),
                           "real_pause_ratio": pause_ratio(real_landmarks, real.track.fps, samples, ACTIVITY_SAMPLE_RATE)}
                if protocol == "crossdub":
                    face_landmarks = real_of(face).track.landmark_array()
                    result = crossdub(face, speech, Path(work) / f"{face.stem}__{speech.stem}.mp4", **sync_options)
                    generated = evaluate_tracked(result.output, output_dir / f"{face.stem}__{speech.stem}" / protocol,
                                                 audio=speech, judge_path=judge_path)
                    landmarks, fps = generated.track.landmark_array(), generated.track.fps
                    figures.update(crossdub_mouth(landmarks, fps, real_landmarks, real.track.fps))
                    figures.update(face=str(face), speech=str(speech))
                else:
                    result = reconstruct(face, protocol, Path(work) / f"{face.stem}.mp4", **sync_options)
                    generated = evaluate_tracked(result.output, output_dir / face.stem / protocol, audio=speech,
                                                 reference=face, judge_path=judge_path, reference_track=real.track)
                    landmarks, fps = generated.track.landmark_array(), generated.track.fps
                    face_landmarks = real_landmarks if protocol == "video" else None
                figures["pause_ratio"] = pause_ratio(landmarks, fps, samples, ACTIVITY_SAMPLE_RATE)
                figures["render_r"] = render_faithfulness(landmarks, result.target_aperture)
                figures["lip_retest"] = lip_retest(result)
                if face_landmarks is not None:
                    expression = expression_fidelity(landmarks, face_landmarks, fps)
                    figures.update(expression_r=expression["r"], expression_range=expression["range_ratio"])
            except LipdubError as error:
                logger.warning("skipping %s: %s", name, error)
                continue
            finally:
                for clip in (set((face, speech)) if protocol != "dub" else set()):
                    uses[clip] -= 1
                    if uses[clip] == 0:
                        reals.pop(clip, None)
            judge_name = generated.report["sync"]["judge"]["name"]
            rows.append(_row(name, generated.report, figures))
    if progress is not None:
        progress(len(jobs), len(jobs), "")
    if not rows:
        raise LipdubError("no clip could be evaluated")
    return {"protocol": protocol, "judge": judge_name, "rows": rows, "mean": _mean(rows)}


def _dub_figures(face: Path, speech: Path, work: Path, output_dir: Path, judge_path: Path | None, face_track,
                 sync_options: dict) -> dict:
    """One ``dub`` row's figures (plus the generated clip's evaluation under "evaluation")."""
    from lipdub.eval.expression import expression_fidelity
    from lipdub.eval.report import evaluate_tracked
    from lipdub.media.audio import load_audio

    result = crossdub(face, speech, work / f"{face.stem}__{speech.stem}.mp4", **sync_options)
    generated = evaluate_tracked(result.output, output_dir / f"{face.stem}__{speech.stem}" / "dub", audio=speech,
                                 reference=face, judge_path=judge_path, reference_track=face_track)
    landmarks, fps = generated.track.landmark_array(), generated.track.fps
    samples = load_audio(speech, sample_rate=ACTIVITY_SAMPLE_RATE)
    expression = expression_fidelity(landmarks, face_track.landmark_array()[: len(landmarks)], fps)
    # The input's own mouth said other words: shape figures against it mean nothing here.
    generated.report.setdefault("mouth", {}).update(lmd=None, aperture_correlation=None, aperture_lag_frames=None,
                                                    aperture_generated=None)
    return {"evaluation": generated, "face": str(face), "speech": str(speech),
            "pause_ratio": pause_ratio(landmarks, fps, samples, ACTIVITY_SAMPLE_RATE),
            "render_r": render_faithfulness(landmarks, result.target_aperture),
            "lip_retest": lip_retest(result),
            "expression_r": expression["r"], "expression_range": expression["range_ratio"]}


#: (header, row key, digits) of `format_table`'s columns, the original ten first.
_COLUMNS = (
    ("LSE-D", "lse_d", 3), ("LSE-C", "lse_c", 3), ("offset", "av_offset", 1), ("LMD", "lmd", 4),
    ("aperture r", "aperture_r", 3), ("mouth sharpness", "sharpness", 3), ("real LSE-D", "real_lse_d", 3),
    ("real LSE-C", "real_lse_c", 3), ("real offset", "real_av_offset", 1), ("aperture r lag 0", "aperture_r0", 3),
    ("lag", "aperture_lag", 1), ("pause ratio", "pause_ratio", 3), ("real pause ratio", "real_pause_ratio", 3),
    ("expression r", "expression_r", 3), ("expression range", "expression_range", 3),
    ("render r", "render_r", 3), ("lip retest", "lip_retest", 3),
)


def format_table(result: dict) -> str:
    """Markdown table of `evaluate_set`'s result, one row per clip and the mean; n/a where not measured."""
    header = "| clip | " + " | ".join(title for title, _, _ in _COLUMNS) + " |\n" + "|---" * (len(_COLUMNS) + 1) + "|"

    def cell(value, digits=3):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "n/a"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = [f"protocol: {result['protocol']}; judge: {result['judge']}", "", header]
    for row in [*result["rows"], {"clip": "**mean**", **result["mean"]}]:
        lines.append("| " + " | ".join([row["clip"], *(cell(row.get(key), digits) for _, key, digits in _COLUMNS)]) + " |")
    return "\n".join(lines)
