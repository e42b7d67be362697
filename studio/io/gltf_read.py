"""Read the animated mesh of a glTF 2.0 asset (``.glb`` or ``.gltf``): geometry, morph targets, weights.

General-purpose tools (trimesh among them) load glTF geometry but ignore morph targets and
animations; this reader returns exactly what a morph-target export holds, so tests and tools can
rebuild every frame, ``positions + Σ_k weights[t, k] · targets[k]``. It reads the first primitive
of the mesh of the scene's first mesh node and the first animation channel that drives that node's
``weights``; accessors of any component type (normalized or not), with or without ``byteStride``,
from the GLB ``BIN`` chunk, a ``.bin`` file beside a ``.gltf`` or a base64 ``data:`` URI. Sparse
accessors and meshes other than triangle lists are refused with an error that names the file.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np

__all__ = ["frames_at_keys", "read_glb"]

_GLB_MAGIC = 0x46546C67
_CHUNK_JSON, _CHUNK_BIN = 0x4E4F534A, 0x004E4942
_COMPONENTS = {5120: np.dtype("i1"), 5121: np.dtype("u1"), 5122: np.dtype("<i2"), 5123: np.dtype("<u2"),
               5125: np.dtype("<u4"), 5126: np.dtype("<f4")}
_NORMALIZED_SCALE = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_TRIANGLES = 4


class _Asset:
    """The JSON document and its buffers, with accessor decoding."""

    def __init__(self, path: Path, document: dict, buffers: list[bytes]):
        self.path = path
        self.document = document
        self.buffers = buffers

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.path}: {message}")

    def item(self, collection: str, index) -> dict:
        items = self.document.get(collection, [])
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise self.fail(f"{collection}[{index!r}] does not exist")
        return items[index]

    def view_bytes(self, index: int) -> tuple[bytes, dict]:
        view = self.item("bufferViews", index)
        buffer = self.buffers[view.get("buffer", 0)] if view.get("buffer", 0) < len(self.buffers) else None
        if buffer is None:
            raise self.fail(f"bufferView {index} refers to a missing buffer")
        start, length = view.get("byteOffset", 0), view["byteLength"]
        if start + length > len(buffer):
            raise self.fail(f"bufferView {index} runs past the end of its buffer")
        return buffer[start:start + length], view

    def accessor(self, index: int) -> np.ndarray:
        """The accessor's elements as (count, width) — float32 for floats and normalized ints."""
        accessor = self.item("accessors", index)
        if "sparse" in accessor:
            raise self.fail(f"accessor {index} is sparse; sparse accessors are not supported")
        dtype = _COMPONENTS.get(accessor.get("componentType"))
        width = _WIDTHS.get(accessor.get("type"))
        if dtype is None or width is None:
            raise self.fail(f"accessor {index} has an unknown componentType or type")
        count = accessor["count"]
        if "bufferView" not in accessor:
            values = np.zeros((count, width), dtype=dtype)
        else:
            data, view = self.view_bytes(accessor["bufferView"])
            offset = accessor.get("byteOffset", 0)
            element = dtype.itemsize * width
            stride = view.get("byteStride", element)
            if count and offset + stride * (count - 1) + element > len(data):
                raise self.fail(f"accessor {index} does not fit its bufferView")
            values = np.ndarray((count, width), dtype=dtype, buffer=data, offset=offset,
                                strides=(stride, dtype.itemsize)).copy()
        if accessor.get("normalized"):
            scale = _NORMALIZED_SCALE.get(accessor["componentType"])
            if scale is None:
                raise self.fail(f"accessor {index} is normalized but not of an integer type")
            values = np.maximum(values.astype(np.float32) / np.float32(scale), np.float32(-1.0))
        return values


def _load(path: Path) -> _Asset:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data[:4] == struct.pack("<I", _GLB_MAGIC):
        document, binary = _split_glb(path, data)
    else:
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: neither a GLB file nor glTF JSON ({exc})") from None
        binary = None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the glTF JSON is not an object")  # noqa: TRY004 - bad file content
    version = str(document.get("asset", {}).get("version", ""))
    if not version.startswith("2."):
        raise ValueError(f"{path}: glTF version {version or '(missing)'} is not 2.x")
    buffers = []
    for index, buffer in enumerate(document.get("buffers", [])):
        uri = buffer.get("uri")
        if uri is None:
            if index != 0 or binary is None:
                raise ValueError(f"{path}: buffer {index} has no uri and no GLB BIN chunk")
            content = binary
        elif uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                raise ValueError(f"{path}: buffer {index} data URI is not base64")
            content = base64.b64decode(payload)
        else:
            file = path.parent / unquote(uri)
            try:
                content = file.read_bytes()
            except OSError as exc:
                raise OSError(f"{path}: cannot read buffer {index} from {file}: {exc.strerror or exc}") from None
        if len(content) < buffer.get("byteLength", 0):
            raise ValueError(f"{path}: buffer {index} holds {len(content)} bytes, fewer than its byteLength "
                             f"{buffer.get('byteLength')}")
        buffers.append(content)
    return _Asset(path, document, buffers)


def _split_glb(path: Path, data: bytes) -> tuple[dict, bytes | None]:
    if len(data) < 20:
        raise ValueError(f"{path}: GLB file too short")
    _, version, length = struct.unpack_from("<III", data, 0)
    if version != 2:
        raise ValueError(f"{path}: GLB container version {version}, expected 2")
    if length != len(data):
        raise ValueError(f"{path}: GLB header says {length} bytes, the file has {len(data)}")
    position, document, binary = 12, None, None
    while position + 8 <= len(data):
        chunk_length, chunk_type = struct.unpack_from("<II", data, position)
        chunk = data[position + 8:position + 8 + chunk_length]
        if len(chunk) != chunk_length or chunk_length % 4:
            raise ValueError(f"{path}: GLB chunk at byte {position} is truncated or not 4-byte aligned")
        if document is None:
            if chunk_type != _CHUNK_JSON:
                raise ValueError(f"{path}: the first GLB chunk is not JSON")
            try:
                document = json.loads(chunk.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}: the GLB JSON chunk does not parse ({exc})") from None
        elif chunk_type == _CHUNK_BIN and binary is None:
            binary = chunk
        position += 8 + chunk_length
    if document is None:
        raise ValueError(f"{path}: GLB file without a JSON chunk")
    return document, binary


def read_glb(path: str | os.PathLike) -> dict:
    """The animated mesh of a ``.glb``/``.gltf`` file as plain arrays.

    Keys: ``name``; ``positions`` (V, 3) float32 (the base mesh); ``faces`` (F, 3) int64;
    ``normals`` (V, 3) or None; ``uv`` (V, 2) or None, converted back to the OBJ convention
    (``v = 1 − t``); ``targets`` (K, V, 3) position displacements; ``target_normals`` (K, V, 3) or
    None; ``target_names`` (K names: ``mesh.extras.targetNames`` or ``target_<k>``);
    ``default_weights`` (K,) (``node.weights``, else ``mesh.weights``, else zeros); ``times`` (T,)
    seconds and ``weights`` (T, K) of the animation driving the node's weights (empty when none)
    and their ``interpolation``; ``node_rotation`` (x, y, z, w), ``node_translation`` and
    ``node_scale``: the node's static transform; ``channels``: every animation channel of the node,
    ``path → (times, values, interpolation)`` (``"weights"``, ``"rotation"``, ``"translation"``,
    ``"scale"``); ``texture`` (H × W × C uint8 decoded base-colour image) or None; ``document``
    (the glTF JSON). :func:`frames_at_keys` rebuilds the posed vertices of every key.
    """
    path = Path(path)
    asset = _load(path)
    doc = asset.document
    nodes = doc.get("nodes", [])
    scene_index = doc.get("scene", 0)
    scenes = doc.get("scenes", [])
    candidates = scenes[scene_index].get("nodes", []) if scenes and scene_index < len(scenes) else range(len(nodes))
    node_index = _first_mesh_node(asset, list(candidates))
    node = nodes[node_index]
    mesh = asset.item("meshes", node["mesh"])
    primitives = mesh.get("primitives", [])
    if not primitives:
        raise asset.fail(f"mesh {node['mesh']} has no primitives")
    primitive = primitives[0]
    if primitive.get("mode", _TRIANGLES) != _TRIANGLES:
        raise asset.fail(f"mesh {node['mesh']} is not a triangle list (mode {primitive.get('mode')})")
    attributes = primitive.get("attributes", {})
    if "POSITION" not in attributes:
        raise asset.fail(f"mesh {node['mesh']} has no POSITION attribute")
    positions = asset.accessor(attributes["POSITION"]).astype(np.float32)
    num_vertices = len(positions)
    if "indices" in primitive:
        indices = asset.accessor(primitive["indices"]).ravel().astype(np.int64)
    else:
        indices = np.arange(num_vertices, dtype=np.int64)
    if indices.size % 3 or (indices.size and (indices.min() < 0 or indices.max() >= num_vertices)):
        raise asset.fail("triangle indices are not a multiple of 3 or point outside the vertices")
    normals = asset.accessor(attributes["NORMAL"]).astype(np.float32) if "NORMAL" in attributes else None
    uv = None
    if "TEXCOORD_0" in attributes:
        st = asset.accessor(attributes["TEXCOORD_0"]).astype(np.float32)
        uv = np.stack([st[:, 0], 1.0 - st[:, 1]], axis=1).astype(np.float32)
    targets_json = primitive.get("targets", [])
    targets = np.zeros((len(targets_json), num_vertices, 3), dtype=np.float32)
    target_normals = None
    if targets_json and all("NORMAL" in t for t in targets_json):
        target_normals = np.zeros_like(targets)
    for k, target in enumerate(targets_json):
        if "POSITION" in target:
            targets[k] = asset.accessor(target["POSITION"])
        if target_normals is not None:
            target_normals[k] = asset.accessor(target["NORMAL"])
    num_targets = len(targets_json)
    names = mesh.get("extras", {}).get("targetNames")
    if not (isinstance(names, list) and len(names) == num_targets and all(isinstance(n, str) for n in names)):
        names = [f"target_{k}" for k in range(num_targets)]
    default = node.get("weights", mesh.get("weights", [0.0] * num_targets))
    channels = _node_animation(asset, node_index, num_targets)
    empty = (np.zeros(0, dtype=np.float32), np.zeros((0, num_targets), dtype=np.float32), None)
    times, weights, interpolation = channels.get("weights", empty)
    return {
        "name": mesh.get("name", node.get("name", "")),
        "positions": positions,
        "faces": indices.reshape(-1, 3),
        "normals": normals,
        "uv": uv,
        "targets": targets,
        "target_normals": target_normals,
        "target_names": list(names),
        "default_weights": np.asarray(default, dtype=np.float32),
        "times": times,
        "weights": weights,
        "interpolation": interpolation,
        "node_rotation": np.asarray(node.get("rotation", [0.0, 0.0, 0.0, 1.0]), dtype=np.float32),
        "node_translation": np.asarray(node.get("translation", [0.0, 0.0, 0.0]), dtype=np.float32),
        "node_scale": np.asarray(node.get("scale", [1.0, 1.0, 1.0]), dtype=np.float32),
        "channels": channels,
        "texture": _base_color_texture(asset, primitive),
        "document": doc,
    }


def _first_mesh_node(asset: _Asset, candidates: list[int]) -> int:
    nodes = asset.document.get("nodes", [])
    pending = list(candidates)
    while pending:
        index = pending.pop(0)
        node = asset.item("nodes", index)
        if "mesh" in node:
            return index
        pending.extend(node.get("children", []))
    for index, node in enumerate(nodes):
        if "mesh" in node:
            return index
    raise asset.fail("no node instantiates a mesh")


def _node_animation(asset: _Asset, node_index: int, num_targets: int) -> dict[str, tuple]:
    """``path → (times, values, interpolation)`` of the first animation channels driving the node."""
    widths = {"weights": num_targets, "rotation": 4, "translation": 3, "scale": 3}
    found: dict[str, tuple] = {}
    for animation in asset.document.get("animations", []):
        for channel in animation.get("channels", []):
            target = channel.get("target", {})
            channel_path = target.get("path")
            if target.get("node") != node_index or channel_path not in widths or channel_path in found:
                continue
            sampler = animation["samplers"][channel["sampler"]]
            times = asset.accessor(sampler["input"]).ravel().astype(np.float32)
            output = asset.accessor(sampler["output"]).astype(np.float32).ravel()
            interpolation = sampler.get("interpolation", "LINEAR")
            width = widths[channel_path]
            per_key = 3 * width if interpolation == "CUBICSPLINE" else width
            if width == 0 or output.size != times.size * per_key:
                raise asset.fail(f"the {channel_path} animation has {output.size} values for {times.size} "
                                 f"keys of {width} values")
            values = output.reshape(times.size, per_key)
            if interpolation == "CUBICSPLINE":  # in-tangents, values, out-tangents per key
                values = values[:, width:2 * width]
            found[channel_path] = (times, np.ascontiguousarray(values), interpolation)
    return found


def _base_color_texture(asset: _Asset, primitive: dict) -> np.ndarray | None:
    if "material" not in primitive:
        return None
    material = asset.item("materials", primitive["material"])
    info = material.get("pbrMetallicRoughness", {}).get("baseColorTexture")
    if info is None:
        return None
    texture = asset.item("textures", info["index"])
    if "source" not in texture:
        return None
    image = asset.item("images", texture["source"])
    if "bufferView" in image:
        data, _ = asset.view_bytes(image["bufferView"])
    elif image.get("uri", "").startswith("data:"):
        data = base64.b64decode(image["uri"].partition(",")[2])
    else:
        try:
            data = (asset.path.parent / unquote(image["uri"])).read_bytes()
        except OSError as exc:
            raise OSError(f"{asset.path}: cannot read the texture image: {exc.strerror or exc}") from None
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise asset.fail("the base-colour texture image does not decode")
    if decoded.ndim == 2:
        return decoded[:, :, None]
    order = [2, 1, 0, 3] if decoded.shape[2] == 4 else [2, 1, 0]
    return np.ascontiguousarray(decoded[:, :, order])


def frames_at_keys(data: dict) -> np.ndarray:
    """Vertices (T, V, 3) of a :func:`read_glb` result at its animation keys, as a client shows them.

    ``node_transform · (positions + Σ_k weights[t, k] · targets[k])``, with the node's animated
    rotation/translation where present (their keys must be the weights' keys) and its static
    transform otherwise. Without a weights animation the result is the one static frame.
    """
    positions, targets = data["positions"], data["targets"]
    channels = data["channels"]
    if "weights" in channels:
        times, weights = data["times"], data["weights"]
    else:
        times, weights = np.zeros(1, dtype=np.float32), data["default_weights"][None]
    count = len(weights)
    shapes = positions + (weights @ targets.reshape(len(targets), -1)).reshape(count, *positions.shape) \
        if len(targets) else np.broadcast_to(positions, (count, *positions.shape))

    def keyed(path: str, static: np.ndarray) -> np.ndarray:
        if path not in channels:
            return np.broadcast_to(static, (count, static.size))
        channel_times, values, _ = channels[path]
        if "weights" in channels and (channel_times.shape != times.shape or np.any(channel_times != times)):
            raise ValueError(f"the {path} animation has other keys than the weights animation")
        if "weights" not in channels:
            return values[:1]
        return values

    rotations = keyed("rotation", data["node_rotation"]).astype(np.float64)
    rotations = rotations / np.linalg.norm(rotations, axis=1, keepdims=True)
    x, y, z, w = rotations.T
    matrices = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2) * keyed("scale", data["node_scale"])[:, None, :]
    translations = keyed("translation", data["node_translation"])
    posed = np.matmul(shapes, matrices.transpose(0, 2, 1).astype(np.float32)) + translations[:, None, :]
    return posed.astype(np.float32)
