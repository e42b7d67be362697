"""The 3D viewport (vispy in Qt, under Xvfb): the head at the playhead, keypoints, shading,
orbit, vertex picking, and frames drawn smaller while the head moves, full size once it stops."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    import cv2

    from studio.render.contact_sheet import sample_photos
    from studio.render.mesh.animate import load_animated_head

    photo = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    cv2.imwrite(str(photo), sample_photos()["astronaut"][:, :, ::-1])
    return load_animated_head(photo)


@pytest.fixture
def viewport(qtbot, head):
    from studio.qt.viewport3d import Viewport3D

    view = Viewport3D(size=(240, 240))
    qtbot.addWidget(view)
    view.resize(240, 240)
    view.show()
    view.set_head(head)
    return view


def test_the_head_follows_the_motion(viewport):
    from studio.render.contact_sheet import sheet_frames

    sheet = sheet_frames()
    viewport.set_keypoints_visible(False)
    viewport.show_frame(sheet["m (closed)"])
    closed = viewport.render().astype(int)
    background = closed[2, 2]
    face = np.abs(closed - background).sum(-1) > 40
    assert 0.2 < face.mean() < 0.8
    keys = viewport.keypoints_on_screen()
    mouth = keys[[12, 13]].mean(0).round().astype(int)  # between the lip centres
    viewport.show_frame(sheet["ah"])
    open_ = viewport.render().astype(int)
    x, y = mouth
    patch = (slice(y - 4, y + 5), slice(x - 4, x + 5))
    assert open_[patch].mean() < closed[patch].mean() - 25  # the dark mouth pocket shows


def test_shading_modes_and_orbit_change_the_picture(viewport):
    front = viewport.render()
    viewport.set_shading("wireframe")
    wire = viewport.render()
    assert np.abs(front.astype(int) - wire.astype(int)).mean() > 3
    viewport.set_shading("smooth")
    viewport.scene.view.camera.azimuth += 60
    turned = viewport.render()
    assert np.abs(front.astype(int) - turned.astype(int)).mean() > 3
    with pytest.raises(ValueError, match="unknown shading"):
        viewport.set_shading("toon")


def test_clicking_a_vertex_picks_it(viewport, qtbot, head):
    keys = viewport.keypoints_on_screen()
    nose = head.keypoint_vertices[1][0]
    assert viewport.pick(*keys[1]) == nose
    assert viewport.pick(2, 2) is None  # the background
    viewport.picking = True
    x, y = keys[1]
    with qtbot.waitSignal(viewport.vertexPicked, timeout=1000) as picked:
        viewport.canvas.events.mouse_press(pos=(x, y), button=1, modifiers=())
        viewport.canvas.events.mouse_release(pos=(x, y), button=1, modifiers=())
    assert picked.args == [nose]


def test_moving_frames_are_drawn_smaller_and_the_still_frame_full_size(viewport, qtbot, head):
    """Scrubbing: a frame after a pause is full size; each frame that follows closely is rendered at
    half the view's width and height (and scaled up to fill it); once the frames stop, a full-size
    render of the last one replaces it. Picking hits the same vertex on either picture."""
    from PySide6.QtCore import QPoint, Qt
    from qt_support import widget_pixels

    from studio.qt.viewport2d import qimage_to_array
    from studio.qt.viewport3d import KEYPOINT_COLOR
    from studio.render.contact_sheet import sheet_frames

    viewport.settle_ms = 1000  # generous: on a loaded machine the scrub's frames still come closer than this
    width, height = viewport.picture.width(), viewport.picture.height()
    frames = [sheet_frames()[name] for name in ("neutral", "ah", "m (closed)", "happy", "yaw -15", "surprised")]
    qtbot.wait(int(1.5 * viewport.settle_ms))  # a pause: the next frame starts a scrub
    viewport.show_frame(frames[0])
    viewport.draw_frame()
    assert viewport.shown_scale == 1.0 and viewport.picture.image.size().toTuple() == (width, height)
    for frame in frames[1:]:
        viewport.show_frame(frame)
        viewport.draw_frame()
        assert viewport.shown_scale == 0.5 and viewport.picture.image.size().toTuple() == (width // 2, height // 2)
    frames_drawn = viewport.frames
    small = qimage_to_array(viewport.picture.image).astype(int)
    full = viewport.render().astype(int)  # the same frame at full size (the picture on screen stays small)
    assert viewport.picture.image.width() == width // 2 and viewport.frames == frames_drawn
    halved = full.reshape(height // 2, 2, width // 2, 2, 3).mean((1, 3))
    assert np.abs(small - halved).mean() < 6  # the same view, fewer pixels
    shown = widget_pixels(viewport.picture).astype(int)  # scaled up to fill the view
    assert shown.shape[:2] == (height, width) and np.abs(shown - full).mean() < 8

    # The nose's marker is where picking finds the nose, in the small picture as in the full one.
    nose = head.keypoint_vertices[1][0]
    x, y = viewport.keypoints_on_screen()[1]
    marker = np.array(KEYPOINT_COLOR[:3]) * 255
    assert np.abs(small[int(y / 2), int(x / 2)] - marker).max() < 60
    assert np.abs(full[int(y), int(x)] - marker).max() < 60
    viewport.picking = True
    with qtbot.waitSignal(viewport.vertexPicked, timeout=2000) as picked:  # a real click on the picture
        qtbot.mouseClick(viewport.picture, Qt.LeftButton, Qt.NoModifier, QPoint(round(x), round(y)))
    assert picked.args == [nose]

    # The frames stopped: the full-size render replaces the small one.
    qtbot.waitUntil(lambda: viewport.shown_scale == 1.0, timeout=10000)
    assert viewport.picture.image.size().toTuple() == (width, height)
    assert np.array_equal(qimage_to_array(viewport.picture.image), viewport.render())
    assert np.abs(widget_pixels(viewport.picture).astype(int) - full).mean() < 4  # (the display's colour depth)


def test_the_same_frame_again_draws_nothing_new(viewport, qtbot):
    from studio.render.contact_sheet import sheet_frames

    frames = viewport.frames
    viewport.show_frame(sheet_frames()["ah"])
    qtbot.waitUntil(lambda: viewport.frames > frames and viewport.shown_scale == 1.0, timeout=5000)  # settled
    frames = viewport.frames
    viewport.show_frame(sheet_frames()["ah"].copy())  # e.g. an edit elsewhere in the document
    qtbot.wait(50)
    assert viewport.frames == frames


def test_moving_vertices_fill_the_buffers_as_vispy_would(viewport, head):
    """Per frame only the corner positions and normals are written into the mesh's buffers; the
    picture is the one vispy's full ``set_data`` gives, and the normals are vispy's."""
    from vispy.geometry import MeshData

    from studio.qt.mesh_scene import vertex_normals
    from studio.render.contact_sheet import sheet_frames

    viewport.set_keypoints_visible(False)
    viewport.render()  # drawn once: the next frames take the buffer path
    for name in ("ah", "yaw +15"):
        viewport.show_frame(sheet_frames()[name])
        fast = viewport.render()
        scene = viewport.scene
        scene.mesh.set_data(vertices=viewport._vertices, faces=scene.faces, color=scene.mesh.color)
        assert np.array_equal(fast, viewport.render())
        assert np.array_equal(fast, viewport.canvas.render(alpha=False))  # vispy's own offscreen render
    expected = MeshData(vertices=viewport._vertices, faces=scene.faces).get_vertex_normals()
    np.testing.assert_allclose(vertex_normals(viewport._vertices, scene.faces), expected, atol=1e-5)
