"""The one error type users see.

Every failure caused by the user's input (a missing file, a video without frames, audio without
samples, no face anywhere, an output path that cannot be written) raises `LipdubError` with a
message that makes sense on one line. The CLI catches it once and prints it; anything else that
escapes is a bug and is allowed to raise with a traceback.
"""


class LipdubError(Exception):
    """A user-facing failure, printed by the CLI as a single line."""
