"""lipdub batch: manifests and their validation, resume by opening outputs, local and Ray runs.

The manifest tests are pure and fast. The runs (marked slow) dub the bundled sample photo with
2.5 s cut from the bundled speech at 10 fps, so each job is a few seconds; every run has a row
that fails validation and a row that fails while running, and checks the others still finish.
"""

import csv
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.serving import batch, executors
from lipdub.serving.options import JobOptions
from lipdub.timeline import LengthMode

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "lipdub" / "assets"


def write_csv(path: Path, header: list[str], rows: list[list[str]], bom: bool = False) -> Path:
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def cut_speech(path: Path, start: float, seconds: float) -> Path:
    """A short clip of the bundled speech (a wav, so the standard library can cut it)."""
    with wave.open(str(ASSETS / "sample_speech.wav")) as reader:
        params, rate = reader.getparams(), reader.getframerate()
        reader.readframes(int(start * rate))
        samples = reader.readframes(int(seconds * rate))
    with wave.open(str(path), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(samples)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A folder with a face photo, two short speech tracks, a faceless picture and a fake wav."""
    import cv2

    folder = tmp_path_factory.mktemp("media")
    (folder / "face.jpg").write_bytes((ASSETS / "sample_face.jpg").read_bytes())
    cut_speech(folder / "fr.wav", 0.5, 2.5)
    cut_speech(folder / "de.wav", 3.5, 2.0)
    cv2.imwrite(str(folder / "wall.png"), np.full((240, 240, 3), 128, np.uint8))  # opens fine, has no face
    (folder / "text.wav").write_text("not audio\n" * 100)
    return folder


# ---------------------------------------------------------------------------------------------
# Manifests (pure)


def test_manifest_paths_names_and_options(tmp_path):
    (tmp_path / "media").mkdir()
    manifest = write_csv(tmp_path / "media" / "jobs.csv", ["face", "audio", "output", "length_mode", "face_index", "fps", "box", "keep_hands"], [
        ["talk.mp4", "tracks/fr.wav", "talk_french", "cut", "1", "12.5", "10 20 110 140", "false"],
        ["talk.mp4", "de.wav", "", "", "", "", "", ""],
    ], bom=True)
    rows = batch.read_manifest(manifest, tmp_path / "out")
    first, second = rows
    assert (first.row, second.row) == (2, 3)  # line numbers: the header is line 1
    assert first.face == tmp_path / "media" / "talk.mp4"
    assert first.audio == tmp_path / "media" / "tracks" / "fr.wav"
    assert first.output == tmp_path / "out" / "talk_french.mp4"
    assert first.options.length_mode is LengthMode.cut and first.options.face_index == 1
    assert first.options.fps == 12.5 and first.options.box == (10, 20, 110, 140)
    assert first.options.keep_hands is False and first.options.to_sync_options().keep_hands is False
    assert first.error is None
    assert second.output == tmp_path / "out" / "talk_de.mp4"
    assert second.options == JobOptions() and second.error is None


def test_manifest_defaults_are_overridden_by_cells(tmp_path):
    manifest = write_csv(tmp_path / "jobs.csv", ["face", "audio", "length_mode"], [["a.mp4", "x.wav", ""], ["a.mp4", "y.wav", "hold"]])
    defaults = JobOptions.parse('{"length_mode": "loop", "crf": 23}')
    rows = batch.read_manifest(manifest, tmp_path / "out", defaults)
    assert rows[0].options.length_mode is LengthMode.loop and rows[0].options.crf == 23
    assert rows[1].options.length_mode is LengthMode.hold and rows[1].options.crf == 23


@pytest.mark.parametrize("cells, reason", [
    (["a.mp4", "x.wav", "../escape.mp4", ""], "inside the output folder"),
    (["a.mp4", "x.wav", "/tmp/abs.mp4", ""], "inside the output folder"),
    (["", "x.wav", "", ""], "face: empty"),
    (["a.mp4", "x.wav", "", "sideways"], "length_mode"),
])
def test_a_bad_row_is_reported_alone(tmp_path, cells, reason):
    manifest = write_csv(tmp_path / "jobs.csv", ["face", "audio", "output", "length_mode"], [["a.mp4", "y.wav", "", ""], cells])
    good, bad = batch.read_manifest(manifest, tmp_path / "out")
    assert good.error is None
    assert bad.error is not None and reason in bad.error and "\n" not in bad.error


def test_more_cells_than_columns_and_blank_lines(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("face,audio\na.mp4,x.wav,surplus\n\n,\nb.mp4,y.wav\n")
    rows = batch.read_manifest(path, tmp_path / "out")
    assert [row.row for row in rows] == [2, 5]
    assert "more cells" in rows[0].error and rows[1].error is None


@pytest.mark.parametrize("text, message", [
    ("face,audio,lenght_mode\na.mp4,x.wav,cut\n", "unknown column lenght_mode"),
    ("video,audio\na.mp4,x.wav\n", "no face column"),
    ("", "empty"),
    ("face,audio\n", "no rows"),
])
def test_manifest_level_errors_are_one_line(tmp_path, text, message):
    path = tmp_path / "jobs.csv"
    path.write_text(text)
    with pytest.raises(LipdubError, match=message) as caught:
        batch.read_manifest(path, tmp_path / "out")
    assert "\n" not in str(caught.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(LipdubError, match="manifest not found"):
        batch.read_manifest(tmp_path / "nope.csv", tmp_path)


def test_shorthand_names_outputs_after_face_and_track(tmp_path):
    rows = batch.rows_for_tracks(Path("clips/talk.mp4"), [Path("fr.wav"), Path("voice/de.m4a")], tmp_path, JobOptions(face_index=2))
    assert [row.output.name for row in rows] == ["talk_fr.mp4", "talk_de.mp4"]
    assert all(row.options.face_index == 2 and row.output.parent == tmp_path for row in rows)
    with pytest.raises(LipdubError, match="no speech tracks"):
        batch.rows_for_tracks(Path("talk.mp4"), [], tmp_path)


def test_validation_opens_inputs_and_refuses_duplicate_outputs(tmp_path, media):
    out = tmp_path / "out"
    rows = [
        batch.BatchRow(2, media / "face.jpg", media / "fr.wav", out / "a.mp4"),
        batch.BatchRow(3, media / "face.jpg", media / "face.jpg", out / "b.mp4"),  # a picture as the speech
        batch.BatchRow(4, media / "face.jpg", media / "text.wav", out / "c.mp4"),  # text renamed .wav
        batch.BatchRow(5, media / "gone.mp4", media / "fr.wav", out / "d.mp4"),
        batch.BatchRow(6, media / "face.jpg", media / "de.wav", out / "a.mp4"),  # same output as row 2
        batch.BatchRow(7, media / "face.jpg", media / "de.wav", out / "e.mp4", error="kept"),
    ]
    checked = batch.validate_rows(rows)
    errors = {row.row: row.error for row in checked}
    assert errors[2] is None
    assert "no audio stream" in errors[3]
    assert "text.wav" in errors[4]
    assert "no such file" in errors[5]
    assert "also the output of row 2" in errors[6]
    assert errors[7] == "kept"


@pytest.mark.parametrize("jobs, cpus, workers, threads, expected", [
    (8, 2, None, None, (1, 2)),   # two cores: one job at a time with both
    (8, 16, None, None, (8, 2)),  # a worker per two cores
    (3, 16, None, None, (3, 5)),  # fewer jobs than workers: the spare cores go to the jobs
    (8, 16, 4, None, (4, 4)),     # workers given: cores shared among them
    (8, 16, None, 4, (4, 4)),     # threads given: as many workers as fit
    (2, 16, None, 4, (2, 4)),     # ... but never more than the jobs, threads kept as asked
    (8, 1, None, None, (1, 1)),
])
def test_plan_workers(jobs, cpus, workers, threads, expected):
    assert executors.plan_workers(jobs, cpus, workers, threads) == expected


# ---------------------------------------------------------------------------------------------
# Resume: finished outputs recognised by opening them


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory) -> Path:
    """A complete 12-frame H.264 + AAC MP4, written by lipdub's own writer."""
    from lipdub.media.encode import VideoWriter

    path = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    audio = (0.1 * np.sin(np.arange(48000 // 2) / 48000 * 2 * np.pi * 440)).astype(np.float32)
    with VideoWriter(path, 64, 64, 25.0, audio=audio, sample_rate=48000) as writer:
        for index in range(12):
            writer.write(np.full((64, 64, 3), index * 20, np.uint8))
    return path


def test_a_complete_output_is_finished(small_mp4):
    assert batch.finished_output(small_mp4) == 12


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.7, 0.95, 0.999])
def test_a_truncated_output_is_not_finished(tmp_path, small_mp4, fraction):
    data = small_mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert batch.finished_output(cut) == 0


def test_other_files_are_not_finished(tmp_path, media):
    from lipdub.media.encode import VideoWriter

    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, 64, 64, 25.0) as writer:  # video without an audio stream
        for _ in range(5):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    assert batch.finished_output(silent) == 0
    assert batch.finished_output(media / "fr.wav") == 0
    assert batch.finished_output(media / "text.wav") == 0
    assert batch.finished_output(tmp_path / "missing.mp4") == 0


def test_summary_is_written_atomically_with_the_umask(tmp_path):
    report = batch.BatchReport([
        batch.RowResult(2, tmp_path / "a.mp4", "done", frames=50, seconds=2.0, warning="the lips are hard to track"),
        batch.RowResult(3, tmp_path / "b.mp4", "failed", seconds=0.5, error="no face found, anywhere"),
    ], seconds=3.0, backend="local", workers=1)
    path = tmp_path / batch.SUMMARY_NAME
    previous = os.umask(0o022)
    try:
        batch.write_summary(report, path)
    finally:
        os.umask(previous)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir()] == [batch.SUMMARY_NAME]  # no temporary file left
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["status"] == "done" and rows[0]["fps"] == "25.0" and rows[0]["frames"] == "50"
    assert rows[1]["error"] == "no face found, anywhere" and rows[1]["fps"] == ""
    assert rows[0]["warning"] == "the lips are hard to track" and rows[1]["warning"] == ""


# ---------------------------------------------------------------------------------------------
# Real runs (a few seconds a job)


def sample_manifest(media: Path, folder: Path) -> Path:
    """Two good rows, one that fails validation (a picture as speech), one that fails running."""
    return write_csv(folder / "jobs.csv", ["face", "audio", "output", "fps"], [
        [str(media / "face.jpg"), str(media / "fr.wav"), "photo_fr", "10"],
        [str(media / "face.jpg"), str(media / "face.jpg"), "bad_audio", "10"],
        [str(media / "wall.png"), str(media / "fr.wav"), "no_face", "10"],
        [str(media / "face.jpg"), str(media / "de.wav"), "", "10"],
    ])


def check_first_run(report: batch.BatchReport, out: Path) -> None:
    status = {result.row: result for result in report.results}
    assert [status[row].status for row in (2, 3, 4, 5)] == ["done", "invalid", "failed", "done"]
    assert "no audio stream" in status[3].error
    assert "no face found" in status[4].error
    for row, name, seconds in ((2, "photo_fr.mp4", 2.5), (5, "face_de.mp4", 2.0)):
        assert status[row].output == out / name
        frames = batch.finished_output(out / name)
        assert frames == status[row].frames and abs(frames - seconds * 10) <= 2
    assert not (out / "no_face.mp4").exists() and not (out / "bad_audio.mp4").exists()
    summary = list(csv.DictReader((out / batch.SUMMARY_NAME).open()))
    assert [line["status"] for line in summary] == ["done", "invalid", "failed", "done"]


@pytest.mark.slow
def test_local_batch_bad_rows_and_resume(tmp_path, media):
    out = tmp_path / "out"
    rows = batch.validate_rows(batch.read_manifest(sample_manifest(media, tmp_path), out))
    calls = []
    report = batch.run_batch(rows, out, executors.local_executor(workers=2, threads=1),
                             progress=lambda done, total, result: calls.append((done, total, result and result.row)))
    assert report.backend == "local" and report.workers == 2
    check_first_run(report, out)
    assert calls[0] == (0, 3, None) and [call[0] for call in calls] == [0, 1, 2, 3]
    assert sorted(call[2] for call in calls[1:]) == [2, 4, 5]  # the invalid row 3 never ran

    # Resume: the finished output is skipped; one cut short (as by a crash) is redone.
    finished = (out / "photo_fr.mp4").stat().st_mtime_ns
    data = (out / "face_de.mp4").read_bytes()
    (out / "face_de.mp4").write_bytes(data[: len(data) // 2])
    again = batch.run_batch(rows, out, executors.local_executor(workers=1))
    status = {result.row: result.status for result in again.results}
    assert status == {2: "skipped", 3: "invalid", 4: "failed", 5: "done"}
    assert (out / "photo_fr.mp4").stat().st_mtime_ns == finished
    assert batch.finished_output(out / "face_de.mp4") > 0
    assert sorted(p.name for p in out.iterdir()) == [batch.SUMMARY_NAME, "face_de.mp4", "photo_fr.mp4"]


@pytest.fixture
def local_ray():
    """A local Ray of two CPUs started by the test (offline: no dashboard, no usage statistics)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_batch_runs_the_same_jobs(tmp_path, media, local_ray):
    out = tmp_path / "out"
    rows = batch.validate_rows(batch.read_manifest(sample_manifest(media, tmp_path), out))
    report = batch.run_batch(rows, out, executors.ray_executor(threads=1))
    assert report.backend == "ray" and report.workers == 2
    check_first_run(report, out)
    assert local_ray.is_initialized()  # a Ray the caller started is the caller's to stop


@pytest.mark.slow
def test_cli_shorthand_reports_a_failed_track_and_exits_non_zero(tmp_path, media):
    out = tmp_path / "dubbed"
    command = [sys.executable, "-m", "lipdub.cli", "batch", "--face", str(media / "face.jpg"),
               str(media / "de.wav"), str(media / "text.wav"), "-o", str(out), "--options", '{"fps": 10}']
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "1 of 2 rows failed" in done.stderr and "Traceback" not in done.stderr
    assert batch.finished_output(out / "face_de.mp4") > 0
    summary = {line["output"]: line for line in csv.DictReader((out / batch.SUMMARY_NAME).open())}
    assert summary[str(out / "face_de.mp4")]["status"] == "done"
    assert summary[str(out / "face_text.mp4")]["status"] == "invalid"
