"""The 2D viewport: dragging keypoints to fix a fit (live preview, one undo step on release),
placing them on a face the detector missed, the rate-limited re-render and the scrub benchmark."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from qt_support import changed_pixels, load_demo, wait_for_jobs

from studio.core.keypoints import KEYPOINT_INDEX
from studio.core.motion import CHANNEL_INDEX, NEUTRAL_FRAME


def view_point(viewport, x: float, y: float):
    """Widget coordinates (of the view's viewport) of image pixel coordinates."""
    scene = viewport.viewbox.mapViewToScene(QPointF(x + 0.5, y + 0.5))
    return viewport.view.mapFromScene(scene)


def mouse(widget, kind, pos, buttons) -> None:
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(viewport, start_xy, end_xy, steps: int = 6, during=None) -> None:
    """A real press-move-release drag on the view, in image pixel coordinates."""
    target = viewport.view.viewport()
    start = view_point(viewport, *start_xy)
    mouse(target, QEvent.MouseButtonPress, start, Qt.LeftButton)
    for t in np.linspace(0, 1, steps)[1:]:
        x = start_xy[0] + t * (end_xy[0] - start_xy[0])
        y = start_xy[1] + t * (end_xy[1] - start_xy[1])
        time.sleep(0.02)  # pyqtgraph's scene drops move events closer than its rate limit (a real hand is slower)
        mouse(target, QEvent.MouseMove, view_point(viewport, x, y), Qt.LeftButton)
        if during is not None:
            during()
    mouse(target, QEvent.MouseButtonRelease, view_point(viewport, *end_xy), Qt.NoButton)


def test_dragging_a_keypoint_previews_live_and_is_one_undo_step(make_window, astronaut_png, qtbot):
    window = make_window()
    window.import_files([astronaut_png])
    wait_for_jobs(qtbot, window)
    viewport, project, media = window.viewport, window.session.project, window.media
    viewport.edit_fit.setChecked(True)
    viewport.refresh()
    assert np.array_equal(viewport.picture, media.image)  # the photo as it is, under the fit's points
    chin = KEYPOINT_INDEX["chin"]
    start = media.fit.keypoints[chin, :2]
    end = start + (0.0, 18.0)
    identity = project.identity.copy()
    steps = len(project.undo_stack)
    outlines = []

    def during():
        assert len(project.undo_stack) == steps  # nothing in the document while dragging
        outlines.append(viewport.contours.getData()[1].copy())

    drag(viewport, start, end, during=during)
    assert len(outlines) >= 3 and not np.allclose(outlines[0], outlines[-1], equal_nan=True)  # live preview
    assert len(project.undo_stack) == steps + 1 and project.undo_stack.undo_text == "Move face keypoints"
    np.testing.assert_allclose(project.portrait_keypoints[chin], end, atol=1.0)
    others = np.delete(np.arange(21), chin)
    np.testing.assert_allclose(project.portrait_keypoints[others], media.detected.keypoints[others, :2], atol=1e-6)
    assert project.identity[chin, 1] < identity[chin, 1] - 0.05  # a longer chin in face units
    assert window.session.media.portrait.face == "placed" and media.fit.source == "mediapipe"
    jaw_open = NEUTRAL_FRAME.copy()
    jaw_open[CHANNEL_INDEX["exp.chin.y"]] = -0.3
    with_placed = media.renderer.render(jaw_open)
    window.undo()
    assert project.portrait_keypoints is None and np.array_equal(project.identity, identity)
    assert media.fit is media.detected and window.session.media.portrait.face == "detected"
    assert changed_pixels(media.renderer.render(jaw_open), with_placed) > 0.002  # the warp follows the fit
    window.redo()
    viewport.reset_fit.trigger()
    assert project.portrait_keypoints is None and project.undo_stack.undo_text == "Reset face keypoints"


def test_placing_keypoints_on_a_face_the_detector_missed(make_window, qtbot, tmp_path):
    import skimage.data

    photo = tmp_path / "coffee.png"
    cv2.imwrite(str(photo), skimage.data.coffee()[:, :, ::-1])  # a cup of coffee: no face
    window = make_window()
    window.import_files([photo])
    wait_for_jobs(qtbot, window)
    project, media, viewport = window.session.project, window.media, window.viewport
    assert "portrait" in project.sources and project.identity is None
    assert media.fit is None and window.session.media.portrait.face == "missing"
    assert "No face found in coffee.png" in window.statusBar().currentMessage()
    assert viewport.edit_fit.isChecked()  # placing the points is the next step
    assert not window.export_actions["mp4"].isEnabled()
    viewport.refresh()
    points = viewport._current_edit_points()
    nose = KEYPOINT_INDEX["nose_tip"]
    drag(viewport, points[nose], points[nose] + (6.0, 4.0))
    assert project.portrait_keypoints is not None and media.fit is not None
    assert media.fit.source == "keypoints" and window.session.media.portrait.face == "placed"
    np.testing.assert_allclose(project.identity, media.fit.canonical_keypoints)
    assert media.renderer is not None
    viewport.edit_fit.setChecked(False)
    project.set_timing(num_frames=5)
    assert window.export_actions["mp4"].isEnabled()


def test_clicking_keypoints_selects_their_channels(make_window, astronaut_png, qtbot):
    window = make_window()
    window.import_files([astronaut_png])
    wait_for_jobs(qtbot, window)
    viewport = window.viewport
    viewport.refresh()
    item = viewport.keypoints
    for name, modifier in (("brow_inner_l", Qt.NoModifier), ("nose_tip", Qt.ShiftModifier)):
        i = KEYPOINT_INDEX[name]
        pos = view_point(viewport, item.data["x"][i] - 0.5, item.data["y"][i] - 0.5)
        qtbot.mouseClick(viewport.view.viewport(), Qt.LeftButton, modifier, pos)
    viewport.refresh()
    assert window.session.selection.channels == tuple(
        f"exp.{k}.{a}" for k in ("nose_tip", "brow_inner_l") for a in "xyz")
    brushes = [b.color().getRgb()[:3] for b in item.data["brush"]]
    assert brushes[KEYPOINT_INDEX["nose_tip"]] == (255, 170, 40) and brushes[KEYPOINT_INDEX["chin"]] == (80, 220, 255)


def test_renders_are_coalesced_while_scrubbing(make_window, astronaut_png, qtbot):
    window = make_window()
    load_demo(qtbot, window, astronaut_png, transcript=False)
    viewport = window.viewport
    viewport.refresh()
    renders = viewport.renders
    for frame in range(100):
        window.session.frame = frame  # a burst of playhead moves inside one event-loop pass
    assert viewport.renders == renders  # nothing rendered synchronously
    qtbot.waitUntil(lambda: viewport.renders > renders, timeout=2000)
    qtbot.wait(100)
    assert viewport.renders - renders <= 2  # the burst became one render (two at most)


def test_benchmark_scrub_reports_frames_per_second(make_window, astronaut_png, qtbot):
    from studio.qt.viewport2d import benchmark_scrub

    window = make_window()
    load_demo(qtbot, window, astronaut_png, transcript=False)
    result = benchmark_scrub(window.viewport, frames=20)
    assert result["frames"] == 20 and result["size"] == "512×512" and result["fps"] > 0
    assert window.session.frame == window.session.last_frame
    with pytest.raises(ValueError, match="fitted portrait"):
        window.session.project.set_timing(num_frames=1)
        benchmark_scrub(window.viewport, frames=20)
