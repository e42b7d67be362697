"""Every question the window asks: file choosers, the Generate and Export dialogs, confirmations.

:class:`Dialogs` gathers them behind plain methods returning plain values (a path, a frozen
settings record, a choice), so the window's logic never depends on a modal dialog and the tests
answer the questions themselves (they replace ``window.dialogs``). The :class:`GenerateDialog`
and :class:`ExportDialog` are ordinary widgets the tests also drive directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from studio.core.document import EMOTIONS

EXPORT_KINDS = {
    "mp4": "Video (MP4, H.264 + AAC)",
    "png": "PNG image sequence",
    "motion": "Motion file (JSON, NPZ or CSV)",
    "arkit": "ARKit blendshape curves (CSV or JSON)",
}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


@dataclass(frozen=True)
class GenerateSettings:
    """What Generate… asks: the generator, its seed, an emotion over the whole clip (neutral: the
    document's emotion segments as they are) and whether the transcript guides the lips."""

    generator: str = "rig"
    seed: int = 0
    emotion: str = "neutral"
    strength: float = 1.0
    use_transcript: bool = True
    language: str = "en-us"
    steps: int = 10  # the neural generator's sampling steps
    guidance: float = 1.0  # … its classifier-free guidance scale
    device: str = "auto"  # … where it runs: auto (CUDA when it works), cpu, cuda


@dataclass(frozen=True)
class ExportSettings:
    """Where and how to export: ``kind`` is a key of :data:`EXPORT_KINDS`."""

    kind: str
    path: Path
    crf: int = 18
    preset: str = "veryfast"
    audio: bool = True
    layout: str = "studio"  # ARKit CSV columns: "studio" or "livelinkface"


def _file_filter(extensions, label: str) -> str:
    return f"{label} ({' '.join('*' + e for e in extensions)})"


class GenerateDialog(QDialog):
    def __init__(self, defaults: GenerateSettings, generators: tuple[str, ...], has_transcript: bool,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Generate motion")
        form = QFormLayout(self)
        self.generator = QComboBox(self)
        self.generator.addItems(list(generators))
        self.generator.setCurrentText(defaults.generator)
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(defaults.seed)
        self.seed.setToolTip("Seed of the head motion, blinks and gaze: the same seed gives the same motion")
        self.emotion = QComboBox(self)
        self.emotion.addItems(list(EMOTIONS))
        self.emotion.setCurrentText(defaults.emotion)
        self.emotion.setToolTip("An emotion over the whole clip, added to the document as an emotion segment "
                                "(neutral: the emotion segments already there)")
        self.strength = QDoubleSpinBox(self)
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.1)
        self.strength.setValue(defaults.strength)
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 1000)
        self.steps.setValue(defaults.steps)
        self.steps.setToolTip("Neural generator: flow-matching sampling steps (10 is the default)")
        self.guidance = QDoubleSpinBox(self)
        self.guidance.setRange(0.0, 20.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setValue(defaults.guidance)
        self.guidance.setToolTip("Neural generator: classifier-free guidance scale (1: none)")
        self.device = QComboBox(self)
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(defaults.device)
        self.device.setToolTip("Neural generator: auto runs on CUDA when it really works, else on the CPU")
        self.generator.currentTextChanged.connect(self._on_generator)
        self._on_generator(self.generator.currentText())
        self.transcript = QCheckBox("Align the lips to the transcript", self)
        self.transcript.setChecked(defaults.use_transcript and has_transcript)
        self.transcript.setEnabled(has_transcript)
        if not has_transcript:
            self.transcript.setToolTip("Import a transcript (File ▸ Import ▸ Transcript) for forced alignment")
        form.addRow("Generator", self.generator)
        form.addRow("Seed", self.seed)
        form.addRow("Emotion", self.emotion)
        form.addRow("Strength", self.strength)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Device", self.device)
        form.addRow("", self.transcript)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.button(QDialogButtonBox.Ok).setText("Generate")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _on_generator(self, name: str) -> None:
        for widget in (self.steps, self.guidance, self.device):
            widget.setEnabled(name != "rig")  # the rig is deterministic numpy on the CPU

    def settings(self) -> GenerateSettings:
        return GenerateSettings(self.generator.currentText(), self.seed.value(), self.emotion.currentText(),
                                self.strength.value(), self.transcript.isChecked(), steps=self.steps.value(),
                                guidance=self.guidance.value(), device=self.device.currentText())


class ExportDialog(QDialog):
    """The export's target and its options, for one of :data:`EXPORT_KINDS`."""

    def __init__(self, kind: str, suggested: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.setWindowTitle(f"Export {EXPORT_KINDS[kind]}")
        form = QFormLayout(self)
        self.path = QLineEdit(str(suggested), self)
        self.path.setMinimumWidth(360)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        form.addRow("Folder" if kind == "png" else "File", row)
        self.crf = QSpinBox(self)
        self.crf.setRange(0, 51)
        self.crf.setValue(18)
        self.crf.setToolTip("x264 constant rate factor: lower is better (0 lossless, 18 visually lossless)")
        self.preset = QComboBox(self)
        self.preset.addItems(list(X264_PRESETS))
        self.preset.setCurrentText("veryfast")
        self.audio = QCheckBox("Include the project's audio", self)
        self.audio.setChecked(True)
        self.layout_choice = QComboBox(self)
        self.layout_choice.addItems(["studio", "livelinkface"])
        self.layout_choice.setToolTip("CSV columns: the studio's (frame, time, 52 names) or Live Link Face's")
        rows = {"mp4": [("Quality (CRF)", self.crf), ("Speed", self.preset), ("", self.audio)],
                "arkit": [("CSV layout", self.layout_choice)]}.get(kind, [])
        for label, widget in rows:
            form.addRow(label, widget)
        for widget in {self.crf, self.preset, self.audio, self.layout_choice} - {w for _, w in rows}:
            widget.hide()  # options of the other kinds
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.button(QDialogButtonBox.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        if self.kind == "png":
            chosen = QFileDialog.getExistingDirectory(self, "Export PNG frames into", self.path.text())
        else:
            filters = {"mp4": "MP4 video (*.mp4)", "motion": "Motion files (*.json *.npz *.csv)",
                       "arkit": "ARKit curves (*.arkit.csv *.arkit.json *.csv *.json)"}[self.kind]
            chosen, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(), filters)
        if chosen:
            self.path.setText(chosen)

    def settings(self) -> ExportSettings:
        return ExportSettings(self.kind, Path(self.path.text()), self.crf.value(), self.preset.currentText(),
                              self.audio.isChecked(), self.layout_choice.currentText())


class Dialogs:
    """The window's questions (see the module docstring); ``parent`` is the main window."""

    def __init__(self, parent: QWidget):
        self.parent = parent

    def open_project(self, folder: str = "") -> Path | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open project", folder, "Projects (*.thproj)")
        return Path(path) if path else None

    def save_project_as(self, suggested: str) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self.parent, "Save project as", suggested, "Projects (*.thproj)")
        if not path:
            return None
        path = Path(path)
        return path if path.suffix.lower() == ".thproj" else path.with_name(path.name + ".thproj")

    def import_file(self, role: str, extensions: tuple[str, ...], folder: str = "") -> Path | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, f"Import {role}", folder,
                                              _file_filter(extensions, role.capitalize()))
        return Path(path) if path else None

    def generate_settings(self, defaults: GenerateSettings, generators: tuple[str, ...],
                          has_transcript: bool) -> GenerateSettings | None:
        dialog = GenerateDialog(defaults, generators, has_transcript, self.parent)
        return dialog.settings() if dialog.exec() == QDialog.Accepted else None

    def export_settings(self, kind: str, suggested: Path) -> ExportSettings | None:
        dialog = ExportDialog(kind, suggested, self.parent)
        return dialog.settings() if dialog.exec() == QDialog.Accepted else None

    def ask_save_changes(self, name: str) -> str:
        """``"save"``, ``"discard"`` or ``"cancel"``."""
        answer = QMessageBox.question(self.parent, "Unsaved changes", f"Save the changes to {name}?",
                                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")

    def offer_recovery(self, project_name: str, saved: str) -> bool:
        answer = QMessageBox.question(
            self.parent, "Recover unsaved work",
            f"The studio did not close normally. An autosave of {project_name} from {saved} was found.\n\n"
            "Recover it? (No deletes the autosave.)", QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    def error(self, title: str, text: str, details: str = "") -> None:
        """Shows an error without blocking the caller (the window stays live behind it)."""
        box = QMessageBox(QMessageBox.Warning, title, text, QMessageBox.Ok, self.parent)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
