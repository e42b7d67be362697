"""``studio screenshots OUT_DIR``: the main window at the main steps of a session, as PNGs.

Runs offscreen (no display needed) with throw-away settings and drives the real window the way a
user would: empty; the demo portrait (scikit-image's astronaut), speech and transcript loaded;
after Generate with the playhead half-way; the face-fit editor; an MP4 export running and done;
then the Generate and Export dialogs. Each step waits for its jobs, so the pictures show finished
states (or a job mid-way, for the export).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, what: str = "the window") -> None:
    """Run the event loop until ``condition()`` holds (TimeoutError naming ``what`` otherwise)."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        QCoreApplication.processEvents(QEventLoop.AllEvents, 20)
        time.sleep(0.005)


def demo_portrait(folder: Path) -> Path:
    """scikit-image's astronaut written as a PNG in ``folder`` (the demo's photo)."""
    import cv2

    from studio.render.contact_sheet import sample_photos

    path = Path(folder) / "astronaut.png"
    cv2.imwrite(str(path), sample_photos()["astronaut"][:, :, ::-1])
    return path


def take_screenshots(out_dir: str | Path, *, size: tuple[int, int] = (1400, 860)) -> list[Path]:
    """Saves the screenshots into ``out_dir``; returns their paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from studio.generate.pipeline import GENERATORS
    from studio.qt.app import create_app
    from studio.qt.dialogs import (
        ExportDialog,
        ExportSettings,
        GenerateDialog,
        GenerateSettings,
    )
    from studio.qt.main_window import MainWindow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app()
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat))
        window.resize(*size)
        window.show()

        def shot(name: str) -> None:
            wait_until(lambda: not window.jobs.running, what="the jobs")
            app.processEvents()
            window.viewport.refresh()
            path = out / f"{name}.png"
            window.grab().save(str(path))
            written.append(path)

        try:
            shot("01_empty")
            window.import_files([demo_portrait(Path(tmp)), DEMO / "speech.flac", DEMO / "speech.txt"])
            wait_until(lambda: window.media.renderer is not None and window.session.media.audio is not None,
                       what="the portrait and the audio")
            shot("02_portrait_and_audio")
            window.start_generate(GenerateSettings(emotion="happy", strength=0.6))
            wait_until(lambda: window.session.project.base is not None, what="Generate")
            window.session.frame = window.session.last_frame // 2
            window.session.select_channels(["lips"])
            shot("03_generated_playhead_midway")
            window.viewport.edit_fit.setChecked(True)
            shot("04_face_fit_editor")
            window.viewport.edit_fit.setChecked(False)
            job = window.start_export(ExportSettings("mp4", Path(tmp) / "talk.mp4"))
            wait_until(lambda: job.progress >= 0.3 or not job.running, what="the export to start")
            app.processEvents()
            path = out / "05_export_running.png"
            window.grab().save(str(path))
            written.append(path)
            wait_until(lambda: not job.running, what="the export")
            shot("06_export_done")
            for name, dialog in (("07_generate_dialog", GenerateDialog(window.generate_defaults, GENERATORS, True,
                                                                     window)),
                                 ("08_export_dialog", ExportDialog("mp4", Path.home() / "talk.mp4", window))):
                dialog.show()
                app.processEvents()
                path = out / f"{name}.png"
                dialog.grab().save(str(path))
                written.append(path)
                dialog.close()
                dialog.deleteLater()
        finally:
            window.shutdown()
            window.close()
    return written
