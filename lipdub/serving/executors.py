"""Where batch jobs run: a local process pool or Ray tasks, behind one small interface.

`lipdub batch` hands the same job function to either executor; only the place it runs changes.
Both size themselves the same way (`plan_workers`: workers × threads ≈ the CPUs), both yield
results as they finish, and both turn a task that dies without returning (a killed process, out of
memory) into a result for that item instead of an exception that would lose the others. Ray is
imported only when asked for, so a plain install never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from lipdub.errors import LipdubError

T = TypeVar("T")
R = TypeVar("R")




class Executor(Protocol):
    """Runs one function on many items and yields its results as they finish (in any order).

    ``fn`` must be a module-level function (it is pickled to the workers) that handles its own
    failures; a task that dies without returning (its process killed, out of memory) yields
    ``on_crash(item, reason)`` instead, so one lost task never loses the others' results.
    """

    name: str
    workers: int  # tasks running at once
    threads: int  # CPU threads each task may use

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], on_crash: Callable[[T, str], R]) -> Iterator[R]: ...

    def close(self) -> None: ...


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: Threads one dub uses well: the pipeline decodes and encodes in background threads beside the
#: rendering, so a job keeps about two cores busy (on two cores, one job with both beat two jobs
#: with one each: docs/benchmarks.md), and each further worker costs its own models in memory.
THREADS_PER_JOB = 2


def plan_workers(jobs: int, cpus: int | None = None, workers: int | None = None,
                 threads: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) so that workers × threads ≈ the CPUs, never more workers than jobs.

    By default a worker per `THREADS_PER_JOB` cores; given ``workers``, the cores are shared among
    them; given ``threads``, as many workers as fit. No more workers than jobs (an idle worker still
    costs its memory); the cores of workers left out go to the others unless ``threads`` was given.
    """
    cpus = cpus or usable_cpus()
    if workers is None:
        workers = max(1, cpus // (threads or THREADS_PER_JOB))
    workers = max(1, min(workers, max(jobs, 1)))
    return workers, threads or max(1, cpus // workers)


class LocalExecutor:
    """A `concurrent.futures.ProcessPoolExecutor` (spawned processes: torch and fork do not mix)."""

    name = "local"

    def __init__(self, workers: int, threads: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.threads = threads
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        self._futures: list = []

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], on_crash: Callable[[T, str], R]) -> Iterator[R]:
        from concurrent.futures import as_completed

        futures = {self._pool.submit(fn, item): item for item in items}
        self._futures.extend(futures)
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - the worker died (killed, out of memory)
                yield on_crash(futures[future], f"worker process failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Wait for the workers; after an interruption (Ctrl-C), stop them instead.

        A pool shut down normally runs every job already handed to a worker to its end, so a
        Ctrl-C would still wait for (and write) the next dub; unfinished work means the batch was
        interrupted, and its workers are terminated (their outputs only appear complete, by rename).
        """
        if all(future.done() for future in self._futures):
            self._pool.shutdown(wait=True)
            return
        terminate = getattr(self._pool, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)


class RayExecutor:
    """The same job function as Ray tasks, each reserving ``threads`` CPUs of the cluster.

    ``address=None`` starts a local Ray for this batch (and stops it at the end); otherwise it
    connects to a running cluster (``"auto"`` or ``"ray://host:10001"``), whose nodes need lipdub
    installed and must see the input and output paths (a shared file system). Ray runs offline
    here: no dashboard, no usage statistics. Workers and threads are planned like the local pool's
    (`plan_workers`), on the cluster's CPUs.
    """

    name = "ray"

    def __init__(self, address: str | None, jobs: int, workers: int | None = None, threads: int | None = None,
                 cpus: int | None = None, log_to_driver: bool = False) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read by ray.init: never phone home
        try:
            import ray
        except ImportError:
            raise LipdubError("Ray is not installed: pip install 'lipdub[serve]'") from None
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            kwargs = dict(include_dashboard=False, log_to_driver=log_to_driver, configure_logging=False)
            if address is None:
                kwargs["num_cpus"] = cpus or usable_cpus()
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise LipdubError(f"cannot start or reach Ray at {address or 'local'}: {str(exc).splitlines()[0]}") from None
        total = int(ray.cluster_resources().get("CPU", 1))
        self.workers, self.threads = plan_workers(jobs, total, workers, threads)
        self.threads = min(self.threads, total)

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], on_crash: Callable[[T, str], R]) -> Iterator[R]:
        ray = self._ray
        task = ray.remote(fn).options(num_cpus=self.threads, max_retries=0)
        pending = {task.remote(item): item for item in items}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(ready[0])
                try:
                    yield ray.get(ready[0])
                except Exception as exc:  # noqa: BLE001 - the task's worker died
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    yield on_crash(item, f"Ray task failed: {reason}")
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()


def local_executor(workers: int | None = None, threads: int | None = None,
                   cpus: int | None = None) -> Callable[[int], Executor]:
    """A factory for `lipdub.serving.batch.run_batch`: a process pool sized by `plan_workers`."""
    return lambda jobs: LocalExecutor(*plan_workers(jobs, cpus, workers, threads))


def ray_executor(address: str | None = None, workers: int | None = None, threads: int | None = None,
                 cpus: int | None = None, log_to_driver: bool = False) -> Callable[[int], Executor]:
    """A factory for `lipdub.serving.batch.run_batch`: Ray tasks (a local Ray started for the batch when no address)."""
    return lambda jobs: RayExecutor(address, jobs, workers, threads, cpus, log_to_driver)
