"""The mouth interior of the portrait renderer: cavity, teeth and tongue where the lips part.

Drawn after the warp inside the frame's inner-lip contour, in a coordinate frame of the mouth
itself (u along the line between the corners, −1 … 1; v across it, pixels): the upper teeth
hang from the upper lip, the lower teeth stand on the lower lip, the tongue lies behind them and
the rest is a dark cavity tinted by the lips' own colour. Every shape is a function of the frame's
lip contour alone, so the same lips give the same picture (no flicker), and the picture fades in
only where the lips part wider than in the photo (a photo that already shows teeth keeps them for
small openings) and is gone once they close.
"""

from __future__ import annotations

import cv2
import numpy as np

from studio.render import face_mesh as fm
from studio.render.face_fit import FaceFit

#: Opening beyond the photo's at which the drawn interior is fully shown (face units: eyes 1 apart).
FULL_OPENING = 0.05
#: Teeth heights at the middle of the mouth, as shares of the mouth's width at rest.
UPPER_TEETH = 0.11
LOWER_TEETH = 0.07
#: Where the teeth have gaps between them, in u (−1 … 1) along the mouth.
UPPER_GAPS = (0.0, 0.24, -0.24, 0.44, -0.44)
LOWER_GAPS = (0.14, -0.14, 0.34, -0.34)
TEETH_RGB = np.array([200.0, 190.0, 172.0])
_AA = 3


class MouthPainter:
    """Paints the mouth interior of frames of one fitted portrait."""

    def __init__(self, image: np.ndarray, fit: FaceFit, source_points: np.ndarray):
        self.fit = fit
        src = source_points
        self.rest_gap = _gap(src)
        self.rest_width = float(np.linalg.norm(src[fm.LIP_INNER_UPPER[-1], :2] - src[fm.LIP_INNER_UPPER[0], :2]))
        lips = _lip_colour(image, src)
        skin = _skin_luminance(image, src)
        light = float(np.clip(skin / 170.0, 0.5, 1.05))
        self.cavity = lips * 0.13 + np.array([6.0, 2.0, 2.0])
        self.tongue = (0.55 * lips + 0.45 * np.array([175.0, 85.0, 85.0])) * 0.72 * light
        self.teeth = TEETH_RGB * light

    def opacity(self, points: np.ndarray) -> float:
        """How much of the drawn interior shows for a frame's vertices: 0 … 1."""
        extra = (_gap(points) - self.rest_gap) / (FULL_OPENING * self.fit.scale)
        return float(np.clip(extra - 0.1, 0.0, 1.0))

    def paint(self, out: np.ndarray, points: np.ndarray) -> None:
        """Draws the interior into ``out`` (H × W × 3 uint8) for the frame's vertices (V, ≥2)."""
        alpha = self.opacity(points)
        if alpha <= 0.0:
            return
        interior, mask, (x0, y0) = self.picture(points, out.shape[:2])
        if mask is None:
            return
        h, w = mask.shape
        region = out[y0:y0 + h, x0:x0 + w].astype(np.float32)
        a = (mask * alpha)[..., None]
        out[y0:y0 + h, x0:x0 + w] = np.clip(region * (1.0 - a) + interior * a + 0.5, 0, 255).astype(np.uint8)

    def picture(self, points: np.ndarray, image_size: tuple[int, int]):
        """The interior (h, w, 3) float32, its coverage (h, w) float32 and its top-left corner."""
        contour = points[fm.LIP_INNER_RING, :2]
        H, W = image_size
        x0 = max(0, int(np.floor(contour[:, 0].min())) - 2)
        y0 = max(0, int(np.floor(contour[:, 1].min())) - 2)
        x1 = min(W, int(np.ceil(contour[:, 0].max())) + 3)
        y1 = min(H, int(np.ceil(contour[:, 1].max())) + 3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None, None, (x0, y0)
        local = contour - (x0, y0)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round(local * (1 << _AA)).astype(np.int32)], 255, cv2.LINE_AA, _AA)
        mask = mask.astype(np.float32) / 255.0

        # The mouth's frame: u along the corners, v across (toward the chin), both per pixel.
        right, left = local[0], local[len(fm.LIP_INNER_UPPER) - 1]
        axis = left - right
        width = max(float(np.linalg.norm(axis)), 1e-6)
        along = axis / width
        across = np.array([-along[1], along[0]])  # image y is down: this points toward the chin
        mid = 0.5 * (left + right)
        yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        rel = np.stack([xx - mid[0], yy - mid[1]], -1)
        u = (rel @ along) / (0.5 * width)
        v = rel @ across
        upper = points[list(fm.LIP_INNER_UPPER), :2] - (x0, y0)
        lower = points[list(fm.LIP_INNER_LOWER), :2] - (x0, y0)
        v_up = _curve(u, (upper - mid) @ along / (0.5 * width), (upper - mid) @ across)
        v_low = _curve(u, (lower - mid) @ along / (0.5 * width), (lower - mid) @ across)

        size = self.rest_width
        taper = np.clip(1.0 - 0.55 * u ** 2, 0.0, 1.0)
        out = np.empty(mask.shape + (3,), np.float32)
        depth = np.clip((v - v_up) / max(1.0, 0.35 * size), 0.0, 1.0)
        out[:] = self.cavity * (1.0 - 0.35 * depth[..., None])
        # Tongue: behind the lower teeth, a low dome across the floor of the mouth.
        tongue_top = v_low - 0.16 * size * taper - 0.02 * size
        tongue = _soft_step(v - tongue_top, 1.5) * (np.abs(u) < 0.8)
        shade = 0.75 + 0.25 * np.clip((v - tongue_top) / max(1.0, 0.1 * size), 0.0, 1.0)
        out = _over(out, self.tongue * shade[..., None], tongue)
        # Teeth: shaded darker toward the corners and along the gaps between them.
        lower_top = v_low - LOWER_TEETH * size * taper
        lower = _soft_step(v - lower_top, 1.0) * (np.abs(u) < 0.82)
        out = _over(out, self.teeth * _teeth_shade(u, LOWER_GAPS, width)[..., None] * 0.9, lower)
        upper_bottom = v_up + UPPER_TEETH * size * taper
        upper = _soft_step(upper_bottom - v, 1.0) * (np.abs(u) < 0.86)
        edge = 1.0 - 0.18 * np.clip((v - v_up) / max(1.0, UPPER_TEETH * size), 0.0, 1.0)
        out = _over(out, self.teeth * (_teeth_shade(u, UPPER_GAPS, width) * edge)[..., None], upper)
        # A shadow under the upper lip and at the corners.
        lip_shadow = 1.0 - 0.35 * np.exp(-np.maximum(v - v_up, 0.0) / max(1.0, 0.03 * size))
        corner_shadow = 1.0 - 0.6 * np.clip((np.abs(u) - 0.6) / 0.4, 0.0, 1.0)
        out *= (lip_shadow * corner_shadow)[..., None]
        return out, mask, (x0, y0)


def _gap(points: np.ndarray) -> float:
    """The inner lips' opening at the middle of the mouth (pixels)."""
    return float(np.linalg.norm(points[fm.LIP_INNER_LOWER[5], :2] - points[fm.LIP_INNER_UPPER[5], :2]))


def _curve(u: np.ndarray, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    order = np.argsort(us)
    return np.interp(u, us[order], vs[order]).astype(np.float32)


def _soft_step(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(x / width + 0.5, 0.0, 1.0)


def _over(under: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    return under * (1.0 - a) + colour * a


def _teeth_shade(u: np.ndarray, gaps: tuple[float, ...], width: float) -> np.ndarray:
    shade = 1.0 - 0.5 * np.clip(np.abs(u) - 0.2, 0.0, None) ** 1.5
    pixel = 2.0 / max(width, 1.0)  # one pixel in u
    for g in gaps:
        shade = shade * (1.0 - 0.12 * np.exp(-((u - g) / (0.8 * pixel)) ** 2))
    return shade.astype(np.float32)


def _lip_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB of the lips in the photo (between the outer and inner contours)."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    outer = fm.ring(fm.LIP_OUTER_UPPER, fm.LIP_OUTER_LOWER)
    cv2.fillPoly(mask, [np.round(points[outer, :2]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(points[fm.LIP_INNER_RING, :2]).astype(np.int32)], 0)
    if mask.sum() < 4:
        return np.array([150.0, 80.0, 80.0])
    return image[mask > 0].reshape(-1, 3).astype(np.float64).mean(0)


def _skin_luminance(image: np.ndarray, points: np.ndarray) -> float:
    """Mean luminance of the cheeks and forehead (small patches around a few surface landmarks)."""
    h, w = image.shape[:2]
    values = []
    for index in (50, 280, 151, 9):  # cheeks, forehead, between the brows
        x, y = np.round(points[index, :2]).astype(int)
        patch = image[max(0, y - 3):min(h, y + 4), max(0, x - 3):min(w, x + 4)]
        if patch.size:
            values.append(patch.reshape(-1, 3).astype(np.float64) @ [0.299, 0.587, 0.114])
    return float(np.concatenate(values).mean()) if values else 160.0
