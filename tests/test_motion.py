"""The motion space: channels, keypoints, rotations, the keypoint transform, mirroring."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core import keypoints as kp
from studio.core import motion as mo

REQUIRED_KEYPOINTS = {
    "lip_upper_center", "lip_lower_center", "mouth_corner_l", "mouth_corner_r", "chin", "lid_upper_l",
    "lid_lower_l", "lid_upper_r", "lid_lower_r", "brow_inner_l", "brow_inner_r", "brow_outer_l",
    "brow_outer_r", "nose_tip",
}


def test_channels_and_keypoints_are_the_documented_ones():
    assert mo.NUM_CHANNELS == 74 and len(set(mo.CHANNELS)) == 74
    assert kp.NUM_KEYPOINTS == 21 and len(set(kp.KEYPOINT_NAMES)) == 21
    assert REQUIRED_KEYPOINTS <= set(kp.KEYPOINT_NAMES)
    assert mo.CHANNELS[:3] == ("exp.nose_bridge.x", "exp.nose_bridge.y", "exp.nose_bridge.z")
    assert mo.CHANNELS[63:] == ("pose.pitch", "pose.yaw", "pose.roll", "t.x", "t.y", "t.z", "scale",
                                "eye.blink_l", "eye.blink_r", "eye.gaze_x", "eye.gaze_y")
    assert set(mo.CHANNEL_RANGES) == set(mo.CHANNELS)
    grouped = [c for group in mo.CHANNEL_GROUPS.values() for c in group]
    assert sorted(grouped) == sorted(mo.CHANNELS)  # every channel in exactly one group
    for k in kp.KEYPOINTS:
        assert k.anatomy and 0 <= k.mediapipe < 478
        assert all(0 <= v < 5023 for v in k.flame)


def test_mirror_map_pairs_left_and_right():
    for name in kp.KEYPOINT_NAMES:
        partner = kp.KEYPOINT_NAMES[kp.MIRROR_PERMUTATION[kp.KEYPOINT_INDEX[name]]]
        assert partner == kp.mirror_name(name)
        assert kp.mirror_name(partner) == name
        if name.endswith(("_l", "_r")):
            assert partner != name
            assert kp.KEYPOINTS[kp.KEYPOINT_INDEX[name]].region == kp.KEYPOINTS[kp.KEYPOINT_INDEX[partner]].region


def test_mean_face_is_symmetric_and_in_face_units():
    face = kp.MEAN_FACE
    np.testing.assert_allclose(mo.mirror_keypoints(face), face, atol=1e-12)
    left, right = kp.eye_centers(face)
    assert np.linalg.norm(left - right) == pytest.approx(1.0, abs=1e-3)
    assert left[1] == pytest.approx(right[1])  # eyes level
    np.testing.assert_allclose(0.5 * (left + right), kp.EYE_CENTER_FROM_PIVOT, atol=1e-3)
    i = kp.KEYPOINT_INDEX
    # Anatomy in the documented axes: x to the subject's left (image right), y up, z to the viewer.
    assert face[i["mouth_corner_l"], 0] > 0 > face[i["mouth_corner_r"], 0]
    assert face[i["brow_inner_l"], 1] > face[i["lid_upper_l"], 1] > face[i["lid_lower_l"], 1]
    assert face[i["nose_tip"], 1] > face[i["lip_upper_center"], 1] > face[i["chin"], 1]
    assert face[i["nose_tip"], 2] == face[:, 2].max()  # the nose is the most forward point
    assert face[i["lip_upper_center"], 1] == face[i["lip_lower_center"], 1]  # neutral: lips closed


def test_normalize_face_undoes_similarity_transforms():
    m = mo.rotation_matrices(0, 0, 23.0)
    moved = 3.7 * kp.MEAN_FACE @ m.T + np.array([10.0, -4.0, 2.0])
    np.testing.assert_allclose(kp.normalize_face(moved), kp.MEAN_FACE, atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        kp.normalize_face(np.zeros((20, 3)))
    with pytest.raises(ValueError, match="coincide"):
        kp.normalize_face(np.zeros((21, 3)))
    with pytest.raises(ValueError, match="NaN"):
        kp.normalize_face(np.full((21, 3), np.nan))


angles = st.floats(-89.0, 89.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(angles, angles, angles)
def test_rotation_round_trip(pitch, yaw, roll):
    m = mo.rotation_matrices(pitch, yaw, roll)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(m) == pytest.approx(1.0)
    np.testing.assert_allclose(mo.euler_from_matrices(m), [pitch, yaw, roll], atol=1e-7)


def test_rotation_round_trip_at_gimbal_lock_gives_the_same_rotation():
    for yaw in (90.0, -90.0):
        m = mo.rotation_matrices(20.0, yaw, 10.0)
        angles = mo.euler_from_matrices(m)
        assert angles[1] == pytest.approx(yaw) and angles[2] == 0.0
        np.testing.assert_allclose(mo.rotation_matrices(*angles), m, atol=1e-9)


def test_rotation_sign_conventions():
    nose = np.array([0.0, 0.0, 1.0])
    right = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(mo.rotation_matrices(0, 90, 0) @ nose, [1, 0, 0], atol=1e-12)  # yaw → image right
    np.testing.assert_allclose(mo.rotation_matrices(90, 0, 0) @ nose, [0, -1, 0], atol=1e-12)  # pitch → nose down
    np.testing.assert_allclose(mo.rotation_matrices(0, 0, 90) @ right, [0, 1, 0], atol=1e-12)  # roll → counter-clockwise


def test_rotation_is_roll_after_yaw_after_pitch():
    def rx(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    def ry(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def rz(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    np.testing.assert_allclose(mo.rotation_matrices(10, -25, 40), rz(40) @ ry(-25) @ rx(10), atol=1e-12)


def test_keypoint_transform_matches_a_hand_computation():
    frame = mo.NEUTRAL_FRAME.copy()
    frame[mo.CHANNEL_INDEX["pose.yaw"]] = 90.0
    frame[mo.CHANNEL_INDEX["scale"]] = 2.0
    frame[mo.CHANNEL_INDEX["t.x"]] = 0.5
    frame[mo.CHANNEL_INDEX["exp.chin.y"]] = -0.25
    c = np.zeros((21, 3))
    c[kp.KEYPOINT_INDEX["chin"]] = [0.0, -1.0, 1.0]
    c[kp.KEYPOINT_INDEX["nose_tip"]] = [0.0, 0.0, 2.0]
    x = mo.keypoints(frame[None], c)[0]
    # Yaw 90°: (x, y, z) → (z, y, −x). Chin: (1, −1, 0) + δ (0, −0.25, 0) → ×2 → + t (0.5, 0, 0).
    np.testing.assert_allclose(x[kp.KEYPOINT_INDEX["chin"]], [2.5, -2.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(x[kp.KEYPOINT_INDEX["nose_tip"]], [4.5, 0.0, 0.0], atol=1e-6)


def test_keypoint_transform_is_vectorized_over_frames():
    rng = np.random.default_rng(0)
    m = np.tile(mo.NEUTRAL_FRAME, (40, 1))
    m[:, mo.EXP] = rng.normal(0, 0.05, (40, 63))
    m[:, mo.ROTATION] = rng.uniform(-30, 30, (40, 3))
    m[:, mo.TRANSLATION] = rng.normal(0, 0.2, (40, 3))
    m[:, mo.SCALE] = rng.uniform(0.8, 1.2, 40)
    batch = mo.keypoints(m)
    for t in (0, 17, 39):
        r = mo.rotation_matrices(*m[t, mo.ROTATION])
        by_hand = m[t, mo.SCALE] * (kp.MEAN_FACE @ r.T + m[t, mo.EXP].reshape(21, 3)) + m[t, mo.TRANSLATION]
        np.testing.assert_allclose(batch[t], by_hand, atol=1e-5)
    np.testing.assert_allclose(mo.keypoints(mo.neutral_motion(3)), np.tile(kp.MEAN_FACE, (3, 1, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="canonical"):
        mo.keypoints(m, np.zeros((20, 3)))


def test_mirror_twice_is_identity_and_mirrors_the_keypoints():
    rng = np.random.default_rng(1)
    m = np.tile(mo.NEUTRAL_FRAME, (25, 1))
    m[:] += rng.normal(0, 0.3, m.shape).astype(np.float32)
    np.testing.assert_array_equal(mo.mirror_motion(mo.mirror_motion(m)), m)
    c = kp.MEAN_FACE + rng.normal(0, 0.05, (21, 3))  # an asymmetric identity
    np.testing.assert_allclose(mo.keypoints(mo.mirror_motion(m), mo.mirror_keypoints(c)),
                               mo.mirror_keypoints(mo.keypoints(m, c)), atol=1e-5)
    frame = mo.NEUTRAL_FRAME.copy()
    frame[mo.CHANNEL_INDEX["eye.blink_l"]] = 1.0
    frame[mo.CHANNEL_INDEX["exp.mouth_corner_l.x"]] = 0.1
    mirrored = mo.mirror_motion(frame)
    assert mirrored[mo.CHANNEL_INDEX["eye.blink_r"]] == 1.0 and mirrored[mo.CHANNEL_INDEX["eye.blink_l"]] == 0.0
    assert mirrored[mo.CHANNEL_INDEX["exp.mouth_corner_r.x"]] == pytest.approx(-0.1)


def test_validate_motion_rejects_bad_tracks():
    assert mo.validate_motion(np.zeros((3, 74), dtype=np.float64)).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(frames, 74\)"):
        mo.validate_motion(np.zeros((3, 73)))
    bad = mo.neutral_motion(4)
    bad[2, mo.CHANNEL_INDEX["pose.yaw"]] = np.inf
    with pytest.raises(ValueError, match="frame 2, channel pose.yaw"):
        mo.validate_motion(bad)
    with pytest.raises(ValueError, match="numbers"):
        mo.validate_motion(np.full((1, 74), "a"))
    with pytest.raises(KeyError, match="exp.jaw.x"):
        mo.channel_indices(["exp.jaw.x"])


def test_the_motion_space_reference_is_up_to_date():
    """docs/motion_space.md is generated from the code; regenerate it with tools/write_motion_docs.py."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "tools" / "write_motion_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
