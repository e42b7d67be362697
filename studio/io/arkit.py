"""ARKit-52 blendshape weight curves from a motion track, as CSV (ours or Live Link Face's) or JSON.

Apple's 52 ARKit face blendshapes are the lingua franca of facial rigs (MetaHuman, Ready Player Me,
VRoid, Blender add-ons). :func:`arkit_weights` derives all 52, each within 0…1, from the studio's
motion space (:mod:`studio.core.motion`), vectorized over frames: the expression offsets δ of the
named keypoints (face units: inter-ocular distance = 1; x toward the subject's left, y up, z toward
the viewer) and the eye channels. ``Left``/``Right`` in ARKit names are the subject's own sides —
our ``_l``/``_r`` keypoints and ``eye.blink_l``/``_r``; ``In``/``Out`` are toward/away from the nose.
Head pose does not enter: blendshapes describe the face in the head's own frame, as δ does.

Each weight is ``clip(measure / full, 0, 1)``: a measure in face units divided by the offset at
which the shape is fully on. The ``full`` constants come from the studio's own rig
(:mod:`studio.generate.rig`), whose expression presets are what an animator sees as a full smile,
frown or brow raise, so a preset at strength 1 gives a weight near 1; where the rig has no preset,
from anatomy in face units (an inter-ocular distance is ≈ 63 mm, so 0.1 ≈ 6 mm). Notation:
``d(k)`` is the offset of keypoint ``k``; *chin drop* ``= max(−d(chin).y, 0)``; for a side s
(left +1, right −1) *out* ``= s · x`` (lateral); a mouth corner is taken relative to the jaw,
``corner' = d(mouth_corner) − 0.375 · d(chin)`` — the corners ride 3/8 of the way on the jaw
(the rig's jaw opening moves them 0.12 for a 0.32 chin drop), so opening the mouth is not a frown.

=======================  ======================================================  ==========================
shape                    measure                                                 full (face units), why
=======================  ======================================================  ==========================
eyeBlink{L,R}            ``eye.blink`` + upper-lid drop ``−d(lid_upper).y``      lid drop 0.1416: the mean
                         (the lid drop in eye apertures)                         face's eye aperture
eyeLookUp/Down{L,R}      ``±eye.gaze_y``                                         1: the gaze channel's limit
eyeLookOutLeft,          ``+eye.gaze_x`` (gaze toward the subject's left:        1 (±1 = 30°, the eye's
eyeLookInRight           the left eye turns out, the right eye in)               range)
eyeLookInLeft,           ``−eye.gaze_x``                                         1
eyeLookOutRight
eyeSquint{L,R}           lower lid up ``d(lid_lower).y``                         0.04: happy/angry presets
                                                                                 lift it 0.035 / 0.03
eyeWide{L,R}             upper lid up ``d(lid_upper).y`` × (1 − blink)           0.05: surprise preset
jawOpen                  chin drop                                               0.38: the rig's widest
                                                                                 jaw (1.2 × 0.32)
jawLeft / jawRight       ``±d(chin).x``                                          0.10 (≈ 6 mm)
jawForward               ``d(chin).z − 0.19 · min(d(chin).y, 0)``: forward       0.08 (≈ 5 mm)
                         beyond the arc an opening jaw swings the chin back on
                         (0.06 back per 0.32 down in the rig)
mouthClose               lips closer than the jaw implies: 1.2 × chin drop −     1.2 × 0.38, and at most
                         lip gap, gap ``= d(lip_upper_center).y −                jawOpen (ARKit's
                         d(lip_lower_center).y``                                 mouthClose rides on it)
mouthFunnel /            rounding r = ½ corners inward (mean ``−out'``) / 0.13   0.13 / 0.10: the rig's lip
mouthPucker              + ½ lips forward (mean centre ``z``) / 0.10; funnel =   rounding; open = gap 0.05…
                         r · open, pucker = r · (1 − open), open = lip gap       0.25
                         from 0.05 to 0.25
mouthLeft / mouthRight   ``±`` mean x of the corners and lip centres, less       0.08 (≈ 5 mm)
                         0.375 × the chin's
mouthSmile{L,R}          corner up ``corner'.y``                                 0.11: happy preset
mouthFrown{L,R}          corner down ``−corner'.y``                              0.08: sad preset
mouthStretch{L,R}        corner out beyond what a smile brings:                  0.08: fear preset (0.07
                         ``out' − 0.64 · max(corner'.y, 0)``                     out, 0.04 down)
mouthDimple{L,R}         corner back ``−corner'.z − 0.2 · max(corner'.y, 0)``    0.04 (the rig's spread
                                                                                 pulls it 0.03)
mouthRollLower           lower lip in, relative to the jaw:                      0.08: the f/v lip tuck
                         ``−(d(lip_lower_center) − d(chin)).z``
mouthRollUpper           upper lip in ``−d(lip_upper_center).z``                 0.06
mouthShrugLower          chin boss up ``d(chin).y`` (mentalis)                   0.04: sad preset 0.03
mouthShrugUpper          upper-lip centre up, less what rounding lifts:          0.05: the rig's lip raise
                         ``d(lip_upper_center).y − 0.25 · inward``               (0.04)
mouthPress{L,R}          lips pressed onto each other: ``max(−d(lip_upper).y,    0.04
                         0) + max(d(lip_lower).y − d(chin).y, 0)`` (side points)
mouthLowerDown{L,R}      lower lip down beyond the jaw: ``−(d(lip_lower) −       0.10
                         d(chin)).y``
mouthUpperUp{L,R}        upper lip up ``d(lip_upper).y``                         0.06: disgust preset
browDown{L,R}            inner brow down ``−d(brow_inner).y`` + ½ inward         0.10: angry preset (0.08
                         ``−out`` (corrugator pulls it down and in)              down, 0.05 in)
browInnerUp              mean inner brow up                                      0.12: surprise preset
browOuterUp{L,R}         outer brow up ``d(brow_outer).y``                       0.11: surprise preset
cheekSquint{L,R}         cheek up ``d(cheek).y``                                 0.07: happy preset
noseSneer{L,R}           nose tip up ``d(nose_tip).y`` (one midline keypoint:    0.025: disgust preset 0.02
                         both sides alike)
cheekPuff, tongueOut     0 — not in the motion space: a puff inflates the cheek surface between keypoints
                         (the cheek keypoint sits on the prominence a smile lifts), and no keypoint is on
                         the tongue
=======================  =========================================================================================

Files (:func:`write_arkit_csv`, :func:`write_arkit_json`, read back by :func:`read_arkit`):

* CSV, ``layout="studio"`` (default): header ``frame,time,<52 names>``, one row per frame, time in
  seconds (``frame / fps``), weights with 6 decimals.
* CSV, ``layout="livelinkface"``: the column layout of Epic's Live Link Face app exports —
  ``Timecode,BlendShapeCount,<52 names in PascalCase, in the app's order>,HeadYaw,HeadPitch,
  HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll``, with
  ``Timecode`` ``HH:MM:SS:FF.mmm`` from 00:00:00:00 (FF counts frames at the take's fps, ``.mmm``
  the sub-frame) and ``BlendShapeCount`` 61. Head and eye angles are radians of our own channels
  (``pose.yaw``/``pitch``/``roll``; eye yaw = gaze x × 30°, pitch = gaze y × 20°, roll 0), signs as
  :mod:`studio.core.motion` defines them.
* JSON: ``{"format": "studio-arkit", "version": 1, "fps": …, "names": [52], "weights": [[52] × T]}``.

Both are registered as ``"curves"`` exporters of the plugin registry (``arkit_csv``, ``arkit_json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.keypoints import KEYPOINT_INDEX, MEAN_FACE
from studio.core.motion import CHANNEL_INDEX, expression_offsets, validate_motion
from studio.core.safe_io import atomic_write
from studio.plugins.api import ExporterSpec

__all__ = [
    "ARKIT_NAMES",
    "FORMAT",
    "LAYOUTS",
    "LIVE_LINK_FACE_NAMES",
    "VERSION",
    "ArkitCurves",
    "arkit_weights",
    "read_arkit",
    "register",
    "write_arkit_csv",
    "write_arkit_json",
]

#: The 52 ARKit blendshapes (``ARFaceAnchor.BlendShapeLocation``), in the order of Apple's
#: documentation: left eye, right eye, mouth and jaw, eyebrows, cheeks, nose, tongue.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
ARKIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}

#: Live Link Face's column order: Apple's, except jawRight/jawLeft and mouthRight/mouthLeft swapped.
LIVE_LINK_FACE_NAMES: tuple[str, ...] = tuple(
    name[0].upper() + name[1:] for name in (
        ARKIT_NAMES[:15] + ("jawRight", "jawLeft") + ARKIT_NAMES[17:21] + ("mouthRight", "mouthLeft")
        + ARKIT_NAMES[23:]))
LIVE_LINK_FACE_POSE_COLUMNS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
LAYOUTS = ("studio", "livelinkface")
FORMAT = "studio-arkit"
VERSION = 1
GAZE_RANGE_DEGREES = (30.0, 20.0)  # eye.gaze_x / gaze_y = ±1 (studio.core.motion)
_DECIMALS = 6

# --- the full-scale constants of the mapping table (face units) ----------------------------------
EYE_APERTURE = float(MEAN_FACE[KEYPOINT_INDEX["lid_upper_l"], 1] - MEAN_FACE[KEYPOINT_INDEX["lid_lower_l"], 1])
EYE_SQUINT_FULL = 0.04
EYE_WIDE_FULL = 0.05
JAW_OPEN_FULL = 0.38
JAW_SIDE_FULL = 0.10
JAW_FORWARD_FULL = 0.08
JAW_ARC = 0.19               # chin z per chin y while the jaw opens (it swings back as it drops)
CORNER_ON_JAW = 0.375        # fraction of the chin's motion the mouth corners follow (rig: 0.12 / 0.32)
LIP_GAP_PER_CHIN_DROP = 1.2  # lip gap the jaw opens per unit of chin drop
ROUND_INWARD_FULL = 0.13
LIPS_FORWARD_FULL = 0.10
FUNNEL_GAP = (0.05, 0.25)    # lip gap from which rounding reads as a funnel rather than a pucker
MOUTH_SHIFT_FULL = 0.08
SMILE_FULL = 0.11
FROWN_FULL = 0.08
STRETCH_FULL = 0.08
SMILE_SPREAD = 0.64          # outward corner motion per unit of smile lift (happy preset: 0.07 / 0.11)
DIMPLE_FULL = 0.04
DIMPLE_PER_SMILE = 0.2       # backward corner motion per unit of smile lift (happy preset: 0.02 / 0.11)
ROLL_LOWER_FULL = 0.08
ROLL_UPPER_FULL = 0.06
SHRUG_LOWER_FULL = 0.04
SHRUG_UPPER_FULL = 0.05
SHRUG_UPPER_PER_ROUND = 0.25  # upper-lip lift per unit of corner inward motion while rounding
PRESS_FULL = 0.04
LOWER_DOWN_FULL = 0.10
UPPER_UP_FULL = 0.06
BROW_DOWN_FULL = 0.10
BROW_INNER_UP_FULL = 0.12
BROW_OUTER_UP_FULL = 0.11
CHEEK_SQUINT_FULL = 0.07
NOSE_SNEER_FULL = 0.025


def arkit_weights(motion) -> np.ndarray:
    """The 52 ARKit weights (T, 52) float32 in 0…1, in :data:`ARKIT_NAMES` order, of a (T, 74) track."""
    values = validate_motion(_values_of(motion), "motion")
    delta = expression_offsets(values).astype(np.float64)  # (T, 21, 3)
    out = np.zeros((len(values), len(ARKIT_NAMES)))

    def d(name: str) -> np.ndarray:
        return delta[:, KEYPOINT_INDEX[name]]

    def put(name: str, measure, full: float = 1.0) -> None:
        out[:, ARKIT_INDEX[name]] = np.clip(np.asarray(measure) / full, 0.0, 1.0)

    channel = {name: values[:, CHANNEL_INDEX[name]].astype(np.float64)
               for name in ("eye.blink_l", "eye.blink_r", "eye.gaze_x", "eye.gaze_y")}
    gaze_x, gaze_y = channel["eye.gaze_x"], channel["eye.gaze_y"]
    chin = d("chin")
    drop = np.maximum(-chin[:, 1], 0.0)
    upper, lower = d("lip_upper_center"), d("lip_lower_center")
    gap = upper[:, 1] - lower[:, 1]
    corners = {}
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        s = side[0].lower()
        blink = channel[f"eye.blink_{s}"]
        put(f"eyeBlink{side}", blink + np.maximum(-d(f"lid_upper_{s}")[:, 1], 0.0) / EYE_APERTURE)
        put(f"eyeWide{side}", d(f"lid_upper_{s}")[:, 1] * (1.0 - np.clip(blink, 0.0, 1.0)), EYE_WIDE_FULL)
        put(f"eyeSquint{side}", d(f"lid_lower_{s}")[:, 1], EYE_SQUINT_FULL)
        put(f"eyeLookUp{side}", gaze_y)
        put(f"eyeLookDown{side}", -gaze_y)
        put(f"eyeLookOut{side}", sign * gaze_x)  # the left eye looks out when the gaze goes to the left
        put(f"eyeLookIn{side}", -sign * gaze_x)

        corner = d(f"mouth_corner_{s}") - CORNER_ON_JAW * chin
        up, out_, back = corner[:, 1], sign * corner[:, 0], -corner[:, 2]
        corners[side] = out_
        lift = np.maximum(up, 0.0)
        put(f"mouthSmile{side}", up, SMILE_FULL)
        put(f"mouthFrown{side}", -up, FROWN_FULL)
        put(f"mouthStretch{side}", out_ - SMILE_SPREAD * lift, STRETCH_FULL)
        put(f"mouthDimple{side}", back - DIMPLE_PER_SMILE * lift, DIMPLE_FULL)
        side_upper, side_lower = d(f"lip_upper_{s}"), d(f"lip_lower_{s}")
        press = np.maximum(-side_upper[:, 1], 0.0) + np.maximum(side_lower[:, 1] - chin[:, 1], 0.0)
        put(f"mouthPress{side}", press, PRESS_FULL)
        put(f"mouthLowerDown{side}", -(side_lower[:, 1] - chin[:, 1]), LOWER_DOWN_FULL)
        put(f"mouthUpperUp{side}", side_upper[:, 1], UPPER_UP_FULL)

        brow = d(f"brow_inner_{s}")
        put(f"browDown{side}", np.maximum(-brow[:, 1], 0.0) + 0.5 * np.maximum(-sign * brow[:, 0], 0.0),
            BROW_DOWN_FULL)
        put(f"browOuterUp{side}", d(f"brow_outer_{s}")[:, 1], BROW_OUTER_UP_FULL)
        put(f"cheekSquint{side}", d(f"cheek_{s}")[:, 1], CHEEK_SQUINT_FULL)
        put(f"noseSneer{side}", d("nose_tip")[:, 1], NOSE_SNEER_FULL)

    put("jawOpen", drop, JAW_OPEN_FULL)
    put("jawLeft", chin[:, 0], JAW_SIDE_FULL)
    put("jawRight", -chin[:, 0], JAW_SIDE_FULL)
    put("jawForward", chin[:, 2] - JAW_ARC * np.minimum(chin[:, 1], 0.0), JAW_FORWARD_FULL)
    closure = np.clip((LIP_GAP_PER_CHIN_DROP * drop - gap) / (LIP_GAP_PER_CHIN_DROP * JAW_OPEN_FULL), 0.0, 1.0)
    out[:, ARKIT_INDEX["mouthClose"]] = np.minimum(closure, out[:, ARKIT_INDEX["jawOpen"]])

    inward = 0.5 * (np.maximum(-corners["Left"], 0.0) + np.maximum(-corners["Right"], 0.0))
    forward = np.maximum(0.5 * (upper[:, 2] + lower[:, 2]), 0.0)
    rounding = np.clip(0.5 * inward / ROUND_INWARD_FULL + 0.5 * forward / LIPS_FORWARD_FULL, 0.0, 1.0)
    opening = np.clip((gap - FUNNEL_GAP[0]) / (FUNNEL_GAP[1] - FUNNEL_GAP[0]), 0.0, 1.0)
    put("mouthFunnel", rounding * opening)
    put("mouthPucker", rounding * (1.0 - opening))
    mouth_x = np.mean([d("mouth_corner_l")[:, 0], d("mouth_corner_r")[:, 0], upper[:, 0], lower[:, 0]], axis=0)
    shift = mouth_x - CORNER_ON_JAW * chin[:, 0]
    put("mouthLeft", shift, MOUTH_SHIFT_FULL)
    put("mouthRight", -shift, MOUTH_SHIFT_FULL)
    put("mouthRollLower", -(lower[:, 2] - chin[:, 2]), ROLL_LOWER_FULL)
    put("mouthRollUpper", -upper[:, 2], ROLL_UPPER_FULL)
    put("mouthShrugLower", chin[:, 1], SHRUG_LOWER_FULL)
    put("mouthShrugUpper", upper[:, 1] - SHRUG_UPPER_PER_ROUND * inward, SHRUG_UPPER_FULL)
    put("browInnerUp", 0.5 * (d("brow_inner_l")[:, 1] + d("brow_inner_r")[:, 1]), BROW_INNER_UP_FULL)
    # cheekPuff and tongueOut stay 0: the motion space cannot express them (see the module docs)
    return out.astype(np.float32)


def _values_of(motion) -> np.ndarray:
    return motion.values if hasattr(motion, "values") and not isinstance(motion, np.ndarray) else motion


def _fps_of(path: Path, motion, fps) -> float:
    if fps is None:
        fps = getattr(motion, "fps", None)
    if fps is None:
        raise ValueError(f"{path}: the frame rate is unknown: pass fps (or a Motion, which carries it)")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) \
            or not math.isfinite(float(fps)) or float(fps) <= 0:
        raise ValueError(f"{path}: fps must be a positive number; got {fps!r}")
    return float(fps)


def _weights_for(path: Path, motion) -> np.ndarray:
    try:
        return arkit_weights(motion)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --- writing ------------------------------------------------------------------------------------

def write_arkit_csv(motion, path: str | os.PathLike, *, fps: float | None = None,
                    layout: str = "studio") -> Path:
    """Write the ARKit curves of ``motion`` (a Motion, or a (T, 74) array with ``fps``) as CSV."""
    path = Path(path)
    if layout not in LAYOUTS:
        raise ValueError(f"{path}: layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    fps = _fps_of(path, motion, fps)
    weights = _weights_for(path, motion)
    frames = np.arange(len(weights))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    cells = np.char.mod(f"%.{_DECIMALS}f", weights)
    if layout == "studio":
        writer.writerow(("frame", "time") + ARKIT_NAMES)
        times = frames / fps
        for i in frames:
            writer.writerow([int(i), repr(float(times[i]))] + cells[i].tolist())
    else:
        values = validate_motion(_values_of(motion))
        order = [ARKIT_INDEX[name[0].lower() + name[1:]] for name in LIVE_LINK_FACE_NAMES]
        pose = np.radians(np.stack([
            values[:, CHANNEL_INDEX["pose.yaw"]], values[:, CHANNEL_INDEX["pose.pitch"]],
            values[:, CHANNEL_INDEX["pose.roll"]]], axis=1).astype(np.float64))
        eye = np.radians(np.stack([values[:, CHANNEL_INDEX["eye.gaze_x"]] * GAZE_RANGE_DEGREES[0],
                                   values[:, CHANNEL_INDEX["eye.gaze_y"]] * GAZE_RANGE_DEGREES[1],
                                   np.zeros(len(values))], axis=1).astype(np.float64))
        angles = np.char.mod(f"%.{_DECIMALS}f", np.concatenate([pose, eye, eye], axis=1))
        writer.writerow(("Timecode", "BlendShapeCount") + LIVE_LINK_FACE_NAMES + LIVE_LINK_FACE_POSE_COLUMNS)
        count = len(LIVE_LINK_FACE_NAMES) + len(LIVE_LINK_FACE_POSE_COLUMNS)
        for i in frames:
            writer.writerow([timecode(i, fps), count] + cells[i, order].tolist() + angles[i].tolist())
    atomic_write(path, text.getvalue().encode("utf-8"))
    return path


def write_arkit_json(motion, path: str | os.PathLike, *, fps: float | None = None) -> Path:
    """Write the ARKit curves of ``motion`` as ``{"format": "studio-arkit", "version": 1, …}``."""
    path = Path(path)
    fps = _fps_of(path, motion, fps)
    weights = _weights_for(path, motion)
    document = {"format": FORMAT, "version": VERSION, "fps": fps, "names": list(ARKIT_NAMES),
                "weights": np.round(weights.astype(np.float64), _DECIMALS).tolist()}
    atomic_write(path, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    return path


def timecode(frame: int, fps: float) -> str:
    """``HH:MM:SS:FF.mmm`` of a frame: FF counts whole frames in the second, ``.mmm`` the sub-frame."""
    seconds = frame / fps
    whole = math.floor(seconds + 1e-9)
    in_second = round((seconds - whole) * fps, 6)
    frames_part = math.floor(in_second)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    milliframes = min(999, round((in_second - frames_part) * 1000))
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{frames_part:02d}.{milliframes:03d}"


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ArkitCurves:
    """ARKit curves read back: ``weights`` (T, 52) in :data:`ARKIT_NAMES` order, ``times`` (T,) s."""

    fps: float | None
    times: np.ndarray
    weights: np.ndarray
    names: tuple[str, ...] = ARKIT_NAMES


def read_arkit(path: str | os.PathLike, *, fps: float | None = None) -> ArkitCurves:
    """Read an ARKit curve file written here: studio CSV, Live Link Face CSV (``fps`` needed to
    turn its frame counts into seconds, else taken as 60, the app's default) or studio JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    try:
        if text.lstrip().startswith("{"):
            return _read_json(text)
        return _read_csv(text, fps)
    except (ValueError, KeyError, TypeError, IndexError, csv.Error, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a valid ARKit curve file: {exc}") from None


def _read_json(text: str) -> ArkitCurves:
    document = json.loads(text)
    if document.get("format") != FORMAT:
        raise ValueError(f"format is {document.get('format')!r}, expected {FORMAT!r}")
    if document.get("version") != VERSION:
        raise ValueError(f"version {document.get('version')!r} is not {VERSION}")
    weights = _ordered(document["names"], np.asarray(document["weights"], dtype=np.float64).reshape(-1, len(document["names"])))
    fps = float(document["fps"])
    return ArkitCurves(fps, np.arange(len(weights)) / fps, weights)


def _read_csv(text: str, fps: float | None) -> ArkitCurves:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise ValueError("empty file")
    header, body = rows[0], [row for row in rows[1:] if row]
    if header[:2] == ["frame", "time"]:
        times = np.array([float(row[1]) for row in body])
        weights = _ordered(header[2:], np.array([[float(x) for x in row[2:]] for row in body]).reshape(-1, len(header) - 2))
        steps = np.diff(times)
        return ArkitCurves(1.0 / float(np.median(steps)) if steps.size else fps, times, weights)
    if header[:2] == ["Timecode", "BlendShapeCount"]:
        rate = 60.0 if fps is None else float(fps)
        names = header[2:2 + len(LIVE_LINK_FACE_NAMES)]
        matrix = np.array([[float(x) for x in row[2:2 + len(names)]] for row in body]).reshape(-1, len(names))
        weights = _ordered([n[0].lower() + n[1:] for n in names], matrix)
        times = np.array([_seconds(row[0], rate) for row in body])
        return ArkitCurves(rate, times - (times[0] if times.size else 0.0), weights)
    raise ValueError("the header starts neither with frame,time nor with Timecode,BlendShapeCount")


def _seconds(code: str, fps: float) -> float:
    hours, minutes, seconds, frames = code.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(frames) / fps


def _ordered(names, matrix: np.ndarray) -> np.ndarray:
    """Columns of ``matrix`` (named ``names``) in :data:`ARKIT_NAMES` order; all 52 must be there."""
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in ARKIT_NAMES if name not in index]
    if missing:
        raise ValueError(f"missing blendshapes {missing[:5]}")
    return matrix[:, [index[name] for name in ARKIT_NAMES]].astype(np.float32)


# --- plugin registration ------------------------------------------------------------------------

def register(registry) -> None:
    registry.add(ExporterSpec(
        name="arkit_csv", label="ARKit blendshape curves (CSV)", kind="curves", extensions=(".arkit.csv", ".csv"),
        export=write_arkit_csv,
        description="The 52 ARKit blendshape weights (0…1) per frame derived from the motion. Options: "
                    "layout ('studio': frame,time,<52 names>; 'livelinkface': Live Link Face's "
                    "Timecode,BlendShapeCount,… columns with head/eye angles in radians), fps (for a bare array)."))
    registry.add(ExporterSpec(
        name="arkit_json", label="ARKit blendshape curves (JSON)", kind="curves",
        extensions=(".arkit.json", ".json"), export=write_arkit_json,
        description='{"format": "studio-arkit", "version": 1, "fps", "names" (52), "weights" (T × 52)}. '
                    "Options: fps (for a bare array)."))
