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

    ``surface``: lower-face triangles (no vertex above the nose line) + the ring strip;
    ``interior``: the mouth opening's fan. Build vertex arrays with `warp_vertices`.
    """

    surface: np.ndarray
    interior: np.ndarray
    lower: np.ndarray  # (468,) bool: mesh vertices the warp may move

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


def build_mesh(rest_layout: np.ndarray) -> WarpMesh:
    """The warp mesh for one face, from an upright layout of its 468 points (its rest shape)."""
    lower = lower_vertices(rest_layout)
    triangles = mesh_triangles()
    keep = lower[triangles].all(axis=1)
    ring_ids = MESH_POINTS + 1 + np.arange(len(LOWER_OVAL))
    strip = strip_triangles(np.asarray(LOWER_OVAL), ring_ids)
    interior = fan_triangles(LIP_INNER, MESH_POINTS)
    return WarpMesh(np.concatenate([triangles[keep], strip]).astype(np.int32), interior.astype(np.int32), lower)


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
