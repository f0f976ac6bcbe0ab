"""The job API's bounded worker pool: a few threads, each running one job at a time in a child process.

A dub is seconds to hours of CPU work in native code (PyTorch, MediaPipe, FFmpeg). Running it in a
child process, not a thread of the web server, means a job can be cancelled at any moment
(terminate the child; the pipeline's output only ever appears by rename, so nothing half-written
is left as the result), a crash in native code fails one job instead of the server, and the web
threads never wait behind the GIL. The children come from a ``forkserver`` that imported the
pipeline's heavy modules once, so a job starts in milliseconds instead of re-importing PyTorch.

The pool holds no job state: it claims queued rows from the `JobStore`, and the child writes its
own progress and outcome there. A child whose server dies (even by SIGKILL) notices its end of a
pipe closing and exits, so a restarted server never races an orphan for the same job.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

from lipdub.errors import LipdubError
from lipdub.serving.store import JobStore

logger = logging.getLogger(__name__)

#: The finished video's name inside its job folder; it only exists once complete (renamed into place).
RESULT_NAME = "result.mp4"

#: Imported once by the forkserver, so each job's process starts with them already loaded.
_PRELOAD = [
    "lipdub.serving.worker", "torch", "cv2", "av", "mediapipe", "lipdub.pipeline", "lipdub.engines",
    "lipdub.engines.motion", "lipdub.engines.generator", "lipdub.face.detect", "lipdub.media.decode",
    "lipdub.media.encode", "lipdub.media.audio",
]


def public_message(message: str, folder: Path) -> str:
    """A `LipdubError` about a job's files as one line, without the server's folder in it."""
    text = str(message)
    for prefix in (str(Path(folder).resolve()), str(folder)):
        text = text.replace(prefix + os.sep, "").replace(prefix, "job folder")
    return " ".join(text.split())


class WorkerPool:
    """Runs queued jobs from ``store``, at most ``workers`` at once, each in its own process.

    ``jobs_dir`` holds one folder per job, named by its id. ``torch_threads`` caps each job's
    PyTorch threads (default: the machine's cores shared between the workers).
    """

    def __init__(self, store: JobStore, jobs_dir: Path, workers: int = 1, profiles: Path | None = None,
                 torch_threads: int | None = None, poll_seconds: float = 1.0) -> None:
        self.store = store
        self.jobs_dir = Path(jobs_dir)
        self.workers = max(0, int(workers))
        self.profiles = profiles
        self.torch_threads = torch_threads or max(1, _cores() // max(1, self.workers))
        self.poll_seconds = poll_seconds
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        self._cancelled: set[str] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"lipdub-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """A job was queued: let an idle worker look now rather than at its next poll."""
        self._wake.set()

    def running(self) -> int:
        with self._lock:
            return len(self._processes)

    def cancel(self, job_id: str, timeout: float = 10.0) -> None:
        """Stop ``job_id``'s process if it is running (mark the job cancelled in the store first)."""
        with self._lock:
            process = self._processes.get(job_id)
            if process is not None:
                self._cancelled.add(job_id)
        # No process yet (queued, or claimed a moment ago): its child finds the row cancelled and returns.
        if process is not None:
            _stop(process, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs and end running ones; their rows stay ``running`` for the next start to recover."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            _stop(process, timeout)
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        from multiprocessing import forkserver

        forkserver.ensure_running()  # pay the preload now, not in the first job's latency
        while not self._stopping.is_set():
            job = self.store.claim_next()
            if job is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            try:
                self._run(job.id, job.face, job.audio, job.options)
            except Exception:  # a bug here must not kill the worker thread and strand the queue
                logger.exception("worker failed on job %s", job.id)
                self.store.fail(job.id, "internal error in the worker; see the server log")

    def _run(self, job_id: str, face: str, audio: str, options: str) -> None:
        folder = self.jobs_dir / job_id
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_job, name=f"lipdub-job-{job_id[:8]}", daemon=True,
            args=(str(self.store.path), job_id, str(folder), face, audio, options,
                  None if self.profiles is None else str(self.profiles), self.torch_threads, reader),
        )
        with self._lock:
            if self._stopping.is_set():
                return  # the row stays running: recovered (re-queued) by the next server
            self._processes[job_id] = process
            process.start()
        reader.close()
        logger.info("job %s started in process %s", job_id, process.pid)
        try:
            process.join()
        finally:
            writer.close()
            with self._lock:
                self._processes.pop(job_id, None)
                cancelled = job_id in self._cancelled
                self._cancelled.discard(job_id)
        if process.exitcode != 0 and not cancelled and not self._stopping.is_set():
            self.store.fail(job_id, f"the job's process stopped unexpectedly (exit code {process.exitcode})")
        logger.info("job %s ended (exit code %s)", job_id, process.exitcode)


def _cores() -> int:
    """Cores this process may run on (its CPU affinity, which a container may set below the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _stop(process, timeout: float) -> None:
    process.terminate()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(timeout)


class _Reporter:
    """The pipeline's progress callback, written to the store at most every ``interval`` seconds."""

    def __init__(self, store: JobStore, job_id: str, interval: float = 0.5) -> None:
        self.store = store
        self.job_id = job_id
        self.interval = interval
        self._first: tuple[float, int] | None = None
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done)
        start, first_done = self._first
        fps = (done - first_done) / (now - start) if now > start and done > first_done else None
        if now - self._last < self.interval and done < total:
            return
        self._last = now
        if not self.store.report(self.job_id, "rendering", done, total, fps):
            raise _JobGone(self.job_id)


class _JobGone(Exception):
    """The job was cancelled while running: stop the pipeline (it removes its temporary output)."""


def run_job(store_path: str, job_id: str, folder: str, face: str, audio: str, options: str,
            profiles: str | None, torch_threads: int, parent_alive) -> None:
    """One job, in its own process: sync the saved inputs and record the outcome in the store."""
    _exit_with_parent(parent_alive)
    import torch

    from lipdub.face.lip_retest import lip_caution
    from lipdub.pipeline import sync
    from lipdub.serving.options import JobOptions

    torch.set_num_threads(torch_threads)
    store = JobStore(Path(store_path))
    folder_path = Path(folder)
    job = store.get(job_id)
    if job is None or job.state.value != "running":
        return
    started = time.monotonic()
    try:
        _clear_folder(folder_path, keep={face, audio})
        sync_options = JobOptions.model_validate_json(options).to_sync_options(
            None if profiles is None else Path(profiles))
        store.report(job_id, "preparing")
        result = sync(folder_path / face, folder_path / audio, folder_path / RESULT_NAME, sync_options,
                      progress=_Reporter(store, job_id))
    except _JobGone:
        return
    except LipdubError as error:
        store.fail(job_id, public_message(str(error), folder_path))
        return
    except Exception as error:  # a bug in the pipeline: log it here, show the user one line
        logger.exception("job %s failed", job_id)
        store.fail(job_id, f"internal error ({type(error).__name__}); see the server log")
        return
    seconds = time.monotonic() - started
    store.finish(job_id, RESULT_NAME, result.frames, result.frames / seconds if seconds > 0 else None,
                 warning=lip_caution(result.lip_reading))


def _exit_with_parent(connection) -> None:
    """End this process as soon as the server that started it is gone (its pipe end closes)."""

    def watch() -> None:
        try:
            connection.recv()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="lipdub-parent-watch", daemon=True).start()


def _clear_folder(folder: Path, keep: set[str]) -> None:
    """Remove what an earlier, interrupted attempt left (a temporary output) before running again."""
    if not folder.is_dir():
        raise LipdubError("the job's files are gone")
    for entry in folder.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
