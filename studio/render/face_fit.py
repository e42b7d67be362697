"""Fitting a portrait photo: the face's dense landmarks, its 21 keypoints, its pose and identity.

:func:`fit_portrait` runs MediaPipe FaceMesh (the model bundled in the 0.10.21 wheel; nothing is
downloaded) and returns a :class:`FaceFit`. When the detector finds no face (a landscape, a cat, a
painting it cannot read), :class:`FaceNotFoundError` says so and names the manual path:
:func:`fit_from_keypoints` takes the 21 keypoints as image points (a JSON file written by hand or
by the GUI's keypoint editor, see :func:`read_keypoints_json`) and places a mean dense face on them.

Frames. *Image* coordinates are pixels, x to the right, y **down** (rows), z toward the viewer
in pixels. The *camera* frame used for geometry is the same with y up (``camera = image * (1, -1,
1)``). The head frame of the motion space (:mod:`studio.core.motion`) maps into the camera frame by
the photo's pose: ``camera = scale · (X @ rotation) + translation`` with ``X`` in face units.

Identity. The motion space's neutral face has closed lips (the inner-lip keypoints meet, so the
rig's mouth offsets mean the same on every face). A photo with parted lips is that identity plus a
small expression, ``rest_offsets`` (21, 3): rendering a motion frame whose offsets equal
``rest_offsets`` gives back the photo; offsets of zero close its lips.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from studio.core.keypoints import (
    EYE_CENTER_FROM_PIVOT,
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    MEAN_FACE,
    MEDIAPIPE_INDICES,
    NUM_KEYPOINTS,
    eye_centers,
)
from studio.render import face_mesh

#: Largest portrait accepted (pixels on a side); larger photos are refused with a clear error.
MAX_IMAGE_SIDE = 16384
#: Largest image file read (bytes).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
#: Inner lips closer than this (face units; the eyes are 1 apart) are closed in the photo.
CLOSED_LIPS = 0.01
_FLIP_Y = np.array([1.0, -1.0, 1.0])


class PortraitError(ValueError):
    """An image that cannot be used as a portrait; the message names the file and the problem."""


class FaceNotFoundError(PortraitError):
    """No face in the image: the message names the manual path (keypoints as a JSON file)."""


@dataclass(frozen=True)
class FaceFit:
    """A fitted portrait. Arrays are float64; see the module docstring for the frames."""

    image_size: tuple[int, int]  # (height, width)
    landmarks: np.ndarray = field(repr=False)  # (478, 3) image coordinates
    rotation: np.ndarray = field(repr=False)  # (3, 3): rows are the head's axes in the camera frame
    scale: float  # pixels per face unit
    translation: np.ndarray = field(repr=False)  # (3,) camera frame: where the head pivot is
    rest_offsets: np.ndarray = field(repr=False)  # (21, 3) the photo's own expression (parted lips)
    source: str = "mediapipe"  # or "keypoints" (the manual path)
    faces_found: int = 1

    @property
    def canonical_keypoints(self) -> np.ndarray:
        """The identity's canonical keypoints c (21, 3) in face units: the photo's keypoints with
        the pose removed and the lips closed."""
        return self.to_face(self.landmarks[MEDIAPIPE_INDICES]) - self.rest_offsets

    @property
    def keypoints(self) -> np.ndarray:
        """The 21 keypoints as the photo shows them (21, 3), image coordinates."""
        return self.landmarks[MEDIAPIPE_INDICES]

    def to_face(self, image_points: np.ndarray) -> np.ndarray:
        """Image coordinates (…, 3) → face units in the head frame (…, 3)."""
        camera = np.asarray(image_points, dtype=np.float64) * _FLIP_Y
        return ((camera - self.translation) / self.scale) @ self.rotation.T

    def to_image(self, face_points: np.ndarray) -> np.ndarray:
        """Face units in the head frame (…, 3) → image coordinates (…, 3)."""
        return (self.scale * (np.asarray(face_points, dtype=np.float64) @ self.rotation) + self.translation) * _FLIP_Y

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The face's bounding box in the image: (x0, y0, x1, y1) of its surface landmarks."""
        p = self.landmarks[:face_mesh.NUM_SURFACE, :2]
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())


# --- images --------------------------------------------------------------------------------------

def load_image(path: str | Path) -> np.ndarray:
    """A portrait file as H × W × 3 uint8 RGB (alpha dropped over white, grey expanded)."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise PortraitError(f"{path}: cannot read the image ({exc.strerror or exc})") from None
    if size == 0:
        raise PortraitError(f"{path}: the file is empty")
    if size > MAX_IMAGE_BYTES:
        raise PortraitError(f"{path}: the file is {size / 2**20:.0f} MiB, more than an image may be "
                            f"({MAX_IMAGE_BYTES // 2**20} MiB)")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PortraitError(f"{path}: not an image OpenCV can read (corrupt, truncated, or another format)")
    return as_rgb(image, str(path))


def as_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An OpenCV-decoded array (grey, BGR or BGRA, 8 or 16 bit) as contiguous uint8 RGB."""
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 16:
        raise PortraitError(f"{name}: an image of shape {image.shape} cannot be a portrait (too small or not 2-D)")
    if max(image.shape[:2]) > MAX_IMAGE_SIDE:
        raise PortraitError(f"{name}: {image.shape[1]}×{image.shape[0]} is larger than {MAX_IMAGE_SIDE} px on a side")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise PortraitError(f"{name}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise PortraitError(f"{name}: {image.shape[2]} colour channels; expected 1, 3 or 4")
    return np.ascontiguousarray(image)


# --- fitting -------------------------------------------------------------------------------------

def detect_faces(image: np.ndarray, max_faces: int = 8) -> list[np.ndarray]:
    """FaceMesh landmarks (478, 3) of every face found, largest first, image coordinates."""
    from mediapipe.python.solutions import face_mesh as mp_face_mesh

    h, w = image.shape[:2]
    with mp_face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=max_faces,
                               min_detection_confidence=0.5) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    faces = []
    for face in result.multi_face_landmarks or ():
        faces.append(np.array([[p.x * w, p.y * h, -p.z * w] for p in face.landmark], dtype=np.float64))
    faces = [f for f in faces if f.shape == (face_mesh.NUM_LANDMARKS, 3) and np.all(np.isfinite(f))]
    return sorted(faces, key=lambda f: -np.ptp(f[:, 0]) * np.ptp(f[:, 1]))


def fit_portrait(image: np.ndarray, *, face_index: int = 0, name: str = "image") -> FaceFit:
    """Fit the ``face_index``-th largest face of an RGB uint8 image (0: the largest)."""
    faces = detect_faces(image)
    if not faces:
        raise FaceNotFoundError(
            f"{name}: no face found. Give the 21 keypoints by hand instead: a JSON file "
            f"{{\"keypoints\": {{\"nose_tip\": [x, y], …}}}} in image pixels (studio render --keypoints FILE), "
            f"or place them in the studio's 2D view.")
    if not 0 <= face_index < len(faces):
        raise PortraitError(f"{name}: face {face_index} requested, but {len(faces)} face(s) found (0 … {len(faces) - 1})")
    return _fit_landmarks(faces[face_index], image.shape[:2], "mediapipe", len(faces))


def head_rotation(points21: np.ndarray) -> np.ndarray:
    """Rows: the head's x (along the eye line), y (chin → nose bridge) and z axes, camera frame."""
    left, right = eye_centers(points21)
    ex = left - right
    ex /= np.linalg.norm(ex)
    up = points21[KEYPOINT_INDEX["nose_bridge"]] - points21[KEYPOINT_INDEX["chin"]]
    ey = up - (up @ ex) * ex
    ey /= np.linalg.norm(ey)
    return np.stack([ex, ey, np.cross(ex, ey)])


def _fit_landmarks(landmarks: np.ndarray, image_size, source: str, faces_found: int) -> FaceFit:
    camera = landmarks[MEDIAPIPE_INDICES] * _FLIP_Y
    rotation = head_rotation(camera)
    left, right = eye_centers(camera)
    scale = float(np.linalg.norm(left - right))
    if not scale > 1.0:
        raise PortraitError("the face is too small to animate (the eyes are less than a pixel apart)")
    translation = 0.5 * (left + right) - scale * (EYE_CENTER_FROM_PIVOT @ rotation)
    fit = FaceFit((int(image_size[0]), int(image_size[1])), landmarks, rotation, scale, translation,
                  np.zeros((NUM_KEYPOINTS, 3)), source, faces_found)
    face = fit.to_face(landmarks[MEDIAPIPE_INDICES])
    rest = np.zeros((NUM_KEYPOINTS, 3))
    up, low = KEYPOINT_INDEX["lip_upper_center"], KEYPOINT_INDEX["lip_lower_center"]
    middle = 0.5 * (face[up] + face[low])
    rest[up], rest[low] = face[up] - middle, face[low] - middle
    if abs(rest[up, 1] - rest[low, 1]) < CLOSED_LIPS:  # closed already (within a pixel or so)
        rest[:] = 0.0
    return replace(fit, rest_offsets=rest)


# --- the manual path -----------------------------------------------------------------------------

def read_keypoints_json(path: str | Path) -> np.ndarray:
    """21 keypoints (21, 2) in image pixels from ``{"keypoints": {"nose_tip": [x, y], …}}`` (all
    21 names, see :mod:`studio.core.keypoints`) or ``{"keypoints": [[x, y], …]}`` in that order."""
    path = Path(path)
    try:
        if os.path.getsize(path) > 1_000_000:
            raise PortraitError(f"{path}: too large for a keypoints file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PortraitError(f"{path}: cannot read keypoints ({exc})") from None
    points = data.get("keypoints") if isinstance(data, dict) else None
    if isinstance(points, dict):
        missing = [n for n in KEYPOINT_NAMES if n not in points]
        if missing:
            raise PortraitError(f"{path}: keypoints missing: {', '.join(missing)}")
        points = [points[n] for n in KEYPOINT_NAMES]
    try:
        array = np.array(points, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape not in ((NUM_KEYPOINTS, 2), (NUM_KEYPOINTS, 3)) or not np.all(np.isfinite(array)):
        raise PortraitError(f"{path}: expected \"keypoints\" with {NUM_KEYPOINTS} finite [x, y] image points")
    return array[:, :2]


def _checked_keypoints(keypoints: np.ndarray) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (NUM_KEYPOINTS, 2) or not np.all(np.isfinite(keypoints)):
        raise PortraitError(f"expected {NUM_KEYPOINTS} finite keypoints (x, y), got shape {keypoints.shape}")
    left, right = eye_centers(np.c_[keypoints, np.zeros(NUM_KEYPOINTS)])
    if np.linalg.norm(left - right) < 4.0:
        raise PortraitError("the keypoints' eyes are less than 4 pixels apart: place them on a larger face")
    return keypoints


def fit_from_keypoints(image_size: tuple[int, int], keypoints: np.ndarray) -> FaceFit:
    """A fit from 21 hand-placed keypoints (21, 2) image pixels: the mean dense face
    (:func:`studio.render.mean_face.mean_dense_face`) aligned to them by a similarity transform and
    bent onto them with a smooth interpolation of the residuals."""
    from studio.render.mean_face import place_mean_face

    return _fit_landmarks(place_mean_face(_checked_keypoints(keypoints)), image_size, "keypoints", 1)


def adjust_fit(fit: FaceFit, keypoints: np.ndarray) -> FaceFit:
    """A detected fit corrected by hand: its 21 keypoints moved to ``keypoints`` (21, 2) image
    pixels, the dense landmarks bent smoothly with them (the manual path's interpolation), and the
    pose, scale and identity taken from the result. The fit keeps its source (iris landmarks and
    all), so only the region around a moved keypoint changes."""
    from studio.render.mean_face import BEND_WIDTH, bend_landmarks

    landmarks = bend_landmarks(fit.landmarks, _checked_keypoints(keypoints), BEND_WIDTH * fit.scale)
    return _fit_landmarks(landmarks, fit.image_size, fit.source, fit.faces_found)


def starting_keypoints(image_size: tuple[int, int]) -> np.ndarray:
    """Where to start placing the 21 keypoints on a face the detector missed (21, 2) image pixels:
    the mean face, upright, centred, its eyes a sixth of the image's smaller side apart."""
    h, w = image_size
    points = MEAN_FACE[:, :2] * (1.0, -1.0)  # face units, image axes (y down)
    left, right = eye_centers(MEAN_FACE)
    middle = 0.5 * (left + right)[:2] * (1.0, -1.0)
    return (points - middle) * (min(h, w) / 6.0) + (w / 2.0, h / 2.0 - min(h, w) / 10.0)
