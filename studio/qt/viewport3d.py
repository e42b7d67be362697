"""The 3D viewport: the animated head at the playhead, orbit camera, shading modes, keypoints,
and vertex picking to assign keypoints on a custom mesh.

A thin Qt widget around :class:`studio.qt.mesh_scene.MeshScene` (the same scene the headless
renders use): ``set_head`` takes an :class:`~studio.render.mesh.animate.AnimatedHead`,
``show_frame`` a motion frame (74,). Dragging with the left button orbits (vispy's turntable
camera), the wheel zooms; the key light follows the camera. With picking on, a click emits
``vertexPicked(vertex_id)`` — the studio uses it to assign the keypoint selected in the inspector.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from studio.qt.mesh_scene import BACKGROUND, Camera, MeshScene, scene_basis


@cache
def _qt_app():
    """vispy's PySide6 application — named explicitly, since a headless render in the same
    process may have made EGL vispy's default."""
    from vispy import app

    return app.Application("pyside6")


class Viewport3D(QWidget):
    """The 3D view of one animated head."""

    vertexPicked = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, size: tuple[int, int] = (480, 480)):
        super().__init__(parent)
        from vispy import scene

        self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor=BACKGROUND, size=size, app=_qt_app())
        self.canvas.create_native()
        self.canvas.native.setParent(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas.native)
        self.head = None
        self.scene: MeshScene | None = None
        self.picking = False
        self.show_keypoints = True
        self._basis = np.eye(3, dtype=np.float32)
        self._vertices: np.ndarray | None = None  # the shown frame, scene coordinates
        self._press: tuple[float, float] | None = None
        self.canvas.events.mouse_press.connect(self._on_press)
        self.canvas.events.mouse_release.connect(self._on_release)
        self.canvas.events.draw.connect(lambda event: self.scene and self.scene.light_from_camera())

    def set_head(self, head, shading: str = "smooth") -> None:
        """Shows ``head`` (an AnimatedHead) at rest, framed from the front."""
        if self.scene is not None:
            self.scene.view.parent = None
        self.head = head
        self._basis = scene_basis(head.toward_viewer, head.up)
        rest = np.asarray(head.rest, dtype=np.float32) @ self._basis.T
        textured = head.texture is not None and head.uv is not None and shading == "smooth"
        self.scene = MeshScene(self.canvas, rest, head.faces, shading=shading,
                               uv=head.uv if textured else None, texture=head.texture if textured else None)
        self.scene.set_camera(Camera.framing(rest))
        self._show(rest)

    def show_frame(self, frame: np.ndarray) -> None:
        """The head deformed by one motion frame (74,)."""
        if self.head is None:
            return
        vertices = self.head.deform(np.asarray(frame, dtype=np.float64)[None])[0]
        self._show(np.asarray(vertices, dtype=np.float32) @ self._basis.T)

    def set_shading(self, shading: str) -> None:
        if self.scene is not None:
            self.scene.set_shading(shading)

    def set_keypoints_visible(self, visible: bool) -> None:
        self.show_keypoints = bool(visible)
        if self._vertices is not None:
            self._show(self._vertices)

    def _show(self, vertices: np.ndarray) -> None:
        self._vertices = vertices
        self.scene.set_vertices(vertices)
        keys = np.stack([vertices[list(ids)].mean(0) for ids in self.head.keypoint_vertices])
        self.scene.set_markers(keys if self.show_keypoints else None)
        self.canvas.update()

    def keypoints_on_screen(self) -> np.ndarray:
        """Where the 21 keypoints are drawn, canvas pixels (21, 2)."""
        keys = np.stack([self._vertices[list(ids)].mean(0) for ids in self.head.keypoint_vertices])
        return self.scene.to_canvas(keys)

    def pick(self, x: float, y: float) -> int | None:
        """The vertex id under canvas pixel (x, y), or None."""
        if self.scene is None or self._vertices is None:
            return None
        return self.scene.pick(self._vertices, x, y)

    def render(self) -> np.ndarray:
        """The current picture (H × W × 3 uint8 RGB)."""
        return self.scene.render() if self.scene is not None else np.zeros((1, 1, 3), np.uint8)

    # A click (press and release within a few pixels, so an orbit drag is not a pick) picks.
    def _on_press(self, event) -> None:
        self._press = tuple(event.pos[:2]) if event.button == 1 else None

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
        self.canvas.close()
        super().closeEvent(event)
