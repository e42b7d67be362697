"""Mesh-sequence export: real OBJ/PLY/NPY/glTF/USD files written and read back, values compared.

The take is a deforming icosphere: a smooth travelling bulge, a head-like rotation and a drift,
40 frames at 25 fps. glTF files are read back with our reader (morph targets, animation) and,
for the geometry, with trimesh; USD files with pxr (skipped when the ``usd`` extra is missing).
"""

from __future__ import annotations

import itertools
import json
import re
import struct

import numpy as np
import pytest
import trimesh

from studio.io import mesh_export
from studio.io.gltf_read import frames_at_keys, read_glb
from studio.io.mesh_export import (
    ExportCancelled,
    UsdNotInstalledError,
    fit_morph_targets,
    register,
    write_gltf,
    write_npy,
    write_obj_sequence,
    write_ply_sequence,
    write_usd,
)
from studio.plugins.registry import Registry, build_registry

FPS = 25.0
NUM_FRAMES = 40
WRITERS = {"obj": write_obj_sequence, "ply": write_ply_sequence, "npy": write_npy, "glb": write_gltf,
           "usda": write_usd}


def deforming_sphere(num_frames=NUM_FRAMES, subdivisions=3):
    """(T, V, 3) float32 vertices and (F, 3) faces: a bulge travelling round a 10 cm sphere that
    nods and turns (±0.4 rad) and drifts, in metres — smooth, as a renderer's output is."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.1)
    base = sphere.vertices
    t = np.arange(num_frames) / FPS
    phase = 2 * np.pi * 0.7 * t
    bulge = np.exp(-((base[None, :, 0] - 0.1 * np.cos(phase)[:, None]) ** 2
                     + (base[None, :, 1] - 0.1 * np.sin(phase)[:, None]) ** 2) / (2 * 0.04**2))
    shapes = base[None] * (1.0 + 0.15 * bulge[..., None])
    yaw, pitch = 0.4 * np.sin(2 * np.pi * 0.5 * t), 0.25 * np.sin(2 * np.pi * 0.3 * t + 1.0)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    zeros, ones = np.zeros_like(t), np.ones_like(t)
    r_yaw = np.stack([np.stack([cy, zeros, sy], -1), np.stack([zeros, ones, zeros], -1),
                      np.stack([-sy, zeros, cy], -1)], -2)
    r_pitch = np.stack([np.stack([ones, zeros, zeros], -1), np.stack([zeros, cp, -sp], -1),
                        np.stack([zeros, sp, cp], -1)], -2)
    posed = np.einsum("tij,tvj->tvi", r_yaw @ r_pitch, shapes) + 0.02 * np.stack([t, 0.5 * t, zeros], -1)[:, None]
    return posed.astype(np.float32), sphere.faces.astype(np.int64)


def talking_take(num_frames=1800, num_vertices=5023, fps=30.0, seed=0):
    """A FLAME-sized take for benchmarks: (T, V, 3) float32 metres and (F, 3) faces.

    The mesh is the front cap of a 10 cm icosphere (the ``num_vertices`` vertices nearest its
    front; 5023 vertices give 9 842 triangles, FLAME has 9 976). It talks: a jaw opening by a
    rotation blended smoothly over the lower face (a different angle per vertex, so not a linear
    shape), 30 Gaussian expression bumps of 3 mm with speech-rate time courses (0.3–6 Hz), and a
    head turning ±8° and drifting ±1 cm.
    """
    from scipy.spatial.transform import Rotation

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.1)
    order = np.argsort(-sphere.vertices[:, 2], kind="stable")[:num_vertices]
    remap = np.full(len(sphere.vertices), -1)
    remap[order] = np.arange(len(order))
    faces = remap[sphere.faces]
    faces = faces[(faces >= 0).all(axis=1)]
    base = sphere.vertices[order]
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames) / fps

    def courses(n):
        frequency, phase = rng.uniform(0.3, 6.0, (n, 3)), rng.uniform(0, 2 * np.pi, (n, 3))
        amplitude = rng.uniform(0.2, 1.0, (n, 3))
        return (amplitude * np.sin(2 * np.pi * frequency * t[:, None, None] + phase)).sum(-1) / 2

    jaw = np.radians(12) * np.clip(0.5 + courses(1)[:, 0], 0.0, 1.2)
    blend = np.clip((0.02 - base[:, 1]) / 0.06, 0.0, 1.0)
    angle = jaw[:, None] * blend * blend * (3 - 2 * blend)
    pivot = np.array([0.0, 0.0, -0.06])
    p = base - pivot
    y = np.cos(angle) * p[:, 1] - np.sin(angle) * p[:, 2]
    z = np.sin(angle) * p[:, 1] + np.cos(angle) * p[:, 2]
    shapes = np.stack([np.broadcast_to(p[:, 0], y.shape), y, z], axis=-1) + pivot
    centres = base[rng.choice(len(base), 30, replace=False)]
    directions = rng.normal(size=(30, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    bumps = np.exp(-((base[None] - centres[:, None]) ** 2).sum(-1) / (2 * 0.03**2))
    shapes = shapes + 0.003 * np.einsum("tk,kv,kd->tvd", courses(30), bumps, directions)
    head = Rotation.from_euler("xyz", np.radians(8) * courses(3)).as_matrix()
    posed = np.einsum("tij,tvj->tvi", head, shapes) + 0.01 * courses(3)[:, None, :]
    return posed.astype(np.float32), faces


def sphere_uv(vertices):
    """Longitude/latitude texture coordinates (V, 2) in the OBJ convention (v up)."""
    x, y, z = vertices.T
    u = 0.5 + np.arctan2(z, x) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(y / np.linalg.norm(vertices, axis=1), -1, 1)) / np.pi
    return np.stack([u, v], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def take():
    vertices, faces = deforming_sphere()
    uv = sphere_uv(vertices[0])
    texture = np.zeros((16, 32, 3), dtype=np.uint8)
    texture[:8, :, 0] = 220
    texture[8:, :16, 1] = 180
    texture[:, ::4, 2] = 90
    return vertices, faces, uv, texture


def largest_vertex_error(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1).max())


# --- OBJ ----------------------------------------------------------------------------------------

def parse_obj(path):
    v, vt, f = [], [], []
    lines = path.read_text().splitlines()
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            v.append([float(x) for x in parts[1:]])
        elif parts[0] == "vt":
            vt.append([float(x) for x in parts[1:]])
        elif parts[0] == "f":
            f.append([[int(i) for i in corner.split("/")] for corner in parts[1:]])
    return np.array(v), np.array(vt), np.array(f), lines


def test_obj_sequence_writes_one_file_per_frame_with_exact_values(tmp_path, take):
    vertices, faces, uv, texture = take
    report = write_obj_sequence(tmp_path / "take.obj", vertices, faces, fps=FPS, uv=uv, texture=texture)
    folder = tmp_path / "take"
    frames = sorted(folder.glob("take_*.obj"))
    assert [p.name for p in frames] == [f"take_{i:06d}.obj" for i in range(NUM_FRAMES)]
    assert (folder / "take.mtl").is_file() and (folder / "take.png").is_file()
    assert set(report.files) == set(frames) | {folder / "take.mtl", folder / "take.png"}
    assert (report.num_frames, report.num_vertices, report.num_faces) == (NUM_FRAMES, len(uv), len(faces))
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "staging files left behind"
    for index in (0, 17, NUM_FRAMES - 1):
        v, vt, f, lines = parse_obj(frames[index])
        assert v.shape == vertices[index].shape and len(f) == len(faces)
        np.testing.assert_array_equal(v.astype(np.float32), vertices[index])  # 9 digits: float32-exact
        np.testing.assert_array_equal(vt.astype(np.float32), uv)
        np.testing.assert_array_equal(f[:, :, 0] - 1, faces)  # 1-based v/vt, vt ids = v ids
        np.testing.assert_array_equal(f[:, :, 1], f[:, :, 0])
        assert "mtllib take.mtl" in lines and "usemtl take" in lines
    assert "map_Kd take.png" in (folder / "take.mtl").read_text()
    loaded = trimesh.load(frames[5], process=False)
    np.testing.assert_allclose(loaded.vertices, vertices[5], atol=1e-7)
    np.testing.assert_array_equal(loaded.faces, faces)


def test_obj_without_uv_writes_plain_faces_and_a_new_shorter_take_replaces_the_old_one(tmp_path, take):
    vertices, faces, _, _ = take
    folder = tmp_path / "seq"
    write_obj_sequence(folder, vertices, faces)
    (folder / "notes.txt").write_text("keep me")
    write_obj_sequence(folder, vertices[:5], faces)
    assert sorted(p.name for p in folder.glob("seq_*.obj")) == [f"seq_{i:06d}.obj" for i in range(5)]
    assert (folder / "notes.txt").read_text() == "keep me"
    _, vt, f, lines = parse_obj(folder / "seq_000004.obj")
    assert vt.size == 0 and f.shape == (len(faces), 3, 1)
    assert not any(line.startswith(("mtllib", "usemtl")) for line in lines)


# --- PLY ----------------------------------------------------------------------------------------

def test_ply_sequence_is_binary_and_reads_back_in_trimesh(tmp_path, take):
    vertices, faces, uv, texture = take
    report = write_ply_sequence(tmp_path / "take.ply", vertices, faces, fps=FPS, uv=uv, texture=texture)
    folder = tmp_path / "take"
    frames = sorted(folder.glob("take_*.ply"))
    assert len(frames) == NUM_FRAMES and (folder / "take.png").is_file()
    assert report.files[0] == folder / "take.png"
    header = frames[0].read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header
    assert f"element vertex {len(uv)}" in header and f"element face {len(faces)}" in header
    assert "comment TextureFile take.png" in header
    for index in (0, 21, NUM_FRAMES - 1):
        mesh = trimesh.load(frames[index], process=False)
        np.testing.assert_array_equal(np.asarray(mesh.vertices, np.float32), vertices[index])
        np.testing.assert_array_equal(mesh.faces, faces)
    np.testing.assert_array_equal(np.asarray(mesh.visual.uv, np.float32), uv)


# --- NPY ----------------------------------------------------------------------------------------

def test_npy_holds_the_whole_take_and_the_faces_beside_it(tmp_path, take):
    vertices, faces, uv, _ = take
    report = write_npy(tmp_path / "take.npy", vertices, faces, fps=FPS, uv=uv)
    assert report.files == (tmp_path / "take.npy", tmp_path / "take_faces.npy", tmp_path / "take_uv.npy")
    loaded = np.load(tmp_path / "take.npy", allow_pickle=False)
    assert loaded.shape == (NUM_FRAMES, len(uv), 3) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, vertices)
    loaded_faces = np.load(tmp_path / "take_faces.npy", allow_pickle=False)
    assert loaded_faces.dtype == np.int32
    np.testing.assert_array_equal(loaded_faces, faces)
    np.testing.assert_array_equal(np.load(tmp_path / "take_uv.npy"), uv)


# --- glTF ---------------------------------------------------------------------------------------

def glb_chunks(path):
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    json_length, json_type = struct.unpack_from("<II", data, 12)
    bin_offset = 20 + json_length
    bin_length, bin_type = struct.unpack_from("<II", data, bin_offset)
    return {"magic": magic, "version": version, "length": length, "size": len(data),
            "json_length": json_length, "json_type": json_type, "bin_length": bin_length,
            "bin_type": bin_type, "json": data[20:bin_offset], "bin": data[bin_offset + 8:]}


def test_glb_morph_targets_and_animation_reproduce_every_frame_within_the_tolerance(tmp_path, take):
    vertices, faces, uv, texture = take
    path = tmp_path / "take.glb"
    report = write_gltf(path, vertices, faces, fps=FPS, uv=uv, texture=texture)
    diagonal = np.linalg.norm(vertices[0].max(0) - vertices[0].min(0))
    assert report.tolerance == pytest.approx(1e-4 * diagonal)
    assert 1 <= report.num_targets <= 64 and report.max_error <= report.tolerance

    data = read_glb(path)
    k = report.num_targets
    assert data["targets"].shape == (k, len(uv), 3)
    assert data["target_names"] == [f"pca_{i:02d}" for i in range(k)]
    assert data["interpolation"] == "LINEAR"
    assert data["times"].shape == (NUM_FRAMES,)
    np.testing.assert_allclose(np.diff(data["times"]), 1.0 / FPS, rtol=1e-5)
    assert data["times"][0] == 0.0
    assert data["weights"].shape == (NUM_FRAMES, k)
    assert data["weights"].min() >= 0.0 and data["weights"].max() <= 1.0  # Blender clamps negatives
    np.testing.assert_array_equal(data["default_weights"], data["weights"][0])
    assert set(data["channels"]) == {"weights", "rotation", "translation"}
    frames = frames_at_keys(data)
    error = largest_vertex_error(frames, vertices)
    assert error <= report.tolerance
    assert error == pytest.approx(report.max_error, rel=1e-3, abs=1e-7)
    np.testing.assert_array_equal(data["faces"], faces)
    np.testing.assert_allclose(data["uv"], uv, atol=1e-6)
    np.testing.assert_array_equal(data["texture"], texture)
    assert data["normals"].shape == (len(uv), 3) and data["target_normals"].shape == (k, len(uv), 3)
    np.testing.assert_allclose(np.linalg.norm(data["normals"], axis=1), 1.0, atol=1e-5)

    # trimesh (an independent reader) sees the base mesh, placed by the node's static transform
    loaded = trimesh.load(path, force="mesh", process=False)
    static = frames_at_keys({**data, "channels": {}, "targets": data["targets"][:0]})[0]
    np.testing.assert_allclose(loaded.vertices, static, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, faces)


def test_glb_follows_the_container_and_accessor_rules_of_the_spec(tmp_path, take):
    vertices, faces, uv, _ = take
    path = tmp_path / "take.glb"
    write_gltf(path, vertices, faces, fps=FPS, uv=uv)
    chunks = glb_chunks(path)
    assert (chunks["magic"], chunks["version"]) == (0x46546C67, 2)
    assert chunks["length"] == chunks["size"]
    assert chunks["json_type"] == 0x4E4F534A and chunks["bin_type"] == 0x004E4942
    assert chunks["json_length"] % 4 == 0 and chunks["bin_length"] % 4 == 0
    assert chunks["json"].endswith(b"}") or chunks["json"].rstrip(b" ").endswith(b"}")
    document = json.loads(chunks["json"])
    assert document["asset"]["version"] == "2.0"
    assert "uri" not in document["buffers"][0]
    assert 0 <= chunks["bin_length"] - document["buffers"][0]["byteLength"] <= 3
    binary = chunks["bin"]
    sizes = {5126: 4, 5125: 4, 5123: 2}
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
    animation_accessors = {i for s in document["animations"][0]["samplers"] for i in (s["input"], s["output"])}
    for index, accessor in enumerate(document["accessors"]):
        view = document["bufferViews"][accessor["bufferView"]]
        assert view["byteOffset"] % 4 == 0
        assert "byteStride" not in view  # one tightly packed view per accessor
        element = sizes[accessor["componentType"]] * widths[accessor["type"]]
        assert view["byteLength"] == element * accessor["count"]
        if index in animation_accessors:
            assert "target" not in view
        if "min" in accessor:
            dtype = {5126: "<f4", 5125: "<u4", 5123: "<u2"}[accessor["componentType"]]
            values = np.frombuffer(binary, dtype=dtype, count=accessor["count"] * widths[accessor["type"]],
                                   offset=view["byteOffset"]).reshape(accessor["count"], -1)
            assert accessor["min"] == values.min(axis=0).tolist()
            assert accessor["max"] == values.max(axis=0).tolist()
    primitive = document["meshes"][0]["primitives"][0]
    position_accessors = [primitive["attributes"]["POSITION"]] + [t["POSITION"] for t in primitive["targets"]]
    assert all("min" in document["accessors"][i] and "max" in document["accessors"][i] for i in position_accessors)
    sampler_inputs = {s["input"] for s in document["animations"][0]["samplers"]}
    assert len(sampler_inputs) == 1 and "min" in document["accessors"][sampler_inputs.pop()]
    weights_sampler = document["animations"][0]["samplers"][0]
    assert document["accessors"][weights_sampler["output"]]["count"] == NUM_FRAMES * len(primitive["targets"])
    assert document["meshes"][0]["extras"]["targetNames"][0] == "pca_00"
    assert len(document["meshes"][0]["weights"]) == len(primitive["targets"])
    channel_paths = {c["target"]["path"] for c in document["animations"][0]["channels"]}
    assert channel_paths == {"weights", "rotation", "translation"}
    assert all(c["target"]["node"] == 0 for c in document["animations"][0]["channels"])


def test_gltf_with_bin_beside_reads_back_like_the_glb(tmp_path, take):
    vertices, faces, _, _ = take
    glb = write_gltf(tmp_path / "a.glb", vertices, faces, fps=FPS, normals=False)
    gltf = write_gltf(tmp_path / "b.gltf", vertices, faces, fps=FPS, normals=False)
    assert gltf.files == (tmp_path / "b.gltf", tmp_path / "b.bin")
    document = json.loads((tmp_path / "b.gltf").read_text())
    assert document["buffers"][0]["uri"] == "b.bin"
    assert document["buffers"][0]["byteLength"] == (tmp_path / "b.bin").stat().st_size
    a, b = read_glb(tmp_path / "a.glb"), read_glb(tmp_path / "b.gltf")
    assert b["normals"] is None and glb.num_targets == gltf.num_targets
    for key in ("positions", "targets", "weights", "times"):
        np.testing.assert_array_equal(a[key], b[key])
    assert largest_vertex_error(frames_at_keys(b), vertices) <= gltf.tolerance
    loaded = trimesh.load(tmp_path / "b.gltf", force="mesh", process=False)
    assert loaded.vertices.shape == vertices[0].shape


def test_without_rigid_factoring_the_morph_targets_carry_the_head_motion_and_need_more_of_them(tmp_path, take):
    vertices, faces, _, _ = take
    rigid = write_gltf(tmp_path / "rigid.glb", vertices, faces, fps=FPS)
    plain = write_gltf(tmp_path / "plain.glb", vertices, faces, fps=FPS, rigid=False, weight_range="signed")
    data = read_glb(tmp_path / "plain.glb")
    assert set(data["channels"]) == {"weights"}
    assert plain.num_targets > rigid.num_targets
    np.testing.assert_array_equal(data["weights"][0], 0.0)  # signed: frame 0 is the base
    assert np.abs(data["weights"]).max() == pytest.approx(1.0)
    assert data["weights"].min() < 0.0
    assert largest_vertex_error(data["positions"], vertices[0]) <= plain.tolerance
    assert largest_vertex_error(frames_at_keys(data), vertices) <= plain.tolerance


def test_the_number_of_targets_follows_the_tolerance_and_the_cap(take):
    vertices, _, _, _ = take
    loose = fit_morph_targets(vertices, tolerance=1e-3)
    tight = fit_morph_targets(vertices, tolerance=1e-6)
    assert loose.num_targets < tight.num_targets
    assert loose.max_error <= 1e-3 and tight.max_error <= 1e-6
    if loose.num_targets > 1:  # one target fewer would miss the tolerance: K is the smallest
        fewer = fit_morph_targets(vertices, tolerance=1e-3, max_targets=loose.num_targets - 1)
        assert fewer.max_error > 1e-3
    capped = fit_morph_targets(vertices, tolerance=1e-7, max_targets=2)
    assert capped.num_targets == 2 and capped.max_error > 1e-7
    assert largest_vertex_error(capped.reconstruct(), vertices) == pytest.approx(capped.max_error, rel=1e-4)


def test_a_talking_head_take_fits_within_the_tolerance_with_few_targets():
    vertices, faces = talking_take(num_frames=300, num_vertices=800)
    assert faces.max() < 800 and len(faces) > 1400
    rigid = fit_morph_targets(vertices)
    assert rigid.max_error <= rigid.tolerance and rigid.num_targets < 64
    assert largest_vertex_error(rigid.reconstruct(), vertices) <= rigid.tolerance
    unposed = fit_morph_targets(vertices, rigid=False)  # the head turn alone costs many targets
    assert unposed.num_targets > rigid.num_targets


def test_long_takes_use_the_randomized_svd_and_still_meet_the_tolerance():
    vertices, _ = deforming_sphere(num_frames=400, subdivisions=2)
    fit = fit_morph_targets(vertices)
    assert fit.max_error <= fit.tolerance
    assert largest_vertex_error(fit.reconstruct(), vertices) <= fit.tolerance
    assert 0.0 <= fit.weights.min() and fit.weights.max() <= 1.0


def test_a_still_take_is_a_plain_mesh_without_animation(tmp_path, take):
    vertices, faces, _, _ = take
    report = write_gltf(tmp_path / "still.glb", vertices[:1], faces, fps=FPS)
    data = read_glb(tmp_path / "still.glb")
    assert report.num_targets == 0 and data["targets"].shape[0] == 0
    assert data["channels"] == {} and "animations" not in data["document"]
    assert largest_vertex_error(frames_at_keys(data)[0], vertices[0]) <= 1e-6


def test_the_reader_refuses_damaged_files_naming_them(tmp_path, take):
    vertices, faces, _, _ = take
    path = tmp_path / "take.glb"
    write_gltf(path, vertices, faces, fps=FPS)
    data = path.read_bytes()
    (tmp_path / "cut.glb").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.glb: GLB header says"):
        read_glb(tmp_path / "cut.glb")
    (tmp_path / "noise.glb").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"noise\.glb: neither a GLB file nor glTF JSON"):
        read_glb(tmp_path / "noise.glb")
    write_gltf(tmp_path / "split.gltf", vertices, faces, fps=FPS)
    (tmp_path / "split.bin").unlink()
    with pytest.raises(OSError, match=r"split\.gltf: cannot read buffer 0"):
        read_glb(tmp_path / "split.gltf")


# --- USD ----------------------------------------------------------------------------------------

def test_usd_point_cache_has_time_sampled_points(tmp_path, take):
    pytest.importorskip("pxr")
    from pxr import Usd, UsdGeom, UsdShade

    vertices, faces, uv, texture = take
    for suffix in (".usda", ".usdc", ".usd"):
        path = tmp_path / f"take{suffix}"
        report = write_usd(path, vertices, faces, fps=FPS, uv=uv, texture=texture, meters_per_unit=0.01)
        assert report.files == (path, tmp_path / "take_texture.png")
        stage = Usd.Stage.Open(str(path))
        assert stage.GetTimeCodesPerSecond() == FPS and stage.GetFramesPerSecond() == FPS
        assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0, NUM_FRAMES - 1)
        assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
        assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01)
        mesh = UsdGeom.Mesh(stage.GetDefaultPrim().GetChild("mesh"))
        assert mesh.GetSubdivisionSchemeAttr().Get() == UsdGeom.Tokens.none
        np.testing.assert_array_equal(np.array(mesh.GetFaceVertexCountsAttr().Get()), 3)
        np.testing.assert_array_equal(np.array(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3), faces)
        points = mesh.GetPointsAttr()
        assert len(points.GetTimeSamples()) == NUM_FRAMES
        for frame in (0, 1, 23, NUM_FRAMES - 1):
            np.testing.assert_array_equal(np.array(points.Get(Usd.TimeCode(frame))), vertices[frame])
            extent = np.array(mesh.GetExtentAttr().Get(Usd.TimeCode(frame)))
            np.testing.assert_array_equal(extent, [vertices[frame].min(0), vertices[frame].max(0)])
        st = UsdGeom.PrimvarsAPI(mesh.GetPrim()).GetPrimvar("st")
        np.testing.assert_array_equal(np.array(st.Get()), uv)
        material, _ = UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()
        assert material and material.GetPath().name == "material"
    assert (tmp_path / "take.usda").read_text().startswith("#usda")
    assert (tmp_path / "take.usdc").read_bytes()[:8] == b"PXR-USDC"
    assert (tmp_path / "take.usd").read_bytes()[:8] == b"PXR-USDC"


def test_usd_without_pxr_says_to_install_the_usd_extra(tmp_path, take, monkeypatch):
    vertices, faces, _, _ = take
    monkeypatch.setattr(mesh_export, "usd_available", lambda: False)
    with pytest.raises(UsdNotInstalledError, match=r"take\.usd.*'usd' extra") as error:
        write_usd(tmp_path / "take.usd", vertices, faces, fps=FPS)
    assert isinstance(error.value, ValueError)
    assert not (tmp_path / "take.usd").exists()


# --- bad input, cancelling, progress ------------------------------------------------------------

def target_of(fmt, tmp_path):
    return tmp_path / f"out.{fmt}"


def usd_or_skip(fmt):
    if fmt == "usda" and not mesh_export.usd_available():
        pytest.skip("USD export needs pxr (the usd extra)")


@pytest.mark.parametrize("fmt", WRITERS)
def test_bad_input_is_refused_with_the_file_named_and_nothing_written(tmp_path, take, fmt):
    usd_or_skip(fmt)
    vertices, faces, uv, texture = take
    write, path = WRITERS[fmt], target_of(fmt, tmp_path)
    broken = vertices.copy()
    broken[3, 7, 1] = np.nan
    cases = [
        ((broken, faces, {}), r"vertex 7 of frame 3 is NaN"),
        ((vertices, faces + len(uv), {}), r"face 0 .* outside 0…"),
        ((vertices, faces[:0], {}), r"has no faces"),
        ((vertices[0], faces, {}), r"\(frames, vertices, 3\)"),
        ((vertices[:, :0], faces[:0], {}), r"no vertices"),
        ((vertices, faces.astype(np.float64), {}), r"integer vertex ids"),
        ((vertices, faces, {"texture": texture}), r"needs texture coordinates"),
        ((vertices, faces, {"uv": uv[:-1]}), r"uv must be"),
        ((vertices, faces, {"name": "../x"}), r"name must be"),
    ]
    for (v, f, options), message in cases:
        with pytest.raises(ValueError, match=message) as error:
            write(path, v, f, fps=FPS, **options)
        assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        write(path, vertices, faces, fps=0.0 if fmt in ("glb", "usda") else -1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", WRITERS)
def test_cancelling_mid_export_leaves_nothing_behind_and_keeps_an_earlier_take(tmp_path, take, fmt):
    usd_or_skip(fmt)
    vertices, faces, uv, texture = take
    write = WRITERS[fmt]
    calls = []

    def cancel_on_third_question():
        calls.append(1)
        return len(calls) >= 3

    fresh = target_of(fmt, tmp_path / "fresh")
    with pytest.raises(ExportCancelled, match=re.escape(str(fresh))):
        write(fresh, vertices, faces, fps=FPS, uv=uv, texture=texture, cancel=cancel_on_third_question)
    assert not (tmp_path / "fresh").exists() or list((tmp_path / "fresh").rglob("*")) == []

    earlier = target_of(fmt, tmp_path / "kept")
    first = write(earlier, vertices[:3], faces, fps=FPS)
    before = {p: p.read_bytes() for p in first.files}
    calls.clear()
    with pytest.raises(ExportCancelled):
        write(earlier, vertices, faces, fps=FPS, cancel=cancel_on_third_question)
    after = {p: p.read_bytes() for p in (tmp_path / "kept").rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("fmt", WRITERS)
def test_progress_rises_to_one(tmp_path, take, fmt):
    usd_or_skip(fmt)
    vertices, faces, _, _ = take
    seen = []
    WRITERS[fmt](target_of(fmt, tmp_path), vertices, faces, fps=FPS, progress=seen.append)
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= a <= b <= 1.0 for a, b in itertools.pairwise(seen))


# --- the registry -------------------------------------------------------------------------------

MESH_EXPORTERS = {"mesh_obj": ".obj", "mesh_ply": ".ply", "mesh_npy": ".npy", "mesh_glb": ".glb",
                  "mesh_usd": ".usd"}


def test_register_adds_one_mesh_exporter_per_format(tmp_path, take):
    registry = Registry()
    register(registry)
    assert [spec.name for spec in registry.exporters("mesh")] == list(MESH_EXPORTERS)
    for name, extension in MESH_EXPORTERS.items():
        assert registry.exporter_for(f"take{extension}", kind="mesh").name == name
        assert "Options" in registry.exporter(name).description
    assert registry.exporter_for("take.gltf", kind="mesh").name == "mesh_glb"
    assert registry.exporter_for("take.usda", kind="mesh").name == "mesh_usd"
    vertices, faces, _, _ = take
    spec = registry.exporter_for("take.glb", kind="mesh")
    report = spec.export(vertices, faces, tmp_path / "take.glb", fps=FPS, max_targets=3)
    assert report.num_targets <= 3 and read_glb(tmp_path / "take.glb")["weights"].shape == (NUM_FRAMES, report.num_targets)


def test_the_installed_entry_point_registers_the_mesh_exporters():
    registry = build_registry(folders=[])
    names = {spec.name for spec in registry.exporters("mesh")}
    assert set(MESH_EXPORTERS) <= names, f"missing {set(MESH_EXPORTERS) - names}: reinstall (pip install -e .)"
    assert not [e for e in registry.errors if "mesh_export" in e.source]
