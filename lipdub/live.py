"""A photo that speaks live: speech arrives a piece at a time, frames leave a fixed delay later.

`lipdub.pipeline.sync` sees the whole speech before it draws a frame (the non-causal motion
model, the track's loud level, the slow expression). A talking avatar on a call cannot wait for
that. `LiveAvatar` runs the same motion engine on one photo, fed by
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

Only a photo: a video avatar's pause holds and slow expression need the speech's future
(`lipdub.engines.motion.MotionEngine.hold_pauses`). `lipdub live` is the command line around this.
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


def shrunk(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled (area filter) so that its longer side is ``max_side`` pixels, rounded."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class LiveAvatar:
    """One photo driven by streamed speech (module docstring). Not thread-safe: one stream each."""

    def __init__(self, photo: Path | str, fps: float = 25.0, motion_model: str | Path | None = None,
                 options=None, max_side: int | None = None):
        """``max_side``: shrink a photo whose longer side is over this many pixels first (drawing a
        frame costs about the face's area: a 1342 px portrait draws 24.5 frames a second on two
        cores, no faster than real time; `benchmarks/live.py`)."""
        from lipdub.engines.base import RenderPlan
        from lipdub.media.decode import iter_frames, probe_video
        from lipdub.motion.streaming import StreamingMotion
        from lipdub.pipeline import StageClock, SyncOptions, build_engine, track_input
        from lipdub.timeline import LengthMode, plan_timeline

        photo = Path(photo)
        if not photo.exists():
            raise LipdubError(f"{photo} does not exist")
        if fps <= 0 or not np.isfinite(fps):
            raise LipdubError(f"the frame rate must be positive, got {fps}")
        options = replace(options or SyncOptions(), photo_fps=float(fps), engine="motion",
                          motion_model=str(motion_model or LIVE_MOTION_MODEL))
        if options.profile is not None:
            raise LipdubError("a personalisation profile's motion model is not causal: it cannot drive a live avatar")
        if not probe_video(photo, photo_fps=fps).is_photo:
            raise LipdubError(f"{photo} is a video: a live avatar is driven from one photo")
        if max_side is not None and max_side < 64:
            raise LipdubError(f"max_side must be at least 64 pixels, got {max_side}")
        self.fps = float(fps)
        self._engine = build_engine(options)
        try:
            self._motion = StreamingMotion(self._engine.predictor, self.fps)
            with tempfile.TemporaryDirectory(prefix="lipdub-live-") as folder:
                image = next(iter_frames(photo, photo_fps=self.fps)).image
                if max_side is not None and max(image.shape[:2]) > max_side:
                    image = shrunk(image, max_side)
                    photo = Path(folder) / "photo.png"  # what is tracked is what is drawn
                    cv2.imwrite(str(photo), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                faces = track_input(photo, True, self.fps, options, self._engine, StageClock(), 1)
            self._image = image
            self._face = faces[0]
            height, width = self._image.shape[:2]
            silence = np.zeros(int(round(self._engine.sample_rate / self.fps)), np.float32)
            timeline = plan_timeline(1, 1, LengthMode.bounce, is_photo=True)
            self._engine.prepare(RenderPlan(self.fps, timeline, faces, silence, True, (height, width)))
        except BaseException:
            self._engine.close()
            raise
        self.frame_shape = (height, width)
        self.frames_out = 0
        logger.info("live avatar %s: %dx%d at %.3g fps, motion model %s, latency %.0f ms", photo, width, height,
                    self.fps, self._engine.model_name, 1000 * self.latency_seconds)

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
        self._engine.use_live_motion(motion)
        frames = self._engine.render([FrameJob(i, 0, self._image, self._face) for i in range(len(motion))])
        self.frames_out += len(frames)
        return frames

    def close(self) -> None:
        self._engine.close()

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
