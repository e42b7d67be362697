"""Head meshes from files: FLAME models, VOCA templates and any OBJ/PLY/GLB/glTF/STL head.

:func:`load_head_mesh` turns a file into a :class:`HeadMesh` — vertices, triangles, the vertex ids
of the 21 keypoints (:mod:`studio.core.keypoints`) and, for FLAME heads, the
:class:`~studio.render.mesh.flame.FlameModel` that animates them:

* ``.pkl`` / ``.npz`` — a FLAME model (read by :mod:`studio.io.flame_pickle`, never with plain
  pickle): its template in FLAME topology, with the model;
* a mesh of exactly 5023 vertices and 9976 triangles — a VOCA-style template in FLAME topology;
  keypoints are automatic; with ``flame_model=`` (a model file or a loaded
  :class:`~studio.render.mesh.flame.FlameModel`) the template replaces the model's ``v_template``;
* any other ``.obj/.ply/.glb/.gltf/.stl`` — read with trimesh, vertex order kept (``process=False``;
  scenes are flattened with their node transforms, in order); keypoints come from a JSON file
  (:func:`read_keypoint_vertices_json`). STL stores no shared vertices: coincident corners are
  merged, in order of first appearance.

Every problem — a missing file, an unknown extension, a damaged file, a point cloud with no
triangles, NaN/inf coordinates, triangles naming missing vertices, an empty mesh, a bad keypoint
file — raises :class:`MeshLoadError` (a ``ValueError``) naming the file and what is wrong.

Keypoint vertex files (``*.json``) map each of the 21 keypoint names to a vertex id or a list of
vertex ids whose mean is the keypoint: ``{"nose_tip": 123, "lid_upper_l": [40, 41], ...}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from studio.core.safe_io import atomic_write
from studio.render.mesh.flame import (
    FLAME_NUM_FACES,
    FLAME_NUM_VERTICES,
    FlameModel,
    check_keypoint_vertices,
    flame_keypoint_vertices,
    keypoint_positions,
)

__all__ = [
    "FLAME_MODEL_EXTENSIONS",
    "MAX_MESH_FILE_BYTES",
    "MESH_EXTENSIONS",
    "HeadMesh",
    "MeshLoadError",
    "load_flame_model",
    "load_head_mesh",
    "read_keypoint_vertices_json",
    "write_keypoint_vertices_json",
]

MESH_EXTENSIONS: tuple[str, ...] = (".obj", ".ply", ".glb", ".gltf", ".stl")
FLAME_MODEL_EXTENSIONS: tuple[str, ...] = (".pkl", ".npz")
#: Mesh and keypoint files above this size are refused unread.
MAX_MESH_FILE_BYTES = 1 << 30
MAX_KEYPOINT_FILE_BYTES = 1 << 20
TOPOLOGIES = ("flame", "custom")


class MeshLoadError(ValueError):
    """A head mesh (or its keypoint file) cannot be loaded; the message names the file."""


@dataclass(frozen=True, eq=False)
class HeadMesh:
    """A head to animate: read-only float32 vertices (V, 3) and int32 triangles (F, 3).

    ``keypoint_vertices`` — 21 tuples of vertex ids in ``KEYPOINT_NAMES`` order (the keypoint is
    their mean), or None when unknown; ``topology`` — ``"flame"`` (FLAME's 5023-vertex layout) or
    ``"custom"``; ``uv`` (V, 2) float32 and ``texture`` (H, W, 3) uint8 when the file has them;
    ``flame_model`` — the FLAME model that deforms this head, when there is one.
    """

    vertices: np.ndarray
    faces: np.ndarray
    keypoint_vertices: tuple[tuple[int, ...], ...] | None
    name: str
    topology: str
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    flame_model: FlameModel | None = None

    def __post_init__(self) -> None:
        vertices = _read_only(np.asarray(self.vertices, dtype=np.float32))
        faces = _read_only(np.asarray(self.faces, dtype=np.int32))
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        _check_geometry(self.name, vertices, faces)
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"{self.name}: topology must be one of {TOPOLOGIES}; got {self.topology!r}")
        if self.keypoint_vertices is not None:
            object.__setattr__(self, "keypoint_vertices",
                               check_keypoint_vertices(self.keypoint_vertices, len(vertices)))
        if self.uv is not None:
            uv = _read_only(np.asarray(self.uv, dtype=np.float32))
            if uv.shape != (len(vertices), 2) or not np.all(np.isfinite(uv)):
                raise ValueError(f"{self.name}: uv must be finite ({len(vertices)}, 2); got {uv.shape}")
            object.__setattr__(self, "uv", uv)
        if self.texture is not None:
            texture = _read_only(np.asarray(self.texture))
            if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[2] != 3:
                raise ValueError(f"{self.name}: texture must be an H × W × 3 uint8 image; got "
                                 f"{texture.shape} {texture.dtype}")
            object.__setattr__(self, "texture", texture)
        if self.flame_model is not None and self.flame_model.num_vertices != len(vertices):
            raise ValueError(f"{self.name}: the FLAME model has {self.flame_model.num_vertices} "
                             f"vertices, the mesh {len(vertices)}")

    def keypoints(self) -> np.ndarray | None:
        """The 21 keypoints (21, 3) of the mesh at rest, or None when their vertices are unknown."""
        if self.keypoint_vertices is None:
            return None
        return keypoint_positions(self.vertices, self.keypoint_vertices)


# --- FLAME models -------------------------------------------------------------------------------

def load_flame_model(
    path: str | os.PathLike,
    *,
    num_shape: int | None = None,
    num_expression: int | None = None,
) -> FlameModel:
    """A :class:`FlameModel` from a FLAME ``.pkl`` (restricted unpickling) or ``.npz`` conversion.

    Raises :class:`MeshLoadError`; a pickle naming a global outside the allow-list is refused
    before anything of it runs (the error's ``__cause__`` is the
    :class:`~studio.io.flame_pickle.UnsafeModelFileError`).
    """
    from studio.io.flame_pickle import FlameFileError, load_flame_arrays

    path = Path(path)
    _check_file(path, FLAME_MODEL_EXTENSIONS, "FLAME model")
    try:
        arrays = load_flame_arrays(path)
    except FlameFileError as exc:
        raise MeshLoadError(str(exc)) from exc
    try:
        return FlameModel.from_arrays(arrays, num_shape=num_shape, num_expression=num_expression,
                                      name=path.stem)
    except ValueError as exc:
        raise MeshLoadError(f"{path}: {exc}") from exc


# --- head meshes --------------------------------------------------------------------------------

def load_head_mesh(
    path: str | os.PathLike,
    keypoints_json: str | os.PathLike | None = None,
    *,
    flame_model: str | os.PathLike | FlameModel | None = None,
) -> HeadMesh:
    """The head in ``path`` (see the module docstring for what each kind of file gives).

    ``keypoints_json`` names a keypoint vertex file; it overrides the automatic FLAME keypoints.
    ``flame_model`` pairs a FLAME-topology template with a model (its ``v_template`` is replaced).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in FLAME_MODEL_EXTENSIONS:
        if flame_model is not None:
            raise MeshLoadError(f"{path}: is a FLAME model itself; flame_model= pairs a template "
                                "mesh with a model")
        model = load_flame_model(path)
        keypoints = model.keypoint_vertices
        if keypoints_json is not None:
            keypoints = read_keypoint_vertices_json(keypoints_json, model.num_vertices)
        return HeadMesh(vertices=model.v_template, faces=model.faces, keypoint_vertices=keypoints,
                        name=path.stem, topology="flame", flame_model=model)

    _check_file(path, MESH_EXTENSIONS, "head mesh")
    vertices, faces, uv, texture = _read_mesh_file(path)
    is_flame = vertices.shape[0] == FLAME_NUM_VERTICES and faces.shape[0] == FLAME_NUM_FACES
    model = None
    if flame_model is not None:
        model = flame_model if isinstance(flame_model, FlameModel) else load_flame_model(flame_model)
        if not _same_triangles(faces, model.faces):
            raise MeshLoadError(f"{path}: its {len(vertices)} vertices and {len(faces)} triangles are not "
                                f"in the topology of the FLAME model {model.name!r}")
        model = model.with_template(vertices, name=path.stem)
        is_flame = True
    if keypoints_json is not None:
        keypoints = read_keypoint_vertices_json(keypoints_json, len(vertices))
    elif is_flame:
        keypoints = model.keypoint_vertices if model is not None else flame_keypoint_vertices(vertices)
    else:
        keypoints = None
    try:
        return HeadMesh(vertices=vertices, faces=faces, keypoint_vertices=keypoints, name=path.stem,
                        topology="flame" if is_flame else "custom", uv=uv, texture=texture,
                        flame_model=model)
    except ValueError as exc:
        raise MeshLoadError(f"{path}: {exc}") from exc


def _check_file(path: Path, extensions: tuple[str, ...], what: str) -> None:
    if path.suffix.lower() not in extensions:
        raise MeshLoadError(f"{path}: unknown {what} extension {path.suffix or '(none)'!r}; "
                            f"expected one of {', '.join(extensions)}")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MeshLoadError(f"{path}: no such file") from None
    except OSError as exc:
        raise MeshLoadError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise MeshLoadError(f"{path}: not a file")
    if size == 0:
        raise MeshLoadError(f"{path}: the file is empty")
    if size > MAX_MESH_FILE_BYTES:
        raise MeshLoadError(f"{path}: {size} bytes is above the limit of {MAX_MESH_FILE_BYTES} bytes")


def _read_mesh_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    import trimesh

    options = {"maintain_order": True} if path.suffix.lower() == ".obj" else {}
    try:
        loaded = trimesh.load(str(path), process=False, **options)
        if isinstance(loaded, trimesh.Scene):
            parts = list(loaded.dump(concatenate=False)) if loaded.geometry else []
        else:
            parts = [loaded]
    except Exception as exc:  # noqa: BLE001 - damaged files raise many kinds; none may crash
        raise MeshLoadError(f"{path}: cannot read the mesh ({type(exc).__name__}: {exc})") from None
    meshes = [part for part in parts if isinstance(part, trimesh.Trimesh) and len(part.faces)]
    if not meshes:
        points = sum(len(getattr(part, "vertices", ())) for part in parts)
        if points:
            raise MeshLoadError(f"{path}: has {points} points but no triangles (a point cloud?); "
                                "a head needs a triangle mesh")
        raise MeshLoadError(f"{path}: holds no mesh (no vertices, no triangles)")
    uv = texture = None
    if len(meshes) == 1:
        uv, texture = _texture_of(meshes[0])
    vertices = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes])
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    faces = np.concatenate([np.asarray(m.faces, dtype=np.int64) + offset for m, offset in zip(meshes, offsets)])
    if path.suffix.lower() == ".stl":
        vertices, faces = _merge_coincident(vertices, faces)
        uv = None
    _check_geometry(str(path), vertices, faces, error=MeshLoadError)
    return vertices.astype(np.float32), faces.astype(np.int32), uv, texture


def _texture_of(mesh) -> tuple[np.ndarray | None, np.ndarray | None]:
    visual = getattr(mesh, "visual", None)
    if getattr(visual, "kind", None) != "texture":
        return None, None
    uv = getattr(visual, "uv", None)
    if uv is None or len(uv) != len(mesh.vertices):
        return None, None
    uv = np.asarray(uv, dtype=np.float32)
    material = getattr(visual, "material", None)
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    texture = np.asarray(image.convert("RGB"), dtype=np.uint8) if image is not None else None
    return (uv if np.all(np.isfinite(uv)) else None), texture


def _merge_coincident(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with identical coordinates, keeping the order of first appearance."""
    _, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return vertices[np.sort(first)], rank[inverse.reshape(-1)][faces]


def _check_geometry(name: str, vertices: np.ndarray, faces: np.ndarray, error: type = ValueError) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise error(f"{name}: vertices must be a non-empty (V, 3) array; got {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        bad = int(np.count_nonzero(~np.all(np.isfinite(vertices), axis=1)))
        raise error(f"{name}: {bad} of {len(vertices)} vertices have NaN or infinite coordinates")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise error(f"{name}: triangles must be a non-empty (F, 3) array; got {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise error(f"{name}: triangles name vertices outside 0…{len(vertices) - 1} "
                    f"(from {int(faces.min())} to {int(faces.max())})")


def _same_triangles(faces: np.ndarray, reference: np.ndarray) -> bool:
    if faces.shape != reference.shape:
        return False
    if np.array_equal(faces, reference):
        return True
    as_set = {tuple(np.roll(f, -int(np.argmin(f)))) for f in np.asarray(faces).tolist()}
    return as_set == {tuple(np.roll(f, -int(np.argmin(f)))) for f in np.asarray(reference).tolist()}


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


# --- keypoint vertex files ----------------------------------------------------------------------

def read_keypoint_vertices_json(
    path: str | os.PathLike, num_vertices: int | None = None
) -> tuple[tuple[int, ...], ...]:
    """Keypoint vertex ids (21 tuples, ``KEYPOINT_NAMES`` order) from a JSON keypoint file.

    The file maps every keypoint name to a vertex id or a non-empty list of ids; ids must be
    integers below ``num_vertices`` when it is given. Raises :class:`MeshLoadError`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_KEYPOINT_FILE_BYTES:
            raise MeshLoadError(f"{path}: {size} bytes is too large for a keypoint file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MeshLoadError(f"{path}: no such keypoint file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MeshLoadError(f"{path}: not a readable JSON keypoint file ({exc})") from None
    if not isinstance(data, dict):
        raise MeshLoadError(f"{path}: a keypoint file is a JSON object of keypoint names to vertex ids; "
                            f"got a {type(data).__name__}")
    unknown = sorted(set(data) - set(KEYPOINT_NAMES))
    if unknown:
        raise MeshLoadError(f"{path}: unknown keypoint names {', '.join(map(repr, unknown))}")
    missing = [name for name in KEYPOINT_NAMES if name not in data]
    if missing:
        raise MeshLoadError(f"{path}: {len(missing)} of the {NUM_KEYPOINTS} keypoints are missing: "
                            f"{', '.join(missing)}")
    result = []
    for name in KEYPOINT_NAMES:
        value = data[name]
        ids = value if isinstance(value, list) else [value]
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise MeshLoadError(f"{path}: keypoint {name!r} must be a vertex id or a non-empty list of "
                                f"vertex ids (integers); got {value!r}")
        if any(i < 0 or (num_vertices is not None and i >= num_vertices) for i in ids):
            limit = f"0…{num_vertices - 1}" if num_vertices is not None else "≥ 0"
            raise MeshLoadError(f"{path}: keypoint {name!r} names vertex ids {ids} outside {limit}")
        result.append(tuple(ids))
    return tuple(result)


def write_keypoint_vertices_json(
    path: str | os.PathLike, keypoint_vertices: Sequence[Sequence[int] | int]
) -> None:
    """Write keypoint vertex ids (21 entries, ``KEYPOINT_NAMES`` order) as a JSON keypoint file.

    A keypoint on one vertex is written as a plain id; the file is replaced atomically.
    """
    path = Path(path)
    checked = check_keypoint_vertices(list(keypoint_vertices), np.iinfo(np.int64).max)
    data = {name: ids[0] if len(ids) == 1 else list(ids) for name, ids in zip(KEYPOINT_NAMES, checked)}
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
