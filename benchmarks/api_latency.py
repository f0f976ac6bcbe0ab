"""Latency of the job API on the bundled sample: submit -> first response, -> running, -> done.

    python benchmarks/api_latency.py [--jobs 3] [--workers 1] [--bad 100]

Starts ``lipdub serve`` in a subprocess on a free port of 127.0.0.1 with a fresh data folder,
submits the sample photo + speech ``--jobs`` times one after the other over real HTTP (polling
every 50 ms), and prints each job's times. The first job after start-up also pays for the worker
forkserver importing PyTorch and MediaPipe; the rest show a warm server. ``--bad`` then sends that
many uploads of text renamed ``.mp4`` and prints how fast they are refused.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ASSETS = Path(__file__).resolve().parents[1] / "lipdub" / "assets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "lipdub", "serve", "--port", str(port), "--data", str(data),
                                "--workers", str(workers), "--quiet"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start in 90 s")


def one_job(client: httpx.Client, face: bytes, audio: bytes) -> dict[str, float]:
    start = time.perf_counter()
    response = client.post("/v1/jobs", files={"face": ("face.jpg", face), "audio": ("speech.wav", audio)})
    times = {"response": time.perf_counter() - start}
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        now = time.perf_counter() - start
        if job["state"] == "running":
            times.setdefault("running", now)
        if job["stage"] == "rendering":
            times.setdefault("rendering", now)
        if job["state"] in ("done", "failed", "cancelled"):
            if job["state"] != "done":
                raise SystemExit(f"job {job_id} {job['state']}: {job['error']}")
            times["done"] = now
            times["frames"] = job["frames_total"]
            return times
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="sample jobs, one after the other")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bad", type=int, default=100, help="text-renamed-.mp4 uploads to send afterwards")
    args = parser.parse_args()
    face, audio = (ASSETS / "sample_face.jpg").read_bytes(), (ASSETS / "sample_speech.wav").read_bytes()
    with tempfile.TemporaryDirectory(prefix="lipdub-api-bench-") as folder:
        started = time.perf_counter()
        process, url = start_server(Path(folder) / "data", args.workers)
        print(f"server up in {time.perf_counter() - started:.1f} s")
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                for index in range(args.jobs):
                    times = one_job(client, face, audio)
                    label = "cold" if index == 0 else "warm"
                    print(f"job {index + 1} ({label}): first response {times['response'] * 1000:6.1f} ms, "
                          f"running {times.get('running', float('nan')):5.2f} s, "
                          f"rendering {times.get('rendering', float('nan')):5.2f} s, done {times['done']:5.2f} s "
                          f"({times['frames']} frames, {times['frames'] / times['done']:.1f} fps end to end)")
                refused = []
                text = b"not a video at all\n" * 100
                for _ in range(args.bad):
                    start = time.perf_counter()
                    response = client.post("/v1/jobs", files={"face": ("talk.mp4", text), "audio": ("speech.wav", audio)})
                    refused.append((response.status_code, time.perf_counter() - start))
                if refused:
                    codes = sorted({code for code, _ in refused})
                    seconds = [elapsed for _, elapsed in refused]
                    print(f"{args.bad} bad uploads: status {codes}, median {statistics.median(seconds) * 1000:.1f} ms, "
                          f"max {max(seconds) * 1000:.1f} ms")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
