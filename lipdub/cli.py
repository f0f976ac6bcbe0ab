"""The ``lipdub`` command line.

Each command is a thin layer over the library: it turns flags into options, shows progress and
prints the outcome. User-facing failures (`LipdubError`) are caught once, in `main`, and printed
as a single line with a non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lipdub import __version__
from lipdub.errors import LipdubError
from lipdub.timeline import LengthMode

app = typer.Typer(
    name="lipdub",
    help="Audio-driven lip sync: re-animate the mouth of a video or photo to new speech, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)


def _configure_logging(quiet: bool, verbose: bool, progress_log: bool = False) -> None:
    """Warnings by default; ``progress_log`` shows lipdub's own INFO lines (training progress),
    ``verbose`` everything lipdub logs; third-party libraries stay at WARNING."""
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO if progress_log else logging.WARNING
    logging.getLogger("lipdub").setLevel(level)
    level = logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=stderr, show_path=False)], force=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lipdub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Audio-driven lip sync: re-animate the mouth of a video or photo to new speech, offline."""


@app.command()
def sync(
    face: Path = typer.Argument(..., help="Video (mp4, mov, mkv, webm, avi, ...) or photo (jpg, png, webp) of the person."),
    audio: Path = typer.Argument(..., help="Speech: wav, mp3, m4a/aac, flac, ogg/opus, or a video whose audio track to use."),
    output: Path = typer.Option(..., "--output", "-o", help="Output MP4 (H.264 + AAC). Never overwrites an input."),
    fps: float = typer.Option(25.0, "--fps", min=1.0, max=240.0, help="Frame rate of the output when FACE is a photo."),
    length_mode: LengthMode = typer.Option(
        LengthMode.bounce, "--length-mode",
        help="When video and audio lengths differ: bounce (ping-pong), loop or hold (freeze) extend a shorter "
        "video to the audio's length; cut stops at the shorter; silence keeps the whole video, padding the audio.",
    ),
    face_index: Optional[int] = typer.Option(None, "--face-index", min=0, help="Which face to animate when there are several, counted left to right (default: the largest)."),
    box: Optional[tuple[int, int, int, int]] = typer.Option(None, "--box", help="Force the face region: X1 Y1 X2 Y2 in pixels."),
    pads: tuple[int, int, int, int] = typer.Option((0, 10, 0, 0), "--pads", help="Extra pixels around the face: TOP BOTTOM LEFT RIGHT (as in Wav2Lip)."),
    engine: Optional[str] = typer.Option(
        None, "--engine",
        help="What draws the mouth: 'motion' (default: predicted lip motion moves the speaker's own pixels) or "
        "'generator' (a Wav2Lip-family network; implied by --model, --checkpoint or --profile).",
    ),
    motion_model: Optional[str] = typer.Option(None, "--motion-model", help="Motion engine: the lip motion model (bundled name or .pt file; default: the best bundled one the installation runs: lipdub-motion-whisper-tiny-base with both Whisper extras, lipdub-motion-whisper with the whisper extra, else lipdub-motion)."),
    interior: str = typer.Option("painted", "--interior", help="Motion engine: what paints a mouth opening no input frame shows (a closed-mouth photo): 'painted' (default: procedural cavity and teeth) or 'learned' (the bundled interior network: truer colours, but smooth)."),
    no_hands: bool = typer.Option(False, "--no-hands", help="Motion engine: do not look for hands by the face (faster, about 7 ms a frame; by default a hand in front of the face is kept as it is, never redrawn)."),
    articulation: float = typer.Option(1.0, "--articulation", help="Motion engine: how widely the mouth moves for the speech, 0.25-3. 1 = the speaker's own range (a video) or an average speaker's (a photo); 1.3 = 30 % more."),
    model: Optional[str] = typer.Option(None, "--model", help="Generator engine: a bundled generator by name (see `lipdub models`)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Generator engine: your own generator checkpoint, e.g. Wav2Lip's wav2lip_gan.pth."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="A profile folder from `lipdub personalize`: a motion profile's fine-tuned model and mouth bank (the speaker's own teeth, for a photo or another video of them), or a generator profile."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, max=512, help="Frames rendered together."),
    no_color_match: bool = typer.Option(False, "--no-color-match", help="Paste the generated mouth without matching its colours to the frame."),
    reference: str = typer.Option("self", "--reference", help="Generator reference: 'self' (each frame, as Wav2Lip) or 'first' (the first face, so the original mouth cannot leak)."),
    crf: int = typer.Option(18, "--crf", min=0, max=51, help="H.264 quality (lower is better, 18 is visually lossless)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details of every stage."),
) -> None:
    """Lip-sync FACE (video or photo) to AUDIO and write the result to OUTPUT."""
    _configure_logging(quiet, verbose)
    from lipdub.pipeline import SyncOptions, sync as run_sync

    options = SyncOptions(
        photo_fps=fps, length_mode=length_mode, face_index=face_index, box=box, pads=pads,
        engine=engine, motion_model=motion_model, model=model, checkpoint=checkpoint, profile=profile, batch_size=batch_size,
        color_match=not no_color_match, reference=reference, crf=crf, overwrite=overwrite, interior=interior,
        keep_hands=not no_hands, articulation=articulation,
    )
    if quiet:
        result = run_sync(face, audio, output, options)
    else:
        columns = (
            TextColumn("[bold]lip-sync"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
            TextColumn("{task.fields[fps]:.1f} fps"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        )
        with Progress(*columns, console=stderr, transient=True) as bar:
            task = bar.add_task("sync", total=None, fps=0.0)

            def advance(done: int, total: int) -> None:
                elapsed = bar.tasks[0].elapsed or 0.0
                bar.update(task, completed=done, total=total, fps=done / elapsed if elapsed else 0.0)

            result = run_sync(face, audio, output, options, progress=advance)
    if not quiet:
        stage_fps = ", ".join(f"{stage} {value:.0f}" for stage, value in result.stage_fps().items())
        stderr.print(
            f"wrote {result.output} ({result.frames} frames, {result.duration:.2f} s at {result.fps:.3f} fps, "
            f"model {result.model}); face in {result.frames_with_face} frames, "
            f"{result.frames_untouched} untouched; fps per stage: {stage_fps}",
            soft_wrap=True,
        )


@app.command()
def demo(
    output: Path = typer.Option(Path("lipdub-demo.mp4"), "--output", "-o", help="Where to write the demo video."),
    engine: Optional[str] = typer.Option(None, "--engine", help="'motion' (default) or 'generator'."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Use this generator (generator engine) instead of the default engine."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, errors only."),
) -> None:
    """Lip-sync the bundled sample photo to the bundled sample speech (a first check that all works)."""
    from importlib.resources import files

    assets = files("lipdub") / "assets"
    sync(
        face=Path(str(assets / "sample_face.jpg")), audio=Path(str(assets / "sample_speech.wav")), output=output,
        fps=25.0, length_mode=LengthMode.bounce, face_index=None, box=None, pads=(0, 10, 0, 0),
        engine=engine, motion_model=None, interior="painted", no_hands=False, articulation=1.0, model=None,
        checkpoint=checkpoint, profile=None, batch_size=16, no_color_match=False, reference="self", crf=18,
        overwrite=overwrite, quiet=quiet, verbose=False,
    )


@app.command(name="eval")
def evaluate(
    video: Path = typer.Argument(..., help="The video to judge (e.g. a lipdub result)."),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder for report.json, report.md and the PNG plots."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Judge the video against this audio instead of its own track."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Ground-truth or input video: adds mouth-shape and image-quality figures."),
    judge: Optional[Path] = typer.Option(None, "--judge", help="SyncNet checkpoint to judge with (default: lipdub's bundled expert; also Wav2Lip's lipsync_expert.pth)."),
    max_offset: int = typer.Option(15, "--max-offset", min=1, max=60, help="Audio offsets searched, in frames, each way."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, errors only."),
) -> None:
    """Measure lip sync (LSE-D/LSE-C), mouth shape and image quality of VIDEO; write a report."""
    _configure_logging(quiet, False)
    from lipdub.eval.report import evaluate as run_evaluation

    with Progress(TextColumn("[bold]evaluating"), MofNCompleteColumn(), TextColumn("frames"), TimeElapsedColumn(),
                  console=stderr, transient=True, disable=quiet) as bar:
        task = bar.add_task("eval", total=None)
        report = run_evaluation(video, output_dir, audio=audio, reference=reference, judge_path=judge,
                                max_offset=max_offset, progress=lambda done: bar.update(task, completed=done))
    sync = report["sync"]
    typer.echo(f"LSE-D {sync['lse_d']:.3f}  LSE-C {sync['lse_c']:.3f}  AV offset {sync['av_offset_frames']} frames  "
               f"(judge: {sync['judge']['name']})")
    if report.get("mouth") and "lmd" in report["mouth"]:
        mouth = report["mouth"]
        typer.echo(f"LMD {mouth['lmd']:.4f}  aperture correlation {mouth['aperture_correlation']:.3f} (lag {mouth['aperture_lag_frames']})")
    typer.echo(f"report: {output_dir / 'report.md'}")


@app.command()
def preprocess(
    sources: list[Path] = typer.Argument(..., help="Folders (any layout: LRS2/LRS3, VoxCeleb2, HDTF, flat) or video files."),
    dataset: Path = typer.Option(..., "--output", "-o", help="Dataset folder to create, extend or finish."),
    crop_size: int = typer.Option(96, "--crop-size", help="Face crop size in pixels (96 for Wav2Lip-style models)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", min=0.0, max=0.9, help="Share of speakers held out for validation."),
    val_speakers: Optional[list[str]] = typer.Option(None, "--val-speaker", help="Put this speaker in validation (repeatable)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, max=64, help="Clips processed in parallel."),
    seed: int = typer.Option(0, "--seed", help="Seed of the speaker split."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, errors only."),
) -> None:
    """Build a training dataset: tracked face crops, 16 kHz audio and landmarks per clip, split by speaker."""
    _configure_logging(quiet, False)
    from lipdub.train.preprocess import PreprocessConfig, preprocess as run_preprocess

    config = PreprocessConfig(crop_size=crop_size, val_fraction=val_fraction, seed=seed, workers=workers,
                              val_speakers=tuple(val_speakers) if val_speakers else None)
    with Progress(TextColumn("[bold]preprocess"), BarColumn(), MofNCompleteColumn(), TextColumn("clips"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=stderr, transient=True, disable=quiet) as bar:
        task = bar.add_task("preprocess", total=None)
        report = run_preprocess(sources, dataset, config,
                                progress=lambda done, total, source: bar.update(task, completed=done, total=total))
    typer.echo(f"{report.dataset}: {report.kept} clips ({report.reused} reused), {len(report.skipped)} skipped"
               + (f" (see {report.dataset / 'skipped.csv'})" if report.skipped else ""))


train_app = typer.Typer(help="Train lipdub's networks (most on a dataset made by `lipdub preprocess`; `interior` on the media folder itself).", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _recipe(config_cls, config: Path, overrides: list[str] | None):
    """A training config from a JSON recipe, with ``key=value`` overrides (values parsed as JSON)."""
    import dataclasses
    import json

    recipe = config_cls.from_json(config)
    changes = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or key not in {f.name for f in dataclasses.fields(config_cls)}:
            raise LipdubError(f"--set expects KEY=VALUE with a field of {config.name}, got {item!r}")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    return dataclasses.replace(recipe, **changes)


def _train(kind: str, dataset: Path, run_dir: Path, config: Path, overrides: list[str] | None, fresh: bool) -> None:
    """Run one training recipe (syncnet or generator) and print its last held-out metrics."""
    _configure_logging(False, False, progress_log=True)
    if kind == "syncnet":
        from lipdub.train.syncnet import SyncTrainConfig as recipe_class, train_syncnet as train
    else:
        from lipdub.train.generator import GeneratorTrainConfig as recipe_class, train_generator as train
    metrics = train(dataset, run_dir, _recipe(recipe_class, config, overrides), resume=not fresh)
    typer.echo(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))


_DATASET_ARGUMENT = typer.Argument(..., help="Dataset folder from `lipdub preprocess`.")
_RUN_DIR_OPTION = typer.Option(..., "--output", "-o", help="Run folder: checkpoints, config, data list, metrics.")
_SET_OPTION = typer.Option(None, "--set", help="Override a recipe field: KEY=VALUE (repeatable).")
_FRESH_OPTION = typer.Option(False, "--fresh", help="Start over instead of resuming RUN_DIR's checkpoint.")


@train_app.command("syncnet")
def train_syncnet_command(
    dataset: Path = _DATASET_ARGUMENT,
    run_dir: Path = _RUN_DIR_OPTION,
    config: Path = typer.Option(Path("configs/syncnet_cpu.json"), "--config", help="Training recipe (JSON)."),
    overrides: Optional[list[str]] = _SET_OPTION,
    fresh: bool = _FRESH_OPTION,
) -> None:
    """Train the lip-sync expert (SyncNet) with the Wav2Lip protocol; resumes by default."""
    _train("syncnet", dataset, run_dir, config, overrides, fresh)


@train_app.command("generator")
def train_generator_command(
    dataset: Path = _DATASET_ARGUMENT,
    run_dir: Path = _RUN_DIR_OPTION,
    config: Path = typer.Option(Path("configs/generator_cpu.json"), "--config", help="Training recipe (JSON)."),
    overrides: Optional[list[str]] = _SET_OPTION,
    fresh: bool = _FRESH_OPTION,
) -> None:
    """Train the generator: L1 + frozen-expert sync loss (+ optional GAN stage); resumes by default."""
    _train("generator", dataset, run_dir, config, overrides, fresh)


@train_app.command("motion")
def train_motion_command(
    dataset: Path = _DATASET_ARGUMENT,
    run_dir: Path = _RUN_DIR_OPTION,
    config: Path = typer.Option(Path("configs/motion_cpu.json"), "--config", help="Training recipe (JSON)."),
    overrides: Optional[list[str]] = _SET_OPTION,
) -> None:
    """Train the lip motion model (speech -> lower-face motion) and report held-out aperture r by speaker."""
    _configure_logging(False, False, progress_log=True)
    from lipdub.train.motion import MotionRecipe, train_motion

    result = train_motion(dataset, run_dir, _recipe(MotionRecipe, config, overrides))
    for kind in ("real", "synthetic"):
        if kind in result["val"]:
            summary = result["val"][kind]
            typer.echo(f"val {kind}: aperture r {summary['r']:.3f} over {summary['speakers']} speakers "
                       f"(mean best lag {summary['mean_lag']:+.2f} frames)")


@train_app.command("interior")
def train_interior_command(
    corpus: Path = typer.Argument(..., help="Media folder laid out like ../shared/data (train/real, train/synthetic, silent, expressive): read directly, no `lipdub preprocess` needed."),
    run_dir: Path = _RUN_DIR_OPTION,
    config: Path = typer.Option(Path("configs/interior_cpu.json"), "--config", help="Training recipe (JSON)."),
    overrides: Optional[list[str]] = _SET_OPTION,
    cache: Path = typer.Option(Path(".cache/interior"), "--cache", help="Where tracked mouth crops are cached (reused by later runs)."),
    export: Optional[str] = typer.Option(None, "--export", help="Also bundle the result into lipdub/weights/interior under this name (the default one is lipdub-interior)."),
) -> None:
    """Train the mouth-interior network (self-supervised inpainting of open mouths) and report held-out figures by speaker."""
    _configure_logging(False, False, progress_log=True)
    from lipdub.train.interior import InteriorRecipe, train_interior
    from lipdub.train.interior_data import extract

    if not corpus.is_dir():
        raise LipdubError(f"{corpus} is not a folder")
    recipe = _recipe(InteriorRecipe, config, overrides)
    samples = extract(corpus, cache)
    result = train_interior(samples, run_dir, recipe)
    for size, figures in result["val"].items():
        typer.echo(f"val {size} px ({figures['speakers']} speakers, {figures['frames']} open mouths): "
                   f"L1 learned {figures['l1']['learned']:.2f} / painted {figures['l1']['painted']:.2f} / "
                   f"mean colour {figures['l1']['mean']:.2f}; sharpness vs real learned "
                   f"{figures['sharpness_ratio']['learned']:.2f} / painted {figures['sharpness_ratio']['painted']:.2f}")
    typer.echo(f"{result['steps']} steps in {result['train_minutes']:.1f} min; {run_dir / 'contact_sheet.png'}")
    if export:
        from lipdub.train.export import export_interior

        path = export_interior(run_dir / "checkpoint.pt", export, "learned mouth interior (InteriorNet)",
                               {"validation": result["val"], "train_minutes": result["train_minutes"]})
        typer.echo(f"wrote {path}")


@train_app.command("export-motion")
def export_motion_command(
    runs: list[Path] = typer.Argument(..., help="Finished `lipdub train motion` run folders (one split); several make an ensemble."),
    name: str = typer.Option("lipdub-motion", "--name", help="Name to bundle it under (the default motion model is lipdub-motion)."),
    description: str = typer.Option("", "--description", help="One line for `lipdub models`."),
) -> None:
    """Bundle lip motion run(s) into lipdub/weights/motion (float16; the amplitude gain re-measured on training clips)."""
    import json

    _configure_logging(False, False)
    from lipdub.train.export import export_motion

    path = export_motion(runs, name, description)
    card = json.loads(path.with_suffix(".json").read_text())
    for kind, figures in card["validation"].items():
        typer.echo(f"val {kind}: aperture r {figures['r']:.3f} over {figures['speakers']} speakers "
                   f"(mean best lag {figures['mean_lag']:+.2f} frames)")
    typer.echo(f"wrote {path} (gain {card['gain']:.3f})")


@train_app.command("export")
def export_command(
    checkpoint: Path = typer.Argument(..., help="A run's best.pt (generator or sync expert)."),
    kind: str = typer.Option(..., "--kind", help="generator or expert"),
    name: str = typer.Option(..., "--name", help="Name to bundle it under (e.g. lipdub-compact)."),
    description: str = typer.Option("", "--description", help="One line for `lipdub models`."),
) -> None:
    """Bundle a trained checkpoint into lipdub/weights (float16, under 16 MiB)."""
    from lipdub.train.export import export_expert, export_generator

    if kind == "generator":
        path = export_generator(checkpoint, name, description)
    elif kind == "expert":
        path = export_expert(checkpoint, name, description)
    else:
        raise LipdubError("--kind must be generator or expert")
    typer.echo(f"wrote {path}")


@app.command()
def personalize(
    video: Path = typer.Argument(..., help="A video of the speaker talking (their own voice), e.g. the footage to dub."),
    profile: Path = typer.Option(..., "--output", "-o", help="Profile folder to write (use it with `lipdub sync --profile`)."),
    engine: str = typer.Option("motion", "--engine", help="'motion' (default): fine-tune the lip motion model; 'generator': the compact generator."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Fine-tuning steps (default 150 for motion, 300 for the generator)."),
    base: Optional[Path] = typer.Option(None, "--base-checkpoint", help="Start from this model (default: the bundled one)."),
    bank_size: int = typer.Option(96, "--bank-size", min=0, max=512, help="Motion engine: open mouths of the speaker the profile keeps (0: none)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace PROFILE if it exists."),
) -> None:
    """Fine-tune to one speaker's own video (trained on its first 70 %, scored on the rest): a profile for `sync --profile`.

    A motion profile holds the fine-tuned lip motion model and a mouth bank: up to --bank-size of
    the speaker's open mouths from the same first 70 % (the widest-open one always, then the ones
    that best cover openings and head poses, as JPEG crops with their Face Mesh points). `lipdub
    sync FACE AUDIO --profile PROFILE` borrows teeth and mouth interior from them where FACE (a
    photo, or another video of the speaker) has no open-enough frame of its own.
    """
    import tempfile

    _configure_logging(False, False, progress_log=True)
    from lipdub.fileio import publish_directory
    from lipdub.train.preprocess import PreprocessConfig, preprocess as run_preprocess

    if engine not in ("motion", "generator"):
        raise LipdubError(f"unknown engine {engine!r}; choose motion or generator")
    if not video.is_file():
        raise LipdubError(f"video not found: {video}")
    if profile.exists() and not overwrite:
        raise LipdubError(f"profile {profile} already exists (pass --overwrite to replace it)")
    with tempfile.TemporaryDirectory(prefix="lipdub-personalize-") as work:
        report = run_preprocess([video], Path(work) / "dataset", PreprocessConfig(val_fraction=0.0))
        if not report.kept:
            reason = report.skipped[0][1] if report.skipped else "unknown reason"
            raise LipdubError(f"cannot personalise on {video}: {reason}")
        (clip_dir,) = [p for p in (Path(work) / "dataset" / "clips").iterdir() if p.is_dir()]
        staging = Path(work) / "profile"
        if engine == "motion":
            summary = _personalize_motion(clip_dir, base, staging, steps or 150, video, bank_size)
        else:
            summary = _personalize_generator(clip_dir, base, staging, steps or 300, video)
        publish_directory(staging, profile, overwrite=True)  # never half a profile
    typer.echo(f"wrote {profile}; held-out last 30%: {summary}")


def _personalize_motion(clip_dir: Path, base: Optional[Path], staging: Path, steps: int, video: Path,
                        bank_size: int) -> str:
    import json

    from lipdub.fileio import write_atomic
    from lipdub.motion.predictor import load_motion_model, save_motion_model
    from lipdub.render.profile_bank import BANK_FILE, save_bank
    from lipdub.train.data import read_clips_table
    from lipdub.train.motion import MotionRecipe, load_motion_clip, personalize_motion
    from lipdub.train.mouth_bank import MAX_EYE_PIXELS, build_profile_bank

    predictor = load_motion_model(base)
    recipe = MotionRecipe.of_member(predictor.members[0].recipe)
    (row,) = [r for r in read_clips_table(clip_dir.parent.parent) if r["clip_id"] == clip_dir.name]
    also = sorted({member.features for member in predictor.members} - {recipe.features})
    clip = load_motion_clip(clip_dir, row, recipe, also=also)
    if clip is None:
        raise LipdubError(f"cannot personalise on {video}: no usable speech or face track")
    result = personalize_motion(clip, predictor.members, steps=steps)
    staging.mkdir(parents=True)
    save_motion_model(predictor, staging / "motion.pt")
    meta = {
        "engine": "motion", "name": f"profile-{video.stem}", "weights": "motion.pt",
        "description": f"{predictor.name} fine-tuned for {steps} steps on {result['frames_trained']} frames of {video.name}",
        "mouth_bank": None,
    }
    bank_note = "no mouth bank"
    if bank_size > 0:
        # The bank comes from the frames the model trained on: the held-out rest stays unseen.
        stop = int(result["frames_trained"])
        logging.getLogger("lipdub").info("choosing the mouth bank among the first %d frames", stop)
        bank = build_profile_bank(video, stop_frame=stop, capacity=bank_size)
        if bank is not None:
            size = save_bank(bank, staging / BANK_FILE)
            meta["mouth_bank"] = {"file": BANK_FILE, "entries": len(bank), "bytes": size,
                                  "source_frames": [0, stop], "max_eye_pixels": MAX_EYE_PIXELS}
            bank_note = f"mouth bank {len(bank)} mouths, {size / 1e6:.2f} MB"
    write_atomic(staging / "profile.json", json.dumps(meta, indent=2) + "\n")
    write_atomic(staging / "report.json", json.dumps(result, indent=2) + "\n")
    return (f"aperture r generic {result['generic_r']:.3f} -> personalised {result['personalised_r']:.3f}; "
            f"{bank_note}")


def _personalize_generator(clip_dir: Path, base: Optional[Path], staging: Path, steps: int, video: Path) -> str:
    from lipdub.eval.judge import bundled_judge_path
    from lipdub.models.registry import DEFAULT_MODEL, WEIGHTS_DIR
    from lipdub.train.generator import personalize as run_personalize

    base = base or WEIGHTS_DIR / f"{DEFAULT_MODEL}.pt"
    if not base.is_file():
        raise LipdubError(f"no base generator: {base} is missing; pass --base-checkpoint")
    result = run_personalize(clip_dir, base, staging, steps=steps, syncnet_checkpoint=bundled_judge_path(),
                             name=f"profile-{video.stem}")
    return f"generic {result.generic} -> personalised {result.personalized}"


@app.command()
def batch(
    inputs: Optional[list[Path]] = typer.Argument(
        None, help="A manifest CSV (columns face, audio, output and option columns such as length_mode, face_index, "
        "engine; paths relative to the manifest's folder). With --face: the speech tracks instead.",
    ),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the outputs and batch-summary.csv (created if needed)."),
    face: Optional[Path] = typer.Option(None, "--face", help="Shorthand: dub this video or photo with each speech track given (talk.mp4 + fr.wav -> talk_fr.mp4)."),
    options: Optional[str] = typer.Option(None, "--options", help='Options of every row as JSON, e.g. \'{"length_mode": "cut"}\'; manifest cells override them.'),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Folder of personalisation profiles that the profile column names."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Jobs at once (default: one per two CPU cores, at most one per row)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads per job (default: the cores divided among the workers)."),
    use_ray: bool = typer.Option(False, "--ray", help="Run the jobs as Ray tasks on a local Ray started for this batch."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Run the jobs as Ray tasks on this running cluster ('auto', 'ray://HEAD:10001')."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table, errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details of every job."),
) -> None:
    """Dub many videos: one job per manifest row, resumable, locally or on Ray; a summary at the end.

    Finished outputs are skipped (each is opened to check it is complete); a failing row is reported and the others go on; the exit code is non-zero if any row failed.
    """
    _configure_logging(quiet, verbose, progress_log=verbose)
    from lipdub.serving import batch as batching
    from lipdub.serving import executors
    from lipdub.serving.options import JobOptions

    defaults = JobOptions.parse(options)
    inputs = inputs or []
    if face is not None:
        rows = batching.rows_for_tracks(face, inputs, output_dir, defaults)
    elif len(inputs) == 1:
        rows = batching.read_manifest(inputs[0], output_dir, defaults)
    else:
        raise LipdubError("give one manifest CSV, or --face VIDEO and one or more speech tracks")
    if use_ray or ray_address:
        factory = executors.ray_executor(ray_address, workers, threads, log_to_driver=verbose)
    else:
        factory = executors.local_executor(workers, threads)
    rows = batching.validate_rows(rows)
    for row in rows:
        if row.error:
            stderr.print(f"row {row.row}: invalid: {row.error}", highlight=False, soft_wrap=True)
    if quiet:
        report = batching.run_batch(rows, output_dir, factory, profiles)
    else:
        columns = (TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TextColumn("jobs"),
                   TextColumn("{task.fields[frames]} frames"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=stderr) as bar:
            task = bar.add_task("batch", total=None, frames=0)

            def advance(done: int, total: int, result) -> None:
                frames = bar.tasks[0].fields["frames"] + (result.frames if result is not None else 0)
                bar.update(task, completed=done, total=total, frames=frames)

            report = batching.run_batch(rows, output_dir, factory, profiles, progress=advance)
        _print_batch_table(report)
    if report.failed:
        raise LipdubError(f"{len(report.failed)} of {len(report.results)} rows failed (see {output_dir / batching.SUMMARY_NAME})")


def _print_batch_table(report) -> None:
    from rich.table import Table

    from lipdub.serving.batch import summary_rows

    table = Table(title=f"lipdub batch: {report.jobs_done} dubbed in {report.seconds:.0f} s on {report.backend} "
                  f"({report.workers} worker{'s' if report.workers != 1 else ''})", title_justify="left")
    styles = {"done": "green", "skipped": "cyan", "failed": "red", "invalid": "red"}
    for name, justify in (("row", "right"), ("output", "left"), ("status", "left"), ("frames", "right"),
                          ("seconds", "right"), ("fps", "right"), ("error", "left"), ("warning", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for row in summary_rows(report):
        row["output"] = Path(row["output"]).name
        row["status"] = f"[{styles.get(row['status'], '')}]{row['status']}[/]"
        table.add_row(*row.values())
    stderr.print(table)


@app.command(name="eval-set")
def evaluate_set_command(
    sources: list[Path] = typer.Argument(..., help="Real talking clips (files or folders) with their own synchronous speech."),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder for per-clip reports and table.md / results.json."),
    protocol: str = typer.Option("video", "--protocol", help="image: first frame + the clip's audio; video: the clip with a far (first-frame) reference; crossdub: each clip dubbed with the next clip's speech, its mouth compared with that clip's real mouth (needs 2+ clips); dub: each clip dubbed with each --speech file (sharpness, expression, pauses, render r)."),
    judge: Optional[Path] = typer.Option(None, "--judge", help="SyncNet checkpoint to judge with (default: the bundled expert)."),
    speech: Optional[list[Path]] = typer.Option(None, "--speech", help="dub protocol: speech file(s) every clip is dubbed with (repeatable)."),
    engine: Optional[str] = typer.Option(None, "--engine", help="Engine to evaluate: 'motion' (default) or 'generator' (implied by --checkpoint / --profile)."),
    interior: str = typer.Option("painted", "--interior", help="Motion engine: 'painted' (default) or 'learned' mouth interior."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Generator to evaluate (generator engine)."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="A personalisation profile to evaluate (motion: its model and mouth bank; or a generator profile)."),
    motion_model: Optional[str] = typer.Option(None, "--motion-model", help="Motion engine: the lip motion model to evaluate (bundled name or .pt file; default: the bundled default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, errors only."),
) -> None:
    """Reconstruct real clips from their own audio (or cross-dub them) and compare with the real videos (the yardstick).

    Besides sync and mouth shape, every row reports the mouth's motion in the audio's pauses of 2 s or more relative to speech (pause ratio; n/a without such a pause) and, for video and crossdub, whether the face video's expression is kept (expression r / range), how faithfully the renderer met its own target opening (render r), and how steadily the tracker reads the face video's lips (lip retest: the mean change of Face Mesh's mouth opening after a slight re-compression; over 0.02 eye widths it cannot read them, and render r there says little).
    """
    import json

    _configure_logging(quiet, False)
    from lipdub.eval.protocols import evaluate_set, find_clips, format_table

    clips = find_clips(sources)
    with Progress(TextColumn("[bold]eval-set"), BarColumn(), MofNCompleteColumn(), TextColumn("clips {task.description}"),
                  TimeElapsedColumn(), console=stderr, transient=True, disable=quiet) as bar:
        task = bar.add_task("", total=len(clips))
        result = evaluate_set(clips, protocol, output_dir, judge_path=judge, speech_files=speech, engine=engine, interior=interior, checkpoint=checkpoint,
                              profile=profile, **({"motion_model": motion_model} if motion_model else {}), progress=lambda done, total, name: bar.update(task, completed=done, total=total, description=name))
    table = format_table(result)
    (output_dir / "table.md").write_text(table + "\n")
    (output_dir / "results.json").write_text(json.dumps(result, indent=1))
    typer.echo(table)


def _dataset_and_rgb_judge(command: str, dataset: Path, split: str, kinds: list[str], judge: Optional[Path],
                           offsets_table: Optional[Path] = None):
    """The clips of one split and an expert that reads lipdub's RGB crops (eval-expert, align-dataset)."""
    from lipdub.eval.judge import load_judge
    from lipdub.train.data import load_dataset

    try:
        clips = load_dataset(dataset, split, kinds=kinds, offsets_table=offsets_table)
    except ValueError as error:
        raise LipdubError(str(error)) from None
    if not clips:
        raise LipdubError(f"{dataset}: no {split} clips of kind {', '.join(kinds)} with audio")
    expert = load_judge(judge)
    if expert.channel_order != "rgb":
        raise LipdubError(f"{command} reads lipdub datasets (RGB crops); a BGR expert needs its own protocol")
    return clips, expert


@app.command(name="eval-expert")
def evaluate_expert_command(
    dataset: Path = typer.Argument(..., help="Dataset folder from `lipdub preprocess`."),
    judge: Optional[Path] = typer.Option(None, "--judge", help="SyncNet checkpoint (default: the bundled expert)."),
    split: str = typer.Option("val", "--split", help="train, val or all."),
    kinds: list[str] = typer.Option(["real"], "--kind", help="Clip kinds to include (repeatable): real, synthetic."),
    window_seconds: float = typer.Option(1.0, "--window", help="Length of the windows offsets are detected on, in seconds."),
    offsets_table: Optional[Path] = typer.Option(None, "--offsets", help="Reference audio lags (CSV: clip_id, av_offset in frames) to score against instead of DATASET/av_offsets.csv, e.g. measured by an independent model."),
) -> None:
    """Offset-detection and pair accuracy of a SyncNet expert on a dataset split (held-out speakers by default).

    Prints one row per clip: how many windows find the file's own alignment (shift 0, +-1 frame),
    the shift the whole clip points to and its confidence, and how many windows agree with that
    shift. A clip recorded with a lag shows windows agreeing with each other but not with 0;
    --offsets re-times such clips by a reference lag first, so "true offset" means that lag.
    """
    _configure_logging(False, False)
    from lipdub.train.data import SyncPairs
    from lipdub.train.syncnet import clip_offsets, pair_accuracy, window_hit_rate

    import torch

    clips, expert = _dataset_and_rgb_judge("eval-expert", dataset, split, kinds, judge, offsets_table)
    per_clip = [c for c in clip_offsets(expert.network, clips, window_seconds=window_seconds) if c.window_offsets]
    if not per_clip:
        raise LipdubError(f"no clip is long enough for a {window_seconds:g} s window with +-15 frames of shift")
    pairs = pair_accuracy(expert.network, SyncPairs(clips, seed=12345), 512, torch.device("cpu"))
    typer.echo("| clip | windows | at 0 (+-1) | clip offset | confidence | at clip offset (+-1) |")
    typer.echo("|---|---:|---:|---:|---:|---:|")
    for c in per_clip:
        typer.echo(f"| {c.clip_id} | {len(c.window_offsets)} | {c.hits(0)} | {c.clip_offset:+d} | {c.confidence:.3f} "
                   f"| {c.hits(c.clip_offset)} |")
    at_zero = window_hit_rate(per_clip)
    per_clip_mean = sum(c.hits(0) / len(c.window_offsets) for c in per_clip) / len(per_clip)
    consistent = window_hit_rate(per_clip, own_offset=True)
    scored = {c.clip_id for c in per_clip}
    retimed = sum(1 for c in clips if c.av_offset and c.clip_id in scored)
    if retimed:
        source = offsets_table if offsets_table is not None else dataset / "av_offsets.csv"
        typer.echo(f"note: {retimed} clips are re-timed by {source}; offsets are measured after that")
    typer.echo(f"{expert.name} on {len(per_clip)} {split} clips ({', '.join(kinds)}), {window_seconds:g} s windows, "
               f"shifts +-15: offset detection {at_zero:.3f} (true offset 0 within +-1 frame; mean over clips "
               f"{per_clip_mean:.3f}); agreement with each clip's own offset {consistent:.3f}; "
               f"pair accuracy {pairs['val_pair_acc']:.3f}")


@app.command(name="align-dataset")
def align_dataset_command(
    dataset: Path = typer.Argument(..., help="Dataset folder from `lipdub preprocess`."),
    judge: Optional[Path] = typer.Option(None, "--judge", help="SyncNet checkpoint (default: the bundled expert). Use one not trained on these clips."),
    split: str = typer.Option("all", "--split", help="train, val or all."),
    kinds: list[str] = typer.Option(["real", "synthetic"], "--kind", help="Clip kinds to measure (repeatable)."),
    min_confidence: float = typer.Option(0.05, "--min-confidence", help="Apply a clip's offset only when its whole-clip confidence reaches this."),
    max_shift: int = typer.Option(6, "--max-shift", help="Never record more than this many frames of lag (larger = a failed measurement)."),
    min_shift: int = typer.Option(2, "--min-shift", help="Leave a clip alone when the measured lag is smaller than this (1 frame is within an expert's precision)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the measurements, write nothing."),
) -> None:
    """Measure each clip's audio lag with a sync expert and record it in DATASET/av_offsets.csv.

    Training and evaluation then re-time those clips' audio. A second run measures what is left after the recorded offsets and adds to it.
    """
    _configure_logging(False, False)
    from lipdub.train.align import align_dataset
    from lipdub.train.syncnet import clip_offsets

    clips, expert = _dataset_and_rgb_judge("align-dataset", dataset, split, kinds, judge)
    decisions = align_dataset(dataset, clips, lambda c: clip_offsets(expert.network, c), expert.name,
                              min_confidence=min_confidence, max_shift=max_shift, min_shift=min_shift, dry_run=dry_run)
    typer.echo("| clip | recorded before | measured | confidence | recorded now | note |")
    typer.echo("|---|---:|---:|---:|---:|---|")
    for d in decisions:
        typer.echo(f"| {d.clip_id} | {d.previous:+d} | {d.measured:+d} | {d.confidence:.3f} | {d.new:+d} | {d.reason} |")
    changed = sum(d.new != d.previous for d in decisions)
    typer.echo(f"{changed} of {len(decisions)} clips changed" + (" (dry run: nothing written)" if dry_run else ""))


@app.command()
def live(
    face: Path = typer.Argument(..., help="Photo of the person (jpg, png, webp), or a short video of them (an idle clip: its first --loop-seconds play forward and back while it speaks)."),
    audio: str = typer.Option("-", "--audio", "-a", help="Speech: a file (any format `sync` takes), or '-' for raw 16 kHz mono s16le PCM on standard input as it arrives (e.g. `ffmpeg -f pulse -i default -f s16le -ar 16000 -ac 1 -`)."),
    output: str = typer.Option("-", "--output", "-o", help="Where the frames go: a .y4m file, or '-' for a YUV4MPEG2 stream on standard output (pipe it into `ffplay -` or `mpv -`)."),
    fps: Optional[float] = typer.Option(None, "--fps", min=1.0, max=120.0, help="Frame rate of a photo's stream (default 25); a video plays at its own."),
    loop_seconds: float = typer.Option(10.0, "--loop-seconds", min=0.5, max=60.0, help="How much of a video to loop (its frames are kept uncompressed on disk while the avatar runs)."),
    realtime: bool = typer.Option(False, "--realtime", help="Feed an audio file at its own speed, as a live source would (to see the delay); standard input is always live."),
    chunk_ms: float = typer.Option(40.0, "--chunk-ms", min=1.0, max=2000.0, help="Audio read per step, in milliseconds."),
    face_index: Optional[int] = typer.Option(None, "--face-index", min=0, help="Which face to animate when the picture shows several, counted left to right (default: the largest)."),
    max_side: Optional[int] = typer.Option(None, "--max-side", min=64, help="Shrink the photo or video first so that its longer side is at most this many pixels (a big portrait draws slower than real time on a small CPU)."),
    motion_model: Optional[str] = typer.Option(None, "--motion-model", help="A causal lip motion model (default: the bundled lipdub-motion-causal; the offline models look 0.3 s ahead and cannot stream)."),
    interior: str = typer.Option("painted", "--interior", help="What paints a mouth opening the picture does not show: 'painted' (default) or 'learned'."),
    no_color_match: bool = typer.Option(False, "--no-color-match", help="Do not match a borrowed mouth's colours to the picture."),
    articulation: float = typer.Option(1.0, "--articulation", help="How widely the mouth moves for the speech, 0.25-3 (1 = an average speaker's, or the video's own)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details."),
) -> None:
    """Animate FACE (a photo or an idle video) live from streamed speech: each frame leaves about 0.3 s after its sound (a talking avatar)."""
    _configure_logging(quiet, verbose)
    from lipdub.fileio import AtomicFile
    from lipdub.live import LiveAvatar, run_live
    from lipdub.media.audio import iter_audio, iter_raw_pcm, rechunk
    from lipdub.media.y4m import Y4MWriter
    from lipdub.pipeline import SyncOptions, check_output

    to_stdout = output == "-"
    if to_stdout and sys.stdout.isatty():
        raise LipdubError("the y4m stream would go to the terminal: pipe it (`| ffplay -`) or give --output FILE.y4m")
    if not to_stdout:
        target = Path(output)
        if target.suffix.lower() != ".y4m":
            raise LipdubError(f"live writes a YUV4MPEG2 stream: name the output *.y4m, not {target.name}")
        check_output(target, (face,) if audio == "-" else (face, Path(audio)), overwrite)
    if audio == "-" and sys.stdin.isatty():
        raise LipdubError("no speech: pipe 16 kHz mono s16le PCM into standard input, or give --audio FILE")
    if audio != "-" and not Path(audio).is_file():
        raise LipdubError(f"audio not found: {audio}")
    import torch

    # The motion network runs on a few frames per step: with two intra-op threads one step in ten
    # waited ~100 ms for a thread to wake (measured: 4 ms median either way, max 10 ms on one thread
    # and 114 ms on two), and a live frame is as late as its slowest step.
    torch.set_num_threads(1)
    options = SyncOptions(color_match=not no_color_match, interior=interior, face_index=face_index,
                          articulation=articulation)
    chunk = max(1, int(round(16000 * chunk_ms / 1000.0)))
    with LiveAvatar(face, fps=fps, motion_model=motion_model, options=options, max_side=max_side,
                    loop_seconds=loop_seconds) as avatar:
        if audio == "-":
            pieces = iter_raw_pcm(lambda n: os.read(sys.stdin.fileno(), n), chunk)
        else:
            pieces = rechunk(iter_audio(Path(audio), sample_rate=avatar.sample_rate), chunk)
        height, width = avatar.frame_shape
        if not quiet:
            what = "" if avatar.is_photo else f" (a loop of {avatar.loop_frames} frames)"
            stderr.print(f"live: {face}{what} {width}x{height} at {avatar.fps:g} fps, motion model {avatar.model_name}, "
                         f"latency {1000 * avatar.latency_seconds:.0f} ms + drawing", soft_wrap=True)
        if to_stdout:
            writer = Y4MWriter(sys.stdout.buffer, width, height, avatar.fps, flush_each_frame=True)
            try:
                run = _live_frames(run_live(avatar, pieces, writer.write, realtime=realtime))
            except BrokenPipeError:
                raise LipdubError("the reader of the stream closed it") from None
        else:
            with AtomicFile(output, overwrite=overwrite) as file:  # an empty run leaves no file
                run = _live_frames(run_live(avatar, pieces, Y4MWriter(file.file, width, height, avatar.fps).write,
                                            realtime=realtime))
    if not quiet:
        import numpy as np

        delays = np.asarray(run.delays)
        stderr.print(f"live: {run.frames} frames for {run.speech_seconds:.2f} s of speech in {run.wall_seconds:.2f} s "
                     f"({run.frames_per_second:.1f} fps); frame delay median {1000 * np.median(delays):.0f} ms, "
                     f"95th percentile {1000 * np.percentile(delays, 95):.0f} ms"
                     + ("" if realtime or audio == "-" else " (not paced: see --realtime)"), soft_wrap=True)


def _live_frames(run):
    """``run`` if it drew anything, else the one-line error."""
    if run.frames == 0:
        raise LipdubError("no audio arrived: nothing was drawn")
    return run


@app.command()
def models() -> None:
    """List the models installed with lipdub: lip motion models and the mouth interior (motion engine), generators."""
    import json

    from lipdub.models.registry import bundled_models
    from lipdub.motion.predictor import WEIGHTS_DIR as MOTION_DIR

    from lipdub.render.learned_interior import INTERIOR_DIR

    for folder, role in ((MOTION_DIR, "motion engine"), (INTERIOR_DIR, "mouth interior (motion engine)")):
        for card in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                description = json.loads(card.read_text()).get("description", "")
            except (OSError, ValueError):
                description = ""
            typer.echo(f"{card.stem}\t{role}\t{description}")
    specs = bundled_models()
    if not specs:
        typer.echo("no bundled generator is installed; use `lipdub sync --engine generator --checkpoint path/to/wav2lip_gan.pth`")
        return
    for spec in specs:
        typer.echo(f"{spec.name}\t{spec.architecture}\t{spec.img_size}px\t{spec.description}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder for the job database and job files (default: ./lipdub-data, or LIPDUB_DATA_DIR)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, max=64, help="Jobs run at once (default: 1, or LIPDUB_WORKERS; 0 queues jobs without running them)."),
    max_upload_mb: Optional[float] = typer.Option(None, "--max-upload-mb", min=0.001, help="Largest face or audio upload, each, in MiB (default: 500)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.1, help="Longest face video or speech accepted, in seconds (default: 600)."),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Folder of personalisation profiles that jobs may name."),
    live_sessions: Optional[int] = typer.Option(None, "--live-sessions", min=0, max=16, help="Live avatars (WebSocket /v1/live, page /live) drawn at once (default: 1, or LIPDUB_LIVE_SESSIONS; 0: none)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only (no access log)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details of every job."),
) -> None:
    """Serve the HTTP job API (POST /v1/jobs, GET /v1/jobs/ID, ...; schema at /openapi.json) and live
    avatars (WebSocket /v1/live; a page to try one at /live).

    Set LIPDUB_TOKEN to require "Authorization: Bearer TOKEN" on every job request (and the token in
    a live connection's first message).
    """
    _configure_logging(quiet, verbose, progress_log=True)
    try:
        import uvicorn

        from lipdub.serving.api import MIB, ServerSettings, create_app
    except ImportError as error:
        raise LipdubError(f"the job API needs the serve extra ({error.name} is missing): pip install 'lipdub[serve]'") from None
    given = {"data_dir": data, "workers": workers, "max_seconds": max_seconds, "profiles_dir": profiles,
             "live_sessions": live_sessions,
             "max_upload_bytes": None if max_upload_mb is None else int(max_upload_mb * MIB)}
    from pydantic import ValidationError

    try:
        settings = ServerSettings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        from lipdub.serving.options import one_line

        raise LipdubError(f"server settings: {one_line(error)}") from None
    try:
        application = create_app(settings)
    except OSError as error:
        raise LipdubError(f"cannot use data folder {settings.data_dir}: {error.strerror or error}") from None
    auth = "a bearer token (LIPDUB_TOKEN)" if settings.token is not None else "no token"
    stderr.print(f"lipdub job API on http://{host}:{port}/v1/ (data {settings.data_dir}, {settings.workers} worker(s), {auth}); "
                 f"live avatars: http://{host}:{port}/live ({settings.live_sessions} at once)",
                 soft_wrap=True, highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="error" if quiet else "info" if verbose else "warning",
                access_log=verbose, log_config=None)


@app.command(name="app")
def app_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (127.0.0.1: this machine only)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to serve on."),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Folder whose sub-folders the page offers as personalisation profiles."),
    max_seconds: float = typer.Option(600.0, "--max-seconds", min=1.0, help="Longest face video or speech track accepted, in seconds."),
    max_upload_mb: int = typer.Option(500, "--max-upload-mb", min=1, help="Largest upload accepted, in MB."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every run's details."),
) -> None:
    """Serve the web app: upload or record a face and a speech track, dub, watch, download, evaluate."""
    _configure_logging(False, verbose, progress_log=True)
    if profiles is not None and not profiles.is_dir():
        raise LipdubError(f"profile folder not found: {profiles}")
    from lipdub.serving.app import launch

    launch(host, port, profiles=profiles, max_seconds=max_seconds, max_upload_mb=max_upload_mb,
           announce=lambda url: stderr.print(f"lipdub app: open {url} in a browser (Ctrl+C stops it)", highlight=False))


#: How the TFLite and absl lines begin. TFLite writes its "INFO: " prefix and the message in two
#: calls; when the message half lands while `lipdub.face.detect` has descriptor 2 on /dev/null, the
#: prefix is left alone in the pipe, unterminated, and reaches the terminal at exit as a bare "INFO:".
NATIVE_PREFIXES = (b"INFO: Created TensorFlow Lite", b"WARNING: All log messages before absl")

#: Lines mediapipe's native code (TFLite, absl) writes straight to file descriptor 2 from its own
#: threads, whenever a graph starts or restarts. They are noise to a user and would break the
#: promise that an error is one line, so the CLI drops them.
NATIVE_CHATTER = re.compile(rb"^(?:[WI]0000 \d\d:\d\d:|" + b"|".join(map(re.escape, NATIVE_PREFIXES)) + rb")")


def is_native_chatter(line: bytes) -> bool:
    """Whether ``line`` (as read from the pipe, newline included if it had one) is mediapipe noise:
    a whole chatter line, or an unterminated fragment that one of them begins with."""
    if NATIVE_CHATTER.match(line):
        return True
    fragment = line.strip()
    return not line.endswith(b"\n") and bool(fragment) and any(p.startswith(fragment) for p in NATIVE_PREFIXES)


@contextlib.contextmanager
def _native_stderr_filtered(drop=is_native_chatter):
    """Route file descriptor 2 through a thread that drops the lines ``drop`` flags; yield the real stderr.

    Python-level output (rich's console, tracebacks of bugs) still reaches the terminal: the console
    writes to the yielded stream, which is the original stderr, so it also keeps its tty detection.
    """
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as reader, os.fdopen(os.dup(original), "wb", buffering=0) as out:
            for line in reader:
                if not drop(line):
                    out.write(line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    real_stderr = os.fdopen(os.dup(original), "w", buffering=1)
    try:
        yield real_stderr
    finally:
        real_stderr.flush()
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the pump sees EOF and stops
        thread.join(timeout=5)
        os.close(original)
        real_stderr.close()


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with`` / ``finally`` runs on the way out."""


@contextlib.contextmanager
def _terminate_as_exception():
    """Turn SIGTERM into `_Terminated` while the CLI runs.

    By default SIGTERM ends the process on the spot, like SIGKILL: unnamed output files vanish
    with it (`lipdub.fileio`), but a named fallback temporary would stay. Raising instead lets the
    writers discard their files, the spools close and the one-line message print; SIGKILL needs
    none of this, because nothing lipdub writes has a name before it is complete.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user-facing failures into one line and exit code 1."""
    code = 0
    with _native_stderr_filtered() as real_stderr, _terminate_as_exception():
        stderr.file = real_stderr
        try:
            app(args=argv)  # standalone mode: usage errors print their own message and exit 2
        except LipdubError as error:
            stderr.print(f"[red]lipdub: error:[/red] {error}", highlight=False, soft_wrap=True)
            code = 1
        except KeyboardInterrupt:
            stderr.print("lipdub: interrupted")
            code = 130
        except _Terminated:
            stderr.print("lipdub: terminated (unfinished output discarded)")
            code = 143
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                stderr.print(exit_.code)
            elif code == 130:  # click turns Ctrl-C inside a command into exit 130, silently
                stderr.print("lipdub: interrupted")
    sys.exit(code)


if __name__ == "__main__":
    main()
