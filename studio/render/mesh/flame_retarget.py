"""Motion → FLAME: expression coefficients, jaw, neck and eye rotations per frame, then skinning.

A FLAME model cannot take keypoint offsets directly: it moves by its expression basis and its
joints. :class:`FlameRetarget` fits, once per model, a linear map from the 63 keypoint offsets
δ (the motion's ``exp.*`` channels, blinks added as lid offsets) to the model's own controls —
the expression coefficients and the jaw's rotation — by regularized least squares on what those
controls do at the keypoint vertices (the expression basis there, and the jaw's effect
differentiated at rest). Each frame is then one matrix product; the rest is direct:

* head pose (pitch, yaw, roll) → the neck joint's rotation (FLAME's axes are the motion
  space's: x the subject's left, y up, z out of the face), so the head turns on the neck;
* gaze → both eye joints (±1 is 30° sideways, 20° up or down, as in the motion space);
* translation (face units) → metres through the model's own face unit (its inter-ocular
  distance), scale about the origin.

The keypoint rule of the motion space adds δ after rotating the canonical keypoints, while
FLAME deforms before skinning; for the head turns of speech (a few tens of degrees) the two agree
to well under a millimetre, and lips, lids and jaw follow δ exactly as far as the basis can.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from studio.core.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS
from studio.core.motion import (
    CHANNEL_INDEX,
    ROTATION,
    SCALE,
    TRANSLATION,
    rotation_matrices,
)
from studio.render.mesh.deform import FaceFrame, offsets_with_blinks
from studio.render.mesh.flame import FlameModel, keypoint_positions

#: The eye's range at gaze ±1 (degrees): sideways, up/down — as documented in studio.core.motion.
GAZE_RANGE = (30.0, 20.0)
#: Weight of each keypoint in the fit: the lips and the jaw matter most to speech.
_KEY_WEIGHTS = {"lip_upper_center": 3.0, "lip_lower_center": 3.0, "mouth_corner_l": 2.0,
                "mouth_corner_r": 2.0, "chin": 2.0, "lip_upper_l": 1.5, "lip_upper_r": 1.5,
                "lip_lower_l": 1.5, "lip_lower_r": 1.5, "lid_upper_l": 2.0, "lid_upper_r": 2.0}
#: Ridge on the controls, relative to the mean squared column norm of the basis.
RIDGE = 1e-3
#: The jaw's share of the ridge (see ``FlameRetarget.__init__``).
JAW_RIDGE = 1e-3
_JAW_STEP = 0.05  # radians, for the jaw's derivative
NECK, JAW, EYE_L, EYE_R = 1, 2, 3, 4


class FlameRetarget:
    """The retargeting map of one FLAME model (with an optional identity ``shape``)."""

    def __init__(self, model: FlameModel, shape: np.ndarray | None = None, num_expression: int | None = None):
        self.model = model
        self.shape = shape
        self.num_expression = model.num_expression if num_expression is None else int(num_expression)
        template = model.shaped_template(shape).astype(np.float64)
        rest_keys = keypoint_positions(template, model.keypoint_vertices)
        self.frame = FaceFrame.from_keypoints(rest_keys)
        self.canonical = self.frame.to_face(rest_keys)  # (21, 3): this identity's c
        to_face = self.frame.axes.T / self.frame.unit  # mesh displacement → face units

        # What each control does at the keypoints (face units), one column each.
        groups = model.keypoint_vertices
        expr = np.stack([np.asarray(model.exprdirs[list(ids), :, :self.num_expression], np.float64).mean(0)
                         for ids in groups])  # (21, 3, E)
        expr = np.einsum("kde,df->kfe", expr, to_face).reshape(3 * NUM_KEYPOINTS, -1)
        jaw = []
        for axis in (0, 1):  # open (about x) and sideways (about y)
            pose = np.zeros((2, model.num_joints, 3), np.float32)
            pose[0, JAW, axis], pose[1, JAW, axis] = _JAW_STEP, -_JAW_STEP
            moved = keypoint_positions(model.vertices(np.zeros((2, 0), np.float32), pose, shape), groups)
            jaw.append(((moved[0] - moved[1]) / (2 * _JAW_STEP)) @ to_face)
        basis = np.concatenate([expr, np.stack(jaw, -1).reshape(3 * NUM_KEYPOINTS, 2)], axis=1)
        weights = np.ones(NUM_KEYPOINTS)
        for name, w in _KEY_WEIGHTS.items():
            weights[KEYPOINT_INDEX[name]] = w
        w3 = np.repeat(weights, 3)[:, None]
        a = w3 * basis
        gram = a.T @ a
        # The jaw is the natural control of an opening mouth: it is hardly held back, so the
        # expression basis does not fake a jaw drop with skin.
        ridge = RIDGE * np.trace(gram) / len(gram) * np.r_[np.ones(len(gram) - 2), JAW_RIDGE, JAW_RIDGE]
        #: (E + 2, 63): keypoint offsets (flattened, face units) → expression coefficients, jaw angles.
        self.solve = np.linalg.solve(gram + np.diag(ridge), a.T * w3.T)
        self.basis = basis

    def offsets(self, frames: np.ndarray) -> np.ndarray:
        """Keypoint offsets δ (T, 21, 3) of motion frames with blinks added as lid offsets."""
        return offsets_with_blinks(frames, self.canonical)

    def parameters(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """FLAME controls for motion frames (T, 74): ``expression`` (T, E), ``pose`` (T, 5, 3)
        axis-angle, ``translation`` (T, 3) metres, ``scale`` (T,)."""
        m = np.atleast_2d(np.asarray(frames, dtype=np.float64))
        t = len(m)
        controls = self.offsets(m).reshape(t, -1) @ self.solve.T  # (T, E + 2)
        pose = np.zeros((t, self.model.num_joints, 3))
        pose[:, JAW, 0] = controls[:, -2]
        pose[:, JAW, 1] = controls[:, -1]
        head = rotation_matrices(m[:, ROTATION.start], m[:, ROTATION.start + 1], m[:, ROTATION.start + 2])
        axes = self.frame.axes  # rows: face axes in mesh coordinates
        pose[:, NECK] = Rotation.from_matrix(axes.T @ head @ axes).as_rotvec()
        gaze = np.stack([np.radians(-GAZE_RANGE[1]) * np.clip(m[:, CHANNEL_INDEX["eye.gaze_y"]], -1, 1),
                         np.radians(GAZE_RANGE[0]) * np.clip(m[:, CHANNEL_INDEX["eye.gaze_x"]], -1, 1),
                         np.zeros(t)], -1)  # about x (negative looks up), about y (positive: to +x)
        eyes = Rotation.from_rotvec(gaze).as_matrix()
        pose[:, EYE_L] = pose[:, EYE_R] = Rotation.from_matrix(axes.T @ eyes @ axes).as_rotvec()
        translation = self.frame.unit * (m[:, TRANSLATION] @ axes)
        return {"expression": controls[:, :-2].astype(np.float32), "pose": pose.astype(np.float32),
                "translation": translation.astype(np.float32), "scale": m[:, SCALE].astype(np.float32)}

    def deform(self, frames: np.ndarray) -> np.ndarray:
        """Vertex positions (T, V, 3) float32, metres, for motion frames (T, 74)."""
        p = self.parameters(frames)
        v = self.model.vertices(p["expression"], p["pose"], self.shape)
        return (p["scale"][:, None, None] * v + p["translation"][:, None, :]).astype(np.float32)

    @property
    def keypoint_vertices(self):
        return self.model.keypoint_vertices
