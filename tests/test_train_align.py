"""Audio-lag correction of datasets: the re-timing, the decisions, the table file, the command."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from lipdub.train.align import align_dataset, decide_offsets, write_av_offsets
from lipdub.train.data import AV_OFFSETS_FILE, load_dataset, read_av_offsets, shift_mel
from lipdub.train.syncnet import ClipOffsets
from lipdub.train.synthetic import default_specs, write_synthetic_dataset


@pytest.fixture
def dataset(tmp_path):
    return write_synthetic_dataset(tmp_path / "ds", default_specs(frames=90))


def test_shift_mel_by_known_amounts():
    mel = np.tile(np.arange(100, dtype=np.float32), (80, 1))  # column c holds c
    late = shift_mel(mel, 2, 25.0)  # 2 frames at 25 fps = 6.4 columns -> 6
    assert late.shape == (80, 94) and late[0, 0] == 6.0
    early = shift_mel(mel, -1, 25.0)  # 3.2 -> 3 columns of the quietest level in front
    assert early.shape == (80, 103) and early[0, :3].tolist() == [0.0, 0.0, 0.0] and early[0, 3] == 0.0 and early[0, 4] == 1.0
    assert shift_mel(mel, 0, 30.0) is mel
    assert shift_mel(mel, 3, 30.0)[0, 0] == 8.0  # 3 frames at 30 fps = 8 columns


def test_loading_applies_recorded_offsets(dataset):
    before = {c.clip_id: c.mel for c in load_dataset(dataset, "all")}
    (dataset / AV_OFFSETS_FILE).write_text("clip_id,av_offset,confidence,judge\na1,2,0.2,test\n")
    after = {c.clip_id: c.mel for c in load_dataset(dataset, "all")}
    assert np.array_equal(after["a1"], before["a1"][:, 6:])  # 25 fps
    assert np.array_equal(after["b1"], before["b1"])


def test_decisions_keep_failed_measurements_out():
    measured = [ClipOffsets("a", [2, 2], 2, 0.12), ClipOffsets("b", [9], 9, 0.2), ClipOffsets("c", [1], 1, 0.01),
                ClipOffsets("d", [-1], -1, 0.1)]
    decisions = {d.clip_id: d for d in decide_offsets(measured, {"d": 3}, min_confidence=0.05, max_shift=6, min_shift=1)}
    assert (decisions["a"].new, decisions["a"].reason) == (2, "")
    assert decisions["b"].new == 0 and "beyond" in decisions["b"].reason
    assert decisions["c"].new == 0 and decisions["c"].reason == "low confidence"
    assert (decisions["d"].previous, decisions["d"].new) == (3, 2)  # a residual adds to what was recorded


def test_one_frame_residuals_are_left_alone_by_default():
    measured = [ClipOffsets("a", [1, 1], 1, 0.3), ClipOffsets("b", [-1], -1, 0.3), ClipOffsets("c", [2], 2, 0.3),
                ClipOffsets("d", [0], 0, 0.3)]
    decisions = {d.clip_id: d for d in decide_offsets(measured, {"b": 2}, min_confidence=0.05, max_shift=6)}
    assert (decisions["a"].new, decisions["a"].reason) == (0, "under 2 frames")
    assert (decisions["b"].new, decisions["b"].reason) == (2, "under 2 frames")  # the recorded lag stays
    assert (decisions["c"].new, decisions["c"].reason) == (2, "")
    assert (decisions["d"].new, decisions["d"].reason) == (0, "")


def test_table_is_merged_and_dry_runs_write_nothing(dataset):
    first = decide_offsets([ClipOffsets("a1", [1], 1, 0.1)], {}, 0.05, 6, min_shift=1)
    write_av_offsets(dataset, first, "judge-1")
    calls = []

    def measure(clips):
        calls.append([c.clip_id for c in clips])
        return [ClipOffsets("b1", [-2], -2, 0.3), ClipOffsets("a1", [0], 0, 0.3)]

    clips = load_dataset(dataset, "train")
    align_dataset(dataset, clips, measure, "judge-2", dry_run=True)
    assert read_av_offsets(dataset) == {"a1": 1}
    decisions = align_dataset(dataset, clips, measure, "judge-2")
    assert calls[0] == [c.clip_id for c in clips] and [d.new for d in decisions] == [-2, 1]
    assert read_av_offsets(dataset) == {"a1": 1, "b1": -2}
    with open(dataset / AV_OFFSETS_FILE, newline="") as handle:
        rows = {r["clip_id"]: r for r in csv.DictReader(handle)}
    assert rows["a1"]["judge"] == "judge-2" and rows["b1"]["confidence"] == "0.3000"


def test_align_dataset_cli_dry_run(dataset):
    from lipdub.eval.judge import bundled_judge_path

    if bundled_judge_path() is None:
        pytest.skip("no bundled SyncNet judge in this install")
    result = subprocess.run([sys.executable, "-m", "lipdub", "align-dataset", str(dataset), "--dry-run"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| clip")]
    assert sorted(r.split(" | ")[0][2:] for r in rows) == ["a1", "b1", "c1", "d1"]
    assert "dry run: nothing written" in result.stdout and not (dataset / AV_OFFSETS_FILE).exists()


def test_eval_expert_says_when_clips_are_retimed(dataset):
    from lipdub.eval.judge import bundled_judge_path

    if bundled_judge_path() is None:
        pytest.skip("no bundled SyncNet judge in this install")
    (dataset / AV_OFFSETS_FILE).write_text("clip_id,av_offset,confidence,judge\nd1,1,0.2,test\n")
    result = subprocess.run([sys.executable, "-m", "lipdub", "eval-expert", str(dataset)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "note: 1 clips are re-timed by" in result.stdout


def test_a_reference_offsets_table_replaces_the_datasets_own(dataset, tmp_path):
    before = {c.clip_id: c.mel for c in load_dataset(dataset, "all")}
    (dataset / AV_OFFSETS_FILE).write_text("clip_id,av_offset,confidence,judge\na1,2,0.2,test\n")
    reference = tmp_path / "reference.csv"
    reference.write_text("clip_id,av_offset\nb1,-1\n")
    after = {c.clip_id: c.mel for c in load_dataset(dataset, "all", offsets_table=reference)}
    assert np.array_equal(after["a1"], before["a1"])  # the dataset's own table is not applied
    assert after["b1"].shape[1] == before["b1"].shape[1] + 3  # -1 frame at 25 fps = 3 columns in front
    reference.write_text("clip,lag\nb1,-1\n")
    with pytest.raises(ValueError, match="not an offsets table"):
        read_av_offsets(dataset, reference)


def test_eval_expert_scores_against_a_reference_table(dataset, tmp_path):
    from lipdub.eval.judge import bundled_judge_path

    if bundled_judge_path() is None:
        pytest.skip("no bundled SyncNet judge in this install")
    reference = tmp_path / "reference.csv"
    reference.write_text("clip_id,av_offset\nd1,2\n")
    command = [sys.executable, "-m", "lipdub", "eval-expert", str(dataset), "--offsets"]
    result = subprocess.run(command + [str(reference)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"note: 1 clips are re-timed by {reference}" in result.stdout
    reference.write_text("clip,lag\nd1,2\n")
    for table in (reference, tmp_path / "missing.csv"):
        result = subprocess.run(command + [str(table)], capture_output=True, text=True)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and str(table) in result.stderr
