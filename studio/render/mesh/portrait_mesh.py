"""The face of a portrait as a textured 3D mesh, so every portrait also has a 3D view and exports.

The mesh is FaceMesh's surface (468 landmarks, its tessellation) with the eye openings filled
(textured with the photo's own eyes), a mouth cavity behind the lips (a dark pocket: the inner-lip
ring pushed back into the head and closed, so parted lips show a mouth, not the background), and
the photo as its texture (texture coordinates: the landmarks' places in the photo). It moves with
the portrait renderer's own geometry (:class:`studio.render.portrait_rig.PortraitRig`), so the 3D
view and the 2D picture show the same face.

Units: metres, assuming an inter-ocular distance of 63 mm (``METRES_PER_FACE_UNIT``); axes as
the motion space's: x to the image right (the subject's left), y up, z toward the viewer — also
glTF's convention (y up, +z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.core.keypoints import MEDIAPIPE_INDICES
from studio.render import face_mesh as fm
from studio.render.face_fit import FaceFit
from studio.render.portrait_rig import PortraitRig

#: Metres per face unit: a typical adult inter-ocular distance (eye centre to eye centre).
METRES_PER_FACE_UNIT = 0.063
#: How deep the mouth pocket reaches behind the inner lips (face units).
MOUTH_DEPTH = 0.35
#: The colour painted into the texture for the mouth pocket (RGB, a dark red-brown).
CAVITY_RGB = (46, 18, 20)
_CAVITY_ROWS = 8  # rows appended under the photo to hold the cavity colour


@dataclass(frozen=True)
class PortraitMesh:
    """A portrait's face mesh: rest ``vertices`` (V, 3) metres, ``faces`` (F, 3), ``uv`` (V, 2)
    with (0, 0) the texture's top-left corner (glTF's convention), ``texture`` H × W × 3 uint8
    (the photo with a strip of mouth colour under it), and ``keypoint_vertices`` (21 one-vertex
    groups: the keypoints' own landmarks)."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    keypoint_vertices: tuple[tuple[int, ...], ...]
    rig: PortraitRig

    @classmethod
    def from_fit(cls, image: np.ndarray, fit: FaceFit) -> PortraitMesh:
        rig = PortraitRig(fit)
        h, w = fit.image_size
        surface = fm.surface_triangles()
        eyes = np.concatenate([fm.strip_triangles(fm.EYE_R_UPPER, fm.EYE_R_LOWER),
                               fm.strip_triangles(fm.EYE_L_UPPER, fm.EYE_L_LOWER)])
        faces = _facing_viewer(np.concatenate([surface, eyes]), rig.canonical)
        # The mouth pocket: a copy of the inner-lip ring (its own vertices, so the pocket takes
        # the cavity colour and not a smear of the photo), that ring pushed back, a closing fan.
        ring = fm.LIP_INNER_RING
        n = fm.NUM_SURFACE
        front = n + np.arange(len(ring))
        back = n + len(ring) + np.arange(len(ring))
        bottom = n + 2 * len(ring)
        pocket = []
        for k in range(len(ring)):
            a, b = front[k], front[(k + 1) % len(ring)]
            c, d = back[k], back[(k + 1) % len(ring)]
            pocket += [(a, c, b), (b, c, d), (c, bottom, d)]
        pocket = _facing_viewer(np.array(pocket), _pocket_points(rig.canonical))
        faces = np.concatenate([faces, pocket]).astype(np.int32)

        texture = np.concatenate([np.asarray(image, np.uint8),
                                  np.broadcast_to(np.array(CAVITY_RGB, np.uint8), (_CAVITY_ROWS, w, 3))])
        uv = np.empty((bottom + 1, 2), np.float32)
        uv[:n] = fit.landmarks[:n, :2] / (w, len(texture))
        uv[n:] = (0.5, (h + _CAVITY_ROWS / 2) / len(texture))
        rest = cls._points(rig, rig.rest_frame()[None])[0]
        keys = tuple((int(i),) for i in MEDIAPIPE_INDICES)
        return cls(rest, faces, uv, np.ascontiguousarray(texture), keys, rig)

    @staticmethod
    def _points(rig: PortraitRig, frames: np.ndarray) -> np.ndarray:
        face = rig.face_points(frames)[:, :fm.NUM_SURFACE]
        return (METRES_PER_FACE_UNIT * np.concatenate([face, _pocket_points(face)[..., fm.NUM_SURFACE:, :]], axis=1)
                ).astype(np.float32)

    def deform(self, frames: np.ndarray) -> np.ndarray:
        """Vertex positions (T, V, 3) float32, metres, for motion frames (T, 74)."""
        return self._points(self.rig, np.atleast_2d(np.asarray(frames, dtype=np.float64)))


def _pocket_points(face: np.ndarray) -> np.ndarray:
    """Surface landmarks (…, ≥468, 3) followed by the mouth pocket's points: the inner-lip ring
    (a copy), that ring moved back by ``MOUTH_DEPTH`` and drawn in toward its centre, then the
    pocket's bottom."""
    f = np.asarray(face)[..., :fm.NUM_SURFACE, :]
    lips = f[..., fm.LIP_INNER_RING, :]
    centre = lips.mean(-2, keepdims=True)
    back = centre + 0.6 * (lips - centre) - (0.0, 0.0, MOUTH_DEPTH)
    bottom = centre - (0.0, 0.0, 1.3 * MOUTH_DEPTH)
    return np.concatenate([f, lips, back, bottom], axis=-2)


def _facing_viewer(faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Faces wound counter-clockwise as seen from the viewer (+z)."""
    p = points[faces]
    normal_z = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    flip = normal_z < 0
    out = faces.copy()
    out[flip] = out[flip][:, [0, 2, 1]]
    return out
