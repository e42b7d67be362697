"""The phoneme-driven rig: closures, coarticulation, emotions, intensity, eyes, determinism, fps."""

import numpy as np
import pytest

from studio.audio.phones import Phone
from studio.core.document import CONDITION_CHANNELS, EMOTIONS
from studio.core.keypoints import KEYPOINT_INDEX
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX, ROTATION, channel_indices, validate_motion
from studio.generate.lipsync import CLOSED_GAP, closure_counts
from studio.generate.rig import (
    EMOTION_PRESETS,
    articulation,
    default_conditions,
    mouth_gap,
    num_frames_for,
    rig_motion,
)

# "Bob, map my bump. … Pam ate a fab pie." with hand-made but plausible timings
_WORDS = [
    ("SIL", 0.00, 0.40), ("B", 0.40, 0.47), ("AA", 0.47, 0.60, 1), ("B", 0.60, 0.66), ("SIL", 0.66, 0.80),
    ("M", 0.80, 0.88), ("AE", 0.88, 1.02, 1), ("P", 1.02, 1.09), ("M", 1.09, 1.15), ("AY", 1.15, 1.30),
    ("B", 1.30, 1.36), ("AH", 1.36, 1.45, 1), ("M", 1.45, 1.52), ("P", 1.52, 1.58), ("SIL", 1.58, 3.00),
    ("P", 3.00, 3.07), ("AE", 3.07, 3.22, 1), ("M", 3.22, 3.28), ("EY", 3.28, 3.42, 1), ("T", 3.42, 3.48),
    ("AH", 3.48, 3.53), ("F", 3.53, 3.62), ("AE", 3.62, 3.75, 1), ("B", 3.75, 3.80), ("P", 3.80, 3.87),
    ("AY", 3.87, 4.05, 1), ("SIL", 4.05, 5.00),
]
PHONES = [Phone(w[0], w[1], w[2], w[3] if len(w) > 3 else 0) for w in _WORDS]
DURATION = 5.0


def _motion(fps=25, seed=0, phones=PHONES, duration=DURATION, **conditions):
    n = num_frames_for(duration, fps)
    cond = default_conditions(n, **conditions) if conditions else None
    return rig_motion(phones, num_frames=n, fps=fps, seed=seed, conditions=cond)


def _long_phones(seconds=60.0):
    out, offset = [], 0.0
    while offset < seconds:
        out += [Phone(p.label, p.start + offset, p.end + offset, p.stress) for p in PHONES]
        offset += DURATION
    return out, offset


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_every_bilabial_closes_and_open_vowels_stay_open(fps):
    m = _motion(fps)
    validate_motion(m)
    counts = closure_counts(mouth_gap(m), fps, PHONES)
    assert counts.bilabials == 12 and counts.recall == 1.0
    assert counts.open_vowels > 5 and counts.false_rate == 0.0


def test_lips_never_cross_and_open_wide_on_ah():
    m = _motion(100)
    gap = mouth_gap(m)
    up = m[:, CHANNEL_INDEX["exp.lip_upper_center.y"]]
    lo = m[:, CHANNEL_INDEX["exp.lip_lower_center.y"]]
    assert np.all(lo <= up + 1e-7)
    t = np.arange(len(m)) / 100
    ah = (t > 0.50) & (t < 0.58)
    assert gap[ah].max() > 0.15  # a clearly open jaw on "Bob"'s vowel
    assert gap[(t > 4.5)].max() <= CLOSED_GAP  # rest in the final silence


def test_lips_close_in_a_pause_only_after_the_sound_before_it_ends():
    # "…fab pie." ends at 4.05 s: the lips stay apart for RigStyle.silence_delay, then meet.
    m = _motion(100)
    gap = mouth_gap(m)
    t = np.arange(len(m)) / 100
    assert gap[(t >= 4.00) & (t <= 4.06)].min() > CLOSED_GAP
    assert gap[(t >= 4.10) & (t <= 4.90)].max() <= CLOSED_GAP
    # The next sound is anticipated: the lips part before "Pam"'s vowel at 3.07 s … after its P.
    assert gap[(t >= 3.08) & (t <= 3.15)].min() > CLOSED_GAP


def test_rounding_and_labiodental_shapes():
    t = np.array([0.5, 1.5, 2.5])
    phones = [Phone("UW", 0.3, 0.7), Phone("SIL", 0.7, 1.3), Phone("F", 1.3, 1.7), Phone("SIL", 1.7, 2.3),
              Phone("IY", 2.3, 2.7)]
    p = articulation(phones, t, lead=0.0)
    jaw, rnd, spread, tuck = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    assert rnd[0] > 0.8 and spread[0] < 0.05        # "oo": rounded, not spread
    assert tuck[1] > 0.8                             # "f": lower lip on the teeth
    assert spread[2] > 0.5 and rnd[2] < 0.05         # "ee": spread
    m = rig_motion(phones, num_frames=3, fps=1.0, seed=0)  # frames at 0, 1, 2 s: silence
    assert mouth_gap(m).max() < 0.25 * CLOSED_GAP


def test_coarticulation_anticipates_rounding():
    """Lips start rounding before an "oo" that follows a consonant (anticipatory coarticulation)."""
    phones = [Phone("SIL", 0, 0.5), Phone("S", 0.5, 0.6), Phone("UW", 0.6, 0.8), Phone("SIL", 0.8, 1.5)]
    control = [Phone("SIL", 0, 0.5), Phone("S", 0.5, 0.6), Phone("IY", 0.6, 0.8), Phone("SIL", 0.8, 1.5)]
    t = np.array([0.57])  # inside the /s/
    assert articulation(phones, t)[0, 1] > articulation(control, t)[0, 1] + 0.1


def test_deterministic_per_seed_and_seed_changes_only_the_free_parts():
    a, b, c = _motion(seed=3), _motion(seed=3), _motion(seed=4)
    assert np.array_equal(a, b)
    lips = channel_indices(CHANNEL_GROUPS["lips"])
    assert np.array_equal(a[:, lips], c[:, lips])  # speech decides the lips
    assert not np.allclose(a[:, ROTATION], c[:, ROTATION])  # the head sway is free
    eyes = channel_indices(CHANNEL_GROUPS["eyes"])
    assert not np.array_equal(a[:, eyes], c[:, eyes])


def test_same_trajectory_at_any_fps():
    m100, m25 = _motion(100), _motion(25)
    head = channel_indices(["pose.pitch", "pose.yaw", "pose.roll"])
    assert np.allclose(m100[::4, head], m25[:, head], atol=1e-4)
    lips = channel_indices(CHANNEL_GROUPS["lips"])
    # lips agree except on closure frames, whose ramp depends on where frames fall
    gap100, gap25 = mouth_gap(m100)[::4], mouth_gap(m25)
    assert np.median(np.abs(gap100 - gap25)) < 1e-6
    assert m25[:, lips].shape[1] == 24


def test_emotion_presets_are_distinct_faces():
    presets = {e: EMOTION_PRESETS[e] for e in EMOTIONS if e != "neutral"}
    for a in presets:
        assert np.abs(presets[a]).max() > 0.05, a  # visible
        for b in presets:
            if a < b:
                assert np.abs(presets[a] - presets[b]).max() > 0.04, (a, b)
    k = KEYPOINT_INDEX
    assert presets["happy"][k["mouth_corner_l"], 1] > 0.05 and presets["sad"][k["mouth_corner_l"], 1] < -0.05
    assert presets["surprised"][k["brow_inner_l"], 1] > 0.08 and presets["angry"][k["brow_inner_l"], 1] < -0.05
    assert presets["contempt"][k["mouth_corner_l"], 1] > 0.04 and presets["contempt"][k["mouth_corner_r"], 1] == 0


def test_emotion_segments_apply_per_frame_with_strength():
    neutral = _motion()
    n = len(neutral)
    cond = default_conditions(n)
    e = 1 + EMOTIONS.index("happy")
    cond[50:, 1] = 0.5
    cond[50:, e] = 0.5  # happy at half strength from frame 50 on
    happy = rig_motion(PHONES, num_frames=n, fps=25, seed=0, conditions=cond)
    lid = CHANNEL_INDEX["exp.lid_lower_l.y"]  # the squint of a smile; speech does not move it
    assert np.allclose(happy[:50, lid], neutral[:50, lid])
    assert np.allclose(happy[50:, lid] - neutral[50:, lid], 0.5 * EMOTION_PRESETS["happy"][KEYPOINT_INDEX["lid_lower_l"], 1], atol=1e-6)
    corner = CHANNEL_INDEX["exp.mouth_corner_l.y"]
    full = _motion(emotion="happy")
    assert (full[:, corner] - neutral[:, corner]).mean() > 0.1


def test_closures_hold_under_every_emotion():
    for emotion in EMOTIONS:
        counts = closure_counts(mouth_gap(_motion(emotion=emotion)), 25, PHONES)
        assert counts.recall == 1.0, emotion
        assert counts.false_rate == 0.0, emotion


def test_intensity_zero_keeps_lips_and_blinks_but_stills_head_and_brows():
    phones, seconds = _long_phones(30)
    n = num_frames_for(seconds, 25)
    normal = rig_motion(phones, num_frames=n, fps=25, seed=1)
    still = rig_motion(phones, num_frames=n, fps=25, seed=1, conditions=default_conditions(n, intensity=0.0))
    head = channel_indices(CHANNEL_GROUPS["head"])
    brows = channel_indices(CHANNEL_GROUPS["brows"])
    assert normal[:, head].std(axis=0).max() > 0.5 and normal[:, brows].std(axis=0).max() > 0.005
    assert still[:, head].std(axis=0).max() == 0.0 and still[:, brows].std(axis=0).max() == 0.0
    for group in ("lips", "jaw"):
        idx = channel_indices(CHANNEL_GROUPS[group])
        assert np.array_equal(normal[:, idx], still[:, idx])
    blinks = channel_indices(["eye.blink_l", "eye.blink_r"])
    assert np.array_equal(normal[:, blinks], still[:, blinks])
    double = rig_motion(phones, num_frames=n, fps=25, seed=1, conditions=default_conditions(n, intensity=2.0))
    assert double[:, head].std() > 1.5 * normal[:, head].std()


def test_blinks_natural_rate_full_closure_more_at_pauses():
    phones, seconds = _long_phones(120)
    m = rig_motion(phones, num_frames=num_frames_for(seconds, 25), fps=25, seed=7)
    blink = m[:, CHANNEL_INDEX["eye.blink_l"]]
    assert np.array_equal(blink, m[:, CHANNEL_INDEX["eye.blink_r"]])
    onsets = np.flatnonzero((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    per_minute = len(onsets) / (seconds / 60)
    assert 10 <= per_minute <= 30
    # every blink reaches full closure on some frame
    runs = np.split(np.arange(len(blink)), np.flatnonzero(np.diff((blink > 0).astype(int))) + 1)
    peaks = [blink[r].max() for r in runs if blink[r[0]] > 0]
    assert len(peaks) == len(onsets) and min(peaks) == 1.0
    # blinks cluster after pause onsets (the 1.42 s pause at 1.58 s of each 5 s block)
    phase = (onsets / 25.0) % DURATION
    after_pause = np.mean((phase > 1.58) & (phase < 2.1))
    assert after_pause > 2 * (0.52 / DURATION)


def test_head_moves_while_speaking_and_rests_in_silence():
    speech = [Phone("SIL", 0, 1)] + [Phone(lbl, 1 + 0.1 * i, 1.1 + 0.1 * i, 1 if lbl == "AA" else 0)
                                     for i, lbl in enumerate(["B", "AA", "D"] * 30)] + [Phone("SIL", 10, 30)]
    m = rig_motion(speech, num_frames=num_frames_for(30, 25), fps=25, seed=2)
    t = np.arange(len(m)) / 25
    yaw = m[:, CHANNEL_INDEX["pose.yaw"]]
    pitch = m[:, CHANNEL_INDEX["pose.pitch"]]
    talking, silent = (t > 2) & (t < 9), t > 15
    assert np.ptp(pitch[talking]) > 2.0  # nods on the stressed vowels
    assert np.abs(np.diff(yaw[silent])).mean() < 0.3 * np.abs(np.diff(yaw[talking])).mean()


def test_gaze_fixations_and_saccades():
    phones, seconds = _long_phones(60)
    m = rig_motion(phones, num_frames=num_frames_for(seconds, 25), fps=25, seed=5)
    gx = m[:, CHANNEL_INDEX["eye.gaze_x"]]
    moves = np.abs(np.diff(gx)) > 1e-4
    assert 0.02 < moves.mean() < 0.3  # mostly fixating, sometimes jumping
    assert np.abs(gx).max() <= 0.8 and np.abs(gx).max() > 0.05


def test_eye_overrides_replace_generated_eyes():
    n = num_frames_for(DURATION, 25)
    cond = default_conditions(n)
    col = 1 + len(EMOTIONS) + ["eye.blink_l", "eye.blink_r", "eye.gaze_x", "eye.gaze_y"].index("eye.gaze_x")
    assert CONDITION_CHANNELS[col] == "override.eye.gaze_x"
    cond[10:20, col] = -0.7
    m = rig_motion(PHONES, num_frames=n, fps=25, seed=0, conditions=cond)
    assert np.all(m[10:20, CHANNEL_INDEX["eye.gaze_x"]] == np.float32(-0.7))


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="fps"):
        rig_motion(PHONES, num_frames=10, fps=0)
    with pytest.raises(ValueError, match="conditions"):
        rig_motion(PHONES, num_frames=10, fps=25, conditions=np.zeros((3, 13)))
    with pytest.raises(ValueError, match="unknown emotion"):
        default_conditions(10, emotion="bored")


def test_no_phones_gives_a_resting_face():
    m = rig_motion([], num_frames=50, fps=25, seed=0)
    validate_motion(m)
    assert np.allclose(mouth_gap(m), 0.0)
