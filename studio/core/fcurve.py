"""F-curves: keyframed channels, evaluated vectorized over frames (Blender's vocabulary).

A keyframe is ``(frame, value)`` plus the interpolation of the segment that *starts* at it:

* ``CONSTANT`` — hold the key's value until the next key;
* ``LINEAR``   — straight line to the next key;
* ``BEZIER``   — cubic with *auto-clamped* handles: the tangent at an interior key is the
  Catmull-Rom slope (neighbours' secant, weighted by segment length), flattened to zero where the
  key is a local extremum and limited (Fritsch–Carlson) so a segment never overshoots its two keys.
  Handles sit at a third of the segment on each side, so the curve is the cubic Hermite spline of
  those tangents. A key may instead have a *set* slope (an animator dragged its handle: aligned
  handles, one slope on both sides, value units per frame); NaN is auto.

Outside its keys a curve extrapolates ``CONSTANT`` (hold the end values, Blender's default) or
``LINEAR`` (continue along the end segment's secant). End-key tangents of Bézier segments are flat
under constant extrapolation and follow the secant under linear extrapolation.

``FCurve`` is an immutable value: every edit returns a new curve, which keeps undo commands small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from functools import cached_property

import numpy as np


class Interpolation(IntEnum):
    CONSTANT = 0
    LINEAR = 1
    BEZIER = 2


class Extrapolation(str, Enum):
    CONSTANT = "CONSTANT"
    LINEAR = "LINEAR"


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class FCurve:
    """Keys sorted by frame, one key per frame. Build with :meth:`from_keys`."""

    frames: np.ndarray = field(default_factory=lambda: _frozen(np.zeros(0)))
    values: np.ndarray = field(default_factory=lambda: _frozen(np.zeros(0)))
    interpolation: np.ndarray = field(default_factory=lambda: _frozen(np.zeros(0, dtype=np.int8)))
    extrapolation: Extrapolation = Extrapolation.CONSTANT
    slopes: np.ndarray | None = None  # per key: a set handle slope (value per frame), NaN auto; None all auto

    def __post_init__(self):
        slopes = np.full(len(self.frames), np.nan) if self.slopes is None else np.asarray(self.slopes, np.float64)
        if slopes.shape != self.frames.shape:
            raise ValueError(f"one handle slope per key: {len(self.frames)} keys, slopes {slopes.shape}")
        if slopes.flags.writeable:
            slopes = _frozen(slopes.copy())
        object.__setattr__(self, "slopes", slopes)

    @classmethod
    def from_keys(cls, frames, values, interpolation=Interpolation.BEZIER,
                  extrapolation: Extrapolation | str = Extrapolation.CONSTANT, slopes=np.nan) -> "FCurve":
        """Keys in any order; a later duplicate of a frame wins. ``interpolation`` and ``slopes``
        (NaN: auto) per key or one for all."""
        f = np.atleast_1d(np.asarray(frames, dtype=np.float64))
        v = np.atleast_1d(np.asarray(values, dtype=np.float64))
        i = np.broadcast_to(np.asarray(interpolation, dtype=np.int8), f.shape)
        m = np.broadcast_to(np.asarray(slopes, dtype=np.float64), f.shape)
        if f.ndim != 1 or v.shape != f.shape:
            raise ValueError(f"keyframes need matching 1-D frames and values, got {f.shape} and {v.shape}")
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(v))):
            raise ValueError("keyframe frames and values must be finite numbers")
        if np.any(np.isinf(m)):
            raise ValueError("handle slopes must be finite numbers (or NaN: auto)")
        if np.any((i < Interpolation.CONSTANT) | (i > Interpolation.BEZIER)):
            raise ValueError(f"unknown interpolation code in {sorted(set(i.tolist()))}")
        # Keep the last occurrence of each frame, then sort.
        rev_unique = np.unique(f[::-1], return_index=True)[1]
        keep = len(f) - 1 - rev_unique
        order = keep[np.argsort(f[keep], kind="stable")]
        return cls(_frozen(f[order].copy()), _frozen(v[order].copy()), _frozen(i[order].copy()),
                   Extrapolation(extrapolation), _frozen(m[order].copy()))

    # --- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FCurve):
            return NotImplemented
        return (self.extrapolation == other.extrapolation and np.array_equal(self.frames, other.frames)
                and np.array_equal(self.values, other.values)
                and np.array_equal(self.interpolation, other.interpolation)
                and np.array_equal(self.slopes, other.slopes, equal_nan=True))

    __hash__ = None  # mutable-looking arrays: compare by value, never hash

    def key_index(self, frame: float) -> int | None:
        """Index of the key exactly at ``frame``, or None."""
        i = int(np.searchsorted(self.frames, frame))
        return i if i < len(self.frames) and self.frames[i] == frame else None

    @cached_property
    def tangents(self) -> np.ndarray:
        """The slope (value per frame) of each key's Bézier handles: its set slope, else the auto one."""
        return np.where(np.isnan(self.slopes), self._auto_tangents, self.slopes)

    @cached_property
    def _auto_tangents(self) -> np.ndarray:
        f, v = self.frames, self.values
        n = len(f)
        m = np.zeros(n)
        if n < 2:
            return m
        h = np.diff(f)
        d = np.diff(v) / h
        if n > 2:
            dl, dr, hl, hr = d[:-1], d[1:], h[:-1], h[1:]
            slope = (dl * hl + dr * hr) / (hl + hr)
            limit = 3.0 * np.minimum(np.abs(dl), np.abs(dr))
            m[1:-1] = np.where(dl * dr > 0, np.sign(slope) * np.minimum(np.abs(slope), limit), 0.0)
        if self.extrapolation is Extrapolation.LINEAR:
            m[0], m[-1] = d[0], d[-1]
        return m

    def evaluate(self, frames) -> np.ndarray:
        """Values at ``frames`` (any shape) as float64. An empty curve raises ValueError."""
        t = np.asarray(frames, dtype=np.float64)
        f, v = self.frames, self.values
        n = len(f)
        if n == 0:
            raise ValueError("cannot evaluate an F-curve with no keyframes")
        if n == 1:
            return np.full(t.shape, v[0])
        i = np.clip(np.searchsorted(f, t, side="right") - 1, 0, n - 2)
        f0, f1, v0, v1 = f[i], f[i + 1], v[i], v[i + 1]
        h = f1 - f0
        u = np.clip((t - f0) / h, 0.0, 1.0)
        mode = self.interpolation[i]
        out = v0 + u * (v1 - v0)
        bezier = mode == Interpolation.BEZIER
        if np.any(bezier):
            m = self.tangents
            u2, u3 = u * u, u * u * u
            hermite = ((2 * u3 - 3 * u2 + 1) * v0 + (u3 - 2 * u2 + u) * h * m[i]
                       + (3 * u2 - 2 * u3) * v1 + (u3 - u2) * h * m[i + 1])
            out = np.where(bezier, hermite, out)
        out = np.where(mode == Interpolation.CONSTANT, v0, out)
        out = np.where(t >= f[-1], v[-1], out)
        if self.extrapolation is Extrapolation.LINEAR:
            first = (v[1] - v[0]) / (f[1] - f[0]) if self.interpolation[0] != Interpolation.CONSTANT else 0.0
            last = (v[-1] - v[-2]) / (f[-1] - f[-2]) if self.interpolation[-2] != Interpolation.CONSTANT else 0.0
            out = np.where(t < f[0], v[0] + (t - f[0]) * first, out)
            out = np.where(t > f[-1], v[-1] + (t - f[-1]) * last, out)
        else:
            out = np.where(t < f[0], v[0], out)
        return out

    # --- edits (each returns a new curve) ----------------------------------------------------
    def with_keys(self, frames, values, interpolation=Interpolation.BEZIER, slopes=None) -> "FCurve":
        """Insert keys; a key at an existing frame replaces it. ``slopes`` (None: a replaced key
        keeps its set slope, a new key is auto; NaN: auto) per key or one for all."""
        f = np.atleast_1d(np.asarray(frames, dtype=np.float64))
        if slopes is None:
            kept = np.full(f.shape, np.nan)
            for j, frame in enumerate(f):
                i = self.key_index(frame)
                if i is not None:
                    kept[j] = self.slopes[i]
        else:
            kept = np.broadcast_to(np.asarray(slopes, dtype=np.float64), f.shape)
        return FCurve.from_keys(
            np.concatenate([self.frames, f]),
            np.concatenate([self.values, np.broadcast_to(np.asarray(values, dtype=np.float64), f.shape)]),
            np.concatenate([self.interpolation, np.broadcast_to(np.asarray(interpolation, dtype=np.int8), f.shape)]),
            self.extrapolation, np.concatenate([self.slopes, kept]))

    def without_keys(self, indices) -> "FCurve":
        keep = np.ones(len(self), dtype=bool)
        keep[self._check_indices(indices)] = False
        return FCurve(_frozen(self.frames[keep].copy()), _frozen(self.values[keep].copy()),
                      _frozen(self.interpolation[keep].copy()), self.extrapolation, _frozen(self.slopes[keep].copy()))

    def with_keys_moved(self, indices, frame_delta: float = 0.0, value_delta: float = 0.0) -> "FCurve":
        """Move keys by a frame and value offset; moved keys replace keys they land on (as in Blender)."""
        idx = self._check_indices(indices)
        moved = np.zeros(len(self), dtype=bool)
        moved[idx] = True
        f = self.frames.copy()
        v = self.values.copy()
        f[moved] += frame_delta
        v[moved] += value_delta
        # Unmoved keys first so moved ones win on collisions.
        order = np.concatenate([np.flatnonzero(~moved), np.flatnonzero(moved)])
        return FCurve.from_keys(f[order], v[order], self.interpolation[order], self.extrapolation, self.slopes[order])

    def with_interpolation(self, indices, mode: Interpolation) -> "FCurve":
        interp = self.interpolation.copy()
        interp[self._check_indices(indices)] = Interpolation(mode)
        return FCurve(self.frames, self.values, _frozen(interp), self.extrapolation, self.slopes)

    def with_extrapolation(self, mode: Extrapolation | str) -> "FCurve":
        return FCurve(self.frames, self.values, self.interpolation, Extrapolation(mode), self.slopes)

    def with_slopes(self, indices, slopes) -> "FCurve":
        """Set the handle slopes of keys (value per frame, one or one per key); NaN: back to auto."""
        idx = self._check_indices(indices)
        m = np.broadcast_to(np.asarray(slopes, dtype=np.float64), idx.shape)
        if np.any(np.isinf(m)):
            raise ValueError("handle slopes must be finite numbers (or NaN: auto)")
        out = self.slopes.copy()
        out[idx] = m
        return FCurve(self.frames, self.values, self.interpolation, self.extrapolation, _frozen(out))

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"keyframe index out of range 0…{len(self) - 1}: {idx.tolist()}")
        return idx

    # --- plain data (project files) ----------------------------------------------------------
    def to_dict(self) -> dict:
        data = {"frames": self.frames.tolist(), "values": self.values.tolist(),
                "interpolation": [Interpolation(i).name for i in self.interpolation],
                "extrapolation": self.extrapolation.value}
        if not np.all(np.isnan(self.slopes)):  # only curves with a set handle carry the list
            data["slopes"] = [None if math.isnan(m) else float(m) for m in self.slopes]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FCurve":
        try:
            interp = [Interpolation[name] for name in data["interpolation"]]
        except KeyError as exc:
            raise ValueError(f"unknown interpolation {exc.args[0]!r}") from None
        frames = data["frames"]
        if len(interp) != len(frames):
            raise ValueError("interpolation list and frames differ in length")
        slopes = data.get("slopes")
        if slopes is None:
            slopes = np.nan
        elif not isinstance(slopes, list) or len(slopes) != len(frames) or not all(
                m is None or (isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m)) for m in slopes):
            raise ValueError("slopes must be a list of numbers or nulls, one per key")
        else:
            slopes = [np.nan if m is None else float(m) for m in slopes]
        curve = cls.from_keys(frames, data["values"], np.array(interp, dtype=np.int8) if interp else 0,
                              data.get("extrapolation", "CONSTANT"), slopes)
        if len(curve) != len(frames):
            raise ValueError("keyframes are not unique per frame")
        return curve
