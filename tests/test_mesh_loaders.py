"""Head meshes from files: VOCA-style FLAME templates, FLAME models, any mesh with a keypoint file.

Every file here is written (with trimesh, numpy or by hand) and read back; every error path names
the file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from studio.core.keypoints import KEYPOINT_NAMES
from studio.io.flame_pickle import UnsafeModelFileError
from studio.io.mesh_import import load_mesh
from studio.plugins.registry import build_registry
from studio.render.mesh.flame import FlameModel, flame_keypoint_vertices
from studio.render.mesh.flame_synth import build_flame_like_model
from studio.render.mesh.loaders import (
    HeadMesh,
    MeshLoadError,
    load_flame_model,
    load_head_mesh,
    read_keypoint_vertices_json,
    write_keypoint_vertices_json,
)


@pytest.fixture(scope="module")
def flame_arrays() -> dict[str, np.ndarray]:
    return build_flame_like_model(seed=0)


@pytest.fixture
def flame_npz(flame_arrays, tmp_path):
    path = tmp_path / "flame_model.npz"
    np.savez(path, **flame_arrays)
    return path


@pytest.fixture
def sphere_head() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2, radius=0.09)


def _picked_ids(num_vertices: int) -> list:
    """21 keypoint entries: mostly single ids, two of them vertex pairs."""
    ids: list = [int(i) for i in np.linspace(0, num_vertices - 1, 21).round()]
    ids[6] = [ids[6], ids[6] + 1]
    ids[12] = [3, 5]
    return ids


# --- FLAME-topology templates (VOCA) and FLAME models ------------------------------------------

@pytest.mark.parametrize("extension", [".ply", ".obj"])
def test_voca_template_reads_back_in_flame_topology_with_automatic_keypoints(flame_arrays, tmp_path, extension):
    template = trimesh.Trimesh(flame_arrays["v_template"], flame_arrays["f"], process=False)
    path = tmp_path / f"FaceTalk_subject{extension}"
    template.export(path)
    mesh = load_head_mesh(path)
    assert isinstance(mesh, HeadMesh)
    assert mesh.topology == "flame" and mesh.name == "FaceTalk_subject"
    assert mesh.vertices.shape == (5023, 3) and mesh.vertices.dtype == np.float32
    np.testing.assert_allclose(mesh.vertices, flame_arrays["v_template"], atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, flame_arrays["f"].astype(np.int32))
    assert mesh.keypoint_vertices == flame_keypoint_vertices(flame_arrays["v_template"])
    assert mesh.keypoint_vertices[KEYPOINT_NAMES.index("lip_upper_center")] == (3514,)
    assert mesh.flame_model is None
    assert not mesh.vertices.flags.writeable


def test_template_with_a_flame_model_replaces_its_v_template(flame_arrays, flame_npz, tmp_path):
    subject = np.asarray(flame_arrays["v_template"]) * 1.05 + [0.0, 0.01, 0.0]
    path = tmp_path / "subject.ply"
    trimesh.Trimesh(subject, flame_arrays["f"], process=False).export(path)
    mesh = load_head_mesh(path, flame_model=flame_npz)
    assert mesh.topology == "flame" and mesh.flame_model is not None
    np.testing.assert_allclose(mesh.flame_model.v_template, subject, atol=1e-6)
    rest = mesh.flame_model.vertices(np.zeros((1, 100), np.float32))[0]
    np.testing.assert_allclose(rest, subject, atol=1e-5)
    also = load_head_mesh(path, flame_model=load_flame_model(flame_npz))
    np.testing.assert_allclose(also.flame_model.v_template, subject, atol=1e-6)
    other = tmp_path / "other.ply"
    trimesh.creation.icosphere(subdivisions=2).export(other)
    with pytest.raises(MeshLoadError, match="other.ply: .* not in the topology of the FLAME model"):
        load_head_mesh(other, flame_model=flame_npz)


def test_flame_model_files_load_as_head_meshes(flame_arrays, flame_npz):
    mesh = load_head_mesh(flame_npz)
    assert mesh.topology == "flame" and isinstance(mesh.flame_model, FlameModel)
    np.testing.assert_allclose(mesh.vertices, flame_arrays["v_template"], atol=1e-7)
    assert mesh.flame_model.num_shape == 300 and mesh.flame_model.num_expression == 100
    np.testing.assert_allclose(mesh.keypoints(), mesh.flame_model.keypoints(mesh.vertices), atol=1e-7)
    model = load_flame_model(flame_npz, num_shape=100, num_expression=50)
    assert (model.num_shape, model.num_expression) == (100, 50)


def test_unsafe_flame_pickle_is_a_mesh_load_error_that_ran_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "generic_model.pkl"
    # GLOBAL os.system, then REDUCE with ("touch …",): what a booby-trapped model file holds.
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(MeshLoadError, match="generic_model.pkl: refused to load") as error:
        load_head_mesh(path)
    assert isinstance(error.value.__cause__, UnsafeModelFileError)
    assert not marker.exists()


# --- any mesh with a keypoint file --------------------------------------------------------------

@pytest.mark.parametrize("extension", [".obj", ".ply", ".glb", ".gltf"])
def test_custom_mesh_with_keypoint_json_reads_back(sphere_head, tmp_path, extension):
    path = tmp_path / f"head{extension}"
    sphere_head.export(path)
    keypoints = tmp_path / "head.keypoints.json"
    write_keypoint_vertices_json(keypoints, _picked_ids(len(sphere_head.vertices)))
    mesh = load_head_mesh(path, keypoints)
    assert mesh.topology == "custom"
    np.testing.assert_allclose(mesh.vertices, sphere_head.vertices, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, sphere_head.faces)
    expected = read_keypoint_vertices_json(keypoints)
    assert mesh.keypoint_vertices == expected
    assert mesh.keypoint_vertices[6] == (expected[6][0], expected[6][0] + 1)
    np.testing.assert_allclose(mesh.keypoints()[12], sphere_head.vertices[[3, 5]].mean(axis=0), atol=1e-6)
    assert load_head_mesh(path).keypoint_vertices is None  # no file, no keypoints


def test_stl_corners_are_merged_in_order_of_first_appearance(sphere_head, tmp_path):
    path = tmp_path / "head.stl"
    sphere_head.export(path)
    mesh = load_head_mesh(path)
    assert mesh.vertices.shape == sphere_head.vertices.shape  # 960 STL corners → 162 vertices
    first_corners = np.asarray(sphere_head.vertices)[sphere_head.faces[0]]
    np.testing.assert_allclose(mesh.vertices[mesh.faces[0]], first_corners, atol=1e-6)
    assert mesh.faces[0].tolist() == [0, 1, 2]
    keypoints = tmp_path / "stl.json"
    write_keypoint_vertices_json(keypoints, _picked_ids(len(mesh.vertices)))
    assert load_head_mesh(path, keypoints).keypoint_vertices == read_keypoint_vertices_json(keypoints)


def test_scenes_are_flattened_and_textures_kept(sphere_head, tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(sphere_head, node_name="head")
    scene.add_geometry(trimesh.creation.box(extents=(0.01, 0.01, 0.01)), node_name="hat",
                       transform=trimesh.transformations.translation_matrix([0.0, 0.1, 0.0]))
    path = tmp_path / "two_parts.glb"
    scene.export(path)
    mesh = load_head_mesh(path)
    assert len(mesh.vertices) == len(sphere_head.vertices) + 8
    assert mesh.vertices[:, 1].max() == pytest.approx(0.105, abs=1e-6)  # the node transform is applied

    rng = np.random.default_rng(0)
    uv = rng.random((len(sphere_head.vertices), 2))
    image = (rng.random((8, 16, 3)) * 255).astype(np.uint8)
    textured = trimesh.Trimesh(sphere_head.vertices, sphere_head.faces, process=False,
                               visual=trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(image)))
    path = tmp_path / "textured.glb"
    textured.export(path)
    mesh = load_head_mesh(path)
    np.testing.assert_allclose(mesh.uv, uv, atol=1e-6)
    np.testing.assert_array_equal(mesh.texture, image)


def test_keypoint_json_round_trip_and_format(tmp_path):
    path = tmp_path / "k.json"
    ids = _picked_ids(500)
    write_keypoint_vertices_json(path, ids)
    data = json.loads(path.read_text())
    assert list(data) == list(KEYPOINT_NAMES)
    assert data["nose_bridge"] == ids[0] and data["lid_upper_l"] == ids[6]
    assert read_keypoint_vertices_json(path, 500)[6] == tuple(ids[6])
    with pytest.raises(MeshLoadError, match=r"k.json: keypoint '\w+' names vertex ids"):
        read_keypoint_vertices_json(path, 100)


# --- every error names the file -----------------------------------------------------------------

def _write(path, content):
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


_TRIANGLE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
_PLY_HEADER = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
               "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n")


@pytest.mark.parametrize("name, content, message", [
    ("head.xyz", _TRIANGLE_OBJ, "unknown head mesh extension '.xyz'"),
    ("noext", _TRIANGLE_OBJ, "unknown head mesh extension '\\(none\\)'"),
    ("empty.obj", "", "the file is empty"),
    ("comments.obj", "# no geometry\n", "holds no mesh"),
    ("nan.obj", "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "1 of 3 vertices have NaN or infinite"),
    ("inf.ply", _PLY_HEADER + "0 0 0\ninf 0 0\n0 1 0\n3 0 1 2\n", "1 of 3 vertices have NaN or infinite"),
    ("outside.ply", _PLY_HEADER + "0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "triangles name vertices outside|cannot read"),
    ("outside.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "cannot read the mesh"),
    ("junk.glb", bytes(range(256)) * 4, "cannot read the mesh"),
    ("junk.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 1000\n", "cannot read the mesh|holds no mesh"),
])
def test_broken_mesh_files_raise_mesh_load_error_naming_the_file(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(MeshLoadError, match=f"{name}: ({message})"):
        load_head_mesh(path)


def test_missing_truncated_and_point_cloud_files(sphere_head, tmp_path):
    with pytest.raises(MeshLoadError, match="absent.obj: no such file"):
        load_head_mesh(tmp_path / "absent.obj")
    with pytest.raises(MeshLoadError, match="absent.pkl: no such file"):
        load_head_mesh(tmp_path / "absent.pkl")
    binary = tmp_path / "whole.ply"
    sphere_head.export(binary)
    truncated = _write(tmp_path / "truncated.ply", binary.read_bytes()[:900])
    with pytest.raises(MeshLoadError, match="truncated.ply: "):
        load_head_mesh(truncated)
    cloud = tmp_path / "scan.ply"
    trimesh.PointCloud(sphere_head.vertices).export(cloud)
    with pytest.raises(MeshLoadError, match="scan.ply: has 162 points but no triangles"):
        load_head_mesh(cloud)
    folder = tmp_path / "folder.obj"
    folder.mkdir()
    with pytest.raises(MeshLoadError, match="folder.obj: not a file"):
        load_head_mesh(folder)


@pytest.mark.parametrize("name, content, message", [
    ("not_json.json", "{nose_tip: 3", "not a readable JSON keypoint file"),
    ("list.json", "[1, 2, 3]", "a keypoint file is a JSON object"),
    ("missing.json", json.dumps({"nose_tip": 1}), "20 of the 21 keypoints are missing"),
    ("typo.json", json.dumps({**{n: 1 for n in KEYPOINT_NAMES}, "nose_tipp": 2}), "unknown keypoint names 'nose_tipp'"),
    ("float.json", json.dumps({**{n: 1 for n in KEYPOINT_NAMES}, "chin": 1.5}), "keypoint 'chin' must be a vertex id"),
    ("bool.json", json.dumps({**{n: 1 for n in KEYPOINT_NAMES}, "chin": True}), "keypoint 'chin' must be a vertex id"),
    ("empty_list.json", json.dumps({**{n: 1 for n in KEYPOINT_NAMES}, "chin": []}), "keypoint 'chin' must be a vertex id"),
    ("range.json", json.dumps({**{n: 1 for n in KEYPOINT_NAMES}, "chin": [5, 999]}), "keypoint 'chin' names vertex ids"),
    ("negative.json", json.dumps({**{n: 1 for n in KEYPOINT_NAMES}, "chin": -1}), "keypoint 'chin' names vertex ids"),
    ("binary.json", b"\xff\xfe\x00garbage", "not a readable JSON keypoint file"),
])
def test_malformed_keypoint_files_raise_mesh_load_error(sphere_head, tmp_path, name, content, message):
    mesh_path = tmp_path / "head.obj"
    sphere_head.export(mesh_path)
    keypoints = _write(tmp_path / name, content)
    with pytest.raises(MeshLoadError, match=f"{name}: {message}"):
        load_head_mesh(mesh_path, keypoints)
    with pytest.raises(MeshLoadError, match=f"absent_{name}"):
        load_head_mesh(mesh_path, tmp_path / f"absent_{name}")


# --- the importer plugin ------------------------------------------------------------------------

def test_mesh_importer_is_registered_through_the_entry_point(flame_npz, sphere_head, tmp_path):
    registry = build_registry(folders=[])
    spec = registry.importer_for(tmp_path / "Head.OBJ", kind="mesh")
    assert spec.name == "head_mesh" and spec.load is load_mesh
    assert "mesh_import" in (registry.source_of(spec) or "")
    assert {".obj", ".ply", ".glb", ".gltf", ".stl", ".pkl", ".npz"} <= set(spec.extensions)
    path = tmp_path / "head.glb"
    sphere_head.export(path)
    vertices, faces = spec.load(path)
    assert vertices.shape == (162, 3) and vertices.dtype == np.float32 and faces.shape == (320, 3)
    vertices, faces = registry.importer_for(flame_npz, kind="mesh").load(flame_npz)
    assert vertices.shape == (5023, 3) and faces.shape == (9976, 3)
    with pytest.raises(ValueError, match="nothing.json: no such keypoint file"):
        spec.load(path, keypoints_json=tmp_path / "nothing.json")
