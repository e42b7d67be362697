"""What the timeline's views share: the time axis, the key selection and its edits, cached data.

:class:`TimelineState` is the timeline's view state (napari's "layer controls" tier: not part of
the document, not saved): the visible frame range (``start`` and pixels per frame), the active
layer whose keys the dope sheet and the curve editor edit, the preview of a drag in progress and
caches of what is expensive to recompute (the evaluated motion over the visible frames, the audio
envelope, the phones, the stale frames). It observes the :class:`~studio.core.session.Session`
and turns its plain events into Qt signals the canvases repaint on:

* ``frame_changed`` — only the playhead moved (a cheap overlay repaint: scrubbing);
* ``view_changed`` — zoom or pan;
* ``content_changed`` — the document, the selection, the media or the active layer changed.

The active layer itself lives in the session (:attr:`Session.active_layer
<studio.core.session.Session.active_layer>`), so K, the inspector and the timeline key the same one.

Key edits go through the document's undoable commands (one undo step each) and keep the key
selection — stored in the session (:attr:`Selection.keys`, curve path → key indices) so other
views can follow it — pointing at the same keys afterwards.

Also here: :class:`Waveform` (a min/max pyramid that draws any zoom of a 10-minute recording at
pixel resolution in well under a millisecond), the phones stored with the base motion
(:func:`phone_track`, :func:`phones_of`) and the drawing helpers the canvases share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QObject, QPointF, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget
from shiboken6 import isValid

from studio.audio.phones import PHONES, VISEMES, Phone
from studio.core.document import INTENSITY_RANGE, BaseMotion
from studio.core.fcurve import FCurve, Interpolation
from studio.core.keying import key_channels
from studio.core.motion import CHANNEL_INDEX, CHANNEL_RANGES
from studio.core.session import Selection, Session

#: Width of the name column on the left of the dope sheet and the curve editor.
GUTTER = 184
#: Zoom limits, in pixels per frame.
MIN_PPF, MAX_PPF = 0.01, 80.0
#: Curves the curve editor draws at most (a whole region's channels); more are listed as "+N more".
MAX_CURVES = 24
#: Frames shown when the project is empty.
EMPTY_FRAMES = 250

# Colours (dark theme). Key colours match the 2D view's keypoint overlay.
BACKGROUND = QColor(30, 30, 34)
GUTTER_BACKGROUND = QColor(40, 40, 45)
LANE_BACKGROUND = QColor(35, 35, 40)
ROW_ALTERNATE = QColor(33, 33, 38)
GROUP_BACKGROUND = QColor(50, 50, 57)
SELECTED_ROW = QColor(64, 140, 230, 70)
GRID = QColor(255, 255, 255, 20)
GRID_MAJOR = QColor(255, 255, 255, 34)
TEXT = QColor(215, 215, 222)
TEXT_DIM = QColor(135, 135, 146)
KEY_COLOUR = QColor(226, 226, 232)
KEY_SELECTED = QColor(255, 170, 40)
SUMMARY_KEY = QColor(150, 170, 200)
KEY_OUTLINE = QColor(16, 16, 20)
PLAYHEAD = QColor(255, 92, 72)
OUTSIDE = QColor(0, 0, 0, 80)
STALE = QColor(235, 170, 40)
RUBBER_BAND = QColor(64, 140, 230)

EMOTION_COLOURS = {
    "neutral": QColor(150, 150, 160), "happy": QColor(240, 196, 60), "sad": QColor(80, 132, 225),
    "angry": QColor(228, 72, 62), "surprised": QColor(235, 130, 215), "fearful": QColor(150, 112, 215),
    "disgusted": QColor(112, 185, 80), "contempt": QColor(210, 135, 70),
}
_VISEME_HUES = {v: (i * 360 // len(VISEMES) + 200) % 360 for i, v in enumerate(VISEMES)}


def viseme_colour(viseme: str | None) -> QColor:
    """A muted colour per viseme (silence and ``HH``, which has none, are grey)."""
    if viseme is None or viseme == "sil":
        return QColor(62, 62, 70)
    return QColor.fromHsv(_VISEME_HUES[viseme], 90, 120)


def channel_colour(channel: str) -> QColor:
    """A channel's own colour: x red, y green, z blue (Blender's convention; pitch, yaw, roll
    likewise), scale yellow, the eyes cyan, violet, orange and teal."""
    axis_hue = {"x": 4, "y": 110, "z": 215, "pitch": 4, "yaw": 110, "roll": 215, "scale": 50,
                "blink_l": 180, "blink_r": 290, "gaze_x": 30, "gaze_y": 150}
    hue = axis_hue.get(channel.rsplit(".", 1)[-1], 0)
    return QColor.fromHsv(hue, 150, 235 if channel.startswith("t.") else 255)


def _owner(channel: str) -> str:
    if channel.startswith("exp."):
        return channel.rsplit(".", 1)[0]
    return "eyes" if channel.startswith("eye.") else "head"


def curve_colours(channels: Sequence[str]) -> dict[str, QColor]:
    """Colours of curves shown together: the channels' own (:func:`channel_colour`) while they all
    belong to one keypoint (or to the head, or the eyes), else one distinct hue per curve."""
    if len({_owner(c) for c in channels}) <= 1:
        return {c: channel_colour(c) for c in channels}
    return {c: QColor.fromHsv(int(10 + i * 137.5) % 360, 150, 255) for i, c in enumerate(channels)}


def channel_label(channel: str) -> str:
    """A channel's name as the timeline shows it (``exp.`` dropped: ``brow_inner_l.y``)."""
    return channel.removeprefix("exp.")


# --- phones stored with the base motion ------------------------------------------------------------

#: The base motion's settings key of its phones (``settings["phones"]`` already says how they
#: were found: ``"aligned"`` or ``"recognized"``).
PHONE_TRACK_KEY = "phone_track"


def phone_track(phones: Sequence[Phone]) -> list[list]:
    """The phones of a generation as plain JSON data, ``[[label, start_s, end_s], …]``, to store in
    the base motion's settings under :data:`PHONE_TRACK_KEY` (where the phoneme lane reads them;
    they are saved with the project and undone with the base motion)."""
    return [[p.label, round(float(p.start), 4), round(float(p.end), 4)] for p in phones]


def phones_of(base: BaseMotion | None) -> tuple[Phone, ...]:
    """The phones stored in the base motion's settings (see :func:`phone_track`), sorted by start;
    entries that are not ``[label, start, end]`` with a known ARPAbet label are skipped."""
    if base is None:
        return ()
    found = []
    entries = base.settings.get(PHONE_TRACK_KEY, ())
    for entry in entries if isinstance(entries, (list, tuple)) else ():
        try:
            if isinstance(entry, Mapping):
                label, start, end = entry["label"], entry["start"], entry["end"]
            else:
                label, start, end = entry[0], entry[1], entry[2]
            start, end = float(start), float(end)
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if label in PHONES and end > start:
            found.append(Phone(label, start, end))
    return tuple(sorted(found, key=lambda p: p.start))


class PhoneTrack:
    """Phones ready to draw: start and end times as arrays, each phone's viseme colour, and a
    per-pixel colour strip for zoom levels where phones are narrower than their labels."""

    GAP = (35, 35, 40)  # no phone there

    def __init__(self, phones: Sequence[Phone]):
        self.phones = tuple(phones)
        self.starts = np.array([p.start for p in self.phones], dtype=np.float64)
        self.ends = np.array([p.end for p in self.phones], dtype=np.float64)
        self.colours = np.array([viseme_colour(p.viseme).getRgb()[:3] for p in self.phones],
                                dtype=np.uint8).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.phones)

    def median_duration(self) -> float:
        return float(np.median(self.ends - self.starts)) if len(self.phones) else 0.0

    def strip(self, times: np.ndarray) -> np.ndarray:
        """The colour (N, 3) uint8 of the phone sounding at each time (``GAP`` between phones)."""
        out = np.empty((len(times), 3), dtype=np.uint8)
        out[:] = self.GAP
        if len(self.phones):
            index = np.searchsorted(self.starts, times, side="right") - 1
            ok = (index >= 0) & (times < self.ends[np.clip(index, 0, None)])
            out[ok] = self.colours[index[ok]]
        return out


# --- the audio envelope ------------------------------------------------------------------------------

class Waveform:
    """Min/max envelope of mono samples, as a pyramid of block sizes, so that any zoom draws at
    pixel resolution by reducing at most a few thousand values."""

    BLOCKS = (16, 64, 256, 1024, 4096)

    def __init__(self, samples: np.ndarray, sample_rate: int):
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.sample_rate = int(sample_rate)
        self.num_samples = len(samples)
        self.peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
        self.levels: list[tuple[int, np.ndarray, np.ndarray]] = [(1, samples, samples)]
        low = high = samples
        block = 1
        for size in self.BLOCKS:
            factor = size // block
            n = -(-len(low) // factor)
            if n < 2:
                break
            pad = n * factor - len(low)  # repeat the last value: it changes no min or max
            low = np.pad(low, (0, pad), mode="edge").reshape(n, factor).min(axis=1)
            high = np.pad(high, (0, pad), mode="edge").reshape(n, factor).max(axis=1)
            self.levels.append((size, low, high))
            block = size

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def envelope(self, t0: float, t1: float, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Minimum and maximum sample of each of ``columns`` equal spans of [t0, t1) seconds, and a
        mask of the columns that hold sound (spans outside the recording are False)."""
        columns = max(int(columns), 1)
        per_column = max((t1 - t0) * self.sample_rate / columns, 1e-9)
        edges = t0 * self.sample_rate + np.arange(columns + 1) * per_column
        inside = (edges[1:] > 0) & (edges[:-1] < self.num_samples)
        block, low, high = self.levels[0]
        for size, lo, hi in self.levels:
            if size <= per_column:
                block, low, high = size, lo, hi
        n = len(low)
        if n == 0:
            empty = np.zeros(columns, dtype=np.float32)
            return empty, empty, np.zeros(columns, dtype=bool)
        index = np.clip(np.floor(edges / block).astype(np.int64), 0, n)
        starts = np.minimum(index[:-1], n - 1)
        end = int(max(index[-1], starts[-1] + 1))
        bounds = starts if end >= n else np.append(starts, end)
        mins = np.minimum.reduceat(low, bounds)[:columns]
        maxs = np.maximum.reduceat(high, bounds)[:columns]
        return mins, maxs, inside


# --- key selections (curve path → key indices) -------------------------------------------------------

KeySet = dict  # {path tuple: tuple of key indices}


def union(a: Mapping, b: Mapping) -> KeySet:
    out = {p: set(i) for p, i in a.items()}
    for p, i in b.items():
        out.setdefault(p, set()).update(i)
    return {p: tuple(sorted(i)) for p, i in out.items() if i}


def difference(a: Mapping, b: Mapping) -> KeySet:
    out = {p: set(i) - set(b.get(p, ())) for p, i in a.items()}
    return {p: tuple(sorted(i)) for p, i in out.items() if i}


def contains(a: Mapping, b: Mapping) -> bool:
    """Whether every key of ``b`` is in ``a``."""
    return all(set(i) <= set(a.get(p, ())) for p, i in b.items())


def count(keys: Mapping) -> int:
    return sum(len(i) for i in keys.values())


@dataclass(frozen=True)
class DragPreview:
    """A key drag in progress: the selected keys drawn ``frames`` later and (per curve path)
    ``values`` higher than they are; nothing changes in the document until the drop."""

    frames: int = 0
    values: Mapping[tuple, float] | None = None

    def value(self, path: tuple) -> float:
        return 0.0 if self.values is None else float(self.values.get(tuple(path), 0.0))


@dataclass(frozen=True)
class Sampled:
    """The motion over the visible frames at no more than two samples per pixel."""

    frames: np.ndarray  # (S,) frame numbers, ascending
    evaluated: np.ndarray  # (S, 74) the final motion
    base: np.ndarray  # (S, 74) the generated motion underneath
    intensity: np.ndarray  # (S,) the intensity control


@dataclass(frozen=True)
class Clipboard:
    """Copied keys: per curve path, frames relative to the earliest copied key, values,
    interpolation and handle slopes (NaN: auto)."""

    keys: Mapping[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


class TimelineState(QObject):
    """The time axis, the active layer, key edits and caches (see the module docstring)."""

    frame_changed = Signal(int)
    view_changed = Signal()
    content_changed = Signal()
    #: One-line messages for the status bar.
    notice = Signal(str)

    def __init__(self, session: Session, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.start = 0.0  # the frame at the left edge of the tracks
        self.ppf = 4.0  # pixels per frame
        self.track_width = 800  # the widest canvas's track area, for fitting and paging
        self.preview: DragPreview | None = None
        self.clipboard: Clipboard | None = None
        self._revision = 0  # counts document changes (the evaluated-motion cache key)
        self._sampled: dict[tuple, Sampled] = {}
        self._stale: tuple[int, np.ndarray] | None = None
        self._phones: tuple[object, PhoneTrack] | None = None
        self._waveform: tuple[object, Waveform | None] | None = None
        self._frames_shown = session.project.num_frames
        session.events.frame.connect(self._on_frame)
        session.events.selection.connect(self._on_content)
        session.events.layer.connect(self._on_content)
        session.events.motion.connect(self._on_motion)
        session.events.media.connect(self._on_content)
        session.events.project.connect(self._on_project)
        self.fit()

    @property
    def project(self):
        return self.session.project

    # --- observing the session ----------------------------------------------------------------
    def _alive(self) -> bool:
        return isValid(self)

    def _on_frame(self, event) -> None:
        if not self._alive():
            return
        self.ensure_visible(event.frame)
        self.frame_changed.emit(event.frame)

    def _on_content(self, event=None) -> None:
        if self._alive():
            self.content_changed.emit()

    def _on_motion(self, event=None) -> None:
        if not self._alive():
            return
        self._revision += 1
        self._sampled.clear()
        frames = self.project.num_frames
        if frames != self._frames_shown:
            grew_from_nothing = self._frames_shown == 0
            self._frames_shown = frames
            if grew_from_nothing:
                self.fit()
        self.content_changed.emit()

    def _on_project(self, event=None) -> None:
        if not self._alive():
            return
        self.preview = None
        self._frames_shown = self.project.num_frames
        self.fit()
        self._on_motion()

    # --- the time axis ------------------------------------------------------------------------
    def x_of(self, frame):
        """Widget x of a frame (scalar or array), the same in every timeline canvas."""
        if isinstance(frame, np.ndarray):
            return GUTTER + (frame.astype(np.float64) - self.start) * self.ppf
        return GUTTER + (float(frame) - self.start) * self.ppf

    def frame_at(self, x):
        """The (fractional) frame at widget x (scalar or array)."""
        if isinstance(x, np.ndarray):
            return self.start + (x.astype(np.float64) - GUTTER) / self.ppf
        return self.start + (float(x) - GUTTER) / self.ppf

    def visible_frames(self, width: int | None = None) -> tuple[float, float]:
        """First and last frame (fractional) shown in a canvas ``width`` pixels wide."""
        track = (width - GUTTER) if width is not None else self.track_width
        return self.start, self.start + max(track, 1) / self.ppf

    @property
    def length(self) -> int:
        """The frames the view spans when fitted: the project's, or a default when it is empty."""
        return self.project.num_frames or EMPTY_FRAMES

    def set_view(self, start: float, ppf: float) -> None:
        ppf = float(np.clip(ppf, MIN_PPF, MAX_PPF))
        span = self.track_width / ppf
        start = float(np.clip(start, -0.5 * span, max(self.length - 0.5 * span, -0.5 * span)))
        if (start, ppf) != (self.start, self.ppf):
            self.start, self.ppf = start, ppf
            self.view_changed.emit()

    def zoom(self, factor: float, anchor: float | None = None) -> None:
        """Zoom time by ``factor`` (> 1: in) keeping the frame ``anchor`` (the playhead when None) in place."""
        anchor = float(self.session.frame if anchor is None else anchor)
        ppf = float(np.clip(self.ppf * factor, MIN_PPF, MAX_PPF))
        self.set_view(anchor - (anchor - self.start) * self.ppf / ppf, ppf)

    def pan(self, frames: float) -> None:
        self.set_view(self.start + frames, self.ppf)

    def fit(self) -> None:
        """Show the whole project (a small margin on both sides)."""
        length = self.length
        ppf = self.track_width / (length * 1.02)
        self.set_view(-0.01 * length, ppf)

    def ensure_visible(self, frame: int) -> None:
        """Page the view so the playhead is on screen (playing, stepping, jumping to the end)."""
        first, last = self.visible_frames()
        if first <= frame <= last:
            return
        span = last - first
        self.set_view(frame - 0.05 * span, self.ppf)

    def set_track_width(self, width: int) -> None:
        width = max(int(width), 50)
        if width != self.track_width:
            fitted = abs(self.ppf - self.track_width / (self.length * 1.02)) < 1e-9
            self.track_width = width
            if fitted:
                self.fit()  # a fitted view stays fitted when the panel is resized

    def set_preview(self, preview: DragPreview | None) -> None:
        """Show a key drag in progress in every canvas (None ends it)."""
        if preview != self.preview:
            self.preview = preview
            self.content_changed.emit()

    # --- cached data --------------------------------------------------------------------------
    def sampled(self, width: int) -> Sampled:
        """The motion over the frames visible in a canvas ``width`` pixels wide: every frame when
        there are at most two per pixel, else two evenly spaced samples per pixel."""
        project = self.project
        first, last = self.visible_frames(width)
        f0 = int(np.clip(math.floor(first), 0, max(project.num_frames - 1, 0)))
        f1 = int(np.clip(math.ceil(last), 0, max(project.num_frames - 1, 0)))
        columns = max(width - GUTTER, 1)
        key = (f0, f1, columns, self._revision)
        found = self._sampled.get(key)
        if found is not None:
            return found
        if project.num_frames == 0:
            frames = np.zeros(0, dtype=np.int64)
        elif f1 - f0 + 1 <= 2 * columns:
            frames = np.arange(f0, f1 + 1)
        else:
            frames = np.unique(np.round(np.linspace(f0, f1, 2 * columns)).astype(np.int64))
        result = Sampled(frames, project.evaluate(frames), project.base_values(frames),
                         project.intensity_values(frames))
        if len(self._sampled) > 4:
            self._sampled.clear()
        self._sampled[key] = result
        return result

    def stale_frames(self) -> np.ndarray | None:
        """Frames whose conditions changed since generation (None: nothing was generated)."""
        if self.project.base is None:
            return None
        if self._stale is None or self._stale[0] != self._revision:
            self._stale = (self._revision, self.project.stale_frames())
        return self._stale[1]

    def phones(self) -> PhoneTrack:
        """The phones stored with the base motion, ready to draw."""
        base = self.project.base
        if self._phones is None or self._phones[0] is not base:
            self._phones = (base, PhoneTrack(phones_of(base)))
        return self._phones[1]

    def waveform(self) -> Waveform | None:
        audio = self.session.media.audio
        if self._waveform is None or self._waveform[0] is not audio:
            self._waveform = (audio, None if audio is None else Waveform(audio.samples, audio.sample_rate))
        return self._waveform[1]

    # --- the active layer -----------------------------------------------------------------------
    @property
    def layer_id(self) -> str | None:
        """The layer whose keys the dope sheet and the curve editor show: the session's active layer
        (the one chosen, else the top layer — the one K and the inspector key), None when the
        project has no layer yet."""
        return self.session.active_layer

    def set_layer(self, layer_id: str | None) -> None:
        """Choose the active layer (None: follow the top layer)."""
        self.session.set_active_layer(layer_id)

    def key_path(self, channel: str) -> tuple | None:
        """The curve path of a motion channel on the active layer (None without a layer)."""
        layer = self.layer_id
        return None if layer is None else ("layer", layer, channel)

    def _editable_layer(self) -> str:
        """The active layer, created (undoably, inside the caller's macro) when there is none."""
        return self.layer_id or self.project.default_layer_id()

    def curve(self, path: tuple | None) -> FCurve | None:
        if path is None:
            return None
        try:
            return self.project.curve(path)
        except KeyError:
            return None

    # --- the key selection --------------------------------------------------------------------
    def selected_keys(self) -> KeySet:
        """The selected keys that exist (a selection can outlive its keys across an undo)."""
        valid = {}
        for path, indices in self.session.selection.keys.items():
            curve = self.curve(path)
            if curve is None:
                continue
            kept = indices if indices[-1] < len(curve) else tuple(i for i in indices if i < len(curve))
            if kept:
                valid[path] = kept
        return valid

    def select_keys(self, keys: Mapping, mode: str = "replace", channels: Sequence[str] | None = None,
                    add_channels: bool = False) -> None:
        """Change the key selection: ``replace``, ``add``, ``remove`` or ``toggle`` with ``keys``;
        ``channels`` (when given) become the selected channels too, or join them (``add_channels``),
        so the curve editor, the inspector and K follow what was clicked."""
        current = self.selected_keys()
        if mode == "replace":
            new = union({}, keys)
        elif mode == "add":
            new = union(current, keys)
        elif mode == "remove":
            new = difference(current, keys)
        elif mode == "toggle":
            new = difference(current, keys) if contains(current, keys) else union(current, keys)
        else:
            raise ValueError(f"unknown selection mode {mode!r}")
        chosen = self.session.selection.channels
        if channels is not None:
            chosen = tuple(channels) + (chosen if add_channels else ())
        self.session.selection = Selection(chosen, new)

    def press_keys(self, hit: Mapping, additive: bool, channels: Sequence[str] | None = None) -> bool:
        """The selection rule of a click on keys, shared by the dope sheet and the curve editor:
        Shift/Ctrl on keys all selected deselects them (no drag); otherwise unselected keys are
        selected (added with Shift/Ctrl, else replacing) and a drag may start. Returns whether it may."""
        inside = contains(self.selected_keys(), hit)
        if additive and inside:
            self.select_keys(hit, "remove")
            return False
        if not inside:
            self.select_keys(hit, "add" if additive else "replace", channels, add_channels=additive)
        return True

    def select_channels(self, channels: Sequence[str], mode: str = "replace") -> None:
        """Select motion channels (``replace``, ``add`` or ``toggle``), keeping the key selection."""
        current = self.session.selection.channels
        channels = tuple(channels)
        if mode == "add":
            channels = current + channels
        elif mode == "toggle":
            channels = tuple(c for c in current if c not in channels) if set(channels) <= set(current) \
                else current + channels
        self.session.selection = Selection(channels, self.selected_keys())

    def all_keys(self, channels: Sequence[str] | None = None) -> KeySet:
        """Every key of the active layer's channels (all of them when None) and the control curves."""
        keys: KeySet = {}
        layer = self.layer_id
        if layer is not None:
            for channel, curve in self.project.layer(layer).curves.items():
                if channels is None or channel in channels:
                    keys[("layer", layer, channel)] = tuple(range(len(curve)))
        if channels is None:
            for path in [("intensity",)] + [("override", c) for c in self.project.overrides]:
                curve = self.curve(path)
                if curve is not None:
                    keys[path] = tuple(range(len(curve)))
        return keys

    # --- key edits (each one undo step) ---------------------------------------------------------
    def delete_selected(self) -> int:
        keys = self.selected_keys()
        if not keys:
            return 0
        with self.project.macro(f"Delete {count(keys)} keyframe(s)"):
            for path, indices in keys.items():
                self.project.delete_keys(path, indices)
        self.select_keys({})
        return count(keys)

    def clamp_frame_delta(self, frames: int, keys: Mapping | None = None) -> int:
        """``frames`` limited so no selected key leaves the project's frames."""
        keys = self.selected_keys() if keys is None else keys
        if not keys or self.project.num_frames == 0:
            return int(frames)
        first = min(float(self.curve(p).frames[list(i)].min()) for p, i in keys.items())
        last = max(float(self.curve(p).frames[list(i)].max()) for p, i in keys.items())
        return int(np.clip(frames, -first, self.project.num_frames - 1 - last))

    def clamp_value_delta(self, path: tuple, delta: float, keys: Mapping | None = None) -> float:
        """``delta`` limited so the selected keys of a control curve stay in its valid range."""
        keys = self.selected_keys() if keys is None else keys
        low_high = control_range(path)
        if low_high is None or path not in keys:
            return float(delta)
        values = self.curve(path).values[list(keys[path])]
        return float(np.clip(delta, low_high[0] - values.min(), low_high[1] - values.max()))

    def move_selected(self, frames: int, values: Mapping[tuple, float] | None = None) -> None:
        """Move the selected keys ``frames`` later and (per path) ``values`` higher, as one undo
        step; the moved keys stay selected."""
        keys = self.selected_keys()
        values = {tuple(p): float(v) for p, v in (values or {}).items() if v}
        if not keys or (not frames and not values):
            return
        moved_frames = {p: self.curve(p).frames[list(i)] + frames for p, i in keys.items()}
        groups: dict[float, dict] = {}
        for path, indices in keys.items():
            groups.setdefault(values.get(path, 0.0), {})[path] = indices
        with self.project.macro("Move keyframes"):
            for delta, selection in groups.items():
                self.project.move_keys(selection, float(frames), delta)
        reselected = {}
        for path, new_frames in moved_frames.items():
            curve = self.curve(path)
            found = [curve.key_index(f) for f in new_frames]
            reselected[path] = tuple(i for i in found if i is not None)
        self.select_keys(reselected)

    def _selected_or_notice(self) -> KeySet:
        """The selected keys; none: a notice says how to select some."""
        keys = self.selected_keys()
        if not keys:
            self.notice.emit("Select keyframes first (click, Shift+click or drag a box)")
        return keys

    def set_interpolation(self, mode: Interpolation) -> None:
        if keys := self._selected_or_notice():
            self.project.set_interpolation(keys, Interpolation(mode))

    def auto_handles(self) -> None:
        """Put the selected keys' Bézier handles back to auto (one undo step)."""
        if keys := self._selected_or_notice():
            self.project.set_slopes(keys, np.nan)

    def set_handle(self, path: tuple, index: int, slope: float) -> None:
        """Set one key's handle slope (value per frame; a handle dragged in the curve editor)."""
        self.project.set_slopes({path: (int(index),)}, float(slope))

    def copy_selected(self) -> int:
        keys = self.selected_keys()
        if not keys:
            return 0
        first = min(float(self.curve(p).frames[list(i)].min()) for p, i in keys.items())
        copied = {}
        for path, indices in keys.items():
            curve, idx = self.curve(path), list(indices)
            copied[path] = (curve.frames[idx] - first, curve.values[idx].copy(), curve.interpolation[idx].copy(),
                            curve.slopes[idx].copy())
        self.clipboard = Clipboard(copied)
        self.notice.emit(f"Copied {count(keys)} keyframe(s)")
        return count(keys)

    def paste(self, frame: int | None = None) -> int:
        """Paste the copied keys with the earliest at ``frame`` (the playhead when None): motion
        channels onto the active layer, control curves onto themselves; one undo step. The pasted
        keys become the selection."""
        if self.clipboard is None:
            self.notice.emit("Nothing copied yet: select keyframes and press Ctrl+C")
            return 0
        frame = self.session.frame if frame is None else int(frame)
        pasted: dict[tuple, np.ndarray] = {}
        with self.project.macro("Paste keyframes"):
            for path, (offsets, values, interpolation, slopes) in self.clipboard.keys.items():
                target = ("layer", self._editable_layer(), path[2]) if path[0] == "layer" else path
                frames = offsets + frame
                self.project.insert_keys(target, frames, values, interpolation, slopes=slopes)
                pasted[target] = np.concatenate([pasted.get(target, np.zeros(0)), frames])
        selection = {}
        for path, frames in pasted.items():
            curve = self.curve(path)
            selection[path] = tuple(i for i in (curve.key_index(f) for f in frames) if i is not None)
        self.select_keys(selection)
        return sum(len(f) for f in pasted.values())

    def insert_channel_keys(self, channels: Sequence[str], frame: int) -> None:
        """Key motion channels at ``frame`` with their evaluated values on the active layer (created
        when there is none), as one undo step — solved for the layer's blend and influence so the
        picture stays as it is (:func:`studio.core.keying.key_channels`)."""
        frame = int(frame)
        values = self.session.frame_values(frame)
        desired = {channel: float(values[CHANNEL_INDEX[channel]]) for channel in channels}
        key_channels(self.project, channels, frame, desired, layer=self.layer_id)

    def insert_key(self, path: tuple, frame: int, value: float) -> None:
        """Key one curve (a control curve, or a motion channel of the active layer) at ``frame``."""
        low_high = control_range(path)
        if low_high is not None:
            value = float(np.clip(value, *low_high))
        if path[0] == "layer":
            with self.project.macro(f"Key {path[2]} at frame {int(frame)}"):
                path = ("layer", self._editable_layer(), path[2])
                self.project.insert_keys(path, [int(frame)], [float(value)])
        else:
            self.project.insert_keys(path, [int(frame)], [float(value)])


def control_range(path: tuple) -> tuple[float, float] | None:
    """The valid values of a control curve (intensity, eye overrides); None for layer curves."""
    if path == ("intensity",):
        return INTENSITY_RANGE
    if len(path) == 2 and path[0] == "override":
        return CHANNEL_RANGES[path[1]]
    return None


# --- drawing helpers -------------------------------------------------------------------------------

class KeyMarks:
    """Keyframe marks, collected while a canvas repaints (:meth:`add`) and stamped all at once with
    numpy into one image (:meth:`paint`): tens of thousands of marks — every key of a 10-minute
    project in view — cost a few milliseconds, where drawing them one by one costs a tenth of a
    second. The shape tells the interpolation that starts at the key: a diamond Bézier, a square
    constant, a circle linear; selected keys are drawn last, in :data:`KEY_SELECTED`."""

    def __init__(self):
        self._batches: list[tuple] = []
        self._templates: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def clear(self) -> None:
        self._batches.clear()

    def add(self, x, y, interpolation, selected, colour: QColor, radius: int = 5) -> None:
        """Marks at widget (x, y) of keys with their interpolation codes; ``selected`` (bool per
        key) ones in :data:`KEY_SELECTED`, the others in ``colour``. One mark per pixel is kept."""
        x = np.round(np.asarray(x, dtype=np.float64)).astype(np.int64)
        if not len(x):
            return
        y = np.round(np.asarray(y, dtype=np.float64)).astype(np.int64)
        code = np.unique((((x + 100_000) * 200_000 + (y + 100_000)) * 2 + np.asarray(selected, dtype=np.int64)) * 4
                         + np.asarray(interpolation, dtype=np.int64))
        interp, rest = code % 4, code // 4
        chosen, rest = rest % 2, rest // 2
        ys, xs = rest % 200_000 - 100_000, rest // 200_000 - 100_000
        for flag, rgba in ((0, colour), (1, KEY_SELECTED)):
            pick = chosen == flag
            if pick.any():
                colour_bytes = np.array(rgba.getRgb(), np.uint8)
                self._batches.append((flag, xs[pick], ys[pick], interp[pick], colour_bytes, radius))

    def _template(self, shape: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel offsets (dy, dx) of a mark and which of them are its outline."""
        key = (shape, radius)
        found = self._templates.get(key)
        if found is None:
            v, u = np.mgrid[-radius:radius + 1, -radius:radius + 1]
            if shape == Interpolation.BEZIER:
                d = np.abs(u) + np.abs(v)
                inside, outline = d <= radius, d > radius - 1.5
            elif shape == Interpolation.CONSTANT:
                d = np.maximum(np.abs(u), np.abs(v))
                inside, outline = d <= radius - 1, d > radius - 2
            else:
                d = np.hypot(u, v)
                inside, outline = d <= radius - 0.4, d > radius - 1.6
            found = (v[inside], u[inside], outline[inside])
            self._templates[key] = found
        return found

    def paint(self, painter: QPainter, clip: QRect, ratio: float = 1.0) -> None:
        """Stamp every mark added since :meth:`clear` inside ``clip`` (widget pixels), then clear.

        Marks are grouped by selection, shape and size (a dozen groups at most); each group is
        stamped one template pixel at a time for all its marks at once, into the image seen as
        one 32-bit word per pixel — so the Python work does not grow with the number of keys.
        Outline pixels go first, so marks closer than their size merge into one outlined band."""
        batches, self._batches = self._batches, []
        if not batches or clip.width() <= 0 or clip.height() <= 0:
            return
        width, height = math.ceil(clip.width() * ratio), math.ceil(clip.height() * ratio)
        image = np.zeros((height, width, 4), dtype=np.uint8)
        pixels = image.view(np.uint32).reshape(-1)
        outline = np.array(KEY_OUTLINE.getRgb(), np.uint8).view(np.uint32)[0]
        groups: dict[tuple[int, int, int], list] = {}
        for flag, xs, ys, interp, rgba, radius in batches:
            word = rgba.view(np.uint32)[0]
            for shape in np.unique(interp):
                pick = interp == shape
                groups.setdefault((flag, int(shape), radius), []).append(
                    (xs[pick], ys[pick], np.full(int(pick.sum()), word, dtype=np.uint32)))
        for (flag, shape, radius), parts in sorted(groups.items()):  # unselected first
            r = max(round(radius * ratio), 2)
            cx = np.round((np.concatenate([q[0] for q in parts]) - clip.left()) * ratio).astype(np.int64)
            cy = np.round((np.concatenate([q[1] for q in parts]) - clip.top()) * ratio).astype(np.int64)
            words = np.concatenate([q[2] for q in parts])
            near = (cx > -r) & (cx < width + r) & (cy > -r) & (cy < height + r)
            cx, cy, words = cx[near], cy[near], words[near]
            inner = (cx >= r) & (cx < width - r) & (cy >= r) & (cy < height - r)
            centre, inner_words = cy[inner] * width + cx[inner], words[inner]
            ex, ey, edge_words = cx[~inner], cy[~inner], words[~inner]  # partly outside: checked per pixel
            dys, dxs, outlines = self._template(shape, r)
            order = np.argsort(~outlines, kind="stable")  # outlines first: overlapping marks merge
            for dy, dx, is_outline in zip(dys[order], dxs[order], outlines[order]):
                pixels[centre + (dy * width + dx)] = outline if is_outline else inner_words
                if len(ex):
                    x, y = ex + dx, ey + dy
                    ok = (x >= 0) & (x < width) & (y >= 0) & (y < height)
                    pixels[y[ok] * width + x[ok]] = outline if is_outline else edge_words[ok]
        qimage = QImage(image.data, width, height, 4 * width, QImage.Format_RGBA8888)
        qimage.setDevicePixelRatio(ratio)
        painter.drawImage(QPointF(clip.left(), clip.top()), qimage)


def draw_curve(painter: QPainter, x: np.ndarray, y: np.ndarray, colour: QColor, width: float = 1.0) -> None:
    """A polyline through (x, y), ascending x, at pixel cost. With a point or more per pixel
    column it is drawn as one vertical stroke per column from the column's lowest to highest value
    (reaching the next column's first value, so the strokes join) without antialiasing: exactly
    what a polyline would cover, in well under a millisecond for thousands of points. Sparser, it
    is an antialiased polyline (thin when long: wide antialiased strokes are slow in Qt)."""
    n = len(x)
    if n < 2:
        return
    painter.save()
    if n >= x[-1] - x[0]:
        columns = np.floor(x).astype(np.int64)
        unique, starts = np.unique(columns, return_index=True)
        low = np.minimum.reduceat(y, starts)
        high = np.maximum.reduceat(y, starts)
        following = y[starts[1:]]
        low[:-1] = np.minimum(low[:-1], following)
        high[:-1] = np.maximum(high[:-1], following)
        xs = np.repeat(unique + 0.5, 2)
        ys = np.empty(2 * len(unique))
        ys[0::2], ys[1::2] = low, high + 0.5
        connect = np.zeros(2 * len(unique), dtype=bool)
        connect[0::2] = True
        painter.setRenderHint(QPainter.Antialiasing, False)
        painter.setPen(QPen(colour, max(1, round(width))))
        painter.drawPath(pg.arrayToQPath(xs, ys, connect=connect))
    else:
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setPen(QPen(colour, width if n <= 400 else 1.0))
        painter.drawPath(pg.arrayToQPath(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))
    painter.restore()


def nice_step(span: float, target: int) -> float:
    """A 1-2-5 step that divides ``span`` into about ``target`` parts."""
    if span <= 0 or not np.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * power:
            return m * power
    return 10.0 * power


def frame_step(state: TimelineState, min_pixels: float = 70.0) -> tuple[float, bool]:
    """The ruler's label step in frames (at least ``min_pixels`` apart) and whether labels are in
    seconds (steps of a second or more) rather than frame numbers."""
    fps = state.project.fps
    candidates = [1, 2, 5, 10]
    seconds = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200]
    for frames in candidates:
        if frames * state.ppf >= min_pixels and frames < fps:
            return float(frames), False
    for s in seconds:
        if s * fps * state.ppf >= min_pixels:
            return s * fps, s >= 1
    return seconds[-1] * fps, True


def format_tick(frame: float, fps: float, in_seconds: bool) -> str:
    if not in_seconds:
        return str(round(frame))
    seconds = frame / fps
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{round(rest):02d}"


class TimeCanvas(QWidget):
    """A timeline canvas: what changes with the document, the view or the selection is drawn once
    into a cached pixmap (:meth:`render_static`); every paint blits it and draws the playhead and
    what a drag shows on top (:meth:`paint_overlay`), so moving the playhead costs one blit."""

    def __init__(self, state: TimelineState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._cache: QPixmap | None = None
        self.static_renders = 0
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumWidth(GUTTER + 120)
        self.marks = KeyMarks()
        state.view_changed.connect(self.invalidate)
        state.content_changed.connect(self.invalidate)
        state.frame_changed.connect(self._on_frame)

    def invalidate(self) -> None:
        self._cache = None
        self.update()

    def _on_frame(self, frame: int) -> None:
        self.update()

    def resizeEvent(self, event) -> None:
        self.state.set_track_width(self.width() - GUTTER)
        self.invalidate()
        super().resizeEvent(event)

    def paintEvent(self, event) -> None:
        ratio = self.devicePixelRatioF()
        if self._cache is None or self._cache.deviceIndependentSize().toSize() != self.size() \
                or self._cache.devicePixelRatio() != ratio:
            pixmap = QPixmap(math.ceil(self.width() * ratio), math.ceil(self.height() * ratio))
            pixmap.setDevicePixelRatio(ratio)
            painter = QPainter(pixmap)
            self.render_static(painter)
            painter.end()
            self._cache = pixmap
            self.static_renders += 1
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._cache)
        self.paint_overlay(painter)
        painter.end()

    def render_static(self, painter: QPainter) -> None:
        raise NotImplementedError

    def paint_overlay(self, painter: QPainter) -> None:
        raise NotImplementedError

    def draw_playhead(self, painter: QPainter, top: int = 0) -> float:
        x = self.state.x_of(self.state.session.frame)
        if GUTTER <= x <= self.width():
            painter.fillRect(round(x) - 1, top, 2, self.height() - top, PLAYHEAD)
        return x

    def draw_time_grid(self, painter: QPainter, top: int, bottom: int) -> None:
        """Vertical lines at the ruler's label steps (and fainter ones between), one call per kind."""
        step, _ = frame_step(self.state)
        first, last = self.state.visible_frames(self.width())
        minor = step / 5 if step >= 5 and step / 5 * self.state.ppf >= 8 else None
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing, False)
        for spacing, colour in ((minor, GRID), (step, GRID_MAJOR)):
            if spacing is None:
                continue
            frames = np.arange(math.floor(max(first, 0) / spacing), math.floor(last / spacing) + 1) * spacing
            xs = np.round(self.state.x_of(frames)) + 0.5
            xs = xs[xs >= GUTTER]
            painter.setPen(QPen(colour, 1))
            painter.drawLines([QLineF(x, top, x, bottom) for x in xs.tolist()])
        painter.restore()

    def shade_outside(self, painter: QPainter, top: int, bottom: int) -> None:
        """Darken the tracks before frame 0 and after the project's last frame."""
        x0 = self.state.x_of(-0.5)
        x1 = self.state.x_of(self.state.project.num_frames - 0.5)
        if x0 > GUTTER:
            painter.fillRect(GUTTER, top, int(x0 - GUTTER), bottom - top, OUTSIDE)
        if x1 < self.width():
            painter.fillRect(int(max(x1, GUTTER)), top, self.width() - int(max(x1, GUTTER)), bottom - top, OUTSIDE)


def path_label(path: tuple) -> str:
    if path[0] == "layer":
        return channel_label(path[2])
    if path == ("intensity",):
        return "intensity"
    return f"{path[1]} override"

