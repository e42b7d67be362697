"""Motion → FLAME on the FLAME-format stand-in head: the retargeting map, the lip metric, the
animated-head entry point, and the exported sequence read back."""

from __future__ import annotations

import numpy as np
import pytest

from studio.core.keypoints import KEYPOINT_INDEX
from studio.core.motion import CHANNEL_INDEX, NEUTRAL_FRAME
from studio.render.mesh import metrics
from studio.render.mesh.flame import FlameModel, keypoint_positions
from studio.render.mesh.flame_retarget import FlameRetarget
from studio.render.mesh.flame_synth import build_flame_like_model


@pytest.fixture(scope="module")
def model():
    return FlameModel.from_arrays(build_flame_like_model(seed=0))


@pytest.fixture(scope="module")
def retarget(model):
    return FlameRetarget(model)


def frames(n=1, **channels):
    f = np.tile(NEUTRAL_FRAME, (n, 1)).astype(np.float64)
    for name, value in channels.items():
        f[:, CHANNEL_INDEX[name.replace("__", ".")]] = value
    return f


def keypoint(vertices, model, name):
    return keypoint_positions(vertices, model.keypoint_vertices)[..., KEYPOINT_INDEX[name], :]


def test_the_identity_is_read_off_the_model(retarget):
    assert retarget.frame.unit == pytest.approx(0.063, rel=0.05)  # metres per face unit (IOD)
    np.testing.assert_allclose(retarget.frame.axes, np.eye(3), atol=0.05)  # FLAME's axes are ours
    assert retarget.canonical.shape == (21, 3)


def test_neutral_motion_is_the_template(model, retarget):
    rest = retarget.deform(frames())[0]
    np.testing.assert_allclose(rest, model.v_template, atol=1e-6)


def test_jaw_open_motion_opens_the_lip_vertices(model, retarget):
    shut, open_ = retarget.deform(np.concatenate([frames(), frames(exp__chin__y=-0.3, exp__lip_lower_center__y=-0.3)]))
    gap = [np.linalg.norm(keypoint(v, model, "lip_upper_center") - keypoint(v, model, "lip_lower_center"))
           for v in (shut, open_)]
    assert gap[0] < 1e-4 and gap[1] > 0.01  # metres: closed, then open by more than a centimetre
    from studio.render.contact_sheet import sheet_frames

    jaw = retarget.parameters(sheet_frames()["ah"][None])["pose"][0, 2, 0]  # the rig's "ah": chin down and back
    assert jaw > 0.05  # radians: the jaw itself turned open
    # The forehead does not move with the jaw.
    top = np.argsort(model.v_template[:, 1])[-200:]
    np.testing.assert_allclose(open_[top], shut[top], atol=2e-4)


def test_keypoint_offsets_the_model_can_make_come_back(model, retarget):
    """Drive FLAME with its own controls, read the keypoint offsets, retarget them: the keypoints
    come back within a few millimetres (a ridge-regularized least-squares map)."""
    rng = np.random.default_rng(1)
    expression = rng.normal(0.0, 0.5, (12, model.num_expression)).astype(np.float32)
    pose = np.zeros((12, 5, 3), np.float32)
    pose[:, 2, 0] = rng.uniform(0.0, 0.25, 12)
    truth = model.vertices(expression, pose)
    offsets = retarget.frame.to_face(keypoint_positions(truth, model.keypoint_vertices)) - retarget.canonical
    motion = frames(12)
    motion[:, :63] = offsets.reshape(12, -1)
    back = retarget.deform(motion)
    error = np.linalg.norm(keypoint_positions(back, model.keypoint_vertices)
                           - keypoint_positions(truth, model.keypoint_vertices), axis=-1)
    assert error.mean() < 0.0015 and error.max() < 0.006
    lips = metrics.lip_vertices(retarget.frame.to_face(model.v_template), retarget.canonical)
    assert 20 < len(lips) < 600
    assert metrics.lip_vertex_error(back, truth, lips) < 0.006
    assert metrics.lip_vertex_error(truth, truth, lips) == 0.0


def test_blinks_gaze_and_pose(model, retarget):
    shut = retarget.deform(frames(eye__blink_l=1.0, eye__blink_r=1.0))[0]
    for side in "lr":
        gap = np.linalg.norm(keypoint(shut, model, f"lid_upper_{side}") - keypoint(shut, model, f"lid_lower_{side}"))
        assert gap < 0.002
    p = retarget.parameters(frames(eye__gaze_x=1.0, pose__yaw=20.0))
    np.testing.assert_allclose(np.degrees(p["pose"][0, 3]), [0.0, 30.0, 0.0], atol=1e-3)  # left eye
    np.testing.assert_allclose(np.degrees(p["pose"][0, 1]), [0.0, 20.0, 0.0], atol=1e-3)  # neck
    turned = retarget.deform(frames(pose__yaw=20.0))[0]
    nose = keypoint(turned, model, "nose_tip") - keypoint(model.v_template[None], model, "nose_tip")[0]
    assert nose[0] > 0.01  # positive yaw turns the nose toward +x (the image right)


def test_deformation_is_vectorized(retarget):
    rng = np.random.default_rng(2)
    batch = frames(5)
    batch[:, :63] = rng.normal(0.0, 0.03, (5, 63))
    batch[:, CHANNEL_INDEX["pose.pitch"]] = rng.uniform(-10, 10, 5)
    together = retarget.deform(batch)
    apart = np.stack([retarget.deform(f[None])[0] for f in batch])
    np.testing.assert_allclose(together, apart, atol=1e-6)


def test_a_flame_file_becomes_an_animated_head_and_exports(tmp_path, model):
    from studio.io.gltf_read import frames_at_keys, read_glb
    from studio.io.mesh_export import write_gltf
    from studio.render.mesh.animate import load_animated_head

    path = tmp_path / "generic_model.npz"
    np.savez(path, **build_flame_like_model(seed=0))
    head = load_animated_head(path)
    assert head.kind == "flame" and head.rest.shape == (5023, 3) and head.faces.shape == (9976, 3)
    motion = frames(30)
    motion[:, CHANNEL_INDEX["exp.chin.y"]] = np.linspace(0.0, -0.3, 30)
    vertices = head.deform(motion)
    report = write_gltf(tmp_path / "take.glb", vertices, head.faces, fps=30)
    data = read_glb(tmp_path / "take.glb")
    assert len(data["times"]) == 30 and len(data["target_names"]) == report.num_targets
    np.testing.assert_allclose(frames_at_keys(data), vertices, atol=2 * report.tolerance)
