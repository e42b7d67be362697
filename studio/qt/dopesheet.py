"""The dope sheet: the timeline's lanes and the motion channels' keyframes, on one time axis.

From top to bottom — the first four stay in place, the rest scroll:

* the **ruler**: time labels, frames whose conditions changed since generation (an amber strip),
  the playhead; click or drag in it (or in the audio and phone lanes) to scrub;
* the **audio** waveform (min/max per pixel from :class:`~studio.qt.timeline_state.Waveform`);
* the **phones** of the generation and their visemes (stored with the base motion);
* the **emotion** segments: drag on empty space to add one (label from the toolbar), drag a
  segment to move it, its edges to resize it, Alt+wheel for its strength, the context menu to
  relabel, change strength or fades, or delete it;
* the **control lanes**: intensity, gaze x/y and blink overrides, each a small curve with its keys
  at their values (drag moves them in time and value, double-click adds one);
* the **channel groups** (one per face region, head pose, eyes), collapsible, with summary keys,
  and under an expanded group its channels' keys on the active layer.

Keys: click selects (Shift/Ctrl toggles), a drag on empty space selects a box, dragging a
selected key moves the selection (one undo step on release), double-click keys the row at that
frame. The names on the left select channels (Shift/Ctrl adds), which the curve editor, the
inspector and K follow. Zoom: wheel over the ruler/audio/phones or Ctrl+wheel anywhere; Shift+wheel
or a middle-button drag pans; the wheel elsewhere scrolls the rows.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QFontMetrics,
    QImage,
    QPainter,
    QPen,
)
from PySide6.QtWidgets import QMenu, QToolTip, QWidget

from studio.core.document import EMOTIONS, INTENSITY_RANGE, EmotionSegment
from studio.core.fcurve import Interpolation
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX, CHANNEL_RANGES
from studio.qt.timeline_state import (
    BACKGROUND,
    EMOTION_COLOURS,
    GROUP_BACKGROUND,
    GUTTER,
    GUTTER_BACKGROUND,
    KEY_COLOUR,
    LANE_BACKGROUND,
    MAX_CURVES,
    PLAYHEAD,
    ROW_ALTERNATE,
    RUBBER_BAND,
    SELECTED_ROW,
    STALE,
    SUMMARY_KEY,
    TEXT,
    TEXT_DIM,
    DragPreview,
    KeySet,
    TimeCanvas,
    TimelineState,
    channel_label,
    curve_colours,
    draw_curve,
    format_tick,
    frame_step,
    path_label,
    viseme_colour,
)

RULER_HEIGHT = 26
AUDIO_HEIGHT = 54
PHONES_HEIGHT = 24
EMOTION_HEIGHT = 28
CONTROL_HEIGHT = 36
GROUP_HEIGHT = 22
CHANNEL_HEIGHT = 18
#: How close (pixels) a click must be to a key, or to a segment's edge, to grab it.
HIT = 6
#: A press becomes a drag after this many pixels.
DRAG_START = 3
#: Length of an emotion segment added by a double-click or the context menu (seconds).
NEW_SEGMENT_SECONDS = 2.0
FADES_SECONDS = (0.0, 0.2, 0.5, 1.0)
STRENGTHS = (0.25, 0.5, 0.75, 1.0)
#: Narrower phones (median, in pixels) are drawn as a colour strip, without labels.
MIN_PHONE_PIXELS = 4.0

GROUP_TITLES = {"nose": "Nose", "brows": "Brows", "lids": "Lids", "cheeks": "Cheeks", "lips": "Lips",
                "jaw": "Jaw", "head": "Head pose", "eyes": "Eyes"}

#: The control lanes: title, curve path, motion channel shown, value range, reference line.
CONTROL_LANES = (
    ("Intensity", ("intensity",), None, INTENSITY_RANGE, 1.0),
    ("Gaze x", ("override", "eye.gaze_x"), "eye.gaze_x", CHANNEL_RANGES["eye.gaze_x"], 0.0),
    ("Gaze y", ("override", "eye.gaze_y"), "eye.gaze_y", CHANNEL_RANGES["eye.gaze_y"], 0.0),
    ("Blink left", ("override", "eye.blink_l"), "eye.blink_l", CHANNEL_RANGES["eye.blink_l"], None),
    ("Blink right", ("override", "eye.blink_r"), "eye.blink_r", CHANNEL_RANGES["eye.blink_r"], None),
)


@dataclass(frozen=True)
class Row:
    """One lane of the dope sheet. ``top`` is in widget pixels for the pinned rows, in content
    pixels (before scrolling) for the others."""

    kind: str  # "ruler" | "audio" | "phones" | "emotion" | "control" | "group" | "channel"
    top: int
    height: int
    title: str = ""
    group: str | None = None
    channel: str | None = None
    path: tuple | None = None
    value_range: tuple[float, float] | None = None
    reference: float | None = None

    @property
    def bottom(self) -> int:
        return self.top + self.height


@dataclass
class Drag:
    """A mouse gesture in progress."""

    kind: str  # "scrub" | "keys" | "box" | "pan" | "segment-move" | "segment-start" | "segment-end" | "segment-new"
    x: float
    y: float
    row: Row | None = None
    active: bool = False
    additive: bool = False
    start: float = 0.0  # the view's start when panning
    scroll: int = 0
    segment: EmotionSegment | None = None
    hit: KeySet | None = None  # the keys pressed on


class DopeSheet(TimeCanvas):
    """The lanes and channel rows (see the module docstring)."""

    #: The scrolled rows' height and the height they are shown in (for the panel's scroll bar).
    scroll_range_changed = Signal(int, int)
    scrolled = Signal(int)

    def __init__(self, state: TimelineState, actions, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.actions = actions  # the panel's key actions (context menus show them)
        self.expanded: set[str] = set()
        self.scroll = 0
        self.new_emotion = "happy"
        self.selected_segment: str | None = None
        self.segment_preview: EmotionSegment | None = None
        self.drag: Drag | None = None
        self.rubber_band: QRect | None = None
        self.setMouseTracking(True)
        self.setMinimumHeight(RULER_HEIGHT + AUDIO_HEIGHT + PHONES_HEIGHT + EMOTION_HEIGHT + 2 * GROUP_HEIGHT)
        self.pinned = self._pinned_rows()
        self.pinned_height = self.pinned[-1].bottom
        self.rows: list[Row] = []
        self._selected: KeySet = {}
        self._label_widths: dict[str, int] = {}
        self.rebuild_rows()
        state.content_changed.connect(self._on_content)

    # --- rows --------------------------------------------------------------------------------------
    @staticmethod
    def _pinned_rows() -> list[Row]:
        rows, top = [], 0
        for kind, height, title in (("ruler", RULER_HEIGHT, ""), ("audio", AUDIO_HEIGHT, "Audio"),
                                    ("phones", PHONES_HEIGHT, "Phones · visemes"),
                                    ("emotion", EMOTION_HEIGHT, "Emotion")):
            rows.append(Row(kind, top, height, title))
            top += height
        return rows

    def rebuild_rows(self) -> None:
        """Lay out the scrolled rows (after a group is expanded or collapsed)."""
        rows, top = [], 0
        for title, path, channel, value_range, reference in CONTROL_LANES:
            rows.append(Row("control", top, CONTROL_HEIGHT, title, channel=channel, path=path,
                            value_range=value_range, reference=reference))
            top += CONTROL_HEIGHT
        for group, channels in CHANNEL_GROUPS.items():
            rows.append(Row("group", top, GROUP_HEIGHT, GROUP_TITLES.get(group, group.capitalize()), group=group))
            top += GROUP_HEIGHT
            if group in self.expanded:
                for channel in channels:
                    rows.append(Row("channel", top, CHANNEL_HEIGHT, channel_label(channel), group=group,
                                    channel=channel))
                    top += CHANNEL_HEIGHT
        self.rows = rows
        self._tops = [row.top for row in rows]
        self.content_height = top
        self.set_scroll(self.scroll)
        self.scroll_range_changed.emit(self.content_height, self.view_height)
        self.invalidate()

    @property
    def view_height(self) -> int:
        return max(self.height() - self.pinned_height, 0)

    def set_scroll(self, value: int) -> None:
        value = int(np.clip(value, 0, max(self.content_height - self.view_height, 0)))
        if value != self.scroll:
            self.scroll = value
            self.scrolled.emit(value)
            self.invalidate()

    def set_expanded(self, group: str, expanded: bool) -> None:
        if expanded == (group in self.expanded):
            return
        (self.expanded.add if expanded else self.expanded.discard)(group)
        self.rebuild_rows()

    def expand_all(self, expanded: bool = True) -> None:
        self.expanded = set(CHANNEL_GROUPS) if expanded else set()
        self.rebuild_rows()

    def row_top(self, row: Row) -> int:
        """A row's top in widget pixels."""
        return row.top if row in self.pinned else self.pinned_height + row.top - self.scroll

    def row_named(self, kind: str, name=None) -> Row:
        """The row of a kind: a control lane by title, a group by group, a channel by channel
        (the first of the kind when ``name`` is None). KeyError when it is not shown."""
        for row in self.pinned + self.rows:
            if row.kind != kind:
                continue
            key = {"control": row.title, "group": row.group, "channel": row.channel}.get(kind)
            if name is None or name == key:
                return row
        raise KeyError(f"no {kind} row {name!r} (is its group expanded?)")

    def row_at(self, y: float) -> Row | None:
        for row in self.pinned:
            if row.top <= y < row.bottom:
                return row
        if y < self.pinned_height:
            return None
        content = y - self.pinned_height + self.scroll
        i = bisect.bisect_right(self._tops, content) - 1
        if 0 <= i < len(self.rows) and content < self.rows[i].bottom:
            return self.rows[i]
        return None

    def visible_rows(self) -> list[Row]:
        first, last = self.scroll, self.scroll + self.view_height
        i = max(bisect.bisect_right(self._tops, first) - 1, 0)
        out = []
        for row in self.rows[i:]:
            if row.top >= last:
                break
            if row.bottom > first:
                out.append(row)
        return out

    def _on_content(self) -> None:
        if self.selected_segment is not None:
            ids = {s.id for s in self.state.project.emotion_segments}
            if self.selected_segment not in ids:
                self.selected_segment = None

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.set_scroll(self.scroll)
        self.scroll_range_changed.emit(self.content_height, self.view_height)

    # --- keys of a row --------------------------------------------------------------------------
    def row_paths(self, row: Row) -> list[tuple]:
        """The curve paths whose keys a row shows."""
        if row.kind == "control":
            return [row.path]
        if self.state.layer_id is None:
            return []
        if row.kind == "channel":
            return [self.state.key_path(row.channel)]
        if row.kind == "group":
            return [self.state.key_path(c) for c in CHANNEL_GROUPS[row.group]]
        return []

    def row_channels(self, row: Row) -> tuple[str, ...] | None:
        """The motion channels a click on a row selects (None: the row is not a motion channel)."""
        if row.kind == "channel":
            return (row.channel,)
        if row.kind == "group":
            return CHANNEL_GROUPS[row.group]
        return None

    def value_y(self, row: Row, top: int, values):
        """Widget y of control-lane values."""
        low, high = row.value_range
        inner = row.height - 8
        return top + 4 + (1.0 - (np.asarray(values, dtype=np.float64) - low) / (high - low)) * inner

    def value_at(self, row: Row, top: int, y: float) -> float:
        low, high = row.value_range
        inner = row.height - 8
        return float(np.clip(low + (1.0 - (y - top - 4) / inner) * (high - low), low, high))

    def _row_keys(self, row: Row, top: int, selected: KeySet, preview: DragPreview | None, margin: float = 8.0):
        """Per path of the row: visible key indices, x, y, interpolation, selected mask."""
        first, last = self.state.visible_frames(self.width())
        pad = margin / self.state.ppf
        out = []
        for path in self.row_paths(row):
            curve = self.state.curve(path)
            if curve is None:
                continue
            frames = curve.frames
            values = curve.values
            chosen = np.zeros(len(curve), dtype=bool)
            chosen[list(selected.get(path, ()))] = True
            if preview is not None and chosen.any():
                frames = frames + chosen * preview.frames
                values = values + chosen * preview.value(path)
            lo = int(np.searchsorted(curve.frames, first - pad - (abs(preview.frames) if preview else 0)))
            hi = int(np.searchsorted(curve.frames, last + pad + (abs(preview.frames) if preview else 0), side="right"))
            index = np.arange(lo, hi)
            x = self.state.x_of(frames[index])
            if row.kind == "control":
                y = self.value_y(row, top, values[index])
            else:
                y = np.full(len(index), top + row.height / 2.0)
            out.append((path, index, x, y, curve.interpolation[index], chosen[index]))
        return out

    def key_at(self, row: Row, x: float, y: float) -> KeySet:
        """The keys under the mouse: the nearest key of a channel or control lane, every key of a
        group at the nearest summary key's frame; empty when none is within :data:`HIT` pixels."""
        if row.kind not in ("control", "group", "channel"):
            return {}
        top = self.row_top(row)
        best, best_d = None, HIT + 0.5
        keys = self._row_keys(row, top, {}, None)
        for path, index, kx, ky, _, _ in keys:
            if not len(index):
                continue
            d = np.hypot(kx - x, ky - y) if row.kind == "control" else np.abs(kx - x)
            j = int(np.argmin(d))
            if d[j] < best_d:
                best, best_d = (path, int(index[j])), float(d[j])
        if best is None:
            return {}
        if row.kind != "group":
            return {best[0]: (best[1],)}
        frame = self.state.curve(best[0]).frames[best[1]]
        hit = {}
        for path, index, _, _, _, _ in keys:
            i = self.state.curve(path).key_index(frame)
            if i is not None:
                hit[path] = (i,)
        return hit

    def keys_in_rect(self, rect: QRect) -> tuple[KeySet, tuple[str, ...]]:
        """Keys whose marks lie inside a box (widget pixels), and the channels of their rows."""
        found: KeySet = {}
        channels: list[str] = []
        for row in self.visible_rows():
            top = self.row_top(row)
            if top + row.height <= rect.top() or top > rect.bottom():
                continue
            hit_any = False
            for path, index, x, y, _, _ in self._row_keys(row, top, {}, None):
                inside = (x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
                if inside.any():
                    found[path] = tuple(sorted(set(found.get(path, ())) | set(index[inside].tolist())))
                    hit_any = True
            if hit_any and row.kind == "channel":
                channels.append(row.channel)
        return found, tuple(channels)

    # --- painting ---------------------------------------------------------------------------------
    def render_static(self, p: QPainter) -> None:
        width, height = self.width(), self.height()
        self._selected = self.state.selected_keys()
        self._selected_channels = set(self.state.session.selection.channels)
        self._colours = curve_colours(self.state.session.selection.channels[:MAX_CURVES])
        p.fillRect(0, 0, width, height, BACKGROUND)
        font = self.font()
        font.setPointSizeF(max(font.pointSizeF() - 1.0, 7.0))
        p.setFont(font)
        self._metrics = QFontMetrics(font)
        p.setClipRect(0, self.pinned_height, width, height - self.pinned_height)
        rows = self.visible_rows()
        self.marks.clear()
        for i, row in enumerate(rows):
            self._paint_row(p, row, self.row_top(row), i)
        self.draw_time_grid(p, self.pinned_height, height)
        self.shade_outside(p, self.pinned_height, height)
        self.marks.paint(p, QRect(GUTTER, self.pinned_height, width - GUTTER, height - self.pinned_height),
                         self.devicePixelRatioF())
        p.setClipping(False)
        for row in self.pinned:
            self._paint_row(p, row, row.top, 0)
        self.shade_outside(p, RULER_HEIGHT, self.pinned_height)
        p.fillRect(GUTTER - 1, 0, 1, height, QColor(20, 20, 24))
        p.fillRect(0, self.pinned_height - 1, width, 1, QColor(20, 20, 24))
        if self.state.project.num_frames == 0:
            p.setPen(TEXT_DIM)
            p.drawText(QRect(GUTTER, self.pinned_height, width - GUTTER, max(height - self.pinned_height, 20)),
                       Qt.AlignCenter, "An empty project: import speech audio and Generate to fill the timeline")

    def _paint_row(self, p: QPainter, row: Row, top: int, index: int) -> None:
        width = self.width()
        painter = {"ruler": self._paint_ruler, "audio": self._paint_audio, "phones": self._paint_phones,
                   "emotion": self._paint_emotion, "control": self._paint_control, "group": self._paint_group,
                   "channel": self._paint_channel}[row.kind]
        background = {"group": GROUP_BACKGROUND, "channel": ROW_ALTERNATE if index % 2 else BACKGROUND,
                      "ruler": QColor(44, 44, 50)}.get(row.kind, LANE_BACKGROUND)
        p.fillRect(0, top, width, row.height, background)
        p.fillRect(0, top, GUTTER, row.height, GROUP_BACKGROUND if row.kind == "group" else GUTTER_BACKGROUND)
        channels = self.row_channels(row)
        if channels and set(channels) <= self._selected_channels:
            p.fillRect(0, top, width, row.height, SELECTED_ROW)
        p.save()
        p.setClipRect(GUTTER, max(top, 0), width - GUTTER, row.height, Qt.IntersectClip)
        painter(p, row, top)
        p.restore()
        self._paint_name(p, row, top)
        p.fillRect(0, top + row.height - 1, width, 1, QColor(24, 24, 28))

    def _paint_name(self, p: QPainter, row: Row, top: int) -> None:
        p.save()
        p.setClipRect(0, max(top, 0), GUTTER - 4, row.height, Qt.IntersectClip)
        box = QRect(8, top, GUTTER - 14, row.height)
        if row.kind == "group":
            p.setPen(TEXT)
            self._paint_arrow(p, 12, top + row.height / 2.0, row.group in self.expanded)
            locked = " · locked" if row.group in self.state.project.locked_groups else ""
            p.drawText(box.adjusted(14, 0, 0, 0), Qt.AlignVCenter | Qt.AlignLeft,
                       f"{row.title}  ({len(CHANNEL_GROUPS[row.group])}){locked}")
        elif row.kind == "channel":
            if row.channel in self._colours:
                p.fillRect(22, top + row.height // 2 - 3, 6, 6, self._colours[row.channel])
            p.setPen(TEXT if row.channel in self._selected_channels else TEXT_DIM)
            p.drawText(box.adjusted(26, 0, 0, 0), Qt.AlignVCenter | Qt.AlignLeft, row.title)
        elif row.kind == "ruler":
            pass  # the playhead's frame and time are drawn over it (they change while scrubbing)
        else:
            p.setPen(TEXT)
            p.drawText(box, Qt.AlignVCenter | Qt.AlignLeft, row.title)
            detail = self._row_detail(row)
            if detail:
                p.setPen(TEXT_DIM)
                p.drawText(box, Qt.AlignVCenter | Qt.AlignRight, detail)
        p.restore()

    def _row_detail(self, row: Row) -> str:
        if row.kind == "audio":
            audio = self.state.session.media.audio
            return "" if audio is None else f"{audio.duration:.1f} s"
        if row.kind == "control":
            curve = self.state.curve(row.path)
            return "" if curve is None else f"{len(curve)} keys"
        if row.kind == "emotion":
            return f"{len(self.state.project.emotion_segments)} segments"
        return ""

    @staticmethod
    def _paint_arrow(p: QPainter, x: float, y: float, expanded: bool) -> None:
        p.save()
        p.setRenderHint(QPainter.Antialiasing)
        p.setBrush(TEXT)
        p.setPen(Qt.NoPen)
        if expanded:
            shape = [QPointF(x - 4, y - 2), QPointF(x + 4, y - 2), QPointF(x, y + 3)]
        else:
            shape = [QPointF(x - 2, y - 4), QPointF(x + 3, y), QPointF(x - 2, y + 4)]
        p.drawPolygon(shape)
        p.restore()

    def _paint_ruler(self, p: QPainter, row: Row, top: int) -> None:
        state = self.state
        step, in_seconds = frame_step(state)
        first, last = state.visible_frames(self.width())
        p.setPen(TEXT_DIM)
        minor = step / 5 if step / 5 * state.ppf >= 6 else step / 2
        f = math.floor(max(first, 0) / minor) * minor
        while f <= last:
            x = round(state.x_of(f))
            major = abs(f / step - round(f / step)) < 1e-6
            p.fillRect(x, top + row.height - (10 if major else 5), 1, 10 if major else 5,
                       TEXT_DIM if major else QColor(90, 90, 100))
            if major:
                p.drawText(x + 3, top + 13, format_tick(f, state.project.fps, in_seconds))
            f += minor
        stale = state.stale_frames()
        if stale is not None and stale.any():
            f0 = int(np.clip(math.floor(first), 0, len(stale)))
            f1 = int(np.clip(math.ceil(last) + 1, 0, len(stale)))
            window = np.concatenate([[False], stale[f0:f1], [False]])
            edges = np.flatnonzero(np.diff(window.astype(np.int8)))
            for a, b in zip(edges[0::2], edges[1::2]):
                x0, x1 = state.x_of(f0 + a - 0.5), state.x_of(f0 + b - 0.5)
                p.fillRect(QRectF(x0, top + row.height - 3, max(x1 - x0, 1.0), 3), STALE)

    def _paint_audio(self, p: QPainter, row: Row, top: int) -> None:
        waveform = self.state.waveform()
        centre = top + row.height / 2.0
        p.fillRect(GUTTER, int(centre), self.width() - GUTTER, 1, QColor(60, 60, 68))
        if waveform is None:
            p.setPen(TEXT_DIM)
            p.drawText(QRect(GUTTER + 8, top, self.width() - GUTTER - 8, row.height), Qt.AlignVCenter,
                       "No audio: import speech (File ▸ Import ▸ Audio)")
            return
        columns = self.width() - GUTTER
        fps = self.state.project.fps
        t0 = self.state.frame_at(GUTTER - 0.5) / fps + 0.5 / fps  # frame f's sound starts at f / fps
        t1 = t0 + columns / self.state.ppf / fps
        mins, maxs, inside = waveform.envelope(t0, t1, columns)
        scale = (row.height / 2.0 - 3) / max(waveform.peak, 1e-4)
        x = np.flatnonzero(inside)
        if not len(x):
            return
        y0 = centre - maxs[x] * scale
        y1 = np.maximum(centre - mins[x] * scale, y0 + 1)
        xs = np.repeat(GUTTER + x + 0.5, 2)
        ys = np.empty(2 * len(x))
        ys[0::2], ys[1::2] = y0, y1
        connect = np.zeros(2 * len(x), dtype=bool)
        connect[0::2] = True
        p.setPen(QPen(QColor(96, 172, 232), 1.0))
        p.drawPath(pg.arrayToQPath(xs, ys, connect=connect))

    def _paint_phones(self, p: QPainter, row: Row, top: int) -> None:
        track = self.state.phones()
        if not len(track):
            p.setPen(TEXT_DIM)
            p.drawText(QRect(GUTTER + 8, top, self.width() - GUTTER - 8, row.height), Qt.AlignVCenter,
                       "No phones stored with the generated motion")
            return
        state = self.state
        fps = state.project.fps
        columns = self.width() - GUTTER
        if track.median_duration() * fps * state.ppf < MIN_PHONE_PIXELS:
            # far out: one colour per pixel column (the phone sounding there), drawn as an image
            times = (state.frame_at(GUTTER + np.arange(columns) + 0.5) + 0.5) / fps
            strip = np.ascontiguousarray(track.strip(times)[None])
            image = QImage(strip.data, columns, 1, 3 * columns, QImage.Format_RGB888)
            p.drawImage(QRectF(GUTTER, top + 2, columns, row.height - 4), image)
            return
        first, last = state.visible_frames(self.width())
        lo = max(int(np.searchsorted(track.starts * fps, first)) - 1, 0)
        hi = int(np.searchsorted(track.starts * fps, last, side="right"))
        widths = self._label_widths
        p.setPen(TEXT)
        for phone in track.phones[lo:hi]:
            x0 = state.x_of(phone.start * fps - 0.5)
            x1 = state.x_of(phone.end * fps - 0.5)
            p.fillRect(QRectF(x0, top + 2, max(x1 - x0 - 1, 1.0), row.height - 4), viseme_colour(phone.viseme))
            if phone.label == "SIL":
                continue
            both = f"{phone.label} {phone.viseme}" if phone.viseme else phone.label
            for text in (both, phone.label):
                width = widths.get(text)
                if width is None:
                    width = widths[text] = self._metrics.horizontalAdvance(text)
                if x1 - x0 > width + 4:
                    p.drawText(QRectF(x0, top, x1 - x0, row.height), Qt.AlignCenter, text)
                    break

    # emotion segments ---------------------------------------------------------------------------
    def segments(self) -> list[EmotionSegment]:
        """The segments as shown: the document's, with the one being dragged at its new place."""
        shown = [self.segment_preview if self.segment_preview is not None and s.id == self.segment_preview.id else s
                 for s in self.state.project.emotion_segments]
        if self.segment_preview is not None and self.segment_preview.id not in {s.id for s in shown}:
            shown.append(self.segment_preview)
        return shown

    def segment_span(self, segment: EmotionSegment) -> tuple[float, float]:
        return self.state.x_of(segment.start - 0.5), self.state.x_of(segment.end - 0.5)

    def _paint_emotion(self, p: QPainter, row: Row, top: int) -> None:
        p.setRenderHint(QPainter.Antialiasing)
        for segment in self.segments():
            x0, x1 = self.segment_span(segment)
            if x1 < GUTTER or x0 > self.width():
                continue
            colour = QColor(EMOTION_COLOURS[segment.label])
            colour.setAlphaF(0.35 + 0.6 * segment.strength)
            bi = segment.blend_in * self.state.ppf
            bo = segment.blend_out * self.state.ppf
            y0, y1 = top + 3, top + row.height - 3
            shape = [QPointF(x0, y1), QPointF(x0 + bi, y0), QPointF(x1 - bo, y0), QPointF(x1, y1)]
            p.setBrush(colour)
            selected = segment.id == self.selected_segment
            p.setPen(QPen(QColor(255, 255, 255) if selected else colour.darker(160), 2.0 if selected else 1.0))
            p.drawPolygon(shape)
            text = f"{segment.label} {segment.strength * 100:.0f} %"
            if x1 - bo - max(x0 + bi, GUTTER) > self._metrics.horizontalAdvance(text) + 8:
                p.setPen(QColor(20, 20, 24))
                left = max(x0 + bi, GUTTER) + 4
                p.drawText(QRectF(left, y0, max(x1 - bo - left - 4, 0.0), y1 - y0),
                           Qt.AlignVCenter | Qt.AlignLeft, text)
        p.setRenderHint(QPainter.Antialiasing, False)

    # control lanes, groups and channels ----------------------------------------------------------
    def _paint_control(self, p: QPainter, row: Row, top: int) -> None:
        state = self.state
        if row.reference is not None:
            y = float(self.value_y(row, top, row.reference))
            p.fillRect(QRectF(GUTTER, y, self.width() - GUTTER, 1), QColor(70, 70, 80))
        curve = state.curve(row.path)
        if curve is not None and row.path[0] == "override":
            x0, x1 = state.x_of(curve.frames[0]), state.x_of(curve.frames[-1])
            p.fillRect(QRectF(x0, top, max(x1 - x0, 1.0), row.height), QColor(64, 140, 230, 36))
        sampled = state.sampled(self.width())
        if len(sampled.frames):
            x = state.x_of(sampled.frames)
            if row.channel is not None:
                base = sampled.base[:, CHANNEL_INDEX[row.channel]]
                draw_curve(p, x, self.value_y(row, top, base), QColor(150, 150, 160, 90), 1.0)
                values = sampled.evaluated[:, CHANNEL_INDEX[row.channel]]
            else:
                values = sampled.intensity
            colour = QColor(120, 200, 150) if row.channel is None else QColor(110, 180, 240)
            draw_curve(p, x, self.value_y(row, top, values), colour, 1.4)
        self._paint_keys(p, row, top)

    def _paint_group(self, p: QPainter, row: Row, top: int) -> None:
        self._paint_keys(p, row, top, summary=True)

    def _paint_channel(self, p: QPainter, row: Row, top: int) -> None:
        self._paint_keys(p, row, top)

    def _paint_keys(self, p: QPainter, row: Row, top: int, summary: bool = False) -> None:
        """Add a row's keys to the marks stamped once all rows are drawn (summary rows: small)."""
        keys = self._row_keys(row, top, self._selected, self.state.preview)
        if not keys:
            return
        x = np.concatenate([k[2] for k in keys])
        y = np.concatenate([k[3] for k in keys])
        interpolation = np.concatenate([k[4] for k in keys])
        chosen = np.concatenate([k[5] for k in keys])
        if summary:
            interpolation = np.full(len(x), int(Interpolation.BEZIER))
        inside = (y >= max(top, self.pinned_height)) & (y < top + row.height)
        self.marks.add(x[inside], y[inside], interpolation[inside], chosen[inside],
                       SUMMARY_KEY if summary else KEY_COLOUR, 4 if summary else 5)

    # --- the overlay (every paint) ----------------------------------------------------------------
    def paint_overlay(self, p: QPainter) -> None:
        state = self.state
        x = self.draw_playhead(p, 0)
        frame = state.session.frame
        if GUTTER <= x <= self.width():
            label = str(frame)
            w = self.fontMetrics().horizontalAdvance(label) + 8
            p.fillRect(QRectF(x - w / 2, 1, w, 15), PLAYHEAD)
            p.setPen(QColor(20, 20, 24))
            p.drawText(QRectF(x - w / 2, 1, w, 15), Qt.AlignCenter, label)
        p.fillRect(0, 0, GUTTER - 1, RULER_HEIGHT - 1, QColor(44, 44, 50))
        p.setPen(TEXT)
        seconds = frame / state.project.fps
        minutes, rest = divmod(seconds, 60.0)
        p.drawText(QRect(8, 0, GUTTER - 16, RULER_HEIGHT), Qt.AlignVCenter | Qt.AlignLeft,
                   f"{frame} / {state.project.num_frames}   {int(minutes)}:{rest:05.2f}")
        if self.rubber_band is not None:
            p.setPen(QPen(RUBBER_BAND, 1.0))
            fill = QColor(RUBBER_BAND)
            fill.setAlpha(40)
            p.setBrush(fill)
            p.drawRect(self.rubber_band)

    # --- mouse ----------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        self.setFocus(Qt.MouseFocusReason)
        pos = event.position()
        x, y = pos.x(), pos.y()
        additive = bool(event.modifiers() & (Qt.ShiftModifier | Qt.ControlModifier))
        if event.button() == Qt.MiddleButton:
            self.drag = Drag("pan", x, y, start=self.state.start, scroll=self.scroll)
            return
        if event.button() != Qt.LeftButton:
            return
        row = self.row_at(y)
        if row is None:
            return
        if x < GUTTER:
            self._press_name(row, x, event.modifiers())
            return
        if row.kind in ("ruler", "audio", "phones"):
            self.drag = Drag("scrub", x, y, row)
            self.state.session.frame = round(self.state.frame_at(x))
            return
        if row.kind == "emotion":
            self._press_emotion(x, y, row)
            return
        hit = self.key_at(row, x, y)
        if not hit:
            self.drag = Drag("box", x, y, row, additive=additive)
            return
        if self.state.press_keys(hit, additive, self.row_channels(row)):
            self.drag = Drag("keys", x, y, row, additive=additive, hit=hit)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        x, y = pos.x(), pos.y()
        drag = self.drag
        if drag is None:
            self._update_cursor(x, y)
            return
        if not drag.active and abs(x - drag.x) + abs(y - drag.y) < DRAG_START and drag.kind != "scrub":
            return
        drag.active = True
        state = self.state
        if drag.kind == "scrub":  # within the tracks: the playhead stays in view, the view stays put
            state.session.frame = round(state.frame_at(min(max(x, GUTTER), self.width() - 1)))
        elif drag.kind == "pan":
            state.set_view(drag.start - (x - drag.x) / state.ppf, state.ppf)
            self.set_scroll(drag.scroll - int(y - drag.y))
        elif drag.kind == "box":
            self.rubber_band = QRect(int(min(drag.x, x)), int(min(drag.y, y)),
                                     int(abs(x - drag.x)), int(abs(y - drag.y)))
            self.update()
        elif drag.kind == "keys":
            frames = state.clamp_frame_delta(round((x - drag.x) / state.ppf))
            values = None
            if drag.row.kind == "control" and set(state.selected_keys()) == {drag.row.path}:
                low, high = drag.row.value_range
                delta = -(y - drag.y) / (drag.row.height - 8) * (high - low)
                values = {drag.row.path: state.clamp_value_delta(drag.row.path, delta)}
            state.set_preview(DragPreview(frames, values))
        elif drag.kind.startswith("segment"):
            self._drag_segment(x)

    def mouseReleaseEvent(self, event) -> None:
        drag, self.drag = self.drag, None
        if drag is None:
            return
        state = self.state
        if drag.kind == "keys":
            preview = state.preview
            state.set_preview(None)
            if drag.active and preview is not None and (preview.frames or preview.values):
                state.move_selected(preview.frames, preview.values)
            elif not drag.active and not drag.additive and drag.hit:
                state.select_keys(drag.hit, "replace", self.row_channels(drag.row))  # a click in a selection
        elif drag.kind == "box":
            rect, self.rubber_band = self.rubber_band, None
            if drag.active and rect is not None:
                keys, channels = self.keys_in_rect(rect)
                state.select_keys(keys, "add" if drag.additive else "replace",
                                  channels if channels else None, add_channels=drag.additive)
            elif not drag.additive:
                state.select_keys({})
            self.update()
        elif drag.kind.startswith("segment"):
            self._release_segment(drag)

    def mouseDoubleClickEvent(self, event) -> None:
        if event.button() != Qt.LeftButton:
            return
        pos = event.position()
        x, y = pos.x(), pos.y()
        row = self.row_at(y)
        self.drag = None
        if row is None:
            return
        if x < GUTTER:
            if row.kind == "group":
                self.set_expanded(row.group, row.group not in self.expanded)
            return
        frame = int(np.clip(round(self.state.frame_at(x)), 0, max(self.state.project.num_frames - 1, 0)))
        if self.state.project.num_frames == 0:
            return
        if row.kind == "emotion":
            if self.segment_at(x) is None:
                self.add_segment(self.new_emotion, frame)
        elif row.kind == "control":
            self.state.insert_key(row.path, frame, self.value_at(row, self.row_top(row), y))
        elif row.kind in ("group", "channel"):
            self.state.insert_channel_keys(self.row_channels(row), frame)

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if not delta:
            return
        pos = event.position()
        steps = delta / 120.0
        modifiers = event.modifiers()
        row = self.row_at(pos.y())
        if modifiers & Qt.AltModifier and row is not None and row.kind == "emotion":
            found = self.segment_at(pos.x())
            if found is not None:
                segment = found[0]
                strength = float(np.clip(round(segment.strength * 20 + np.sign(steps)) / 20, 0.05, 1.0))
                self.state.project.update_emotion(segment.id, merge=True, strength=strength)
            event.accept()
            return
        if modifiers & Qt.ShiftModifier:
            first, last = self.state.visible_frames(self.width())
            self.state.pan(-steps * 0.1 * (last - first))
        elif modifiers & Qt.ControlModifier or (row is not None and row in self.pinned):
            self.state.zoom(1.25 ** steps, self.state.frame_at(max(pos.x(), GUTTER)))
        else:
            self.set_scroll(self.scroll - int(steps * 3 * CHANNEL_HEIGHT))
        event.accept()

    def _update_cursor(self, x: float, y: float) -> None:
        row = self.row_at(y)
        cursor = Qt.ArrowCursor
        if row is not None and x >= GUTTER:
            if row.kind == "emotion":
                found = self.segment_at(x)
                if found is not None:
                    cursor = Qt.SizeHorCursor if found[1] in ("start", "end") else Qt.OpenHandCursor
            elif row.kind in ("ruler", "audio", "phones"):
                cursor = Qt.IBeamCursor
        self.setCursor(cursor)

    def event(self, event) -> bool:
        if event.type() == QEvent.ToolTip:
            text = self.tooltip_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def tooltip_at(self, pos) -> str:
        """What is under the mouse, and what the mouse does there."""
        x, y = float(pos.x()), float(pos.y())
        row = self.row_at(y)
        if row is None:
            return ""
        state = self.state
        if x < GUTTER:
            if row.kind == "group":
                return (f"{row.title}: click selects its {len(CHANNEL_GROUPS[row.group])} channels (Shift adds), "
                        "the arrow or a double-click expands it; right-click to lock it")
            if row.kind == "channel":
                return f"{row.channel}: click selects it (Shift adds); the curve editor shows the selected channels"
            return ""
        if row.kind in ("ruler", "audio"):
            return "Click or drag to move the playhead · wheel: zoom · Shift+wheel: pan"
        if row.kind == "phones":
            track = state.phones()
            seconds = (state.frame_at(x) + 0.5) / state.project.fps
            i = int(np.searchsorted(track.starts, seconds, side="right")) - 1
            if 0 <= i < len(track) and seconds < track.ends[i]:
                phone = track.phones[i]
                return f"{phone.label} · viseme {phone.viseme or '—'} · {phone.start:.2f}–{phone.end:.2f} s"
            return ""
        if row.kind == "emotion":
            found = self.segment_at(x)
            if found is None:
                return (f"Drag to add a {self.new_emotion} segment (double-click: {NEW_SEGMENT_SECONDS:g} s); "
                        "right-click to choose the emotion")
            seg = found[0]
            return (f"{seg.label} {seg.strength * 100:.0f} % · frames {seg.start}–{seg.end - 1} · fades "
                    f"{seg.blend_in}/{seg.blend_out} frames\nDrag to move, drag an edge to resize, Alt+wheel "
                    "for strength, right-click for label, strength and fades")
        hit = self.key_at(row, x, y)
        if hit:
            path, (index,) = next(iter(hit.items()))
            curve = state.curve(path)
            more = f" (+{len(hit) - 1} more channels)" if len(hit) > 1 else ""
            return (f"{path_label(path)}{more} · frame {curve.frames[index]:g} · value {curve.values[index]:.4g} · "
                    f"{Interpolation(int(curve.interpolation[index])).name.title()}")
        if row.kind == "control":
            return f"{row.title}: double-click adds a key at the value under the mouse"
        return "Double-click keys this row at that frame (its current value); drag to select keys in a box"

    # names -------------------------------------------------------------------------------------
    def _press_name(self, row: Row, x: float, modifiers) -> None:
        if row.kind == "group" and x < 22:
            self.set_expanded(row.group, row.group not in self.expanded)
            return
        channels = self.row_channels(row)
        if channels is None:
            return
        mode = "toggle" if modifiers & (Qt.ShiftModifier | Qt.ControlModifier) else "replace"
        self.state.select_channels(channels, mode)

    # emotion segments -----------------------------------------------------------------------------
    def segment_at(self, x: float) -> tuple[EmotionSegment, str] | None:
        """The segment under ``x`` and the part grabbed: ``"start"``, ``"end"`` (the edges) or ``"body"``."""
        for segment in reversed(self.segments()):
            x0, x1 = self.segment_span(segment)
            if not x0 - HIT <= x <= x1 + HIT:
                continue
            edge = min(HIT, (x1 - x0) / 3)
            if abs(x - x0) <= edge:
                return segment, "start"
            if abs(x - x1) <= edge:
                return segment, "end"
            if x0 <= x <= x1:
                return segment, "body"
        return None

    def _press_emotion(self, x: float, y: float, row: Row) -> None:
        found = self.segment_at(x)
        if found is None:
            self.selected_segment = None
            self.drag = Drag("segment-new", x, y, row)
        else:
            segment, part = found
            self.selected_segment = segment.id
            self.drag = Drag(f"segment-{'move' if part == 'body' else part}", x, y, row, segment=segment)
        self.invalidate()

    def _fitted(self, segment: EmotionSegment, start: int, end: int) -> EmotionSegment:
        """``segment`` over [start, end) inside the project, its fades shortened to fit."""
        last = max(self.state.project.num_frames, 1)
        start = int(np.clip(start, 0, last - 1))
        end = int(np.clip(end, start + 1, last))
        length = end - start
        blend_in, blend_out = segment.blend_in, segment.blend_out
        if blend_in + blend_out > length:
            blend_in = blend_in * length // (blend_in + blend_out)
            blend_out = min(blend_out, length - blend_in)
        return replace(segment, start=start, end=end, blend_in=blend_in, blend_out=blend_out)

    def _drag_segment(self, x: float) -> None:
        drag = self.drag
        state = self.state
        frame = state.frame_at(x)
        if drag.kind == "segment-new":
            a, b = round(state.frame_at(drag.x)), round(frame)  # the frames pressed and under the mouse
            seg = self.segment_preview or EmotionSegment(self.new_emotion, 0, 1)
            self.segment_preview = self._fitted(seg, min(a, b), max(a, b) + 1)
        else:
            seg = drag.segment
            if drag.kind == "segment-move":
                delta = round((x - drag.x) / state.ppf)
                last = max(state.project.num_frames, 1)
                delta = int(np.clip(delta, -seg.start, last - seg.end))
                self.segment_preview = replace(seg, start=seg.start + delta, end=seg.end + delta)
            elif drag.kind == "segment-start":
                self.segment_preview = self._fitted(seg, min(round(frame + 0.5), seg.end - 1), seg.end)
            else:
                self.segment_preview = self._fitted(seg, seg.start, max(round(frame + 0.5), seg.start + 1))
        self.invalidate()

    def _release_segment(self, drag: Drag) -> None:
        preview, self.segment_preview = self.segment_preview, None
        project = self.state.project
        if not drag.active or preview is None:
            self.invalidate()
            return
        if drag.kind == "segment-new":
            self.selected_segment = project.add_emotion(preview.label, preview.start, preview.end, preview.strength)
        else:
            seg = drag.segment
            changes = {k: getattr(preview, k) for k in ("start", "end", "blend_in", "blend_out")
                       if getattr(preview, k) != getattr(seg, k)}
            if changes:
                project.update_emotion(seg.id, **changes)
        self.invalidate()

    def add_segment(self, label: str, frame: int | None = None) -> str | None:
        """Add a segment of ``label`` (:data:`NEW_SEGMENT_SECONDS` long) from ``frame`` (the playhead)."""
        project = self.state.project
        if project.num_frames == 0:
            return None
        frame = self.state.session.frame if frame is None else int(frame)
        length = max(round(NEW_SEGMENT_SECONDS * project.fps), 1)
        seg = self._fitted(EmotionSegment(label, 0, 1), frame, frame + length)
        self.selected_segment = project.add_emotion(label, seg.start, seg.end)
        self.invalidate()
        return self.selected_segment

    def remove_selected_segment(self) -> bool:
        if self.selected_segment is None:
            return False
        self.state.project.remove_emotion(self.selected_segment)
        self.selected_segment = None
        self.invalidate()
        return True

    # --- context menus -----------------------------------------------------------------------------
    def contextMenuEvent(self, event) -> None:
        menu = self.context_menu(event.pos())
        if menu is not None and not menu.isEmpty():
            menu.exec(event.globalPos())

    def context_menu(self, pos) -> QMenu | None:
        """The menu for a right-click at ``pos`` (widget pixels): a segment's (label, strength,
        fades, delete), empty emotion lane (add a segment), a group's name (expand, select, lock),
        or the keys' (interpolation, copy, paste, delete, select all, frame all)."""
        x, y = float(pos.x()), float(pos.y())
        row = self.row_at(y)
        if row is None:
            return None
        menu = QMenu(self)
        if x < GUTTER:
            if row.kind in ("group", "channel"):
                self._name_menu(menu, row)
            return menu
        if row.kind == "emotion":
            found = self.segment_at(x)
            if found is not None:
                self.selected_segment = found[0].id
                self.invalidate()
                self._segment_menu(menu, found[0])
            else:
                frame = int(np.clip(round(self.state.frame_at(x)), 0, max(self.state.project.num_frames - 1, 0)))
                add = menu.addMenu("Add emotion here")
                for label in EMOTIONS:
                    add.addAction(label, lambda label=label, frame=frame: self.add_segment(label, frame))
            return menu
        if row.kind in ("control", "group", "channel"):
            hit = self.key_at(row, x, y)
            if hit and not all(set(i) <= set(self.state.selected_keys().get(p, ())) for p, i in hit.items()):
                self.state.select_keys(hit, "replace", self.row_channels(row))
        self.actions.fill_menu(menu)
        return menu

    def _segment_menu(self, menu: QMenu, segment: EmotionSegment) -> None:
        project = self.state.project
        labels = menu.addMenu("Label")
        group = QActionGroup(labels)
        for label in EMOTIONS:
            action = QAction(label, labels, checkable=True, checked=label == segment.label)
            action.triggered.connect(lambda checked=False, label=label: project.update_emotion(segment.id, label=label))
            group.addAction(action)
            labels.addAction(action)
        strengths = menu.addMenu("Strength")
        group = QActionGroup(strengths)
        for s in STRENGTHS:
            action = QAction(f"{s * 100:.0f} %", strengths, checkable=True, checked=abs(s - segment.strength) < 1e-6)
            action.triggered.connect(lambda checked=False, s=s: project.update_emotion(segment.id, strength=s))
            group.addAction(action)
            strengths.addAction(action)
        fades = menu.addMenu("Fade in/out")
        fps = project.fps
        for seconds in FADES_SECONDS:
            frames = min(round(seconds * fps), (segment.end - segment.start) // 2)
            text = "None" if seconds == 0 else f"{seconds:g} s ({frames} frames)"
            action = fades.addAction(text, lambda frames=frames: project.update_emotion(
                segment.id, blend_in=frames, blend_out=frames))
            action.setCheckable(True)
            action.setChecked(segment.blend_in == frames and segment.blend_out == frames)
        menu.addSeparator()
        menu.addAction("Delete segment", self.remove_selected_segment)

    def _name_menu(self, menu: QMenu, row: Row) -> None:
        channels = self.row_channels(row)
        menu.addAction(f"Select {row.title}", lambda: self.state.select_channels(channels))
        menu.addAction(f"Key {row.title} at the playhead",
                       lambda: self.state.insert_channel_keys(channels, self.state.session.frame))
        if row.kind == "group":
            group = row.group
            expanded = group in self.expanded
            menu.addAction("Collapse" if expanded else "Expand", lambda: self.set_expanded(group, not expanded))
            locked = group in self.state.project.locked_groups
            menu.addAction(f"{'Unlock' if locked else 'Lock'} {row.title} (keep the generated motion)",
                           lambda: self.state.project.lock_groups([group], not locked))
        menu.addSeparator()
        menu.addAction("Expand all groups", lambda: self.expand_all(True))
        menu.addAction("Collapse all groups", lambda: self.expand_all(False))
