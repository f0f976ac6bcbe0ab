"""lipdub: audio-driven lip sync for videos and photos, offline, on a CPU.

The data flows one way: ``media`` decodes frames and audio, ``face`` detects, tracks, aligns and
blends, ``models`` holds the networks and their checkpoints, ``pipeline`` glues them together and
``cli`` is the command line.
"""

from lipdub.errors import LipdubError

__version__ = "0.1.0"
__all__ = ["LipdubError", "sync", "__version__"]


def __getattr__(name):
    # Imported lazily so that `import lipdub` stays cheap (torch and mediapipe load on first use).
    if name == "sync":
        from lipdub.pipeline import sync

        return sync
    raise AttributeError(name)
