"""Portrait + speech (or a motion file) → MP4 or PNG frames: the render job of the CLI, the demo and the GUI.

Stages, timed separately in :attr:`RenderResult.seconds`: ``fit`` (load the photo, find the
face), ``generate`` (audio → motion with the rig, unless a motion is given), ``render`` (the warp
of every frame) and ``encode`` (H.264 + AAC, interleaved with rendering; its share is the
remaining wall time of the frame loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.core.motion_file import Motion
from studio.render.face_fit import (
    FaceFit,
    fit_from_keypoints,
    fit_portrait,
    load_image,
    read_keypoints_json,
)


@dataclass(frozen=True)
class RenderRequest:
    """What to render. ``motion`` given: rendered as is (its fps); else generated from ``audio``."""

    portrait: Path
    output: Path
    audio: Path | None = None
    motion: Motion | None = field(default=None, repr=False)
    transcript: str | None = None
    language: str = "en-us"
    emotion: str = "neutral"
    strength: float = 1.0
    intensity: float = 1.0
    fps: float = 25.0
    seed: int = 0
    keypoints: Path | None = None  # the manual path: 21 keypoints as JSON (see face_fit)
    face_index: int = 0
    backend: str = "opencv"
    device: str = "auto"
    frames_folder: bool = False  # write a PNG sequence into ``output`` (a folder) instead of an MP4
    preset: str = "veryfast"  # x264 preset: veryfast keeps encoding behind rendering; CRF 18 either way


@dataclass(frozen=True)
class RenderResult:
    output: Path
    frames: int
    fps: float
    fit: FaceFit = field(repr=False)
    motion: Motion = field(repr=False)
    seconds: dict[str, float]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class VideoExportRequest:
    """A motion (T, 74) rendered over a fitted portrait into an MP4 (with ``audio``) or a PNG
    sequence (``frames_folder``): what the GUI's export hands to its worker, and the last stage of
    :func:`render_video`."""

    image: np.ndarray = field(repr=False)  # H × W × 3 uint8 RGB
    fit: FaceFit = field(repr=False)
    values: np.ndarray = field(repr=False)
    fps: float
    output: Path
    audio: Path | None = None
    frames_folder: bool = False
    backend: str = "opencv"
    device: str = "auto"
    preset: str = "veryfast"
    crf: int = 18


def export_video(request: VideoExportRequest, *, progress: Callable[[float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> dict[str, float]:
    """Renders every frame and writes them as they come; returns the seconds spent in ``render``
    (the warp) and ``encode`` (the rest of the loop). Cancelling leaves nothing behind."""
    from studio.io.video import write_mp4, write_png_sequence

    # torch is imported for the torch backend only
    from studio.render.portrait_torch import create_renderer

    t0 = time.perf_counter()
    renderer = create_renderer(request.image, request.fit, backend=request.backend, device=request.device)
    render_time = [time.perf_counter() - t0]
    values = np.asarray(request.values, dtype=np.float64)

    def frames():
        for frame in values:
            start = time.perf_counter()
            picture = renderer.render(frame)
            render_time[0] += time.perf_counter() - start
            yield picture

    t0 = time.perf_counter()
    if request.frames_folder:
        write_png_sequence(request.output, frames(), num_frames=len(values), progress=progress, cancel=cancel)
    else:
        write_mp4(request.output, frames(), fps=request.fps, audio=request.audio, num_frames=len(values),
                  progress=progress, cancel=cancel, preset=request.preset, crf=request.crf)
    loop = time.perf_counter() - t0
    return {"render": render_time[0], "encode": max(0.0, loop - render_time[0])}


def fit_for(image: np.ndarray, request: RenderRequest) -> FaceFit:
    if request.keypoints is not None:
        return fit_from_keypoints(image.shape[:2], read_keypoints_json(request.keypoints))
    return fit_portrait(image, face_index=request.face_index, name=str(request.portrait))


def render_video(request: RenderRequest, *, progress: Callable[[float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> RenderResult:
    """Runs the job; ``progress`` gets 0…1 over the whole job, ``cancel()`` True stops it
    (:class:`studio.io.video.ExportCancelled`, nothing left behind)."""
    from studio.io.video import ExportCancelled

    seconds: dict[str, float] = {}
    report = progress or (lambda fraction: None)
    t0 = time.perf_counter()
    image = load_image(request.portrait)
    fit = fit_for(image, request)
    seconds["fit"] = time.perf_counter() - t0
    warnings: list[str] = []
    motion = request.motion
    generate_share = 0.0
    if motion is None:
        if request.audio is None:
            raise ValueError("give audio to generate from, or a motion file")
        from studio.generate.pipeline import GenerateRequest, generate

        generate_share = 0.25
        t0 = time.perf_counter()
        result = generate(GenerateRequest(Path(request.audio), transcript=request.transcript, language=request.language,
                                          fps=request.fps, seed=request.seed, emotion=request.emotion,
                                          strength=request.strength, intensity=request.intensity,
                                          canonical_keypoints=fit.canonical_keypoints),
                          progress=lambda f: report(generate_share * f), cancel=cancel)
        motion = result.motion
        warnings.extend(result.warnings)
        seconds["generate"] = time.perf_counter() - t0
    if cancel is not None and cancel():
        raise ExportCancelled("cancelled")

    export = VideoExportRequest(image, fit, motion.values, motion.fps, Path(request.output),
                                audio=None if request.audio is None else Path(request.audio),
                                frames_folder=request.frames_folder, backend=request.backend, device=request.device,
                                preset=request.preset)
    seconds.update(export_video(export, progress=lambda f: report(generate_share + (1.0 - generate_share) * f),
                                cancel=cancel))
    return RenderResult(Path(request.output), len(motion), float(motion.fps), fit, motion, seconds, tuple(warnings))
