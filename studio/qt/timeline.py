"""The timeline panel: dope sheet, curve editor and their toolbar, observing one session.

``TimelinePanel(session)`` is self-contained: it observes the session (playhead, selection, media,
the evaluated motion) and edits only through the document's undoable commands. The main window
docks it (``add_panel("Timeline", panel, Qt.BottomDockWidgetArea)``) and shows ``notice`` in
its status bar; :attr:`TimelinePanel.edit_actions` can go into an Edit menu (their shortcuts work
while the timeline has the focus).

Layout: a toolbar (active layer, emotion of new segments, interpolation, zoom), the
:class:`~studio.qt.dopesheet.DopeSheet` (ruler, audio, phones, emotion, control lanes, channel
groups) above the :class:`~studio.qt.curve_editor.CurveEditor` (the selected channels' curves),
sharing one time axis (:class:`~studio.qt.timeline_state.TimelineState`).

Shortcuts (timeline focused): Delete/Backspace delete keys (or the selected emotion segment),
Ctrl+C / Ctrl+V copy and paste keys at the playhead, Ctrl+A / Esc select all / none,
Ctrl+1 / Ctrl+2 / Ctrl+3 constant / linear / Bézier interpolation, F frame all, = and − zoom
around the playhead, E adds an emotion segment at the playhead, N normalizes the curves.

:func:`benchmark_timeline_scrub` and :func:`bench_timeline` measure how fast the timeline follows
the playhead (``studio bench gui`` reports it).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollBar,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio.core.document import EMOTIONS
from studio.core.fcurve import Interpolation
from studio.core.session import Session
from studio.qt.curve_editor import CurveEditor
from studio.qt.dopesheet import DopeSheet
from studio.qt.timeline_state import (
    PHONE_TRACK_KEY,
    TimelineState,
    count,
    phone_track,
    phones_of,
)

__all__ = [
    "TimelineActions",
    "TimelinePanel",
    "bench_timeline",
    "benchmark_timeline_scrub",
    "phone_track",
    "phones_of",
]


class TimelineActions:
    """The timeline's actions (toolbar, context menus, shortcuts), created by the panel."""

    def __init__(self, panel: TimelinePanel):
        def action(text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
            a = QAction(text, panel)
            if shortcut is not None:
                shortcuts = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
                a.setShortcuts([QKeySequence(s) for s in shortcuts])
                a.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            if tip:
                a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut else tip)
                a.setStatusTip(tip)
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            panel.addAction(a)
            return a

        state = panel.state
        self.copy = action("Copy keys", panel.copy_keys, QKeySequence.Copy, "Copy the selected keyframes")
        self.paste = action("Paste keys at playhead", panel.paste_keys, QKeySequence.Paste,
                            "Paste the copied keyframes, the earliest at the playhead")
        self.delete = action("Delete", panel.delete_selection, [QKeySequence.Delete, "Backspace"],
                             "Delete the selected keyframes (or the selected emotion segment)")
        self.select_all = action("Select all keys", panel.select_all_keys, QKeySequence.SelectAll,
                                 "Select every key of the active layer and the control lanes")
        self.deselect = action("Deselect keys", lambda: state.select_keys({}), "Esc", "Deselect all keyframes")
        self.interpolation = {
            Interpolation.CONSTANT: action("Constant", lambda: state.set_interpolation(Interpolation.CONSTANT),
                                           "Ctrl+1", "Hold each selected key's value until the next key"),
            Interpolation.LINEAR: action("Linear", lambda: state.set_interpolation(Interpolation.LINEAR), "Ctrl+2",
                                         "Straight lines from the selected keys to the next"),
            Interpolation.BEZIER: action("Bézier", lambda: state.set_interpolation(Interpolation.BEZIER), "Ctrl+3",
                                         "Smooth (auto-clamped Bézier) from the selected keys to the next"),
        }
        self.auto_handles = action("Auto handles", state.auto_handles, "Ctrl+4",
                                   "Put the selected keys' Bézier handles back to automatic (drag a selected key's "
                                   "handle in the curve editor to set its slope)")
        self.frame_all = action("Frame all", panel.frame_all, "F", "Show the whole project and fit the curves")
        self.zoom_in = action("Zoom in", lambda: state.zoom(1.5), ["=", "+"], "Zoom in around the playhead")
        self.zoom_out = action("Zoom out", lambda: state.zoom(1 / 1.5), "-", "Zoom out around the playhead")
        self.add_segment = action("Add emotion", panel.add_emotion_segment, "E",
                                  "Add a segment of the chosen emotion at the playhead (2 s)")
        self.normalize = action("Normalize", panel.curve_editor_normalize, "N",
                                "Scale every curve to its own range in the curve editor", checkable=True)
        self.expand_all = action("Expand all", lambda: panel.dope_sheet.expand_all(True), None,
                                 "Show every channel of every group")
        self.collapse_all = action("Collapse all", lambda: panel.dope_sheet.expand_all(False), None,
                                   "Show the groups only")

    def fill_menu(self, menu: QMenu, curves: bool = False) -> None:
        """The keys' context menu."""
        interpolation = menu.addMenu("Interpolation")
        interpolation.addActions(list(self.interpolation.values()))
        interpolation.addSeparator()
        interpolation.addAction(self.auto_handles)
        menu.addSeparator()
        menu.addActions([self.copy, self.paste, self.delete])
        menu.addSeparator()
        menu.addActions([self.select_all, self.deselect, self.frame_all])
        if curves:
            menu.addAction(self.normalize)


class TimelinePanel(QWidget):
    """The timeline (see the module docstring). ``notice(text)`` carries one-line messages."""

    notice = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("timelinePanel")
        self.session = session
        self.state = TimelineState(session, self)
        self.timeline_actions = TimelineActions(self)  # its commands reach the canvases made next
        self.dope_sheet = DopeSheet(self.state, self.timeline_actions, self)
        self.curve_editor = CurveEditor(self.state, self.timeline_actions, self)
        actions = self.timeline_actions
        self.edit_actions = [actions.copy, actions.paste, actions.delete, actions.select_all,
                             *actions.interpolation.values(), actions.auto_handles]

        self.toolbar = self._build_toolbar()
        self.scrollbar = QScrollBar(Qt.Vertical, self)
        self.scrollbar.valueChanged.connect(self.dope_sheet.set_scroll)
        self.dope_sheet.scrolled.connect(self.scrollbar.setValue)
        self.dope_sheet.scroll_range_changed.connect(self._on_scroll_range)
        top = QWidget(self)
        row = QHBoxLayout(top)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.dope_sheet, 1)
        row.addWidget(self.scrollbar)
        bottom = QWidget(self)
        row = QHBoxLayout(bottom)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.curve_editor, 1)
        row.addSpacing(self.scrollbar.sizeHint().width())
        self.splitter = QSplitter(Qt.Vertical, self)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.splitter, 1)

        self.state.notice.connect(self.notice)
        self.state.content_changed.connect(self._on_content)
        self._layers_shown: tuple | None = None
        self._on_content()
        self._on_scroll_range(self.dope_sheet.content_height, self.dope_sheet.view_height)

    # --- toolbar ------------------------------------------------------------------------------------
    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar("Timeline", self)
        bar.setObjectName("timelineToolbar")
        bar.addWidget(QLabel(" Layer ", bar))
        self.layer_box = QComboBox(bar)
        self.layer_box.setToolTip("The layer whose keys the dope sheet and the curve editor show and edit")
        self.layer_box.setMinimumContentsLength(12)
        self.layer_box.activated.connect(self._on_layer_chosen)
        bar.addWidget(self.layer_box)
        bar.addSeparator()
        bar.addWidget(QLabel(" New emotion ", bar))
        self.emotion_box = QComboBox(bar)
        self.emotion_box.addItems(list(EMOTIONS))
        self.emotion_box.setCurrentText(self.dope_sheet.new_emotion)
        self.emotion_box.setToolTip("The emotion of segments drawn in the emotion lane or added with E")
        self.emotion_box.currentTextChanged.connect(self._on_emotion_chosen)
        bar.addWidget(self.emotion_box)
        bar.addAction(self.timeline_actions.add_segment)
        bar.addSeparator()
        bar.addActions(list(self.timeline_actions.interpolation.values()))
        bar.addSeparator()
        bar.addActions([self.timeline_actions.zoom_out, self.timeline_actions.zoom_in, self.timeline_actions.frame_all,
                        self.timeline_actions.normalize])
        bar.addSeparator()
        bar.addActions([self.timeline_actions.expand_all, self.timeline_actions.collapse_all])
        spacer = QWidget(bar)
        spacer.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        bar.addWidget(spacer)
        self.status = QLabel(bar)
        self.status.setContentsMargins(8, 0, 8, 0)
        self.status.setStyleSheet("color: #8a8f98;")
        bar.addWidget(self.status)
        return bar

    def _on_layer_chosen(self, index: int) -> None:
        self.state.set_layer(self.layer_box.itemData(index))

    def _on_emotion_chosen(self, label: str) -> None:
        self.dope_sheet.new_emotion = label

    def _on_scroll_range(self, content: int, page: int) -> None:
        self.scrollbar.setRange(0, max(content - page, 0))
        self.scrollbar.setPageStep(max(page, 1))
        self.scrollbar.setSingleStep(18)
        self.scrollbar.setValue(self.dope_sheet.scroll)

    def _on_content(self) -> None:
        project = self.session.project
        layers = tuple((layer.id, layer.name, layer.blend.value) for layer in project.layers)
        active = self.state.layer_id
        if (layers, active) != self._layers_shown:
            self._layers_shown = (layers, active)
            self.layer_box.clear()
            if not layers:
                self.layer_box.addItem("none yet (keying makes one)", None)
            for layer_id, name, blend in reversed(layers):
                self.layer_box.addItem(f"{name} ({blend.lower()})", layer_id)
            self.layer_box.setCurrentIndex(max(self.layer_box.findData(active), 0))
        selected = count(self.state.selected_keys())
        channels = len(self.session.selection.channels)
        self.status.setText(f"{selected} key(s) · {channels} channel(s) selected")

    # --- commands (the actions call these) -------------------------------------------------------
    def copy_keys(self) -> None:
        self.state.copy_selected()

    def paste_keys(self) -> None:
        pasted = self.state.paste()
        if pasted:
            self.notice.emit(f"Pasted {pasted} keyframe(s) at frame {self.session.frame}")

    def delete_selection(self) -> None:
        """Delete the selected keys; with none selected, the selected emotion segment."""
        if self.state.delete_selected():
            return
        if not self.dope_sheet.remove_selected_segment():
            self.notice.emit("Nothing selected to delete")

    def select_all_keys(self) -> None:
        self.state.select_keys(self.state.all_keys())

    def frame_all(self) -> None:
        self.state.fit()
        self.curve_editor.frame_all()

    def add_emotion_segment(self) -> None:
        if self.dope_sheet.add_segment(self.dope_sheet.new_emotion) is None:
            self.notice.emit("An empty project: import audio first")

    def curve_editor_normalize(self, checked: bool) -> None:
        self.curve_editor.set_normalize(checked)

    # --- for tests and benchmarks ------------------------------------------------------------------
    def repaint_now(self) -> None:
        """Paint both canvases now (synchronously)."""
        self.dope_sheet.repaint()
        self.curve_editor.repaint()


# --- benchmark ----------------------------------------------------------------------------------------

def benchmark_timeline_scrub(panel: TimelinePanel, frames: int = 200, *, window_seconds: float | None = None,
                             redraw: bool = False) -> dict:
    """Move the playhead across ``frames`` evenly spaced positions of the whole project and paint
    the timeline (dope sheet and curve editor) after each move, as fast as it can; the frames per
    second the timeline keeps up while scrubbing.

    ``window_seconds``: zoomed in to that many seconds (the view pages to follow the playhead, which
    redraws everything on each page), else the whole project is in view. ``redraw``: redraw
    everything on every move (what a document edit per frame would cost), not just the playhead."""
    session = panel.session
    count_ = min(frames, session.project.num_frames)
    if count_ < 2:
        raise ValueError("scrubbing needs a project of at least 2 frames")
    state = panel.state
    if window_seconds is None:
        state.fit()
    else:
        state.set_view(0.0, state.track_width / (window_seconds * session.project.fps))
    session.frame = 0
    QCoreApplication.processEvents()
    panel.repaint_now()
    positions = np.linspace(0, session.last_frame, count_).round().astype(int)
    renders = panel.dope_sheet.static_renders + panel.curve_editor.static_renders
    start = time.perf_counter()
    for frame in positions:
        session.frame = int(frame)
        if redraw:
            panel.dope_sheet.invalidate()
            panel.curve_editor.invalidate()
        panel.repaint_now()
    seconds = time.perf_counter() - start
    renders = panel.dope_sheet.static_renders + panel.curve_editor.static_renders - renders
    return {"frames": int(count_), "seconds": seconds, "fps": count_ / seconds, "ms_per_frame": 1000 * seconds / count_,
            "project_frames": session.project.num_frames, "full_redraws": int(renders),
            "size": f"{panel.width()}×{panel.height()}"}


def synthetic_speech(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like noise: syllable-rate bursts (about 4 a second) with pauses, float32 in −1…1."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t) * 0.5 + 0.5, 0, 1) ** 2
    envelope *= (np.sin(2 * np.pi * 0.23 * t) > -0.6).astype(np.float32)  # pauses between phrases
    return (0.6 * envelope * rng.standard_normal(n).astype(np.float32)).clip(-1, 1)


def synthetic_phones(seconds: float, seed: int = 0) -> list:
    """Random phones covering ``seconds`` (60–180 ms each), for the benchmark's phone lane."""
    from studio.audio.phones import PHONES, Phone

    rng = np.random.default_rng(seed)
    phones, t = [], 0.0
    while t < seconds:
        length = float(rng.uniform(0.06, 0.18))
        phones.append(Phone(str(rng.choice(PHONES)), t, min(t + length, seconds)))
        t += length
    return phones


def benchmark_session(minutes: float = 10.0) -> Session:
    """A ``minutes`` project as :func:`studio.bench.keyed_project` builds it (base motion, all 63
    expression channels keyed, segments, overrides), with speech-like audio and phones loaded."""
    from studio.bench import keyed_project
    from studio.core.document import BaseMotion
    from studio.core.session import AudioInfo

    project = keyed_project(minutes)
    seconds = project.duration
    base = project.base
    project.set_base(BaseMotion(base.values, base.conditions, base.generator,
                                {**base.settings, PHONE_TRACK_KEY: phone_track(synthetic_phones(seconds))}))
    project.undo_stack.clear()
    session = Session(project)
    session.update_media(audio=AudioInfo("synthetic speech", synthetic_speech(seconds), 16000))
    return session


def bench_timeline(minutes: float = 10.0, frames: int = 200, repeat: int = 3, size=(1600, 760)) -> dict:
    """Scrub a ``minutes`` project (:func:`benchmark_session`) in a ``size`` timeline with the
    lips and brows expanded and the brows' 12 channels in the curve editor: the median frames per
    second over ``repeat`` runs, whole project in view, zoomed to 10 s (paging), and redrawing
    everything on every frame."""
    from studio.core.motion import CHANNEL_GROUPS
    from studio.qt.app import create_app

    create_app()
    session = benchmark_session(minutes)
    panel = TimelinePanel(session)
    try:
        panel.resize(*size)
        panel.show()
        panel.dope_sheet.set_expanded("lips", True)
        panel.dope_sheet.set_expanded("brows", True)
        panel.state.set_layer(session.project.layers[0].id)  # "Keys": every expression channel keyed
        panel.dope_sheet.set_scroll(panel.dope_sheet.row_named("group", "brows").top)
        session.select_channels(["brows"])
        panel.state.select_keys(panel.state.all_keys(CHANNEL_GROUPS["brows"]), channels=CHANNEL_GROUPS["brows"])
        QCoreApplication.processEvents()
        result: dict = {"minutes": minutes, "repeat": repeat}
        for key, options in (("whole", {}), ("zoomed", {"window_seconds": 10.0}), ("redraw", {"redraw": True})):
            runs = [benchmark_timeline_scrub(panel, frames, **options) for _ in range(repeat)]
            median = sorted(runs, key=lambda r: r["fps"])[len(runs) // 2]
            result[key] = {**median, "all_fps": [r["fps"] for r in runs],
                           "median_fps": statistics.median(r["fps"] for r in runs)}
    finally:
        panel.close()
        panel.deleteLater()
    return result


def format_timeline(result: dict) -> str:
    lines = [(f"Timeline while scrubbing a {result['minutes']:g}-minute project (dope sheet + curve editor "
             f"repainted per frame; target ≥ 25 fps):")]
    labels = {"whole": "whole project in view", "zoomed": "zoomed to 10 s, paging with the playhead",
              "redraw": "everything redrawn every frame"}
    for key, label in labels.items():
        r = result[key]
        lines.append(f"  {label} ({r['project_frames']} frames, {r['size']}): {r['median_fps']:.1f} frames/s "
                     f"({r['ms_per_frame']:.2f} ms per frame, {r['frames']} playhead positions, "
                     f"{r['full_redraws']} full redraws)")
    return "\n".join(lines)
