"""The studio's main window: dockable panels, menus and shortcuts, jobs, files, safety.

It owns one :class:`~studio.core.session.Session` (the viewer model) and wires the parts that
observe it: the media controller (sources loaded), the :class:`~studio.qt.viewport2d.Viewport2D`,
the media bin and the job list (docks, left), the :class:`~studio.qt.inspector.InspectorPanel`
(right), the :class:`~studio.qt.timeline.TimelinePanel` (bottom, the whole width), the 3D panel
(:mod:`studio.qt.head_view`, docked beside the 2D view once a head mesh is loaded), the
:class:`~studio.qt.transport.Transport`, the :class:`~studio.qt.recovery.Recovery` autosave. Every edit goes through the document's methods
(undoable commands); long work runs as jobs (:mod:`studio.qt.workers`) whose results are applied
here, on the GUI thread. Other panels plug in the same way: a widget constructed with the session,
added with :meth:`MainWindow.add_panel` (docked, listed in View ▸ Panels, its place remembered).

Generation streams: the neural generator's chunks reach the document as they settle
(:meth:`Project.preview_base`, no undo step), the finished motion is recorded as one undo step,
and a cancelled or failed generation puts the previous base motion back. *Regenerate changed
frames* runs the generator with the current conditions and keeps its result only on the frames
whose conditions changed since they were generated (:func:`~studio.core.document.splice_base`).
Undo and redo wait while a generation runs.

Exports (File ▸ Export): every exporter of the plugin registry, through one dialog
(:class:`~studio.qt.dialogs.ExportDialog`) that says what a kind still needs (a face fit, a head
mesh, its keypoints); each export is a job in a child process with progress and Cancel (the job
list and the status bar's indicator), its failure shown in a message.

Shortcuts: the window's own (K, Space, the arrows, Home/End, Ctrl+Z …) work wherever the focus is
in the window; the timeline's (Delete, Ctrl+C/V/A, Esc, E, F, N, Ctrl+1…3, zoom) only while the
timeline has the focus — they are listed in the Edit menu too. No key sequence belongs to two
actions that can be active at once (:func:`shortcut_conflicts` finds any), which Qt would answer with
"Ambiguous shortcut" and do nothing. Text fields and a focused inspector slider keep the keys they
edit with (typing, the arrows).

Settings (QSettings): window geometry and dock layout, the inspector's open sections, recent
files, the autosave interval and the recovery bookkeeping. Questions to the user go through
:class:`~studio.qt.dialogs.Dialogs`.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QSlider,
    QStyle,
    QToolBar,
    QWidget,
)

from studio.core.document import (
    EMOTIONS,
    BaseMotion,
    EmotionSegment,
    Project,
    emotion_weights,
    splice_base,
)
from studio.core.motion import CHANNEL_GROUPS, CHANNELS, NUM_CHANNELS
from studio.core.motion_file import Motion
from studio.core.project_file import (
    EXTENSION,
    ProjectFileError,
    load_project,
    save_project,
)
from studio.core.session import Session, format_time

# The engines the jobs hand their requests to, imported with the window (not at the first click,
# which would freeze it for their import time).
from studio.generate.pipeline import GENERATORS, GenerateRequest
from studio.generate.rig import num_frames_for
from studio.jobs import (
    HeadRequest,
    MeshExportRequest,
    MotionExportRequest,
    PortraitVideoRequest,
    export_mesh_job,
    export_motion_job,
    export_portrait_video_job,
    generate_job,
    inference_device_job,
    run_in_process,
)
from studio.qt.dialogs import (
    EXPORT_KINDS,
    FOLDER_KINDS,
    Dialogs,
    ExportContext,
    ExportSettings,
    GenerateSettings,
    export_formats,
)
from studio.qt.head_view import HeadController, HeadView
from studio.qt.inspector import InspectorPanel
from studio.qt.media import MediaController, role_extensions, role_for
from studio.qt.mesh_scene import HeadVideoRequest, render_head_video_job
from studio.qt.panels import JobIndicator, JobList, MediaBin
from studio.qt.recovery import Recovery
from studio.qt.timeline import PHONE_TRACK_KEY, TimelinePanel, phone_track
from studio.qt.transport import Transport, default_clock
from studio.qt.viewport2d import Viewport2D
from studio.qt.workers import Job, JobManager
from studio.render.job import VideoExportRequest

MAX_RECENT = 10
NOTICE_MS = 8000
#: The window's size when no layout was saved (smaller when the screen is).
DEFAULT_SIZE = (1600, 1000)
#: Widths of the left column (media, jobs), the 2D view and the inspector, and the timeline's
#: height, in the default layout (scaled to the window).
DEFAULT_WIDTHS = (300, 880, 420)
DEFAULT_TIMELINE_HEIGHT = 420
_device: dict[str, str] = {}  # "text": where inference runs, found once per process


class MainWindow(QMainWindow):
    """The application window (see the module docstring)."""

    def __init__(self, settings: QSettings | None = None, *, autosave_s: float | None = None,
                 clock_for=default_clock, probe_device: bool = True):
        super().__init__()
        self.setObjectName("studioMainWindow")
        # An INI file on every platform (not the Windows registry): the recovery files sit beside it.
        self.settings = settings if settings is not None else QSettings(QSettings.IniFormat, QSettings.UserScope,
                                                                        QApplication.organizationName(),
                                                                        QApplication.applicationName())
        self.dialogs = Dialogs(self)
        self.session = Session()
        self.jobs = JobManager(self)
        self.media = MediaController(self.session, self.jobs, self)
        self.transport = Transport(self.session, clock_for, self)
        self.recovery = Recovery(self.session, self.settings, self.jobs, autosave_s, self)
        self.heads = HeadController(self.session, self.jobs, self)
        self.generate_defaults = GenerateSettings()
        self.generation: Job | None = None  # the generation running, if one is
        self.last_export_kind = "mp4"
        self.panels: list[QDockWidget] = []
        self.restored_panels: set[QDockWidget] = set()  # panels added late, placed as the saved layout had them
        self.panels_menu = None
        self._layout_restored = False
        self._shut_down = False

        self.viewport = Viewport2D(self.session, self.media, self)
        self.media_bin = MediaBin(self.session, self)
        self.job_list = JobList(self.jobs, self)
        self.head_view: HeadView | None = None  # the 3D panel, made when a head mesh first loads
        self.head_dock: QDockWidget | None = None
        self.inspector = InspectorPanel(self.session, self)
        sections = self.settings.value("inspector/open")
        if sections is not None:  # a comma-separated list; empty: all folded
            self.inspector.set_open_sections(s for s in str(sections).split(",") if s)
        self.timeline = TimelinePanel(self.session, self)
        self.setDockNestingEnabled(True)
        # The timeline spans the whole width under the left column and the views.
        self.setCorner(Qt.BottomLeftCorner, Qt.BottomDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.BottomDockWidgetArea)
        self.viewport_dock = self.add_panel("2D view", self.viewport, Qt.RightDockWidgetArea)
        self.media_dock = self.add_panel("Media", self.media_bin, Qt.LeftDockWidgetArea)
        self.jobs_dock = self.add_panel("Jobs", self.job_list, Qt.LeftDockWidgetArea)
        self.inspector_dock = self.add_panel("Inspector", self.inspector, Qt.RightDockWidgetArea)
        self.splitDockWidget(self.viewport_dock, self.inspector_dock, Qt.Horizontal)
        self.timeline_dock = self.add_panel("Timeline", self.timeline, Qt.BottomDockWidgetArea)

        self._build_actions()
        self._build_menus()
        self._build_transport_bar()
        self._build_status_bar()
        self.setAcceptDrops(True)
        self.resize(*self._default_size())
        # True until the default layout has settled at the shown window's size (no saved layout)
        self.default_layout_pending = self.settings.value("window/state") is None
        self._apply_default_layout()
        self._restore_layout()

        self.session.events.path.connect(self._update_title)
        self.session.events.modified.connect(self._update_title)
        self.session.events.frame.connect(self._on_frame)
        self.session.events.playing.connect(self._on_playing)
        self.session.events.media.connect(self._update_enabled)
        self.media.notice.connect(self.notice)
        self.media.portrait_changed.connect(self._update_enabled)
        self.transport.notice.connect(self.notice)  # the panels' notices are connected by add_panel
        self.heads.changed.connect(self._on_head)
        self.jobs.failed.connect(self._on_job_failed)
        self.media_bin.import_requested.connect(self.import_dialog)
        regenerate = self._update_enabled  # what needs re-generating changed
        self.session.follow_project({"undo_stack.events.index": self._on_undo_index, "timing": self._on_timing,
                                     "base": regenerate, "emotion": regenerate, "controls": regenerate},
                                    self._on_project)
        if probe_device:
            self._probe_device()

    # --- layout -----------------------------------------------------------------------------------
    def add_panel(self, title: str, widget: QWidget, area=Qt.LeftDockWidgetArea) -> QDockWidget:
        """Dock a panel (a widget observing the session): listed in View ▸ Panels, its place and
        visibility remembered by its title — also for a panel added after the window was built
        (the timeline, the inspector: ``window.add_panel("Timeline", Timeline(window.session, …),
        Qt.BottomDockWidgetArea)``)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock{title.replace(' ', '')}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        self.panels.append(dock)
        if self.panels_menu is not None:
            self.panels_menu.addAction(dock.toggleViewAction())
        if self._layout_restored and self._saved_layout_has(dock) and self.restoreDockWidget(dock):
            self.restored_panels.add(dock)  # where the saved layout had it
        notice = getattr(widget, "notice", None)
        if notice is not None and hasattr(notice, "connect"):
            notice.connect(self.notice)
        return dock

    def _default_size(self) -> tuple[int, int]:
        screen = self.screen() or QApplication.primaryScreen()
        width, height = DEFAULT_SIZE
        if screen is not None:
            available = screen.availableGeometry()
            width, height = min(width, available.width()), min(height, available.height())
        return width, height

    def _apply_default_layout(self) -> None:
        """Media and jobs on the left, the 2D view in the middle, the inspector on the right, the
        timeline at the bottom, in proportions of :data:`DEFAULT_WIDTHS` (a saved layout wins)."""
        if not self.default_layout_pending:
            return
        total = sum(DEFAULT_WIDTHS)
        widths = [max(1, round(w * self.width() / total)) for w in DEFAULT_WIDTHS]
        self.resizeDocks([self.media_dock, self.viewport_dock, self.inspector_dock], widths, Qt.Horizontal)
        self.resizeDocks([self.media_dock, self.jobs_dock], [2, 3], Qt.Vertical)
        timeline = min(DEFAULT_TIMELINE_HEIGHT, round(self.height() * 0.45))
        self.timeline.splitter.setSizes([3 * timeline // 5, 2 * timeline // 5])  # dope sheet, curve editor
        docks = self.viewport_dock.height() + self.timeline_dock.height()  # what the two share now
        self.resizeDocks([self.viewport_dock, self.timeline_dock], [max(docks - timeline, 1), timeline], Qt.Vertical)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.default_layout_pending:  # laid out at its real size: the proportions again, twice
            QTimer.singleShot(0, self, lambda: self._settle_default_layout(passes=2))

    def _settle_default_layout(self, passes: int) -> None:
        """resizeDocks takes effect at the next layout pass, from the geometry the docks have
        then: the first pass after showing brings them to the window's size, the second to the
        proportions."""
        self._apply_default_layout()
        if passes > 1:
            QTimer.singleShot(0, self, lambda: self._settle_default_layout(passes - 1))
        else:
            self.default_layout_pending = False

    def _saved_layout_has(self, dock: QDockWidget) -> bool:
        state = self.settings.value("window/state")
        return state is not None and dock.objectName().encode() in bytes(state)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self._layout_restored = True

    # --- actions and menus ------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.new_action = a("&New", self.new_project, QKeySequence.New)
        self.open_action = a("&Open…", self.open_dialog, QKeySequence.Open)
        self.save_action = a("&Save", self.save, QKeySequence.Save)
        self.save_as_action = a("Save &As…", self.save_as, "Ctrl+Shift+S")
        self.quit_action = a("&Quit", self.close, QKeySequence.Quit)
        self.import_actions = {role: a(f"{role.capitalize() if role != 'mesh' else 'Head mesh'}…",
                                       lambda checked=False, role=role: self.import_dialog(role))
                               for role in ("portrait", "mesh", "audio", "transcript")}
        self.export_action = a("&Export…", lambda: self.export_dialog(self.last_export_kind), "Ctrl+E",
                               "Export the animation: video, PNG frames, mesh sequence, 3D render, motion, ARKit curves")
        self.export_actions = {kind: a(f"{label}…", lambda checked=False, kind=kind: self.export_dialog(kind))
                               for kind, label in EXPORT_KINDS.items()}
        self.undo_action = a("&Undo", self.undo, "Ctrl+Z")
        self.redo_action = a("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.play_action = a("&Play", self.transport.toggle, "Space", "Play or pause")
        self.loop_action = a("&Loop", self._on_loop_toggled, None, "Loop playback", checkable=True)
        self.loop_action.setChecked(self.session.looping)
        self.next_action = a("&Next frame", lambda: self.transport.step(1), "Right")
        self.previous_action = a("P&revious frame", lambda: self.transport.step(-1), "Left")
        self.start_action = a("Jump to &start", self.transport.to_start, "Home")
        self.end_action = a("Jump to &end", self.transport.to_end, "End")
        self.generate_action = a("&Generate…", self.generate_dialog, "Ctrl+G",
                                 "Speech → motion: the project's base motion, as one undo step")
        self.regenerate_action = a("&Regenerate changed frames", self.start_regenerate, "Ctrl+Shift+G",
                                   "Re-generate only the frames whose emotion, intensity or gaze/blink overrides "
                                   "changed since they were generated (one undo step)")
        self.key_action = a("Set &key", self.key_selection, "K", "Key the selected channels at the playhead")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addActions([self.new_action, self.open_action])
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addActions([self.save_action, self.save_as_action])
        file.addSeparator()
        imports = file.addMenu("&Import")
        imports.addActions(list(self.import_actions.values()))
        exports = file.addMenu("&Export")
        exports.addAction(self.export_action)
        exports.addSeparator()
        exports.addActions(list(self.export_actions.values()))
        file.addSeparator()
        file.addAction(self.quit_action)
        edit = bar.addMenu("&Edit")
        edit.addActions([self.undo_action, self.redo_action])
        edit.addSeparator()
        keys = edit.addMenu("&Keyframes (timeline)")  # their shortcuts work while the timeline has the focus
        keys.addActions(self.timeline.edit_actions)
        view = bar.addMenu("&View")
        self.panels_menu = view.addMenu("&Panels")
        self.panels_menu.addActions([dock.toggleViewAction() for dock in self.panels])
        view.addSeparator()
        view.addActions([self.viewport.show_keypoints, self.viewport.edit_fit, self.viewport.reset_fit])
        playback = bar.addMenu("&Playback")
        playback.addActions([self.play_action, self.loop_action])
        playback.addSeparator()
        playback.addActions([self.previous_action, self.next_action, self.start_action, self.end_action])
        animation = bar.addMenu("&Animation")
        animation.addActions([self.generate_action, self.regenerate_action])
        animation.addSeparator()
        animation.addAction(self.key_action)
        select = animation.addMenu("Select &channels")
        for group in CHANNEL_GROUPS:
            select.addAction(f"{group.capitalize()} ({len(CHANNEL_GROUPS[group])})",
                             lambda group=group: self.session.select_channels([group]))
        select.addSeparator()
        select.addAction("All channels", lambda: self.session.select_channels(CHANNELS))
        select.addAction("Clear selection", self.session.clear_selection)

    def _build_transport_bar(self) -> None:
        icons = {self.start_action: QStyle.SP_MediaSkipBackward, self.previous_action: QStyle.SP_MediaSeekBackward,
                 self.play_action: QStyle.SP_MediaPlay, self.next_action: QStyle.SP_MediaSeekForward,
                 self.end_action: QStyle.SP_MediaSkipForward, self.loop_action: QStyle.SP_BrowserReload}
        for action, icon in icons.items():
            action.setIcon(self.style().standardIcon(icon))
        bar = QToolBar("Transport", self)
        bar.setObjectName("transportBar")
        bar.addActions([self.start_action, self.previous_action, self.play_action, self.next_action,
                        self.end_action, self.loop_action])
        self.scrubber = QSlider(Qt.Horizontal, bar)
        self.scrubber.setObjectName("scrubber")
        self.scrubber.setMinimumWidth(320)
        self.scrubber.setToolTip("The playhead: drag to scrub")
        self.scrubber.valueChanged.connect(self._on_scrub)
        bar.addWidget(self.scrubber)
        self.time_label = QLabel(bar)
        self.time_label.setMinimumWidth(190)
        self.time_label.setContentsMargins(10, 0, 10, 0)
        bar.addWidget(self.time_label)
        self.addToolBar(Qt.TopToolBarArea, bar)
        self.transport_bar = bar

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.device_label = QLabel("Inference: …", status)
        self.device_label.setToolTip("Where inference runs (torch: CUDA when it really works, else the CPU)")
        self.playhead_label = QLabel(status)
        self.job_indicator = JobIndicator(self.jobs, status)
        status.addPermanentWidget(self.job_indicator)
        status.addPermanentWidget(self.playhead_label)
        status.addPermanentWidget(self.device_label)

    def _probe_device(self) -> None:
        if "text" in _device:
            self.device_label.setText(f"Inference: {_device['text']}")
            return

        def done(text: str) -> None:
            _device["text"] = text
            self.device_label.setText(f"Inference: {text}")

        self.jobs.run("Find the inference device", lambda: run_in_process(inference_device_job, None),
                      on_done=done, visible=False)

    # --- following the session --------------------------------------------------------------------
    def _on_project(self) -> None:
        self._on_undo_index()
        self._on_timing()
        self._update_title()

    def _on_undo_index(self, event=None) -> None:
        stack = self.session.project.undo_stack
        busy = self.generation is not None  # its result lands on the base motion as it is now
        self.undo_action.setEnabled(stack.can_undo and not busy)
        self.redo_action.setEnabled(stack.can_redo and not busy)
        self.undo_action.setText(f"&Undo {stack.undo_text}" if stack.can_undo else "&Undo")
        self.redo_action.setText(f"&Redo {stack.redo_text}" if stack.can_redo else "&Redo")

    def _on_timing(self, event=None) -> None:
        self.scrubber.blockSignals(True)
        self.scrubber.setRange(0, self.session.last_frame)
        self.scrubber.setValue(self.session.frame)
        self.scrubber.blockSignals(False)
        self._on_frame()
        self._update_enabled()

    def _on_frame(self, event=None) -> None:
        s = self.session
        if self.scrubber.value() != s.frame:
            self.scrubber.blockSignals(True)
            self.scrubber.setValue(s.frame)
            self.scrubber.blockSignals(False)
        total = s.project.num_frames
        text = f"{format_time(s.time)} / {format_time(s.project.duration)}   frame {s.frame} / {max(total - 1, 0)}"
        self.time_label.setText(text)
        self.playhead_label.setText(f"{format_time(s.time)} · frame {s.frame}")

    def _on_scrub(self, value: int) -> None:
        self.session.frame = value

    def _on_playing(self, event) -> None:
        self.play_action.setText("&Pause" if event.playing else "&Play")
        self.play_action.setIcon(self.style().standardIcon(QStyle.SP_MediaPause if event.playing
                                                           else QStyle.SP_MediaPlay))

    def _on_loop_toggled(self, checked: bool) -> None:
        self.session.looping = checked

    def _update_title(self, event=None) -> None:
        self.setWindowTitle(self.session.title)

    def _update_enabled(self, event=None) -> None:
        project = self.session.project
        has_frames = project.num_frames > 0
        idle = self.generation is None
        self.generate_action.setEnabled(self.session.media.audio is not None and idle)
        stale = self.stale_frames()
        self.regenerate_action.setEnabled(idle and self.session.media.audio is not None and project.base is not None
                                          and bool(stale.any()))
        self.regenerate_action.setText(f"&Regenerate {int(stale.sum())} changed frames" if stale.any()
                                       else "&Regenerate changed frames")
        self.export_action.setEnabled(has_frames)
        blocked = self.export_context().blocked
        for kind, action in self.export_actions.items():
            action.setEnabled(has_frames)
            tip = blocked.get(kind, "")
            action.setStatusTip(tip or EXPORT_KINDS[kind])
            action.setToolTip(tip or EXPORT_KINDS[kind])

    def stale_frames(self) -> np.ndarray:
        """Frames of the generated base motion whose conditions changed since (an empty mask when
        nothing was generated: there is nothing to re-generate, only to generate)."""
        project = self.session.project
        if project.base is None:
            return np.zeros(0, dtype=bool)
        return project.stale_frames()[:len(project.base)]

    def notice(self, text: str) -> None:
        self.statusBar().showMessage(text, NOTICE_MS)

    def _on_job_failed(self, job: Job) -> None:
        self.notice(f"{job.title} failed: {job.error}")
        self.dialogs.error(f"{job.title} failed", job.error, job.details)

    # --- files ------------------------------------------------------------------------------------
    def maybe_save(self) -> bool:
        """Ask about unsaved changes; False when the user cancelled (stay where we are)."""
        if not self.session.is_modified:
            return True
        answer = self.dialogs.ask_save_changes(self.session.display_name)
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new_project(self) -> None:
        if self.maybe_save():
            self.recovery.discard()
            self.session.set_project(Project())

    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        path = self.dialogs.open_project(str(self.session.path.parent) if self.session.path else "")
        if path is not None:
            self.open_project(path, ask=False)

    def open_project(self, path: str | Path, ask: bool = True) -> bool:
        """Open a project file (asking about unsaved changes first when ``ask``)."""
        if ask and not self.maybe_save():
            return False
        try:
            project = load_project(path)
        except ProjectFileError as exc:
            self.dialogs.error("Cannot open the project", str(exc))
            return False
        self.recovery.discard()
        self.session.set_project(project, Path(path).resolve())
        self._add_recent(Path(path).resolve())
        self.notice(f"Opened {Path(path).name}")
        return True

    def save(self) -> bool:
        if self.session.path is None:
            return self.save_as()
        return self._save_to(self.session.path)

    def save_as(self) -> bool:
        suggested = str(self.session.path or Path.home() / f"untitled{EXTENSION}")
        path = self.dialogs.save_project_as(suggested)
        return path is not None and self._save_to(path)

    def _save_to(self, path: Path) -> bool:
        try:
            save_project(self.session.project, path)
        except ProjectFileError as exc:
            self.dialogs.error("Cannot save the project", str(exc))
            return False
        self.session.path = Path(path).resolve()
        self.recovery.discard()
        self._add_recent(self.session.path)
        self._update_title()
        self.notice(f"Saved {Path(path).name}")
        return True

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent_files() if p != str(path)]
        self.settings.setValue("recent", recent[:MAX_RECENT])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(path, lambda path=path: self.open_project(path))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear the list", lambda: self.settings.setValue("recent", []))

    # --- importing (menus and drops) --------------------------------------------------------------
    def import_dialog(self, role: str) -> None:
        path = self.dialogs.import_file(role, role_extensions()[role])
        if path is not None:
            self.import_files([path], role)

    def import_files(self, paths, role: str | None = None) -> None:
        """Import files (by extension unless ``role``); a project file is opened instead."""
        for path in paths:
            try:
                kind = role or role_for(path)
                if kind == "project":
                    self.open_project(path)
                else:
                    self.media.import_file(path, kind)
            except (ValueError, OSError) as exc:
                self.dialogs.error("Cannot import", str(exc))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and all(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.import_files(paths)

    # --- editing ----------------------------------------------------------------------------------
    def undo(self) -> None:
        if self.generation is not None:
            self.notice("Undo waits until the generation has finished (or is cancelled)")
            return
        self.session.project.undo_stack.undo()

    def redo(self) -> None:
        if self.generation is not None:
            self.notice("Redo waits until the generation has finished (or is cancelled)")
            return
        self.session.project.undo_stack.redo()

    def key_selection(self) -> None:
        """K: key the selected channels at the playhead with the values they show, on the active
        layer (the timeline's choice, else the top one), as the inspector's Key buttons do."""
        if not self.session.selection.channels:
            self.notice("Nothing selected to key: click keypoints in the 2D view, channel names in the inspector "
                        "or the timeline, or Animation ▸ Select channels")
            return
        keyed = self.session.key_selected_channels()
        if keyed:
            layer = self.session.project.layer(self.session.active_layer)
            self.notice(f"Keyed {keyed} channel(s) at frame {self.session.frame} on layer “{layer.name}”")
        else:
            self.notice("The selected channels are locked (Inspector ▸ a region's padlock): nothing keyed")

    # --- generate ---------------------------------------------------------------------------------
    def generate_dialog(self) -> None:
        settings = self.dialogs.generate_settings(self.generate_defaults, GENERATORS,
                                                  self.session.media.transcript is not None)
        if settings is not None:
            self.generate_defaults = settings
            self.start_generate(settings)

    def start_generate(self, settings: GenerateSettings) -> Job | None:
        """Generate the base motion from the project's audio in a job; the result replaces the base
        motion (with the whole-clip emotion segment, when one was chosen) as one undo step. The
        neural generator's frames appear in the document as its chunks finish."""
        audio = self.media.audio
        if audio is None:
            self.dialogs.error("Generate", "Import speech audio first (File ▸ Import ▸ Audio).")
            return None
        if self.generation is not None:
            self.dialogs.error("Generate", "A generation is running already: wait for it, or cancel it.")
            return None
        if settings.emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {settings.emotion!r}")
        project = self.session.project
        frames = np.arange(num_frames_for(audio.duration, project.fps))
        segment = None
        conditions = project.conditions(frames)
        if settings.emotion != "neutral" and settings.strength > 0:
            segment = EmotionSegment(settings.emotion, 0, len(frames), settings.strength)
            conditions[:, 1:1 + len(EMOTIONS)] = emotion_weights(project.emotion_segments + (segment,), frames)
        transcript = self.session.media.transcript if settings.use_transcript else None
        model = {} if settings.generator == "rig" else {"steps": settings.steps, "guidance": settings.guidance,
                                                         "audio_trust": settings.audio_trust,
                                                         "device": settings.device, "model": settings.model}
        info = {"seed": settings.seed, "emotion": settings.emotion, "strength": settings.strength,
                "transcript": transcript is not None, "language": settings.language, **model}
        return self._run_generation("Generate motion", self._request(settings.generator, settings.seed, transcript,
                                                                     settings.language, conditions, model),
                                    conditions, settings.generator, info, segment=segment)

    def start_regenerate(self) -> Job | None:
        """Re-generate only the frames whose conditions (emotion, intensity, gaze/blink overrides)
        changed since the base motion was generated, with the generator and settings it was made
        with; every other frame keeps its values bit for bit. One undo step."""
        project = self.session.project
        base = project.base
        audio = self.media.audio
        if base is None:
            self.dialogs.error("Regenerate", "Nothing has been generated yet: Generate (Ctrl+G) first.")
            return None
        if audio is None:
            self.dialogs.error("Regenerate", "The project's audio is not loaded: import it (File ▸ Import ▸ Audio).")
            return None
        if self.generation is not None:
            self.dialogs.error("Regenerate", "A generation is running already: wait for it, or cancel it.")
            return None
        n = num_frames_for(audio.duration, project.fps)
        stale = np.ones(n, dtype=bool)
        known = project.stale_frames()[:n]
        stale[:len(known)] = known
        if not stale.any():
            self.notice("No frame's conditions changed since it was generated: nothing to regenerate")
            return None
        settings = dict(base.settings)
        generator = base.generator if base.generator in GENERATORS else "rig"
        model = {} if generator == "rig" else {k: settings[k] for k in ("steps", "guidance", "audio_trust",
                                                                                "device", "model") if k in settings}
        transcript = self.session.media.transcript if settings.get("transcript", True) else None
        conditions = project.conditions(np.arange(n))
        request = self._request(generator, int(settings.get("seed", 0)), transcript,
                                str(settings.get("language", "en-us")), conditions, model)
        count = int(stale.sum())
        return self._run_generation(f"Regenerate {count} changed frame{'s' if count != 1 else ''}", request,
                                    conditions, generator, settings, stale=stale)

    def _request(self, generator: str, seed: int, transcript: str | None, language: str, conditions: np.ndarray,
                 model: dict) -> GenerateRequest:
        project = self.session.project
        options = dict(model)
        if "model" in options:
            options["model"] = Path(options["model"]) if options["model"] else None
        return GenerateRequest(self.media.audio, transcript=transcript, language=language, generator=generator,
                               fps=project.fps, seed=seed, conditions=conditions,
                               canonical_keypoints=project.identity, **options)

    def _run_generation(self, title: str, request: GenerateRequest, conditions: np.ndarray, generator: str,
                        info: dict, *, segment: EmotionSegment | None = None, stale: np.ndarray | None = None) -> Job:
        """Run a generation in a child process. Its streamed pieces are previewed in the document
        (no undo step); the result becomes the base motion — the whole of it, or (``stale``) only
        those frames — as one undo step; cancelled or failed, the previous base is put back."""
        project = self.session.project
        original = project.base
        count = len(conditions)
        streamed = np.zeros((count, NUM_CHANNELS), dtype=np.float32)
        received = np.zeros(count, dtype=bool)
        previewed = [False]

        def on_piece(piece) -> None:
            if self.session.project is not project:
                return
            stop = min(piece.start + len(piece.values), count)
            streamed[piece.start:stop] = piece.values[:stop - piece.start]
            received[piece.start:stop] = True
            if stale is not None:
                preview = splice_base(original, streamed, conditions, stale & received, generator=generator,
                                      settings=info)
            elif original is None or len(original) == 0:
                ready = count if received.all() else int(np.argmin(received))  # the frames from 0 on
                if ready == 0:
                    return
                preview = BaseMotion(streamed[:ready], conditions[:ready], generator, info)
            else:
                preview = splice_base(original, streamed, conditions, received, fade=0, generator=generator,
                                      settings=info)
            project.preview_base(preview)
            previewed[0] = True

        def apply(outcome) -> None:
            result = outcome.result
            if previewed[0]:
                project.preview_base(original)  # the undo step below starts from the base as it was
            if self.session.project is not project:
                self.notice("Generation finished for a project that is no longer open: result dropped")
                return
            settings = {**info, "phones": result.phone_method, PHONE_TRACK_KEY: phone_track(result.phones)}
            if stale is None:
                with project.macro("Generate motion"):
                    if segment is not None:
                        project.add_emotion(segment.label, segment.start, segment.end, segment.strength)
                    project.set_base(BaseMotion(result.motion.values, conditions, generator, settings))
            else:
                with project.macro(title):
                    project.set_base(splice_base(original, result.motion.values, conditions, stale,
                                                 generator=generator, settings=settings))
            if generator != "rig":
                self.device_label.setText(f"Inference: {outcome.device} (neural generator)")
            for warning in result.warnings:
                self.notice(f"Generate: {warning}")

        def ended(job: Job) -> None:
            if self.generation is job:
                self.generation = None
            if job.state != "done" and previewed[0] and project.base is not original:
                project.preview_base(original)  # cancelled or failed: as it was before
            self._on_undo_index()
            self._update_enabled()

        job = self.jobs.run(title, lambda: run_in_process(generate_job, request, publish=True), on_done=apply,
                            on_partial=on_piece, on_ended=ended)
        self.generation = job
        self._on_undo_index()
        self._update_enabled()
        return job

    # --- export -----------------------------------------------------------------------------------
    def export_context(self) -> ExportContext:
        """What the Export dialog needs to know: the take's length, and what each kind still needs."""
        project = self.session.project
        blocked: dict[str, str] = {}
        if project.num_frames == 0:
            nothing = ("Nothing to export yet: import speech audio (File ▸ Import ▸ Audio…) and Generate "
                       "(Animation ▸ Generate…, Ctrl+G).")
            blocked = dict.fromkeys(EXPORT_KINDS, nothing)
        else:
            portrait = self._portrait_problem()
            head = self.heads.export_problem()
            for kind, problem in (("mp4", portrait), ("png", portrait), ("mesh", head), ("mesh_video", head)):
                if problem:
                    blocked[kind] = problem
        notes = {}
        if project.num_frames and project.base is None and not any(layer.curves for layer in project.layers):
            notes = dict.fromkeys(EXPORT_KINDS, "No motion has been generated or keyed yet (Animation ▸ Generate…): "
                                                "this export holds the neutral face.")
        loaded = self.heads.loaded
        return ExportContext(project.num_frames, project.fps, self.session.frame, blocked,
                             has_audio="audio" in project.sources,
                             textured_head=loaded is not None and loaded.uv is not None and loaded.texture is not None,
                             notes=notes)

    def _portrait_problem(self) -> str:
        if "portrait" not in self.session.project.sources:
            return ("The portrait video needs a portrait: import a photo first (File ▸ Import ▸ Portrait…). "
                    "For a head mesh, export a 3D render or a mesh sequence.")
        if self.media.image is None:
            return "The portrait is still loading…"
        if self.media.fit is None:
            return ("No face was found in the portrait: place its 21 keypoints in the 2D view (View ▸ Edit face "
                    "fit) first.")
        return ""

    def _suggested_export(self, kind: str) -> Path:
        stem = self.session.path.stem if self.session.path else "untitled"
        folder = Path(str(self.settings.value("export/folder", ""))) if self.settings.value("export/folder") else \
            (self.session.path.parent if self.session.path else Path.home())
        if kind in FOLDER_KINDS:
            return folder / f"{stem}_frames"
        formats = export_formats()[kind]
        return folder / (stem + (formats[0].extensions[0] if formats else ""))

    def export_dialog(self, kind: str) -> None:
        """File ▸ Export: the dialog (for ``kind`` first), then the export job."""
        settings = self.dialogs.export_settings(kind, self._suggested_export(kind), self.export_context())
        if settings is not None:
            self.last_export_kind = settings.kind
            self.settings.setValue("export/folder", str(Path(settings.path).parent))
            self.start_export(settings)

    def start_export(self, settings: ExportSettings) -> Job | None:
        """Export the evaluated motion (all frames, or ``settings.frames``) in a job: rendered over
        the portrait (MP4, PNG frames), deformed onto the head mesh (mesh sequence, 3D render) or
        written by the registry's exporter (motion, ARKit curves)."""
        project = self.session.project
        problem = self.export_context().blocked.get(settings.kind)
        if problem:
            self.dialogs.error("Export", problem)
            return None
        start, end = settings.frames if settings.frames is not None else (0, project.num_frames)
        start, end = max(0, int(start)), min(project.num_frames, int(end))
        if end <= start:
            self.dialogs.error("Export", f"The frame range {settings.frames} holds no frame of the take "
                                         f"(frames 0 … {project.num_frames - 1}).")
            return None
        values = project.evaluate(np.arange(start, end))
        path = Path(settings.path)
        audio_source = project.sources.get("audio")
        audio = Path(audio_source.path) if audio_source is not None and settings.audio else None
        kind = settings.kind
        if kind in ("mp4", "png"):
            video = VideoExportRequest(self.media.image, self.media.fit, values, project.fps, path,
                                       audio=audio if kind == "mp4" else None, frames_folder=kind == "png",
                                       backend=settings.backend, preset=settings.preset, crf=settings.crf)
            work, function = PortraitVideoRequest(video, start / project.fps), export_portrait_video_job
        elif kind in ("mesh", "mesh_video"):
            head = HeadRequest(project.sources["mesh"].path, project.mesh_keypoints)
            if kind == "mesh":
                options = {}
                if settings.exporter == "mesh_glb" or path.suffix.lower() in (".glb", ".gltf"):
                    options = {"max_targets": settings.max_targets, "rigid": settings.rigid}
                elif settings.exporter == "mesh_usd" or path.suffix.lower() in (".usd", ".usda", ".usdc"):
                    options = {"meters_per_unit": settings.meters_per_unit}
                work = MeshExportRequest(head, values, project.fps, path, settings.exporter, options, settings.texture)
                function = export_mesh_job
            else:
                work = HeadVideoRequest(head, values, project.fps, path, audio, start / project.fps, settings.view,
                                        settings.shading, settings.size, settings.crf, settings.preset)
                function = render_head_video_job
        else:
            options = {}
            csv = settings.exporter == "arkit_csv" or (not settings.exporter and path.suffix.lower() == ".csv")
            if kind == "arkit" and csv:
                options["layout"] = settings.layout
            work = MotionExportRequest(Motion(values, project.fps, project.identity), path,
                                       "motion" if kind == "motion" else "curves", options, settings.exporter)
            function = export_motion_job
        name = path.name
        return self.jobs.run(f"Export {name}", lambda: run_in_process(function, work),
                             on_done=lambda result: self.notice(f"Exported {name}"))

    # --- the 3D panel -----------------------------------------------------------------------------
    def _on_head(self) -> None:
        if self.heads.loaded is not None and self.head_dock is None:
            self.head_view = HeadView(self.session, self.heads, self)
            self.head_dock = self.add_panel("3D view", self.head_view, Qt.RightDockWidgetArea)
            if self.head_dock not in self.restored_panels:  # no saved place: beside the 2D view, as wide
                docks = [d for d in (self.media_dock, self.viewport_dock, self.inspector_dock)
                         if not d.isHidden() and not d.isFloating()]
                widths = {d: d.width() for d in docks}
                self.splitDockWidget(self.viewport_dock, self.head_dock, Qt.Horizontal)
                width = max(widths.get(self.viewport_dock, 0), 400)
                widths[self.viewport_dock] = width // 2
                widths[self.head_dock] = width - width // 2
                order = [d for d in (self.media_dock, self.viewport_dock, self.head_dock, self.inspector_dock)
                         if d in widths]  # once the new dock is laid out
                QTimer.singleShot(0, self, lambda: self.resizeDocks(order, [widths[d] for d in order], Qt.Horizontal))
            self.head_dock.show()
            if not self.head_view.gl:
                self.notice("The 3D view needs OpenGL, which this display does not give: it shows a notice instead")
        self._update_enabled()

    # --- start and end ----------------------------------------------------------------------------
    def offer_recovery(self) -> bool:
        """After a crash, offer the autosave it left; True when it was recovered."""
        found = self.recovery.pending()
        if found is None:
            return False
        saved = datetime.datetime.fromtimestamp(found.saved).strftime("%Y-%m-%d %H:%M")
        if not self.dialogs.offer_recovery(found.project_name, saved):
            self.recovery.discard()
            return False
        try:
            self.recovery.recover(found)
        except ProjectFileError as exc:
            self.dialogs.error("Cannot recover", str(exc))
            self.recovery.discard()
            return False
        self.notice(f"Recovered {found.project_name} from its autosave: save it to keep it")
        return True

    def closeEvent(self, event) -> None:
        if not self._shut_down and not self.maybe_save():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop playback and jobs, remember the layout, mark a clean exit (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.transport.shutdown()
        self.jobs.cancel_all(wait=True)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("inspector/open", ",".join(self.inspector.open_sections()))
        self.recovery.clean_exit()
        self.settings.sync()


# --- shortcuts ----------------------------------------------------------------------------------------

def shortcut_conflicts(window: QWidget) -> list[str]:
    """Key sequences that two of the window's actions could both answer at once — which Qt reports
    as "Ambiguous shortcut" and then does nothing. A window-wide action (``WindowShortcut``) is
    active wherever the focus is, so it clashes with every other action of the same sequence; two
    widget-scoped actions clash when one's widgets contain the other's (the focus can sit in both)."""
    from PySide6.QtWidgets import QMenu, QMenuBar, QToolBar

    found: dict[str, list[tuple[QAction, bool, list[QWidget]]]] = {}
    for action in window.findChildren(QAction):
        sequences = [s.toString() for s in action.shortcuts() if not s.isEmpty()]
        if not sequences:
            continue
        wide = action.shortcutContext() in (Qt.WindowShortcut, Qt.ApplicationShortcut)
        widgets = [w for w in action.associatedObjects()
                   if isinstance(w, QWidget) and not isinstance(w, (QMenu, QMenuBar, QToolBar))]
        for sequence in sequences:
            found.setdefault(sequence, []).append((action, wide, widgets))

    def contains(outer: list[QWidget], inner: list[QWidget]) -> bool:
        return any(o is i or o.isAncestorOf(i) for o in outer for i in inner)

    conflicts = []
    for sequence, entries in sorted(found.items()):
        for i, (a, a_wide, a_widgets) in enumerate(entries):
            for b, b_wide, b_widgets in entries[i + 1:]:
                if a is b:
                    continue
                if a_wide or b_wide or contains(a_widgets, b_widgets) or contains(b_widgets, a_widgets):
                    conflicts.append(f"{sequence}: “{a.text()}” and “{b.text()}”")
    return conflicts
