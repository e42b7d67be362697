"""The curve editor: the selected channels' F-curves over the generated motion beneath them.

For every selected motion channel (the dope sheet's names, the 2D view's keypoints, the
inspector) it draws, on the timeline's time axis:

* the generated **base** motion, thin and faint;
* the **evaluated** motion on top (the base with every layer, lock, override and limit applied);
* the active layer's **keys** at their values (diamond Bézier, square constant, circle linear),
  the selected ones orange.

Click a key to select it (Shift/Ctrl toggles), drag on empty space for a box, drag a selected key
to move the selection in time and value (one undo step on release; the moved curve is previewed
while dragging), double-click to key the nearest curve there. A selected key on a Bézier segment
shows its **handles** (a third of the way to its neighbours): drag one to set the key's slope —
aligned handles, one slope on both sides — previewed while dragging, one undo step on release;
Interpolation ▸ Auto handles (Ctrl+4) puts them back to automatic. The wheel zooms the values,
Ctrl+wheel zooms time, Shift+wheel pans time, a middle-button drag pans both; F (Frame all) fits
again.
*Normalize* scales each curve to its own range, so head pose (degrees) and expression offsets
(face units) can be edited side by side. The names on the left select one channel alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QMenu, QWidget

from studio.core.fcurve import Interpolation
from studio.core.motion import CHANNEL_INDEX
from studio.qt.timeline_state import (
    BACKGROUND,
    GRID,
    GRID_MAJOR,
    GUTTER,
    GUTTER_BACKGROUND,
    MAX_CURVES,
    RUBBER_BAND,
    TEXT,
    TEXT_DIM,
    DragPreview,
    KeySet,
    TimeCanvas,
    TimelineState,
    channel_label,
    curve_colours,
    draw_curve,
    nice_step,
)

TOP, BOTTOM = 10, 10
HIT = 7
DRAG_START = 3
LEGEND_LINE = 15
#: Opacity of the generated (base) motion drawn beneath the evaluated curve.
BASE_ALPHA = 110
#: Width of the value labels at the right of the name column.
AXIS_LABELS = 44


@dataclass
class CurveDrag:
    kind: str  # "keys" | "box" | "pan" | "handle"
    x: float
    y: float
    active: bool = False
    additive: bool = False
    hit: KeySet | None = None
    start: float = 0.0
    range: tuple[float, float] = (0.0, 1.0)
    handle: Handle | None = None


@dataclass(frozen=True)
class Handle:
    """One Bézier handle of a selected key: its curve, key, side (−1 before, +1 after), the
    channel it is drawn for and its length in frames."""

    channel: str
    path: tuple
    index: int
    side: int
    length: float


def key_handles(curve, chosen: np.ndarray) -> list[tuple[int, int, float]]:
    """``(index, side, length in frames)`` of the handles of the ``chosen`` keys of ``curve``: a
    side of a key has one where the segment there is Bézier; it reaches a third of the way."""
    out = []
    f, interpolation = curve.frames, curve.interpolation
    for i in np.flatnonzero(chosen):
        if i > 0 and interpolation[i - 1] == Interpolation.BEZIER:
            out.append((int(i), -1, float(f[i] - f[i - 1]) / 3.0))
        if i < len(f) - 1 and interpolation[i] == Interpolation.BEZIER:
            out.append((int(i), 1, float(f[i + 1] - f[i]) / 3.0))
    return out


class CurveEditor(TimeCanvas):
    """The selected channels' curves (see the module docstring)."""

    def __init__(self, state: TimelineState, actions, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.actions = actions
        self.auto = True  # fit the value range to the curves shown
        self.normalize = False
        self.value_range = (-1.0, 1.0)
        self.drag: CurveDrag | None = None
        self.handle_preview: tuple[tuple, int, float] | None = None  # (path, key, slope) while dragging a handle
        self.rubber_band: QRect | None = None
        self._norms: dict[str, tuple[float, float]] = {}
        self.setMinimumHeight(90)

    # --- what is shown --------------------------------------------------------------------------
    def channels(self) -> list[str]:
        return list(self.state.session.selection.channels[:MAX_CURVES])

    def set_normalize(self, on: bool) -> None:
        self.normalize = bool(on)
        self.auto = True
        self.invalidate()

    def frame_all(self) -> None:
        self.auto = True
        self.invalidate()

    def _display(self, channel: str, values):
        """Values as drawn: normalized to −1…1 per channel when :attr:`normalize` is on."""
        if not self.normalize:
            return values
        mid, half = self._norms.get(channel, (0.0, 1.0))
        return (np.asarray(values, dtype=np.float64) - mid) / half

    def _scale(self, channel: str) -> float:
        """Document units per drawn unit of a channel."""
        return self._norms.get(channel, (0.0, 1.0))[1] if self.normalize else 1.0

    def plot_height(self) -> float:
        return max(self.height() - TOP - BOTTOM, 10)

    def y_of(self, values):
        low, high = self.value_range
        return TOP + (high - np.asarray(values, dtype=np.float64)) / (high - low) * self.plot_height()

    def value_at(self, y: float) -> float:
        low, high = self.value_range
        return high - (y - TOP) / self.plot_height() * (high - low)

    def _keys(self, channel: str, selected: KeySet, preview: DragPreview | None):
        """The active layer's keys of a channel: path, indices, frames, drawn values, interpolation,
        selected mask (the drag preview applied); None when the channel has no keys."""
        path = self.state.key_path(channel)
        curve = self.state.curve(path)
        if curve is None:
            return None
        chosen = np.zeros(len(curve), dtype=bool)
        chosen[list(selected.get(path, ()))] = True
        frames, values = curve.frames, curve.values
        if preview is not None and chosen.any():
            frames = frames + chosen * preview.frames
            values = values + chosen * preview.value(path)
        return path, np.arange(len(curve)), frames, self._display(channel, values), curve.interpolation, chosen

    def _update_ranges(self, channels: list[str], sampled, keys: dict) -> None:
        """Per-channel normalization and, in auto mode, the value range of what is visible."""
        first, last = self.state.visible_frames(self.width())
        if self.drag is None or not self.drag.active:
            self._norms = {}
            for channel in channels:
                col = CHANNEL_INDEX[channel]
                parts = [sampled.evaluated[:, col], sampled.base[:, col]]
                found = keys.get(channel)
                if found is not None:
                    inside = (found[2] >= first) & (found[2] <= last)
                    parts.append(self.state.curve(found[0]).values[inside])
                data = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) if parts else np.zeros(1)
                if not data.size:
                    data = np.zeros(1)
                lo, hi = float(data.min()), float(data.max())
                self._norms[channel] = ((lo + hi) / 2, max((hi - lo) / 2, 1e-3))
        if not self.auto or (self.drag is not None and self.drag.active):
            return
        spans = []
        for channel in channels:
            col = CHANNEL_INDEX[channel]
            spans.append(self._display(channel, sampled.evaluated[:, col]))
            spans.append(self._display(channel, sampled.base[:, col]))
            found = keys.get(channel)
            if found is not None:
                inside = (found[2] >= first) & (found[2] <= last)
                spans.append(found[3][inside])
        data = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in spans]) if spans else np.zeros(0)
        if not data.size:
            self.value_range = (-1.0, 1.0)
            return
        lo, hi = float(data.min()), float(data.max())
        pad = max((hi - lo) * 0.08, 0.01 if not self.normalize else 0.1)
        self.value_range = (lo - pad, hi + pad)

    # --- painting ---------------------------------------------------------------------------------
    def render_static(self, p: QPainter) -> None:
        width, height = self.width(), self.height()
        state = self.state
        p.fillRect(0, 0, width, height, BACKGROUND)
        p.fillRect(0, 0, GUTTER, height, GUTTER_BACKGROUND)
        font = self.font()
        font.setPointSizeF(max(font.pointSizeF() - 1.0, 7.0))
        p.setFont(font)
        channels = self.channels()
        self._shown = channels
        if not channels:
            p.setPen(TEXT_DIM)
            p.drawText(QRect(GUTTER, 0, width - GUTTER, height), Qt.AlignCenter,
                       "Curve editor: select channels in the dope sheet (or keypoints in the 2D view)")
            self.draw_time_grid(p, 0, height)
            return
        sampled = state.sampled(width)
        selected = state.selected_keys()
        keys = {c: k for c in channels if (k := self._keys(c, selected, state.preview)) is not None}
        self._update_ranges(channels, sampled, keys)
        self._paint_value_grid(p)
        self.draw_time_grid(p, 0, height)
        self.shade_outside(p, 0, height)
        p.save()
        p.setClipRect(GUTTER, 0, width - GUTTER, height)
        x = state.x_of(sampled.frames)
        colours = self._colours = curve_colours(channels)
        for channel in channels:
            colour = colours[channel]
            col = CHANNEL_INDEX[channel]
            if len(x):
                faint = QColor(colour)
                faint.setAlpha(BASE_ALPHA)
                draw_curve(p, x, self.y_of(self._display(channel, sampled.base[:, col])), faint, 1.0)
                evaluated = self._display(channel, sampled.evaluated[:, col])
                moved = self._preview_curve(channel, sampled.frames, keys.get(channel))
                if moved is not None:
                    dim = QColor(colour)
                    dim.setAlpha(110)
                    draw_curve(p, x, self.y_of(evaluated), dim, 1.0)
                    evaluated = moved
                draw_curve(p, x, self.y_of(evaluated), colour, 1.7)
        self._paint_keys(p, channels, keys)
        p.restore()
        self._paint_legend(p, channels)

    def _preview_curve(self, channel: str, frames: np.ndarray, found) -> np.ndarray | None:
        """The channel's curve with the dragged keys at their new place, or the dragged handle's
        slope (drawn while dragging)."""
        if found is None or not len(frames):
            return None
        path = found[0]
        curve = self._handle_curve(path)
        if curve is not None:
            return self._display(channel, curve.evaluate(frames))
        preview = self.state.preview
        if preview is None or not found[5].any():
            return None
        moved = self.state.curve(path).with_keys_moved(np.flatnonzero(found[5]), preview.frames, preview.value(path))
        return self._display(channel, moved.evaluate(frames))

    def _handle_curve(self, path: tuple):
        """The curve at ``path`` with the slope of the handle being dragged; None when none is."""
        if self.handle_preview is None or self.handle_preview[0] != path:
            return None
        _, index, slope = self.handle_preview
        return self.state.curve(path).with_slopes([index], slope)

    def handles(self) -> list[tuple[Handle, float, float, float, float]]:
        """The selected keys' handles: each with its key's and its end's position in pixels
        ``(handle, key x, key y, end x, end y)``; none while keys are being moved."""
        if self.state.preview is not None:
            return []
        out = []
        for channel, (path, _, frames, values, _, chosen) in self._all_keys():
            curve = self._handle_curve(path) or self.state.curve(path)
            slopes = curve.tangents / self._scale(channel)  # drawn units per frame
            for index, side, length in key_handles(curve, chosen):
                kx, ky = float(self.state.x_of(frames[index])), float(self.y_of(values[index]))
                ex = float(self.state.x_of(frames[index] + side * length))
                ey = float(self.y_of(values[index] + side * length * slopes[index]))
                out.append((Handle(channel, path, index, side, length), kx, ky, ex, ey))
        return out

    def handle_at(self, x: float, y: float) -> Handle | None:
        """The handle whose end is nearest to (x, y) within :data:`HIT` pixels."""
        best, best_d = None, HIT + 0.5
        for handle, _, _, ex, ey in self.handles():
            d = math.hypot(ex - x, ey - y)
            if d < best_d:
                best, best_d = handle, d
        return best

    def slope_for(self, handle: Handle, x: float, y: float) -> float:
        """The key's slope (document units per frame) that puts ``handle``'s end towards (x, y);
        the end stays on its own side of the key (at least a pixel)."""
        curve = self.state.curve(handle.path)
        frame, value = curve.frames[handle.index], curve.values[handle.index]
        frames = handle.side * max(handle.side * (self.state.frame_at(x) - frame), 1.0 / self.state.ppf)
        drawn = self.value_at(y) - float(self._display(handle.channel, value))
        return drawn * self._scale(handle.channel) / frames

    def _paint_value_grid(self, p: QPainter) -> None:
        low, high = self.value_range
        step = nice_step(high - low, max(int(self.plot_height() / 36), 2))
        v = math.ceil(low / step) * step
        p.setPen(TEXT_DIM)
        while v <= high:
            y = float(self.y_of(v))
            p.fillRect(QRectF(GUTTER, y, self.width() - GUTTER, 1), GRID_MAJOR if abs(v) < step / 2 else GRID)
            text = f"{v:.4g}" if abs(v) >= step / 2 else "0"
            p.drawText(QRectF(GUTTER - AXIS_LABELS, y - 8, AXIS_LABELS - 6, 16), Qt.AlignRight | Qt.AlignVCenter, text)
            v += step
        if self.normalize:
            p.drawText(QRectF(GUTTER - 80, self.height() - 18, 74, 16), Qt.AlignRight | Qt.AlignVCenter, "normalized")

    def _paint_handles(self, p: QPainter) -> None:
        for handle, kx, ky, ex, ey in self.handles():
            colour = QColor(self._colours.get(handle.channel, TEXT))
            p.setPen(QPen(colour, 1.0))
            p.drawLine(QPointF(kx, ky), QPointF(ex, ey))
            p.setBrush(colour)
            p.drawEllipse(QPointF(ex, ey), 3.0, 3.0)
        p.setBrush(Qt.NoBrush)

    def _paint_keys(self, p: QPainter, channels: list[str], keys: dict) -> None:
        self._paint_handles(p)
        first, last = self.state.visible_frames(self.width())
        pad = 8 / self.state.ppf
        self.marks.clear()
        for channel in channels:
            found = keys.get(channel)
            if found is None:
                continue
            _, _, frames, values, interpolation, chosen = found
            inside = (frames >= first - pad) & (frames <= last + pad)
            self.marks.add(self.state.x_of(frames[inside]), self.y_of(values[inside]), interpolation[inside],
                           chosen[inside], self._colours[channel], 4)
        self.marks.paint(p, QRect(GUTTER, 0, self.width() - GUTTER, self.height()), self.devicePixelRatioF())

    def _paint_legend(self, p: QPainter, channels: list[str]) -> None:
        total = len(self.state.session.selection.channels)
        fits = max((self.height() - 8) // LEGEND_LINE - 1, 1)
        for i, channel in enumerate(channels[:fits]):
            y = 4 + i * LEGEND_LINE
            p.fillRect(8, y + 4, 8, 8, self._colours[channel])
            p.setPen(TEXT)
            p.drawText(QRect(22, y, GUTTER - 22 - AXIS_LABELS, LEGEND_LINE), Qt.AlignVCenter | Qt.AlignLeft,
                       channel_label(channel))
        more = total - min(len(channels), fits)
        if more > 0:
            p.setPen(TEXT_DIM)
            p.drawText(QRect(8, 4 + min(len(channels), fits) * LEGEND_LINE, GUTTER - 60, LEGEND_LINE),
                       Qt.AlignVCenter | Qt.AlignLeft, f"+{more} more")

    def paint_overlay(self, p: QPainter) -> None:
        self.draw_playhead(p, 0)
        if self.rubber_band is not None:
            p.setPen(QPen(RUBBER_BAND, 1.0))
            fill = QColor(RUBBER_BAND)
            fill.setAlpha(40)
            p.setBrush(fill)
            p.drawRect(self.rubber_band)

    # --- hit testing ------------------------------------------------------------------------------
    def _all_keys(self):
        selected = self.state.selected_keys()
        for channel in self.channels():
            found = self._keys(channel, selected, None)
            if found is not None:
                yield channel, found

    def key_at(self, x: float, y: float) -> KeySet:
        """The key nearest to (x, y) within :data:`HIT` pixels, as a key set (empty: none)."""
        best, best_d = {}, HIT + 0.5
        for _, (path, index, frames, values, _, _) in self._all_keys():
            d = np.hypot(self.state.x_of(frames) - x, self.y_of(values) - y)
            if len(d):
                j = int(np.argmin(d))
                if d[j] < best_d:
                    best, best_d = {path: (int(index[j]),)}, float(d[j])
        return best

    def keys_in_rect(self, rect: QRect) -> KeySet:
        found = {}
        for _, (path, index, frames, values, _, _) in self._all_keys():
            x, y = self.state.x_of(frames), self.y_of(values)
            inside = (x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
            if inside.any():
                found[path] = tuple(index[inside].tolist())
        return found

    def legend_channel_at(self, x: float, y: float) -> str | None:
        if x >= GUTTER - AXIS_LABELS:
            return None
        i = int((y - 4) // LEGEND_LINE)
        channels = self.channels()
        return channels[i] if 0 <= i < len(channels) else None

    # --- mouse ------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        self.setFocus(Qt.MouseFocusReason)
        pos = event.position()
        x, y = pos.x(), pos.y()
        additive = bool(event.modifiers() & (Qt.ShiftModifier | Qt.ControlModifier))
        if event.button() == Qt.MiddleButton:
            self.drag = CurveDrag("pan", x, y, start=self.state.start, range=self.value_range)
            return
        if event.button() != Qt.LeftButton:
            return
        if x < GUTTER:
            channel = self.legend_channel_at(x, y)
            if channel is not None:
                self.state.select_channels([channel], "toggle" if additive else "replace")
            return
        handle = self.handle_at(x, y)
        if handle is not None:
            self.drag = CurveDrag("handle", x, y, handle=handle)
            return
        hit = self.key_at(x, y)
        if not hit:
            self.drag = CurveDrag("box", x, y, additive=additive)
            return
        if self.state.press_keys(hit, additive):
            self.drag = CurveDrag("keys", x, y, additive=additive, hit=hit)

    def mouseMoveEvent(self, event) -> None:
        drag = self.drag
        if drag is None:
            return
        pos = event.position()
        x, y = pos.x(), pos.y()
        if not drag.active and abs(x - drag.x) + abs(y - drag.y) < DRAG_START:
            return
        drag.active = True
        state = self.state
        if drag.kind == "pan":
            state.set_view(drag.start - (x - drag.x) / state.ppf, state.ppf)
            low, high = drag.range
            shift = (y - drag.y) / self.plot_height() * (high - low)
            self.auto = False
            self.value_range = (low + shift, high + shift)
            self.invalidate()
        elif drag.kind == "box":
            self.rubber_band = QRect(int(min(drag.x, x)), int(min(drag.y, y)),
                                     int(abs(x - drag.x)), int(abs(y - drag.y)))
            self.update()
        elif drag.kind == "handle":
            handle = drag.handle
            self.handle_preview = (handle.path, handle.index, self.slope_for(handle, x, y))
            self.invalidate()
        elif drag.kind == "keys":
            keys = state.selected_keys()
            frames = state.clamp_frame_delta(round((x - drag.x) / state.ppf), keys)
            low, high = self.value_range
            drawn = -(y - drag.y) / self.plot_height() * (high - low)
            values = {}
            for channel in self.channels():
                path = state.key_path(channel)
                if path in keys:
                    values[path] = drawn * self._scale(channel)
            state.set_preview(DragPreview(frames, values))

    def mouseReleaseEvent(self, event) -> None:
        drag, self.drag = self.drag, None
        if drag is None:
            return
        state = self.state
        if drag.kind == "handle":
            preview, self.handle_preview = self.handle_preview, None
            if drag.active and preview is not None:
                state.set_handle(*preview)
            self.invalidate()
        elif drag.kind == "keys":
            preview = state.preview
            state.set_preview(None)
            if drag.active and preview is not None:
                state.move_selected(preview.frames, preview.values)
            elif not drag.active and not drag.additive and drag.hit:
                state.select_keys(drag.hit, "replace")
        elif drag.kind == "box":
            rect, self.rubber_band = self.rubber_band, None
            if drag.active and rect is not None:
                state.select_keys(self.keys_in_rect(rect), "add" if drag.additive else "replace")
            elif not drag.additive:
                state.select_keys({})
            self.update()

    def mouseDoubleClickEvent(self, event) -> None:
        self.drag = None
        pos = event.position()
        x, y = pos.x(), pos.y()
        channels = self.channels()
        project = self.state.project
        if event.button() != Qt.LeftButton or x < GUTTER or not channels or project.num_frames == 0:
            return
        frame = int(np.clip(round(self.state.frame_at(x)), 0, project.num_frames - 1))
        values = self.state.session.frame_values(frame)
        distance = [abs(float(self.y_of(self._display(c, values[CHANNEL_INDEX[c]]))) - y) for c in channels]
        channel = channels[int(np.argmin(distance))]
        drawn = self.value_at(y)
        value = drawn * self._scale(channel) + (self._norms.get(channel, (0.0, 1.0))[0] if self.normalize else 0.0)
        self.state.insert_key(("layer", None, channel), frame, value)

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if not delta:
            return
        steps = delta / 120.0
        pos = event.position()
        modifiers = event.modifiers()
        if modifiers & Qt.ShiftModifier:
            first, last = self.state.visible_frames(self.width())
            self.state.pan(-steps * 0.1 * (last - first))
        elif modifiers & Qt.ControlModifier:
            self.state.zoom(1.25 ** steps, self.state.frame_at(max(pos.x(), GUTTER)))
        else:
            anchor = self.value_at(pos.y())
            low, high = self.value_range
            factor = 1.25 ** -steps
            self.auto = False
            self.value_range = (anchor - (anchor - low) * factor, anchor + (high - anchor) * factor)
            self.invalidate()
        event.accept()

    # --- context menu -------------------------------------------------------------------------------
    def contextMenuEvent(self, event) -> None:
        menu = self.context_menu(event.pos())
        if not menu.isEmpty():
            menu.exec(event.globalPos())

    def context_menu(self, pos) -> QMenu:
        """The keys' menu (interpolation, copy, paste, delete, …) for a right-click at ``pos``; the
        key under the mouse is selected first when it is not."""
        hit = self.key_at(float(pos.x()), float(pos.y()))
        if hit and not all(set(i) <= set(self.state.selected_keys().get(p, ())) for p, i in hit.items()):
            self.state.select_keys(hit, "replace")
        menu = QMenu(self)
        self.actions.fill_menu(menu, curves=True)
        return menu
