"""The inspector panel, driven as a user would (offscreen): a slider drag previews live and is one
undo step, typing an exact value, the key buttons per channel and per section, region locks,
magnitude limits, the eye overrides, intensity and emotion, the filter, the selection — each
checked on the document evaluated at the playhead; and the shown values following the playhead."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QPalette
from PySide6.QtWidgets import QApplication, QDialogButtonBox
from qt_support import changed_pixels, wait_for_jobs

from studio.core.document import BaseMotion, Project
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX, CHANNELS, neutral_motion
from studio.core.session import Session
from studio.qt.inspector import (
    EMOTION,
    INTENSITY,
    SECTION_ORDER,
    InspectorPanel,
    benchmark_drag,
    benchmark_refresh,
    channel_label,
)

FRAMES = 60


def demo_project() -> Project:
    """A project with a generated-looking base motion: the jaw and lips open and close, the head sways."""
    t = np.arange(FRAMES)
    base = neutral_motion(FRAMES)
    base[:, CHANNEL_INDEX["exp.chin.y"]] = -0.15 * (1 + np.sin(t / 3.0))
    base[:, CHANNEL_INDEX["exp.lip_lower_center.y"]] = -0.1 * (1 + np.sin(t / 3.0))
    base[:, CHANNEL_INDEX["exp.mouth_corner_l.y"]] = 0.05 * np.cos(t / 5.0)
    base[:, CHANNEL_INDEX["pose.yaw"]] = 4.0 * np.sin(t / 10.0)
    base[:, CHANNEL_INDEX["eye.blink_l"]] = (t % 20 < 3).astype(np.float32)
    project = Project(25.0, 0)
    project.set_base(BaseMotion(base, project.conditions(t), "test"))
    project.undo_stack.clear()
    return project


def evaluated(panel: InspectorPanel, channel: str) -> float:
    return float(panel.project.evaluate([panel.session.frame])[0, CHANNEL_INDEX[channel]])


@pytest.fixture
def make_panel(qtbot, no_leaks):
    def make(project: Project | None = None, frame: int = 10, session: Session | None = None) -> InspectorPanel:
        session = session or Session(project if project is not None else demo_project())
        session.frame = frame
        panel = InspectorPanel(session)
        qtbot.addWidget(panel)
        panel.resize(480, 900)
        panel.show()
        QApplication.processEvents()
        panel.refresh()
        return panel

    return make


def send_mouse(widget, kind, pos: QPointF, buttons) -> None:
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def drag_slider(panel: InspectorPanel, key: str, values, during=None) -> None:
    """Press the slider's handle, move through ``values`` (the event loop running between moves),
    release: a real drag."""
    slider = (panel.emotion if key == EMOTION else panel.rows[key]).slider
    send_mouse(slider, QEvent.MouseButtonPress, slider.handle_center(), Qt.LeftButton)
    for value in values:
        send_mouse(slider, QEvent.MouseMove, slider.point_for(value), Qt.LeftButton)
        QApplication.processEvents()
        if during is not None:
            during()
    send_mouse(slider, QEvent.MouseButtonRelease, slider.point_for(values[-1]), Qt.NoButton)
    QApplication.processEvents()


def type_value(qtbot, field, text: str) -> None:
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key_Return)


def test_every_channel_has_a_named_row_in_its_section(make_panel, qtbot):
    panel = make_panel()
    assert set(panel.rows) == set(CHANNELS) | {INTENSITY}
    assert tuple(panel.sections) == SECTION_ORDER
    for group, channels in CHANNEL_GROUPS.items():
        assert [r.key for r in panel.sections[group].rows] == list(channels)
    row = panel.rows["exp.lip_upper_center.y"]
    assert row.name.text() == "Lip upper center · up/down" == channel_label("exp.lip_upper_center.y")
    assert row.name.toolTip().startswith("exp.lip_upper_center.y\n")
    assert panel.rows["exp.brow_inner_l.x"].name.text() == "Brow inner left · left/right"
    assert panel.rows["pose.yaw"].name.text() == "Yaw · turn" and panel.rows["pose.yaw"].field.suffix() == "°"
    assert len({r.name.text() for r in panel.rows.values()}) == len(panel.rows)  # no two rows read alike
    lips = panel.sections["lips"]
    assert lips.body.isHidden()  # face regions start folded
    qtbot.mouseClick(lips.fold, Qt.LeftButton)
    assert lips.body.isVisible() and lips.fold.arrowType() == Qt.DownArrow
    qtbot.mouseClick(lips.fold, Qt.LeftButton)
    assert lips.body.isHidden()


def test_shown_values_follow_the_playhead_and_the_document(make_panel, qtbot):
    panel = make_panel()
    panel.set_expanded(["jaw"])
    row, yaw = panel.rows["exp.chin.y"], panel.rows["pose.yaw"]
    for frame in (0, 7, 33, FRAMES - 1):
        panel.session.frame = frame
        qtbot.waitUntil(lambda: row.field.value() == pytest.approx(round(evaluated(panel, "exp.chin.y"), 3)),
                        timeout=2000)
        assert yaw.field.value() == pytest.approx(round(evaluated(panel, "pose.yaw"), 1))
        assert row.slider.value() == row.slider.position_of(evaluated(panel, "exp.chin.y"))
        assert panel.playhead.text().startswith(f"frame {frame} ")
    updates = panel.updates
    for frame in range(20):
        panel.session.frame = frame  # a burst of playhead moves in one pass of the event loop…
    qtbot.waitUntil(lambda: panel.updates > updates, timeout=2000)
    qtbot.wait(50)
    assert panel.updates - updates == 1  # …is one update
    panel.project.set_limit("exp.chin.y", -0.05, 0.05)  # a document change shows too
    qtbot.waitUntil(lambda: row.field.value() == pytest.approx(-0.05), timeout=2000)


def test_only_rows_on_screen_are_updated(make_panel, qtbot):
    panel = make_panel()
    hidden = panel.rows["exp.chin.y"]  # the jaw is folded
    shown_before = hidden.field.value()
    panel.session.frame = 40
    panel.refresh()
    assert hidden.field.value() == shown_before != pytest.approx(round(evaluated(panel, "exp.chin.y"), 3))
    panel.set_expanded(["jaw"])
    qtbot.waitUntil(lambda: hidden.field.value() == pytest.approx(round(evaluated(panel, "exp.chin.y"), 3)),
                    timeout=2000)


def test_dragging_a_slider_previews_live_and_is_one_undo_step(make_panel):
    panel = make_panel()
    project, stack = panel.project, panel.project.undo_stack
    channel = "pose.yaw"
    before = evaluated(panel, channel)
    steps = len(stack)
    seen = []

    def during():
        assert len(stack) == steps  # nothing recorded while the mouse is down…
        seen.append(float(panel.session.frame_values()[CHANNEL_INDEX[channel]]))  # …but the document moves

    targets = [before + d for d in (2.0, 5.0, 9.0, 14.0, 20.0)]
    drag_slider(panel, channel, targets, during)
    assert len(seen) == 5 and len(set(np.round(seen, 3))) >= 4  # live preview: the playhead value followed
    assert len(stack) == steps + 1 and stack.undo_text == f"Set Yaw · turn at frame {panel.session.frame}"
    slider = panel.rows[channel].slider
    pixel = (slider.high - slider.low) / slider.width()  # what one pixel of mouse travel changes
    assert evaluated(panel, channel) == pytest.approx(slider.value_at(), abs=1e-4)
    assert evaluated(panel, channel) == pytest.approx(targets[-1], abs=pixel)
    layer = project.layers[-1]
    assert layer.curves[channel].key_index(panel.session.frame) is not None  # a key at the playhead
    other = project.evaluate([panel.session.frame + 15])[0, CHANNEL_INDEX[channel]]
    assert other == pytest.approx(targets[-1], abs=pixel)  # one key holds the curve (constant extrapolation)
    panel.refresh()
    assert panel.rows[channel].field.value() == pytest.approx(round(evaluated(panel, channel), 1))

    stack.undo()  # the layer the drag created goes with it: one step
    assert project.layers == () and evaluated(panel, channel) == pytest.approx(before, abs=1e-6)
    stack.redo()
    assert evaluated(panel, channel) == pytest.approx(slider.value_at(), abs=1e-4)

    drag_slider(panel, channel, [targets[-1] - 3.0, targets[-1] - 6.0])  # a second drag: its own step
    assert len(stack) == steps + 2
    assert evaluated(panel, channel) == pytest.approx(targets[-1] - 6.0, abs=pixel)
    stack.undo()
    assert evaluated(panel, channel) == pytest.approx(targets[-1], abs=pixel)
    # Each drag is recorded as one change per slot, not one per mouse move: the first drag made
    # the layer and keyed the curve, the second keyed the curve again.
    assert [len(step.commands) for step in stack._commands[steps:]] == [2, 1]


def test_typing_an_exact_value(make_panel, qtbot):
    panel = make_panel()
    panel.set_expanded(["lips"])
    stack = panel.project.undo_stack
    row = panel.rows["exp.mouth_corner_l.y"]
    type_value(qtbot, row.field, "0.123")
    assert evaluated(panel, "exp.mouth_corner_l.y") == pytest.approx(0.123, abs=1e-6)
    assert len(stack) == 1 and stack.undo_text.startswith("Set Mouth corner left · up/down")
    panel.refresh()
    assert row.slider.value() == row.slider.position_of(0.123) and row.shown_state == "keyed"
    type_value(qtbot, row.field, "-0.2")
    assert evaluated(panel, "exp.mouth_corner_l.y") == pytest.approx(-0.2, abs=1e-6) and len(stack) == 2
    stack.undo()
    assert evaluated(panel, "exp.mouth_corner_l.y") == pytest.approx(0.123, abs=1e-6)


def test_key_buttons_key_the_evaluated_value_and_mark_the_row(make_panel, qtbot):
    panel = make_panel()
    project, stack, frame = panel.project, panel.project.undo_stack, panel.session.frame
    row = panel.rows["pose.yaw"]
    value = evaluated(panel, "pose.yaw")
    assert row.key_button.text() == "◇" and row.shown_state == ""
    qtbot.mouseClick(row.key_button, Qt.LeftButton)
    curve = project.layers[-1].curves["pose.yaw"]
    assert curve.key_index(frame) is not None and curve.values[curve.key_index(frame)] == pytest.approx(value)
    assert evaluated(panel, "pose.yaw") == pytest.approx(value, abs=1e-5) and len(stack) == 1
    panel.refresh()
    assert row.key_button.text() == "◆" and row.shown_state == "keyed"
    assert row.field.palette().color(QPalette.Base) != panel.palette().color(QPalette.Base)
    panel.session.frame = frame + 5
    panel.refresh()
    assert row.shown_state == "animated" and row.key_button.text() == "◇"

    head = panel.sections["head"]
    qtbot.mouseClick(head.key_all, Qt.LeftButton)  # the section's Key: every head channel, one step
    assert len(stack) == 2 and stack.undo_text == f"Key Head pose at frame {frame + 5}"
    assert all(project.layers[-1].curves[c].key_index(frame + 5) is not None for c in CHANNEL_GROUPS["head"])
    panel.refresh()
    assert "◆ 7" in head.summary.text()
    assert panel.delete_keys_here("pose.pitch") == 1
    assert "pose.pitch" not in project.layers[-1].curves  # its only key: the curve went with it


def test_keys_land_right_on_an_add_layer_of_partial_influence(make_panel):
    project = demo_project()
    project.add_layer("Offsets", blend="ADD", influence=0.5)
    panel = make_panel(project)
    value = evaluated(panel, "pose.yaw")
    panel.key_channels(["pose.yaw"])  # keying keeps the evaluated value: an ADD key of 0
    assert evaluated(panel, "pose.yaw") == pytest.approx(value, abs=1e-4)
    assert project.layers[-1].curves["pose.yaw"].values[0] == pytest.approx(0.0, abs=1e-4)
    drag_slider(panel, "pose.yaw", [value + 4.0, value + 10.0])
    assert evaluated(panel, "pose.yaw") == pytest.approx(panel.rows["pose.yaw"].slider.value_at(), abs=1e-3)
    panel.set_value("pose.yaw", -7.5)
    assert evaluated(panel, "pose.yaw") == pytest.approx(-7.5, abs=1e-4)


def test_region_locks_disable_the_rows_and_keep_the_generated_motion(make_panel, qtbot):
    panel = make_panel()
    project, stack = panel.project, panel.project.undo_stack
    panel.set_expanded(["jaw"])
    generated = evaluated(panel, "exp.chin.y")
    panel.set_value("exp.chin.y", 0.2)
    assert evaluated(panel, "exp.chin.y") == pytest.approx(0.2, abs=1e-6)
    jaw = panel.sections["jaw"]
    qtbot.mouseClick(jaw.lock, Qt.LeftButton)
    assert project.locked_groups == frozenset({"jaw"}) and stack.undo_text == "Lock jaw"
    assert evaluated(panel, "exp.chin.y") == pytest.approx(generated, abs=1e-6)  # the key is ignored
    panel.refresh()
    row = panel.rows["exp.chin.y"]
    assert not row.slider.isEnabled() and not row.field.isEnabled() and not row.key_button.isEnabled()
    assert not jaw.key_all.isEnabled() and "locked" in jaw.summary.text()
    notices = []
    panel.notice.connect(notices.append)
    steps = len(stack)
    panel.set_value("exp.chin.y", -0.3)
    assert len(stack) == steps and notices and "locked" in notices[0]
    assert panel.key_group("jaw") == 0 and len(stack) == steps
    stack.undo()
    panel.refresh()
    assert project.locked_groups == frozenset() and row.slider.isEnabled() and not jaw.lock.isChecked()
    assert evaluated(panel, "exp.chin.y") == pytest.approx(0.2, abs=1e-6)
    stack.redo()
    panel.refresh()
    assert jaw.lock.isChecked()


def test_limits_clamp_the_evaluation(make_panel, qtbot):
    panel = make_panel(frame=4)
    project, stack = panel.project, panel.project.undo_stack
    panel.set_expanded(["jaw"])
    channel = "exp.chin.y"
    assert evaluated(panel, channel) < -0.2
    dialog = panel.edit_limit(channel)
    dialog.low.setValue(-0.1)
    dialog.high.setValue(0.05)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert project.limits[channel] == (-0.1, 0.05) and len(stack) == 1
    assert evaluated(panel, channel) == pytest.approx(-0.1, abs=1e-6)
    panel.refresh()
    row = panel.rows[channel]
    assert row.slider.limit == (-0.1, 0.05) and "Limited to -0.1 … 0.05" in row.slider.toolTip()
    assert row.field.value() == pytest.approx(-0.1)
    panel.set_value(channel, 0.4)  # a key beyond the limit evaluates to the limit
    assert evaluated(panel, channel) == pytest.approx(0.05, abs=1e-6)
    menu = panel.row_menu(channel)
    remove = next(a for a in menu.actions() if a.text() == "Remove limit")
    assert remove.isEnabled()
    remove.trigger()
    menu.deleteLater()
    assert channel not in project.limits and evaluated(panel, channel) == pytest.approx(0.4, abs=1e-6)
    stack.undo()
    assert project.limits[channel] == (-0.1, 0.05)
    dialog = panel.edit_limit(channel)  # the dialog starts from the current limit and can remove it
    assert (dialog.low.value(), dialog.high.value()) == (-0.1, 0.05)
    qtbot.mouseClick(dialog.remove_button, Qt.LeftButton)
    assert channel not in project.limits


def test_an_eye_override_under_the_playhead_takes_the_edit(make_panel):
    project = demo_project()
    project.insert_keys(("override", "eye.gaze_x"), [5, 20], [0.3, 0.3])
    project.undo_stack.clear()
    panel = make_panel(project, frame=10)
    assert panel.key_states()["eye.gaze_x"] == "overridden"
    drag_slider(panel, "eye.gaze_x", [0.5, 0.7])
    assert project.overrides["eye.gaze_x"].key_index(10) is not None and project.layers == ()
    assert evaluated(panel, "eye.gaze_x") == pytest.approx(panel.rows["eye.gaze_x"].slider.value_at(), abs=1e-5)
    panel.session.frame = 40  # outside the override: the edit goes on the top layer
    panel.set_value("eye.gaze_x", -0.4)
    assert project.layers[-1].curves["eye.gaze_x"].key_index(40) is not None
    assert evaluated(panel, "eye.gaze_x") == pytest.approx(-0.4, abs=1e-6)


def test_intensity_and_emotion(make_panel, qtbot):
    panel = make_panel(frame=20)
    project, stack = panel.project, panel.project.undo_stack
    type_value(qtbot, panel.rows[INTENSITY].field, "1.5")
    assert project.intensity.key_index(20) is not None
    assert project.intensity_values([20])[0] == pytest.approx(1.5) and len(stack) == 1

    row = panel.emotion
    assert row.combo.currentData() is None and not row.slider.isEnabled()
    row.combo.setCurrentIndex(row.combo.findData("happy"))
    row.combo.activated.emit(row.combo.currentIndex())  # what a pick in the list emits
    (segment,) = project.emotion_segments
    assert (segment.label, segment.start, segment.end, segment.strength) == ("happy", 20, FRAMES, 1.0)
    panel.refresh()
    assert row.slider.isEnabled() and "Segment frames 20–59" in row.caption.text()
    steps = len(stack)
    drag_slider(panel, EMOTION, [0.8, 0.6, 0.4])
    assert len(stack) == steps + 1
    assert project.emotion_segments[0].strength == pytest.approx(row.slider.value_at(), abs=1e-6)
    assert project.emotion_segments[0].strength == pytest.approx(0.4, abs=0.01)
    type_value(qtbot, row.field, "0.25")
    assert project.emotion_segments[0].strength == pytest.approx(0.25)
    panel.session.frame = 5  # before the segment: a new one ends where the next begins
    panel.set_emotion_label("sad")
    sad = next(s for s in project.emotion_segments if s.label == "sad")
    assert (sad.start, sad.end) == (5, 20)
    panel.session.frame = 30
    panel.set_emotion_label(None)  # "none" removes the segment under the playhead
    assert [s.label for s in project.emotion_segments] == ["sad"]
    stack.undo()
    assert len(project.emotion_segments) == 2


def test_the_filter_shows_matching_rows_only(make_panel, qtbot):
    panel = make_panel()
    qtbot.keyClicks(panel.filter, "blink")
    shown = [k for k, r in panel.rows.items() if not r.filtered_out]
    assert shown == ["eye.blink_l", "eye.blink_r"]
    assert panel.sections["eyes"].isVisible() and not panel.sections["lips"].isVisible()
    panel.filter.setText("exp.chin")
    assert [k for k, r in panel.rows.items() if not r.filtered_out] == ["exp.chin.x", "exp.chin.y", "exp.chin.z"]
    assert panel.sections["jaw"].body.isVisible()  # a match opens its folded section
    panel.filter.setText("no such channel")
    assert panel.empty.isVisible()
    panel.filter.clear()
    assert all(not r.filtered_out for r in panel.rows.values()) and panel.sections["jaw"].body.isHidden()


def test_clicking_names_selects_channels(make_panel, qtbot):
    panel = make_panel()
    session = panel.session
    qtbot.mouseClick(panel.rows["pose.yaw"].name, Qt.LeftButton)
    qtbot.mouseClick(panel.rows["pose.roll"].name, Qt.LeftButton, Qt.ShiftModifier)
    assert session.selection.channels == ("pose.yaw", "pose.roll")
    assert panel.rows["pose.yaw"].name.font().bold() and not panel.rows["pose.pitch"].name.font().bold()
    qtbot.mouseClick(panel.rows["pose.yaw"].name, Qt.LeftButton, Qt.ControlModifier)
    assert session.selection.channels == ("pose.roll",)
    session.select_channels(["jaw"])  # a selection made elsewhere shows here
    assert panel.rows["exp.chin.z"].name.font().bold() and not panel.rows["pose.roll"].name.font().bold()


def test_a_new_project_ends_a_drag_and_is_shown(make_panel, qtbot):
    panel = make_panel()
    old = panel.project
    slider = panel.rows["pose.yaw"].slider
    send_mouse(slider, QEvent.MouseButtonPress, slider.handle_center(), Qt.LeftButton)
    send_mouse(slider, QEvent.MouseMove, slider.point_for(12.0), Qt.LeftButton)
    assert panel.gesture is not None
    fresh = demo_project()
    panel.session.set_project(fresh)
    assert panel.gesture is None and len(old.undo_stack) == 1 and old.undo_stack.can_undo  # closed, one step
    send_mouse(slider, QEvent.MouseButtonRelease, slider.point_for(12.0), Qt.NoButton)
    assert len(fresh.undo_stack) == 0
    qtbot.waitUntil(lambda: panel.rows["pose.yaw"].field.value() == pytest.approx(0.0), timeout=2000)


def test_benchmarks_report_their_figures(make_panel):
    panel = make_panel()
    result = benchmark_refresh(panel, frames=20, expand_all=True)
    assert result["frames"] == 20 and result["update_ms"] > 0 and result["rows_on_screen"] > 10
    drag = benchmark_drag(panel, "exp.chin.y", moves=10, interval_ms=1.0)
    assert drag["undo_steps"] == 1 and drag["edits"] >= 5


def test_a_slider_drag_updates_the_2d_view_while_dragging(make_window, astronaut_png, qtbot):
    window = make_window()
    window.import_files([astronaut_png])
    wait_for_jobs(qtbot, window)
    viewport = window.viewport
    viewport.refresh()
    panel = InspectorPanel(window.session)
    qtbot.addWidget(panel)
    panel.resize(480, 700)
    panel.show()
    panel.set_expanded(["jaw"])
    QApplication.processEvents()
    before = viewport.picture.copy()
    renders = viewport.renders
    steps = len(window.session.project.undo_stack)
    counts = []

    def during():
        qtbot.wait(20)  # a hand's pace: the view's rate-limited render runs between moves
        counts.append(viewport.renders)

    drag_slider(panel, "exp.chin.y", [-0.05, -0.1, -0.15, -0.2, -0.25, -0.3], during)
    assert counts[-1] - renders >= 3  # the picture followed the drag, not only the release
    qtbot.waitUntil(lambda: viewport.renders > counts[-1] or not viewport._timer.isActive(), timeout=2000)
    viewport.refresh()
    assert changed_pixels(viewport.picture, before) > 0.002  # the jaw opened on screen
    assert len(window.session.project.undo_stack) == steps + 1
    window.undo()
    viewport.refresh()
    assert changed_pixels(viewport.picture, before) < 0.0005
