"""Live avatars over the job API's WebSocket (`lipdub.serving.live_socket`) and its page in Chromium.

The protocol is driven in-process (Starlette's test client speaks the same ASGI WebSocket messages
as uvicorn); one test opens a real socket on `lipdub serve`, and one plays the page in headless
Chromium, speaking the bundled speech file into the bundled photo.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from lipdub.media.audio import load_audio  # noqa: E402
from lipdub.serving.api import ServerSettings, create_app  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"
PHOTO = (ASSETS / "sample_face.jpg").read_bytes()
TOKEN = "live-test-token"


def pcm(seconds: float) -> bytes:
    speech = load_audio(ASSETS / "sample_speech.wav")[: int(16000 * seconds)]
    return (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture()
def client(tmp_path):
    settings = ServerSettings(data_dir=tmp_path / "data", workers=0, token=TOKEN, max_seconds=5.0, live_sessions=1)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def refusal(socket) -> tuple[str, int]:
    message = socket.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        socket.receive_text()
    return message["error"], closed.value.code


def test_a_photo_and_streamed_speech_come_back_as_jpeg_frames(client):
    import cv2

    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": TOKEN, "fps": 25}))
        socket.send_bytes(PHOTO)
        ready = socket.receive_json()
        assert ready == {"width": 320, "height": 320, "fps": 25.0, "sample_rate": 16000, "audio": "s16le",
                         "latency_ms": 245, "warnings": []}
        data = pcm(2.0)
        frames = []
        for start in range(0, len(data), 1280):  # 40 ms pieces, as a microphone sends them
            socket.send_bytes(data[start:start + 1280])
        socket.send_text(json.dumps({"end": True}))
        while True:
            message = socket.receive()
            if message.get("bytes") is not None:
                frames.append(message["bytes"])
                continue
            summary = json.loads(message["text"])
            break
        assert summary == {"frames": 50, "speech_seconds": 2.0}
        assert len(frames) == 50
        first = cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR)
        assert first.shape == (320, 320, 3)
        grey = np.stack([cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_GRAYSCALE) for f in frames]).astype(float)
        moving = grey.std(axis=0) > 8.0  # the mouth moves from frame to frame; JPEG noise alone stays under 2
        assert 200 < moving.sum() < 0.1 * moving.size


def test_a_wrong_token_is_refused_before_the_photo(client):
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": "nope"}))
        message, code = refusal(socket)
    assert "token" in message and code == 1008


@pytest.mark.parametrize("photo, needle", [(b"not an image at all" * 10, "photo"), (b"", "empty"),
                                           (b"\xff" * (15 * 1024 * 1024 + 1), "over 15 mb")])
def test_a_bad_photo_gets_one_line_without_the_servers_folders(client, photo, needle):
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": TOKEN}))
        socket.send_bytes(photo)
        message, code = refusal(socket)
    assert needle in message.lower() and code == 1003
    assert "\n" not in message and "lipdub-live-" not in message and "/tmp" not in message


def test_a_short_video_speaks_looped_at_its_own_frame_rate(client, tmp_path):
    import cv2

    from lipdub.live import ping_pong
    from lipdub.media.encode import VideoWriter

    photo = cv2.imdecode(np.frombuffer(PHOTO, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    video = tmp_path / "idle.mp4"
    with VideoWriter(video, photo.shape[1], photo.shape[0], 30.0) as writer:
        for k in range(12):  # frame k marked by a grey corner of level 16 k
            frame = photo.copy()
            frame[:24, :24] = 16 * k
            writer.write(frame)
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": TOKEN, "fps": 25}))
        socket.send_bytes(video.read_bytes())
        ready = socket.receive_json()
        assert ready["fps"] == 30.0 and (ready["width"], ready["height"]) == (320, 320) and ready["warnings"] == []
        socket.send_bytes(pcm(1.0))
        socket.send_text(json.dumps({"end": True}))
        frames = []
        while True:
            message = socket.receive()
            if message.get("bytes") is not None:
                frames.append(cv2.imdecode(np.frombuffer(message["bytes"], np.uint8), cv2.IMREAD_GRAYSCALE))
            else:
                assert json.loads(message["text"])["frames"] == 30
                break
    marks = [round(float(f[4:20, 4:20].mean()) / 16) for f in frames]
    assert len(frames) == 30 and marks == [ping_pong(k, 12) for k in range(30)], marks


def test_odd_bytes_and_too_much_speech_are_refused(client):
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": TOKEN}))
        socket.send_bytes(PHOTO)
        socket.receive_json()
        socket.send_bytes(b"\x00\x01\x02")
        message, code = refusal(socket)
    assert "2 bytes" in message and code == 1003
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": TOKEN}))
        socket.send_bytes(PHOTO)
        socket.receive_json()
        socket.send_bytes(pcm(8.0)[: 2 * 16000 * 6])  # 6 s: the server takes 5
        while (message := socket.receive()).get("bytes") is not None:
            pass
    assert "limit of 5 s" in json.loads(message["text"])["error"]


def test_a_second_avatar_waits_for_the_first_slot(client):
    with client.websocket_connect("/v1/live") as first:
        first.send_text(json.dumps({"token": TOKEN}))
        first.send_bytes(PHOTO)
        first.receive_json()
        with client.websocket_connect("/v1/live") as second:
            second.send_text(json.dumps({"token": TOKEN}))
            message, code = refusal(second)
        assert "in use" in message and code == 1008
    with client.websocket_connect("/v1/live") as third:  # the first one left: its slot is free again
        third.send_text(json.dumps({"token": TOKEN}))
        third.send_bytes(PHOTO)
        assert "width" in third.receive_json()


def test_a_bad_first_message_is_named(client):
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"fps": 500}))
        message, code = refusal(socket)
    assert message.startswith("first message: fps") and code == 1003


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    from tests.test_serving_api import Server

    pytest.importorskip("websockets")
    running = Server(tmp_path_factory.mktemp("live") / "data", workers=0, token=None)
    yield running
    running.stop()


def test_lipdub_serve_speaks_websocket(live_server):
    from websockets.sync.client import connect

    with connect(live_server.url.replace("http", "ws") + "/v1/live", max_size=None) as socket:
        socket.send(json.dumps({}))
        socket.send(PHOTO)
        assert json.loads(socket.recv(timeout=60))["width"] == 320
        socket.send(pcm(1.0))
        socket.send(json.dumps({"end": True}))
        frames = 0
        while isinstance(message := socket.recv(timeout=60), bytes):
            frames += 1
    assert frames == 25 and json.loads(message)["frames"] == 25


@pytest.mark.slow
def test_the_live_page_speaks_a_file_and_a_microphone_into_a_photo_in_chromium(live_server, tmp_path):
    from tests.conftest import headless_chromium

    flags = ["--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
             "--use-fake-device-for-media-stream",  # the "microphone" plays the sample speech
             f"--use-file-for-fake-audio-capture={ASSETS / 'sample_speech.wav'}"]
    with headless_chromium(tmp_path / "profile", flags) as (browser, requests):
        page = browser.new_page()
        page.goto(live_server.url + "/live")
        page.click("#file")  # nothing chosen: a plain message, no connection
        assert "first" in page.inner_text("#status")
        page.locator("#photo").set_input_files(str(ASSETS / "sample_face.jpg"))
        page.locator("#speech").set_input_files(str(ASSETS / "sample_speech.wav"))
        page.fill("#articulation", "1.5")  # sent in the hello: a livelier mouth, accepted by the server
        assert page.inner_text("#articulation-value") == "1.5"
        page.click("#file")
        page.wait_for_function("() => /^done: /.test(document.querySelector('#status').textContent)", timeout=120_000)
        status = page.inner_text("#status")
        shown = int(page.get_attribute("#avatar", "data-frames"))
        assert page.evaluate("() => document.querySelector('#avatar').naturalWidth") == 320

        page.click("#mic")
        page.wait_for_function("() => /Speak\\.$/.test(document.querySelector('#status').textContent)", timeout=60_000)
        page.wait_for_timeout(2000)
        page.click("#stop")
        page.wait_for_function("() => /^done: /.test(document.querySelector('#status').textContent)", timeout=60_000)
        spoken = page.inner_text("#status")

    heard = re.match(r"done: (\d+) frames for ([\d.]+) s", spoken)
    assert heard and int(heard.group(1)) > 10, spoken  # two seconds of "microphone"
    match = re.match(r"done: (\d+) frames for ([\d.]+) s", status)
    assert match, status
    # The page resamples the file in the browser: about 25 frames a second of the 8 s sample.
    assert shown == int(match.group(1)) and abs(shown - 199) <= 2
    # Everything the page asked for came from the server itself (or the page's own blobs): it works offline.
    host = live_server.url.split("//")[1]
    assert requests and all(url.split("//")[1].startswith(host) or url.startswith(("blob:", "data:")) for url in requests), requests


def test_the_server_shrinks_a_big_photo_to_its_own_limit(client, monkeypatch):
    import lipdub.serving.live_socket as live_socket

    monkeypatch.setattr(live_socket, "MAX_SIDE", 200)  # the sample is 320 px: over this limit
    with client.websocket_connect("/v1/live") as socket:
        socket.send_text(json.dumps({"token": TOKEN, "max_side": 4000}))
        socket.send_bytes(PHOTO)
        ready = socket.receive_json()
    assert (ready["width"], ready["height"]) == (200, 200)


def test_avatar_work_runs_on_one_torch_thread_without_touching_the_callers():
    """`on_one_thread` sets one intra-op thread where the avatar's work runs (a worker thread), as
    `lipdub live` does for its process; the thread that called nothing keeps its own setting."""
    import threading

    import torch

    from lipdub.serving.live_socket import on_one_thread

    before = torch.get_num_threads()
    seen = []
    worker = threading.Thread(target=lambda: seen.append(on_one_thread(torch.get_num_threads)))
    worker.start()
    worker.join()
    assert seen == [1]
    assert torch.get_num_threads() == before
