"""The desktop application: the QApplication (dark Fusion theme, high-DPI) and ``main``.

``studio`` with no arguments (and ``make run``) calls :func:`main`. Organization and application
names are set before anything reads QSettings, so settings, recent files, the window layout and
the recovery files live in one per-user place.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ORGANIZATION = "Talking Head Studio"
APPLICATION = "Talking Head Studio"


def dark_palette() -> QPalette:
    """A dark palette for the Fusion style (greys, a blue accent, readable disabled text)."""
    window, base, text, accent = QColor(45, 45, 50), QColor(30, 30, 34), QColor(225, 225, 230), QColor(64, 140, 230)
    p = QPalette()
    for group in (QPalette.Active, QPalette.Inactive):
        p.setColor(group, QPalette.Window, window)
        p.setColor(group, QPalette.WindowText, text)
        p.setColor(group, QPalette.Base, base)
        p.setColor(group, QPalette.AlternateBase, QColor(38, 38, 43))
        p.setColor(group, QPalette.ToolTipBase, QColor(60, 60, 66))
        p.setColor(group, QPalette.ToolTipText, text)
        p.setColor(group, QPalette.PlaceholderText, QColor(130, 130, 140))
        p.setColor(group, QPalette.Text, text)
        p.setColor(group, QPalette.Button, QColor(55, 55, 61))
        p.setColor(group, QPalette.ButtonText, text)
        p.setColor(group, QPalette.BrightText, QColor(255, 90, 90))
        p.setColor(group, QPalette.Link, accent)
        p.setColor(group, QPalette.Highlight, accent)
        p.setColor(group, QPalette.HighlightedText, QColor(255, 255, 255))
        p.setColor(group, QPalette.Light, QColor(75, 75, 82))
        p.setColor(group, QPalette.Midlight, QColor(62, 62, 68))
        p.setColor(group, QPalette.Mid, QColor(40, 40, 45))
        p.setColor(group, QPalette.Dark, QColor(25, 25, 28))
        p.setColor(group, QPalette.Shadow, QColor(10, 10, 12))
    disabled = QColor(115, 115, 122)
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText, QPalette.HighlightedText):
        p.setColor(QPalette.Disabled, role, disabled)
    p.setColor(QPalette.Disabled, QPalette.Base, QColor(36, 36, 40))
    p.setColor(QPalette.Disabled, QPalette.Button, QColor(48, 48, 53))
    p.setColor(QPalette.Disabled, QPalette.Window, window)
    p.setColor(QPalette.Disabled, QPalette.Highlight, QColor(70, 70, 78))
    return p


def create_app(argv: list[str] | None = None) -> QApplication:
    """The application object (the existing one when there is one), themed and named."""
    app = QApplication.instance()
    if app is None:
        # High DPI: Qt 6 always scales; pass fractional factors through (125 %, 150 % screens).
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    return app


def main(argv: list[str] | None = None) -> int:
    """Open the main window (with the project files named in ``argv``), offer a crash's autosave, run."""
    from studio.qt.main_window import MainWindow

    argv = list(sys.argv[1:] if argv is None else argv)
    app = create_app([sys.argv[0]] + argv)
    window = MainWindow()
    window.show()
    if not window.offer_recovery():
        window.import_files([Path(a) for a in argv if not a.startswith("-")])
    return app.exec()
