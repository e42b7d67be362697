"""A procedural head in FLAME's exact file format — a stand-in for tests, benchmarks and demos.

**This is not FLAME.** FLAME's license forbids shipping the model and nothing downloads at run
time, so code that consumes FLAME models (the loaders, :class:`~studio.render.mesh.flame.FlameModel`,
the 3D preview, mesh export, benchmarks) is exercised on this head instead. It has FLAME 2020's
keys, shapes and dtypes — ``v_template`` (5023, 3), ``shapedirs`` (5023, 3, 400: 300 identity +
100 expression), ``posedirs`` (5023, 3, 36), ``J_regressor`` (5, 5023), ``weights`` (5023, 5),
``kintree_table`` (2, 5), ``f`` (9976, 3) — and FLAME's axes and units (metres, +x the subject's
left, +y up, +z out of the face, inter-ocular distance 63 mm), but its own surface, vertex order
(apart from the keypoint vertices below) and blendshapes.

How it is built (all deterministic; ``seed`` only changes the random parts of the blendshapes):

* **Surface.** An implicit head — a smooth union of ellipsoids for cranium, face, nose, brows,
  cheekbones, lips, chin, ears, eyeballs and a rounded neck — is sampled along rays from a centre
  inside it. The ray directions are a Fibonacci sphere concentrated on the face (a conformal
  dilation of the sphere toward the face), plus structured rows around the mouth and the eyes;
  their convex hull is a Delaunay triangulation of the sphere, which becomes the head surface.
* **Openings.** The triangles inside the mouth and the two eye outlines are removed: the mouth is
  a slit whose upper and lower lip rims are separate vertices lying on top of each other while
  the mouth is closed (so opening the jaw opens the mouth), and each eye is an almond-shaped
  opening whose upper and lower lid rims close on a blink. Two eyeball spheres sit behind the eye
  openings. The neck is closed at its base. These openings and eyeballs fix the counts: with
  ``V = 5023``, a closed two-sphere-plus-three-holes surface has exactly 9976 triangles.
* **Keypoints.** The keypoints of :mod:`studio.core.keypoints` are placed at the mean face
  (``MEAN_FACE`` × 63 mm) and the vertices there receive the FLAME ids of ``FLAME_VERTICES``
  (``lip_upper_center`` 3514 on the upper lip rim and ``lip_lower_center`` 3497 on the lower rim,
  coincident while the mouth is closed); the surface is bent by a smooth depth correction so
  every keypoint lies exactly on its target.
* **Joints and skinning.** Global (neck base), neck (head pivot), jaw (between the jaw hinges,
  in front of the neck), left and right eye (eyeball centres); the ``J_regressor`` rows are
  smooth non-negative weights over vertex sets around each joint (the eyeballs, a ring of the
  neck, the jaw hinges). The jaw drives the lower lip and the chin below the mouth slit with a
  falloff into the cheeks, the neck drives the head, the global joint the lower neck, each eye
  its eyeball.
* **Blendshapes.** Identity: smooth random displacement fields (sums of Gaussian bumps,
  mirrored for most components), orthonormalized and scaled like PCA components. Expression:
  localized semantic fields first (blinks, jaw-free mouth opening, smiles, lip corner depressors,
  pucker, stretch, lip raise/depress/press, brow raises and lowerers, lid raise, squint, cheek
  puff, nose wrinkle, mouth shift, chin raise), orthogonalized in that order, then smooth random
  fields on the face fill the 100 components. Pose correctives: the eyelids follow the eyes'
  vertical gaze, the mouth corners and chin tissue follow the jaw, the throat the neck.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import ConvexHull, Delaunay, cKDTree

from studio.core.keypoints import KEYPOINT_INDEX, MEAN_FACE

__all__ = ["IOD_METRES", "build_flame_like_model"]

IOD_METRES = 0.063
NUM_VERTICES = 5023
NUM_FACES = 9976
NUM_SHAPE = 300
NUM_EXPRESSION = 100
NUM_JOINTS = 5
ROOT_PARENT = 4294967295  # FLAME stores the root's parent as unsigned −1

_MOUTH_INTERIOR = 17  # interior vertices of each lip rim (the two corners are shared)
_EYE_INTERIOR = 6  # interior vertices of each lid rim
_EYEBALL_VERTICES = 180
_RAY_ORIGIN = np.array([0.0, 0.005, 0.0])
_FACE_AXIS = np.array([0.0, -0.1, 1.0]) / np.linalg.norm([0.0, -0.1, 1.0])
_FACE_DILATION = 0.55  # < 1 concentrates the background samples on the face


def _m(point_in_face_units) -> np.ndarray:
    return np.asarray(point_in_face_units, dtype=np.float64) * IOD_METRES


def _target(name: str) -> np.ndarray:
    return _m(MEAN_FACE[KEYPOINT_INDEX[name]])


# --- the implicit head ------------------------------------------------------------------------

# (centre, radii[, exponent of x]) of ellipsoids, metres; the head is their smooth union. An x
# exponent of 4 flattens the front of the shape (a superellipsoid).
_ELLIPSOIDS: tuple[tuple, ...] = (
    ((0.0, 0.040, -0.006), (0.074, 0.100, 0.097)),  # cranium
    ((0.0, -0.010, 0.030), (0.060, 0.066, 0.066)),  # face mass
    ((0.0, -0.032, 0.063), (0.036, 0.030, 0.046)),  # muzzle (teeth and lips)
    ((0.0, -0.046, 0.045), (0.050, 0.036, 0.050)),  # jaw
    ((0.0, -0.067, 0.0875), (0.016, 0.012, 0.014)),  # chin
    ((0.0, 0.022, 0.092), (0.008, 0.028, 0.011)),  # nose bridge
    ((0.0, 0.002, 0.1135), (0.0085, 0.014, 0.0145)),  # nose tip
    ((0.0125, -0.006, 0.100), (0.0075, 0.0065, 0.009)),  # left nose wing
    ((-0.0125, -0.006, 0.100), (0.0075, 0.0065, 0.009)),  # right nose wing
    ((0.0, 0.046, 0.0223), (0.066, 0.016, 0.0778), 4),  # brow ridge, flat across the front
    ((0.038, -0.004, 0.072), (0.026, 0.022, 0.025)),  # left cheekbone
    ((-0.038, -0.004, 0.072), (0.026, 0.022, 0.025)),  # right cheekbone
    ((0.0, -0.025, 0.103), (0.023, 0.0075, 0.012)),  # upper lip
    ((0.0, -0.036, 0.1015), (0.021, 0.0075, 0.012)),  # lower lip
    ((0.0735, 0.020, -0.006), (0.010, 0.030, 0.018)),  # left ear
    ((-0.0735, 0.020, -0.006), (0.010, 0.030, 0.018)),  # right ear
    ((0.0315, 0.0315, 0.0765), (0.0125, 0.0125, 0.0125)),  # left eyeball (lids wrap it)
    ((-0.0315, 0.0315, 0.0765), (0.0125, 0.0125, 0.0125)),  # right eyeball
)
_LIP_GROOVE = ((0.0, -0.0298, 0.1175), (0.027, 0.0020, 0.0085))  # carved out of the lips
_NECK_AXIS = (0.0, -0.014)  # x, z of the neck's vertical axis
_NECK_RADIUS = 0.051
_NECK_BOTTOM = -0.165
_NECK_TOP = -0.02
_BLEND = 0.008  # smooth-union width, metres


def _ellipsoid_distance(points: np.ndarray, centre, radii, x_exponent: int = 2) -> np.ndarray:
    """An approximate signed distance to an ellipsoid (negative inside)."""
    q = (points - np.asarray(centre)) / np.asarray(radii)
    if x_exponent != 2:
        level = np.sqrt(np.abs(q[..., 0]) ** x_exponent + q[..., 1] ** 2 + q[..., 2] ** 2)
        return (level - 1.0) * min(radii)
    k0 = np.sqrt(np.einsum("...i,...i->...", q, q))
    q = q / np.asarray(radii)
    k1 = np.sqrt(np.einsum("...i,...i->...", q, q))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _neck_distance(points: np.ndarray) -> np.ndarray:
    """Signed distance to a vertical cylinder with a rounded bottom edge."""
    radial = np.hypot(points[..., 0] - _NECK_AXIS[0], points[..., 2] - _NECK_AXIS[1]) - _NECK_RADIUS
    middle = 0.5 * (_NECK_TOP + _NECK_BOTTOM)
    half = 0.5 * (_NECK_TOP - _NECK_BOTTOM)
    vertical = np.abs(points[..., 1] - middle) - half
    rounding = 0.012
    radial_r, vertical_r = radial + rounding, vertical + rounding
    outside = np.hypot(np.maximum(radial_r, 0.0), np.maximum(vertical_r, 0.0))
    return outside + np.minimum(np.maximum(radial_r, vertical_r), 0.0) - rounding


def _smooth_union(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """Polynomial smooth minimum: ``min(a, b)`` rounded over ``width`` (adds at most width/4)."""
    h = np.maximum(width - np.abs(a - b), 0.0) / width
    return np.minimum(a, b) - h * h * width / 4.0


def _head_distance(points: np.ndarray) -> np.ndarray:
    """The implicit head: negative inside, about the distance in metres near the surface."""
    result = _neck_distance(points)
    for shape in _ELLIPSOIDS:
        result = _smooth_union(result, _ellipsoid_distance(points, *shape), _BLEND)
    # The lips meet a few millimetres behind their fronts: carve the seam.
    groove = _ellipsoid_distance(points, *_LIP_GROOVE)
    return -_smooth_union(-result, groove, 0.003)


def _last_crossing(origins: np.ndarray, directions: np.ndarray, length: float, step: float) -> np.ndarray:
    """The farthest point along each ray ``origin + t·direction`` (0 ≤ t ≤ length) inside the head."""
    ts = np.arange(0.0, length + step, step)
    inside = np.stack([_head_distance(origins + t * directions) < 0.0 for t in ts], axis=1)
    if not np.all(inside.any(axis=1)):
        raise RuntimeError("a ray misses the implicit head")
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    low, high = ts[last], np.minimum(ts[last] + step, length)
    for _ in range(30):
        middle = 0.5 * (low + high)
        is_inside = _head_distance(origins + middle[:, None] * directions) < 0.0
        low = np.where(is_inside, middle, low)
        high = np.where(is_inside, high, middle)
    return origins + (0.5 * (low + high))[:, None] * directions


def _surface_along_rays(directions: np.ndarray) -> np.ndarray:
    origins = np.broadcast_to(_RAY_ORIGIN, directions.shape)
    return _last_crossing(origins, directions, 0.30, 0.0015)


def _surface_in_front(xy: np.ndarray) -> np.ndarray:
    """Points of the head's front surface seen straight along −z at face-plane positions (x, y)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    origins = np.column_stack([xy, np.full(len(xy), 0.2)])
    directions = np.broadcast_to(np.array([0.0, 0.0, -1.0]), origins.shape)
    ts = np.arange(0.0, 0.3, 0.0005)
    inside = np.stack([_head_distance(origins + t * directions) < 0.0 for t in ts], axis=1)
    if not np.all(inside.any(axis=1)):
        raise RuntimeError("a front ray misses the implicit head")
    first = np.argmax(inside, axis=1)
    high, low = ts[first], ts[np.maximum(first - 1, 0)]
    for _ in range(30):
        middle = 0.5 * (low + high)
        is_inside = _head_distance(origins + middle[:, None] * directions) < 0.0
        high = np.where(is_inside, middle, high)
        low = np.where(is_inside, low, middle)
    return origins + (0.5 * (low + high))[:, None] * directions


# --- structured samples around the mouth, the eyes and the keypoints --------------------------

@dataclass
class _Samples:
    """Surface samples: where each ray points (``ray_xy``: the face-plane position whose front
    surface point gives the ray, mouth drawn open) and where the vertex ends (``xy``, mouth closed)."""

    ray_xy: list
    xy: list
    groups: dict

    def add(self, group: str, xy, ray_xy=None) -> int:
        self.xy.append(np.asarray(xy, dtype=np.float64))
        self.ray_xy.append(np.asarray(xy if ray_xy is None else ray_xy, dtype=np.float64))
        index = len(self.xy) - 1
        self.groups.setdefault(group, []).append(index)
        return index


@dataclass(frozen=True)
class _MouthLayout:
    """The lip seam in face-plane metres: y of the seam over x, the row spacings, the slit gap."""

    corner_x: float
    centre_y: float
    corner_y: float
    row_up: float
    row_down: float
    gap: float

    def seam_y(self, x: np.ndarray) -> np.ndarray:
        x = np.abs(np.asarray(x, dtype=np.float64))
        inside = self.centre_y + (self.corner_y - self.centre_y) * (np.minimum(x, self.corner_x) / self.corner_x) ** 2
        slope = (self.corner_y - self.centre_y) / self.corner_x  # half the parabola's slope there
        return inside + slope * np.maximum(x - self.corner_x, 0.0)

    def slit_gap(self, x: np.ndarray) -> np.ndarray:
        t = np.clip(np.abs(np.asarray(x, dtype=np.float64)) / self.corner_x, 0.0, 1.0)
        return self.gap * np.sqrt(1.0 - t * t)


def _mouth_layout() -> _MouthLayout:
    corner = _target("mouth_corner_l")
    centre = _target("lip_upper_center")
    layout = _MouthLayout(corner_x=corner[0], centre_y=centre[1], corner_y=corner[1],
                          row_up=1.0, row_down=1.0, gap=0.0)
    lip_up, lip_down = _target("lip_upper_l"), _target("lip_lower_l")
    row_up = (lip_up[1] - layout.seam_y(lip_up[0])) / 3.0
    row_down = (layout.seam_y(lip_down[0]) - lip_down[1]) / 3.0
    return _MouthLayout(corner_x=corner[0], centre_y=centre[1], corner_y=corner[1],
                        row_up=float(row_up), row_down=float(row_down),
                        gap=0.8 * float(min(row_up, row_down)))


def _mouth_columns(layout: _MouthLayout) -> np.ndarray:
    """x of the 19 seam columns (corner, 17 interior, corner) and 2 more beyond each corner."""
    half = (_MOUTH_INTERIOR + 1) // 2  # 9: columns −9…9
    lip_x = _target("lip_upper_l")[0]
    exponent = np.log(lip_x / layout.corner_x) / np.log(3.0 / half)  # column ±3 sits under the lip peak
    u = np.arange(-half, half + 1) / half
    x = layout.corner_x * np.sign(u) * np.abs(u) ** exponent
    step = x[-1] - x[-2]
    beyond = layout.corner_x + step * np.array([1.0, 2.0])
    return np.concatenate([-beyond[::-1], x, beyond])


def _add_mouth(samples: _Samples, layout: _MouthLayout) -> dict:
    columns = _mouth_columns(layout)
    seam = layout.seam_y(columns)
    gap = layout.slit_gap(columns)
    half_height = {1: 3.5 * layout.row_up, -1: 3.5 * layout.row_down}
    rims = {"upper": [], "lower": []}
    corners = []
    rows: dict[int, list[int]] = {}
    for c, (x, y, g) in enumerate(zip(columns, seam, gap)):
        on_slit = abs(x) < layout.corner_x * (1 - 1e-9)
        at_corner = abs(abs(x) - layout.corner_x) < 1e-12
        if on_slit:
            rims["upper"].append(samples.add("mouth_rim", (x, y), (x, y + g / 2)))
            rims["lower"].append(samples.add("mouth_rim", (x, y), (x, y - g / 2)))
        else:
            index = samples.add("mouth_rim" if at_corner else "mouth_row", (x, y))
            if at_corner:
                corners.append(index)
        for k in (-3, -2, -1, 1, 2, 3):
            side = 1 if k > 0 else -1
            offset = k * (layout.row_up if k > 0 else layout.row_down)
            ray_offset = side * g / 2 + offset * (1.0 - g / (2 * half_height[side]))
            rows.setdefault(k, []).append(
                samples.add("mouth_row", (x, y + offset), (x, y + ray_offset)))
    # The outer lip keypoints: the lower row under the upper lip peak moves onto its target.
    lower_l, lower_r = _target("lip_lower_l"), _target("lip_lower_r")
    peak_columns = [int(np.argmin(np.abs(columns - lower_r[0]))), int(np.argmin(np.abs(columns - lower_l[0])))]
    for column, target in zip(peak_columns, (lower_r, lower_l)):
        index = rows[-3][column]
        shift = target[:2] - samples.xy[index]
        samples.xy[index] = target[:2].copy()
        samples.ray_xy[index] = samples.ray_xy[index] + shift
    return {
        "upper": rims["upper"], "lower": rims["lower"], "corners": corners,  # corners: right, left
        "rows": rows, "columns": columns,
        "peak_upper": [rows[3][c] for c in peak_columns], "peak_lower": [rows[-3][c] for c in peak_columns],
    }


def _eye_rims(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Face-plane rims of one eye (side +1 left, −1 right): upper and lower lid margins (interior
    points, inner to outer), inner and outer corner."""
    suffix = "l" if side > 0 else "r"
    upper_target = _target(f"lid_upper_{suffix}")[:2]
    lower_target = _target(f"lid_lower_{suffix}")[:2]
    centre = 0.5 * (upper_target + lower_target)
    inner = centre + _m([-side * 0.23, -0.012])
    outer = centre + _m([side * 0.25, 0.022])
    u = np.arange(1, _EYE_INTERIOR + 1) / (_EYE_INTERIOR + 1)
    base = inner + u[:, None] * (outer - inner)
    bump = np.sin(np.pi * u)
    upper = base + np.column_stack([np.zeros_like(u), _m(0.075) * bump**0.8])
    lower = base - np.column_stack([np.zeros_like(u), _m(0.07) * bump])
    middle = [_EYE_INTERIOR // 2 - 1, _EYE_INTERIOR // 2]  # the two vertices around the lid middle
    for rim, target in ((upper, upper_target), (lower, lower_target)):
        correction = (target - rim[middle].mean(axis=0)) / bump[middle].mean()
        rim += bump[:, None] * correction
    return upper, lower, inner, outer


def _add_eye(samples: _Samples, side: int) -> dict:
    upper, lower, inner, outer = _eye_rims(side)
    name = "eye_l" if side > 0 else "eye_r"
    corners = [samples.add(f"{name}_rim", inner), samples.add(f"{name}_rim", outer)]
    upper_ids = [samples.add(f"{name}_rim", p) for p in upper]
    lower_ids = [samples.add(f"{name}_rim", p) for p in lower]
    row = _m(0.065)
    rows = []
    for rim, outward in ((upper, 1.0), (lower, -1.0)):
        line = np.vstack([inner, rim, outer])
        tangent = line[2:] - line[:-2]
        normal = outward * np.column_stack([-tangent[:, 1], tangent[:, 0]]) * np.sign(outer[0] - inner[0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        for k in (1, 2):  # rows follow the lid margin, away from the corners
            rows += [samples.add(f"{name}_row", p + k * row * n) for p, n in zip(rim, normal)]
    step = (outer - inner) / (_EYE_INTERIOR + 1)
    for end, direction in ((inner, -step), (outer, step)):
        rows += [samples.add(f"{name}_row", end + direction + (0.0, k * row)) for k in (-2, -1, 0, 1, 2)]
    middle = [_EYE_INTERIOR // 2 - 1, _EYE_INTERIOR // 2]
    return {"upper": upper_ids, "lower": lower_ids, "corners": corners, "rows": rows,
            "upper_middle": [upper_ids[i] for i in middle], "lower_middle": [lower_ids[i] for i in middle]}


_SINGLE_KEYPOINTS = ("nose_bridge", "nose_tip", "brow_inner_l", "brow_inner_r", "brow_outer_l",
                     "brow_outer_r", "cheek_l", "cheek_r", "chin")


# --- background samples -----------------------------------------------------------------------

def _fibonacci_sphere(count: int) -> np.ndarray:
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    radius = np.sqrt(1.0 - z * z)
    angle = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle), z])


def _face_concentrated_directions(count: int) -> np.ndarray:
    """Fibonacci directions pulled toward the face by a conformal dilation of the sphere."""
    points = _fibonacci_sphere(count)
    # Stereographic projection from the back pole (−z), scale, back: density ×1/k² at the front.
    plane = points[:, :2] / (1.0 + points[:, 2:3])
    plane *= _FACE_DILATION
    norm_sq = np.sum(plane**2, axis=1, keepdims=True)
    local = np.hstack([2.0 * plane, 1.0 - norm_sq]) / (1.0 + norm_sq)
    # Rotate +z onto the face axis.
    z_axis = _FACE_AXIS
    x_axis = np.cross([0.0, 1.0, 0.0], z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return local @ np.vstack([x_axis, y_axis, z_axis])


def _inside_hull(points_xy: np.ndarray, hull_xy: np.ndarray) -> np.ndarray:
    return Delaunay(hull_xy).find_simplex(points_xy) >= 0


def _directions(points: np.ndarray) -> np.ndarray:
    d = points - _RAY_ORIGIN
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _background(count: int, feature_points: np.ndarray, protected: list) -> np.ndarray:
    """``count`` surface points from face-concentrated rays, away from the structured samples."""
    candidates = int(count * 1.15)
    for _ in range(40):
        points = _surface_along_rays(_face_concentrated_directions(candidates))
        spacing = cKDTree(points).query(points, k=2)[0][:, 1]
        keep = cKDTree(feature_points).query(points)[0] > 0.7 * spacing
        front = points[:, 2] > 0.02
        for hull_xy in protected:
            keep &= ~(front & _inside_hull(points[:, :2], hull_xy))
        kept = int(keep.sum())
        if kept >= count and kept - count <= 0.02 * count:
            break
        candidates = round(candidates * (count + 0.01 * count) / max(kept, 1))
    else:  # pragma: no cover - the loop converges in a few steps for these sizes
        raise RuntimeError("could not place the background samples")
    points = points[keep]
    # Drop the surplus where the samples are densest, one at a time.
    while len(points) > count:
        distances = cKDTree(points).query(points, k=2)[0][:, 1]
        points = np.delete(points, int(np.argmin(distances)), axis=0)
    return points


# --- the head mesh ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Head:
    """The head before FLAME ids are assigned (construction order): geometry and labels."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    mouth: dict  # vertex ids: upper, lower (rims, right to left), corners (right, left), rows
    eyes: dict  # "l"/"r" → upper, lower (rims, inner to outer), corners (inner, outer), eyeball, centre
    keypoints: dict  # keypoint name → vertex ids (construction order)
    layout: _MouthLayout


def _point_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule for (N, 2) points in a closed (M, 2) polygon."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at_x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.sum(crosses & (x < at_x), axis=1) % 2 == 1


def _oriented_hull(directions: np.ndarray) -> np.ndarray:
    hull = ConvexHull(directions)
    faces = hull.simplices.copy()
    if len(np.unique(faces)) != len(directions) or len(faces) != 2 * len(directions) - 4:
        raise RuntimeError("the sphere triangulation lost samples")
    a, b, c = (directions[faces[:, i]] for i in range(3))
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _segments_cross(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> bool:
    def side(a, b, c):
        return np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return side(p, q, r) * side(p, q, s) < 0 and side(r, s, p) * side(r, s, q) < 0


def _recover_edge(faces: np.ndarray, a: int, b: int, xy: np.ndarray) -> None:
    """Make (a, b) an edge by flipping the one edge that crosses it (in place).

    The sphere's Delaunay triangulation of the ray directions can miss a short rim edge where the
    surface turns away from the rays (the outer eye corners); one flip restores it.
    """
    with_a = np.flatnonzero((faces == a).any(axis=1))
    with_b = np.flatnonzero((faces == b).any(axis=1))
    for i in with_a:
        face = list(faces[i])
        k = face.index(a)
        c, d = face[(k + 1) % 3], face[(k + 2) % 3]  # face reads (a, c, d)
        for j in with_b:
            other = list(faces[j])
            if c in other and d in other and _segments_cross(xy[a], xy[b], xy[c], xy[d]):
                faces[i] = (a, c, b)
                faces[j] = (a, b, d)
                return
    raise RuntimeError(f"cannot recover the rim edge ({a}, {b})")


def _remove_opening(faces: np.ndarray, ray_xy: np.ndarray, rim_loop: list) -> np.ndarray:
    """Remove the triangles inside the closed rim loop (vertex ids in order) of an opening."""
    loop = np.asarray(rim_loop)
    edges = {tuple(sorted(e)) for e in np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).tolist()}
    for i in range(len(loop)):
        a, b = int(loop[i]), int(loop[(i + 1) % len(loop)])
        if (min(a, b), max(a, b)) not in edges:
            _recover_edge(faces, a, b, ray_xy)
    polygon = ray_xy[loop]
    on_rim = np.isin(faces, loop).all(axis=1)
    centroids = ray_xy[faces].mean(axis=1)
    inside = on_rim & _point_in_polygon(centroids, polygon)
    if int(inside.sum()) != len(loop) - 2:
        raise RuntimeError(f"an opening of {len(loop)} rim vertices held {int(inside.sum())} triangles")
    return faces[~inside]


def _boundary_edges(faces: np.ndarray) -> set:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    if np.any(counts > 2):
        raise RuntimeError("non-manifold edge in the head mesh")
    return {tuple(e) for e in unique[counts == 1]}


def _depth_correction(vertices: np.ndarray, constraints: list) -> np.ndarray:
    """A smooth field of z offsets (V,) moving the mean z of each constraint's vertices onto its
    target z; ``constraints`` is a list of (vertex ids, target point)."""
    sigma = 0.010
    centres = np.array([target for _, target in constraints])
    wanted = np.array([target[2] - vertices[ids, 2].mean() for ids, target in constraints])

    def kernel(points: np.ndarray) -> np.ndarray:
        d2 = np.sum((points[:, None, :] - centres[None]) ** 2, axis=-1)
        return np.exp(-d2 / (2 * sigma**2))

    system = np.array([kernel(vertices[ids]).mean(axis=0) for ids, _ in constraints])
    weights = np.linalg.solve(system + 1e-9 * np.eye(len(centres)), wanted)
    return kernel(vertices) @ weights


def _eyeball(count: int, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    directions = _fibonacci_sphere(count)
    faces = _oriented_hull(directions)
    cornea = np.clip((directions[:, 2] - 0.8) / 0.2, 0.0, 1.0)
    points = centre + directions * (radius + 0.0012 * cornea**2)[:, None]
    return points, faces


@lru_cache(maxsize=1)
def _build_head() -> _Head:
    layout = _mouth_layout()
    samples = _Samples(ray_xy=[], xy=[], groups={})
    mouth = _add_mouth(samples, layout)
    eyes = {"l": _add_eye(samples, +1), "r": _add_eye(samples, -1)}
    singles = {name: samples.add("keypoint", _target(name)[:2]) for name in _SINGLE_KEYPOINTS}
    # A structured row sample closer than ~half a row to a single keypoint sample is dropped.
    xy = np.array(samples.xy)
    keypoint_xy = xy[list(singles.values())]
    rows = [i for g in ("mouth_row", "eye_l_row", "eye_r_row") for i in samples.groups.get(g, [])]
    too_close = [i for i in rows if np.min(np.linalg.norm(keypoint_xy - xy[i], axis=1)) < _m(0.04)]
    keep = np.setdiff1d(np.arange(len(xy)), too_close)
    renumber = -np.ones(len(xy), dtype=np.int64)
    renumber[keep] = np.arange(len(keep))

    def renumbered(value):
        if isinstance(value, dict):
            return {k: renumbered(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [renumbered(v) for v in value]
        if isinstance(value, (int, np.integer)):
            return int(renumber[value])
        return value

    mouth = renumbered({k: v for k, v in mouth.items() if k != "columns"}) | {"columns": mouth["columns"]}
    mouth["rows"] = {k: [i for i in v if i >= 0] for k, v in mouth["rows"].items()}
    eyes = renumbered(eyes)
    for eye in eyes.values():
        eye["rows"] = [i for i in eye["rows"] if i >= 0]
    singles = renumbered(singles)
    feature_xy = np.array(samples.xy)[keep]
    feature_ray_xy = np.array(samples.ray_xy)[keep]
    feature_points = _surface_in_front(feature_xy)
    feature_ray_points = _surface_in_front(feature_ray_xy)

    num_head = NUM_VERTICES - 2 * _EYEBALL_VERTICES
    # No background sample may fall among the structured rows around the openings.
    mouth_ids = [i for row in mouth["rows"].values() for i in row] + mouth["upper"] + mouth["lower"] + mouth["corners"]
    protected = [feature_xy[mouth_ids]]
    for eye in eyes.values():
        ids = [i for key in ("upper", "lower", "corners", "rows") for i in eye[key]]
        protected.append(feature_xy[ids])
    background = _background(num_head - len(feature_points), feature_points, protected)

    vertices = np.vstack([feature_points, background])
    ray_directions = np.vstack([_directions(feature_ray_points), _directions(background)])
    faces = _oriented_hull(ray_directions)
    ray_xy = np.vstack([feature_ray_xy, background[:, :2]])
    mouth_loop = [mouth["corners"][0], *mouth["upper"], mouth["corners"][1], *mouth["lower"][::-1]]
    faces = _remove_opening(faces, ray_xy, mouth_loop)
    loops = {"mouth": mouth_loop}
    for key, eye in eyes.items():
        loop = [eye["corners"][0], *eye["upper"], eye["corners"][1], *eye["lower"][::-1]]
        faces = _remove_opening(faces, ray_xy, loop)
        loops[key] = loop
    expected = {tuple(sorted((loop[i], loop[(i + 1) % len(loop)]))) for loop in loops.values()
                for i in range(len(loop))}
    if _boundary_edges(faces) != expected:
        raise RuntimeError("the head's openings are not bounded by their rims")

    keypoints: dict[str, list[int]] = {name: [index] for name, index in singles.items()}
    keypoints.update({
        "lip_upper_center": [mouth["upper"][_MOUTH_INTERIOR // 2]],
        "lip_lower_center": [mouth["lower"][_MOUTH_INTERIOR // 2]],
        "mouth_corner_r": [mouth["corners"][0]], "mouth_corner_l": [mouth["corners"][1]],
        "lip_upper_r": [mouth["peak_upper"][0]], "lip_upper_l": [mouth["peak_upper"][1]],
        "lip_lower_r": [mouth["peak_lower"][0]], "lip_lower_l": [mouth["peak_lower"][1]],
    })
    for key in ("l", "r"):
        keypoints[f"lid_upper_{key}"] = list(eyes[key]["upper_middle"])
        keypoints[f"lid_lower_{key}"] = list(eyes[key]["lower_middle"])
    if any(i < 0 for ids in keypoints.values() for i in ids):
        raise RuntimeError("a keypoint sample was dropped")
    constraints = [(ids, _target(name)) for name, ids in keypoints.items() if name != "lip_lower_center"]
    vertices[:, 2] += _depth_correction(vertices, constraints)

    # Eyeballs: as far forward as keeps their surface 0.4 mm behind every lid rim vertex.
    all_vertices, all_faces = [vertices], [faces]
    offset = len(vertices)
    radius = 0.0122
    for key in ("l", "r"):
        eye = eyes[key]
        rim = vertices[eye["upper"] + eye["lower"]]
        centre_xy = 0.5 * (vertices[eye["upper_middle"]].mean(axis=0) + vertices[eye["lower_middle"]].mean(axis=0))[:2]
        reach = np.sqrt(np.maximum(radius**2 - np.sum((rim[:, :2] - centre_xy) ** 2, axis=1), 0.0))
        centre = np.array([*centre_xy, np.min(rim[:, 2] - 0.0004 - reach)])
        points, ball_faces = _eyeball(_EYEBALL_VERTICES, centre, radius)
        eye["eyeball"] = list(range(offset, offset + len(points)))
        eye["centre"] = centre
        all_vertices.append(points)
        all_faces.append(ball_faces + offset)
        offset += len(points)
    vertices = np.vstack(all_vertices)
    faces = np.vstack(all_faces)
    if vertices.shape != (NUM_VERTICES, 3) or faces.shape != (NUM_FACES, 3):
        raise RuntimeError(f"built {vertices.shape} vertices and {faces.shape} faces")
    return _Head(vertices=vertices, faces=faces, mouth=mouth, eyes=eyes, keypoints=keypoints, layout=layout)


# --- FLAME vertex ids ---------------------------------------------------------------------------

def _flame_order(head: _Head) -> np.ndarray:
    """``order[flame_id]`` = construction index: keypoint vertices get their FLAME ids, every
    other vertex keeps its construction order (so the eyeballs take the last ids, as in FLAME)."""
    from studio.core.keypoints import FLAME_VERTICES

    order = np.full(NUM_VERTICES, -1, dtype=np.int64)
    for name, ids in head.keypoints.items():
        flame_ids = FLAME_VERTICES[name]
        if not flame_ids:
            continue
        if len(flame_ids) != len(ids):
            raise RuntimeError(f"{name}: {len(ids)} vertices built for {len(flame_ids)} FLAME ids")
        order[list(flame_ids)] = ids
    placed = set(order[order >= 0].tolist())
    order[order < 0] = [i for i in range(NUM_VERTICES) if i not in placed]
    return order


# --- joints and skinning ------------------------------------------------------------------------

def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _regressor_row(vertices: np.ndarray, ids: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative weights over ``ids`` summing to 1 whose weighted vertex mean is ``target``:
    the least change from uniform weights that meets the constraints."""
    active = np.asarray(ids)
    for _ in range(20):
        points = vertices[active]
        constraints = np.vstack([points.T, np.ones(len(active))])  # (4, n)
        uniform = np.full(len(active), 1.0 / len(active))
        wanted = np.append(target, 1.0)
        correction = constraints.T @ np.linalg.solve(constraints @ constraints.T, constraints @ uniform - wanted)
        weights = uniform - correction
        if np.all(weights >= 0):
            return active, weights
        active = active[weights > 0]
    raise RuntimeError("no non-negative joint regressor for the chosen vertices")


# Joint locations, metres: global at the base of the neck, neck at the head's pivot (the face
# frame's origin), jaw between the jaw hinges below the ears; the eyes are the eyeball centres.
_GLOBAL_JOINT = np.array([0.0, -0.125, _NECK_AXIS[1]])
_NECK_JOINT = np.array([0.0, -0.012, -0.008])
_JAW_JOINT = np.array([0.0, -0.004, 0.016])


def _joint_regressor(head: _Head) -> np.ndarray:
    v = head.vertices
    num_head = NUM_VERTICES - 2 * _EYEBALL_VERTICES
    head_ids = np.arange(num_head)
    x, y, z = v[:num_head, 0], v[:num_head, 1], v[:num_head, 2]
    neck_ring = head_ids[(y > -0.14) & (y < -0.11)]
    head_ring = head_ids[(y > -0.03) & (y < 0.005) & (z < 0.04)]
    hinges = head_ids[(np.abs(x) > 0.045) & (y > -0.03) & (y < 0.02) & (z > 0.0) & (z < 0.035)]
    rows = [
        _regressor_row(v, neck_ring, _GLOBAL_JOINT),
        _regressor_row(v, head_ring, _NECK_JOINT),
        _regressor_row(v, hinges, _JAW_JOINT),
        _regressor_row(v, np.asarray(head.eyes["l"]["eyeball"]), head.eyes["l"]["centre"]),
        _regressor_row(v, np.asarray(head.eyes["r"]["eyeball"]), head.eyes["r"]["centre"]),
    ]
    regressor = np.zeros((NUM_JOINTS, NUM_VERTICES))
    for j, (ids, weights) in enumerate(rows):
        regressor[j, ids] = weights
    return regressor


def _lower_lip_side(head: _Head) -> np.ndarray:
    """0 above the lip seam … 1 below it (V,): sharp between the lips, soft beyond the corners.

    The upper rim is 0 and the lower rim 1 although they coincide; the corners are ½."""
    layout = head.layout
    v = head.vertices
    below = layout.seam_y(v[:, 0]) - v[:, 1]
    width = layout.row_down + 0.8 * np.maximum(np.abs(v[:, 0]) - layout.corner_x, 0.0)
    side = _smoothstep(0.5 + below / (2.0 * width))
    side[head.mouth["upper"]] = 0.0
    side[head.mouth["lower"]] = 1.0
    side[head.mouth["corners"]] = 0.5
    return side


def _skinning_weights(head: _Head) -> np.ndarray:
    v = head.vertices
    y, z = v[:, 1], v[:, 2]
    in_front = _smoothstep((z + 0.005) / 0.025)
    above_throat = _smoothstep((y + 0.105) / 0.03)
    # Near the mouth corners both lips follow the jaw about halfway, so the mouth opens as an
    # almond rather than a box.
    corners = v[head.mouth["corners"]]
    corner_influence = np.exp(-np.min(np.sum((v[:, None, :] - corners[None]) ** 2, axis=2), axis=1)
                              / (2 * 0.008**2))
    lip_side = _lower_lip_side(head) * (1.0 - corner_influence) + 0.5 * corner_influence
    jaw = lip_side * in_front * above_throat
    head_part = _smoothstep((y + 0.115) / 0.05)
    weights = np.zeros((NUM_VERTICES, NUM_JOINTS))
    weights[:, 2] = jaw
    weights[:, 1] = (1.0 - jaw) * head_part
    weights[:, 0] = (1.0 - jaw) * (1.0 - head_part)
    for joint, key in ((3, "l"), (4, "r")):
        ball = head.eyes[key]["eyeball"]
        weights[ball] = 0.0
        weights[ball, joint] = 1.0
    return weights


# --- blendshapes --------------------------------------------------------------------------------

class _Fields:
    """Displacement fields (V, 3) on the head, built from smooth bumps around face points."""

    def __init__(self, head: _Head):
        self.head = head
        self.v = head.vertices
        self.num_head = NUM_VERTICES - 2 * _EYEBALL_VERTICES
        self.lower = _lower_lip_side(head)
        self.upper = 1.0 - self.lower

    def point(self, name: str) -> np.ndarray:
        return self.v[self.head.keypoints[name]].mean(axis=0)

    def bump(self, centre, sigma: float, vector, mask: np.ndarray | None = None) -> np.ndarray:
        """A Gaussian bump of displacement ``vector`` at ``centre`` (zero on the eyeballs)."""
        weight = np.exp(-np.sum((self.v - np.asarray(centre)) ** 2, axis=1) / (2.0 * sigma**2))
        weight[self.num_head:] = 0.0
        if mask is not None:
            weight = weight * mask
        return weight[:, None] * np.asarray(vector, dtype=np.float64)

    def mirrored(self, field_builder) -> tuple[np.ndarray, np.ndarray]:
        """A left field and its mirror image: built with ``side`` +1 and −1."""
        return field_builder(+1), field_builder(-1)

    def lids(self, key: str, upper_vector, lower_vector, upper_close: float = 0.0,
             lower_close: float = 0.0) -> np.ndarray:
        """Eyelid motion of one eye: each lid rim moves by a vector plus a fraction of the way to
        the other rim; the lid skin around follows with a falloff (the eyeball stays)."""
        eye = self.head.eyes[key]
        upper, lower = np.asarray(eye["upper"]), np.asarray(eye["lower"])
        gap = self.v[lower] - self.v[upper]
        moves = {
            "upper": (upper, np.asarray(upper_vector, dtype=np.float64) + upper_close * gap),
            "lower": (lower, np.asarray(lower_vector, dtype=np.float64) - lower_close * gap),
        }
        inner, outer = self.v[eye["corners"][0]], self.v[eye["corners"][1]]
        axis = outer[:2] - inner[:2]
        relative = self.v[:, :2] - inner[:2]
        above = (axis[0] * relative[:, 1] - axis[1] * relative[:, 0]) * np.sign(axis[0]) > 0
        field = np.zeros_like(self.v)
        candidates = np.arange(self.num_head)
        for part, (rim, displacement) in moves.items():
            side = above if part == "upper" else ~above
            distances = np.linalg.norm(self.v[candidates, None, :] - self.v[None, rim, :], axis=2)
            kernel = np.exp(-(distances**2) / (2 * 0.003**2))
            spread = (kernel @ displacement) / np.maximum(kernel.sum(axis=1, keepdims=True), 1e-12)
            falloff = np.exp(-(distances.min(axis=1) ** 2) / (2 * 0.005**2)) * side[candidates]
            field[candidates] += spread * falloff[:, None]
            field[rim] = displacement
        field[eye["corners"]] = 0.0
        return field


def _expression_semantic(f: _Fields) -> list[np.ndarray]:
    """The localized, named expression fields (metres at coefficient 1), in basis order."""
    p = f.point
    mouth = p("lip_upper_center")
    lower_lip = p("lip_lower_l") * [0, 1, 1]
    upper_lip = p("lip_upper_l") * [0, 1, 1]
    fields = [
        f.lids("l", (0, 0, 0), (0, 0, 0), upper_close=0.8, lower_close=0.2),  # blink_l: closes fully
        f.lids("r", (0, 0, 0), (0, 0, 0), upper_close=0.8, lower_close=0.2),  # blink_r
        # lips part without the jaw
        f.bump(mouth, 0.012, (0, 0.002, 0.0003), f.upper) + f.bump(lower_lip, 0.014, (0, -0.004, 0.0005), f.lower),
    ]
    for side in (+1, -1):  # smile
        s = "l" if side > 0 else "r"
        fields.append(f.bump(p(f"mouth_corner_{s}"), 0.010, (side * 0.003, 0.004, -0.002))
                      + f.bump(p(f"cheek_{s}"), 0.014, (side * 0.0005, 0.002, 0.001))
                      + f.bump(p(f"lid_lower_{s}"), 0.006, (0, 0.001, 0)))
    for side in (+1, -1):  # lip corner depressor
        s = "l" if side > 0 else "r"
        fields.append(f.bump(p(f"mouth_corner_{s}"), 0.010, (side * 0.001, -0.0035, -0.0005))
                      + f.bump(p(f"lip_lower_{s}"), 0.010, (0, -0.001, 0), f.lower))
    corners = (p("mouth_corner_l"), p("mouth_corner_r"))
    fields.append(f.bump(mouth, 0.014, (0, 0, 0.004)) + f.bump(corners[0], 0.008, (-0.004, 0, 0.001))
                  + f.bump(corners[1], 0.008, (0.004, 0, 0.001)))  # pucker
    fields.append(f.bump(corners[0], 0.009, (0.004, -0.001, -0.001)) + f.bump(corners[1], 0.009, (-0.004, -0.001, -0.001))
                  + f.bump(mouth, 0.012, (0, 0, -0.001)))  # stretch
    fields.append(f.bump(upper_lip, 0.010, (0, 0.003, 0.0005), f.upper)
                  + f.bump(p("nose_tip") + [0, -0.008, -0.01], 0.008, (0, 0.001, 0)))  # upper lip raise
    fields.append(f.bump(lower_lip, 0.011, (0, -0.003, 0.001), f.lower))  # lower lip depress
    seam_offset = f.v[:, 1] - f.head.layout.seam_y(f.v[:, 0])
    press = f.bump(mouth, 0.012, (0, 0, -0.002)) + f.bump(mouth, 0.012, (1.0, 1.0, 1.0)) * np.column_stack(
        [np.zeros(len(f.v)), -0.3 * seam_offset, np.zeros(len(f.v))])
    fields.append(press)  # lips press and thin (the rims stay together)
    for part, sigma, vector in (("brow_inner", 0.012, (0, 0.004, 0)), ("brow_outer", 0.012, (0, 0.0035, 0)),
                                ("brow_inner", 0.012, (-0.0015, -0.003, 0.0005))):
        for side in (+1, -1):  # brow raises and lowerer
            s = "l" if side > 0 else "r"
            fields.append(f.bump(p(f"{part}_{s}"), sigma, (side * vector[0], vector[1], vector[2]))
                          + f.bump(p(f"{part}_{s}") + [0, 0.012, -0.004], 0.02, (0, 0.4 * vector[1], 0)))
    for key in ("l", "r"):  # upper lid raise
        fields.append(f.lids(key, (0, 0.002, 0.0003), (0, 0, 0)))
    for key in ("l", "r"):  # squint
        fields.append(f.lids(key, (0, 0, 0), (0, 0, 0), upper_close=0.1, lower_close=0.35)
                      + f.bump(p(f"cheek_{key}"), 0.012, (0, 0.0015, 0.0005)))
    cheek_low = [p("cheek_l") + [0, -0.02, -0.005], p("cheek_r") + [0, -0.02, -0.005]]
    fields.append(f.bump(cheek_low[0], 0.016, (0.003, 0, 0.002)) + f.bump(cheek_low[1], 0.016, (-0.003, 0, 0.002)))
    nose = p("nose_tip")
    fields.append(f.bump(nose + [0.012, 0.014, -0.02], 0.008, (0, 0.002, 0))
                  + f.bump(nose + [-0.012, 0.014, -0.02], 0.008, (0, 0.002, 0))
                  + f.bump(p("nose_bridge"), 0.008, (0, -0.001, 0)))  # nose wrinkle
    fields.append(f.bump(mouth, 0.016, (0.004, 0, 0)))  # mouth shift to the subject's left
    fields.append(f.bump(lower_lip, 0.012, (0, 0.002, 0.001), f.lower)
                  + f.bump(p("chin"), 0.015, (0, 0.002, 0.001)))  # chin raise
    fields.append(f.bump(mouth, 0.012, (0, 0, 0.003)) + f.bump(mouth, 0.012, (0, 0.0015, 0), f.upper)
                  + f.bump(mouth, 0.012, (0, -0.0015, 0), f.lower))  # funnel
    for side in (+1, -1):  # dimpler
        s = "l" if side > 0 else "r"
        fields.append(f.bump(p(f"mouth_corner_{s}") + [side * 0.008, 0, -0.004], 0.006, (side * 0.0005, 0, -0.002)))
    return fields


def _random_fields(f: _Fields, rng: np.random.Generator, count: int, *, face_only: bool,
                   sigma_range: tuple[float, float], symmetric_share: float) -> list[np.ndarray]:
    """Smooth random displacement fields: a few Gaussian bumps each, mostly mirror-symmetric.

    Eyeballs move rigidly with the field at their centre (identity fields) or not at all (face)."""
    head_points = f.v[: f.num_head]
    if face_only:
        pool = np.flatnonzero((head_points[:, 2] > 0.05) & (np.abs(head_points[:, 0]) < 0.06)
                              & (head_points[:, 1] > -0.08) & (head_points[:, 1] < 0.06))
    else:
        pool = np.arange(f.num_head)
    fields = []
    for k in range(count):
        t = k / max(count - 1, 1)
        sigma_high = sigma_range[1] * (1 - t) + sigma_range[0] * t
        field = np.zeros_like(f.v)
        for _ in range(int(rng.integers(3, 7))):
            centre = f.v[pool[rng.integers(len(pool))]]
            sigma = rng.uniform(sigma_range[0], max(sigma_high, sigma_range[0] * 1.01))
            vector = rng.normal(size=3) * 0.002
            field += _rigid_eye_bump(f, centre, sigma, vector, face_only)
            if rng.random() < symmetric_share:
                field += _rigid_eye_bump(f, centre * [-1, 1, 1], sigma, vector * [-1, 1, 1], face_only)
        if face_only and rng.random() < 0.5:
            field *= (f.lower if rng.random() < 0.5 else f.upper)[:, None]
        fields.append(field)
    return fields


def _rigid_eye_bump(f: _Fields, centre, sigma: float, vector, face_only: bool) -> np.ndarray:
    field = f.bump(centre, sigma, vector)
    if not face_only:  # eyeballs travel with the head around them, without deforming
        for key in ("l", "r"):
            eye = f.head.eyes[key]
            at_centre = np.exp(-np.sum((eye["centre"] - np.asarray(centre)) ** 2) / (2 * sigma**2))
            field[eye["eyeball"]] = at_centre * np.asarray(vector)
    return field


def _orthogonalized(fields: list[np.ndarray], norms: np.ndarray) -> np.ndarray:
    """Gram–Schmidt in order (the first fields keep their direction), each scaled to ``norms``;
    returns (V, 3, K)."""
    matrix = np.stack([field.reshape(-1) for field in fields], axis=1)
    q, r = np.linalg.qr(matrix)
    q *= np.sign(np.diag(r))[None, :]  # so each component points along its own field
    return (q * norms[None, :]).reshape(NUM_VERTICES, 3, len(fields))


def _shape_basis(f: _Fields, rng: np.random.Generator) -> np.ndarray:
    centre = f.v[: f.num_head].mean(axis=0)
    relative = f.v - centre
    scale_fields = [np.column_stack([relative[:, 0], np.zeros(NUM_VERTICES), np.zeros(NUM_VERTICES)]),
                    np.column_stack([np.zeros(NUM_VERTICES), relative[:, 1], np.zeros(NUM_VERTICES)]),
                    np.column_stack([np.zeros(NUM_VERTICES), np.zeros(NUM_VERTICES), relative[:, 2]])]
    fields = scale_fields + _random_fields(f, rng, NUM_SHAPE - 3, face_only=False,
                                           sigma_range=(0.012, 0.06), symmetric_share=0.8)
    rms = 0.002 * (1.0 + np.arange(NUM_SHAPE)) ** -0.8  # per-coordinate RMS of each component
    return _orthogonalized(fields, rms * np.sqrt(3 * NUM_VERTICES))


def _expression_basis(f: _Fields, rng: np.random.Generator) -> np.ndarray:
    semantic = _expression_semantic(f)
    fill = _random_fields(f, rng, NUM_EXPRESSION - len(semantic), face_only=True,
                          sigma_range=(0.006, 0.02), symmetric_share=0.5)
    semantic_norms = np.array([np.linalg.norm(field) for field in semantic])
    fill_norms = 0.6 * np.median(semantic_norms) / (1.0 + np.arange(len(fill)) / 10.0)
    return _orthogonalized(semantic + fill, np.concatenate([semantic_norms, fill_norms]))


def _pose_correctives(f: _Fields, rng: np.random.Generator) -> np.ndarray:
    """posedirs (V, 3, 36): input ``9 (j − 1) + 3 a + b`` is entry (a, b) of ``R_j − I``."""
    posedirs = np.zeros((NUM_VERTICES, 3, 9 * (NUM_JOINTS - 1)))

    def column(joint: int, a: int, b: int) -> int:
        return 9 * (joint - 1) + 3 * a + b

    v = f.v
    neck_band = f.bump((0.0, -0.08, _NECK_AXIS[1]), 0.02, (1.0, 1.0, 1.0))[:, 0]
    # Neck: nodding down (entry (2, 1) = sin of the pitch) pushes the throat out and stretches the
    # nape; turning (entry (0, 2)) twists the neck skin a little against the skinning.
    posedirs[:, :, column(1, 2, 1)] = (f.bump((0.0, -0.09, 0.035), 0.02, (0, 0, 0.006))
                                       + f.bump((0.0, -0.06, -0.06), 0.025, (0, -0.004, 0)))
    twist = np.column_stack([-(v[:, 2] - _NECK_AXIS[1]), np.zeros(len(v)), v[:, 0] - _NECK_AXIS[0]])
    posedirs[:, :, column(1, 0, 2)] = 0.3 * twist * neck_band[:, None]
    posedirs[:, :, column(1, 1, 0)] = (f.bump((0.045, -0.08, -0.01), 0.02, (0.003, 0, 0))
                                       + f.bump((-0.045, -0.08, -0.01), 0.02, (0.003, 0, 0)))
    # Jaw: opening (entry (2, 1)) draws the mouth corners in, hollows the cheeks, tightens the
    # skin under the chin and thins the upper lip.
    p = f.point
    posedirs[:, :, column(2, 2, 1)] = (
        f.bump(p("mouth_corner_l"), 0.009, (-0.0025, -0.001, 0)) + f.bump(p("mouth_corner_r"), 0.009, (0.0025, -0.001, 0))
        + f.bump(p("cheek_l") + [0.005, -0.02, -0.01], 0.012, (-0.0015, 0, 0))
        + f.bump(p("cheek_r") + [-0.005, -0.02, -0.01], 0.012, (0.0015, 0, 0))
        + f.bump((0.0, -0.085, 0.05), 0.015, (0, 0.002, -0.003))
        + f.bump(p("lip_upper_center"), 0.01, (0, -0.0008, 0), f.upper))
    # Eyes: the lids follow the vertical gaze (entry (2, 1) = sin of looking down).
    for joint, key in ((3, "l"), (4, "r")):
        posedirs[:, :, column(joint, 2, 1)] = f.lids(key, (0, -0.007, -0.001), (0, -0.003, 0))
    # The other neck and jaw inputs: small smooth corrections around their joint.
    regions = {1: (0.0, -0.08, _NECK_AXIS[1]), 2: (0.0, -0.06, 0.07)}
    for joint, region in regions.items():
        for a in range(3):
            for b in range(3):
                k = column(joint, a, b)
                if np.any(posedirs[:, :, k]):
                    continue
                field = np.zeros_like(v)
                for _ in range(3):
                    centre = np.asarray(region) + rng.normal(size=3) * 0.008
                    field += f.bump(centre, 0.012, rng.normal(size=3) * 0.0008)
                posedirs[:, :, k] = field
    return posedirs


# --- the model ----------------------------------------------------------------------------------

def build_flame_like_model(seed: int = 0) -> dict[str, np.ndarray]:
    """A FLAME-format head model (a stand-in, **not FLAME**; see the module docstring).

    Returns fresh arrays with FLAME 2020's keys, shapes and dtypes: ``v_template`` (5023, 3),
    ``shapedirs`` (5023, 3, 400), ``posedirs`` (5023, 3, 36), ``J_regressor`` (5, 5023) (dense
    here; FLAME files store it sparse), ``weights`` (5023, 5) float64, ``kintree_table`` (2, 5)
    int64 with the root's parent 4294967295, ``f`` (9976, 3) uint32. Deterministic for ``seed``.
    """
    return {key: value.copy() for key, value in _build_model(int(seed)).items()}


@lru_cache(maxsize=2)
def _build_model(seed: int) -> dict[str, np.ndarray]:
    head = _build_head()
    rng = np.random.default_rng(seed)
    fields = _Fields(head)
    shape = _shape_basis(fields, rng)
    expression = _expression_basis(fields, rng)
    posedirs = _pose_correctives(fields, rng)
    order = _flame_order(head)
    new_id = np.empty(NUM_VERTICES, dtype=np.int64)
    new_id[order] = np.arange(NUM_VERTICES)
    model = {
        "v_template": head.vertices[order],
        "shapedirs": np.concatenate([shape, expression], axis=2)[order],
        "posedirs": posedirs[order],
        "J_regressor": _joint_regressor(head)[:, order],
        "weights": _skinning_weights(head)[order],
        "kintree_table": np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "f": new_id[head.faces].astype(np.uint32),
    }
    for value in model.values():
        value.flags.writeable = False
    return model
