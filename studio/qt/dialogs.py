"""Every question the window asks: file choosers, the Generate and Export dialogs, confirmations.

:class:`Dialogs` gathers them behind plain methods returning plain values (a path, a frozen
settings record, a choice), so the window's logic never depends on a modal dialog and the tests
answer the questions themselves (they replace ``window.dialogs``). The :class:`GenerateDialog`
and :class:`ExportDialog` are ordinary widgets the tests also drive directly.

The Export dialog offers every exporter of the plugin registry, grouped by what leaves the studio
(:data:`EXPORT_KINDS`): the portrait as a video or PNG frames, the head mesh as a mesh sequence or a
3D render, the motion, the ARKit curves. Each kind shows its own options; a kind that cannot run
now (no portrait fit, no head mesh, keypoints missing…) says why in the dialog, in words from the
window (:class:`ExportContext`), and its Export button stays off.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType

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
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from studio.core.document import EMOTIONS

EXPORT_KINDS = {
    "mp4": "Video of the portrait (MP4, H.264 + AAC)",
    "png": "Portrait frames (PNG sequence)",
    "mesh": "Mesh sequence (OBJ, PLY, NPY, glTF/GLB, USD)",
    "mesh_video": "3D render of the head mesh (MP4)",
    "motion": "Motion file (JSON, NPZ, CSV)",
    "arkit": "ARKit blendshape curves (CSV, JSON)",
}
#: The registry's exporter kind that writes each export.
REGISTRY_KINDS = {"mp4": "video", "png": "image_sequence", "mesh": "mesh", "mesh_video": "video",
                  "motion": "motion", "arkit": "curves"}
#: Exports written into a folder (the path names the folder).
FOLDER_KINDS = ("png",)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
RENDER_SIZES = (256, 384, 512, 720, 1024, 1080, 1440, 2048)
#: The audio-trust spin box's minimum, shown as "Auto" (by how the phones were found).
_AUTO_TRUST = -0.1


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
    audio_trust: float | None = None  # … how far the lips follow the sound rather than the phones; None: auto
    device: str = "auto"  # … where it runs: auto (CUDA when it works), cpu, cuda
    model: str = ""  # … its checkpoint (.pt) or ONNX export; "": models/neural/best.pt


@dataclass(frozen=True)
class ExportFormat:
    """One exporter of the registry as the dialog offers it."""

    name: str
    label: str
    extensions: tuple[str, ...]
    description: str = ""


@cache
def export_formats() -> Mapping[str, tuple[ExportFormat, ...]]:
    """The registry's exporters for each of :data:`EXPORT_KINDS` (plugins' included)."""
    from studio.plugins import default_registry

    registry = default_registry()
    formats = {kind: tuple(ExportFormat(e.name, e.label, e.extensions, e.description)
                           for e in registry.exporters(REGISTRY_KINDS[kind]))
               for kind in EXPORT_KINDS}
    formats["mesh_video"] = tuple(f for f in formats["mesh_video"] if ".mp4" in f.extensions)[:1]
    return MappingProxyType(formats)


@dataclass(frozen=True)
class ExportSettings:
    """Where and how to export: ``kind`` is a key of :data:`EXPORT_KINDS`; ``exporter`` the
    registry's exporter (empty: the one for the file's extension); ``frames`` a range
    ``(start, end)``, end exclusive (None: every frame). The other fields are the options of
    some kinds: x264 quality and speed and the sound (MP4s), the portrait renderer, the ARKit CSV
    layout, the 3D render's view, shading and size, the mesh's texture, the glTF morph targets,
    the USD scale."""

    kind: str
    path: Path
    crf: int = 18
    preset: str = "veryfast"
    audio: bool = True
    layout: str = "studio"  # ARKit CSV columns: "studio" or "livelinkface"
    exporter: str = ""
    frames: tuple[int, int] | None = None
    backend: str = "opencv"  # the portrait renderer: "opencv" (CPU) or "torch" (GPU when it works)
    view: str = "front"  # 3D render: "front" or "turntable"
    shading: str = "smooth"  # 3D render: "smooth", "flat" or "wireframe"
    size: int = 512  # 3D render: square frames of this many pixels
    texture: bool = True  # mesh: write the head's texture coordinates and picture when it has them
    max_targets: int = 64  # glTF: the most morph targets
    rigid: bool = True  # glTF: the head's motion as the node's rotation and translation
    meters_per_unit: float = 1.0  # USD: the mesh's unit

    def __post_init__(self):
        if self.kind not in EXPORT_KINDS:
            raise ValueError(f"unknown export kind {self.kind!r}; expected one of {', '.join(EXPORT_KINDS)}")


@dataclass(frozen=True)
class ExportContext:
    """What the window tells the Export dialog: the project's length and frame rate, the playhead,
    why a kind cannot export now (``blocked``: kind → a sentence), what the user should know
    before exporting a kind (``notes``: kind → a sentence; the export can run), whether there is
    sound, and whether the head mesh has a texture."""

    num_frames: int = 0
    fps: float = 25.0
    frame: int = 0
    blocked: Mapping[str, str] = field(default_factory=dict)
    has_audio: bool = True
    textured_head: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)


def _file_filter(extensions, label: str) -> str:
    return f"{label} ({' '.join('*' + e for e in extensions)})"


def _strip_extension(name: str) -> str:
    """A file name without any extension an exporter writes (``talk.arkit.csv`` → ``talk``)."""
    extensions = sorted({e for fs in export_formats().values() for f in fs for e in f.extensions}, key=len,
                        reverse=True)
    lower = name.lower()
    for extension in extensions:
        if lower.endswith(extension) and len(name) > len(extension):
            return name[:-len(extension)]
    return name.removesuffix("_frames")


def usd_available() -> bool:
    """Whether the USD exporter can run (the ``usd`` extra, usd-core, is installed)."""
    return importlib.util.find_spec("pxr") is not None


class GenerateDialog(QDialog):
    def __init__(self, defaults: GenerateSettings, generators: tuple[str, ...], has_transcript: bool,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Generate motion")
        form = QFormLayout(self)
        self.form = form
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
        self.audio_trust = QDoubleSpinBox(self)
        self.audio_trust.setRange(_AUTO_TRUST, 1.0)  # the minimum reads "Auto"
        self.audio_trust.setSingleStep(0.1)
        self.audio_trust.setSpecialValueText("Auto")
        self.audio_trust.setValue(_AUTO_TRUST if defaults.audio_trust is None else defaults.audio_trust)
        self.audio_trust.setToolTip("Neural generator: how far the lips follow the sound itself rather than the "
                                    "phones alone (1: fully; lower it for a recording unlike any voice it learned, "
                                    "at one more evaluation per step). Auto: 1 for recognized phones, 0.5 for "
                                    "phones aligned to the transcript")
        self.device = QComboBox(self)
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(defaults.device)
        self.device.setToolTip("Neural generator: auto runs on CUDA when it really works, else on the CPU")
        self.model = QLineEdit(defaults.model, self)
        self.model.setPlaceholderText("models/neural/best.pt")
        self.model.setToolTip("Neural generator: a checkpoint (.pt) or an ONNX export (.onnx); empty: the "
                              "trained model in models/neural/best.pt")
        self.model_browse = QPushButton("Browse…", self)
        self.model_browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.model_browse)
        self.model_notice = QLabel(self)
        self.model_notice.setWordWrap(True)
        self.model_notice.setStyleSheet("color: #ff9b72;")
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
        form.addRow("Audio trust", self.audio_trust)
        form.addRow("Device", self.device)
        form.addRow("Model", model_row)
        form.addRow("", self.model_notice)
        form.addRow("", self.transcript)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Generate")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.generator.currentTextChanged.connect(self._update)
        self.model.textChanged.connect(self._update)
        self._update()

    def _browse_model(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Neural model", self.model.text(),
                                                "Neural models (*.pt *.onnx)")
        if chosen:
            self.model.setText(chosen)

    def _update(self, *_) -> None:
        neural = self.generator.currentText() != "rig"  # the rig is deterministic numpy on the CPU
        for widget in (self.steps, self.guidance, self.audio_trust, self.device, self.model, self.model_browse):
            widget.setEnabled(neural)
        message = ""
        if neural:
            from studio.generate.neural.runner import DEFAULT_CHECKPOINT

            model = Path(self.model.text().strip()) if self.model.text().strip() else DEFAULT_CHECKPOINT
            if not model.is_file():
                message = (f"No neural model at {model}: train one (studio train fit) or choose a model file; "
                           "the rig generator needs none.")
        self.model_notice.setText(message)
        self.form.setRowVisible(self.model_notice, bool(message))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(not message)

    def _audio_trust(self) -> float | None:
        value = self.audio_trust.value()
        return None if value <= _AUTO_TRUST else value

    def settings(self) -> GenerateSettings:
        return GenerateSettings(self.generator.currentText(), self.seed.value(), self.emotion.currentText(),
                                self.strength.value(), self.transcript.isChecked(), steps=self.steps.value(),
                                guidance=self.guidance.value(), audio_trust=self._audio_trust(),
                                device=self.device.currentText(),
                                model=self.model.text().strip())


class ExportDialog(QDialog):
    """Every export of the studio (module docstring): the kind, the registry's format, the target,
    the frame range and the options of that kind; why the kind cannot export now, if it cannot."""

    def __init__(self, kind: str, suggested: Path, parent: QWidget | None = None,
                 context: ExportContext | None = None):
        super().__init__(parent)
        self.context = context or ExportContext(num_frames=1)
        self.setWindowTitle("Export")
        self.setMinimumWidth(560)
        form = QFormLayout(self)
        self.form = form
        self.kind_choice = QComboBox(self)
        for key, label in EXPORT_KINDS.items():
            self.kind_choice.addItem(label, key)
        self.format_choice = QComboBox(self)
        self.path = QLineEdit(str(suggested), self)
        self.path.setMinimumWidth(360)
        self.browse = QPushButton("Browse…", self)
        self.browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.browse)
        self.path_label = QLabel("File", self)

        last = max(self.context.num_frames - 1, 0)
        self.range_check = QCheckBox("Only frames", self)
        self.range_check.setToolTip("Export part of the take (both ends included); off: every frame")
        self.first = QSpinBox(self)
        self.last = QSpinBox(self)
        for spin in (self.first, self.last):
            spin.setRange(0, last)
        self.first.setValue(0)
        self.last.setValue(last)
        self.range_info = QLabel(self)
        range_row = QHBoxLayout()
        range_row.addWidget(self.range_check)
        range_row.addWidget(self.first)
        range_row.addWidget(QLabel("to", self))
        range_row.addWidget(self.last)
        range_row.addWidget(self.range_info, 1)

        self.crf = QSpinBox(self)
        self.crf.setRange(0, 51)
        self.crf.setValue(18)
        self.crf.setToolTip("x264 constant rate factor: lower is better (0 lossless, 18 visually lossless)")
        self.preset = QComboBox(self)
        self.preset.addItems(list(X264_PRESETS))
        self.preset.setCurrentText("veryfast")
        self.preset.setToolTip("x264 speed: faster presets make bigger files at the same quality")
        self.audio = QCheckBox("Include the project's audio", self)
        self.audio.setChecked(self.context.has_audio)
        self.audio.setEnabled(self.context.has_audio)
        self.backend = QComboBox(self)
        self.backend.addItem("OpenCV (CPU)", "opencv")
        self.backend.addItem("torch (GPU when it works)", "torch")
        self.backend.setToolTip("The portrait renderer: the same picture either way; torch uses CUDA when it really "
                                "works, else the CPU")
        self.layout_choice = QComboBox(self)
        self.layout_choice.addItems(["studio", "livelinkface"])
        self.layout_choice.setToolTip("CSV columns: the studio's (frame, time, 52 names) or Live Link Face's")
        self.view = QComboBox(self)
        self.view.addItem("Front", "front")
        self.view.addItem("Turntable (one turn over the take)", "turntable")
        self.shading = QComboBox(self)
        self.shading.addItems(["smooth", "flat", "wireframe"])
        self.render_size = QComboBox(self)
        for pixels in RENDER_SIZES:
            self.render_size.addItem(f"{pixels} × {pixels}", pixels)
        self.render_size.setCurrentIndex(RENDER_SIZES.index(512))
        self.texture = QCheckBox("Include the texture (UV coordinates and picture)", self)
        self.texture.setChecked(self.context.textured_head)
        self.texture.setEnabled(self.context.textured_head)
        if not self.context.textured_head:
            self.texture.setToolTip("The head mesh has no texture")
        self.max_targets = QSpinBox(self)
        self.max_targets.setRange(1, 256)
        self.max_targets.setValue(64)
        self.max_targets.setToolTip("glTF: the most morph targets (PCA shapes); fewer make a smaller file, "
                                    "with more error")
        self.rigid = QCheckBox("Head motion as the node's rotation and translation", self)
        self.rigid.setChecked(True)
        self.rigid.setToolTip("glTF: take the rigid head motion out of the morph targets (fewer targets)")
        self.meters = QDoubleSpinBox(self)
        self.meters.setDecimals(4)
        self.meters.setRange(0.0001, 1000.0)
        self.meters.setValue(1.0)
        self.meters.setToolTip("USD metersPerUnit: 1 for FLAME/VOCA heads (metres), 0.01 for a head in centimetres")
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: #8a8f98;")
        self.notice = QLabel(self)
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #ff9b72;")
        self.notice.setObjectName("exportNotice")

        form.addRow("Export", self.kind_choice)
        form.addRow("Format", self.format_choice)
        form.addRow(self.path_label, path_row)
        form.addRow("Frames", range_row)
        options = [("Renderer", self.backend), ("View", self.view), ("Shading", self.shading),
                   ("Size", self.render_size), ("Quality (CRF)", self.crf), ("Speed", self.preset), ("", self.audio),
                   ("", self.texture), ("Morph targets", self.max_targets), ("", self.rigid),
                   ("Metres per unit", self.meters), ("CSV layout", self.layout_choice)]
        for label, widget in options:
            form.addRow(label, widget)
        self.options = [widget for _, widget in options]
        #: The options each kind shows (some only for some formats, see _update).
        self.option_rows = {
            "mp4": {self.backend, self.crf, self.preset, self.audio},
            "png": {self.backend},
            "mesh": {self.texture, self.max_targets, self.rigid, self.meters},
            "mesh_video": {self.view, self.shading, self.render_size, self.crf, self.preset, self.audio},
            "motion": set(),
            "arkit": {self.layout_choice},
        }
        form.addRow("", self.description)
        form.addRow("", self.notice)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)

        self.kind_choice.setCurrentIndex(list(EXPORT_KINDS).index(kind))
        self.kind = kind
        self._fill_formats()
        self.kind_choice.currentIndexChanged.connect(self._on_kind)
        self.format_choice.currentIndexChanged.connect(self._on_format)
        self.path.textChanged.connect(self._update)
        self.range_check.toggled.connect(self._update)
        self.first.valueChanged.connect(self._update)
        self.last.valueChanged.connect(self._update)
        if not self._select_format_of(Path(self.path.text())):
            self._retarget()
        self._update()

    # --- kind and format --------------------------------------------------------------------------
    @property
    def format(self) -> ExportFormat | None:
        return self.format_choice.currentData()

    def _fill_formats(self) -> None:
        self.format_choice.blockSignals(True)
        self.format_choice.clear()
        for fmt in export_formats()[self.kind]:
            self.format_choice.addItem(f"{fmt.label}  ({', '.join(fmt.extensions)})", fmt)
        self.format_choice.blockSignals(False)

    def _select_format_of(self, path: Path) -> bool:
        """Choose the format that writes ``path``'s extension; False if none does."""
        name = path.name.lower()
        for i in range(self.format_choice.count()):
            if any(name.endswith(e) for e in self.format_choice.itemData(i).extensions):
                self.format_choice.setCurrentIndex(i)
                return True
        return self.kind in FOLDER_KINDS

    def _on_kind(self, index: int) -> None:
        self.kind = self.kind_choice.itemData(index)
        self._fill_formats()
        self._retarget()
        self._update()

    def _on_format(self, index: int) -> None:
        self._retarget()
        self._update()

    def _retarget(self) -> None:
        """The target path for the chosen kind and format: same folder and name, its extension."""
        current = Path(self.path.text())
        stem = _strip_extension(current.name) or "untitled"
        fmt = self.format
        if self.kind in FOLDER_KINDS:
            name = f"{stem}_frames"
        elif fmt is not None and any(current.name.lower().endswith(e) for e in fmt.extensions):
            return
        else:
            name = stem + (fmt.extensions[0] if fmt is not None else "")
        self.path.setText(str(current.with_name(name)))

    # --- state --------------------------------------------------------------------------------
    def _update(self, *_) -> None:
        kind = self.kind
        for widget in self.options:
            self.form.setRowVisible(widget, widget in self.option_rows[kind])
        fmt = self.format
        self.form.setRowVisible(self.format_choice, self.format_choice.count() > 1)
        glb, usd = fmt is not None and fmt.name == "mesh_glb", fmt is not None and fmt.name == "mesh_usd"
        self.form.setRowVisible(self.max_targets, kind == "mesh" and glb)
        self.form.setRowVisible(self.rigid, kind == "mesh" and glb)
        self.form.setRowVisible(self.meters, kind == "mesh" and usd)
        self.form.setRowVisible(self.layout_choice, kind == "arkit" and fmt is not None and fmt.name == "arkit_csv")
        self.path_label.setText("Folder" if kind in FOLDER_KINDS else "File")
        self.description.setText(self._describe(fmt))
        for spin in (self.first, self.last):
            spin.setEnabled(self.range_check.isChecked())
        first, last = self.first.value(), self.last.value()
        count = last - first + 1 if self.range_check.isChecked() else self.context.num_frames
        self.range_info.setText(f"{count} frames, {count / self.context.fps:.2f} s" if count > 0 else "")
        problem = self.problem()
        note = "" if problem else self.context.notes.get(kind, "")
        self.notice.setText(problem or note)
        self.notice.setStyleSheet("color: #ff9b72;" if problem else "color: #d8c070;")
        self.form.setRowVisible(self.notice, bool(problem or note))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(not problem)
        self.adjustSize()

    def _describe(self, fmt: ExportFormat | None) -> str:
        """The exporter's description for users: what it writes (its options are the fields above)."""
        if self.kind == "mesh_video":
            return ("The head mesh animated by the take and rendered without a display (OpenGL in a process of "
                    "its own), as H.264 with the sound as AAC.")
        if fmt is None:
            return ""
        return fmt.description.split(" Options:")[0].strip()

    def problem(self) -> str:
        """Why the export cannot run as set (empty: it can)."""
        blocked = self.context.blocked.get(self.kind)
        if blocked:
            return blocked
        fmt = self.format
        if fmt is None:
            return f"No exporter for {EXPORT_KINDS[self.kind].lower()} is registered."
        if fmt.name == "mesh_usd" and not usd_available():
            return "USD needs the 'usd' extra: pip install usd-core (or pip install -e '.[usd]')."
        text = self.path.text().strip()
        if not text:
            return "Choose where to export."
        if self.kind not in FOLDER_KINDS and not text.lower().endswith(fmt.extensions):
            return f"{Path(text).name}: the {fmt.label} exporter writes {', '.join(fmt.extensions)} files."
        if self.range_check.isChecked() and self.last.value() < self.first.value():
            return "The frame range ends before it starts."
        return ""

    def _browse(self) -> None:
        if self.kind in FOLDER_KINDS:
            chosen = QFileDialog.getExistingDirectory(self, "Export PNG frames into", self.path.text())
        else:
            fmt = self.format
            chosen, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(),
                                                    _file_filter(fmt.extensions, fmt.label) if fmt else "")
        if chosen:
            self.path.setText(chosen)

    def settings(self) -> ExportSettings:
        fmt = self.format
        frames = (self.first.value(), self.last.value() + 1) if self.range_check.isChecked() else None
        return ExportSettings(self.kind, Path(self.path.text().strip()), self.crf.value(), self.preset.currentText(),
                              self.audio.isChecked(), self.layout_choice.currentText(),
                              exporter=fmt.name if fmt is not None else "", frames=frames,
                              backend=self.backend.currentData(), view=self.view.currentData(),
                              shading=self.shading.currentText(), size=self.render_size.currentData(),
                              texture=self.texture.isChecked(), max_targets=self.max_targets.value(),
                              rigid=self.rigid.isChecked(), meters_per_unit=self.meters.value())


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

    def export_settings(self, kind: str, suggested: Path, context: ExportContext | None = None) -> ExportSettings | None:
        dialog = ExportDialog(kind, suggested, self.parent, context)
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
