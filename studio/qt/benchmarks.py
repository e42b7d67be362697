"""``studio bench gui``: the figures of the desktop application, measured on the real window with
every panel docked — media and jobs, the 2D view, the inspector, the timeline and (once the demo
portrait's face mesh is loaded as a head mesh) the 3D view.

* how long the GUI thread was blocked at most (the event-loop heartbeat of
  :class:`~studio.qt.workers.EventLoopMonitor`) while generating the demo speech and while
  exporting it as an MP4 — the target is 50 ms or less;
* the whole window's frames per second while scrubbing (:func:`benchmark_window_scrub`: per
  playhead position the 2D view renders, the inspector shows the new values, the 3D view renders
  its frame, and the whole window — timeline, inspector, 2D view, 3D panel — is repainted) across the demo project and across a
  keyed project of ``minutes`` minutes with its audio and phones — the target is 25 fps or more;
* the 2D view alone while scrubbing (render + paint, 512² portrait) and the timeline alone
  (:func:`studio.qt.timeline.bench_timeline`), for comparison.

:func:`bench_head_view` measures the 3D view on its own (needs OpenGL: under Xvfb with
``QT_QPA_PLATFORM=xcb``): milliseconds per scrub position of a 512² view of the demo face mesh and
of a FLAME-topology head, each stage apart (deform + buffer writes, render + readback, paint), with
every frame at full size and with the view's adaptive size (smaller while moving), and the whole
window's scrub of the demo project with its generated speech::

    xvfb-run -a -s "-screen 0 1920x1200x24" env QT_QPA_PLATFORM=xcb .venv/bin/python -c \
        "from studio.qt.benchmarks import bench_head_view, format_head_view; print(format_head_view(bench_head_view()))"

Offscreen by default (the 3D panel then shows its no-OpenGL notice); under a display or Xvfb with
``QT_QPA_PLATFORM=xcb`` the 3D view draws with OpenGL. Throw-away settings; numbers are medians
over ``repeat`` runs where that applies.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

#: The window's size while measuring (the default layout's).
WINDOW_SIZE = (1600, 1000)


def benchmark_window_scrub(window, frames: int = 200) -> dict:
    """Move the playhead across ``frames`` evenly spaced positions of the open project as fast as
    the window keeps up: per position the 2D view renders, the inspector refreshes, the 3D view
    (when it draws) renders its frame, and the whole window is repainted (more than a scrub
    repaints: only the changed parts need it)."""
    from PySide6.QtCore import QCoreApplication

    session = window.session
    head = window.head_view.viewport if window.head_view is not None else None
    count = min(frames, session.project.num_frames)
    if count < 2:
        raise ValueError("scrubbing needs a project of at least 2 frames")
    positions = np.linspace(0, session.last_frame, count).round().astype(int)
    session.frame = 0
    QCoreApplication.processEvents()
    window.repaint()
    times = []
    start = time.perf_counter()
    for frame in positions:
        began = time.perf_counter()
        session.frame = int(frame)
        window.viewport.refresh()
        window.inspector.refresh()
        if head is not None:  # the 3D view's frame (offscreen OpenGL, shown as an image)
            window.head_view.show_playhead()
            head.draw_frame()
        window.repaint()
        times.append(time.perf_counter() - began)
    seconds = time.perf_counter() - start
    return {"frames": int(count), "seconds": seconds, "fps": count / seconds, "ms_per_frame": 1000 * seconds / count,
            "median_ms": 1000 * statistics.median(times),
            "project_frames": session.project.num_frames, "size": f"{window.width()}×{window.height()}",
            "panels": [dock.windowTitle() for dock in window.panels if dock.isVisible()]}


def scrub_motion(frames: int) -> np.ndarray:
    """A motion (frames, 74) in which every frame differs: the jaw, the lips, the brows, the
    blinks and the head pose swing at different rates (what a scrub across speech shows)."""
    from studio.core.motion import CHANNEL_INDEX, NEUTRAL_FRAME

    t = np.linspace(0.0, 1.0, frames)[:, None]
    values = np.tile(NEUTRAL_FRAME.astype(np.float64), (frames, 1))
    for name, amplitude, cycles in (("exp.chin.y", -0.3, 7.0), ("exp.lip_upper_center.y", 0.06, 5.0),
                                    ("exp.mouth_corner_l.x", 0.08, 3.0), ("exp.brow_inner_l.y", 0.08, 2.0),
                                    ("eye.blink_l", 0.5, 4.0), ("eye.blink_r", 0.5, 4.0),
                                    ("pose.yaw", 15.0, 1.0), ("pose.pitch", 6.0, 1.5)):
        values[:, CHANNEL_INDEX[name]] = amplitude * (0.5 - 0.5 * np.cos(2 * np.pi * cycles * t[:, 0]))
    return values


def benchmark_head_scrub(viewport, values: np.ndarray) -> dict:
    """The 3D view alone while scrubbing: per position (a row of ``values``, motion frames) the
    head is deformed and its buffers written (``show_frame``), the frame rendered and read back
    (``draw_frame``: at full size, or smaller while moving where the view does that) and the
    picture painted, as fast as it goes; then the full-size frame after the stop (``refine``, where
    the view has one). Milliseconds: medians per position, each stage apart (``deform`` is the
    part of ``show`` spent in the head's own deform)."""
    from dataclasses import replace

    from PySide6.QtCore import QCoreApplication

    head = viewport.head
    stages: dict[str, list[float]] = {"deform": [], "show": [], "render": [], "paint": [], "total": []}

    def timed_deform(frames: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        try:
            return head.deform(frames)
        finally:
            stages["deform"].append(1000 * (time.perf_counter() - began))

    viewport.show_frame(values[-1])
    viewport.draw_frame()
    QCoreApplication.processEvents()
    time.sleep(0.3)  # the previous frame is long past: the first position starts a scrub
    stages["deform"].clear()
    viewport.head = replace(head, deform=timed_deform)
    try:
        for frame in values:
            t0 = time.perf_counter()
            viewport.show_frame(frame)
            t1 = time.perf_counter()
            viewport.draw_frame()
            t2 = time.perf_counter()
            viewport.picture.repaint()
            t3 = time.perf_counter()
            for key, seconds in (("show", t1 - t0), ("render", t2 - t1), ("paint", t3 - t2), ("total", t3 - t0)):
                stages[key].append(1000 * seconds)
    finally:
        viewport.head = head
    result = {f"{key}_ms": statistics.median(v) for key, v in stages.items()}
    result["fps"] = 1000 / result["total_ms"]
    image = viewport.picture.image
    result["moving_size"] = f"{image.width()}×{image.height()}"
    refine = getattr(viewport, "refine", None)
    if refine is not None:
        t0 = time.perf_counter()
        refine()
        viewport.picture.repaint()
        result["settled_ms"] = 1000 * (time.perf_counter() - t0)
    image = viewport.picture.image
    result["settled_size"] = f"{image.width()}×{image.height()}"
    return result


def bench_head_view(frames: int = 120, repeat: int = 3, size: int = 512, window: bool = True) -> dict:
    """The 3D view's figures (see the module docstring): per head, ``frames`` scrub positions at
    ``size``² with every frame full size and with the adaptive size, medians over ``repeat`` runs;
    and (``window``) the whole window's scrub of the demo project after generating its speech."""
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication

    from studio.jobs import HeadRequest, load_head
    from studio.qt.app import create_app
    from studio.qt.screenshots import demo_portrait, face_mesh
    from studio.qt.viewport3d import Viewport3D, gl_available
    from studio.render.mesh.flame_synth import build_flame_like_model

    create_app()
    if not gl_available():
        raise RuntimeError(f"the 3D view needs OpenGL; Qt's {QGuiApplication.platformName()} platform gives "
                           "none (run under Xvfb with QT_QPA_PLATFORM=xcb)")
    result: dict = {"frames": frames, "repeat": repeat, "size": size, "heads": {}}
    values = scrub_motion(frames)
    with tempfile.TemporaryDirectory() as tmp:
        portrait = demo_portrait(Path(tmp))
        mesh, keypoints = face_mesh(Path(tmp), portrait)
        flame = Path(tmp) / "flame_like.npz"
        np.savez(flame, **build_flame_like_model(seed=0))
        heads = {"demo face mesh": load_head(HeadRequest(str(mesh), keypoints)).head,
                 "FLAME-topology head": load_head(HeadRequest(str(flame))).head}
        for label, head in heads.items():
            view = Viewport3D(size=(size, size))
            view.resize(size, size)
            view.show()
            view.set_head(head)
            for _ in range(5):
                QCoreApplication.processEvents()
            figures = {"vertices": len(head.rest), "triangles": len(head.faces),
                       "picture": f"{view.picture.width()}×{view.picture.height()}"}
            for mode, scale in (("full", 1.0), ("adaptive", getattr(view, "moving_scale", 1.0))):
                view.moving_scale = scale
                runs = [benchmark_head_scrub(view, values) for _ in range(repeat)]
                best = sorted(runs, key=lambda r: r["total_ms"])[len(runs) // 2]
                figures[mode] = {**best, "all_total_ms": [r["total_ms"] for r in runs]}
            result["heads"][label] = figures
            view.close()
            view.deleteLater()
            QCoreApplication.processEvents()
        if window:
            result["window_scrub_demo"] = _window_scrub_demo(Path(tmp), portrait, mesh, keypoints, frames, repeat)
    return result


def _window_scrub_demo(tmp: Path, portrait: Path, mesh: Path, keypoints, frames: int, repeat: int) -> dict:
    """The whole window (every panel docked, the 3D view drawing) scrubbing the demo project after
    one generation of its speech, as in ``studio bench gui``."""
    from PySide6.QtCore import QSettings

    from studio.qt.dialogs import GenerateSettings
    from studio.qt.main_window import MainWindow
    from studio.qt.screenshots import DEMO, wait_until

    window = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.IniFormat), probe_device=False)
    window.resize(*WINDOW_SIZE)
    window.show()
    try:
        wait_until(lambda: not window.default_layout_pending, what="the window's layout")
        window.import_files([portrait, DEMO / "speech.flac", DEMO / "speech.txt", mesh])
        wait_until(lambda: not window.jobs.running and window.media.renderer is not None
                   and window.heads.loaded is not None and not window.heads.loading, what="the demo media")
        window.session.project.set_mesh_keypoints(keypoints)
        wait_until(lambda: window.heads.loaded.head is not None and not window.heads.loading, what="the animated head")
        job = window.start_generate(GenerateSettings(seed=0))
        wait_until(lambda: not job.running, what="Generate")
        _aftermath(window)
        window.session.select_channels(["lips"])
        result = _median(benchmark_window_scrub, window, frames, repeat)
        result["head_view"] = "OpenGL (vispy)" if window.head_view is not None and window.head_view.gl else "none"
        return result
    finally:
        window.shutdown()
        window.close()


def format_head_view(result: dict) -> str:
    lines = [(f"The 3D view alone, {result['size']}² under Qt's xcb platform, {result['frames']} scrub positions, "
              f"medians of {result['repeat']} runs (ms per position; show = show_frame: deform + buffer writes, "
              "render = draw_frame: render + readback, paint):")]
    for label, h in result["heads"].items():
        lines.append(f"  {label} ({h['vertices']} vertices, {h['triangles']} triangles):")
        for mode, text in (("full", "every frame full size"), ("adaptive", "adaptive size")):
            r = h[mode]
            settled = f"; after the stop {r['settled_size']} in {r['settled_ms']:.1f} ms" if "settled_ms" in r else ""
            runs = ", ".join(f"{v:.1f}" for v in r["all_total_ms"])
            lines.append(f"    {text:22s} {r['total_ms']:6.1f} ms = {r['fps']:5.1f} fps (show {r['show_ms']:.1f} "
                         f"of which deform {r['deform_ms']:.1f}, render {r['render_ms']:.1f}, paint "
                         f"{r['paint_ms']:.1f}; moving {r['moving_size']}{settled}; runs {runs})")
    if "window_scrub_demo" in result:
        r = result["window_scrub_demo"]
        runs = ", ".join(f"{v:.1f}" for v in r["all_fps"])
        lines.append(f"The whole window {r['size']} scrubbing the demo project ({r['project_frames']} frames, 3D view: "
                     f"{r['head_view']}): {r['fps']:.1f} frames/s ({r['ms_per_frame']:.1f} ms per position on average, "
                     f"median {r['median_ms']:.1f} ms; runs {runs})")
    return "\n".join(lines)


def bench_gui(minutes: float = 10.0, frames: int = 200, repeat: int = 3) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QGuiApplication

    from studio.core.document import Source
    from studio.qt.app import create_app
    from studio.qt.dialogs import ExportSettings, GenerateSettings
    from studio.qt.main_window import MainWindow
    from studio.qt.screenshots import DEMO, demo_portrait, face_mesh, wait_until
    from studio.qt.timeline import benchmark_session
    from studio.qt.viewport2d import benchmark_scrub

    create_app()
    result: dict = {"repeat": repeat, "frames": frames, "minutes": minutes,
                    "platform": QGuiApplication.platformName()}
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat), probe_device=False)
        window.resize(*WINDOW_SIZE)
        window.show()
        try:
            wait_until(lambda: not window.default_layout_pending, what="the window's layout")
            portrait = demo_portrait(Path(tmp))
            mesh, keypoints = face_mesh(Path(tmp), portrait)
            window.import_files([portrait, DEMO / "speech.flac", DEMO / "speech.txt", mesh])
            wait_until(lambda: not window.jobs.running and window.media.renderer is not None
                       and window.heads.loaded is not None and not window.heads.loading, what="the demo media")
            window.session.project.set_mesh_keypoints(keypoints)
            wait_until(lambda: window.heads.loaded.head is not None and not window.heads.loading,
                       what="the animated head")
            head = window.head_view
            result["head_view"] = "OpenGL (vispy)" if head is not None and head.gl else "no OpenGL: a notice"
            blocked = {"generate": [], "export": [], "generate_result": []}
            for run in range(repeat):
                job = window.start_generate(GenerateSettings(seed=run))
                wait_until(lambda job=job: not job.running, what="Generate")
                blocked["generate"].append(job.max_latency_ms)
                blocked["generate_result"].append(_aftermath(window))  # every view shows the new motion
                job = window.start_export(ExportSettings("mp4", Path(tmp) / f"demo{run}.mp4"))
                wait_until(lambda job=job: not job.running, what="the export")
                blocked["export"].append(job.max_latency_ms)
                _aftermath(window)
            result["blocked_ms"] = {k: {"max": max(v), "median": statistics.median(v), "all": v}
                                    for k, v in blocked.items()}
            window.session.select_channels(["lips"])
            result["window_scrub_demo"] = _median(benchmark_window_scrub, window, frames, repeat)
            result["scrub_demo"] = _median(benchmark_scrub, window.viewport, frames, repeat)

            bench = benchmark_session(minutes)  # keyed, with speech-like audio and phones
            long = bench.project
            with long.macro("Portrait and head"):
                long.set_source("portrait", Source.from_file("portrait", portrait))
                long.set_identity(window.media.fit.canonical_keypoints)
                long.set_source("mesh", Source.from_file("mesh", mesh))
                long.set_mesh_keypoints(keypoints)
            long.undo_stack.clear()
            window.session.set_project(long)
            wait_until(lambda: window.media.renderer is not None and not window.jobs.running
                       and window.heads.loaded is not None and window.heads.loaded.head is not None
                       and not window.heads.loading, what="the portrait and the head")
            window.session.update_media(audio=bench.media.audio)
            window.session.select_channels(["brows"])
            window.timeline.dope_sheet.set_expanded("brows", True)
            result["window_scrub_long"] = _median(benchmark_window_scrub, window, frames, repeat)
            result["scrub_long"] = _median(benchmark_scrub, window.viewport, frames, repeat)
        finally:
            window.shutdown()
            window.close()
    result["timeline"] = bench_timeline(minutes, frames, repeat)
    return result


def _aftermath(window, seconds: float = 0.4) -> float:
    """The longest the GUI thread was blocked in the ``seconds`` after a job ended — the views
    showing its result (2D and 3D renders, the timeline, the inspector): measured with an event-loop
    heartbeat of its own, so the next job's figure holds only what happened while it ran."""
    from studio.qt.screenshots import wait_until
    from studio.qt.workers import EventLoopMonitor

    monitor = EventLoopMonitor(parent=window)
    monitor.start()
    end = time.perf_counter() + seconds
    try:
        wait_until(lambda: time.perf_counter() > end, what="the views")
    finally:
        monitor.stop()
        monitor.deleteLater()
    return monitor.max_lateness_ms


def bench_timeline(minutes: float = 10.0, frames: int = 200, repeat: int = 3) -> dict:
    """The timeline panel's scrubbing figures alone (see :func:`studio.qt.timeline.bench_timeline`)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.qt.timeline import bench_timeline as run

    return run(minutes, frames, repeat)


def _median(benchmark, target, frames: int, repeat: int) -> dict:
    runs = [benchmark(target, frames) for _ in range(repeat)]
    best = sorted(runs, key=lambda r: r["fps"])[len(runs) // 2]
    return {**best, "all_fps": [r["fps"] for r in runs]}


def format_gui(result: dict) -> str:
    b = result["blocked_ms"]
    lines = [(f"Window {WINDOW_SIZE[0]}×{WINDOW_SIZE[1]} on Qt's {result['platform']} platform, every panel docked "
             f"(3D view: {result['head_view']})"),
             f"GUI thread blocked at most (event-loop heartbeat, {result['repeat']} runs; target ≤ 50 ms):"]
    for key, label in (("generate", "generating the demo speech"), ("export", "exporting it as MP4"),
                       ("generate_result", "showing a generation's result (0.4 s after it lands)")):
        runs = ", ".join(f"{v:.1f}" for v in b[key]["all"])
        lines.append(f"  while {label}: max {b[key]['max']:.1f} ms, median {b[key]['median']:.1f} ms ({runs})")
    lines.append("The whole window while scrubbing (2D and 3D render, inspector, full repaint per position; "
                 "target ≥ 25 fps):")
    for key, label in (("window_scrub_demo", "the demo project"),
                       ("window_scrub_long", f"a {result['minutes']:g}-minute keyed project with audio and phones")):
        r = result[key]
        lines.append(f"  {label} ({r['project_frames']} frames): {r['fps']:.1f} frames/s ({r['ms_per_frame']:.1f} ms "
                     f"per position, median {r['median_ms']:.1f} ms, {r['frames']} positions; "
                     f"runs {', '.join(f'{v:.1f}' for v in r['all_fps'])})")
    lines.append("The 2D view alone while scrubbing (render + paint):")
    for key, label in (("scrub_demo", "the demo project"), ("scrub_long", f"the {result['minutes']:g}-minute project")):
        r = result[key]
        lines.append(f"  {label} ({r['project_frames']} frames, {r['size']}): {r['fps']:.1f} frames/s "
                     f"({r['ms_per_frame']:.1f} ms per frame, {r['frames']} playhead positions)")
    if "timeline" in result:
        from studio.qt.timeline import format_timeline

        lines.append(format_timeline(result["timeline"]))
    return "\n".join(lines)
