"""The neural model's per-frame inputs: one function, the same in training and at run time.

:func:`neural_inputs` turns what the generation path already has — the audio features
(:func:`studio.audio.features.compute_features`) and the phones
(:func:`studio.audio.phonemes.phones_for`: recognized, or aligned to a transcript) — into a
``(T, F)`` float32 array, row ``k`` for the video frame at time ``k / fps`` (the rig's frame
times). The training corpus (:mod:`studio.generate.neural.corpus`) calls it on its augmented audio
exactly as the runners call it on the user's, so the model never sees an input it was not
trained on.

The channels (:data:`INPUT_NAMES`, :data:`NUM_INPUTS` = 96; :data:`INPUTS_VERSION` 2)
--------------------------------------------------------------------------------------
Audio features are first resampled to the frame rate with
:meth:`~studio.audio.features.AudioFeatures.resample`: row ``k`` averages the 100 Hz feature
frames whose centres lie within half a frame of ``k / fps``.

===========================  ==================================================================
``mel.00`` … ``mel.39``      Log-mel power, the 80 bands of the feature front end averaged in
                             adjacent pairs (band ``2i`` and ``2i + 1``, natural log), *mean-
                             normalized per recording* (below), over ``MEL_SCALE``: speech reads
                             around 0 ± 1, pauses well below.
``energy``                   RMS level in dBFS: ``(max(dB, ENERGY_FLOOR_DB) − ENERGY_OFFSET_DB) /
                             ENERGY_SCALE_DB`` (speech at −20 dBFS ≈ +0.5, silence −3).
``voicing``                  YIN periodicity 0…1, as computed.
``log_f0``                   ``log2(f0 / PITCH_REFERENCE_HZ)`` (octaves around 150 Hz) where the
                             frame is voiced, 0 where it is not.
``voiced``                   1 where the resampled ``f0 > 0`` (at least half the frames voiced).
``vad``                      1 where voice activity says someone speaks.
``phone.AA`` … ``phone.SIL`` The phones as a *soft one-hot* over the 39 ARPAbet phones and
                             ``SIL`` (:data:`~studio.audio.phones.PHONES`): the share of the frame's
                             interval ``[(k − ½)/fps, (k + ½)/fps)`` each phone covers, so a row
                             sums to 1 and a p/b/m shorter than a frame still shows in the frame
                             it falls in (sampling the phone at ``k / fps`` alone would lose it).
                             Time no phone covers, before 0 and after the audio included, is
                             ``SIL``.
``phone.progress``           Time since the start of the phone at ``k / fps`` over its duration,
                             0…1: where in the phone the frame is (gaps count as silence).
``phone.log_duration``       ``log2(duration / PHONE_DURATION_REFERENCE) / 2`` of that phone,
                             clipped to ±2 (a long pause reads 2).
``phones_from_transcript``   1 when the phones were forced-aligned to a transcript (their labels
                             can be trusted), 0 when they were recognized (labels often wrong,
                             boundaries good): the model learns how far to believe them.
``rig.jaw`` … ``rig.raise``  The rig's *lip prior*: what the phoneme rig's mouth does for these
``rig.closure``              phones (:func:`studio.generate.rig.lip_prior`, with the features'
``rig.gap``                  loudness, no emotion, intensity 1) — its five articulatory
                             parameters, its forced-closure weight 0…1 and its inner-lip gap over
                             ``GAP_SCALE`` face units. The model starts from the rig's answer and
                             learns, from the audio, where to correct it (a p/b/m recognition
                             missed, a closure it invented); on audio unlike its training data it
                             still has the rig's answer to fall back on.
``acoustic``                 1: the acoustic channels (mel, voicing, pitch) are present. Training
                             blanks them (0, and this flag 0) in a share of windows
                             (``ModelConfig.acoustic_dropout``), so the model also learns to
                             animate from phones, prior, level and voice activity alone — the
                             "audio trust" guidance of the runner interpolates between the two.
===========================  ==================================================================

**Mel normalization: per-recording mean (CMN).** Each band has the mean of the recording's
voice-active feature frames subtracted (cepstral mean normalization, in the log-mel domain),
shrunk towards the fixed ``−MEL_OFFSET`` by ``CMN_PRIOR_FRAMES`` frames' worth, so a clip with
little speech is normalized mostly by the constant. A fixed offset (inputs version 1) left the
model reading the microphone and room along with the phones: recorded speech sits 0.4–1.3 above
the synthesizers in most bands, and the model trained on synthetic voices lost to the rig on it.
The mean is taken once over the whole recording's features — which the streaming path computes
once too (as voice activity, :func:`studio.audio.features.voice_activity`) — so a streamed chunk
gets the values the whole recording gives. Level is *not* normalized away: the ``energy`` channel
keeps it, and the training corpus varies the recording level over 35 dB so the model learns not
to care.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from studio.audio.features import ENERGY_FLOOR_DB, LOG_MEL_FLOOR, N_MELS, AudioFeatures
from studio.audio.phones import PHONES, SILENCE, Phone, merge_silences, validate_phones
from studio.core.motion import EXP, NUM_CHANNELS
from studio.generate.rig import LIP_PRIOR, lip_prior, prior_offsets

__all__ = ["ACOUSTIC_CHANNELS", "ACOUSTIC_FLAG", "INPUTS_VERSION", "INPUT_NAMES", "MEL_BANDS", "NUM_INPUTS",
           "TRANSCRIPT_FLAG", "neural_inputs", "prior_motion"]

#: Log-mel bands the 80 of the front end are averaged into (adjacent pairs).
MEL_BANDS = 40
#: What the channels mean; stored with every corpus item and model, which refuse another.
INPUTS_VERSION = 2
MEL_OFFSET = 8.0
MEL_SCALE = 4.5
#: Feature frames (100 Hz) of the constant ``−MEL_OFFSET`` the per-recording mel mean is shrunk with.
CMN_PRIOR_FRAMES = 20
#: Energy below this (dBFS) reads as this: digital silence and −100 dBFS are the same pause.
INPUT_ENERGY_FLOOR_DB = -90.0
ENERGY_OFFSET_DB = -30.0
ENERGY_SCALE_DB = 20.0
PITCH_REFERENCE_HZ = 150.0
#: Duration (s) whose ``phone.log_duration`` is 0: a typical phone.
PHONE_DURATION_REFERENCE = 0.08
#: Face units of inner-lip gap that read 1 in ``rig.gap`` (the rig's widest open vowel ≈ 0.45).
GAP_SCALE = 0.4

_PHONE_INDEX = {label: i for i, label in enumerate(PHONES)}

INPUT_NAMES: tuple[str, ...] = (
    tuple(f"mel.{i:02d}" for i in range(MEL_BANDS))
    + ("energy", "voicing", "log_f0", "voiced", "vad")
    + tuple(f"phone.{label}" for label in PHONES)
    + ("phone.progress", "phone.log_duration", "phones_from_transcript")
    + tuple(f"rig.{name}" for name in LIP_PRIOR)
    + ("acoustic",)
)
NUM_INPUTS = len(INPUT_NAMES)

_MEL = slice(0, MEL_BANDS)
_AUDIO = slice(MEL_BANDS, MEL_BANDS + 5)
_PHONES = slice(_AUDIO.stop, _AUDIO.stop + len(PHONES))
_PROGRESS, _DURATION, _FLAG = _PHONES.stop, _PHONES.stop + 1, _PHONES.stop + 2
_PRIOR = slice(_FLAG + 1, _FLAG + 1 + len(LIP_PRIOR))
#: The ``phones_from_transcript`` flag's column.
TRANSCRIPT_FLAG = _FLAG
#: The ``acoustic`` flag's column.
ACOUSTIC_FLAG = _PRIOR.stop
assert ACOUSTIC_FLAG == NUM_INPUTS - 1
#: The columns an acoustic dropout blanks: mel, voicing, log_f0, voiced (not energy, not vad).
ACOUSTIC_CHANNELS: tuple[int, ...] = (*range(MEL_BANDS), *(INPUT_NAMES.index(n) for n in ("voicing", "log_f0", "voiced")),
                                      ACOUSTIC_FLAG)


def neural_inputs(features: AudioFeatures, phones: Sequence[Phone], num_frames: int, fps: float = 25.0, *,
                  phones_from_transcript: bool = False) -> np.ndarray:
    """The model's inputs ``(num_frames, NUM_INPUTS)`` float32; row ``k`` is the frame at ``k / fps``.

    ``features`` at any rate (normally the 100 Hz :func:`~studio.audio.features.compute_features`
    of the whole recording), with the front end's 80 mel bands; ``phones`` ordered and
    non-overlapping (:func:`~studio.audio.phones.validate_phones`); ``num_frames`` as the rig
    counts them (:func:`studio.generate.rig.num_frames_for`). Frames past the end of the features
    repeat their last row (silence when there are none).
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative integer, got {num_frames!r}")
    if not (isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if features.log_mel.shape[1] != N_MELS:
        raise ValueError(f"neural inputs need the front end's {N_MELS} mel bands, got {features.log_mel.shape[1]}")
    validate_phones(phones)
    num_frames, fps = int(num_frames), float(fps)
    out = np.empty((num_frames, NUM_INPUTS), np.float32)
    out[:, _MEL], out[:, _AUDIO] = _audio_channels(features, num_frames, fps)
    spans = _cover(phones, num_frames / fps)
    out[:, _PHONES] = _phone_occupancy(spans, num_frames, fps)
    out[:, _PROGRESS], out[:, _DURATION] = _phone_position(spans, num_frames, fps)
    out[:, _FLAG] = 1.0 if phones_from_transcript else 0.0
    prior = lip_prior(phones, np.arange(num_frames) / fps, features=features)
    prior[:, -1] /= GAP_SCALE
    out[:, _PRIOR] = prior
    out[:, ACOUSTIC_FLAG] = 1.0
    return out


def prior_motion(inputs: np.ndarray) -> np.ndarray:
    """The rig's mouth as a motion track ``(T, 74)`` float32, read back from the ``rig.*`` columns
    of inputs ``(T, NUM_INPUTS)`` (:func:`~studio.generate.rig.prior_offsets`): the expression
    channels the rig gives the phones with no emotion, every other channel 0. A model with
    ``mouth_residual`` generates the motion minus this. Padding rows (all 0) give 0."""
    inputs = np.asarray(inputs)
    out = np.zeros((len(inputs), NUM_CHANNELS), np.float32)
    out[:, EXP] = prior_offsets(inputs[:, _PRIOR]).reshape(len(inputs), -1)
    return out


def _audio_channels(features: AudioFeatures, num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """The normalized mel ``(T, 40)`` and the other audio channels ``(T, 5)``."""
    grid = features if features.rate == fps else features.resample(fps)
    available = grid.num_frames
    if available:
        rows = np.minimum(np.arange(num_frames), available - 1)
        log_mel, energy = grid.log_mel[rows], grid.energy_db[rows]
        f0, voicing, vad = grid.f0[rows], grid.voicing[rows], grid.vad[rows]
    else:  # no audio: silence
        log_mel = np.full((num_frames, N_MELS), math.log(LOG_MEL_FLOOR), np.float32)
        energy = np.full(num_frames, ENERGY_FLOOR_DB, np.float32)
        f0 = voicing = np.zeros(num_frames, np.float32)
        vad = np.zeros(num_frames, bool)
    mel = _pair_bands(log_mel) - _speech_mean(features)
    voiced = f0 > 0
    log_f0 = np.where(voiced, np.log2(np.maximum(f0, 1.0) / PITCH_REFERENCE_HZ), 0.0)
    level = (np.maximum(energy, INPUT_ENERGY_FLOOR_DB) - ENERGY_OFFSET_DB) / ENERGY_SCALE_DB
    audio = np.stack([level, voicing, log_f0, voiced, vad], axis=1)
    return mel / MEL_SCALE, audio


def _pair_bands(log_mel: np.ndarray) -> np.ndarray:
    """``(T, 80)`` log-mel → ``(T, 40)``: adjacent bands averaged."""
    return log_mel.reshape(len(log_mel), MEL_BANDS, N_MELS // MEL_BANDS).mean(axis=2, dtype=np.float64)


def _speech_mean(features: AudioFeatures) -> np.ndarray:
    """The per-band mean ``(40,)`` of the recording's voice-active frames, shrunk towards
    ``−MEL_OFFSET`` by ``CMN_PRIOR_FRAMES`` frames (all of it when nobody speaks)."""
    speech = _pair_bands(features.log_mel[features.vad.astype(bool)])
    prior = CMN_PRIOR_FRAMES * features.rate / 100.0
    return (speech.sum(axis=0) - prior * MEL_OFFSET) / (len(speech) + prior)


def _cover(phones: Sequence[Phone], end: float) -> list[Phone]:
    """The phones with every gap from 0 to ``end`` (or their own end) filled by ``SIL``."""
    spans: list[Phone] = []
    t = 0.0
    for p in phones:
        if p.start > t:
            spans.append(Phone(SILENCE, t, p.start))
        spans.append(p)
        t = max(t, p.end)
    if end > t:
        spans.append(Phone(SILENCE, t, end))
    return merge_silences(spans)


def _span_arrays(spans: Sequence[Phone]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.array([_PHONE_INDEX[p.label] for p in spans], np.int64)
    starts = np.array([p.start for p in spans], np.float64)
    ends = np.array([p.end for p in spans], np.float64)
    return labels, starts, ends


def _phone_occupancy(spans: Sequence[Phone], num_frames: int, fps: float) -> np.ndarray:
    """``(T, 40)``: the share of each frame's interval every phone label covers (rows sum to 1).

    Vectorized through the cumulative time each label has covered up to every interval edge.
    """
    out = np.zeros((num_frames, len(PHONES)))
    out[:, _PHONE_INDEX[SILENCE]] = 1.0
    if not spans or num_frames == 0:
        return out
    labels, starts, ends = _span_arrays(spans)
    durations = ends - starts
    onehot = np.zeros((len(spans), len(PHONES)))
    onehot[np.arange(len(spans)), labels] = 1.0
    covered_before = np.vstack([np.zeros(len(PHONES)), np.cumsum(onehot * durations[:, None], axis=0)])
    edges = (np.arange(num_frames + 1) - 0.5) / fps
    i = np.searchsorted(starts, edges, side="right") - 1  # the last span starting at or before the edge
    inside = np.maximum(i, 0)
    partial = np.clip(edges - starts[inside], 0.0, durations[inside]) * (i >= 0)
    cumulative = covered_before[inside] * (i >= 0)[:, None] + onehot[inside] * partial[:, None]
    share = np.diff(cumulative, axis=0) * fps
    share[:, _PHONE_INDEX[SILENCE]] += 1.0 - share.sum(axis=1)  # before 0 and after the last phone
    return share


def _phone_position(spans: Sequence[Phone], num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """``phone.progress`` and ``phone.log_duration`` ``(T,)`` of the span at each frame time."""
    times = np.arange(num_frames) / fps
    if not spans:
        return np.zeros(num_frames), np.full(num_frames, 2.0)
    _, starts, ends = _span_arrays(spans)
    i = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(spans) - 1)
    durations = ends[i] - starts[i]
    inside = times < ends[i]  # past the last span: a pause that does not end
    progress = np.where(inside, np.clip((times - starts[i]) / np.maximum(durations, 1e-9), 0.0, 1.0), 1.0)
    log_duration = np.where(inside, np.log2(np.maximum(durations, 1e-6) / PHONE_DURATION_REFERENCE) / 2, 2.0)
    return progress, np.clip(log_duration, -2.0, 2.0)
