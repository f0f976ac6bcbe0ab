"""Throughput of `lipdub batch`: N jobs on the local process pool and on a local Ray.

    python benchmarks/batch_throughput.py [--jobs 8] [--backends local ray] [--workers N] [--seconds S]

Every job dubs the same face (default: the bundled sample photo) with the bundled sample speech
(or its first ``--seconds``), into a fresh temporary folder, through `lipdub.serving.batch.run_batch`
exactly as ``lipdub batch`` runs it: the figures include starting the workers (spawned processes
importing torch and MediaPipe, or a local Ray) and loading the models in each, as a user pays them.
Prints jobs per minute and output frames per second per backend, with the machine's CPU count
and load (other work on the machine changes absolute figures; compare backends within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "lipdub" / "assets"


def speech_clip(seconds: float | None, folder: Path) -> Path:
    """The bundled speech, or its first ``seconds`` (cut with the standard library: it is a wav)."""
    source = ASSETS / "sample_speech.wav"
    if seconds is None:
        return source
    with wave.open(str(source)) as reader:
        params = reader.getparams()
        samples = reader.readframes(int(seconds * reader.getframerate()))
    path = folder / "speech.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(samples)
    return path


def run(backend: str, jobs: int, face: Path, audio: Path, workers: int | None, fps: float) -> dict:
    from lipdub.serving import batch, executors
    from lipdub.serving.options import JobOptions

    with tempfile.TemporaryDirectory(prefix="lipdub-batch-bench-") as folder:
        out = Path(folder) / "out"
        # N speech "tracks": the same file under N names, so each job has its own output.
        tracks = []
        for index in range(jobs):
            track = Path(folder) / f"track{index:02d}{audio.suffix}"
            track.symlink_to(audio.resolve())
            tracks.append(track)
        rows = batch.validate_rows(batch.rows_for_tracks(face, tracks, out, JobOptions(fps=fps)))
        factory = executors.ray_executor(workers=workers) if backend == "ray" else executors.local_executor(workers=workers)
        report = batch.run_batch(rows, out, factory)
    if report.failed:
        raise SystemExit(f"{backend}: {len(report.failed)} jobs failed: {report.failed[0].error}")
    return {
        "backend": backend,
        "jobs": report.jobs_done,
        "workers": report.workers,
        "seconds": round(report.seconds, 1),
        "jobs_per_min": round(report.jobs_done / report.seconds * 60, 2),
        "frames": report.frames_done,
        "output_fps": round(report.frames_done / report.seconds, 1),
        "mean_job_seconds": round(sum(r.seconds for r in report.results) / len(report.results), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--backends", nargs="+", choices=("local", "ray"), default=["local", "ray"])
    parser.add_argument("--workers", type=int, default=None, help="jobs at once (default: lipdub batch's)")
    parser.add_argument("--face", type=Path, default=ASSETS / "sample_face.jpg")
    parser.add_argument("--seconds", type=float, default=None, help="cut the bundled speech to this length")
    parser.add_argument("--fps", type=float, default=25.0, help="output frame rate for a photo")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from lipdub.serving.executors import usable_cpus

    print(json.dumps({"python": platform.python_version(), "cpus": usable_cpus(), "load_1min": round(os.getloadavg()[0], 2),
                      "face": args.face.name, "jobs": args.jobs}), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        audio = speech_clip(args.seconds, Path(folder))
        for backend in args.backends:
            start = time.perf_counter()
            figures = run(backend, args.jobs, args.face, audio, args.workers, args.fps)
            figures["load_1min_after"] = round(os.getloadavg()[0], 2)
            print(json.dumps(figures), flush=True)
            print(f"  {backend}: {time.perf_counter() - start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
