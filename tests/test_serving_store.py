"""The job store: state transitions only from the states they may leave, and restart recovery."""

import threading

from lipdub.serving.store import JobState, JobStore, is_job_id, new_job_id


def _queued(store: JobStore, count: int) -> list[str]:
    ids = [new_job_id() for _ in range(count)]
    for job_id in ids:
        store.create(job_id, "{}", "face", "audio")
    return ids


def test_jobs_are_claimed_oldest_first_and_once(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    ids = _queued(store, 12)
    claimed: list[str] = []

    def claim() -> None:
        while (job := store.claim_next()) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert all(store.get(job_id).state is JobState.running and store.get(job_id).attempts == 1 for job_id in ids)

    fresh = JobStore(tmp_path / "other.sqlite3")
    order = _queued(fresh, 3)
    assert [fresh.claim_next().id for _ in order] == order


def test_transitions_only_from_live_states(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job_id, = _queued(store, 1)
    assert not store.report(job_id, "rendering", 5, 10)  # not running yet: nothing written
    store.claim_next()
    assert store.report(job_id, "rendering", 5, 10, 12.5)
    job = store.get(job_id)
    assert (job.stage, job.frames_done, job.frames_total, job.fps, job.progress) == ("rendering", 5, 10, 12.5, 0.5)
    assert store.cancel(job_id)
    # a worker that has not noticed the cancellation can neither report nor finish it
    assert not store.report(job_id, "rendering", 6, 10)
    assert not store.finish(job_id, "result.mp4", 10, 20.0)
    assert not store.fail(job_id, "late")
    assert store.get(job_id).state is JobState.cancelled
    assert not store.cancel(job_id)


def test_failure_is_one_line(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job_id, = _queued(store, 1)
    assert store.fail(job_id, "face: no face found\n  in any frame")
    assert store.get(job_id).error == "face: no face found in any frame"


def test_restart_requeues_running_jobs_until_out_of_attempts(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    first, second, third = _queued(store, 3)
    store.claim_next()  # first: running, attempt 1
    store.claim_next()  # second: running, attempt 1
    store.finish(second, "result.mp4", 10, 25.0)

    reopened = JobStore(path)  # a new server on the same data
    requeued, failed = reopened.recover(max_attempts=2)
    assert (requeued, failed) == ([first], [])
    assert [reopened.get(job_id).state for job_id in (first, second, third)] == [JobState.queued, JobState.done, JobState.queued]
    assert reopened.claim_next().id == first  # keeps its place at the head of the queue

    requeued, failed = JobStore(path).recover(max_attempts=2)  # died again while running it
    assert (requeued, failed) == ([], [first])
    job = reopened.get(first)
    assert job.state is JobState.failed and "server restarted" in job.error and "\n" not in job.error
    assert reopened.get(third).state is JobState.queued


def test_ids_are_folder_safe():
    assert is_job_id(new_job_id())
    for text in ("../etc", "A" * 32, "0" * 31, "0" * 31 + "/", ""):
        assert not is_job_id(text)


def test_a_store_from_before_warnings_gains_the_column_and_keeps_its_jobs(tmp_path):
    """A server upgraded in place opens the old jobs.sqlite3: the new column is added, old rows read NULL."""
    import sqlite3

    path = tmp_path / "jobs.sqlite3"
    old_schema = """CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, stage TEXT,
        frames_done INTEGER NOT NULL DEFAULT 0, frames_total INTEGER, fps REAL, error TEXT, options TEXT NOT NULL,
        face TEXT NOT NULL, audio TEXT NOT NULL, result TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL, updated REAL NOT NULL)"""
    with sqlite3.connect(path) as db:
        db.execute(old_schema)
        db.execute("INSERT INTO jobs (id, state, stage, options, face, audio, created, updated) "
                   "VALUES ('a' , 'queued', 'queued', '{}', 'f.mp4', 'a.wav', 1.0, 1.0)")
    store = JobStore(path)
    assert store.get("a").warning is None and store.get("a").state is JobState.queued
    store.claim_next()
    assert store.finish("a", "result.mp4", 10, 25.0, warning="the lips are\nhard to track")
    assert store.get("a").warning == "the lips are hard to track"  # one line
    JobStore(path)  # opening again adds nothing twice
