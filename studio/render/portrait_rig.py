"""Motion frames → where every dense landmark of a fitted portrait goes (the 2D renderer's geometry).

The 21 keypoints move by the motion space's rule ``x = s · (c · R + δ) + t``. The 478 dense
landmarks follow them: each landmark's offset is a weighted mix of the keypoints' offsets
(normalized Gaussian weights in the canonical face, so the offsets fade out away from the
keypoints), with two cuts — keypoints of the lower lip and jaw do not pull points above the lips'
seam and those of the upper lip do not pull points below it; the lids' keypoints likewise stay on
their side of each eye — so opening the jaw parts the lips instead of stretching a membrane
across the mouth. A keypoint's own landmark moves exactly as the keypoint does.

Head turns: FaceMesh's outermost rings of landmarks sit on the sides of the face, seen at a grazing
angle, so a rigid rotation of the dense face moves them very unevenly — a yaw toward the camera
stretches the photo's thin foreshortened band there several-fold (streaks), a yaw away folds it.
So within ``RELAX_RINGS`` rings of the outline (keypoint landmarks excepted) the displacement that
pose causes is replaced by the harmonic interpolation (cotangent weights on the photo's face) of
the displacements of the outline and of the inner face: the change is spread evenly across the
band, and pose-free frames (the photo itself, expressions) are untouched.

Blinks (``eye.blink_l``/``_r``) bring each upper-lid margin point down onto the lid's closing
line (the lower margin, raised a little), the lower margin up to it, and the lid skin above with
them, fading toward the brow; at 1 the margins meet.

Everything is vectorized over frames; nothing here touches pixels.
"""

from __future__ import annotations

import numpy as np

from studio.core.keypoints import KEYPOINT_INDEX, MEDIAPIPE_INDICES, NUM_KEYPOINTS
from studio.core.motion import (
    CHANNEL_INDEX,
    EXP,
    NEUTRAL_FRAME,
    ROTATION,
    SCALE,
    TRANSLATION,
    rotation_matrices,
)
from studio.render import face_mesh as fm
from studio.render.face_fit import FaceFit

#: Reach of a keypoint's pull on the dense face (face units; the eyes are 1 apart).
PULL_WIDTH = 0.28
#: A keypoint's weight at this distance equals the weight of "staying put": offsets fade beyond.
PULL_REACH = 0.55
#: Reach of a blink's pull on the lid skin above and below the margins (face units).
LID_WIDTH = 0.09
#: Rings of landmarks inside the face outline whose pose displacement is relaxed (see above).
RELAX_RINGS = 3
#: Where a closed lid's margins meet, from the lower margin (0) to the upper one (1).
LID_CLOSING_LINE = 0.2

_UPPER_LIP_KEYS = ("lip_upper_center", "lip_upper_l", "lip_upper_r")
_LOWER_LIP_KEYS = ("lip_lower_center", "lip_lower_l", "lip_lower_r", "chin")
_EYES = (  # (upper margin, lower margin, upper-lid key, lower-lid key, blink channel)
    (fm.EYE_R_UPPER, fm.EYE_R_LOWER, "lid_upper_r", "lid_lower_r", "eye.blink_r"),
    (fm.EYE_L_UPPER, fm.EYE_L_LOWER, "lid_upper_l", "lid_lower_l", "eye.blink_l"),
)


class PortraitRig:
    """The dense geometry of one fitted portrait, driven by motion frames."""

    def __init__(self, fit: FaceFit):
        self.fit = fit
        self.face = fit.to_face(fit.landmarks)  # (478, 3) the photo's landmarks in face units
        self.weights = _pull_weights(self.face)  # (478, 21)
        # The canonical dense face: the photo's landmarks with its own expression (parted lips) taken off.
        self.canonical = self.face - self.weights @ fit.rest_offsets
        self._lids = [_lid_pull(self.canonical, upper, lower) for upper, lower, *_ in _EYES]
        self._band, self._known, self._relax = _relaxation(self.canonical)

    def points(self, frames: np.ndarray) -> np.ndarray:
        """Dense landmarks (T, 478, 3) in image coordinates for motion frames (T, 74)."""
        return self.fit.to_image(self.face_points(frames))

    def face_points(self, frames: np.ndarray) -> np.ndarray:
        """Dense landmarks (T, 478, 3) in face units (the head frame) for motion frames (T, 74)."""
        m = np.atleast_2d(np.asarray(frames, dtype=np.float64))
        delta = m[:, EXP].reshape(len(m), NUM_KEYPOINTS, 3)
        offsets = np.einsum("nk,tkd->tnd", self.weights, delta)
        for (*_, channel), moves in zip(_EYES, self._lids):
            blink = np.clip(m[:, CHANNEL_INDEX[channel]], 0.0, 1.0)
            offsets += blink[:, None, None] * moves[None]
        rot = rotation_matrices(m[:, ROTATION.start], m[:, ROTATION.start + 1], m[:, ROTATION.start + 2])
        scale = m[:, SCALE, None, None]
        posed = scale * np.einsum("nj,tij->tni", self.canonical, rot) + m[:, None, TRANSLATION]
        moved = posed[:, self._known] - self.canonical[self._known]
        posed[:, self._band] = self.canonical[self._band] + np.einsum("bk,tkd->tbd", self._relax, moved)
        return posed + scale * offsets

    def rest_frame(self) -> np.ndarray:
        """The motion frame (74,) that gives back the photo: its own expression, no pose change."""
        frame = NEUTRAL_FRAME.astype(np.float64).copy()
        frame[EXP] = self.fit.rest_offsets.reshape(-1)
        return frame


def normalized_pull(kernel: np.ndarray) -> np.ndarray:
    """Weights (N, 21) from the keypoints' Gaussian pulls ``exp(−d² / PULL_WIDTH²)`` (cut where a
    keypoint may not pull): each pull over their sum plus the pull of "staying put" (a keypoint at
    ``PULL_REACH``), so offsets fade away from the keypoints. Shared with the mesh deformer."""
    stay = np.exp(-PULL_REACH ** 2 / PULL_WIDTH ** 2)
    return kernel / (kernel.sum(1, keepdims=True) + stay)


def _relaxation(face: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The band of landmarks whose pose displacement is relaxed, the landmarks that keep theirs,
    and the (band, known) matrix giving the band's displacement as the harmonic interpolation of
    the known ones' (the discrete Dirichlet problem with cotangent weights on ``face``'s x, y)."""
    triangles = fm.surface_triangles()
    rings = fm.rings_from_outline()
    band = np.flatnonzero((rings >= 1) & (rings <= RELAX_RINGS))
    band = np.setdiff1d(band, MEDIAPIPE_INDICES)
    known = np.setdiff1d(np.arange(len(face)), band)
    n = len(face)
    weights = np.zeros((n, n))
    xy = face[:, :2]
    for k in range(3):  # the angle at corner k weights the opposite edge (i, j)
        o, i, j = triangles[:, k], triangles[:, (k + 1) % 3], triangles[:, (k + 2) % 3]
        u, v = xy[i] - xy[o], xy[j] - xy[o]
        cross = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
        cot = (u * v).sum(1) / np.maximum(cross, 1e-12)
        np.add.at(weights, (i, j), 0.5 * cot)
        np.add.at(weights, (j, i), 0.5 * cot)
    weights = np.maximum(weights, 0.0)  # obtuse angles: no negative weights (a maximum principle)
    laplacian = np.diag(weights.sum(1)) - weights
    relax = np.linalg.solve(laplacian[np.ix_(band, band)], -laplacian[np.ix_(band, known)])
    return band, known, relax


def _pull_weights(face: np.ndarray) -> np.ndarray:
    """(478, 21) weights of each keypoint's offset in each dense landmark's offset."""
    keys = face[MEDIAPIPE_INDICES]
    d2 = ((face[:, None, :] - keys[None]) ** 2).sum(-1)
    kernel = np.exp(-d2 / PULL_WIDTH ** 2)
    allowed = np.ones_like(kernel, dtype=bool)
    upper_mouth, lower_mouth = _mouth_sides(face)
    for name in _LOWER_LIP_KEYS:
        allowed[upper_mouth, KEYPOINT_INDEX[name]] = False
    for name in _UPPER_LIP_KEYS:
        allowed[lower_mouth, KEYPOINT_INDEX[name]] = False
    for upper, lower, up_key, low_key, _ in _EYES:
        above, below = _eye_sides(face, upper, lower)
        allowed[below, KEYPOINT_INDEX[up_key]] = False
        allowed[above, KEYPOINT_INDEX[low_key]] = False
    weights = normalized_pull(kernel * allowed)
    weights[MEDIAPIPE_INDICES] = np.eye(NUM_KEYPOINTS)
    return weights


def _curve_y(x: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """y of a left-to-right polyline (n, ≥2) at x (held flat beyond its ends)."""
    order = np.argsort(curve[:, 0])
    return np.interp(x, curve[order, 0], curve[order, 1])


def _mouth_sides(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the landmarks above (upper lip, nose…) and below (lower lip, jaw) the lips' seam."""
    seam = 0.5 * (face[list(fm.LIP_INNER_UPPER)] + face[list(fm.LIP_INNER_LOWER)])
    y_seam = _curve_y(face[:, 0], seam)
    upper = face[:, 1] > y_seam
    lower = ~upper
    upper[list(fm.LIP_INNER_UPPER) + list(fm.LIP_OUTER_UPPER)] = True
    lower[list(fm.LIP_INNER_UPPER) + list(fm.LIP_OUTER_UPPER)] = False
    lower[list(fm.LIP_INNER_LOWER) + list(fm.LIP_OUTER_LOWER)] = True
    upper[list(fm.LIP_INNER_LOWER) + list(fm.LIP_OUTER_LOWER)] = False
    corners = [fm.LIP_INNER_UPPER[0], fm.LIP_INNER_UPPER[-1], fm.LIP_OUTER_UPPER[0], fm.LIP_OUTER_UPPER[-1]]
    upper[corners] = lower[corners] = True  # the corners belong to both lips
    return upper, lower


def _eye_sides(face: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Masks of landmarks above and below one eye's seam (only near the eye; far points are both)."""
    seam = 0.5 * (face[list(upper)] + face[list(lower)])
    x0, x1 = seam[:, 0].min(), seam[:, 0].max()
    margin = 0.25 * (x1 - x0)
    near = (face[:, 0] > x0 - margin) & (face[:, 0] < x1 + margin) & (np.abs(face[:, 1] - seam[:, 1].mean()) < 0.6)
    above = near & (face[:, 1] > _curve_y(face[:, 0], seam))
    below = near & ~above
    above[list(upper)], below[list(upper)] = True, False
    above[list(lower)], below[list(lower)] = False, True
    ends = [upper[0], upper[-1]]
    above[ends] = below[ends] = False  # the corners stay where they are
    return above, below


def _lid_pull(face: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """The offsets (478, 3) of a full blink of one eye."""
    up, low = face[list(upper)], face[list(lower)]
    closing = low + LID_CLOSING_LINE * (up - low)
    moves_margin = np.concatenate([closing - up, closing - low])  # per margin point
    margin = np.concatenate([up, low])
    ids = np.array(list(upper) + list(lower))
    above, below = _eye_sides(face, upper, lower)
    d2 = ((face[:, None, :2] - margin[None, :, :2]) ** 2).sum(-1)
    kernel = np.exp(-d2 / LID_WIDTH ** 2)
    n = len(upper)
    kernel[~above, :n] = 0.0  # upper-margin moves only carry the points above the seam…
    kernel[~below, n:] = 0.0  # …and lower-margin moves those below it
    stay = np.exp(-4.0)
    weights = kernel / (kernel.sum(1, keepdims=True) + stay)
    moves = weights @ moves_margin
    moves[ids] = moves_margin
    moves[[upper[0], upper[-1]]] = 0.0  # corners
    return moves
