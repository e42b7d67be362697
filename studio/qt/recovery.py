"""Safety: autosave to a recovery file, and offer it back after a crash.

Every :data:`DEFAULT_INTERVAL_S` seconds (``recovery/interval_s`` in the settings; tests use a
short one) a modified project is saved — a copy of the document (:meth:`Project.copy`: every slot
is an immutable value, so the copy is cheap and consistent) written on a worker thread,
atomically — to a recovery file in ``recovery/`` beside the settings file, named per project
(:func:`studio.core.project_file.autosave_path`). The settings remember which file it is and for
which project.

A clean exit (and every explicit save) deletes the recovery file and records the time of the
clean exit. So at start, a recovery file newer than the last clean exit means the studio did not
close normally: the window offers it, and a recovered project opens modified (its undo stack has
no clean point, :meth:`UndoStack.reset_clean`) under its original path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer

from studio.core.document import Project
from studio.core.project_file import autosave_path, load_project, save_project
from studio.core.session import Session
from studio.qt.workers import Job, JobManager

DEFAULT_INTERVAL_S = 180.0


@dataclass(frozen=True)
class RecoveryFile:
    """An autosave left by a session that did not end cleanly."""

    path: Path
    project_path: Path | None  # where the project was saved, None for an untitled one
    saved: float  # time.time() of the autosave

    @property
    def project_name(self) -> str:
        return self.project_path.name if self.project_path else "an untitled project"


def _autosave_work(project: Project, path: Path):
    yield None  # a cancel point before writing
    save_project(project, path, mark_clean=False)
    return path


class Recovery(QObject):
    """Autosaves the session's project and finds what a crashed session left (see the module)."""

    def __init__(self, session: Session, settings: QSettings, jobs: JobManager, interval_s: float | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.jobs = jobs
        self.folder = Path(settings.fileName()).parent / "recovery"
        if interval_s is None:
            interval_s = float(settings.value("recovery/interval_s", DEFAULT_INTERVAL_S))
        self._saved_index: tuple[int, int] | None = None  # (project id, undo index) of the last autosave
        self._job: Job | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(max(1, int(interval_s * 1000)))
        self.timer.timeout.connect(self.autosave)
        self.timer.start()

    # --- autosaving -----------------------------------------------------------------------------
    def autosave(self) -> Job | None:
        """Start an autosave when the project changed since the last one; returns its job."""
        project = self.session.project
        state = (id(project), project.undo_stack.index)
        if not project.is_modified or state == self._saved_index or (self._job is not None and self._job.running):
            return None
        path = autosave_path(self.session.path, "untitled", self.folder)
        # Recorded before writing: a crash right after the file lands must still find it.
        self.settings.setValue("recovery/file", str(path))
        self.settings.setValue("recovery/project", str(self.session.path) if self.session.path else "")
        self.settings.sync()

        def done(written: Path) -> None:
            self._saved_index = state
            self.settings.setValue("recovery/time", time.time())
            self.settings.sync()

        snapshot = project.copy()
        self._job = self.jobs.run("Autosave", lambda: _autosave_work(snapshot, path), on_done=done, visible=False)
        return self._job

    def discard(self) -> None:
        """Forget the recovery file (the project was saved, or the user declined to recover)."""
        value = self.settings.value("recovery/file", "")
        if value:
            Path(str(value)).unlink(missing_ok=True)
        for key in ("recovery/file", "recovery/project", "recovery/time"):
            self.settings.remove(key)
        self._saved_index = None
        self.settings.sync()

    def clean_exit(self) -> None:
        self.timer.stop()
        self.discard()
        self.settings.setValue("session/clean_exit", time.time())
        self.settings.sync()

    # --- after a crash --------------------------------------------------------------------------
    def pending(self) -> RecoveryFile | None:
        """The recovery file a session that did not end cleanly left, if any."""
        value = str(self.settings.value("recovery/file", "") or "")
        if not value:
            return None
        path = Path(value)
        if not path.is_file():
            return None
        clean_exit = float(self.settings.value("session/clean_exit", 0.0) or 0.0)
        if path.stat().st_mtime <= clean_exit:
            return None
        project = str(self.settings.value("recovery/project", "") or "")
        return RecoveryFile(path, Path(project) if project else None,
                            float(self.settings.value("recovery/time", path.stat().st_mtime)))

    def recover(self, found: RecoveryFile) -> None:
        """Open the recovered project in the session, modified, under its original path."""
        project = load_project(found.path)
        project.undo_stack.reset_clean()
        self.session.set_project(project, found.project_path)
