"""`lipdub train motion` / `export-motion` on a tiny real dataset: the loop runs, validates by
speaker against measured points, and what it exports loads and predicts."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from conftest import shared_file

    from lipdub.train.preprocess import PreprocessConfig, preprocess

    src = tmp_path_factory.mktemp("src") / "real"  # the folder name gives the clips' kind
    src.mkdir()
    for name in ("grid_man_denim.mpg", "grid_man_black_tshirt.mpg", "grid_man_grey_suit_2.mpg"):
        (src / name).symlink_to(shared_file(f"data/train/real/{name}"))
    dataset = tmp_path_factory.mktemp("ds")
    report = preprocess([src], dataset, PreprocessConfig(val_fraction=0.34))
    assert report.kept == 3
    return dataset


def test_training_validates_by_speaker_and_exports_a_model_that_predicts(tiny_dataset, tmp_path):
    from lipdub.motion.predictor import load_motion_model
    from lipdub.train.export import export_motion
    from lipdub.train.motion import MotionRecipe, train_motion

    recipe = MotionRecipe(steps=4, batch=2, sequence=16, width=16, eval_every=2, threads=1, kinds=("real",))
    result = train_motion(tiny_dataset, tmp_path / "run", recipe)
    split = json.loads((tmp_path / "run" / "data.json").read_text())
    assert split["val_speakers"] and not set(split["val_speakers"]) & set(split["train_speakers"])
    assert [h["step"] for h in result["history"]] == [2, 4]
    assert np.isfinite(result["val"]["real"]["r"]) and -1 <= result["val"]["real"]["r"] <= 1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["landmarks"] == "measured"

    path = export_motion([tmp_path / "run"], "tiny", out_dir=tmp_path / "bundle")
    card = json.loads((tmp_path / "bundle" / "tiny.json").read_text())
    assert card["val_speakers"] == split["val_speakers"] and 1.0 <= card["gain"] <= 2.0
    predictor = load_motion_model(path)
    t = np.arange(16000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    motion = predictor.predict(speech, 25, 25.0)
    assert motion.shape[0] == 25 and np.isfinite(motion).all()


def test_a_dataset_without_measured_points_is_a_clear_error(tiny_dataset, tmp_path):
    import shutil

    from lipdub.errors import LipdubError
    from lipdub.train.motion import MotionRecipe, load_motion_clips
    from lipdub.train.preprocess import save_landmarks

    old = tmp_path / "old"
    shutil.copytree(tiny_dataset, old)
    for folder in (old / "clips").iterdir():
        with np.load(folder / "landmarks.npz") as npz:
            points, valid = npz["points"], npz["valid"]
        save_landmarks(folder / "landmarks.npz", points, valid)  # as datasets before 'measured'
    with pytest.raises(LipdubError, match="preprocess again"):
        load_motion_clips(old, MotionRecipe(kinds=("real",)))
    assert load_motion_clips(old, MotionRecipe(kinds=("real",), landmarks="smoothed"))


def test_sequence_correlation_is_pearson_weighted_by_the_targets_spread():
    import torch

    from lipdub.train.motion import sequence_correlation

    t = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.ones(2, 4)
    # perfect on the moving sequence; the still one has no spread, so no weight
    assert float(sequence_correlation(torch.tensor([[1.0, 3.0, 5.0, 7.0], [4.0, 1.0, 2.0, 0.0]]), t, mask)) == pytest.approx(1.0)
    assert float(sequence_correlation(-t, t, mask)) == pytest.approx(-1.0)
    # hand-computed: x = (0, 2, 1, 3) against (0, 1, 2, 3): cov 4, |x| = |t| = sqrt(5) -> r = 0.8
    assert float(sequence_correlation(torch.tensor([[0.0, 2.0, 1.0, 3.0]]), t[:1], mask[:1])) == pytest.approx(0.8)
    # masked frames do not count: the last frame is ignored, (0, 2, 1) vs (0, 1, 2) -> r = 0.5
    masked = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert float(sequence_correlation(torch.tensor([[0.0, 2.0, 1.0, 99.0]]), t[:1], masked)) == pytest.approx(0.5)
