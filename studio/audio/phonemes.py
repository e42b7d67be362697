"""Timed phones from speech, for lip sync: recognize them, or align a transcript to the audio.

Every later stage that moves the lips reads the ARPAbet :class:`~studio.audio.phones.Phone`
spans made here. Two ways to get them, both with pocketsphinx and its bundled en-us model:

* :func:`recognize_phones` — no transcript: pocketsphinx's *allphone* search (a phone loop
  weighted by the bundled phone LM), then a rescoring pass (below). Boundaries are well placed,
  labels often wrong.
* :func:`align_phones` — with a transcript: forced alignment (``Decoder(bestpath=False)``), the
  transcript's own phones with boundaries found in the audio. English words come from
  pocketsphinx's CMU dictionary, every other word (and every word of another language) from
  espeak-ng's grapheme-to-phoneme rules (:func:`studio.audio.synth.text_to_ipa`) mapped with
  :func:`~studio.audio.phones.ipa_to_arpabet`. Vowel stress comes from espeak-ng's stress marks
  (the CMU dictionary shipped with pocketsphinx has none).
* :func:`phones_for` — what the generators call: aligns when a transcript is given, falls back
  to recognition (with a warning) when the alignment fails or the transcript does not match.
* :func:`bilabial_scores` — for phones found either way, how much more each stop or nasal sounds
  bilabial than its other-place counterpart to the context-dependent models.

Measured on 318 sentences of espeak-ng (8 voices, 2 rates) and flite (4 voices) speech, where the
true phone times are known (``python tests/test_phonemes.py`` prints the table):

=====================================  ==========  ==============  ===========  ==========  =====
phones from                            P/B/M hit   false closures  P/B/M onset  any phone   RTF
=====================================  ==========  ==============  ===========  ==========  =====
allphone, pocketsphinx defaults        0.24        0.023           9.0 ms       13.0 ms     0.04
allphone, ``lw`` 0.5 + dither (used)   0.58        0.014           6.3 ms       9.6 ms      0.04
forced alignment                       0.98        0.032           7.4 ms       8.4 ms      0.09
=====================================  ==========  ==============  ===========  ==========  =====

(hit: share of true P/B/M overlapped by a found P/B/M; false closures: share of open vowels with a
P/B/M in their middle half; onsets: median start-time error; RTF on a 71 s file.) The phone LM
weight matters most: the default ``lw`` 6.5 lets the LM's silence and vowel priors swallow short
consonants; ``lw`` 2 finds 0.50 of the P/B/M, 0.5 finds 0.58 with fewer false closures; ``beam``,
``pbeam``, ``topn``, ``wip`` changed nothing measurable; a uniform phone loop (no LM) is equal
within 0.03. Boundaries come out ~5 ms early (pocketsphinx's 25.6 ms window), so
:data:`TIME_SHIFT` moves them all.

**Rescoring pass.** The phone loop hears many bilabials as another stop or nasal at the wrong
place of articulation (on espeak-ng voices P as K, T or TH; B as G or D; M as N), and a missed lip
closure is the most visible lip-sync error there is. So the loop's phones are decoded once more
as a chain, with the context-dependent models, in which each T K TH D G DH N NG
(:data:`BILABIAL_ALTERNATIVE`) may also be its bilabial counterpart at a prior of
:data:`BILABIAL_PRIOR` to 1. On the dev corpus (``studio eval lipsync --mode without``) the rig's
closure recall went from 0.68 to 0.77 and false closures on open vowels from 5.8 % to 4.6 %; the
price is lips that close on 13 % of t/d/k/g/n/th instead of 10 %. A prior of 1 (acoustics
alone) gives 0.73; 10⁴ gives 0.79 with closures on 16 % of those consonants.

**Fast speech.** Every phone HMM needs at least 3 frames, 30 ms at pocketsphinx's 100 frames/s,
and fast speakers say shorter consonants: their transcript has no path through the audio, or its
alignment squeezes half the phones and fails the mismatch check. An alignment that fails is tried
again at 160 frames/s (:data:`ALIGNMENT_FRAME_RATES`); on the dev corpus that aligned 8 more of
120 items.

**Two processes.** pocketsphinx keeps the GIL while it decodes, so chunks are decoded side by
side in worker processes (:data:`WORKERS`, started by a fork server, never by forking the caller):
recognition spreads its chunks over them, alignment runs the phone loop for its mismatch checks
in one while it aligns. Every chunk gets fresh decoders (a decoder carries state from one
utterance to the next), so the phones are the same whichever process decoded what. A pool that
cannot start or dies leaves the work to the calling process.

**Dither.** The audio gets white noise 60 dB below its speech level before decoding (the same
noise for the same audio): on digital silence (synthetic speech, gated recordings) pocketsphinx's
features degenerate and it recognizes little but silence. A real recording's own noise floor is
louder than the dither, which then changes nothing.

**Long audio** is processed in chunks of at most :data:`MAX_CHUNK_SECONDS`, cut in the middle of
the quietest stretch (pauses), so a two-hour file runs in bounded memory; chunk offsets are added
back. An alignment chunk takes as many transcript words as the decoder finds spoken in it (a
grammar that may end after any word), the last chunk takes the rest. ``progress(fraction)`` is
called with increasing fractions from 0 to 1; ``cancel()`` returning True stops before the next
decoding step with :class:`Cancelled`.

**Mismatch detection.** Each chunk is also decoded with the phone loop. A transcript of other
words than the ones spoken either has no path through the audio at all, or its alignment (a) costs
much more acoustic score than the free phone loop, (b) squeezes many phones to the HMM's minimum
of 3 frames and (c) agrees with the loop's phones on few frames. The mismatch score
``extra cost / |loop score of the speech| + 5 × (squeezed share − agreeing share)`` was at most
0.84 for the correct transcripts of 167 sentences (12 English voices, German, French, Spanish,
Italian, Dutch, Polish) and at least 1.24 for wrong ones (196 aligned, 138 more without a
path); :func:`align_phones` raises :class:`AlignmentError` above :data:`MAX_MISMATCH` (1.0), for the
whole file or any chunk with 5 s of speech. Two local checks catch a transcript that is right
except for a stretch: speech it leaves out is aligned to silence although it is loud and the
loop hears phones there (1 s of that within 2 s raises), and words it adds are squeezed to the
minimum length (half of 10 or more phones within 3 s raises). A few wrong words are tolerated:
they are aligned where the spoken words are, and in a long file a chunk may pass over up to
:data:`MAX_SKIPPED_WORDS` words at its start, so a wrong word at a chunk's end does not shift
everything after it.

Returned phones cover the audio from 0 to its duration, contiguous, with ``SIL`` for pauses and
non-speech, and pass :func:`~studio.audio.phones.validate_phones`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pocketsphinx

from studio.audio.decode import Audio
from studio.audio.phones import (
    PHONES,
    SILENCE,
    VOWELS,
    Phone,
    ipa_to_arpabet,
    merge_silences,
    normalize_label,
    validate_phones,
)

__all__ = [
    "AlignmentError",
    "Cancelled",
    "MAX_CHUNK_SECONDS",
    "MAX_MISMATCH",
    "PhoneResult",
    "TranscriptError",
    "align_phones",
    "bilabial_scores",
    "phones_for",
    "read_transcript",
    "recognize_phones",
    "transcript_words",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_RATE = 100  # pocketsphinx frames per second (its "frate")
_HOP = SAMPLE_RATE // FRAME_RATE

#: Decoder frame rates (frames/s) tried in turn by the alignment: the model's own 100, then 160.
#: Each phone HMM takes at least 3 frames, 30 ms at 100/s; a fast speaker's consonants are
#: shorter, and then the transcript has no path through the audio (or an alignment that squeezes
#: half its phones). At 160/s the minimum is 19 ms.
ALIGNMENT_FRAME_RATES = (FRAME_RATE, 160)

#: Longest stretch of audio decoded at once (s); chunks are cut at the quietest point.
MAX_CHUNK_SECONDS = 30.0
#: Shortest chunk a cut may leave before it (s), so chunks are not cut into slivers.
MIN_CHUNK_SECONDS = 12.0
#: Dither level below the speech level (dB): see the module docstring.
DITHER_DB = -60.0
#: A chunk whose peak stays this far below the file's speech level (dB) is silence, not decoded.
SILENT_CHUNK_DB = -50.0

#: Phone-loop recognition settings (tuned on espeak-ng and flite voices: module docstring).
RECOGNIZER_CONFIG: dict[str, object] = {"lw": 0.5}
#: The rescoring pass of recognition (module docstring): each recognized phone of these may be
#: replaced by its bilabial counterpart, which gets this prior weight against the phone heard.
BILABIAL_ALTERNATIVE = {"T": "P", "K": "P", "TH": "P", "D": "B", "G": "B", "DH": "B", "N": "M", "NG": "M"}
BILABIAL_PRIOR = 100.0
#: :func:`bilabial_scores`: the phones whose place of articulation it weighs, each with the phone
#: of the other place it is compared with (a bilabial with its alveolar counterpart).
PLACE_COUNTERPART = {**BILABIAL_ALTERNATIVE, "P": "T", "B": "D", "M": "N"}
#: Worker processes for decoding (one per CPU, at most 4); 1 decodes in the calling process.
WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
#: Share of a chunk's recognition time spent in the phone loop (the rest is the rescoring pass).
_LOOP_SHARE = 0.75
#: Forced alignment: no bestpath pass (it fails on some sentences), beams wider than the
#: defaults (the default beams lose the only path on some correct transcripts); the
#: second, wider set is tried when the first finds no path.
ALIGNER_CONFIGS: tuple[dict[str, object], ...] = (
    {"bestpath": False, "beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80, "lpbeam": 1e-80, "lponlybeam": 1e-60},
    {"bestpath": False, "beam": 1e-160, "wbeam": 1e-120, "pbeam": 1e-160, "lpbeam": 1e-160,
     "lponlybeam": 1e-120, "maxhmmpf": -1},
)
#: Largest mismatch score (see :class:`_Fit`) of an alignment accepted as matching the audio.
MAX_MISMATCH = 1.0
#: Weight of the squeezed and agreeing shares in the mismatch score.
MISMATCH_WEIGHT = 5.0
#: Words a chunk of a long file may pass over at its start, and the cost of each (a probability
#: in the word grammar): words the speaker left out, or a previous chunk's end went wrong.
MAX_SKIPPED_WORDS = 3
SKIP_PROBABILITY = 1e-2
#: Local checks (see ``_Job._check_locally``): window of the untranscribed-speech test (s), how
#: loud such speech is against the speech level (dB), window of the squeezed-words test (s).
UNTRANSCRIBED_WINDOW = 2.0
LOUD_DB = -25.0
SQUEEZE_WINDOW = 3.0
#: Seconds added to every boundary found by pocketsphinx (its frames start half a window early).
TIME_SHIFT = 0.005

Progress = Callable[[float], None]
Cancel = Callable[[], bool]


class Cancelled(Exception):
    """``cancel()`` returned True; nothing was produced."""


class AlignmentError(ValueError):
    """The transcript could not be aligned to the audio; the message says why."""


class TranscriptError(ValueError):
    """A transcript file that cannot be read as text; the message names the file."""


@dataclass(frozen=True)
class PhoneResult:
    """Phones of one audio, how they were found (``"aligned"`` | ``"recognized"``), and warnings."""

    phones: list[Phone]
    method: str
    warnings: tuple[str, ...] = ()


# --- public API --------------------------------------------------------------------------------

def recognize_phones(audio: Audio, *, progress: Progress | None = None,
                     cancel: Cancel | None = None) -> list[Phone]:
    """Phones recognized in ``audio`` without a transcript (pocketsphinx allphone search).

    Labels are normalized to ARPAbet; fillers and noise become ``SIL``; adjacent silences are
    merged. Raises :class:`Cancelled` when ``cancel()`` returns True.
    """
    job = _Job(audio, progress, cancel, steps_per_chunk=1)
    phones = job.recognize()
    job.finish()
    return phones


def align_phones(audio: Audio, text: str, *, language: str = "en-us", progress: Progress | None = None,
                 cancel: Cancel | None = None) -> list[Phone]:
    """The phones of ``text`` aligned to ``audio`` (forced alignment); vowels carry stress.

    ``language`` is an espeak-ng language code (``en-us``, ``en-gb``, ``de``, ``fr``, …). English
    words are looked up in the CMU dictionary first; all other words go through espeak-ng's G2P
    for ``language``. Raises :class:`AlignmentError` for an empty transcript, a transcript that
    does not match the audio, or a failed alignment; :class:`Cancelled` when asked to stop.
    """
    phones, _, error = _align(audio, text, language, progress, cancel)
    if error is not None:
        raise error
    return phones


def phones_for(audio: Audio, transcript: str | None = None, *, language: str = "en-us",
               progress: Progress | None = None, cancel: Cancel | None = None) -> PhoneResult:
    """Aligned phones when a transcript is given, else (or when alignment fails) recognized ones.

    A failed alignment is not an error here: the result says ``method="recognized"`` and carries
    the reason in ``warnings`` (also logged as a warning).
    """
    if transcript is None:
        return PhoneResult(recognize_phones(audio, progress=progress, cancel=cancel), "recognized")
    phones, job, error = _align(audio, transcript, language, progress, cancel)
    if error is None:
        return PhoneResult(phones, "aligned")
    message = f"transcript not used, phones recognized instead: {error}"
    log.warning(message)
    phones = job.recognize_rest()
    job.finish()
    return PhoneResult(phones, "recognized", (message,))


def bilabial_scores(audio: Audio, phones: Sequence[Phone], *, cancel: Cancel | None = None) -> np.ndarray:
    """How much more bilabial than its other-place counterpart each of ``phones`` sounds: a
    float64 array, one score per phone, in pocketsphinx's log units (base 1.0001) of its scaled
    acoustic score; a few hundred either way is a clear preference.

    ``phones`` are those of ``audio`` in order (recognized or aligned, as :func:`phones_for` gives
    them). For each stop or nasal of :data:`PLACE_COUNTERPART`, the chunk's phones are aligned
    again with the context-dependent models three times — as given, and twice with every other
    such phone read as its counterpart (alternate ones each time, so no two neighbours change
    together) — and the score is the acoustic log-likelihood of the phone and its two neighbours
    read as bilabial minus read as the other place: above 0 where the sound says lips. Other
    phones, silences, and phones of a chunk whose alignment finds no path, score 0. The models
    were trained on recorded speech; they hear the place there and in clean synthetic speech,
    hardly under noise, a room or a codec (model card of the neural model, session 14).
    Raises :class:`Cancelled` when ``cancel()`` returns True.
    """
    validate_phones(phones)
    job = _Job(audio, None, cancel, steps_per_chunk=1)
    scores = np.zeros(len(phones), np.float64)
    if not phones or not job.chunks:
        return scores
    middles = np.array([0.5 * (p.start + p.end) * SAMPLE_RATE for p in phones])  # chunks count 16 kHz samples
    ends = np.array([c.end for c in job.chunks])
    owner = np.minimum(np.searchsorted(ends, middles, side="right"), len(ends) - 1)  # the chunk of each phone
    for k, chunk in enumerate(job.chunks):
        members = [i for i in np.flatnonzero(owner == k) if phones[i].label != SILENCE]
        if chunk.silent or not any(phones[i].label in PLACE_COUNTERPART for i in members):
            continue
        job.check_cancel()
        found = _place_pcm(job.pcm(chunk), job.frate, [phones[i].label for i in members])
        if found is not None:
            scores[members] = found
    return scores


_NO_SCORE = -1e6  # a phone whose acoustic score underflowed (far below any real one)


def _place_pcm(pcm: bytes, frame_rate: int, labels: list[str]) -> np.ndarray | None:
    """:func:`bilabial_scores` for one chunk's phones (no silences): a score per label, or None
    when an alignment finds no path."""
    swappable = [k for k, label in enumerate(labels) if label in PLACE_COUNTERPART]
    heard = _chain_scores(pcm, frame_rate, labels)
    if heard is None:
        return None
    out = np.zeros(len(labels), np.float64)
    for parity in (0, 1):
        swapped = swappable[parity::2]
        if not swapped:
            continue
        other = list(labels)
        for k in swapped:
            other[k] = PLACE_COUNTERPART[labels[k]]
        read = _chain_scores(pcm, frame_rate, other)
        if read is None:
            return None
        for k in swapped:
            window = slice(max(0, k - 1), k + 2)
            gain = float(heard[window].sum() - read[window].sum())  # as given minus as the other place
            out[k] = gain if labels[k] in ("P", "B", "M") else -gain
    return out


def _chain_scores(pcm: bytes, frame_rate: int, labels: Sequence[str]) -> np.ndarray | None:
    """The acoustic log-likelihood of each phone of ``labels`` aligned as a chain (silences may
    come between them) with the context-dependent models and the aligner's wide beams (the wider
    set when the first loses the path), in pocketsphinx's log units; None when neither finds one."""
    transitions = [(k, k + 1, 1.0, _phone_word(label)) for k, label in enumerate(labels)]
    for config in ALIGNER_CONFIGS:
        chain = _chain_decoder(frame_rate, **config)
        if not _decode_fsg(chain, pcm, "place", len(labels), transitions):
            continue
        logmath = chain.logmath
        found = [logmath.log(seg.ascore) if seg.ascore > 0 else _NO_SCORE
                 for seg in chain.seg() if seg.word.startswith(_PHONE_WORD)]
        if len(found) == len(labels):
            return np.array(found, np.float64)
    return None


def _monotonic(progress: Progress | None) -> Progress | None:
    """``progress`` called only with fractions above the last one (a retry restarts its count)."""
    if progress is None:
        return None
    last = [-1.0]

    def report(fraction: float) -> None:
        if fraction > last[0]:
            last[0] = fraction
            progress(fraction)
    return report


def _align(audio: Audio, text: str, language: str, progress: Progress | None,
           cancel: Cancel | None) -> tuple[list[Phone] | None, _Job, AlignmentError | None]:
    """Align at each of :data:`ALIGNMENT_FRAME_RATES` until one works: ``(phones, job, None)``,
    or ``(None, first job, its error)`` when none does (the first job's phone loop results are
    kept for the recognition that follows). Errors about the input are not retried."""
    progress = _monotonic(progress)
    job = first = _Job(audio, progress, cancel, steps_per_chunk=3)
    error: AlignmentError | None = None
    for frame_rate in ALIGNMENT_FRAME_RATES:
        if frame_rate != first.frate:
            done = first.reported
            remaining = None if progress is None else (lambda x, d=done: progress(d + (1.0 - d) * x))
            job = _Job(audio, remaining, cancel, steps_per_chunk=3, frame_rate=frame_rate)
        try:
            phones = job.align(text, language)
        except AlignmentError as exc:
            if error is None:
                error = exc
            if not job.decoded:
                break
            log.info("alignment at %d frames/s failed (%s)", job.frate, exc)
            continue
        job.finish()
        return phones, job, None
    return None, first, error


#: Largest transcript file :func:`read_transcript` accepts (bytes): a two-hour talk is ~150 kB.
MAX_TRANSCRIPT_BYTES = 4 * 1024 * 1024


def read_transcript(path: str | Path) -> str:
    """The text of a plain-text transcript file (UTF-8, a byte-order mark is ignored).

    Raises :class:`TranscriptError` naming the file when it is missing, larger than
    :data:`MAX_TRANSCRIPT_BYTES`, binary, not UTF-8 (or UTF-16 with a BOM) text, or empty.
    """
    path = Path(path)
    if not path.exists():
        raise TranscriptError(f"{path}: transcript file not found")
    if not path.is_file():
        raise TranscriptError(f"{path}: transcript is not a file")
    size = path.stat().st_size
    if size > MAX_TRANSCRIPT_BYTES:
        raise TranscriptError(f"{path}: transcript is {size / 1e6:.1f} MB; a plain-text transcript "
                              f"is at most {MAX_TRANSCRIPT_BYTES // (1024 * 1024)} MB")
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
        if b"\x00" in data:
            raise TranscriptError(f"{path}: is a binary file, not a plain-text transcript")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise TranscriptError(f"{path}: is not UTF-8 text (bad byte at offset {exc.start}); "
                              "save the transcript as UTF-8") from None
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f\v")
    if controls > max(2, len(text) // 100):
        raise TranscriptError(f"{path}: is a binary file, not a plain-text transcript")
    if not text.strip():
        raise TranscriptError(f"{path}: transcript is empty")
    return text


# --- one run over one audio --------------------------------------------------------------------

@dataclass
class _Chunk:
    start: int  # sample offsets into the audio
    end: int
    silent: bool
    recognized: list[Phone] | None = None  # phone loop result, absolute times
    rescored: list[Phone] | None = None  # … after the rescoring pass (what recognition returns)
    loop_spans: list[tuple[str, int, int]] | None = None  # … as (label, first, end) frames
    loop_score: float = 0.0  # phone-loop acoustic score of the whole chunk
    loop_speech_score: float = 0.0  # … of its frames in phones other than SIL
    speech_frames: int = 0  # frames the phone loop put in phones other than SIL


@dataclass(frozen=True)
class _Fit:
    """How well one chunk's alignment fits its audio, against the phone loop on the same audio."""

    deficit: float  # phone-loop score minus alignment score (whole chunk, score units)
    speech_score: float  # |phone-loop score| of the speech frames
    speech_frames: int  # frames in speech (aligned or recognized)
    agreeing_frames: int  # … of them with the same phone in both
    phones: int  # aligned phones other than SIL
    squeezed: int  # … of them at the HMM's minimum length (3 frames)

    @staticmethod
    def total(fits: Sequence[_Fit]) -> _Fit:
        return _Fit(*(sum(getattr(f, name) for f in fits) for name in _Fit.__dataclass_fields__))

    @property
    def mismatch(self) -> float:
        """Extra cost per unit of speech score + weight × (squeezed share − agreeing share)."""
        ratio = self.deficit / max(self.speech_score, 1.0)
        squeezed = self.squeezed / max(1, self.phones)
        agreeing = self.agreeing_frames / max(1, self.speech_frames)
        return ratio + MISMATCH_WEIGHT * (squeezed - agreeing)


class _Job:
    """Audio prepared once (level, chunks, dither) and the progress/cancel bookkeeping."""

    def __init__(self, audio: Audio, progress: Progress | None, cancel: Cancel | None,
                 steps_per_chunk: int, frame_rate: int = FRAME_RATE):
        samples = np.asarray(audio.samples, dtype=np.float32).reshape(-1)
        if audio.sample_rate != SAMPLE_RATE:
            samples = _resample(samples, audio.sample_rate)
        self.samples = samples
        self.duration = len(samples) / SAMPLE_RATE
        self.progress = progress
        self.cancel = cancel
        self.steps_per_chunk = steps_per_chunk
        self._reported = -1.0
        self._done_steps = 0.0
        #: the decoders' frame rate: ``frate`` asked for, ``hop`` (samples) and ``rate`` (frames/s) they use
        self.frate = frame_rate
        self.hop = SAMPLE_RATE // frame_rate
        self.rate = SAMPLE_RATE / self.hop
        self.decoded = False  # set when decoding starts: errors after that are about the speech
        levels = _frame_rms(samples, _HOP)
        loud = levels[levels > 0]
        self.level = float(np.percentile(loud, 95)) if loud.size else 0.0
        frame_levels = levels if self.hop == _HOP else _frame_rms(samples, self.hop)
        self.levels_db = (20 * np.log10(frame_levels + 1e-10)).astype(np.float32)  # per decoder frame
        self.speech_db = 20 * np.log10(self.level + 1e-10)
        self.chunks = [
            _Chunk(a, b, self._is_silent(a, b))
            for a, b in _chunk_bounds(levels, len(samples))
        ]
        self._report(0.0)

    # progress & cancel
    def _report(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.progress is not None and fraction > self._reported:
            self._reported = fraction
            self.progress(fraction)

    def step_done(self, chunk: _Chunk, share: float = 1.0) -> None:
        """One decoding step on ``chunk`` finished (``share`` of a step)."""
        if not self.samples.size:
            return
        self._done_steps += share * (chunk.end - chunk.start) / len(self.samples)
        self._report(self._done_steps / self.steps_per_chunk * 0.999)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("phone search cancelled")

    def finish(self) -> None:
        self._report(1.0)

    @property
    def reported(self) -> float:
        """The last progress fraction reported (0 before any)."""
        return max(0.0, self._reported)

    # audio
    def _is_silent(self, a: int, b: int) -> bool:
        if b <= a:
            return True
        peak = float(np.max(np.abs(self.samples[a:b])))
        if peak < 10 ** (-60 / 20):  # below -60 dBFS: silence whatever the speech level
            return True
        return peak < self.level * 10 ** (SILENT_CHUNK_DB / 20)

    def pcm(self, chunk: _Chunk) -> bytes:
        """The chunk as 16-bit PCM with the dither added (seeded by the chunk's position)."""
        x = self.samples[chunk.start:chunk.end]
        sd = max(self.level * 10 ** (DITHER_DB / 20), 1.0 / 32768)
        rng = np.random.default_rng(chunk.start)
        x = x + rng.normal(0.0, sd, x.shape).astype(np.float32)
        return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    # recognition
    def recognize(self) -> list[Phone]:
        """Phone loop and rescoring pass on every chunk not done yet, in worker processes when
        there are several chunks of speech (:data:`WORKERS`), else here."""
        todo = [c for c in self.chunks if c.rescored is None]
        self._settle_quiet(todo)
        todo = [c for c in todo if c.rescored is None]
        pool = _Pool.open(len(todo)) if len(todo) >= 2 else None
        if pool is not None:
            try:
                with pool:
                    futures = {}
                    for chunk in todo:
                        share = 1.0 if chunk.recognized is None else 1.0 - _LOOP_SHARE
                        known = None if chunk.recognized is None else chunk.loop_spans
                        futures[pool.submit(_recognize_pcm, self.pcm(chunk), self.frate, known, BILABIAL_PRIOR)] = (chunk, share)
                    for future in pool.as_completed(futures, self.check_cancel):
                        chunk, share = futures[future]
                        loop, found = future.result()
                        if loop is not None:
                            self._take_loop(chunk, loop)
                        self._take_rescored(chunk, found)
                        self.step_done(chunk, share)
            except _POOL_ERRORS as exc:  # the rest is decoded here
                log.warning("worker processes failed (%s); decoding in this process", exc)
        for chunk in (c for c in todo if c.rescored is None):
            self.check_cancel()
            pcm = self.pcm(chunk)
            if chunk.recognized is None:
                self._take_loop(chunk, _loop_pcm(pcm, self.frate))
                self.step_done(chunk, _LOOP_SHARE)
            self.check_cancel()
            _, found = _recognize_pcm(pcm, self.frate, chunk.loop_spans, BILABIAL_PRIOR)
            self._take_rescored(chunk, found)
            self.step_done(chunk, 1.0 - _LOOP_SHARE)
        return _cover([p for c in self.chunks for p in c.rescored], self.duration)

    def recognize_rest(self) -> list[Phone]:
        """:meth:`recognize` after a failed alignment (the phone loop ran on the chunks it reached)."""
        self.steps_per_chunk = 1
        done = sum(c.end - c.start for c in self.chunks if c.recognized is not None)
        self._done_steps = _LOOP_SHARE * done / max(1, len(self.samples))
        return self.recognize()

    def _settle_quiet(self, chunks: Sequence[_Chunk]) -> None:
        """Silent chunks, and chunks too short to decode, are one silence."""
        for chunk in chunks:
            if chunk.silent or chunk.end - chunk.start < 3 * self.hop:
                chunk.recognized = chunk.rescored = [Phone(SILENCE, chunk.start / SAMPLE_RATE, chunk.end / SAMPLE_RATE)]
                chunk.loop_spans = []

    def _take_loop(self, chunk: _Chunk, loop: _LoopResult) -> None:
        if chunk.recognized is not None:
            return
        chunk.recognized = _spans_to_phones(loop.spans, chunk.start / SAMPLE_RATE, chunk.end / SAMPLE_RATE, self.rate)
        chunk.loop_spans = loop.spans
        chunk.loop_score = loop.score
        chunk.loop_speech_score = loop.speech_score
        chunk.speech_frames = loop.speech_frames

    def _take_rescored(self, chunk: _Chunk, found: list[tuple[str, int, int]] | None) -> None:
        chunk.rescored = chunk.recognized if found is None else _spans_to_phones(
            found, chunk.start / SAMPLE_RATE, chunk.end / SAMPLE_RATE, self.rate)

    def _run_loop(self, chunk: _Chunk) -> None:
        """The phone loop on one chunk, here (alignment runs it for its mismatch checks)."""
        self._settle_quiet([chunk])
        if chunk.recognized is None:
            self._take_loop(chunk, _loop_pcm(self.pcm(chunk), self.frate))

    # alignment
    def align(self, text: str, language: str) -> list[Phone]:
        words = transcript_words(text)
        if not words:
            raise AlignmentError("the transcript has no words to align" if not text.strip()
                                 else f"the transcript has no words to align: {text[:60]!r}")
        if self.duration < 0.1:
            raise AlignmentError(f"the audio is too short to align words to ({self.duration * 1000:.0f} ms)")
        speaking = [c for c in self.chunks if not c.silent]
        if not speaking:
            raise AlignmentError("the audio is silent: there is no speech to align the transcript to")
        decoder = pocketsphinx.Decoder(loglevel="FATAL", frate=self.frate, **ALIGNER_CONFIGS[0])
        lexicon = _Lexicon(language, decoder)
        entries = [lexicon.entry(w) for w in words]
        self.decoded = True
        self.check_cancel()
        for k, config in enumerate(ALIGNER_CONFIGS):
            if k:
                decoder = pocketsphinx.Decoder(loglevel="FATAL", frate=self.frate, **config)
                self._done_steps = 0.0  # the retry redoes the alignment (progress waits for it)
            try:
                return self._align_with(decoder, lexicon, entries)
            except _NoPath as exc:
                error = AlignmentError(str(exc))
        raise error

    def _align_with(self, decoder, lexicon: _Lexicon, entries: list[_Entry]) -> list[Phone]:
        names = lexicon.install(decoder, entries)
        # The phone loop of every chunk (for the mismatch checks) runs in a worker meanwhile.
        waiting = [c for c in self.chunks if not c.silent and c.recognized is None]
        pool = _Pool.open(2) if len(waiting) >= 2 else None
        with pool or contextlib.nullcontext():
            loops = {}
            try:
                for c in waiting if pool else ():
                    loops[id(c)] = pool.submit(_loop_pcm, self.pcm(c), self.frate)
            except _POOL_ERRORS as exc:
                log.warning("worker processes failed (%s); decoding in this process", exc)
                loops.clear()
            return self._align_chunks(decoder, names, entries, loops)

    def _align_chunks(self, decoder, names: list[str], entries: list[_Entry], loops: dict) -> list[Phone]:
        def heard(chunk: _Chunk) -> None:
            """The chunk's phone loop result: from the worker (waiting for it), or decoded here."""
            if chunk.recognized is None and id(chunk) in loops:
                try:
                    self._take_loop(chunk, _Pool.result(loops[id(chunk)], self.check_cancel))
                except _POOL_ERRORS as exc:  # this and later chunks: the phone loop runs here
                    log.warning("worker process failed (%s); decoding in this process", exc)
                    loops.clear()
            if chunk.recognized is None:
                self._run_loop(chunk)
            self.step_done(chunk)

        phones: list[Phone] = []
        fits: list[_Fit] = []
        next_word = skipped_words = 0
        speaking = [i for i, c in enumerate(self.chunks) if not c.silent]
        last_speaking = speaking[-1]
        for i, chunk in enumerate(self.chunks):
            t0, t1 = chunk.start / SAMPLE_RATE, chunk.end / SAMPLE_RATE
            if chunk.silent:
                phones.append(Phone(SILENCE, t0, t1))
                self.step_done(chunk, 3.0)
                continue
            self.check_cancel()
            remaining = len(entries) - next_word
            if remaining == 0:
                heard(chunk)
                if chunk.speech_frames > self.rate:  # more than 1 s of speech left over
                    raise AlignmentError(
                        f"the transcript ends before the speech does: speech continues at "
                        f"{_clock(t0)} after the last word was aligned")
                phones.append(Phone(SILENCE, t0, t1))
                self.step_done(chunk, 2.0)
                continue
            pcm = self.pcm(chunk)
            self.check_cancel()
            found = self._first_pass(decoder, pcm, chunk, names[next_word:], single=len(speaking) == 1,
                                     last=i == last_speaking)
            self.step_done(chunk)
            if found is None:
                raise _NoPath(
                    f"no alignment of the transcript to the audio between {_clock(t0)} and {_clock(t1)} "
                    "(the words do not match the speech there)")
            skipped, used = found
            next_word += skipped
            skipped_words += skipped
            if used == 0:
                heard(chunk)
                if chunk.speech_frames > self.rate:
                    raise AlignmentError(
                        f"the speech between {_clock(t0)} and {_clock(t1)} matches none of the transcript's "
                        f"next words (from {entries[next_word].word!r} on)")
                phones.append(Phone(SILENCE, t0, t1))
                self.step_done(chunk)
                continue
            self.check_cancel()
            aligned, score = _second_pass(decoder, pcm)
            self.step_done(chunk)
            phones.extend(_aligned_phones(aligned, entries[next_word:next_word + used], t0, t1, self.rate))
            heard(chunk)
            fit, mine, theirs = _fit_of(chunk, aligned, score)
            fits.append(fit)
            self._check_chunk(fit, chunk)
            self._check_locally(chunk, aligned, mine, theirs)
            next_word += used
        if next_word < len(entries):
            raise AlignmentError(
                f"{len(entries) - next_word} of {len(entries)} transcript words were not found in the "
                f"audio (from {entries[next_word].word!r} on)")
        if skipped_words > max(MAX_SKIPPED_WORDS, 0.02 * len(entries)):
            raise AlignmentError(
                f"the transcript does not match the audio: {skipped_words} of its {len(entries)} words "
                "are not spoken")
        self._check_total(fits)
        return _cover(phones, self.duration)

    def _first_pass(self, decoder, pcm: bytes, chunk: _Chunk, names: Sequence[str],
                    single: bool, last: bool) -> tuple[int, int] | None:
        """Which of the next words ``chunk`` holds: ``(skipped, used)``, or None for no path.

        A file in one chunk is a plain forced alignment. Otherwise a chunk may skip up to
        :data:`MAX_SKIPPED_WORDS` words at its start, and every chunk but the last may end after
        any word; it is offered a generous share of the remaining words (more when it takes all).
        """
        if single:
            return _first_pass(decoder, pcm, names)
        if last:
            found = _first_pass(decoder, pcm, names, skip=MAX_SKIPPED_WORDS)
        else:
            frames = [(c.end - c.start) // self.hop for c in self.chunks if c.start >= chunk.start and not c.silent]
            budget = int(len(names) * frames[0] / max(1, sum(frames)) * 1.6) + 12
            while True:
                budget = min(budget, len(names))
                found = _first_pass(decoder, pcm, names[:budget], free_end=True, skip=MAX_SKIPPED_WORDS)
                if found is None or sum(found) < budget or budget == len(names):
                    break
                self.check_cancel()
                budget *= 2  # the chunk took every word offered: offer more
        if not found or not found[1]:
            return found
        # The phone-level pass needs a plain word-level alignment of exactly these words.
        self.check_cancel()
        skipped, used = found
        return found if _first_pass(decoder, pcm, names[skipped:skipped + used]) == (0, used) else None

    def _check_chunk(self, fit: _Fit, chunk: _Chunk) -> None:
        """Raise :class:`AlignmentError` when a chunk with 5 s of speech does not match."""
        if fit.speech_frames >= 5 * self.rate and fit.mismatch > MAX_MISMATCH:
            raise AlignmentError(
                f"the transcript does not match the audio between {_clock(chunk.start / SAMPLE_RATE)} "
                f"and {_clock(chunk.end / SAMPLE_RATE)} (mismatch score {fit.mismatch:.2f}, at most "
                f"{MAX_MISMATCH:.2f} for a matching transcript)")

    def _check_locally(self, chunk: _Chunk, aligned, mine: np.ndarray, theirs: np.ndarray) -> None:
        """Raise :class:`AlignmentError` for speech the transcript lacks, or words not spoken.

        Speech left out of the transcript is aligned to silence (or a filler) although it is loud
        and the phone loop hears phones there: 1 s of that within 2 s is an omission. Transcript
        words that were not spoken are squeezed in somewhere at the HMMs' minimum length: half of
        10 or more phones within 3 s is that.
        """
        n = len(mine)
        first = chunk.start // self.hop
        level = self.levels_db[first:first + n]
        if len(level) < n:
            level = np.concatenate([level, np.full(n - len(level), -200.0, np.float32)])
        t0 = chunk.start / SAMPLE_RATE
        width = int(UNTRANSCRIBED_WINDOW * self.rate)
        if n >= width:
            lost = (mine == SILENCE) & (theirs != SILENCE) & (level > self.speech_db + LOUD_DB)
            counts = np.convolve(lost.astype(np.int32), np.ones(width, np.int32), mode="valid")
            k = int(np.argmax(counts))
            if counts[k] >= width // 2:
                raise AlignmentError(
                    f"the transcript does not match the audio: speech between {_clock(t0 + k / self.rate)} "
                    f"and {_clock(t0 + (k + width) / self.rate)} is missing from the transcript")
        width = int(SQUEEZE_WINDOW * self.rate)
        if n >= width:
            starts, squeezed = _squeezed_starts(aligned, n)
            ones = np.ones(width, np.int32)
            phones = np.convolve(starts, ones, mode="valid")
            short = np.convolve(squeezed, ones, mode="valid")
            bad = (phones >= 10) & (2 * short >= phones)
            if bad.any():
                k = int(np.argmax(bad))
                raise AlignmentError(
                    f"the transcript does not match the audio: words aligned between "
                    f"{_clock(t0 + k / self.rate)} and {_clock(t0 + (k + width) / self.rate)} are squeezed "
                    "into too little time (the transcript has words that are not spoken there)")

    def _check_total(self, fits: list[_Fit]) -> None:
        """Raise :class:`AlignmentError` when the whole alignment does not match."""
        if not fits:
            return
        overall = _Fit.total(fits).mismatch
        if overall > MAX_MISMATCH:
            raise AlignmentError(
                f"the transcript does not match the audio (mismatch score {overall:.2f}, at most "
                f"{MAX_MISMATCH:.2f} for a matching transcript)")


def _fit_of(chunk: _Chunk, aligned, score: float) -> tuple[_Fit, np.ndarray, np.ndarray]:
    """The :class:`_Fit` of a chunk's second-pass alignment, and the per-frame labels (chunk
    frames) of the alignment and of the phone loop."""
    n = max([b for _, spans in aligned for _, _, b in spans] + [b for _, _, b in chunk.loop_spans] + [0])
    mine = np.full(n, SILENCE, dtype=object)
    theirs = np.full(n, SILENCE, dtype=object)
    phones = squeezed = 0
    for _, spans in aligned:
        for label, a, b in spans:
            label = _label(label)
            mine[a:b] = label
            if label != SILENCE:
                phones += 1
                squeezed += b - a <= 3
    for label, a, b in chunk.loop_spans:
        theirs[a:b] = label
    speech = (mine != SILENCE) | (theirs != SILENCE)
    fit = _Fit(deficit=chunk.loop_score - score, speech_score=abs(chunk.loop_speech_score),
               speech_frames=int(speech.sum()), agreeing_frames=int((speech & (mine == theirs)).sum()),
               phones=phones, squeezed=squeezed)
    return fit, mine, theirs


def _squeezed_starts(aligned, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk frame: how many aligned phones start there, and how many of them are squeezed."""
    starts = np.zeros(n, np.int32)
    squeezed = np.zeros(n, np.int32)
    for _, spans in aligned:
        for label, a, b in spans:
            if _label(label) != SILENCE and a < n:
                starts[a] += 1
                squeezed[a] += b - a <= 3
    return starts, squeezed


class _NoPath(Exception):
    """The decoder found no path through the transcript (retried with wider beams)."""


# --- decoders ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _LoopResult:
    """The phone loop's best path on one chunk: (label, first, end) frame spans and scores."""

    spans: list[tuple[str, int, int]]
    score: float  # acoustic score of the whole chunk
    speech_score: float  # … of its frames in phones other than SIL
    speech_frames: int  # frames in phones other than SIL


def _decode_loop(loop, pcm: bytes) -> _LoopResult:
    loop.start_utt()
    loop.process_raw(pcm, full_utt=True)
    loop.end_utt()
    logmath = loop.logmath
    spans = []
    score = speech_score = 0.0
    speech = 0
    for seg in loop.seg() or ():
        label = _label(seg.word)
        spans.append((label, seg.start_frame, seg.end_frame + 1))
        seg_score = logmath.log(seg.ascore) if seg.ascore > 0 else 0.0
        score += seg_score
        if label != SILENCE:
            speech += seg.end_frame + 1 - seg.start_frame
            speech_score += seg_score
    return _LoopResult(spans, score, speech_score, speech)


def _decode_chain(chain, pcm: bytes, loop_spans: Sequence[tuple[str, int, int]],
                  prior: float) -> list[tuple[str, int, int]] | None:
    """The rescoring pass on one chunk: the phone loop's phones as a chain in which every phone
    of :data:`BILABIAL_ALTERNATIVE` may also be its bilabial counterpart, with ``prior`` weight
    against the phone heard (:data:`BILABIAL_PRIOR`), aligned again with the context-dependent
    models. The chain's best path as frame spans; None when nothing changes or it has no path."""
    spans = [span for span in loop_spans if span[0] != SILENCE]
    if not any(label in BILABIAL_ALTERNATIVE for label, _, _ in spans):
        return None
    heard = 1.0 / (1.0 + prior)
    transitions = []
    for k, (label, _, _) in enumerate(spans):
        alternative = BILABIAL_ALTERNATIVE.get(label)
        transitions.append((k, k + 1, heard if alternative else 1.0, _phone_word(label)))
        if alternative:
            transitions.append((k, k + 1, 1.0 - heard, _phone_word(alternative)))
    if not _decode_fsg(chain, pcm, "chain", len(spans), transitions):  # no path: keep the phone loop's phones
        return None
    return [(_label(seg.word[len(_PHONE_WORD):]) if seg.word.startswith(_PHONE_WORD) else SILENCE,
             seg.start_frame, seg.end_frame + 1) for seg in chain.seg()]


def _decode_fsg(decoder, pcm: bytes, name: str, final: int, transitions: list) -> bool:
    """Decode ``pcm`` with ``decoder`` searching the grammar ``transitions`` (states 0 … ``final``);
    False when the beams lost every path (no hypothesis)."""
    decoder.add_fsg(name, decoder.create_fsg(name, 0, final, transitions))
    decoder.activate_search(name)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return decoder.hyp() is not None


def _recognize_pcm(pcm: bytes, frame_rate: int, loop_spans, prior: float) -> tuple[_LoopResult | None, list | None]:
    """Phone loop (unless its ``loop_spans`` are known) and rescoring pass on one chunk.

    Every chunk gets decoders of its own: a pocketsphinx decoder carries state from one
    utterance to the next, and the result must not depend on which chunks a process decoded
    before (nor on which worker took which chunk). Making one takes ~15 ms."""
    loop = None
    if loop_spans is None:
        loop = _decode_loop(_phone_loop(frame_rate), pcm)
        loop_spans = loop.spans
    return loop, _decode_chain(_chain_decoder(frame_rate), pcm, loop_spans, prior)


def _loop_pcm(pcm: bytes, frame_rate: int) -> _LoopResult:
    """The phone loop alone on one chunk (for the alignment's mismatch checks), fresh decoder."""
    return _decode_loop(_phone_loop(frame_rate), pcm)


_POOL_ERRORS = (BrokenProcessPool, OSError, EOFError)  # a worker died or could not start: decode here


class _Pool:
    """Worker processes for decoding chunks side by side (pocketsphinx holds the GIL, so threads
    would take turns). Started from a fork server, never by forking the caller, which may be a
    GUI with threads. Leaving the ``with`` block early (cancel, error) abandons unfinished work."""

    def __init__(self, executor):
        self._executor = executor

    @classmethod
    def open(cls, tasks: int) -> _Pool | None:
        """A pool of up to :data:`WORKERS` processes for ``tasks`` tasks, or None when one
        process is all there is (or worker processes cannot be started here)."""
        workers = min(WORKERS, tasks)
        if workers < 2 or multiprocessing.current_process().daemon:  # a daemon may not have children
            return None
        try:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            return cls(ProcessPoolExecutor(workers, mp_context=context))
        except (OSError, ValueError) as exc:
            log.info("decoding in this process: no worker processes (%s)", exc)
            return None

    def submit(self, fn, *args):
        return self._executor.submit(fn, *args)

    @staticmethod
    def as_completed(futures, check_cancel: Callable[[], None]):
        """``futures`` as they finish; ``check_cancel()`` is called while waiting."""
        pending = set(futures)
        while pending:
            check_cancel()
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            yield from done

    @staticmethod
    def result(future, check_cancel: Callable[[], None]):
        """The result of one future, calling ``check_cancel()`` while waiting for it."""
        while not wait([future], timeout=0.1).done:
            check_cancel()
        return future.result()

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, kind, value, tb) -> None:
        try:
            self._executor.shutdown(wait=kind is None, cancel_futures=True)
        except _POOL_ERRORS:
            pass


def _phone_loop(frame_rate: int = FRAME_RATE):
    model = pocketsphinx.get_model_path()
    return pocketsphinx.Decoder(allphone=f"{model}/en-us/en-us-phone.lm.bin", lm=None, dict=None,
                                loglevel="FATAL", frate=frame_rate, **RECOGNIZER_CONFIG)


_PHONE_WORD = "phone-"  # dictionary words of the chain decoder: "phone-AA" is the phone AA


def _phone_word(label: str) -> str:
    return _PHONE_WORD + label


def _chain_decoder(frame_rate: int = FRAME_RATE, **config):
    """A decoder for the rescoring pass: a dictionary of one word per phone, FSG search
    (``config``: more decoder settings, e.g. the aligner's wider beams)."""
    config = {"bestpath": False, **config}
    decoder = pocketsphinx.Decoder(lm=None, dict=None, loglevel="FATAL", frate=frame_rate, **config)
    labels = [p for p in PHONES if p != SILENCE]
    for k, label in enumerate(labels):
        decoder.add_word(_phone_word(label), label, update=k == len(labels) - 1)
    return decoder


_ALTERNATIVE = re.compile(r"\(\d+\)$")  # "the(2)": the dictionary's second pronunciation
_FILLER = re.compile(r"^(<.*>|\[.*\]|\+.*\+|\(NULL\))$")


def _label(word: str) -> str:
    try:
        return normalize_label(word)
    except ValueError:
        return SILENCE


def _first_pass(decoder, pcm: bytes, names: Sequence[str], *, free_end: bool = False,
                skip: int = 0) -> tuple[int, int] | None:
    """Word-level alignment of a chunk to ``names``: ``(skipped, used)`` or None (no path).

    The chunk holds ``names[skipped:skipped + used]``: with ``free_end`` it may end after any
    word (``used`` < all), and it may pass over up to ``skip`` words at its start, each at a
    cost of :data:`SKIP_PROBABILITY` (words the speaker left out, or that the previous chunk
    missed at its end).
    """
    if not free_end and not skip:
        decoder.set_align_text(" ".join(names))
    else:
        count = len(names)
        final = count + 1 if free_end else count
        transitions = [(k, k + 1, 1.0, name) for k, name in enumerate(names)]
        transitions += [(0, k, SKIP_PROBABILITY ** k) for k in range(1, min(skip, count - 1) + 1)]
        if free_end:
            transitions += [(k, final, 1.0) for k in range(count + 1)]
        fsg = decoder.create_fsg("chunk", 0, final, transitions)
        decoder.add_fsg("chunk", fsg)
        decoder.activate_search("chunk")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return None
    spoken = [_ALTERNATIVE.sub("", seg.word) for seg in decoder.seg() if not _FILLER.match(seg.word)]
    for skipped in range(min(skip, len(names)) + 1):
        if list(names[skipped:skipped + len(spoken)]) == spoken:
            return skipped, len(spoken)
    return None


def _second_pass(decoder, pcm: bytes):
    """Phone-level alignment of the words found by :func:`_first_pass`: entries and total score."""
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    alignment = decoder.get_alignment()
    words = []
    score = 0.0
    for word in alignment:
        phones = [(p.name, p.start, p.start + p.duration) for p in word]
        words.append((word.name, phones))
        score += sum(p.score for p in word)
    return words, score


# --- lexicon -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    """One transcript word: as written, its dictionary key, stress of its vowels in order."""

    word: str
    key: str  # the dictionary word (CMU entry, or a G2P word added under this name)
    phones: tuple[str, ...] | None  # phones to add for a G2P word; None for a CMU word
    stresses: tuple[int, ...]  # stress of each vowel of the word, in order (may be empty)


class _Lexicon:
    """Pronunciations of transcript words: the CMU dictionary (English) and espeak-ng G2P."""

    def __init__(self, language: str, decoder):
        self.language = language.strip() or "en-us"
        self.english = self.language.lower().startswith("en")
        self._cmu = decoder if self.english else None  # a decoder with the CMU dictionary loaded
        self._entries: dict[str, _Entry] = {}
        self._g2p_names: dict[tuple[str, ...], str] = {}

    def entry(self, word: str) -> _Entry:
        key = word.lower()
        if key not in self._entries:
            self._entries[key] = self._make(word)
        return self._entries[key]

    def _make(self, word: str) -> _Entry:
        lower = word.lower()
        if self._cmu is not None and not any(ch.isdigit() for ch in word) and self._cmu.lookup_word(lower):
            ipa = self._ipa(word, required=False)
            stresses = tuple(s for p, s in _ipa_phones(ipa) if p in VOWELS) if ipa else ()
            return _Entry(word, lower, None, stresses)
        ipa = self._ipa(word, required=True)
        pairs = _ipa_phones(ipa)
        phones = tuple(p for p, _ in pairs)
        if not phones:
            raise AlignmentError(f"the word {word!r} has no pronunciation (espeak-ng {self.language}: {ipa!r})")
        name = self._g2p_names.setdefault(phones, f"g2p-{len(self._g2p_names)}")
        return _Entry(word, name, phones, tuple(s for p, s in pairs if p in VOWELS))

    def _ipa(self, word: str, *, required: bool) -> str | None:
        """espeak-ng's IPA for ``word`` (None when not ``required`` and espeak-ng fails)."""
        from studio.audio.synth import SynthesisError, text_to_ipa  # loads espeak-ng only when needed

        try:
            pieces = text_to_ipa(word, voice=self.language)
        except SynthesisError as exc:
            if required:
                raise AlignmentError(
                    f"no pronunciation for {word!r} in language {self.language!r}: {exc}") from None
            return None
        return " ".join(ipa for _, ipa in pieces if ipa)

    def install(self, decoder, entries: Sequence[_Entry]) -> list[str]:
        """Add the G2P words to ``decoder``'s dictionary; the dictionary key of every entry."""
        added = {}
        for e in entries:
            if e.phones is not None and e.key not in added:
                added[e.key] = " ".join(e.phones)
        for k, (name, phones) in enumerate(added.items()):
            decoder.add_word(name, phones, update=k == len(added) - 1)
        return [e.key for e in entries]


def _ipa_phones(ipa: str) -> list[tuple[str, int]]:
    """``(ARPAbet, stress)`` for an IPA string; a stress mark stresses the next vowel."""
    out: list[tuple[str, int]] = []
    for mark, piece in re.findall(r"([ˈˌ]?)([^ˈˌ]*)", ipa):
        if not piece and not mark:
            continue
        stress = {"ˈ": 1, "ˌ": 2}.get(mark, 0)
        for label in _arpabet(piece):
            if label in VOWELS and stress:
                out.append((label, stress))
                stress = 0
            else:
                out.append((label, 0))
    return out


def _arpabet(ipa: str) -> list[str]:
    """:func:`ipa_to_arpabet`, dropping symbols it does not know instead of failing."""
    text = ipa
    for _ in range(len(ipa) + 1):
        try:
            return ipa_to_arpabet(text)
        except ValueError as exc:
            m = re.search(r"unknown IPA symbol '(.)'", str(exc))
            if not m:
                return []
            text = text.replace(m.group(1), "")
    return []


_TOKEN = re.compile(r"[\w'’]+(?:[-‐][\w'’]+)*")


def transcript_words(text: str) -> list[str]:
    """The words of a transcript, as written: letters, digits and inner apostrophes/hyphens.

    Punctuation and symbols are dropped. A hyphenated compound stays one word (a compound the
    dictionary does not know goes to espeak-ng whole); digits stay too (espeak-ng says them).
    """
    text = unicodedata.normalize("NFC", text)
    out = []
    for token in _TOKEN.findall(text):
        token = token.replace("’", "'").strip("'_-‐")
        token = token.replace("_", "")
        if token and any(ch.isalnum() for ch in token):
            out.append(token)
    return out


# --- phones ------------------------------------------------------------------------------------

def _spans_to_phones(spans: Sequence[tuple[str, int, int]], t0: float, t1: float,
                     rate: float = FRAME_RATE) -> list[Phone]:
    """Frame spans of one chunk (``rate`` frames/s) → phones from ``t0`` to ``t1`` (the last one
    reaches ``t1``)."""
    phones = []
    for label, a, b in spans:
        start = min(t1, t0 + a / rate + TIME_SHIFT)
        end = min(t1, t0 + b / rate + TIME_SHIFT)
        phones.append(Phone(label, start, end))
    return _fit(phones, t0, t1)


def _aligned_phones(words, entries: Sequence[_Entry], t0: float, t1: float,
                    rate: float = FRAME_RATE) -> list[Phone]:
    """Phones of a second-pass alignment with the stress of each transcript word's vowels."""
    phones = []
    index = 0
    for name, spans in words:
        stresses: tuple[int, ...] = ()
        if not _FILLER.match(name):
            stresses = _fit_stresses(entries[index].stresses if index < len(entries) else (),
                                     sum(1 for label, *_ in spans if _label(label) in VOWELS))
            index += 1
        vowel = 0
        for label, a, b in spans:
            arpabet = _label(label)
            stress = 0
            if arpabet in VOWELS:
                stress = stresses[vowel] if vowel < len(stresses) else 0
                vowel += 1
            start = min(t1, t0 + a / rate + TIME_SHIFT)
            end = min(t1, t0 + b / rate + TIME_SHIFT)
            phones.append(Phone(arpabet, start, end, stress))
    return _fit(phones, t0, t1)


def _fit_stresses(stresses: Sequence[int], vowels: int) -> tuple[int, ...]:
    """Stress pattern of ``len(stresses)`` vowels mapped onto ``vowels`` vowels by position."""
    if vowels == 0:
        return ()
    if len(stresses) == vowels:
        return tuple(stresses)
    out = [0] * vowels
    if not stresses:
        return tuple(out)
    for level in (2, 1):  # primary wins where both land on one vowel
        for k, s in enumerate(stresses):
            if s == level:
                pos = 0 if len(stresses) == 1 else round(k * (vowels - 1) / (len(stresses) - 1))
                out[pos] = s
    return tuple(out)


def _fit(phones: list[Phone], t0: float, t1: float) -> list[Phone]:
    """Phones made contiguous from ``t0`` to ``t1``; empty ones dropped, the end filled.

    A gap at the end shorter than 30 ms (pocketsphinx's last partial frame) extends the last
    phone; a longer one is ``SIL``.
    """
    out: list[Phone] = []
    t = t0
    for p in phones:
        end = min(max(p.end, t), t1)
        if end > t:
            out.append(Phone(p.label, t, end, p.stress))
            t = end
    if t < t1:
        if out and (out[-1].label == SILENCE or t1 - t < 0.03):
            out[-1] = Phone(out[-1].label, out[-1].start, t1, out[-1].stress)
        else:
            out.append(Phone(SILENCE, t, t1))
    return out


def _cover(phones: list[Phone], duration: float) -> list[Phone]:
    """The final phone list: contiguous from 0 to ``duration``, silences merged, validated."""
    phones = merge_silences(_fit(phones, 0.0, duration)) if duration > 0 else []
    validate_phones(phones, "phonemes")
    return phones


# --- audio helpers -----------------------------------------------------------------------------

def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(rate), SAMPLE_RATE)
    return resample_poly(samples, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)


def _frame_rms(samples: np.ndarray, hop: int = _HOP, block_frames: int = 6000) -> np.ndarray:
    """RMS of each frame of ``hop`` samples (the last partial frame included), in blocks."""
    n_frames = -(-len(samples) // hop)
    out = np.zeros(n_frames, np.float32)
    for f0 in range(0, n_frames, block_frames):
        f1 = min(n_frames, f0 + block_frames)
        block = samples[f0 * hop: f1 * hop]
        pad = (f1 - f0) * hop - len(block)
        if pad:
            block = np.concatenate([block, np.zeros(pad, np.float32)])
        out[f0:f1] = np.sqrt(np.mean(np.square(block.reshape(-1, hop), dtype=np.float64), axis=1))
    return out


def _chunk_bounds(levels: np.ndarray, n_samples: int) -> list[tuple[int, int]]:
    """Sample ranges of at most :data:`MAX_CHUNK_SECONDS`, cut at the quietest 0.3 s."""
    max_frames = int(MAX_CHUNK_SECONDS * FRAME_RATE)
    min_frames = int(MIN_CHUNK_SECONDS * FRAME_RATE)
    n_frames = len(levels)
    if n_frames <= max_frames:
        return [(0, n_samples)] if n_samples else []
    db = 20 * np.log10(levels.astype(np.float64) + 1e-7)
    width = 31
    smooth = np.convolve(db, np.ones(width) / width, mode="same")
    bounds = []
    start = 0
    while n_frames - start > max_frames:
        lo, hi = start + min_frames, start + max_frames
        window = smooth[lo:hi]
        quietest = window.min()
        # Of the (near-)quietest frames, the middle of the longest run: the middle of a pause.
        quiet = window <= quietest + 1.0
        cut = lo + _middle_of_longest_run(quiet)
        bounds.append((start * _HOP, cut * _HOP))
        start = cut
    bounds.append((start * _HOP, n_samples))
    return bounds


def _middle_of_longest_run(mask: np.ndarray) -> int:
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int((starts[k] + ends[k]) // 2)


def _clock(seconds: float) -> str:
    minutes, s = divmod(seconds, 60.0)
    return f"{int(minutes)}:{s:05.2f}"
