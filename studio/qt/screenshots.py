"""``studio screenshots OUT_DIR``: the main window at the main steps of a session, as PNGs.

Runs offscreen (no display needed; under a display or Xvfb set ``QT_QPA_PLATFORM=xcb`` and the 3D
view draws too) with throw-away settings and drives the real window — the timeline docked at the
bottom, the inspector on the right — the way a user would: empty; the demo portrait (scikit-image's
astronaut), speech and transcript loaded (the waveform in the timeline); after Generate with the
playhead half-way (the phones in their lane, the lips' curves in the curve editor); a key set with K
and selected in the curve editor; an emotion segment drawn in the timeline (its frames marked for
regeneration), then regenerated; the face-fit editor; an MP4 export running and done; the
portrait's face as a head mesh in the 3D view beside the 2D view; then the Generate and Export
dialogs. Each step waits for its jobs, so the pictures show finished states (or a job mid-way, for
the export).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from studio.core.motion import CHANNEL_INDEX

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, what: str = "the window") -> None:
    """Run the event loop until ``condition()`` holds (TimeoutError naming ``what`` otherwise). The
    condition is checked every 5 ms from inside the event loop, which never sleeps outside it (the
    benchmarks' heartbeat measures only the window's own work)."""
    from PySide6.QtCore import QEventLoop, QTimer

    if condition():
        return
    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: (condition() or time.monotonic() > deadline) and loop.quit())
    timer.start()
    loop.exec()
    timer.stop()
    if not condition():
        raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def demo_portrait(folder: Path) -> Path:
    """scikit-image's astronaut written as a PNG in ``folder`` (the demo's photo)."""
    import cv2

    from studio.render.contact_sheet import sample_photos

    path = Path(folder) / "astronaut.png"
    cv2.imwrite(str(path), sample_photos()["astronaut"][:, :, ::-1])
    return path


def face_mesh(folder: Path, portrait: Path) -> tuple[Path, tuple[int, ...]]:
    """The portrait's face mesh written as a plain OBJ in ``folder``, and its 21 keypoint vertices."""
    import trimesh

    from studio.render.mesh.animate import load_animated_head

    head = load_animated_head(portrait)
    path = Path(folder) / "face.obj"
    trimesh.Trimesh(head.rest, head.faces, process=False).export(path)
    return path, tuple(ids[0] for ids in head.keypoint_vertices)


def take_screenshots(out_dir: str | Path, *, size: tuple[int, int] = (1600, 1000)) -> list[Path]:
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
        wait_until(lambda: not window.default_layout_pending, what="the window's layout")
        session, timeline = window.session, window.timeline

        def save(name: str, later: bool = False):
            app.processEvents()
            window.inspector.refresh()
            timeline.repaint_now()
            path = out / f"{name}.png"
            written.append(path)
            picture = window.grab()
            if later:  # while a job runs: encoding the PNG waits, the window's GUI thread does not
                return lambda: picture.save(str(path))
            picture.save(str(path))
            return None

        def shot(name: str) -> None:
            wait_until(lambda: not window.jobs.running, what="the jobs")
            app.processEvents()
            window.viewport.refresh()
            save(name)

        try:
            shot("01_empty")
            portrait = demo_portrait(Path(tmp))
            window.import_files([portrait, DEMO / "speech.flac", DEMO / "speech.txt"])
            wait_until(lambda: window.media.renderer is not None and session.media.audio is not None,
                       what="the portrait and the audio")
            shot("02_portrait_and_audio")
            window.start_generate(GenerateSettings(emotion="happy", strength=0.6))
            wait_until(lambda: session.project.base is not None, what="Generate")
            session.frame = session.last_frame // 2
            session.select_channels(["lips"])
            window.inspector.reveal("exp.lip_lower_center.y")
            timeline.dope_sheet.set_expanded("lips", True)
            timeline.scrollbar.setValue(timeline.dope_sheet.row_named("group", "lips").top)
            shot("03_generated_playhead_midway")

            # K on the lower lip half-way, a changed value a second later, that key selected
            project = session.project
            lip = "exp.lip_lower_center.y"
            session.select_channels([lip])
            window.key_selection()
            session.frame = session.frame + round(project.fps)
            window.inspector.set_value(lip, float(session.frame_values()[CHANNEL_INDEX[lip]]) + 0.25)
            path = ("layer", session.active_layer, lip)
            timeline.state.select_keys({path: (1,)}, channels=[lip])
            timeline.scrollbar.setValue(timeline.dope_sheet.row_named("channel", lip).top - 40)
            window.inspector.reveal(lip)
            shot("04_key_selected_in_curve_editor")

            # an emotion segment drawn in the timeline: its frames wait for regeneration, then get it
            start = round(session.last_frame * 0.2)
            timeline.emotion_box.setCurrentText("surprised")
            project.add_emotion("surprised", start, start + round(2 * project.fps), 0.9)
            session.frame = start + round(project.fps)
            session.select_channels(["brows"])
            window.inspector.set_expanded(["lips"], False)
            window.inspector.reveal("exp.brow_inner_l.y")
            timeline.dope_sheet.set_expanded("lips", False)
            timeline.scrollbar.setValue(0)
            shot("05_emotion_segment_to_regenerate")
            window.start_regenerate()
            shot("06_emotion_segment_regenerated")

            window.viewport.edit_fit.setChecked(True)
            shot("07_face_fit_editor")
            window.viewport.edit_fit.setChecked(False)
            job = window.start_export(ExportSettings("mp4", Path(tmp) / "talk.mp4"))
            wait_until(lambda: job.progress >= 0.3 or not job.running, what="the export to start")
            write_later = save("08_export_running", later=True)
            wait_until(lambda: not job.running, what="the export")
            write_later()
            shot("09_export_done")

            mesh, ids = face_mesh(Path(tmp), portrait)
            window.import_files([mesh])
            wait_until(lambda: window.heads.loaded is not None and not window.heads.loading, what="the head mesh")
            project.set_mesh_keypoints(ids)
            wait_until(lambda: window.heads.loaded.head is not None and not window.heads.loading,
                       what="the animated head")
            session.select_channels(["jaw"])
            shot("10_head_mesh_beside_the_2d_view")

            for name, dialog in (("11_generate_dialog", GenerateDialog(window.generate_defaults, GENERATORS, True,
                                                                     window)),
                                 ("12_export_dialog", ExportDialog("mp4", Path.home() / "talk.mp4", window,
                                                                   context=window.export_context()))):
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
