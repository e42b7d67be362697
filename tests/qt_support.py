"""Fixtures and helpers of the Qt tests (a pytest plugin, loaded by tests/conftest.py): the real
main window, offscreen, with throw-away settings and scripted answers to its questions — and
checks that each test leaves no worker thread running and no top-level widget behind. Qt is
imported inside the fixtures, so the other tests never load it."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"
#: The main window's default size (studio.qt.main_window.DEFAULT_SIZE) — the tests' windows have it.
WINDOW_SIZE = (1600, 1000)


class ScriptedDialogs:
    """Answers the window's questions as the test set them; records what was asked."""

    def __init__(self):
        self.errors: list[tuple[str, str]] = []
        self.asked: list = []
        self.save_answer = "discard"
        self.recover = True
        self.open_path = self.save_path = self.import_path = None
        self.generate = None
        self.export = None

    def open_project(self, folder=""):
        return self.open_path

    def save_project_as(self, suggested):
        return self.save_path

    def import_file(self, role, extensions, folder=""):
        return self.import_path

    def generate_settings(self, defaults, generators, has_transcript):
        self.asked.append(("generate", has_transcript))
        return self.generate

    def export_settings(self, kind, suggested, context=None):
        self.asked.append(("export", kind, suggested, context))
        return self.export

    def ask_save_changes(self, name):
        self.asked.append(("save changes", name))
        return self.save_answer

    def offer_recovery(self, name, saved):
        self.asked.append(("recover", name))
        return self.recover

    def error(self, title, text, details=""):
        self.errors.append((title, text))


@pytest.fixture
def no_leaks(qapp):
    """Fails the test when it leaves a worker thread running or a top-level widget alive."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication

    from studio.qt.workers import running_threads

    before = {id(w) for w in QApplication.topLevelWidgets()}
    yield
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QCoreApplication.processEvents()
    gc.collect()  # the closed windows' Python side goes now, not during interpreter shutdown
    leaked = [w for w in QApplication.topLevelWidgets() if id(w) not in before and w.isVisible()]
    threads = running_threads()
    assert not threads, f"worker threads still running: {[t.objectName() for t in threads]}"
    assert not leaked, f"top-level widgets left open: {leaked}"


@pytest.fixture
def make_window(no_leaks, qtbot, tmp_path):
    """``make_window(**options)`` → a shown MainWindow with scripted dialogs; closed afterwards."""
    from PySide6.QtCore import QSettings

    from studio.qt.main_window import MainWindow
    from studio.qt.workers import running_threads

    windows = []

    def make(settings_file: Path | None = None, **options):
        settings = QSettings(str(settings_file or tmp_path / "settings.ini"), QSettings.IniFormat)
        options.setdefault("autosave_s", 3600.0)
        options.setdefault("probe_device", False)
        window = MainWindow(settings, **options)
        window.dialogs = ScriptedDialogs()
        qtbot.addWidget(window)
        if settings_file is None or not Path(settings_file).exists():
            window.resize(*WINDOW_SIZE)  # the offscreen screen is 800×800: the size a desktop gives it
        window.show()
        qtbot.waitUntil(lambda: not window.default_layout_pending, timeout=5000)  # settled at the shown size
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()  # cancels and waits for its jobs; the close that follows asks nothing
    assert not running_threads()


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory) -> Path:
    from studio.qt.screenshots import demo_portrait

    return demo_portrait(tmp_path_factory.mktemp("portrait"))


def wait_for_jobs(qtbot, window, timeout: float = 120.0) -> None:
    qtbot.waitUntil(lambda: not window.jobs.running, timeout=int(timeout * 1000))


def load_demo(qtbot, window, portrait: Path, transcript: bool = True) -> None:
    """Imports the demo portrait, speech and transcript and waits for them."""
    files = [portrait, DEMO / "speech.flac"] + ([DEMO / "speech.txt"] if transcript else [])
    window.import_files(files)
    wait_for_jobs(qtbot, window)
    assert window.dialogs.errors == []
    assert window.media.renderer is not None and window.session.media.audio is not None


def document_state(p) -> tuple:
    """Everything a project holds, comparable with ==."""
    return (p.fps, p.num_frames, dict(p.sources), None if p.identity is None else p.identity.tolist(),
            None if p.portrait_keypoints is None else p.portrait_keypoints.tolist(), p.mesh_keypoints, p.base, p.layers,
            p.emotion_segments, p.intensity, dict(p.overrides), p.locked_groups, dict(p.limits),
            p.evaluate().tobytes())


def mouth_box(window) -> tuple[slice, slice]:
    """Rows and columns of the photo around the mouth (from the fit)."""
    from studio.render import face_mesh as fm

    lips = window.media.fit.landmarks[list(fm.LIP_OUTER_UPPER + fm.LIP_OUTER_LOWER), :2]
    (x0, y0), (x1, y1) = lips.min(0) - 10, lips.max(0) + 10
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def changed_pixels(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ by more than 8 grey levels in some channel."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) > 8))


def widget_pixels(widget) -> np.ndarray:
    """What a widget shows, H × W × 3 uint8 RGB."""
    from studio.qt.viewport2d import qimage_to_array

    return qimage_to_array(widget.grab().toImage())


def mouse_drag(qtbot, widget, start, end, steps: int = 6) -> None:
    """A real press-move-release drag with the left button (QTest), in widget coordinates."""
    from PySide6.QtCore import QPoint, Qt

    qtbot.mousePress(widget, Qt.LeftButton, Qt.NoModifier, start)
    for t in np.linspace(0, 1, steps)[1:]:
        qtbot.mouseMove(widget, QPoint(round(start.x() + t * (end.x() - start.x())),
                                       round(start.y() + t * (end.y() - start.y()))))
    qtbot.mouseRelease(widget, Qt.LeftButton, Qt.NoModifier, end)


def lane_point(timeline, kind: str, frame: float, name=None):
    """The middle of a dope-sheet row (``ruler``, ``audio``, ``phones``, ``emotion``, a ``group``
    or a ``channel`` by name) at ``frame``."""
    from PySide6.QtCore import QPoint

    sheet = timeline.dope_sheet
    row = sheet.row_named(kind, name)
    return QPoint(round(timeline.state.x_of(frame)), sheet.row_top(row) + row.height // 2)


def settled_view(qtbot, window) -> np.ndarray:
    """The 2D view's pixels once its pending render (it renders at most 60 times a second, on a
    timer) has run."""
    viewport = window.viewport
    qtbot.waitUntil(lambda: not viewport._timer.isActive(), timeout=5000)
    return viewport.grab_pixels()
