"""The 2D portrait renderer: a photo warped frame by frame so its face follows a motion track.

Per frame (see :class:`PortraitRenderer`):

1. **Geometry** (:mod:`studio.render.portrait_rig`): where the 478 dense landmarks go; a ring of
   points around the head follows the head rigidly and a frame of anchors around the working
   region stays put, so head turns and nods blend into the neck and background and nothing tears.
2. **Eyes**: gaze moves each iris inside its eye opening, as an edit of the photo's own texture
   (the iris is lifted off, the eye white filled in behind it) before the warp, so the lids and
   the head carry it like the rest of the face.
3. **Warp**: a piecewise-affine map over the triangles of FaceMesh's surface, the mouth and eye
   openings and the head ring: each output pixel is looked up in the photo through the affine
   map of the triangle it falls in (triangles drawn far to near, so a turned head hides what it
   should). No motion gives the identity map, and the photo comes back unchanged.
4. **Mouth** (:mod:`studio.render.mouth`): where the lips part wider than in the photo, a mouth
   interior — dark cavity, teeth, tongue — drawn from the frame's lip contour only, so it is the
   same picture for the same lips (no flicker) and vanishes as the lips close.

Two backends give one result: ``"opencv"`` (here) and ``"torch"`` (:mod:`studio.render.portrait_torch`,
CUDA when available). The geometry, the triangle raster and the mouth picture are shared; the
backends differ in the per-pixel work (the map, the lookup, the compositing).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from studio.core.motion import ROTATION, SCALE, TRANSLATION, rotation_matrices
from studio.render import face_mesh as fm
from studio.render.eyes import EyeEditor
from studio.render.face_fit import FaceFit
from studio.render.mouth import MouthPainter
from studio.render.portrait_rig import PortraitRig

#: The working region around the face, as a share of the face box's larger side on every side.
REGION_MARGIN = 0.8
#: The head ring: the face outline pushed out from its centre by this factor (hair, ears, neck).
HEAD_RING = 1.45
#: Above this many working-region pixels the map is computed at half resolution and upsampled.
FULL_RES_MAP_PIXELS = 400_000
_SUBPIXEL_BITS = 4  # cv2.fillConvexPoly's fixed-point shift


@dataclass(frozen=True)
class _Mesh:
    """The warp mesh: vertex kinds and triangles (indices into dense + ring + anchors)."""

    ring_face: np.ndarray  # (H, 3) head-ring points in face units (rigid with the head)
    anchors: np.ndarray  # (A, 2) fixed image points on the working region's border
    triangles: np.ndarray  # (F, 3)
    behind: np.ndarray  # (F,) bool: triangles of the ring (drawn first)
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the working region


class PortraitRenderer:
    """Renders frames of a motion track over one fitted portrait. ``image`` is H × W × 3 uint8 RGB."""

    def __init__(self, image: np.ndarray, fit: FaceFit):
        if image.shape[:2] != fit.image_size or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"the image ({image.shape}, {image.dtype}) does not match the fit ({fit.image_size})")
        self.image = np.ascontiguousarray(image)
        self.fit = fit
        self.rig = PortraitRig(fit)
        self.mesh = _build_mesh(fit, self.rig)
        x0, y0, x1, y1 = self.mesh.region
        self.step = 1 if (x1 - x0) * (y1 - y0) <= FULL_RES_MAP_PIXELS else 2
        self.source_points = self._vertices(self.rig.rest_frame()[None])[0]
        self._source_triangles = self.source_points[self.mesh.triangles][..., :2]  # (F, 3, 2): fixed
        self.eyes = EyeEditor(self.image, fit)
        self.mouth = MouthPainter(self.image, fit, self.source_points)

    # --- geometry --------------------------------------------------------------------------------

    def _vertices(self, frames: np.ndarray) -> np.ndarray:
        """All warp vertices (T, V, 3) in image coordinates: dense landmarks, head ring, anchors."""
        m = np.atleast_2d(np.asarray(frames, dtype=np.float64))
        dense = self.rig.points(m)
        rot = rotation_matrices(m[:, ROTATION.start], m[:, ROTATION.start + 1], m[:, ROTATION.start + 2])
        ring = m[:, SCALE, None, None] * np.einsum("nj,tij->tni", self.mesh.ring_face, rot) + m[:, None, TRANSLATION]
        ring = self.fit.to_image(ring)
        anchors = np.broadcast_to(np.c_[self.mesh.anchors, np.full(len(self.mesh.anchors), -1e6)],
                                  (len(m), len(self.mesh.anchors), 3))
        return np.concatenate([dense, ring, anchors], axis=1)

    def grid(self) -> tuple[float, float, int, int, int]:
        """The sampling grid of the map: origin x, y (photo pixels of sample [0, 0]), step, rows,
        columns. At step 1 it is the working region's pixels. At step 2 it is every other pixel,
        offset by half a step and extended by one sample on each side, so that an INTER_LINEAR
        doubling (see :meth:`_map`) lands exactly on the region's pixels with no edge effects."""
        x0, y0, x1, y1 = self.mesh.region
        if self.step == 1:
            return float(x0), float(y0), 1, y1 - y0, x1 - x0
        return x0 - 1.5, y0 - 1.5, 2, -(-(y1 - y0) // 2) + 2, -(-(x1 - x0) // 2) + 2

    def raster(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Triangle ids over the map's grid (see :meth:`grid`; −1: none) and each triangle's
        affine map (F, 2, 3) from output to photo pixels."""
        ox, oy, step, h, w = self.grid()
        tri = self.mesh.triangles
        dst = vertices[tri]  # (F, 3, 3)
        affine, ok = _affines(dst[..., :2], self._source_triangles)
        depth = np.where(self.mesh.behind, -np.inf, dst[..., 2].mean(1))
        ids = np.full((h, w), -1, dtype=np.int32)
        corners = (dst[..., :2] - (ox, oy)) / step  # grid coordinates
        centre = corners.mean(1, keepdims=True)
        grown = centre + (corners - centre) * (1.0 + 0.75 / np.maximum(_sizes(corners), 1e-6))[:, None, None]
        fixed = np.round(grown * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        for f in np.argsort(depth, kind="stable"):
            if ok[f]:
                cv2.fillConvexPoly(ids, fixed[f], int(f), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        return ids, affine

    # --- pixels ----------------------------------------------------------------------------------

    def render(self, frame: np.ndarray) -> np.ndarray:
        """One motion frame (74,) → an H × W × 3 uint8 RGB picture."""
        frame = np.asarray(frame, dtype=np.float64)
        vertices = self._vertices(frame[None])[0]
        ids, affine = self.raster(vertices)
        source = self.eyes.edit(frame)
        map_x, map_y = self._map(ids, affine)
        x0, y0, x1, y1 = self.mesh.region
        out = self.image.copy()
        out[y0:y1, x0:x1] = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self.mouth.paint(out, vertices)
        return out

    def _map(self, ids: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photo coordinates (float32 maps) of every working-region pixel."""
        x0, y0, x1, y1 = self.mesh.region
        ox, oy, step, h, w = self.grid()
        xs = (ox + np.arange(w, dtype=np.float64) * step)[None, :]
        ys = (oy + np.arange(h, dtype=np.float64) * step)[:, None]
        a = affine[np.maximum(ids, 0)]  # (h, w, 2, 3)
        inside = ids >= 0
        map_x = np.where(inside, a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2], xs).astype(np.float32)
        map_y = np.where(inside, a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2], ys).astype(np.float32)
        if step > 1:  # fine pixel i of the doubled grid is photo pixel x0 + i − 2
            cut = (slice(2, 2 + y1 - y0), slice(2, 2 + x1 - x0))
            map_x = cv2.resize(map_x, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)[cut]
            map_y = cv2.resize(map_y, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)[cut]
        return map_x, map_y


def _sizes(corners: np.ndarray) -> np.ndarray:
    """A length scale of each triangle (F,): its longest side."""
    edges = corners - np.roll(corners, 1, axis=1)
    return np.sqrt((edges ** 2).sum(-1)).max(1)


def _affines(dst: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Affine maps (F, 2, 3) taking each dst triangle (F, 3, 2) onto its src triangle, and which
    dst triangles are not degenerate (F,)."""
    m = np.concatenate([dst, np.ones(dst.shape[:2] + (1,))], axis=2)  # rows (x, y, 1)
    det = np.linalg.det(m)
    ok = np.abs(det) > 1e-6
    inv = np.linalg.inv(np.where(ok[:, None, None], m, np.eye(3)))
    return np.swapaxes(inv @ src, 1, 2), ok  # m @ Aᵀ = src


def _build_mesh(fit: FaceFit, rig: PortraitRig) -> _Mesh:
    h, w = fit.image_size
    lm = fit.landmarks
    bx0, by0, bx1, by1 = fit.box
    side = max(bx1 - bx0, by1 - by0)
    x0 = int(max(0, np.floor(bx0 - REGION_MARGIN * side)))
    y0 = int(max(0, np.floor(by0 - REGION_MARGIN * side)))
    x1 = int(min(w, np.ceil(bx1 + REGION_MARGIN * side)))
    y1 = int(min(h, np.ceil(by1 + REGION_MARGIN * side)))

    oval = list(fm.FACE_OVAL)
    oval_face = rig.canonical[oval]
    centre = oval_face.mean(0)
    ring_face = centre + (oval_face - centre) * (HEAD_RING, HEAD_RING, 1.0) - (0.0, 0.0, 0.3)
    ring_image = fit.to_image(ring_face)[:, :2]
    inset = 4.0
    keep = ((ring_image[:, 0] > x0 + inset) & (ring_image[:, 0] < x1 - 1 - inset)
            & (ring_image[:, 1] > y0 + inset) & (ring_image[:, 1] < y1 - 1 - inset))
    ring_face, ring_image = ring_face[keep], ring_image[keep]

    per_side = 8
    t = np.linspace(0.0, 1.0, per_side, endpoint=False)
    xa, ya, xb, yb = x0, y0, x1 - 1, y1 - 1
    anchors = np.concatenate([
        np.c_[xa + t * (xb - xa), np.full(per_side, ya)], np.c_[np.full(per_side, xb), ya + t * (yb - ya)],
        np.c_[xb - t * (xb - xa), np.full(per_side, yb)], np.c_[np.full(per_side, xa), yb - t * (yb - ya)]])

    n_dense = len(lm)
    surface = fm.surface_triangles()
    openings = np.concatenate([fm.strip_triangles(fm.LIP_INNER_UPPER, fm.LIP_INNER_LOWER),
                               fm.strip_triangles(fm.EYE_R_UPPER, fm.EYE_R_LOWER),
                               fm.strip_triangles(fm.EYE_L_UPPER, fm.EYE_L_LOWER)])
    # The ring around the face: Delaunay over outline, head ring and anchors, outside the outline.
    outline = lm[oval, :2]
    points = np.concatenate([outline, ring_image, anchors])
    index = np.concatenate([np.array(oval), n_dense + np.arange(len(ring_image)),
                            n_dense + len(ring_image) + np.arange(len(anchors))])
    around = Delaunay(points).simplices
    polygon = outline.astype(np.float32).reshape(-1, 1, 2)
    centroids = points[around].mean(1)
    outside = np.array([cv2.pointPolygonTest(polygon, (float(cx), float(cy)), False) < 0 for cx, cy in centroids])
    ring_tris = index[around[outside]]
    triangles = np.concatenate([surface, openings, ring_tris]).astype(np.int64)
    behind = np.r_[np.zeros(len(surface) + len(openings), bool), np.ones(len(ring_tris), bool)]
    return _Mesh(ring_face, anchors, triangles, behind, (x0, y0, x1, y1))
