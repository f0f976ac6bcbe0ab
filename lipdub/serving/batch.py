"""Batch dubbing: many `lipdub.sync` jobs from a manifest, resumable, on local processes or Ray.

A localisation team dubs one video into twelve languages; an overnight batch must survive one bad
file, pick up where it stopped after a crash, and use a cluster when one machine is not enough.
So a batch here is:

- a list of `BatchRow`s, read from a CSV manifest (`read_manifest`) or built from the shorthand
  "one face × N speech tracks" (`rows_for_tracks`), each validated up front (`validate_rows`) so
  that a typo in row 7 is reported before hours of work and the other rows still run;
- one job function, `run_job`, which dubs a single row and never raises for a user's mistake (its
  `RowResult` carries the one-line `LipdubError` instead), so a failing row cannot stop the rest;
- an executor (`lipdub.serving.executors`) that runs that same function either in a local process
  pool or as Ray tasks: the backend changes where the function runs, nothing else;
- resume by looking at the outputs themselves (`finished_output` opens each one with PyAV), so
  there is no state file to lose or to disagree with the folder.

The summary is written as ``batch-summary.csv`` beside the outputs, atomically.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import ValidationError

from lipdub.errors import LipdubError
from lipdub.serving.executors import Executor
from lipdub.serving.options import JobOptions, one_line

logger = logging.getLogger(__name__)

#: Columns every manifest has; every other column must be a `JobOptions` field.
PATH_COLUMNS = ("face", "audio", "output")
SUMMARY_NAME = "batch-summary.csv"
SUMMARY_COLUMNS = ("row", "output", "status", "frames", "seconds", "fps", "error", "warning")


@dataclass(frozen=True)
class BatchRow:
    """One dub of a batch: where its inputs are, where its output goes, and its options.

    ``row`` is the manifest's line number (the header is line 1), so a report points at the line a
    user has to fix. ``error`` is set when the row failed validation; such a row is never run.
    """

    row: int
    face: Path
    audio: Path
    output: Path
    options: JobOptions = field(default_factory=JobOptions)
    error: str | None = None


@dataclass(frozen=True)
class Job:
    """What a worker needs to dub one row: plain, picklable values only (it crosses processes)."""

    row: int
    face: Path
    audio: Path
    output: Path
    options: object  # lipdub.pipeline.SyncOptions (imported lazily: workers import torch, the driver need not)
    threads: int = 1


@dataclass(frozen=True)
class RowResult:
    """How one row ended: ``done``, ``skipped`` (already finished), ``failed`` or ``invalid``."""

    row: int
    output: Path
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    #: What to check in a done row's output, in one line (lips the tracker cannot read); usually "".
    warning: str = ""

    @property
    def fps(self) -> float:
        """Output frames written per second of this job's wall time (0 when nothing was run)."""
        return self.frames / self.seconds if self.seconds > 0 and self.status == "done" else 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")


# --------------------------------------------------------------------------------------------
# Manifests


def read_manifest(manifest: Path, output_dir: Path, defaults: JobOptions | None = None) -> list[BatchRow]:
    """Rows of a CSV manifest: ``face``, ``audio``, optional ``output`` and `JobOptions` columns.

    Relative face and audio paths are relative to the manifest's folder (so a manifest travels with
    its media); outputs are names inside ``output_dir``. An empty cell means the default (from
    ``defaults``, else the CLI's). Problems with one row are recorded on that row (`BatchRow.error`);
    a manifest that cannot be read at all, or has unknown columns, raises `LipdubError`.
    """
    manifest = Path(manifest)
    try:
        text = manifest.read_text(encoding="utf-8-sig")  # Excel writes a byte-order mark
    except FileNotFoundError:
        raise LipdubError(f"manifest not found: {manifest}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LipdubError(f"manifest {manifest}: cannot read it ({type(exc).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or [])]
    if not header:
        raise LipdubError(f"manifest {manifest}: empty (expected a header line: face,audio,output,...)")
    missing = [name for name in ("face", "audio") if name not in header]
    if missing:
        raise LipdubError(f"manifest {manifest}: no {' or '.join(missing)} column (header: {','.join(header)})")
    option_fields = set(JobOptions.model_fields)
    unknown = [name for name in header if name not in PATH_COLUMNS and name not in option_fields]
    if unknown:
        raise LipdubError(
            f"manifest {manifest}: unknown column {', '.join(unknown)} "
            f"(known: {', '.join(PATH_COLUMNS)}, {', '.join(sorted(option_fields))})"
        )
    reader.fieldnames = header
    base = manifest.resolve().parent
    rows = []
    for record in reader:
        number = reader.line_num  # the file's line (DictReader skips blank lines, so no counting)
        if all(not (value or "").strip() for value in record.values() if isinstance(value, str)):
            continue  # blank lines at the end of hand-edited files
        rows.append(_row_from_record(number, record, base, Path(output_dir), defaults or JobOptions()))
    if not rows:
        raise LipdubError(f"manifest {manifest}: no rows")
    return rows


def _row_from_record(number: int, record: dict, base: Path, output_dir: Path, defaults: JobOptions) -> BatchRow:
    """One manifest line as a `BatchRow`; a bad cell becomes the row's error, not an exception."""
    if None in record:  # more cells than header columns
        return BatchRow(number, Path(), Path(), Path(), error="more cells than the header has columns")
    cell = {key: (value or "").strip() for key, value in record.items()}
    face = base / cell["face"] if cell["face"] else Path()
    audio = base / cell["audio"] if cell["audio"] else Path()
    errors = [f"{name}: empty" for name in ("face", "audio") if not cell[name]]
    output_name = cell.get("output") or (default_output_name(face, audio) if not errors else "")
    output = Path()
    if output_name:
        try:
            output = output_path(output_dir, output_name)
        except LipdubError as exc:
            errors.append(str(exc))
    options = defaults
    values = {key: _cell_value(key, value) for key, value in cell.items() if key not in PATH_COLUMNS and value}
    if values:
        try:
            options = JobOptions.model_validate({**defaults.model_dump(exclude_unset=True), **values})
        except ValidationError as exc:
            errors.append(one_line(exc))
    return BatchRow(number, face, audio, output, options, "; ".join(errors) or None)


def _cell_value(key: str, value: str):
    """A CSV cell as the type its field wants where CSV cannot say it (the box's four numbers)."""
    if key == "box":
        parts = [part for part in re.split(r"[\s,;]+", value) if part]
        return parts  # pydantic checks there are four integers
    return value


def rows_for_tracks(face: Path, tracks: Sequence[Path], output_dir: Path, options: JobOptions | None = None) -> list[BatchRow]:
    """The shorthand "one video × N speech tracks": ``talk.mp4`` + ``fr.wav`` -> ``talk_fr.mp4``."""
    if not tracks:
        raise LipdubError("no speech tracks given for --face")
    rows = []
    for number, audio in enumerate(tracks, start=1):
        rows.append(BatchRow(number, Path(face), Path(audio), output_path(Path(output_dir), default_output_name(Path(face), Path(audio))),
                             options or JobOptions()))
    return rows


def default_output_name(face: Path, audio: Path) -> str:
    """``talk.mp4`` dubbed with ``fr.wav`` is ``talk_fr.mp4``."""
    return f"{face.stem}_{audio.stem}.mp4"


def output_path(output_dir: Path, name: str) -> Path:
    """Where output ``name`` goes: inside ``output_dir`` only (a manifest cannot write elsewhere)."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.name:
        raise LipdubError(f"output: {name!r} must be a file name inside the output folder")
    if relative.suffix.lower() != ".mp4":
        relative = relative.with_name(relative.name + ".mp4")
    return output_dir / relative


def validate_rows(rows: Sequence[BatchRow], max_seconds: float | None = None) -> list[BatchRow]:
    """Every row checked before any work: inputs opened (by content), outputs unique.

    A row that fails keeps its one-line reason in `BatchRow.error` and is skipped by `run_batch`;
    the others run. Opening the inputs costs one decoded frame per face and a few audio frames per
    track, a fraction of a second for a whole manifest.
    """
    from lipdub.serving.inputs import inspect_audio, inspect_face

    checked: list[BatchRow] = []
    seen: dict[Path, int] = {}
    for row in rows:
        error = row.error
        if error is None:
            try:
                inspect_face(row.face, max_seconds)
                inspect_audio(row.audio, max_seconds)
            except LipdubError as exc:
                error = str(exc)
        if error is None and row.output.resolve() in (row.face.resolve(), row.audio.resolve()):
            error = f"output {row.output.name} is one of the row's inputs"
        if error is None:
            key = row.output.resolve()
            if key in seen:
                error = f"output {row.output.name} is also the output of row {seen[key]}"
            else:
                seen[key] = row.row
        checked.append(replace(row, error=error) if error != row.error else row)
    return checked


# --------------------------------------------------------------------------------------------
# Resume


def finished_output(path: Path) -> int:
    """Frames of a complete earlier output at ``path``, or 0 when it is missing, truncated or broken.

    Two looks, both cheap even for long videos: the MP4's top-level boxes must add up to exactly
    the file's size (a file cut short anywhere, even in its last audio packet, fails this), and
    PyAV must find a video and an audio stream holding every packet their index promises, with
    the first and last video packets decoding.
    """
    import av

    if not path.is_file() or path.stat().st_size == 0 or not _mp4_boxes_complete(path):
        return 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                return 0
            video, audio = container.streams.video[0], container.streams.audio[0]
            counts = {video.index: 0, audio.index: 0}
            first = last = None
            for packet in container.demux(video, audio):
                if packet.size == 0:
                    continue  # the demuxer's flush packets
                counts[packet.stream.index] += 1
                if packet.stream.index == video.index:
                    first, last = first or packet, packet
            for stream in (video, audio):
                if not counts[stream.index] or (stream.frames and counts[stream.index] != stream.frames):
                    return 0
            decoded = sum(len(video.codec_context.decode(packet)) for packet in (first, last))
            decoded += len(video.codec_context.decode(None))
            return counts[video.index] if decoded else 0
    except (av.FFmpegError, OSError, ValueError):
        return 0


def _mp4_boxes_complete(path: Path) -> bool:
    """Whether the ISO-BMFF boxes at the top level of ``path`` end exactly at the end of the file."""
    size = path.stat().st_size
    position = 0
    with open(path, "rb") as handle:
        while position < size:
            handle.seek(position)
            header = handle.read(16)
            if len(header) < 8:
                return False
            length = int.from_bytes(header[:4], "big")
            if length == 1:  # 64-bit size follows the box type
                if len(header) < 16:
                    return False
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # the box runs to the end of the file
                return True
            if length < 8:
                return False
            position += length
    return position == size


# --------------------------------------------------------------------------------------------
# The job function (runs in a worker process or a Ray task)


def run_job(job: Job) -> RowResult:
    """Dub one row; a user-facing failure comes back as a ``failed`` result, never as an exception.

    Runs in a worker, so it limits the worker's own thread pools first (``job.threads``): several
    jobs side by side each using every core would only fight over them. Errors that are not
    `LipdubError` are bugs; they are logged with their traceback in the worker and reported on the
    row as ``internal error``, so one bug in one input does not end an overnight batch either.
    """
    limit_threads(job.threads)
    from lipdub.face.lip_retest import lip_caution
    from lipdub.pipeline import sync

    start = time.perf_counter()
    try:
        result = sync(job.face, job.audio, job.output, job.options)
    except LipdubError as exc:
        return RowResult(job.row, job.output, "failed", seconds=time.perf_counter() - start, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug in one row must not stop the batch
        logger.exception("row %d: internal error", job.row)
        message = str(exc).splitlines()[0] if str(exc) else ""
        return RowResult(job.row, job.output, "failed", seconds=time.perf_counter() - start,
                         error=f"internal error: {type(exc).__name__}: {message}")
    return RowResult(job.row, job.output, "done", frames=result.frames, seconds=time.perf_counter() - start,
                     warning=lip_caution(result.lip_reading) or "")


def _crashed(job: Job, reason: str) -> RowResult:
    """The result of a job whose worker died before returning one."""
    return RowResult(job.row, job.output, "failed", error=reason)


def limit_threads(threads: int) -> None:
    """Cap this process's torch and OpenCV thread pools (a worker shares the machine with others)."""
    threads = max(1, int(threads))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # read by libraries that start their pools later
    import cv2
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


# --------------------------------------------------------------------------------------------
# The batch


@dataclass
class BatchReport:
    """Every row's result in manifest order, and the batch's wall time."""

    results: list[RowResult]
    seconds: float
    backend: str
    workers: int

    @property
    def failed(self) -> list[RowResult]:
        return [result for result in self.results if not result.ok]

    @property
    def frames_done(self) -> int:
        return sum(result.frames for result in self.results if result.status == "done")

    @property
    def jobs_done(self) -> int:
        return sum(result.status == "done" for result in self.results)


#: Called with (rows finished, rows to run, that row's result): once with (0, N, None) when the
#: jobs start, then after every finished row.
BatchProgress = Callable[[int, int, "RowResult | None"], None]


def run_batch(
    rows: Sequence[BatchRow],
    output_dir: Path,
    executor_factory: Callable[[int], Executor],
    profiles: Path | None = None,
    progress: BatchProgress | None = None,
) -> BatchReport:
    """Run the valid rows whose output is not finished yet; write the summary; report every row.

    ``rows`` should have gone through `validate_rows`. ``executor_factory(jobs)`` builds the
    executor once the number of jobs is known (none is started when everything is done already).
    A finished output (`finished_output`) is skipped; an unfinished leftover at an output's place
    (a file cut short by a crash) is redone. The summary is written even when rows failed.
    """
    output_dir = Path(output_dir)
    start = time.perf_counter()
    results: dict[int, RowResult] = {}
    jobs: list[Job] = []
    for row in rows:
        if row.error is not None:
            results[row.row] = RowResult(row.row, row.output, "invalid", error=row.error)
            continue
        frames = finished_output(row.output)
        if frames:
            logger.info("row %d: %s is finished, skipping it", row.row, row.output)
            results[row.row] = RowResult(row.row, row.output, "skipped", frames=frames)
            continue
        leftover = row.output.exists()
        if leftover:
            logger.warning("row %d: %s is incomplete, redoing it", row.row, row.output)
        try:
            options = row.options.to_sync_options(profiles, overwrite=leftover)
        except LipdubError as exc:
            results[row.row] = RowResult(row.row, row.output, "invalid", error=str(exc))
            continue
        row.output.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(Job(row.row, row.face, row.audio, row.output, options))

    backend, workers = "none", 0
    if jobs:
        executor = executor_factory(len(jobs))
        backend, workers = executor.name, executor.workers
        threads = executor.threads
        jobs = [replace(job, threads=threads) for job in jobs]
        logger.info("running %d jobs on %s with %d workers × %d threads", len(jobs), backend, workers, threads)
        if progress is not None:
            progress(0, len(jobs), None)
        try:
            for done, result in enumerate(executor.map_unordered(run_job, jobs, _crashed), start=1):
                results[result.row] = result
                if result.status == "failed":
                    logger.warning("row %d failed: %s", result.row, result.error)
                if progress is not None:
                    progress(done, len(jobs), result)
        finally:
            executor.close()
    report = BatchReport([results[row.row] for row in rows], time.perf_counter() - start, backend, workers)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_summary(report, output_dir / SUMMARY_NAME)
    return report


# --------------------------------------------------------------------------------------------
# The summary file


def summary_rows(report: BatchReport) -> list[dict[str, str]]:
    """The summary table's rows as text (the CSV file and the CLI's table show the same)."""
    rows = []
    for result in report.results:
        rows.append({
            "row": str(result.row),
            "output": str(result.output),
            "status": result.status,
            "frames": str(result.frames) if result.frames else "",
            "seconds": f"{result.seconds:.1f}" if result.seconds else "",
            "fps": f"{result.fps:.1f}" if result.fps else "",
            "error": result.error,
            "warning": result.warning,
        })
    return rows


def write_summary(report: BatchReport, path: Path) -> None:
    """``batch-summary.csv``, written to a temporary file beside it and renamed (never half a file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(report))
    write_text_atomically(path, buffer.getvalue())


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` by rename, with the mode the user's umask gives a new file."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(name, 0o666 & ~_umask())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (POSIX has no call that reads it without setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

