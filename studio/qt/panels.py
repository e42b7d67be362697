"""Small panels: the media bin (the project's sources), the job list and the status bar's job indicator.

* :class:`MediaBin` lists the four sources a project can have — portrait, audio, transcript,
  head mesh — with what was loaded from each (size, duration, face fit, the transcript's first
  words). It observes the session (``media``) and the document (``sources``); double-click an
  empty row to import, the context menu removes a source (an undoable edit).
* :class:`JobList` shows every visible job of the :class:`~studio.qt.workers.JobManager`: a
  progress bar and a Cancel button while it runs, then how it ended (errors in red, with the
  details in the tooltip) and the longest the GUI thread was blocked meanwhile.
* :class:`JobIndicator` sits in the status bar: the newest running job's title, progress and a
  Cancel button — an export or a generation can be followed and stopped with the Jobs dock closed.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.session import Session, format_time
from studio.qt.workers import Job, JobManager

ROLES = ("portrait", "audio", "transcript", "mesh")
ROLE_LABELS = {"portrait": "Portrait", "audio": "Audio", "transcript": "Transcript", "mesh": "Head mesh"}
FACE_TEXT = {"pending": "finding the face…", "detected": "face found", "placed": "keypoints placed by hand",
             "missing": "no face found — place the keypoints"}


class MediaBin(QTreeWidget):
    """The project's sources (see the module docstring). ``import_requested(role)`` asks the window
    to import a file for a role."""

    import_requested = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setColumnCount(2)
        self.setHeaderLabels(["Source", "Details"])
        self.setRootIsDecorated(False)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemDoubleClicked.connect(self._double_clicked)
        self.rows: dict[str, QTreeWidgetItem] = {}
        for role in ROLES:
            item = QTreeWidgetItem([ROLE_LABELS[role], ""])
            item.setData(0, Qt.UserRole, role)
            self.addTopLevelItem(item)
            self.rows[role] = item
        self.setColumnWidth(0, 160)
        session.events.media.connect(self._on_change)
        session.follow_project({"sources": self._on_change}, self._on_change)

    def _on_change(self, event=None) -> None:
        sources = self.session.project.sources
        media = self.session.media
        for role, item in self.rows.items():
            source = sources.get(role)
            if source is None:
                item.setText(0, ROLE_LABELS[role])
                item.setText(1, "— drop a file or double-click")
                item.setToolTip(0, "")
                item.setForeground(1, Qt.gray)
                continue
            item.setText(0, f"{ROLE_LABELS[role]}: {Path(source.path).name}")
            item.setToolTip(0, source.path)
            item.setForeground(1, self.palette().text())
            item.setText(1, self._details(role, media))

    @staticmethod
    def _details(role: str, media) -> str:
        if role == "portrait":
            p = media.portrait
            return "loading…" if p is None or p.face == "pending" else \
                f"{p.size[1]}×{p.size[0]}, {FACE_TEXT[p.face]}"
        if role == "audio":
            a = media.audio
            return "loading…" if a is None else f"{format_time(a.duration)} ({a.duration:.2f} s)"
        if role == "transcript":
            t = media.transcript
            if t is None:
                return "loading…"
            words = " ".join(t.split())
            return f"“{words[:60]}…”" if len(words) > 60 else f"“{words}”"
        m = media.mesh
        return "loading…" if m is None else f"{m.num_vertices} vertices, {m.num_faces} triangles"

    def _double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        self.import_requested.emit(item.data(0, Qt.UserRole))

    def _menu(self, point) -> None:
        item = self.itemAt(point)
        if item is None:
            return
        role = item.data(0, Qt.UserRole)
        menu = QMenu(self)
        menu.addAction(f"Import {ROLE_LABELS[role].lower()}…", lambda: self.import_requested.emit(role))
        if role in self.session.project.sources:
            menu.addAction("Remove from project", lambda: self.session.project.set_source(role, None))
        menu.exec(self.viewport().mapToGlobal(point))


class JobRow(QWidget):
    """One job: title, progress bar, Cancel; then its outcome."""

    def __init__(self, job: Job, parent: QWidget | None = None):
        super().__init__(parent)
        self.job = job
        self.title = QLabel(job.title, self)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.cancel = QPushButton("Cancel", self)
        self.cancel.clicked.connect(job.cancel)
        self.outcome = QLabel(self)
        self.outcome.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.outcome)
        job.changed.connect(self.update_from_job)
        self.update_from_job()

    def update_from_job(self) -> None:
        job = self.job
        self.bar.setValue(int(1000 * job.progress))
        self.bar.setFormat(f"{100 * job.progress:.0f} %")
        running = job.running
        self.cancel.setVisible(running)
        self.bar.setVisible(running)
        self.outcome.setVisible(not running)
        if running:
            return
        blocked = f"GUI blocked ≤ {job.max_latency_ms:.0f} ms"
        if job.state == "done":
            self.outcome.setText(f"Done in {job.seconds:.1f} s · {blocked}")
            self.outcome.setStyleSheet("color: #8fd18f;")
        elif job.state == "cancelled":
            self.outcome.setText(f"Cancelled after {job.seconds:.1f} s")
            self.outcome.setStyleSheet("color: #d8c070;")
        else:
            self.outcome.setText(f"Failed: {job.error}")
            self.outcome.setStyleSheet("color: #ff7b72;")
            self.outcome.setToolTip(job.details)


class JobList(QWidget):
    """Every visible job, newest first, with "Clear finished"."""

    def __init__(self, jobs: JobManager, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.rows: dict[int, JobRow] = {}
        self.empty = QLabel("No jobs yet: Generate and the exports run here.", self)
        self.empty.setStyleSheet("color: #8a8f98;")
        self.empty.setWordWrap(True)  # a narrow dock wraps it rather than cutting it off
        self.container = QWidget(self)
        self.list_layout = QVBoxLayout(self.container)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.list_layout.addWidget(self.empty)
        self.list_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.container)
        clear = QPushButton("Clear finished", self)
        clear.clicked.connect(jobs.clear_finished)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(scroll)
        layout.addWidget(clear, 0, Qt.AlignRight)
        jobs.added.connect(self._add)
        jobs.removed.connect(self._remove)

    def _add(self, job: Job) -> None:
        row = JobRow(job, self.container)
        self.rows[id(job)] = row
        self.list_layout.insertWidget(0, row)
        self.empty.setVisible(False)

    def _remove(self, job: Job) -> None:
        row = self.rows.pop(id(job), None)
        if row is not None:
            row.deleteLater()
        self.empty.setVisible(not self.rows)


class JobIndicator(QWidget):
    """The newest running visible job in the status bar (see the module docstring); hidden when
    no job runs. "+ n" counts the other running jobs."""

    def __init__(self, jobs: JobManager, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.job: Job | None = None
        self.title = QLabel(self)
        self.title.setMaximumWidth(260)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(160)
        self.bar.setMaximumHeight(16)
        self.bar.setTextVisible(False)
        self.cancel = QPushButton("Cancel", self)
        self.cancel.setToolTip("Stop this job (the document and the disk stay as they were)")
        self.cancel.clicked.connect(self._on_cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel)
        jobs.added.connect(self._on_added)
        self.setVisible(False)

    def _visible_running(self) -> list[Job]:
        return [job for job in self.jobs.jobs if job.visible and job.running]

    def _on_added(self, job: Job) -> None:
        job.changed.connect(self._update)
        self._update()

    def _update(self) -> None:
        running = self._visible_running()
        self.job = running[-1] if running else None
        self.setVisible(self.job is not None)
        if self.job is None:
            return
        more = f"  (+{len(running) - 1})" if len(running) > 1 else ""
        text = f"{self.job.title}{more}"
        self.title.setText(self.title.fontMetrics().elidedText(text, Qt.ElideMiddle, self.title.maximumWidth()))
        self.title.setToolTip(text)
        self.bar.setValue(int(1000 * self.job.progress))

    def _on_cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
