"""Decode ahead and encode behind: codec work beside the rendering instead of strictly in turn.

PyAV releases the GIL while FFmpeg decodes or encodes, so a decoder running one bounded queue ahead
of the loop, and an encoder draining a bounded queue behind it, overlap with the numpy/OpenCV/torch
work of the frame in hand (which also release the GIL for most of their time). The queues are
bounded (`DEPTH` frames), so memory stays flat; errors in either thread are raised in the caller,
at the next item (decode) or at `close` (encode).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

DEPTH = 16
_END = object()


def prefetched(items: Iterable, depth: int = DEPTH) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            buffer.put(error)

    thread = threading.Thread(target=produce, name="lipdub-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class BackgroundWriter:
    """Calls ``write(item)`` of a writer from one background thread, in order, ``depth`` behind."""

    def __init__(self, writer, depth: int = DEPTH):
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="lipdub-encode", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._writer.write(item)
                except BaseException as error:  # raised in the caller by write/close
                    self._error = error

    def write(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait until everything queued is written; raise what the writer raised, if anything."""
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
