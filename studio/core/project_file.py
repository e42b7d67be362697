"""Project files (``.thproj``): a zip holding ``project.json`` (versioned schema) and ``arrays.npz``.

* No pickle anywhere: JSON for structure, ``np.load(allow_pickle=False)`` for arrays.
* Saved atomically (temporary file beside the target, fsync, rename): a crash mid-save leaves the
  previous file intact.
* Loading validates everything and builds a *new* :class:`~studio.core.document.Project`; any
  problem raises :class:`ProjectFileError` naming the file and the field, and the document that is
  open stays untouched. Zip members and sizes are checked before anything is decompressed.
* Older schema versions migrate step by step through :data:`MIGRATIONS`; newer ones are refused.
* :func:`autosave_path` gives the recovery file of a project (per user, outside the project folder).

``project.json`` (version 4)::

    {"format": "studio-project", "version": 4, "saved_by": "...", "fps": 25.0, "num_frames": 250,
     "sources": [{"role": "audio", "path": "/abs/speech.wav", "relpath": "speech.wav", "sha256": "…"}],
     "identity": null | [[x, y, z] × 21],
     "portrait_keypoints": null | [[x, y] × 21],                  # image pixels, placed by hand
     "mesh_keypoints": null | [vertex id | null × 21],           # on the head mesh, picked by hand
     "base": null | {"generator": "rig", "settings": {...}, "values": "base_values",
                     "conditions": "base_conditions"},          # names of arrays in arrays.npz
     "layers": [{"id", "name", "blend": "REPLACE"|"ADD", "influence", "mute",
                 "curves": {channel: {"frames", "values", "interpolation", "extrapolation",
                                      "slopes"?: [slope | null per key]}}}],     # set handles only
     "emotion_segments": [{"id", "label", "start", "end", "strength", "blend_in", "blend_out"}],
     "controls": {"intensity": curve | null, "overrides": {eye channel: curve}},
     "locks": [group, ...], "limits": {channel: [low, high]}}

Version history: 1 → 2 added ``portrait_keypoints`` (a version-1 file has none); 2 → 3 added
``mesh_keypoints`` (a version-2 file has none); 3 → 4 added a curve's optional ``slopes``, the
Bézier handles an animator set (a version-3 file has auto handles only, and a studio that reads
only version 3 refuses a version-4 file rather than drop the handles).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

import studio
from studio.core.safe_io import atomic_write, load_npz
from studio.core.document import BaseMotion, EmotionSegment, Layer, Project, Source
from studio.core.fcurve import FCurve

FORMAT = "studio-project"
VERSION = 4
EXTENSION = ".thproj"
JSON_MEMBER = "project.json"
ARRAYS_MEMBER = "arrays.npz"
MAX_JSON_BYTES = 256 << 20
MAX_ARRAYS_BYTES = 4 << 30



def _v1_to_v2(doc: dict) -> dict:
    doc.setdefault("portrait_keypoints", None)
    return doc


def _v2_to_v3(doc: dict) -> dict:
    doc.setdefault("mesh_keypoints", None)
    return doc


def _v3_to_v4(doc: dict) -> dict:
    return doc  # curves without "slopes" have auto handles, as before


#: ``MIGRATIONS[v]`` turns a version-``v`` project.json dict into a version ``v + 1`` one.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


class ProjectFileError(ValueError):
    """A project file cannot be read or written; the message names the file and what is wrong."""


# --- saving -------------------------------------------------------------------------------------

def save_project(project: Project, path: str | Path, *, mark_clean: bool = True) -> Path:
    """Save atomically to ``path``. ``mark_clean=False`` for autosaves (the document stays modified)."""
    path = Path(path)
    folder = path.resolve().parent
    arrays: dict[str, np.ndarray] = {}
    base = None
    if project.base is not None:
        arrays["base_values"] = project.base.values
        arrays["base_conditions"] = project.base.conditions
        base = {"generator": project.base.generator, "settings": dict(project.base.settings),
                "values": "base_values", "conditions": "base_conditions"}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "saved_by": f"talking-head-studio {studio.__version__}",
        "fps": project.fps,
        "num_frames": project.num_frames,
        "sources": [_source_to_dict(s, folder) for s in project.sources.values()],
        "identity": None if project.identity is None else project.identity.tolist(),
        "portrait_keypoints": None if project.portrait_keypoints is None else project.portrait_keypoints.tolist(),
        "mesh_keypoints": None if project.mesh_keypoints is None else list(project.mesh_keypoints),
        "base": base,
        "layers": [{"id": l.id, "name": l.name, "blend": l.blend.value, "influence": float(l.influence),
                    "mute": bool(l.mute), "curves": {c: curve.to_dict() for c, curve in l.curves.items()}}
                   for l in project.layers],
        "emotion_segments": [{"id": s.id, "label": s.label, "start": s.start, "end": s.end,
                              "strength": float(s.strength), "blend_in": s.blend_in, "blend_out": s.blend_out}
                             for s in project.emotion_segments],
        "controls": {"intensity": None if project.intensity is None else project.intensity.to_dict(),
                     "overrides": {c: curve.to_dict() for c, curve in project.overrides.items()}},
        "locks": sorted(project.locked_groups),
        "limits": {c: list(lim) for c, lim in project.limits.items()},
    }
    try:
        text = json.dumps(doc, indent=1, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProjectFileError(f"{path}: project cannot be written as JSON: {exc}") from None
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(JSON_MEMBER, text)
        z.writestr(ARRAYS_MEMBER, npz.getvalue(), compress_type=zipfile.ZIP_STORED)
    try:
        atomic_write(path, buf.getvalue())
    except OSError as exc:
        raise ProjectFileError(f"{path}: cannot save project: {exc.strerror or exc}") from None
    if mark_clean:
        project.undo_stack.set_clean()
    return path


def _source_to_dict(source: Source, folder: Path) -> dict:
    absolute = Path(source.path).resolve()
    try:
        rel = os.path.relpath(absolute, folder)
    except ValueError:  # another drive on Windows
        rel = None
    return {"role": source.role, "path": str(absolute), "relpath": rel, "sha256": source.sha256}


# --- loading ------------------------------------------------------------------------------------

def load_project(path: str | Path) -> Project:
    """Read a project file into a new, clean :class:`Project`; raise ProjectFileError on any problem."""
    path = Path(path)
    try:
        raw_json, raw_arrays = _read_members(path)
        doc = _parse_json(raw_json)
        doc = _migrate(doc)
        arrays = _load_arrays(raw_arrays)
        return _build(doc, arrays, path.resolve().parent)
    except ProjectFileError as exc:
        raise ProjectFileError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ProjectFileError(f"{path}: cannot read project: {exc.strerror or exc}") from None


def _read_members(path: Path) -> tuple[bytes, bytes]:
    try:
        with zipfile.ZipFile(path) as z:
            infos = {i.filename: i for i in z.infolist()}
            extra = sorted(set(infos) - {JSON_MEMBER, ARRAYS_MEMBER})
            if extra:
                raise ProjectFileError(f"unexpected entries in the project archive: {extra[:5]}")
            if JSON_MEMBER not in infos:
                raise ProjectFileError(f"not a project: {JSON_MEMBER} is missing")
            for name, limit in ((JSON_MEMBER, MAX_JSON_BYTES), (ARRAYS_MEMBER, MAX_ARRAYS_BYTES)):
                if name in infos and infos[name].file_size > limit:
                    raise ProjectFileError(f"{name} declares {infos[name].file_size} bytes, above the limit of {limit}")
            raw_json = z.read(JSON_MEMBER)
            raw_arrays = z.read(ARRAYS_MEMBER) if ARRAYS_MEMBER in infos else b""
    except zipfile.BadZipFile as exc:
        raise ProjectFileError(f"not a project file or truncated ({exc})") from None
    except (EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise ProjectFileError(f"damaged project archive ({exc})") from None
    except zlib.error as exc:  # a corrupt deflate stream
        raise ProjectFileError(f"damaged project archive ({exc})") from None
    return raw_json, raw_arrays


def _parse_json(raw: bytes) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectFileError(f"{JSON_MEMBER} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ProjectFileError(f"{JSON_MEMBER} must hold a JSON object")
    if doc.get("format") != FORMAT:
        raise ProjectFileError(f"not a Talking Head Studio project (format {doc.get('format')!r})")
    return doc


def _migrate(doc: dict) -> dict:
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectFileError(f"invalid schema version {version!r}")
    if version > VERSION:
        raise ProjectFileError(f"written by a newer Talking Head Studio (schema version {version}; this one "
                               f"reads up to {VERSION}). Update the studio to open it.")
    while version < VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ProjectFileError(f"no migration from schema version {version}")
        doc = step(dict(doc))
        version += 1
        doc["version"] = version
    return doc


def _load_arrays(raw: bytes) -> dict[str, np.ndarray]:
    if not raw:
        return {}
    try:
        return load_npz(raw, MAX_ARRAYS_BYTES)
    except ValueError as exc:
        raise ProjectFileError(f"{ARRAYS_MEMBER} is damaged ({exc})") from None


class _Fields:
    """Typed access to a JSON object that names the offending field in every error."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise ProjectFileError(f"{where} must be an object")
        self.data, self.where = data, where

    def get(self, key: str, types: type | tuple, default: Any = ..., optional: bool = False) -> Any:
        if key not in self.data:
            if default is not ...:
                return default
            raise ProjectFileError(f"{self.where}.{key} is missing")
        value = self.data[key]
        if value is None and optional:
            return None
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ProjectFileError(f"{self.where}.{key} has the wrong type (bool)")
        if not isinstance(value, types):
            raise ProjectFileError(f"{self.where}.{key} has the wrong type ({type(value).__name__})")
        return value


def _guard(where: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except ProjectFileError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        message = exc.args[0] if exc.args else exc
        raise ProjectFileError(f"{where}: {message}") from None


def _curve(data: Any, where: str) -> FCurve:
    f = _Fields(data, where)
    for key in ("frames", "values", "interpolation"):
        f.get(key, list)
    return _guard(where, lambda: FCurve.from_dict(data))


def _build(doc: dict, arrays: dict[str, np.ndarray], folder: Path) -> Project:
    top = _Fields(doc, "project")
    fps = top.get("fps", (int, float))
    num_frames = top.get("num_frames", int)
    project = _guard("project timing", lambda: Project(fps, num_frames))
    slot = project._set_slot  # building a fresh document: no undo history, no one listening yet

    for i, raw in enumerate(top.get("sources", list)):
        s = _Fields(raw, f"sources[{i}]")
        role, path, rel, sha = s.get("role", str), s.get("path", str), s.get("relpath", str, None, True), s.get("sha256", str)
        if rel is not None and (folder / rel).exists():
            path = str((folder / rel).resolve())
        slot(("source", role), _guard(f"sources[{i}]", lambda: Source(role, path, sha)))

    for key, columns in (("identity", 3), ("portrait_keypoints", 2)):
        raw = top.get(key, list, optional=True)
        if raw is not None:
            points = _guard(key, lambda raw=raw: np.array(raw, dtype=np.float64))
            if points.shape != (21, columns) or not np.all(np.isfinite(points)):
                raise ProjectFileError(f"{key} must be 21 × {columns} finite numbers, got shape {points.shape}")
            points.setflags(write=False)
            slot((key,), points)

    mesh_keypoints = top.get("mesh_keypoints", list, optional=True)
    if mesh_keypoints is not None:
        if len(mesh_keypoints) != 21 or not all(v is None or (isinstance(v, int) and not isinstance(v, bool)
                                                              and v >= 0) for v in mesh_keypoints):
            raise ProjectFileError("mesh_keypoints must be 21 vertex ids (non-negative integers or null)")
        slot(("mesh_keypoints",), tuple(mesh_keypoints) if any(v is not None for v in mesh_keypoints) else None)

    base = top.get("base", dict, optional=True)
    if base is not None:
        b = _Fields(base, "base")
        names = (b.get("values", str), b.get("conditions", str))
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ProjectFileError(f"base motion arrays {missing} are missing from {ARRAYS_MEMBER}")
        slot(("base",), _guard("base", lambda: BaseMotion(arrays[names[0]], arrays[names[1]],
                                                           b.get("generator", str, ""), b.get("settings", dict, {}))))

    layers = []
    for i, raw in enumerate(top.get("layers", list)):
        l = _Fields(raw, f"layers[{i}]")
        curves_raw = _Fields(l.get("curves", dict), f"layers[{i}].curves")
        curves = {c: _curve(v, f"layers[{i}].curves[{c!r}]") for c, v in curves_raw.data.items()}
        layers.append(_guard(f"layers[{i}]", lambda: Layer(
            l.get("name", str), l.get("blend", str), l.get("influence", (int, float)), l.get("mute", bool),
            curves, l.get("id", str))))
    if len({l.id for l in layers}) != len(layers):
        raise ProjectFileError("layer ids are not unique")
    slot(("layers",), tuple(layers))

    segments = []
    for i, raw in enumerate(top.get("emotion_segments", list)):
        s = _Fields(raw, f"emotion_segments[{i}]")
        segments.append(_guard(f"emotion_segments[{i}]", lambda: EmotionSegment(
            s.get("label", str), s.get("start", int), s.get("end", int), s.get("strength", (int, float)),
            s.get("blend_in", int), s.get("blend_out", int), s.get("id", str))))
    slot(("segments",), tuple(segments))

    controls = _Fields(top.get("controls", dict), "controls")
    intensity = controls.get("intensity", dict, optional=True)
    if intensity is not None:
        slot(("curve", "intensity"), _curve(intensity, "controls.intensity"))
    for channel, raw in _Fields(controls.get("overrides", dict), "controls.overrides").data.items():
        _guard(f"controls.overrides[{channel!r}]", lambda: project._check_control_path(("override", channel)))
        slot(("curve", "override", channel), _curve(raw, f"controls.overrides[{channel!r}]"))

    locks = top.get("locks", list)
    _guard("locks", lambda: project.lock_groups(locks) if locks else None)
    for channel, lim in _Fields(top.get("limits", dict), "limits").data.items():
        if not (isinstance(lim, list) and len(lim) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                                for x in lim)):
            raise ProjectFileError(f"limits[{channel!r}] must be [low, high]")
        _guard(f"limits[{channel!r}]", lambda: project.set_limit(channel, lim[0], lim[1]))
    project.undo_stack.clear()
    return project


# --- recovery -----------------------------------------------------------------------------------

def recovery_folder() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "talking-head-studio" / "recovery"


def autosave_path(project_path: str | Path | None, session: str = "untitled", folder: str | Path | None = None) -> Path:
    """The recovery file for a project: one per project path (or per session for unsaved projects),
    in ``folder`` (default :func:`recovery_folder`)."""
    folder = recovery_folder() if folder is None else Path(folder)
    if project_path is None:
        return folder / f"{session}{EXTENSION}"
    p = Path(project_path).resolve()
    digest = hashlib.sha1(str(p).encode()).hexdigest()[:10]
    return folder / f"{p.stem}-{digest}{EXTENSION}"
