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
#: Where one tooth meets the next, in u (−1 … 1) along the mouth, from the middle out: incisors,
#: canines, premolars (the last bound is where the visible row ends).
UPPER_TEETH_BOUNDS = (0.0, 0.25, 0.45, 0.61, 0.75, 0.86)
LOWER_TEETH_BOUNDS = (0.0, 0.15, 0.3, 0.46, 0.64, 0.82)
#: Teeth in neutral light; tinted toward the photo's skin tone (its light) by ``TEETH_TINT``.
TEETH_RGB = np.array([214.0, 204.0, 186.0])
TEETH_TINT = 0.35
_AA = 3


class MouthPainter:
    """Paints the mouth interior of frames of one fitted portrait."""

    def __init__(self, image: np.ndarray, fit: FaceFit, source_points: np.ndarray):
        self.fit = fit
        src = source_points
        self.rest_gap = _gap(src)
        self.rest_width = float(np.linalg.norm(src[fm.LIP_INNER_UPPER[-1], :2] - src[fm.LIP_INNER_UPPER[0], :2]))
        lips = _lip_colour(image, src)
        skin = _skin_colour(image, src)
        light = float(np.clip(skin.mean() / 170.0, 0.5, 1.05))
        self.cavity = lips * 0.13 + np.array([6.0, 2.0, 2.0])
        self.tongue = (0.55 * lips + 0.45 * np.array([175.0, 85.0, 85.0])) * 0.72 * light
        tint = (np.maximum(skin, 1.0) / max(float(skin.mean()), 1.0)) ** TEETH_TINT
        self.teeth = np.clip(TEETH_RGB * light * tint, 0.0, 245.0)

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
        # Teeth: one rounded crown per tooth between its neighbours' gaps, lit in the middle.
        pixel = 2.0 / width  # one pixel in u
        lower_height = LOWER_TEETH * size * taper * _crowns(u, LOWER_TEETH_BOUNDS, pixel)
        lower_top = v_low - lower_height
        lower = _soft_step(v - lower_top, 1.0) * _soft_step(LOWER_TEETH_BOUNDS[-1] - np.abs(u), pixel)
        lower_shade = _teeth_shade(u, LOWER_TEETH_BOUNDS, pixel) * _edge_shade(v_low - v, lower_height)
        out = _over(out, self.teeth * (0.9 * lower_shade)[..., None], lower)
        upper_height = UPPER_TEETH * size * taper * _crowns(u, UPPER_TEETH_BOUNDS, pixel)
        upper = _soft_step(v_up + upper_height - v, 1.0) * _soft_step(UPPER_TEETH_BOUNDS[-1] - np.abs(u), pixel)
        upper_shade = _teeth_shade(u, UPPER_TEETH_BOUNDS, pixel) * _edge_shade(v - v_up, upper_height)
        out = _over(out, self.teeth * upper_shade[..., None], upper)
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


def _tooth_coordinate(u: np.ndarray, bounds: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: where it sits across its tooth (−1 … 1, 0 in the middle) and its distance to
    the nearest gap (in u). Teeth mirror about the middle of the mouth."""
    b = np.asarray(bounds, dtype=np.float32)
    a = np.abs(u)
    k = np.clip(np.searchsorted(b, a), 1, len(b) - 1)
    lo, hi = b[k - 1], b[k]
    across = (2.0 * (a - lo) / (hi - lo) - 1.0).clip(-1.0, 1.0)
    return across, np.minimum(a - lo, hi - a).clip(0.0, None)


def _crowns(u: np.ndarray, bounds: tuple[float, ...], pixel: float) -> np.ndarray:
    """The height of the teeth along the mouth, as a share of the full height: each crown's
    biting edge rounds off toward its gaps, and the row shortens toward the corners."""
    across, _ = _tooth_coordinate(u, bounds)
    return (1.0 - 0.22 * np.abs(across) ** 4) * (1.0 - 0.3 * np.clip(np.abs(u) - 0.45, 0.0, None))


def _teeth_shade(u: np.ndarray, bounds: tuple[float, ...], pixel: float) -> np.ndarray:
    """Light on the teeth: brightest on the middle of each crown (they are rounded), darker toward
    the corners of the mouth, and a dark line about a pixel wide at every gap."""
    across, to_gap = _tooth_coordinate(u, bounds)
    shade = (1.0 - 0.14 * across ** 2) * (1.0 - 0.5 * np.clip(np.abs(u) - 0.2, 0.0, None) ** 1.5)
    shade = shade * (1.0 - 0.25 * np.exp(-(to_gap / (0.8 * pixel)) ** 2))
    return shade.astype(np.float32)


def _edge_shade(from_root: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Along a tooth from its root (under the lip) to its biting edge: the edge is thinner and a
    little translucent, so it darkens over its last fifth."""
    t = np.clip(from_root / np.maximum(height, 1.0), 0.0, 1.0)
    return (1.0 - 0.22 * np.clip((t - 0.8) / 0.2, 0.0, 1.0)).astype(np.float32)


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


def _skin_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB of the cheeks and forehead (small patches around a few surface landmarks)."""
    h, w = image.shape[:2]
    values = []
    for index in (50, 280, 151, 9):  # cheeks, forehead, between the brows
        x, y = np.round(points[index, :2]).astype(int)
        patch = image[max(0, y - 3):min(h, y + 4), max(0, x - 3):min(w, x + 4)]
        if patch.size:
            values.append(patch.reshape(-1, 3).astype(np.float64))
    return np.concatenate(values).mean(0) if values else np.array([180.0, 150.0, 130.0])
