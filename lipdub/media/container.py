"""Opening media files with PyAV, with the user-facing checks every reader needs first.

Decoding video and loading audio both start here, so a missing, empty or unreadable file gets the
same one-line `LipdubError` whichever reader meets it first.
"""

from __future__ import annotations

from pathlib import Path

import av

from lipdub.errors import LipdubError


def check_input_file(path: Path, expected: str) -> None:
    """Refuse what cannot be a media file: missing, a directory, empty. ``expected`` names what it should be."""
    if not path.exists():
        raise LipdubError(f"{path}: no such file")
    if path.is_dir():
        raise LipdubError(f"{path}: is a directory, not {expected}")
    if path.stat().st_size == 0:
        raise LipdubError(f"{path}: empty file")


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0] if text else type(exc).__name__


def open_media(path: Path) -> av.container.InputContainer:
    """``av.open`` with its failures turned into one-line `LipdubError`s."""
    try:
        return av.open(str(path))
    except PermissionError as exc:
        raise LipdubError(f"{path}: cannot read file ({exc.strerror})") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise LipdubError(f"{path}: not a readable media file ({error_reason(exc)})") from None
