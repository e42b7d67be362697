"""Motion → any head mesh: a keypoint-driven deformation for meshes with no rig of their own.

A mesh (an OBJ/PLY/GLB head, a scan, a sculpt) with its 21 keypoint vertices picked moves by the
motion space's rule ``x = s · (c · R + δ) + t`` like every other face of the studio:

* :class:`FaceFrame` — the mesh's own face frame, read off its keypoints (the similarity that lays
  the documented mean face onto them): where its head pivot is, which of its axes are our x (the
  subject's left), y (up) and z (toward the viewer), and how many mesh units one face unit is. ``canonical`` gives the identity's
  canonical keypoints ``c`` in face units, as the generators and motion files want them.
* :class:`KeypointDeformer` — every vertex's offset is a weighted mix of the keypoints' offsets δ
  (normalized Gaussian weights in face units, fading to nothing away from the face; a keypoint's
  own vertex moves exactly as the keypoint), then the head turns, scales and moves rigidly.
  Two cuts keep the face's openings working: vertices above the lips' seam ignore the lower lip
  and the chin, those below it the upper lip, and each eyelid's keypoint pulls only its own side
  of the eye. A mesh whose lips are one closed surface (a sculpt, a sphere) is first **split
  along the seam** between the mouth corners (:func:`split_lips`), so opening the jaw opens the
  mouth instead of stretching a membrane across it. Blinks bring the upper lid's keypoint down to
  a closing line near the lower one (and the lower one up to it), carrying the lid skin around.
  Gaze is not shown: an arbitrary mesh has no eyeballs we know of.

Vectorized over frames: the weights are one (V, 21) matrix, a frame's offsets one product.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from studio.core.keypoints import (
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    MEAN_FACE,
    NUM_KEYPOINTS,
    eye_centers,
)
from studio.core.motion import (
    CHANNEL_INDEX,
    EXP,
    ROTATION,
    SCALE,
    TRANSLATION,
    rotation_matrices,
)
from studio.render.mesh.flame import keypoint_positions  # one definition for every mesh
from studio.render.portrait_rig import PULL_WIDTH, normalized_pull

#: Where a closed lid's margins meet, from the lower lid keypoint (0) to the upper one (1).
LID_CLOSING_LINE = 0.2

_UPPER_LIP_KEYS = ("lip_upper_center", "lip_upper_l", "lip_upper_r")
_LOWER_LIP_KEYS = ("lip_lower_center", "lip_lower_l", "lip_lower_r", "chin")
_EYES = (("lid_upper_l", "lid_lower_l", "eye.blink_l"), ("lid_upper_r", "lid_lower_r", "eye.blink_r"))


@dataclass(frozen=True)
class FaceFrame:
    """A mesh's face frame: ``pivot`` (3,) in mesh units, ``axes`` (3, 3) whose rows are our
    x, y, z in mesh coordinates, and ``unit`` — mesh units per face unit (the inter-ocular
    distance)."""

    pivot: np.ndarray
    axes: np.ndarray
    unit: float

    @classmethod
    def from_keypoints(cls, keypoints: np.ndarray) -> FaceFrame:
        """The frame of 21 keypoint positions (21, 3) in mesh coordinates, any orientation: the
        similarity transform that best lays the documented mean face onto them (least squares,
        Umeyama), so its axes, pivot and unit are the mean face's as this mesh places them."""
        k = np.asarray(keypoints, dtype=np.float64)
        if k.shape != (NUM_KEYPOINTS, 3) or not np.all(np.isfinite(k)):
            raise ValueError(f"expected 21 finite keypoint positions (21, 3), got {k.shape}")
        left, right = eye_centers(k)
        if np.linalg.norm(left - right) <= 1e-9 * max(1.0, float(np.abs(k).max())):
            raise ValueError("the keypoints' eyes coincide: the left and right lid keypoints must be apart")
        mean_face = MEAN_FACE - MEAN_FACE.mean(0)
        centred = k - k.mean(0)
        u, sigma, vt = np.linalg.svd(mean_face.T @ centred)
        d = np.sign(np.linalg.det(u @ vt))
        flip = np.diag([1.0, 1.0, d])
        axes = u @ flip @ vt  # rows: our x, y, z in mesh coordinates (mean_face @ axes ≈ centred / unit)
        unit = float((sigma * np.diag(flip)).sum() / (mean_face ** 2).sum())
        if unit <= 0.0:
            raise ValueError("the keypoints are degenerate: no face shape can be read off them")
        pivot = k.mean(0) - unit * (MEAN_FACE.mean(0) @ axes)
        return cls(pivot, axes, unit)

    def to_face(self, points: np.ndarray) -> np.ndarray:
        """Mesh coordinates (…, 3) → face units in the head frame."""
        return (np.asarray(points, dtype=np.float64) - self.pivot) @ self.axes.T / self.unit

    def to_mesh(self, points: np.ndarray) -> np.ndarray:
        """Face units (…, 3) → mesh coordinates."""
        return self.pivot + self.unit * (np.asarray(points, dtype=np.float64) @ self.axes)


class KeypointDeformer:
    """Deforms one mesh (vertices (V, 3), faces (F, 3), 21 keypoint vertex-id groups) by motion
    frames. If the lips are closed over, the mesh is split first: use :attr:`vertices`,
    :attr:`faces` and :attr:`keypoint_vertices` (they may differ from the input)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, keypoint_vertices):
        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        groups = [tuple(int(i) for i in ids) for ids in keypoint_vertices]
        if len(groups) != NUM_KEYPOINTS or any(not ids for ids in groups):
            raise ValueError(f"expected {NUM_KEYPOINTS} non-empty keypoint vertex groups, got {len(groups)}")
        if any(i < 0 or i >= len(v) for ids in groups for i in ids):
            raise ValueError(f"keypoint vertex ids must lie in 0 … {len(v) - 1}")
        lips = {KEYPOINT_INDEX["lip_upper_center"], KEYPOINT_INDEX["lip_lower_center"]}
        for a in range(NUM_KEYPOINTS):
            for b in range(a + 1, NUM_KEYPOINTS):
                if groups[a] == groups[b] and {a, b} != lips:
                    raise ValueError(f"keypoints {KEYPOINT_NAMES[a]} and {KEYPOINT_NAMES[b]} are the same "
                                     f"vertices {list(groups[a])}: pick a vertex of its own for each")
        self.frame = FaceFrame.from_keypoints(keypoint_positions(v, groups))
        v, f, groups, cut = split_lips(v, f, groups, self.frame)
        self.vertices = v.astype(np.float32)
        self.faces = f.astype(np.int32)
        self.keypoint_vertices = tuple(groups)
        self.rest = self.frame.to_face(v)  # (V, 3) face units
        self.canonical = keypoint_positions(self.rest, groups)  # (21, 3): the identity's c
        self.weights = _pull_weights(self.rest, self.canonical, groups, cut)  # (V, 21)

    def offsets(self, frames: np.ndarray) -> np.ndarray:
        """The keypoint offsets δ (T, 21, 3) of motion frames (T, 74), blinks included."""
        return offsets_with_blinks(frames, self.canonical)

    def deform(self, frames: np.ndarray) -> np.ndarray:
        """Vertex positions (T, V, 3) float32 in mesh coordinates for motion frames (T, 74)."""
        m = np.atleast_2d(np.asarray(frames, dtype=np.float64))
        delta = self.offsets(m)
        t = len(m)
        offsets = self.weights @ delta.transpose(1, 0, 2).reshape(NUM_KEYPOINTS, 3 * t)  # (V, 3T)
        offsets = offsets.reshape(len(self.rest), t, 3).transpose(1, 0, 2)
        rot = rotation_matrices(m[:, ROTATION.start], m[:, ROTATION.start + 1], m[:, ROTATION.start + 2])
        # The motion rule x = s · (c · R + δ) + t with row vectors (c · R = c · Mᵀ), for every vertex.
        face = m[:, SCALE, None, None] * (self.rest @ np.swapaxes(rot, 1, 2) + offsets) + m[:, None, TRANSLATION]
        return self.frame.to_mesh(face).astype(np.float32)


def offsets_with_blinks(frames: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """The keypoint offsets δ (T, 21, 3) of motion frames (T, 74) with each eye's blink added:
    the upper lid's keypoint brought down to the closing line near the lower one (and the lower
    one up to it), in proportion to ``eye.blink_*``."""
    m = np.atleast_2d(np.asarray(frames, dtype=np.float64))
    delta = m[:, EXP].reshape(len(m), NUM_KEYPOINTS, 3).copy()
    for up_key, low_key, channel in _EYES:
        up, low = KEYPOINT_INDEX[up_key], KEYPOINT_INDEX[low_key]
        blink = np.clip(m[:, CHANNEL_INDEX[channel]], 0.0, 1.0)[:, None]
        upper, lower = canonical[up] + delta[:, up], canonical[low] + delta[:, low]
        closing = lower + LID_CLOSING_LINE * (upper - lower)
        delta[:, up] += blink * (closing - upper)
        delta[:, low] += blink * (closing - lower)
    return delta


def _pull_weights(rest: np.ndarray, canonical: np.ndarray, groups, cut: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(V, 21) weights of each keypoint's offset in each vertex's offset, with the lip and lid
    cuts. ``cut`` holds the vertices of a split seam: the upper lip's and their lower twins."""
    d2 = ((rest[:, None, :] - canonical[None]) ** 2).sum(-1)
    kernel = np.exp(-d2 / PULL_WIDTH ** 2)
    above_mouth = _above_seam(rest, canonical, groups)
    above_mouth[cut[0]], above_mouth[cut[1]] = True, False
    for name in _LOWER_LIP_KEYS:
        kernel[above_mouth, KEYPOINT_INDEX[name]] = 0.0
    for name in _UPPER_LIP_KEYS:
        kernel[~above_mouth, KEYPOINT_INDEX[name]] = 0.0
    for up_key, low_key, _ in _EYES:
        up, low = canonical[KEYPOINT_INDEX[up_key]], canonical[KEYPOINT_INDEX[low_key]]
        middle = 0.5 * (up[1] + low[1])
        kernel[rest[:, 1] < middle, KEYPOINT_INDEX[up_key]] = 0.0
        kernel[rest[:, 1] >= middle, KEYPOINT_INDEX[low_key]] = 0.0
    weights = normalized_pull(kernel)
    for k, ids in enumerate(groups):
        weights[list(ids)] = 0.0
        weights[list(ids), k] = 1.0
    return weights


def _seam(canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lips' seam in face units: x and y of the right corner, the lip centre, the left corner."""
    i = KEYPOINT_INDEX
    centre = 0.5 * (canonical[i["lip_upper_center"]] + canonical[i["lip_lower_center"]])
    points = np.stack([canonical[i["mouth_corner_r"]], centre, canonical[i["mouth_corner_l"]]])
    return points[:, 0], points[:, 1]


def _seam_y(x: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    xs, ys = _seam(canonical)
    order = np.argsort(xs)
    return np.interp(x, xs[order], ys[order])


def _above_seam(rest: np.ndarray, canonical: np.ndarray, groups) -> np.ndarray:
    """Which vertices belong with the upper lip: above the seam, the upper-lip keypoints' own
    vertices always, the lower-lip ones never (vertices of a split seam coincide in space)."""
    above = rest[:, 1] > _seam_y(rest[:, 0], canonical)
    for name in _UPPER_LIP_KEYS:
        above[list(groups[KEYPOINT_INDEX[name]])] = True
    for name in _LOWER_LIP_KEYS:
        above[list(groups[KEYPOINT_INDEX[name]])] = False
    return above


def split_lips(vertices: np.ndarray, faces: np.ndarray, groups, frame: FaceFrame):
    """Cuts a mesh whose lips are one surface along the seam between the mouth corners.

    The cut follows the mesh's own edges: the shortest path from one mouth corner vertex to the
    other that stays close to the seam (through the lip centre). Its inner vertices are duplicated
    and the faces below the cut take the duplicates, so the lips can part; the corners stay shared.
    A mesh whose mouth is open (the lips' centres not joined by edges in the middle of the
    mouth) is returned as is.
    Returns ``(vertices, faces, groups, (upper, lower))``: the lower-lip keypoints that sat on the
    cut move to the duplicates; ``upper`` are the cut's vertices (the upper lip keeps them) and
    ``lower`` their duplicates (both empty when nothing was cut)."""
    uncut = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    rest = frame.to_face(vertices)
    canonical = keypoint_positions(rest, groups)
    i = KEYPOINT_INDEX
    corner_r, corner_l = canonical[i["mouth_corner_r"]], canonical[i["mouth_corner_l"]]
    x_lo, x_hi = sorted((corner_r[0], corner_l[0]))
    width = x_hi - x_lo
    if width <= 1e-9:
        return vertices, faces, groups, uncut
    seam_y = _seam_y(rest[:, 0], canonical)
    front_z = min(corner_r[2], corner_l[2]) - 0.5 * width  # the lips, not the back of the head
    near = (rest[:, 0] > x_lo - 0.02 * width) & (rest[:, 0] < x_hi + 0.02 * width) \
        & (np.abs(rest[:, 1] - seam_y) < 0.35 * width) & (rest[:, 2] > front_z)
    # Closed over? In the middle of the mouth (away from the corners, where the lips always
    # meet), the lips' centres are joined by the mesh's edges only if no opening parts them.
    middle = near & (np.abs(rest[:, 0] - 0.5 * (x_lo + x_hi)) < 0.3 * width)
    if not _connected(faces, middle, groups[i["lip_upper_center"]], groups[i["lip_lower_center"]]):
        return vertices, faces, groups, uncut

    start = groups[i["mouth_corner_r"]][0]
    goal = groups[i["mouth_corner_l"]][0]
    path = _seam_path(rest, faces, near, seam_y, start, goal, width)
    if path is None or len(path) < 3:
        return vertices, faces, groups, uncut
    cut = np.array(path[1:-1], dtype=np.int64)
    # Faces below the cut: every face touching a cut vertex whose centroid lies under the seam.
    touches = np.isin(faces, cut).any(1)
    centroid = rest[faces].mean(1)
    below = touches & (centroid[:, 1] < _seam_y(centroid[:, 0], canonical))
    duplicate = {int(v): len(vertices) + k for k, v in enumerate(cut)}
    faces = faces.copy()
    for row in np.flatnonzero(below):
        faces[row] = [duplicate.get(int(v), int(v)) for v in faces[row]]
    vertices = np.concatenate([vertices, vertices[cut]])
    groups = list(groups)
    for name in _LOWER_LIP_KEYS:
        groups[i[name]] = tuple(duplicate.get(int(v), int(v)) for v in groups[i[name]])
    return vertices, faces, groups, (cut, np.array([duplicate[int(v)] for v in cut], dtype=np.int64))


def _connected(faces: np.ndarray, allowed: np.ndarray, sources, targets) -> bool:
    """Whether any of ``sources`` reaches any of ``targets`` along mesh edges among ``allowed``
    vertices (sources and targets included)."""
    allowed = allowed.copy()
    allowed[list(sources)] = allowed[list(targets)] = True
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = edges[allowed[edges].all(1)]
    reached = np.zeros(len(allowed), bool)
    reached[list(sources)] = True
    while True:
        step = reached[edges]
        grow = np.concatenate([edges[step[:, 0] & ~step[:, 1], 1], edges[step[:, 1] & ~step[:, 0], 0]])
        if reached[list(targets)].any():
            return True
        if not len(grow):
            return False
        reached[grow] = True


def _seam_path(rest, faces, near, seam_y, start, goal, width):
    """Dijkstra over the mesh edges among ``near`` vertices, each edge costing its length plus a
    penalty for straying from the seam. Returns the vertex path or None."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = edges[near[edges].all(1)]
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    if not len(edges):
        return None
    stray = np.abs(rest[:, 1] - seam_y) / max(width, 1e-12)
    length = np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=1)
    cost = length * (1.0 + 40.0 * 0.5 * (stray[edges[:, 0]] + stray[edges[:, 1]]))
    neighbours: dict[int, list[tuple[int, float]]] = {}
    for (a, b), c in zip(edges.tolist(), cost.tolist()):
        neighbours.setdefault(a, []).append((b, c))
        neighbours.setdefault(b, []).append((a, c))
    best = {start: 0.0}
    previous: dict[int, int] = {}
    queue = [(0.0, start)]
    while queue:
        d, v = heapq.heappop(queue)
        if v == goal:
            path = [v]
            while v in previous:
                v = previous[v]
                path.append(v)
            return path[::-1]
        if d > best.get(v, np.inf):
            continue
        for u, c in neighbours.get(v, ()):
            if d + c < best.get(u, np.inf):
                best[u] = d + c
                previous[u] = v
                heapq.heappush(queue, (d + c, u))
    return None
