"""The studio's long work as plain functions of immutable requests, runnable in a child process.

Every job here has the calling convention of the engines it wraps —
``fn(request, *, progress, cancel) -> result`` — and takes and returns picklable values (paths,
numpy arrays, frozen dataclasses), never widgets. The desktop application runs them through
:func:`run_in_process`, a *generator*: each ``yield`` is a progress report (a fraction, or None
for "no news") and a cancel point — ``close()`` the generator to cancel — and the job's result is
its return value. Its worker thread only waits on a pipe, so the GUI thread keeps the GIL. A job
that streams (``publish=True``) also gets ``publish(value)``: each value comes out of the generator
at once as a :class:`Partial` — the neural generator's chunks reach the window this way while the
rest is still being sampled.

The jobs: loading a portrait, audio, a transcript or a head mesh (:func:`load_head`: the mesh with
its keypoints and, when all 21 are known, the :class:`~studio.render.mesh.animate.AnimatedHead`);
generation (:func:`generate_job`, streaming); the exports — the portrait video or PNG frames
(:func:`export_portrait_video_job`), a mesh sequence (:func:`export_mesh_job`), a motion file or
ARKit curves (:func:`export_motion_job`). The headless 3D render of a head lives beside the 3D
scene it draws (``studio.qt.mesh_scene.render_head_video_job``, EGL in its own child process).

Why a process and not just a thread: the speech recognizer (pocketsphinx) holds the GIL for a
quarter of a second at a time, so in a thread of the GUI process it would freeze the window
(measured with ``studio.generate.pipeline.generate`` in a thread beside a 5 ms sleep loop: the
loop was up to 257 ms late). A child process also leaves nothing behind when a job crashes, and a
job that ignores its cancel request is stopped after a grace period.

No Qt here (an import-linter contract): the child processes never load it.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.motion_file import Motion
from studio.core.session import MeshInfo

Progress = Callable[[float], None]
Cancel = Callable[[], bool]
Publish = Callable[[Any], None]

#: Seconds between two progress messages of a child (and between two "no news" yields).
PROGRESS_INTERVAL = 0.05
#: Modules the fork server imports once, so that children start with them loaded.
FORKSERVER_PRELOAD = ["studio.jobs", "numpy", "scipy.spatial", "cv2", "av"]
#: Seconds a cancelled child gets to clean up (delete partial files) before it is killed.
CANCEL_GRACE = 10.0
#: How much nicer than the window a job's child process runs (POSIX ``nice``): on a busy machine
#: the GUI thread gets the CPU first, so the window stays responsive while a job computes.
CHILD_NICENESS = 4
#: Motion frames deformed at once by the mesh exports (between two progress reports and cancel points).
DEFORM_BATCH = 256


class JobFailed(Exception):
    """A job raised: ``kind`` is the exception's type name, ``details`` its traceback."""

    def __init__(self, message: str, kind: str = "", details: str = ""):
        super().__init__(message)
        self.kind = kind
        self.details = details


class JobCancelled(Exception):
    """The job stopped because it was asked to."""


@dataclass(frozen=True)
class Partial:
    """A piece of a job's result that comes out before the job ends (``publish(value)`` in the
    child); :func:`run_in_process` yields it as it arrives."""

    value: Any = field(repr=False)


# --- the jobs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PortraitFit:
    """A loaded portrait: the picture and its face fit (None when the detector found no face)."""

    image: np.ndarray = field(repr=False)
    fit: Any = field(repr=False)  # studio.render.face_fit.FaceFit | None
    message: str = ""  # why there is no fit


def fit_portrait_job(path: str, *, progress: Progress, cancel: Cancel) -> PortraitFit:
    """Loads a photo and fits its largest face (MediaPipe FaceMesh)."""
    from studio.render.face_fit import FaceNotFoundError, fit_portrait, load_image

    image = load_image(path)
    progress(0.3)
    try:
        fit = fit_portrait(image, name=str(path))
    except FaceNotFoundError as exc:
        return PortraitFit(image, None, str(exc))
    return PortraitFit(image, fit)


def decode_audio_job(path: str, *, progress: Progress, cancel: Cancel):
    """Decodes speech to 16 kHz mono (:class:`studio.audio.decode.Audio`); silence is refused."""
    from studio.audio.decode import load_audio

    return load_audio(path, require_sound=True)


def read_transcript_job(path: str, *, progress: Progress, cancel: Cancel) -> str:
    """Reads a plain-text transcript (UTF-8 or UTF-16 with a BOM; binary or empty files are refused)."""
    from studio.audio.phonemes import read_transcript

    return read_transcript(path)


def load_mesh_job(path: str, *, progress: Progress, cancel: Cancel) -> MeshInfo:
    """Reads a head mesh through the registry's mesh importer; returns its size."""
    from studio.plugins import default_registry

    vertices, faces = default_registry().importer_for(path, kind="mesh").load(path)
    return MeshInfo(str(path), len(vertices), len(faces))


@dataclass(frozen=True)
class MotionExportRequest:
    """A motion (or the ARKit curves derived from it) written by the registry's exporter
    ``exporter`` — or, when that is empty, the one for the file's extension (``kind``:
    ``"motion"`` or ``"curves"``)."""

    motion: Motion = field(repr=False)
    path: Path
    kind: str = "motion"
    options: dict = field(default_factory=dict)
    exporter: str = ""


def export_motion_job(request: MotionExportRequest, *, progress: Progress, cancel: Cancel) -> Path:
    from studio.plugins import default_registry

    registry = default_registry()
    if request.exporter:
        exporter = registry.exporter(request.exporter)
        if not str(request.path).lower().endswith(exporter.extensions):
            raise ValueError(f"{request.path}: the {exporter.label} exporter writes "
                             f"{', '.join(exporter.extensions)} files")
    else:
        exporter = registry.exporter_for(request.path, kind=request.kind)
    exporter.export(request.motion, request.path, **request.options)
    progress(1.0)
    return Path(request.path)


def inference_device_job(_request: None, *, progress: Progress, cancel: Cancel) -> str:
    """Where inference runs, in words: the torch device ``"auto"`` resolves to (CUDA only when a
    tensor operation on it works) and, for a GPU, its name."""
    from studio.render.portrait_torch import resolve_device

    return device_text(str(resolve_device("auto")))


def device_text(device: str) -> str:
    """A torch or ONNX Runtime device (``"cpu"``, ``"cuda"``, ``"cuda:0"``) in words, with the
    GPU's name."""
    if not device.startswith("cuda"):
        return "CPU"
    import torch

    index = int(device.split(":")[1]) if ":" in device else 0
    return f"CUDA ({torch.cuda.get_device_name(index)})"


# --- generation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MotionPiece:
    """Frames ``start …`` (n, 74) of a generation, final as they are (published while it runs)."""

    start: int
    values: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class GenerateOutcome:
    """A generation's result and where its motion stage ran (``"numpy (CPU)"`` for the rig)."""

    result: Any = field(repr=False)  # studio.generate.pipeline.GenerateResult
    device: str


def generate_job(request, *, progress: Progress, cancel: Cancel, publish: Publish | None = None) -> GenerateOutcome:
    """:func:`studio.generate.pipeline.generate` with the neural generator's chunks published as
    :class:`MotionPiece` as they settle (the rig makes every frame at once: progress only)."""
    from studio.generate.pipeline import generate

    def on_chunk(start: int, values: np.ndarray) -> None:
        publish(MotionPiece(int(start), np.asarray(values, dtype=np.float32)))

    result = generate(request, progress=progress, cancel=cancel, on_chunk=on_chunk if publish else None)
    device = "numpy (CPU)"
    if request.generator == "neural":
        from studio.generate.neural.runner import open_runner

        device = device_text(open_runner(request.model, request.device).device)  # the runner it used (cached)
    return GenerateOutcome(result, device)


# --- head meshes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeadRequest:
    """A head mesh to show or animate: its file and the keypoint vertices assigned by hand in the
    document (:attr:`studio.core.document.Project.mesh_keypoints`; None: none)."""

    path: str
    assigned: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class LoadedHead:
    """A head mesh as the 3D view and the mesh exports use it.

    ``rest`` (V, 3) and ``faces`` are the mesh as shown: the animated head's (whose lips the
    keypoint deformer may have cut open: ids from ``file_vertices`` on are copies of the ids in
    ``copies``) or, while its keypoints are incomplete, the file's. ``keypoint_vertices`` has 21
    entries — the mesh's own keypoint vertices (FLAME topology) overridden by the assigned ones,
    None where unknown — and ``head`` is the :class:`~studio.render.mesh.animate.AnimatedHead`
    once all 21 are known (else None, and ``message`` says why). ``kind``: ``"flame"`` (a FLAME
    model file: its keypoints are FLAME's), ``"template"`` (FLAME topology) or ``"custom"``."""

    request: HeadRequest
    name: str
    kind: str
    rest: np.ndarray = field(repr=False)
    faces: np.ndarray = field(repr=False)
    keypoint_vertices: tuple = field(repr=False)
    file_vertices: int
    head: Any = field(default=None, repr=False)
    message: str = ""
    copies: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    uv: np.ndarray | None = field(default=None, repr=False)
    texture: np.ndarray | None = field(default=None, repr=False)
    toward_viewer: tuple[float, float, float] = (0.0, 0.0, 1.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)

    @property
    def editable(self) -> bool:
        """Whether keypoints can be assigned by hand (not on a FLAME model file)."""
        return self.kind != "flame"

    @property
    def assigned_count(self) -> int:
        return sum(ids is not None for ids in self.keypoint_vertices)

    def file_vertex(self, vertex: int) -> int:
        """The file's vertex id for a vertex id of the shown mesh (a lip-cut copy → its original)."""
        vertex = int(vertex)
        return vertex if vertex < self.file_vertices else int(self.copies[vertex - self.file_vertices])


def merged_keypoints(own, assigned) -> tuple:
    """21 keypoint vertex groups: the assigned vertex where there is one, else the mesh's own
    group (None where neither knows)."""
    from studio.core.keypoints import NUM_KEYPOINTS

    out = []
    for i in range(NUM_KEYPOINTS):
        if assigned is not None and assigned[i] is not None:
            out.append((int(assigned[i]),))
        elif own is not None:
            out.append(tuple(int(v) for v in own[i]))
        else:
            out.append(None)
    return tuple(out)


def missing_message(name: str, keys) -> str:
    """What a mesh with keypoints not all known still needs, in words."""
    missing = sum(ids is None for ids in keys)
    if missing == len(keys):
        have = "none of its 21 keypoints is assigned yet"
    else:
        have = f"{missing} of its 21 keypoints {'is' if missing == 1 else 'are'} not assigned yet"
    return f"{name}: {have}; pick them in the 3D view (Assign keypoints)"


def load_head(request: HeadRequest) -> LoadedHead:
    """Reads a head mesh (a FLAME model, a FLAME-topology template or any OBJ/PLY/GLB/glTF/STL
    head) and animates it when its 21 keypoints are known (see :class:`LoadedHead`). Raises
    ValueError naming the file when the file itself cannot be used; keypoints that make no face
    (two on one vertex) leave ``head`` None with the reason in ``message``."""
    from studio.render.mesh.animate import FLAME_SUFFIXES, load_animated_head
    from studio.render.mesh.loaders import load_head_mesh, write_keypoint_vertices_json

    path = Path(request.path)
    if path.suffix.lower() in FLAME_SUFFIXES:
        head = load_animated_head(path)
        keys = tuple(tuple(int(v) for v in ids) for ids in head.keypoint_vertices)
        return LoadedHead(request, head.name, "flame", head.rest, head.faces, keys, len(head.rest), head,
                          toward_viewer=head.toward_viewer, up=head.up)
    mesh = load_head_mesh(path)
    kind = "template" if mesh.topology == "flame" else "custom"
    keys = merged_keypoints(mesh.keypoint_vertices, request.assigned)
    shown = {"request": request, "name": path.stem, "kind": kind, "rest": mesh.vertices, "faces": mesh.faces,
             "keypoint_vertices": keys, "file_vertices": len(mesh.vertices), "uv": mesh.uv, "texture": mesh.texture}
    if not all(keys):
        return LoadedHead(**shown, message=missing_message(path.name, keys))
    try:
        if mesh.keypoint_vertices is not None and keys == tuple(tuple(ids) for ids in mesh.keypoint_vertices):
            head = load_animated_head(path)
        else:
            with tempfile.TemporaryDirectory(prefix="studio-keypoints-") as folder:
                keypoints = Path(folder) / "keypoints.json"
                write_keypoint_vertices_json(keypoints, keys)
                head = load_animated_head(path, keypoints=keypoints)
    except ValueError as exc:  # the file read fine above: what fails here is the keypoints' face
        return LoadedHead(**shown, message=f"{path.name}: {exc}")
    copies = np.zeros(0, np.int64)
    if len(head.rest) > len(mesh.vertices):  # the deformer cut the lips open: copies of file vertices
        from scipy.spatial import cKDTree

        copies = cKDTree(np.asarray(mesh.vertices, np.float64)).query(
            np.asarray(head.rest[len(mesh.vertices):], np.float64))[1].astype(np.int64)
    uv = head.uv if head.uv is not None and len(head.uv) == len(head.rest) else None
    return LoadedHead(request, path.stem, kind, head.rest, head.faces,
                      tuple(tuple(int(v) for v in ids) for ids in head.keypoint_vertices), len(mesh.vertices),
                      head, copies=copies, uv=uv, texture=head.texture if uv is not None else None,
                      toward_viewer=head.toward_viewer, up=head.up)


def load_head_job(request: HeadRequest, *, progress: Progress, cancel: Cancel) -> LoadedHead:
    """:func:`load_head` as a job."""
    return load_head(request)


def animated_head(request: HeadRequest):
    """The :class:`~studio.render.mesh.animate.AnimatedHead` of a request; ValueError saying what
    is missing when its keypoints are not all known."""
    loaded = load_head(request)
    if loaded.head is None:
        raise ValueError(loaded.message)
    return loaded.head


def deform_frames(head, values: np.ndarray, *, progress: Progress, cancel: Cancel, share: float = 1.0) -> np.ndarray:
    """The head's vertices (T, V, 3) float32 for motion ``values`` (T, 74), deformed in batches of
    :data:`DEFORM_BATCH` frames (progress rises to ``share``; JobCancelled between batches)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty((len(values), len(head.rest), 3), np.float32)
    for start in range(0, len(values), DEFORM_BATCH):
        if cancel():
            raise JobCancelled("cancelled while deforming the head")
        stop = min(start + DEFORM_BATCH, len(values))
        out[start:stop] = head.deform(values[start:stop])
        progress(share * stop / len(values))
    return out


# --- exports ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeshExportRequest:
    """The head animated by ``values`` (T, 74) written as a mesh sequence by the registry's
    exporter ``exporter`` (``mesh_obj``, ``mesh_ply``, ``mesh_npy``, ``mesh_glb``, ``mesh_usd``);
    ``options`` are the exporter's (``max_targets``, ``rigid``, ``meters_per_unit``…);
    ``texture``: write the head's texture coordinates and picture when it has them. An empty
    ``exporter``: the one for the file's extension."""

    head: HeadRequest
    values: np.ndarray = field(repr=False)
    fps: float
    path: Path
    exporter: str = ""
    options: dict = field(default_factory=dict)
    texture: bool = True


def export_mesh_job(request: MeshExportRequest, *, progress: Progress, cancel: Cancel) -> Path:
    """Loads the head, deforms it by every frame and writes the sequence (nothing is left behind
    when cancelled or failed: the exporters write under temporary names)."""
    from studio.plugins import default_registry

    registry = default_registry()
    if not request.exporter:
        exporter = registry.exporter_for(request.path, kind="mesh")
    else:
        exporter = registry.exporter(request.exporter)
        if exporter.kind != "mesh":
            raise ValueError(f"{request.exporter}: not a mesh exporter")
        if not str(request.path).lower().endswith(exporter.extensions):
            raise ValueError(f"{request.path}: the {exporter.label} exporter writes "
                             f"{', '.join(exporter.extensions)} files")
    head = animated_head(request.head)
    progress(0.05)
    vertices = deform_frames(head, request.values, progress=lambda f: progress(0.05 + 0.25 * f), cancel=cancel)
    options = dict(request.options)
    if request.texture and head.uv is not None and len(head.uv) == len(head.rest):
        options["uv"] = head.uv
        if head.texture is not None and exporter.name != "mesh_npy":
            options["texture"] = head.texture
    exporter.export(vertices, head.faces, request.path, fps=request.fps, progress=lambda f: progress(0.3 + 0.7 * f),
                    cancel=cancel, **options)
    progress(1.0)
    return Path(request.path)


@dataclass(frozen=True)
class PortraitVideoRequest:
    """The portrait export (:class:`~studio.render.job.VideoExportRequest`: MP4 or PNG frames)
    of a frame range that starts ``audio_start`` seconds into the project's sound."""

    video: Any = field(repr=False)  # studio.render.job.VideoExportRequest
    audio_start: float = 0.0


def export_portrait_video_job(request: PortraitVideoRequest, *, progress: Progress, cancel: Cancel):
    """Renders the portrait's frames into an MP4 or a PNG folder; an MP4 of a range that starts
    later than frame 0 gets the sound from that moment on."""
    from dataclasses import replace

    from studio.render.job import export_video

    video = request.video
    with tempfile.TemporaryDirectory(prefix="studio-export-") as folder:
        if video.audio is not None and request.audio_start > 0.0 and not video.frames_folder:
            video = replace(video, audio=trimmed_audio(video.audio, request.audio_start,
                                                       len(video.values) / video.fps, Path(folder)))
        return export_video(video, progress=progress, cancel=cancel)


def trimmed_audio(path: Path, start: float, duration: float, folder: Path, rate: int = 48000) -> Path:
    """``duration`` seconds of the sound in ``path`` from ``start`` on, as a WAV in ``folder``."""
    import soundfile

    from studio.audio.decode import load_audio

    audio = load_audio(path, sample_rate=rate)
    first = round(start * rate)
    out = folder / "audio.wav"
    soundfile.write(out, audio.samples[first:first + round(duration * rate)], rate)
    return out


# --- running a job in a child process ----------------------------------------------------------

def _context():
    """Fresh interpreters for the children: a fork server where there is one (its children are
    forks of a small, thread-free process; fork of the GUI process itself would copy Qt's threads),
    else spawn. The server preloads this module only — not ``__main__``, which may be any script."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    return context


def _child(conn, fn: Callable, request: Any, publish: bool = False) -> None:
    cancelled = False
    last = [0.0]
    if hasattr(os, "nice"):
        try:
            os.nice(CHILD_NICENESS)
        except OSError:
            pass  # not allowed here: the job runs at the window's priority

    def cancel() -> bool:
        nonlocal cancelled
        while not cancelled and conn.poll():
            cancelled = conn.recv() == "cancel"
        return cancelled

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL or fraction >= 1.0:
            last[0] = now
            conn.send(("progress", float(fraction)))

    def send_partial(value: Any) -> None:
        conn.send(("partial", value))

    try:
        try:
            extra = {"publish": send_partial} if publish else {}
            result = fn(request, progress=progress, cancel=cancel, **extra)
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
            if cancel():
                conn.send(("cancelled",))
            else:
                conn.send(("error", type(exc).__name__, str(exc) or type(exc).__name__, traceback.format_exc()))
            return
        try:
            conn.send(("result", result))
        except Exception as exc:  # noqa: BLE001 - an unpicklable result
            conn.send(("error", type(exc).__name__, f"the job's result cannot be sent back: {exc}",
                       traceback.format_exc()))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the parent is gone: nobody to tell
    finally:
        conn.close()


def run_in_process(fn: Callable, request: Any, *, grace: float = CANCEL_GRACE,
                   publish: bool = False) -> Generator[float | Partial | None, None, Any]:
    """Runs ``fn(request, progress=…, cancel=…)`` in a child process (see the module docstring).

    Yields progress fractions (None every :data:`PROGRESS_INTERVAL` s without news) and returns
    the result; with ``publish``, ``fn`` also gets ``publish=`` and each value it publishes is
    yielded as a :class:`Partial`. Raises :class:`JobFailed` when the job raised or the child died, and
    :class:`JobCancelled` when it stopped on request. Closing the generator asks the child to
    cancel, waits up to ``grace`` seconds for it to clean up, then kills it."""
    context = _context()
    here, there = context.Pipe()
    process = context.Process(target=_child, args=(there, fn, request, publish), name=f"studio-{fn.__name__}",
                              daemon=False)
    process.start()
    there.close()
    done = False
    try:
        while True:
            if not here.poll(PROGRESS_INTERVAL):
                if not process.is_alive() and not here.poll():
                    done = True
                    raise JobFailed(f"the worker process stopped unexpectedly (exit code {process.exitcode})")
                yield None
                continue
            try:
                kind, *payload = here.recv()
            except EOFError:
                done = True
                process.join(1.0)
                raise JobFailed(f"the worker process stopped unexpectedly (exit code {process.exitcode})") from None
            if kind == "progress":
                yield payload[0]
                continue
            if kind == "partial":
                yield Partial(payload[0])
                continue
            done = True
            if kind == "result":
                return payload[0]
            if kind == "cancelled":
                raise JobCancelled(f"{fn.__name__} cancelled")
            raise JobFailed(payload[1], payload[0], payload[2])
    finally:
        if not done:
            _stop(process, here, grace)
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join()
        here.close()


def _stop(process, conn, grace: float) -> None:
    """Asks a running child to cancel and waits for it to finish cleaning up."""
    try:
        conn.send("cancel")
    except (BrokenPipeError, OSError):
        return
    deadline = time.monotonic() + grace
    while process.is_alive() and time.monotonic() < deadline:
        try:
            if conn.poll(PROGRESS_INTERVAL):
                conn.recv()  # progress or the final word: either way, keep waiting for the exit
        except (EOFError, OSError):
            break
