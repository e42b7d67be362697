"""The motion space: 74 named channels per frame, the one definition everything speaks.

A frame is a float32 vector of 74 channels, a motion track an array (T, 74):

==========================  ======================================================================
``exp.<keypoint>.<x|y|z>``  63 expression offsets δ of the 21 named keypoints
                            (:mod:`studio.core.keypoints`), in face units, in the head frame.
``pose.pitch``              degrees, right-handed about +x: positive tips the nose *down* (a nod).
``pose.yaw``                degrees, right-handed about +y: positive turns the nose to the image right.
``pose.roll``               degrees, right-handed about +z: positive tilts the head counter-clockwise
                            as the viewer sees it.
``t.x``, ``t.y``, ``t.z``   head translation in face units (x image right, y up, z toward the viewer).
``scale``                   head scale, 1 = the identity's own size.
``eye.blink_l``/``_r``      0 open … 1 closed (``_l`` = subject's left eye, on the image right).
``eye.gaze_x``/``_y``       −1 … 1: +x looks to the image right, +y looks up; ±1 is the limit of the
                            eye's range (about 30° horizontally, 20° vertically).
==========================  ======================================================================

Face units: the inter-ocular distance (between eye centres) is 1. Axes: x to the image right,
y up, z toward the viewer. The canonical keypoints ``c`` (21, 3) of an identity sit in this frame
with the head pivot at the origin (see :mod:`studio.core.keypoints`). The keypoints of a frame are

    x = s · (c · R + δ) + t

with row vectors: ``c · R`` rotates the canonical keypoints, ``R = M(pitch, yaw, roll)ᵀ`` and
``M = Rz(roll) · Ry(yaw) · Rx(pitch)`` acting on column vectors (roll applied last).
All functions here are vectorized over frames.
"""

from __future__ import annotations

import numpy as np

from studio.core.keypoints import KEYPOINT_NAMES, MEAN_FACE, MIRROR_PERMUTATION, NUM_KEYPOINTS

AXES = ("x", "y", "z")
EXPRESSION_CHANNELS: tuple[str, ...] = tuple(f"exp.{k}.{a}" for k in KEYPOINT_NAMES for a in AXES)
POSE_CHANNELS: tuple[str, ...] = ("pose.pitch", "pose.yaw", "pose.roll", "t.x", "t.y", "t.z", "scale")
EYE_CHANNELS: tuple[str, ...] = ("eye.blink_l", "eye.blink_r", "eye.gaze_x", "eye.gaze_y")
CHANNELS: tuple[str, ...] = EXPRESSION_CHANNELS + POSE_CHANNELS + EYE_CHANNELS
NUM_CHANNELS = len(CHANNELS)
CHANNEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(CHANNELS)}

EXP = slice(0, 3 * NUM_KEYPOINTS)
ROTATION = slice(CHANNEL_INDEX["pose.pitch"], CHANNEL_INDEX["pose.roll"] + 1)
TRANSLATION = slice(CHANNEL_INDEX["t.x"], CHANNEL_INDEX["t.z"] + 1)
SCALE = CHANNEL_INDEX["scale"]

#: The frame of a face at rest: no offsets, no rotation, no translation, scale 1, eyes open ahead.
NEUTRAL_FRAME = np.zeros(NUM_CHANNELS, dtype=np.float32)
NEUTRAL_FRAME[SCALE] = 1.0

#: Documented valid range of each channel (inclusive) — for validation and UI slider ranges.
CHANNEL_RANGES: dict[str, tuple[float, float]] = {
    **{c: (-1.0, 1.0) for c in EXPRESSION_CHANNELS},
    "pose.pitch": (-90.0, 90.0),
    "pose.yaw": (-90.0, 90.0),
    "pose.roll": (-90.0, 90.0),
    "t.x": (-5.0, 5.0),
    "t.y": (-5.0, 5.0),
    "t.z": (-5.0, 5.0),
    "scale": (0.1, 10.0),
    "eye.blink_l": (0.0, 1.0),
    "eye.blink_r": (0.0, 1.0),
    "eye.gaze_x": (-1.0, 1.0),
    "eye.gaze_y": (-1.0, 1.0),
}

#: Channel groups as the timeline and the inspector show them: one per keypoint region, then head
#: and eyes. Region locks name these groups.
CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {}


def _build_groups() -> None:
    from studio.core.keypoints import KEYPOINT_REGIONS

    for region, names in KEYPOINT_REGIONS.items():
        CHANNEL_GROUPS[region] = tuple(f"exp.{k}.{a}" for k in names for a in AXES)
    CHANNEL_GROUPS["head"] = POSE_CHANNELS
    CHANNEL_GROUPS["eyes"] = EYE_CHANNELS


_build_groups()

#: For each channel: the index of its mirror partner and the sign it takes when the face is mirrored
#: horizontally (x → −x).
MIRROR_SOURCE = np.empty(NUM_CHANNELS, dtype=np.int64)
MIRROR_SIGN = np.ones(NUM_CHANNELS, dtype=np.float32)


def _build_mirror_map() -> None:
    for k in range(NUM_KEYPOINTS):
        for a in range(3):
            MIRROR_SOURCE[3 * k + a] = 3 * MIRROR_PERMUTATION[k] + a
            if a == 0:
                MIRROR_SIGN[3 * k + a] = -1.0
    for name in POSE_CHANNELS + EYE_CHANNELS:
        MIRROR_SOURCE[CHANNEL_INDEX[name]] = CHANNEL_INDEX[name]
    MIRROR_SOURCE[CHANNEL_INDEX["eye.blink_l"]] = CHANNEL_INDEX["eye.blink_r"]
    MIRROR_SOURCE[CHANNEL_INDEX["eye.blink_r"]] = CHANNEL_INDEX["eye.blink_l"]
    for name in ("pose.yaw", "pose.roll", "t.x", "eye.gaze_x"):
        MIRROR_SIGN[CHANNEL_INDEX[name]] = -1.0


_build_mirror_map()


def channel_indices(names) -> np.ndarray:
    """Indices of channel names; a clear KeyError for an unknown name."""
    try:
        return np.array([CHANNEL_INDEX[n] for n in names], dtype=np.int64)
    except KeyError as exc:
        raise KeyError(f"unknown motion channel {exc.args[0]!r}") from None


def neutral_motion(num_frames: int) -> np.ndarray:
    """A motion track (T, 74) of the face at rest."""
    return np.tile(NEUTRAL_FRAME, (int(num_frames), 1))


def validate_motion(values: np.ndarray, what: str = "motion") -> np.ndarray:
    """Return ``values`` as a float32 (T, 74) array, or raise ValueError saying what is wrong."""
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[1] != NUM_CHANNELS:
        raise ValueError(f"{what}: expected shape (frames, {NUM_CHANNELS}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what}: values must be numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what}: non-finite value at frame {bad[0]}, channel {CHANNELS[bad[1]]}")
    return arr


# --- rotations ----------------------------------------------------------------------------------

def rotation_matrices(pitch, yaw, roll) -> np.ndarray:
    """Column-vector rotation matrices ``M = Rz(roll) · Ry(yaw) · Rx(pitch)`` for angles in degrees.

    Accepts scalars or arrays of any (matching, broadcastable) shape; returns shape (…, 3, 3).
    """
    p, y, r = np.broadcast_arrays(*(np.radians(np.asarray(a, dtype=np.float64)) for a in (pitch, yaw, roll)))
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    m = np.empty(p.shape + (3, 3))
    m[..., 0, 0] = cr * cy
    m[..., 0, 1] = cr * sy * sp - sr * cp
    m[..., 0, 2] = cr * sy * cp + sr * sp
    m[..., 1, 0] = sr * cy
    m[..., 1, 1] = sr * sy * sp + cr * cp
    m[..., 1, 2] = sr * sy * cp - cr * sp
    m[..., 2, 0] = -sy
    m[..., 2, 1] = cy * sp
    m[..., 2, 2] = cy * cp
    return m


def euler_from_matrices(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_matrices`: (…, 3, 3) → (…, 3) degrees (pitch, yaw, roll).

    Yaw is in [−90°, 90°]. At gimbal lock (|yaw| = 90°) roll is set to 0 and pitch absorbs it.
    """
    m = np.asarray(m, dtype=np.float64)
    sy = np.clip(-m[..., 2, 0], -1.0, 1.0)
    yaw = np.arcsin(sy)
    locked = np.abs(sy) > 1.0 - 1e-9
    pitch = np.where(locked, np.arctan2(-m[..., 1, 2], m[..., 1, 1]), np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    roll = np.where(locked, 0.0, np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    return np.degrees(np.stack([pitch, yaw, roll], axis=-1))


# --- the keypoint transform ---------------------------------------------------------------------

def expression_offsets(motion: np.ndarray) -> np.ndarray:
    """The δ of a motion track as (T, 21, 3)."""
    m = np.asarray(motion)
    return m[..., EXP].reshape(m.shape[:-1] + (NUM_KEYPOINTS, 3))


def keypoints(motion: np.ndarray, canonical: np.ndarray | None = None) -> np.ndarray:
    """Keypoints of every frame, ``x = s · (c · R + δ) + t``: (T, 74) → (T, 21, 3) float32.

    ``canonical`` is the identity's (21, 3) canonical keypoints; the documented mean face when None.
    """
    m = np.asarray(motion, dtype=np.float64)
    c = MEAN_FACE if canonical is None else np.asarray(canonical, dtype=np.float64)
    if c.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"canonical keypoints must have shape ({NUM_KEYPOINTS}, 3), got {c.shape}")
    rot = rotation_matrices(m[..., ROTATION.start], m[..., ROTATION.start + 1], m[..., ROTATION.start + 2])
    # Row vectors: c · R with R = Mᵀ, i.e. (c · Mᵀ)[k, i] = Σ_j c[k, j] · M[i, j].
    rotated = np.einsum("kj,...ij->...ki", c, rot)
    x = m[..., SCALE, None, None] * (rotated + expression_offsets(m)) + m[..., None, TRANSLATION]
    return x.astype(np.float32)


def mirror_motion(motion: np.ndarray) -> np.ndarray:
    """Mirror a motion track horizontally (the face as seen in a mirror); mirroring twice is identity.

    Offsets swap left and right keypoints with x negated; yaw, roll, t.x and gaze x change sign;
    the blinks swap eyes. For the mirrored identity use :func:`mirror_keypoints` on its canonical
    keypoints: ``keypoints(mirror_motion(m), mirror_keypoints(c)) == mirror_keypoints(keypoints(m, c))``.
    """
    m = np.asarray(motion, dtype=np.float32)
    return m[..., MIRROR_SOURCE] * MIRROR_SIGN


def mirror_keypoints(points: np.ndarray) -> np.ndarray:
    """Mirror keypoints (…, 21, 3) horizontally: swap left/right keypoints and negate x."""
    p = np.asarray(points)[..., MIRROR_PERMUTATION, :].copy()
    p[..., 0] *= -1
    return p
