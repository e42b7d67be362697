"""``studio bench gui``: the figures of the desktop application, measured on the real window.

* how long the GUI thread was blocked at most (the event-loop heartbeat of
  :class:`~studio.qt.workers.EventLoopMonitor`) while generating the demo speech and while
  exporting it as an MP4 — the target is under 50 ms;
* the 2D view's frames per second while scrubbing (render + paint, 512² portrait) across the demo
  project and across a keyed project of ``minutes`` minutes — the target is 25 fps or more;
* the timeline's frames per second while scrubbing a keyed project of ``minutes`` minutes with its
  audio and phones (dope sheet + curve editor painted per playhead position;
  :func:`studio.qt.timeline.bench_timeline`) — the target is 25 fps or more.

Offscreen, with throw-away settings; numbers are medians over ``repeat`` runs where that applies.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path


def bench_gui(minutes: float = 10.0, frames: int = 200, repeat: int = 3) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from studio.bench import keyed_project
    from studio.core.document import Source
    from studio.qt.app import create_app
    from studio.qt.dialogs import ExportSettings, GenerateSettings
    from studio.qt.main_window import MainWindow
    from studio.qt.screenshots import DEMO, demo_portrait, wait_until
    from studio.qt.viewport2d import benchmark_scrub

    create_app()
    result: dict = {"repeat": repeat, "frames": frames, "minutes": minutes}
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat), probe_device=False)
        window.resize(1400, 860)
        window.show()
        try:
            portrait = demo_portrait(Path(tmp))
            window.import_files([portrait, DEMO / "speech.flac", DEMO / "speech.txt"])
            wait_until(lambda: not window.jobs.running and window.media.renderer is not None, what="the demo media")
            blocked = {"generate": [], "export": []}
            for run in range(repeat):
                job = window.start_generate(GenerateSettings(seed=run))
                wait_until(lambda job=job: not job.running, what="Generate")
                blocked["generate"].append(job.max_latency_ms)
                job = window.start_export(ExportSettings("mp4", Path(tmp) / f"demo{run}.mp4"))
                wait_until(lambda job=job: not job.running, what="the export")
                blocked["export"].append(job.max_latency_ms)
            result["blocked_ms"] = {k: {"max": max(v), "median": statistics.median(v)} for k, v in blocked.items()}
            result["scrub_demo"] = _median_scrub(benchmark_scrub, window.viewport, frames, repeat)

            long = keyed_project(minutes)
            with long.macro("Portrait"):
                long.set_source("portrait", Source.from_file("portrait", portrait))
                long.set_identity(window.media.fit.canonical_keypoints)
            window.session.set_project(long)
            wait_until(lambda: window.media.renderer is not None, what="the portrait")
            result["scrub_long"] = _median_scrub(benchmark_scrub, window.viewport, frames, repeat)
        finally:
            window.shutdown()
            window.close()
    result["timeline"] = bench_timeline(minutes, frames, repeat)
    return result


def bench_timeline(minutes: float = 10.0, frames: int = 200, repeat: int = 3) -> dict:
    """The timeline panel's scrubbing figures alone (see :func:`studio.qt.timeline.bench_timeline`)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.qt.timeline import bench_timeline as run

    return run(minutes, frames, repeat)


def _median_scrub(benchmark, viewport, frames: int, repeat: int) -> dict:
    runs = [benchmark(viewport, frames) for _ in range(repeat)]
    best = sorted(runs, key=lambda r: r["fps"])[len(runs) // 2]
    return {**best, "all_fps": [r["fps"] for r in runs]}


def format_gui(result: dict) -> str:
    b = result["blocked_ms"]
    lines = [f"GUI thread blocked at most (event-loop heartbeat, {result['repeat']} runs; target < 50 ms):"]
    for key, label in (("generate", "generating the demo speech"), ("export", "exporting it as MP4")):
        lines.append(f"  while {label}: max {b[key]['max']:.1f} ms, median {b[key]['median']:.1f} ms")
    lines.append("2D view while scrubbing (render + paint; target ≥ 25 fps):")
    for key, label in (("scrub_demo", "the demo project"), ("scrub_long", f"a {result['minutes']:g}-minute keyed project")):
        r = result[key]
        lines.append(f"  {label} ({r['project_frames']} frames, {r['size']}): {r['fps']:.1f} frames/s "
                     f"({r['ms_per_frame']:.1f} ms per frame, {r['frames']} playhead positions)")
    if "timeline" in result:
        from studio.qt.timeline import format_timeline

        lines.append(format_timeline(result["timeline"]))
    return "\n".join(lines)
