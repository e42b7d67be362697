"""Safety and files in the real window: autosave and recovery after a crash, unsaved-changes
prompts on New/Open/Quit, drag and drop of files, recent files and the remembered layout."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from qt_support import DEMO, document_state, wait_for_jobs

from studio.core.document import BaseMotion, Project
from studio.core.motion import neutral_motion
from studio.core.project_file import autosave_path, save_project


def edited_project(n: int = 50) -> Project:
    project = Project(25, n)
    values = neutral_motion(n)
    values[:, 0] = np.linspace(0, 0.2, n)
    project.set_base(BaseMotion(values, project.conditions(np.arange(n)), "rig", {"seed": 1}))
    layer = project.add_layer("Keys")
    project.insert_keys(("layer", layer, "pose.yaw"), [0, 20], [0.0, 12.0])
    project.add_emotion("sad", 5, 30, 0.8)
    return project


def test_autosave_then_recovery_after_a_crash(make_window, qtbot, tmp_path):
    settings_file = tmp_path / "settings.ini"
    crashed = make_window(settings_file, autosave_s=0.2)
    crashed.session.set_project(edited_project(), tmp_path / "scene.thproj")
    state = document_state(crashed.session.project)
    recovery = autosave_path(tmp_path / "scene.thproj", folder=tmp_path / "recovery")
    qtbot.waitUntil(recovery.is_file, timeout=10000)  # the autosave timer wrote it
    assert recovery.parent == settings_file.parent / "recovery"
    assert crashed.session.project.is_modified  # an autosave does not count as saving
    time.sleep(0.05)
    crashed.recovery.timer.stop()  # the "crashed" session writes nothing more

    # A new start while the recovery file is newer than the last clean exit: offered, accepted.
    window = make_window(settings_file)
    assert window.offer_recovery()
    assert window.dialogs.asked == [("recover", "scene.thproj")]
    project = window.session.project
    assert document_state(project) == state
    assert project.is_modified and window.session.path == tmp_path / "scene.thproj"
    assert window.windowTitle() == "scene.thproj* — Talking Head Studio"

    # Saving the recovered work removes the recovery file; a clean exit records itself.
    window._save_to(tmp_path / "scene.thproj")
    assert not recovery.exists()
    window.shutdown()
    assert float(QSettings(str(settings_file), QSettings.IniFormat).value("session/clean_exit")) > 0


def test_a_recovery_file_older_than_the_clean_exit_or_declined_is_not_used(make_window, tmp_path):
    settings_file = tmp_path / "settings.ini"
    recovery = autosave_path(None, "untitled", tmp_path / "recovery")
    save_project(edited_project(), recovery, mark_clean=False)
    settings = QSettings(str(settings_file), QSettings.IniFormat)
    settings.setValue("recovery/file", str(recovery))
    settings.setValue("session/clean_exit", time.time() + 10)  # a clean exit after the autosave
    settings.sync()
    window = make_window(settings_file)
    assert not window.offer_recovery() and window.dialogs.asked == []
    window.settings.setValue("session/clean_exit", 0.0)
    window.dialogs.recover = False
    assert not window.offer_recovery()  # offered, declined: the file goes
    assert window.dialogs.asked == [("recover", "an untitled project")]
    assert not recovery.exists() and window.session.project.num_frames == 0


def test_unsaved_changes_are_asked_about_on_new_open_and_quit(make_window, tmp_path):
    window = make_window()
    project = window.session.project
    project.set_timing(num_frames=10)
    dialogs = window.dialogs
    dialogs.save_answer = "cancel"
    window.new_action.trigger()
    assert window.session.project is project and dialogs.asked == [("save changes", "Untitled")]
    dialogs.open_path = tmp_path / "missing.thproj"
    window.open_action.trigger()
    assert window.session.project is project
    window.close()
    assert window.isVisible()  # Quit cancelled: still open
    dialogs.save_answer = "save"
    dialogs.save_path = tmp_path / "kept.thproj"
    window.new_action.trigger()
    assert (tmp_path / "kept.thproj").is_file() and window.session.project is not project
    window.session.project.set_timing(num_frames=3)
    dialogs.save_answer = "discard"
    window.close()
    assert not window.isVisible()


def test_a_damaged_project_file_is_reported_and_nothing_changes(make_window, tmp_path):
    window = make_window()
    bad = tmp_path / "bad.thproj"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    before = window.session.project
    assert not window.open_project(bad)
    assert window.session.project is before
    assert window.dialogs.errors[-1][0] == "Cannot open the project" and "bad.thproj" in window.dialogs.errors[-1][1]


def drop(window, paths) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, event)
    return True


def test_dropping_files_imports_them_by_extension(make_window, astronaut_png, qtbot, tmp_path):
    window = make_window()
    assert drop(window, [astronaut_png, DEMO / "speech.flac", DEMO / "speech.txt"])
    wait_for_jobs(qtbot, window)
    project = window.session.project
    assert set(project.sources) == {"portrait", "audio", "transcript"}
    assert project.sources["portrait"].path == str(astronaut_png)
    assert project.num_frames == 161 and window.dialogs.errors == []
    head = tmp_path / "tetrahedron.obj"
    head.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    assert drop(window, [head])
    wait_for_jobs(qtbot, window)
    assert project.sources["mesh"].path == str(head) and window.session.media.mesh.num_vertices == 4
    assert window.media_bin.rows["mesh"].text(1) == "4 vertices, 4 triangles"
    steps = len(project.undo_stack)
    notes = tmp_path / "notes.xyz"
    notes.write_text("?")
    assert drop(window, [notes])
    assert window.dialogs.errors and "notes.xyz" in window.dialogs.errors[-1][1]
    assert len(project.undo_stack) == steps
    # A dropped project file is opened (after the unsaved-changes question).
    saved = tmp_path / "dropped.thproj"
    save_project(edited_project(), saved)
    assert drop(window, [saved])
    assert window.session.path == saved.resolve() and window.session.project.num_frames == 50


def test_recent_files_and_the_window_layout_are_remembered(make_window, tmp_path):
    settings_file = tmp_path / "settings.ini"
    window = make_window(settings_file)
    paths = []
    for i in range(3):
        path = tmp_path / f"p{i}.thproj"
        save_project(edited_project(10), path)
        window.open_project(path)
        paths.append(str(path.resolve()))
    assert window.recent_files() == paths[::-1]
    window._fill_recent()
    assert [a.text() for a in window.recent_menu.actions()][:3] == paths[::-1]
    window.jobs_dock.hide()
    window.shutdown()
    assert QSettings(str(settings_file), QSettings.IniFormat).value("window/geometry") is not None
    again = make_window(settings_file)
    assert again.recent_files() == paths[::-1]
    assert not again.jobs_dock.isVisible() and again.media_dock.isVisible()
