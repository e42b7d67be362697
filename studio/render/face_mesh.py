"""The MediaPipe FaceMesh topology the portrait renderer builds on: landmark groups and triangles.

FaceMesh (0.10.21, with ``refine_landmarks``) gives 478 landmarks: 468 on the face surface and
two irises of 5 (centre first). ``_l``/``_r`` follow the keypoint convention of
:mod:`studio.core.keypoints`: the subject's own left appears on the image right. Every ring below
is ordered from the subject's right corner to the left one (image left to right), so the upper
and lower contour of a lip or lid can be paired point by point along it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

NUM_LANDMARKS = 478
NUM_SURFACE = 468  # the irises come after the face surface

# Lips: outer and inner contours, each from the right mouth corner (61/78) to the left (291/308).
LIP_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIP_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIP_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIP_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)

# Eyelid margins, from the outer corner to the inner one for the right eye (image left) and from
# the inner corner to the outer one for the left eye: both run image-left to image-right.
EYE_R_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_R_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_L_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_L_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)

# Irises: centre, then four points on the rim.
IRIS_R = (468, 469, 470, 471, 472)
IRIS_L = (473, 474, 475, 476, 477)

# The face outline, clockwise in the image from the top of the forehead.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def ring(upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """A closed contour: the upper curve left to right, then the lower one back (corners once)."""
    return np.array(list(upper) + list(lower[-2:0:-1]), dtype=np.int64)


LIP_INNER_RING = ring(LIP_INNER_UPPER, LIP_INNER_LOWER)
EYE_R_RING = ring(EYE_R_UPPER, EYE_R_LOWER)
EYE_L_RING = ring(EYE_L_UPPER, EYE_L_LOWER)


def _tessellation() -> frozenset:
    """FaceMesh's published tessellation (its edge list), read from mediapipe's own data module
    without importing the mediapipe package: that import loads TensorFlow Lite and matplotlib and
    holds the GIL for tens of milliseconds, which the desktop application (building a renderer
    beside its GUI thread) must not pay. Falls back to the ordinary import."""
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")  # finds the package without running it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "python" / "solutions" / "face_mesh_connections.py"
        if path.is_file():
            module_spec = importlib.util.spec_from_file_location("_studio_face_mesh_connections", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module.FACEMESH_TESSELATION
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    return FACEMESH_TESSELATION


@cache
def surface_triangles() -> np.ndarray:
    """The face surface as (F, 3) landmark triangles, read off FaceMesh's published tessellation
    (its edge list: every 3-clique of edges is a triangle). The mouth and the eyes are holes."""
    edges = {tuple(sorted(e)) for e in _tessellation()}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(triangles), dtype=np.int64)


@cache
def rings_from_outline() -> np.ndarray:
    """Each landmark's ring (NUM_LANDMARKS,): its number of tessellation edges from the
    face outline (0 on ``FACE_OVAL``); the irises, not on the surface, get −1."""
    triangles = surface_triangles()
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    rings = np.full(NUM_LANDMARKS, -1, dtype=np.int64)
    rings[list(FACE_OVAL)] = 0
    frontier, ring = np.array(FACE_OVAL), 0
    while len(frontier):
        ring += 1
        step = np.isin(edges, frontier)
        reached = np.unique(np.concatenate([edges[step[:, 0], 1], edges[step[:, 1], 0]]))
        frontier = reached[rings[reached] < 0]
        rings[frontier] = ring
    return rings


def strip_triangles(upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """Triangles filling the opening between two contours that share their end points (a mouth
    or an eye): a strip of quads split along the diagonal, corners as fans."""
    tris = []
    n = len(upper)
    for i in range(n - 1):
        a, b, c, d = upper[i], upper[i + 1], lower[i], lower[i + 1]
        if i == 0:  # a == c: the corner
            tris.append((a, b, d))
        elif i == n - 2:  # b == d
            tris.append((a, b, c))
        else:
            tris.append((a, b, d))
            tris.append((a, d, c))
    return np.array(tris, dtype=np.int64)
