"""Any head the studio can load → something the motion can drive: one interface for every kind.

:func:`load_animated_head` takes a path and picks the way the motion moves it:

=============================================  ===================================================
a photo (``.png``, ``.jpg``, …)                 the portrait's textured face mesh
                                                (:class:`~studio.render.mesh.portrait_mesh.PortraitMesh`)
a FLAME model (``.pkl``, ``.npz``)              FLAME's expression basis and joints, retargeted
                                                (:class:`~studio.render.mesh.flame_retarget.FlameRetarget`)
a VOCA-style template (``.ply``/``.obj``,       with ``flame_model``: FLAME on that template;
5023 vertices, FLAME topology)                  without: the keypoint deformer on FLAME's keypoints
any other ``.obj/.ply/.glb/.gltf/.stl``         the keypoint deformer
                                                (:class:`~studio.render.mesh.deform.KeypointDeformer`)
                                                with the keypoint vertices of ``keypoints``
=============================================  ===================================================

Each gives an :class:`AnimatedHead`: topology (faces, texture coordinates and texture when it
has them), the identity's canonical keypoints (what the generators condition on) and
``deform(frames) → (T, V, 3)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FLAME_SUFFIXES = (".pkl", ".npz")


@dataclass(frozen=True)
class AnimatedHead:
    """A head the motion drives. ``deform`` maps motion frames (T, 74) to vertices (T, V, 3)."""

    name: str
    kind: str  # "portrait", "flame", "mesh"
    faces: np.ndarray
    rest: np.ndarray  # (V, 3) the mesh as loaded
    canonical_keypoints: np.ndarray  # (21, 3) face units
    keypoint_vertices: tuple[tuple[int, ...], ...]
    deform: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    uv: np.ndarray | None = field(default=None, repr=False)
    texture: np.ndarray | None = field(default=None, repr=False)
    toward_viewer: tuple[float, float, float] = (0.0, 0.0, 1.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)


def load_animated_head(path: str | Path, *, keypoints: str | Path | None = None,
                       flame_model: str | Path | None = None, face_index: int = 0) -> AnimatedHead:
    """The head in ``path`` with its way of moving (see the module docstring). ``keypoints``: a
    JSON of 21 vertex ids for a custom mesh (for a photo: 21 keypoints in pixels, the manual fit
    path). Raises ValueError subclasses naming the file when it cannot be used."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _portrait_head(path, keypoints, face_index)
    if suffix in FLAME_SUFFIXES:
        from studio.render.mesh.loaders import load_flame_model

        return _flame_head(load_flame_model(path), path.stem)
    from studio.render.mesh.loaders import load_head_mesh

    mesh = load_head_mesh(path, keypoints_json=keypoints)
    if mesh.topology == "flame" and flame_model is not None:
        from studio.render.mesh.loaders import load_flame_model

        model = load_flame_model(flame_model).with_template(mesh.vertices, name=path.stem)
        return _flame_head(model, path.stem)
    if mesh.keypoint_vertices is None:
        raise ValueError(f"{path}: this mesh's keypoints are unknown: give a JSON of its 21 keypoint "
                         "vertex ids (--keypoints), or pick them in the studio's 3D view")
    from studio.render.mesh.deform import KeypointDeformer

    deformer = KeypointDeformer(mesh.vertices, mesh.faces, mesh.keypoint_vertices)
    frame = deformer.frame
    return AnimatedHead(path.stem, "mesh", deformer.faces, deformer.vertices, deformer.canonical,
                        deformer.keypoint_vertices, deformer.deform, mesh.uv, mesh.texture,
                        tuple(frame.axes[2]), tuple(frame.axes[1]))


def _portrait_head(path: Path, keypoints, face_index: int) -> AnimatedHead:
    from studio.render.face_fit import (
        fit_from_keypoints,
        fit_portrait,
        load_image,
        read_keypoints_json,
    )
    from studio.render.mesh.portrait_mesh import PortraitMesh

    image = load_image(path)
    if keypoints is not None:
        fit = fit_from_keypoints(image.shape[:2], read_keypoints_json(keypoints))
    else:
        fit = fit_portrait(image, face_index=face_index, name=str(path))
    mesh = PortraitMesh.from_fit(image, fit)
    return AnimatedHead(path.stem, "portrait", mesh.faces, mesh.vertices, fit.canonical_keypoints,
                        mesh.keypoint_vertices, mesh.deform, mesh.uv, mesh.texture)


def _flame_head(model, name: str) -> AnimatedHead:
    from studio.render.mesh.flame_retarget import FlameRetarget

    retarget = FlameRetarget(model)
    frame = retarget.frame
    return AnimatedHead(name, "flame", np.asarray(model.faces), np.asarray(model.v_template), retarget.canonical,
                        model.keypoint_vertices, retarget.deform, None, None,
                        tuple(frame.axes[2]), tuple(frame.axes[1]))
