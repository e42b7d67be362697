"""The 21 named facial keypoints of the motion space: anatomy, landmark sources, mirror map, regions.

Every keypoint is semantic and left/right symmetric. Suffix ``_l`` is the subject's own *left*
side, which appears on the *image right* of a frontal photo (positive x in the face frame, see
:mod:`studio.core.motion`); ``_r`` is the subject's right. Mirroring a face swaps ``_l`` and ``_r``.

Each keypoint documents
* ``anatomy``   — where it sits on a face, in words an animator understands;
* ``mediapipe`` — the MediaPipe FaceMesh landmark index (468/478 topology) it is read from;
* ``flame``     — the FLAME 2020/2023 head-model vertices (5023-vertex topology, shared by VOCA
  templates) whose mean is the keypoint on a FLAME mesh. Ids follow the public 68-landmark list
  of the FLAME topology (SAiD's ``FLAME_landmarks.txt``) cross-checked against VHAP's ordered lip
  and eyelid vertex rings; the eyelid middles are the means of the two 68-landmark lid vertices,
  the inner-lip centres are the mouth-seam vertices (they meet when the lips close). No public
  list has a cheek vertex: ``cheek_l``/``cheek_r`` have no ids here and are taken, when a FLAME
  mesh is loaded, as the vertex nearest to the mean face's cheek point once the other 19
  keypoints are aligned to the mesh. FLAME's +x is the subject's left, like ours;
* ``region``    — the face region it belongs to (regions can be locked on the timeline).

The canonical mean face (``MEAN_FACE``) is used whenever an identity is unknown; it is derived by
``tools/derive_mean_face.py`` from MediaPipe FaceMesh fits of two real photos and symmetrized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Keypoint:
    name: str
    region: str
    anatomy: str
    mediapipe: int
    flame: tuple[int, ...]


# Order matters: it is the order of the 63 ``exp.*`` channels and of every (…, 21, 3) array.
KEYPOINTS: tuple[Keypoint, ...] = (
    Keypoint("nose_bridge", "nose", "Sellion: the deepest point of the nasal bridge, between the eyes.", 168, (3560,)),
    Keypoint("nose_tip", "nose", "Pronasale: the most forward point of the nose tip.", 1, (3564,)),
    Keypoint("brow_inner_l", "brows", "Inner end of the left eyebrow, above the inner eye corner (AU1/AU4).", 336, (3868,)),
    Keypoint("brow_inner_r", "brows", "Inner end of the right eyebrow, above the inner eye corner (AU1/AU4).", 107, (3712,)),
    Keypoint("brow_outer_l", "brows", "Outer third of the left eyebrow, above the outer eye corner (AU2).", 300, (1430,)),
    Keypoint("brow_outer_r", "brows", "Outer third of the right eyebrow, above the outer eye corner (AU2).", 70, (2567,)),
    Keypoint("lid_upper_l", "lids", "Middle of the left upper eyelid margin (closes on a blink).", 386, (1343, 1218)),
    Keypoint("lid_lower_l", "lids", "Middle of the left lower eyelid margin.", 374, (829, 995)),
    Keypoint("lid_upper_r", "lids", "Middle of the right upper eyelid margin (closes on a blink).", 159, (2453, 2494)),
    Keypoint("lid_lower_r", "lids", "Middle of the right lower eyelid margin.", 145, (2278, 2359)),
    Keypoint("cheek_l", "cheeks", "Left cheek prominence beside the nasolabial fold; rises in a smile (AU6).", 425, ()),
    Keypoint("cheek_r", "cheeks", "Right cheek prominence beside the nasolabial fold; rises in a smile (AU6).", 205, ()),
    Keypoint("lip_upper_center", "lips", "Centre of the inner upper-lip contour (meets the lower lip when closed).", 13, (3514,)),
    Keypoint("lip_lower_center", "lips", "Centre of the inner lower-lip contour (meets the upper lip when closed).", 14, (3497,)),
    Keypoint("lip_upper_l", "lips", "Left peak of the cupid's bow on the outer upper lip.", 267, (1657,)),
    Keypoint("lip_upper_r", "lips", "Right peak of the cupid's bow on the outer upper lip.", 37, (2774,)),
    Keypoint("lip_lower_l", "lips", "Outer lower lip below the left cupid's-bow peak.", 314, (1802,)),
    Keypoint("lip_lower_r", "lips", "Outer lower lip below the right cupid's-bow peak.", 84, (2905,)),
    Keypoint("mouth_corner_l", "lips", "Left mouth corner (cheilion); pulled up in a smile, down in sadness.", 291, (1703,)),
    Keypoint("mouth_corner_r", "lips", "Right mouth corner (cheilion); pulled up in a smile, down in sadness.", 61, (2820,)),
    Keypoint("chin", "jaw", "Menton: the lowest point of the chin; follows the jaw.", 152, (3414,)),
)

KEYPOINT_NAMES: tuple[str, ...] = tuple(k.name for k in KEYPOINTS)
NUM_KEYPOINTS = len(KEYPOINTS)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

#: Regions of keypoints, in display order. Regions are what the timeline groups and locks.
KEYPOINT_REGIONS: dict[str, tuple[str, ...]] = {}
for _kp in KEYPOINTS:
    KEYPOINT_REGIONS.setdefault(_kp.region, ())
    KEYPOINT_REGIONS[_kp.region] += (_kp.name,)
del _kp

MEDIAPIPE_INDICES = np.array([k.mediapipe for k in KEYPOINTS], dtype=np.int64)
#: FLAME vertex ids per keypoint (empty for the cheeks, see the module docstring).
FLAME_VERTICES: dict[str, tuple[int, ...]] = {k.name: k.flame for k in KEYPOINTS}


def mirror_name(name: str) -> str:
    """The keypoint on the other side of the face (``brow_inner_l`` ↔ ``brow_inner_r``)."""
    if name.endswith("_l"):
        return name[:-2] + "_r"
    if name.endswith("_r"):
        return name[:-2] + "_l"
    return name


#: ``MIRROR_PERMUTATION[i]`` is the index of the mirror partner of keypoint ``i``.
MIRROR_PERMUTATION = np.array([KEYPOINT_INDEX[mirror_name(n)] for n in KEYPOINT_NAMES], dtype=np.int64)


# --- the documented mean face -------------------------------------------------------------------
# Face units: the inter-ocular distance (between the eye centres, each eye centre being the
# midpoint of its upper- and lower-lid keypoints) is 1. Axes: x to the image right (subject's
# left), y up, z toward the viewer. Origin: the head pivot, placed EYE_CENTER_FROM_PIVOT below and
# behind the mid-point of the two eye centres, so head rotations swing the face about the neck as
# a real head does rather than about the nose.
EYE_CENTER_FROM_PIVOT = np.array([0.0, 0.5, 1.4])

# Generated by tools/derive_mean_face.py (MediaPipe FaceMesh on scikit-image's astronaut and
# matplotlib's grace_hopper sample, pose removed, scaled, averaged, symmetrized). Do not edit by hand.
MEAN_FACE = np.array([
    [0.0000, 0.5708, 1.6136],  # nose_bridge
    [0.0000, -0.0262, 2.0287],  # nose_tip
    [0.2298, 0.8081, 1.5917],  # brow_inner_l
    [-0.2298, 0.8081, 1.5917],  # brow_inner_r
    [0.8671, 0.6543, 1.2554],  # brow_outer_l
    [-0.8671, 0.6543, 1.2554],  # brow_outer_r
    [0.5171, 0.5708, 1.3975],  # lid_upper_l
    [0.4829, 0.4292, 1.4025],  # lid_lower_l
    [-0.5171, 0.5708, 1.3975],  # lid_upper_r
    [-0.4829, 0.4292, 1.4025],  # lid_lower_r
    [0.6347, -0.0775, 1.5398],  # cheek_l
    [-0.6347, -0.0775, 1.5398],  # cheek_r
    [0.0000, -0.4776, 1.7334],  # lip_upper_center
    [0.0000, -0.4776, 1.7334],  # lip_lower_center
    [0.1364, -0.3293, 1.7945],  # lip_upper_l
    [-0.1364, -0.3293, 1.7945],  # lip_upper_r
    [0.1346, -0.6263, 1.7712],  # lip_lower_l
    [-0.1346, -0.6263, 1.7712],  # lip_lower_r
    [0.4479, -0.4530, 1.4899],  # mouth_corner_l
    [-0.4479, -0.4530, 1.4899],  # mouth_corner_r
    [0.0000, -1.1830, 1.6136],  # chin
], dtype=np.float64)


def eye_centers(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right eye centres (…, 3) of keypoints (…, 21, 3): midpoints of the lid keypoints."""
    k = np.asarray(keypoints, dtype=np.float64)
    i = KEYPOINT_INDEX
    left = 0.5 * (k[..., i["lid_upper_l"], :] + k[..., i["lid_lower_l"], :])
    right = 0.5 * (k[..., i["lid_upper_r"], :] + k[..., i["lid_lower_r"], :])
    return left, right


def normalize_face(points: np.ndarray) -> np.ndarray:
    """Express 21 face keypoints (21, 3) — any position, scale and roll — in face units.

    The result has inter-ocular distance 1, eyes level on the x axis (the right-to-left eye vector
    along +x) and the mid-eye point at ``EYE_CENTER_FROM_PIVOT``. Input axes must already be x right,
    y up, z toward the viewer (flip image y before calling). Yaw and pitch of the input are kept:
    callers remove them first when they know them (see ``tools/derive_mean_face.py``).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape ({NUM_KEYPOINTS}, 3), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("keypoints contain NaN or infinite values")
    left, right = eye_centers(p)
    axis = left - right
    iod = float(np.linalg.norm(axis))
    if iod < 1e-9:
        raise ValueError("degenerate face: the two eye centres coincide")
    angle = np.arctan2(axis[1], axis[0])  # roll of the eye line in the x-y plane
    c, s = np.cos(-angle), np.sin(-angle)
    unroll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    mid = 0.5 * (left + right)
    return ((p - mid) @ unroll.T) / iod + EYE_CENTER_FROM_PIVOT
