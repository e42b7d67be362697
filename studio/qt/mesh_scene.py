"""The 3D scene of an animated head mesh (vispy): shared by the 3D viewport and headless renders.

:class:`MeshScene` puts one mesh into a vispy canvas — shaded (smooth or flat), wireframe, or
textured (the portrait's face mesh, with the photo) — with a light that follows the camera, and
takes new vertex positions per frame. :func:`render_mesh_frames` renders a mesh sequence with
no display at all: vispy's EGL backend on Mesa's surfaceless platform (software GL, llvmpipe) when
no GUI application has chosen a backend yet, so it runs on servers and in CI. EGL and Qt's GL
do not mix in one process: headless renders run in processes of their own (the CLI, the
studio's job processes: :func:`render_head_video_job` is the window's "3D render" export), the 3D
viewport in the window's.

Views: ``"front"`` looks at the face (the mesh's own face frame gives front and up), and
``"turntable"`` swings the camera around the head once over the clip.

Per frame only the vertex positions change: :meth:`MeshScene.set_vertices` writes the new corner
positions and normals straight into the mesh's vertex buffers (vispy's ``set_data`` would rebuild
the mesh data, recompute the normals and the wireframe's barycentric coordinates, and recompile
the shaders — 10 ms and more per frame with software OpenGL). :meth:`MeshScene.render_rgba`
renders into a framebuffer kept for its size, at the canvas's size or smaller (the 3D viewport
draws smaller while the head moves).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.jobs import Cancel, HeadRequest, Progress, animated_head, deform_frames

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
                fov: float = 25.0, margin: float = 0.95, aspect: float = 1.0) -> Camera:
        """A camera that shows all of ``vertices`` (V, 3) from ``toward_viewer`` in a picture
        ``aspect`` (width / height) wide; ``fov`` is vertical."""
        v = np.asarray(vertices, dtype=np.float64)
        lo, hi = v.min(0), v.max(0)
        centre = 0.5 * (lo + hi)
        radius = 0.5 * float(np.linalg.norm(hi - lo)) or 1.0
        half = np.radians(fov) / 2.0
        if aspect < 1.0:  # a tall picture: the horizontal field is the narrower one
            half = np.arctan(np.tan(half) * aspect)
        distance = margin * radius / np.sin(half)
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
        self.wireframe = WireframeFilter(color=(0.9, 0.9, 0.9, 1.0), width=1.0, wireframe_only=True,
                                         enabled=shading == "wireframe")
        self.mesh.attach(self.wireframe)
        self.shading_mode = shading
        self.markers = scene.visuals.Markers(parent=self.view.scene)
        self.markers.set_data(v[:1])  # vispy needs data to compute bounds, shown or not
        self.markers.visible = False
        self.markers.set_gl_state("translucent", depth_test=False)  # keypoints show through the face
        self._framebuffers: dict[tuple[int, int], object] = {}  # by (width, height), the latest two
        self._set_topology(len(v))
        self.textured = texture is not None and uv is not None
        if self.textured:
            tex = np.ascontiguousarray(texture[::-1])  # image rows top-down → GL bottom-up
            coords = np.ascontiguousarray(np.c_[uv[:, 0], 1.0 - uv[:, 1]], dtype=np.float32)
            self.mesh.attach(TextureFilter(tex, coords))
            self.mesh.color = (1.0, 1.0, 1.0, 1.0)
        self._camera: Camera | None = None

    def set_mesh(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        """Another untextured mesh in the same visual (its shaders stay compiled)."""
        if self.textured:
            raise ValueError("a textured scene keeps its mesh: make a new MeshScene for another one")
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        self._set_topology(len(v))
        self.mesh.set_data(vertices=v, faces=self.faces, color=self.mesh.color)

    def _set_topology(self, num_vertices: int) -> None:
        """After new faces: the next :meth:`set_vertices` goes through vispy's ``set_data``."""
        self._num_vertices = num_vertices
        self._corners = self.faces.ravel().astype(np.intp)  # the vertex of each triangle corner
        self._incidence = None  # vertices × faces, built on the first fast frame
        self._drawn = False  # vispy has not drawn the last ``set_data`` yet: its buffers are not final

    def set_vertices(self, vertices: np.ndarray) -> None:
        """New positions (V, 3) of the same mesh. Once vispy has drawn the mesh, only the corner
        positions and the vertex normals are computed (vectorized) and written into its vertex
        buffers; the first frame of a mesh goes through vispy's ``set_data``."""
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        buffers = _mesh_buffers(self.mesh, self.shading)
        if not self._drawn or buffers is None or len(v) != self._num_vertices:
            self._set_topology(len(v))
            self.mesh.set_data(vertices=v, faces=self.faces, color=self.mesh.color)
            return
        positions, normals = buffers
        if self._incidence is None:
            self._incidence = face_incidence(self.faces, len(v))
        positions.set_data(v[self._corners])
        normals.set_data(vertex_normals(v, self.faces, self._incidence)[self._corners])
        self.mesh.update()

    def set_shading(self, shading: str) -> None:
        """``"smooth"``, ``"flat"`` or ``"wireframe"``, on the fly."""
        if shading not in SHADINGS:
            raise ValueError(f"unknown shading {shading!r}: expected one of {', '.join(SHADINGS)}")
        self.shading.shading = "flat" if shading == "flat" else "smooth"
        self.wireframe.enabled = shading == "wireframe"
        self.shading_mode = shading
        self.mesh.update()

    def set_markers(self, points: np.ndarray | None, color=(0.2, 0.9, 1.0, 1.0), size: float = 8.0) -> None:
        """Dots at ``points`` (K, 3) drawn over the mesh (the keypoints), or none."""
        if points is None or len(points) == 0:
            self.markers.visible = False
            return
        self.markers.set_data(np.ascontiguousarray(points, dtype=np.float32), face_color=color,
                              edge_color=(0, 0, 0, 1), size=size)
        self.markers.visible = True

    def eye(self) -> np.ndarray:
        """Where the camera is, in scene coordinates."""
        cam = self.view.camera
        az, el = np.radians(cam.azimuth), np.radians(cam.elevation)
        toward = np.array([-np.cos(el) * np.cos(az), np.sin(el), np.cos(el) * np.sin(az)])
        return np.asarray(cam.center, dtype=np.float64) + cam.distance * toward

    def light_from_camera(self) -> None:
        """Puts the key light above and to the right of wherever the camera now is."""
        d = _unit(self.eye() - np.asarray(self.view.camera.center, dtype=np.float64))
        up = np.array([0.0, 1.0, 0.0])
        right = np.cross(up, d)
        right = right / (np.linalg.norm(right) or 1.0)
        self.shading.light_dir = tuple(-(d + 0.45 * up + 0.35 * right))

    def to_canvas(self, points: np.ndarray) -> np.ndarray:
        """Scene points (N, 3) → canvas pixels (N, 2) (logical pixels, y down)."""
        transform = self.view.scene.node_transform(self.canvas.scene)
        mapped = transform.map(np.asarray(points, dtype=np.float64))
        return mapped[:, :2] / mapped[:, 3:4]

    def pick(self, vertices: np.ndarray, x: float, y: float, radius: float = 10.0) -> int | None:
        """The vertex under canvas pixel (x, y): of the vertices within ``radius`` pixels, those
        on the surface nearest the camera (so the front of the head wins over the back), and of
        them the one nearest the pixel; None if none."""
        v = np.asarray(vertices, dtype=np.float64)
        screen = ((self.to_canvas(v) - (x, y)) ** 2).sum(1)
        near = np.flatnonzero(screen <= radius ** 2)
        if not len(near):
            return None
        depth = np.sqrt(((v[near] - self.eye()) ** 2).sum(1))
        front = near[depth <= depth.min() + 0.03 * self.view.camera.distance]
        return int(front[np.argmin(screen[front])])

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

    def render(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The current picture as H × W × 3 uint8 RGB (``size``: see :meth:`render_rgba`)."""
        return np.ascontiguousarray(self.render_rgba(size)[..., :3])

    def render_rgba(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The current picture as H × W × 4 uint8 RGBA, top row first, C-contiguous: the whole
        canvas rendered ``size`` (width, height) pixels large — by default its physical size; a
        smaller picture is the same view with fewer pixels (vispy scales the keypoint markers with
        it). The framebuffers of the latest two sizes are kept."""
        canvas = self.canvas
        physical = tuple(int(n) for n in canvas.physical_size)
        size = physical if size is None else (max(int(size[0]), 1), max(int(size[1]), 1))
        framebuffer = self._framebuffer(size)
        canvas.set_current()
        canvas.push_fbo(framebuffer, (0, 0), physical)
        try:
            if size != physical:
                # vispy maps the canvas onto a framebuffer of the region's own size: map it onto this one
                canvas.transforms.configure(viewport=(0, 0, *size), fbo_size=size, fbo_rect=(0, 0, *physical))
            canvas.context.clear(color=canvas.bgcolor, depth=True)
            canvas.draw_visual(canvas.scene)
            pixels = framebuffer.read(alpha=True)  # bottom row first, as a flipped view
        finally:
            canvas.pop_fbo()
        self._drawn = True
        return np.ascontiguousarray(pixels)

    def _framebuffer(self, size: tuple[int, int]):
        from vispy import gloo

        framebuffer = self._framebuffers.pop(size, None)
        if framebuffer is None:
            shape = (size[1], size[0])
            framebuffer = gloo.FrameBuffer(color=gloo.RenderBuffer(shape), depth=gloo.RenderBuffer(shape))
        self._framebuffers[size] = framebuffer  # the newest last
        while len(self._framebuffers) > 2:
            self._framebuffers.pop(next(iter(self._framebuffers))).delete()
        return framebuffer


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
    v = v @ scene_basis(toward_viewer, up).T
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


def scene_basis(toward_viewer=(0.0, 0.0, 1.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Rows: the mesh directions that become the scene's x (right), y (up) and z (toward the
    viewer); ``vertices @ scene_basis(...).T`` turns a mesh to face the front camera."""
    toward = _unit(toward_viewer)
    right = _unit(np.cross(_unit(up), toward))
    return np.stack([right, np.cross(toward, right), toward]).astype(np.float32)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("a direction of zero length")
    return v / n


def face_incidence(faces: np.ndarray, num_vertices: int):
    """The vertices × faces incidence matrix (sparse): row v has a 1 for each face around v."""
    from scipy.sparse import csr_matrix

    faces = np.asarray(faces, dtype=np.intp)
    rows = faces.ravel()
    columns = np.repeat(np.arange(len(faces)), faces.shape[1])
    return csr_matrix((np.ones(len(rows), np.float32), (rows, columns)), shape=(num_vertices, len(faces)))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence=None) -> np.ndarray:
    """Unit vertex normals (V, 3) float32: the sum of the faces' area-weighted normals around each
    vertex, normalized (vispy's rule), as one sparse product (``incidence``: :func:`face_incidence`,
    built here when not given); a vertex in no face gets (0, 0, 0)."""
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces, dtype=np.intp)
    if incidence is None:
        incidence = face_incidence(f, len(v))
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    normals = np.asarray(incidence @ np.cross(b - a, c - a), dtype=np.float32)
    length = np.sqrt(np.einsum("ij,ij->i", normals, normals))
    return normals / np.where(length > 0, length, 1.0)[:, None]


def _mesh_buffers(mesh, shading) -> tuple | None:
    """The vertex buffers of a vispy mesh that hold its corner positions and its shading filter's
    corner normals (vispy's own attributes; None where a vispy version names them otherwise, and
    the scene then goes through ``set_data``)."""
    from vispy.gloo import VertexBuffer

    positions, normals = getattr(mesh, "_vertices", None), getattr(shading, "_normals", None)
    if isinstance(positions, VertexBuffer) and isinstance(normals, VertexBuffer):
        return positions, normals
    return None


@dataclass(frozen=True)
class HeadVideoRequest:
    """The head of ``head`` animated by ``values`` (T, 74) at ``fps``, rendered headless into an
    MP4 at ``path`` (``size`` pixels square, ``view``, ``shading``) with ``audio`` (a sound file,
    or None) from ``audio_start`` seconds on."""

    head: HeadRequest
    values: np.ndarray = field(repr=False)
    fps: float
    path: Path
    audio: Path | None = None
    audio_start: float = 0.0
    view: str = "front"
    shading: str = "smooth"
    size: int = 512
    crf: int = 18
    preset: str = "veryfast"


def render_head_video_job(request: HeadVideoRequest, *, progress: Progress, cancel: Cancel) -> Path:
    """Renders the animated head into an MP4 (EGL, no display): run it in a process of its own
    (:func:`studio.jobs.run_in_process`), never in the window's, whose Qt owns OpenGL there."""
    import tempfile

    from studio.io.video import write_mp4
    from studio.jobs import trimmed_audio

    if request.view not in VIEWS or request.shading not in SHADINGS:
        raise ValueError(f"unknown view {request.view!r} or shading {request.shading!r}")
    head = animated_head(request.head)
    vertices = deform_frames(head, request.values, progress=lambda f: progress(0.15 * f), cancel=cancel)
    textured = request.shading == "smooth" and head.texture is not None and head.uv is not None \
        and len(head.uv) == len(head.rest)
    frames = render_mesh_frames(vertices, head.faces, size=(request.size, request.size), view=request.view,
                                shading=request.shading, toward_viewer=head.toward_viewer, up=head.up,
                                uv=head.uv if textured else None, texture=head.texture if textured else None)
    with tempfile.TemporaryDirectory(prefix="studio-render-") as folder:
        audio = request.audio
        if audio is not None and request.audio_start > 0.0:
            audio = trimmed_audio(audio, request.audio_start, len(vertices) / request.fps, Path(folder))
        write_mp4(request.path, frames, fps=request.fps, audio=audio, num_frames=len(vertices),
                  progress=lambda f: progress(0.15 + 0.85 * f), cancel=cancel, crf=request.crf,
                  preset=request.preset)
    return Path(request.path)
