"""The 2D viewport: the portrait rendered at the playhead, with its 21 keypoints over it.

A pyqtgraph view with one :class:`ImageItem` fed on its fast path (uint8 RGB, C-contiguous,
``axisOrder='row-major'``, ``levels=None``). It observes the session — the playhead, the
evaluated motion, the selection — and the :class:`~studio.qt.media.MediaController` (a new photo,
fit or renderer), and re-renders through a coalescing timer, at most every
:data:`MIN_FRAME_INTERVAL_MS`, so scrubbing never queues up renders.

The keypoint overlay has two uses:

* **animating** (default): the keypoints follow the face at the playhead; clicking one selects its
  three channels (``exp.<name>.x|y|z``; Shift adds), which K then keys;
* **Edit face fit**: the photo as it is, with the fit's keypoints (or a starting face when the
  detector found none); dragging a point previews the fitted face's outline live and, on release,
  puts the keypoints (and the identity they imply) into the document as one undo step.

:func:`benchmark_scrub` measures how many frames per second the view shows while the playhead moves.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QLabel, QStackedLayout, QToolBar, QVBoxLayout, QWidget

from studio.core.keypoints import KEYPOINT_NAMES, MEDIAPIPE_INDICES, NUM_KEYPOINTS
from studio.core.motion import AXES
from studio.core.session import Session
from studio.qt.media import MediaController
from studio.render import face_mesh as fm
from studio.render.face_fit import PortraitError, starting_keypoints

#: Least time between two renders while the playhead or the document changes (60 Hz).
MIN_FRAME_INTERVAL_MS = 1000.0 / 60.0
POINT_COLOUR = (80, 220, 255)
SELECTED_COLOUR = (255, 170, 40)
EDIT_COLOUR = (255, 230, 60)
CONTOUR_COLOUR = (255, 230, 60, 170)
HINT = ("Drop a portrait photo here\n(and speech audio, a transcript)\n\n"
        "or use File ▸ Import")


def _contour_indices() -> list[np.ndarray]:
    closed = [np.array(fm.FACE_OVAL), fm.ring(fm.LIP_OUTER_UPPER, fm.LIP_OUTER_LOWER), fm.LIP_INNER_RING,
              fm.EYE_R_RING, fm.EYE_L_RING]
    return [np.r_[c, c[:1]] for c in closed]


class KeypointItem(pg.ScatterPlotItem):
    """The 21 points; ``sigPointDragged(index, pos)`` while dragging one (when ``draggable``),
    ``sigPointReleased(index)`` once on release, ``sigPointClicked(index, additive)`` on a click."""

    sigPointDragged = Signal(int, object)
    sigPointReleased = Signal(int)
    sigPointClicked = Signal(int, bool)

    def __init__(self):
        super().__init__(size=11, pxMode=True, hoverable=True, hoverSize=15, tip=None)
        self.draggable = False
        self._dragging: int | None = None

    def _point_at(self, pos) -> int | None:
        """The keypoint under ``pos``: of overlapping markers (the lips' when the view is small),
        the one whose centre is nearest."""
        points = self.pointsAt(pos)
        if len(points) == 0:
            return None
        nearest = min(points, key=lambda p: (p.pos().x() - pos.x()) ** 2 + (p.pos().y() - pos.y()) ** 2)
        return int(nearest.index())

    def mouseDragEvent(self, ev):
        if not self.draggable or ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            self._dragging = self._point_at(ev.buttonDownPos())
        if self._dragging is None:
            ev.ignore()
            return
        ev.accept()
        self.sigPointDragged.emit(self._dragging, ev.pos())
        if ev.isFinish():
            index, self._dragging = self._dragging, None
            self.sigPointReleased.emit(index)

    def mouseClickEvent(self, ev):
        index = self._point_at(ev.pos()) if ev.button() == Qt.LeftButton else None
        if index is None:
            ev.ignore()
            return
        ev.accept()
        self.sigPointClicked.emit(index, bool(ev.modifiers() & Qt.ShiftModifier))


class Viewport2D(QWidget):
    """The portrait at the playhead and its keypoints (see the module docstring)."""

    #: One-line messages for the status bar (a drag that makes no face, what a click selected).
    notice = Signal(str)

    def __init__(self, session: Session, media: MediaController, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.media = media
        self.picture: np.ndarray | None = None  # what the image item shows
        self.renders = 0
        self._edit_points: np.ndarray | None = None  # the keypoints being edited (21, 2) image pixels
        self._last_render = 0.0
        self._image_size: tuple[int, int] | None = None

        self.toolbar = QToolBar("2D view", self)
        self.show_keypoints = QAction("Keypoints", self, checkable=True, checked=True)
        self.show_keypoints.setToolTip("Show the 21 keypoints; click one to select its channels (Shift adds)")
        self.edit_fit = QAction("Edit face fit", self, checkable=True)
        self.edit_fit.setToolTip("Drag the keypoints onto the photo's face: fixes a bad fit, or places a face "
                                 "the detector missed (one undo step per drag)")
        self.reset_fit = QAction("Reset face fit", self)
        self.reset_fit.setToolTip("Back to the face detector's keypoints")
        for action in (self.show_keypoints, self.edit_fit, self.reset_fit):
            self.toolbar.addAction(action)
        self.state_label = QLabel(self)
        self.state_label.setContentsMargins(8, 0, 8, 0)
        self.toolbar.addWidget(self.state_label)

        self.view = pg.GraphicsView(self)
        self.view.setBackground((30, 30, 34))
        self.viewbox = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image_item)
        self.contours = pg.PlotCurveItem(pen=pg.mkPen(CONTOUR_COLOUR, width=1.5), connect="finite")
        self.viewbox.addItem(self.contours)
        self.keypoints = KeypointItem()
        self.viewbox.addItem(self.keypoints)
        self.hint = QLabel(HINT, self)
        self.hint.setAlignment(Qt.AlignCenter)
        self.hint.setObjectName("viewportHint")
        self.hint.setStyleSheet("color: #8a8f98; font-size: 15px;")
        self.stack = QStackedLayout()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addLayout(self.stack)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        self.show_keypoints.toggled.connect(self.schedule)
        self.edit_fit.toggled.connect(self._on_edit_toggled)
        self.reset_fit.triggered.connect(self._on_reset)
        self.keypoints.sigPointDragged.connect(self._on_dragged)
        self.keypoints.sigPointReleased.connect(self._on_released)
        self.keypoints.sigPointClicked.connect(self._on_clicked)
        session.events.frame.connect(self._on_model)
        session.events.motion.connect(self._on_model)
        session.events.selection.connect(self._on_model)
        media.portrait_changed.connect(self._on_portrait)
        self._on_portrait()

    # --- observing ----------------------------------------------------------------------------
    def _on_model(self, event=None) -> None:
        self.schedule()

    def _on_portrait(self) -> None:
        self.reset_fit.setEnabled(self.session.project.portrait_keypoints is not None)
        self.edit_fit.setEnabled(self.media.image is not None)
        if self.media.image is not None and self.media.fit is None and not self.edit_fit.isChecked():
            self.edit_fit.setChecked(True)  # no face found: placing the keypoints is the next step
        self._edit_points = None
        self.schedule()

    def schedule(self, *args) -> None:
        """Render soon: once per pass of the event loop, and no more often than 60 times a second."""
        if self._timer.isActive():
            return
        wait = MIN_FRAME_INTERVAL_MS - (time.perf_counter() - self._last_render) * 1000.0
        self._timer.start(max(0, int(wait)))

    # --- rendering ----------------------------------------------------------------------------
    @property
    def editing(self) -> bool:
        return self.edit_fit.isChecked() and self.media.image is not None

    def refresh(self) -> None:
        """Render now (the timer calls this; tests and the benchmark call it directly)."""
        self._timer.stop()
        self._last_render = time.perf_counter()
        media = self.media
        self._show_state()
        if media.image is None:
            self.picture = None
            self.image_item.clear()
            self.stack.setCurrentWidget(self.hint)
            return
        self.stack.setCurrentWidget(self.view)
        if self.editing or media.renderer is None:
            picture = media.image
        else:
            picture = media.renderer.render(self.session.frame_values())
        self.picture = np.ascontiguousarray(picture)
        self.image_item.setImage(self.picture, autoLevels=False, levels=None)
        self.renders += 1
        size = self.picture.shape[:2]
        if size != self._image_size:
            self._image_size = size
            self.viewbox.autoRange(padding=0.02)
        self._update_overlay()

    def _show_state(self) -> None:
        info = self.session.media.portrait
        text = {"pending": "finding the face…", "detected": "face found", "placed": "keypoints placed by hand",
                "missing": "no face found: drag the keypoints onto the face"}.get(info.face if info else "", "")
        self.state_label.setText(text)

    def _update_overlay(self) -> None:
        visible = self.show_keypoints.isChecked() or self.editing
        self.keypoints.setVisible(visible)
        self.keypoints.draggable = self.editing
        self.contours.setVisible(self.editing)
        if not visible:
            return
        if self.editing:
            points = self._current_edit_points()
            brushes = [pg.mkBrush(EDIT_COLOUR)] * NUM_KEYPOINTS
            self._draw_contours(points)
        else:
            points = self._animated_points()
            if points is None:
                self.keypoints.setData([], [])
                return
            selected = set(self.session.selection.channels)
            brushes = [pg.mkBrush(SELECTED_COLOUR if f"exp.{name}.x" in selected else POINT_COLOUR)
                       for name in KEYPOINT_NAMES]
        self.keypoints.setData(points[:, 0] + 0.5, points[:, 1] + 0.5, brush=brushes,
                               pen=pg.mkPen((20, 20, 24), width=1.5), data=list(range(NUM_KEYPOINTS)))

    def _animated_points(self) -> np.ndarray | None:
        renderer = self.media.renderer
        if renderer is None:
            return None
        dense = renderer.rig.points(np.asarray(self.session.frame_values(), dtype=np.float64)[None])[0]
        return dense[MEDIAPIPE_INDICES, :2]

    def _current_edit_points(self) -> np.ndarray:
        if self._edit_points is None:
            fit = self.media.fit
            self._edit_points = (fit.keypoints[:, :2].copy() if fit is not None
                                 else starting_keypoints(self.media.image.shape[:2]))
        return self._edit_points

    def _draw_contours(self, points: np.ndarray) -> None:
        try:
            fit = self.media.fit_for_keypoints(points)
        except PortraitError:
            self.contours.setData([], [])
            return
        pieces = []
        for ring in _contour_indices():
            pieces.append(fit.landmarks[ring, :2] + 0.5)
            pieces.append(np.full((1, 2), np.nan))
        line = np.concatenate(pieces)
        self.contours.setData(line[:, 0], line[:, 1])

    # --- interaction --------------------------------------------------------------------------
    def _on_edit_toggled(self, checked: bool) -> None:
        self._edit_points = None
        self.schedule()

    def _on_reset(self) -> None:
        self.media.reset_keypoints()

    def _on_dragged(self, index: int, pos: QPointF) -> None:
        points = self._current_edit_points().copy()
        points[index] = (pos.x() - 0.5, pos.y() - 0.5)
        self._edit_points = points
        self._update_overlay()  # live preview: the point and the fitted outline follow

    def _on_released(self, index: int) -> None:
        points = self._current_edit_points()
        try:
            self.media.place_keypoints(points)
        except PortraitError as exc:
            self.notice.emit(f"Keypoints not placed: {exc}")
            self._edit_points = None
            self.schedule()

    def _on_clicked(self, index: int, additive: bool) -> None:
        if self.editing:
            return
        name = KEYPOINT_NAMES[index]
        channels = [f"exp.{name}.{a}" for a in AXES]
        if additive and f"exp.{name}.x" in self.session.selection.channels:
            remaining = [c for c in self.session.selection.channels if c not in channels]
            self.session.select_channels(remaining)
        else:
            self.session.select_channels(channels, add=additive)
        self.notice.emit(f"Selected {len(self.session.selection.channels)} channel(s): press K to key them")

    def grab_pixels(self) -> np.ndarray:
        """What the view shows, as H × W × 3 uint8 RGB (the tests look at it)."""
        return qimage_to_array(self.view.grab().toImage())


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage as H × W × 3 uint8 RGB."""
    image = image.convertToFormat(QImage.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return data.reshape(height, image.bytesPerLine())[:, :width * 3].reshape(height, width, 3).copy()


def benchmark_scrub(viewport: Viewport2D, frames: int = 200, *, paint: bool = True) -> dict:
    """Moves the playhead across ``frames`` frames of the open project, rendering and (``paint``)
    painting the view each time, as fast as it can: the frames per second the view keeps up while
    scrubbing. Returns the figures (frames, seconds, fps, milliseconds per frame, image size)."""
    session = viewport.session
    count = min(frames, session.project.num_frames)
    if count < 2 or viewport.media.renderer is None:
        raise ValueError("scrubbing needs a fitted portrait and a project of at least 2 frames")
    positions = np.linspace(0, session.last_frame, count).round().astype(int)
    viewport.refresh()
    start = time.perf_counter()
    for frame in positions:
        session.frame = int(frame)
        viewport.refresh()
        if paint:
            viewport.view.viewport().repaint()
    seconds = time.perf_counter() - start
    height, width = viewport.picture.shape[:2]
    return {"frames": int(count), "seconds": seconds, "fps": count / seconds, "ms_per_frame": 1000 * seconds / count,
            "size": f"{width}×{height}", "project_frames": session.project.num_frames}
