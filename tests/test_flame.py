"""FLAME: the restricted model-file unpickler, the FLAME-format stand-in head and the LBS model.

Model files are written the way FLAME ships them — a protocol-2 pickle whose arrays are wrapped in
chumpy objects (from a stand-in ``chumpy`` package created here, removed again before loading)
and whose ``J_regressor`` is a ``scipy.sparse`` CSC matrix — and read back without chumpy.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse
import trimesh
from scipy.spatial.transform import Rotation

from studio.core.keypoints import (
    FLAME_VERTICES,
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    MEAN_FACE,
)
from studio.io import flame_pickle
from studio.io.flame_pickle import (
    FLAME_KEYS,
    FlameFileError,
    UnsafeModelFileError,
    load_flame_arrays,
    restricted_load,
)
from studio.render.mesh.flame import (
    JOINT_NAMES,
    FlameModel,
    flame_keypoint_vertices,
    keypoint_positions,
    rodrigues,
    similarity_transform,
)
from studio.render.mesh.flame_synth import build_flame_like_model

LIP_UPPER, LIP_LOWER = 3514, 3497
JAW, NECK = JOINT_NAMES.index("jaw"), JOINT_NAMES.index("neck")


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return build_flame_like_model(seed=0)


@pytest.fixture(scope="module")
def model(arrays) -> FlameModel:
    return FlameModel.from_arrays(arrays)


# --- writing model files the way FLAME ships them --------------------------------------------

_CHUMPY_STAND_IN = {
    "__init__.py": "from .ch import Ch\n",
    "ch.py": textwrap.dedent('''
        class Ch(object):
            """Pickles like chumpy.ch.Ch: its state dict holds the array under 'x'."""
            def __init__(self, x):
                self.x = x
                self._dirty_vars = set(["x"])
                self._itr = None
                self._depends_on_deps = {}
                self._make_dense = False
                self._make_sparse = False
    '''),
    "reordering.py": textwrap.dedent('''
        from .ch import Ch
        class Select(Ch):
            """Pickles like chumpy.reordering.Select: a view of another Ch by flat indices."""
            def __init__(self, a, idxs, preferred_shape):
                self.a = a
                self.idxs = idxs
                self.preferred_shape = preferred_shape
                self._dirty_vars = set()
                self._itr = None
                self._depends_on_deps = {}
    '''),
}


def _stand_in_chumpy(tmp_path):
    """Import a stand-in ``chumpy`` package from tmp_path; returns a function that removes it."""
    root = tmp_path / "chumpy_stand_in"
    (root / "chumpy").mkdir(parents=True)
    for name, source in _CHUMPY_STAND_IN.items():
        (root / "chumpy" / name).write_text(source)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    import chumpy  # noqa: F401 - the stand-in

    def remove() -> None:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == "chumpy" or n.startswith("chumpy.")]:
            del sys.modules[name]
        importlib.invalidate_caches()

    return remove


def write_flame_pickle(arrays, path, tmp_path, *, protocol=2, sparse_module=None):
    """Pickle ``arrays`` as FLAME files are: chumpy-wrapped arrays, a sparse J_regressor."""
    remove = _stand_in_chumpy(tmp_path)
    try:
        from chumpy.ch import Ch
        from chumpy.reordering import Select

        posedirs = np.asarray(arrays["posedirs"])
        data = {
            "v_template": Ch(np.asarray(arrays["v_template"])),
            "shapedirs": Ch(np.asarray(arrays["shapedirs"])),
            "posedirs": Select(Ch(posedirs.ravel()), np.arange(posedirs.size), posedirs.shape),
            "J_regressor": scipy.sparse.csc_matrix(np.asarray(arrays["J_regressor"])),
            "weights": Ch(np.asarray(arrays["weights"])),
            "kintree_table": np.asarray(arrays["kintree_table"]),
            "f": np.asarray(arrays["f"]),
            "J": Ch(np.asarray(arrays["J_regressor"]) @ np.asarray(arrays["v_template"])),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        payload = pickle.dumps(data, protocol=protocol)
    finally:
        remove()
    if sparse_module is not None:  # older files name the class under its pre-1.8 scipy module
        payload = payload.replace(b"scipy.sparse._csc", sparse_module.encode())
    path.write_bytes(payload)
    return path


def _small(arrays):
    """The model with fewer components (fast to pickle at the text-ish protocols)."""
    return {**arrays, "shapedirs": np.asarray(arrays["shapedirs"])[..., :12]}


# --- the restricted unpickler -------------------------------------------------------------------

@pytest.mark.parametrize("sparse_module", ["scipy.sparse._csc", "scipy.sparse.csc"])
def test_chumpy_flame_pickle_loads_without_chumpy(arrays, tmp_path, sparse_module):
    path = write_flame_pickle(arrays, tmp_path / "generic_model.pkl", tmp_path, sparse_module=sparse_module)
    assert importlib.util.find_spec("chumpy") is None  # the stand-in is gone: nothing to import
    assert b"chumpy.ch" in path.read_bytes() and sparse_module.encode() in path.read_bytes()
    loaded = load_flame_arrays(path)
    assert set(loaded) == set(FLAME_KEYS)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        np.testing.assert_array_equal(loaded[key], np.asarray(arrays[key]), err_msg=key)
    assert loaded["shapedirs"].shape == (5023, 3, 400)
    assert loaded["posedirs"].shape == (5023, 3, 36)
    assert loaded["J_regressor"].shape == (5, 5023) and isinstance(loaded["J_regressor"], np.ndarray)
    assert loaded["kintree_table"].tolist() == [[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]
    assert "chumpy" not in sys.modules


def test_protocol_1_pickles_build_chumpy_objects_through_copyreg_reconstructor(arrays, tmp_path):
    small = _small(arrays)
    path = write_flame_pickle(small, tmp_path / "old.pkl", tmp_path, protocol=1)
    assert b"_reconstructor" in path.read_bytes()
    loaded = load_flame_arrays(path)
    np.testing.assert_array_equal(loaded["shapedirs"], small["shapedirs"])
    np.testing.assert_array_equal(loaded["posedirs"], np.asarray(arrays["posedirs"]))


def test_plain_numpy_pickle_and_npz_conversion_load(arrays, tmp_path):
    plain = {key: np.asarray(value) for key, value in _small(arrays).items()}
    plain["J_regressor"] = scipy.sparse.csr_matrix(plain["J_regressor"])
    pkl = tmp_path / "flame2023.pkl"
    pkl.write_bytes(pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL))
    npz = tmp_path / "flame.npz"
    np.savez(npz, **{key: np.asarray(value) for key, value in _small(arrays).items()})
    for path in (pkl, npz):
        loaded = load_flame_arrays(path)
        np.testing.assert_array_equal(loaded["J_regressor"], np.asarray(arrays["J_regressor"]))
        np.testing.assert_array_equal(loaded["v_template"], np.asarray(arrays["v_template"]))
        assert loaded["f"].dtype == np.int64 and loaded["kintree_table"][0, 0] == -1


class _RunsOsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _RunsExec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


class _RunsSubprocess:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (["touch", str(self.marker)],)


@pytest.mark.parametrize("payload_class, protocol, refused", [
    (_RunsOsSystem, 2, "posix.system"),
    (_RunsExec, 1, "__builtin__.exec"),  # Python 2 names, as an old model file would have them
    (_RunsSubprocess, 2, "commands.call"),
    (_RunsSubprocess, 4, "subprocess.call"),
])
def test_malicious_pickles_are_refused_and_run_nothing(arrays, tmp_path, payload_class, protocol, refused):
    marker = tmp_path / "pwned"
    data = {key: np.asarray(value) for key, value in _small(arrays).items()}
    data["bs_style"] = payload_class(marker)
    path = tmp_path / "evil_model.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    with pytest.raises(UnsafeModelFileError) as error:
        load_flame_arrays(path)
    assert isinstance(error.value, ValueError)
    assert str(path) in str(error.value) and refused in str(error.value)
    assert not marker.exists()


def test_copyreg_reconstructor_of_a_class_outside_the_stand_ins_is_refused(tmp_path):
    path = tmp_path / "sneaky.pkl"
    # copy_reg._reconstructor(set, object, None): both globals are allowed on their own.
    path.write_bytes(b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.")
    with pytest.raises(UnsafeModelFileError, match="_reconstructor"):
        restricted_load(path)
    # …and a stand-in may only be built on object, nothing else.
    path.write_bytes(b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nset\nNtR.")
    with pytest.raises(UnsafeModelFileError, match="sneaky.pkl"):
        restricted_load(path)


def test_numpy_reconstruct_only_builds_ndarrays(tmp_path):
    path = tmp_path / "odd.pkl"
    path.write_bytes(b"cnumpy.core.multiarray\n_reconstruct\n(c__builtin__\nobject\n(I0\ntS'b'\ntR.")
    with pytest.raises(FlameFileError, match="only numpy.ndarray") as error:
        restricted_load(path)
    assert not isinstance(error.value, UnsafeModelFileError)


def test_truncated_junk_empty_and_oversized_files_give_clear_errors(arrays, tmp_path, monkeypatch):
    whole = write_flame_pickle(_small(arrays), tmp_path / "whole.pkl", tmp_path).read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FlameFileError, match="truncated.pkl"):
        load_flame_arrays(truncated)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(FlameFileError, match="junk.pkl: not a pickle"):
        load_flame_arrays(junk)
    text = tmp_path / "notes.pkl"
    text.write_text("hello, this is not a model")
    with pytest.raises(FlameFileError, match="notes.pkl"):
        load_flame_arrays(text)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(FlameFileError, match="empty.pkl: the file is empty"):
        load_flame_arrays(empty)
    with pytest.raises(FlameFileError, match="missing.pkl: no such file"):
        load_flame_arrays(tmp_path / "missing.pkl")
    not_a_dict = tmp_path / "list.pkl"
    not_a_dict.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(FlameFileError, match="list.pkl: holds a list"):
        load_flame_arrays(not_a_dict)
    monkeypatch.setattr(flame_pickle, "MAX_MODEL_FILE_BYTES", 1000)
    with pytest.raises(FlameFileError, match="whole.pkl: .* above the limit"):
        load_flame_arrays(tmp_path / "whole.pkl")


def test_missing_keys_wrong_shapes_and_nans_are_named(arrays, tmp_path):
    base = {key: np.asarray(value) for key, value in _small(arrays).items()}
    cases = {
        "no_faces": ({k: v for k, v in base.items() if k != "f"}, "the key 'f' is missing"),
        "weights_t": ({**base, "weights": base["weights"].T}, r"weights has shape \(5, 5023\), expected \(5023, 5\)"),
        "nan": ({**base, "v_template": np.where(np.arange(5023)[:, None] == 7, np.nan, base["v_template"])},
                "v_template contains NaN"),
        "bad_faces": ({**base, "f": base["f"] + 10}, "f indexes vertices outside"),
        "bad_posedirs": ({**base, "posedirs": base["posedirs"][:100]}, "posedirs has shape"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **data)
        with pytest.raises(FlameFileError, match=f"{name}.npz: {message}"):
            load_flame_arrays(path)


def test_flattened_posedirs_layouts_are_normalized(arrays):
    posedirs = np.asarray(arrays["posedirs"])
    base = {key: np.asarray(value) for key, value in arrays.items()}
    for layout in (posedirs.reshape(-1, 36), posedirs.reshape(-1, 36).T):
        normalized = flame_pickle.normalize_flame_arrays({**base, "posedirs": layout})
        np.testing.assert_array_equal(normalized["posedirs"], posedirs)


# --- the stand-in head --------------------------------------------------------------------------

def test_synthetic_model_has_flame_2020_keys_shapes_and_dtypes(arrays):
    expected = {
        "v_template": ((5023, 3), np.float64), "shapedirs": ((5023, 3, 400), np.float64),
        "posedirs": ((5023, 3, 36), np.float64), "J_regressor": ((5, 5023), np.float64),
        "weights": ((5023, 5), np.float64), "kintree_table": ((2, 5), np.int64), "f": ((9976, 3), np.uint32),
    }
    assert set(arrays) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert arrays[key].shape == shape and arrays[key].dtype == dtype, key
    assert arrays["kintree_table"].tolist() == [[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]
    np.testing.assert_allclose(arrays["weights"].sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(arrays["J_regressor"].sum(axis=1), 1.0, atol=1e-12)
    assert arrays["J_regressor"].min() >= 0 and arrays["weights"].min() >= 0
    assert set(np.unique(arrays["f"])) == set(range(5023))  # every vertex is used


def test_synthetic_model_is_deterministic_for_a_seed(arrays):
    again = build_flame_like_model(seed=0)
    other = build_flame_like_model(seed=1)
    for key in arrays:
        np.testing.assert_array_equal(again[key], arrays[key])
    np.testing.assert_array_equal(other["v_template"], arrays["v_template"])
    assert not np.allclose(other["shapedirs"], arrays["shapedirs"])


def test_synthetic_head_is_a_closed_surface_with_mouth_and_eye_openings(arrays):
    faces = arrays["f"].astype(np.int64)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2  # manifold
    boundary = unique[counts == 1]
    # Boundary loops: the mouth slit (2 × 18 edges) and two eye openings (2 × 7 edges each).
    assert len(boundary) == 36 + 14 + 14
    boundary_vertices = set(boundary.ravel().tolist())
    assert {LIP_UPPER, LIP_LOWER, 1703, 2820, 1343, 1218, 829, 995} <= boundary_vertices
    v = arrays["v_template"]
    np.testing.assert_allclose(v[LIP_UPPER], v[LIP_LOWER])  # the closed lips touch
    assert LIP_UPPER != LIP_LOWER
    # Facing +z with y up, about FLAME's size: 63 mm between the eye centres.
    left_eye = v[[1343, 1218, 829, 995]].mean(axis=0)
    right_eye = v[[2453, 2494, 2278, 2359]].mean(axis=0)
    np.testing.assert_allclose(np.linalg.norm(left_eye - right_eye), 0.063, rtol=1e-6)
    assert left_eye[0] > 0 > right_eye[0]
    assert v[3564, 2] == pytest.approx(v[:, 2].max(), abs=0.003)  # the nose tip is the front
    assert 0.2 < np.ptp(v[:, 1]) < 0.4 and 0.12 < np.ptp(v[:, 0]) < 0.2


def test_keypoints_of_the_synthetic_model_are_the_mean_face(model):
    keypoints = model.keypoints(model.v_template)
    scale, rotation, translation = similarity_transform(MEAN_FACE, keypoints)
    residual = np.linalg.norm(scale * MEAN_FACE @ rotation.T + translation - keypoints, axis=1)
    assert residual.max() < 1e-4  # metres
    assert scale == pytest.approx(0.063, rel=1e-3)
    np.testing.assert_allclose(rotation, np.eye(3), atol=1e-4)
    for name in KEYPOINT_NAMES:
        if FLAME_VERTICES[name]:
            assert model.keypoint_vertices[KEYPOINT_INDEX[name]] == FLAME_VERTICES[name]


def test_cheek_vertex_is_nearest_to_the_aligned_mean_face_cheek(model):
    keypoints = flame_keypoint_vertices(model.v_template)
    for name in ("cheek_l", "cheek_r"):
        (cheek,) = keypoints[KEYPOINT_INDEX[name]]
        target = 0.063 * MEAN_FACE[KEYPOINT_INDEX[name]]
        distances = np.linalg.norm(model.v_template - target, axis=1)
        assert distances[cheek] == pytest.approx(distances.min())
        assert distances[cheek] < 0.002


# --- linear blend skinning ----------------------------------------------------------------------

def test_rodrigues_matches_scipy_and_is_exact_at_zero():
    rng = np.random.default_rng(3)
    vectors = np.concatenate([rng.normal(size=(50, 3)), rng.normal(size=(5, 3)) * 1e-6, np.zeros((1, 3))])
    np.testing.assert_allclose(rodrigues(vectors), Rotation.from_rotvec(vectors).as_matrix(), atol=1e-12)
    assert rodrigues(np.zeros((2, 4, 3), np.float32)).shape == (2, 4, 3, 3)


def test_zero_pose_and_expression_give_the_shaped_template(model):
    rng = np.random.default_rng(4)
    shape = rng.normal(size=300).astype(np.float32)
    rest = model.vertices(np.zeros((2, 100), np.float32))
    np.testing.assert_allclose(rest, np.broadcast_to(model.v_template, rest.shape), atol=1e-7)
    shaped = model.vertices(np.zeros((1, 100), np.float32), shape=shape)[0]
    np.testing.assert_allclose(shaped, model.shaped_template(shape), atol=1e-6)
    expected = model.v_template + np.einsum("vcs,s->vc", model.shapedirs.astype(np.float64), shape)
    np.testing.assert_allclose(shaped, expected, atol=1e-6)
    assert np.abs(shaped - model.v_template).max() > 1e-3  # the shape did something


def test_jaw_rotation_opens_the_mouth_and_leaves_the_upper_face(model):
    pose = np.zeros((2, 5, 3), np.float32)
    pose[1, JAW, 0] = 0.3  # pitch about +x: the chin swings down
    rest, opened = model.vertices(np.zeros((2, 100), np.float32), pose)
    lower_motion = opened[LIP_LOWER] - rest[LIP_LOWER]
    assert lower_motion[1] < -0.01
    assert np.linalg.norm(opened[LIP_LOWER] - opened[LIP_UPPER]) > 0.015
    assert np.linalg.norm(opened[LIP_UPPER] - rest[LIP_UPPER]) < 0.001
    chin = FLAME_VERTICES["chin"][0]
    assert opened[chin, 1] < rest[chin, 1] - 0.01
    upper_face = rest[:, 1] > rest[[829, 995, 2278, 2359], 1].mean()  # above the lower lids
    assert upper_face.sum() > 1000
    np.testing.assert_allclose(opened[upper_face], rest[upper_face], atol=1e-5)


def test_neck_rotation_turns_the_head_rigidly_about_the_neck_joint(model):
    pose = np.zeros((1, 5, 3), np.float32)
    pose[0, NECK] = (0.1, 0.5, -0.2)
    turned = model.vertices(np.zeros((1, 100), np.float32), pose)[0]
    head = model.v_template[:, 1] > 0.02  # the cranium, eyes and brows, far above the neck
    joint = model.rest_joints()[NECK]
    rotation = Rotation.from_rotvec(pose[0, NECK].astype(np.float64)).as_matrix()
    expected = (model.v_template[head] - joint) @ rotation.T + joint
    np.testing.assert_allclose(turned[head], expected, atol=2e-5)
    lower_neck = model.v_template[:, 1] < -0.15
    np.testing.assert_allclose(turned[lower_neck], model.v_template[lower_neck], atol=1e-4)


def test_global_rotation_and_translation_move_everything(model):
    pose = np.zeros((1, 5, 3), np.float32)
    pose[0, 0] = (0.0, 0.3, 0.0)
    translation = np.array([[0.01, -0.02, 0.03]], np.float32)
    moved = model.vertices(np.zeros((1, 100), np.float32), pose, translation=translation)[0]
    joint = model.rest_joints()[0]
    rotation = Rotation.from_rotvec([0.0, 0.3, 0.0]).as_matrix()
    expected = (model.v_template - joint) @ rotation.T + joint + translation[0]
    np.testing.assert_allclose(moved, expected, atol=2e-5)


def test_batched_frames_equal_frames_one_at_a_time(model):
    rng = np.random.default_rng(5)
    frames = 70  # more than one chunk
    expression = rng.normal(size=(frames, 50)).astype(np.float32)
    pose = (rng.normal(size=(frames, 5, 3)) * 0.2).astype(np.float32)
    translation = (rng.normal(size=(frames, 3)) * 0.01).astype(np.float32)
    shape = rng.normal(size=100).astype(np.float32)
    batched = model.vertices(expression, pose, shape, translation)
    assert batched.shape == (frames, 5023, 3) and batched.dtype == np.float32
    for t in (0, 31, 32, 69):
        single = model.vertices(expression[t:t + 1], pose[t:t + 1], shape, translation[t:t + 1])[0]
        np.testing.assert_allclose(batched[t], single, atol=2e-6)


def test_expression_components_are_orthogonal_localized_and_change_the_face(model):
    basis = model.exprdirs.reshape(-1, 100).astype(np.float64)
    norms = np.linalg.norm(basis, axis=0)
    assert norms.min() > 1e-4
    cosines = (basis.T @ basis) / np.outer(norms, norms)
    np.testing.assert_allclose(cosines, np.eye(100), atol=1e-6)
    eyeballs = np.arange(5023 - 360, 5023)
    assert np.abs(model.exprdirs[eyeballs]).max() == 0  # eyeballs never deform
    back_of_head = model.v_template[:, 2] < -0.05
    assert np.abs(model.exprdirs[back_of_head]).max() < 1e-6
    for k in range(100):
        coefficients = np.zeros((1, 100), np.float32)
        coefficients[0, k] = 1.0
        assert np.abs(model.vertices(coefficients)[0] - model.v_template).max() > 1e-4, k


def test_blink_components_close_the_eyes(model):
    for component, upper, lower in ((0, (1343, 1218), (829, 995)), (1, (2453, 2494), (2278, 2359))):
        coefficients = np.zeros((1, 100), np.float32)
        coefficients[0, component] = 1.0
        closed = model.vertices(coefficients)[0]
        gap_open = np.linalg.norm(model.v_template[list(upper)].mean(0) - model.v_template[list(lower)].mean(0))
        gap_closed = np.linalg.norm(closed[list(upper)].mean(0) - closed[list(lower)].mean(0))
        assert gap_open > 0.007 and gap_closed < 1e-5


def test_keypoint_positions_are_vectorized_means_of_their_vertices(model):
    rng = np.random.default_rng(6)
    meshes = model.vertices(rng.normal(size=(4, 100)).astype(np.float32))
    keypoints = model.keypoints(meshes)
    assert keypoints.shape == (4, 21, 3)
    lid = KEYPOINT_INDEX["lid_upper_l"]
    np.testing.assert_allclose(keypoints[2, lid], meshes[2, [1343, 1218]].mean(axis=0), atol=1e-7)
    np.testing.assert_allclose(keypoint_positions(meshes[3], model.keypoint_vertices), keypoints[3], atol=1e-7)


def test_with_template_and_invalid_inputs(model):
    moved = model.with_template(model.v_template * 1.1)
    np.testing.assert_allclose(moved.vertices(np.zeros((1, 10), np.float32))[0], model.v_template * 1.1, atol=1e-6)
    with pytest.raises(ValueError, match="expression must be"):
        model.vertices(np.zeros((1, 101), np.float32))
    with pytest.raises(ValueError, match="pose must be"):
        model.vertices(np.zeros((2, 100), np.float32), np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.vertices(np.full((1, 100), np.nan, np.float32))


def test_small_models_split_components_by_flames_ratio_and_accept_explicit_counts(arrays):
    small = {**arrays, "shapedirs": np.asarray(arrays["shapedirs"])[..., :40]}
    model = FlameModel.from_arrays(small)
    assert (model.num_shape, model.num_expression) == (30, 10)
    explicit = FlameModel.from_arrays(small, num_shape=20, num_expression=5)
    assert (explicit.num_shape, explicit.num_expression) == (20, 5)
    with pytest.raises(ValueError, match="do not fit"):
        FlameModel.from_arrays(small, num_shape=30, num_expression=20)
    bad_tree = {**arrays, "kintree_table": np.array([[-1, 0, 3, 1, 1], [0, 1, 2, 3, 4]])}
    with pytest.raises(ValueError, match="parents"):
        FlameModel.from_arrays(bad_tree)


def test_a_tiny_model_in_flame_format_deforms_and_keeps_given_keypoints():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    num_vertices = len(sphere.vertices)
    rng = np.random.default_rng(7)
    regressor = np.zeros((5, num_vertices))
    for joint in range(5):
        regressor[joint, rng.choice(num_vertices, 10, replace=False)] = 0.1
    weights = np.zeros((num_vertices, 5))
    weights[:, NECK] = 1.0
    tiny = {
        "v_template": np.asarray(sphere.vertices), "f": np.asarray(sphere.faces),
        "shapedirs": rng.normal(size=(num_vertices, 3, 8)) * 1e-3, "posedirs": np.zeros((num_vertices, 3, 36)),
        "J_regressor": regressor, "weights": weights,
        "kintree_table": np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
    }
    model = FlameModel.from_arrays(tiny)
    assert (model.num_shape, model.num_expression) == (6, 2)
    assert len(model.keypoint_vertices) == 21 and all(0 <= ids[0] < num_vertices for ids in model.keypoint_vertices)
    nose = model.keypoint_vertices[KEYPOINT_INDEX["nose_tip"]][0]
    assert model.v_template[nose, 2] > 0.09  # the mean face's nose lands on the front of the sphere
    chosen = [(i,) for i in range(21)]
    explicit = FlameModel.from_arrays(tiny, keypoint_vertices=chosen)
    assert explicit.keypoint_vertices == tuple(chosen)
    assert explicit.with_template(model.v_template * 2).keypoint_vertices == tuple(chosen)
    pose = np.zeros((1, 5, 3), np.float32)
    pose[0, NECK, 1] = np.pi / 2
    turned = explicit.vertices(np.zeros((1, 2), np.float32), pose)[0]
    joint = explicit.rest_joints()[NECK]
    expected = (model.v_template - joint) @ Rotation.from_rotvec([0, np.pi / 2, 0]).as_matrix().T + joint
    np.testing.assert_allclose(turned, expected, atol=1e-6)
