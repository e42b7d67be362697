"""Derive the mean dense face (``studio/render/data/mean_dense_face.json``) from real photos.

The manual path of the portrait fit (21 keypoints placed by hand on a face the detector missed)
needs dense geometry for the warp: this mean of the 478 FaceMesh landmarks of scikit-image's
``astronaut`` and matplotlib's ``grace_hopper.jpg`` sample, each in its own head frame (pose
removed, face units, see :mod:`studio.render.face_fit`), symmetrized left/right.

    .venv/bin/python tools/derive_mean_dense_face.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from studio.render.contact_sheet import sample_photos
from studio.render.face_fit import fit_portrait
from studio.render.face_mesh import NUM_LANDMARKS

OUT = Path(__file__).resolve().parents[1] / "studio" / "render" / "data" / "mean_dense_face.json"


def main() -> None:
    faces = []
    for name, rgb in sample_photos().items():
        fit = fit_portrait(rgb, name=name)
        faces.append(fit.to_face(fit.landmarks))
    mean = np.mean(faces, axis=0)
    mirrored = mean * np.array([-1.0, 1.0, 1.0])
    # The landmark on the other side of the face: the closest one-to-one matching of the mirror image.
    _, partner = linear_sum_assignment(cdist(mirrored, mean))
    if not np.array_equal(partner[partner], np.arange(NUM_LANDMARKS)):
        raise SystemExit("the mirror map of the landmarks is not an involution")
    mean = 0.5 * (mean + mirrored[partner])
    mean[np.abs(mean[:, 0]) < 1e-4, 0] = 0.0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "format": "studio-mean-dense-face", "version": 1,
        "about": "Mean of MediaPipe FaceMesh's 478 landmarks in face units (head frame), from "
                 "tools/derive_mean_dense_face.py; symmetrized.",
        "mirror": partner.tolist(),
        "points": np.round(mean, 4).tolist()}, separators=(",", ":")))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
