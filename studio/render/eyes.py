"""Gaze for the portrait renderer: each iris moves inside its eye opening.

The edit is made on the photo itself, before the warp: the iris is lifted off (its place is
inpainted from the eye white and lids around it, once), and pasted back shifted by the gaze,
clipped to the eye opening, so the lids cover it at the top and bottom as real lids do. The warp
then carries the edited eye with the lids and the head. At zero gaze the photo is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from studio.core.motion import CHANNEL_INDEX
from studio.render import face_mesh as fm
from studio.render.face_fit import FaceFit

#: Iris travel at gaze ±1, as a share of the eye's width (horizontal) and height of opening (vertical).
GAZE_TRAVEL_X = 0.24
GAZE_TRAVEL_Y = 0.35
#: Gaze shifts smaller than this (pixels) leave the photo untouched.
MIN_SHIFT = 0.05
_AA = 3  # fixed-point bits for anti-aliased polygons


@dataclass
class _Eye:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the photo
    centre: np.ndarray  # iris centre, box coordinates
    radius: float
    opening: np.ndarray  # (h, w, 1) float32 anti-aliased eye opening
    filled: np.ndarray  # (h, w, 3) float32: the eye with its iris lifted off
    iris: np.ndarray  # (h, w, 3) float32: the photo's pixels of the box
    travel: np.ndarray  # (2,) pixels of iris shift at gaze (1, 1), image axes


class EyeEditor:
    """Applies a frame's gaze to a photo (see the module docstring)."""

    def __init__(self, image: np.ndarray, fit: FaceFit):
        self.image = image
        self._work = image.copy()
        self._eyes = [e for e in (_prepare(image, fit, fm.EYE_R_RING, fm.IRIS_R),
                                  _prepare(image, fit, fm.EYE_L_RING, fm.IRIS_L)) if e is not None]
        self.edited = False  # whether the last edit() changed the photo (its eye boxes)

    @property
    def boxes(self) -> list[tuple[int, int, int, int]]:
        """The photo regions (x0, y0, x1, y1) an edit may change: one per eye."""
        return [eye.box for eye in self._eyes]

    def edit(self, frame: np.ndarray) -> np.ndarray:
        """The photo with the frame's gaze applied (a buffer reused between calls: copy to keep)."""
        gaze = np.array([frame[CHANNEL_INDEX["eye.gaze_x"]], -frame[CHANNEL_INDEX["eye.gaze_y"]]])
        gaze = np.clip(gaze, -1.0, 1.0)
        if self.edited:
            for x0, y0, x1, y1 in self.boxes:
                self._work[y0:y1, x0:x1] = self.image[y0:y1, x0:x1]
            self.edited = False
        shifts = [gaze * eye.travel for eye in self._eyes]
        if all(np.abs(s).max() < MIN_SHIFT for s in shifts):
            return self._work
        for eye, shift in zip(self._eyes, shifts):
            x0, y0, x1, y1 = eye.box
            self._work[y0:y1, x0:x1] = _shifted_eye(eye, shift)
        self.edited = True
        return self._work


def _disc(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    """A soft-edged disc (h, w) float32: 1 inside, 0 outside, a 1.5-pixel ramp between."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dist = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2)
    return np.clip((radius - dist) / 1.5 + 0.5, 0.0, 1.0)


def _shifted_eye(eye: _Eye, shift: np.ndarray) -> np.ndarray:
    h, w = eye.opening.shape[:2]
    old = _disc((h, w), eye.centre, eye.radius * 1.08)[..., None]
    new = _disc((h, w), eye.centre + shift, eye.radius * 1.08)[..., None]
    moved = cv2.warpAffine(eye.iris, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    base = old * eye.filled + (1.0 - old) * eye.iris
    edited = new * moved + (1.0 - new) * base
    out = eye.opening * edited + (1.0 - eye.opening) * eye.iris
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _prepare(image: np.ndarray, fit: FaceFit, ring: np.ndarray, iris: tuple[int, ...]) -> _Eye | None:
    lm = fit.landmarks
    contour = lm[ring, :2]
    centre = lm[iris[0], :2]
    radius = float(np.linalg.norm(lm[list(iris[1:]), :2] - centre, axis=1).mean())
    width = float(np.ptp(contour[:, 0]))
    height = float(np.ptp(contour[:, 1]))
    if width < 4.0 or radius < 1.0 or fit.source != "mediapipe":
        return None  # too small to edit, or no iris landmarks (a hand-placed fit)
    pad = int(np.ceil(radius * 1.6 + width * GAZE_TRAVEL_X)) + 2
    h, w = image.shape[:2]
    x0 = max(0, int(np.floor(contour[:, 0].min())) - pad)
    y0 = max(0, int(np.floor(contour[:, 1].min())) - pad)
    x1 = min(w, int(np.ceil(contour[:, 0].max())) + pad + 1)
    y1 = min(h, int(np.ceil(contour[:, 1].max())) + pad + 1)
    patch = image[y0:y1, x0:x1]
    opening = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round((contour - (x0, y0)) * (1 << _AA)).astype(np.int32)], 255, cv2.LINE_AA, _AA)
    local = centre - (x0, y0)
    lift = (_disc(patch.shape[:2], local, radius * 1.3) > 0).astype(np.uint8) * 255
    filled = cv2.inpaint(np.ascontiguousarray(patch[:, :, ::-1]), lift, max(2.0, radius * 0.5), cv2.INPAINT_TELEA)[:, :, ::-1]
    travel = np.array([GAZE_TRAVEL_X * width, GAZE_TRAVEL_Y * height])
    return _Eye((x0, y0, x1, y1), local, radius, (opening.astype(np.float32) / 255.0)[..., None],
                filled.astype(np.float32), patch.astype(np.float32), travel)
