"""The triangle mesh the renderer warps: Face Mesh's own triangles over the lower face, plus a ring.

Why Face Mesh's own triangles (recovered from mediapipe's ``FACEMESH_TESSELATION`` edges as the
3-cliques of its edge graph) rather than a Delaunay triangulation of the points: the tessellation
follows the face's surface and leaves the mouth opening as a hole, so no triangle ever spans the
lips and a warp that opens the mouth cannot smear the lip line across the opening. The opening is
filled separately (`lipdub.render.interior`), fanned from the inner-lip ring's centre.

Why a ring: when the jaw drops, the chin moves over what was neck or background. A strip of
triangles between the face oval's lower half and a ring pushed `RING_SCALE` further out from the
nose (which stays put relative to the head) stretches or squeezes that band instead of leaving a
seam at the jaw line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lipdub.eval.mouth import LIP_INNER

# Face oval from the right cheek at nose height, round the chin, to the left cheek.
LOWER_OVAL: tuple[int, ...] = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378,
                               379, 365, 397, 288, 361, 323, 454)
NOSE_TIP = 1
SUBNASALE = 2
#: Ring distance beyond the oval, as a fraction of the oval point's distance from the nose tip.
RING_SCALE = 0.35
#: Height of the still band above the nose base (`band_vertices`), as a fraction of the nose base
#: to chin distance.
NOSE_BAND = 0.3
#: Outer mouth corners: the still band reaches sideways no further than they do, plus
#: `BAND_MARGIN` of the mouth's width on either side.
MOUTH_CORNERS = (61, 291)
BAND_MARGIN = 0.35
MESH_POINTS = 468


@lru_cache(maxsize=1)
def mesh_edges() -> np.ndarray:
    """(E, 2) int32 edges of the 468-point Face Mesh tessellation, each once, smaller id first."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    return np.array(sorted({tuple(sorted(edge)) for edge in FACEMESH_TESSELATION}), np.int32)


def surface_distances(layout: np.ndarray, sources: tuple[int, ...] | np.ndarray,
                      edges: np.ndarray | None = None) -> np.ndarray:
    """(len(sources), n) shortest-path distances over the mesh's edges, edge lengths from ``layout``.

    Why along the surface and not straight: the tessellation leaves the mouth opening as a hole,
    so from a point on the upper lip the lower lip is a walk round a mouth corner away (canonical
    upper-to-lower inner lip: 0.36 eye units along the mesh, 0.06 straight across). Anything that
    spreads a lip's motion to its neighbours by distance must not leak it across the opening.
    ``edges`` default to `mesh_edges`; vertices no edge reaches are at infinity.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    layout = np.asarray(layout, np.float64)
    edges = mesh_edges() if edges is None else np.asarray(edges, np.int64)
    n = len(layout)
    lengths = np.linalg.norm(layout[edges[:, 0]] - layout[edges[:, 1]], axis=1)
    graph = coo_matrix((np.maximum(lengths, 1e-12), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    return dijkstra(graph, directed=False, indices=np.asarray(sources, np.int64))


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """(F, 3) int32 triangles of the 468-point Face Mesh (3-cliques of its tessellation edges)."""
    edges = [tuple(edge) for edge in mesh_edges().tolist()]
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(triangles), np.int32)


def fan_triangles(ring: tuple[int, ...], centre: int) -> np.ndarray:
    """(len(ring), 3) triangles fanning a closed ring of vertex ids from a centre vertex id."""
    ring_ids = np.asarray(ring, np.int32)
    return np.stack([ring_ids, np.roll(ring_ids, -1), np.full_like(ring_ids, centre)], axis=1)


def strip_triangles(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Triangles joining two open polylines of vertex ids with the same length (a quad strip)."""
    inner, outer = np.asarray(inner, np.int32), np.asarray(outer, np.int32)
    first = np.stack([inner[:-1], inner[1:], outer[:-1]], axis=1)
    second = np.stack([outer[:-1], inner[1:], outer[1:]], axis=1)
    return np.concatenate([first, second])


@dataclass(frozen=True)
class WarpMesh:
    """Vertex ids of the warp: 0..467 Face Mesh, then the mouth centre, then the ring.

    ``surface``: lower-face triangles (no vertex above the still band over the nose line) + the
    ring strip; ``interior``: the mouth opening's fan. Build vertex arrays with `warp_vertices`.
    """

    surface: np.ndarray
    interior: np.ndarray
    lower: np.ndarray  # (468,) bool: mesh vertices the warp may move
    band: np.ndarray  # (468,) bool: the still band above them (`band_vertices`)

    @property
    def mouth_centre(self) -> int:
        return MESH_POINTS

    @property
    def ring_start(self) -> int:
        return MESH_POINTS + 1

    @property
    def vertex_count(self) -> int:
        return MESH_POINTS + 1 + len(LOWER_OVAL)


def lower_vertices(rest_layout: np.ndarray) -> np.ndarray:
    """(468,) bool: Face Mesh points at or below the nose base, judged on a (468+, 2) layout.

    "Below" is measured along the face's own vertical axis (eyes level at y = const), so the
    layout must be canonical (eye-normalised) or at least upright.
    """
    layout = np.asarray(rest_layout, np.float64)[:MESH_POINTS]
    return layout[:, 1] >= layout[SUBNASALE, 1] - 0.02 * abs(layout[152, 1] - layout[SUBNASALE, 1])


def band_vertices(rest_layout: np.ndarray, height: float = NOSE_BAND) -> np.ndarray:
    """(468,) bool: Face Mesh points above the nose base (not `lower_vertices`) by at most
    ``height`` x the nose base to chin distance, and sideways within the mouth corners plus
    `BAND_MARGIN` of the mouth's width: the nostrils, the lower nose and the skin beside them. Not
    the cheeks out to the face's edge, where a hold frame's hair and background would meet the
    frame's own in a seam (seen on woman_seated_vertical held through a pause).

    Why the warp covers them although they never move: a pause's hold frame (another input frame)
    lends the whole lower face, and the seam where its pixels give way to the frame's own must lie
    on skin both frames show alike. Ending at the nose base put that seam across a grimace's raised
    upper lip, and the frame's own lip showed through it as a ghost above the lip drawn. The band
    places the hold frame's nose onto the frame's own nose, and the fade happens there.
    """
    layout = np.asarray(rest_layout, np.float64)[:MESH_POINTS]
    reach = height * abs(layout[152, 1] - layout[SUBNASALE, 1])
    left, right = sorted((layout[MOUTH_CORNERS[0], 0], layout[MOUTH_CORNERS[1], 0]))
    margin = BAND_MARGIN * (right - left)
    between = (layout[:, 0] >= left - margin) & (layout[:, 0] <= right + margin)
    return ~lower_vertices(layout) & (layout[:, 1] >= layout[SUBNASALE, 1] - reach) & between


def build_mesh(rest_layout: np.ndarray) -> WarpMesh:
    """The warp mesh for one face, from an upright layout of its 468 points (its rest shape)."""
    lower = lower_vertices(rest_layout)
    band = band_vertices(rest_layout)
    triangles = mesh_triangles()
    keep = (lower | band)[triangles].all(axis=1)
    ring_ids = MESH_POINTS + 1 + np.arange(len(LOWER_OVAL))
    strip = strip_triangles(np.asarray(LOWER_OVAL), ring_ids)
    interior = fan_triangles(LIP_INNER, MESH_POINTS)
    return WarpMesh(np.concatenate([triangles[keep], strip]).astype(np.int32), interior.astype(np.int32), lower, band)


def warp_vertices(points: np.ndarray, mesh: WarpMesh, ring_from: np.ndarray | None = None) -> np.ndarray:
    """(vertex_count, 2) vertex positions: the 468 points, the mouth centre, the ring.

    The ring is placed from ``ring_from`` (default: ``points``): the target of a frame puts its ring
    where the *input frame's* face says, so the band beyond the jaw is anchored to the head, not to
    the moved jaw.
    """
    points = np.asarray(points, np.float64)[:MESH_POINTS]
    anchor = points if ring_from is None else np.asarray(ring_from, np.float64)[:MESH_POINTS]
    centre = points[list(LIP_INNER)].mean(axis=0, keepdims=True)
    return np.concatenate([points, centre, ring_points(anchor)])


def ring_points(points: np.ndarray) -> np.ndarray:
    """(len(LOWER_OVAL), 2) the ring beyond the jaw: each oval point pushed away from the nose tip."""
    points = np.asarray(points, np.float64)
    oval = points[list(LOWER_OVAL)]
    return oval + RING_SCALE * (oval - points[NOSE_TIP])


def signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F,) twice the signed area of each triangle (positive counter-clockwise in x-right, y-up;
    image coordinates flip the sign, which cancels when two layouts are compared)."""
    v = np.asarray(vertices, np.float64)[np.asarray(triangles, np.int64)]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]


def turned_over(source: np.ndarray, target: np.ndarray, triangles: np.ndarray, min_area: float = 1e-6) -> np.ndarray:
    """(F,) bool: triangles that face one way in ``source`` and the other (or collapse) in ``target``.

    Triangles that are already (nearly) degenerate in the source (|2 area| <= ``min_area``) are
    never counted: they have no side to turn over.
    """
    a_source, a_target = signed_areas(source, triangles), signed_areas(target, triangles)
    return (np.abs(a_source) > min_area) & (a_source * a_target <= 0)


def unfold(source: np.ndarray, target: np.ndarray, triangles: np.ndarray, movable: np.ndarray,
           iterations: int = 10) -> np.ndarray:
    """``target`` vertices with the ``movable`` ones of turned-over triangles put back on their side.

    A warp through a turned-over triangle draws its pixels mirrored over its neighbours': a dark
    sliver or a seam (on a grimace, the inner mouth corner lifted past the lip point beside it). In
    each turned-over triangle, a movable vertex is proposed where the similarity (rotation, scale,
    shift) that takes the triangle's other two vertices from ``source`` to ``target`` takes it: the
    triangle then has its source shape again, facing the right way. A vertex in several such
    triangles takes the mean of its proposals; the passes repeat while anything is turned over.
    Fixed vertices (the motion points, the ring, the still upper face) keep their targets: a
    triangle of fixed vertices only stays as it is. A pass is kept only if it leaves less turned-over
    area than before (moving a vertex can turn its other triangles), so the result is never worse
    than ``target``. Untouched when nothing is turned over (the usual frame), so identity warps
    stay exact.
    """
    source = np.asarray(source, np.float64)
    out = np.array(target, np.float64, copy=True)
    tri = np.asarray(triangles, np.int64)
    movable = np.asarray(movable, bool)
    bad = turned_over(source, out, tri)
    worst = _turned_area(source, out, tri, bad)
    for _ in range(iterations):
        if not bad.any():
            break
        total = np.zeros_like(out)
        count = np.zeros(len(out))
        for corner in range(3):
            faces = tri[bad & movable[tri[:, corner]]]
            if not len(faces):
                continue
            v, a, b = faces[:, corner], faces[:, (corner + 1) % 3], faces[:, (corner + 2) % 3]
            # Similarity a,b (source) -> a,b (target) as complex numbers: z -> a' + (z - a) * k.
            src_ab = _complex(source[b] - source[a])
            ok = np.abs(src_ab) > 1e-9
            k = np.where(ok, _complex(out[b] - out[a]) / np.where(ok, src_ab, 1.0), 1.0)
            proposal = _complex(out[a]) + _complex(source[v] - source[a]) * k
            np.add.at(total, v[ok], np.stack([proposal.real, proposal.imag], axis=1)[ok])
            np.add.at(count, v[ok], 1.0)
        moved = count > 0
        if not moved.any():
            break
        trial = out.copy()
        trial[moved] = total[moved] / count[moved, None]
        trial_bad = turned_over(source, trial, tri)
        area = _turned_area(source, trial, tri, trial_bad)
        if area >= worst:
            break
        out, bad, worst = trial, trial_bad, area
    return out


def _turned_area(source: np.ndarray, target: np.ndarray, triangles: np.ndarray, bad: np.ndarray) -> float:
    """Source area of the turned-over triangles plus their target area: what the warp gets wrong.

    The source part makes a collapsed triangle (target area 0) count; the target part, a large
    mirrored one.
    """
    if not bad.any():
        return 0.0
    faces = triangles[bad]
    return float(np.abs(signed_areas(source, faces)).sum() + np.abs(signed_areas(target, faces)).sum())


def _complex(xy: np.ndarray) -> np.ndarray:
    return xy[..., 0] + 1j * xy[..., 1]
