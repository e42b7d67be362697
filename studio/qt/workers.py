"""Jobs off the GUI thread: generator-based workers on QThreads, and the event-loop latency monitor.

A :class:`Job` wraps a *generator function* of no arguments (superqt's ``thread_worker`` idea):
each ``yield`` reports progress (a fraction 0…1, or None for "no news") and is a cancel point;
the generator's return value is the result. The work runs on a :class:`QThread`, gets an
immutable request (bound into the generator when it is created) and never touches a widget; the
result, the error or the cancellation comes back as a signal and is applied on the GUI thread
(``on_done``). A job may also yield :class:`~studio.jobs.Partial` pieces of its result (a
streaming generation's chunks): each goes to ``on_partial`` on the GUI thread at once, before the
result. Heavy jobs yield from :func:`studio.jobs.run_in_process`, so their thread only waits on a
pipe while a child process computes.

:class:`JobManager` starts jobs, keeps the list the job panel shows and, while any job runs, an
:class:`EventLoopMonitor`: a precise 10 ms timer on the GUI thread whose lateness is how long the
event loop was blocked. Each job records the worst lateness seen while it ran
(:attr:`Job.max_latency_ms`) — the figure the tests assert stays under 50 ms.
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import (
    QCoreApplication,
    QElapsedTimer,
    QObject,
    Qt,
    QThread,
    QTimer,
    Signal,
)

from studio.jobs import JobCancelled, JobFailed, Partial

#: Least seconds between two progress signals of a worker (the job list needs no more).
PROGRESS_SIGNAL_INTERVAL = 0.03

_live_threads: weakref.WeakSet = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """Worker threads that are still running (tests fail when one outlives its window)."""
    return [t for t in list(_live_threads) if t.isRunning()]


class _WorkerThread(QThread):
    """Iterates a job's generator; talks to the GUI thread through queued signals only."""

    progressed = Signal(float)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, work: Callable[[], Generator], name: str):
        super().__init__()
        self.setObjectName(name)
        self._work = work
        self._cancel = threading.Event()
        _live_threads.add(self)

    def request_cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        last = 0.0
        try:
            generator = self._work()
            while True:
                if self._cancel.is_set():
                    generator.close()  # the job's clean-up runs here (a child is asked to stop)
                    self.cancelled.emit()
                    return
                try:
                    value = next(generator)
                except StopIteration as stop:
                    self.succeeded.emit(stop.value)
                    return
                if isinstance(value, Partial):
                    self.partial.emit(value.value)  # every piece, in order, ahead of the result
                    continue
                now = time.monotonic()
                if value is not None and (now - last >= PROGRESS_SIGNAL_INTERVAL or value >= 1.0):
                    last = now
                    self.progressed.emit(float(value))
        except JobCancelled:
            self.cancelled.emit()
        except JobFailed as exc:
            self.failed.emit(str(exc), exc.details)
        except Exception as exc:  # noqa: BLE001 - shown in the job list, never a crash
            self.failed.emit(f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, OSError))
                             else str(exc), traceback.format_exc())


class Job(QObject):
    """One piece of work as the window shows it: title, progress, error and ``state`` —
    ``"running"``, then ``"done"``, ``"failed"`` or ``"cancelled"``. Its result goes to ``on_done``
    (on the GUI thread) and is not kept; pieces published before it to ``on_partial``; and
    ``on_ended(job)`` runs once it has ended, however it ended (after ``on_done``)."""

    changed = Signal()
    ended = Signal(object)  # the job, once it is done, failed or cancelled

    def __init__(self, title: str, work: Callable[[], Generator], *, on_done: Callable[[Any], None] | None = None,
                 on_failed: Callable[[str], None] | None = None, on_partial: Callable[[Any], None] | None = None,
                 on_ended: Callable[[Job], None] | None = None, visible: bool = True):
        super().__init__()
        self.title = title
        self.visible = visible
        self.state = "running"
        self.progress = 0.0
        self.error = ""
        self.details = ""
        self.max_latency_ms = 0.0
        self._on_done = on_done
        self._on_failed = on_failed
        self._on_partial = on_partial
        self._on_ended = on_ended
        self.partials = 0  # pieces received
        self._partial_error: tuple[str, str] | None = None
        self._clock = QElapsedTimer()
        self.seconds = 0.0
        self._thread = _WorkerThread(work, title)
        self._thread.progressed.connect(self._on_progress)
        self._thread.partial.connect(self._on_partial_signal)
        self._thread.succeeded.connect(self._on_succeeded)
        self._thread.failed.connect(self._on_failed_signal)
        self._thread.cancelled.connect(self._on_cancelled)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def start(self) -> None:
        self._clock.start()
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next yield; ``state`` becomes ``cancelled`` once it has."""
        if self.running:
            self._thread.request_cancel()

    def wait(self, seconds: float | None = None) -> bool:
        """Block until the worker thread has ended (the window's close does this)."""
        if self._thread is None:
            return True
        return self._thread.wait() if seconds is None else self._thread.wait(int(seconds * 1000))

    def _finish(self, state: str) -> None:
        self.state = state
        self.seconds = self._clock.elapsed() / 1000.0
        thread, self._thread = self._thread, None
        thread.wait()  # it has emitted its last signal: returns at once
        on_ended = self._on_ended
        # nothing of the window stays referenced by a finished job
        self._on_done = self._on_failed = self._on_partial = self._on_ended = None
        try:
            if on_ended is not None:
                on_ended(self)
        finally:
            self.changed.emit()
            self.ended.emit(self)

    def _on_progress(self, fraction: float) -> None:
        if self.running:
            self.progress = min(1.0, max(0.0, fraction))
            self.changed.emit()

    def _on_partial_signal(self, value: Any) -> None:
        if not self.running or self._on_partial is None:
            return
        self.partials += 1
        try:
            self._on_partial(value)  # applied here, on the GUI thread
        except Exception as exc:  # noqa: BLE001 - a piece that cannot be applied fails the job
            self._on_partial = None
            self._partial_error = (f"{exc}", traceback.format_exc())
            self._thread.request_cancel()

    def _on_succeeded(self, result: Any) -> None:
        if self._partial_error is not None:
            self._on_failed_signal(*self._partial_error)
            return
        self.progress = 1.0
        try:
            if self._on_done is not None:
                self._on_done(result)  # applied here, on the GUI thread
        except Exception as exc:  # noqa: BLE001 - a result that cannot be applied is an error of the job
            self._on_failed_signal(f"{exc}", traceback.format_exc())
            return
        self._finish("done")

    def _on_failed_signal(self, message: str, details: str) -> None:
        self.error, self.details = message, details
        if self._on_failed is not None:
            self._on_failed(message)
        self._finish("failed")

    def _on_cancelled(self) -> None:
        if self._partial_error is not None:
            self._on_failed_signal(*self._partial_error)
            return
        self._finish("cancelled")


class EventLoopMonitor(QObject):
    """A heartbeat on the GUI thread: a precise timer every ``interval_ms``; how late each beat
    comes is how long the event loop could not run. ``beat(lateness_ms)`` is emitted per beat."""

    beat = Signal(float)

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.max_lateness_ms = 0.0
        self.beats = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timeout)
        self._last = 0.0

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        if not self._timer.isActive():
            self._last = time.perf_counter()
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        self.max_lateness_ms = 0.0
        self.beats = 0

    def _on_timeout(self) -> None:
        now = time.perf_counter()
        lateness = max(0.0, (now - self._last) * 1000.0 - self.interval_ms)
        self._last = now
        self.beats += 1
        self.max_lateness_ms = max(self.max_lateness_ms, lateness)
        self.beat.emit(lateness)


class JobManager(QObject):
    """Starts jobs, lists them for the job panel, and measures the event loop while they run."""

    added = Signal(object)
    removed = Signal(object)
    failed = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: list[Job] = []
        self.monitor = EventLoopMonitor(parent=self)
        self.monitor.beat.connect(self._on_beat)

    def start(self, job: Job) -> Job:
        job.setParent(self)  # deleted with the window, and its connections with it
        self.jobs.append(job)
        job.ended.connect(self._on_job_ended)
        self.monitor.start()
        job.start()
        if job.visible:
            self.added.emit(job)
        return job

    def run(self, title: str, work: Callable[[], Generator], **options) -> Job:
        return self.start(Job(title, work, **options))

    @property
    def running(self) -> list[Job]:
        return [job for job in self.jobs if job.running]

    def clear_finished(self) -> None:
        for job in [job for job in self.jobs if not job.running]:
            self.jobs.remove(job)
            if job.visible:
                self.removed.emit(job)

    def cancel_all(self, wait: bool = True) -> None:
        """Cancel every running job and (``wait``) block until their threads have ended; their last
        signals are then delivered so no job is left ``running``."""
        running = self.running
        for job in running:
            job.cancel()
        if wait:
            for job in running:
                job.wait()
            QCoreApplication.sendPostedEvents()  # the threads' final (queued) signals

    def _on_beat(self, lateness: float) -> None:
        for job in self.jobs:
            if job.running and lateness > job.max_latency_ms:
                job.max_latency_ms = lateness

    def _on_job_ended(self, job: Job) -> None:
        if job.state == "failed" and job.visible:  # a hidden job reports its failure its own way
            self.failed.emit(job)
        if not self.running:
            self.monitor.stop()
