"""FLAME model files read safely: a restricted unpickler, ``.npz`` conversions, shape checks.

The FLAME head model (``generic_model.pkl``, ``male_model.pkl``, ``female_model.pkl`` of FLAME
2019/2020/2023) ships as a Python pickle. The older files are Python-2 pickles whose arrays are
wrapped in `chumpy <https://github.com/mattloper/chumpy>`_ objects (``chumpy.ch.Ch`` holding its
array in the state entry ``'x'``, occasionally a ``chumpy.reordering`` view of one) and whose joint
regressor is a ``scipy.sparse`` CSC matrix; FLAME 2023 files hold plain numpy arrays. chumpy does
not install beside numpy 2, and unpickling runs whatever callables a file names, so a model file
downloaded from anywhere must never reach :func:`pickle.load`.

:class:`RestrictedUnpickler` resolves only an explicit allow-list of globals:

* numpy array and scalar reconstruction (``_reconstruct`` — only of ``numpy.ndarray`` —,
  ``ndarray``, ``dtype``, ``scalar``, ``_frombuffer``; under ``numpy.core`` or ``numpy._core``);
* ``copyreg._reconstructor`` (``copy_reg`` in Python-2 files), only to build one of the stand-in
  classes below on ``object``;
* ``builtins.object``, ``set`` and ``frozenset`` (``__builtin__`` in Python 2; chumpy's state holds
  a set), and ``_codecs.encode`` only for latin-1 text (how Python 3 writes ``bytes`` at pickle
  protocols below 3);
* any ``chumpy`` class → :class:`ChumpyStandIn`, which only keeps its state; :func:`plain_value`
  turns it into a numpy array afterwards (``Ch`` → ``state['x']``; ``Select``, ``Reshape`` and
  ``transpose`` views are evaluated on their source array; anything else is refused);
* the ``scipy.sparse`` CSC/CSR/COO matrix and array classes → :class:`SparseStandIn`, which
  keeps the index arrays and becomes a dense numpy array after checking them.

Every other global — ``os.system``, ``builtins.eval``, ``subprocess.Popen``, even
``copyreg._reconstructor`` asked for another class — raises :class:`UnsafeModelFileError`
naming the file and the global, before anything of it runs.

:func:`load_flame_arrays` reads a ``.pkl`` this way (or an ``.npz`` conversion with
``allow_pickle=False``), and returns the seven FLAME arrays as plain numpy arrays with checked and
normalized shapes (see :data:`FLAME_KEYS`). Files above :data:`MAX_MODEL_FILE_BYTES`, junk that is
not a pickle, truncated files, missing keys, wrong shapes and NaNs raise :class:`FlameFileError`
(a ``ValueError``) naming the file and the problem.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse

try:  # numpy ≥ 2 (``numpy.core`` is a deprecated alias there)
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # pragma: no cover - numpy 1.26
    from numpy.core.multiarray import scalar as _numpy_scalar

from studio.core.safe_io import load_npz

__all__ = [
    "FLAME_KEYS",
    "MAX_MODEL_FILE_BYTES",
    "ChumpyStandIn",
    "FlameFileError",
    "RestrictedUnpickler",
    "SparseStandIn",
    "UnsafeModelFileError",
    "load_flame_arrays",
    "normalize_flame_arrays",
    "plain_value",
    "restricted_load",
]

#: Model files above this size are refused unread (FLAME 2020's generic model is about 90 MB).
MAX_MODEL_FILE_BYTES = 1 << 30
#: A dense array built from a sparse matrix of a model file may hold at most this many entries.
MAX_DENSE_ENTRIES = 50_000_000
#: chumpy views nested deeper than this are refused (a real file nests one or two).
MAX_CHUMPY_DEPTH = 32

#: The arrays every FLAME model provides, with their shapes after :func:`normalize_flame_arrays`
#: (V vertices, F triangles, J joints, K shape + expression components, P pose-corrective inputs).
FLAME_KEYS: dict[str, str] = {
    "v_template": "(V, 3) float64 — the neutral template mesh, metres",
    "shapedirs": "(V, 3, K) float64 — identity shape then expression blendshapes",
    "posedirs": "(V, 3, P) float64 — pose-corrective blendshapes, P = 9·(J−1)",
    "J_regressor": "(J, V) float64 — joint locations as weighted vertex sums (dense)",
    "weights": "(V, J) float64 — linear-blend-skinning weights",
    "kintree_table": "(2, J) int64 — parent of each joint (root: −1) over the joint ids",
    "f": "(F, 3) int64 — triangles, vertex indices",
}


class FlameFileError(ValueError):
    """A FLAME model file cannot be used; the message names the file and the problem."""


class UnsafeModelFileError(FlameFileError):
    """A model pickle names a global outside the allow-list; nothing of it was executed."""


# --- stand-ins for the classes a FLAME pickle instantiates ----------------------------------

class _StandIn:
    """A harmless placeholder for a class of a model pickle: it only records what it is given."""

    source_module = ""
    source_name = ""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: dict = {}

    def __setstate__(self, state: object) -> None:
        # ``(dict_state, slot_state)`` when the class had __slots__; either part may be None.
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"{self.qualified_name()} expects a dict as its state, got {type(state).__name__}")
        self.state = state

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.source_module}.{cls.source_name}"


class ChumpyStandIn(_StandIn):
    """Stands in for a chumpy class (``chumpy.ch.Ch`` and its views) while unpickling."""


class SparseStandIn(_StandIn):
    """Stands in for a ``scipy.sparse`` CSC/CSR/COO matrix or array while unpickling."""


_stand_in_classes: dict[tuple[str, str], type[_StandIn]] = {}


def _stand_in(base: type[_StandIn], module: str, name: str) -> type[_StandIn]:
    key = (module, name)
    if key not in _stand_in_classes:
        _stand_in_classes[key] = type(
            f"StandIn_{name}", (base,), {"source_module": module, "source_name": name})
    return _stand_in_classes[key]


def _is_stand_in_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, _StandIn) and value in _stand_in_classes.values()


_SPARSE_MODULES = frozenset({
    "scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
    "scipy.sparse._csr", "scipy.sparse.coo", "scipy.sparse._coo",
})
_SPARSE_NAMES = frozenset({"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"})


# --- the allowed callables, each checking its arguments ---------------------------------------

def _safe_reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {subtype!r} refused: only numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _safe_frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    dtype = np.dtype(dtype)  # type: ignore[call-overload]
    if dtype.hasobject:
        raise pickle.UnpicklingError("numpy _frombuffer of an object dtype refused")
    array = np.frombuffer(buffer, dtype=dtype)  # type: ignore[arg-type]
    if order == "F":
        return array.reshape(shape, order="F")  # type: ignore[call-overload]
    return array.reshape(shape)  # type: ignore[call-overload]


def _safe_latin1_encode(text: object, encoding: object = "utf-8", errors: object = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode refused for encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _scalar(dtype: object, data: object = None) -> object:
    return _numpy_scalar(dtype, data) if data is not None else _numpy_scalar(dtype)


_NUMPY_GLOBALS: dict[str, object] = {
    "_reconstruct": _safe_reconstruct,
    "scalar": _scalar,
    "_frombuffer": _safe_frombuffer,
}
_NUMPY_MODULES = {
    "numpy.core.multiarray": ("_reconstruct", "scalar"),
    "numpy._core.multiarray": ("_reconstruct", "scalar"),
    "numpy.core.numeric": ("_frombuffer",),
    "numpy._core.numeric": ("_frombuffer",),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals of the module docstring.

    ``source`` names the file in error messages. Python-2 strings decode as latin-1, which is
    how numpy's pickled array bytes survive the move to Python 3.
    """

    def __init__(self, file, *, source: str | os.PathLike = "<model file>") -> None:
        super().__init__(file, encoding="latin1")
        self.source = os.fspath(source)

    def find_class(self, module: str, name: str) -> object:
        if module in _NUMPY_MODULES and name in _NUMPY_MODULES[module]:
            return _NUMPY_GLOBALS[name]
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module in ("builtins", "__builtin__") and name in ("object", "set", "frozenset"):
            return {"object": object, "set": set, "frozenset": frozenset}[name]
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return self._reconstructor
        if module == "_codecs" and name == "encode":
            return _safe_latin1_encode
        if (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier():
            return _stand_in(ChumpyStandIn, module, name)
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return _stand_in(SparseStandIn, module, name)
        raise UnsafeModelFileError(
            f"{self.source}: refused to load: the pickle asks for {module}.{name}, which is not "
            "on the allow-list of FLAME model files (numpy arrays, chumpy and scipy.sparse "
            "matrices); nothing from the file was run")

    def _reconstructor(self, cls: object, base: object, state: object) -> object:
        """``copyreg._reconstructor`` limited to building a stand-in on ``object``."""
        if not _is_stand_in_class(cls) or base is not object or state is not None:
            described = getattr(cls, "__qualname__", repr(cls))
            raise UnsafeModelFileError(
                f"{self.source}: refused to load: copyreg._reconstructor asked to build "
                f"{described!r} on {getattr(base, '__qualname__', repr(base))!r}; only chumpy and "
                "scipy.sparse stand-ins are allowed; nothing from the file was run")
        return object.__new__(cls)  # type: ignore[arg-type]

    def persistent_load(self, pid: object) -> object:
        raise UnsafeModelFileError(f"{self.source}: refused to load: the pickle uses persistent ids")


# --- converting stand-ins to plain numpy --------------------------------------------------------

def _chumpy_value(obj: ChumpyStandIn, source: str, depth: int) -> np.ndarray:
    if depth > MAX_CHUMPY_DEPTH:
        raise FlameFileError(f"{source}: chumpy objects nested deeper than {MAX_CHUMPY_DEPTH}")
    state = getattr(obj, "state", {})
    kind = obj.source_name
    if "x" in state and kind in ("Ch", "ChHandle"):
        return _as_numeric(plain_value(state["x"], source, depth + 1), source, obj.qualified_name())
    if "a" in state and kind in ("Select", "Reshape", "transpose"):
        base = _as_numeric(plain_value(state["a"], source, depth + 1), source, obj.qualified_name())
        try:
            if kind == "Select":
                result = base.ravel()[np.asarray(state["idxs"], dtype=np.int64)]
                shape = state.get("preferred_shape")
                return result.reshape(shape) if shape is not None else result
            if kind == "Reshape":
                return base.reshape(state["newshape"])
            return np.transpose(base, state.get("axes"))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise FlameFileError(f"{source}: cannot evaluate the chumpy {kind} view: {exc}") from None
    if "x" in state and not any(k in state for k in ("a", "b")):
        return _as_numeric(plain_value(state["x"], source, depth + 1), source, obj.qualified_name())
    raise FlameFileError(
        f"{source}: holds a chumpy {obj.qualified_name()} object without a stored array; only "
        "Ch arrays and Select/Reshape/transpose views of them can be read without chumpy")


def _sparse_value(obj: SparseStandIn, source: str) -> np.ndarray:
    state = getattr(obj, "state", {})
    shape = state.get("_shape", state.get("shape"))
    name = obj.qualified_name()
    try:
        shape = tuple(int(n) for n in shape)  # type: ignore[union-attr]
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"shape {shape}")
        if shape[0] * shape[1] > MAX_DENSE_ENTRIES:
            raise ValueError(f"shape {shape} is too large to hold densely")
        data = np.asarray(state["data"])
        if obj.source_name.startswith("coo"):
            rows = state["row"] if "row" in state else state["coords"][0]
            cols = state["col"] if "col" in state else state["coords"][1]
            matrix = scipy.sparse.coo_matrix((data, (np.asarray(rows), np.asarray(cols))), shape=shape)
        else:
            build = scipy.sparse.csc_matrix if obj.source_name.startswith("csc") else scipy.sparse.csr_matrix
            matrix = build((data, np.asarray(state["indices"]), np.asarray(state["indptr"])), shape=shape)
        matrix.check_format(full_check=True)
        return np.asarray(matrix.toarray())
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise FlameFileError(f"{source}: the sparse matrix {name} in the file is damaged: {exc}") from None


def _as_numeric(value: object, source: str, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.hasobject or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise FlameFileError(f"{source}: {what} does not hold numbers (dtype {array.dtype})")
    return array


def plain_value(value: object, source: str = "<model file>", depth: int = 0) -> object:
    """``value`` with every stand-in replaced: chumpy → ndarray, sparse → dense ndarray.

    Dicts, lists and tuples are converted element by element; other values are returned as is.
    """
    if depth > MAX_CHUMPY_DEPTH:
        raise FlameFileError(f"{source}: values nested deeper than {MAX_CHUMPY_DEPTH}")
    if isinstance(value, ChumpyStandIn):
        return _chumpy_value(value, source, depth)
    if isinstance(value, SparseStandIn):
        return _sparse_value(value, source)
    if isinstance(value, dict):
        return {key: plain_value(item, source, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item, source, depth + 1) for item in value)
    return value


# --- reading files ----------------------------------------------------------------------------

def _checked_size(path: Path) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FlameFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise FlameFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise FlameFileError(f"{path}: not a file")
    if size > MAX_MODEL_FILE_BYTES:
        raise FlameFileError(
            f"{path}: {size} bytes is above the limit of {MAX_MODEL_FILE_BYTES} bytes for a model file")
    if size == 0:
        raise FlameFileError(f"{path}: the file is empty")
    return size


_PICKLE_PROTOCOL_2_START = 0x80  # the PROTO opcode opening every pickle of protocol 2 or later
_PICKLE_PROTOCOL_0_STARTS = (b"(", b"}", b"]", b"c", b")")  # MARK, EMPTY_DICT/LIST/TUPLE, GLOBAL


def restricted_load(path: str | os.PathLike) -> object:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` and convert the stand-ins (see module docs).

    Raises :class:`UnsafeModelFileError` for a global outside the allow-list and
    :class:`FlameFileError` for anything else that is wrong with the file.
    """
    path = Path(path)
    _checked_size(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlameFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if data[0] != _PICKLE_PROTOCOL_2_START and data[:1] not in _PICKLE_PROTOCOL_0_STARTS:
        raise FlameFileError(f"{path}: not a pickle file (FLAME models are Python pickles)")
    try:
        raw = RestrictedUnpickler(io.BytesIO(data), source=path).load()
    except FlameFileError:
        raise
    except RecursionError:
        raise FlameFileError(f"{path}: the pickle nests too deeply") from None
    except MemoryError:
        raise FlameFileError(f"{path}: the pickle asks for more memory than is available") from None
    except EOFError:
        raise FlameFileError(f"{path}: the file ends early (truncated?)") from None
    except Exception as exc:  # noqa: BLE001 - damaged pickles raise many kinds; none may crash
        raise FlameFileError(f"{path}: not a readable model pickle ({type(exc).__name__}: {exc})") from None
    return plain_value(raw, str(path))


def load_flame_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The seven FLAME arrays of a ``.pkl`` model or its ``.npz`` conversion, checked and normalized.

    Returns a plain dict with exactly the keys of :data:`FLAME_KEYS`; other entries of the file
    (``J``, ``bs_style``…) are dropped. See :func:`normalize_flame_arrays` for the shapes.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        _checked_size(path)
        try:
            raw: object = load_npz(path, max_bytes=4 * MAX_MODEL_FILE_BYTES)
        except ValueError as exc:
            raise FlameFileError(f"{path}: {exc}") from None
    elif suffix in (".pkl", ".pickle"):
        raw = restricted_load(path)
    else:
        raise FlameFileError(f"{path}: unknown FLAME model extension {suffix or '(none)'!r}; "
                             "expected .pkl or .npz")
    if not isinstance(raw, Mapping):
        raise FlameFileError(f"{path}: holds a {type(raw).__name__}, not a dict of FLAME arrays")
    return normalize_flame_arrays(raw, source=str(path))


def _float_array(arrays: Mapping, key: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(arrays[key])
    except KeyError:
        raise FlameFileError(f"{source}: the key {key!r} is missing (a FLAME model has "
                             f"{', '.join(FLAME_KEYS)})") from None
    if array.dtype.hasobject or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise FlameFileError(f"{source}: {key} does not hold numbers (dtype {array.dtype})")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise FlameFileError(f"{source}: {key} contains NaN or infinite values")
    return array


def _shape_error(source: str, key: str, want: str, array: np.ndarray) -> FlameFileError:
    return FlameFileError(f"{source}: {key} has shape {array.shape}, expected {want}")


def normalize_flame_arrays(arrays: Mapping, source: str = "<model>") -> dict[str, np.ndarray]:
    """Check and normalize the FLAME arrays of ``arrays`` (see :data:`FLAME_KEYS`).

    ``shapedirs`` and ``posedirs`` may also come flattened, ``(3V, K)``, and ``posedirs`` as
    ``(P, 3V)`` (the layout of PyTorch ports); ``J_regressor`` may be a ``scipy.sparse`` matrix;
    the root parent in ``kintree_table`` may be ``4294967295`` (unsigned −1) or −1.
    """
    v_template = _float_array(arrays, "v_template", source)
    if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] < 3:
        raise _shape_error(source, "v_template", "(V, 3) with V ≥ 3", v_template)
    num_vertices = v_template.shape[0]

    shapedirs = _float_array(arrays, "shapedirs", source)
    if shapedirs.ndim == 2 and shapedirs.shape[0] == 3 * num_vertices:
        shapedirs = shapedirs.reshape(num_vertices, 3, -1)
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_vertices, 3) or shapedirs.shape[2] < 1:
        raise _shape_error(source, "shapedirs", f"({num_vertices}, 3, K)", shapedirs)

    regressor = arrays.get("J_regressor") if isinstance(arrays, Mapping) else None
    if scipy.sparse.issparse(regressor):
        arrays = {**arrays, "J_regressor": regressor.toarray()}  # type: ignore[union-attr]
    j_regressor = _float_array(arrays, "J_regressor", source)
    if j_regressor.ndim != 2 or j_regressor.shape[1] != num_vertices or j_regressor.shape[0] < 1:
        raise _shape_error(source, "J_regressor", f"(J, {num_vertices})", j_regressor)
    num_joints = j_regressor.shape[0]

    posedirs = _float_array(arrays, "posedirs", source)
    if posedirs.ndim == 2 and posedirs.shape[0] == 3 * num_vertices:
        posedirs = posedirs.reshape(num_vertices, 3, -1)
    elif posedirs.ndim == 2 and posedirs.shape[1] == 3 * num_vertices:
        posedirs = posedirs.reshape(-1, num_vertices, 3).transpose(1, 2, 0)
    if posedirs.ndim != 3 or posedirs.shape[:2] != (num_vertices, 3):
        raise _shape_error(source, "posedirs", f"({num_vertices}, 3, P)", posedirs)

    weights = _float_array(arrays, "weights", source)
    if weights.shape != (num_vertices, num_joints):
        raise _shape_error(source, "weights", f"({num_vertices}, {num_joints})", weights)

    kintree = _float_array(arrays, "kintree_table", source)
    if kintree.shape != (2, num_joints) or np.any(kintree != np.round(kintree)):
        raise _shape_error(source, "kintree_table", f"(2, {num_joints}) integers", kintree)
    kintree = kintree.astype(np.int64)
    kintree[0, (kintree[0] < 0) | (kintree[0] >= 2**31)] = -1
    if np.any(kintree[0] >= num_joints):
        raise FlameFileError(f"{source}: kintree_table names a parent joint ≥ {num_joints}")

    faces = _float_array(arrays, "f", source)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] < 1 or np.any(faces != np.round(faces)):
        raise _shape_error(source, "f", "(F, 3) integers", faces)
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= num_vertices:
        raise FlameFileError(f"{source}: f indexes vertices outside 0…{num_vertices - 1}")

    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces,
    }
