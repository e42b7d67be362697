"""Mesh-sequence metrics of speech animation, as the 3D talking-head literature reports them.

* **LVE** — lip vertex error (VOCA, FaceFormer, JambaTalk): per frame, the largest L2 distance over
  the lip vertices between the predicted and the reference mesh; averaged over frames.
* **FDD** — upper-face dynamics deviation (CodeTalker, JambaTalk): per upper-face vertex, the
  standard deviation over time of its displacement from the template (its motion), compared
  between prediction and reference; the mean absolute difference.

The lip and upper-face regions are read off the mesh's 21 keypoints, so they exist on any mesh:
lip vertices lie within ``LIP_RADIUS`` face units of the mouth's keypoints (lip centres, cupid's
bow and lower-lip points, corners), the upper face is everything above the midpoint between the
eyes and the nose tip. Everything is in the meshes' own units (metres for FLAME and the portrait
mesh; reported in millimetres by ``studio eval lve``).
"""

from __future__ import annotations

import numpy as np

from studio.core.keypoints import KEYPOINT_INDEX

#: How far from the mouth's keypoints a vertex still counts as a lip vertex (face units).
LIP_RADIUS = 0.18
_MOUTH_KEYS = ("lip_upper_center", "lip_lower_center", "lip_upper_l", "lip_upper_r", "lip_lower_l",
               "lip_lower_r", "mouth_corner_l", "mouth_corner_r")


def lip_vertices(rest_face: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """Ids of the lip vertices of a mesh given in face units (V, 3) with its keypoints (21, 3)."""
    mouth = canonical[[KEYPOINT_INDEX[k] for k in _MOUTH_KEYS]]
    d2 = ((rest_face[:, None, :] - mouth[None]) ** 2).sum(-1).min(1)
    front = rest_face[:, 2] > mouth[:, 2].min() - 2 * LIP_RADIUS
    return np.flatnonzero((d2 < LIP_RADIUS ** 2) & front)


def upper_face_vertices(rest_face: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """Ids of the vertices above the midpoint between the eyes and the nose tip."""
    i = KEYPOINT_INDEX
    eyes = 0.25 * (canonical[i["lid_upper_l"]] + canonical[i["lid_lower_l"]]
                   + canonical[i["lid_upper_r"]] + canonical[i["lid_lower_r"]])
    level = 0.5 * (eyes[1] + canonical[i["nose_tip"], 1])
    return np.flatnonzero(rest_face[:, 1] > level)


def lip_vertex_error(predicted: np.ndarray, reference: np.ndarray, lips: np.ndarray) -> float:
    """LVE: mean over frames of the maximum lip-vertex L2 error. Sequences (T, V, 3)."""
    p, r = _aligned(predicted, reference)
    return float(np.linalg.norm(p[:, lips] - r[:, lips], axis=-1).max(1).mean())


def upper_face_dynamics_deviation(predicted: np.ndarray, reference: np.ndarray, template: np.ndarray,
                                  upper: np.ndarray) -> float:
    """FDD: mean over upper-face vertices of |std_t ‖ref − template‖ − std_t ‖pred − template‖|."""
    p, r = _aligned(predicted, reference)
    t = np.asarray(template)[upper]
    motion_p = np.linalg.norm(p[:, upper] - t, axis=-1).std(0)
    motion_r = np.linalg.norm(r[:, upper] - t, axis=-1).std(0)
    return float(np.abs(motion_r - motion_p).mean())


def _aligned(predicted: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(predicted, np.float64), np.asarray(reference, np.float64)
    if p.ndim != 3 or r.ndim != 3 or p.shape[1:] != r.shape[1:]:
        raise ValueError(f"the sequences do not match: predicted {p.shape}, reference {r.shape} "
                         "(both must be (T, V, 3) with the same vertices)")
    n = min(len(p), len(r))
    if n == 0:
        raise ValueError("an empty sequence")
    return p[:n], r[:n]
