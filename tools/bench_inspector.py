"""Measure the inspector on the real window (offscreen): one frame-change update, and the 2D view's
frames per second while a slider is dragged (live preview).

    .venv/bin/python tools/bench_inspector.py [--minutes 10] [--repeat 3]

Steps: the main window with the inspector docked; the demo portrait, speech and transcript
imported; Generate (rig); then :func:`studio.qt.inspector.benchmark_refresh` over the demo's
frames (sections as they open by default, then all open) and
:func:`studio.qt.inspector.benchmark_drag` on the jaw (a mouse move every 10 ms, 100 moves);
then the same on a keyed project of ``--minutes`` minutes (:func:`studio.bench.keyed_project`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path


def measure(minutes: float, repeat: int) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings, Qt

    from studio.bench import keyed_project
    from studio.core.document import Source
    from studio.qt.app import create_app
    from studio.qt.dialogs import GenerateSettings
    from studio.qt.inspector import InspectorPanel, benchmark_drag, benchmark_refresh
    from studio.qt.main_window import MainWindow
    from studio.qt.screenshots import DEMO, demo_portrait, wait_until

    app = create_app()
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat), probe_device=False)
        window.resize(1400, 900)
        inspector = InspectorPanel(window.session)
        window.add_panel("Inspector", inspector, Qt.RightDockWidgetArea)
        window.show()
        try:
            portrait = demo_portrait(Path(tmp))
            window.import_files([portrait, DEMO / "speech.flac", DEMO / "speech.txt"])
            wait_until(lambda: not window.jobs.running and window.media.renderer is not None, what="the demo media")
            job = window.start_generate(GenerateSettings(emotion="happy", strength=0.6))
            wait_until(lambda: not job.running, what="Generate")
            app.processEvents()
            result["panel"] = f"{inspector.width()}×{inspector.height()}"
            for name in ("demo", "long"):
                if name == "long":
                    project = keyed_project(minutes)
                    with project.macro("Portrait"):
                        project.set_source("portrait", Source.from_file("portrait", portrait))
                        project.set_identity(window.media.fit.canonical_keypoints)
                    window.session.set_project(project)
                    wait_until(lambda: window.media.renderer is not None and not window.jobs.running,
                               what="the portrait")
                inspector.set_expanded(None, False)
                inspector.set_expanded(["controls", "head", "eyes"])
                result[f"{name}_frames"] = window.session.project.num_frames
                result[f"{name}_refresh"] = benchmark_refresh(inspector, 200)
                result[f"{name}_refresh_all_open"] = benchmark_refresh(inspector, 200, expand_all=True)
                inspector.set_expanded(None, False)
                inspector.set_expanded(["jaw"])
                window.session.frame = window.session.last_frame // 2
                drags = [benchmark_drag(inspector, "exp.chin.y", moves=100, interval_ms=10.0,
                                        viewport=window.viewport) for _ in range(repeat)]
                result[f"{name}_drag"] = {"preview_fps": statistics.median(d["preview_fps"] for d in drags),
                                          "all_fps": [d["preview_fps"] for d in drags],
                                          "undo_steps": [d["undo_steps"] for d in drags],
                                          "edits": [d["edits"] for d in drags]}
        finally:
            window.shutdown()
            window.close()
    return result


def report(result: dict, minutes: float) -> str:
    lines = [f"Inspector docked at {result['panel']} px (offscreen)."]
    for name, label in (("demo", "demo speech"), ("long", f"keyed {minutes:g}-minute project")):
        lines.append(f"{label} ({result[f'{name}_frames']} frames):")
        for key, what in (("refresh", "default sections"), ("refresh_all_open", "all sections open")):
            r = result[f"{name}_{key}"]
            lines.append(f"  frame change, {what} ({r['rows_on_screen']} rows on screen): inspector update "
                         f"median {r['update_ms']:.2f} ms (p90 {r['update_p90_ms']:.2f}, "
                         f"max {r['update_max_ms']:.2f}); evaluating the frame (shared by the views, cached "
                         f"per frame) median {r['evaluate_ms']:.2f} ms")
        d = result[f"{name}_drag"]
        lines.append(f"  slider drag on the jaw: 2D preview {d['preview_fps']:.1f} frames/s median "
                     f"({', '.join(f'{f:.1f}' for f in d['all_fps'])}); undo steps per drag {d['undo_steps']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the keyed project (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="drags per project (default 3)")
    args = parser.parse_args()
    print(report(measure(args.minutes, args.repeat), args.minutes))


if __name__ == "__main__":
    main()
