import csv
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.train.preprocess import (
    CLIP_COLUMNS,
    ClipRecord,
    PreprocessConfig,
    assign_splits,
    clip_id_for,
    clip_kind,
    fill_regions,
    find_media,
    fit_samples,
    infer_speaker,
    load_manifests,
    preprocess,
    quantize_points,
    save_landmarks,
    split_speakers,
    to_crop_coords,
    write_wav,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- infer_speaker


def test_voxceleb_layout_uses_the_identity_folder(tmp_path):
    clip = touch(tmp_path / "vox2" / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00001.mp4")
    assert infer_speaker(clip, [tmp_path / "vox2"], None) == "id00012"


def test_lrs_layout_uses_the_source_video_folder(tmp_path):
    lrs2 = touch(tmp_path / "lrs2" / "main" / "5535415699068794046" / "00001.mp4")
    lrs3 = touch(tmp_path / "lrs3" / "trainval" / "0af00UcTOSc" / "50001.mp4")
    assert infer_speaker(lrs2, [tmp_path / "lrs2"], None) == "5535415699068794046"
    assert infer_speaker(lrs3, [tmp_path / "lrs3"], None) == "0af00UcTOSc"


def test_mead_actor_from_folder_or_file_name(tmp_path):
    tree = touch(tmp_path / "mead" / "M030" / "video" / "front" / "happy" / "level_3" / "001.mp4")
    assert infer_speaker(tree, [tmp_path / "mead"], None) == "M030"
    flat = touch(tmp_path / "silent" / "mead_W009_front_surprised_level3_001.mp4")
    assert infer_speaker(flat, [tmp_path / "silent"], None) == "W009"


def test_flat_folder_uses_the_stem_without_take_number(tmp_path):
    root = tmp_path / "hdtf"
    assert infer_speaker(touch(root / "WRA_KellyAyotte_000.mp4"), [root], None) == "WRA_KellyAyotte"
    assert infer_speaker(touch(root / "woman_lecturer_2.mkv"), [root], None) == "woman_lecturer"
    assert infer_speaker(touch(root / "talk2_clip7.mp4"), [root], None) == "talk2"
    # No take number: the whole stem; a year is not a take number.
    assert infer_speaker(touch(root / "news_anchor.mp4"), [root], None) == "news_anchor"
    assert infer_speaker(touch(root / "interview_2019.mp4"), [root], None) == "interview_2019"


def test_folders_above_the_root_are_not_read(tmp_path):
    clip = touch(tmp_path / "id12345" / "clips" / "anchor.mp4")
    assert infer_speaker(clip, [tmp_path / "id12345" / "clips"], None) == "anchor"


def test_a_file_given_directly_uses_its_stem(tmp_path):
    clip = touch(tmp_path / "somewhere" / "president_3.mp4")
    assert infer_speaker(clip, [clip], None) == "president"


def test_manifest_wins_and_dash_means_unknown(tmp_path):
    root = tmp_path / "data"
    named = touch(root / "train" / "real" / "grid_man_grey_suit_2.mpg")
    unknown = touch(root / "train" / "synthetic" / "vasa1_l2.mp4")
    (root / "manifest.tsv").write_text(
        "file\tbytes\tspeaker\n"
        "train/real/grid_man_grey_suit_2.mpg\t1\tgrey_suit_person\n"
        "train/synthetic/vasa1_l2.mp4\t1\t-\n"
    )
    manifest = load_manifests([named, unknown])
    assert infer_speaker(named, [root / "train"], manifest) == "grey_suit_person"
    assert infer_speaker(unknown, [root / "train"], manifest) == "vasa1_l2"


def test_nearer_manifest_overrides_further_one(tmp_path):
    clip = touch(tmp_path / "a" / "b" / "x.mp4")
    (tmp_path / "manifest.tsv").write_text("file\tspeaker\na/b/x.mp4\tfar\n")
    (tmp_path / "a" / "manifest.tsv").write_text("file\tspeaker\nb/x.mp4\tnear\n")
    assert infer_speaker(clip, [tmp_path], load_manifests([clip])) == "near"


def test_shared_manifest_groups_takes_of_one_person(shared):
    root = shared("data/train/real")
    manifest = load_manifests(find_media([root]))
    one = infer_speaker(root / "man_us_president_1.mkv", [root], manifest)
    other = infer_speaker(root / "man_us_president_uncropped.mp4", [root], manifest)
    assert one == other == "man_us_president"


# --------------------------------------------------------------------------- clip_kind


@pytest.mark.parametrize(
    "relative, kind",
    [
        ("data/train/real/a.mp4", "real"),
        ("data/train/synthetic/a.mp4", "synthetic"),
        ("data/silent/a.mp4", "silent"),
        ("data/expressive/a.mp4", "expressive"),
        ("data/photos/a.png", "photo"),
        ("synthetic/old/real/a.mp4", "real"),
        ("my_videos/a.mp4", "other"),
    ],
)
def test_clip_kind_from_nearest_folder(relative, kind):
    assert clip_kind(Path("/x") / relative) == kind


# --------------------------------------------------------------------------- split_speakers


SPEAKERS = [f"speaker{i:02d}" for i in range(20)]


def test_split_is_deterministic_and_seeded():
    first = split_speakers(SPEAKERS, 0.2, seed=0)
    assert first == split_speakers(list(reversed(SPEAKERS)) * 2, 0.2, seed=0)
    assert sum(split == "val" for split in first.values()) == 4
    assert set(first) == set(SPEAKERS)
    others = [split_speakers(SPEAKERS, 0.2, seed=s) for s in range(1, 6)]
    assert any(other != first for other in others)


def test_adding_speakers_keeps_earlier_validation_speakers_mostly():
    before = {s for s, split in split_speakers(SPEAKERS, 0.2, 0).items() if split == "val"}
    after = split_speakers(SPEAKERS + ["newcomer"], 0.2, 0)
    # Hash ranks: the newcomer can only push one earlier pick out.
    assert len(before - {s for s, split in after.items() if split == "val"}) <= 1


def test_at_least_one_validation_speaker_and_never_all():
    assert sorted(split_speakers(["a", "b"], 0.01, 0).values()) == ["train", "val"]
    assert sorted(split_speakers(["a", "b"], 0.99, 0).values()) == ["train", "val"]
    assert split_speakers(["only"], 0.5, 0) == {"only": "train"}
    assert set(split_speakers(["a", "b", "c"], 0.0, 0).values()) == {"train"}


def test_named_validation_speakers():
    assert split_speakers(["a", "b", "c"], 0.2, 0, val_speakers=["b"]) == {"a": "train", "b": "val", "c": "train"}
    with pytest.raises(LipdubError, match="nobody"):
        split_speakers(["a", "b"], 0.2, 0, val_speakers=["nobody"])


def record(clip_id, speaker, kind="real"):
    return ClipRecord(clip_id, f"/src/{clip_id}.mp4", speaker, kind, 25.0, 10, 0.4, True, 1.0)


def test_no_speaker_leaks_across_splits_and_each_kind_gets_validation():
    records = [record(f"r{i}", f"real{i % 5}") for i in range(15)]
    records += [record(f"s{i}", f"synth{i}", "synthetic") for i in range(10)]
    splits = assign_splits(records, PreprocessConfig(val_fraction=0.2))
    by_speaker: dict[str, set[str]] = {}
    for r in records:
        by_speaker.setdefault(r.speaker, set()).add(splits[r.speaker])
    assert all(len(s) == 1 for s in by_speaker.values())
    assert [splits[f"real{i}"] for i in range(5)].count("val") == 1
    assert [splits[f"synth{i}"] for i in range(10)].count("val") == 2


# --------------------------------------------------------------------------- find_media


def test_find_media_walks_any_layout_and_ignores_other_files(tmp_path):
    wanted = [
        touch(tmp_path / "vox" / "id00012" / "abc" / "00001.mp4"),
        touch(tmp_path / "lrs" / "123" / "00002.MOV"),
        touch(tmp_path / "flat" / "a.mkv"),
        touch(tmp_path / "flat" / "b.webm"),
        touch(tmp_path / "flat" / "c.avi"),
        touch(tmp_path / "flat" / "d.mpg"),
        touch(tmp_path / "flat" / "e.mpeg"),
        touch(tmp_path / "flat" / "f.m4v"),
    ]
    touch(tmp_path / "flat" / "notes.txt")
    touch(tmp_path / "flat" / "photo.png")
    touch(tmp_path / "flat" / ".hidden.mp4")
    touch(tmp_path / ".cache" / "x.mp4")
    found = find_media([tmp_path, tmp_path / "flat"])  # overlapping sources: no duplicates
    assert sorted(p.resolve() for p in found) == sorted(p.resolve() for p in wanted)


def test_find_media_takes_a_named_file_and_rejects_a_missing_source(tmp_path):
    odd = touch(tmp_path / "clip.bin")
    assert find_media([odd]) == [odd]
    with pytest.raises(LipdubError, match="not found"):
        find_media([tmp_path / "missing"])


def test_clip_ids_are_unique_and_readable(tmp_path):
    a = clip_id_for(tmp_path / "x" / "00001.mp4")
    b = clip_id_for(tmp_path / "y" / "00001.mp4")
    assert a != b and a.startswith("00001-") and clip_id_for(tmp_path / "x" / "00001.mp4") == a
    assert clip_id_for(tmp_path / "a b&c.mp4").startswith("a_b_c-")


# --------------------------------------------------------------------------- numeric pieces


def test_to_crop_coords_applies_the_affine():
    matrix = np.array([[0.5, 0.0, -10.0], [0.0, 0.5, -20.0]])
    points = np.array([[20.0, 40.0], [100.0, 240.0]])
    np.testing.assert_allclose(to_crop_coords(points, matrix), [[0.0, 0.0], [40.0, 100.0]])
    rotation = np.array([[0.0, -1.0, 5.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(to_crop_coords([[2.0, 3.0]], rotation), [[2.0, 2.0]])


def test_fit_samples_starts_at_frame_zero_and_lasts_the_video():
    samples = np.arange(1000, dtype=np.float32)
    # 10 frames at 25 fps at 1 kHz = 400 samples; frame 0 at 0.1 s -> sample 100.
    fitted, padded = fit_samples(samples, 0.1, 10, 25.0, 1000)
    assert padded == 0 and len(fitted) == 400 and fitted[0] == 100 and fitted[-1] == 499
    fitted, padded = fit_samples(samples[:300], 0.0, 10, 25.0, 1000)
    assert padded == 100 and len(fitted) == 400 and not fitted[300:].any()


def test_quantize_points_rounds_to_an_eighth_pixel():
    q = quantize_points(np.array([[0.06, 0.07], [95.94, 10.3125]]))
    assert q.dtype == np.float16
    assert q.astype(np.float64).tolist() == [[0.0, 0.125], [96.0, 10.25]]


def test_saved_landmarks_load_back_as_frames_points_xy(tmp_path):
    rng = np.random.default_rng(0)
    points = np.cumsum(rng.normal(0, 0.1, (50, 478, 2)), axis=0) + 48
    valid = np.arange(50) % 7 != 0
    save_landmarks(tmp_path / "l.npz", points, valid)
    with np.load(tmp_path / "l.npz") as npz:
        back, back_valid = npz["points"], npz["valid"]
    assert back.shape == (50, 478, 2) and back.dtype == np.float16
    np.testing.assert_array_equal(back, quantize_points(points))
    np.testing.assert_array_equal(back_valid, valid)
    assert np.abs(back.astype(np.float64) - points).max() <= 1 / 16 + 1e-9
    save_landmarks(tmp_path / "m.npz", points, valid, measured=points + 0.5)
    with np.load(tmp_path / "m.npz") as npz:
        assert "measured" not in np.load(tmp_path / "l.npz").files
        np.testing.assert_array_equal(npz["measured"], quantize_points(points + 0.5))


def test_fill_regions_repeats_last_known_and_backfills_the_start():
    assert fill_regions([None, "a", None, None, "b", None]) == ["a", "a", "a", "a", "b", "b"]


def test_write_wav_is_16_bit_mono_and_clips(tmp_path):
    write_wav(tmp_path / "a.wav", np.array([0.0, 0.5, 2.0, -2.0]), 16000)
    with wave.open(str(tmp_path / "a.wav")) as handle:
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (1, 2, 16000)
        data = np.frombuffer(handle.readframes(4), dtype="<i2")
    assert data.tolist() == [0, 16384, 32767, -32768]


def test_bad_config_and_empty_sources_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LipdubError, match="no video files"):
        preprocess([tmp_path / "empty"], tmp_path / "ds")
    with pytest.raises(LipdubError, match="crop size"):
        preprocess([tmp_path / "empty"], tmp_path / "ds", PreprocessConfig(crop_size=95))


def test_only_bad_files_give_a_dataset_listing_them_as_skipped(tmp_path):
    touch(tmp_path / "src" / "broken.mp4", b"not a video at all" * 10)
    report = preprocess([tmp_path / "src"], tmp_path / "ds")
    assert report.kept == 0 and len(report.skipped) == 1
    with open(tmp_path / "ds" / "skipped.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["source"].endswith("broken.mp4") and rows[0]["reason"]
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["format"] == "lipdub-dataset"
    assert not list((tmp_path / "ds" / "clips").iterdir())  # no temporary folder left behind


# --------------------------------------------------------------------------- real clip


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CLIP_COLUMNS
        return list(reader)


@pytest.mark.slow
def test_real_clip_end_to_end(shared, tmp_path):
    import av

    from lipdub.media.decode import iter_frames, probe_video

    clip = shared("data/train/real/grid_man_denim.mpg")
    src = tmp_path / "src"
    src.mkdir()
    (src / clip.name).symlink_to(clip)
    dataset = tmp_path / "ds"
    config = PreprocessConfig(crop_size=96)

    report = preprocess([src], dataset, config)
    assert report.kept == 1 and report.reused == 0 and report.skipped == []
    (row,) = read_rows(dataset / "clips.csv")
    assert row["speaker"] == "grid_man_denim" and row["split"] == "train" and row["has_audio"] == "1"
    folder = dataset / "clips" / row["clip_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["audio.wav", "clip.json", "frames.mp4", "landmarks.npz"]

    frames = int(row["frames"])
    fps = float(row["fps"])
    with av.open(str(folder / "frames.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames == sum(1 for _ in iter_frames(clip))
    assert decoded[0].shape == (96, 96, 3)
    assert abs(fps - probe_video(clip).fps) < 1e-3

    with wave.open(str(folder / "audio.wav")) as handle:
        assert handle.getframerate() == 16000 and handle.getnchannels() == 1 and handle.getsampwidth() == 2
        assert handle.getnframes() == round(frames / fps * 16000)
        speech = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    assert np.abs(speech).max() > 1000  # GRID is speech, not silence

    with np.load(folder / "landmarks.npz") as npz:
        points, valid = npz["points"], npz["valid"]
    assert points.shape == (frames, 478, 2) and points.dtype == np.float16 and valid.dtype == bool
    assert valid.mean() == pytest.approx(float(row["face_ratio"]), abs=1e-3) and valid.mean() > 0.9
    inside = points[valid].astype(np.float32)
    assert inside.min() >= -2 and inside.max() <= 98
    # The face fills the crop: its points span most of it.
    assert np.ptp(inside[..., 0], axis=1).mean() > 40
    # Face Mesh's own points ride beside the smoothed ones; the smoothed mouth opens a frame late.
    with np.load(folder / "landmarks.npz") as npz:
        measured = npz["measured"]
    assert measured.shape == points.shape and measured.dtype == np.float16
    gap = np.abs(measured[valid].astype(np.float32) - inside)
    assert 0.0 < gap.mean() < 1.5
    from lipdub.eval.mouth import aperture_correlation, mouth_aperture

    delay = aperture_correlation(mouth_aperture(inside), mouth_aperture(measured[valid].astype(np.float32)), max_lag=3)
    assert delay.lag >= 1 and delay.r > 0.8

    # Again, with a broken file beside it: the clip is reused, the broken one is listed.
    (src / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    again = preprocess([src], dataset, config)
    assert again.reused == 1 and again.kept == 1
    assert [Path(s).name for s, _ in again.skipped] == ["corrupt.mp4"]
    with open(dataset / "skipped.csv", newline="") as handle:
        skipped = list(csv.DictReader(handle))
    assert [Path(r["source"]).name for r in skipped] == ["corrupt.mp4"] and skipped[0]["reason"]
    assert [r["clip_id"] for r in read_rows(dataset / "clips.csv")] == [row["clip_id"]]


def write_plain_video(path: Path, frames: int = 12, size: int = 64) -> Path:
    """A few frames of smooth grey gradient: a valid video with no face in it."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size, size, 3), 40 + 10 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_faceless_clip_is_skipped_with_the_reason(tmp_path):
    pytest.importorskip("lipdub.face.align", reason="face modules not merged yet")
    src = tmp_path / "src"
    src.mkdir()
    write_plain_video(src / "wall.mp4")
    report = preprocess([src], tmp_path / "ds")
    assert report.kept == 0
    assert [(Path(s).name, reason) for s, reason in report.skipped] == [("wall.mp4", "face in 0% of frames (< 50%)")]


@pytest.mark.slow
def test_parallel_workers_skip_and_list_like_one_worker(tmp_path):
    pytest.importorskip("lipdub.face.align", reason="face modules not merged yet")
    src = tmp_path / "src"
    src.mkdir()
    write_plain_video(src / "a.mp4")
    write_plain_video(src / "b.mp4")
    (src / "c.mp4").write_bytes(b"garbage" * 100)
    report = preprocess([src], tmp_path / "ds", PreprocessConfig(workers=2))
    assert report.kept == 0
    assert [Path(s).name for s, _ in report.skipped] == ["a.mp4", "b.mp4", "c.mp4"]
    assert not list((tmp_path / "ds" / "clips").iterdir())
