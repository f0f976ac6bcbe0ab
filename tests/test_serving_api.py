"""The job API over real HTTP: `lipdub serve` in a subprocess on 127.0.0.1, driven with httpx.

One real dub of the bundled sample runs while a hundred bad uploads are refused beside it; a
server killed mid-queue is replaced by one that finishes its jobs; schemathesis fuzzes every
endpoint from the server's own OpenAPI schema. The bad uploads and the fuzzing exercise the real
server (validation, sniffing, the store); only the good jobs pay for a dub.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"
FACE = (ASSETS / "sample_face.jpg").read_bytes()
SPEECH = (ASSETS / "sample_speech.wav").read_bytes()
TOKEN = "test-token-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT_MB = 1.0  # per upload; the sample's face and speech are well under it
MAX_SECONDS = 10.0  # the sample speech is 8 s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m lipdub serve` on a free port of 127.0.0.1, with its log in a file."""

    def __init__(self, data: Path, workers: int = 1, token: str | None = TOKEN, tag: str | None = None) -> None:
        self.data = data
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data.parent / f"server-{self.port}.log"
        env = {**os.environ, "LIPDUB_TOKEN": token or ""}
        if tag:
            env["LIPDUB_TEST_TAG"] = tag  # inherited by the worker processes: lets the test find them
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lipdub", "serve", "--port", str(self.port), "--data", str(data),
             "--workers", str(workers), "--max-upload-mb", str(LIMIT_MB), "--max-seconds", str(MAX_SECONDS), "-v"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not come up in 90 s")

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    running = Server(root / "data")
    yield running
    running.stop()


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, headers=AUTH)


def _submit(client: httpx.Client, face: bytes = FACE, audio: bytes = SPEECH, options: str = "") -> httpx.Response:
    return client.post("/v1/jobs", files={"face": ("face.jpg", face), "audio": ("speech.wav", audio)},
                       data={"options": options})


def _wait(client: httpx.Client, job_id: str, states=("done", "failed"), timeout: float = 400) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def _check_video(data: bytes, seconds: float) -> None:
    import av

    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video and container.streams.audio
        video = container.streams.video[0]
        assert video.width > 0 and sum(1 for _ in container.decode(video)) > 0
        assert abs(float(container.duration) / 1e6 - seconds) < 0.5


def _wav(seconds: float) -> bytes:
    """The sample speech, cut or repeated to ``seconds``."""
    with wave.open(str(ASSETS / "sample_speech.wav")) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    width = params.sampwidth * params.nchannels
    wanted = int(seconds * params.framerate) * width
    data = (frames * (wanted // len(frames) + 1))[:wanted]
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setparams(params)
        target.writeframes(data)
    return out.getvalue()


def _small_mp4() -> bytes:
    """A valid 1 s MP4 without a face (ten frames of noise), to truncate."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def _bad_uploads() -> list[tuple[str, dict, int, str]]:
    """(what, request arguments, expected status, a word the message must contain): 100 of them."""
    mp4 = _small_mp4()
    text = b"this is a text file, renamed so that it looks like a video\n" * 20
    over = int(LIMIT_MB * 1024 * 1024)
    cases: list[tuple[str, dict, int, str]] = []

    def upload(what, face=FACE, audio=SPEECH, status=422, word="", options="", headers=None, names=("face", "audio")):
        files = {names[0]: ("upload.mp4", face), names[1]: ("upload.wav", audio)}
        cases.append((what, {"files": files, "data": {"options": options}, "headers": AUTH if headers is None else headers}, status, word))

    for index in range(5):
        upload(f"empty face #{index}", face=b"", word="empty")
        upload(f"empty audio #{index}", audio=b"", word="empty")
        upload(f"text renamed .mp4 as face #{index}", face=text * (index + 1), word="face")
        upload(f"text renamed .wav as audio #{index}", audio=text * (index + 1), word="audio")
    for fraction in (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        upload(f"truncated mp4 ({fraction:.0%}) as face", face=mp4[: int(len(mp4) * fraction)], word="face")
    for size in (4, 12, 20, 36, 44):  # a wav cut inside its header, or right after it (no samples)
        upload(f"truncated wav ({size} bytes)", audio=SPEECH[:size], word="audio")
    for index in range(4):
        upload(f"10x over the limit #{index}", face=os.urandom(10 * over), status=413, word="limit")
        upload(f"just over the limit #{index}", audio=os.urandom(over + 1 + index * 1000), status=413, word="limit")
        upload(f"random bytes as face #{index}", face=os.urandom(5000 + index), word="face")
    for names in (("video", "audio"), ("face", "speech"), ("video", "speech"), ("Face", "Audio"), ("file", "file2")):
        upload(f"wrong field names {names}", names=names, word="required")
    upload("photo as the speech", audio=FACE, word="no audio stream")
    upload("speech as the face", face=SPEECH, word="face")
    upload("mp4 without audio as the speech", audio=mp4, word="no audio stream")
    upload("speech over the length limit", audio=_wav(MAX_SECONDS + 6), word="longer than")
    for options, word in (("not json", "options"), ('{"lenght_mode": "cut"}', "lenght_mode"),
                          ('{"length_mode": "sideways"}', "length_mode"), ('{"box": [5, 5, 1, 1]}', "box"),
                          ('{"box": [1, 2]}', "box"), ('{"face_index": -1}', "face_index"),
                          ('{"engine": "paint"}', "engine"), ('{"profile": "../../etc"}', "profile"),
                          ('{"profile": "anna"}', "profile"), ('{"fps": 0}', "fps"), ('{"crf": 99}', "crf"),
                          ("[1, 2, 3]", "options"), ('{"model": "/etc/passwd"}', "model")):
        upload(f"bad options {options}", options=options, word=word)
    for index, headers in enumerate(({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"})):
        upload(f"bad token #{index}", headers=headers, status=401, word="token")
    while len(cases) < 99:
        upload(f"empty both #{len(cases)}", face=b"", audio=b"", word="empty")
    cases.append(("json instead of multipart", {"json": {"face": "x", "audio": "y"}, "headers": AUTH}, 422, "required"))
    return cases


@pytest.mark.slow
def test_full_job_on_the_sample_while_100_bad_uploads_are_refused(server):
    client = _client(server)
    submitted = time.monotonic()
    response = _submit(client, options='{"length_mode": "cut"}')
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued" and response.headers["location"] == f"/v1/jobs/{job['id']}"

    cases = _bad_uploads()
    assert len(cases) == 100
    answers = []
    stranger = httpx.Client(base_url=server.url, timeout=60)  # each case brings its own Authorization header
    for what, arguments, status, word in cases:
        answer = stranger.post("/v1/jobs", **arguments)
        detail = answer.json().get("detail")
        answers.append((what, answer.status_code, detail))
        assert answer.status_code == status, (what, answer.status_code, detail)
        assert isinstance(detail, str) and detail and "\n" not in detail and len(detail) < 300, (what, detail)
        assert word.lower() in detail.lower(), (what, detail)
        assert "Traceback" not in detail and str(server.data) not in detail, (what, detail)
    assert all(400 <= status < 500 for _, status, _ in answers)
    # while the good job was waiting or running, its result is not offered
    early = client.get(f"/v1/jobs/{job['id']}/result")
    state = client.get(f"/v1/jobs/{job['id']}").json()["state"]
    assert early.status_code == 409 or (early.status_code == 200 and state == "done"), (early.status_code, state)

    done = _wait(client, job["id"])
    elapsed = time.monotonic() - submitted
    assert done["state"] == "done", done
    assert done["progress"] == 1.0 and done["frames_done"] == done["frames_total"] > 0 and done["error"] is None
    assert done["warning"] is None  # a photo: no lip retest
    result = client.get(done["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    _check_video(result.content, seconds=8.0)
    # the refused uploads left nothing behind: one job folder, the good one
    assert sorted(path.name for path in (server.data / "jobs").iterdir()) == [job["id"]]
    print(f"\nsample job: submit -> done {elapsed:.1f} s; 100 bad uploads: "
          + ", ".join(f"{code}: {sum(s == code for _, s, _ in answers)}" for code in sorted({s for _, s, _ in answers})))

    deleted = client.delete(f"/v1/jobs/{job['id']}")
    assert deleted.status_code == 200 and deleted.json()["state"] == "done"
    assert not (server.data / "jobs" / job["id"]).exists()
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 404


def _tagged_processes(tag: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``LIPDUB_TEST_TAG=tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"LIPDUB_TEST_TAG={tag}".encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "Z" not in state.split()[1]:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the worker processes")
def test_delete_stops_a_running_job(tmp_path):
    tag = uuid.uuid4().hex
    server = Server(tmp_path / "data", workers=1, tag=tag)
    try:
        client = _client(server)
        # 10 s of speech (the test server's limit): the job must still be running when the second
        # one is queued; a 1 s job could finish in between (CI saw it once).
        running = _submit(client, audio=_wav(10.0)).json()["id"]
        _wait(client, running, states=("running",), timeout=120)
        while client.get(f"/v1/jobs/{running}").json()["stage"] == "starting":
            time.sleep(0.05)  # its process is up once it reports "preparing"
        before = set(_tagged_processes(tag))
        queued = _submit(client, audio=_wav(1.0)).json()["id"]
        assert client.get(f"/v1/jobs/{queued}").json()["state"] == "queued"
        for job_id in (queued, running):
            deleted = client.delete(f"/v1/jobs/{job_id}")
            assert deleted.status_code == 200 and deleted.json()["state"] == "cancelled", deleted.text
            assert not (server.data / "jobs" / job_id).exists()
        after = set(_tagged_processes(tag))
        assert after < before, "the cancelled job's process is still running"
        health = httpx.get(server.url + "/v1/health").json()
        assert (health["queued"], health["running"]) == (0, 0)
        assert list((server.data / "jobs").iterdir()) == []
    finally:
        server.stop()


def test_delete_cancels_a_queued_job_and_removes_its_folder(tmp_path):
    server = Server(tmp_path / "data", workers=0)  # accepts jobs, runs none: they stay queued
    try:
        client = _client(server)
        job = _submit(client).json()
        assert (server.data / "jobs" / job["id"] / "face").is_file()
        assert client.get(f"/v1/jobs/{job['id']}/result").json()["detail"] == "job is queued"
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"
        health = httpx.get(server.url + "/v1/health").json()  # no token needed
        assert (health["queued"], health["running"]) == (1, 0)
        deleted = client.delete(f"/v1/jobs/{job['id']}")
        assert deleted.status_code == 200 and deleted.json()["state"] == "cancelled"
        assert not (server.data / "jobs" / job["id"]).exists()
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the worker processes")
def test_restart_mid_queue_loses_nothing(tmp_path):
    data = tmp_path / "data"
    tag = uuid.uuid4().hex
    first = Server(data, workers=1, tag=tag)
    client = _client(first)
    short = _wav(1.0)  # a 1 s dub keeps the test cheap
    ids = [_submit(client, audio=short, options='{"length_mode": "cut"}').json()["id"] for _ in range(3)]
    running = _wait(client, ids[0], states=("running",), timeout=120)
    assert running["attempts"] == 1
    assert [client.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in ids[1:]] == ["queued", "queued"]
    first.stop(signal.SIGKILL)  # a dead server: no shutdown code runs
    deadline = time.monotonic() + 20
    while _tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _tagged_processes(tag) == [], "the killed server's job process outlived it"

    second = Server(data, workers=1)
    try:
        client = _client(second)
        jobs = [_wait(client, job_id, timeout=300) for job_id in ids]
        assert [job["state"] for job in jobs] == ["done", "done", "done"], jobs
        assert jobs[0]["attempts"] == 2 and [job["attempts"] for job in jobs[1:]] == [1, 1]
        assert "re-queued 1 job" in " ".join(second.log_text().split())
        for job in jobs:
            _check_video(client.get(job["result_url"]).content, seconds=1.0)
    finally:
        second.stop()  # SIGTERM: uvicorn shuts the app down, then re-raises the signal
    assert "job API stopped" in " ".join(second.log_text().split())


def test_schema_fuzzing_finds_no_server_error(server):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, response_headers_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", "/v1/health"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/{job_id}"),
        ("GET", "/v1/jobs/{job_id}/result"), ("DELETE", "/v1/jobs/{job_id}"),
    }
    for operation in operations:
        for headers in (AUTH, {}):  # with the token, and without it (every job route must answer 401)

            @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def fuzz(case):
                case.call_and_validate(headers=headers, checks=checks, timeout=30)

            fuzz()


@pytest.mark.parametrize("args, env, needle", [
    (["--data", "{file}"], {}, "cannot use data folder"),
    ([], {"LIPDUB_WORKERS": "many"}, "workers"),
    (["--max-upload-mb", "1", "--workers", "1"], {"LIPDUB_MAX_ATTEMPTS": "0"}, "max_attempts"),
])
def test_serve_refuses_bad_settings_in_one_line(tmp_path, args, env, needle):
    occupied = tmp_path / "a-file"
    occupied.write_text("not a folder")
    command = [sys.executable, "-m", "lipdub", "serve", *(arg.format(file=occupied) for arg in args)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, **env})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and needle in lines[0].lower(), result.stderr
