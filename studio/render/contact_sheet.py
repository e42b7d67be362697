"""A contact sheet of the portrait renderer's key poses, one row per photo, to look at.

The poses come from the rig's own shapes (:mod:`studio.generate.rig`): rest (lips closed),
the open "ah" of the viseme table, closed on "m", a full blink, gaze left and right, the happy
and surprised presets (with their head pose), and head yaw ±15°. ``studio contact-sheet`` writes
it; the photos default to the two real portraits that installed packages ship.
"""

from __future__ import annotations

import cv2
import numpy as np

from studio.core.motion import CHANNEL_INDEX, EXP, NEUTRAL_FRAME
from studio.render.face_fit import fit_portrait
from studio.render.portrait import PortraitRenderer

TILE_WIDTH = 280


def _articulated(jaw=0.0, round_=0.0, spread=0.0, tuck=0.0, raise_=0.0) -> np.ndarray:
    from studio.generate.rig import BASIS

    return np.tensordot(np.array([jaw, round_, spread, tuck, raise_]), BASIS, axes=1)


def sheet_frames() -> dict[str, np.ndarray]:
    """The poses of the sheet as motion frames (74,), by caption."""
    from studio.generate.rig import EMOTION_POSE, EMOTION_PRESETS

    def frame(offsets=None, **channels) -> np.ndarray:
        f = NEUTRAL_FRAME.astype(np.float64).copy()
        if offsets is not None:
            f[EXP] = np.asarray(offsets).reshape(-1)
        for name, value in channels.items():
            f[CHANNEL_INDEX[name.replace("__", ".")]] = value
        return f

    def emotion(label: str) -> np.ndarray:
        jaw, pitch, roll = EMOTION_POSE[label]
        return frame(EMOTION_PRESETS[label] + _articulated(jaw=jaw), pose__pitch=pitch, pose__roll=roll)

    return {
        "neutral": frame(),
        "ah": frame(_articulated(jaw=0.85, spread=0.10, raise_=0.10)),
        "m (closed)": frame(_articulated(spread=0.05)),
        "blink": frame(eye__blink_l=1.0, eye__blink_r=1.0),
        "gaze left": frame(eye__gaze_x=-1.0),
        "gaze right": frame(eye__gaze_x=1.0),
        "happy": emotion("happy"),
        "surprised": emotion("surprised"),
        "yaw -15": frame(pose__yaw=-15.0),
        "yaw +15": frame(pose__yaw=15.0),
    }


def contact_sheet(photos: dict[str, np.ndarray], *, tile_width: int = TILE_WIDTH) -> np.ndarray:
    """Rows of captioned tiles (the face and some surroundings), RGB uint8."""
    rows = []
    frames = sheet_frames()
    for name, image in photos.items():
        fit = fit_portrait(image, name=name)
        renderer = PortraitRenderer(image, fit)
        x0, y0, x1, y1 = fit.box
        pad = 0.25 * max(x1 - x0, y1 - y0)
        h, w = image.shape[:2]
        box = (int(max(0, x0 - pad)), int(max(0, y0 - pad)), int(min(w, x1 + pad)), int(min(h, y1 + pad)))
        tiles = []
        for caption, frame in frames.items():
            picture = renderer.render(frame)[box[1]:box[3], box[0]:box[2]]
            scale = tile_width / picture.shape[1]
            tile = cv2.resize(picture, (tile_width, int(round(picture.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            tile = np.ascontiguousarray(tile)
            cv2.putText(tile, f"{name}: {caption}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, f"{name}: {caption}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        height = max(t.shape[0] for t in tiles)
        rows.append(np.concatenate([np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles], axis=1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)


def sample_photos() -> dict[str, np.ndarray]:
    """scikit-image's astronaut and matplotlib's grace_hopper sample, RGB uint8."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": np.ascontiguousarray(hopper)}
