"""What a user of the app, the job API or a batch manifest may choose for one dub.

One pydantic model, so that the three entry points validate the same fields with the same
messages, and an OpenAPI schema comes for free. Only the options users touch are here; paths
to checkpoints and profiles are resolved by the server (never taken from a request as a path),
see `to_sync_options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lipdub.errors import LipdubError
from lipdub.pipeline import ARTICULATION_RANGE
from lipdub.timeline import LengthMode


class JobOptions(BaseModel):
    """The user-facing options of one dub; every field has the CLI's default."""

    model_config = ConfigDict(extra="forbid")

    length_mode: LengthMode = Field(LengthMode.bounce, description="When video and audio lengths differ (see `lipdub sync --help`).")
    face_index: Optional[int] = Field(None, ge=0, le=64, description="Which face, counted left to right (default: the largest).")
    box: Optional[tuple[int, int, int, int]] = Field(None, description="Force the face region: x1, y1, x2, y2 in pixels.")
    engine: Optional[Literal["motion", "generator"]] = Field(None, description="What draws the mouth (default: motion).")
    motion_model: Optional[str] = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="A bundled motion model by name.")
    model: Optional[str] = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="A bundled generator by name.")
    profile: Optional[str] = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                                   description="A personalisation profile by name, looked up in the server's profile folder.")
    fps: float = Field(25.0, ge=1.0, le=240.0, description="Output frame rate when the face is a photo.")
    crf: int = Field(18, ge=0, le=51, description="H.264 quality (lower is better).")
    keep_hands: bool = Field(True, description="Motion engine: keep a hand by the face as it is (false: skip the "
                                               "hand search, as `lipdub sync --no-hands`).")
    articulation: float = Field(1.0, ge=ARTICULATION_RANGE[0], le=ARTICULATION_RANGE[1], description="Motion engine: how widely the mouth moves for the "
                                "speech (1 = the speaker's own range; as `lipdub sync --articulation`).")

    @field_validator("box")
    @classmethod
    def _box_is_a_rectangle(cls, box):
        if box is not None and (box[2] <= box[0] or box[3] <= box[1] or min(box) < 0):
            raise ValueError("box must be x1 y1 x2 y2 with x2 > x1 >= 0 and y2 > y1 >= 0")
        return box

    @classmethod
    def parse(cls, text: str | None) -> "JobOptions":
        """Options from a JSON string (empty means defaults), as one-line `LipdubError`s on bad input."""
        if not text or not text.strip():
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise LipdubError(f"options: {one_line(exc)}") from None

    def to_sync_options(self, profiles: Path | None = None, overwrite: bool = False):
        """The pipeline's `SyncOptions`; a profile name resolves inside ``profiles`` only."""
        from lipdub.pipeline import SyncOptions

        profile_path = None
        if self.profile is not None:
            if profiles is None:
                raise LipdubError(f"options: profile {self.profile!r}: this server has no profile folder")
            profile_path = (profiles / self.profile).resolve()
            if profile_path.parent != profiles.resolve() or not profile_path.is_dir():
                raise LipdubError(f"options: no profile named {self.profile!r}")
        return SyncOptions(
            photo_fps=self.fps, length_mode=self.length_mode, face_index=self.face_index, box=self.box,
            engine=self.engine, motion_model=self.motion_model, model=self.model, profile=profile_path,
            crf=self.crf, overwrite=overwrite, keep_hands=self.keep_hands, articulation=self.articulation,
        )


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field: message; field: message``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())) or "options"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)
