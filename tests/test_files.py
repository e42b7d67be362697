"""Project files (.thproj) and motion files (JSON/NPZ/CSV): exact round trips and every bad-file path."""

import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest

from studio.core import project_file as pf
from studio.core.document import BaseMotion, Project, Source
from studio.core.fcurve import Interpolation as I
from studio.core.keypoints import KEYPOINT_INDEX, KEYPOINT_NAMES, MEAN_FACE
from studio.core.motion import CHANNELS, NEUTRAL_FRAME, keypoints, neutral_motion
from studio.core.motion_file import FORMATS, Motion, MotionFileError, read_motion, write_motion
from studio.core.project_file import ProjectFileError, load_project, save_project


@pytest.fixture
def full_project(tmp_path):
    rng = np.random.default_rng(7)
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"RIFF fake audio bytes")
    p = Project(30, 120)
    p.set_source("audio", Source.from_file("audio", audio))
    p.set_identity(MEAN_FACE + rng.normal(0, 0.01, (21, 3)))
    values = neutral_motion(120)
    values[:, :63] = rng.normal(0, 0.05, (120, 63)).astype(np.float32)
    p.set_base(BaseMotion(values, p.conditions(np.arange(120)), "rig", {"seed": 3, "transcript": "hello"}))
    keys = p.add_layer("Keys")
    p.insert_keys(("layer", keys, "exp.chin.y"), [0, 10.5, 60], [0.1, -1 / 3, 1e-9], [I.BEZIER, I.CONSTANT, I.LINEAR])
    p.set_slopes({("layer", keys, "exp.chin.y"): (0,)}, 0.02)  # a handle the animator set
    offsets = p.add_layer("Offsets", blend="ADD", influence=0.35)
    p.insert_keys(("layer", offsets, "pose.yaw"), [5, 90], [3.0, -4.0])
    p.set_layer(offsets, mute=True)
    p.add_emotion("happy", 10, 50, 0.6, 5, 5)
    p.add_emotion("contempt", 70, 100, 1.0)
    p.insert_keys(("intensity",), [0, 119], [0.5, 1.7], I.LINEAR)
    p.insert_keys(("override", "eye.gaze_x"), [20, 30], [0.4, 0.4])
    p.lock_groups(["brows", "head"])
    p.set_limit("exp.chin.y", -0.2, 0.25)
    return p


def project_state(p):
    return (p.fps, p.num_frames, dict(p.sources), p.identity.tolist() if p.identity is not None else None, p.base,
            p.layers, p.emotion_segments, p.intensity, dict(p.overrides), p.locked_groups, dict(p.limits))


def test_project_round_trip_is_exact(full_project, tmp_path):
    path = tmp_path / "a.thproj"
    assert full_project.is_modified
    save_project(full_project, path)
    assert not full_project.is_modified
    loaded = load_project(path)
    assert project_state(loaded) == project_state(full_project)
    np.testing.assert_array_equal(loaded.evaluate(), full_project.evaluate())
    assert not loaded.is_modified and not loaded.undo_stack.can_undo
    # Saving the loaded project again gives the same JSON.
    save_project(loaded, tmp_path / "b.thproj")
    with zipfile.ZipFile(path) as a, zipfile.ZipFile(tmp_path / "b.thproj") as b:
        assert a.read("project.json") == b.read("project.json")


def test_sources_follow_a_moved_project_folder(full_project, tmp_path):
    save_project(full_project, tmp_path / "a.thproj")
    moved = tmp_path / "moved"
    moved.mkdir()
    os.rename(tmp_path / "a.thproj", moved / "a.thproj")
    os.rename(tmp_path / "speech.wav", moved / "speech.wav")
    assert load_project(moved / "a.thproj").sources["audio"].path == str((moved / "speech.wav").resolve())


def test_autosave_does_not_mark_clean_and_paths_are_per_project(full_project, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    recovery = pf.autosave_path(tmp_path / "a.thproj")
    assert recovery.parent == tmp_path / "state" / "talking-head-studio" / "recovery"
    assert recovery != pf.autosave_path(tmp_path / "sub" / "a.thproj")
    assert pf.autosave_path(None, "session1").name == "session1.thproj"
    save_project(full_project, recovery, mark_clean=False)
    assert full_project.is_modified
    assert project_state(load_project(recovery)) == project_state(full_project)


def test_a_failed_save_keeps_the_previous_file(full_project, tmp_path, monkeypatch):
    path = tmp_path / "a.thproj"
    save_project(full_project, path)
    original = path.read_bytes()
    full_project.add_emotion("sad", 0, 5)

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(ProjectFileError, match="No space left"):
        save_project(full_project, path)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.thproj", "speech.wav"]  # no temp file left
    assert full_project.is_modified


def write_zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def saved_members(project, tmp_path):
    path = tmp_path / "good.thproj"
    save_project(project, path)
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("project.json")), z.read("arrays.npz")


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


BAD_JSON_EDITS = [
    (lambda d: d.update(format="something-else"), "not a Talking Head Studio project"),
    (lambda d: d.update(version=99), "newer Talking Head Studio"),
    (lambda d: d.update(version="1"), "invalid schema version"),
    (lambda d: d.update(version=0), "invalid schema version"),
    (lambda d: d.update(fps="fast"), "project.fps has the wrong type"),
    (lambda d: d.update(fps=0), "fps must be within"),
    (lambda d: d.pop("num_frames"), "project.num_frames is missing"),
    (lambda d: d.update(num_frames=True), "wrong type"),
    (lambda d: d["sources"].append({"role": "video", "path": "x", "sha256": "0"}), "unknown source role"),
    (lambda d: d.update(identity=[[0, 0]]), "identity must be 21"),
    (lambda d: d["base"].update(values="nope"), "missing from arrays.npz"),
    (lambda d: d["layers"][0].update(blend="MULTIPLY"), r"layers\[0\]: 'MULTIPLY'"),
    (lambda d: d["layers"][0]["curves"].update({"exp.jaw.y": d["layers"][0]["curves"]["exp.chin.y"]}),
     "unknown channels"),
    (lambda d: d["layers"][0]["curves"]["exp.chin.y"].update(interpolation=["SPLINE"] * 3), "unknown interpolation"),
    (lambda d: d["layers"][0]["curves"]["exp.chin.y"].update(frames="0,1"), "wrong type"),
    (lambda d: d["layers"][0]["curves"]["exp.chin.y"].update(values=[0, float("nan"), 1]), "finite"),
    (lambda d: d["layers"][1].update(id=d["layers"][0]["id"]), "layer ids are not unique"),
    (lambda d: d["emotion_segments"][0].update(label="bored"), "unknown emotion"),
    (lambda d: d["emotion_segments"][0].update(end=-5), "end after it starts"),
    (lambda d: d["controls"]["overrides"].update({"pose.yaw": d["controls"]["overrides"]["eye.gaze_x"]}),
     "not a curve path"),
    (lambda d: d.update(locks=["ears"]), "unknown channel groups"),
    (lambda d: d.update(limits={"exp.chin.y": [0]}), "must be \\[low, high\\]"),
    (lambda d: d.update(limits={"exp.nope.y": [0, 1]}), "unknown motion channel"),
    (lambda d: d.update(layers={"a": 1}), "project.layers has the wrong type"),
]


@pytest.mark.parametrize("edit,message", BAD_JSON_EDITS)
def test_invalid_project_json_is_refused_clearly(full_project, tmp_path, edit, message):
    doc, arrays = saved_members(full_project, tmp_path)
    edit(doc)
    path = tmp_path / "bad.thproj"
    write_zip(path, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    with pytest.raises(ProjectFileError, match=message) as info:
        load_project(path)
    assert str(path) in str(info.value)


def test_damaged_archives_are_refused_and_the_open_document_stays(full_project, tmp_path):
    good = tmp_path / "good.thproj"
    save_project(full_project, good)
    data = good.read_bytes()
    doc, arrays = saved_members(full_project, tmp_path)
    before = project_state(full_project)
    cases = {
        "empty.thproj": (b"", "not a project file or truncated"),
        "text.thproj": (b"hello, I am not a zip", "not a project file or truncated"),
        "truncated.thproj": (data[: len(data) // 2], "not a project file or truncated|damaged"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ProjectFileError, match=message):
            load_project(tmp_path / name)
    write_zip(tmp_path / "nojson.thproj", {"arrays.npz": arrays})
    write_zip(tmp_path / "extra.thproj", {"project.json": json.dumps(doc), "arrays.npz": arrays, "evil.py": "x"})
    write_zip(tmp_path / "badjson.thproj", {"project.json": "{not json", "arrays.npz": arrays})
    write_zip(tmp_path / "list.thproj", {"project.json": "[1, 2]", "arrays.npz": arrays})
    write_zip(tmp_path / "badnpz.thproj", {"project.json": json.dumps(doc), "arrays.npz": b"garbage"})
    pickled = npz_bytes(base_values=np.array([{"a": 1}], dtype=object), base_conditions=np.zeros((120, 13)))
    write_zip(tmp_path / "pickle.thproj", {"project.json": json.dumps(doc), "arrays.npz": pickled})
    wrong_shape = npz_bytes(base_values=np.zeros((120, 70), np.float32), base_conditions=np.zeros((120, 13)))
    write_zip(tmp_path / "shape.thproj", {"project.json": json.dumps(doc), "arrays.npz": wrong_shape})
    for name, message in (("nojson", "project.json is missing"), ("extra", "unexpected entries"),
                          ("badjson", "not valid JSON"), ("list", "must hold a JSON object"),
                          ("badnpz", "arrays.npz is damaged"), ("pickle", "arrays.npz is damaged|pickle"),
                          ("shape", "base.*74")):
        with pytest.raises(ProjectFileError, match=message):
            load_project(tmp_path / f"{name}.thproj")
    with pytest.raises(ProjectFileError, match="cannot read project"):
        load_project(tmp_path / "missing.thproj")
    assert project_state(full_project) == before


def test_oversized_members_are_refused_before_decompression(full_project, tmp_path, monkeypatch):
    doc, arrays = saved_members(full_project, tmp_path)
    path = tmp_path / "big.thproj"
    write_zip(path, {"project.json": json.dumps(doc) + " " * 5000, "arrays.npz": arrays})
    monkeypatch.setattr(pf, "MAX_JSON_BYTES", 4096)
    with pytest.raises(ProjectFileError, match="above the limit"):
        load_project(path)


def test_older_versions_migrate_step_by_step(full_project, tmp_path, monkeypatch):
    current = pf.VERSION
    path = tmp_path / f"v{current}.thproj"
    save_project(full_project, path)

    def to_next(doc):
        doc["fps"] = doc["fps"] * 2  # a visible change to prove the step ran
        return doc

    monkeypatch.setattr(pf, "VERSION", current + 1)
    monkeypatch.setitem(pf.MIGRATIONS, current, to_next)
    assert load_project(path).fps == 60.0
    monkeypatch.delitem(pf.MIGRATIONS, current)
    with pytest.raises(ProjectFileError, match=f"no migration from schema version {current}"):
        load_project(path)


def test_portrait_keypoints_round_trip_and_version_1_files_have_none(full_project, tmp_path):
    placed = np.arange(42, dtype=np.float64).reshape(21, 2) * 1.5 + 0.25
    full_project.set_portrait_keypoints(placed)
    path = tmp_path / "a.thproj"
    save_project(full_project, path)
    np.testing.assert_array_equal(load_project(path).portrait_keypoints, placed)
    doc, arrays = saved_members(full_project, tmp_path)
    assert doc["version"] == pf.VERSION
    del doc["portrait_keypoints"], doc["mesh_keypoints"]
    doc["version"] = 1
    old = tmp_path / "v1.thproj"
    write_zip(old, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    loaded = load_project(old)
    assert loaded.portrait_keypoints is None and project_state(loaded) == project_state(full_project)
    doc["version"], doc["portrait_keypoints"] = 2, [[1.0, 2.0]] * 20
    write_zip(old, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    with pytest.raises(ProjectFileError, match="portrait_keypoints must be 21 × 2"):
        load_project(old)


# --- motion files -------------------------------------------------------------------------------

@pytest.fixture
def motion():
    rng = np.random.default_rng(3)
    values = neutral_motion(40)
    values[:, :63] = rng.normal(0, 0.07, (40, 63)).astype(np.float32)
    values[:, 63:66] = rng.uniform(-20, 20, (40, 3)).astype(np.float32)
    values[:, 69] = rng.uniform(0.9, 1.1, 40).astype(np.float32)
    values[:, 70:72] = rng.uniform(0, 1, (40, 2)).astype(np.float32)
    return Motion(values, 29.97, MEAN_FACE + rng.normal(0, 0.02, (21, 3)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_motion_file_round_trip_is_exact(motion, tmp_path, fmt):
    path = write_motion(motion, tmp_path / f"m.{fmt}")
    back = read_motion(path)
    np.testing.assert_array_equal(back.values, motion.values)
    np.testing.assert_array_equal(back.canonical_keypoints, motion.canonical_keypoints)
    assert back.fps == motion.fps


def test_motion_file_has_exactly_the_documented_keys(motion, tmp_path):
    keys = {"format", "version", "fps", "channels", "values", "keypoint_names", "canonical_keypoints", "keypoints"}
    doc = json.loads(write_motion(motion, tmp_path / "m.json").read_text())
    assert set(doc) == keys
    assert doc["format"] == "studio-motion" and doc["version"] == 1
    assert doc["channels"] == list(CHANNELS) and doc["keypoint_names"] == list(KEYPOINT_NAMES)
    np.testing.assert_allclose(doc["keypoints"], keypoints(motion.values, motion.canonical_keypoints), atol=0)
    with np.load(write_motion(motion, tmp_path / "m.npz"), allow_pickle=False) as z:
        assert set(z.files) == keys
        assert z["values"].dtype == np.float32 and z["keypoints"].shape == (40, 21, 3)
        assert str(z["format"]) == "studio-motion"
    rows = [l for l in write_motion(motion, tmp_path / "m.csv").read_text().splitlines() if not l.startswith("#")]
    assert rows[0].split(",") == ["frame", "time"] + list(CHANNELS) and len(rows) == 41


def test_motion_without_identity_uses_the_mean_face(tmp_path):
    back = read_motion(write_motion(Motion(neutral_motion(2), 25), tmp_path / "m.json"))
    np.testing.assert_array_equal(back.canonical_keypoints, MEAN_FACE)
    np.testing.assert_allclose(back.keypoints[0], MEAN_FACE, atol=1e-6)


def test_older_motion_files_with_fewer_channels_fill_neutral(tmp_path):
    doc = {"format": "studio-motion", "version": 1, "fps": 25, "channels": ["pose.yaw", "exp.chin.y"],
           "values": [[10.0, -0.1], [12.0, -0.2]]}
    (tmp_path / "old.json").write_text(json.dumps(doc))
    m = read_motion(tmp_path / "old.json")
    assert m.values.shape == (2, 74)
    assert m.values[1, CHANNELS.index("pose.yaw")] == 12.0 and m.values[0, CHANNELS.index("scale")] == 1.0


BAD_MOTION_DOCS = [
    ({"format": "other"}, "format is 'other'"),
    ({"version": 2}, "newer Talking Head Studio"),
    ({"version": "1"}, "version must be an integer"),
    ({"fps": "fast"}, "fps must be a number"),
    ({"fps": -1}, "fps must be a positive"),
    ({"channels": ["exp.jaw.y"] + list(CHANNELS[1:])}, "unknown channels"),
    ({"channels": [CHANNELS[0]] * 74}, "duplicate channel"),
    ({"values": [[0.0] * 73]}, "values must be"),
    ({"values": [[float("nan")] * 74]}, "non-finite"),
    ({"values": [["a"] * 74]}, "could not convert|not a valid"),
    ({"keypoint_names": ["a"] * 21}, "keypoint_names differ"),
    ({"canonical_keypoints": [[0, 0, 0]]}, "canonical keypoints"),
]


@pytest.mark.parametrize("change,message", BAD_MOTION_DOCS)
def test_invalid_motion_files_are_refused_clearly(tmp_path, change, message):
    doc = {"format": "studio-motion", "version": 1, "fps": 25.0, "channels": list(CHANNELS),
           "values": [NEUTRAL_FRAME.tolist()]}
    doc.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(MotionFileError, match=message) as info:
        read_motion(path)
    assert str(path) in str(info.value)


def test_damaged_motion_files_of_every_format(motion, tmp_path):
    npz = write_motion(motion, tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(npz[:100])
    (tmp_path / "text.json").write_text("[1, 2")
    (tmp_path / "list.json").write_text("[1, 2]")
    csv_text = write_motion(motion, tmp_path / "m.csv").read_text().splitlines()
    (tmp_path / "ragged.csv").write_text("\n".join(csv_text[:-1] + ["1,2,3"]))
    (tmp_path / "noheader.csv").write_text("# format=\"studio-motion\"\n")
    (tmp_path / "badmeta.csv").write_text("# fps\n")
    buf = io.BytesIO()
    np.savez(buf, format=np.array("studio-motion"), values=np.array([object()], dtype=object))
    (tmp_path / "pickle.npz").write_bytes(buf.getvalue())
    for name in ("cut.npz", "text.json", "list.json", "ragged.csv", "noheader.csv", "badmeta.csv", "pickle.npz"):
        with pytest.raises(MotionFileError, match=name):
            read_motion(tmp_path / name)
    with pytest.raises(MotionFileError, match="cannot read"):
        read_motion(tmp_path / "missing.json")
    with pytest.raises(MotionFileError, match="unknown motion file format"):
        read_motion(tmp_path / "m.txt")


def test_npz_bombs_and_unsaveable_settings_are_refused(tmp_path, monkeypatch):
    import studio.core.motion_file as mf

    path = write_motion(Motion(neutral_motion(2000), 25), tmp_path / "m.npz")  # compresses very well
    monkeypatch.setattr(mf, "MAX_FILE_BYTES", 100_000)  # the file is small, its arrays are not
    assert path.stat().st_size < 100_000
    with pytest.raises(MotionFileError, match="above the limit"):
        read_motion(path)
    with pytest.raises(ValueError, match="plain JSON"):
        BaseMotion(neutral_motion(2), np.zeros((2, 13)), "rig", {"model": object()})


def corrupt_deflate_stream(npz: bytes) -> bytes:
    """The npz with its first member's first deflate block marked with the reserved block type 11
    (bits 1-2 of the first byte), which every inflater rejects; the zip headers stay intact."""
    offset = zipfile.ZipFile(io.BytesIO(npz)).infolist()[0].header_offset
    name_len, extra_len = struct.unpack("<HH", npz[offset + 26:offset + 30])  # from the local header
    start = offset + 30 + name_len + extra_len
    bad = bytearray(npz)
    bad[start] |= 0b110
    return bytes(bad)


def test_corrupt_compressed_arrays_give_clear_errors(full_project, tmp_path):
    doc, arrays = saved_members(full_project, tmp_path)
    buf = io.BytesIO()
    np.savez_compressed(buf, base_values=full_project.base.values, base_conditions=full_project.base.conditions)
    write_zip(tmp_path / "deflate.thproj", {"project.json": json.dumps(doc),
                                            "arrays.npz": corrupt_deflate_stream(buf.getvalue())})
    with pytest.raises(ProjectFileError, match="arrays.npz is damaged"):
        load_project(tmp_path / "deflate.thproj")
    npz = write_motion(Motion(neutral_motion(500), 25), tmp_path / "m.npz").read_bytes()
    (tmp_path / "deflate.npz").write_bytes(corrupt_deflate_stream(npz))
    with pytest.raises(MotionFileError, match="deflate.npz"):
        read_motion(tmp_path / "deflate.npz")


def test_mesh_keypoints_round_trip_and_version_2_files_have_none(full_project, tmp_path):
    full_project.set_mesh_keypoint("nose_tip", 17)
    full_project.set_mesh_keypoint("chin", 3)
    path = tmp_path / "a.thproj"
    save_project(full_project, path)
    loaded = load_project(path)
    assert loaded.mesh_keypoints == full_project.mesh_keypoints
    assert loaded.mesh_keypoints[KEYPOINT_INDEX["nose_tip"]] == 17
    assert sum(v is not None for v in loaded.mesh_keypoints) == 2
    doc, arrays = saved_members(full_project, tmp_path)
    del doc["mesh_keypoints"]
    doc["version"] = 2
    old = tmp_path / "v2.thproj"
    write_zip(old, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    assert load_project(old).mesh_keypoints is None
    doc["version"], doc["mesh_keypoints"] = 3, [1, -2] + [None] * 19
    write_zip(old, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    with pytest.raises(ProjectFileError, match="mesh_keypoints must be 21 vertex ids"):
        load_project(old)


def test_set_handles_round_trip_and_version_3_files_have_auto_handles(full_project, tmp_path):
    layer = full_project.layers[0]
    assert full_project.curve(("layer", layer.id, "exp.chin.y")).slopes[0] == 0.02
    doc, arrays = saved_members(full_project, tmp_path)
    assert doc["version"] == 4 and doc["layers"][0]["curves"]["exp.chin.y"]["slopes"] == [0.02, None, None]
    del doc["layers"][0]["curves"]["exp.chin.y"]["slopes"]
    doc["version"] = 3
    old = tmp_path / "v3.thproj"
    write_zip(old, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    curve = load_project(old).curve(("layer", layer.id, "exp.chin.y"))
    assert np.isnan(curve.slopes).all() and curve.values.tolist() == [0.1, -1 / 3, 1e-9]
    doc["version"], doc["layers"][0]["curves"]["exp.chin.y"]["slopes"] = 4, [0.1, None]
    write_zip(old, {"project.json": json.dumps(doc), "arrays.npz": arrays})
    with pytest.raises(ProjectFileError, match="slopes must be a list"):
        load_project(old)
