"""The phoneme-driven rig: timed phones (+ prosody features) → a full 74-channel motion track.

The first generator, with no learned weights: the lip-sync baseline and the teacher of the neural
model. Everything is a continuous function of time sampled at the frame times ``k / fps``, so
the same input gives the same trajectory at 25, 30 or 100 fps, and the output is deterministic
for a seed (each random component draws from its own child of the seed).

**Mouth.** Each phone's viseme (:data:`~studio.audio.phones.VISEME_OF`) has a target in five
articulatory parameters (:data:`ARTICULATION`): jaw opening, lip rounding, lip spreading,
lower-lip tuck (f/v) and upper-lip raise. Neighbouring phones blend by Cohen–Massaro dominance
functions: phone *i* pulls with ``α · exp(−(τ/θ)^c)``, where τ is the distance to the phone's
time span (0 inside it) and θ is longer before the phone than after it, so lips anticipate
sounds (rounding most of all); the whole mouth leads the audio by :attr:`RigStyle.lead`.
Parameters map linearly to keypoint offsets (:data:`BASIS`). Then a hard constraint: during every
p/b/m (and at least at the frame nearest its centre) the inner lips meet exactly, with a one-frame
ramp either side; so they do in silence — a pause, or a stop's closure that recognition heard as
silence — where the mouth is at rest. The lips never cross.

**Emotion.** Per-frame weights of the 8 labels (the conditions of
:data:`~studio.core.document.CONDITION_CHANNELS`, strength included) mix the offset presets of
:data:`EMOTION_PRESETS` (smile, frown, raised brows, …) and a small head-pitch bias each.

**Prosody.** Syllable nuclei and pitch accents come from the features (energy peaks in voiced
speech, scored by pitch and loudness excursion) or, without features, from the vowels and their
stress. Accents give head nods and brow raises; a slow, seeded sway moves the head while
speaking and settles to stillness in silence.

**Eyes.** Blinks at a natural rate (≈ 17 per minute) with more at the start of pauses, a
refractory gap, and a fast-close/slow-open shape that reaches full closure on some frame at any
fps. Gaze fixations with saccades, mostly near the camera.

**Intensity** (per frame, 0…2) scales the dynamic head motion and brow raises; 0 leaves the head
and brows still, while lips and blinks are untouched. Eye overrides in the conditions replace the
generated eye channels where they are set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from studio.audio.phones import BILABIALS, GLIDE_VISEME_OF, SILENCE, VISEME_OF, Phone
from studio.core.document import CONDITION_CHANNELS, EMOTIONS
from studio.core.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS
from studio.core.motion import CHANNEL_INDEX, EXP, neutral_motion

ARTICULATION: tuple[str, ...] = ("jaw", "round", "spread", "tuck", "raise")

# viseme → (jaw, round, spread, tuck, raise) targets, α (dominance), θ before / after (s)
_VISEME_TARGETS: dict[str, tuple[tuple[float, ...], float, float, float]] = {
    "sil": ((0.00, 0.00, 0.00, 0.00, 0.00), 0.35, 0.060, 0.080),
    "PP": ((0.04, 0.00, 0.00, 0.00, 0.00), 1.00, 0.045, 0.035),
    "FF": ((0.10, 0.00, 0.05, 1.00, 0.35), 0.95, 0.045, 0.035),
    "TH": ((0.20, 0.00, 0.10, 0.00, 0.25), 0.65, 0.040, 0.035),
    "DD": ((0.18, 0.00, 0.15, 0.00, 0.10), 0.45, 0.035, 0.030),
    "kk": ((0.26, 0.00, 0.10, 0.00, 0.00), 0.40, 0.035, 0.030),
    "CH": ((0.12, 0.60, 0.00, 0.00, 0.35), 0.85, 0.070, 0.040),
    "SS": ((0.08, 0.00, 0.35, 0.00, 0.30), 0.75, 0.040, 0.035),
    "nn": ((0.16, 0.00, 0.10, 0.00, 0.00), 0.40, 0.035, 0.030),
    "RR": ((0.18, 0.45, 0.00, 0.00, 0.05), 0.60, 0.060, 0.040),
    "aa": ((0.85, 0.00, 0.10, 0.00, 0.10), 0.80, 0.045, 0.040),
    "E": ((0.52, 0.00, 0.45, 0.00, 0.10), 0.75, 0.045, 0.040),
    "ih": ((0.28, 0.00, 0.60, 0.00, 0.05), 0.70, 0.045, 0.040),
    "oh": ((0.62, 0.70, 0.00, 0.00, 0.00), 0.80, 0.070, 0.045),
    "ou": ((0.22, 0.95, 0.00, 0.00, 0.00), 0.85, 0.090, 0.050),
}
_DOMINANCE_SHAPE = 1.5   # the exponent c of the dominance functions
_HH_DOMINANCE = 0.08     # /h/ takes the shape of what follows


def _basis() -> np.ndarray:
    """(5, 21, 3) keypoint offsets of each articulatory parameter at 1 (face units, IOD = 1)."""
    b = np.zeros((len(ARTICULATION), NUM_KEYPOINTS, 3))
    k = KEYPOINT_INDEX

    def put(param: str, name: str, xyz, mirror: bool = True) -> None:
        p = ARTICULATION.index(param)
        b[p, k[name]] = xyz
        if mirror and name.endswith("_l"):
            b[p, k[name[:-2] + "_r"]] = (-xyz[0], xyz[1], xyz[2])

    put("jaw", "lip_lower_center", (0.0, -0.40, -0.03))
    put("jaw", "lip_lower_l", (-0.01, -0.36, -0.03))
    put("jaw", "chin", (0.0, -0.32, -0.06))
    put("jaw", "mouth_corner_l", (-0.03, -0.12, -0.02))
    put("jaw", "lip_upper_center", (0.0, -0.02, 0.0))
    put("jaw", "cheek_l", (-0.01, -0.04, 0.0))

    put("round", "mouth_corner_l", (-0.13, 0.0, 0.08))
    put("round", "lip_upper_center", (0.0, 0.03, 0.10))
    put("round", "lip_lower_center", (0.0, -0.04, 0.10))
    put("round", "lip_upper_l", (-0.05, 0.01, 0.09))
    put("round", "lip_lower_l", (-0.05, -0.01, 0.09))

    put("spread", "mouth_corner_l", (0.08, 0.03, -0.03))
    put("spread", "lip_upper_l", (0.03, 0.01, -0.01))
    put("spread", "lip_lower_l", (0.03, 0.0, -0.01))
    put("spread", "cheek_l", (0.01, 0.01, 0.0))

    put("tuck", "lip_lower_center", (0.0, 0.09, -0.08))
    put("tuck", "lip_lower_l", (0.0, 0.08, -0.07))
    put("tuck", "lip_upper_center", (0.0, 0.02, 0.01))

    put("raise", "lip_upper_center", (0.0, 0.04, 0.01))
    put("raise", "lip_upper_l", (0.0, 0.05, 0.01))
    return b


#: (5, 21, 3): what each articulatory parameter at 1 does to the keypoints.
BASIS = _basis()


def _emotion_presets() -> dict[str, np.ndarray]:
    """label → (21, 3) offsets of the full expression (strength 1)."""
    presets = {}
    spec: dict[str, dict[str, tuple[float, float, float]]] = {
        "neutral": {},
        "happy": {"mouth_corner_l": (0.07, 0.11, -0.02), "cheek_l": (0.01, 0.07, 0.02),
                  "lid_lower_l": (0.0, 0.035, 0.0), "lid_upper_l": (0.0, -0.015, 0.0),
                  "lip_upper_l": (0.02, 0.03, 0.0), "lip_lower_l": (0.02, 0.0, 0.0),
                  "brow_outer_l": (0.0, 0.015, 0.0)},
        "sad": {"brow_inner_l": (-0.03, 0.08, 0.0), "brow_outer_l": (0.0, -0.035, 0.0),
                "lid_upper_l": (0.0, -0.035, 0.0), "mouth_corner_l": (-0.01, -0.08, 0.0),
                "lip_lower_center": (0.0, 0.02, 0.03), "chin": (0.0, 0.03, 0.01),
                "cheek_l": (0.0, -0.02, 0.0)},
        "angry": {"brow_inner_l": (-0.05, -0.08, 0.01), "brow_outer_l": (0.0, -0.01, 0.0),
                  "lid_upper_l": (0.0, 0.02, 0.0), "lid_lower_l": (0.0, 0.03, 0.0),
                  "mouth_corner_l": (-0.03, -0.02, 0.0), "lip_upper_center": (0.0, -0.01, 0.0),
                  "lip_lower_center": (0.0, 0.01, 0.0), "nose_tip": (0.0, 0.01, 0.0)},
        "surprised": {"brow_inner_l": (0.0, 0.12, 0.0), "brow_outer_l": (0.0, 0.11, 0.0),
                      "lid_upper_l": (0.0, 0.05, 0.0), "lid_lower_l": (0.0, -0.015, 0.0),
                      "mouth_corner_l": (-0.03, -0.03, 0.02)},
        "fearful": {"brow_inner_l": (-0.03, 0.10, 0.0), "brow_outer_l": (0.0, 0.04, 0.0),
                    "lid_upper_l": (0.0, 0.05, 0.0), "lid_lower_l": (0.0, 0.01, 0.0),
                    "mouth_corner_l": (0.07, -0.04, -0.03), "lip_lower_l": (0.02, -0.02, 0.0)},
        "disgusted": {"brow_inner_l": (-0.03, -0.05, 0.0), "lid_lower_l": (0.0, 0.03, 0.0),
                      "nose_tip": (0.0, 0.02, 0.0), "cheek_l": (0.0, 0.04, 0.01),
                      "lip_upper_l": (0.0, 0.06, 0.01), "lip_upper_center": (0.0, 0.04, 0.0),
                      "mouth_corner_l": (-0.01, -0.04, 0.0)},
        "contempt": {},
    }
    for label, moves in spec.items():
        off = np.zeros((NUM_KEYPOINTS, 3))
        for name, xyz in moves.items():
            off[KEYPOINT_INDEX[name]] = xyz
            if name.endswith("_l"):
                off[KEYPOINT_INDEX[name[:-2] + "_r"]] = (-xyz[0], xyz[1], xyz[2])
        presets[label] = off
    # contempt is one-sided: the left corner tightens up and out, a slight sneer on that side
    c = presets["contempt"]
    c[KEYPOINT_INDEX["mouth_corner_l"]] = (0.05, 0.07, -0.02)
    c[KEYPOINT_INDEX["lip_upper_l"]] = (0.01, 0.025, 0.0)
    c[KEYPOINT_INDEX["cheek_l"]] = (0.0, 0.02, 0.0)
    c[KEYPOINT_INDEX["lid_upper_l"]] = (0.0, -0.015, 0.0)
    c[KEYPOINT_INDEX["lid_upper_r"]] = (0.0, -0.015, 0.0)
    return presets


#: label → (21, 3) keypoint offsets of each emotion at strength 1.
EMOTION_PRESETS = _emotion_presets()
#: label → (jaw opening added, head pitch°, head roll°) of each emotion at strength 1.
EMOTION_POSE: dict[str, tuple[float, float, float]] = {
    "neutral": (0.0, 0.0, 0.0), "happy": (0.02, -2.0, 0.0), "sad": (0.0, 4.0, 0.0),
    "angry": (0.0, 3.0, 0.0), "surprised": (0.22, -3.0, 0.0), "fearful": (0.08, -1.5, 0.0),
    "disgusted": (0.0, 1.5, 0.0), "contempt": (0.0, -1.0, 3.0),
}


@dataclass(frozen=True)
class RigStyle:
    """Tunable behaviour of the rig; the defaults are what ``studio generate`` uses."""

    lead: float = 0.010            # the mouth leads the audio by this many seconds
    closure_ramp: float = 0.030    # seconds over which a forced lip closure fades out
    close_on_silence: bool = True  # lips meet in silences too (pauses, and stop closures heard as silence)
    silence_delay: float = 0.030   # … but only this long after the sound before the silence ends
    head_degrees: float = 1.0      # scale of all head motion (nods and sway)
    nod_degrees: float = 3.0       # pitch of a full-strength accent nod
    sway_degrees: float = 2.2      # RMS-ish amplitude of the slow sway while speaking
    brow_raise: float = 0.045      # brow lift on a full-strength accent (face units)
    blink_rate: float = 17.0       # blinks per minute while speaking
    pause_blink: float = 0.6       # probability of a blink at the start of a pause ≥ 0.25 s
    gaze_spread: float = 0.22      # standard deviation of fixations around the camera


class Prosody(Protocol):
    """What the rig reads from the audio features (see :mod:`studio.audio.features`)."""

    rate: float
    energy_db: np.ndarray
    f0: np.ndarray
    voicing: np.ndarray
    vad: np.ndarray


def num_frames_for(duration: float, fps: float) -> int:
    """Frames covering ``duration`` seconds at ``fps``: frame k shows time k / fps."""
    return max(1, int(np.ceil(duration * fps - 1e-6)))


def default_conditions(num_frames: int, *, emotion: str = "neutral", strength: float = 1.0,
                       intensity: float | np.ndarray = 1.0) -> np.ndarray:
    """Conditions (T, 13) of :data:`CONDITION_CHANNELS`: one emotion throughout, no eye overrides."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"emotion strength must be within 0…1, got {strength}")
    out = np.full((num_frames, len(CONDITION_CHANNELS)), np.nan, dtype=np.float32)
    out[:, 0] = np.clip(np.broadcast_to(intensity, (num_frames,)), 0.0, 2.0)
    out[:, 1:1 + len(EMOTIONS)] = 0.0
    out[:, 1] = 1.0 - strength
    out[:, 1 + EMOTIONS.index(emotion)] += strength
    return out


def rig_motion(phones: Sequence[Phone], *, num_frames: int, fps: float,
               features: Prosody | None = None, conditions: np.ndarray | None = None,
               seed: int = 0, style: RigStyle = RigStyle()) -> np.ndarray:
    """The motion track (T, 74) float32 for timed phones; frame k is at time k / fps.

    ``conditions`` (T, 13) as :data:`CONDITION_CHANNELS` (default: intensity 1, neutral);
    ``features`` (optional) drive loudness, accents and speech activity.
    """
    if fps <= 0 or num_frames <= 0:
        raise ValueError(f"need fps > 0 and num_frames > 0, got fps={fps}, num_frames={num_frames}")
    if conditions is None:
        conditions = default_conditions(num_frames)
    conditions = np.asarray(conditions, dtype=np.float64)
    if conditions.shape != (num_frames, len(CONDITION_CHANNELS)):
        raise ValueError(f"conditions must have shape ({num_frames}, {len(CONDITION_CHANNELS)}), got {conditions.shape}")
    times = np.arange(num_frames) / float(fps)
    seeds = np.random.SeedSequence(seed).spawn(3)
    intensity = np.clip(np.nan_to_num(conditions[:, 0], nan=1.0), 0.0, 2.0)
    emotions = np.nan_to_num(conditions[:, 1:1 + len(EMOTIONS)], nan=0.0)

    params = articulation(phones, times, features=features, lead=style.lead)
    emo_pose = emotions @ np.array([EMOTION_POSE[e] for e in EMOTIONS])
    params[:, 0] = np.clip(params[:, 0] + emo_pose[:, 0], 0.0, 1.2)
    offsets = np.einsum("tp,pkd->tkd", params, BASIS)
    offsets += np.einsum("te,ekd->tkd", emotions, np.stack([EMOTION_PRESETS[e] for e in EMOTIONS]))

    activity = speech_activity(phones, times, features)
    accents = accent_times(phones, features)
    nods, brows = _accent_curves(accents, times, style)
    brow_lift = intensity * brows
    for name in ("brow_inner_l", "brow_inner_r", "brow_outer_l", "brow_outer_r"):
        offsets[:, KEYPOINT_INDEX[name], 1] += brow_lift * (1.0 if "inner" in name else 0.8)

    _close_lips(offsets, phones, times, style)

    motion = neutral_motion(num_frames).astype(np.float64)
    motion[:, EXP] = offsets.reshape(num_frames, -1)
    head = _head_motion(times, activity, nods, np.random.default_rng(seeds[0]), style)
    motion[:, CHANNEL_INDEX["pose.pitch"]] = intensity * head[:, 0] + emo_pose[:, 1]
    motion[:, CHANNEL_INDEX["pose.yaw"]] = intensity * head[:, 1]
    motion[:, CHANNEL_INDEX["pose.roll"]] = intensity * head[:, 2] + emo_pose[:, 2]
    motion[:, CHANNEL_INDEX["t.x"]] = intensity * head[:, 1] * 0.004
    motion[:, CHANNEL_INDEX["t.y"]] = -intensity * head[:, 0] * 0.003

    blink = blink_curve(times, activity, np.random.default_rng(seeds[1]), style)
    gaze = gaze_curves(times, activity, np.random.default_rng(seeds[2]), style)
    eye = np.stack([blink, blink, gaze[:, 0], gaze[:, 1]], axis=1)
    overrides = conditions[:, 1 + len(EMOTIONS):]
    eye = np.where(np.isnan(overrides), eye, overrides)
    motion[:, CHANNEL_INDEX["eye.blink_l"]:] = eye
    return motion.astype(np.float32)


# --- mouth ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Segment:
    viseme: str
    start: float
    end: float
    alpha: float


def _segments(phones: Sequence[Phone]) -> list[_Segment]:
    """Phones as viseme segments: diphthongs split into nucleus and glide, /h/ takes what follows,
    time before, between and after the phones is rest."""
    out: list[_Segment] = []
    previous_end = -np.inf
    for i, p in enumerate(phones):
        if p.start > previous_end + 1e-6:  # time no phone covers is rest
            out.append(_Segment("sil", previous_end, p.start, _VISEME_TARGETS["sil"][1]))
        previous_end = max(previous_end, p.end)
        viseme = VISEME_OF.get(p.label, "sil")
        alpha = None
        if viseme is None:  # HH: the shape of the next phone, barely any pull of its own
            nxt = next((VISEME_OF.get(q.label) for q in phones[i + 1:] if VISEME_OF.get(q.label)), "sil")
            viseme, alpha = nxt, _HH_DOMINANCE
        glide = GLIDE_VISEME_OF.get(p.label)
        a = _VISEME_TARGETS[viseme][1] if alpha is None else alpha
        if glide is None:
            out.append(_Segment(viseme, p.start, p.end, a))
        else:
            mid = p.start + 0.6 * (p.end - p.start)
            out.append(_Segment(viseme, p.start, mid, a))
            out.append(_Segment(glide, mid, p.end, _VISEME_TARGETS[glide][1]))
    out.append(_Segment("sil", previous_end, np.inf, _VISEME_TARGETS["sil"][1]))
    return out


def articulation(phones: Sequence[Phone], times: np.ndarray, *, features: Prosody | None = None,
                 lead: float = RigStyle.lead) -> np.ndarray:
    """Articulatory parameters (T, 5) of :data:`ARTICULATION` at ``times`` (s), before closures.

    Dominance-weighted blend of the viseme targets; the jaw follows the loudness of the speech
    when features are given (0.75× on quiet syllables … 1.15× on loud ones).
    """
    times = np.asarray(times, dtype=np.float64)
    num = np.zeros((times.size, len(ARTICULATION)))
    den = np.full(times.size, 1e-4)  # a whisper of rest keeps silence-free gaps defined
    if times.size == 0:
        return num
    for seg in _segments(phones):
        target, _, before, after = _VISEME_TARGETS[seg.viseme]
        start, end = seg.start - lead, seg.end - lead
        lo = np.searchsorted(times, start - 4 * before)
        hi = np.searchsorted(times, end + 4 * after, side="right")
        if lo >= hi:
            continue
        t = times[lo:hi]
        tau_before = np.maximum(start - t, 0.0) / before
        tau_after = np.maximum(t - end, 0.0) / after
        d = seg.alpha * np.exp(-(tau_before + tau_after) ** _DOMINANCE_SHAPE)
        num[lo:hi] += d[:, None] * np.asarray(target)
        den[lo:hi] += d
    params = num / den[:, None]
    if features is not None and getattr(features, "energy_db", None) is not None and len(features.energy_db):
        params[:, 0] *= _loudness_gain(features, times)
    return params


def _loudness_gain(features: Prosody, times: np.ndarray) -> np.ndarray:
    energy = np.asarray(features.energy_db, dtype=np.float64)
    speech = np.asarray(features.vad, dtype=bool)
    if not speech.any():
        return np.ones(times.size)
    level = np.median(energy[speech])
    idx = np.clip(np.round(times * features.rate).astype(np.int64), 0, len(energy) - 1)
    # a 50 ms moving maximum so stop closures inside a syllable do not dip the jaw
    k = max(1, int(round(0.05 * features.rate)))
    padded = np.pad(energy, k, mode="edge")
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1).max(axis=1)
    return np.clip(1.0 + 0.04 * (window[idx] - level), 0.75, 1.15)


def closure_weight(phones: Sequence[Phone], times: np.ndarray, style: RigStyle = RigStyle()) -> np.ndarray:
    """0…1 per time: how far the rig forces the lips shut — 1 during every p/b/m (at least the
    frame nearest its centre) and, with ``close_on_silence``, in silence after ``silence_delay``;
    fading over ``closure_ramp`` either side."""
    times = np.asarray(times, dtype=np.float64)
    weight = np.zeros(times.size)
    if times.size == 0:
        return weight
    closing = BILABIALS | {SILENCE} if style.close_on_silence else BILABIALS
    for p in phones:
        if p.label not in closing:
            continue
        start, end = p.start - style.lead, p.end - style.lead
        if p.label == SILENCE:  # the lips anticipate the next sound, not the silence itself
            start = p.start + style.silence_delay
        lo_i = np.searchsorted(times, start - style.closure_ramp)
        hi_i = np.searchsorted(times, end + style.closure_ramp, side="right")
        if lo_i >= hi_i and p.label == SILENCE:
            continue
        t = times[lo_i:hi_i]
        w = np.clip(1.0 - np.maximum(np.maximum(start - t, t - end), 0.0) / style.closure_ramp, 0.0, 1.0)
        if not np.any((t >= start) & (t <= end)) and p.label != SILENCE:
            # shorter than a frame: close the frame nearest its centre
            nearest = int(np.argmin(np.abs(times - 0.5 * (start + end))))
            weight[nearest] = 1.0
        weight[lo_i:hi_i] = np.maximum(weight[lo_i:hi_i], w)
    return weight


def _close_lips(offsets: np.ndarray, phones: Sequence[Phone], times: np.ndarray, style: RigStyle) -> None:
    """In place: inner lips meet during every p/b/m (≥ one frame) and silence, never cross anywhere."""
    _apply_closure(offsets, closure_weight(phones, times, style))


def _apply_closure(offsets: np.ndarray, weight: np.ndarray) -> None:
    """In place: close the inner lips of ``offsets`` (T, 21, 3) by ``weight`` (T,); never cross."""
    k = KEYPOINT_INDEX
    up, lo = k["lip_upper_center"], k["lip_lower_center"]
    gap = np.maximum(offsets[:, up, 1] - offsets[:, lo, 1], 0.0)
    shift = weight * gap
    offsets[:, up, 1] -= 0.35 * shift
    offsets[:, lo, 1] += 0.65 * shift
    for side in ("l", "r"):  # the lateral lip points follow, so the whole mouth seals
        offsets[:, k[f"lip_upper_{side}"], 1] -= 0.25 * shift
        offsets[:, k[f"lip_lower_{side}"], 1] += 0.55 * shift
    closed = offsets[:, lo, 1] > offsets[:, up, 1]
    offsets[closed, lo, 1] = offsets[closed, up, 1]


#: The channels of :func:`lip_prior`.
LIP_PRIOR: tuple[str, ...] = ARTICULATION + ("closure", "gap")


def lip_prior(phones: Sequence[Phone], times: np.ndarray, *, features: Prosody | None = None,
              style: RigStyle = RigStyle()) -> np.ndarray:
    """(T, 7) of :data:`LIP_PRIOR`: what the rig's mouth does for ``phones`` — its articulatory
    parameters, its forced-closure weight and the inner-lip gap (face units) after closing, with
    no emotion and intensity 1. The neural model reads this as a prior it learns to correct."""
    times = np.asarray(times, dtype=np.float64)
    params = articulation(phones, times, features=features, lead=style.lead)
    weight = closure_weight(phones, times, style)
    offsets = prior_offsets(np.column_stack([params, weight]))
    k = KEYPOINT_INDEX
    gap = np.maximum(offsets[:, k["lip_upper_center"], 1] - offsets[:, k["lip_lower_center"], 1], 0.0)
    return np.column_stack([params, weight, gap])


def prior_offsets(prior: np.ndarray) -> np.ndarray:
    """(T, 21, 3) keypoint offsets of the rig's mouth from rows of :func:`lip_prior` (its
    articulatory parameters and closure weight; the gap column is not needed): the expression the
    rig gives those phones with no emotion."""
    prior = np.asarray(prior, dtype=np.float64)
    offsets = np.einsum("tp,pkd->tkd", prior[:, :len(ARTICULATION)], BASIS)
    _apply_closure(offsets, prior[:, len(ARTICULATION)])
    return offsets


# --- prosody -------------------------------------------------------------------------------------

def speech_activity(phones: Sequence[Phone], times: np.ndarray, features: Prosody | None = None,
                    hold: float = 0.35, ease: float = 0.3) -> np.ndarray:
    """0…1 per time: 1 while speaking, pauses shorter than ``hold`` bridged, easing to 0 over
    ``ease`` seconds in longer silences. Computed on a fixed 100 Hz grid, the same at every fps."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return np.zeros(0)
    grid = np.arange(0.0, times[-1] + 0.0100001, 0.01)
    if features is not None and len(features.vad):
        idx = np.clip(np.round(grid * features.rate).astype(np.int64), 0, len(features.vad) - 1)
        flags = np.asarray(features.vad, dtype=np.float64)[idx]
    else:
        flags = np.zeros(grid.size)
        for p in phones:
            if p.label != SILENCE:
                flags[np.searchsorted(grid, p.start):np.searchsorted(grid, p.end)] = 1.0
    h = int(round(hold * 100))
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(flags, h), 2 * h + 1)
    # speaking when there is speech on both sides within ``hold``: short pauses are bridged
    speaking = np.minimum(windows[:, :h + 1].max(axis=1), windows[:, h:].max(axis=1))
    k = int(round(ease * 100))
    kernel = np.hanning(2 * k + 3)[1:-1]
    smooth = np.convolve(np.pad(speaking, k, mode="edge"), kernel / kernel.sum(), mode="valid")
    return np.interp(times, grid, smooth)


def accent_times(phones: Sequence[Phone], features: Prosody | None = None) -> np.ndarray:
    """Accents (N, 2): time (s) and strength 0…1 of stressed syllables and pitch accents."""
    vowels = [p for p in phones if p.label in VISEME_OF and p.label not in (SILENCE,)
              and VISEME_OF[p.label] in ("aa", "E", "ih", "oh", "ou", "RR") and p.duration > 0]
    if features is not None and len(features.energy_db) and np.any(features.vad):
        return _accents_from_features(features, vowels)
    out = []
    for p in vowels:
        strength = {1: 1.0, 2: 0.45}.get(p.stress, 0.15) * min(1.0, p.duration / 0.12)
        out.append((p.start, strength))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _accents_from_features(features: Prosody, vowels: Sequence[Phone]) -> np.ndarray:
    rate = float(features.rate)
    energy = np.asarray(features.energy_db, dtype=np.float64)
    voiced = (np.asarray(features.voicing) > 0.5) & np.asarray(features.vad, dtype=bool)
    f0 = np.asarray(features.f0, dtype=np.float64)
    k = max(1, int(round(0.04 * rate)))
    kernel = np.hanning(2 * k + 1)
    smooth = np.convolve(energy, kernel / kernel.sum(), mode="same")
    is_peak = (smooth > np.roll(smooth, 1)) & (smooth >= np.roll(smooth, -1)) & voiced
    peaks = np.flatnonzero(is_peak)
    if peaks.size == 0:
        return np.zeros((0, 2))
    keep = [peaks[0]]
    for p in peaks[1:]:  # syllable nuclei at least 0.18 s apart: the louder wins
        if p - keep[-1] < 0.18 * rate:
            if smooth[p] > smooth[keep[-1]]:
                keep[-1] = p
        else:
            keep.append(p)
    nuclei = np.array(keep)
    voiced_f0 = f0[voiced & (f0 > 0)]
    ref_f0 = np.median(voiced_f0) if voiced_f0.size else 1.0
    semis = np.where(f0[nuclei] > 0, 12.0 * np.log2(np.maximum(f0[nuclei], 1.0) / ref_f0), 0.0)
    loud = smooth[nuclei] - np.median(smooth[nuclei])
    score = 0.5 * semis / 3.0 + 0.5 * loud / 6.0
    if vowels:  # a known primary stress nearby strengthens the accent
        stressed = np.array([0.5 * (p.start + p.end) for p in vowels if p.stress == 1])
        if stressed.size:
            near = np.min(np.abs(nuclei[:, None] / rate - stressed[None, :]), axis=1) < 0.1
            score = score + 0.5 * near
    strength = np.clip(0.2 + score, 0.0, 1.0)
    return np.stack([nuclei / rate - 0.05, strength], axis=1)


def _bump(t: np.ndarray, rise: float, fall: float) -> np.ndarray:
    """A smooth bump peaking at t = rise (0 before 0 and after rise + fall)."""
    up = np.clip(t / rise, 0.0, 1.0)
    down = np.clip((t - rise) / fall, 0.0, 1.0)
    return np.where(t < rise, 0.5 - 0.5 * np.cos(np.pi * up), 0.5 + 0.5 * np.cos(np.pi * down)) * (t >= 0) * (t <= rise + fall)


def _accent_curves(accents: np.ndarray, times: np.ndarray, style: RigStyle) -> tuple[np.ndarray, np.ndarray]:
    """Head-nod pitch (degrees) and brow lift (face units) per time from the accents."""
    nods = np.zeros(times.size)
    brows = np.zeros(times.size)
    for t0, strength in accents:
        lo = np.searchsorted(times, t0 - 0.05)
        hi = np.searchsorted(times, t0 + 0.6, side="right")
        t = times[lo:hi] - t0
        nods[lo:hi] += strength * style.nod_degrees * _bump(t, 0.12, 0.30)
        if strength > 0.55:  # only clear accents raise the brows
            brows[lo:hi] = np.maximum(brows[lo:hi], (strength - 0.4) / 0.6 * style.brow_raise * _bump(t + 0.05, 0.12, 0.35))
    return np.minimum(nods, 2.0 * style.nod_degrees), brows


def _head_motion(times: np.ndarray, activity: np.ndarray, nods: np.ndarray, rng: np.random.Generator,
                 style: RigStyle) -> np.ndarray:
    """(T, 3) pitch, yaw, roll in degrees: accent nods plus a slow sway that rests in silence."""
    sway = np.zeros((times.size, 3))
    amplitude = style.sway_degrees * np.array([0.6, 1.0, 0.5])
    for axis in range(3):
        freqs = rng.uniform(0.08, 0.45, size=4)
        phases = rng.uniform(0, 2 * np.pi, size=4)
        weights = rng.uniform(0.5, 1.0, size=4)
        wave = (weights[None, :] * np.sin(2 * np.pi * freqs[None, :] * times[:, None] + phases)).sum(axis=1)
        sway[:, axis] = amplitude[axis] * wave / np.sqrt(0.5 * (weights ** 2).sum())
    presence = 0.12 + 0.88 * activity
    head = sway * presence[:, None]
    head[:, 0] += nods
    return style.head_degrees * head


# --- eyes ----------------------------------------------------------------------------------------

_BLINK_CLOSE, _BLINK_OPEN = 0.075, 0.150


def blink_times(times: np.ndarray, activity: np.ndarray, rng: np.random.Generator, style: RigStyle) -> np.ndarray:
    """Blink onsets (s): a renewal process at the natural rate, plus blinks at pause starts."""
    if times.size == 0:
        return np.zeros(0)
    end = float(times[-1])
    onsets: list[float] = []
    t = float(rng.uniform(0.3, 2.5))
    mean_gap = 60.0 / style.blink_rate
    while t < end:
        onsets.append(t)
        t += max(1.2, rng.gamma(3.0, mean_gap / 3.0))
    speaking = activity > 0.5
    pause_starts = times[1:][speaking[:-1] & ~speaking[1:]]
    draws = rng.uniform(size=pause_starts.size)
    onsets.extend(float(p) + 0.05 for p, d in zip(pause_starts, draws) if d < style.pause_blink)
    onsets.sort()
    kept: list[float] = []
    for o in onsets:  # refractory: no blink within 0.8 s of the previous one
        if not kept or o - kept[-1] >= 0.8:
            kept.append(o)
    return np.array(kept)


def blink_curve(times: np.ndarray, activity: np.ndarray, rng: np.random.Generator, style: RigStyle) -> np.ndarray:
    """Eyelid closure 0…1 per time; each blink is fully closed on at least one sample time."""
    out = np.zeros(times.size)
    step = float(times[1] - times[0]) if times.size > 1 else 0.04
    hold = max(0.04, step)  # a closed plateau at least one frame long
    length = _BLINK_CLOSE + hold + _BLINK_OPEN
    for onset in blink_times(times, activity, rng, style):
        lo = np.searchsorted(times, onset)
        hi = np.searchsorted(times, onset + length, side="right")
        t = times[lo:hi] - onset
        closing = np.sin(0.5 * np.pi * np.clip(t / _BLINK_CLOSE, 0.0, 1.0)) ** 2
        opening = np.clip(1.0 - (t - _BLINK_CLOSE - hold) / _BLINK_OPEN, 0.0, 1.0) ** 1.5
        shape = np.where(t < _BLINK_CLOSE, closing, np.where(t <= _BLINK_CLOSE + hold, 1.0, opening))
        out[lo:hi] = np.maximum(out[lo:hi], shape)
    return out


def gaze_curves(times: np.ndarray, activity: np.ndarray, rng: np.random.Generator, style: RigStyle) -> np.ndarray:
    """(T, 2) gaze x, y in −1…1: fixations (≈ 0.4–3 s, longer in silence) joined by 50 ms saccades."""
    out = np.zeros((times.size, 2))
    if times.size == 0:
        return out
    end = float(times[-1])
    t, current = 0.0, np.zeros(2)
    targets = [(0.0, current, current)]
    while t < end:
        talking = activity[min(times.size - 1, np.searchsorted(times, t))] > 0.5
        t += float(rng.gamma(2.5, (0.55 if talking else 0.9)))
        away = rng.uniform() < (0.45 if talking else 0.25)
        spread = style.gaze_spread * (1.0 if away else 0.25)
        new = np.clip(rng.normal(0.0, [spread, 0.6 * spread]), -0.8, 0.8)
        targets.append((t, current, new))
        current = new
    starts = np.array([t0 for t0, _, _ in targets])
    a = np.array([x for _, x, _ in targets])
    b = np.array([y for _, _, y in targets])
    j = np.searchsorted(starts, times, side="right") - 1  # the saccade each time follows
    ramp = np.clip((times - starts[j]) / 0.05, 0.0, 1.0)[:, None]
    return a[j] + (b[j] - a[j]) * ramp


def mouth_gap(motion: np.ndarray) -> np.ndarray:
    """Inner-lip opening per frame (face units): upper minus lower lip-centre height, from the
    offsets alone (the canonical inner lips meet), so it is the same for every identity."""
    m = np.asarray(motion)
    up = CHANNEL_INDEX["exp.lip_upper_center.y"]
    lo = CHANNEL_INDEX["exp.lip_lower_center.y"]
    return np.maximum(m[..., up] - m[..., lo], 0.0)

