"""The 3D scene of an animated head mesh (vispy): shared by the 3D viewport and headless renders.

:class:`MeshScene` puts one mesh into a vispy canvas — shaded (smooth or flat), wireframe, or
textured (the portrait's face mesh, with the photo) — with a light that follows the camera, and
takes new vertex positions per frame. :func:`render_mesh_frames` renders a mesh sequence with
no display at all: vispy's EGL backend on Mesa's surfaceless platform (software GL, llvmpipe) when
no GUI application has chosen a backend yet, so it runs on servers and in CI.

Views: ``"front"`` looks at the face (the mesh's own face frame gives front and up), and
``"turntable"`` swings the camera around the head once over the clip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

VIEWS = ("front", "turntable")
SHADINGS = ("smooth", "flat", "wireframe")
BACKGROUND = (0.16, 0.16, 0.18, 1.0)
SKIN = (0.82, 0.68, 0.6, 1.0)

_app_ready = False


def use_offscreen_backend() -> None:
    """Chooses vispy's EGL backend (surfaceless: no display needed) unless an application
    backend (the studio's Qt window) is already in use."""
    global _app_ready
    if _app_ready:
        return
    import vispy
    from vispy.app import _default_app

    if _default_app.default_app is None:
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
        vispy.use(app="egl")
    _app_ready = True


@dataclass(frozen=True)
class Camera:
    """Where the camera looks from: the target point, the direction toward the viewer (3,), the
    up direction (3,), the distance and the vertical field of view (degrees)."""

    target: np.ndarray
    toward_viewer: np.ndarray
    up: np.ndarray
    distance: float
    fov: float = 25.0

    @classmethod
    def framing(cls, vertices: np.ndarray, toward_viewer=(0.0, 0.0, 1.0), up=(0.0, 1.0, 0.0),
                fov: float = 25.0, margin: float = 0.95) -> Camera:
        """A camera that shows all of ``vertices`` (V, 3) from ``toward_viewer``."""
        v = np.asarray(vertices, dtype=np.float64)
        lo, hi = v.min(0), v.max(0)
        centre = 0.5 * (lo + hi)
        radius = 0.5 * float(np.linalg.norm(hi - lo)) or 1.0
        distance = margin * radius / np.sin(np.radians(fov) / 2.0)
        return cls(centre, _unit(toward_viewer), _unit(up), distance, fov)

    def orbit(self, degrees: float) -> Camera:
        """This camera swung about its up axis by ``degrees``."""
        a = np.radians(degrees)
        k = self.up
        v = self.toward_viewer
        rotated = v * np.cos(a) + np.cross(k, v) * np.sin(a) + k * (k @ v) * (1.0 - np.cos(a))
        return Camera(self.target, _unit(rotated), self.up, self.distance, self.fov)


class MeshScene:
    """One mesh in a vispy ``SceneCanvas``: ``set_vertices`` per frame, ``set_camera`` to look."""

    def __init__(self, canvas, vertices: np.ndarray, faces: np.ndarray, *, shading: str = "smooth",
                 uv: np.ndarray | None = None, texture: np.ndarray | None = None, color=SKIN):
        from vispy import scene
        from vispy.visuals.filters import ShadingFilter, TextureFilter, WireframeFilter

        if shading not in SHADINGS:
            raise ValueError(f"unknown shading {shading!r}: expected one of {', '.join(SHADINGS)}")
        self.canvas = canvas
        self.view = canvas.central_widget.add_view()
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        self.mesh = scene.visuals.Mesh(vertices=v, faces=self.faces, color=color, parent=self.view.scene)
        self.shading = ShadingFilter(shading="flat" if shading == "flat" else "smooth",
                                     ambient_light=(1, 1, 1, 0.35), diffuse_light=(1, 1, 1, 0.75),
                                     specular_light=(1, 1, 1, 0.12), shininess=30)
        self.mesh.attach(self.shading)
        if shading == "wireframe":
            self.mesh.attach(WireframeFilter(color=(0.9, 0.9, 0.9, 1.0), width=1.0, wireframe_only=True))
        if texture is not None and uv is not None:
            tex = np.ascontiguousarray(texture[::-1])  # image rows top-down → GL bottom-up
            coords = np.ascontiguousarray(np.c_[uv[:, 0], 1.0 - uv[:, 1]], dtype=np.float32)
            self.mesh.attach(TextureFilter(tex, coords))
            self.mesh.color = (1.0, 1.0, 1.0, 1.0)
        self._camera: Camera | None = None

    def set_vertices(self, vertices: np.ndarray) -> None:
        self.mesh.set_data(vertices=np.ascontiguousarray(vertices, dtype=np.float32), faces=self.faces,
                           color=self.mesh.color)

    def set_camera(self, camera: Camera) -> None:
        """Looks at ``camera.target`` from ``camera.toward_viewer`` (scene axes: y up)."""
        from vispy import scene

        if not isinstance(self.view.camera, scene.TurntableCamera):
            self.view.camera = scene.TurntableCamera(up="+y", fov=camera.fov)
        d = camera.toward_viewer
        cam = self.view.camera
        cam.fov = camera.fov
        cam.center = tuple(float(c) for c in camera.target)
        cam.distance = float(camera.distance)
        cam.elevation = float(np.degrees(np.arcsin(np.clip(d[1], -1.0, 1.0))))
        cam.azimuth = float(np.degrees(np.arctan2(d[2], -d[0])))  # vispy: 0° looks from −x, 90° from +z
        # A key light from above and to the right of the camera, turning with it (vispy's
        # ``light_dir`` is the direction the light travels, in scene coordinates).
        right = _unit(np.cross(camera.up, d))
        self.shading.light_dir = tuple(-(d + 0.45 * camera.up + 0.35 * right))
        self._camera = camera

    def render(self) -> np.ndarray:
        """The current picture as H × W × 3 uint8 RGB."""
        return np.ascontiguousarray(self.canvas.render(alpha=False)[..., :3])


def render_mesh_frames(vertices: np.ndarray, faces: np.ndarray, *, size: tuple[int, int] = (512, 512),
                       view: str = "front", shading: str = "smooth", toward_viewer=(0.0, 0.0, 1.0),
                       up=(0.0, 1.0, 0.0), uv: np.ndarray | None = None, texture: np.ndarray | None = None,
                       turns: float = 1.0) -> Iterator[np.ndarray]:
    """Renders a mesh sequence (T, V, 3) with no display: yields T pictures H × W × 3 uint8 RGB.

    ``view`` is ``"front"`` (looking along −``toward_viewer``) or ``"turntable"`` (``turns`` full
    circles about ``up`` over the clip). The camera frames the whole sequence and stays put."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: expected one of {', '.join(VIEWS)}")
    v = np.asarray(vertices, dtype=np.float32)
    if v.ndim != 3 or v.shape[-1] != 3 or len(v) == 0:
        raise ValueError(f"expected a mesh sequence (T, V, 3), got {v.shape}")
    # Into the scene's frame: x to the right, y up, z toward the viewer.
    toward = _unit(toward_viewer)
    right = _unit(np.cross(_unit(up), toward))
    basis = np.stack([right, np.cross(toward, right), toward]).astype(np.float32)
    v = v @ basis.T
    use_offscreen_backend()
    from vispy import scene

    width, height = size
    canvas = scene.SceneCanvas(size=(int(width), int(height)), show=False, bgcolor=BACKGROUND)
    try:
        scene_ = MeshScene(canvas, v[0], faces, shading=shading, uv=uv, texture=texture)
        step = max(1, len(v) // 64)
        camera = Camera.framing(v[::step].reshape(-1, 3))
        for t in range(len(v)):
            scene_.set_vertices(v[t])
            angle = 360.0 * turns * t / len(v) if view == "turntable" else 0.0
            scene_.set_camera(camera.orbit(angle))
            yield scene_.render()
    finally:
        canvas.close()


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("a direction of zero length")
    return v / n
