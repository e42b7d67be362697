"""A user's journey through the real main window (offscreen), with the timeline docked at the bottom
and the inspector on the right: open the demo portrait, speech and transcript; generate; scrub in
the timeline's ruler; drag an inspector slider; key the selection with K and move a key in the dope
sheet; draw an emotion segment in the emotion lane and regenerate its frames; undo/redo; save;
reopen; export MP4 — each step checked on the document and on the pixels the window shows.

The GUI thread's longest block while generating and exporting is recorded (``record_property``;
``studio bench gui`` reports the figures) but not asserted: timings depend on the machine's load."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from qt_support import (
    changed_pixels,
    document_state,
    lane_point,
    mouse_drag,
    mouth_box,
    settled_view,
    wait_for_jobs,
    widget_pixels,
)

from studio.core.keypoints import KEYPOINT_INDEX
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX
from studio.qt.dialogs import ExportSettings, GenerateSettings
from studio.qt.timeline_state import PLAYHEAD, STALE, phones_of

DEMO_FRAMES = 161  # assets/demo/speech.flac: 6.42 s at 25 fps
LIP_Y = "exp.lip_lower_center.y"
CHIN_Y = "exp.chin.y"
CHIN_Y_INDEX = CHANNEL_INDEX[CHIN_Y]


def click_keypoint(qtbot, window, name: str) -> None:
    """A real mouse click on a keypoint of the 2D view's overlay."""
    viewport = window.viewport
    item = viewport.keypoints
    x, y = item.data["x"][KEYPOINT_INDEX[name]], item.data["y"][KEYPOINT_INDEX[name]]
    scene = viewport.viewbox.mapViewToScene(QPointF(float(x), float(y)))
    qtbot.mouseClick(viewport.view.viewport(), Qt.LeftButton, pos=viewport.view.mapFromScene(scene))


def send_mouse(widget, kind, pos: QPointF, buttons) -> None:
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def drag_slider(qtbot, slider, values) -> None:
    """Press the slider's handle, move through ``values`` at a hand's pace, release."""
    send_mouse(slider, QEvent.MouseButtonPress, slider.handle_center(), Qt.LeftButton)
    for value in values:
        send_mouse(slider, QEvent.MouseMove, slider.point_for(value), Qt.LeftButton)
        qtbot.wait(15)
    send_mouse(slider, QEvent.MouseButtonRelease, slider.point_for(values[-1]), Qt.NoButton)


def near(image: np.ndarray, x: float, y: float, colour, radius: int = 1, tolerance: int = 12) -> bool:
    x, y = round(x), round(y)
    patch = image[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1].astype(int)
    return bool((np.abs(patch - np.array(colour.getRgb()[:3])).max(-1) <= tolerance).any())


def view_at(qtbot, window, frame: int) -> np.ndarray:
    window.session.frame = frame
    return settled_view(qtbot, window)


def test_user_journey(make_window, astronaut_png, qtbot, tmp_path, record_property):
    from studio.qt.screenshots import DEMO

    window = make_window()
    session, project, dialogs = window.session, window.session.project, window.dialogs
    timeline, inspector, sheet = window.timeline, window.inspector, window.timeline.dope_sheet
    state = timeline.state
    assert window.timeline_dock.isVisible() and window.inspector_dock.isVisible()
    assert window.dockWidgetArea(window.timeline_dock) == Qt.BottomDockWidgetArea
    assert window.dockWidgetArea(window.inspector_dock) == Qt.RightDockWidgetArea

    # --- open the portrait, the speech and its transcript through File ▸ Import -------------------
    for role, path in (("portrait", astronaut_png), ("audio", DEMO / "speech.flac"),
                       ("transcript", DEMO / "speech.txt")):
        dialogs.import_path = path
        window.import_actions[role].trigger()
        wait_for_jobs(qtbot, window)
    assert dialogs.errors == []
    assert set(project.sources) == {"portrait", "audio", "transcript"}
    assert project.num_frames == DEMO_FRAMES and project.fps == 25.0
    np.testing.assert_allclose(project.identity, window.media.fit.canonical_keypoints)
    assert session.media.transcript.startswith("My mom bought a bamboo map")
    assert window.media_bin.rows["portrait"].text(1) == "512×512, face found"
    photo = settled_view(qtbot, window)
    assert photo.std() > 20  # the photo is on screen, not an empty view
    assert window.windowTitle() == "Untitled* — Talking Head Studio"
    lanes = widget_pixels(sheet)
    audio = sheet.row_named("audio")
    band = lanes[audio.top + 2:audio.bottom - 2, round(state.x_of(5)):round(state.x_of(DEMO_FRAMES - 5))]
    assert (band[:, :, 2].astype(int) - band[:, :, 0] > 80).mean() > 0.02  # the waveform is drawn

    # --- generate (Animation ▸ Generate…): one undo step; the phones reach the timeline -------------
    steps = len(project.undo_stack)
    dialogs.generate = GenerateSettings(seed=5)  # neutral: the emotion comes later, drawn in the timeline
    window.generate_action.trigger()
    job = window.jobs.jobs[-1]
    assert job.title == "Generate motion" and job.running
    wait_for_jobs(qtbot, window)
    assert job.state == "done", job.error
    record_property("gui_max_blocked_ms_generate", round(job.max_latency_ms, 1))
    assert len(project.undo_stack) == steps + 1 and project.undo_stack.undo_text == "Generate motion"
    assert len(project.base) == DEMO_FRAMES and project.base.settings["phones"] == "aligned"
    phones = phones_of(project.base)
    assert len(phones) > 20 and phones[-1].end == pytest.approx(project.duration, abs=0.5)
    assert project.emotion_segments == ()
    timeline.repaint_now()
    lanes = widget_pixels(sheet)
    row = sheet.row_named("phones")
    strip = lanes[row.top + row.height // 2, round(state.x_of(0)):round(state.x_of(DEMO_FRAMES - 1))]
    assert len(np.unique(strip.reshape(-1, 3), axis=0)) > 8  # one coloured box per phone
    generated = document_state(project)

    # --- scrub: drag the playhead along the timeline's ruler ------------------------------------------
    rows, cols = mouth_box(window)
    at_10 = view_at(qtbot, window, 10)
    mouse_drag(qtbot, sheet, lane_point(timeline, "ruler", 10), lane_point(timeline, "ruler", 45))
    assert session.frame == 45 and window.scrubber.value() == 45
    at_45 = settled_view(qtbot, window)
    picture_45 = window.viewport.picture.copy()
    assert changed_pixels(at_10, at_45) > 0.001  # the mouth moved on screen
    assert near(widget_pixels(sheet), state.x_of(45), sheet.pinned_height + 5, PLAYHEAD)
    assert "0:01.80" in window.time_label.text() and "frame 45" in inspector.playhead.text()
    qtbot.keyClick(window, Qt.Key_Right)
    assert session.frame == 46
    qtbot.keyClick(window, Qt.Key_End)
    assert session.frame == DEMO_FRAMES - 1
    qtbot.keyClick(window, Qt.Key_Home)
    assert session.frame == 0
    assert np.array_equal(view_at(qtbot, window, 45), at_45)

    # --- drag an inspector slider: the jaw closes live, one undo step ------------------------------------
    qtbot.keyClicks(inspector.filter, "chin")
    inspector.refresh()
    chin = inspector.rows[CHIN_Y]
    assert chin.slider.isVisible()
    before = float(session.frame_values()[CHIN_Y_INDEX])
    steps = len(project.undo_stack)
    drag_slider(qtbot, chin.slider, [before + 0.05, before + 0.15, before + 0.25])
    after = float(project.evaluate([45])[0, CHIN_Y_INDEX])
    assert after == pytest.approx(chin.slider.value_at(), abs=1e-3) and after > before + 0.2
    assert len(project.undo_stack) == steps + 1 and project.undo_stack.undo_text.startswith("Set Chin")
    settled_view(qtbot, window)
    assert changed_pixels(picture_45, window.viewport.picture) > 0.002  # the jaw closed in the picture
    inspector.filter.clear()

    # --- key the lower lip with K at frame 45, type its value at 90, move that key in the dope sheet ------
    click_keypoint(qtbot, window, "lip_lower_center")
    assert session.selection.channels == tuple(f"exp.lip_lower_center.{a}" for a in "xyz")
    held = float(session.frame_values()[CHANNEL_INDEX[LIP_Y]])
    steps = len(project.undo_stack)
    qtbot.keyClick(window, Qt.Key_K)
    assert len(project.undo_stack) == steps + 1
    layer = project.layers[-1]
    assert layer.id == session.active_layer and timeline.layer_box.currentData() == layer.id
    path = ("layer", layer.id, LIP_Y)
    assert project.curve(path).frames.tolist() == [45.0]
    assert project.evaluate([45])[0, CHANNEL_INDEX[LIP_Y]] == pytest.approx(held, abs=1e-5)  # keyed as shown
    session.frame = 90
    qtbot.keyClicks(inspector.filter, "lip_lower_center")
    inspector.refresh()
    field = inspector.rows[LIP_Y].field
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, f"{held + 0.3:.3f}")
    qtbot.keyClick(field, Qt.Key_Return)
    assert project.curve(path).frames.tolist() == [45.0, 90.0]
    assert project.evaluate([90])[0, CHANNEL_INDEX[LIP_Y]] == pytest.approx(held + 0.3, abs=1e-3)
    inspector.filter.clear()
    timeline.scrollbar.setValue(sheet.row_named("group", "lips").top)  # scroll the lips' group into view
    group = lane_point(timeline, "group", 0, "lips")
    qtbot.mouseClick(sheet, Qt.LeftButton, pos=QPoint(12, group.y()))  # its arrow: expand
    assert "lips" in sheet.expanded
    timeline.scrollbar.setValue(sheet.row_named("channel", LIP_Y).top - 4)
    timeline.repaint_now()
    before_move = project.evaluate([105])[0]
    view_at(qtbot, window, 105)
    picture_before_move = window.viewport.picture.copy()
    steps = len(project.undo_stack)
    mouse_drag(qtbot, sheet, lane_point(timeline, "channel", 90, LIP_Y), lane_point(timeline, "channel", 120, LIP_Y))
    assert project.curve(path).frames.tolist() == [45.0, 120.0]
    assert len(project.undo_stack) == steps + 1 and project.undo_stack.undo_text == "Move keyframes"
    assert project.evaluate([105])[0, CHANNEL_INDEX[LIP_Y]] != pytest.approx(before_move[CHANNEL_INDEX[LIP_Y]],
                                                                               abs=1e-4)
    view_at(qtbot, window, 105)
    assert changed_pixels(picture_before_move[rows, cols], window.viewport.picture[rows, cols]) > 0.002  # the lip
    keyed = document_state(project)

    # --- draw a "surprised" segment in the emotion lane; regenerate its frames ----------------------------
    timeline.emotion_box.setCurrentText("surprised")
    steps = len(project.undo_stack)
    mouse_drag(qtbot, sheet, lane_point(timeline, "emotion", 100), lane_point(timeline, "emotion", 140))
    segment = project.emotion_segments[-1]
    assert (segment.label, segment.start, segment.end) == ("surprised", 100, 141)
    assert len(project.undo_stack) == steps + 1
    stale = window.stale_frames()
    assert stale[100:141].all() and not stale[:95].any() and window.regenerate_action.isEnabled()
    timeline.repaint_now()
    ruler = sheet.row_named("ruler")
    assert near(widget_pixels(sheet), state.x_of(120), ruler.bottom - 2, STALE, radius=1, tolerance=30)  # marked stale
    with_segment = document_state(project)
    motion_before = project.evaluate()
    view_before = view_at(qtbot, window, 120)
    qtbot.keyClick(window, Qt.Key_G, Qt.ControlModifier | Qt.ShiftModifier)  # Regenerate changed frames
    job = window.jobs.jobs[-1]
    wait_for_jobs(qtbot, window)
    assert job.state == "done", job.error
    motion_after = project.evaluate()
    brows = [CHANNEL_INDEX[c] for c in CHANNEL_GROUPS["brows"]]
    assert np.abs(motion_after[110:135, brows] - motion_before[110:135, brows]).max() > 1e-3  # surprised brows
    assert np.array_equal(motion_after[:90], motion_before[:90])  # frames outside kept bit for bit
    assert not window.stale_frames().any()
    view_regenerated = view_at(qtbot, window, 120)
    assert changed_pixels(view_before, view_regenerated) > 0.002
    regenerated = document_state(project)

    # --- undo / redo with the keyboard: the document and the picture go back and forth -------------------
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier)
    assert document_state(project) == with_segment
    assert np.array_equal(view_at(qtbot, window, 120), view_before)
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier)
    assert document_state(project) == keyed and project.emotion_segments == ()
    for _ in range(4):  # the key move, the typed key, K, the slider drag: back to the generated motion
        qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier)
    assert document_state(project) == generated and project.layers == ()
    assert np.array_equal(view_at(qtbot, window, 45), at_45)
    for _ in range(4):
        qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert document_state(project) == keyed
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert document_state(project) == regenerated
    assert np.array_equal(view_at(qtbot, window, 120), view_regenerated)

    # --- save (Ctrl+S asks for a name the first time), reopen: the same document -----------------------
    dialogs.save_path = tmp_path / "talk.thproj"
    qtbot.keyClick(window, Qt.Key_S, Qt.ControlModifier)
    assert dialogs.save_path.is_file() and not project.is_modified
    assert window.windowTitle() == "talk.thproj — Talking Head Studio"
    assert window.recent_files()[0] == str(dialogs.save_path.resolve())
    window.new_project()
    assert session.project.num_frames == 0 and session.active_layer is None
    dialogs.open_path = dialogs.save_path
    window.open_action.trigger()
    wait_for_jobs(qtbot, window)
    project = session.project
    assert document_state(project) == regenerated and not project.is_modified
    assert len(phones_of(project.base)) == len(phones)  # the phone lane survives the file
    assert np.array_equal(view_at(qtbot, window, 120), view_regenerated)

    # --- export MP4 (File ▸ Export ▸ Video…) as a job; read it back with PyAV ---------------------------
    out = tmp_path / "talk.mp4"
    dialogs.export = ExportSettings("mp4", out)
    window.export_actions["mp4"].trigger()
    job = window.jobs.jobs[-1]
    wait_for_jobs(qtbot, window)
    assert job.state == "done", job.error
    record_property("gui_max_blocked_ms_export", round(job.max_latency_ms, 1))
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert container.streams.audio, "the MP4 has no audio stream"
        assert (video.codec_context.width, video.codec_context.height) == (512, 512)
        assert float(container.duration / av.time_base) == pytest.approx(DEMO_FRAMES / 25.0, abs=0.1)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == DEMO_FRAMES
    expected = window.media.renderer.render(project.evaluate([120])[0])
    assert np.abs(frames[120].astype(np.float64) - expected).mean() < 4.0  # the document's frame 120 (CRF 18)
    assert dialogs.errors == []
