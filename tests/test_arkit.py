"""ARKit-52 curves from motion tracks: the names, what each motion drives, and files read back."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from studio.core.keypoints import KEYPOINT_INDEX
from studio.core.motion import CHANNEL_INDEX, neutral_motion
from studio.core.motion_file import Motion
from studio.generate.rig import BASIS, EMOTION_PRESETS
from studio.io.arkit import (
    ARKIT_NAMES,
    LIVE_LINK_FACE_NAMES,
    arkit_weights,
    read_arkit,
    register,
    timecode,
    write_arkit_csv,
    write_arkit_json,
)
from studio.plugins.registry import Registry, build_registry

FPS = 30.0

#: Apple's ARFaceAnchor.BlendShapeLocation list, as its documentation orders it.
APPLE_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight",
    "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft",
    "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp",
    "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)


def weights_of(motion):
    w = arkit_weights(motion)
    return {name: w[:, i] for i, name in enumerate(ARKIT_NAMES)}


def with_offsets(offsets, num_frames=1):
    """A motion (T, 74) whose expression offsets are ``offsets`` (21, 3) on every frame."""
    motion = neutral_motion(num_frames)
    motion[:, :63] = np.asarray(offsets, dtype=np.float32).reshape(-1)
    return motion


def test_the_52_names_are_apples_in_apples_order():
    assert ARKIT_NAMES == APPLE_NAMES
    assert len(set(ARKIT_NAMES)) == 52
    assert sorted(n[0].lower() + n[1:] for n in LIVE_LINK_FACE_NAMES) == sorted(ARKIT_NAMES)
    assert LIVE_LINK_FACE_NAMES[15:17] == ("JawRight", "JawLeft")


def test_a_neutral_face_has_every_weight_at_zero():
    w = arkit_weights(neutral_motion(5))
    assert w.shape == (5, 52) and w.dtype == np.float32
    np.testing.assert_array_equal(w, 0.0)


def test_opening_the_jaw_raises_jaw_open_and_no_smile_or_frown():
    jaw = with_offsets(BASIS[0] * 0.85)  # the rig's "aa"
    w = weights_of(jaw)
    assert w["jawOpen"][0] > 0.6
    for name in ("mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight", "mouthClose",
                 "jawForward", "mouthPucker"):
        assert w[name][0] < 0.05, name


def test_mouth_corners_up_raise_both_smiles_and_one_corner_one_smile():
    offsets = np.zeros((21, 3))
    offsets[KEYPOINT_INDEX["mouth_corner_l"], 1] = 0.08
    offsets[KEYPOINT_INDEX["mouth_corner_r"], 1] = 0.08
    w = weights_of(with_offsets(offsets))
    assert w["mouthSmileLeft"][0] == pytest.approx(0.08 / 0.11, abs=1e-5)
    assert w["mouthSmileRight"][0] == pytest.approx(w["mouthSmileLeft"][0])
    assert w["mouthFrownLeft"][0] == 0.0 and w["jawOpen"][0] == 0.0
    offsets[KEYPOINT_INDEX["mouth_corner_r"], 1] = 0.0
    w = weights_of(with_offsets(offsets))
    assert w["mouthSmileLeft"][0] > 0.5 and w["mouthSmileRight"][0] == 0.0


def test_the_rigs_emotion_presets_read_as_the_expected_shapes():
    happy = weights_of(with_offsets(EMOTION_PRESETS["happy"]))
    assert min(happy["mouthSmileLeft"][0], happy["mouthSmileRight"][0], happy["cheekSquintLeft"][0]) > 0.8
    sad = weights_of(with_offsets(EMOTION_PRESETS["sad"]))
    assert sad["mouthFrownLeft"][0] > 0.8 and sad["browInnerUp"][0] > 0.5 and sad["mouthSmileLeft"][0] == 0
    surprised = weights_of(with_offsets(EMOTION_PRESETS["surprised"]))
    assert surprised["browInnerUp"][0] == pytest.approx(1.0) and surprised["eyeWideLeft"][0] == pytest.approx(1.0)
    angry = weights_of(with_offsets(EMOTION_PRESETS["angry"]))
    assert angry["browDownLeft"][0] > 0.8 and angry["browDownRight"][0] > 0.8 and angry["browInnerUp"][0] == 0
    disgusted = weights_of(with_offsets(EMOTION_PRESETS["disgusted"]))
    assert disgusted["noseSneerLeft"][0] > 0.7 and disgusted["mouthUpperUpLeft"][0] > 0.9
    rounded = weights_of(with_offsets(BASIS[1]))  # "oo": lips rounded, nearly closed
    assert rounded["mouthPucker"][0] > 0.5 and rounded["mouthPucker"][0] > rounded["mouthFunnel"][0]
    tucked = weights_of(with_offsets(BASIS[3]))  # f/v: the lower lip rolls in
    assert tucked["mouthRollLower"][0] == pytest.approx(1.0)


def test_blinks_and_gaze_follow_arkits_sides():
    motion = neutral_motion(3)
    motion[0, CHANNEL_INDEX["eye.blink_l"]] = 1.0
    motion[1, CHANNEL_INDEX["eye.gaze_x"]] = 0.6   # toward the image right: the subject's left
    motion[2, CHANNEL_INDEX["eye.gaze_x"]] = -0.5  # the subject's right
    motion[2, CHANNEL_INDEX["eye.gaze_y"]] = 0.4   # and up
    w = weights_of(motion)
    assert w["eyeBlinkLeft"][0] == 1.0 and w["eyeBlinkRight"][0] == 0.0
    assert w["eyeLookOutLeft"][1] == pytest.approx(0.6) and w["eyeLookInRight"][1] == pytest.approx(0.6)
    assert w["eyeLookInLeft"][1] == 0.0 and w["eyeLookOutRight"][1] == 0.0
    assert w["eyeLookInLeft"][2] == pytest.approx(0.5) and w["eyeLookOutRight"][2] == pytest.approx(0.5)
    assert w["eyeLookUpLeft"][2] == pytest.approx(0.4) and w["eyeLookUpRight"][2] == pytest.approx(0.4)
    assert w["eyeLookDownLeft"][2] == 0.0


def test_weights_stay_within_0_and_1_for_any_motion_in_range():
    rng = np.random.default_rng(3)
    motion = neutral_motion(500)
    motion[:, :63] = rng.uniform(-1, 1, (500, 63))
    for name in ("eye.blink_l", "eye.blink_r"):
        motion[:, CHANNEL_INDEX[name]] = rng.uniform(0, 1, 500)
    for name in ("eye.gaze_x", "eye.gaze_y"):
        motion[:, CHANNEL_INDEX[name]] = rng.uniform(-1, 1, 500)
    w = arkit_weights(motion)
    assert w.min() >= 0.0 and w.max() <= 1.0
    assert (w.max(axis=0) > 0.5).sum() >= 48  # every expressible shape is reachable
    np.testing.assert_array_equal(w[:, [ARKIT_NAMES.index("cheekPuff"), ARKIT_NAMES.index("tongueOut")]], 0.0)


def test_mirroring_the_motion_swaps_left_and_right():
    from studio.core.motion import mirror_motion

    rng = np.random.default_rng(5)
    motion = neutral_motion(20)
    motion[:, :63] = rng.uniform(-0.2, 0.2, (20, 63))
    motion[:, CHANNEL_INDEX["eye.gaze_x"]] = rng.uniform(-1, 1, 20)
    w, m = weights_of(motion), weights_of(mirror_motion(motion))
    for name in ARKIT_NAMES:
        partner = name.replace("Left", "#").replace("Right", "Left").replace("#", "Right")
        np.testing.assert_allclose(m[name], w[partner], atol=1e-6, err_msg=name)


def talking_motion():
    rng = np.random.default_rng(11)
    motion = neutral_motion(45)
    t = np.arange(45) / FPS
    motion[:, :63] = (0.1 * np.sin(2 * np.pi * rng.uniform(1, 4, 63) * t[:, None])).astype(np.float32)
    motion[:, CHANNEL_INDEX["eye.blink_l"]] = np.clip(np.sin(t * 5), 0, 1)
    motion[:, CHANNEL_INDEX["pose.yaw"]] = 10 * np.sin(t)
    motion[:, CHANNEL_INDEX["eye.gaze_x"]] = 0.5 * np.cos(t * 3)
    return Motion(motion, FPS)


def test_csv_reads_back_with_the_studio_header(tmp_path):
    motion = talking_motion()
    path = write_arkit_csv(motion, tmp_path / "take.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "time", *ARKIT_NAMES]
    assert len(rows) == 1 + len(motion)
    assert [int(r[0]) for r in rows[1:]] == list(range(len(motion)))
    assert float(rows[2][1]) == pytest.approx(1 / FPS)
    curves = read_arkit(path)
    assert curves.fps == pytest.approx(FPS)
    np.testing.assert_allclose(curves.weights, arkit_weights(motion), atol=5e-7)
    np.testing.assert_allclose(curves.times, np.arange(len(motion)) / FPS)


def test_live_link_face_layout_reads_back(tmp_path):
    motion = talking_motion()
    path = write_arkit_csv(motion, tmp_path / "take_llf.csv", layout="livelinkface")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"]
    assert rows[0][-9:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                            "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    assert len(rows[0]) == 2 + 61 and {r[1] for r in rows[1:]} == {"61"}
    assert rows[1][0] == "00:00:00:00.000" and rows[32][0] == "00:00:01:01.000"
    yaw = np.array([float(r[rows[0].index("HeadYaw")]) for r in rows[1:]])
    np.testing.assert_allclose(yaw, np.radians(motion.values[:, CHANNEL_INDEX["pose.yaw"]]), atol=1e-6)
    curves = read_arkit(path, fps=FPS)
    np.testing.assert_allclose(curves.weights, arkit_weights(motion), atol=5e-7)
    np.testing.assert_allclose(curves.times, np.arange(len(motion)) / FPS, atol=1e-9)


def test_json_reads_back(tmp_path):
    motion = talking_motion()
    path = write_arkit_json(motion, tmp_path / "take.json")
    document = json.loads(path.read_text())
    assert (document["format"], document["version"], document["fps"]) == ("studio-arkit", 1, FPS)
    assert document["names"] == list(ARKIT_NAMES)
    assert np.array(document["weights"]).shape == (len(motion), 52)
    curves = read_arkit(path)
    np.testing.assert_allclose(curves.weights, arkit_weights(motion), atol=5e-7)
    assert curves.fps == FPS


def test_bare_arrays_need_an_fps_and_bad_motion_is_refused(tmp_path):
    values = talking_motion().values
    with pytest.raises(ValueError, match=r"take\.csv: .*pass fps"):
        write_arkit_csv(values, tmp_path / "take.csv")
    write_arkit_json(values, tmp_path / "take.json", fps=25)
    assert read_arkit(tmp_path / "take.json").fps == 25
    with pytest.raises(ValueError, match=r"take\.csv: motion: expected shape"):
        write_arkit_csv(values[:, :10], tmp_path / "take.csv", fps=25)
    with pytest.raises(ValueError, match="layout"):
        write_arkit_csv(values, tmp_path / "take.csv", fps=25, layout="maya")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"bad\.csv"):
        read_arkit(tmp_path / "bad.csv")
    assert not (tmp_path / "take.csv").exists()


def test_timecodes_count_frames_within_each_second():
    assert timecode(0, 30) == "00:00:00:00.000"
    assert timecode(29, 30) == "00:00:00:29.000"
    assert timecode(30 * 3661 + 7, 30) == "01:01:01:07.000"


def test_registry_finds_the_curve_exporters(tmp_path):
    registry = Registry()
    register(registry)
    assert [s.name for s in registry.exporters("curves")] == ["arkit_csv", "arkit_json"]
    assert registry.exporter_for("take.csv", kind="curves").name == "arkit_csv"
    assert registry.exporter_for("take.json", kind="curves").name == "arkit_json"
    spec = registry.exporter_for("take.arkit.csv")
    spec.export(talking_motion(), tmp_path / "take.arkit.csv", layout="livelinkface")
    assert read_arkit(tmp_path / "take.arkit.csv", fps=FPS).weights.shape == (45, 52)
    installed = {s.name for s in build_registry(folders=[]).exporters("curves")}
    assert {"arkit_csv", "arkit_json"} <= installed, "reinstall the package (pip install -e .)"
