"""The mean dense face, placed on 21 hand-given keypoints (the manual path of the portrait fit).

The data file ``data/mean_dense_face.json`` is written by ``tools/derive_mean_dense_face.py``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from studio.core.keypoints import MEDIAPIPE_INDICES

_DATA = Path(__file__).with_name("data") / "mean_dense_face.json"
#: Width of the Gaussian that spreads the keypoints' residuals over the dense face (face units).
BEND_WIDTH = 0.45


@cache
def mean_dense_face() -> np.ndarray:
    """The 478 FaceMesh landmarks of the mean face (478, 3), face units, head frame."""
    data = json.loads(_DATA.read_text(encoding="utf-8"))
    return np.array(data["points"], dtype=np.float64)


def place_mean_face(keypoints: np.ndarray) -> np.ndarray:
    """The mean dense face on 21 image keypoints (21, 2): landmarks (478, 3) in image coordinates
    (x right, y down, z toward the viewer) whose keypoint landmarks sit exactly on the given ones."""
    dense = mean_dense_face()
    src = dense[MEDIAPIPE_INDICES, :2] * (1.0, -1.0)  # the mean face in image axes, face units
    dst = np.asarray(keypoints, dtype=np.float64)
    # Similarity transform src → dst (Umeyama, no reflection).
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, d]) @ vt
    scale = (sig * [1.0, d]).sum() / (a ** 2).sum()
    placed = np.empty_like(dense)
    placed[:, :2] = scale * (dense[:, :2] * (1.0, -1.0) - mu_s) @ rot.T + mu_d
    placed[:, 2] = scale * dense[:, 2]
    return bend_landmarks(placed, dst, BEND_WIDTH * scale)


def bend_landmarks(landmarks: np.ndarray, keypoints: np.ndarray, width: float) -> np.ndarray:
    """Dense landmarks (478, 3) image coordinates bent so that their 21 keypoint landmarks land
    exactly on ``keypoints`` (21, 2): a Gaussian RBF (``width`` pixels) of the residuals moves the
    rest smoothly with them; depth is kept."""
    placed = np.array(landmarks, dtype=np.float64, copy=True)
    dst = np.asarray(keypoints, dtype=np.float64)
    centres = placed[MEDIAPIPE_INDICES, :2]
    residual = dst - centres
    kernel = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / width ** 2)
    weights = np.linalg.solve(kernel + 1e-9 * np.eye(len(centres)), residual)
    spread = np.exp(-((placed[:, None, :2] - centres[None]) ** 2).sum(-1) / width ** 2)
    placed[:, :2] += spread @ weights
    placed[MEDIAPIPE_INDICES, :2] = dst
    return placed
