"""Derive the documented mean face (``studio.core.keypoints.MEAN_FACE``) from real photos.

Runs MediaPipe FaceMesh (0.10.21, bundled model) on scikit-image's ``astronaut`` and matplotlib's
``grace_hopper.jpg`` sample, reads the 21 keypoints, expresses each face in its own head frame
(x along the eye line, y from chin to nose bridge, z toward the viewer), averages, symmetrizes
(mean of the face and its mirror image), closes the lips and normalizes to face units. Prints the array literal and,
with ``--write``, replaces it in ``studio/core/keypoints.py``; ``--overlay DIR`` saves the photos
with the 21 keypoints drawn so the landmark choice can be checked by eye.

    .venv/bin/python tools/derive_mean_face.py [--write] [--overlay out/mean_face]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import cv2
import numpy as np

from studio.core.keypoints import (
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    MEDIAPIPE_INDICES,
    MIRROR_PERMUTATION,
    normalize_face,
)
from studio.render.contact_sheet import sample_photos
from studio.render.face_fit import head_rotation

KEYPOINTS_FILE = Path(__file__).resolve().parents[1] / "studio" / "core" / "keypoints.py"


def facemesh_points(rgb: np.ndarray) -> np.ndarray:
    """All FaceMesh landmarks of the largest face as (N, 3) in pixels, axes x right, y up, z to viewer."""
    from mediapipe.python.solutions import face_mesh

    h, w = rgb.shape[:2]
    with face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        raise SystemExit("no face found")
    lm = result.multi_face_landmarks[0].landmark
    return np.array([[p.x * w, -p.y * h, -p.z * w] for p in lm])


def frontal_face(points21: np.ndarray) -> np.ndarray:
    """The 21 keypoints with the head's own rotation removed, in face units."""
    return normalize_face(points21 @ head_rotation(points21).T)


def mirror(face: np.ndarray) -> np.ndarray:
    out = face[MIRROR_PERMUTATION].copy()
    out[:, 0] *= -1.0
    return out


def draw_overlay(rgb: np.ndarray, points: np.ndarray, path: Path) -> None:
    img = np.ascontiguousarray(rgb[:, :, ::-1])
    for name, (x, y, _) in zip(KEYPOINT_NAMES, points):
        p = (int(round(x)), int(round(-y)))
        cv2.circle(img, p, 3, (0, 255, 255), -1)
        cv2.putText(img, name, (p[0] + 4, p[1] - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="update MEAN_FACE in studio/core/keypoints.py")
    parser.add_argument("--overlay", type=Path, help="save the photos with the keypoints drawn into this folder")
    args = parser.parse_args()

    faces = []
    for name, rgb in sample_photos().items():
        pts = facemesh_points(rgb)[MEDIAPIPE_INDICES]
        if args.overlay:
            draw_overlay(rgb, pts, args.overlay / f"{name}.png")
        faces.append(frontal_face(pts))
    mean = np.mean(faces, axis=0)
    mean = normalize_face(0.5 * (mean + mirror(mean)))
    # The neutral face has closed lips (the astronaut smiles with parted lips): the two inner-lip
    # centre points meet at their mean.
    lips = [KEYPOINT_INDEX["lip_upper_center"], KEYPOINT_INDEX["lip_lower_center"]]
    mean[lips] = mean[lips].mean(axis=0)
    mean[np.abs(mean) < 5e-5] = 0.0
    rows = "\n".join(f"    [{x:.4f}, {y:.4f}, {z:.4f}],  # {n}" for n, (x, y, z) in zip(KEYPOINT_NAMES, mean))
    literal = f"MEAN_FACE = np.array([\n{rows}\n], dtype=np.float64)"
    print(literal)
    if args.write:
        text = KEYPOINTS_FILE.read_text()
        text, n = re.subn(r"MEAN_FACE = np\.array\(\[.*?\], dtype=np\.float64\)", lambda _: literal, text, flags=re.S)
        if n != 1:
            raise SystemExit(f"could not find the MEAN_FACE literal in {KEYPOINTS_FILE}")
        KEYPOINTS_FILE.write_text(text)
        print(f"wrote {KEYPOINTS_FILE}")


if __name__ == "__main__":
    main()
