"""The job API's memory: one SQLite row per job, beside the job's own folder.

A server that forgets its queue when it restarts loses its users' work, so every state change is
a committed row in ``jobs.sqlite3`` (WAL mode: the web threads read while a worker process writes
its progress). The store is the only place state lives; the API and the worker pool hold no job
state of their own, so any number of threads and worker processes can open it by path.

Every transition is one conditional ``UPDATE`` (``... WHERE state = 'running'``), so a late write
from a worker whose job was cancelled, or a second worker racing for the same queued row, changes
nothing instead of resurrecting or double-running a job.

Restart: jobs still ``running`` when a server starts were cut off by a dead server. They are
re-queued (their inputs are on disk and a run writes its result atomically, so a re-run is safe)
until they have been started ``max_attempts`` times; a job that keeps dying with its server is
failed with a one-line reason instead of taking every future server down with it.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class JobState(str, Enum):
    """Where a job is in its life; ``done``, ``failed`` and ``cancelled`` are final."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


#: States a job can still leave.
ACTIVE = (JobState.queued, JobState.running)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    stage TEXT,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    fps REAL,
    error TEXT,
    options TEXT NOT NULL,
    face TEXT NOT NULL,
    audio TEXT NOT NULL,
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    warning TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, created);
"""
#: Columns added since the first schema, with their SQL type: a store written by an older server
#: gains them when it is opened (`JobStore.__init__`), its jobs keeping NULL there.
_ADDED_COLUMNS = {"warning": "TEXT"}


@dataclass(frozen=True)
class Job:
    """One row of the store. ``face``, ``audio`` and ``result`` are file names inside the job's folder."""

    id: str
    state: JobState
    stage: str | None
    frames_done: int
    frames_total: int | None
    fps: float | None
    error: str | None
    options: str  # the validated `JobOptions` as JSON
    face: str
    audio: str
    result: str | None
    attempts: int
    created: float  # unix seconds
    updated: float
    warning: str | None = None  # a done job's caution, in one line (lips the tracker cannot read)

    @property
    def progress(self) -> float:
        """Fraction of output frames written (1.0 once done)."""
        if self.state is JobState.done:
            return 1.0
        if not self.frames_total:
            return 0.0
        return min(1.0, self.frames_done / self.frames_total)


def new_job_id() -> str:
    """A fresh job id: 32 hex digits (uuid4), safe as a folder name."""
    return uuid.uuid4().hex


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the shape of a job id (so it can name a folder without escaping it)."""
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


class JobStore:
    """Jobs persisted in one SQLite file; safe to use from many threads and processes.

    Each call opens its own short-lived connection: SQLite connections must not cross threads,
    and worker processes open the store by path.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in present:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        if row is None:
            return None
        values = dict(row)
        values["state"] = JobState(values["state"])
        return Job(**values)

    def create(self, job_id: str, options: str, face: str, audio: str) -> Job:
        """Queue a new job whose inputs are already saved in its folder."""
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, state, stage, options, face, audio, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobState.queued.value, "queued", options, face, audio, now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def ids(self) -> set[str]:
        """Every job id in the store (to find job folders no row owns)."""
        with self._connect() as db:
            return {row["id"] for row in db.execute("SELECT id FROM jobs")}

    def count(self, state: JobState) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state.value,)).fetchone()[0]

    def claim_next(self) -> Job | None:
        """Atomically take the oldest queued job and mark it running (one attempt more), or None."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY created, rowid LIMIT 1", (JobState.queued.value,)
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute(
                "UPDATE jobs SET state = ?, stage = 'starting', attempts = attempts + 1, frames_done = 0, "
                "frames_total = NULL, fps = NULL, updated = ? WHERE id = ?",
                (JobState.running.value, time.time(), row["id"]),
            )
            db.execute("COMMIT")
        return self.get(row["id"])

    def _transition(self, job_id: str, sources: tuple[JobState, ...], **values) -> bool:
        values["updated"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        marks = ", ".join("?" for _ in sources)
        with self._connect() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {columns} WHERE id = ? AND state IN ({marks})",
                (*values.values(), job_id, *(state.value for state in sources)),
            )
            return cursor.rowcount == 1

    def report(self, job_id: str, stage: str, frames_done: int = 0, frames_total: int | None = None,
               fps: float | None = None) -> bool:
        """Progress of a running job; False (and nothing written) once it is no longer running."""
        return self._transition(job_id, (JobState.running,), stage=stage, frames_done=frames_done,
                                frames_total=frames_total, fps=fps)

    def finish(self, job_id: str, result: str, frames: int, fps: float | None, warning: str | None = None) -> bool:
        """Mark a running job done; ``result`` must already be complete in the job's folder.
        ``warning``: what the user should know about the result (one line), if anything."""
        line = None if warning is None else " ".join(str(warning).split())
        return self._transition(job_id, (JobState.running,), state=JobState.done.value, stage="done",
                                result=result, frames_done=frames, frames_total=frames, fps=fps, warning=line)

    def fail(self, job_id: str, error: str) -> bool:
        """Mark a queued or running job failed with a one-line reason."""
        line = " ".join(str(error).split()) or "failed"
        return self._transition(job_id, ACTIVE, state=JobState.failed.value, stage="failed", error=line)

    def cancel(self, job_id: str) -> bool:
        """Mark a queued or running job cancelled; False if it had already ended (or is unknown)."""
        return self._transition(job_id, ACTIVE, state=JobState.cancelled.value, stage="cancelled")

    def delete(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """After a restart: re-queue jobs a dead server left running, or fail those out of attempts.

        Returns (re-queued ids, failed ids). Queued jobs stay queued, in their original order.
        """
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT id, attempts FROM jobs WHERE state = ?", (JobState.running.value,)).fetchall()
            requeued = [row["id"] for row in rows if row["attempts"] < max_attempts]
            failed = [row["id"] for row in rows if row["attempts"] >= max_attempts]
            for job_id in requeued:
                db.execute("UPDATE jobs SET state = ?, stage = 'queued', frames_done = 0, frames_total = NULL, "
                           "fps = NULL, updated = ? WHERE id = ?", (JobState.queued.value, now, job_id))
            for job_id in failed:
                attempts = next(row["attempts"] for row in rows if row["id"] == job_id)
                db.execute(
                    "UPDATE jobs SET state = ?, stage = 'failed', error = ?, updated = ? WHERE id = ?",
                    (JobState.failed.value, f"server restarted while this job was running ({attempts} attempts); not retried",
                     now, job_id),
                )
            db.execute("COMMIT")
        return requeued, failed
