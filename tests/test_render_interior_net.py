"""The learned mouth interior: crop geometry, network shapes, compositing, and held-out quality."""

import numpy as np
import pytest
import torch

from tests.conftest import shared_file


def _ellipse(cx, cy, rx, ry, n=20):
    """A lip-ring-like polygon (20 points) around (cx, cy)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def test_mouth_crop_transform_centres_levels_and_scales_the_mouth():
    from lipdub.render.mouth_frame import mouth_crop_transform, transform_points

    # A mouth 40 px wide, rolled by 30 degrees, centred at (200, 150), eye distance 100 px.
    angle = np.radians(30)
    ring = _ellipse(0, 0, 20, 6)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    outer = ring @ rot.T + (200, 150)
    matrix = mouth_crop_transform(outer, 100.0, 64, side=0.8)
    mapped = transform_points(matrix, outer)
    np.testing.assert_allclose(mapped.mean(axis=0), (32, 32), atol=1e-9)
    np.testing.assert_allclose(mapped[0, 1], mapped[10, 1], atol=1e-9)  # corners level
    # 0.8 eye units = 80 px span 64 crop px: the 40 px mouth is 32 crop px wide.
    np.testing.assert_allclose(mapped[:, 0].max() - mapped[:, 0].min(), 32.0, atol=1e-9)


def test_hole_and_alpha_agree_and_alpha_is_zero_outside_the_hole():
    from lipdub.render.mouth_frame import composite_alpha, hole_mask, polygon_mask

    ring = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 20.0], [10.0, 20.0]])  # a 20 x 10 box
    polygon = polygon_mask(ring, (40, 40))
    assert polygon.sum() == 21 * 11  # pixel centres 10..30 x 10..20, edges included
    hole = hole_mask(ring, (40, 40), 2.0)
    # Grown by 2 px: 2 more rows and columns each side (corners rounded off).
    assert hole[8, 20] == 1 and hole[7, 20] == 0 and hole[15, 32] == 1 and hole[15, 33] == 0
    alpha = composite_alpha(ring, (40, 40), 2.0)
    assert (alpha[polygon.astype(bool)] == 1).all()
    assert (alpha[hole == 0] == 0).all() and (alpha[hole == 1] > 0).all()
    np.testing.assert_allclose(alpha[8, 20], 1 - 2 / 3, atol=1e-3)  # linear ramp over the band


def test_network_shapes_and_fill_keeps_everything_outside_the_hole():
    from lipdub.models.interior import InteriorNet

    net = InteriorNet((4, 8, 8, 8)).eval()
    rgb = torch.rand(2, 3, 32, 32)
    hole = torch.zeros(2, 1, 32, 32)
    hole[:, :, 10:20, 8:24] = 1
    out = net(InteriorNet.inputs(rgb, hole))
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    filled = net.fill(rgb, hole)
    assert torch.equal(filled[:, :, :10], rgb[:, :, :10])
    assert not torch.equal(filled[:, :, 10:20, 8:24], rgb[:, :, 10:20, 8:24])
    # The hole's own content is invisible to the network: only its surroundings matter.
    noisy = rgb.clone()
    noisy[:, :, 10:20, 8:24] = torch.rand(2, 3, 10, 16)
    assert torch.equal(net(InteriorNet.inputs(noisy, hole)), out)


def test_learned_paint_changes_nothing_outside_its_hole():
    from lipdub.models.interior import InteriorNet
    from lipdub.render.learned_interior import LearnedInterior
    from lipdub.render.mouth_frame import hole_mask

    torch.manual_seed(0)
    painter = LearnedInterior(InteriorNet((4, 8, 8, 8)), 64)
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    origin = (300, 200)
    inner = _ellipse(380, 260, 22, 9)
    outer = _ellipse(380, 260, 30, 16)
    painted, alpha = painter.paint(patch, origin, inner, outer, eye_distance=110.0)
    assert painted.shape == patch.shape and alpha.shape == patch.shape[:2]
    composite = np.clip(patch * (1 - alpha[..., None]) + painted * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)
    outside = alpha == 0
    assert np.abs(composite.astype(int) - patch.astype(int))[outside].max() <= 1
    # The opening itself is painted, and the grown hole (in patch pixels) bounds what changed.
    opening = hole_mask(inner - origin, patch.shape[:2], 0.0).astype(bool)
    assert (alpha[opening] == 1).all()
    assert np.abs(composite.astype(int) - patch.astype(int))[opening].max() > 10
    assert not (alpha > 0)[hole_mask(inner - origin, patch.shape[:2], 3.0) == 0].any()


def test_bundled_interior_loads_and_unknown_choice_is_refused():
    from lipdub.engines.motion import interior_painter
    from lipdub.errors import LipdubError

    painter = interior_painter("learned")
    assert painter is not None and painter.size == 64
    assert interior_painter("painted") is None
    with pytest.raises(LipdubError, match="unknown interior"):
        interior_painter("airbrushed")


def _held_out_mouths(path, count=3, step=4, frames=80):
    """Mouth crops (64 px) of the most open of ``frames`` frames of a held-out clip."""
    from lipdub.eval.mouth import LIP_INNER, LIP_OUTER, mouth_aperture
    from lipdub.face.detect import FaceDetector
    from lipdub.media.decode import iter_frames
    from lipdub.render.mouth_frame import cut_mouth, mouth_crop_transform, transform_points

    found = []
    with FaceDetector(max_faces=1) as detector:
        for frame in iter_frames(path):
            if frame.index >= frames:
                break
            if frame.index % step:
                continue
            faces = detector.detect(frame.image)
            if not faces or faces[0].landmarks is None:
                continue
            points = faces[0].landmarks.astype(np.float64)
            eye = float(np.linalg.norm(points[33] - points[263]))
            matrix = mouth_crop_transform(points[list(LIP_OUTER)], eye, 64)
            found.append((float(mouth_aperture(points[None])[0]), cut_mouth(frame.image, matrix, 64),
                          transform_points(matrix, points[list(LIP_INNER)])))
    found.sort(key=lambda item: -item[0])
    return found[:count]


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["data/train/real/woman_politician_uk.mp4", "data/train/real/man_congressman_60s.mp4"])
def test_bundled_interior_beats_a_mean_colour_fill_on_held_out_speakers(clip):
    """Validation speakers of the bundled models: the network never saw these people."""
    from lipdub.render.learned_interior import load_learned_interior
    from lipdub.render.mouth_frame import polygon_mask
    from lipdub.train.interior import learned_fill, mean_fill

    mouths = _held_out_mouths(shared_file(clip))
    assert mouths and mouths[0][0] > 0.05, "expected open mouths in the clip's first seconds"
    net = load_learned_interior().net
    crops = np.stack([m[1] for m in mouths])
    rings = np.stack([m[2] for m in mouths])
    openings = [polygon_mask(r, (64, 64)).astype(bool) for r in rings]
    canvases = np.stack([mean_fill(c, o.astype(np.uint8)) for c, o in zip(crops, openings)])
    learned = learned_fill(net, canvases, rings, 64)
    l1_learned = np.mean([np.abs(p.astype(float) - c)[o].mean() for p, c, o in zip(learned, crops, openings)])
    l1_mean = np.mean([np.abs(p.astype(float) - c)[o].mean() for p, c, o in zip(canvases, crops, openings)])
    assert l1_learned < 0.9 * l1_mean


@pytest.mark.slow
def test_the_engine_runs_on_photos_with_the_learned_interior(tmp_path, monkeypatch):
    """The bundled demo photo (its smile is open: its own teeth are stretched, the network is loaded
    but rarely needed) and a closed-mouth photo, whose opening only the network can paint."""
    import wave
    from importlib.resources import files

    from lipdub.engines import build_engine
    from lipdub.media.decode import iter_frames
    from lipdub.pipeline import SyncOptions, sync
    from lipdub.render.learned_interior import LearnedInterior

    assert build_engine(SyncOptions()).interior is None  # painted by default (docs/model-card.md)
    assert build_engine(SyncOptions(interior="learned")).interior is not None
    calls = []
    original = LearnedInterior.paint

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LearnedInterior, "paint", counting)
    assets = files("lipdub") / "assets"
    speech = tmp_path / "speech.wav"  # the sample speech's first 3 s: enough mouth openings
    with wave.open(str(assets / "sample_speech.wav")) as source, wave.open(str(speech), "wb") as target:
        target.setparams(source.getparams())
        target.writeframes(source.readframes(3 * source.getframerate()))
    out = tmp_path / "demo.mp4"
    result = sync(str(assets / "sample_face.jpg"), speech, out, length_mode="cut", interior="learned")
    assert out.is_file() and result.frames_with_face == result.frames
    assert len([f for f in iter_frames(out)]) == result.frames

    calls.clear()
    closed = tmp_path / "closed.mp4"
    result = sync(shared_file("data/photos/echomimic_a.png"), speech, closed, length_mode="cut", interior="learned")
    assert result.frames_with_face == result.frames
    assert len(calls) > 0.2 * result.frames  # the opening frames went through the network


def test_frames_kept_per_clip_are_open_and_closed_evenly_spaced():
    from lipdub.train.interior_data import choose_frames, evenly

    np.testing.assert_array_equal(evenly(np.arange(10), 3), [0, 4, 9])  # round(linspace(0, 9, 3))
    np.testing.assert_array_equal(evenly(np.arange(2), 5), [0, 1])
    apertures = np.array([0.0, 0.1, np.nan, 0.2, 0.01, 0.3, 0.06, 0.02])
    # open (>= 0.05): frames 1, 3, 5, 6 -> 2 of them evenly: 1, 6; closed: 0, 4, 7 -> 1: 0
    np.testing.assert_array_equal(choose_frames(apertures, 0.05, 2, 1), [0, 1, 6])


def test_interior_loss_is_the_l1_inside_the_hole_plus_its_edges():
    from lipdub.train.interior import interior_loss

    truth = torch.zeros(1, 3, 4, 4)
    painted = truth.clone()
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 1:3, 1:3] = 1
    painted[..., 1, 1] = 0.5  # one wrong pixel inside the hole
    painted[..., 0, 0] = 1.0  # outside: ignored
    # L1: 0.5 over the 4 hole pixels. Differences: per direction, 6 neighbour pairs touch the 2x2
    # hole (2 rows x 3 pairs); the wrong pixel is in 2 of them, each off by 0.5; the outside pixel's
    # pairs touch no hole pixel.
    l1 = 0.5 / 4
    grad = 2 * (2 * 0.5 / 6)
    assert interior_loss(painted, truth, hole, 0.0).item() == pytest.approx(l1)
    assert interior_loss(painted, truth, hole, 1.0).item() == pytest.approx(l1 + grad)


def test_a_tiny_training_run_writes_its_records_and_exports_loadable_weights(tmp_path):
    """Two steps on made-up mouths: the run folder, the split and the bundled format (no shared media)."""
    import json

    from lipdub.render.learned_interior import load_learned_interior
    from lipdub.train.export import export_interior
    from lipdub.train.interior import InteriorRecipe, train_interior

    rng = np.random.default_rng(0)
    n = 8
    crops = rng.integers(60, 200, (n, 128, 128, 3), dtype=np.uint8)
    inner = np.stack([_ellipse(64, 64, 24, 10 + i) for i in range(n)]).astype(np.float32)
    outer = np.stack([_ellipse(64, 64, 34, 20 + i) for i in range(n)]).astype(np.float32)
    speakers = np.array(["a", "a", "b", "b", "c", "c", "v", "v"])
    samples = tmp_path / "samples.npz"
    np.savez(samples, crop=crops, inner=inner, outer=outer, white=np.full((n, 3), 220, np.float32),
             aperture=np.full(n, 0.1, np.float32), clip=speakers, speaker=speakers,
             kind=np.array(["real"] * n), split=np.where(speakers == "v", "val", "train"),
             frame=np.arange(n))
    recipe = InteriorRecipe(widths=(4, 8, 8, 8), steps=2, batch=4, eval_every=1)
    result = train_interior(samples, tmp_path / "run", recipe)
    run = tmp_path / "run"
    for name in ("config.json", "seed.txt", "data.json", "metrics.json", "result.json", "checkpoint.pt", "contact_sheet.png"):
        assert (run / name).is_file(), name
    data = json.loads((run / "data.json").read_text())
    assert data["val"]["speakers"] == ["v"] and "v" not in data["train"]["speakers"]
    assert result["steps"] == 2 and set(result["val"]) == {"64", "128"}
    weights = export_interior(run / "checkpoint.pt", "tiny", out_dir=tmp_path / "weights")
    loaded = load_learned_interior(weights)
    assert loaded.size == 64 and loaded.net.widths == (4, 8, 8, 8)
