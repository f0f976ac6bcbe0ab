"""`lipdub app`: a Gradio page over `lipdub.sync`, for people who would rather not type commands.

The page adds no lip-sync logic of its own (as LivePortrait's ``gradio_pipeline.py`` sits on its
pipeline): the options go through `JobOptions` and the uploads through `inspect_face` /
`inspect_audio`, exactly as the job API and batch check them, then `lipdub.sync` renders and
`lipdub.eval.report.evaluate` (what ``lipdub eval`` runs) judges the result. Every failure a user
can cause reaches the page as the same one-line message the CLI prints, never a traceback.

Offline by construction: Gradio's telemetry and version checks are switched off, the theme uses
the system's fonts (no Google Fonts), no share tunnel is ever opened and server-side rendering
(a Node process) is not used, so the page asks nothing of any host but the one serving it. The
browser test records every request the page makes to hold that true.

Each run writes into its own folder under the app's work folder; `launch` creates that folder
and removes it when the server stops, so results do not pile up in the user's temp directory.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from lipdub.errors import LipdubError
from lipdub.serving.inputs import inspect_audio, inspect_face
from lipdub.serving.options import JobOptions
from lipdub.timeline import LengthMode

logger = logging.getLogger(__name__)

#: The bundled sample the "Use the samples" button loads (the same pair `lipdub demo` dubs).
ASSETS = Path(str(files("lipdub") / "assets"))
SAMPLE_FACE = ASSETS / "sample_face.jpg"
SAMPLE_SPEECH = ASSETS / "sample_speech.wav"
#: The result's file name inside its run folder (and so the name a download gets).
RESULT_NAME = "lipdub-result.mp4"
#: The plots `lipdub eval` may write (a photo's result has only the first), in the page's order.
PLOTS = {"sync_offsets.png": "sync offsets", "mouth_aperture.png": "mouth opening", "mouth_strip.png": "mouths"}
#: Fonts the page asks the browser for: installed ones only, nothing fetched.
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")


@dataclass(frozen=True)
class AppConfig:
    """What the person starting the app decides, not the person using the page.

    ``work_dir`` holds one folder per run (`launch` makes a temporary one); ``profiles`` is the
    folder whose sub-folders are offered as personalisation profiles (by name only, resolved by
    `JobOptions.to_sync_options`); ``max_seconds`` and ``max_upload_mb`` bound what one upload may be;
    runs (and Gradio's copies of uploads and results) older than ``keep_hours`` are removed, so a
    server left running for weeks does not fill its disk.
    """

    work_dir: Path
    profiles: Path | None = None
    max_seconds: float | None = 600.0
    max_upload_mb: int = 500
    keep_hours: float = 24.0


@dataclass
class DubOutcome:
    """What one run of the page produced: the video, a summary line and the evaluation."""

    video: Path
    summary: str
    plots: list[Path] = field(default_factory=list)
    report: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# The work behind the page (no Gradio here, so it is tested without a browser)


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    """A face box typed as ``x1 y1 x2 y2`` (spaces or commas); empty means none."""
    if text is None or not text.strip():
        return None
    parts = [part for part in re.split(r"[\s,;]+", text.strip()) if part]
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", part) for part in parts):
        raise LipdubError(f"box: give four whole numbers x1 y1 x2 y2, got {text.strip()!r}")
    x1, y1, x2, y2 = (int(part) for part in parts)
    return x1, y1, x2, y2


def collect_options(length_mode: str | None = None, face_index: float | None = None, box: str | None = None,
                    engine: str | None = None, motion_model: str | None = None, model: str | None = None,
                    profile: str | None = None, fps: float | None = None,
                    articulation: float | None = None) -> JobOptions:
    """The page's widgets as `JobOptions`, validated with the job API's one-line messages.

    Empty widgets mean "the default"; the values go through `JobOptions.parse` (JSON) rather than
    being trusted, so the page accepts exactly what the API and batch manifests accept.
    """
    fields: dict = {}
    if length_mode:
        fields["length_mode"] = length_mode
    if face_index is not None and str(face_index).strip() != "":
        try:
            number = float(face_index)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number) or number != int(number):
            raise LipdubError(f"face index: a whole number, got {face_index}")
        fields["face_index"] = int(number)
    parsed_box = parse_box(box)
    if parsed_box is not None:
        fields["box"] = list(parsed_box)
    for name, value in (("engine", engine), ("motion_model", motion_model), ("model", model), ("profile", profile)):
        if value:
            fields[name] = value
    if fps:
        fields["fps"] = float(fps)
    if articulation is not None and articulation != "":
        fields["articulation"] = float(articulation)
    return JobOptions.parse(json.dumps(fields))


def pick_face(video: str | None, photo: str | None) -> Path:
    """The one face input the user gave: a video or a photo, never neither or both."""
    if video and photo:
        raise LipdubError("give a face video or a photo, not both (clear one of them)")
    if not video and not photo:
        raise LipdubError("give a face: upload or record a video, or a photo (or press \"Use the samples\")")
    return Path(video or photo)


class StageProgress:
    """Turns `lipdub.sync`'s ``(frames done, total)`` calls into a fraction and a stage line with fps.

    ``report(fraction, text)`` is the page's progress bar (`gr.Progress`). The fps is measured from
    the first rendered batch on, so the tracking pass before it does not dilute the figure. The
    render pass takes the bar from 10 % to 90 %; checking, tracking and evaluating share the rest.
    """

    def __init__(self, report: Callable[[float, str], None], clock: Callable[[], float] = time.perf_counter):
        self.report = report
        self.clock = clock
        self._first: tuple[int, float] | None = None

    def stage(self, fraction: float, text: str) -> None:
        self.report(fraction, text)

    def frames(self, done: int, total: int) -> None:
        now = self.clock()
        if self._first is None:
            self._first = (done, now)
            fps = 0.0
        else:
            first_done, first_time = self._first
            fps = (done - first_done) / (now - first_time) if now > first_time else 0.0
        share = done / total if total else 0.0
        rate = f", {fps:.1f} fps" if fps else ""
        self.report(0.1 + 0.8 * share, f"rendering: {done}/{total} frames{rate}")


def dub(face: Path, audio: Path, options: JobOptions, config: AppConfig,
        progress: StageProgress, evaluate: bool = True) -> DubOutcome:
    """Check the uploads, dub them into a fresh run folder and (optionally) evaluate the result.

    Raises `LipdubError` for anything the user can fix; the run folder of a failed run is removed.
    """
    import shutil

    from lipdub.pipeline import sync

    start = time.perf_counter()
    progress.stage(0.0, "checking the uploads")
    face_upload = inspect_face(face, config.max_seconds)
    inspect_audio(audio, config.max_seconds)
    sync_options = options.to_sync_options(config.profiles)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    prune_runs(config.work_dir, config.keep_hours * 3600)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=config.work_dir))
    try:
        progress.stage(0.05, "tracking the face (first pass)")
        result = sync(face, audio, run_dir / RESULT_NAME, sync_options, progress=progress.frames)
        summary = _summary(result, face_upload.kind)
        plots: list[Path] = []
        report = ""
        if evaluate:
            from lipdub.eval.report import evaluate as run_evaluation

            progress.stage(0.9, "evaluating (lipdub eval)")
            report_dir = run_dir / "eval"
            reference = face if face_upload.kind == "video" else None  # a photo has no frames to compare
            evaluation = run_evaluation(
                result.output, report_dir, reference=reference,
                progress=lambda done: progress.stage(0.9 + 0.1 * min(1.0, done / max(1, result.frames)),
                                                     f"evaluating: {done}/{result.frames} frames"),
            )
            plots = [report_dir / name for name in evaluation["plots"]]
            report = _report_text(report_dir / "report.md")
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    progress.stage(1.0, "done")
    logger.info("app run in %s: %d frames in %.1f s", run_dir, result.frames, seconds)
    return DubOutcome(result.output, f"**Done in {seconds:.1f} s.** {summary}", plots, report, seconds)


def prune_runs(work_dir: Path, max_age_s: float, now: float | None = None) -> list[Path]:
    """Remove run folders last changed more than ``max_age_s`` ago; returns those removed."""
    import shutil

    now = time.time() if now is None else now
    removed = []
    for run_dir in work_dir.glob("run-*"):
        try:
            if run_dir.is_dir() and now - run_dir.stat().st_mtime > max_age_s:
                shutil.rmtree(run_dir, ignore_errors=True)
                removed.append(run_dir)
        except OSError:  # removed by a concurrent run meanwhile
            continue
    return removed


def _summary(result, kind: str) -> str:
    stage_fps = ", ".join(f"{stage} {value:.0f}" for stage, value in result.stage_fps().items())
    from lipdub.face.lip_retest import lip_caution

    caution = lip_caution(getattr(result, "lip_reading", None))
    return ("" if caution is None else f"Warning: {caution}.\n") + (
        f"{result.frames} frames ({result.duration:.2f} s at {result.fps:.2f} fps) from a {kind}, "
        f"model {result.model}; face in {result.frames_with_face} frames, {result.frames_untouched} untouched; "
        f"fps per stage: {stage_fps}"
    )


def _report_text(path: Path) -> str:
    """``lipdub eval``'s report.md without its image links (the page shows the plots beside it)."""
    lines = path.read_text().splitlines()
    return "\n".join("#### " + line.lstrip("# ") if line.startswith("#") else line
                     for line in lines if not line.startswith("!["))


def model_choices() -> tuple[list[str], list[str]]:
    """Names of the bundled lip motion models and generators (what `lipdub models` lists)."""
    from lipdub.models.registry import bundled_models
    from lipdub.motion.predictor import WEIGHTS_DIR as MOTION_DIR

    motion = sorted(card.stem for card in MOTION_DIR.glob("*.json")) if MOTION_DIR.is_dir() else []
    return motion, [spec.name for spec in bundled_models()]


def profile_choices(profiles: Path | None) -> list[str]:
    """Sub-folders of the profile folder, by name (the page never takes a path)."""
    if profiles is None or not profiles.is_dir():
        return []
    return sorted(entry.name for entry in profiles.iterdir() if entry.is_dir() and re.fullmatch(r"[A-Za-z0-9_.-]+", entry.name))


# ---------------------------------------------------------------------------------------------
# The page


def _photo_input(**kwargs):
    """A `gr.Image` that hands over the uploaded file itself.

    Gradio's Image re-encodes an upload with PIL before the function sees it: a broken or fake
    image would then fail inside Gradio with its own message, and `inspect_face` would sniff a
    re-encoded copy instead of the user's bytes. The photo is only ever read by lipdub's decoder.
    (An instance attribute rather than a subclass: Gradio writes a ``.pyi`` stub beside the
    module of every component subclass.)
    """
    import gradio as gr

    photo = gr.Image(type="filepath", **kwargs)
    photo.preprocess = lambda payload: None if payload is None else payload.path
    return photo


def theme():
    """Gradio's default look with system fonts only (its default asks Google Fonts for nothing
    today, but a theme that names no web font keeps it that way across Gradio releases)."""
    import gradio as gr

    return gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))


def build_app(config: AppConfig):
    """The Gradio Blocks page for ``config`` (not launched: `launch` serves it)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio.analytics reads the variable, not the Blocks flag
    import gradio as gr

    motion_models, generators = model_choices()
    profiles = profile_choices(config.profiles)

    def run(face_video, face_photo, audio, length_mode, face_index, box, engine, motion_model, model, profile,
            fps, articulation, evaluate, progress=gr.Progress()):
        try:
            face = pick_face(face_video, face_photo)
            if not audio:
                raise LipdubError("give a speech track: upload or record one (or press \"Use the samples\")")
            options = collect_options(length_mode, face_index, box, engine, motion_model, model, profile, fps,
                                      articulation)
            outcome = dub(face, Path(audio), options, config,
                          StageProgress(lambda fraction, text: progress(fraction, desc=text)), evaluate)
        except LipdubError as error:
            raise gr.Error(html.escape(str(error)), print_exception=False) from None
        made = {path.name: path for path in outcome.plots}
        plots = [gr.Image(value=str(made[name]) if name in made else None, visible=name in made) for name in PLOTS]
        return (str(outcome.video), gr.DownloadButton(value=str(outcome.video), visible=True), outcome.summary,
                outcome.report, *plots)

    def samples():
        return None, str(SAMPLE_FACE), str(SAMPLE_SPEECH)

    keep_s = int(config.keep_hours * 3600)
    with gr.Blocks(title="lipdub", analytics_enabled=False, delete_cache=(max(60, keep_s // 24), keep_s)) as page:
        gr.Markdown("# lipdub\nRe-animate the mouth of a face video or photo to a new speech track, offline.")
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("### Input")
                with gr.Row():
                    face_video = gr.Video(label="Face video", sources=["upload", "webcam"], format=None,
                                          elem_id="face-video", height=300)
                    face_photo = _photo_input(label="or a face photo", sources=["upload", "webcam"],
                                            elem_id="face-photo", height=300)
                audio = gr.Audio(label="Speech", sources=["upload", "microphone"], type="filepath", format=None,
                                 elem_id="speech")
                sample_button = gr.Button("Use the samples", elem_id="use-samples", size="sm")
                with gr.Accordion("Options", open=False, elem_id="options"):
                    length_mode = gr.Dropdown([mode.value for mode in LengthMode], value=LengthMode.bounce.value,
                                              label="Length mode",
                                              info="When video and speech lengths differ: bounce, loop or hold extend "
                                                   "the video; cut stops at the shorter; silence pads the speech.")
                    with gr.Row():
                        # A text box, not gr.Number: an untouched Number sends 0 (the leftmost face), and
                        # "empty: the largest" could not be chosen.
                        face_index = gr.Textbox("", label="Face index", placeholder="largest", elem_id="face-index",
                                                info="Which face, counted left to right from 0 (empty: the largest).")
                        box = gr.Textbox(label="Face box", placeholder="x1 y1 x2 y2", elem_id="face-box",
                                         info="Force the face region, in pixels (empty: found automatically).")
                    with gr.Row():
                        engine = gr.Dropdown([("default (motion)", ""), ("motion", "motion"), ("generator", "generator")],
                                             value="", label="Engine")
                        motion_model = gr.Dropdown([("default", ""), *[(name, name) for name in motion_models]],
                                                   value="", label="Motion model", info="Motion engine.")
                        model = gr.Dropdown([("default", ""), *[(name, name) for name in generators]],
                                            value="", label="Generator", info="Generator engine.")
                    with gr.Row():
                        profile = gr.Dropdown(
                            [("none", ""), *[(name, name) for name in profiles]], value="", label="Personalisation profile",
                            interactive=bool(profiles),
                            info=f"From {config.profiles}." if profiles else "Start the app with --profiles DIR to offer profiles.",
                        )
                        fps = gr.Number(25, label="Photo fps", minimum=1, maximum=240, info="Frame rate when the face is a photo.")
                    articulation = gr.Slider(0.25, 3.0, value=1.0, step=0.05, label="Articulation", elem_id="articulation",
                                             info="Motion engine: how widely the mouth moves for the speech "
                                                  "(1 = the speaker's own range; 1.3 = 30 % more).")
                    evaluate = gr.Checkbox(True, label="Evaluate the result (lipdub eval: sync scores and plots)")
                run_button = gr.Button("Lip-sync", variant="primary", elem_id="run")
            with gr.Column():
                gr.Markdown("### Result")
                result = gr.Video(label="Result", interactive=False, elem_id="result", height=300, autoplay=False)
                download = gr.DownloadButton("Download the result", visible=False, elem_id="download")
                summary = gr.Markdown(elem_id="summary")
        with gr.Accordion("Evaluation (lipdub eval)", open=True):
            with gr.Row():
                with gr.Column():
                    plots = [gr.Image(label=label, type="filepath", interactive=False, visible=False, show_label=True,
                                      elem_id=f"plot-{Path(name).stem}", format="png")
                             for name, label in PLOTS.items()]
                report = gr.Markdown(elem_id="report")

        sample_button.click(samples, outputs=[face_video, face_photo, audio], queue=False)
        face_video.upload(lambda: None, outputs=face_photo, queue=False)
        face_photo.upload(lambda: None, outputs=face_video, queue=False)
        run_button.click(
            run,
            inputs=[face_video, face_photo, audio, length_mode, face_index, box, engine, motion_model, model, profile,
                    fps, articulation, evaluate],
            outputs=[result, download, summary, report, *plots],
            concurrency_limit=1,  # one dub at a time: it already uses every core
        )
    return page


def start(config: AppConfig, host: str = "127.0.0.1", port: int = 7860):
    """Serve the page for ``config`` on ``host:port`` without blocking; returns the Blocks (``.close()`` stops it).

    Every launch setting that keeps the page offline lives here, so the CLI and the tests serve the
    same page: no share tunnel, no server-side rendering, no PWA or MCP extras, the system-font theme.
    """
    page = build_app(config)
    page.queue(max_size=16)
    page.launch(
        server_name=host, server_port=port, share=False, ssr_mode=False, pwa=False, mcp_server=False,
        theme=theme(), max_file_size=f"{config.max_upload_mb}mb",
        allowed_paths=[str(ASSETS), str(config.work_dir)], prevent_thread_lock=True, quiet=True,
        footer_links=["settings"], inbrowser=False,
    )
    return page


def launch(host: str = "127.0.0.1", port: int = 7860, profiles: Path | None = None,
           max_seconds: float | None = 600.0, max_upload_mb: int = 500,
           announce: Callable[[str], None] | None = None) -> None:
    """Serve the page until interrupted (``lipdub app``); the runs' folder is removed on the way out.

    ``announce`` receives the page's address once it is being served (the CLI prints it).
    """
    with tempfile.TemporaryDirectory(prefix="lipdub-app-") as work_dir:
        config = AppConfig(work_dir=Path(work_dir), profiles=Path(profiles) if profiles else None,
                           max_seconds=max_seconds, max_upload_mb=max_upload_mb)
        page = start(config, host, port)
        logger.info("lipdub app: serving %s, runs in %s", page.local_url, work_dir)
        if announce is not None:
            announce(page.local_url)
        with _terminate_as_interrupt():
            try:
                page.block_thread()  # returns on Ctrl+C (or SIGTERM, see below)
            finally:
                page.close()


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a service manager's stop, ``kill``) ends the server like Ctrl+C, so the work folder
    is still removed; outside the main thread signals cannot be handled and nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
