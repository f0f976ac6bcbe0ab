"""A photo or a short video that speaks live: speech arrives a piece at a time, frames leave a
fixed delay later.

`lipdub.pipeline.sync` sees the whole speech before it draws a frame (the non-causal motion
model, the track's loud level, the slow expression). A talking avatar on a call cannot wait for
that. `LiveAvatar` runs the same motion engine on one photo or video, fed by
`lipdub.motion.streaming.StreamingMotion` and the causal motion model (``lipdub-motion-causal``):

    with LiveAvatar("face.jpg") as avatar:
        for piece in microphone():          # 16 kHz mono float32, any piece size
            for frame in avatar.push(piece):  # RGB frames, in order, at avatar.fps
                show(frame)
        for frame in avatar.finish():
            show(frame)

Each frame is final `latency_seconds` after its moment (245 ms at 25 fps: 100 ms of look-ahead
in the model's window, 25 ms of STFT, 120 ms of smoothing) plus the time it takes to draw. The
photo is tracked once, when the avatar is made; the mouth opens onto the photo's own opening or,
where it opens wider, a painted one, exactly as `lipdub sync` draws a photo.

A video (an idle clip: the person listening, blinking, moving a little) is a photo that lives.
Its first `LOOP_SECONDS` are tracked once and played back and forth (`ping_pong`: a loop played
forward only would jump from its last frame to its first), and the mouth of each frame shown is
moved by the speech. What an offline dub takes from the whole video and is known before any
speech arrives stays: each frame's rest shape, its slow expression, its fast head movement, and the
mouth bank of its own openings, whose path carries on from piece to piece. A pause is held on one
closed frame of the loop, as a dub holds it, but causally: the hold fades in once the gate has
been shut long enough and out when the speech comes back (`MotionEngine.live_holds`; a dub fades
both before the fact, knowing where the pause ends). `lipdub live` is the command line around this.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from lipdub.errors import LipdubError

logger = logging.getLogger(__name__)

#: The bundled causal motion model: its windows end 100 ms after the frame.
LIVE_MOTION_MODEL = "lipdub-motion-causal"
#: How much of a video the avatar loops: its frames are kept uncompressed on disk (a 720p second
#: is 70 MB), and ten seconds back and forth is a twenty-second cycle, long enough not to be noticed.
LOOP_SECONDS = 10.0


def ping_pong(index: int, count: int) -> int:
    """The loop frame output frame ``index`` shows when ``count`` frames play forward, then back,
    then forward again (0, 1, ..., count-1, count-2, ..., 1, 0, 1, ...): never a jump."""
    if count < 1:
        raise ValueError("a loop needs at least one frame")
    if count == 1:
        return 0
    position = index % (2 * count - 2)
    return position if position < count else 2 * count - 2 - position


def shrunk(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled (area filter) so that its longer side is ``max_side`` pixels, rounded."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class LiveAvatar:
    """One photo or video driven by streamed speech (module docstring). Not thread-safe: one
    stream each."""

    def __init__(self, source: Path | str, fps: float | None = None, motion_model: str | Path | None = None,
                 options=None, max_side: int | None = None, loop_seconds: float = LOOP_SECONDS):
        """``source``: a photo, or a video whose first ``loop_seconds`` are looped back and forth.
        ``fps``: a photo's frame rate (default 25); a video plays at its own.
        ``max_side``: shrink a source whose longer side is over this many pixels first (drawing a
        frame costs about the face's area: a 1342 px portrait draws 24.5 frames a second on two
        cores, no faster than real time; `benchmarks/live.py`)."""
        from lipdub.media.decode import probe_video
        from lipdub.motion.streaming import StreamingMotion
        from lipdub.pipeline import SyncOptions, build_engine, check_articulation

        source = Path(source)
        if not source.exists():
            raise LipdubError(f"{source} does not exist")
        if fps is not None and (fps <= 0 or not np.isfinite(fps)):
            raise LipdubError(f"the frame rate must be positive, got {fps}")
        if max_side is not None and max_side < 64:
            raise LipdubError(f"max_side must be at least 64 pixels, got {max_side}")
        if not loop_seconds > 0:
            raise LipdubError(f"loop_seconds must be positive, got {loop_seconds}")
        info = probe_video(source, photo_fps=fps or 25.0)
        if not info.is_photo and fps is not None and abs(fps - info.fps) > 1e-3:
            logger.warning("%s plays at its own %.3g fps, not %.3g", source, info.fps, fps)
        self.fps = float(info.fps)
        self.is_photo = info.is_photo
        #: A video loop's lip retest (`lipdub.face.lip_retest`; None for a photo): a warning is
        #: logged where the tracker cannot read the lips.
        self.lip_reading = None
        options = replace(options or SyncOptions(), photo_fps=self.fps, engine="motion",
                          motion_model=str(motion_model or LIVE_MOTION_MODEL))
        if options.profile is not None:
            raise LipdubError("a personalisation profile's motion model is not causal: it cannot drive a live avatar")
        check_articulation(options.articulation)
        self._folder = tempfile.TemporaryDirectory(prefix="lipdub-live-")
        self._engine = build_engine(options)
        try:
            self._motion = StreamingMotion(self._engine.predictor, self.fps)
            if info.is_photo:
                self._prepare_photo(source, options, max_side)
            else:
                self._prepare_video(source, options, max_side, loop_seconds)
        except BaseException:
            self.close()
            raise
        height, width = self._frames[0].shape[:2]
        self.frame_shape = (height, width)
        self.frames_out = 0
        logger.info("live avatar %s: %dx%d at %.3g fps (%s), motion model %s, latency %.0f ms", source, width, height,
                    self.fps, "a photo" if self.is_photo else f"a loop of {self.loop_frames} frames",
                    self._engine.model_name, 1000 * self.latency_seconds)

    def _prepare_photo(self, photo: Path, options, max_side: int | None) -> None:
        """Track the photo (shrunk first if asked: what is tracked is what is drawn) and plan one frame."""
        from lipdub.engines.base import RenderPlan
        from lipdub.media.decode import iter_frames
        from lipdub.pipeline import StageClock, track_input
        from lipdub.timeline import LengthMode, plan_timeline

        image = next(iter_frames(photo, photo_fps=self.fps)).image
        if max_side is not None and max(image.shape[:2]) > max_side:
            image = shrunk(image, max_side)
            photo = Path(self._folder.name) / "photo.png"
            cv2.imwrite(str(photo), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self._faces = track_input(photo, True, self.fps, options, self._engine, StageClock(), 1)
        self._frames = [image]
        height, width = image.shape[:2]
        silence = np.zeros(int(round(self._engine.sample_rate / self.fps)), np.float32)
        timeline = plan_timeline(1, 1, LengthMode.bounce, is_photo=True)
        self._engine.prepare(RenderPlan(self.fps, timeline, self._faces, silence, True, (height, width)))

    def _prepare_video(self, video: Path, options, max_side: int | None, loop_seconds: float) -> None:
        """Keep the loop's frames (shrunk if asked) on disk, track them, and plan them with silence:
        the engine measures the rest shapes, slow expression and mouth bank the live frames use."""
        from lipdub.engines.base import RenderPlan
        from lipdub.face.lip_retest import LipRetest, lip_caution
        from lipdub.media.decode import iter_frames
        from lipdub.media.encode import VideoWriter
        from lipdub.pipeline import StageClock, track_input, tracked_by_this_thread
        from lipdub.timeline import LengthMode, plan_timeline

        wanted = max(1, int(round(loop_seconds * self.fps)))
        # The loop is written once (shrunk if asked, cut to its length) and then both tracked and
        # drawn from as the tracker decodes it: what is tracked is exactly what is drawn.
        tracked, writer, count = Path(self._folder.name) / "loop.mp4", None, 0
        try:
            for frame in iter_frames(video):
                if count == wanted:
                    break
                image = frame.image
                if max_side is not None and max(image.shape[:2]) > max_side:
                    image = shrunk(image, max_side)
                if writer is None:
                    height, width = image.shape[:2]
                    writer = VideoWriter(tracked, width, height, self.fps, crf=10, overwrite=True)
                writer.write(image)
                count += 1
        finally:
            if writer is not None:
                writer.close()
        frames = None
        for index, frame in enumerate(iter_frames(tracked)):
            if index == count:
                break
            if frames is None:
                frames = np.lib.format.open_memmap(tracked.with_name("frames.npy"), "w+", np.uint8,
                                                   (count, *frame.image.shape))
            frames[index] = frame.image
        if frames is None:
            raise LipdubError(f"{video} contains no video frames")
        self._frames = frames
        retest = LipRetest(tracked_by_this_thread(count, options))
        faces = track_input(tracked, False, self.fps, options, self._engine, StageClock(), count, retest)[:count]
        self.lip_reading = retest.result()
        caution = lip_caution(self.lip_reading)
        if caution is not None:
            logger.warning(caution)
        self._faces = faces + [None] * (count - len(faces))
        height, width = frames.shape[1:3]
        silence = np.zeros(int(round(count * self._engine.sample_rate / self.fps)), np.float32)
        timeline = plan_timeline(count, count, LengthMode.cut, is_photo=False)
        self._engine.prepare(RenderPlan(self.fps, timeline, self._faces, silence, False, (height, width)))

    @property
    def loop_frames(self) -> int:
        """Frames of the video played back and forth (1 for a photo)."""
        return len(self._frames)

    def loop_frame(self, index: int) -> np.ndarray:
        """A copy of loop frame ``index`` as it is before any speech moves it (the photo: 0), at
        ``frame_shape``: output frame k shows loop frame `ping_pong` (k, `loop_frames`)."""
        return np.array(self._frames[index])

    @property
    def model_name(self) -> str:
        """The motion model driving the mouth."""
        return self._engine.model_name

    @property
    def sample_rate(self) -> int:
        """Samples per second `push` expects (mono float32)."""
        return self._engine.sample_rate

    @property
    def latency_seconds(self) -> float:
        """How long after its moment a frame can be drawn (not counting the drawing)."""
        return self._motion.latency_seconds

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """The frames the speech heard so far makes final (RGB, ``frame_shape``), in order."""
        return self._draw(self._motion.push(samples))

    def finish(self) -> list[np.ndarray]:
        """The frames left once the speech has ended (in all, as many as its length covers at ``fps``)."""
        return self._draw(self._motion.finish())

    def _draw(self, motion: np.ndarray) -> list[np.ndarray]:
        from lipdub.engines.base import FrameJob

        if len(motion) == 0:
            return []
        if self.is_photo:
            self._engine.use_live_motion(motion)
            jobs = [FrameJob(i, 0, self._frames[0], self._faces[0]) for i in range(len(motion))]
        else:
            shown = [ping_pong(self.frames_out + i, len(self._frames)) for i in range(len(motion))]
            self._engine.use_live_motion(motion, np.array(shown), self._motion.last_gate)
            jobs = [FrameJob(i, j, np.array(self._frames[j]), self._faces[j]) for i, j in enumerate(shown)]
        frames = self._engine.render(jobs)
        self.frames_out += len(frames)
        return frames

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()
        self._frames = None  # the memory map, before its folder goes
        self._folder.cleanup()

    def __enter__(self) -> "LiveAvatar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class LiveRun:
    """What `run_live` measured: frames out, speech in, and how late each frame left.

    ``delays``: per frame, wall-clock seconds between the moment the frame shows (the stream's
    start plus its time at ``fps``) and when it was handed to the writer; in a real-time run
    (`run_live` ``realtime``) that is the avatar's delay as a viewer sees it, its latency included.
    """

    frames: int
    speech_seconds: float
    wall_seconds: float
    delays: list[float] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("nan")


def run_live(avatar: LiveAvatar, pieces: Iterable[np.ndarray], write: Callable[[np.ndarray], None],
             realtime: bool = False, clock: Callable[[], float] = time.perf_counter,
             sleep: Callable[[float], None] = time.sleep) -> LiveRun:
    """Feed ``pieces`` (16 kHz mono float32) to ``avatar`` and ``write`` every frame, in order.

    ``realtime``: pace the pieces at their own duration, as a microphone delivers them (a file
    played as if live); a source that is live already (a pipe) paces itself, leave it False.
    """
    start = clock()
    heard = 0
    delays: list[float] = []

    def send(frames: list[np.ndarray]) -> None:
        for frame in frames:
            write(frame)
            delays.append(clock() - start - (len(delays)) / avatar.fps)

    for piece in pieces:
        piece = np.asarray(piece, np.float32)
        heard += len(piece)
        if realtime:
            ahead = heard / avatar.sample_rate - (clock() - start)
            if ahead > 0:
                sleep(ahead)
        send(avatar.push(piece))
    send(avatar.finish())
    return LiveRun(len(delays), heard / avatar.sample_rate, clock() - start, delays)
