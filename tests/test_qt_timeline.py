"""The timeline panel, driven with the mouse and the keyboard (offscreen): scrubbing, selecting,
moving, copying, deleting keys and changing their interpolation; emotion segments added, resized,
moved, relabelled; control lanes; channel groups; zoom and pan; the curve editor — each asserted
on the document (and its undo) and on the pixels the panel shows."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from studio.audio.phones import Phone
from studio.core.document import BaseMotion, Project
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX
from studio.core.session import AudioInfo, Session
from studio.qt.curve_editor import BASE_ALPHA
from studio.qt.timeline_state import (
    GUTTER,
    KEY_COLOUR,
    KEY_SELECTED,
    PHONE_TRACK_KEY,
    PLAYHEAD,
    Waveform,
    curve_colours,
    phone_track,
    phones_of,
)

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"
FPS = 25.0
BROW = "exp.brow_inner_l.y"


@functools.lru_cache(maxsize=1)
def _demo_material():
    from studio.audio.decode import load_audio
    from studio.generate.pipeline import phones_motion

    audio = load_audio(DEMO / "speech.flac")
    phones = tuple(Phone(p["label"], p["start"], p["end"], p.get("stress", 0))
                   for p in json.loads((DEMO / "speech.phones.json").read_text())["phones"])
    return audio, phones, phones_motion(phones, audio.duration, FPS)


def realistic_session() -> Session:
    """The demo speech with its phones and the rig's motion for them, a few keys on a layer, an
    intensity curve, a gaze override and a happy segment (the screenshot shows this project)."""
    audio, phones, values = _demo_material()
    project = Project(FPS)
    frames = np.arange(len(values))
    settings = {"phones": "aligned", PHONE_TRACK_KEY: phone_track(phones)}
    project.set_base(BaseMotion(values, project.conditions(frames), "rig", settings))
    layer = project.add_layer("Keys")
    project.insert_keys(("layer", layer, BROW), [20, 60, 100], [0.0, 0.09, 0.0])
    project.insert_keys(("layer", layer, "exp.brow_inner_r.y"), [20, 60, 100], [0.0, 0.07, 0.0])
    project.insert_keys(("layer", layer, "exp.lip_lower_center.y"), [40, 80], [-0.05, -0.12])
    project.insert_keys(("layer", layer, "pose.yaw"), [0, 50, 120], [0.0, 8.0, -4.0])
    project.insert_keys(("intensity",), [0, 80, 150], [1.0, 1.4, 0.9])
    project.insert_keys(("override", "eye.gaze_x"), [30, 70], [0.4, -0.3])
    project.add_emotion("happy", 20, 90, 0.7, 5, 5)
    project.undo_stack.clear()
    session = Session(project)
    session.update_media(audio=AudioInfo(str(DEMO / "speech.flac"), audio.samples, audio.sample_rate))
    return session


@pytest.fixture
def panel(qtbot, no_leaks):
    from studio.qt.timeline import TimelinePanel

    panel = TimelinePanel(realistic_session())
    qtbot.addWidget(panel)
    panel.resize(1400, 820)
    panel.show()
    qtbot.waitExposed(panel)
    panel.dope_sheet.set_expanded("brows", True)
    panel.repaint_now()
    return panel


# --- helpers ----------------------------------------------------------------------------------------

def pixels(widget) -> np.ndarray:
    """What a widget shows, H × W × 3 uint8 RGB."""
    image = widget.grab().toImage().convertToFormat(QImage.Format_RGB888)
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine())[:, :image.width() * 3] \
        .reshape(image.height(), image.width(), 3).copy()


def rgb(colour) -> np.ndarray:
    return np.array(colour.getRgb()[:3])


def near(image: np.ndarray, x: float, y: float, colour, radius: int = 2, tolerance: int = 30) -> bool:
    """Whether a pixel within ``radius`` of (x, y) has ``colour``."""
    x, y = round(x), round(y)
    patch = image[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1].astype(int)
    return bool((np.abs(patch - rgb(colour)).max(-1) <= tolerance).any())


def key_point(panel, channel_or_title: str, frame: float, value: float | None = None) -> QPoint:
    """Where a key is drawn in the dope sheet (a channel row, or a control lane by title)."""
    sheet = panel.dope_sheet
    if channel_or_title in CHANNEL_INDEX:
        row = sheet.row_named("channel", channel_or_title)
        y = sheet.row_top(row) + row.height / 2
    else:
        row = sheet.row_named("control", channel_or_title)
        y = float(sheet.value_y(row, sheet.row_top(row), value))
    return QPoint(round(panel.state.x_of(frame)), round(y))


def lane_point(panel, kind: str, frame: float) -> QPoint:
    sheet = panel.dope_sheet
    row = sheet.row_named(kind)
    return QPoint(round(panel.state.x_of(frame)), sheet.row_top(row) + row.height // 2)


def drag(qtbot, widget, start: QPoint, end: QPoint, modifier=Qt.NoModifier, steps: int = 5, button=Qt.LeftButton):
    """A real press-move-release drag (QTest)."""
    qtbot.mousePress(widget, button, modifier, start)
    for t in np.linspace(0, 1, steps)[1:]:
        qtbot.mouseMove(widget, QPoint(round(start.x() + t * (end.x() - start.x())),
                                       round(start.y() + t * (end.y() - start.y()))))
    qtbot.mouseRelease(widget, button, modifier, end)


def wheel(widget, pos: QPoint, steps: float, modifiers=Qt.NoModifier) -> None:
    event = QWheelEvent(QPointF(pos), QPointF(widget.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, int(120 * steps)),
                        Qt.NoButton, modifiers, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def key_frames(project, channel: str) -> list[float]:
    return project.curve(("layer", project.layers[-1].id, channel)).frames.tolist()


def menu_action(menu, *texts: str):
    """The action reached through submenus by their texts."""
    for text in texts[:-1]:
        menu = next(a.menu() for a in menu.actions() if a.text() == text)
    return next(a for a in menu.actions() if a.text() == texts[-1])


# --- tests --------------------------------------------------------------------------------------------

def test_the_panel_shows_waveform_phones_segments_keys_curves_and_the_playhead(panel, qtbot):
    session, state, sheet = panel.session, panel.state, panel.dope_sheet
    session.select_channels([BROW])
    session.frame = 75
    panel.repaint_now()
    image = pixels(sheet)
    x = state.x_of(75)
    brow = sheet.row_named("channel", BROW)
    assert near(image, x, sheet.row_top(brow) + 4, PLAYHEAD, radius=1, tolerance=10)  # the playhead
    assert not near(image, state.x_of(70), sheet.row_top(brow) + 4, PLAYHEAD, radius=1, tolerance=10)
    key = key_point(panel, BROW, 60)
    assert near(image, key.x(), key.y(), KEY_COLOUR, radius=1, tolerance=8)  # a diamond on its frame
    assert not near(image, state.x_of(40), key.y(), KEY_COLOUR, radius=2, tolerance=8)
    # the waveform: blue where the speech is loud, nothing beyond the project's end
    audio = sheet.row_named("audio")
    band = image[audio.top + 2:audio.bottom - 2]
    blue = (band[:, :, 2].astype(int) - band[:, :, 0] > 80)
    assert blue[:, round(state.x_of(10)):round(state.x_of(30))].mean() > 0.05
    assert blue[:, round(state.x_of(session.project.num_frames + 1)):].sum() == 0
    # the phones of the generation, one box per phone, and the happy segment's colour
    assert len(state.phones()) == len(_demo_material()[1])
    phones = sheet.row_named("phones")
    assert len(np.unique(image[phones.top + phones.height // 2, GUTTER:].reshape(-1, 3), axis=0)) > 8
    emotion = sheet.row_named("emotion")
    segment = image[emotion.top + emotion.height // 2, round(state.x_of(55))]
    assert segment[0] > 150 and segment[1] > 120 and segment[2] < 110  # happy is yellow
    # the curve editor: the evaluated curve over the base (drawn faintly), keys at their values
    editor = panel.curve_editor
    curves = pixels(editor)
    colour = curve_colours([BROW])[BROW]
    value = session.project.evaluate([50])[0, CHANNEL_INDEX[BROW]]
    assert near(curves, state.x_of(50), editor.y_of(value), colour, radius=2, tolerance=25)
    assert near(curves, state.x_of(60), editor.y_of(0.09), colour, radius=2, tolerance=25)
    # the lower lip: keyed (the evaluated curve follows the keys) over its generated motion (faint)
    lip = "exp.lip_lower_center.y"
    session.select_channels([lip])
    panel.repaint_now()
    curves = pixels(editor)
    colour = curve_colours([lip])[lip]
    faint = rgb(colour) * BASE_ALPHA / 255 + np.array([30, 30, 34]) * (1 - BASE_ALPHA / 255)
    base = session.project.base_values(np.arange(161))[:, CHANNEL_INDEX[lip]]
    evaluated = session.project.evaluate(np.arange(161))[:, CHANNEL_INDEX[lip]]
    frames = [f for f in range(5, 155, 3) if abs(editor.y_of(base[f]) - editor.y_of(evaluated[f])) > 8]
    assert len(frames) > 10
    found = [near(curves, state.x_of(f), editor.y_of(base[f]), QColor(*faint.astype(int)), radius=3, tolerance=30)
             for f in frames]
    assert np.mean(found) > 0.7  # a dashed line: most samples land on a dash
    assert all(near(curves, state.x_of(f), editor.y_of(evaluated[f]), colour, radius=2, tolerance=25) for f in frames)


def test_scrubbing_in_the_ruler_moves_the_playhead_without_redrawing_the_tracks(panel, qtbot):
    session, state, sheet = panel.session, panel.state, panel.dope_sheet
    renders = sheet.static_renders + panel.curve_editor.static_renders
    start = QPoint(round(state.x_of(10)), 10)
    drag(qtbot, sheet, start, QPoint(round(state.x_of(120)), 10), steps=8)
    assert session.frame == 120
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=lane_point(panel, "audio", 33))
    assert session.frame == 33
    panel.repaint_now()
    assert sheet.static_renders + panel.curve_editor.static_renders == renders  # only the playhead moved
    assert near(pixels(sheet), state.x_of(33), sheet.pinned_height + 5, PLAYHEAD, radius=1, tolerance=10)


def test_clicking_shift_clicking_and_box_selecting_keys(panel, qtbot):
    session, state, sheet = panel.session, panel.state, panel.dope_sheet
    layer = session.project.layers[-1].id
    brow_l, brow_r = ("layer", layer, BROW), ("layer", layer, "exp.brow_inner_r.y")
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=key_point(panel, BROW, 60))
    assert dict(session.selection.keys) == {brow_l: (1,)}
    assert session.selection.channels == (BROW,)  # the curve editor, the inspector and K follow
    panel.repaint_now()
    key = key_point(panel, BROW, 60)
    assert near(pixels(sheet), key.x(), key.y(), KEY_SELECTED, radius=1, tolerance=8)
    qtbot.mouseClick(sheet, Qt.LeftButton, Qt.ShiftModifier, key_point(panel, "exp.brow_inner_r.y", 100))
    assert dict(session.selection.keys) == {brow_l: (1,), brow_r: (2,)}
    assert session.selection.channels == (BROW, "exp.brow_inner_r.y")
    qtbot.mouseClick(sheet, Qt.LeftButton, Qt.ShiftModifier, key_point(panel, BROW, 60))  # toggles off
    assert dict(session.selection.keys) == {brow_r: (2,)}
    # a box over frames 50…110 of both rows
    a, b = key_point(panel, BROW, 50), key_point(panel, "exp.brow_inner_r.y", 110)
    drag(qtbot, sheet, a - QPoint(0, 6), b + QPoint(0, 6))
    assert dict(session.selection.keys) == {brow_l: (1, 2), brow_r: (1, 2)}
    assert panel.status.text().startswith("4 key(s)")
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=key_point(panel, BROW, 45))  # empty space: none
    assert dict(session.selection.keys) == {}
    # the group's summary key selects every key of the group on that frame
    group = sheet.row_named("group", "brows")
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=QPoint(round(state.x_of(20)), sheet.row_top(group) + group.height // 2))
    assert dict(session.selection.keys) == {brow_l: (0,), brow_r: (0,)}
    assert session.selection.channels == CHANNEL_GROUPS["brows"]


def test_dragging_keys_moves_them_as_one_undo_step(panel, qtbot):
    session, project, sheet = panel.session, panel.session.project, panel.dope_sheet
    layer = project.layers[-1].id
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=key_point(panel, BROW, 60))
    qtbot.mouseClick(sheet, Qt.LeftButton, Qt.ShiftModifier, key_point(panel, "exp.brow_inner_r.y", 60))
    steps = len(project.undo_stack)
    frames_during = []
    start, end = key_point(panel, BROW, 60), key_point(panel, BROW, 72)
    qtbot.mousePress(sheet, Qt.LeftButton, pos=start)
    qtbot.mouseMove(sheet, QPoint((start.x() + end.x()) // 2, start.y()))
    frames_during.append(key_frames(project, BROW))
    assert panel.state.preview is not None and panel.state.preview.frames > 0  # drawn moved, not moved yet
    qtbot.mouseMove(sheet, end)
    qtbot.mouseRelease(sheet, Qt.LeftButton, pos=end)
    assert frames_during == [[20.0, 60.0, 100.0]]
    assert key_frames(project, BROW) == [20.0, 72.0, 100.0]
    assert key_frames(project, "exp.brow_inner_r.y") == [20.0, 72.0, 100.0]
    assert len(project.undo_stack) == steps + 1 and project.undo_stack.undo_text == "Move keyframes"
    assert dict(session.selection.keys) == {("layer", layer, BROW): (1,), ("layer", layer, "exp.brow_inner_r.y"): (1,)}
    panel.repaint_now()
    moved = key_point(panel, BROW, 72)
    image = pixels(sheet)
    assert near(image, moved.x(), moved.y(), KEY_SELECTED, radius=1, tolerance=8)
    assert not near(image, start.x(), start.y(), KEY_SELECTED, radius=2, tolerance=8)
    project.undo_stack.undo()
    assert key_frames(project, BROW) == [20.0, 60.0, 100.0]
    project.undo_stack.redo()
    assert key_frames(project, BROW) == [20.0, 72.0, 100.0]


def test_delete_copy_paste_and_interpolation_from_the_keyboard(panel, qtbot):
    session, project, sheet = panel.session, panel.session.project, panel.dope_sheet
    layer = project.layers[-1].id
    path = ("layer", layer, BROW)
    sheet.setFocus()
    a, b = key_point(panel, BROW, 55), key_point(panel, BROW, 105)
    drag(qtbot, sheet, a - QPoint(0, 5), b + QPoint(0, 5))
    assert dict(session.selection.keys) == {path: (1, 2)}
    qtbot.keyClick(sheet, Qt.Key_C, Qt.ControlModifier)
    session.frame = 130
    qtbot.keyClick(sheet, Qt.Key_V, Qt.ControlModifier)
    curve = project.curve(path)
    assert curve.frames.tolist() == [20.0, 60.0, 100.0, 130.0, 170.0]
    assert curve.values[3] == pytest.approx(0.09) and curve.values[4] == pytest.approx(0.0)
    assert project.undo_stack.undo_text == "Paste keyframes"
    assert dict(session.selection.keys) == {path: (3, 4)}  # the pasted keys
    qtbot.keyClick(sheet, Qt.Key_1, Qt.ControlModifier)
    assert project.curve(path).interpolation.tolist() == [2, 2, 2, 0, 0]
    assert project.undo_stack.undo_text == "Set interpolation Constant"
    qtbot.keyClick(sheet, Qt.Key_2, Qt.ControlModifier)
    assert project.curve(path).interpolation.tolist() == [2, 2, 2, 1, 1]
    qtbot.keyClick(sheet, Qt.Key_Delete)
    assert project.curve(path).frames.tolist() == [20.0, 60.0, 100.0]
    assert dict(session.selection.keys) == {}
    project.undo_stack.undo()
    assert project.curve(path).frames.tolist() == [20.0, 60.0, 100.0, 130.0, 170.0]
    qtbot.keyClick(sheet, Qt.Key_A, Qt.ControlModifier)  # every key of the layer and the controls
    assert sum(len(i) for i in session.selection.keys.values()) == 5 + 3 + 2 + 3 + 3 + 2
    qtbot.keyClick(sheet, Qt.Key_Escape)
    assert dict(session.selection.keys) == {}


def test_the_context_menu_changes_interpolation_of_the_key_under_the_mouse(panel, qtbot):
    project, sheet = panel.session.project, panel.dope_sheet
    path = ("layer", project.layers[-1].id, "exp.brow_inner_r.y")
    menu = sheet.context_menu(key_point(panel, "exp.brow_inner_r.y", 20))
    assert dict(panel.session.selection.keys) == {path: (0,)}
    menu_action(menu, "Interpolation", "Linear").trigger()
    assert project.curve(path).interpolation.tolist() == [1, 2, 2]
    menu_action(menu, "Delete").trigger()
    assert project.curve(path).frames.tolist() == [60.0, 100.0]


def test_emotion_segments_are_added_resized_moved_and_relabelled_undoably(panel, qtbot):
    project, state, sheet = panel.session.project, panel.state, panel.dope_sheet
    (happy,) = project.emotion_segments
    # draw a new segment (the toolbar's emotion) on empty space
    panel.emotion_box.setCurrentText("surprised")
    drag(qtbot, sheet, lane_point(panel, "emotion", 100), lane_point(panel, "emotion", 130))
    new = project.emotion_segments[-1]
    assert (new.label, new.start, new.end) == ("surprised", 100, 131)  # frames 100…130
    assert project.undo_stack.undo_text == "Add surprised segment"
    # resize the happy segment by its right edge (frame 89.5) to frame 110
    edge = QPoint(round(state.x_of(happy.end - 0.5)), lane_point(panel, "emotion", 0).y())
    drag(qtbot, sheet, edge, lane_point(panel, "emotion", 110 - 0.5))
    assert project.segment(happy.id).start == 20 and project.segment(happy.id).end == 110
    # and its left edge to frame 10
    edge = QPoint(round(state.x_of(happy.start - 0.5)), edge.y())
    drag(qtbot, sheet, edge, lane_point(panel, "emotion", 10 - 0.5))
    assert (project.segment(happy.id).start, project.segment(happy.id).end) == (10, 110)
    # move it by its body: 15 frames later, length kept
    drag(qtbot, sheet, lane_point(panel, "emotion", 50), lane_point(panel, "emotion", 65))
    moved = project.segment(happy.id)
    assert (moved.start, moved.end, moved.blend_in, moved.blend_out) == (25, 125, 5, 5)
    assert len(project.undo_stack) == 4
    # relabel and change strength through its context menu
    menu = sheet.context_menu(lane_point(panel, "emotion", 60))
    menu_action(menu, "Label", "sad").trigger()
    assert project.segment(happy.id).label == "sad"
    menu = sheet.context_menu(lane_point(panel, "emotion", 60))
    menu_action(menu, "Strength", "25 %").trigger()
    assert project.segment(happy.id).strength == 0.25
    # Alt+wheel changes strength, merged into one undo step
    steps = len(project.undo_stack)
    for _ in range(3):
        wheel(sheet, lane_point(panel, "emotion", 60), 1, Qt.AltModifier)
    assert project.segment(happy.id).strength == pytest.approx(0.4)
    assert len(project.undo_stack) == steps + 1
    panel.repaint_now()
    image = pixels(sheet)
    lane = sheet.row_named("emotion")
    assert image[lane.top + lane.height // 2, round(state.x_of(60)), 2] > 120  # sad is blue
    # Delete removes the selected segment; undo brings everything back step by step
    sheet.setFocus()
    qtbot.keyClick(sheet, Qt.Key_Delete)
    assert happy.id not in {s.id for s in project.emotion_segments}
    while project.undo_stack.can_undo:
        project.undo_stack.undo()
    assert project.emotion_segments == (happy,)


def test_control_lanes_take_keys_at_their_values(panel, qtbot):
    project, sheet = panel.session.project, panel.dope_sheet
    row = sheet.row_named("control", "Gaze y")
    top = sheet.row_top(row)
    y = round(float(sheet.value_y(row, top, 0.5)))
    qtbot.mouseDClick(sheet, Qt.LeftButton, pos=QPoint(round(panel.state.x_of(40)), y))
    curve = project.curve(("override", "eye.gaze_y"))
    assert curve.frames.tolist() == [40.0] and curve.values[0] == pytest.approx(0.5, abs=0.06)
    # drag an intensity key up: it moves in value (and not in time)
    start = key_point(panel, "Intensity", 80, 1.4)
    drag(qtbot, sheet, start, start + QPoint(0, -6))
    intensity = project.intensity
    assert intensity.frames.tolist() == [0.0, 80.0, 150.0]
    assert intensity.values[1] > 1.5 and intensity.values[1] <= 2.0
    assert project.undo_stack.undo_text == "Move keyframes"


def test_names_select_channels_and_groups_collapse(panel, qtbot):
    session, sheet = panel.session, panel.dope_sheet
    row = sheet.row_named("channel", "exp.brow_outer_l.x")
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=QPoint(60, sheet.row_top(row) + 5))
    assert session.selection.channels == ("exp.brow_outer_l.x",)
    lips = sheet.row_named("group", "lips")
    qtbot.mouseClick(sheet, Qt.LeftButton, Qt.ShiftModifier, QPoint(60, sheet.row_top(lips) + 5))
    assert set(session.selection.channels) == {"exp.brow_outer_l.x", *CHANNEL_GROUPS["lips"]}
    with pytest.raises(KeyError):
        sheet.row_named("channel", "exp.chin.y")
    jaw = sheet.row_named("group", "jaw")
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=QPoint(12, sheet.row_top(jaw) + 5))  # the arrow
    assert "jaw" in sheet.expanded and sheet.row_named("channel", "exp.chin.y")
    sheet.set_scroll(10_000)
    assert sheet.scroll == sheet.content_height - sheet.view_height
    assert panel.scrollbar.value() == sheet.scroll
    panel.timeline_actions.collapse_all.trigger()
    assert sheet.expanded == set() and sheet.scroll == 0


def test_zoom_and_pan_with_the_wheel_and_frame_all(panel, qtbot):
    state, sheet = panel.state, panel.dope_sheet
    pos = lane_point(panel, "audio", 80)
    anchor = state.frame_at(pos.x())
    ppf = state.ppf
    wheel(sheet, pos, 2)  # over the audio lane: zoom in around the mouse
    assert state.ppf == pytest.approx(ppf * 1.25 ** 2) and state.frame_at(pos.x()) == pytest.approx(anchor)
    row = sheet.row_named("channel", BROW)
    wheel(sheet, QPoint(pos.x(), sheet.row_top(row)), 1, Qt.ControlModifier)
    assert state.ppf == pytest.approx(ppf * 1.25 ** 3)
    start = state.start
    wheel(sheet, QPoint(pos.x(), sheet.row_top(row)), -1, Qt.ShiftModifier)
    assert state.start > start  # panned later
    scroll = sheet.scroll
    wheel(sheet, QPoint(pos.x(), sheet.row_top(row)), -1)
    assert sheet.scroll > scroll  # the rows scrolled
    sheet.setFocus()
    qtbot.keyClick(sheet, Qt.Key_F)
    assert state.ppf == pytest.approx(ppf) and state.x_of(0) > GUTTER
    # a middle-button drag pans
    start = state.start
    drag(qtbot, sheet, pos, pos + QPoint(-100, 0), button=Qt.MiddleButton)
    assert state.start == pytest.approx(start + 100 / state.ppf)


def brow_in_the_curve_editor(panel) -> tuple[tuple, QPoint]:
    """The inner left brow alone in the curve editor: its curve's path and where its key at frame
    60 (value 0.09, the peak) is drawn."""
    panel.session.select_channels([BROW])
    panel.repaint_now()
    path = ("layer", panel.session.project.layers[-1].id, BROW)
    return path, QPoint(round(panel.state.x_of(60)), round(panel.curve_editor.y_of(0.09)))


def test_the_curve_editor_moves_keys_in_time_and_value_and_adds_keys(panel, qtbot):
    session, project, state = panel.session, panel.session.project, panel.state
    editor = panel.curve_editor
    path, key = brow_in_the_curve_editor(panel)
    qtbot.mouseClick(editor, Qt.LeftButton, pos=key)
    assert dict(session.selection.keys) == {path: (1,)}
    low, high = editor.value_range
    per_pixel = (high - low) / editor.plot_height()
    drag(qtbot, editor, key, key + QPoint(round(5 * state.ppf), 20))
    curve = project.curve(path)
    assert curve.frames.tolist() == [20.0, 65.0, 100.0]
    assert curve.values[1] == pytest.approx(0.09 - 20 * per_pixel, abs=per_pixel)
    assert project.undo_stack.undo_text == "Move keyframes"
    # double-click keys the nearest curve there, at the value under the mouse
    point = QPoint(round(state.x_of(130)), round(editor.y_of(0.05)))
    qtbot.mouseDClick(editor, Qt.LeftButton, pos=point)
    curve = project.curve(path)
    assert 130.0 in curve.frames.tolist()
    assert curve.values[curve.key_index(130.0)] == pytest.approx(0.05, abs=2 * per_pixel)
    # normalize: each curve scaled to its own range, −1…1
    panel.timeline_actions.normalize.trigger()
    panel.repaint_now()
    assert editor.normalize and editor.value_range[0] < -1.0 < 1.0 < editor.value_range[1] < 1.5
    # a box selects keys; the legend selects one channel alone
    session.select_channels([BROW, "exp.brow_inner_r.y"])
    panel.repaint_now()
    drag(qtbot, editor, QPoint(round(state.x_of(10)), 2), QPoint(round(state.x_of(30)), editor.height() - 2))
    assert set(session.selection.keys) == {path, ("layer", project.layers[-1].id, "exp.brow_inner_r.y")}
    qtbot.mouseClick(editor, Qt.LeftButton, pos=QPoint(30, 4 + 15 + 7))
    assert session.selection.channels == ("exp.brow_inner_r.y",)


def test_dragging_a_selected_keys_handle_sets_its_slope_undoably_and_auto_handles_resets_it(panel, qtbot):
    project, state, editor = panel.session.project, panel.state, panel.curve_editor
    path, key = brow_in_the_curve_editor(panel)
    before = project.curve(path)
    assert editor.handles() == []  # no key selected: no handles
    qtbot.mouseClick(editor, Qt.LeftButton, pos=key)
    panel.repaint_now()
    handles = {h.side: (h, ex, ey) for h, _, _, ex, ey in editor.handles()}
    assert set(handles) == {-1, 1}  # Bézier on both sides of the peak
    right, ex, ey = handles[1]
    assert right.length == pytest.approx(40 / 3) and ey == pytest.approx(key.y(), abs=1)  # auto: flat at a peak
    assert ex == pytest.approx(state.x_of(60 + 40 / 3), abs=1)
    image = pixels(editor)
    assert near(image, ex, ey, editor._colours[BROW], radius=2, tolerance=40)  # the handle's end is drawn

    low, high = editor.value_range
    per_pixel = (high - low) / editor.plot_height()
    drag(qtbot, editor, QPoint(round(ex), round(ey)), QPoint(round(ex), round(ey) - 30))
    curve = project.curve(path)
    expected = 30 * per_pixel / (40 / 3)  # value per frame
    assert curve.slopes[1] == pytest.approx(expected, rel=0.1)
    assert np.isnan(curve.slopes[[0, 2]]).all() and curve.frames.tolist() == before.frames.tolist()
    assert curve.evaluate(65) > before.evaluate(65) and curve.evaluate(55) < before.evaluate(55)  # aligned
    assert project.undo_stack.undo_text == "Set handle slope"
    panel.repaint_now()  # the handles follow the set slope (the value range may have refitted)
    ends = {h.side: editor.value_at(ey) for h, _, _, _, ey in editor.handles()}
    reach = 40 / 3 * curve.slopes[1]
    assert ends[1] == pytest.approx(0.09 + reach, rel=1e-3) and ends[-1] == pytest.approx(0.09 - reach, rel=1e-3)

    # copy and paste keep the handle; Auto handles (Ctrl+4) puts it back, one undo step each
    state.copy_selected()
    state.paste(150)
    assert project.curve(path).slopes[project.curve(path).key_index(150.0)] == pytest.approx(curve.slopes[1])
    project.undo_stack.undo()
    state.select_keys({path: (1,)})
    panel.timeline_actions.auto_handles.trigger()
    assert project.curve(path) == before and project.undo_stack.undo_text == "Auto handles"
    project.undo_stack.undo()
    assert project.curve(path).slopes[1] == pytest.approx(curve.slopes[1])
    # the keys' menu offers it under Interpolation
    assert menu_action(editor.context_menu(key), "Interpolation", "Auto handles") is panel.timeline_actions.auto_handles


def test_an_undo_that_removes_selected_keys_and_a_new_project_are_followed(panel, qtbot):
    session, project, sheet = panel.session, panel.session.project, panel.dope_sheet
    sheet.setFocus()
    qtbot.mouseDClick(sheet, Qt.LeftButton, pos=key_point(panel, "exp.brow_outer_l.y", 30))
    path = ("layer", project.layers[-1].id, "exp.brow_outer_l.y")
    assert project.curve(path).frames.tolist() == [30.0]
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=key_point(panel, "exp.brow_outer_l.y", 30))
    assert dict(session.selection.keys) == {path: (0,)}
    project.undo_stack.undo()  # the curve is gone, its key still "selected"
    panel.repaint_now()
    assert panel.state.selected_keys() == {}
    qtbot.keyClick(sheet, Qt.Key_Delete)  # nothing to delete: a notice, no error
    session.set_project(Project(25.0, 0))
    panel.repaint_now()
    assert panel.layer_box.itemText(0).startswith("none yet")
    qtbot.mouseDClick(sheet, Qt.LeftButton, pos=lane_point(panel, "emotion", 5))  # nothing to add to
    assert session.project.emotion_segments == ()
    project.add_emotion("sad", 0, 10)  # the old project is no longer observed
    panel.repaint_now()


def test_waveform_envelope_matches_the_samples_at_every_zoom():
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal(50_000) * np.linspace(0, 1, 50_000)).astype(np.float32)
    waveform = Waveform(samples, 16_000)
    for t0, t1, columns in ((0.0, 50_000 / 16_000, 300), (0.5, 0.6, 400), (1.0, 1.001, 50), (-1.0, 4.0, 500)):
        mins, maxs, inside = waveform.envelope(t0, t1, columns)
        per_column = (t1 - t0) * 16_000 / columns
        edges = t0 * 16_000 + np.arange(columns + 1) * per_column
        assert not inside[edges[1:] <= 0].any() and not inside[edges[:-1] >= len(samples)].any()
        shown = np.flatnonzero(inside)
        for c in shown:
            # a column's extremes come from its own samples, give or take one column (a pyramid
            # level's blocks are at most a column wide and need not start on a column's edge)
            a = int(np.clip(np.floor(edges[c] - per_column), 0, len(samples) - 1))
            b = int(np.clip(np.ceil(edges[c + 1] + per_column), a + 1, len(samples)))
            assert samples[a:b].min() <= mins[c] <= maxs[c] <= samples[a:b].max()
        a = int(np.clip(np.floor(edges[shown[0]]), 0, None))
        b = int(np.clip(np.ceil(edges[shown[-1] + 1]), 0, len(samples)))
        span = samples[a:b]
        assert mins[shown].min() <= np.sort(span)[1] and maxs[shown].max() >= np.sort(span)[-2]  # no peak lost


def test_phones_are_read_from_the_base_motion_settings():
    base = BaseMotion(np.zeros((10, 74), np.float32), np.zeros((10, 13), np.float32), "rig",
                      {PHONE_TRACK_KEY: [["M", 0.0, 0.1], {"label": "AA", "start": 0.1, "end": 0.3},
                                         ["??", 0, 1], "x"]})
    assert phones_of(base) == (Phone("M", 0.0, 0.1), Phone("AA", 0.1, 0.3))
    assert phones_of(None) == ()
    assert phones_of(BaseMotion(base.values, base.conditions, "rig", {"phones": "aligned"})) == ()
    assert phone_track([Phone("B", 0.123456, 0.2)]) == [["B", 0.1235, 0.2]]


def test_the_scrub_benchmark_reports_frames_per_second(qtbot, no_leaks):
    from studio.qt.timeline import (
        TimelinePanel,
        benchmark_session,
        benchmark_timeline_scrub,
    )

    session = benchmark_session(minutes=0.5)
    panel = TimelinePanel(session)
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    qtbot.waitExposed(panel)
    result = benchmark_timeline_scrub(panel, frames=20)
    assert result["frames"] == 20 and result["fps"] > 0 and result["project_frames"] == 750
    assert result["full_redraws"] == 0  # the whole project in view: only the playhead is drawn
    paged = benchmark_timeline_scrub(panel, frames=20, window_seconds=4.0)
    assert paged["full_redraws"] >= 2  # the view paged with the playhead
    assert session.frame == session.last_frame


def test_tooltips_name_what_is_under_the_mouse(panel):
    sheet = panel.dope_sheet
    phone = _demo_material()[1][5]
    assert sheet.tooltip_at(lane_point(panel, "phones", (phone.start + phone.end) / 2 * FPS - 0.5)).startswith(
        f"{phone.label} · viseme {phone.viseme}")
    assert sheet.tooltip_at(lane_point(panel, "emotion", 50)).startswith("happy 70 % · frames 20–89 · fades 5/5")
    assert sheet.tooltip_at(key_point(panel, BROW, 60)) == "brow_inner_l.y · frame 60 · value 0.09 · Bezier"
    assert "double-click" in sheet.tooltip_at(key_point(panel, "Gaze y", 10, 0.0))
