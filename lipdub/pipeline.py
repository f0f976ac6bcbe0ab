"""The lip-sync pipeline: decode → track → (engine: features → motion → render) → blend → encode.

`sync` is the whole job behind ``lipdub sync``. It runs two passes over the input, each a chain of
generators over bounded batches, so memory stays flat whatever the video's length: the first
decodes and tracks every frame (keeping only landmarks, and showing each picture to the engine
once), the second decodes again, has the engine render ``batch_size`` frames at a time and encodes
them as they go; decoding and encoding run in background threads beside the rendering. Everything
the user asked for is checked before any heavy work, and the output only appears (atomically, by
rename) once the last frame is written.

The stages live in their own packages (``media``, ``face``, ``engines``); this module owns only the
loop, the order of checks and the bookkeeping (timings, faces found). Which engine draws the mouth
is an option (`lipdub.engines.build_engine`), never a branch here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lipdub.errors import LipdubError
from lipdub.media.prefetch import BackgroundWriter, prefetched
from lipdub.timeline import LengthMode, Timeline, fit_audio, fit_audio_stream, frames_for_duration, plan_timeline

if TYPE_CHECKING:
    from lipdub.face.lip_retest import LipReading

logger = logging.getLogger(__name__)

#: Rate of the muxed output audio. The driving speech is resampled once to this rate (mono) so that
#: any input (8 kHz phone audio to 96 kHz studio files) ends up as standard AAC.
OUTPUT_SAMPLE_RATE = 48000


@dataclass(frozen=True)
class SyncOptions:
    """Everything a user can choose for one ``sync`` run (the CLI maps its flags onto this).

    ``reference`` picks the generator's reference picture: ``"self"`` (Wav2Lip's inference: each
    frame is its own reference, which keeps texture and lighting exact) or ``"first"`` (the first
    face crop for every frame, so the original mouth cannot leak into the result; used by the
    video-driven evaluation protocol). The motion engine reads ``"first"`` the same way: no frame
    within a second of the output frame may lend its mouth.

    ``engine`` picks what draws the mouth (`lipdub.engines`): ``"motion"`` (default: predicted lip
    motion rendered with the speaker's own pixels) or ``"generator"`` (a Wav2Lip-family network;
    implied by ``model`` or ``checkpoint``). ``motion_model`` names another lip motion model (a
    bundled name or a checkpoint path) for the motion engine; ``interior`` what paints a mouth
    opening that no input frame shows (`lipdub.engines.motion.INTERIORS`: ``"painted"``, the
    default, or ``"learned"``). ``profile`` is a folder made by ``lipdub personalize``; its
    profile.json names the engine it is for, and a motion profile brings its fine-tuned model and
    the speaker's mouth bank (`lipdub.render.profile_bank`). ``render_threads``: frames the motion
    engine draws at once (2 keeps two cores busy; more on a bigger machine).
    ``keep_hands``: the motion
    engine looks for hands by the face and leaves them as they are (`lipdub.face.hands`).
    ``articulation``: how widely the motion engine's mouth moves for the speech, times its own
    measure (`lipdub.engines.motion.MotionEngineOptions.articulation`; `ARTICULATION_RANGE`).
    """

    photo_fps: float = 25.0
    length_mode: LengthMode = LengthMode.bounce
    face_index: int | None = None
    box: tuple[int, int, int, int] | None = None
    pads: tuple[int, int, int, int] = (0, 10, 0, 0)
    engine: str | None = None
    motion_model: str | None = None
    model: str | None = None
    checkpoint: Path | None = None
    profile: Path | None = None
    batch_size: int = 16
    feather: float = 0.08
    color_match: bool = True
    reference: str = "self"
    crf: int = 18
    overwrite: bool = False
    interior: str = "painted"
    render_threads: int = 2
    keep_hands: bool = True
    articulation: float = 1.0


@dataclass
class SyncResult:
    """What a run did: where the video went, how many frames had a face, and where time went."""

    output: Path
    frames: int
    frames_with_face: int
    fps: float
    duration: float
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    #: Per output frame, the mouth opening (inner lips over eye distance) the engine aimed for;
    #: None for engines without an explicit target shape. Lets `lipdub eval-set` check the renderer.
    target_aperture: list[float] | None = None
    #: The tracking pass's lip retest (`lipdub.face.lip_retest`); None for a photo or an engine that
    #: does not read the lips (the generator). When it is not
    #: ``reliable``, `sync` has logged a warning: the tracker may have put the lips in the wrong place.
    lip_reading: LipReading | None = None

    @property
    def frames_untouched(self) -> int:
        """Frames written unchanged because no face was found in them."""
        return self.frames - self.frames_with_face

    def stage_fps(self) -> dict[str, float]:
        """Frames per second each stage would sustain on its own."""
        return {stage: self.frames / seconds for stage, seconds in self.timings.items() if seconds > 0}


#: Called after every written batch with (frames written so far, total frames).
ProgressCallback = Callable[[int, int], None]


class StageClock:
    """Accumulates wall time per pipeline stage (the figures `benchmarks/throughput.py` prints)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, stage: str, iterator: Iterator) -> Iterator:
        """Wrap an iterator so the time spent producing each item is charged to ``stage``."""
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds[stage] += time.perf_counter() - start
                return
            self.seconds[stage] += time.perf_counter() - start
            yield item

    def add(self, stage: str, start: float) -> None:
        self.seconds[stage] += time.perf_counter() - start


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(face: Path, audio: Path, output: Path, overwrite: bool) -> None:
    """Refuse, before any work, everything that would fail late or touch the user's files."""
    for role, path in (("face", face), ("audio", audio)):
        if not path.exists():
            raise LipdubError(f"{role} file not found: {path}")
        if path.is_dir():
            raise LipdubError(f"{role} path is a directory, not a file: {path}")
        if not os.access(path, os.R_OK):
            raise LipdubError(f"{role} file is not readable: {path}")
    check_output(output, (face, audio), overwrite)


def check_output(output: Path, inputs: tuple[Path, ...], overwrite: bool) -> None:
    """Refuse an output that is one of ``inputs``, a directory, in a missing or read-only
    directory, or an existing file without ``overwrite`` (`check_paths`; `lipdub live` too)."""
    if any(output.resolve() == path.resolve() or _same_file(output, path) for path in inputs):
        raise LipdubError(f"output {output} is one of the inputs; choose another name")
    if output.is_dir():
        raise LipdubError(f"output path is a directory: {output}")
    directory = output.parent
    if not directory.is_dir():
        raise LipdubError(f"output directory does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise LipdubError(f"output directory is not writable: {directory}")
    if output.exists() and not overwrite:
        raise LipdubError(f"output {output} already exists (pass --overwrite to replace it)")


class _SpooledFrames:
    """Input frames kept on disk (not in RAM) for the parts of a video that are shown again.

    ``bounce`` plays the tail of the video backwards; holding those frames in memory would make
    RAM grow with the video, so they go to an anonymous temporary file and are read back through
    a memory map.
    """

    def __init__(self, first_index: int, shape: tuple[int, int, int]) -> None:
        self.first_index = first_index
        self.shape = shape
        self.count = 0
        self._file = tempfile.TemporaryFile(prefix="lipdub-spool-")
        self._map: np.memmap | None = None

    def append(self, image: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        self.count += 1

    def __contains__(self, index: int) -> bool:
        return self.first_index <= index < self.first_index + self.count

    def __getitem__(self, index: int) -> np.ndarray:
        if self._map is None:
            self._file.flush()
            self._map = np.memmap(self._file, dtype=np.uint8, mode="r", shape=(self.count, *self.shape))
        return np.array(self._map[index - self.first_index])

    def close(self) -> None:
        self._map = None
        self._file.close()


def _source_frames(face_path: Path, timeline: Timeline, photo_fps: float) -> Iterator[np.ndarray]:
    """Yield the input picture for every output frame, in output order, with flat memory.

    The first pass streams the decoder. Past the end of the video: ``hold`` repeats the last
    frame, ``loop`` decodes the file again from the start, ``bounce`` reads the tail it spooled
    to disk during the first pass (only as many frames as the extension needs).
    """
    from lipdub.media.decode import iter_frames

    total = timeline.output_frames
    extra = max(0, total - timeline.source_frames)
    spool: _SpooledFrames | None = None
    # Estimated frame counts can be off by a few frames: spool a small margin more than needed.
    spool_from = max(0, timeline.source_frames - 1 - extra - 4) if timeline.mode is LengthMode.bounce else None
    written = 0
    last: np.ndarray | None = None
    decoded = 0
    try:
        for frame in iter_frames(face_path, photo_fps=photo_fps):
            decoded += 1
            last = frame.image
            if spool_from is not None and frame.index >= spool_from and extra > 0:
                if spool is None:
                    spool = _SpooledFrames(frame.index, frame.image.shape)
                spool.append(frame.image)
            if written < total:
                yield frame.image
                written += 1
            elif spool is None:
                break
        if last is None:
            raise LipdubError(f"{face_path} contains no video frames")
        if written >= total:
            return
        # The decoder may yield a different count than the probe estimated: plan on the real one.
        actual = Timeline(timeline.mode, decoded, total)
        if actual.mode is LengthMode.loop:
            while written < total:
                for frame in iter_frames(face_path, photo_fps=photo_fps):
                    if written >= total:
                        break
                    yield frame.image
                    written += 1
        else:
            while written < total:
                index = actual.source_index(written)
                if actual.mode is LengthMode.bounce and spool is not None and index in spool:
                    yield spool[index]
                else:
                    yield last
                written += 1
    finally:
        if spool is not None:
            spool.close()


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_engine(options: SyncOptions):
    """The engine ``options`` ask for (see `lipdub.engines`)."""
    from lipdub.engines import build_engine as build

    return build(options)


def track_input(face_path: Path, is_photo: bool, fps: float, options: SyncOptions, engine, clock: StageClock,
                expected_frames: int, lip_retest=None) -> list:
    """The tracking pass: every input frame decoded, its face tracked, shown to the engine.

    Returns the TrackedFace (or None) of every input frame. Only landmarks are kept (4 KB a frame);
    pictures go to the engine, which keeps what it needs (the motion engine: lower-face crops).
    A long video's second half is tracked at the same time in a second thread (`lipdub.face.split`);
    if the two tracks do not join, this thread tracks it again, as a single pass would.
    ``lip_retest`` (a `lipdub.face.lip_retest.LipRetest`, optional) reads the frames it wants twice
    with this thread's detector; it should want frames before the split only.
    """
    from lipdub.face.detect import FaceDetector
    from lipdub.face.split import OVERLAP, join_tracks, tracks_agree
    from lipdub.face.track import FaceTracker, SmoothingConfig
    from lipdub.media.decode import iter_frames

    faces: list = []
    if hasattr(engine, "expect_frames"):
        engine.expect_frames(expected_frames)
    split = None if is_photo else tracking_split(expected_frames, options)
    second = _SecondHalf(face_path, split - OVERLAP, fps, options, engine) if split is not None else None
    try:
        with FaceDetector(still_image=is_photo) as detector, _hand_finder(engine) as hands:
            tracker = FaceTracker(detector, face_index=options.face_index, forced_box=options.box,
                                  smoothing=SmoothingConfig(fps=fps))
            decoded = prefetched(iter_frames(face_path, photo_fps=options.photo_fps))
            with contextlib.closing(decoded):  # stops the decoding thread when the loop ends early
                for index, frame in enumerate(clock.timed("decode", decoded)):
                    if second is not None and index == split:
                        rest = second.result()
                        if rest is not None and tracks_agree(faces[split - OVERLAP:], rest[:OVERLAP]):
                            faces = join_tracks(faces, rest, split)
                            break
                        logger.info("the halves of the tracking pass did not join: tracking on from frame %d", split)
                        second = None
                    start = time.perf_counter()
                    face = tracker.update(frame.image)
                    clock.add("detect+track", start)
                    if lip_retest is not None:
                        start = time.perf_counter()
                        lip_retest.add(detector, index, frame.image, face)
                        clock.add("lip retest", start)
                    start = time.perf_counter()
                    updates = with_hands(index, frame.image, face, hands)
                    clock.add("detect+track", start)
                    start = time.perf_counter()
                    record(faces, 0, updates, engine.observe)
                    clock.add("analyse", start)
                    if is_photo:
                        break
    finally:
        if second is not None:
            second.stop()
    if not faces:
        raise LipdubError(f"{face_path} contains no video frames")
    if not any(face is not None for face in faces):
        what = "the photo" if is_photo else "any frame of"
        raise LipdubError(f"no face found in {what} {face_path}")
    return faces


#: Articulation factors `sync` accepts: under a quarter the mouth barely moves, over three it gapes.
ARTICULATION_RANGE = (0.25, 3.0)


def check_articulation(value: float) -> None:
    """One-line `LipdubError` unless ``value`` is an articulation factor `sync` accepts."""
    low, high = ARTICULATION_RANGE
    if not (low <= float(value) <= high):  # also refuses NaN
        raise LipdubError(f"articulation must be between {low} and {high} (1 = the speaker's own), got {value}")


def tracking_split(expected_frames: int, options: SyncOptions) -> int | None:
    """The first frame a second tracking thread takes over (`lipdub.face.split.split_point`), or
    None when one thread tracks the whole video (a short one, or a forced face box)."""
    from lipdub.face.split import split_point

    return None if options.box is not None else split_point(expected_frames)


def tracked_by_this_thread(expected_frames: int, options: SyncOptions) -> int:
    """How many of the first frames the calling thread of `track_input` surely tracks itself."""
    split = tracking_split(expected_frames, options)
    return expected_frames if split is None else split


def _hand_finder(engine):
    """A `lipdub.face.hands.HandPass` (a context manager) for an engine that keeps hands
    (``engine.wants_hands``), else a null context: one per tracking thread."""
    from lipdub.face.hands import HandPass

    return HandPass() if getattr(engine, "wants_hands", False) else contextlib.nullcontext()


def with_hands(index: int, image: np.ndarray, face, hands) -> list:
    """[(index, image, face)] to record: frame ``index``'s face (a TrackedFace or None) with the
    hands by it, then any earlier frame whose hands this one brought to light (`HandPass.add`);
    just this frame as it is where ``hands`` is None (not looked for)."""
    return [(index, image, face)] if hands is None else hands.add(index, image, face)


def record(faces: list, first: int, updates: list, observe) -> None:
    """Put ``updates`` ([(index, image, face)] from `with_hands`: the newest frame, then earlier
    ones seen again) into ``faces`` (the faces of frames ``first..``), appending the newest, and
    show each to ``observe``."""
    for index, image, face in updates:
        if index - first == len(faces):
            faces.append(face)
        else:
            faces[index - first] = face
        observe(index, image, face)


class _SecondHalf:
    """Track frames ``start..`` of a video in a background thread with a tracker of its own.

    Frames from ``start + OVERLAP`` on are shown to the engine (the shared ones are the main
    tracker's); `result` waits for the track, None if it failed (the caller then tracks on).
    """

    def __init__(self, face_path: Path, start: int, fps: float, options: SyncOptions, engine):
        from lipdub.face.split import OVERLAP

        self._start, self._owned = start, start + OVERLAP
        self._engine = engine
        self._stopping = threading.Event()
        self._faces: list | None = None
        self._thread = threading.Thread(target=self._run, args=(face_path, fps, options, engine),
                                        name="lipdub-track-2", daemon=True)
        self._thread.start()

    def _run(self, face_path: Path, fps: float, options: SyncOptions, engine) -> None:
        from lipdub.face.detect import FaceDetector
        from lipdub.face.track import FaceTracker, SmoothingConfig
        from lipdub.media.decode import iter_frames

        faces = []
        try:
            with FaceDetector() as detector, _hand_finder(engine) as hands:
                tracker = FaceTracker(detector, face_index=options.face_index, smoothing=SmoothingConfig(fps=fps))
                decoded = prefetched(iter_frames(face_path, photo_fps=options.photo_fps, start=self._start))
                with contextlib.closing(decoded):
                    for frame in decoded:
                        if self._stopping.is_set():
                            return
                        record(faces, self._start, with_hands(frame.index, frame.image, tracker.update(frame.image), hands),
                               self._observe_owned)
        except Exception:  # the main thread tracks these frames itself and reports what is wrong
            logger.debug("the second half of the tracking pass failed", exc_info=True)
            return
        self._faces = faces

    def _observe_owned(self, index: int, image: np.ndarray, face) -> None:
        """Show the engine the frames this half owns (the shared ones are the main tracker's)."""
        if index >= self._owned:
            self._engine.observe(index, image, face)

    def result(self) -> list | None:
        self._thread.join()
        return self._faces

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


def sync(
    face: Path | str,
    audio: Path | str,
    output: Path | str,
    options: SyncOptions | None = None,
    progress: ProgressCallback | None = None,
    **overrides,
) -> SyncResult:
    """Re-animate the mouth in ``face`` (a video or a photo) to the speech in ``audio``.

    Writes an H.264/AAC MP4 to ``output`` at the input's frame rate and resolution, carrying the
    driving audio. Options come as a `SyncOptions` or as keyword overrides of its fields
    (``sync(face, audio, out, length_mode="loop")``). Raises `LipdubError` for every problem with
    the user's input; on any failure ``output`` is left as it was.

    Two passes over the input: the first tracks every frame's face (and lets the engine look at the
    whole input: the motion engine needs the speaker's slow expression and mouth bank before it can
    draw frame 0), the second decodes again, renders and encodes. Memory stays flat either way.
    """
    from dataclasses import replace

    options = replace(options or SyncOptions(), **overrides)
    if isinstance(options.length_mode, str):
        options = replace(options, length_mode=LengthMode(options.length_mode))
    face_path, audio_path, output_path = Path(face), Path(audio), Path(output)
    check_paths(face_path, audio_path, output_path, options.overwrite)
    if options.batch_size < 1:
        raise LipdubError("batch size must be at least 1")
    check_articulation(options.articulation)
    if options.reference not in ("self", "first"):
        raise LipdubError(f"reference must be 'self' or 'first', got {options.reference!r}")

    engine = build_engine(options)
    try:
        return _run(engine, face_path, audio_path, output_path, options, progress)
    finally:
        engine.close()


def _run(engine, face_path: Path, audio_path: Path, output_path: Path, options: SyncOptions,
         progress: ProgressCallback | None) -> SyncResult:
    from lipdub.engines.base import FrameJob, RenderPlan
    from lipdub.face.lip_retest import LipRetest, lip_caution
    from lipdub.media.audio import is_silent, iter_audio, load_audio
    from lipdub.media.decode import probe_video
    from lipdub.media.encode import VideoWriter

    info = probe_video(face_path, photo_fps=options.photo_fps)
    rate = engine.sample_rate
    speech = load_audio(audio_path, sample_rate=rate)
    if is_silent(speech):
        logger.warning("the audio in %s is silent: the mouth will stay closed", audio_path)
    fps = info.fps
    clock = StageClock()
    audio_frames = frames_for_duration(len(speech) / rate, fps)
    if hasattr(engine, "anticipate") and info.frame_count and audio_frames >= 1:
        # The output length the probe's frame count implies: usually right, checked in `prepare`.
        guess = plan_timeline(info.frame_count, audio_frames, options.length_mode, is_photo=info.is_photo)
        engine.anticipate(fit_audio(speech, rate, guess.output_frames, fps), guess.output_frames, fps)
    # Only for an engine that moves pixels where Face Mesh puts the lips (a generator redraws a box).
    reads_lips = getattr(engine, "reads_lips", False) and not info.is_photo
    lip_retest = LipRetest(tracked_by_this_thread(info.frame_count, options)) if reads_lips else None
    faces = track_input(face_path, info.is_photo, fps, options, engine, clock, info.frame_count, lip_retest)
    lip_reading = None if lip_retest is None else lip_retest.result()
    caution = lip_caution(lip_reading)
    if caution is not None:
        logger.warning(caution)
    timeline = plan_timeline(len(faces), audio_frames, options.length_mode, is_photo=info.is_photo)
    logger.info(
        "%s: %dx%d at %.3f fps, %d frames; audio %.2f s; writing %d frames (%s, engine %s)",
        face_path, info.width, info.height, fps, len(faces), len(speech) / rate,
        timeline.output_frames, timeline.mode.value, engine.name,
    )
    # The speech as it will be heard: trimmed or padded exactly like the muxed track. The engine
    # gets it whole at its own rate (4 bytes a sample at 16 kHz); the muxed track is decoded again
    # at the output rate while the video is encoded, a piece at a time, so it is never all in memory.
    speech = fit_audio(speech, rate, timeline.output_frames, fps)
    muxed = fit_audio_stream(iter_audio(audio_path, sample_rate=OUTPUT_SAMPLE_RATE), OUTPUT_SAMPLE_RATE,
                             timeline.output_frames, fps)
    start = time.perf_counter()
    engine.prepare(RenderPlan(fps, timeline, faces, speech, info.is_photo, (info.height, info.width)))
    clock.add("plan", start)

    def jobs() -> Iterator[FrameJob]:
        images = clock.timed("decode", prefetched(_source_frames(face_path, timeline, options.photo_fps)))
        for index, image in enumerate(images):
            source = timeline.source_index(index)
            yield FrameJob(index, source, image, faces[source] if source < len(faces) else None)

    frames_with_face = 0
    with VideoWriter(
        output_path, info.width, info.height, fps, audio=muxed,
        sample_rate=OUTPUT_SAMPLE_RATE, crf=options.crf, overwrite=options.overwrite,
    ) as writer:
        behind = BackgroundWriter(writer)
        written = 0
        try:
            for batch in _batched(jobs(), engine.batch_size):
                start = time.perf_counter()
                images = engine.render(batch)
                clock.add("render", start)
                frames_with_face += sum(job.face is not None for job in batch)
                start = time.perf_counter()
                for image in images:
                    behind.write(image)
                clock.add("encode (queue)", start)
                written += len(images)
                if progress is not None:
                    progress(written, timeline.output_frames)
        finally:
            start = time.perf_counter()
            behind.close()
            clock.add("encode (queue)", start)
    frames = writer.frames_written

    untouched = frames - frames_with_face
    if untouched:
        logger.warning("%d of %d frames had no face and were written unchanged", untouched, frames)
    return SyncResult(
        output=output_path,
        frames=frames,
        frames_with_face=frames_with_face,
        fps=fps,
        duration=frames / fps,
        model=engine.model_name,
        timings=dict(clock.seconds),
        target_aperture=getattr(engine, "target_aperture", None),
        lip_reading=lip_reading,
    )
