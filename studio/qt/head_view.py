"""The 3D panel: the project's head mesh animated at the playhead, and picking its keypoints.

* :class:`HeadController` keeps the head mesh of the open project loaded: the document's mesh
  source and its hand-assigned keypoint vertices (:attr:`~studio.core.document.Project.mesh_keypoints`)
  go to a job (:func:`studio.jobs.load_head`, in a child process) whose
  :class:`~studio.jobs.LoadedHead` comes back with the mesh, its 21 keypoint vertex groups as far
  as they are known and, once all are, the :class:`~studio.render.mesh.animate.AnimatedHead`. It
  is what the mesh exports ask about too (:meth:`HeadController.export_problem`).
* :class:`HeadView` is the dock's widget: a :class:`~studio.qt.viewport3d.Viewport3D` that follows
  the playhead and every edit (``session.frame``, ``session.motion``), an orbit camera, smooth /
  flat / wireframe shading, the keypoint markers, and **Assign keypoints**: choose a keypoint (in
  the panel, or by selecting its channels anywhere — the 2D view, the inspector), click a vertex,
  and the assignment goes into the document as one undo step (then the next unassigned keypoint
  is chosen). Importing another mesh clears the assignments (they name the old mesh's vertices). A custom mesh (no FLAME topology) starts with none: it shows at
  rest until all 21 are placed, then moves with the motion. Where there is no OpenGL (Qt's
  ``offscreen`` platform without a display), the panel says so instead of drawing, and the rest of
  the studio — mesh exports included, which render in their own processes — works on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.keypoints import KEYPOINT_NAMES, MEAN_FACE, NUM_KEYPOINTS
from studio.core.session import Session
from studio.jobs import (
    HeadRequest,
    LoadedHead,
    load_head_job,
    merged_keypoints,
    missing_message,
    run_in_process,
)
from studio.qt.workers import JobManager
from studio.render.mesh.animate import AnimatedHead

SHADING_LABELS = {"smooth": "Shaded", "flat": "Flat", "wireframe": "Wireframe"}


class HeadController(QObject):
    """Keeps the open project's head mesh loaded (see the module docstring). ``changed`` fires when
    :attr:`loaded` (or :attr:`loading`) changes."""

    changed = Signal()

    def __init__(self, session: Session, jobs: JobManager, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self.loaded: LoadedHead | None = None
        self.loading = False
        self.error = ""  # why the mesh could not be loaded
        self._wanted: tuple | None = None  # (sha256, assigned) of the newest request
        session.follow_project({"sources": self._on_sources, "mesh_keypoints": self._sync}, self._on_project)

    @property
    def project(self):
        return self.session.project

    def _on_project(self) -> None:
        self._wanted = None
        self._sync()

    def _on_sources(self, event) -> None:
        if event.role == "mesh":
            self._sync()

    def _sync(self, event=None) -> None:
        source = self.project.sources.get("mesh")
        if source is None:
            self._wanted = None
            self.loaded, self.loading, self.error = None, False, ""
            self.changed.emit()
            return
        assigned = self.project.mesh_keypoints
        wanted = (source.sha256, assigned)
        if wanted == self._wanted:
            return
        self._wanted = wanted
        loaded = self.loaded
        keys = merged_keypoints(None, assigned)
        if (loaded is not None and loaded.head is None and loaded.kind == "custom" and not self.loading
                and loaded.request.path == source.path and not all(keys)):
            # Still incomplete on the same custom mesh: only the markers change, no reload.
            self.loaded = replace(loaded, request=HeadRequest(source.path, assigned), keypoint_vertices=keys,
                                  message=missing_message(Path(source.path).name, keys))
            self.changed.emit()
            return
        self.loading, self.error = True, ""
        self.changed.emit()
        request = HeadRequest(source.path, assigned)

        def done(result: LoadedHead) -> None:
            if self._wanted == wanted:
                self.loaded, self.loading = result, False
                self.changed.emit()

        def failed(message: str) -> None:
            if self._wanted == wanted:
                self.loaded, self.loading, self.error = None, False, message
                self.changed.emit()

        self.jobs.run(f"Load the 3D head {source.path}", lambda: run_in_process(load_head_job, request),
                      on_done=done, on_failed=failed, visible=False)

    def export_problem(self) -> str:
        """Why the head cannot be exported now, in words for the user (empty: it can)."""
        if "mesh" not in self.project.sources:
            return ("Mesh exports need a head mesh: import one first (File ▸ Import ▸ Head mesh… — a FLAME "
                    "model, a VOCA/FLAME template or any OBJ, PLY, glTF/GLB or STL head).")
        if self.error:
            return f"The head mesh cannot be loaded: {self.error}"
        if self.loaded is None or self.loading:
            return "The head mesh is still loading…"
        if self.loaded.head is None:
            return (f"The head mesh cannot move yet — {self.loaded.message}. (A mesh with FLAME topology "
                    "comes with its keypoints.)")
        return ""


def static_head(loaded: LoadedHead) -> AnimatedHead:
    """A head that stays at rest (a mesh whose keypoints are not all known), to show and pick on."""
    rest = np.asarray(loaded.rest, dtype=np.float32)

    def still(frames: np.ndarray) -> np.ndarray:
        return np.repeat(rest[None], len(np.atleast_2d(frames)), axis=0)

    uv = loaded.uv if loaded.uv is not None and len(loaded.uv) == len(rest) else None
    return AnimatedHead(loaded.name, "mesh", np.asarray(loaded.faces), rest, MEAN_FACE, (), still, uv,
                        loaded.texture if uv is not None else None, loaded.toward_viewer, loaded.up)


class HeadView(QWidget):
    """The 3D panel's widget (see the module docstring)."""

    #: A one-line notice for the status bar.
    notice = Signal(str)

    def __init__(self, session: Session, controller: HeadController, parent: QWidget | None = None, *,
                 gl: bool | None = None):
        super().__init__(parent)
        from studio.qt.viewport3d import gl_available

        self.session = session
        self.controller = controller
        self.shown: LoadedHead | None = None
        self.shading = QComboBox(self)
        for key, label in SHADING_LABELS.items():
            self.shading.addItem(label, key)
        self.shading.setToolTip("Shaded (smooth), flat-shaded, or the wireframe")
        self.keypoints = QCheckBox("Keypoints", self)
        self.keypoints.setChecked(True)
        self.keypoints.setToolTip("Show the 21 keypoints (cyan; the chosen one orange)")
        self.assign = QToolButton(self)
        self.assign.setText("Assign keypoints")
        self.assign.setCheckable(True)
        self.assign.setToolTip("Choose a keypoint, then click its vertex on the mesh (an undoable edit)")
        self.keypoint_choice = QComboBox(self)
        self.keypoint_choice.setMinimumContentsLength(18)
        self.unassign = QPushButton("Unassign", self)
        self.unassign.setToolTip("Remove the chosen keypoint's vertex (an undoable edit)")
        self.reset = QPushButton("Front view", self)
        self.reset.setToolTip("Back to the front view of the whole head (drag to orbit, wheel to zoom)")
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #8a8f98;")
        self.hint = QLabel("then click its vertex on the mesh", self)
        self.hint.setStyleSheet("color: #8a8f98;")
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 0)
        for widget in (self.shading, self.keypoints, self.assign):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.reset)
        self.assign_bar = QWidget(self)  # shown while assigning keypoints
        row = QHBoxLayout(self.assign_bar)
        row.setContentsMargins(4, 0, 4, 0)
        for widget in (QLabel("Keypoint", self.assign_bar), self.keypoint_choice, self.hint):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.unassign)
        self.assign_bar.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.assign_bar)

        self.gl = gl_available() if gl is None else gl
        self.viewport = None
        if self.gl:
            from studio.qt.viewport3d import Viewport3D

            self.viewport = Viewport3D(self)
            self.viewport.vertexPicked.connect(self._on_picked)
            layout.addWidget(self.viewport, 1)
            self.unavailable = None
        else:
            self.unavailable = QLabel("The 3D view needs OpenGL, and this display gives none (Qt's offscreen "
                                      "platform without an X display). Run the studio on a desktop, or under "
                                      "Xvfb, to see the head; mesh exports work without it.", self)
            self.unavailable.setWordWrap(True)
            self.unavailable.setAlignment(Qt.AlignCenter)
            self.unavailable.setObjectName("noGlNotice")
            layout.addWidget(self.unavailable, 1)
            for widget in (self.shading, self.keypoints, self.assign, self.keypoint_choice, self.unassign,
                           self.reset):
                widget.setEnabled(False)
        layout.addWidget(self.status)

        self._refresh = QTimer(self)  # one redraw per event-loop pass, however many events asked
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(0)
        self._refresh.timeout.connect(self.show_playhead)
        self.shading.currentIndexChanged.connect(self._on_shading)
        self.keypoints.toggled.connect(self._on_keypoints_toggled)
        self.assign.toggled.connect(self._on_assign)
        self.keypoint_choice.currentIndexChanged.connect(self._update_markers)
        self.unassign.clicked.connect(self._on_unassign)
        self.reset.clicked.connect(lambda: self.viewport and self.viewport.reset_camera())
        controller.changed.connect(self._on_head)
        session.events.frame.connect(self._schedule)
        session.events.motion.connect(self._schedule)
        session.events.selection.connect(self._on_selection)
        self._fill_keypoints()
        self._on_head()

    # --- following the head, the playhead and the document ------------------------------------
    def _on_head(self) -> None:
        loaded = self.controller.loaded
        if self.viewport is not None:
            self.viewport.setVisible(loaded is not None)  # no head mesh (removed, another project): no stale one
        if loaded is not None and self.viewport is not None:
            same_mesh = self.shown is not None and self.shown.request.path == loaded.request.path
            rebuilt = self.shown is None or self.shown.head is not loaded.head or self.shown.rest is not loaded.rest
            if rebuilt:
                head = loaded.head if loaded.head is not None else static_head(loaded)
                self.viewport.set_head(head, shading=self.shading.currentData(), keep_camera=same_mesh)
        self.shown = loaded
        self._fill_keypoints()
        self._update_markers()
        self._update_controls()
        self._schedule()

    def _schedule(self, event=None) -> None:
        if not self._refresh.isActive():
            self._refresh.start()

    def show_playhead(self) -> None:
        """The head at the playhead (the evaluated motion): an animated head moves, a static one rests."""
        if self.viewport is None or self.shown is None or self.shown.head is None:
            return
        self.viewport.show_frame(self.session.frame_values())

    def _update_controls(self) -> None:
        loaded = self.shown
        editable = self.gl and loaded is not None and loaded.editable
        for widget in (self.assign, self.keypoint_choice, self.unassign):
            widget.setEnabled(bool(editable))
        if not editable and self.assign.isChecked():
            self.assign.setChecked(False)
        if loaded is None:
            text = self.controller.error or ("Loading the head mesh…" if self.controller.loading
                                             else "No head mesh: File ▸ Import ▸ Head mesh…")
        else:
            count = loaded.assigned_count
            kind = {"flame": "FLAME model", "template": "FLAME topology", "custom": "custom mesh"}[loaded.kind]
            size = f"{loaded.name}: {len(loaded.rest)} vertices, {len(loaded.faces)} triangles ({kind})"
            if loaded.head is not None:
                text = f"{size} — animated; keypoints {count}/{NUM_KEYPOINTS}"
            else:
                text = f"{size} — at rest: {loaded.message}"
            if self.controller.loading:
                text += " · updating…"
        self.status.setText(text)

    # --- keypoints ------------------------------------------------------------------------------
    def _fill_keypoints(self) -> None:
        groups = self.shown.keypoint_vertices if self.shown is not None else (None,) * NUM_KEYPOINTS
        current = max(self.keypoint_choice.currentIndex(), 0)
        self.keypoint_choice.blockSignals(True)
        self.keypoint_choice.clear()
        for name, ids in zip(KEYPOINT_NAMES, groups):
            self.keypoint_choice.addItem(f"{'✓' if ids else '·'} {name}", name)
        self.keypoint_choice.setCurrentIndex(current)
        self.keypoint_choice.blockSignals(False)

    @property
    def chosen_keypoint(self) -> str:
        return self.keypoint_choice.currentData() or KEYPOINT_NAMES[0]

    def choose_keypoint(self, name: str) -> None:
        self.keypoint_choice.setCurrentIndex(KEYPOINT_NAMES.index(name))

    def _update_markers(self, *_) -> None:
        if self.viewport is None or self.shown is None or self.viewport.head is None:
            return
        highlight = self.keypoint_choice.currentIndex() if self.assign.isChecked() else None
        self.viewport.set_keypoint_vertices(self.shown.keypoint_vertices, highlight)

    def _on_selection(self, event=None) -> None:
        """Channels of one keypoint selected elsewhere (the 2D view, the inspector): that keypoint
        is the one a click assigns."""
        names = {c.split(".")[1] for c in self.session.selection.channels if c.startswith("exp.")}
        if len(names) == 1 and all(c.startswith("exp.") for c in self.session.selection.channels):
            self.choose_keypoint(names.pop())

    def _on_assign(self, checked: bool) -> None:
        self.assign_bar.setVisible(checked)
        if self.viewport is not None:
            self.viewport.picking = checked
        if checked:
            self.notice.emit(f"Click the vertex of {self.chosen_keypoint} (drag orbits, the wheel zooms)")
        self._update_markers()

    def _on_picked(self, vertex: int) -> None:
        """A click on the mesh while assigning: the chosen keypoint goes there (one undo step)."""
        if self.shown is None or not self.shown.editable:
            return
        name = self.chosen_keypoint
        file_vertex = self.shown.file_vertex(vertex)
        self.session.project.set_mesh_keypoint(name, file_vertex)
        self.notice.emit(f"{name} → vertex {file_vertex}")
        index = KEYPOINT_NAMES.index(name)
        if self.shown.kind != "custom":  # every keypoint has a vertex already: on to the next one
            self.choose_keypoint(KEYPOINT_NAMES[(index + 1) % NUM_KEYPOINTS])
            return
        assigned = self.session.project.mesh_keypoints or (None,) * NUM_KEYPOINTS
        for step in range(1, NUM_KEYPOINTS):  # on to the next keypoint still without a vertex
            k = (index + step) % NUM_KEYPOINTS
            if assigned[k] is None:
                self.choose_keypoint(KEYPOINT_NAMES[k])
                break

    def _on_unassign(self) -> None:
        assigned = self.session.project.mesh_keypoints
        index = self.keypoint_choice.currentIndex()
        if assigned is not None and assigned[index] is not None:
            self.session.project.set_mesh_keypoint(self.chosen_keypoint, None)

    # --- display options -------------------------------------------------------------------------
    def _on_shading(self, index: int) -> None:
        if self.viewport is not None:
            self.viewport.set_shading(self.shading.currentData())

    def _on_keypoints_toggled(self, checked: bool) -> None:
        if self.viewport is not None:
            self.viewport.set_keypoints_visible(checked)

    def closeEvent(self, event) -> None:
        if self.viewport is not None:
            self.viewport.close()
        super().closeEvent(event)
