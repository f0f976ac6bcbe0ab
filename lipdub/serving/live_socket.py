"""Live avatars over a WebSocket (``/v1/live``), and the page that drives one from a browser (``/live``).

The job API dubs files; a talking avatar in a browser or an app needs frames while the person is
still speaking. One WebSocket connection is one `lipdub.live.LiveAvatar`:

1. client -> text: ``{"fps": 25, "quality": 80, "face_index": 0, "max_side": 720, "articulation": 1.0, "token": "..."}`` (all optional; the token is
   needed when the server has one: a browser cannot put it in a WebSocket's headers);
2. client -> binary: the photo (jpg, png, webp; sniffed by content, at most `MAX_PHOTO_BYTES`), or a
   short video of the person (its first 10 s loop forward and back at its own frame rate);
3. server -> text: ``{"width", "height", "fps", "sample_rate": 16000, "audio": "s16le",
   "latency_ms", "warnings"}``: the avatar is ready (``warnings``: one-line cautions, usually none;
   e.g. a video whose lips the tracker cannot read, `lipdub.face.lip_retest`);
4. client -> binary: raw 16 kHz mono signed 16-bit little-endian PCM, pieces of any size, as it is
   spoken; server -> binary: one JPEG per frame, in order, each as soon as it is final;
5. client -> text ``{"end": true}``: the server sends the frames left, then
   ``{"frames": N, "speech_seconds": S}``, and closes (1000).

A refusal is one text message ``{"error": "one line"}`` and a close: 1008 for a missing or wrong
token or a server with every live slot taken, 1003 for bad input (no face, not a picture, odd bytes,
speech past the server's ``max_seconds``). The drawing runs in a worker thread, so one avatar never
blocks the server's other requests; at most ``live_sessions`` avatars run at once (each keeps a
core busy at 25 fps).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from anyio import to_thread
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError

from lipdub.errors import LipdubError
from lipdub.pipeline import ARTICULATION_RANGE
from lipdub.serving.options import one_line
from lipdub.serving.worker import public_message

logger = logging.getLogger(__name__)

#: Largest photo accepted: under uvicorn's 16 MiB cap on one WebSocket message (`ws_max_size`),
#: so a bigger one is refused in our words rather than cut off by the server.
MAX_PHOTO_BYTES = 15 * 1024 * 1024
#: Photos are drawn at most this many pixels a side, whatever the client asks: a phone's 4032 px
#: portrait would keep a slot far slower than real time (a 1342 px one already draws only 24.5
#: frames a second on two cores; `benchmarks/live.py`).
MAX_SIDE = 1280
PAGE = Path(__file__).with_name("live_page.html")
#: Close codes (RFC 6455): policy violation (token, no free slot), unsupported data (bad input).
POLICY, BAD_DATA = 1008, 1003


class LiveHello(BaseModel):
    """The first message of a live connection."""

    fps: float = Field(25.0, ge=1.0, le=60.0, description="Frames per second to draw a photo at (a video plays at its own rate).")
    quality: int = Field(80, ge=30, le=95, description="JPEG quality of each frame.")
    token: str | None = Field(None, description="The server's bearer token, where it has one.")
    face_index: int | None = Field(None, ge=0, le=64, description="Which face when the photo shows several, left to right.")
    max_side: int | None = Field(None, ge=64, le=8192, description="Shrink the photo first to at most this many pixels a side (never above `MAX_SIDE`).")
    articulation: float = Field(1.0, ge=ARTICULATION_RANGE[0], le=ARTICULATION_RANGE[1], description="How widely the mouth moves for the speech (1 = an average speaker's, or the video's own).")


class _Refused(Exception):
    """A live connection to end with one message and a close code."""

    def __init__(self, message: str, code: int = BAD_DATA):
        super().__init__(message)
        self.code = code


def jpeg(frame: np.ndarray, quality: int) -> bytes:
    """An RGB frame as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise LipdubError("could not encode a frame")
    return data.tobytes()


def add_live_routes(app: FastAPI, settings, sessions: int) -> None:
    """Add ``/v1/live`` (the socket) and ``/live`` (the page) to ``app``; ``settings`` is the
    server's (`lipdub.serving.api.ServerSettings`: token, ``max_seconds``)."""
    slots = threading.BoundedSemaphore(sessions) if sessions > 0 else None

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page() -> HTMLResponse:
        """A page that makes a live avatar of a photo and speaks into it (microphone or a file)."""
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        taken = False
        avatar = None
        folder = tempfile.TemporaryDirectory(prefix="lipdub-live-")
        try:
            hello = _hello(await websocket.receive_text())
            if not settings.token_ok(websocket.headers.get("authorization")) and \
                    not settings.token_ok(f"Bearer {hello.token or ''}"):
                raise _Refused("missing or wrong token", POLICY)
            if slots is None:
                raise _Refused("this server draws no live avatars (live_sessions is 0)", POLICY)
            taken = slots.acquire(blocking=False)
            if not taken:
                raise _Refused("every live slot of this server is in use; try again later", POLICY)
            photo = await websocket.receive_bytes()
            if not photo:
                raise _Refused("the photo is empty")
            if len(photo) > MAX_PHOTO_BYTES:
                raise _Refused(f"the photo is over {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
            path = Path(folder.name) / "photo-or-video"
            path.write_bytes(photo)
            avatar = await to_thread.run_sync(on_one_thread, _make_avatar, path, hello)
            height, width = avatar.frame_shape
            await websocket.send_json({"width": width, "height": height, "fps": avatar.fps,
                                       "sample_rate": avatar.sample_rate, "audio": "s16le",
                                       "latency_ms": round(1000 * avatar.latency_seconds),
                                       "warnings": _warnings(avatar)})
            await _stream(websocket, avatar, hello.quality, settings.max_seconds)
        except _Refused as refusal:
            await _refuse(websocket, str(refusal), refusal.code)
        except LipdubError as error:
            await _refuse(websocket, public_message(str(error), Path(folder.name)), BAD_DATA)
        except WebSocketDisconnect:
            logger.info("live client left")
        finally:
            if avatar is not None:
                avatar.close()
            if taken:
                slots.release()
            folder.cleanup()


def _hello(text: str) -> LiveHello:
    try:
        return LiveHello.model_validate(json.loads(text or "{}"))
    except ValidationError as error:
        raise _Refused(f"first message: {one_line(error)}") from None
    except ValueError:
        raise _Refused("first message: not JSON") from None


def _warnings(avatar) -> list[str]:
    """What the ready message cautions about: a video loop whose lips the tracker cannot read."""
    from lipdub.face.lip_retest import lip_caution

    caution = lip_caution(avatar.lip_reading)
    return [] if caution is None else [caution]


def on_one_thread(function, *args):
    """``function(*args)`` with one torch intra-op thread in the calling (worker) thread.

    As `lipdub live` does: the motion network runs on a few frames per step, and with two threads
    one step in ten waited ~100 ms for a thread to wake (docs/benchmarks.md, live avatars). Torch's
    thread count is per calling thread here (OpenMP), so it is set in each worker thread that runs
    an avatar's work; sessions still run side by side, each in its own worker thread.
    """
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return function(*args)


def _make_avatar(path: Path, hello: LiveHello):
    from lipdub.live import LiveAvatar
    from lipdub.media.decode import probe_video
    from lipdub.pipeline import SyncOptions

    side = MAX_SIDE if hello.max_side is None else min(hello.max_side, MAX_SIDE)
    fps = hello.fps if probe_video(path).is_photo else None  # a video plays at its own rate
    return LiveAvatar(path, fps=fps, options=SyncOptions(face_index=hello.face_index, articulation=hello.articulation),
                      max_side=side)


async def _stream(websocket: WebSocket, avatar, quality: int, max_seconds: float) -> None:
    """Steps 4 and 5 of the protocol (module docstring)."""
    from lipdub.media.audio import pcm_s16le_to_float

    limit = int(max_seconds * avatar.sample_rate)
    heard = 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            samples = pcm_s16le_to_float(message["bytes"])
            heard += len(samples)
            if heard > limit:
                raise _Refused(f"the speech is over this server's limit of {max_seconds:g} s")
            frames = await to_thread.run_sync(on_one_thread, avatar.push, samples)
        else:
            try:
                ended = json.loads(message.get("text") or "{}").get("end") is True
            except (ValueError, AttributeError):
                ended = False
            if not ended:
                raise _Refused('a text message during the stream must be {"end": true}')
            frames = await to_thread.run_sync(on_one_thread, avatar.finish)
        for frame in frames:
            await websocket.send_bytes(await to_thread.run_sync(jpeg, frame, quality))
        if message.get("bytes") is None:
            await websocket.send_json({"frames": avatar.frames_out, "speech_seconds": heard / avatar.sample_rate})
            await websocket.close(1000)
            return


async def _refuse(websocket: WebSocket, message: str, code: int) -> None:
    try:
        await websocket.send_json({"error": message})
        await websocket.close(code)
    except (WebSocketDisconnect, RuntimeError):  # the client is already gone
        pass
