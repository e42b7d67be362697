"""The FLAME head model: shape, expression and pose blendshapes with linear blend skinning.

FLAME (Li et al. 2017) deforms a template mesh (5023 vertices, 9976 triangles in FLAME
2019/2020/2023) in three linear steps, then skins it with five joints:

1. ``v = v_template + shapedirs[..., :S] · shape + shapedirs[..., S:] · expression`` — identity
   (300 components in FLAME) and expression (the rest: 100 in FLAME 2020) blendshapes;
2. joints ``J = J_regressor · v`` (so they follow shape and expression);
3. pose correctives ``v += posedirs · vec(R_j − I)`` over the non-root joints (36 inputs for 4
   joints, each rotation matrix flattened row by row);
4. linear blend skinning: every vertex moves by the weighted sum of its joints' rigid motions
   along the kinematic tree (``parents``), then ``translation`` is added.

Joints (``JOINT_NAMES``): 0 global (the root, at the base of the neck), 1 neck (the head's
pivot), 2 jaw, 3 left eye, 4 right eye — the order of FLAME's ``pose`` vector (global, neck,
jaw, left eye, right eye; 3 axis-angle numbers each). FLAME axes: metres, +x the subject's left,
+y up, +z out of the face, the same axes as the studio's face frame. A jaw rotation about +x
by a positive angle opens the mouth.

:meth:`FlameModel.vertices` evaluates all frames at once with float32 matrix products (frames in
chunks that fit the cache, no loop per frame). The 21 keypoints of :mod:`studio.core.keypoints` sit
on FLAME vertices (``FLAME_VERTICES``); the cheeks have none and are the vertex nearest to the
mean face's cheek point once the other 19 keypoints are aligned to the mesh
(:func:`flame_keypoint_vertices`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from studio.core.keypoints import (
    FLAME_VERTICES,
    KEYPOINT_NAMES,
    MEAN_FACE,
    NUM_KEYPOINTS,
)

__all__ = [
    "FLAME_NUM_FACES",
    "FLAME_NUM_VERTICES",
    "FLAME_SHAPE_COMPONENTS",
    "JOINT_NAMES",
    "FlameModel",
    "flame_keypoint_vertices",
    "keypoint_positions",
    "rodrigues",
    "similarity_transform",
]

FLAME_NUM_VERTICES = 5023
FLAME_NUM_FACES = 9976
#: Identity components of FLAME; the components of ``shapedirs`` past them are expressions.
FLAME_SHAPE_COMPONENTS = 300
JOINT_NAMES: tuple[str, ...] = ("global", "neck", "jaw", "eye_l", "eye_r")
#: Frames deformed together: (chunk, V, 12) float32 blend matrices stay within a few MB.
_CHUNK_FRAMES = 32


# --- small geometry helpers -------------------------------------------------------------------

def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (…, 3, 3) of axis-angle vectors (…, 3) (angle = the vector's length).

    Exact at zero: ``sin θ/θ`` and ``(1 − cos θ)/θ²`` switch to their Taylor series below 1e-4.
    """
    r = np.asarray(axis_angle)
    dtype = np.float64 if r.dtype == np.float64 else np.float32
    r = r.astype(dtype, copy=False)
    theta_sq = np.einsum("...i,...i->...", r, r)
    theta = np.sqrt(theta_sq)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta_sq / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta_sq / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(r.shape[:-1] + (3, 3))
    eye = np.eye(3, dtype=dtype)
    return (eye + a[..., None, None] * k + b[..., None, None] * (k @ k)).astype(dtype, copy=False)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama 1991) mapping ``source`` (N, 3) onto ``target`` (N, 3).

    Returns ``(scale, rotation, translation)`` with ``target ≈ scale · source @ rotation.T +
    translation``; the rotation is proper (det +1), never a reflection.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or src.shape[0] < 3:
        raise ValueError(f"expected two (N ≥ 3, 3) point sets of one shape; got {src.shape} and {dst.shape}")
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    centred_src, centred_dst = src - mean_src, dst - mean_dst
    variance = float(np.sum(centred_src**2)) / len(src)
    if variance < 1e-24:
        raise ValueError("degenerate source points: they all coincide")
    u, singular, vt = np.linalg.svd(centred_dst.T @ centred_src / len(src))
    signs = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[2] = -1.0
    rotation = u @ np.diag(signs) @ vt
    scale = float(np.sum(singular * signs)) / variance
    translation = mean_dst - scale * rotation @ mean_src
    return scale, rotation, translation


# --- keypoints on FLAME-topology meshes -------------------------------------------------------

_CHEEKS = ("cheek_l", "cheek_r")


def flame_keypoint_vertices(template: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Vertex ids of the 21 keypoints (``KEYPOINT_NAMES`` order) on a FLAME-topology mesh.

    19 come from ``FLAME_VERTICES``; each cheek is the vertex of ``template`` (V, 3) nearest to
    the mean face's cheek point after the similarity that best maps the mean face's other 19
    keypoints onto the mesh's.
    """
    vertices = np.asarray(template, dtype=np.float64)
    largest_id = max(i for ids in FLAME_VERTICES.values() for i in ids)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] <= largest_id:
        raise ValueError(f"a FLAME-topology mesh has (≥{largest_id + 1}, 3) vertices; got {vertices.shape}")
    known = [i for i, name in enumerate(KEYPOINT_NAMES) if name not in _CHEEKS]
    mesh_points = np.array([vertices[list(FLAME_VERTICES[KEYPOINT_NAMES[i]])].mean(axis=0) for i in known])
    scale, rotation, translation = similarity_transform(MEAN_FACE[known], mesh_points)
    result = []
    for name in KEYPOINT_NAMES:
        if name in _CHEEKS:
            point = scale * rotation @ MEAN_FACE[KEYPOINT_NAMES.index(name)] + translation
            result.append((int(np.argmin(np.sum((vertices - point) ** 2, axis=1))),))
        else:
            result.append(tuple(int(i) for i in FLAME_VERTICES[name]))
    return tuple(result)


@lru_cache(maxsize=32)
def _keypoint_gather(keypoint_vertices: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(ids) for ids in keypoint_vertices)
    ids = np.zeros((len(keypoint_vertices), width), dtype=np.int64)
    weights = np.zeros((len(keypoint_vertices), width), dtype=np.float32)
    for k, vertex_ids in enumerate(keypoint_vertices):
        ids[k, : len(vertex_ids)] = vertex_ids
        weights[k, : len(vertex_ids)] = 1.0 / len(vertex_ids)
    return ids, weights


def check_keypoint_vertices(keypoint_vertices: object, num_vertices: int) -> tuple[tuple[int, ...], ...]:
    """``keypoint_vertices`` as 21 non-empty tuples of vertex ids below ``num_vertices``, or ValueError."""
    if not isinstance(keypoint_vertices, Sequence) or len(keypoint_vertices) != NUM_KEYPOINTS:
        raise ValueError(f"expected {NUM_KEYPOINTS} keypoints' vertex ids, got {keypoint_vertices!r:.80}")
    result = []
    for name, ids in zip(KEYPOINT_NAMES, keypoint_vertices):
        ids = tuple(ids) if isinstance(ids, Sequence) else (ids,)
        if not ids or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"keypoint {name}: expected vertex ids (integers), got {ids!r}")
        if any(i < 0 or i >= num_vertices for i in ids):
            raise ValueError(f"keypoint {name}: vertex ids {ids} outside 0…{num_vertices - 1}")
        result.append(tuple(int(i) for i in ids))
    return tuple(result)


def keypoint_positions(vertices: np.ndarray, keypoint_vertices: Sequence[Sequence[int]]) -> np.ndarray:
    """Keypoints (…, 21, 3) of meshes (…, V, 3): the mean of each keypoint's vertices."""
    v = np.asarray(vertices)
    key = tuple(tuple(int(i) for i in ids) for ids in keypoint_vertices)
    ids, weights = _keypoint_gather(key)
    gathered = v[..., ids, :]  # (…, 21, L, 3)
    return np.einsum("...kld,kl->...kd", gathered, weights.astype(gathered.dtype, copy=False))


# --- the model --------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class FlameModel:
    """A FLAME-format head model (float32 arrays); build it with :meth:`from_arrays`.

    ``V`` vertices, ``S`` shape and ``E`` expression components, ``J`` joints (5 in FLAME),
    ``P = 9 (J − 1)`` pose-corrective inputs. The arrays are read-only.
    """

    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, S)
    exprdirs: np.ndarray  # (V, 3, E)
    posedirs: np.ndarray  # (V, 3, P)
    j_regressor: np.ndarray  # (J, V)
    weights: np.ndarray  # (V, J)
    parents: tuple[int, ...]  # (J,), −1 for the root
    faces: np.ndarray  # (F, 3) int32
    keypoint_vertices: tuple[tuple[int, ...], ...]
    name: str = "FLAME"
    # Derived layouts for fast evaluation (computed in __post_init__).
    _expr_matrix: np.ndarray = field(init=False, repr=False)  # (E, 3V), coordinate-major
    _pose_matrix: np.ndarray = field(init=False, repr=False)  # (P, 3V), coordinate-major
    _joint_expr_matrix: np.ndarray = field(init=False, repr=False)  # (E, 3J)
    _weights_t: np.ndarray = field(init=False, repr=False)  # (J, V)

    def __post_init__(self) -> None:
        num_vertices = self.v_template.shape[0]
        num_joints = self.j_regressor.shape[0]
        expected = {
            "v_template": (num_vertices, 3),
            "shapedirs": (num_vertices, 3, self.shapedirs.shape[-1]),
            "exprdirs": (num_vertices, 3, self.exprdirs.shape[-1]),
            "posedirs": (num_vertices, 3, 9 * (num_joints - 1)),
            "j_regressor": (num_joints, num_vertices),
            "weights": (num_vertices, num_joints),
        }
        for key, shape in expected.items():
            value = getattr(self, key)
            if value.shape != shape:
                raise ValueError(f"{self.name}: {key} has shape {value.shape}, expected {shape}")
            object.__setattr__(self, key, _frozen(value, np.float32))
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"{self.name}: faces have shape {self.faces.shape}, expected (F, 3)")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= num_vertices):
            raise ValueError(f"{self.name}: faces index vertices outside 0…{num_vertices - 1}")
        object.__setattr__(self, "faces", _frozen(self.faces, np.int32))
        parents = tuple(int(p) for p in self.parents)
        if len(parents) != num_joints or parents[0] != -1 or any(
                not 0 <= p < j for j, p in enumerate(parents) if j > 0):
            raise ValueError(f"{self.name}: parents {parents} must start with the root (−1) and name "
                             "only earlier joints")
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "keypoint_vertices",
                           check_keypoint_vertices(self.keypoint_vertices, num_vertices))
        # Coordinate-major layouts (x of all vertices, then y, then z) keep the skinning's
        # per-coordinate arithmetic on contiguous rows.
        flat = 3 * num_vertices
        object.__setattr__(self, "_expr_matrix", _frozen(
            self.exprdirs.transpose(2, 1, 0).reshape(-1, flat), np.float32))
        object.__setattr__(self, "_pose_matrix", _frozen(
            self.posedirs.transpose(2, 1, 0).reshape(-1, flat), np.float32))
        object.__setattr__(self, "_weights_t", _frozen(self.weights.T, np.float32))
        joint_expr = np.einsum("jv,vce->jce", self.j_regressor.astype(np.float64),
                               self.exprdirs.astype(np.float64))
        object.__setattr__(self, "_joint_expr_matrix", _frozen(
            joint_expr.reshape(3 * num_joints, -1).T, np.float32))

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        *,
        num_shape: int | None = None,
        num_expression: int | None = None,
        keypoint_vertices: Sequence[Sequence[int]] | None = None,
        name: str = "FLAME",
    ) -> FlameModel:
        """A model from the dict of :func:`studio.io.flame_pickle.load_flame_arrays`.

        ``shapedirs`` (V, 3, K) is split into ``num_shape`` identity components and
        ``num_expression`` expression components after them. Defaults: FLAME's 300 identity
        components when K > 300, else three quarters of K (FLAME's 300 : 100 ratio);
        expressions are everything after the identity components.

        ``keypoint_vertices`` defaults to :func:`flame_keypoint_vertices` on a FLAME-sized
        template; a smaller model without them gets, per keypoint, the vertex nearest to the mean
        face stretched over the template's bounding box (a rough placement for test models).
        """
        shapedirs = np.asarray(arrays["shapedirs"])
        total = shapedirs.shape[-1]
        if num_shape is None:
            num_shape = FLAME_SHAPE_COMPONENTS if total > FLAME_SHAPE_COMPONENTS else (3 * total) // 4
        if num_expression is None:
            num_expression = total - num_shape
        if num_shape < 0 or num_expression < 0 or num_shape + num_expression > total:
            raise ValueError(f"{name}: {num_shape} shape + {num_expression} expression components do "
                             f"not fit the {total} of shapedirs")
        v_template = np.asarray(arrays["v_template"])
        parents = tuple(int(p) for p in np.asarray(arrays["kintree_table"])[0])
        parents = tuple(-1 if p < 0 or p >= 2**31 else p for p in parents)
        return cls(
            v_template=v_template,
            shapedirs=shapedirs[..., :num_shape],
            exprdirs=shapedirs[..., num_shape:num_shape + num_expression],
            posedirs=np.asarray(arrays["posedirs"]),
            j_regressor=np.asarray(arrays["J_regressor"]),
            weights=np.asarray(arrays["weights"]),
            parents=parents,
            faces=np.asarray(arrays["f"]),
            keypoint_vertices=(_default_keypoints(v_template) if keypoint_vertices is None
                               else tuple(tuple(ids) for ids in keypoint_vertices)),
            name=name,
        )

    def with_template(self, v_template: np.ndarray, name: str | None = None) -> FlameModel:
        """The same model on another template of FLAME topology (a VOCA subject, a scan fit).

        On a FLAME-sized template the keypoint cheeks are chosen again; otherwise the keypoint
        vertices stay.
        """
        v_template = np.asarray(v_template)
        keypoints = (flame_keypoint_vertices(v_template) if _is_flame_sized(v_template)
                     else self.keypoint_vertices)
        return dataclasses.replace(self, v_template=v_template, keypoint_vertices=keypoints,
                                   name=self.name if name is None else name)

    # --- sizes -----------------------------------------------------------------------------

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_joints(self) -> int:
        return self.j_regressor.shape[0]

    @property
    def num_shape(self) -> int:
        return self.shapedirs.shape[-1]

    @property
    def num_expression(self) -> int:
        return self.exprdirs.shape[-1]

    # --- evaluation ------------------------------------------------------------------------

    def shaped_template(self, shape: np.ndarray | None = None) -> np.ndarray:
        """The template (V, 3) with identity ``shape`` (s ≤ S,) applied; no expression, no pose."""
        if shape is None:
            return self.v_template.copy()
        coefficients = self._coefficients(shape, self.num_shape, "shape")
        return (self.v_template + self.shapedirs[..., : coefficients.size] @ coefficients).astype(np.float32)

    def rest_joints(self, shape: np.ndarray | None = None) -> np.ndarray:
        """Joint locations (J, 3) of the shaped template at rest (no expression)."""
        return (self.j_regressor @ self.shaped_template(shape)).astype(np.float32)

    def vertices(
        self,
        expression: np.ndarray,
        pose: np.ndarray | None = None,
        shape: np.ndarray | None = None,
        translation: np.ndarray | None = None,
    ) -> np.ndarray:
        """Deformed meshes (T, V, 3) float32, all frames at once.

        ``expression`` (T, e) with e ≤ E uses the first e expression components; ``pose``
        (T, J, 3) axis-angle per joint (``JOINT_NAMES`` order; None: rest); ``shape`` (s ≤ S,)
        identity coefficients shared by all frames (None: the template); ``translation`` (T, 3)
        added last (None: none).
        """
        expression = np.asarray(expression, dtype=np.float32)
        if expression.ndim != 2 or expression.shape[1] > self.num_expression:
            raise ValueError(f"expression must be (T, e ≤ {self.num_expression}); got {expression.shape}")
        _check_finite(expression, "expression")
        frames, num_coefficients = expression.shape
        num_joints = self.num_joints
        if pose is None:
            pose = np.zeros((frames, num_joints, 3), dtype=np.float32)
        pose = np.asarray(pose, dtype=np.float32)
        if pose.shape != (frames, num_joints, 3):
            raise ValueError(f"pose must be ({frames}, {num_joints}, 3) axis-angle; got {pose.shape}")
        _check_finite(pose, "pose")
        if translation is not None:
            translation = np.asarray(translation, dtype=np.float32)
            if translation.shape != (frames, 3):
                raise ValueError(f"translation must be ({frames}, 3); got {translation.shape}")
            _check_finite(translation, "translation")

        base = self.shaped_template(shape)  # (V, 3)
        base_flat = np.ascontiguousarray(base.T).reshape(-1)  # coordinate-major (3V,)
        base_joints = (self.j_regressor @ base).reshape(-1)  # (3J,)
        expr_matrix = self._expr_matrix[:num_coefficients]
        joint_expr = self._joint_expr_matrix[:num_coefficients]
        out = np.empty((frames, self.num_vertices, 3), dtype=np.float32)
        for start in range(0, frames, _CHUNK_FRAMES):
            chunk = slice(start, min(frames, start + _CHUNK_FRAMES))
            out[chunk] = self._skin_chunk(expression[chunk], pose[chunk], base_flat, base_joints,
                                          expr_matrix, joint_expr)
        if translation is not None:
            out += translation[:, None, :]
        return out

    def _skin_chunk(self, expression, pose, base_flat, base_joints, expr_matrix, joint_expr) -> np.ndarray:
        frames = expression.shape[0]
        num_vertices, num_joints = self.num_vertices, self.num_joints
        posed = expression @ expr_matrix  # (t, 3V), coordinate-major
        posed += base_flat
        joints = (expression @ joint_expr + base_joints).reshape(frames, num_joints, 3)
        rotations = rodrigues(pose)  # (t, J, 3, 3)
        if num_joints > 1:
            features = (rotations[:, 1:] - np.eye(3, dtype=np.float32)).reshape(frames, -1)
            posed += features @ self._pose_matrix
        # Global rigid transforms along the kinematic tree (a loop over the few joints).
        world_r = np.empty_like(rotations)
        world_t = np.empty((frames, num_joints, 3), dtype=np.float32)
        for j, parent in enumerate(self.parents):
            if parent < 0:
                world_r[:, j] = rotations[:, j]
                world_t[:, j] = joints[:, j]
            else:
                world_r[:, j] = world_r[:, parent] @ rotations[:, j]
                offset = joints[:, j] - joints[:, parent]
                world_t[:, j] = np.einsum("tab,tb->ta", world_r[:, parent], offset) + world_t[:, parent]
        # Relative to the rest pose: x ↦ R_world (x − J) + t_world.
        world_t -= np.einsum("tjab,tjb->tja", world_r, joints)
        transforms = np.concatenate([world_r, world_t[..., None]], axis=-1).reshape(frames, num_joints, 12)
        # Per-vertex blended 3×4 transforms, one contiguous (t, V) row per matrix entry.
        blended = np.matmul(transforms.transpose(0, 2, 1), self._weights_t)  # (t, 12, V)
        points = posed.reshape(frames, 3, num_vertices)
        result = np.empty((frames, num_vertices, 3), dtype=np.float32)
        term = np.empty((frames, num_vertices), dtype=np.float32)
        for row in range(3):
            coordinate = blended[:, 4 * row + 3].copy()
            for column in range(3):
                np.multiply(blended[:, 4 * row + column], points[:, column], out=term)
                coordinate += term
            result[:, :, row] = coordinate
        return result

    def keypoints(self, vertices: np.ndarray) -> np.ndarray:
        """The 21 keypoints (…, 21, 3) of meshes (…, V, 3) of this model."""
        return keypoint_positions(vertices, self.keypoint_vertices)

    def _coefficients(self, values: np.ndarray, limit: int, what: str) -> np.ndarray:
        coefficients = np.asarray(values, dtype=np.float32)
        if coefficients.ndim != 1 or coefficients.size > limit:
            raise ValueError(f"{what} must be (s ≤ {limit},); got {coefficients.shape}")
        _check_finite(coefficients, what)
        return coefficients


def _default_keypoints(v_template: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """FLAME keypoints when the template is large enough for FLAME's ids, else the nearest
    vertices to the mean face placed on the template's bounding box (small synthetic models)."""
    vertices = np.asarray(v_template, dtype=np.float64)
    if _is_flame_sized(vertices):
        return flame_keypoint_vertices(vertices)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    extent = np.where(high > low, high - low, 1.0)
    face_low, face_high = MEAN_FACE.min(axis=0), MEAN_FACE.max(axis=0)
    placed = low + (MEAN_FACE - face_low) / np.where(face_high > face_low, face_high - face_low, 1.0) * extent
    nearest = np.argmin(((placed[:, None, :] - vertices[None]) ** 2).sum(-1), axis=1)
    return tuple((int(i),) for i in nearest)


def _is_flame_sized(vertices: np.ndarray) -> bool:
    """Whether a template has a vertex for every id of ``FLAME_VERTICES``."""
    largest_id = max(i for ids in FLAME_VERTICES.values() for i in ids)
    return vertices.ndim == 2 and vertices.shape[0] > largest_id


def _frozen(array: np.ndarray, dtype) -> np.ndarray:
    result = np.ascontiguousarray(array, dtype=dtype)
    if result is array or np.may_share_memory(result, array):
        result = result.copy()
    result.flags.writeable = False
    return result


def _check_finite(array: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
