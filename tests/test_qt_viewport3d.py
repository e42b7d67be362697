"""The 3D viewport (vispy in Qt, under Xvfb): the head at the playhead, keypoints, shading,
orbit, and vertex picking."""

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
