"""The studio window with every panel docked (offscreen): the default layout, the inspector's open
sections remembered across starts, shortcuts that are
never ambiguous wherever the focus is, and K keying the value the picture shows on the layer the
animator chose in the timeline (REPLACE, ADD, partial influence alike) — as the inspector's Key
buttons do."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from studio.core.document import BaseMotion
from studio.core.motion import CHANNEL_INDEX, neutral_motion
from studio.qt.main_window import shortcut_conflicts

FRAMES = 80


def with_motion(window) -> None:
    """A generated-looking base motion of FRAMES frames, and a few keys on a layer."""
    project = window.session.project
    t = np.arange(FRAMES)
    base = neutral_motion(FRAMES)
    base[:, CHANNEL_INDEX["pose.yaw"]] = 6.0 * np.sin(t / 9.0)
    base[:, CHANNEL_INDEX["exp.chin.y"]] = -0.1 * (1 + np.sin(t / 3.0))
    project.set_base(BaseMotion(base, project.conditions(t), "rig"))
    layer = project.add_layer("Keys")
    project.insert_keys(("layer", layer, "exp.brow_inner_l.y"), [10, 40], [0.0, 0.08])
    project.undo_stack.clear()


def test_the_default_layout_docks_every_panel_in_its_place(make_window):
    window = make_window()
    assert (window.width(), window.height()) == (1600, 1000)
    media, jobs, view, inspector, timeline = (d.geometry() for d in (
        window.media_dock, window.jobs_dock, window.viewport_dock, window.inspector_dock, window.timeline_dock))
    assert media.right() < view.left() and jobs.right() < view.left() and media.bottom() < jobs.top()  # left column
    assert view.right() < inspector.left() and inspector.right() > 1500  # the inspector on the right
    assert timeline.top() > max(view.bottom(), inspector.bottom(), jobs.bottom())  # the timeline under them all
    assert timeline.width() >= 1580 and 280 <= timeline.height() <= 460
    assert view.width() >= 700 and view.height() >= 450  # the picture gets the most room
    assert 300 <= inspector.width() <= 520 and 220 <= media.width() <= 360
    panels = [a.text() for a in window.panels_menu.actions()]
    assert panels == ["2D view", "Media", "Jobs", "Inspector", "Timeline"]


def test_the_inspectors_open_sections_are_remembered_across_starts(make_window, tmp_path):
    settings_file = tmp_path / "studio.ini"
    window = make_window(settings_file)
    assert window.inspector.open_sections() == ["controls", "head", "eyes"]  # a first start
    window.inspector.set_expanded(["head"], False)
    window.inspector.set_expanded(["lips", "jaw"], True)
    window.shutdown()
    window.close()
    again = make_window(settings_file)
    assert again.inspector.open_sections() == ["controls", "eyes", "lips", "jaw"]
    assert again.inspector.sections["lips"].body.isVisibleTo(again.inspector)
    again.inspector.set_expanded(None, False)
    again.shutdown()
    again.close()
    assert make_window(settings_file).inspector.open_sections() == []  # all folded stays folded


def test_no_shortcut_is_ambiguous_wherever_the_focus_is(make_window, qtbot, qtlog):
    window = make_window()
    with_motion(window)
    session, timeline = window.session, window.timeline
    actions = timeline.timeline_actions
    assert shortcut_conflicts(window) == []
    edit = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    keyframes = next(a.menu() for a in edit.actions() if a.menu() is not None)
    assert actions.delete in keyframes.actions() and actions.copy in keyframes.actions()  # listed in Edit

    fired: list[QAction] = []
    for action in window.findChildren(QAction):
        action.triggered.connect(lambda checked=False, a=action: fired.append(a))

    def press(widget, key, modifiers=Qt.NoModifier) -> list[QAction]:
        widget.setFocus()
        assert widget.hasFocus(), widget
        fired.clear()
        qtbot.keyClick(widget, key, modifiers)
        ambiguous = [r.message for r in qtlog.records if "mbiguous" in r.message]
        assert not ambiguous, ambiguous
        return list(fired)

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    session.frame = 20
    slider = window.inspector.rows["pose.yaw"].slider
    focus_places = {"dope sheet": timeline.dope_sheet, "curve editor": timeline.curve_editor,
                    "transport slider": window.scrubber, "media bin": window.media_bin, "inspector slider": slider}
    for place, widget in focus_places.items():
        in_timeline = place in ("dope sheet", "curve editor")
        # the window's own shortcuts work everywhere
        session.select_channels(["exp.chin.y"])
        assert press(widget, Qt.Key_K) == [window.key_action], place
        assert press(widget, Qt.Key_Home) == ([] if place == "inspector slider" else [window.start_action]), place
        assert press(widget, Qt.Key_Space) == [window.play_action] and session.playing, place
        assert press(widget, Qt.Key_Space) == [window.play_action] and not session.playing, place
        # the timeline's only while it has the focus — elsewhere they do nothing (and nothing else)
        expected = {(Qt.Key_E, Qt.NoModifier): actions.add_segment, (Qt.Key_Delete, Qt.NoModifier): actions.delete,
                    (Qt.Key_A, Qt.ControlModifier): actions.select_all, (Qt.Key_C, Qt.ControlModifier): actions.copy,
                    (Qt.Key_V, Qt.ControlModifier): actions.paste, (Qt.Key_F, Qt.NoModifier): actions.frame_all,
                    (Qt.Key_N, Qt.NoModifier): actions.normalize, (Qt.Key_N, Qt.ControlModifier): window.new_action}
        for (key, modifiers), action in expected.items():
            if action is window.new_action:
                continue  # a new project would end the test's document
            got = press(widget, key, modifiers)
            assert got == ([action] if in_timeline else []), (place, QKeySequence(key | modifiers).toString(), got)
    # E added a segment at the playhead (the dope sheet and the curve editor each once); Delete removed one
    assert len(session.project.emotion_segments) >= 1
    # a focused inspector slider keeps the arrows for itself; elsewhere they step the playhead
    session.frame = 20
    assert press(timeline.dope_sheet, Qt.Key_Right) == [window.next_action] and session.frame == 21
    steps = len(session.project.undo_stack)
    assert press(slider, Qt.Key_Right) == [] and session.frame == 21
    assert len(session.project.undo_stack) == steps + 1  # the slider stepped the yaw: one undo step


def test_a_clash_is_found_and_qt_would_call_it_ambiguous(make_window, qtbot, qtlog):
    window = make_window()
    with_motion(window)
    clash = QAction("Frame everything", window)
    clash.setShortcut(QKeySequence("F"))
    window.addAction(clash)
    assert shortcut_conflicts(window) == ["F: “Frame all” and “Frame everything”"] or \
        shortcut_conflicts(window) == ["F: “Frame everything” and “Frame all”"]
    triggered = []
    clash.triggered.connect(lambda: triggered.append(True))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    window.timeline.dope_sheet.setFocus()
    qtbot.keyClick(window.timeline.dope_sheet, Qt.Key_F)
    assert not triggered and any("mbiguous" in r.message for r in qtlog.records)


def test_k_keys_the_shown_value_on_the_layer_chosen_in_the_timeline(make_window, qtbot):
    window = make_window()
    with_motion(window)
    session, project, timeline = window.session, window.session.project, window.timeline
    keys = project.layers[0].id
    offsets = project.add_layer("Offsets", blend="ADD", influence=0.5)  # the top layer
    project.set_layer(keys, influence=0.6)  # a REPLACE layer of partial influence
    assert session.active_layer == offsets and timeline.layer_box.currentData() == offsets
    session.frame = 20
    session.select_channels(["pose.yaw", "exp.chin.y"])
    shown = project.evaluate([20])[0].copy()
    window.key_action.trigger()  # K
    assert project.layer(offsets).curves["pose.yaw"].values.tolist() == pytest.approx([0.0], abs=1e-5)  # ADD: 0
    np.testing.assert_allclose(project.evaluate([20])[0], shown, atol=1e-5)  # the picture stays as it was
    assert "Offsets" in window.statusBar().currentMessage()

    timeline.layer_box.activated.emit(timeline.layer_box.findData(keys))  # the animator picks "Keys"
    assert session.active_layer == keys and timeline.state.layer_id == keys
    session.frame = 55
    shown = project.evaluate([55])[0].copy()
    window.key_action.trigger()
    assert project.layer(keys).curves["pose.yaw"].frames.tolist() == [55.0]
    assert "pose.yaw" in project.layer(offsets).curves and \
        project.layer(offsets).curves["pose.yaw"].frames.tolist() == [20.0]  # not on the top layer
    np.testing.assert_allclose(project.evaluate([55])[0], shown, atol=1e-4)
    # the inspector's Key button goes to the same layer
    window.inspector.refresh()
    qtbot.mouseClick(window.inspector.rows["pose.roll"].key_button, Qt.LeftButton)
    assert project.layer(keys).curves["pose.roll"].frames.tolist() == [55.0]
    # locked regions are skipped by K, as by the inspector
    project.lock_groups(["jaw"])
    session.select_channels(["exp.chin.y"])
    steps = len(project.undo_stack)
    window.key_action.trigger()
    assert len(project.undo_stack) == steps and "locked" in window.statusBar().currentMessage()
