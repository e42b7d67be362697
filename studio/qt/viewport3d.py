"""The 3D viewport: the animated head at the playhead, orbit camera, shading modes, keypoints,
and vertex picking to assign keypoints on a custom mesh.

A thin Qt widget around :class:`studio.qt.mesh_scene.MeshScene` (the same scene the headless
renders use): ``set_head`` takes an :class:`~studio.render.mesh.animate.AnimatedHead`,
``show_frame`` a motion frame (74,). Dragging with the left button orbits (vispy's turntable
camera), the wheel zooms; the key light follows the camera. With picking on, a click emits
``vertexPicked(vertex_id)`` — the studio's 3D panel (:mod:`studio.qt.head_view`) uses it to assign
keypoints on a custom mesh. The keypoint markers are the head's own, or any 21 vertex groups
(``set_keypoint_vertices``: None for a keypoint not placed yet), one of them highlighted.

vispy draws with OpenGL into a QOpenGLWidget that is never shown: the view shows its frames as
images (:class:`Picture`), rendered into an offscreen framebuffer when the scene changed (once per
pass of the event loop, the newest state: requests in between coalesce), and hands the mouse to it.
While frames follow each other closely — scrubbing, playing, dragging a slider, orbiting — each is
rendered at :data:`MOVING_SCALE` of the view's size (a quarter of the pixels, scaled up smoothly);
once none has followed for :data:`SETTLE_MS`, the still picture is rendered again at full size, as
DCC viewports do; a frame after a pause (a single step, a click on the ruler) is full size at once.
A QOpenGLWidget *inside* the window would switch the whole window to OpenGL composition — every
repaint of anything (a progress bar, a label) then composites the window through OpenGL, 15–25 ms
a time with software OpenGL (llvmpipe under Xvfb), and the GUI thread stalled 50–130 ms during
jobs; as an image, a repaint of the rest of the window costs what it costs without a 3D view.

:func:`gl_available` says whether this display can make one. Qt's ``offscreen`` platform cannot (it
has no GL surface to compose the widget onto; with an X display behind it, e.g. Xvfb, a GL context
still exists, so the widget's :meth:`render` — an offscreen framebuffer — works and the tests use
it); the studio shows a notice instead of the view where it cannot.
"""

from __future__ import annotations

import time
from functools import cache

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget

from studio.qt.mesh_scene import BACKGROUND, Camera, MeshScene, scene_basis

KEYPOINT_COLOR = (0.2, 0.9, 1.0, 1.0)
HIGHLIGHT_COLOR = (1.0, 0.55, 0.1, 1.0)
#: While the head moves, frames are rendered at this fraction of the view's width and height…
MOVING_SCALE = 0.5
#: …and a frame that follows the previous one within this many milliseconds is "moving"; once
#: none has followed for as long, the picture is rendered again at full size.
SETTLE_MS = 150


#: Qt platforms that cannot show a QOpenGLWidget ("QOpenGLWidget is not supported on this platform").
NO_GL_WIDGET_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc")


@cache
def gl_available() -> bool:
    """Whether a 3D view can be shown here (needs a QGuiApplication): the platform composes GL
    widgets and Qt can make an OpenGL context. Under ``QT_QPA_PLATFORM=offscreen`` it cannot —
    a vispy canvas there would only warn and fail to draw."""
    from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

    if QGuiApplication.platformName() in NO_GL_WIDGET_PLATFORMS:
        return False
    context = QOpenGLContext()
    if not context.create():
        return False
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        return surface.isValid() and context.makeCurrent(surface)
    finally:
        context.doneCurrent()
        surface.destroy()


@cache
def _qt_app():
    """vispy's PySide6 application — named explicitly, since a headless render in the same
    process may have made EGL vispy's default."""
    from vispy import app

    return app.Application("pyside6")


class Picture(QWidget):
    """Shows the hidden canvas's last frame — scaled smoothly to the widget when it was rendered
    smaller — and hands it the mouse and the wheel (the canvas has the picture's size, so
    positions are the same)."""

    def __init__(self, viewport: Viewport3D):
        super().__init__(viewport)
        self.viewport = viewport
        self.image: QImage | None = None
        self._pixels: np.ndarray | None = None  # the memory ``image`` shows
        self.setMinimumSize(64, 64)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self.setFocusPolicy(Qt.ClickFocus)

    def set_pixels(self, pixels: np.ndarray) -> None:
        """Show ``pixels`` (H × W × 4 uint8, C-contiguous; the fourth channel ignored) without a copy."""
        height, width = pixels.shape[:2]
        self._pixels = pixels
        self.image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format_RGBX8888)
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        if self.image is not None:
            ratio = self.devicePixelRatioF()
            if self.image.width() < round(self.width() * ratio):
                painter.setRenderHint(QPainter.SmoothPixmapTransform)
            painter.drawImage(self.rect(), self.image)
        else:
            painter.fillRect(self.rect(), Qt.black)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.viewport.resize_canvas(self.width(), self.height())

    def event(self, event) -> bool:
        if event.type() in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease, QEvent.MouseMove,
                            QEvent.MouseButtonDblClick, QEvent.Wheel):
            QCoreApplication.sendEvent(self.viewport.canvas.native, event)
            return True
        return super().event(event)


class Viewport3D(QWidget):
    """The 3D view of one animated head."""

    vertexPicked = Signal(int)
    #: A new frame is on screen (tests and benchmarks wait for it).
    frameShown = Signal()

    def __init__(self, parent: QWidget | None = None, *, size: tuple[int, int] = (480, 480)):
        super().__init__(parent)
        from vispy import scene

        self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor=BACKGROUND, size=size, app=_qt_app())
        self.canvas.create_native()  # a top-level QOpenGLWidget, never shown: it renders offscreen
        self.canvas.update = self.request_frame  # every change of the scene asks for a frame here
        self.frames = 0  # frames rendered and shown
        self.moving_scale = MOVING_SCALE
        self.settle_ms = SETTLE_MS
        self.shown_scale = 1.0  # the size of the picture on screen, a fraction of the view's
        self._last_frame_at = -np.inf  # time.monotonic() of the last frame drawn (not a refined one)
        self._rendering = False
        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.setInterval(0)
        self._frame_timer.timeout.connect(self.draw_frame)
        self._settle_timer = QTimer(self)  # a full-size frame once the head stopped moving
        self._settle_timer.setSingleShot(True)
        self._settle_timer.timeout.connect(self.refine)
        self.picture = Picture(self)
        self.picture.setMouseTracking(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture)
        self.head = None
        self.scene: MeshScene | None = None
        self.picking = False
        self.show_keypoints = True
        self._groups: tuple | None = None  # the keypoint markers' vertex groups (None: the head's)
        self._highlight: int | None = None
        self._basis = np.eye(3, dtype=np.float32)
        self._vertices: np.ndarray | None = None  # the shown frame, scene coordinates
        self._frame_values: np.ndarray | None = None  # the motion frame shown (None: at rest)
        self._press: tuple[float, float] | None = None
        self._framed = True  # the camera frames the head until the user moves it
        self.canvas.events.mouse_press.connect(self._on_press)
        self.canvas.events.mouse_release.connect(self._on_release)
        self.canvas.events.mouse_wheel.connect(self._on_wheel)
        self.canvas.events.resize.connect(self._on_resize)
        self.canvas.events.draw.connect(lambda event: self.scene and self.scene.light_from_camera())

    # --- frames ---------------------------------------------------------------------------------
    def request_frame(self, node=None) -> None:
        """Draw a new frame soon: once per pass of the event loop however many changes ask (and
        none for the transforms a render itself changes and restores)."""
        if not self._rendering and not self._frame_timer.isActive():
            self._frame_timer.start()

    def draw_frame(self) -> None:
        """Render the scene into the picture now (the timer calls this): at ``moving_scale`` of
        the view's size when the previous frame was less than ``settle_ms`` ago, with a full-size
        frame to follow once the frames stop."""
        self._frame_timer.stop()
        if self.scene is None or not self.isVisible():
            return
        now = time.monotonic()
        moving = now - self._last_frame_at < self.settle_ms / 1000.0
        self._last_frame_at = now
        self._draw(self.moving_scale if moving else 1.0)

    def refine(self) -> None:
        """The picture at full size, if it is smaller (the settle timer calls this)."""
        self._settle_timer.stop()
        if self.scene is not None and self.isVisible() and self.shown_scale < 1.0:
            self._draw(1.0)

    def _draw(self, scale: float) -> None:
        width, height = self.canvas.physical_size
        size = (max(round(width * scale), 1), max(round(height * scale), 1))
        self.scene.light_from_camera()
        self.picture.set_pixels(self._render(size))
        self.shown_scale = size[0] / max(width, 1)
        if self.shown_scale < 1.0:
            self._settle_timer.start(self.settle_ms)
        else:
            self._settle_timer.stop()
        self.frames += 1
        self.frameShown.emit()

    def resize_canvas(self, width: int, height: int) -> None:
        """Give the hidden canvas the picture's size (logical pixels; physical ones for HiDPI)."""
        native = self.canvas.native
        ratio = self.picture.devicePixelRatioF()
        native.resize(width, height)
        physical = (max(int(width * ratio), 1), max(int(height * ratio), 1))
        native._vispy_set_physical_size(*physical)
        self.canvas.events.resize(size=(width, height), physical_size=physical)
        self.request_frame()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.request_frame()

    def set_head(self, head, shading: str = "smooth", keep_camera: bool = False) -> None:
        """Shows ``head`` (an AnimatedHead) at rest, framed from the front — or, ``keep_camera``,
        seen as the previous head was (the same mesh, re-rigged). An untextured head after an
        untextured one reuses the scene, whose shaders are compiled already (a first draw compiles
        them: a tenth of a second and more with software OpenGL)."""
        self.head = head
        self._groups = None
        self._frame_values = None
        self._basis = scene_basis(head.toward_viewer, head.up)
        rest = np.asarray(head.rest, dtype=np.float32) @ self._basis.T
        textured = head.texture is not None and head.uv is not None and shading == "smooth"
        if self.scene is not None and not textured and not self.scene.textured:
            self.scene.set_mesh(rest, head.faces)
            if self.scene.shading_mode != shading:
                self.scene.set_shading(shading)
        else:
            if self.scene is not None:
                self.scene.view.parent = None
            camera = None if self.scene is None else self.scene.view.camera
            self.scene = MeshScene(self.canvas, rest, head.faces, shading=shading,
                                   uv=head.uv if textured else None, texture=head.texture if textured else None)
            if keep_camera and camera is not None:
                self.scene.view.camera = camera
        if not keep_camera or not hasattr(self.scene.view.camera, "azimuth"):
            self._frame(rest)
        self._show(rest)

    def _frame(self, rest: np.ndarray) -> None:
        width, height = self.canvas.size
        self.scene.set_camera(Camera.framing(rest, aspect=width / max(height, 1)))
        self._framed = True

    def reset_camera(self) -> None:
        """Back to the front view that frames the whole head (and keeps framing it as the view resizes)."""
        if self.scene is not None and self._vertices is not None:
            self._frame(np.asarray(self.head.rest, dtype=np.float32) @ self._basis.T)
            self.canvas.update()

    def _on_resize(self, event) -> None:
        if self._framed and self.scene is not None and self.head is not None:
            self._frame(np.asarray(self.head.rest, dtype=np.float32) @ self._basis.T)

    def _on_wheel(self, event) -> None:
        self._framed = False

    def set_keypoint_vertices(self, groups, highlight: int | None = None) -> None:
        """Markers on 21 vertex groups (tuples of vertex ids; None: not placed, no marker), the
        ``highlight``-th in another colour; ``groups`` None: the head's own keypoints."""
        self._groups = None if groups is None else tuple(None if g is None else tuple(g) for g in groups)
        self._highlight = highlight
        if self._vertices is not None:
            self._show(self._vertices)

    def show_frame(self, frame: np.ndarray) -> None:
        """The head deformed by one motion frame (74,); the same frame again changes nothing."""
        if self.head is None:
            return
        frame = np.array(frame, dtype=np.float64)
        if self._frame_values is not None and np.array_equal(frame, self._frame_values):
            return
        self._frame_values = frame
        vertices = self.head.deform(frame[None])[0]
        self._show(np.asarray(vertices, dtype=np.float32) @ self._basis.T)

    def set_shading(self, shading: str) -> None:
        if self.scene is not None:
            self.scene.set_shading(shading)

    def set_keypoints_visible(self, visible: bool) -> None:
        self.show_keypoints = bool(visible)
        if self._vertices is not None:
            self._show(self._vertices)

    @property
    def keypoint_groups(self) -> tuple:
        """The vertex groups the markers sit on (21 entries, None where not placed)."""
        return self._groups if self._groups is not None else tuple(self.head.keypoint_vertices)

    def _keypoints(self, vertices: np.ndarray) -> np.ndarray:
        """The markers' positions (21, 3), NaN where a keypoint is not placed."""
        groups = self.keypoint_groups
        out = np.full((len(groups), 3), np.nan, np.float32)
        for i, ids in enumerate(groups):
            if ids:
                out[i] = vertices[list(ids)].mean(0)
        return out

    def _show(self, vertices: np.ndarray) -> None:
        self._vertices = vertices
        self.scene.set_vertices(vertices)
        keys = self._keypoints(vertices)
        placed = np.flatnonzero(np.isfinite(keys[:, 0])) if len(keys) else np.zeros(0, np.int64)
        if self.show_keypoints and len(placed):
            colors = np.tile(np.array(KEYPOINT_COLOR, np.float32), (len(placed), 1))
            colors[placed == self._highlight] = HIGHLIGHT_COLOR
            self.scene.set_markers(keys[placed], color=colors)
        else:
            self.scene.set_markers(None)
        self.canvas.update()

    def keypoints_on_screen(self) -> np.ndarray:
        """Where the 21 keypoints are drawn, canvas pixels (21, 2); NaN for one not placed."""
        return self.scene.to_canvas(self._keypoints(self._vertices))

    def pick(self, x: float, y: float) -> int | None:
        """The vertex id under canvas pixel (x, y), or None."""
        if self.scene is None or self._vertices is None:
            return None
        return self.scene.pick(self._vertices, x, y)

    def render(self) -> np.ndarray:
        """The current picture at full size (H × W × 3 uint8 RGB), whatever the view shows now."""
        if self.scene is None:
            return np.zeros((1, 1, 3), np.uint8)
        return np.ascontiguousarray(self._render()[..., :3])

    def _render(self, size: tuple[int, int] | None = None) -> np.ndarray:
        self._rendering = True
        try:
            return self.scene.render_rgba(size)
        finally:
            self._rendering = False

    # A click (press and release within a few pixels, so an orbit drag is not a pick) picks.
    def _on_press(self, event) -> None:
        self._press = tuple(event.pos[:2]) if event.button == 1 else None
        self._framed = False  # an orbit or a zoom may follow: the camera is the user's now

    def _on_release(self, event) -> None:
        if not self.picking or self._press is None or event.button != 1:
            return
        x, y = event.pos[:2]
        if abs(x - self._press[0]) + abs(y - self._press[1]) <= 3:
            vertex = self.pick(x, y)
            if vertex is not None:
                self.vertexPicked.emit(vertex)
        self._press = None

    def closeEvent(self, event) -> None:
        self._frame_timer.stop()
        self._settle_timer.stop()
        self.canvas.close()
        super().closeEvent(event)
