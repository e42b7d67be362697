"""The application around the window: the dark Fusion theme, `studio` with no arguments launching
it, the Generate and Export dialogs as widgets, the menus and shortcuts, the screenshots command,
and a guard against a PySide6 release that corrupts Python's reference counts."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QDialogButtonBox

from studio.qt.dialogs import (
    ExportContext,
    ExportDialog,
    GenerateDialog,
    GenerateSettings,
)

REPOSITORY = Path(__file__).resolve().parents[1]


def test_signals_do_not_leak_references_to_true(qapp):
    """PySide6 6.12.0's Signal.emit() drops a reference to True on every call: after a few
    thousand emits Python aborts (bool_dealloc). pyproject.toml excludes that release."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        fired = Signal()

    emitter = Emitter()
    before = sys.getrefcount(True)
    for _ in range(200):
        emitter.fired.emit()
    assert sys.getrefcount(True) >= before - 5


def test_the_application_is_dark_fusion_and_named(qapp):
    from studio.qt.app import APPLICATION, ORGANIZATION, create_app

    app = create_app()
    assert app is qapp
    assert app.style().name().lower() == "fusion"
    assert app.palette().color(QPalette.Window).lightness() < 80
    assert app.palette().color(QPalette.WindowText).lightness() > 180
    assert (app.organizationName(), app.applicationName()) == (ORGANIZATION, APPLICATION)


def test_studio_without_arguments_launches_the_window(monkeypatch):
    import studio.qt.app
    from studio import cli

    launched = []
    monkeypatch.setattr(studio.qt.app, "main", lambda argv=None: launched.append(argv) or 0)
    assert cli.main([]) == 0 and launched == [None]
    makefile = (REPOSITORY / "Makefile").read_text()
    assert "run: setup\n\t$(VENV_BIN)/studio\n" in makefile  # make run is `studio`, i.e. this


def test_generate_dialog_returns_its_settings(qtbot, no_leaks):
    dialog = GenerateDialog(GenerateSettings(seed=4), ("rig", "neural"), has_transcript=False)
    qtbot.addWidget(dialog)
    assert not dialog.transcript.isEnabled() and not dialog.transcript.isChecked()
    assert not dialog.steps.isEnabled()  # the rig has no sampling steps
    dialog.generator.setCurrentText("neural")
    assert dialog.steps.isEnabled() and dialog.device.isEnabled()
    dialog.steps.setValue(25)
    dialog.device.setCurrentText("cpu")
    dialog.emotion.setCurrentText("surprised")
    dialog.strength.setValue(0.7)
    settings = dialog.settings()
    assert settings == GenerateSettings("neural", 4, "surprised", 0.7, False, steps=25, device="cpu")
    assert settings.audio_trust is None and dialog.audio_trust.text() == "Auto"  # by how the phones are found
    dialog.audio_trust.stepBy(1)  # one step up from Auto is 0: the phones alone
    assert dialog.settings().audio_trust == 0.0
    dialog.audio_trust.setValue(0.7)
    assert dialog.settings().audio_trust == 0.7
    assert dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok).text() == "Generate"
    again = GenerateDialog(GenerateSettings(audio_trust=0.3), ("rig", "neural"), has_transcript=False)
    qtbot.addWidget(again)
    assert again.audio_trust.value() == 0.3 and again.settings().audio_trust == 0.3


def test_export_dialog_shows_the_options_of_its_kind(qtbot, no_leaks, tmp_path):
    mp4 = ExportDialog("mp4", tmp_path / "a.mp4")
    qtbot.addWidget(mp4)
    mp4.crf.setValue(23)
    mp4.preset.setCurrentText("fast")
    mp4.audio.setChecked(False)
    settings = mp4.settings()
    assert (settings.kind, settings.path, settings.crf, settings.preset, settings.audio) == \
        ("mp4", tmp_path / "a.mp4", 23, "fast", False)
    arkit = ExportDialog("arkit", tmp_path / "a.arkit.csv")
    qtbot.addWidget(arkit)
    arkit.layout_choice.setCurrentText("livelinkface")
    assert arkit.settings().layout == "livelinkface"
    assert arkit.crf.parent() is arkit and not arkit.crf.isVisibleTo(arkit)  # no video options here


def test_export_dialog_offers_every_registered_exporter(qtbot, no_leaks, tmp_path):
    from studio.plugins import default_registry
    from studio.qt.dialogs import export_formats

    offered = {f.name for formats in export_formats().values() for f in formats}
    assert offered == {e.name for e in default_registry().exporters()}  # plugins' exporters included
    dialog = ExportDialog("motion", tmp_path / "take.json", None, ExportContext(num_frames=100, fps=25.0))
    qtbot.addWidget(dialog)
    assert dialog.problem() == "" and dialog.format.name == "motion_json"
    dialog.kind_choice.setCurrentIndex(dialog.kind_choice.findData("mesh"))
    assert dialog.path.text() == str(tmp_path / "take.obj") and dialog.format.name == "mesh_obj"
    names = [dialog.format_choice.itemData(i).name for i in range(dialog.format_choice.count())]
    assert names == ["mesh_obj", "mesh_ply", "mesh_npy", "mesh_glb", "mesh_usd"]
    dialog.format_choice.setCurrentIndex(names.index("mesh_glb"))
    assert dialog.path.text().endswith("take.glb")
    assert dialog.max_targets.isVisibleTo(dialog) and not dialog.meters.isVisibleTo(dialog)
    dialog.format_choice.setCurrentIndex(names.index("mesh_usd"))
    assert dialog.meters.isVisibleTo(dialog) and not dialog.max_targets.isVisibleTo(dialog)
    dialog.path.setText(str(tmp_path / "take.abc"))
    assert "writes .usd, .usda, .usdc files" in dialog.problem()
    dialog.path.setText(str(tmp_path / "take.usda"))
    dialog.range_check.setChecked(True)
    dialog.first.setValue(50)
    dialog.last.setValue(10)
    assert dialog.problem() == "The frame range ends before it starts."
    dialog.last.setValue(59)
    assert "10 frames, 0.40 s" in dialog.range_info.text()
    settings = dialog.settings()
    assert (settings.kind, settings.exporter, settings.frames, settings.path.name) == \
        ("mesh", "mesh_usd", (50, 60), "take.usda")
    dialog.kind_choice.setCurrentIndex(dialog.kind_choice.findData("png"))
    assert dialog.path.text().endswith("take_frames") and dialog.path_label.text() == "Folder"
    blocked = ExportDialog("mesh_video", tmp_path / "r.mp4", None,
                           ExportContext(10, blocked={"mesh_video": "Import a head mesh first."}))
    qtbot.addWidget(blocked)
    assert blocked.problem() == "Import a head mesh first." and blocked.notice.text() == blocked.problem()
    assert not blocked.buttons.button(QDialogButtonBox.Ok).isEnabled()


def test_generate_dialog_says_when_the_neural_model_is_missing(qtbot, no_leaks, tmp_path):
    dialog = GenerateDialog(GenerateSettings(), ("rig", "neural"), has_transcript=False)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    dialog.generator.setCurrentText("neural")
    dialog.model.setText(str(tmp_path / "missing.pt"))
    assert not ok.isEnabled() and "No neural model at" in dialog.model_notice.text()
    (tmp_path / "model.pt").write_bytes(b"weights")
    dialog.model.setText(str(tmp_path / "model.pt"))
    assert ok.isEnabled() and dialog.settings().model == str(tmp_path / "model.pt")
    dialog.generator.setCurrentText("rig")
    assert ok.isEnabled() and not dialog.model.isEnabled()


def test_menus_and_shortcuts(make_window):
    window = make_window()
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert list(menus) == ["File", "Edit", "View", "Playback", "Animation"]
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString() for a in window.actions()}
    for name, keys in {"New": "Ctrl+N", "Open…": "Ctrl+O", "Save": "Ctrl+S", "Save As…": "Ctrl+Shift+S",
                       "Undo": "Ctrl+Z", "Redo": "Ctrl+Shift+Z", "Play": "Space", "Next frame": "Right",
                       "Previous frame": "Left", "Jump to start": "Home", "Jump to end": "End",
                       "Set key": "K", "Generate…": "Ctrl+G", "Export…": "Ctrl+E",
                       "Regenerate changed frames": "Ctrl+Shift+G"}.items():
        assert shortcuts[name] == keys, name
    file_menu = [a.text().replace("&", "") for a in menus["File"].actions() if a.text()]
    assert file_menu[:4] == ["New", "Open…", "Open Recent", "Save"]
    assert {"Import", "Export", "Quit"} <= set(file_menu)
    animation = menus["Animation"]
    select = next(a.menu() for a in animation.actions() if a.menu() is not None)
    next(a for a in select.actions() if a.text().startswith("Lips")).trigger()
    assert window.session.selection.channels[0] == "exp.lip_upper_center.x"
    assert not window.generate_action.isEnabled()  # no audio yet
    assert not window.export_actions["mp4"].isEnabled()
    assert not window.regenerate_action.isEnabled()
    exports = next(a.menu() for a in menus["File"].actions() if a.text().replace("&", "") == "Export")
    entries = [a.text().replace("&", "") for a in exports.actions() if a.text()]
    assert entries[0] == "Export…" and len(entries) == 1 + len(window.export_actions)
    panels = next(a.menu() for a in menus["View"].actions() if a.text().replace("&", "") == "Panels")
    assert [a.text() for a in panels.actions()] == ["2D view", "Media", "Jobs", "Inspector", "Timeline"]
    window.session.clear_selection()
    window.key_selection()
    assert "Nothing selected" in window.statusBar().currentMessage()


def test_the_screenshots_command_writes_the_steps(qapp, no_leaks, tmp_path):
    from studio.qt.screenshots import take_screenshots

    written = take_screenshots(tmp_path / "shots")  # 1600×1000, the default layout
    names = [p.name for p in written]
    assert names == ["01_empty.png", "02_portrait_and_audio.png", "03_generated_playhead_midway.png",
                     "04_key_selected_in_curve_editor.png", "05_emotion_segment_to_regenerate.png",
                     "06_emotion_segment_regenerated.png", "07_face_fit_editor.png", "08_export_running.png",
                     "09_export_done.png", "10_head_mesh_beside_the_2d_view.png", "11_generate_dialog.png",
                     "12_export_dialog.png"]
    import cv2

    pictures = [cv2.imread(str(p)) for p in written]
    assert all(p is not None and p.shape[:2] == pictures[0].shape[:2] for p in pictures[:10])
    assert abs(pictures[2].astype(int) - pictures[1].astype(int)).mean() > 0.5  # generated: a new picture
