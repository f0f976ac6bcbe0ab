"""`lipdub eval-set`: the protocols' pure parts (pairs, resampling, figures on stub landmarks, rows and table),
and the video protocol on a real clip."""

import math
import shutil
from pathlib import Path

import pytest

import numpy as np

from lipdub.errors import LipdubError
from lipdub.eval.protocols import (
    _row,
    crossdub_mouth,
    crossdub_pairs,
    evaluate_set,
    find_clips,
    format_table,
    pause_ratio,
    reconstruct,
    resample_by_time,
)
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
    with pytest.raises(LipdubError, match="does not reconstruct"):
        reconstruct(tmp_path / "x.mp4", "crossdub", tmp_path / "out.mp4")
    with pytest.raises(LipdubError, match="unknown protocol"):  # before any clip is run
        evaluate_set([tmp_path / "x.mp4"], "audio", tmp_path / "out")


def test_cli_refuses_a_crossdub_of_one_clip_and_an_unknown_protocol_in_one_line(tmp_path):
    from tests.test_cli_errors import assert_one_line_error, run_cli

    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")  # never opened: the protocol is refused first
    assert_one_line_error(run_cli("eval-set", clip, "--protocol", "crossdub", "-o", tmp_path / "out"), "at least two")
    assert_one_line_error(run_cli("eval-set", clip, "--protocol", "audio", "-o", tmp_path / "out"), "unknown protocol")
    assert not (tmp_path / "out").exists()


def test_crossdub_pairs_each_clip_with_the_next():
    a, b, c = Path("a.mp4"), Path("b.mp4"), Path("dir/c.mkv")
    assert crossdub_pairs([a, b, c]) == [(a, b), (b, c), (c, a)]
    assert crossdub_pairs([a, b]) == [(a, b), (b, a)]
    assert crossdub_pairs([a, a, b]) == [(a, b), (b, a)]  # a repeated clip would be dubbed with itself
    for clips in ([a], [a, a], []):
        with pytest.raises(LipdubError, match="at least two"):
            crossdub_pairs(clips)


def test_resample_by_time_known_values():
    # 10 fps → 20 fps: every other output frame falls half-way between two source frames.
    np.testing.assert_allclose(resample_by_time([0, 1, 2, 3], 10, 20, 8), [0, 0.5, 1, 1.5, 2, 2.5, 3, np.nan])
    # 30 → 25 fps: output frame j is at source position 1.2 j.
    np.testing.assert_allclose(resample_by_time([0, 10, 20, 30, 40], 30, 25, 4), [0, 12, 24, 36])
    # Equal rates: unchanged, including 29.97 fps, where positions are whole only up to rounding.
    values = np.arange(100) * 0.5
    np.testing.assert_array_equal(resample_by_time(values, 30000 / 1001, 30000 / 1001, 100), values)
    # A missing source frame (no face) leaves the output frames that use it unknown.
    np.testing.assert_allclose(resample_by_time([0, np.nan, 2], 10, 20, 5), [0, np.nan, np.nan, np.nan, 2])


def mouths(apertures):
    """(N, 478, 2) landmarks: eyes 100 px apart, inner lips (13, 14) ``aperture`` × 100 px apart."""
    apertures = np.asarray(apertures, dtype=np.float64)
    points = np.zeros((len(apertures), 478, 2))
    points[:, 33], points[:, 263] = (0.0, 0.0), (100.0, 0.0)
    points[:, 13] = (50.0, 50.0)
    points[:, 14, 0], points[:, 14, 1] = 50.0, 50.0 + 100.0 * apertures
    return points


def speech_like(t):
    """A mouth opening that is not periodic over a few frames (syllables at two rates)."""
    return 0.06 + 0.04 * np.sin(2 * np.pi * 3.1 * t) + 0.03 * np.sin(2 * np.pi * 4.7 * t + 1.0)


def test_crossdub_mouth_on_stub_landmarks():
    fps = 25.0
    real = speech_like(np.arange(150) / fps)
    follows = crossdub_mouth(mouths(real), fps, mouths(real), fps)
    assert follows["aperture_r0"] == pytest.approx(1.0) and follows["aperture_r"] == pytest.approx(1.0)
    assert follows["aperture_lag"] == 0
    late = np.r_[np.full(2, real[0]), real[:-2]]  # the dubbed mouth 2 frames late
    delayed = crossdub_mouth(mouths(late), fps, mouths(real), fps)
    assert delayed["aperture_lag"] == 2 and delayed["aperture_r"] > 0.99 and delayed["aperture_r0"] < 0.9
    frozen = crossdub_mouth(mouths(np.full(150, 0.05)), fps, mouths(real), fps)
    assert frozen == {"aperture_r0": 0.0, "aperture_r": 0.0, "aperture_lag": 0}
    # The output at 50 fps, the speech source at 25 fps: compared by time, not by frame index.
    output = speech_like(np.arange(300) / 50.0)
    by_time = crossdub_mouth(mouths(output), 50.0, mouths(real), fps)
    assert by_time["aperture_r0"] > 0.99 and by_time["aperture_lag"] == 0


def test_pause_ratio_of_stub_landmarks_against_real_samples():
    sr, fps = 16000, 25.0
    t = np.arange(sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 200 * t)
    audio = np.concatenate([tone, np.zeros(3 * sr), tone])  # speech, a 3 s pause, speech
    moving = speech_like(np.arange(125) / fps)
    still = moving.copy()
    still[25:100] = 0.02  # closed through the pause
    assert pause_ratio(mouths(still), fps, audio, sr) == 0.0
    assert 0.5 < pause_ratio(mouths(moving), fps, audio, sr) < 2.0
    assert np.isnan(pause_ratio(mouths(moving), fps, np.tile(tone, 5), sr))  # no pause to judge


def test_rows_have_every_column_and_missing_figures_read_n_a():
    report = {"sync": {"lse_d": 0.8, "lse_c": 0.2, "av_offset_frames": 1},
              "mouth": {"lmd": 0.03, "aperture_correlation": 0.5, "aperture_lag_frames": -1,
                        "aperture_generated": [0.0, 0.1, 0.2, 0.1], "aperture_reference": [0.0, 0.2, 0.4, 0.2]},
              "image": {"mouth_sharpness_ratio": 0.6}}
    row = _row("a.mp4", report, {"pause_ratio": float("nan"), "real_pause_ratio": 0.25, "real_lse_d": 0.9})
    assert row["aperture_r0"] == pytest.approx(1.0) and row["aperture_lag"] == -1 and row["aperture_r"] == 0.5
    assert row["pause_ratio"] is None and row["real_pause_ratio"] == 0.25  # NaN = not measured
    assert row["expression_r"] is None and row["sharpness"] == 0.6
    cross = _row("b.mp4 ← a.mp4", {"sync": report["sync"]},
                 {"aperture_r": 0.4, "aperture_r0": 0.3, "aperture_lag": 2, "expression_r": 0.9,
                  "expression_range": 0.8, "face": "b.mp4", "speech": "a.mp4"})
    assert cross["lmd"] is None and cross["aperture_r"] == 0.4 and set(row) <= set(cross)
    result = {"protocol": "crossdub", "judge": "j", "rows": [row, cross],
              "mean": {"lse_d": 0.8, "aperture_r": 0.45, "aperture_lag": 0.5, "real_pause_ratio": 0.25}}
    lines = format_table(result).splitlines()
    assert "| pause ratio | real pause ratio | expression r | expression range | render r | lip retest |" in lines[2]
    assert lines[4].endswith("| 1.000 | -1 | n/a | 0.250 | n/a | n/a | n/a | n/a |")
    assert lines[5].endswith("| 0.300 | 2 | n/a | n/a | 0.900 | 0.800 | n/a | n/a |")
    assert lines[6].startswith("| **mean** | 0.800 |") and "| 0.450 |" in lines[6] and "| 0.5 |" in lines[6]
    assert all(line.count("|") == lines[2].count("|") for line in lines[2:])


def test_mean_skips_missing_figures_and_text():
    from lipdub.eval.protocols import _mean

    rows = [{"clip": "a", "lse_d": 1.0, "pause_ratio": None, "face": "a.mp4", "lag": 1},
            {"clip": "b", "lse_d": 0.5, "pause_ratio": 0.3, "face": "b.mp4", "lag": float("nan")}]
    assert _mean(rows) == {"lse_d": 0.75, "pause_ratio": 0.3, "lag": 1.0}


def test_face_track_landmark_array_keeps_frames_without_a_face_as_nan():
    from types import SimpleNamespace

    from lipdub.eval.report import FaceTrack

    track = FaceTrack(fps=25.0)
    track.add(None)
    track.add(SimpleNamespace(landmarks=np.ones((478, 2), np.float32)))
    points = track.landmark_array()
    assert points.shape == (2, 478, 2) and np.isnan(points[0]).all() and (points[1] == 1.0).all()


def test_face_track_measures_face_mesh_points_not_the_smoothed_ones():
    """The judge reads what Face Mesh measured: the tracker's causal smoothing would delay it."""
    from types import SimpleNamespace

    from lipdub.eval.report import FaceTrack

    track = FaceTrack(fps=25.0)
    track.add(SimpleNamespace(landmarks=np.ones((478, 2), np.float32), raw_landmarks=np.full((478, 2), 2.0, np.float32)))
    track.add(SimpleNamespace(landmarks=np.ones((478, 2), np.float32), raw_landmarks=None))
    points = track.landmark_array()
    assert (points[0] == 2.0).all() and (points[1] == 1.0).all()


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
    assert -1.0 <= row["aperture_r0"] <= row["aperture_r"] and abs(row["aperture_lag"]) <= 5
    assert -1.0 <= row["expression_r"] <= 1.0 and row["expression_range"] >= 0
    assert row["pause_ratio"] is None and row["real_pause_ratio"] is None  # a 3 s GRID sentence has no 2 s pause
    assert result["mean"]["lmd"] == pytest.approx(row["lmd"])
    assert (tmp_path / "out" / "grid" / "real").is_dir() and (tmp_path / "out" / "grid" / "video").is_dir()


def test_render_faithfulness_is_the_lag0_correlation_with_the_target():
    from lipdub.eval.mouth import mouth_aperture
    from lipdub.eval.protocols import render_faithfulness

    rng = np.random.default_rng(0)
    landmarks = rng.normal(size=(40, 478, 2)) * 5 + 100
    measured = mouth_aperture(landmarks)
    assert render_faithfulness(landmarks, None) is None
    assert render_faithfulness(landmarks, list(measured * 2 + 1)) == pytest.approx(1.0)
    assert render_faithfulness(landmarks, list(-measured)) == pytest.approx(-1.0)


def test_dub_protocol_needs_speech(tmp_path):
    from lipdub.eval.protocols import evaluate_set

    with pytest.raises(LipdubError, match="speech file"):
        evaluate_set([tmp_path / "a.mp4"], "dub", tmp_path / "out")
    with pytest.raises(LipdubError, match="not found"):
        evaluate_set([tmp_path / "a.mp4"], "dub", tmp_path / "out", speech_files=[tmp_path / "missing.wav"])
