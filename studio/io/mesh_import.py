"""Head meshes as a built-in importer of the plugin registry (kind ``"mesh"``).

FLAME models (``.pkl`` read by the restricted unpickler of :mod:`studio.io.flame_pickle`,
``.npz`` conversions), VOCA templates and OBJ/PLY/GLB/glTF/STL heads, all through
:func:`studio.render.mesh.loaders.load_head_mesh`. Registered through the same entry-point path
as any third-party plugin (see pyproject.toml).
"""

from __future__ import annotations

import os

import numpy as np

from studio.plugins.api import ImporterSpec
from studio.render.mesh.loaders import (
    FLAME_MODEL_EXTENSIONS,
    MESH_EXTENSIONS,
    load_head_mesh,
)


def load_mesh(path: str | os.PathLike, **options) -> tuple[np.ndarray, np.ndarray]:
    """The registry's ``"mesh"`` importer convention: ``(vertices (V, 3) float32, faces (F, 3))``.

    Options are those of :func:`load_head_mesh` (``keypoints_json``, ``flame_model``).
    """
    mesh = load_head_mesh(path, **options)
    return mesh.vertices, mesh.faces


def register(registry) -> None:
    registry.add(ImporterSpec(
        name="head_mesh", label="Head mesh (FLAME model, VOCA template, OBJ/PLY/GLB/glTF/STL)",
        kind="mesh", extensions=MESH_EXTENSIONS + FLAME_MODEL_EXTENSIONS, load=load_mesh,
        description="A head to animate: a FLAME model (.pkl, read without running any code from "
                    "the file, or an .npz conversion), a VOCA template in FLAME topology, or any "
                    "triangle mesh. Options: keypoints_json (21 keypoint vertex ids), flame_model "
                    "(a FLAME model for a template)."))
