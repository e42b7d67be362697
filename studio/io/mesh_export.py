"""Mesh-sequence export: OBJ and PLY per frame, one NPY array, glTF/GLB with morph targets, USD.

The 3D renderer hands a deformed mesh per frame: ``vertices`` (T, V, 3) float32 and ``faces``
(F, 3) integer vertex ids shared by all frames. Each writer validates that input (errors name the
file), reports ``progress(fraction)``, asks ``cancel()`` between steps (raising
:class:`~studio.io.video.ExportCancelled`), and never leaves a partial result: every file is written
under a temporary name and renamed into place once complete.

==========  ================================================================================
``obj``     A folder of ``<name>_000000.obj`` … (``take.obj`` → folder ``take/``; digits grow past
            a million frames). ``vt`` + ``f v/vt`` with ``uv``; ``<name>.mtl`` + ``<name>.png``
            with a ``texture``. Floats are written with 9 significant digits, so float32 values
            read back bit-exact.
``ply``     The same folder layout with binary little-endian PLY (``float x, y, z`` [``s, t``],
            ``list uchar int vertex_indices``); a texture is referenced by ``comment TextureFile``.
``npy``     ``take.npy``: the (T, V, 3) float32 array VOCA/FaceFormer pipelines load, and beside it
            ``take_faces.npy`` (F, 3) int32 (and ``take_uv.npy`` (V, 2) float32 with ``uv``).
``glb``     One mesh whose per-frame shapes are *morph targets* found by PCA, animated by LINEAR
            samplers on the node's ``weights`` and — the head motion taken out first — its
            ``rotation`` and ``translation`` (see :func:`fit_morph_targets`); ``.gltf`` writes the
            JSON with ``<stem>.bin`` beside it. Read back with :func:`studio.io.gltf_read.read_glb`.
            Checked against the Khronos glTF validator (no issue of any severity) and Blender
            5.2's importer (shape keys ``pca_00``…, every frame within the fit's error).
``usd``     ``.usd``/``.usdc`` (binary crate) or ``.usda`` (text): a ``UsdGeomMesh`` whose
            ``points`` (and ``extent``) are time-sampled per frame, time codes = frame indices,
            ``timeCodesPerSecond`` = ``framesPerSecond`` = fps, up axis Y. Needs the ``usd`` extra.
==========  ================================================================================

Sequence folders hold one take: files of an earlier export under the same name with more frames
(``<name>_<index>.obj`` with an index past the new last frame) are removed once the new take is in
place, so a sequence importer never picks up stale frames.

Conventions. ``uv`` (V, 2) is in the OBJ/Blender convention (origin bottom-left, v up); glTF's
origin is top-left, so TEXCOORD_0 stores ``(u, 1 − v)``. ``texture`` is an H × W × 3 (or × 4)
``uint8`` RGB(A) image and needs ``uv``. The mesh's axes and units are kept as given: the studio's
meshes are y up, z toward the viewer, in metres for FLAME/VOCA — glTF's own convention.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import scipy.sparse
from scipy.spatial.transform import Rotation

from studio.core.safe_io import atomic_write
from studio.io.video import ExportCancelled
from studio.plugins.api import ExporterSpec

__all__ = [
    "DEFAULT_MAX_TARGETS",
    "DEFAULT_RELATIVE_TOLERANCE",
    "WEIGHT_RANGES",
    "ExportCancelled",
    "MeshExportReport",
    "MorphFit",
    "UsdNotInstalledError",
    "bounding_box_diagonal",
    "fit_morph_targets",
    "pose_shapes",
    "quaternion_matrices",
    "register",
    "usd_available",
    "write_gltf",
    "write_npy",
    "write_obj_sequence",
    "write_ply_sequence",
    "write_usd",
]

_logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float], object]
CancelCallback = Callable[[], bool]

#: Default morph-target fit tolerance: this fraction of the first frame's bounding-box diagonal
#: (a 25 cm head → 25 µm), the largest distance any vertex of any frame may end up from its input.
DEFAULT_RELATIVE_TOLERANCE = 1e-4
#: Default cap on the number of glTF morph targets (engines and Blender handle 64 comfortably).
DEFAULT_MAX_TARGETS = 64
WEIGHT_RANGES = ("unit", "signed")
_OVERSAMPLE = 8           # extra random directions of the randomized SVD beyond the cap
_POWER_ITERATIONS = 1     # subspace iterations: sharpen the top components of a slowly decaying spectrum
_EXACT_SVD_MAX_FRAMES = 256  # up to this many frames the decomposition is exact (no random range)
_FRAME_CHUNK = 256        # frames per block when measuring errors
_NORMAL_FIT_FRAMES = 256  # frames whose normals fit the morph-target normal displacements
_MIN_DIGITS = 6
_GENERATOR = "Talking Head Studio"

# glTF enums (glTF 2.0 §5, Properties Reference)
_FLOAT, _UNSIGNED_SHORT, _UNSIGNED_INT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR_FILTER, _LINEAR_MIPMAP_LINEAR = 9729, 9987
_GLB_MAGIC, _GLB_VERSION = 0x46546C67, 2
_CHUNK_JSON, _CHUNK_BIN = 0x4E4F534A, 0x004E4942


class UsdNotInstalledError(ValueError):
    """USD export was asked for but ``pxr`` (the ``usd-core`` package) does not import."""


@dataclass(frozen=True)
class MeshExportReport:
    """What an export wrote: the files (in order), the size of the take and, for glTF, the fit.

    ``max_error`` is the largest distance (mesh units) between an input vertex and the same vertex
    as the written file reproduces it, over all vertices and frames — for glTF the morph-target
    fit evaluated from the float32 values actually stored; ``tolerance`` is what it was asked to be.
    """

    files: tuple[Path, ...]
    num_frames: int
    num_vertices: int
    num_faces: int
    num_targets: int | None = None
    max_error: float | None = None
    tolerance: float | None = None


# --- input checks ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Mesh:
    vertices: np.ndarray  # (T, V, 3) float32, C-contiguous
    faces: np.ndarray     # (F, 3) int64
    uv: np.ndarray | None  # (V, 2) float32
    texture: np.ndarray | None  # (H, W, 3|4) uint8
    name: str


def _checked_mesh(path: Path, vertices, faces, *, uv=None, texture=None, name: str | None = None,
                  default_name: str) -> _Mesh:
    v = np.asarray(vertices)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"{path}: vertices must be a (frames, vertices, 3) array; got shape {v.shape}")
    if v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"{path}: no vertices to write (shape {v.shape})")
    if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
        raise ValueError(f"{path}: vertices must be real numbers; got dtype {v.dtype}")
    v = np.ascontiguousarray(v, dtype=np.float32)
    finite = np.isfinite(v)
    if not finite.all():
        frame, vertex, _ = np.argwhere(~finite)[0]
        raise ValueError(f"{path}: vertex {vertex} of frame {frame} is NaN or infinite")
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{path}: faces must be an (F, 3) array of vertex ids (triangles); got shape {f.shape}")
    if f.shape[0] == 0:
        raise ValueError(f"{path}: the mesh has no faces")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{path}: faces must be integer vertex ids; got dtype {f.dtype}")
    f = f.astype(np.int64)
    bad = (f < 0) | (f >= v.shape[1])
    if bad.any():
        face = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{path}: face {face} {f[face].tolist()} refers to a vertex outside 0…{v.shape[1] - 1}")
    if uv is not None:
        uv = np.asarray(uv)
        if uv.shape != (v.shape[1], 2) or not np.issubdtype(uv.dtype, np.number):
            raise ValueError(f"{path}: uv must be a ({v.shape[1]}, 2) array, one (u, v) per vertex; got "
                             f"shape {uv.shape}, dtype {uv.dtype}")
        uv = np.ascontiguousarray(uv, dtype=np.float32)
        if not np.isfinite(uv).all():
            raise ValueError(f"{path}: uv contains NaN or infinite values")
    if texture is not None:
        texture = np.asarray(texture)
        if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[2] not in (3, 4) \
                or min(texture.shape[:2]) < 1:
            raise ValueError(f"{path}: texture must be an H×W×3 (or ×4) uint8 RGB(A) image; got shape "
                             f"{texture.shape}, dtype {texture.dtype}")
        if uv is None:
            raise ValueError(f"{path}: a texture needs texture coordinates: pass uv as well")
    name = default_name if name is None else name
    if not isinstance(name, str) or not name.strip() or name.startswith(".") \
            or any(sep in name for sep in ("/", "\\", os.sep)):
        raise ValueError(f"{path}: name must be a plain file-name start (no folder, not hidden); got {name!r}")
    return _Mesh(v, f, uv, texture, name)


def _checked_fps(path: Path, fps, required: bool) -> float | None:
    if fps is None and not required:
        return None
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) \
            or not math.isfinite(float(fps)) or float(fps) <= 0:
        raise ValueError(f"{path}: fps must be a positive number; got {fps!r}")
    return float(fps)


class _Progress:
    """Maps the steps of one export onto 0…1 and asks ``cancel()`` at each step."""

    def __init__(self, path: Path, progress: ProgressCallback | None, cancel: CancelCallback | None):
        self.path = path
        self.progress = progress
        self.cancel = cancel
        self.last = None

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise ExportCancelled(f"{self.path}: export cancelled")

    def report(self, fraction: float) -> None:
        self.check()
        if self.progress is not None:
            self.last = min(1.0, max(0.0, float(fraction)))
            self.progress(self.last)

    def finish(self) -> None:
        if self.progress is not None and self.last != 1.0:
            self.last = 1.0
            self.progress(1.0)


def _png_bytes(path: Path, image: np.ndarray) -> bytes:
    channels = [2, 1, 0, 3] if image.shape[2] == 4 else [2, 1, 0]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[:, :, channels]))
    if not ok:
        raise OSError(f"{path}: PNG encoding of the texture failed")
    return encoded.tobytes()


# --- sequence folders ---------------------------------------------------------------------------

def _sequence_folder(path: Path, extension: str) -> tuple[Path, str]:
    """``take.obj`` → (``take/``, ``"take"``); a path without the extension is the folder itself."""
    if path.name.lower().endswith(extension) and len(path.name) > len(extension):
        stem = path.name[: -len(extension)]
        return path.with_name(stem), stem
    return path, path.name


class _StagedFolder:
    """Files written into a hidden staging folder inside ``folder``, moved into place on commit."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder))
        except OSError as exc:
            raise OSError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from exc
        self.names: list[str] = []

    def write(self, name: str, data: bytes) -> None:
        try:
            (self.staging / name).write_bytes(data)
        except OSError as exc:
            raise OSError(f"{self.folder / name}: cannot write: {exc.strerror or exc}") from exc
        self.names.append(name)

    def commit(self) -> list[Path]:
        for name in self.names:
            os.replace(self.staging / name, self.folder / name)
        self.staging.rmdir()
        return [self.folder / name for name in self.names]

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.created:
            try:
                self.folder.rmdir()  # only when empty: never removes anything it did not write
            except OSError:
                pass


def _write_sequence(folder: Path, name: str, extension: str, num_frames: int, frame_bytes,
                    extra_files: dict[str, bytes], reporter: _Progress) -> list[Path]:
    """Write ``frame_bytes(t)`` as ``<name>_<t>.<ext>`` for every frame, plus ``extra_files``."""
    digits = max(_MIN_DIGITS, len(str(num_frames - 1)))
    staged = _StagedFolder(folder)
    try:
        for file_name, data in extra_files.items():
            staged.write(file_name, data)
        for t in range(num_frames):
            reporter.check()
            staged.write(f"{name}_{t:0{digits}d}{extension}", frame_bytes(t))
            reporter.report(0.98 * (t + 1) / num_frames)
        reporter.check()
        written = staged.commit()
    except BaseException:
        staged.abort()
        raise
    _remove_stale_frames(folder, name, extension, num_frames)
    return written


def _remove_stale_frames(folder: Path, name: str, extension: str, num_frames: int) -> None:
    pattern = re.compile(rf"{re.escape(name)}_(\d{{{_MIN_DIGITS},}}){re.escape(extension)}$")
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and int(match.group(1)) >= num_frames and entry.is_file():
            entry.unlink(missing_ok=True)


def _report(files, mesh: _Mesh, **fit) -> MeshExportReport:
    t, v, _ = mesh.vertices.shape
    return MeshExportReport(files=tuple(Path(f) for f in files), num_frames=t, num_vertices=v,
                            num_faces=len(mesh.faces), **fit)


# --- OBJ ----------------------------------------------------------------------------------------

def write_obj_sequence(path: str | os.PathLike, vertices, faces, *, fps: float | None = None,
                       uv=None, texture=None, name: str | None = None,
                       progress: ProgressCallback | None = None,
                       cancel: CancelCallback | None = None) -> MeshExportReport:
    """One Wavefront OBJ per frame in a folder (see the module docs for the layout)."""
    path = Path(path)
    folder, default_name = _sequence_folder(path, ".obj")
    mesh = _checked_mesh(path, vertices, faces, uv=uv, texture=texture, name=name, default_name=default_name)
    fps = _checked_fps(path, fps, required=False)
    reporter = _Progress(path, progress, cancel)
    num_frames, num_vertices, _ = mesh.vertices.shape
    one_based = (mesh.faces + 1).ravel().tolist()
    extra: dict[str, bytes] = {}
    head = f"# {_GENERATOR}: {mesh.name}, {num_vertices} vertices, {len(mesh.faces)} triangles"
    head += f", {num_frames} frames at {fps:g} fps\n" if fps else f", {num_frames} frames\n"
    if mesh.uv is not None:
        uv_text = ("vt %.9g %.9g\n" * num_vertices) % tuple(mesh.uv.ravel().tolist())
        face_text = ("f %d/%d %d/%d %d/%d\n" * len(mesh.faces)) % tuple(np.repeat(one_based, 2))
    else:
        uv_text = ""
        face_text = ("f %d %d %d\n" * len(mesh.faces)) % tuple(one_based)
    material = ""
    if mesh.texture is not None:
        extra[f"{mesh.name}.png"] = _png_bytes(path, mesh.texture)
        extra[f"{mesh.name}.mtl"] = (f"# {_GENERATOR}\nnewmtl {mesh.name}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\n"
                                     f"d 1\nillum 1\nmap_Kd {mesh.name}.png\n").encode()
        head += f"mtllib {mesh.name}.mtl\n"
        material = f"usemtl {mesh.name}\n"
    vertex_format = "v %.9g %.9g %.9g\n" * num_vertices
    tail = (uv_text + material + face_text).encode()

    def frame_bytes(t: int) -> bytes:
        body = vertex_format % tuple(mesh.vertices[t].ravel().tolist())
        return (head + f"o {mesh.name}\n" + body).encode() + tail

    files = _write_sequence(folder, mesh.name, ".obj", num_frames, frame_bytes, extra, reporter)
    reporter.finish()
    return _report(files, mesh)


# --- PLY ----------------------------------------------------------------------------------------

def write_ply_sequence(path: str | os.PathLike, vertices, faces, *, fps: float | None = None,
                       uv=None, texture=None, name: str | None = None,
                       progress: ProgressCallback | None = None,
                       cancel: CancelCallback | None = None) -> MeshExportReport:
    """One binary little-endian PLY per frame in a folder (see the module docs for the layout)."""
    path = Path(path)
    folder, default_name = _sequence_folder(path, ".ply")
    mesh = _checked_mesh(path, vertices, faces, uv=uv, texture=texture, name=name, default_name=default_name)
    fps = _checked_fps(path, fps, required=False)
    reporter = _Progress(path, progress, cancel)
    num_frames, num_vertices, _ = mesh.vertices.shape
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.uv is not None:
        fields += [("s", "<f4"), ("t", "<f4")]
    record = np.zeros(num_vertices, dtype=np.dtype(fields))
    if mesh.uv is not None:
        record["s"], record["t"] = mesh.uv[:, 0], mesh.uv[:, 1]
    face_records = np.empty(len(mesh.faces), dtype=np.dtype([("n", "u1"), ("ids", "<i4", (3,))]))
    face_records["n"] = 3
    face_records["ids"] = mesh.faces
    extra: dict[str, bytes] = {}
    comments = [f"{_GENERATOR}: {mesh.name}"]
    if mesh.texture is not None:
        extra[f"{mesh.name}.png"] = _png_bytes(path, mesh.texture)
        comments.append(f"TextureFile {mesh.name}.png")
    properties = "".join(f"property float {field}\n" for field, _ in fields)
    face_bytes = face_records.tobytes()

    def frame_bytes(t: int) -> bytes:
        timing = f", {t / fps:.6f} s at {fps:g} fps" if fps else ""
        header = ("ply\nformat binary_little_endian 1.0\n"
                  + "".join(f"comment {c}\n" for c in comments)
                  + f"comment frame {t} of {num_frames}{timing}\n"
                  + f"element vertex {num_vertices}\n{properties}"
                  + f"element face {len(mesh.faces)}\nproperty list uchar int vertex_indices\nend_header\n")
        record["x"], record["y"], record["z"] = mesh.vertices[t].T
        return header.encode("ascii") + record.tobytes() + face_bytes

    files = _write_sequence(folder, mesh.name, ".ply", num_frames, frame_bytes, extra, reporter)
    reporter.finish()
    return _report(files, mesh)


# --- NPY ----------------------------------------------------------------------------------------

def write_npy(path: str | os.PathLike, vertices, faces, *, fps: float | None = None, uv=None,
              texture=None, name: str | None = None, progress: ProgressCallback | None = None,
              cancel: CancelCallback | None = None) -> MeshExportReport:
    """``<stem>.npy`` (T, V, 3) float32, ``<stem>_faces.npy`` (F, 3) int32 [, ``<stem>_uv.npy``].

    ``fps``, ``texture`` and ``name`` are accepted for the common calling convention and not
    stored: an ``.npy`` holds one bare array (the frame rate travels with the motion file).
    """
    path = Path(path)
    if path.suffix.lower() != ".npy":
        path = path.with_name(path.name + ".npy")
    mesh = _checked_mesh(path, vertices, faces, uv=uv, texture=texture, name=name, default_name=path.stem)
    _checked_fps(path, fps, required=False)
    reporter = _Progress(path, progress, cancel)
    arrays = {path: mesh.vertices, path.with_name(f"{path.stem}_faces.npy"): mesh.faces.astype(np.int32)}
    if mesh.uv is not None:
        arrays[path.with_name(f"{path.stem}_uv.npy")] = mesh.uv
    payloads = {}
    for file, array in arrays.items():
        reporter.check()
        buffer = _BytesSink()
        np.save(buffer, array, allow_pickle=False)
        payloads[file] = buffer.getvalue()
    reporter.report(0.5)
    for file, data in payloads.items():
        _atomic_write(file, data)
    reporter.finish()
    return _report(payloads, mesh)


class _BytesSink:
    """A write-only file object collecting bytes (np.save into memory)."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def _atomic_write(file: Path, data: bytes) -> None:
    try:
        atomic_write(file, data)
    except OSError as exc:
        raise OSError(f"{file}: cannot write: {exc.strerror or exc}") from exc


# --- morph targets ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MorphFit:
    """A mesh sequence as ``R_t · (base + Σ_k weights[t, k] · targets[k]) + translations[t]``.

    ``base`` (V, 3), ``targets`` (K, V, 3) displacements, ``weights`` (T, K), ``rotations`` (T, 4)
    unit quaternions (x, y, z, w — glTF's order) and ``translations`` (T, 3), all float32; without
    rigid factoring the rotations are identities and the translations zeros. ``max_error`` is the
    largest vertex distance between the input and this reconstruction (computed from these float32
    arrays), ``tolerance`` the bound the fit aimed for. ``weight_range`` tells how the weights were
    scaled: ``"unit"`` — every weight within 0…1; ``"signed"`` — frame 0's weights are 0 (the base
    is frame 0's unposed shape) and the largest |weight| of each target is 1.
    """

    base: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    max_error: float
    tolerance: float
    weight_range: str
    rigid: bool

    @property
    def num_targets(self) -> int:
        return len(self.targets)

    def shapes(self, frames=slice(None)) -> np.ndarray:
        """The morphed, unposed shapes (T', V, 3) float32 of the chosen frames."""
        weights = self.weights[frames]
        flat = weights @ self.targets.reshape(len(self.targets), -1) if len(self.targets) else 0.0
        return self.base + np.broadcast_to(flat, (len(weights), self.base.size)).reshape(-1, *self.base.shape)

    def reconstruct(self, frames=slice(None)) -> np.ndarray:
        """Vertices (T', V, 3) of the chosen frames, as a glTF client computes them at the keys."""
        return pose_shapes(self.shapes(frames), self.rotations[frames], self.translations[frames])


def quaternion_matrices(quaternions: np.ndarray) -> np.ndarray:
    """Rotation matrices (…, 3, 3) of unit quaternions (…, 4) in glTF's (x, y, z, w) order."""
    q = np.asarray(quaternions, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def pose_shapes(shapes: np.ndarray, rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """``R_t · shape_t + translation_t`` for shapes (T, V, 3), quaternions (T, 4), translations (T, 3)."""
    matrices = quaternion_matrices(rotations).astype(np.float32)
    return np.matmul(shapes, matrices.transpose(0, 2, 1)) + np.asarray(translations, dtype=np.float32)[:, None]


def bounding_box_diagonal(vertices: np.ndarray) -> float:
    """Diagonal length of the axis-aligned bounding box of (V, 3) points."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    return float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))


def fit_morph_targets(vertices, *, tolerance: float | None = None, max_targets: int = DEFAULT_MAX_TARGETS,
                      weight_range: str = "unit", rigid: bool = True, seed: int = 0,
                      check: Callable[[], None] | None = None) -> MorphFit:
    """Compress a mesh sequence (T, V, 3) into a rigid motion and a few morph targets.

    With ``rigid`` the head motion is taken out first: each frame is aligned to the sequence's
    mean shape by the rotation and translation that fit it best (Kabsch, two rounds of generalized
    Procrustes), and that motion becomes the node's animated rotation and translation — a turning
    head multiplies the rank of its vertex trajectories, so leaving the pose in the shapes would
    cost many targets. Then the displacements of the unposed shapes from their mean, one row of
    3V numbers per frame, are factored by a truncated SVD: exactly for up to 256 frames, otherwise by
    a randomized range finder (Gaussian test matrix of ``max_targets + 8`` columns, one subspace
    iteration, then an exact SVD of the projected rows) — linear in T. The number of targets K is
    the smallest (found by bisection from the bound the mean squared error gives) whose *largest*
    vertex error over all frames is ≤ ``tolerance`` (default ``1e-4`` × the first frame's
    bounding-box diagonal), capped at ``max_targets``; when the cap does not reach the tolerance
    the fit uses the cap and reports the error it achieves (and logs a warning).

    Each target's weights are shifted and scaled (the base absorbing the shift) so that with
    ``weight_range="unit"`` all weights lie within 0…1, or, with ``"signed"``, frame 0's weights
    are 0 (the base is frame 0's unposed shape, a natural rest pose) and weights take both signs.
    Blender's glTF importer clamps negative shape-key values to 0 (glTF-Blender-IO issue 1364;
    measured with Blender 5.2: a signed take came back 7 cm off on a 10 cm sphere, the unit take
    within the fit's error), so ``"unit"`` is the default. ``check()`` is called between steps (it
    raises to cancel).
    """
    check = check or (lambda: None)
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"vertices must be a non-empty (frames, vertices, 3) array; got shape {v.shape}")
    if weight_range not in WEIGHT_RANGES:
        raise ValueError(f"weight_range must be one of {', '.join(WEIGHT_RANGES)}; got {weight_range!r}")
    if isinstance(max_targets, bool) or not isinstance(max_targets, (int, np.integer)) or max_targets < 0:
        raise ValueError(f"max_targets must be a non-negative integer; got {max_targets!r}")
    num_frames, num_vertices, _ = v.shape
    if tolerance is None:
        tolerance = DEFAULT_RELATIVE_TOLERANCE * bounding_box_diagonal(v[0])
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.number)) \
            or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number of mesh units; got {tolerance!r}")
    tolerance = float(tolerance)

    if rigid:
        rotations, translations, unposed = _rigid_alignment(v)
    else:
        rotations = np.tile(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32), (num_frames, 1))
        translations = np.zeros((num_frames, 3), dtype=np.float32)
        unposed = v
    check()
    rows = unposed.reshape(num_frames, -1)
    mean = (np.ones(num_frames, dtype=np.float32) @ rows) / np.float32(num_frames)
    displacements = rows - mean  # (T, 3V) float32
    del unposed, rows
    components = _principal_directions(displacements, max_targets, seed, check)  # (L, 3V)
    check()
    coefficients = displacements @ components.T  # (T, L): orthogonal projection on the directions

    frame_residuals = _frame_residual_energies(displacements, coefficients)  # (T, L + 1)

    def meets_tolerance(k: int) -> bool:
        """Largest vertex error with k targets ≤ tolerance? The frames with the most residual
        energy are tried first: they refute a too-small k at a fraction of the cost."""
        check()
        hardest = np.argsort(frame_residuals[:, k])[-max(16, len(displacements) // 20):]
        if _max_vertex_error(displacements[hardest], coefficients[hardest, :k], components[:k]) > tolerance:
            return False
        return _max_vertex_error(displacements, coefficients[:, :k], components[:k]) <= tolerance

    cap = min(int(max_targets), len(components))
    within = frame_residuals.mean(axis=0) / num_vertices <= tolerance**2  # mean ≤ max: a lower bound
    low = min(int(np.argmax(within)) if within.any() else cap, cap)
    high = cap  # not tested: when no smaller k will do, the cap is the answer either way
    while low < high:  # the smallest K whose largest error meets the tolerance
        middle = (low + high) // 2
        if meets_tolerance(middle):
            high = middle
        else:
            low = middle + 1
    k = high

    weights = coefficients[:, :k].astype(np.float64)
    directions = components[:k].astype(np.float64)
    if weight_range == "unit":
        shift = weights.min(axis=0)
        scale = weights.max(axis=0) - shift
    else:
        shift = weights[0].copy()
        scale = np.abs(weights - shift).max(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    base = (mean + shift @ directions).astype(np.float32).reshape(num_vertices, 3)
    targets = (scale[:, None] * directions).astype(np.float32).reshape(k, num_vertices, 3)
    scaled = ((weights - shift) / scale).astype(np.float32)
    if weight_range == "unit":
        scaled = np.clip(scaled, 0.0, 1.0)  # float rounding only: the shift and scale make them 0…1
    fit = MorphFit(base, targets, scaled, rotations, translations, 0.0, tolerance, weight_range, rigid)
    check()
    error = _reconstruction_error(v, fit)
    if error > tolerance:
        _logger.warning("morph-target fit: %d targets reach a largest vertex error of %.3g, above the "
                        "tolerance %.3g (raise max_targets to meet it)", k, error, tolerance)
    return MorphFit(base, targets, scaled, rotations, translations, error, tolerance, weight_range, rigid)


def _rigid_alignment(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame rigid motion and unposed shapes: ``v[t] = R_t · unposed[t] + translations[t]``.

    Returns quaternions (T, 4) (x, y, z, w), with signs chosen so consecutive keys lie in the
    same hemisphere (their components interpolate smoothly), translations (T, 3) and the
    unposed shapes (T, V, 3), all float32; ``unposed`` is computed from the stored (float32)
    quaternions, so posing it with them gives back ``v`` up to float rounding.
    """
    num_frames, num_vertices, _ = v.shape
    centroids = (np.ones(num_vertices, dtype=np.float32) @ v) / np.float32(num_vertices)  # (T, 3)
    centered = v - centroids[:, None]
    # (V, T·3): every frame's coordinates side by side, so each sum over frames or vertices below
    # is one matrix product
    side_by_side = np.ascontiguousarray(centered.transpose(1, 0, 2)).reshape(num_vertices, -1)
    reference = centered[0]
    for _ in range(2):  # align to frame 0, then to the mean of the aligned frames
        reference = reference - reference.mean(axis=0)
        # H_t = Σ_v reference_v · (x_tv − c_t)ᵀ, and R_t = V diag(1, 1, ±1) Uᵀ for H_t = U S Vᵀ (Kabsch)
        covariance = (reference.T @ side_by_side).reshape(3, num_frames, 3).transpose(1, 0, 2)
        u, _, vt = np.linalg.svd(covariance.astype(np.float64))
        sign = np.sign(np.linalg.det(np.matmul(vt.transpose(0, 2, 1), u.transpose(0, 2, 1))))
        sign[sign == 0] = 1.0
        u[:, :, 2] *= sign[:, None]
        matrices = np.matmul(vt.transpose(0, 2, 1), u.transpose(0, 2, 1))  # R_t: reference → frame t
        # the mean unposed shape, (1/T) Σ_t (x_t − c_t) · R_t
        reference = (side_by_side @ matrices.astype(np.float32).reshape(-1, 3)) / num_frames
    del side_by_side
    quaternions = Rotation.from_matrix(matrices).as_quat()  # (x, y, z, w)
    flips = np.cumprod(np.where(np.einsum("ti,ti->t", quaternions[1:], quaternions[:-1]) < 0, -1.0, 1.0))
    quaternions[1:] *= flips[:, None]
    quaternions = quaternions.astype(np.float32)
    stored = quaternion_matrices(quaternions).astype(np.float32)
    unposed = np.matmul(centered, stored)  # row vectors: R_tᵀ · (x − c_t)
    return quaternions, centroids, unposed


def _principal_directions(displacements: np.ndarray, max_targets: int, seed: int,
                          check: Callable[[], None]) -> np.ndarray:
    """Orthonormal rows (L, 3V) spanning the leading principal directions, best first.

    Everything tall goes through matrix products and eigen-decompositions of small Gram matrices,
    not Householder QR or a full SVD: those run as many small steps that crawl when other
    processes share the cores (measured: 0.1 s alone, 5 s beside one busy process on 2 cores).
    """
    num_frames, width = displacements.shape
    rank = min(num_frames, width)
    if max_targets == 0 or rank == 0:
        return np.zeros((0, width), dtype=np.float32)
    if num_frames <= _EXACT_SVD_MAX_FRAMES:
        rows = displacements.astype(np.float64)  # the whole row space: an exact decomposition
    else:
        size = min(max_targets + _OVERSAMPLE, rank)
        rng = np.random.default_rng(seed)
        probe = rng.standard_normal((width, size), dtype=np.float32)
        basis = _orthonormal_columns(displacements @ probe)
        for _ in range(_POWER_ITERATIONS):
            check()
            row_basis = _orthonormal_columns(displacements.T @ basis)
            basis = _orthonormal_columns(displacements @ row_basis)
        rows = (basis.T @ displacements).astype(np.float64)  # (size, 3V): D projected on its range
    check()
    # rows = U S Vᵀ  ⇒  rows · rowsᵀ = U S² Uᵀ and Vᵀ = S⁻¹ Uᵀ · rows
    values, vectors = np.linalg.eigh(rows @ rows.T)
    values, vectors = values[::-1], vectors[:, ::-1]
    if values.size == 0 or values[0] <= 0:
        return np.zeros((0, width), dtype=np.float32)
    keep = values > values[0] * 1e-14  # singular values above 1e-7 of the largest
    keep[max_targets + _OVERSAMPLE:] = False
    directions = (vectors[:, keep].T @ rows) / np.sqrt(values[keep])[:, None]
    return np.ascontiguousarray(_symmetric_orthonormalization(directions), dtype=np.float32)


def _orthonormal_columns(matrix: np.ndarray) -> np.ndarray:
    """A float32 orthonormal basis of the columns of ``matrix`` (m × n, m ≫ n): Q = M · U Λ^(−½)
    from the eigen-decomposition of the Gram matrix, twice (the second pass restores the
    orthogonality the first loses to rounding); directions below 1e-6 of the largest are dropped."""
    q = matrix.astype(np.float64)
    for _ in range(2):
        values, vectors = np.linalg.eigh(q.T @ q)
        keep = values > values.max() * 1e-12 if values.size and values.max() > 0 else np.zeros(values.shape, bool)
        q = q @ (vectors[:, keep] / np.sqrt(values[keep]))
    return q.astype(np.float32)


def _symmetric_orthonormalization(rows: np.ndarray) -> np.ndarray:
    """``(R Rᵀ)^(−½) R``: the orthonormal rows closest to nearly orthonormal ``rows`` (order kept)."""
    values, vectors = np.linalg.eigh(rows @ rows.T)
    return (vectors / np.sqrt(np.maximum(values, 1e-30))) @ vectors.T @ rows


def _frame_residual_energies(displacements: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Squared residual of each frame (T, L + 1) with k = 0…L targets: ‖d_t‖² − Σ_(j<k) c_tj²."""
    total = np.einsum("ij,ij->i", displacements, displacements, dtype=np.float64)
    explained = np.cumsum(np.square(coefficients, dtype=np.float64), axis=1)
    return np.maximum(total[:, None] - np.concatenate([np.zeros((len(total), 1)), explained], axis=1), 0.0)


def _max_vertex_error(displacements: np.ndarray, weights: np.ndarray, directions: np.ndarray) -> float:
    worst = 0.0
    for start in range(0, len(displacements), _FRAME_CHUNK):
        block = displacements[start:start + _FRAME_CHUNK]
        residual = block - weights[start:start + _FRAME_CHUNK] @ directions if len(directions) else block
        worst = max(worst, _largest_squared_distance(residual))
    return math.sqrt(worst)


def _reconstruction_error(vertices: np.ndarray, fit: MorphFit) -> float:
    worst = 0.0
    for start in range(0, len(vertices), _FRAME_CHUNK):
        frames = slice(start, start + _FRAME_CHUNK)
        worst = max(worst, _largest_squared_distance(fit.reconstruct(frames) - vertices[frames]))
    return math.sqrt(worst)


def _largest_squared_distance(residual: np.ndarray) -> float:
    """The largest squared length of the 3-vectors of ``residual`` (…, 3V) or (…, V, 3)."""
    squared = np.square(residual).reshape(-1, 3)
    return float((squared[:, 0] + squared[:, 1] + squared[:, 2]).max())


# --- normals ------------------------------------------------------------------------------------

def _vertex_normals(frames: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (n, V, 3) of meshes (n, V, 3); (0, 0, 1) where undefined."""
    n, num_vertices, _ = frames.shape
    by_vertex = np.ascontiguousarray(frames.transpose(1, 0, 2))  # (V, n, 3): gathers rows, not columns
    a, b, c = (by_vertex[faces[:, i]] for i in range(3))
    e1, e2 = b - a, c - a
    face_normals = np.empty_like(e1)  # (F, n, 3), length = twice the triangle's area
    face_normals[..., 0] = e1[..., 1] * e2[..., 2] - e1[..., 2] * e2[..., 1]
    face_normals[..., 1] = e1[..., 2] * e2[..., 0] - e1[..., 0] * e2[..., 2]
    face_normals[..., 2] = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    summed = _incidence(faces, num_vertices) @ face_normals.reshape(len(faces), -1)
    normals = np.asarray(summed, dtype=np.float32).reshape(num_vertices, n, 3).transpose(1, 0, 2)
    length = np.sqrt(np.einsum("tvd,tvd->tv", normals, normals))[..., None]
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    normals[length[..., 0] <= 0] = (0.0, 0.0, 1.0)
    return normals


def _incidence(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    rows = faces.ravel()
    columns = np.repeat(np.arange(len(faces)), 3)
    return scipy.sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, columns)),
                                   shape=(num_vertices, len(faces)))


def _morph_normals(vertices: np.ndarray, faces: np.ndarray, fit: MorphFit,
                   check: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
    """Base normals (V, 3) and per-target normal displacements (K, V, 3).

    The normal displacements are the least-squares fit, with the position weights, of the true
    normals of the unposed frames minus the base normals — so a client that morphs normals shades
    every frame close to its own normals, not the base's. Up to 256 evenly spaced frames take part
    (K ≤ 64 unknowns per coordinate: more frames change the fit little and cost time).
    """
    base = _vertex_normals(fit.base[None], faces)[0]
    k = fit.num_targets
    if k == 0:
        return base, np.zeros((0,) + base.shape, dtype=np.float32)
    chosen = np.unique(np.linspace(0, len(vertices) - 1, _NORMAL_FIT_FRAMES).round().astype(np.int64))
    weights = fit.weights[chosen].astype(np.float64)
    check()
    rotations = quaternion_matrices(fit.rotations[chosen]).astype(np.float32)
    unposed = np.matmul(vertices[chosen] - fit.translations[chosen, None], rotations)  # R_tᵀ · (x − p_t)
    delta = (_vertex_normals(unposed, faces) - base).reshape(len(chosen), -1).astype(np.float64)
    # least squares by the normal equations, solved with a pseudo-inverse of the small K × K Gram
    values, vectors = np.linalg.eigh(weights.T @ weights)
    inverse = np.where(values > values.max() * 1e-10, 1.0 / np.maximum(values, 1e-300), 0.0)
    solution = (vectors * inverse) @ vectors.T @ (weights.T @ delta)
    return base, solution.astype(np.float32).reshape(k, -1, 3)


# --- glTF ---------------------------------------------------------------------------------------

class _GltfBuffer:
    """The one binary buffer of a glTF asset with its bufferViews and accessors (4-byte aligned)."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        padding = -self.length % 4
        if padding:
            self.parts.append(b"\0" * padding)
            self.length += padding
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.parts.append(data)
        self.length += len(data)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, *, target: int | None = None, bounds: bool = False) -> int:
        """An accessor over ``array`` (tightly packed, own bufferView, so no byteStride)."""
        component = {np.dtype("<f4"): _FLOAT, np.dtype("<u2"): _UNSIGNED_SHORT, np.dtype("<u4"): _UNSIGNED_INT}
        array = np.ascontiguousarray(array)
        width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[kind]
        rows = array.reshape(-1, width)
        accessor = {"bufferView": self.view(array.tobytes(), target), "componentType": component[array.dtype],
                    "count": len(rows), "type": kind}
        if bounds:  # exactly the stored values (float32 → double is exact; JSON keeps the double)
            accessor["min"] = [v.item() for v in rows.min(axis=0)]
            accessor["max"] = [v.item() for v in rows.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def write_gltf(path: str | os.PathLike, vertices, faces, *, fps: float, uv=None, texture=None,
               name: str | None = None, tolerance: float | None = None,
               max_targets: int = DEFAULT_MAX_TARGETS, weight_range: str = "unit", rigid: bool = True,
               normals: bool = True, progress: ProgressCallback | None = None,
               cancel: CancelCallback | None = None) -> MeshExportReport:
    """A glTF 2.0 asset (``.glb``, or ``.gltf`` + ``<stem>.bin``) animating the sequence by morph targets.

    One node, one mesh, one triangle primitive: POSITION (the fit's base, with min/max), NORMAL
    (with ``normals``), TEXCOORD_0 (with ``uv``), uint16/uint32 indices, a baseColor texture
    material (with ``texture``, the PNG stored in the buffer); K morph targets (POSITION with
    min/max, NORMAL displacements with ``normals``) named ``pca_00``… in ``mesh.extras.targetNames``
    (Blender's shape-key names). One animation ``"take"`` whose samplers share one input, the T
    frame times ``t / fps`` (s), all LINEAR: the T × K weights on the node's ``weights`` and, with
    ``rigid``, the head motion on its ``rotation`` and ``translation``. ``mesh.weights`` and the
    node's static rotation/translation are frame 0's, so a viewer that ignores animations shows
    frame 0. A take that needs neither (one frame, a still mesh) is a plain mesh without animation.
    See :func:`fit_morph_targets` for ``tolerance``, ``max_targets``, ``weight_range`` and ``rigid``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise ValueError(f"{path}: a glTF file name must end in .glb or .gltf")
    mesh = _checked_mesh(path, vertices, faces, uv=uv, texture=texture, name=name, default_name=path.stem)
    fps = _checked_fps(path, fps, required=True)
    reporter = _Progress(path, progress, cancel)
    try:
        fit = fit_morph_targets(mesh.vertices, tolerance=tolerance, max_targets=max_targets,
                                weight_range=weight_range, rigid=bool(rigid), check=reporter.check)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    reporter.report(0.8)
    base_normals = target_normals = None
    if normals:
        base_normals, target_normals = _morph_normals(mesh.vertices, mesh.faces, fit, reporter.check)
    reporter.report(0.9)
    document, binary = _gltf_document(mesh, fit, fps, base_normals, target_normals, path)
    reporter.report(0.95)
    if suffix == ".glb":
        files = [path]
        _atomic_write(path, _glb_bytes(document, binary))
    else:
        bin_path = path.with_name(path.stem + ".bin")
        document["buffers"][0]["uri"] = quote(bin_path.name)
        files = [path, bin_path]
        _atomic_write(bin_path, binary)
        _atomic_write(path, json.dumps(document, indent=1).encode())
    reporter.finish()
    return _report(files, mesh, num_targets=fit.num_targets, max_error=fit.max_error, tolerance=fit.tolerance)


def _gltf_document(mesh: _Mesh, fit: MorphFit, fps: float, base_normals, target_normals,
                   path: Path) -> tuple[dict, bytes]:
    buffer = _GltfBuffer()
    num_frames, num_vertices = len(fit.weights), fit.base.shape[0]
    index_type = "<u2" if num_vertices < 0xFFFF else "<u4"  # the type's maximum value is reserved
    primitive: dict = {"attributes": {}, "mode": 4}
    primitive["indices"] = buffer.accessor(mesh.faces.astype(index_type).ravel(), "SCALAR",
                                           target=_ELEMENT_ARRAY_BUFFER)
    attributes = primitive["attributes"]
    attributes["POSITION"] = buffer.accessor(fit.base.astype("<f4"), "VEC3", target=_ARRAY_BUFFER, bounds=True)
    if base_normals is not None:
        attributes["NORMAL"] = buffer.accessor(base_normals.astype("<f4"), "VEC3", target=_ARRAY_BUFFER)
    if mesh.uv is not None:
        st = np.stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]], axis=1).astype("<f4")
        attributes["TEXCOORD_0"] = buffer.accessor(st, "VEC2", target=_ARRAY_BUFFER)
    node: dict = {"name": mesh.name, "mesh": 0}
    if fit.rigid:
        node["rotation"] = [q.item() for q in fit.rotations[0]]
        node["translation"] = [p.item() for p in fit.translations[0]]
    document: dict = {
        "asset": {"version": "2.0", "generator": _GENERATOR},
        "scene": 0,
        "scenes": [{"name": mesh.name, "nodes": [0]}],
        "nodes": [node],
    }
    gltf_mesh: dict = {"name": mesh.name, "primitives": [primitive]}
    channels: list[tuple[str, np.ndarray]] = []
    if fit.num_targets:
        targets = []
        for k in range(fit.num_targets):
            target = {"POSITION": buffer.accessor(fit.targets[k].astype("<f4"), "VEC3", target=_ARRAY_BUFFER,
                                                  bounds=True)}
            if target_normals is not None:
                target["NORMAL"] = buffer.accessor(target_normals[k].astype("<f4"), "VEC3", target=_ARRAY_BUFFER)
            targets.append(target)
        primitive["targets"] = targets
        gltf_mesh["weights"] = [w.item() for w in fit.weights[0]]
        gltf_mesh["extras"] = {"targetNames": [f"pca_{k:02d}" for k in range(fit.num_targets)]}
        channels.append(("weights", fit.weights.ravel()))
    if fit.rigid and num_frames > 1:
        channels += [("rotation", fit.rotations), ("translation", fit.translations)]
    if channels:
        times = (np.arange(num_frames, dtype=np.float64) / fps).astype("<f4")
        if np.any(np.diff(times) <= 0):
            raise ValueError(f"{path}: {num_frames} frames at {fps:g} fps give frame times that float32 "
                             "cannot keep strictly increasing")
        time_accessor = buffer.accessor(times, "SCALAR", bounds=True)
        kinds = {"weights": "SCALAR", "rotation": "VEC4", "translation": "VEC3"}
        samplers = [{"input": time_accessor, "interpolation": "LINEAR",
                     "output": buffer.accessor(values.astype("<f4"), kinds[channel])}
                    for channel, values in channels]
        document["animations"] = [{"name": "take", "samplers": samplers, "channels": [
            {"sampler": i, "target": {"node": 0, "path": channel}} for i, (channel, _) in enumerate(channels)]}]
    if mesh.texture is not None:
        image_view = buffer.view(_png_bytes(path, mesh.texture))
        document["images"] = [{"name": f"{mesh.name}_texture", "bufferView": image_view, "mimeType": "image/png"}]
        document["samplers"] = [{"magFilter": _LINEAR_FILTER, "minFilter": _LINEAR_MIPMAP_LINEAR}]
        document["textures"] = [{"sampler": 0, "source": 0}]
        document["materials"] = [{"name": mesh.name, "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 0.8}}]
        primitive["material"] = 0
    document["meshes"] = [gltf_mesh]
    binary = buffer.bytes()
    document["buffers"] = [{"byteLength": len(binary)}]
    document["bufferViews"] = buffer.views
    document["accessors"] = buffer.accessors
    return document, binary


def _glb_bytes(document: dict, binary: bytes) -> bytes:
    """GLB container: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros."""
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    length = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, length),
                     struct.pack("<II", len(text), _CHUNK_JSON), text,
                     struct.pack("<II", len(binary), _CHUNK_BIN), binary])


# --- USD ----------------------------------------------------------------------------------------

def usd_available() -> bool:
    """True when ``pxr`` (the ``usd-core`` package, the ``usd`` extra) imports."""
    try:
        import pxr.Usd  # noqa: F401
    except ImportError:
        return False
    return True


def write_usd(path: str | os.PathLike, vertices, faces, *, fps: float, uv=None, texture=None,
              name: str | None = None, meters_per_unit: float = 1.0,
              progress: ProgressCallback | None = None,
              cancel: CancelCallback | None = None) -> MeshExportReport:
    """A USD point cache: one ``UsdGeomMesh`` whose ``points`` are time-sampled at every frame.

    Stage metadata: ``upAxis = "Y"``, ``metersPerUnit`` (default 1: the studio's meshes are in
    metres), ``timeCodesPerSecond`` = ``framesPerSecond`` = ``fps``, ``startTimeCode`` 0,
    ``endTimeCode`` T − 1; the default prim is an Xform named after the mesh holding ``mesh``
    (``subdivisionScheme = "none"``: the triangles are rendered as they are, not subdivided), with
    per-frame ``extent`` and frame 0 as the points' default value. With ``uv``: ``primvars:st``
    (vertex interpolation); with a ``texture``: a ``UsdPreviewSurface`` material reading
    ``<stem>_texture.png`` written beside the file.
    """
    path = Path(path)
    if path.suffix.lower() not in (".usd", ".usda", ".usdc"):
        raise ValueError(f"{path}: a USD file name must end in .usd, .usda or .usdc")
    if not usd_available():
        raise UsdNotInstalledError(
            f"{path}: USD export needs Pixar's USD library (the 'pxr' module), which is not installed; "
            "install the 'usd' extra: pip install 'talking-head-studio[usd]' (or pip install usd-core)")
    from pxr import Sdf, Tf, Usd, UsdGeom, Vt

    mesh = _checked_mesh(path, vertices, faces, uv=uv, texture=texture, name=name, default_name=path.stem)
    fps = _checked_fps(path, fps, required=True)
    if isinstance(meters_per_unit, bool) or not isinstance(meters_per_unit, (int, float, np.number)) \
            or not math.isfinite(float(meters_per_unit)) or meters_per_unit <= 0:
        raise ValueError(f"{path}: meters_per_unit must be a positive number; got {meters_per_unit!r}")
    reporter = _Progress(path, progress, cancel)
    num_frames = len(mesh.vertices)

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, float(meters_per_unit))
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(num_frames - 1)
    root_path = Sdf.Path("/" + Tf.MakeValidIdentifier(mesh.name))
    root = UsdGeom.Xform.Define(stage, root_path)
    stage.SetDefaultPrim(root.GetPrim())
    usd_mesh = UsdGeom.Mesh.Define(stage, root_path.AppendChild("mesh"))
    usd_mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    usd_mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    usd_mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(mesh.faces), 3, dtype=np.int32)))
    usd_mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(mesh.faces.astype(np.int32).ravel()))
    points = usd_mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(mesh.vertices[0]))
    extent = usd_mesh.CreateExtentAttr()
    lows, highs = mesh.vertices.min(axis=1), mesh.vertices.max(axis=1)
    extent.Set(Vt.Vec3fArray.FromNumpy(np.stack([lows[0], highs[0]])))
    for t in range(num_frames):
        if t % 32 == 0:
            reporter.report(0.9 * t / num_frames)
        points.Set(Vt.Vec3fArray.FromNumpy(mesh.vertices[t]), Usd.TimeCode(t))
        extent.Set(Vt.Vec3fArray.FromNumpy(np.stack([lows[t], highs[t]])), Usd.TimeCode(t))
    files: dict[Path, bytes] = {}
    if mesh.uv is not None:
        primvar = UsdGeom.PrimvarsAPI(usd_mesh.GetPrim()).CreatePrimvar(
            "st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
        primvar.Set(Vt.Vec2fArray.FromNumpy(mesh.uv))
    if mesh.texture is not None:
        texture_path = path.with_name(f"{path.stem}_texture.png")
        files[texture_path] = _png_bytes(path, mesh.texture)
        _usd_texture_material(stage, usd_mesh, root_path, "./" + texture_path.name)
    reporter.report(0.9)
    partial = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not stage.GetRootLayer().Export(str(partial), comment=f"{_GENERATOR}: {mesh.name}"):
            raise OSError(f"{path}: USD could not write the file")
        reporter.check()
        for file, data in files.items():
            _atomic_write(file, data)
        os.replace(partial, path)
    except Tf.ErrorException as exc:
        raise OSError(f"{path}: USD could not write the file: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    reporter.finish()
    return _report([path, *files], mesh)


def _usd_texture_material(stage, usd_mesh, root_path, texture_asset: str) -> None:
    """A UsdPreviewSurface whose diffuse colour reads ``texture_asset`` at ``primvars:st``."""
    from pxr import Sdf, UsdShade

    material = UsdShade.Material.Define(stage, root_path.AppendChild("material"))
    surface = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("surface"))
    surface.CreateIdAttr("UsdPreviewSurface")
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.8)
    surface.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
    reader = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("st_reader"))
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
    image = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("texture"))
    image.CreateIdAttr("UsdUVTexture")
    image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(texture_asset)
    image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(image.ConnectableAPI(), "rgb")
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(usd_mesh.GetPrim()).Bind(material)


# --- plugin registration ------------------------------------------------------------------------

def _exporter(writer):
    """The registry's ``"mesh"`` calling convention, ``export(vertices, faces, path, *, fps, **options)``."""
    def export(vertices, faces, path, *, fps, **options) -> MeshExportReport:
        return writer(path, vertices, faces, fps=fps, **options)

    export.__doc__ = writer.__doc__
    return export


_COMMON_OPTIONS = ("uv (V×2, OBJ convention), texture (H×W×3|4 uint8, needs uv), name, "
                   "progress(fraction), cancel()")


def register(registry) -> None:
    registry.add(ExporterSpec(
        name="mesh_obj", label="Mesh sequence (OBJ per frame)", kind="mesh", extensions=(".obj",),
        export=_exporter(write_obj_sequence),
        description="A folder (take.obj → take/) of take_000000.obj…, with .mtl + PNG when textured. "
                    f"Options: {_COMMON_OPTIONS}."))
    registry.add(ExporterSpec(
        name="mesh_ply", label="Mesh sequence (PLY per frame)", kind="mesh", extensions=(".ply",),
        export=_exporter(write_ply_sequence),
        description="A folder (take.ply → take/) of binary little-endian take_000000.ply… "
                    f"(uv as s, t). Options: {_COMMON_OPTIONS}."))
    registry.add(ExporterSpec(
        name="mesh_npy", label="Mesh sequence (NumPy NPY)", kind="mesh", extensions=(".npy",),
        export=_exporter(write_npy),
        description="take.npy (T, V, 3) float32 as VOCA/FaceFormer use, take_faces.npy (F, 3) int32 "
                    "beside it (and take_uv.npy with uv). Options: uv, progress(fraction), cancel()."))
    registry.add(ExporterSpec(
        name="mesh_glb", label="Animated mesh (glTF/GLB, morph targets)", kind="mesh",
        extensions=(".glb", ".gltf"), export=_exporter(write_gltf),
        description="One mesh animated by PCA morph targets (LINEAR weights animation; Blender imports "
                    "them as shape keys pca_00…); .gltf writes a .bin beside. Options: tolerance (mesh "
                    "units, default 1e-4 × bounding-box diagonal), max_targets (default 64), "
                    "weight_range ('unit' 0…1 or 'signed'), rigid (head motion as the node's animated "
                    "rotation/translation, default True), normals (default True), "
                    f"{_COMMON_OPTIONS}."))
    registry.add(ExporterSpec(
        name="mesh_usd", label="Mesh point cache (USD)", kind="mesh", extensions=(".usd", ".usda", ".usdc"),
        export=_exporter(write_usd),
        description="A UsdGeomMesh with points time-sampled per frame (timeCodesPerSecond = fps, Y up); "
                    "needs the 'usd' extra (usd-core). Options: meters_per_unit (default 1), "
                    f"{_COMMON_OPTIONS}."))
