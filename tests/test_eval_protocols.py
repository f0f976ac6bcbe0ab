"""`lipdub eval-set`: the reconstruction protocols on a real clip, and the table they print."""

import math
import shutil

import pytest

from lipdub.errors import LipdubError
from lipdub.eval.protocols import evaluate_set, find_clips, format_table, reconstruct
from tests.conftest import shared_file


def test_find_clips_walks_folders_and_refuses_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.MP4").write_bytes(b"x")
    (tmp_path / "two.mkv").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_clips([tmp_path])] == ["one.MP4", "two.mkv"]
    with pytest.raises(LipdubError, match="not found"):
        find_clips([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LipdubError, match="no video clips"):
        find_clips([empty])


def test_table_has_one_row_per_clip_and_a_mean():
    row = {"clip": "a.mp4", "lse_d": 0.9, "lse_c": 0.1, "av_offset": 0, "lmd": 0.03, "aperture_r": 0.4,
           "sharpness": None, "real_lse_d": 1.0, "real_lse_c": 0.09, "real_av_offset": -2}
    table = format_table({"protocol": "video", "judge": "j", "rows": [row], "mean": {"lse_d": 0.9}})
    lines = table.splitlines()
    assert lines[0] == "protocol: video; judge: j"
    assert lines[4].startswith("| a.mp4 | 0.900 | 0.100 | 0 | 0.0300 | 0.400 | n/a | 1.000 | 0.090 | -2 |")
    assert lines[5].startswith("| **mean** | 0.900 | n/a")
    assert all(line.count("|") == lines[2].count("|") for line in lines[2:])


def test_unknown_protocol_is_refused(tmp_path):
    with pytest.raises(LipdubError, match="unknown protocol"):
        reconstruct(tmp_path / "x.mp4", "audio", tmp_path / "out.mp4")


@pytest.mark.slow
def test_video_protocol_on_a_real_clip(tmp_path, random_checkpoint):
    """Mechanics only (random generator weights): every figure is filled in and within its range,
    and the real clip's own figures come from the real clip, which the bundled judge finds in sync."""
    from lipdub.eval.judge import bundled_judge_path

    if bundled_judge_path() is None:
        pytest.skip("no bundled SyncNet judge in this install")
    clip = shutil.copy(shared_file("data/train/real/grid_man_denim.mpg"), tmp_path / "grid.mpg")
    result = evaluate_set([clip], "video", tmp_path / "out", checkpoint=random_checkpoint)
    (row,) = result["rows"]
    assert row["clip"] == "grid.mpg" and result["protocol"] == "video"
    assert abs(row["real_av_offset"]) <= 1  # a studio (GRID) recording is in sync
    assert -1.0 <= row["aperture_r"] <= 1.0 and row["lmd"] > 0
    assert row["sharpness"] > 0 and math.isfinite(row["lse_d"])
    assert result["mean"]["lmd"] == pytest.approx(row["lmd"])
    assert (tmp_path / "out" / "grid" / "real").is_dir() and (tmp_path / "out" / "grid" / "video").is_dir()
