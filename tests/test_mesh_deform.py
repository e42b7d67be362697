"""Motion → meshes with no rig of their own: the keypoint deformer (an icosphere head with picked
keypoints), the portrait's textured face mesh, and the headless 3D render of both."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from studio.core.keypoints import KEYPOINT_INDEX, KEYPOINT_NAMES, MEAN_FACE
from studio.core.motion import CHANNEL_INDEX, NEUTRAL_FRAME, keypoints
from studio.render.contact_sheet import sample_photos, sheet_frames
from studio.render.face_fit import fit_portrait
from studio.render.mesh.deform import FaceFrame, KeypointDeformer, keypoint_positions
from studio.render.mesh.portrait_mesh import METRES_PER_FACE_UNIT, PortraitMesh

HEAD_UNIT = 0.063  # metres per face unit of the test head


def icosphere_head():
    """A closed egg-shaped head (no mouth or eye openings) in metres, face toward +z, with the
    21 keypoints picked as the vertices nearest to the mean face laid onto it."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    vertices = sphere.vertices * [1.1, 1.4, 1.2] * 0.09 + [0.01, 0.02, -0.05]
    targets = MEAN_FACE * HEAD_UNIT * [1.0, 1.0, 0.75] + [0.01, 0.01, -0.07]
    ids: list[int] = []
    for name, t in zip(KEYPOINT_NAMES, targets):
        order = np.argsort(((vertices - t) ** 2).sum(1))
        if name == "lip_lower_center":  # closed lips: both lip centres on one vertex
            ids.append(ids[KEYPOINT_INDEX["lip_upper_center"]])
        else:
            ids.append(int(next(i for i in order if i not in ids)))
    return vertices, sphere.faces, [(i,) for i in ids]


def frames(**channels) -> np.ndarray:
    f = NEUTRAL_FRAME.astype(np.float64).copy()
    for name, value in channels.items():
        f[CHANNEL_INDEX[name.replace("__", ".")]] = value
    return f


def gap(points, deformer, a, b):
    g = deformer.keypoint_vertices
    return float(np.linalg.norm(points[list(g[KEYPOINT_INDEX[a]])].mean(0) - points[list(g[KEYPOINT_INDEX[b]])].mean(0)))


def test_face_frame_reads_orientation_scale_and_pivot():
    rotation = trimesh.transformations.rotation_matrix(np.radians(90), [1, 0, 0])[:3, :3]  # a z-up mesh
    mesh_points = 0.063 * MEAN_FACE @ rotation.T + [1.0, 2.0, 3.0]
    frame = FaceFrame.from_keypoints(mesh_points)
    assert frame.unit == pytest.approx(0.063)
    np.testing.assert_allclose(frame.to_face(mesh_points), MEAN_FACE, atol=1e-9)
    np.testing.assert_allclose(frame.to_mesh(MEAN_FACE), mesh_points, atol=1e-12)
    with pytest.raises(ValueError, match="eyes coincide"):
        FaceFrame.from_keypoints(np.zeros((21, 3)))


def test_closed_lips_are_split_so_the_jaw_opens_the_mouth():
    vertices, faces, groups = icosphere_head()
    assert groups[KEYPOINT_INDEX["lip_upper_center"]] == groups[KEYPOINT_INDEX["lip_lower_center"]]
    d = KeypointDeformer(vertices, faces, groups)
    assert len(d.vertices) > len(vertices) and len(d.faces) == len(faces)  # the seam's inner vertices doubled
    assert d.keypoint_vertices[KEYPOINT_INDEX["lip_upper_center"]] != d.keypoint_vertices[KEYPOINT_INDEX["lip_lower_center"]]
    rest, open_ = d.deform(np.stack([frames(), frames(exp__chin__y=-0.3, exp__lip_lower_center__y=-0.25)]))
    np.testing.assert_allclose(rest[:len(vertices)], vertices, atol=1e-6)  # no motion: the mesh as loaded
    assert gap(rest, d, "lip_upper_center", "lip_lower_center") < 1e-6
    assert gap(open_, d, "lip_upper_center", "lip_lower_center") > 0.2 * HEAD_UNIT
    # The upper lip and everything above the mouth stay where they were.
    upper = d.keypoint_vertices[KEYPOINT_INDEX["lip_upper_center"]]
    np.testing.assert_allclose(open_[list(upper)], rest[list(upper)], atol=1e-6)
    nose = d.keypoint_vertices[KEYPOINT_INDEX["nose_tip"]]
    np.testing.assert_allclose(open_[list(nose)], rest[list(nose)], atol=2e-4)
    # No face bridges the opening: no face holds vertices of both lips' centres' neighbourhoods.
    upper_ring = np.unique(d.faces[np.isin(d.faces, upper).any(1)])
    lower = d.keypoint_vertices[KEYPOINT_INDEX["lip_lower_center"]]
    lower_ring = np.unique(d.faces[np.isin(d.faces, lower).any(1)])
    assert not np.isin(lower, upper_ring).any() and not np.isin(upper, lower_ring).any()
    assert open_[upper_ring, 1].min() > open_[lower_ring, 1].max() - 1e-6


def test_an_open_mouth_is_left_as_it_is():
    vertices, faces, groups = icosphere_head()
    d = KeypointDeformer(vertices, faces, groups)  # split once …
    again = KeypointDeformer(d.vertices, d.faces, d.keypoint_vertices)  # … then already open
    assert len(again.vertices) == len(d.vertices)


def test_keypoints_follow_the_motion_rule_and_blinks_close():
    vertices, faces, groups = icosphere_head()
    d = KeypointDeformer(vertices, faces, groups)
    rng = np.random.default_rng(3)
    f = frames(pose__yaw=12.0, pose__pitch=-5.0, pose__roll=4.0, t__x=0.2, scale=1.1)
    f[:63] = rng.normal(0.0, 0.03, 63)
    f[[CHANNEL_INDEX["eye.blink_l"], CHANNEL_INDEX["eye.blink_r"]]] = 0.0
    moved = d.deform(f[None])[0]
    expected = d.frame.to_mesh(keypoints(f[None], d.canonical)[0])
    np.testing.assert_allclose(keypoint_positions(moved, d.keypoint_vertices), expected, atol=1e-6)
    shut = d.deform(frames(eye__blink_l=1.0, eye__blink_r=1.0)[None])[0]
    assert gap(shut, d, "lid_upper_l", "lid_lower_l") < 1e-6
    assert gap(shut, d, "lid_upper_r", "lid_lower_r") < 1e-6


def test_deformation_is_vectorized_over_frames():
    vertices, faces, groups = icosphere_head()
    d = KeypointDeformer(vertices, faces, groups)
    rng = np.random.default_rng(0)
    batch = np.tile(NEUTRAL_FRAME, (6, 1)).astype(np.float64)
    batch[:, :63] = rng.normal(0.0, 0.05, (6, 63))
    batch[:, CHANNEL_INDEX["pose.yaw"]] = rng.uniform(-20, 20, 6)
    together = d.deform(batch)
    one_by_one = np.stack([d.deform(f[None])[0] for f in batch])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


def test_bad_keypoint_groups_are_refused():
    vertices, faces, groups = icosphere_head()
    with pytest.raises(ValueError, match="21 non-empty"):
        KeypointDeformer(vertices, faces, groups[:20])
    with pytest.raises(ValueError, match="must lie in"):
        KeypointDeformer(vertices, faces, [(len(vertices) + 5,)] + groups[1:])
    with pytest.raises(ValueError, match="nose_bridge and nose_tip are the same"):
        KeypointDeformer(vertices, faces, [groups[1]] + groups[1:])


@pytest.fixture(scope="module")
def portrait_meshes():
    return {name: PortraitMesh.from_fit(image, fit_portrait(image)) for name, image in sample_photos().items()}


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_portrait_face_mesh(portrait_meshes, name):
    pm = portrait_meshes[name]
    v, f = pm.vertices, pm.faces
    assert f.min() >= 0 and f.max() < len(v) and len(pm.uv) == len(v)
    assert np.all((pm.uv >= 0) & (pm.uv <= 1))
    # Real size: the eyes 63 mm apart, the face about as tall as a face.
    kp = keypoint_positions(v, pm.keypoint_vertices)
    left = 0.5 * (kp[KEYPOINT_INDEX["lid_upper_l"]] + kp[KEYPOINT_INDEX["lid_lower_l"]])
    right = 0.5 * (kp[KEYPOINT_INDEX["lid_upper_r"]] + kp[KEYPOINT_INDEX["lid_lower_r"]])
    assert np.linalg.norm(left - right) == pytest.approx(METRES_PER_FACE_UNIT, rel=0.02)
    assert 0.12 < np.ptp(v[:, 1]) < 0.3
    sheet = sheet_frames()
    ah, closed, blink = pm.deform(np.stack([sheet["ah"], sheet["m (closed)"], sheet["blink"]]))
    lips = (KEYPOINT_INDEX["lip_upper_center"], KEYPOINT_INDEX["lip_lower_center"])
    opening = [np.linalg.norm(x[pm.keypoint_vertices[lips[0]][0]] - x[pm.keypoint_vertices[lips[1]][0]]) for x in (ah, closed)]
    assert opening[0] > 0.01 and opening[1] < 0.002
    lid = (pm.keypoint_vertices[KEYPOINT_INDEX["lid_upper_l"]][0], pm.keypoint_vertices[KEYPOINT_INDEX["lid_lower_l"]][0])
    assert np.linalg.norm(blink[lid[0]] - blink[lid[1]]) < 0.002


_RENDER = """
import sys, numpy as np
from studio.qt.mesh_scene import render_mesh_frames
d = np.load(sys.argv[1])
out = {}
out["textured"] = np.stack(list(render_mesh_frames(d["v"], d["faces"], size=(160, 128), uv=d["uv"], texture=d["texture"])))
out["turntable"] = np.stack(list(render_mesh_frames(np.repeat(d["v"][:1], 4, 0), d["faces"], size=(96, 96), view="turntable")))
try:
    next(render_mesh_frames(d["v"], d["faces"], view="top"))
except ValueError as exc:
    out["error"] = np.array(str(exc))
np.savez(sys.argv[2], **out)
"""


@pytest.mark.gl
def test_headless_render_shows_the_mesh_and_its_motion(portrait_meshes, tmp_path):
    """In a process of its own, as the CLI and the studio's jobs run it: EGL (headless) and Qt's
    GL must not share a process."""
    import subprocess
    import sys

    pm = portrait_meshes["astronaut"]
    sheet = sheet_frames()
    v = pm.deform(np.stack([sheet["m (closed)"], sheet["ah"], sheet["yaw +15"]]))
    np.savez(tmp_path / "in.npz", v=v, faces=pm.faces, uv=pm.uv, texture=pm.texture)
    done = subprocess.run([sys.executable, "-c", _RENDER, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = np.load(tmp_path / "out.npz")
    textured = result["textured"]
    assert textured.shape == (3, 128, 160, 3) and textured.dtype == np.uint8
    background = textured[0][0, 0].astype(int)
    face = np.abs(textured[0].astype(int) - background).sum(-1) > 30
    assert 0.15 < face.mean() < 0.8  # the face fills a good part of the frame, not all of it
    # The open mouth shows the dark pocket in the middle of the lower face.
    h, w = face.shape
    mouth = (slice(int(0.55 * h), int(0.8 * h)), slice(int(0.4 * w), int(0.6 * w)))
    assert textured[1][mouth].mean() < textured[0][mouth].mean() - 10
    turntable = result["turntable"]
    assert not np.array_equal(turntable[0], turntable[1])
    assert "unknown view" in str(result["error"])
