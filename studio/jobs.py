"""The studio's long work as plain functions of immutable requests, runnable in a child process.

Every job here has the calling convention of the engines it wraps —
``fn(request, *, progress, cancel) -> result`` — and takes and returns picklable values (paths,
numpy arrays, frozen dataclasses), never widgets. The desktop application runs them through
:func:`run_in_process`, a *generator*: each ``yield`` is a progress report (a fraction, or None
for "no news") and a cancel point — ``close()`` the generator to cancel — and the job's result is
its return value. Its worker thread only waits on a pipe, so the GUI thread keeps the GIL.

Why a process and not just a thread: the speech recognizer (pocketsphinx) holds the GIL for a
quarter of a second at a time, so in a thread of the GUI process it would freeze the window
(measured with ``studio.generate.pipeline.generate`` in a thread beside a 5 ms sleep loop: the
loop was up to 257 ms late). A child process also leaves nothing behind when a job crashes, and a
job that ignores its cancel request is stopped after a grace period.

No Qt here (an import-linter contract): the child processes never load it.
"""

from __future__ import annotations

import multiprocessing
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

#: Seconds between two progress messages of a child (and between two "no news" yields).
PROGRESS_INTERVAL = 0.05
#: Modules the fork server imports once, so that children start with them loaded.
FORKSERVER_PRELOAD = ["studio.jobs", "numpy", "scipy.spatial", "cv2", "av"]
#: Seconds a cancelled child gets to clean up (delete partial files) before it is killed.
CANCEL_GRACE = 10.0


class JobFailed(Exception):
    """A job raised: ``kind`` is the exception's type name, ``details`` its traceback."""

    def __init__(self, message: str, kind: str = "", details: str = ""):
        super().__init__(message)
        self.kind = kind
        self.details = details


class JobCancelled(Exception):
    """The job stopped because it was asked to."""


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
    """A motion (or the ARKit curves derived from it) written by the registry's exporter for the
    file's extension (``kind``: ``"motion"`` or ``"curves"``)."""

    motion: Motion = field(repr=False)
    path: Path
    kind: str = "motion"
    options: dict = field(default_factory=dict)


def export_motion_job(request: MotionExportRequest, *, progress: Progress, cancel: Cancel) -> Path:
    from studio.plugins import default_registry

    exporter = default_registry().exporter_for(request.path, kind=request.kind)
    exporter.export(request.motion, request.path, **request.options)
    progress(1.0)
    return Path(request.path)


def inference_device_job(_request: None, *, progress: Progress, cancel: Cancel) -> str:
    """Where inference runs, in words: the torch device ``"auto"`` resolves to (CUDA only when a
    tensor operation on it works) and, for a GPU, its name."""
    from studio.render.portrait_torch import resolve_device

    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return "CPU"


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


def _child(conn, fn: Callable, request: Any) -> None:
    cancelled = False
    last = [0.0]

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

    try:
        try:
            result = fn(request, progress=progress, cancel=cancel)
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


def run_in_process(fn: Callable, request: Any, *, grace: float = CANCEL_GRACE) -> Generator[float | None, None, Any]:
    """Runs ``fn(request, progress=…, cancel=…)`` in a child process (see the module docstring).

    Yields progress fractions (None every :data:`PROGRESS_INTERVAL` s without news) and returns
    the result. Raises :class:`JobFailed` when the job raised or the child died, and
    :class:`JobCancelled` when it stopped on request. Closing the generator asks the child to
    cancel, waits up to ``grace`` seconds for it to clean up, then kills it."""
    context = _context()
    here, there = context.Pipe()
    process = context.Process(target=_child, args=(there, fn, request), name=f"studio-{fn.__name__}", daemon=False)
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
