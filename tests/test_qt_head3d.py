"""The 3D panel of the main window: docked once a head mesh is loaded; without OpenGL (Qt's
offscreen platform) a notice instead of the view; with it (these run under Xvfb, whose GL context
the view renders into, as tests/test_qt_viewport3d.py does), the head follows the playhead and the
document, shading and keypoint markers switch, and the 21 keypoints of a custom mesh are assigned
by clicking its vertices — each click one undo step — after which the mesh moves with the motion."""

from __future__ import annotations

import numpy as np
import pytest
from qt_support import wait_for_jobs

from studio.core.keypoints import KEYPOINT_NAMES


@pytest.fixture(scope="module")
def face_mesh(tmp_path_factory):
    """A custom head mesh (the demo portrait's face mesh as a plain OBJ) and its 21 keypoint ids."""
    import cv2
    import trimesh

    from studio.render.contact_sheet import sample_photos
    from studio.render.mesh.animate import load_animated_head

    folder = tmp_path_factory.mktemp("mesh")
    photo = folder / "astronaut.png"
    cv2.imwrite(str(photo), sample_photos()["astronaut"][:, :, ::-1])
    head = load_animated_head(photo)
    path = folder / "face.obj"
    trimesh.Trimesh(head.rest, head.faces, process=False).export(path)
    return path, tuple(ids[0] for ids in head.keypoint_vertices)


def keyed_window(make_window, qtbot, mesh):
    window = make_window()
    project = window.session.project
    project.set_timing(num_frames=40)
    layer = project.default_layer_id()
    for frame, value in ((0, 0.0), (20, -0.35), (39, 0.0)):
        project.set_key(("layer", layer, "exp.chin.y"), frame, value)
    window.import_files([mesh])
    wait_for_jobs(qtbot, window)
    qtbot.waitUntil(lambda: window.heads.loaded is not None and not window.heads.loading, timeout=60000)
    return window


def test_without_opengl_the_panel_says_so_and_the_window_lives_on(make_window, qtbot, face_mesh, monkeypatch):
    import studio.qt.viewport3d

    monkeypatch.setattr(studio.qt.viewport3d, "gl_available", lambda: False)
    mesh, ids = face_mesh
    window = keyed_window(make_window, qtbot, mesh)
    assert window.head_dock is not None and window.head_dock.isVisible()
    qtbot.wait(20)  # the docks' widths settle on the next pass of the event loop
    two, three, inspector = (d.geometry() for d in (window.viewport_dock, window.head_dock, window.inspector_dock))
    assert three.top() == two.top() and two.right() < three.left() < three.right() < inspector.left()  # beside 2D
    assert three.width() > 300 and two.width() > 300 and window.timeline_dock.isVisible()
    view = window.head_view
    assert view.viewport is None and view.unavailable.isVisible() and "OpenGL" in view.unavailable.text()
    assert not view.assign.isEnabled()
    assert "none of its 21 keypoints is assigned" in view.status.text()
    window.session.project.set_mesh_keypoints(ids)  # the document still takes keypoints, exports still work
    qtbot.waitUntil(lambda: window.heads.loaded.head is not None, timeout=60000)
    window.session.frame = 20
    assert "animated" in view.status.text() and window.dialogs.errors == []
    window.session.select_channels(["exp.chin.x", "exp.chin.y"])  # the 2D view or the inspector selects
    assert view.chosen_keypoint == "chin"

    # Another mesh: the assignments named the old one's vertices; they go with the same undo step.
    other = mesh.with_name("other.obj")
    other.write_bytes(mesh.read_bytes() + b"\n# another file\n")
    window.import_files([other])
    wait_for_jobs(qtbot, window)
    project = window.session.project
    assert project.sources["mesh"].path == str(other) and project.mesh_keypoints is None
    assert project.undo_stack.undo_text == "Import mesh other.obj"
    project.undo_stack.undo()
    assert project.mesh_keypoints == ids


@pytest.fixture
def panel(qtbot, no_leaks, face_mesh):
    """The 3D panel on its own (a session, the head controller, the jobs): on Qt's offscreen
    platform a GL widget inside a dock area cannot draw, on its own it renders into Xvfb's context."""
    from studio.core.session import Session
    from studio.qt.head_view import HeadController, HeadView
    from studio.qt.workers import JobManager

    session = Session()
    jobs = JobManager()
    controller = HeadController(session, jobs)
    view = HeadView(session, controller, gl=True)
    qtbot.addWidget(view)
    view.resize(520, 560)
    view.show()
    project = session.project
    project.set_timing(num_frames=40)
    layer = project.default_layer_id()
    for frame, value in ((0, 0.0), (20, -0.35), (39, 0.0)):
        project.set_key(("layer", layer, "exp.chin.y"), frame, value)
    from studio.core.document import Source

    project.set_source("mesh", Source.from_file("mesh", face_mesh[0]))
    qtbot.waitUntil(lambda: controller.loaded is not None and not controller.loading, timeout=60000)
    yield view
    jobs.cancel_all(wait=True)


@pytest.mark.gl
def test_assigning_keypoints_by_clicking_vertices_animates_a_custom_mesh(panel, qtbot, face_mesh):
    view = panel
    session = view.session
    project = session.project
    viewport = view.viewport
    ids = face_mesh[1]
    assert view.shown.head is None and viewport.keypoint_groups == (None,) * 21  # at rest, nothing placed
    assert "none of its 21 keypoints is assigned" in view.status.text()
    rest = viewport.render()
    background = rest[2, 2].astype(int)
    assert (np.abs(rest.astype(int) - background).sum(-1) > 40).mean() > 0.05  # the mesh is drawn

    view.assign.setChecked(True)
    assert view.assign_bar.isVisible() and viewport.picking
    steps = len(project.undo_stack)
    for i, vertex in enumerate(ids):
        assert view.chosen_keypoint == KEYPOINT_NAMES[i]  # each click moves on to the next one
        x, y = viewport.scene.to_canvas(viewport._vertices[[vertex]])[0]
        with qtbot.waitSignal(viewport.vertexPicked, timeout=2000):
            viewport.canvas.events.mouse_press(pos=(x, y), button=1, modifiers=())
            viewport.canvas.events.mouse_release(pos=(x, y), button=1, modifiers=())
        if i < 20:
            assert project.undo_stack.undo_text == f"Assign keypoint {KEYPOINT_NAMES[i]}"
            assert sum(g is not None for g in viewport.keypoint_groups) == i + 1  # the marker is there at once
    assert project.mesh_keypoints == ids
    assert len(project.undo_stack) == steps + 21
    qtbot.waitUntil(lambda: view.shown is not None and view.shown.head is not None, timeout=60000)
    assert "animated" in view.status.text() and view.controller.export_problem() == ""

    # The head follows the playhead: the jaw drops at frame 20.
    view.keypoints.setChecked(False)
    session.frame = 0
    qtbot.wait(50)
    closed = viewport.render().astype(int)
    session.frame = 20
    qtbot.waitUntil(lambda: np.abs(viewport.render().astype(int) - closed).mean() > 0.5, timeout=5000)
    # … and the document: a key edit at the playhead shows without moving it.
    opened = viewport.render().astype(int)
    project.set_key(("layer", project.default_layer_id(), "pose.yaw"), 20, 25.0)
    qtbot.waitUntil(lambda: np.abs(viewport.render().astype(int) - opened).mean() > 0.5, timeout=5000)
    turned = viewport.render()
    view.shading.setCurrentIndex(view.shading.findData("wireframe"))
    assert np.abs(viewport.render().astype(int) - turned.astype(int)).mean() > 1.0
    view.keypoints.setChecked(True)

    # Undo the yaw key, then the last assignment: the mesh is at rest again, 20 of 21 placed.
    project.undo_stack.undo()
    assert project.undo_stack.undo_text == f"Assign keypoint {KEYPOINT_NAMES[20]}"
    project.undo_stack.undo()
    qtbot.waitUntil(lambda: not view.controller.loading, timeout=60000)
    assert view.controller.error == "", view.controller.error
    assert view.shown is not None and view.shown.head is None
    assert sum(g is not None for g in viewport.keypoint_groups) == 20
    assert "1 of its 21 keypoints is not assigned yet" in view.status.text()
    assert "1 of its 21 keypoints is not assigned yet" in view.controller.export_problem()


@pytest.mark.gl
def test_the_view_shows_offscreen_frames_and_orbits_with_the_mouse(panel, qtbot):
    """No QOpenGLWidget inside the window (it would make every repaint of the window an OpenGL
    composition): the view shows the hidden canvas's frames as images and hands it the mouse."""
    from PySide6.QtCore import QPoint
    from PySide6.QtOpenGLWidgets import QOpenGLWidget
    from qt_support import mouse_drag, widget_pixels

    view = panel
    viewport = view.viewport
    assert not view.findChildren(QOpenGLWidget) and not viewport.canvas.native.isVisible()
    qtbot.waitUntil(lambda: viewport.frames > 0, timeout=5000)
    shown = widget_pixels(viewport.picture).astype(int)
    assert shown.shape[:2] == (viewport.picture.height(), viewport.picture.width())
    assert (np.abs(shown - shown[2, 2]).sum(-1) > 40).mean() > 0.05  # the head is on screen
    frames = viewport.frames
    middle = QPoint(viewport.picture.width() // 2, viewport.picture.height() // 2)
    mouse_drag(qtbot, viewport.picture, middle, middle + QPoint(120, 0))  # orbit
    qtbot.waitUntil(lambda: viewport.frames > frames, timeout=5000)
    assert viewport.scene.view.camera.azimuth != 0
    assert np.abs(widget_pixels(viewport.picture).astype(int) - shown).mean() > 1.0
    frames = viewport.frames
    view.shading.setCurrentIndex(view.shading.findData("wireframe"))  # a scene change: a new frame
    qtbot.waitUntil(lambda: viewport.frames > frames, timeout=5000)
