"""The neural model's training corpus: synthetic speech, augmented, with rig targets from the true phones.

``build_train_corpus(out_dir)`` (``studio train corpus OUT_DIR``) writes one ``items/<id>.npz``
per item and a ``manifest.json``; :func:`read_manifest` and :func:`load_item` read them back with
validation. Each item is made like this:

1. **Speech** with exact phone timings, from the dev corpus's machinery
   (:mod:`studio.generate.devcorpus`): espeak-ng in eight languages and ~70 voice variants with
   random rate, pitch and pitch range, one of flite's English voices, or (15 % of the items) one
   of the English festival voices installed (:data:`~studio.audio.synth.FESTIVAL_VOICES`: the
   diphone voices ``kal_diphone`` and ``ked_diphone`` and the HTS voice
   ``cmu_us_slt_arctic_hts``, all built from recordings of a person) with a random speed and, for
   the diphone voices, mean pitch; or (:data:`PIPER_SHARE` of the other ``train`` items) a Piper
   voice (:mod:`studio.audio.piper`: a VITS network learned from hours of one real speaker; so far
   one, ``joe``, hence train-only) with random tempo and noise; saying one to three sentences of
   the bundled sentence bank, which is a quarter p/b/m on purpose, or of the everyday sentences
   (:data:`NATURAL_SENTENCES`, ~4 % p/b/m as in ordinary speech): always for Piper, for
   :data:`NATURAL_SHARE` of the other English ``train`` items (flite one sentence at a time:
   :func:`_speak`), with random leading and trailing silence.
2. **Pitch and tempo** (:func:`change_pitch_and_tempo`): resampling by the pitch factor, then
   WSOLA time-scaling to the tempo; the true phone times are divided by the tempo.
3. **The target** (``motion``): the rig (:func:`studio.generate.pipeline.phones_motion`, the same
   call the evaluation makes for its reference) driven by the *true* phones and the prosody
   features of this clean, re-timed speech, in a random style (:func:`draw_style`): emotion
   segments, an intensity curve, eye overrides now and then, the rig's seed (head sway, blinks,
   gaze) and its head/brow/blink/gaze settings. The lip settings of the rig stay at their
   defaults: where the audio decides the mouth, the target is not made random.
4. **Recording conditions** (:func:`degrade`): a synthetic room (exponentially decaying noise
   impulse response), additive coloured noise at a random SNR, a level (peak −35…−1 dBFS,
   sometimes clipped, sometimes slowly varying) and a codec (telephone band and μ-law, or a
   low-bitrate simulation), then 16-bit samples (``audio``).
5. **The inputs** (``inputs``), computed from the stored 16-bit audio exactly as the generation
   path does at run time: :func:`~studio.audio.features.compute_features`, then
   :func:`~studio.audio.phonemes.phones_for` — recognized (no transcript) for ~80 % of the items,
   forced-aligned to the transcript for ~20 % (``phones_from_transcript``: 35 % of the items try;
   an alignment of fast or degraded speech that fails falls back to recognition, as at run time,
   and the flag is then 0) — then
   :func:`~studio.generate.neural.inputs.neural_inputs`.
6. **An identity** (``canonical``, :func:`canonical_keypoints`): the mean face with randomly
   changed proportions and a smooth random displacement. The rig's motion does not depend on the
   identity (expression offsets are identity-agnostic, and ``phones_motion`` takes no canonical
   keypoints), so the identity matters only as a condition of the model, which must learn to
   produce the same motion whatever face it is given.

**Splits by voice.** Speakers are the dev corpus's (an espeak-ng variant in any language, or a
flite voice) and the festival voices. The dev corpus's held-out speakers for the same seed
(:func:`speaker_splits`) and one festival voice are this corpus's ``heldout`` split, a few other
speakers (:data:`VAL_SHARE` of the espeak-ng variants, one flite voice and, with three or more
installed, one festival voice) are ``val`` (checkpoint selection), and no item of ``train``
speaks with either; the Piper voices are ``train`` speakers. A festival voice recorded by the
same person as a flite voice (:data:`SAME_PERSON`) is held out with it, and the held-out
festival voice is preferably one whose person is in no training voice. Items ``i % 10 == 2``
are ``val``, ``i % 10 == 5`` ``heldout``, the rest ``train``. With the three festival voices
above, Piper's ``joe`` and seed 0, 2000 items are 1101 espeak-ng, 275 flite, 303 festival items
(244 train ``kal_diphone``, 30 val ``cmu_us_slt_arctic_hts``, 29 held-out ``ked_diphone``) and
321 Piper items; 649 items say everyday sentences. ``val`` and ``heldout`` are the same as
without Piper and everyday sentences (then: 1361 espeak-ng, 336 flite, 303 festival items).

**Determinism and resuming.** Everything item ``i`` is made of is drawn from
``numpy.random.default_rng([seed, i, 7])`` (the 7 keeps the draws apart from the dev corpus's), or
for the items a festival voice speaks from ``default_rng([seed, i, 7, 1])`` (so every other item is
the one a build without festival makes); Piper's items and the everyday-sentence choice have
their own streams too (:func:`_plan`), so ``--piper-share 0 --natural-share 0`` builds the items of
the corpus made before they came in, byte for byte. An item depends only on the seed, its index, the two
shares and the festival and Piper voices installed; a bigger corpus starts with the smaller one, and
the same seed gives the same files byte for byte (the npz files are written with fixed zip
timestamps). Beside each npz an ``items/<id>.json`` holds the plan it was built from and the
npz's SHA-256; written last, it marks the item complete: an item whose plan and file are intact
is kept, so an interrupted build resumes where it stopped. The record also names the model
inputs the item was built with: when the inputs of the code have changed since, the item is
*refreshed* — its inputs recomputed from its stored audio (recognition and alignment are
deterministic) and the rest kept — which takes a fraction of a build.

**Parallel.** Items are built in ``workers`` processes (default 2); pocketsphinx keeps the GIL and
items are short, so one process per item is the unit of parallelism.

Item file (``np.savez`` layout, no pickled objects; load with ``allow_pickle=False``):

================  ===============  =============================================================
``inputs``        (T, F) float32   :func:`~studio.generate.neural.inputs.neural_inputs`, 25 fps
``motion``        (T, 74) float32  the rig target, channels :data:`studio.core.motion.CHANNELS`
``conditions``    (T, 13) float32  :data:`~studio.core.document.CONDITION_CHANNELS`, NaN = no override
``canonical``     (21, 3) float32  the identity's canonical keypoints
``phone_labels``  (N,) ``<U…``     true phones (ARPAbet) after the tempo change
``phone_starts``  (N,) float64     their starts (s)
``phone_ends``    (N,) float64     their ends (s)
``audio``         (S,) int16       the augmented audio, 16 kHz (divide by 32768 for −1…1)
================  ===============  =============================================================
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import fields
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, istft, resample_poly, sosfiltfilt, stft

from studio.audio.decode import Audio
from studio.audio.features import compute_features
from studio.audio.phones import PHONES, Phone, merge_silences
from studio.audio.piper import piper_voices
from studio.audio.synth import (
    FESTIVAL_PHONE_SETS,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    Synthesis,
    espeak_variants,
    festival_voice,
)
from studio.core.document import (
    CONDITION_CHANNELS,
    EMOTIONS,
    EmotionSegment,
    emotion_weights,
)
from studio.core.fcurve import FCurve, Interpolation
from studio.core.keypoints import (
    EYE_CENTER_FROM_PIVOT,
    MEAN_FACE,
    MIRROR_PERMUTATION,
    NUM_KEYPOINTS,
    normalize_face,
)
from studio.core.motion import EYE_CHANNELS, NUM_CHANNELS
from studio.generate.devcorpus import (
    ESPEAK_LANGUAGES,
    ESPEAK_VARIANTS,
    LANGUAGE_WEIGHTS,
    SAMPLE_RATE,
    SENTENCES,
    heldout_speakers_of,
    load_sentences,
    padded_16k,
    synthesize_plan,
    write_json,
)
from studio.generate.neural.inputs import (
    INPUT_NAMES,
    INPUTS_VERSION,
    NUM_INPUTS,
    neural_inputs,
)
from studio.generate.pipeline import Cancelled, phones_motion
from studio.generate.rig import RigStyle, num_frames_for

__all__ = [
    "FPS", "ITEM_KEYS", "NATURAL_SENTENCES", "NATURAL_SHARE", "PIPER_SENTENCES", "PIPER_SHARE", "CorpusError",
    "build_train_corpus", "canonical_keypoints", "change_pitch_and_tempo", "degrade", "draw_style", "item_audio",
    "load_item", "read_manifest", "speaker_splits", "style_conditions",
]

FORMAT = "studio-train-corpus"
VERSION = 1
FPS = 25.0
DEFAULT_ITEMS = 2000
DEFAULT_WORKERS = 2
SPLITS = ("train", "val", "heldout")
ITEM_KEYS = ("inputs", "motion", "conditions", "canonical", "phone_labels", "phone_starts", "phone_ends", "audio")
#: Share of the espeak-ng variants (not held out) kept for validation; one flite voice too.
VAL_SHARE = 0.08
_STREAM = 7  # third entry of every item's seed sequence: not the dev corpus's draws
_FLITE_SHARE = 0.2
#: Share of the items spoken by a festival voice (where the item's split has one), drawn apart
#: (stream :data:`_FESTIVAL_STREAM`) so that the other items stay what they were without festival.
_FESTIVAL_SHARE = 0.15
_FESTIVAL_STREAM = 1
#: Default share of the ``train`` items (not spoken by festival) that a Piper voice speaks, drawn
#: apart (stream :data:`_PIPER_STREAM`) like festival's; 0 builds the corpus without Piper.
PIPER_SHARE = 0.25
_PIPER_STREAM = 2
#: Default share of the other English ``train`` items that say everyday sentences
#: (:data:`NATURAL_SENTENCES`, about 4 % p/b/m like ordinary speech) instead of the bank's, whose
#: sentences are a quarter p/b/m; drawn apart (stream :data:`_TEXT_STREAM`). 0: the bank's only.
NATURAL_SHARE = 0.5
_TEXT_STREAM = 3
#: What the Piper voices say: ``"natural"`` (default) everyday sentences only, ``"bank"`` the main
#: bank's, as often bilabial as the other voices' (the voice's real-speaker acoustics without
#: fewer p/b/m in the training text).
PIPER_SENTENCES = ("natural", "bank")
#: Default share of the ``train`` items recorded clean: no noise, room or codec (their pitch,
#: tempo and level still vary); drawn apart (stream :data:`_CLEAN_STREAM`). 0: every item's
#: recording conditions as drawn, the corpus of the models shipped so far. With all three drawn,
#: fewer than a fifth of the items are clean, and on such audio even the recognizer's acoustic
#: model, trained on recorded speech, no longer hears where a stop closes (model card, session 14).
CLEAN_SHARE = 0.0
_CLEAN_STREAM = 4
#: festival voices recorded by the same person as flite voices (flite's kal and kal16 are built from
#: the kal diphones; its slt and festival's HTS slt from CMU ARCTIC slt): a split keeps them together
#: where it can (see :func:`_festival_splits`).
SAME_PERSON: dict[str, tuple[str, ...]] = {
    "festival:kal_diphone": ("flite:kal", "flite:kal16"),
    "festival:cmu_us_slt_arctic_hts": ("flite:slt",),
}
#: Items that try to align their phones to the transcript. Alignment of fast or degraded speech
#: often fails and falls back to recognition, as it would at run time (in a 120-item build, 16 of
#: 30 tries at a share of 0.25 worked), so about 20 % of the items end up aligned.
_TRANSCRIPT_SHARE = 0.35


class CorpusError(ValueError):
    """A corpus that cannot be built, or a corpus file that is missing or not what it should be;
    the message names the item or the file."""


# --- speakers and plans ---------------------------------------------------------------------------

def speaker_splits(seed: int = 0) -> dict[str, list[str]]:
    """``{"train": […], "val": […], "heldout": […]}`` speakers for ``seed``.

    The espeak-ng and flite speakers of ``heldout`` are exactly the dev corpus's held-out set for
    the same seed (same speaker list, same hash); ``val`` takes the first :data:`VAL_SHARE` of the
    remaining espeak-ng variants and one remaining flite voice, ranked by another seeded hash.
    festival voices (which the dev corpus does not use) are split by :func:`_festival_splits`.
    """
    available = set(espeak_variants()) | {"default"}
    speakers = [f"espeak-ng+{v}" for v in ESPEAK_VARIANTS if v in available] + [f"flite:{v}" for v in FLITE_VOICES]
    heldout = heldout_speakers_of(speakers, seed)
    rest = sorted((s for s in speakers if s not in heldout),
                  key=lambda s: hashlib.sha256(f"{seed}:val:{s}".encode()).hexdigest())
    espeak = [s for s in rest if s.startswith("espeak-ng+")]
    flite = [s for s in rest if s.startswith("flite:")]
    val = set(espeak[:max(1, round(VAL_SHARE * len(espeak)))]) | set(flite[:1])
    train = [s for s in speakers if s not in heldout and s not in val]
    festival = _festival_splits(seed, heldout, set(train))
    piper = [f"piper:{v}" for v in piper_voices()]  # one voice so far: nothing to hold out
    return {"train": train + festival["train"] + piper, "val": sorted(val | set(festival["val"])),
            "heldout": sorted(heldout | set(festival["heldout"]))}


def _festival_splits(seed: int, heldout: set[str], train: set[str]) -> dict[str, list[str]]:
    """The installed festival voices split by voice: one held out, one for validation when there
    are three or more, the rest for training (none installed: all empty). Voices whose phone set
    has no ARPAbet table (:data:`~studio.audio.synth.FESTIVAL_PHONE_SETS`) are left out.

    A festival voice recorded by the same person as a flite voice (:data:`SAME_PERSON`) is held
    out when that flite voice is; otherwise the voices are ranked by a seeded hash and the held-out
    (then the validation) voice is the first one whose person speaks in no flite voice of
    ``train``, or the first one when every voice has such a twin.
    """
    voices = [f"festival:{v}" for v in FESTIVAL_VOICES if festival_voice(v).phone_set in FESTIVAL_PHONE_SETS]
    ranked = sorted(voices, key=lambda s: hashlib.sha256(f"{seed}:festival:{s}".encode()).hexdigest())

    def first_new(candidates: list[str]) -> str:
        return next((s for s in candidates if not set(SAME_PERSON.get(s, ())) & train), candidates[0])

    out = {s for s in voices if set(SAME_PERSON.get(s, ())) & heldout}
    if ranked and not out:
        out.add(first_new(ranked))
    rest = [s for s in ranked if s not in out]
    val = {first_new(rest)} if len(voices) >= 3 and rest else set()
    return {"train": sorted(set(rest) - val), "val": sorted(val), "heldout": sorted(out)}


#: Everyday English sentences (the main bank is rich in bilabials on purpose): what the Piper voices
#: say by default, and the ``natural_share`` of the other English training items.
NATURAL_SENTENCES = SENTENCES.with_name("natural_sentences.json")


@functools.lru_cache(maxsize=1)
def _natural_sentences() -> tuple[str, ...]:
    return tuple(load_sentences(NATURAL_SENTENCES)["en"])


def _split_of(index: int) -> str:
    return {2: "val", 5: "heldout"}.get(index % 10, "train")


def _uniform(rng: np.random.Generator, low: float, high: float, digits: int = 3) -> float:
    return round(float(rng.uniform(low, high)), digits)


def _plan(index: int, seed: int, bank: dict[str, list[str]], splits: dict[str, list[str]],
          piper_share: float = PIPER_SHARE, natural_share: float = NATURAL_SHARE,
          piper_sentences: str = "natural", clean_share: float = CLEAN_SHARE) -> dict:
    """Everything item ``index`` is made from, drawn from ``default_rng([seed, index, 7])`` — or,
    for the :data:`_FESTIVAL_SHARE` of the items that a festival voice speaks, from
    ``default_rng([seed, index, 7, 1])``, whose first draw makes that choice, and for the
    ``piper_share`` of the other items that a Piper voice speaks (where the split has one; saying
    everyday sentences, or with ``piper_sentences="bank"`` the bank's), from
    ``default_rng([seed, index, 7, 2])`` likewise. Then
    the ``natural_share`` of the other English ``train`` items say everyday sentences instead of
    the bank's (``default_rng([seed, index, 7, 3])`` decides and draws them; the rest of the plan
    stays), and the ``clean_share`` of the ``train`` items lose their noise, room and codec
    (``default_rng([seed, index, 7, 4])`` decides). With the three shares 0 every plan is the one
    made before Piper and everyday sentences came in."""
    split = _split_of(index)
    pool = splits[split]
    festival = [s for s in pool if s.startswith("festival:")]
    side = np.random.default_rng([seed, index, _STREAM, _FESTIVAL_STREAM])
    piper = [s for s in pool if s.startswith("piper:")]
    other = np.random.default_rng([seed, index, _STREAM, _PIPER_STREAM])
    if festival and "en" in bank and side.random() < _FESTIVAL_SHARE:
        speaker = festival[side.integers(len(festival))]
        voice = speaker.split(":", 1)[1]
        settings: dict = {"duration_stretch": _uniform(side, 0.8, 1.25)}
        default_f0 = festival_voice(voice).f0_mean
        if default_f0 is not None:  # the diphone voices; HTS voices change pitch only by augmentation
            settings["f0_mean"] = round(default_f0 * 2 ** (float(side.uniform(-4, 4)) / 12), 1)
        plan = _item_plan(side, index, split, bank, speaker, "festival", voice, "en", "en-us", settings)
        language = "en"
    elif piper and "en" in bank and other.random() < piper_share:
        speaker = piper[other.integers(len(piper))]
        # tempo; variety of delivery (the voice's default 0.667) and of timing (default 0.8)
        settings = {"length_scale": _uniform(other, 0.8, 1.25), "noise_scale": _uniform(other, 0.4, 0.9),
                    "noise_w": _uniform(other, 0.4, 1.1), "seed": int(other.integers(2**31))}
        said = {"en": list(_natural_sentences())} if piper_sentences == "natural" else bank
        plan = _item_plan(other, index, split, said, speaker, "piper", speaker.split(":", 1)[1], "en", "en-us",
                          settings)
        return _cleaned(plan, seed, index, clean_share)
    else:
        rng = np.random.default_rng([seed, index, _STREAM])
        flite = [s for s in pool if s.startswith("flite:")]
        if flite and "en" in bank and rng.random() < _FLITE_SHARE:
            speaker = flite[rng.integers(len(flite))]
            synthesizer, language, voice = "flite", "en", speaker.split(":", 1)[1]
            espeak_language = "en-us"
            settings = {"duration_stretch": _uniform(rng, 0.8, 1.25)}
        else:
            espeak = [s for s in pool if s.startswith("espeak-ng+")]
            speaker = espeak[rng.integers(len(espeak))]
            languages = [lang for lang in LANGUAGE_WEIGHTS if lang in bank]
            weights = np.array([LANGUAGE_WEIGHTS[lang] for lang in languages])
            language = languages[rng.choice(len(languages), p=weights / weights.sum())]
            espeak_language = ESPEAK_LANGUAGES[language][rng.integers(len(ESPEAK_LANGUAGES[language]))]
            variant = speaker.split("+", 1)[1]
            synthesizer = "espeak-ng"
            voice = espeak_language if variant == "default" else f"{espeak_language}+{variant}"
            settings = {"rate": int(rng.integers(120, 261)), "pitch": int(rng.integers(20, 81)),
                        "pitch_range": int(rng.integers(20, 96)),
                        "word_gap": int(rng.integers(1, 4)) if rng.random() < 0.15 else 0}
        plan = _item_plan(rng, index, split, bank, speaker, synthesizer, voice, language, espeak_language, settings)
    text = np.random.default_rng([seed, index, _STREAM, _TEXT_STREAM])
    if split == "train" and language == "en" and text.random() < natural_share:
        natural = _natural_sentences()
        picked = text.choice(len(natural), size=min(len(plan["sentences"]), len(natural)), replace=False)
        sentences = [natural[i] for i in picked]
        plan = {**plan, "sentences": sentences, "text": " ".join(sentences)}
    return _cleaned(plan, seed, index, clean_share)


def _cleaned(plan: dict, seed: int, index: int, clean_share: float) -> dict:
    """``plan``, recorded clean (no noise, room or codec) for the ``clean_share`` of the train items
    (a generator of its own, seeded with the item's stream and :data:`_CLEAN_STREAM`, decides)."""
    rng = np.random.default_rng([seed, index, _STREAM, _CLEAN_STREAM])
    if plan["split"] != "train" or not rng.random() < clean_share:
        return plan
    return {**plan, "augment": {**plan["augment"], "reverb": None, "noise": None, "codec": None}}


def _item_plan(rng: np.random.Generator, index: int, split: str, bank: dict[str, list[str]], speaker: str,
               synthesizer: str, voice: str, language: str, espeak_language: str, settings: dict) -> dict:
    """The rest of an item's plan once its voice is drawn: sentences, padding, augmentation,
    transcript use, style and identity seeds."""
    bank_sentences = bank[language]
    count = min(int(rng.integers(1, 4)), len(bank_sentences))
    sentences = [bank_sentences[i] for i in rng.choice(len(bank_sentences), size=count, replace=False)]
    return {
        "version": VERSION, "id": f"{index:06d}", "split": split, "speaker": speaker, "synthesizer": synthesizer,
        "voice": voice, "language": espeak_language, "sentences": sentences, "text": " ".join(sentences),
        "settings": settings,
        "padding": [_uniform(rng, 0.1, 0.6), _uniform(rng, 0.1, 0.6)],
        "augment": _draw_augment(rng),
        "transcript": bool(rng.random() < _TRANSCRIPT_SHARE),
        "style_seed": int(rng.integers(2**31)), "identity_seed": int(rng.integers(2**31)),
    }


def _draw_augment(rng: np.random.Generator) -> dict:
    """The augmentation of one item (plain JSON data; ``None`` = not applied)."""
    pitch = float(Fraction(2 ** (rng.uniform(-3, 3) / 12)).limit_denominator(48)) if rng.random() < 0.5 else 1.0
    tempo = round(float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))), 3) if rng.random() < 0.6 else 1.0
    reverb = ({"rt60": _uniform(rng, 0.15, 0.8), "drr_db": _uniform(rng, -2.0, 12.0, 1),
               "predelay_ms": _uniform(rng, 1.0, 8.0, 1)} if rng.random() < 0.35 else None)
    noise = {"snr_db": _uniform(rng, 5.0, 35.0, 1), "color": _uniform(rng, 0.0, 2.0, 2)} if rng.random() < 0.6 else None
    codec = None
    if rng.random() < 0.3:
        if rng.random() < 0.4:
            codec = {"kind": "telephone"}
        else:
            codec = {"kind": "lowbitrate", "cutoff_hz": int(rng.integers(3500, 7001)),
                     "step_db": _uniform(rng, 1.5, 4.0, 2), "floor_db": _uniform(rng, 25.0, 45.0, 1)}
    level = {"peak_db": _uniform(rng, 0.0, 6.0, 1) if rng.random() < 0.07 else _uniform(rng, -35.0, -1.0, 1)}
    if rng.random() < 0.3:
        level.update(depth_db=_uniform(rng, 1.0, 6.0, 2), rate_hz=_uniform(rng, 0.1, 0.6),
                     phase=_uniform(rng, 0.0, 2 * np.pi))
    return {"pitch": round(pitch, 6), "tempo": tempo, "reverb": reverb, "noise": noise, "codec": codec,
            "level": level, "seed": int(rng.integers(2**31))}


# --- pitch, tempo and recording conditions ---------------------------------------------------------

_WSOLA_FRAME = 320      # 20 ms at 16 kHz
_WSOLA_TOLERANCE = 80   # ±5 ms: how far a frame may move from its nominal place


def _wsola(x: np.ndarray, speed: float) -> np.ndarray:
    """``x`` played ``speed`` times as fast at the same pitch: waveform-similarity overlap-add.

    Output frame ``k`` (Hann, 50 % overlap, centred at ``k · hop``) copies the input around
    ``k · hop · speed``, moved by at most :data:`_WSOLA_TOLERANCE` samples to where it best
    continues the previous frame. So an input time ``t`` lands at ``t / speed`` within 5 ms. One
    step per output frame (each choice depends on the previous one); ~1 ms of work per second.
    """
    n_out = round(len(x) / speed)
    frame, tol = _WSOLA_FRAME, _WSOLA_TOLERANCE
    hop = frame // 2
    count = -(-n_out // hop) + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)  # periodic: overlaps sum to 1
    pad = frame + tol
    right = max(0, round((count - 1) * hop * speed) - len(x)) + tol + frame + hop + 1
    xp = np.concatenate([np.zeros(pad), np.asarray(x, np.float64), np.zeros(right)])
    y = np.zeros(count * hop + frame)
    position = pad - hop  # start of input frame 0, centred on input sample 0
    for k in range(count):
        if k:
            nominal = pad + round(k * hop * speed) - hop
            template = xp[position + hop: position + hop + frame]  # what would follow the last frame
            similarity = np.correlate(xp[nominal - tol: nominal + tol + frame], template, "valid")
            position = nominal - tol + (int(np.argmax(similarity)) if similarity.max() > 0 else tol)
        y[k * hop: k * hop + frame] += window * xp[position: position + frame]
    return y[hop: hop + n_out]


def change_pitch_and_tempo(samples: np.ndarray, phones: list[Phone], pitch: float,
                           tempo: float) -> tuple[np.ndarray, list[Phone]]:
    """Samples (16 kHz) with the pitch (and formants) × ``pitch`` and ``tempo`` times as fast.

    Resampling by ``pitch`` (a fraction with a small denominator) raises pitch and tempo together;
    WSOLA (:func:`_wsola`) then sets the tempo to ``tempo``. Phone times are divided by ``tempo``
    (exact for the resampling, within 5 ms for WSOLA) and the last phone ends with the samples.
    """
    x = np.asarray(samples, np.float64)
    if pitch != 1.0:
        ratio = Fraction(pitch).limit_denominator(48)
        x = resample_poly(x, ratio.denominator, ratio.numerator)
    if tempo / pitch != 1.0:
        x = _wsola(x, tempo / pitch)
    duration = len(x) / SAMPLE_RATE
    moved = [Phone(p.label, min(p.start / tempo, duration), min(p.end / tempo, duration), p.stress) for p in phones]
    moved[-1] = Phone(moved[-1].label, moved[-1].start, duration, moved[-1].stress)
    return x.astype(np.float32), [p for p in moved if p.end > p.start]


def _speech_power(x: np.ndarray) -> float:
    """Mean power of the 10 ms frames within 30 dB of the loudest (the active speech)."""
    hop = SAMPLE_RATE // 100
    n = len(x) // hop * hop
    power = np.mean(x[:n].reshape(-1, hop) ** 2, axis=1) if n else np.zeros(1)
    active = power[power >= power.max() * 1e-3]
    return float(active.mean()) if active.size and active.mean() > 0 else 1e-10


def _reverb(x: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """A room: direct sound plus an exponentially decaying noise tail (60 dB down after rt60),
    starting ``predelay_ms`` after the direct sound, ``drr_db`` below it in energy."""
    rt60 = params["rt60"]
    delay = int(params["predelay_ms"] * SAMPLE_RATE / 1000)
    t = np.arange(int(1.2 * rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(t.size) * np.exp(-np.log(1000.0) * t / rt60)
    tail *= np.sqrt(10 ** (-params["drr_db"] / 10) / np.sum(tail**2))
    response = np.concatenate([[1.0], np.zeros(delay), tail])
    return fftconvolve(x, response)[:len(x)]


def _noise(n: int, params: dict, power: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power ∝ f^−color (0 white, 1 pink, 2 brown) at ``snr_db`` below ``power``."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    spectrum *= np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0) ** (-params["color"] / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise * np.sqrt(power / 10 ** (params["snr_db"] / 10) / max(np.mean(noise**2), 1e-20))


def _level(x: np.ndarray, params: dict) -> np.ndarray:
    """Peak at ``peak_db`` dBFS (above 0: clipped later), optionally swaying ±``depth_db``."""
    gain_db = params["peak_db"] - 20 * np.log10(max(float(np.max(np.abs(x))), 1e-9))
    if "depth_db" in params:
        t = np.arange(len(x)) / SAMPLE_RATE
        gain_db = gain_db + params["depth_db"] * np.sin(2 * np.pi * params["rate_hz"] * t + params["phase"])
    return x * 10 ** (gain_db / 20)


def _codec(x: np.ndarray, params: dict) -> np.ndarray:
    """Telephone (300–3400 Hz, 8 kHz, 8-bit μ-law) or a low-bitrate transform codec's artefacts
    (band limit, magnitudes quantized in ``step_db`` steps, components ``floor_db`` below a
    frame's peak dropped). Both are zero-phase: nothing moves in time."""
    if params["kind"] == "telephone":
        band = sosfiltfilt(butter(4, [300, 3400], "bandpass", fs=SAMPLE_RATE, output="sos"), x)
        narrow = resample_poly(band, 1, 2)
        mu = 255.0
        companded = np.sign(narrow) * np.log1p(mu * np.minimum(np.abs(narrow), 1.0)) / np.log1p(mu)
        quantized = np.round(companded * 127) / 127
        expanded = np.sign(quantized) * np.expm1(np.abs(quantized) * np.log1p(mu)) / mu
        return resample_poly(expanded, 2, 1)[:len(x)]
    freqs, _, spec = stft(x, SAMPLE_RATE, nperseg=512, noverlap=384)
    magnitude = np.abs(spec)
    db = 20 * np.log10(magnitude + 1e-12)
    keep = (freqs[:, None] <= params["cutoff_hz"]) & (db >= db.max(axis=0, keepdims=True) - params["floor_db"])
    step = params["step_db"]
    quantized = 10 ** (np.round(db / step) * step / 20) * keep
    spec = spec / np.maximum(magnitude, 1e-12) * quantized
    return istft(spec, SAMPLE_RATE, nperseg=512, noverlap=384)[1][:len(x)]


def degrade(clean: np.ndarray, augment: dict) -> np.ndarray:
    """The clean 16 kHz samples as a recording: room, noise, level, codec → int16 (clipped).

    Random parts (the room's tail, the noise) come from ``default_rng(augment["seed"])``.
    """
    rng = np.random.default_rng(augment["seed"])
    x = np.asarray(clean, np.float64)
    if augment["reverb"]:
        x = _reverb(x, augment["reverb"], rng)
    if augment["noise"]:
        x = x + _noise(len(x), augment["noise"], _speech_power(x), rng)
    x = _level(x, augment["level"])
    if augment["codec"]:
        x = _codec(x, augment["codec"])
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def item_audio(samples: np.ndarray) -> Audio:
    """The stored int16 samples as the generation path sees them (a decoded 16-bit file)."""
    return Audio(np.asarray(samples).astype(np.float32) / 32768.0, SAMPLE_RATE, SAMPLE_RATE, 1)


# --- style and identity -----------------------------------------------------------------------------

#: RigStyle fields drawn per item (uniform in these ranges); the lip fields keep their defaults.
STYLE_RANGES: dict[str, tuple[float, float]] = {
    "head_degrees": (0.5, 1.6), "nod_degrees": (1.5, 4.5), "sway_degrees": (1.0, 3.5),
    "brow_raise": (0.02, 0.07), "blink_rate": (8.0, 28.0), "pause_blink": (0.3, 0.9), "gaze_spread": (0.1, 0.35),
}
assert set(STYLE_RANGES) <= {f.name for f in fields(RigStyle)}


def draw_style(seed: int, num_frames: int) -> dict:
    """A random style for ``num_frames`` frames (plain JSON data; see :func:`style_conditions`).

    * ``emotions``: 1…4 consecutive segments (more for longer items) ``[label, start, end,
      strength, blend_in, blend_out]`` in frames, a fifth of them neutral, strengths 0.3…1;
    * ``intensity``: Bézier keys ``[frame, value]`` about a second apart, values 0.3…1.6 (a fifth
      of the items keep intensity 1, the common case);
    * ``overrides``: rarely, a span of fixed gaze or of eyes held open/closed ``[channel, start,
      end, value]``;
    * ``rig_seed`` and ``rig``: the rig's seed (head sway, blinks, gaze) and the fields of
      :data:`STYLE_RANGES`.
    """
    rng = np.random.default_rng(seed)
    n = max(1, int(num_frames))
    segments = int(rng.integers(1, min(4, 1 + n // 50) + 1))
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(segments - 1, n - 1), replace=False)) if n > 1 else []
    bounds = [0, *[int(c) for c in cuts], n]
    emotions = []
    for start, end in itertools.pairwise(bounds):
        label = "neutral" if rng.random() < 0.2 else EMOTIONS[1 + rng.integers(len(EMOTIONS) - 1)]
        blend = int(rng.integers(0, (end - start) // 3 + 1))
        emotions.append([label, start, end, _uniform(rng, 0.3, 1.0, 2), blend if start else 0,
                         blend if end < n else 0])
    if rng.random() < 0.2:
        intensity = [[0, 1.0]]
    else:
        keys = max(2, round(n / FPS) + 1)
        frames = np.linspace(0, n - 1, keys)
        frames[1:-1] += rng.uniform(-0.3, 0.3, keys - 2) * (n - 1) / (keys - 1)
        intensity = [[round(float(f), 2), _uniform(rng, 0.3, 1.6, 2)] for f in frames]
    overrides = []
    if rng.random() < 0.15:
        start, end = sorted(int(v) for v in rng.integers(0, n + 1, 2))
        gaze = (_uniform(rng, -0.6, 0.6, 2), _uniform(rng, -0.4, 0.4, 2))
        overrides += [["eye.gaze_x", start, end, gaze[0]], ["eye.gaze_y", start, end, gaze[1]]]
    if rng.random() < 0.1:
        start, end = sorted(int(v) for v in rng.integers(0, n + 1, 2))
        value = float(rng.choice([0.0, 1.0]))
        overrides += [["eye.blink_l", start, end, value], ["eye.blink_r", start, end, value]]
    rig = {name: _uniform(rng, low, high) for name, (low, high) in STYLE_RANGES.items()}
    return {"emotions": emotions, "intensity": intensity, "overrides": overrides,
            "rig_seed": int(rng.integers(2**31)), "rig": rig}


def style_conditions(style: dict, num_frames: int) -> np.ndarray:
    """The conditions ``(T, 13)`` of :data:`CONDITION_CHANNELS` a style describes (as a document's
    emotion segments and intensity curve would give them)."""
    frames = np.arange(num_frames)
    out = np.full((num_frames, len(CONDITION_CHANNELS)), np.nan)
    keys = np.array(style["intensity"], dtype=np.float64)
    out[:, 0] = np.clip(FCurve.from_keys(keys[:, 0], keys[:, 1], Interpolation.BEZIER).evaluate(frames), 0.0, 2.0)
    segments = [EmotionSegment(label, start, end, strength, blend_in, blend_out)
                for label, start, end, strength, blend_in, blend_out in style["emotions"]]
    out[:, 1:1 + len(EMOTIONS)] = emotion_weights(segments, frames)
    for channel, start, end, value in style["overrides"]:
        out[start:end, 1 + len(EMOTIONS) + EYE_CHANNELS.index(channel)] = value
    return out.astype(np.float32)


#: Spread of an identity: standard deviation of the face's width/height/depth scale and of each
#: displacement bump (face units), and the width of the bumps.
IDENTITY_SCALE_SD = (0.04, 0.05, 0.05)
IDENTITY_BUMP_SD = 0.035
IDENTITY_BUMP_WIDTH = 0.5


def canonical_keypoints(seed: int) -> np.ndarray:
    """An identity ``(21, 3)`` float32: the mean face, changed smoothly and renormalized.

    The mean face (:data:`~studio.core.keypoints.MEAN_FACE`) is scaled about the mid-eye point
    by width/height/depth factors ``1 + N(0, IDENTITY_SCALE_SD)`` (clipped to ±12 %), then
    displaced by four Gaussian bumps (width :data:`IDENTITY_BUMP_WIDTH` face units, random centres
    within the face, amplitudes ``N(0, IDENTITY_BUMP_SD)`` per axis), 80 % mirror-symmetric. The
    displacement is a smooth function of position, so neighbouring keypoints move together and
    the inner lips, which coincide at rest, still do. Finally :func:`normalize_face` restores
    inter-ocular distance 1 and level eyes. Typical keypoint displacement: ~0.04 face units.
    """
    rng = np.random.default_rng(seed)
    scale = 1.0 + np.clip(rng.normal(0.0, IDENTITY_SCALE_SD), -0.12, 0.12)
    face = (MEAN_FACE - EYE_CENTER_FROM_PIVOT) * scale + EYE_CENTER_FROM_PIVOT
    centres = rng.uniform(face.min(axis=0), face.max(axis=0), size=(4, 3))
    amplitudes = rng.normal(0.0, IDENTITY_BUMP_SD, size=(4, 3))
    distance2 = ((face[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    shift = np.exp(-distance2 / (2 * IDENTITY_BUMP_WIDTH**2)) @ amplitudes
    mirrored = shift[MIRROR_PERMUTATION] * np.array([-1.0, 1.0, 1.0])
    face = face + 0.8 * 0.5 * (shift + mirrored) + 0.2 * shift
    return normalize_face(face).astype(np.float32)


# --- one item ----------------------------------------------------------------------------------------

def _make_item(out: Path, plan: dict) -> tuple[dict, str]:
    """The manifest entry of one item and what was done: ``"built"``, ``"kept"`` (built before
    from the same plan, intact) or ``"refreshed"`` (built before with other model inputs: its
    inputs recomputed from its stored audio, the rest kept)."""
    ident = plan["id"]
    npz, record = out / "items" / f"{ident}.npz", out / "items" / f"{ident}.json"
    kept = _existing_entry(npz, record, plan)
    if kept is not None:
        entry, inputs = kept
        if inputs == _INPUTS_NOW:
            return entry, "kept"
        return _refresh_inputs(npz, record, plan, entry), "refreshed"
    speech = _speak(plan)
    padded, true_phones = padded_16k(speech, plan["padding"])
    augment = plan["augment"]
    clean, true_phones = change_pitch_and_tempo(padded, true_phones, augment["pitch"], augment["tempo"])
    duration = len(clean) / SAMPLE_RATE
    frames = num_frames_for(duration, FPS)
    style = draw_style(plan["style_seed"], frames)
    conditions = style_conditions(style, frames)
    motion = phones_motion(true_phones, duration, FPS, features=compute_features(clean), seed=style["rig_seed"],
                           conditions=conditions, style=RigStyle(**style["rig"]))
    samples = degrade(clean, augment)
    inputs, from_transcript = _run_time_inputs(item_audio(samples), plan, frames)
    arrays = {
        "inputs": inputs, "motion": motion, "conditions": conditions,
        "canonical": canonical_keypoints(plan["identity_seed"]),
        "phone_labels": np.array([p.label for p in true_phones], dtype=str),
        "phone_starts": np.array([p.start for p in true_phones], np.float64),
        "phone_ends": np.array([p.end for p in true_phones], np.float64),
        "audio": samples,
    }
    digest = _write_npz(npz, arrays)
    entry = {
        "id": ident, "file": f"items/{ident}.npz", "speaker": plan["speaker"], "language": plan["language"],
        "split": plan["split"], "seconds": round(duration, 6), "frames": frames,
        "phones_from_transcript": from_transcript, "augment": augment,
        "synthesizer": plan["synthesizer"], "voice": plan["voice"], "text": plan["text"], "style": style,
        "identity_seed": plan["identity_seed"],
    }
    _write_record(record, plan, entry, digest)  # last: the item is complete
    return entry, "built"


def _write_record(record: Path, plan: dict, entry: dict, digest: str) -> None:
    write_json(record, {"plan": plan, "entry": entry, "input_names": list(INPUT_NAMES),
                        "inputs_version": INPUTS_VERSION, "sha256": digest})


def _refresh_inputs(npz: Path, record: Path, plan: dict, entry: dict) -> dict:
    """Recompute an item's inputs from its stored (degraded) audio, exactly as a build would, and
    rewrite it; the phones recognized or aligned again come out the same (decoding is
    deterministic), so the entry stays as it was."""
    with np.load(npz, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    inputs, from_transcript = _run_time_inputs(item_audio(arrays["audio"]), plan, len(arrays["motion"]))
    if from_transcript != entry["phones_from_transcript"]:
        raise CorpusError(f"{npz}: its phones were {'aligned' if entry['phones_from_transcript'] else 'recognized'} "
                          "when built but not now; rebuild the item")
    arrays["inputs"] = inputs
    _write_record(record, plan, entry, _write_npz(npz, arrays))
    return entry


def _speak(plan: dict) -> Synthesis:
    """The plan's sentences spoken. espeak-ng and festival (one utterance, times running on across
    its sentences) say them in one go; flite restarts its segment times at every sentence of a
    text (its phones of a longer text would be wrong), so it says them one by one and the parts
    are joined."""
    if plan["synthesizer"] != "flite" or len(plan["sentences"]) == 1:
        return synthesize_plan(plan)
    parts = [synthesize_plan({**plan, "text": sentence}) for sentence in plan["sentences"]]
    offsets = np.cumsum([0.0] + [part.duration for part in parts[:-1]])
    phones = [Phone(p.label, p.start + offset, p.end + offset, p.stress) for part, offset in zip(parts, offsets)
              for p in part.phones]
    events = [(symbol, start + offset) for part, offset in zip(parts, offsets) for symbol, start in part.events]
    return Synthesis(np.concatenate([part.samples for part in parts]), parts[0].sample_rate, merge_silences(phones),
                     plan["text"], plan["voice"], "flite", events)


def _run_time_inputs(audio: Audio, plan: dict, frames: int) -> tuple[np.ndarray, bool]:
    """The inputs as the generation path makes them: features, phones (aligned to the transcript
    for the planned share of items, else recognized), :func:`neural_inputs`."""
    from studio.audio.phonemes import phones_for

    features = compute_features(audio)
    found = phones_for(audio, plan["text"] if plan["transcript"] else None, language=plan["language"])
    aligned = found.method == "aligned"
    return neural_inputs(features, found.phones, frames, FPS, phones_from_transcript=aligned), aligned


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """``np.savez``-compatible file with fixed timestamps (same arrays, same bytes); its SHA-256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def _existing_entry(npz: Path, record: Path, plan: dict) -> tuple[dict, tuple[list[str], int]] | None:
    """The entry of an item already built from ``plan`` whose file is intact, and the names and
    version of the inputs it was built with; else None."""
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
        if meta.get("plan") != plan or hashlib.sha256(npz.read_bytes()).hexdigest() != meta.get("sha256"):
            return None
        return meta["entry"], (meta.get("input_names", list(_FIRST_INPUT_NAMES)), meta.get("inputs_version", 1))
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: The inputs of the items of corpora whose records do not name theirs (the first 88 channels).
_FIRST_INPUT_NAMES = tuple(name for name in INPUT_NAMES if not name.startswith("rig.") and name != "acoustic")
_INPUTS_NOW = (list(INPUT_NAMES), INPUTS_VERSION)


# --- the whole corpus ----------------------------------------------------------------------------------

def build_train_corpus(
    out_dir: str | os.PathLike,
    *,
    items: int = DEFAULT_ITEMS,
    seed: int = 0,
    workers: int = DEFAULT_WORKERS,
    piper_share: float = PIPER_SHARE,
    natural_share: float = NATURAL_SHARE,
    piper_sentences: str = "natural",
    clean_share: float = CLEAN_SHARE,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Build (or finish building) the corpus in ``out_dir``; return the path of ``manifest.json``.

    ``progress(done, total)`` is called after each item. When ``cancel()`` returns True the build
    stops after the items in flight and raises :class:`~studio.generate.pipeline.Cancelled` (the
    finished items stay and the next build keeps them). The manifest's ``report`` gives the size
    (items, hours of audio, bytes of the item files, items per synthesizer) and the wall time of
    this build.
    """
    if items < 1:
        raise ValueError(f"items must be ≥ 1, got {items}")
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    if not 0.0 <= piper_share <= 1.0:
        raise ValueError(f"piper_share must be 0…1, got {piper_share}")
    if not 0.0 <= natural_share <= 1.0:
        raise ValueError(f"natural_share must be 0…1, got {natural_share}")
    if not 0.0 <= clean_share <= 1.0:
        raise ValueError(f"clean_share must be 0…1, got {clean_share}")
    if piper_sentences not in PIPER_SENTENCES:
        raise ValueError(f"piper_sentences must be one of {', '.join(PIPER_SENTENCES)}, got {piper_sentences!r}")
    started = time.perf_counter()
    out = Path(out_dir)
    (out / "items").mkdir(parents=True, exist_ok=True)
    splits = speaker_splits(seed)
    bank = load_sentences()
    plans = [_plan(index, seed, bank, splits, piper_share, natural_share, piper_sentences, clean_share)
             for index in range(items)]
    entries, done = _run(out, plans, workers, progress, cancel or (lambda: False))
    size = sum((out / e["file"]).stat().st_size + (out / "items" / f"{e['id']}.json").stat().st_size
               for e in entries)
    manifest = {
        "format": FORMAT, "version": VERSION, "seed": seed, "fps": FPS, "piper_share": piper_share,
        "natural_share": natural_share, "piper_sentences": piper_sentences, "clean_share": clean_share,
        "input_names": list(INPUT_NAMES), "inputs_version": INPUTS_VERSION,
        "condition_channels": list(CONDITION_CHANNELS),
        "heldout_speakers": splits["heldout"], "val_speakers": splits["val"], "train_speakers": splits["train"],
        "items": entries,
        "report": {"items": items, "hours": round(sum(e["seconds"] for e in entries) / 3600, 4), "bytes": size,
                   "seconds": round(time.perf_counter() - started, 2), "built": done["built"], "kept": done["kept"],
                   "refreshed": done["refreshed"],
                   "workers": workers, "phones_from_transcript": sum(e["phones_from_transcript"] for e in entries),
                   "synthesizers": {name: sum(p["synthesizer"] == name for p in plans)
                                    for name in sorted({p["synthesizer"] for p in plans})}},
    }
    path = out / "manifest.json"
    write_json(path, manifest)
    return path


def _run(out: Path, plans: list[dict], workers: int, progress, stop) -> tuple[list[dict], dict[str, int]]:
    """Build the planned items; their entries (in plan order) and how many were built, kept and
    refreshed."""
    entries: list[dict] = [{}] * len(plans)
    counts = {"built": 0, "kept": 0, "refreshed": 0}
    done = 0
    for done, (index, outcome) in enumerate(_outcomes(out, plans, workers, stop), 1):
        try:
            entries[index], what = outcome()
        except Exception as exc:
            raise _failed(plans[index], exc) from exc
        counts[what] += 1
        if progress:
            progress(done, len(plans))
    if done < len(plans):
        raise Cancelled(f"training corpus build cancelled after {done} of {len(plans)} items")
    return entries, counts


def _outcomes(out: Path, plans: list[dict], workers: int, stop):
    """``(index, outcome)`` of the items as they finish; ``outcome()`` returns what
    :func:`_make_item` returned, or raises what it raised. ``workers`` processes (1: this one),
    at most two items queued per worker; nothing more is started once ``stop()`` is True."""
    if workers == 1:
        for index, plan in enumerate(plans):
            if stop():
                return
            yield index, functools.partial(_make_item, out, plan)
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    queue = iter(enumerate(plans))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                             initializer=_quiet_fallbacks) as pool:
        pending: dict = {}
        while True:
            if not stop():
                for index, plan in itertools.islice(queue, 2 * workers - len(pending)):
                    pending[pool.submit(_make_item, out, plan)] = index
            if not pending:
                return
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                yield pending.pop(future), future.result


def _quiet_fallbacks() -> None:
    """In a worker process: an alignment falling back to recognition is expected here (the entry
    records it), so phones_for's warning about it is not printed for every such item."""
    logging.getLogger("studio.audio.phonemes").setLevel(logging.ERROR)


def _failed(plan: dict, exc: Exception) -> CorpusError:
    """The error of an item that could not be built, naming it (its plan reproduces it)."""
    return CorpusError(f"item {plan['id']} ({plan['voice']}: {plan['text'][:40]!r}) failed: {exc}")


# --- reading -------------------------------------------------------------------------------------------

_ENTRY_KEYS = ("id", "file", "speaker", "language", "split", "seconds", "frames", "phones_from_transcript", "augment")


def read_manifest(corpus_dir: str | os.PathLike) -> dict:
    """The manifest of a corpus folder, checked: format, version, the input and condition channels
    of this code, every item's entry and that its file exists. Raises :class:`CorpusError`."""
    path = Path(corpus_dir) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the corpus manifest ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise CorpusError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorpusError(f"{path}: not a training corpus manifest (format {FORMAT!r} expected)")
    if data.get("version") != VERSION:
        raise CorpusError(f"{path}: corpus version {data.get('version')!r}, this code reads version {VERSION}")
    if (data.get("input_names"), data.get("inputs_version", 1)) != _INPUTS_NOW:
        raise CorpusError(f"{path}: built with other model inputs than this code computes "
                          f"(version {data.get('inputs_version', 1)}, {len(data.get('input_names') or [])} channels; this code: "
                          f"version {INPUTS_VERSION}, {NUM_INPUTS}); run studio train corpus on it again to refresh them")
    if data.get("condition_channels") != list(CONDITION_CHANNELS):
        raise CorpusError(f"{path}: its condition channels differ from {list(CONDITION_CHANNELS)}")
    if data.get("fps") != FPS:
        raise CorpusError(f"{path}: frame rate {data.get('fps')!r}, expected {FPS}")
    items = data.get("items")
    if not isinstance(items, list) or not items:
        raise CorpusError(f"{path}: no items")
    for k, entry in enumerate(items):
        missing = [key for key in _ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise CorpusError(f"{path}: item {k} lacks {', '.join(missing)}")
        if entry["split"] not in SPLITS:
            raise CorpusError(f"{path}: item {entry['id']} has split {entry['split']!r}, not one of {SPLITS}")
        if not (Path(corpus_dir) / entry["file"]).is_file():
            raise CorpusError(f"{Path(corpus_dir) / entry['file']}: item {entry['id']} of the manifest is missing")
    return data


def load_item(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of one item file (see the module docstring), checked; :class:`CorpusError` names
    the file and what is wrong."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ITEM_KEYS if key not in archive.files]
            if missing:
                raise CorpusError(f"{path}: not a corpus item, it lacks {', '.join(missing)}")
            item = {key: archive[key] for key in ITEM_KEYS}
    except CorpusError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CorpusError(f"{path}: cannot read the corpus item ({exc})") from None
    _check_item(path, item)
    return item


def _check_item(path: Path, item: dict[str, np.ndarray]) -> None:
    def fail(message: str):
        raise CorpusError(f"{path}: {message}")

    audio = item["audio"]
    if audio.dtype != np.int16 or audio.ndim != 1:
        fail(f"audio must be 1-D int16, got {audio.dtype} {audio.shape}")
    frames = num_frames_for(len(audio) / SAMPLE_RATE, FPS)
    expected = {"inputs": (frames, NUM_INPUTS), "motion": (frames, NUM_CHANNELS),
                "conditions": (frames, len(CONDITION_CHANNELS)), "canonical": (NUM_KEYPOINTS, 3)}
    for key, shape in expected.items():
        array = item[key]
        if array.dtype != np.float32 or array.shape != shape:
            fail(f"{key} must be float32 {shape} (for {len(audio)} samples), got {array.dtype} {array.shape}")
        finite = np.isfinite(array) if key != "conditions" else np.isfinite(array[:, :1 + len(EMOTIONS)])
        if not finite.all():
            fail(f"{key} has non-finite values")
    labels, starts, ends = item["phone_labels"], item["phone_starts"], item["phone_ends"]
    if labels.dtype.kind != "U" or labels.ndim != 1:
        fail(f"phone_labels must be a 1-D unicode array, got {labels.dtype} {labels.shape}")
    if starts.shape != labels.shape or ends.shape != labels.shape or starts.dtype != np.float64 \
            or ends.dtype != np.float64:
        fail(f"phone_starts and phone_ends must be float64 {labels.shape}")
    unknown = sorted(set(labels.tolist()) - set(PHONES))
    if unknown:
        fail(f"unknown phone labels {unknown}")
    if np.any(ends < starts) or np.any(starts[1:] < ends[:-1] - 1e-6):
        fail("phone spans are not ordered")
