"""What every lip-sync engine gives the pipeline, and what the pipeline gives it.

The pipeline owns I/O and the loop (decode -> track -> ... -> encode); an engine owns only what
turns tracked input frames plus speech into new frames. Like a diffusers scheduler, an engine is a
swappable component chosen by name (`lipdub.engines.build_engine`), never a branch in the loop.

The protocol has three steps because the engines need different amounts of foresight:

1. `observe` sees every *input* frame during the tracking pass (the motion engine keeps its mouth
   bank from it; the generator engine ignores it). A long video's two halves may be tracked at
   once (`lipdub.face.split`), so calls come from two threads, out of order, and a frame may be
   seen again (its half was tracked again): `observe` must be thread-safe, the last call for an
   index wins, and indices at or past ``len(plan.faces)`` are to be ignored;
2. `prepare` gets the whole plan at once (every frame's face, the output timeline, the speech), so
   an engine may look at the entire input before drawing anything (slow expression, retrieval);
3. `render` turns a batch of output frames into pictures, in output order.

Two optional hooks, called only where an engine has them: `anticipate(speech, frames, fps)`, before
the tracking pass, with the speech as the output will most likely carry it (the output length the
probe's frame count implies; `prepare` must check the guess): work that needs only the audio can
start beside the tracking; and `expect_frames(count)`, the probe's frame count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lipdub.timeline import Timeline


@dataclass(frozen=True)
class RenderPlan:
    """Everything known before the first output frame is drawn."""

    fps: float
    timeline: Timeline
    faces: list  # TrackedFace | None per *input* frame
    speech: np.ndarray  # mono float32 at the engine's `sample_rate`, exactly as long as the output
    is_photo: bool
    frame_shape: tuple[int, int]


@dataclass
class FrameJob:
    """One output frame: its number, the input frame it shows, that frame's picture and face."""

    index: int
    source_index: int
    image: np.ndarray
    face: object | None  # TrackedFace


class Engine(Protocol):
    """The contract between `lipdub.pipeline.sync` and an engine."""

    name: str
    sample_rate: int
    batch_size: int

    def observe(self, index: int, image: np.ndarray, face) -> None: ...

    def prepare(self, plan: RenderPlan) -> None: ...

    def render(self, jobs: list[FrameJob]) -> list[np.ndarray]: ...

    def close(self) -> None: ...
