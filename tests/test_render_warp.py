"""The renderer's numeric parts against known values: affines, rasterising, warps, mesh, bank."""

import numpy as np
import pytest

from lipdub.render import bank as B
from lipdub.render.mesh import build_mesh, fan_triangles, mesh_triangles, signed_areas, strip_triangles, warp_vertices
from lipdub.render.warp import piecewise_affine_maps, rasterise_triangles, triangle_affines, warp_patch


def test_triangle_affine_maps_target_corners_onto_source_corners():
    source = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    target = np.array([[5.0, 5.0], [25.0, 5.0], [5.0, 25.0]])  # scaled by 2, shifted by 5
    affine = triangle_affines(source, target, np.array([[0, 1, 2]]))[0]
    np.testing.assert_allclose(affine, [[0.5, 0.0, -2.5], [0.0, 0.5, -2.5]], atol=1e-12)


def test_degenerate_target_triangle_gets_nan():
    source = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    target = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert np.isnan(triangle_affines(source, target, np.array([[0, 1, 2]]))).all()


def test_two_triangles_of_a_square_cover_it_once_without_gaps():
    target = np.array([[0.0, 0.0], [20.0, 0.0], [20.0, 20.0], [0.0, 20.0]])
    ids = rasterise_triangles(target, np.array([[0, 1, 2], [0, 2, 3]]), (0, 0, 20, 20))
    assert (ids >= 0).all()
    assert set(np.unique(ids)) == {0, 1}


def test_global_affine_warp_matches_the_affine():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    source = np.array([[10.0, 10.0], [60.0, 12.0], [58.0, 62.0], [12.0, 60.0]])
    target = source + np.array([3.0, -2.0])  # a pure translation by (3, -2)
    triangles = np.array([[0, 1, 2], [0, 2, 3]])
    map_x, map_y, covered = piecewise_affine_maps(source, target, triangles, (0, 0, 80, 80))
    ys, xs = np.nonzero(covered)
    np.testing.assert_allclose(map_x[ys, xs], xs - 3.0, atol=1e-4)
    np.testing.assert_allclose(map_y[ys, xs], ys + 2.0, atol=1e-4)
    patch, covered = warp_patch(image, (0, 0), source, target, triangles, (0, 0, 80, 80))
    inner = covered.copy()
    inner[:, :2] = inner[:2] = False
    ys, xs = np.nonzero(inner)
    np.testing.assert_array_equal(patch[ys, xs], image[ys + 2, xs - 3])


def test_warp_puts_a_dot_on_its_target_within_half_a_pixel():
    """A bright dot at a source vertex lands on the matching target vertex (centroid < 0.5 px)."""
    import cv2

    image = np.zeros((120, 120, 3), np.uint8)
    source = np.array([[20.0, 20.0], [100.0, 20.0], [100.0, 100.0], [20.0, 100.0], [60.0, 60.0]])
    target = source.copy()
    target[4] = [67.3, 52.6]  # only the centre moves: a non-rigid target shape
    cv2.circle(image, (600, 600), 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)  # dot at (37.5, 37.5)
    # Fan of four triangles round the centre.
    triangles = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    dot = np.array([37.5, 37.5])
    patch, _ = warp_patch(image, (0, 0), source, target, triangles, (0, 0, 120, 120))
    weight = patch[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:120, 0:120]
    found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    # Where the dot should go: the affine of its triangle (0, 1, 4 contains it? it is in 3-0-4 or 0-1-4).
    for tri in triangles:
        a = triangle_affines(target, source, tri[None])[0]  # source -> target
        s = source[tri]
        m = np.linalg.solve(np.vstack([s.T, np.ones(3)]), np.append(dot, 1.0))
        if (m >= -1e-9).all():
            expected = a[:, :2] @ dot + a[:, 2]
            break
    assert np.linalg.norm(found - expected) < 0.5


def test_mesh_has_a_hole_at_the_mouth_and_no_triangle_above_the_nose():
    from lipdub.eval.mouth import LIP_INNER

    triangles = mesh_triangles()
    assert len(triangles) > 800
    inner = set(LIP_INNER)
    # No mesh triangle is made of inner-lip points only from both lips (13 with 14 would span the opening).
    assert not any({13, 14} <= set(t) for t in triangles.tolist())
    assert all(len(set(t) & inner) < 3 for t in triangles.tolist())


def test_fan_and_strip_triangles():
    np.testing.assert_array_equal(fan_triangles((5, 6, 7), 9), [[5, 6, 9], [6, 7, 9], [7, 5, 9]])
    np.testing.assert_array_equal(strip_triangles([0, 1, 2], [3, 4, 5]), [[0, 1, 3], [1, 2, 4], [3, 1, 4], [4, 2, 5]])


def test_warp_vertices_ring_follows_the_anchor_not_the_moved_face():
    layout = np.random.default_rng(1).normal(size=(478, 2))
    mesh = build_mesh(layout)
    moved = layout.copy()
    moved[152] += [0.0, 5.0]  # the chin drops
    a = warp_vertices(moved, mesh, ring_from=layout)
    b = warp_vertices(layout, mesh)
    np.testing.assert_array_equal(a[mesh.ring_start:], b[mesh.ring_start:])
    assert a.shape == (mesh.vertex_count, 2)


def test_viterbi_prefers_playing_forward_over_switching():
    # Two candidates per frame; bank id 0..3 are input frames 0..3; id 4 is frame 10.
    frame_of = np.array([0, 1, 2, 3, 10])
    candidates = np.array([[0, 4], [1, 4], [2, 4], [3, 4]])
    costs = np.array([[0.0, 0.01], [0.015, 0.0], [0.0, 0.01], [0.0, 0.01]])
    path = B.viterbi_path(costs, candidates, frame_of, switch_cost=0.05)
    np.testing.assert_array_equal(path, [0, 1, 2, 3])  # frame 1 is slightly worse but switching costs more
    path = B.viterbi_path(costs, candidates, frame_of, switch_cost=0.0)
    np.testing.assert_array_equal(path, [0, 4, 2, 3])


def test_viterbi_carries_on_from_the_frame_shown_before():
    # Bank ids 0..3 are input frames 0..3, id 4 is frame 10; on the first frame id 4 is cheaper.
    frame_of = np.array([0, 1, 2, 3, 10])
    candidates = np.array([[0, 4], [1, 4]])
    costs = np.array([[0.02, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(B.viterbi_path(costs, candidates, frame_of, 0.05), [4, 4])  # fresh
    # After frame 0 was shown, holding it and playing on is free, jumping to frame 10 is a switch.
    np.testing.assert_array_equal(B.viterbi_path(costs, candidates, frame_of, 0.05, after=0), [0, 1])
    assert B.viterbi_path(costs, candidates, frame_of, 0.0, after=0)[0] == 4  # free switching: no pull
    # After frame 3, both first choices are a switch: the cheaper one wins as if fresh.
    np.testing.assert_array_equal(B.viterbi_path(costs, candidates, frame_of, 0.05, after=3), [4, 4])


def test_bank_never_picks_frames_outside_the_input_or_inside_the_exclusion():
    rng = np.random.default_rng(2)
    bank_frames = np.arange(0, 100, 2)
    bank_shapes = rng.normal(size=(len(bank_frames), 79, 2))
    targets = rng.normal(size=(60, 79, 2))
    target_frames = np.arange(60)
    picked = B.choose_sources(targets, np.zeros((60, 2)), target_frames, bank_shapes, np.zeros((50, 2)),
                              bank_frames, exclude_within=10)
    assert ((picked >= 0) & (picked < len(bank_frames))).all()
    assert (np.abs(bank_frames[picked] - target_frames) > 10).all()


def test_bank_picks_the_matching_shape():
    rng = np.random.default_rng(3)
    bank_shapes = rng.normal(size=(30, 79, 2))
    targets = bank_shapes[[7, 7, 20]] + 1e-3
    picked = B.choose_sources(targets, np.zeros((3, 2)), np.array([0, 1, 2]), bank_shapes, np.zeros((30, 2)),
                              np.arange(100, 130), switch_cost=0.0)
    np.testing.assert_array_equal(picked, [7, 7, 20])


def test_mouth_width_measures_the_outer_corners():
    from lipdub.motion.shape import MOTION_POINTS, mouth_width

    shapes = np.zeros((2, len(MOTION_POINTS), 2))
    shapes[0, MOTION_POINTS.index(61)] = (-0.3, 0.0)
    shapes[0, MOTION_POINTS.index(291)] = (0.3, 0.4)
    np.testing.assert_allclose(mouth_width(shapes), [np.hypot(0.6, 0.4), 0.0])


def test_bank_prefers_the_target_width_and_a_mouth_whose_opening_fits():
    """Width: of two bank mouths, the one nearer by shape is 0.04 too wide, the other as wide as the
    target but shifted; the width term picks the second. Fit: an input run that matches the target
    by shape but whose opening cannot serve it is left for an open mouth once not fitting costs
    more than the switches."""
    from lipdub.motion.shape import MOTION_POINTS, mouth_width

    right, left = MOTION_POINTS.index(61), MOTION_POINTS.index(291)
    target = np.zeros((1, len(MOTION_POINTS), 2))
    target[0, right, 0], target[0, left, 0] = -0.25, 0.25
    shifted, wider = target.copy(), target.copy()
    shifted[0, [right, left], 0] += 0.04  # as wide, both corners 0.04 to the side
    wider[0, left, 0] += 0.04  # 0.04 wider, one corner moved
    bank = np.concatenate([shifted, wider])
    np.testing.assert_allclose(mouth_width(bank), [0.5, 0.54])
    args = (target, np.zeros((1, 2)), np.array([0]), bank, np.zeros((2, 2)), np.array([5, 9]))
    assert B.choose_sources(*args, width_weight=0.0)[0] == 1  # nearer by shape
    assert B.choose_sources(*args, width_weight=1.0)[0] == 0  # as wide as the target

    run = np.repeat(target, 4, axis=0)  # bank 0-2: the input's own run, exactly the target's shape
    run[3, left, 0] += 0.01  # bank 3 (input frame 40): a little off by shape, but open
    targets = np.repeat(target, 3, axis=0)
    args = (targets, np.zeros((3, 2)), np.arange(3), run, np.zeros((4, 2)), np.array([0, 1, 2, 40]))
    openings, wanted = np.array([0.0, 0.0, 0.0, 0.1]), np.full(3, 0.1)
    assert (B.choose_sources(*args, switch_cost=0.02) < 3).all()  # the run (tied: any of it)
    fit = (openings, wanted, np.array([B.INPUT_UNFIT_COST] * 4))
    np.testing.assert_array_equal(B.choose_sources(*args, switch_cost=0.02, fit=fit), [3, 3, 3])
    fit = (openings, wanted, 0.0)  # no fit cost: shape alone keeps the run
    assert (B.choose_sources(*args, switch_cost=0.02, fit=fit, paint_cost=0.0) < 3).all()


def test_bank_leaves_a_shut_run_that_would_be_painted():
    """The open mouth lies 0.06 off by shape (3 frames + a switch: 0.20); the shut run, whose
    opening would be painted, costs 0.15 by the flat unfit cost and 0.225 with the paint cost (0.025)."""
    from lipdub.motion.shape import MOTION_POINTS

    target = np.zeros((1, len(MOTION_POINTS), 2))
    target[0, MOTION_POINTS.index(61), 0], target[0, MOTION_POINTS.index(291), 0] = -0.25, 0.25
    bank = np.repeat(target, 4, axis=0)
    bank[3, :, 1] += 0.06  # input frame 40: open, but 0.06 eye units off by shape
    args = (np.repeat(target, 3, axis=0), np.zeros((3, 2)), np.arange(3), bank, np.zeros((4, 2)), np.array([0, 1, 2, 40]))
    fit = (np.array([0.0, 0.0, 0.0, 0.1]), np.full(3, 0.1), B.INPUT_UNFIT_COST)
    assert (B.choose_sources(*args, switch_cost=0.02, fit=fit, paint_cost=0.0) < 3).all()
    assert B.PAINT_COST == 0.025
    np.testing.assert_array_equal(B.choose_sources(*args, switch_cost=0.02, fit=fit), [3, 3, 3])


def test_an_avoided_entry_is_lent_to_no_other_frame():
    """Bank entry 1 (input frame 1, its mouth covered) is the nearest shape for both output frames:
    frame 1 may still keep its own, frame 0 takes entry 0."""
    from lipdub.motion.shape import MOTION_POINTS

    rng = np.random.default_rng(0)
    target = rng.normal(0, 0.1, (1, len(MOTION_POINTS), 2))
    bank = np.concatenate([target + 0.05, target])
    args = (np.repeat(target, 2, axis=0), np.zeros((2, 2)), np.array([0, 1]), bank, np.zeros((2, 2)), np.array([0, 1]))
    np.testing.assert_array_equal(B.choose_sources(*args, switch_cost=0.0), [1, 1])
    avoid = np.array([False, True])
    np.testing.assert_array_equal(B.choose_sources(*args, switch_cost=0.0, avoid=avoid), [0, 1])
    assert B.AVOID_COST == 10.0


def test_repick_gives_a_painted_run_a_mouth_that_fits():
    """Bank 3 (input frame 40) is open but 0.3 eye units off by shape: the path keeps the shut own
    run (its unfit and paint costs are smaller than that distance), whose openings would be painted; the second
    pass, at `REPICK_COST`, takes the open mouth. Without one in the bank the first pick stays."""
    from lipdub.motion.shape import MOTION_POINTS

    target = np.zeros((1, len(MOTION_POINTS), 2))
    target[0, MOTION_POINTS.index(61), 0], target[0, MOTION_POINTS.index(291), 0] = -0.25, 0.25
    bank = np.repeat(target, 4, axis=0)
    bank[3, :, 1] += 0.3
    targets = np.repeat(target, 3, axis=0)
    openings, wanted = np.array([0.0, 0.0, 0.0, 0.1]), np.full(3, 0.1)

    def choose(start, stop, unfit_cost, paint_cost, openings=openings):
        return B.choose_sources(targets[start:stop], np.zeros((stop - start, 2)), np.arange(start, stop), bank,
                                np.zeros((4, 2)), np.array([0, 1, 2, 40]), switch_cost=0.02,
                                fit=(openings, wanted[start:stop], unfit_cost), paint_cost=paint_cost)

    first = choose(0, 3, B.INPUT_UNFIT_COST, B.PAINT_COST)
    assert (first < 3).all()
    assert B.REPICK_COST == 1.0
    again = B.repick_painted_runs(first, openings, wanted, lambda a, b, cost: choose(a, b, cost, cost))
    np.testing.assert_array_equal(again, [3, 3, 3])
    np.testing.assert_array_equal(first, choose(0, 3, B.INPUT_UNFIT_COST, B.PAINT_COST))  # not modified in place

    shut = np.zeros(4)  # no mouth in the bank fits: the first picks stay
    kept = B.repick_painted_runs(first, shut, wanted, lambda a, b, cost: choose(a, b, cost, cost, openings=shut))
    np.testing.assert_array_equal(kept, first)
    fitting = np.array([0.1, 0.1, 0.1, 0.1])  # nothing painted: choose_run is never called
    np.testing.assert_array_equal(B.repick_painted_runs(first, fitting, wanted, None), first)


def test_interior_alpha_known_values():
    """Painted in full below 0.35 of the target's opening, none from 0.7 of it, from `OPEN_ENOUGH`
    (0.05) or for a target of at most 0.02; element-wise on arrays."""
    from lipdub.render.interior import interior_alpha

    assert interior_alpha(0.0, 0.1) == 1.0 and interior_alpha(0.07, 0.1) == 0.0
    assert interior_alpha(0.0525, 0.1) == 0.0  # open enough: stretched, not painted
    assert interior_alpha(0.0, 0.02) == 0.0
    np.testing.assert_allclose(interior_alpha(np.array([[0.0], [0.03675]]), np.array([0.07, 0.015])),
                               [[1.0, 0.0], [0.5, 0.0]])


def test_patch_spool_round_trip():
    spool = B.PatchSpool()
    a = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    b = np.full((4, 1, 3), 9, np.uint8)
    pa, pb = spool.add(a, (1, 2)), spool.add(b, (5, 6))
    np.testing.assert_array_equal(spool.read(pb), b)
    np.testing.assert_array_equal(spool.read(pa), a)
    assert pa.origin == (1, 2)
    spool.close()


def test_surface_distances_walk_round_a_hole():
    from lipdub.render.mesh import surface_distances

    # A unit square ring with no edge across it: 0-1-2-3-0, and a far vertex 4 with no edge.
    layout = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [9.0, 9.0]])
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    d = surface_distances(layout, (0, 2), edges)
    np.testing.assert_allclose(d[0, :4], [0.0, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(d[1, :4], [2.0, 1.0, 0.0, 1.0])  # not sqrt(2): no edge crosses the middle
    assert np.isinf(d[:, 4]).all()


@pytest.fixture(scope="module")
def sample_layout():
    """The bundled sample photo's 478 Face Mesh points, eye-normalised (a real face's layout)."""
    import cv2

    from lipdub.face.detect import FaceDetector
    from lipdub.motion.shape import eye_normalised

    path = __import__("pathlib").Path(__file__).resolve().parents[1] / "lipdub" / "assets" / "sample_face.jpg"
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    with FaceDetector(max_faces=1, still_image=True) as detector:
        faces = detector.detect(image)
    assert faces and faces[0].landmarks is not None
    return eye_normalised(np.asarray(faces[0].landmarks, np.float64))


def test_opening_the_mouth_turns_no_lip_triangle_inside_out(sample_layout):
    """The lips' middle points follow their own lip, not the one across the opening."""
    from lipdub.engines.motion import displacement_weights
    from lipdub.motion import shape as S

    base = sample_layout[:468]
    mesh = build_mesh(base)
    followers, weights = displacement_weights(base, mesh.lower, S.MOTION_POINTS)
    shape = base[list(S.MOTION_POINTS)]
    opened = shape.copy()
    n = len(S.LIP_OUTER)
    for i in range(1, 10):  # lower lip (both contours) down 0.12, upper lip up 0.03 eye units mid-mouth
        taper = np.sin(np.pi * i / 10)  # ... and nothing at the corners
        opened[[i, n + i], 1] += 0.12 * taper
        opened[[20 - i, n + 20 - i], 1] -= 0.03 * taper
    opened[2 * n:, 1] += 0.08  # the jaw follows
    target = base.copy()
    target[list(S.MOTION_POINTS)] = opened
    target[followers] += weights @ (opened - shape)
    lips = np.array([t for t in mesh.surface if t.max() < 468 and set(t) & set(S.LIP_OUTER + S.LIP_INNER)])
    before, after = signed_areas(base, lips), signed_areas(target, lips)
    solid = np.abs(before) > 1e-4  # slivers thinner than that are not drawn as pixels anyway
    assert (np.sign(before) != np.sign(after))[solid].sum() == 0


def _grid():
    """A 3 x 3 grid of unit squares' corners (vertex 4 in the middle), two triangles a square."""
    xs, ys = np.meshgrid([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    points = np.c_[xs.ravel(), ys.ravel()]
    triangles = []
    for r in range(2):
        for c in range(2):
            a = 3 * r + c
            triangles += [(a, a + 1, a + 4), (a, a + 4, a + 3)]
    return points, np.array(triangles)


def test_unfold_puts_a_dragged_vertex_back_inside_its_neighbours():
    from lipdub.render.mesh import turned_over, unfold

    source, triangles = _grid()
    target = source.copy()
    target[4] = [2.5, 1.2]  # dragged past its right-hand neighbours: two triangles turn over
    assert turned_over(source, target, triangles).sum() == 2
    fixed = unfold(source, target, triangles, np.arange(9) == 4)
    np.testing.assert_allclose(fixed[4], [1.0, 1.0])  # every neighbour still: its source place
    assert not turned_over(source, fixed, triangles).any()
    np.testing.assert_array_equal(np.delete(fixed, 4, axis=0), np.delete(target, 4, axis=0))


def test_unfold_leaves_fold_free_targets_and_fixed_folds_alone():
    from lipdub.render.mesh import turned_over, unfold

    source, triangles = _grid()
    moved = source + np.array([[0.1, -0.05]]) * (source[:, :1] > 0.5)  # a shear: nothing turns over
    assert unfold(source, moved, triangles, np.ones(9, bool)) is not moved
    np.testing.assert_array_equal(unfold(source, moved, triangles, np.ones(9, bool)), moved)
    folded = source.copy()
    folded[4] = [2.5, 1.2]
    still = unfold(source, folded, triangles, np.zeros(9, bool))  # nothing may move
    np.testing.assert_array_equal(still, folded)
    assert turned_over(source, still, triangles).sum() == 2


def test_band_vertices_lie_just_above_the_nose_base(sample_layout):
    from lipdub.render.mesh import SUBNASALE, band_vertices, lower_vertices

    layout = sample_layout[:468]
    band, lower = band_vertices(layout), lower_vertices(layout)
    assert not (band & lower).any() and band.sum() > 10
    height = layout[152, 1] - layout[SUBNASALE, 1]
    assert (layout[band, 1] < layout[SUBNASALE, 1]).all()
    assert (layout[band, 1] >= layout[SUBNASALE, 1] - 0.3 * height).all()
    assert band[[98, 327]].all() or lower[[98, 327]].all()  # the alar base is covered either way
    assert not band[[6, 168, 33, 263, 133, 362]].any()  # the bridge and the eyes are not
    assert not band[[234, 454, 93, 323, 132, 361]].any()  # nor the cheeks' edges
    mesh = build_mesh(layout)
    face = mesh.surface[(mesh.surface < 468).all(axis=1)]  # not the ring strip
    assert (mesh.lower | mesh.band)[face].all()


def test_the_lifted_mask_is_full_at_the_nose_base(sample_layout):
    """Centred on the nose base, the mask's soft edge left half the frame's own pixels there
    (0.5); lifted by half its width it is full strength from the nose base down."""
    from lipdub.engines.motion import UNDER_NOSE, raised_outline
    from lipdub.face.blend import LOWER_FACE_OUTLINE, feathered_polygons

    points = sample_layout[:468] * 200.0 + 300.0  # pixels
    width = 0.18 * 200.0
    plain = feathered_polygons([points[list(LOWER_FACE_OUTLINE)]], (800, 800), width)
    lifted_outline = raised_outline(points, width / 2)
    lifted = feathered_polygons([lifted_outline], (800, 800), width)
    x, y = np.round(points[2]).astype(int)
    assert 0.3 < plain[y, x] < 0.7
    assert lifted[y, x] > 0.99
    np.testing.assert_array_equal(lifted_outline[:-UNDER_NOSE], points[list(LOWER_FACE_OUTLINE)][:-UNDER_NOSE])
    shift = lifted_outline[-UNDER_NOSE:] - points[list(LOWER_FACE_OUTLINE)][-UNDER_NOSE:]
    np.testing.assert_allclose(np.linalg.norm(shift, axis=1), width / 2)
    assert (shift[:, 1] < 0).all()  # up the image


def test_nose_fade_rises_from_the_nose_base_to_the_lips(sample_layout):
    """A hold frame's own layout is taken in full one falloff below the nose base, not at all at
    and above it (there the shown frame's, where the still band is)."""
    from lipdub.engines.motion import nose_fade

    layout = sample_layout[:468].copy()
    w = nose_fade(layout, falloff=0.12)
    assert w[2] == 0.0 and w[1] == 0.0 and w[33] == 0.0  # nose base, nose tip, an eye corner
    assert w[17] == 1.0 and w[152] == 1.0  # lower lip, chin
    probe = layout.copy()
    probe[0, 1] = probe[2, 1] + 0.06  # half a falloff below the nose base
    assert nose_fade(probe, falloff=0.12)[0] == pytest.approx(0.5)


def test_lip_colour_outer_half_ignores_teeth_inside_a_misplaced_inner_ring():
    """Lips red, a band of white teeth just outside the (tracked) inner ring: the whole band reads
    paler, its outer half reads the lips' own colour; `lip_band` moves the ring onto the segment."""
    import cv2

    from lipdub.render.interior import lip_band, lip_colour

    image = np.zeros((100, 200, 3), np.uint8)
    outer = np.array([[20, 50], [100, 10], [180, 50], [100, 90]], np.float64)
    inner = np.array([[60, 50], [100, 30], [140, 50], [100, 70]], np.float64)
    cv2.fillPoly(image, [outer.astype(np.int32)], (200, 60, 60))
    teeth = lip_band(outer, inner, 0.8)
    cv2.fillPoly(image, [teeth.astype(np.int32)], (250, 250, 250))
    np.testing.assert_allclose(lip_band(outer, inner, 0.5), (outer + inner) / 2)
    np.testing.assert_allclose(lip_band(outer, inner, 1.0), inner)
    whole, half = lip_colour(image, outer, inner), lip_colour(image, outer, inner, depth=0.5)
    assert whole[1] > 80  # enamel mixed in (lips alone: 60)
    np.testing.assert_allclose(half, (200, 60, 60), atol=1.0)


def test_anchored_inner_ring_keeps_the_source_gap_under_the_upper_lip():
    """Target: a ring 20 px tall (upper lip at y = 0, lower at y = 20); a source gap of 3 px at
    scale 2 puts the lower lip at y = 6, a source gap of 30 px stops at the target's own 20, and a
    crossed (shut) source lip stays on the upper lip. The corners and the upper lip never move."""
    from lipdub.render.interior import anchored_inner_ring

    x = np.linspace(-10, 10, 11)
    def ring(gap):
        lower = np.stack([x[1:10], np.full(9, gap)], axis=1)
        upper = np.stack([x[9:0:-1], np.zeros(9)], axis=1)
        return np.concatenate([[[-10.0, 0.0]], lower, [[10.0, 0.0]], upper])
    target = ring(20.0)
    out = anchored_inner_ring(target, ring(3.0), scale=2.0)
    np.testing.assert_allclose(out[1:10, 1], 6.0)
    np.testing.assert_allclose(out[1:10, 0], target[1:10, 0])
    np.testing.assert_array_equal(out[[0, 10]], target[[0, 10]])
    np.testing.assert_array_equal(out[11:], target[11:])
    np.testing.assert_allclose(anchored_inner_ring(target, ring(30.0), scale=1.0), target)
    np.testing.assert_allclose(anchored_inner_ring(target, ring(-2.0), scale=1.0)[1:10, 1], 0.0)


def test_painted_interior_shows_a_tongue_only_in_a_tall_opening():
    """A ring 20 px tall at an eye distance of 100 px (0.2 eye units) shows a lip-coloured tongue
    in its lower middle; 4 px tall (0.04, a slit), none: the lower middle stays dark cavity."""
    from lipdub.render.interior import paint_interior

    lips = np.array([200.0, 110.0, 100.0])
    x = np.linspace(-40, 40, 11)

    def ring(height):
        lower = np.stack([x[1:10], 50 + height * np.sin(np.pi * np.arange(1, 10) / 10)], axis=1)
        upper = np.stack([x[9:0:-1], np.full(9, 50.0)], axis=1)
        return np.concatenate([[[-40.0, 50.0]], lower, [[40.0, 50.0]], upper]) + [60.0, 0.0]

    patch = np.zeros((100, 120, 3), np.uint8)
    tall, _ = paint_interior(patch, (0, 0), ring(20.0), lips, 100.0)
    slit, _ = paint_interior(patch, (0, 0), ring(4.0), lips, 100.0)
    tongue = tall[66, 60].astype(float)  # 0.8 of the way down, mid-mouth
    assert tongue[0] > 0.5 * lips[0] and tongue[0] > tongue[2]  # lip-coloured, red above blue
    assert slit[53, 60, 0] < 0.35 * lips[0]  # a slit: cavity dark (or teeth), no tongue
    assert tall[51, 60].min() > 150  # under the upper lip: teeth, not tongue


def test_lip_source_samples_into_the_lips_as_the_mouth_opens_or_closes():
    """Inner contour 10 px from the outer one: opening a shut mouth (0 -> 0.1) samples 0.2 of the
    lip's thickness in (2 px), halfway open (0.05 -> 0.1) 1 px; closing 0.1 -> 0 samples 3 px in
    (`CLOSING_INSET` 0.3); an unchanged opening samples at the contour."""
    from lipdub.engines.motion import lip_source
    from lipdub.motion.shape import LIP_INNER, LIP_OUTER

    points = np.zeros((478, 2))
    points[list(LIP_OUTER), 1] = 0.0
    points[list(LIP_INNER), 1] = 10.0
    inner = list(LIP_INNER)
    np.testing.assert_allclose(lip_source(points, 0.0, 0.1)[inner, 1], 8.0)
    np.testing.assert_allclose(lip_source(points, 0.05, 0.1)[inner, 1], 9.0)
    np.testing.assert_allclose(lip_source(points, 0.1, 0.0)[inner, 1], 7.0)
    np.testing.assert_array_equal(lip_source(points, 0.1, 0.1), points)
    outer = list(LIP_OUTER)
    np.testing.assert_array_equal(lip_source(points, 0.0, 0.1)[outer], points[outer])


def test_paste_antialiased_blends_only_at_the_edge():
    """A 20 x 20 square of 200 pasted on 0: exactly 200 a few pixels in, partly the base on its
    edge pixels, and the base untouched outside; the overlay outside the mask (255) is never read."""
    from lipdub.render.warp import paste_antialiased

    base = np.zeros((40, 40, 3), np.uint8)
    overlay = np.full((40, 40, 3), 255, np.uint8)
    inside = np.zeros((40, 40), bool)
    inside[10:30, 10:30] = True
    overlay[inside] = 200
    out = paste_antialiased(base, overlay, inside)
    assert (out[12:28, 12:28] == 200).all()
    assert (out[~inside] == 0).all()
    assert 100 < out[20, 10, 0] < 200 and 100 < out[29, 20, 0] < 200  # the edge pixels, blended
    assert out.max() <= 200
    np.testing.assert_array_equal(paste_antialiased(base, overlay, np.zeros((40, 40), bool)), base)
