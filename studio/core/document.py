"""The project document: sources, the generated base motion, edit layers and per-frame controls.

Vocabulary follows Blender: a :class:`Layer` is an NLA-style layer of F-curves (one per motion
channel) with a blend type (``REPLACE`` or ``ADD``) and an influence; keyframes live in
:class:`~studio.core.fcurve.FCurve`. Beside the motion, the project holds the per-frame *controls*
that condition the generators: the intensity curve (0…2, 1 = as generated), emotion segments
(label, strength, start, end, blend in/out) and gaze/blink overrides.

Evaluation (:meth:`Project.evaluate`), vectorized over frames:

1. the generated base motion (neutral where there is none);
2. each unmuted layer bottom to top: ``REPLACE`` mixes ``(1 − influence)·below + influence·curve``,
   ``ADD`` adds ``influence·curve`` — on every channel the layer has a curve for, except channels of
   *locked* groups, which keep the generated motion;
3. gaze/blink overrides replace their eye channel between the override curve's first and last key;
4. each channel is clamped to its magnitude limits and to its valid range.

Every edit is a method of :class:`Project` that pushes a small undoable command
(:mod:`studio.core.commands`) and emits events (:attr:`Project.events`) that views observe.
One exception, for a generation streaming in: :meth:`Project.preview_base` shows frames as they
come without an undo step; the finished result is then recorded once (:meth:`Project.set_base`).

Re-generating only what changed: :meth:`Project.stale_frames` says which frames of the base
motion were generated under other conditions than the current ones, and :func:`splice_base` puts
newly generated values on exactly those frames, keeping every other frame bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from studio.core.commands import SetSlot, UndoStack
from studio.core.events import EmitterGroup
from studio.core.fcurve import FCurve, Interpolation
from studio.core.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS
from studio.core.motion import (
    CHANNEL_GROUPS,
    CHANNEL_INDEX,
    CHANNEL_RANGES,
    CHANNELS,
    EYE_CHANNELS,
    NEUTRAL_FRAME,
    NUM_CHANNELS,
    validate_motion,
)

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt")
SOURCE_ROLES: tuple[str, ...] = ("portrait", "mesh", "audio", "transcript")

#: Per-frame generator conditions, in the column order of :meth:`Project.conditions`.
#: Override columns are NaN on frames without an override.
CONDITION_CHANNELS: tuple[str, ...] = (
    ("intensity",) + tuple(f"emotion.{e}" for e in EMOTIONS) + tuple(f"override.{c}" for c in EYE_CHANNELS))
INTENSITY_RANGE = (0.0, 2.0)
#: Frames over which re-generated frames fade in from kept neighbours (:func:`splice_base`).
SPLICE_FADE = 4
_RANGE_LOW = np.array([CHANNEL_RANGES[c][0] for c in CHANNELS])
_RANGE_HIGH = np.array([CHANNEL_RANGES[c][1] for c in CHANNELS])


class BlendType(str, Enum):
    REPLACE = "REPLACE"
    ADD = "ADD"


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Source:
    """A file the project was made from, with a content hash to notice when it changed."""

    role: str
    path: str
    sha256: str

    def __post_init__(self):
        if self.role not in SOURCE_ROLES:
            raise ValueError(f"unknown source role {self.role!r}; expected one of {', '.join(SOURCE_ROLES)}")

    @classmethod
    def from_file(cls, role: str, path: str | Path) -> "Source":
        p = Path(path)
        digest = hashlib.sha256()
        try:
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ValueError(f"{p}: cannot read {role} source: {exc.strerror or exc}") from None
        return cls(role, str(p), digest.hexdigest())


@dataclass(frozen=True, eq=False)
class BaseMotion:
    """The generated motion (T, 74) and the per-frame conditions (T, 13) it was generated with."""

    values: np.ndarray
    conditions: np.ndarray
    generator: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        values = validate_motion(self.values, "base motion")
        conditions = np.asarray(self.conditions, dtype=np.float32)
        if conditions.shape != (len(values), len(CONDITION_CHANNELS)):
            raise ValueError(f"base motion conditions: expected shape ({len(values)}, {len(CONDITION_CHANNELS)}), "
                             f"got {conditions.shape}")
        try:  # settings travel in the project file's JSON: refuse what could not be saved, now
            json.dumps(dict(self.settings), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"base motion settings must be plain JSON data: {exc}") from None
        object.__setattr__(self, "values", _readonly(values))
        object.__setattr__(self, "conditions", _readonly(conditions))
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def __len__(self) -> int:
        return len(self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseMotion):
            return NotImplemented
        return (self.generator == other.generator and dict(self.settings) == dict(other.settings)
                and np.array_equal(self.values, other.values)
                and np.array_equal(self.conditions, other.conditions, equal_nan=True))

    __hash__ = None


@dataclass(frozen=True)
class Layer:
    """An edit layer: F-curves keyed by channel name, blended over the layers below it."""

    name: str
    blend: BlendType = BlendType.REPLACE
    influence: float = 1.0
    mute: bool = False
    curves: Mapping[str, FCurve] = field(default_factory=dict)
    id: str = field(default_factory=_new_id)

    def __post_init__(self):
        object.__setattr__(self, "blend", BlendType(self.blend))
        if not 0.0 <= float(self.influence) <= 1.0:
            raise ValueError(f"layer influence must be within 0…1, got {self.influence}")
        unknown = [c for c in self.curves if c not in CHANNEL_INDEX]
        if unknown:
            raise ValueError(f"layer {self.name!r}: unknown channels {unknown}")
        empty = [c for c, curve in self.curves.items() if len(curve) == 0]
        if empty:
            raise ValueError(f"layer {self.name!r}: empty F-curves for {empty}")
        object.__setattr__(self, "curves", MappingProxyType(dict(self.curves)))

    def with_curve(self, channel: str, curve: FCurve | None) -> "Layer":
        curves = dict(self.curves)
        if curve is None or len(curve) == 0:
            curves.pop(channel, None)
        else:
            curves[channel] = curve
        return replace(self, curves=curves)


@dataclass(frozen=True)
class EmotionSegment:
    """An emotion over frames [start, end) with a strength, faded in and out over blend_in/blend_out frames."""

    label: str
    start: int
    end: int
    strength: float = 1.0
    blend_in: int = 0
    blend_out: int = 0
    id: str = field(default_factory=_new_id)

    def __post_init__(self):
        if self.label not in EMOTIONS:
            raise ValueError(f"unknown emotion {self.label!r}; expected one of {', '.join(EMOTIONS)}")
        if not self.start < self.end:
            raise ValueError(f"emotion segment must end after it starts (start {self.start}, end {self.end})")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"emotion strength must be within 0…1, got {self.strength}")
        if self.blend_in < 0 or self.blend_out < 0 or self.blend_in + self.blend_out > self.end - self.start:
            raise ValueError("emotion blend in/out must be non-negative and fit inside the segment")


def emotion_weights(segments: Iterable[EmotionSegment], frames) -> np.ndarray:
    """Per-frame emotion mixture (T, 8): each label's strength ramped by blend in/out.

    Overlapping segments of one label take the maximum; when the non-neutral weights sum above 1
    they are scaled to sum 1; ``neutral`` takes the rest, so every row sums to 1.
    """
    t = np.asarray(frames, dtype=np.float64)
    w = np.zeros((t.size, len(EMOTIONS)))
    for seg in segments:
        ramp = ((t >= seg.start) & (t < seg.end)).astype(np.float64)
        if seg.blend_in:
            ramp = np.minimum(ramp, (t - seg.start + 1) / (seg.blend_in + 1))
        if seg.blend_out:
            ramp = np.minimum(ramp, (seg.end - t) / (seg.blend_out + 1))
        col = EMOTIONS.index(seg.label)
        w[:, col] = np.maximum(w[:, col], seg.strength * np.clip(ramp, 0.0, 1.0))
    w[:, 0] = 0.0
    total = w.sum(axis=1)
    over = total > 1.0
    w[over] /= total[over, None]
    w[:, 0] = 1.0 - np.minimum(total, 1.0)
    return w


def splice_base(base: BaseMotion | None, values: np.ndarray, conditions: np.ndarray, replace_frames,
                fade: int = SPLICE_FADE, generator: str | None = None,
                settings: Mapping[str, Any] | None = None) -> BaseMotion:
    """``base`` with the frames of ``replace_frames`` (bool mask over the T frames of ``values``)
    taken from ``values`` (T, 74) and ``conditions`` (T, 13): the result of re-generating a clip's
    *stale* frames. Kept frames stay bit-identical (values and conditions); a replaced frame within
    ``fade`` frames of a kept one cross-fades from the old value to the new one (weight
    d / (fade + 1) at distance d), so a re-generated run does not start or end with a step. Frames
    beyond the old base (or with no base) are always replaced. The result is T frames long."""
    values = validate_motion(values, "re-generated motion")
    conditions = np.asarray(conditions, dtype=np.float32)
    T = len(values)
    if conditions.shape != (T, len(CONDITION_CHANNELS)):
        raise ValueError(f"re-generated conditions: expected shape ({T}, {len(CONDITION_CHANNELS)}), "
                         f"got {conditions.shape}")
    mask = np.zeros(T, dtype=bool)
    given = np.asarray(replace_frames, dtype=bool).reshape(-1)[:T]
    mask[:len(given)] = given
    old_n = 0 if base is None else min(len(base), T)
    mask[old_n:] = True
    old_values = values.astype(np.float32, copy=True)
    old_conditions = conditions.copy()
    if old_n:
        old_values[:old_n] = base.values[:old_n]
        old_conditions[:old_n] = base.conditions[:old_n]
    kept = ~mask
    weight = np.ones((T, 1))
    if fade > 0 and kept.any():
        index = np.arange(T)
        previous = np.maximum.accumulate(np.where(kept, index, -1))  # the last kept frame at or before
        following = np.minimum.accumulate(np.where(kept, index, T)[::-1])[::-1]  # the first at or after
        distance = np.minimum(np.where(previous >= 0, index - previous, T + 1),
                              np.where(following < T, following - index, T + 1))
        weight = np.clip(distance / (fade + 1.0), 0.0, 1.0)[:, None]
    blended = ((1.0 - weight) * old_values + weight * values).astype(np.float32)
    out = np.where(mask[:, None], blended, old_values)
    out_conditions = np.where(mask[:, None], conditions, old_conditions)
    return BaseMotion(out, out_conditions,
                      generator if generator is not None else (base.generator if base is not None else ""),
                      settings if settings is not None else (dict(base.settings) if base is not None else {}))


def _keypoint_array(points, columns: int, what: str) -> np.ndarray | None:
    """None, or the 21 keypoints as a read-only float64 (21, columns) array (ValueError naming ``what``)."""
    if points is None:
        return None
    value = np.asarray(points, dtype=np.float64)
    if value.shape != (NUM_KEYPOINTS, columns) or not np.all(np.isfinite(value)):
        raise ValueError(f"{what} must be finite with shape ({NUM_KEYPOINTS}, {columns}), got {value.shape}")
    return _readonly(value)


def _vertex_id(vertex, what: str) -> int | None:
    if vertex is None:
        return None
    if isinstance(vertex, bool) or not float(vertex).is_integer() or int(vertex) < 0:
        raise ValueError(f"{what}: a vertex id must be a non-negative integer, got {vertex!r}")
    return int(vertex)


def _check_channel(channel: str) -> None:
    if channel not in CHANNEL_INDEX:
        raise KeyError(f"unknown motion channel {channel!r}")


class Project:
    """The document every view observes and every edit goes through."""

    #: One event per kind of state; ``changed`` follows every edit that can change the evaluated
    #: motion (all but sources, identity and portrait keypoints), with the edited ``slot``.
    EVENTS = ("sources", "identity", "portrait_keypoints", "mesh_keypoints", "timing", "base", "layers", "keys",
              "emotion", "controls", "locks", "limits", "changed")

    def __init__(self, fps: float = 25.0, num_frames: int = 0):
        self._check_timing(fps, num_frames)
        self._fps = float(fps)
        self._num_frames = int(num_frames)
        self._sources: dict[str, Source] = {}
        self._identity: np.ndarray | None = None
        self._portrait_keypoints: np.ndarray | None = None
        self._mesh_keypoints: tuple[int | None, ...] | None = None
        self._base: BaseMotion | None = None
        self._layers: tuple[Layer, ...] = ()
        self._segments: tuple[EmotionSegment, ...] = ()
        self._control_curves: dict[tuple, FCurve] = {}  # ("intensity",) / ("override", eye channel)
        self._locks: frozenset[str] = frozenset()
        self._limits: dict[str, tuple[float, float]] = {}
        self.events = EmitterGroup(self, self.EVENTS)
        self.undo_stack = UndoStack()

    # --- read access -------------------------------------------------------------------------
    fps = property(lambda self: self._fps)
    num_frames = property(lambda self: self._num_frames)
    duration = property(lambda self: self._num_frames / self._fps)
    sources = property(lambda self: MappingProxyType(self._sources))
    identity = property(lambda self: self._identity, doc="The identity's canonical keypoints (21, 3), or None.")
    portrait_keypoints = property(
        lambda self: self._portrait_keypoints,
        doc="The portrait's 21 keypoints (21, 2) in image pixels (x right, y down) as placed or corrected "
            "by hand, or None: the face detector's fit is used as it is.")
    mesh_keypoints = property(
        lambda self: self._mesh_keypoints,
        doc="Vertex ids of the 21 keypoints on the head mesh, as assigned by hand in the 3D view: a tuple "
            "of 21 (KEYPOINT_NAMES order) with None where not assigned, or None: the mesh's own keypoints "
            "(FLAME topology, or a keypoint JSON) are used as they are.")
    base = property(lambda self: self._base)
    layers = property(lambda self: self._layers)
    emotion_segments = property(lambda self: self._segments)
    locked_groups = property(lambda self: self._locks)
    limits = property(lambda self: MappingProxyType(self._limits))
    is_modified = property(lambda self: not self.undo_stack.is_clean)

    @property
    def intensity(self) -> FCurve | None:
        return self._control_curves.get(("intensity",))

    @property
    def overrides(self) -> Mapping[str, FCurve]:
        return MappingProxyType({k[1]: c for k, c in self._control_curves.items() if k[0] == "override"})

    def layer(self, layer_id: str) -> Layer:
        for layer in self._layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(f"no layer with id {layer_id!r}")

    def curve(self, path: tuple) -> FCurve | None:
        """The F-curve at ``path``: ``("layer", id, channel)``, ``("intensity",)`` or ``("override", channel)``."""
        return self._get_slot(("curve",) + tuple(path))

    # --- slots (the only place state changes; called by commands) -----------------------------
    def _get_slot(self, slot: tuple) -> Any:
        kind = slot[0]
        if kind == "source":
            return self._sources.get(slot[1])
        if kind == "identity":
            return self._identity
        if kind == "portrait_keypoints":
            return self._portrait_keypoints
        if kind == "mesh_keypoints":
            return self._mesh_keypoints
        if kind == "timing":
            return (self._fps, self._num_frames)
        if kind == "base":
            return self._base
        if kind == "layers":
            return self._layers
        if kind == "layer":
            return self.layer(slot[1])
        if kind == "curve":
            path = slot[1:]
            if path[0] == "layer":
                _check_channel(path[2])
                return self.layer(path[1]).curves.get(path[2])
            self._check_control_path(path)
            return self._control_curves.get(path)
        if kind == "segments":
            return self._segments
        if kind == "locks":
            return self._locks
        if kind == "limit":
            return self._limits.get(slot[1])
        raise KeyError(f"unknown project slot {slot!r}")

    def _set_slot(self, slot: tuple, value: Any) -> None:
        kind = slot[0]
        if kind == "source":
            if value is None:
                self._sources.pop(slot[1], None)
            else:
                self._sources[slot[1]] = value
            self.events.sources.emit(role=slot[1])
            return  # sources do not change the evaluated motion
        if kind == "identity":
            self._identity = value
            self.events.identity.emit()
            return
        if kind == "portrait_keypoints":
            self._portrait_keypoints = value
            self.events.portrait_keypoints.emit()
            return  # the portrait's fit does not change the evaluated motion
        if kind == "mesh_keypoints":
            self._mesh_keypoints = value
            self.events.mesh_keypoints.emit()
            return  # where the keypoints sit on the mesh does not change the motion either
        if kind == "timing":
            self._fps, self._num_frames = value
            self.events.timing.emit()
        elif kind == "base":
            self._base = value
            self.events.base.emit()
        elif kind == "layers":
            self._layers = value
            self.events.layers.emit()
        elif kind == "layer":
            self._layers = tuple(value if layer.id == slot[1] else layer for layer in self._layers)
            self.events.layers.emit(layer=slot[1])
        elif kind == "curve":
            path = slot[1:]
            if path[0] == "layer":
                layer = self.layer(path[1])
                self._layers = tuple(layer.with_curve(path[2], value) if l.id == path[1] else l for l in self._layers)
                self.events.keys.emit(path=path)
            else:
                if value is None or len(value) == 0:
                    self._control_curves.pop(path, None)
                else:
                    self._control_curves[path] = value
                self.events.controls.emit(path=path)
        elif kind == "segments":
            self._segments = value
            self.events.emotion.emit()
        elif kind == "locks":
            self._locks = value
            self.events.locks.emit()
        elif kind == "limit":
            if value is None:
                self._limits.pop(slot[1], None)
            else:
                self._limits[slot[1]] = value
            self.events.limits.emit(channel=slot[1])
        else:
            raise KeyError(f"unknown project slot {slot!r}")
        self.events.changed.emit(slot=slot)

    def _edit(self, slot: tuple, new: Any, text: str, merge_id=None) -> None:
        old = self._get_slot(slot)
        self.undo_stack.push(SetSlot(self, slot, old, new, text, merge_id))

    def copy(self) -> "Project":
        """A new project with the same state and no history (clean). Every slot holds an immutable
        value, so the copy shares them: cheap, and safe to hand to a worker thread (autosave)."""
        twin = Project(self._fps, self._num_frames)
        twin._sources = dict(self._sources)
        twin._identity = self._identity
        twin._portrait_keypoints = self._portrait_keypoints
        twin._mesh_keypoints = self._mesh_keypoints
        twin._base = self._base
        twin._layers = self._layers
        twin._segments = self._segments
        twin._control_curves = dict(self._control_curves)
        twin._locks = self._locks
        twin._limits = dict(self._limits)
        return twin

    def macro(self, text: str):
        """Group several edits into one undo step: ``with project.macro("Paste keys"): …``."""
        return self.undo_stack.macro(text)

    # --- sources, identity, timing, base -----------------------------------------------------
    def set_source(self, role: str, source: Source | None) -> None:
        if role not in SOURCE_ROLES:
            raise ValueError(f"unknown source role {role!r}")
        if source is not None and source.role != role:
            raise ValueError(f"a {source.role} source cannot be set as the {role}")
        self._edit(("source", role), source, f"Set {role}" if source else f"Remove {role}")

    def set_identity(self, canonical_keypoints: np.ndarray | None) -> None:
        value = _keypoint_array(canonical_keypoints, 3, "canonical keypoints")
        self._edit(("identity",), value, "Set identity")

    def set_portrait_keypoints(self, keypoints: np.ndarray | None) -> None:
        """Place the portrait's 21 keypoints by hand (21, 2) image pixels; None goes back to the
        detector's fit. The view that edits them also sets the identity they imply (one macro)."""
        value = _keypoint_array(keypoints, 2, "portrait keypoints")
        self._edit(("portrait_keypoints",), value, "Place face keypoints" if value is not None else "Reset face keypoints")

    def set_mesh_keypoint(self, name: str, vertex: int | None) -> None:
        """Assign the keypoint ``name`` to vertex ``vertex`` of the head mesh (None: unassign it)."""
        if name not in KEYPOINT_INDEX:
            raise KeyError(f"unknown keypoint {name!r}")
        ids = list(self._mesh_keypoints or (None,) * NUM_KEYPOINTS)
        ids[KEYPOINT_INDEX[name]] = _vertex_id(vertex, name)
        value = None if all(v is None for v in ids) else tuple(ids)
        self._edit(("mesh_keypoints",), value, f"Assign keypoint {name}" if vertex is not None else f"Unassign {name}")

    def set_mesh_keypoints(self, vertices) -> None:
        """Replace every assignment: 21 vertex ids (None where unassigned), or None for none."""
        value = None
        if vertices is not None:
            vertices = list(vertices)
            if len(vertices) != NUM_KEYPOINTS:
                raise ValueError(f"mesh keypoints: expected {NUM_KEYPOINTS} vertex ids, got {len(vertices)}")
            value = tuple(_vertex_id(v, f"keypoint {i}") for i, v in enumerate(vertices))
            if all(v is None for v in value):
                value = None
        self._edit(("mesh_keypoints",), value, "Assign mesh keypoints" if value else "Clear mesh keypoints")

    def preview_base(self, base: BaseMotion | None) -> None:
        """Put ``base`` in place *without* an undo step — a generation streaming in shows its frames
        as they come (views observe ``base``/``changed`` as usual). The one who previews ends it:
        ``preview_base(original)`` to put the original back, then :meth:`set_base` to record the
        result as one undo step (or nothing more, when the generation was cancelled)."""
        if base is not None and not isinstance(base, BaseMotion):
            raise TypeError(f"base must be a BaseMotion or None, got {type(base).__name__}")
        self._set_slot(("base",), base)

    @staticmethod
    def _check_timing(fps: float, num_frames: int) -> None:
        if not (np.isfinite(fps) and 1.0 <= fps <= 240.0):
            raise ValueError(f"fps must be within 1…240, got {fps}")
        if int(num_frames) != num_frames or num_frames < 0:
            raise ValueError(f"frame count must be a non-negative integer, got {num_frames}")

    def set_timing(self, fps: float | None = None, num_frames: int | None = None) -> None:
        """Change fps and/or length. Keys stay on their frame numbers (as in Blender)."""
        fps = self._fps if fps is None else float(fps)
        num_frames = self._num_frames if num_frames is None else num_frames
        self._check_timing(fps, num_frames)
        self._edit(("timing",), (fps, int(num_frames)), "Set frame rate and length")

    def set_base(self, base: BaseMotion | None) -> None:
        """Replace the generated base motion (extends the project to its length when longer)."""
        with self.macro("Generate motion"):
            self._edit(("base",), base, "Generate motion")
            if base is not None and len(base) > self._num_frames:
                self.set_timing(num_frames=len(base))

    # --- layers ------------------------------------------------------------------------------
    def add_layer(self, name: str = "Keys", blend: BlendType | str = BlendType.REPLACE,
                  influence: float = 1.0, index: int | None = None) -> str:
        layer = Layer(name, BlendType(blend), influence)
        layers = list(self._layers)
        layers.insert(len(layers) if index is None else index, layer)
        self._edit(("layers",), tuple(layers), f"Add layer {name}")
        return layer.id

    def remove_layer(self, layer_id: str) -> None:
        self.layer(layer_id)
        self._edit(("layers",), tuple(l for l in self._layers if l.id != layer_id), "Remove layer")

    def move_layer(self, layer_id: str, index: int) -> None:
        layer = self.layer(layer_id)
        layers = [l for l in self._layers if l.id != layer_id]
        layers.insert(index, layer)
        self._edit(("layers",), tuple(layers), "Reorder layers")

    def set_layer(self, layer_id: str, merge: bool = False, **changes: Any) -> None:
        """Change a layer's ``name``, ``blend``, ``influence`` or ``mute``."""
        allowed = {"name", "blend", "influence", "mute"}
        if set(changes) - allowed:
            raise TypeError(f"cannot set layer properties {sorted(set(changes) - allowed)}")
        new = replace(self.layer(layer_id), **changes)
        merge_id = ("layer", layer_id, tuple(sorted(changes))) if merge else None
        self._edit(("layer", layer_id), new, "Change layer", merge_id)

    def default_layer_id(self) -> str:
        """The top layer, created (as an undoable edit) when there is none."""
        return self._layers[-1].id if self._layers else self.add_layer("Keys")

    # --- keyframes (any curve path) ----------------------------------------------------------
    def _check_control_path(self, path: tuple) -> None:
        if path == ("intensity",):
            return
        if len(path) == 2 and path[0] == "override" and path[1] in EYE_CHANNELS:
            return
        raise KeyError(f"not a curve path: {path!r} (expected ('layer', id, channel), ('intensity',) "
                       f"or ('override', eye channel))")

    def insert_keys(self, path: tuple, frames, values, interpolation: Interpolation = Interpolation.BEZIER,
                    merge_id=None, slopes=None) -> None:
        """Insert keyframes on the curve at ``path`` (creating it); a key on an existing frame is
        replaced (keeping its set handle slope unless ``slopes`` are given: :meth:`FCurve.with_keys`)."""
        curve = self.curve(path) or FCurve()
        self._edit(("curve",) + tuple(path), curve.with_keys(frames, values, interpolation, slopes),
                   "Insert keyframes", merge_id)

    def set_key(self, path: tuple, frame: float, value: float) -> None:
        """Key one value at one frame, merging repeated calls on the same key into one undo step (slider drag)."""
        curve = self.curve(path)
        i = None if curve is None else curve.key_index(frame)
        interp = Interpolation.BEZIER if i is None else Interpolation(int(curve.interpolation[i]))
        self.insert_keys(path, [frame], [value], interp, merge_id=("set_key", tuple(path), float(frame)))

    def delete_keys(self, path: tuple, indices) -> None:
        self._edit(("curve",) + tuple(path), self._existing_curve(path).without_keys(indices), "Delete keyframes")

    def move_keys(self, selection: Mapping[tuple, Any], frame_delta: float = 0.0, value_delta: float = 0.0) -> None:
        """Move selected keys ``{path: indices}`` by a frame and value offset, as one undo step."""
        with self.macro("Move keyframes"):
            for path, indices in selection.items():
                curve = self._existing_curve(path).with_keys_moved(indices, frame_delta, value_delta)
                self._edit(("curve",) + tuple(path), curve, "Move keyframes")

    def set_interpolation(self, selection: Mapping[tuple, Any], mode: Interpolation) -> None:
        with self.macro(f"Set interpolation {Interpolation(mode).name.title()}"):
            for path, indices in selection.items():
                self._edit(("curve",) + tuple(path), self._existing_curve(path).with_interpolation(indices, mode),
                           "Set interpolation")

    def set_slopes(self, selection: Mapping[tuple, Any], slope: float = np.nan) -> None:
        """Set the Bézier handle slope (value per frame) of keys ``{path: indices}`` as one undo
        step; NaN puts them back to auto."""
        text = "Auto handles" if math.isnan(slope) else "Set handle slope"
        with self.macro(text):
            for path, indices in selection.items():
                self._edit(("curve",) + tuple(path), self._existing_curve(path).with_slopes(indices, slope), text)

    def set_curve(self, path: tuple, curve: FCurve | None, text: str = "Replace curve") -> None:
        """Replace a whole curve (paste, import, clear)."""
        self._edit(("curve",) + tuple(path), curve if curve is not None and len(curve) else None, text)

    def _existing_curve(self, path: tuple) -> FCurve:
        curve = self.curve(path)
        if curve is None:
            raise KeyError(f"no keyframes on {path!r}")
        return curve

    # --- emotion segments --------------------------------------------------------------------
    def segment(self, segment_id: str) -> EmotionSegment:
        for seg in self._segments:
            if seg.id == segment_id:
                return seg
        raise KeyError(f"no emotion segment with id {segment_id!r}")

    def add_emotion(self, label: str, start: int, end: int, strength: float = 1.0,
                    blend_in: int = 0, blend_out: int = 0) -> str:
        seg = EmotionSegment(label, int(start), int(end), float(strength), int(blend_in), int(blend_out))
        self._edit(("segments",), self._segments + (seg,), f"Add {label} segment")
        return seg.id

    def update_emotion(self, segment_id: str, merge: bool = False, **changes: Any) -> None:
        """Resize, relabel or change strength/blends of a segment."""
        allowed = {"label", "start", "end", "strength", "blend_in", "blend_out"}
        if set(changes) - allowed:
            raise TypeError(f"cannot set segment fields {sorted(set(changes) - allowed)}")
        new = replace(self.segment(segment_id), **changes)
        segments = tuple(new if s.id == segment_id else s for s in self._segments)
        merge_id = ("segment", segment_id, tuple(sorted(changes))) if merge else None
        self._edit(("segments",), segments, "Change emotion segment", merge_id)

    def remove_emotion(self, segment_id: str) -> None:
        self.segment(segment_id)
        self._edit(("segments",), tuple(s for s in self._segments if s.id != segment_id), "Remove emotion segment")

    # --- locks and limits --------------------------------------------------------------------
    def lock_groups(self, groups: Iterable[str], locked: bool = True) -> None:
        """Locked groups keep the generated motion; unlocked ones take the layers' keys."""
        groups = set(groups)
        unknown = groups - set(CHANNEL_GROUPS)
        if unknown:
            raise KeyError(f"unknown channel groups {sorted(unknown)}; expected some of {', '.join(CHANNEL_GROUPS)}")
        new = self._locks | groups if locked else self._locks - groups
        self._edit(("locks",), frozenset(new), ("Lock " if locked else "Unlock ") + ", ".join(sorted(groups)))

    def set_limit(self, channel: str, low: float | None, high: float | None = None) -> None:
        """Clamp a channel's evaluated value to [low, high]; ``low=None`` removes the limit."""
        _check_channel(channel)
        value = None
        if low is not None:
            low, high = float(low), float(high if high is not None else -low)
            if low > high:
                low, high = high, low  # a single magnitude given as negative, or swapped bounds
            value = (low, high)
        self._edit(("limit", channel), value, f"Limit {channel}")

    # --- evaluation --------------------------------------------------------------------------
    def _frames(self, frames) -> np.ndarray:
        if frames is None:
            return np.arange(self._num_frames)
        return np.atleast_1d(np.asarray(frames))

    def base_values(self, frames=None) -> np.ndarray:
        """The generated motion at ``frames`` (T, 74), neutral where nothing was generated."""
        t = self._frames(frames)
        out = np.tile(NEUTRAL_FRAME.astype(np.float64), (t.size, 1))
        if self._base is not None and t.size:
            idx = np.round(t).astype(np.int64)
            inside = (idx >= 0) & (idx < len(self._base))
            out[inside] = self._base.values[idx[inside]]
        return out

    def evaluate(self, frames=None) -> np.ndarray:
        """The final motion (T, 74) float32 at ``frames`` (all frames of the project when None)."""
        t = self._frames(frames)
        out = self.base_values(t)
        locked = np.zeros(NUM_CHANNELS, dtype=bool)
        for group in self._locks:
            locked[[CHANNEL_INDEX[c] for c in CHANNEL_GROUPS[group]]] = True
        for layer in self._layers:
            if layer.mute or layer.influence <= 0.0:
                continue
            w = float(layer.influence)
            for channel, curve in layer.curves.items():
                col = CHANNEL_INDEX[channel]
                if locked[col]:
                    continue
                value = curve.evaluate(t)
                if layer.blend is BlendType.ADD:
                    out[:, col] += w * value
                elif w >= 1.0:
                    out[:, col] = value
                else:
                    out[:, col] += w * (value - out[:, col])
        for channel, curve in self.overrides.items():
            active = (t >= curve.frames[0]) & (t <= curve.frames[-1])
            if np.any(active):
                out[active, CHANNEL_INDEX[channel]] = curve.evaluate(t[active])
        low, high = self._bounds()
        return np.clip(out, low, high).astype(np.float32)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = _RANGE_LOW.copy(), _RANGE_HIGH.copy()
        for channel, (lo, hi) in self._limits.items():
            col = CHANNEL_INDEX[channel]
            low[col], high[col] = max(low[col], lo), min(high[col], hi)
            if low[col] > high[col]:  # a limit entirely outside the valid range pins to its nearest edge
                low[col] = high[col] = np.clip(lo if lo > high[col] else hi, CHANNEL_RANGES[channel][0],
                                               CHANNEL_RANGES[channel][1])
        return low, high

    # --- generator conditions ----------------------------------------------------------------
    def intensity_values(self, frames=None) -> np.ndarray:
        t = self._frames(frames).astype(np.float64)
        curve = self.intensity
        values = np.ones(t.shape) if curve is None else curve.evaluate(t)
        return np.clip(values, *INTENSITY_RANGE)

    def conditions(self, frames=None) -> np.ndarray:
        """Per-frame generator conditions (T, 13), columns :data:`CONDITION_CHANNELS`."""
        t = self._frames(frames).astype(np.float64)
        out = np.full((t.size, len(CONDITION_CHANNELS)), np.nan)
        out[:, 0] = self.intensity_values(t)
        out[:, 1:1 + len(EMOTIONS)] = emotion_weights(self._segments, t)
        overrides = self.overrides
        for j, channel in enumerate(EYE_CHANNELS):
            curve = overrides.get(channel)
            if curve is not None:
                active = (t >= curve.frames[0]) & (t <= curve.frames[-1])
                out[active, 1 + len(EMOTIONS) + j] = curve.evaluate(t[active])
        return out.astype(np.float32)

    def stale_frames(self) -> np.ndarray:
        """Boolean mask over the project's frames: True where the base motion is missing or was
        generated under other conditions than the current ones (these frames need re-generation)."""
        stale = np.ones(self._num_frames, dtype=bool)
        if self._base is None:
            return stale
        n = min(len(self._base), self._num_frames)
        current = self.conditions(np.arange(n))
        same = np.isclose(current, self._base.conditions[:n], rtol=0.0, atol=1e-6, equal_nan=True).all(axis=1)
        stale[:n] = ~same
        return stale
