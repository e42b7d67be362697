"""Offline speech synthesis with exact phone timings: espeak-ng (any language), flite and festival (English).

Synthetic speech is the one source of audio whose phone timings are known rather than guessed, so
it feeds the tests, the lip-sync dev corpus (:mod:`studio.generate.devcorpus`) and the neural
model's training corpus (:mod:`studio.generate.neural.corpus`). Every synthesizer returns a
:class:`Synthesis`: float32 mono samples at the synthesizer's own rate, and contiguous
:class:`~studio.audio.phones.Phone` spans in seconds that cover the whole signal (pauses and
leading/trailing silence are ``SIL`` phones).

* **espeak-ng** is driven through ``libespeak-ng.so.1`` with ctypes (synchronous mode, phoneme
  events in IPA, output hooks that mark pause samples). A phone starts at its event's sample
  position (``espeak_EVENT.sample``, exact; ``audio_position`` is the same in whole
  milliseconds) and ends where the next one starts. Two places where espeak-ng emits the event
  away from where the sound starts are corrected from the synthesis itself, so the spans say
  where the lips really are (see :func:`synthesize_espeak`). espeak-ng has global state: every
  use holds one module lock, and each synthesis runs in a freshly forked child of a helper
  process, so that the same arguments always give the same samples.
* **flite** runs its command-line program; its ``-psdur`` output gives each segment's end time.
* **festival** runs in batch mode on a small Scheme script that prints each segment of the
  utterance's Segment relation with its end time (:func:`synthesize_festival`); its voices are
  built from recordings of people (diphone and HTS voices, :data:`FESTIVAL_VOICES`), and its
  English phone sets map to ARPAbet through :data:`FESTIVAL_PHONE_SETS`.
* :func:`text_to_ipa` is espeak-ng's grapheme-to-phoneme conversion, word by word, for forced
  alignment of transcripts in any language espeak-ng speaks.

Errors (unknown voice, empty text, missing library or program) raise :class:`SynthesisError`.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import difflib
import functools
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from studio.audio.phones import (
    PHONES,
    SILENCE,
    VOWELS,
    Phone,
    ipa_stress,
    ipa_to_arpabet,
    merge_silences,
    normalize_label,
    validate_phones,
)

__all__ = [
    "FESTIVAL_PHONE_SETS",
    "FESTIVAL_VOICES",
    "FLITE_VOICES",
    "FestivalVoice",
    "Synthesis",
    "SynthesisError",
    "espeak_phonemes",
    "espeak_variants",
    "espeak_voices",
    "festival_voice",
    "festival_voices",
    "synthesize_espeak",
    "synthesize_festival",
    "synthesize_flite",
    "text_to_ipa",
]


class SynthesisError(RuntimeError):
    """Speech could not be synthesized: bad text or voice, or a missing synthesizer."""


@dataclass(frozen=True)
class Synthesis:
    """Synthesized speech with the phones that were spoken.

    ``samples``: float32, shape (n,), mono in −1…1 at ``sample_rate`` Hz (espeak-ng: 22050;
    flite: 16000, or 8000 for ``kal``; festival: the voice's, 16000 or 32000). ``phones``: ARPAbet
    spans in seconds, contiguous, from 0 to ``duration``. ``events``: the synthesizer's own
    segments as ``(symbol, start_s)`` — IPA phoneme events for espeak-ng (``""`` is a pause),
    lower-case ARPAbet for flite, the voice's phone set for festival — before any correction.
    """

    samples: np.ndarray = field(repr=False, compare=False)
    sample_rate: int
    phones: list[Phone]
    text: str
    voice: str
    synthesizer: str
    events: list[tuple[str, float]] = field(repr=False)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


# --- espeak-ng: the C API (speak_lib.h) --------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
_PHONE_SEPARATOR = "_"  # asked of espeak_TextToPhonemes between phonemes (phonememode bits 8-23)
_PHONEMES_SEPARATED = _PHONEMES_IPA | ord(_PHONE_SEPARATOR) << 8  # IPA, phonemes separated
_LANGUAGE_SWITCH = re.compile(r"\([a-z][a-z0-9-]*\)")  # "(en)" where espeak changes language mid-text
# espeak-ng writes "??" for a phoneme with no IPA spelling (an English vowel in German text):
# it is a vowel, spoken as the neutral one.
_NO_IPA, _NO_IPA_VOWEL = "??", "ə"


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms since the start of the text
        ("sample", ctypes.c_int),  # samples since the start of the text
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, language, NUL)*, then a 0 byte
        ("identifier", ctypes.c_char_p),  # file path under espeak-ng-data/voices
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))
_SymbolHook = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int)
_SampleHook = ctypes.CFUNCTYPE(None, ctypes.c_short)


class _OutputHooks(ctypes.Structure):
    """espeak_ng_OUTPUT_HOOKS: called for every sample, saying which command made it."""

    _fields_ = [
        ("outputPhoSymbol", _SymbolHook),
        ("outputSilence", _SampleHook),  # a pause (its samples are zero, or the voice's echo)
        ("outputVoiced", _SampleHook),  # formant synthesis (not called by Klatt voices)
        ("outputUnvoiced", _SampleHook),  # recorded noise (fricatives, bursts)
    ]


class _Espeak:
    """The process-wide espeak-ng library: loaded and initialized once, used under :data:`_LOCK`."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise SynthesisError(f"espeak-ng is not installed: cannot load {name} ({exc})") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, options)
        if rate <= 0:
            raise SynthesisError(f"espeak-ng failed to initialize (espeak_Initialize returned {rate})")
        self.lib = lib
        self.sample_rate = int(rate)
        self._blocks: list[np.ndarray] = []
        self._events: list[tuple[str, int, int]] = []
        self._callback = _SynthCallback(self._on_synth)  # kept alive as long as the library
        lib.espeak_SetSynthCallback(self._callback)
        self._runs: list[list] = []  # [is_pause, samples] in output order
        self._hooks = _OutputHooks(_SymbolHook(), _SampleHook(self._on_pause),
                                   _SampleHook(self._on_sound), _SampleHook(self._on_sound))
        lib.espeak_ng_SetOutputHooks.argtypes = [ctypes.POINTER(_OutputHooks)]
        lib.espeak_ng_SetOutputHooks(ctypes.byref(self._hooks))
        self.languages, self.variants = self._list_voices()

    # espeak calls this from inside espeak_Synth (synchronous mode), on the calling thread.
    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._blocks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                name = name.replace(_NO_IPA, _NO_IPA_VOWEL)
                self._events.append((name, int(ev.sample), int(ev.audio_position)))
            i += 1
        return 0

    def _on_pause(self, _sample) -> None:
        runs = self._runs
        if runs and runs[-1][0]:
            runs[-1][1] += 1
        else:
            runs.append([True, 1])

    def _on_sound(self, _sample) -> None:
        runs = self._runs
        if runs and not runs[-1][0]:
            runs[-1][1] += 1
        else:
            runs.append([False, 1])

    def _list_voices(self) -> tuple[dict[str, str], dict[str, str]]:
        """``{language: voice file}`` (best priority wins) and ``{variant: variant file}``."""
        languages: dict[str, tuple[int, str]] = {}
        variants: dict[str, str] = {}
        voices = self.lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            v = voices[i].contents
            i += 1
            ident = v.identifier.decode()
            address = v.languages
            while address and (priority := ctypes.string_at(address, 1)[0]) != 0:
                code = ctypes.string_at(address + 1)  # up to its NUL
                lang = code.decode().lower()
                if lang == "variant":
                    variants[ident.rsplit("/", 1)[-1].lower()] = ident.rsplit("/", 1)[-1]
                elif lang not in languages or priority < languages[lang][0]:
                    languages[lang] = (priority, ident)
                address += len(code) + 2
        # espeak_ListVoices(NULL) lists no variants; they live in the "!v" folder.
        spec_languages = ctypes.create_string_buffer(b"\x00variant\x00")
        spec = _Voice(None, ctypes.addressof(spec_languages), None, 0, 0, 0, 0, 0, None)
        voices = self.lib.espeak_ListVoices(ctypes.byref(spec))
        i = 0
        while voices[i]:
            ident = voices[i].contents.identifier.decode()
            i += 1
            if ident.startswith("!v/"):
                variants[ident[3:].lower()] = ident[3:]
        return {k: v for k, (_, v) in languages.items()}, variants

    def select(self, voice: str) -> None:
        """Select ``language[+variant]``, e.g. ``en-us``, ``fr+f3``, ``de+klatt``."""
        lang, _, variant = voice.strip().partition("+")
        ident = self.languages.get(lang.lower())
        if ident is None:
            raise SynthesisError(
                f"espeak-ng has no voice for language {lang!r} (see espeak_voices(); "
                f"e.g. {', '.join(sorted(self.languages)[:8])}, …)"
            )
        name = ident
        if variant:
            file = self.variants.get(variant.lower())
            if file is None:
                raise SynthesisError(f"espeak-ng has no voice variant {variant!r} (see espeak_variants())")
            name = f"{ident}+{file}"
        status = self.lib.espeak_SetVoiceByName(name.encode())
        if status != 0:
            raise SynthesisError(f"espeak-ng could not select voice {voice!r} ({name}, error {status})")

    def synthesize(self, text: bytes) -> tuple[np.ndarray, list[tuple[str, int, int]], np.ndarray]:
        """int16 samples, ``(ipa, sample, ms)`` phoneme events, and a bool mask of the pause samples."""
        self._blocks, self._events, self._runs = [], [], []
        status = self.lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                       None, None)
        if status != 0:
            raise SynthesisError(f"espeak_Synth failed (error {status})")
        self.lib.espeak_Synchronize()
        blocks, events, runs = self._blocks, self._events, self._runs
        self._blocks, self._events, self._runs = [], [], []
        samples = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
        if sum(length for _, length in runs) == len(samples):
            pause = np.repeat(np.array([p for p, _ in runs], bool), [length for _, length in runs])
        else:  # Klatt voices do not report their voiced samples: pauses are the runs of zeros
            pause = _zero_runs(samples, min_length=self.sample_rate // 500)
        return samples, events, pause

    def clauses(self, text: str, phonememode: int) -> list[tuple[str, str]]:
        """``(source text, phonemes)`` per clause, as espeak_TextToPhonemes splits the text."""
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        base = ctypes.addressof(buf)
        ptr = ctypes.c_void_p(base)
        out = []
        while ptr.value:
            start = ptr.value - base
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, phonememode)
            end = (ptr.value - base) if ptr.value else len(data)
            source = data[start:max(start, end)].decode("utf-8", "replace")
            phonemes = (result or b"").decode("utf-8", "replace")
            out.append((source, _LANGUAGE_SWITCH.sub("", phonemes).replace(_NO_IPA, _NO_IPA_VOWEL)))
        return out


_LOCK = threading.Lock()
_ENGINE: _Espeak | None = None


def _zero_runs(samples: np.ndarray, min_length: int) -> np.ndarray:
    """Mask of the samples in runs of at least ``min_length`` exact zeros."""
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    mask = np.zeros(len(samples), bool)
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= min_length:
            mask[a:b] = True
    return mask


def _espeak() -> _Espeak:
    """The initialized library; call with :data:`_LOCK` held."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


# --- a pristine espeak-ng per synthesis ---------------------------------------------------------
#
# espeak-ng keeps state between syntheses in function-static variables (pitch-flutter phase,
# filter memories), so the same text comes out a few samples different each time in one
# process. A helper process that never synthesizes forks one child per synthesis: every child
# starts from the same freshly initialized library, and a crash in espeak-ng stays in the child.

_FRAME_HEADER = struct.Struct(">I")
_SERVER_CHILDREN = max(1, min(8, os.cpu_count() or 1))


def _send(fd: int, payload: bytes) -> None:
    data = _FRAME_HEADER.pack(len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _serve() -> None:
    """The helper's loop: requests on stdin, one forked child each, answers on stdout."""
    import selectors

    with _LOCK:
        _espeak()  # initialized once here, never used to synthesize: the children inherit it
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    inbox = b""
    waiting: list[tuple[int, tuple]] = []
    children: dict[int, tuple[int, int, list[bytes]]] = {}  # pipe fd → (request id, pid, chunks)
    open_input = True
    while open_input or children or waiting:
        while waiting and len(children) < _SERVER_CHILDREN:
            request, args = waiting.pop(0)
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: synthesize once, answer, leave
                os.close(read_end)
                try:
                    answer = (request, True, _synthesize_here(*args))
                except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
                    answer = (request, False, exc if isinstance(exc, SynthesisError) else SynthesisError(repr(exc)))
                _send(write_end, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
                os._exit(0)
            os.close(write_end)
            children[read_end] = (request, pid, [])
            selector.register(read_end, selectors.EVENT_READ)
        if not (open_input or children):
            break
        for key, _ in selector.select():
            chunk = os.read(key.fd, 1 << 16)
            if key.fd == 0:
                if not chunk:
                    open_input = False
                    selector.unregister(0)
                    continue
                inbox += chunk
                while len(inbox) >= 4 and len(inbox) >= 4 + _FRAME_HEADER.unpack(inbox[:4])[0]:
                    size = _FRAME_HEADER.unpack(inbox[:4])[0]
                    waiting.append(pickle.loads(inbox[4:4 + size]))
                    inbox = inbox[4 + size:]
            elif chunk:
                children[key.fd][2].append(chunk)
            else:  # the child is done
                selector.unregister(key.fd)
                os.close(key.fd)
                request, pid, chunks = children.pop(key.fd)
                _, status = os.waitpid(pid, 0)
                answer = b"".join(chunks)[4:]
                if not answer:
                    answer = pickle.dumps((request, False, SynthesisError(
                        f"espeak-ng crashed while synthesizing (exit status {status})")))
                _send(1, answer)


class _PristineServer:
    """The client side: sends requests to the helper and hands each answer to its caller."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from studio.audio.synth import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.pid = os.getpid()  # a forked copy of this process needs its own helper
        self.lock = threading.Lock()
        self.pending: dict[int, list] = {}
        self.next_id = 0
        self.alive = True
        threading.Thread(target=self._read_answers, name="espeak-answers", daemon=True).start()

    def call(self, *args):
        slot = [threading.Event(), None]
        with self.lock:
            if not self.alive:
                raise SynthesisError("the espeak-ng helper process has stopped")
            request, self.next_id = self.next_id, self.next_id + 1
            self.pending[request] = slot
            try:
                _send(self.process.stdin.fileno(), pickle.dumps((request, args)))
            except OSError as exc:
                self.pending.pop(request, None)
                raise SynthesisError(f"the espeak-ng helper process has stopped ({exc})") from None
        slot[0].wait()
        ok, value = slot[1]
        if ok:
            return value
        raise value

    def _read_answers(self) -> None:
        stream = self.process.stdout
        while True:
            header = stream.read(4)
            if len(header) < 4:
                break
            payload = stream.read(_FRAME_HEADER.unpack(header)[0])
            request, ok, value = pickle.loads(payload)
            with self.lock:
                slot = self.pending.pop(request, None)
            if slot is not None:
                slot[1] = (ok, value)
                slot[0].set()
        with self.lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        for slot in pending.values():
            slot[1] = (False, SynthesisError("the espeak-ng helper process stopped unexpectedly"))
            slot[0].set()

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


_SERVER: _PristineServer | None = None
_SERVER_LOCK = threading.Lock()


def _run_pristine(*args) -> Synthesis:
    """``_synthesize_here(*args)`` in a fresh child of the helper process (started on first use)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or not _SERVER.alive or _SERVER.pid != os.getpid():
            try:
                _SERVER = _PristineServer()
            except OSError as exc:
                raise SynthesisError(f"cannot start the espeak-ng helper process: {exc}") from None
            atexit.register(_SERVER.close)
        server = _SERVER
    return server.call(*args)


def espeak_voices() -> list[str]:
    """Language codes espeak-ng can speak (``en-us``, ``en-gb``, ``de``, ``fr``, ``fr-fr``, …), sorted.

    Each is a valid ``voice`` for :func:`synthesize_espeak` and :func:`text_to_ipa`, alone or
    with a variant: ``"fr+f3"``.
    """
    with _LOCK:
        return sorted(_espeak().languages)


def espeak_variants() -> list[str]:
    """Voice variants espeak-ng has (``f1``…``f5``, ``m1``…``m8``, ``klatt``, ``croak``, …), sorted."""
    with _LOCK:
        return sorted(_espeak().variants)


# --- espeak-ng synthesis -----------------------------------------------------------------------

def synthesize_espeak(
    text: str,
    voice: str = "en-us",
    *,
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    word_gap: int = 0,
) -> Synthesis:
    """Speak ``text`` with espeak-ng; the phones are where the sound is, to within a few ms.

    ``voice`` is ``language[+variant]`` (see :func:`espeak_voices`, :func:`espeak_variants`).
    ``rate`` in words per minute (80…450), ``pitch`` and ``pitch_range`` 0…100, ``word_gap`` extra
    pause between words in units of 10 ms.

    Each phoneme event becomes one phone, or several when its IPA maps to several ARPAbet phones
    (``ts`` → T S, ``ɪə`` → IH AH: the span is split evenly). A phone runs from its event
    (``espeak_EVENT.sample``, exact) to the next one; pauses and the audio after the last phoneme
    are ``SIL`` (espeak-ng starts speaking at once: a leading stop's closure is the only leading
    silence, and it belongs to the stop). Glottal stops (no ARPAbet phone) join the phone before
    them. Vowel stress comes from espeak-ng's own transcription of the text (events carry none),
    matched to the events in order.

    espeak-ng keeps synthesis state between calls (its pitch-flutter phase, filter memories), so
    the same text would come out a few samples different each time in one process. Each call
    therefore runs in a child forked from a helper process that never synthesizes: the same
    arguments always give the same samples and phones (a few ms per call on top of the
    synthesis; calls from several threads run in parallel, up to 8 at a time).

    Two corrections make the spans follow the sound where espeak-ng's events do not:

    * **Stop closures.** espeak-ng synthesizes a stop's closure as a pause *before* the stop's
      event, so the event of a P marks its burst, when the lips open. Every pause sample right
      before a stop's event (espeak-ng reports pause samples through its output hooks; for Klatt
      voices, which do not, they are the runs of exact zeros) is given to the stop; after a
      ``SIL``, whose pause cannot be told from the closure, at most 50 ms at 175 wpm (scaled
      with the rate, 25…90 ms).
    * **Releases into a vowel.** After a nasal or liquid espeak-ng emits the vowel's event after
      the vowel's first frames, and a voiced stop's own frames run into the vowel: the event
      comes 15…40 ms after the vowel's sound starts. The boundary is moved back to the step up
      in signal energy (a two-level fit of the 5 ms energy envelope, at least 6 dB apart) between
      the consonant's second quarter and the vowel's first 40 ms.
    """
    if not text or not text.strip():
        raise SynthesisError("cannot synthesize empty text")
    if not 80 <= rate <= 450:
        raise SynthesisError(f"rate must be 80…450 words per minute, got {rate}")
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise SynthesisError(f"{name} must be 0…100, got {value}")
    if word_gap < 0:
        raise SynthesisError(f"word_gap must be ≥ 0, got {word_gap}")
    return _run_pristine(text, voice, rate, pitch, pitch_range, word_gap)


def _synthesize_here(text: str, voice: str, rate: int, pitch: int, pitch_range: int,
                     word_gap: int) -> Synthesis:
    """:func:`synthesize_espeak` in this process, with whatever state espeak-ng is in."""
    with _LOCK:
        engine = _espeak()
        engine.select(voice)
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_WORDGAP, word_gap), (_PARAM_VOLUME, 100)):
            engine.lib.espeak_SetParameter(param, int(value), 0)
        raw, events, pause = engine.synthesize(text.encode("utf-8"))
        transcription = [ph for _, phonemes in engine.clauses(text, _PHONEMES_SEPARATED)
                         for ph in re.split(r"[ _]+", phonemes) if ph]
        sample_rate = engine.sample_rate
    if raw.size == 0 or not events:
        raise SynthesisError(f"espeak-ng said nothing for {text!r} with voice {voice!r}")
    samples = raw.astype(np.float32) / 32768.0
    spoken = [(name, pos) for name, pos, _ in events if not _LANGUAGE_SWITCH.fullmatch(name)]
    stresses = _event_stresses([name for name, _ in spoken], transcription)
    spans = _event_spans(spoken, stresses, len(samples))
    _give_closures_to_stops(spans, pause, sample_rate, rate)
    _move_releases(spans, samples, sample_rate)
    phones = merge_silences(Phone(label, a / sample_rate, b / sample_rate, stress)
                            for label, a, b, stress in spans)
    validate_phones(phones, f"espeak-ng phones of {text!r}")
    return Synthesis(samples, sample_rate, phones, text, voice, "espeak-ng",
                     [(name, pos / sample_rate) for name, pos, _ in events])


def _event_stresses(names: list[str], transcription: list[str]) -> list[int]:
    """Stress (0/1/2) of each event, from the transcription's stress marks, aligned in order."""
    plain = [t.replace("ˈ", "").replace("ˌ", "") for t in transcription]
    stresses = [0] * len(names)
    sounds = [i for i, name in enumerate(names) if name]  # pauses are not transcribed
    if [names[i] for i in sounds] == plain:  # the usual case
        for i, t in zip(sounds, transcription):
            stresses[i] = ipa_stress(t)
        return stresses
    matcher = difflib.SequenceMatcher(None, names, plain, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                stresses[i1 + k] = ipa_stress(transcription[j1 + k])
    return stresses


def _event_spans(events: list[tuple[str, int]], stresses: list[int], n: int) -> list[list]:
    """``[label, start, end, stress]`` (samples) from the events: contiguous, 0 … ``n``."""
    spans: list[list] = []
    if events[0][1] > 0:
        spans.append([SILENCE, 0, min(events[0][1], n), 0])
    for k, (name, start) in enumerate(events):
        end = events[k + 1][1] if k + 1 < len(events) else n
        start, end = min(start, n), min(max(end, start), n)
        labels = _ipa_labels(name)
        if not labels:
            if name.strip() and spans:  # a glottal stop: part of the phone before it
                spans[-1][2] = max(spans[-1][2], end)
                continue
            labels = [SILENCE]
        cuts = np.linspace(start, end, len(labels) + 1).round().astype(int)
        stressed = False
        for label, a, b in zip(labels, cuts[:-1], cuts[1:]):
            stress = 0
            if label in VOWELS and not stressed:
                stress, stressed = stresses[k], True
            spans.append([label, int(a), int(b), stress])
    if spans[-1][2] < n:
        spans.append([SILENCE, spans[-1][2], n, 0])
    return spans


def _ipa_labels(name: str) -> list[str]:
    """ARPAbet phones of one espeak IPA phoneme name; [] for a pause or a glottal stop."""
    if not name.strip():
        return []
    try:
        return ipa_to_arpabet(name)
    except ValueError as exc:
        raise SynthesisError(f"espeak-ng phoneme {name!r}: {exc}") from None


_STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})
#: Consonants whose release into a following vowel espeak-ng's events place too late.
_LATE_RELEASE = frozenset({"M", "N", "NG", "L", "R", "B", "D", "G"})
_HOP = 0.0025  # s, hop of the energy envelope (5 ms windows)


def _give_closures_to_stops(spans: list[list], pause: np.ndarray, sample_rate: int, rate: int) -> None:
    """Move each stop's start back over the pause samples (its closure) just before its event."""
    after_silence = round(float(np.clip(0.05 * 175 / rate, 0.025, 0.09)) * sample_rate)
    for k in range(1, len(spans)):
        label, start = spans[k][0], spans[k][1]
        prev = spans[k - 1]
        if label not in _STOPS or prev[2] != start:
            continue
        earliest = prev[1] if prev[0] == SILENCE else prev[1] + 1
        if prev[0] == SILENCE:
            earliest = max(earliest, start - after_silence)
        i = start
        while i > earliest and pause[i - 1]:
            i -= 1
        prev[2] = spans[k][1] = i


def _energy_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Energy in dB of 5 ms windows centred every 2.5 ms (frame f is centred on sample f·hop)."""
    hop = max(1, round(_HOP * sample_rate))
    power = np.convolve(samples.astype(np.float64) ** 2, np.ones(2 * hop) / (2 * hop), mode="same")
    return 10 * np.log10(power[::hop] + 1e-10), hop


def _move_releases(spans: list[list], samples: np.ndarray, sample_rate: int) -> None:
    """Move consonant→vowel boundaries back to the step up in energy where the vowel starts."""
    level, hop = _energy_db(samples, sample_rate)
    for k in range(1, len(spans)):
        label, start, end = spans[k][0], spans[k][1], spans[k][2]
        prev = spans[k - 1]
        if label not in VOWELS or prev[0] not in _LATE_RELEASE or prev[2] != start:
            continue
        lo = (prev[1] + (start - prev[1]) // 4) // hop
        hi = min(end, start + round(0.04 * sample_rate)) // hop
        step = _step_up(level[lo:hi + 1], min_frames=2, min_rise=6.0)
        if step is None:
            continue
        boundary = round((lo + step - 0.5) * hop)
        if prev[1] < boundary < start:
            prev[2] = spans[k][1] = boundary


def _step_up(x: np.ndarray, min_frames: int, min_rise: float) -> int | None:
    """Index of the first high frame of the best two-level (low, then high) fit of ``x``."""
    n = len(x)
    if n < 2 * min_frames:
        return None
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    cut = np.arange(min_frames, n - min_frames + 1)
    left_mean = c1[cut] / cut
    right_mean = (c1[n] - c1[cut]) / (n - cut)
    sse = (c2[cut] - c1[cut] * left_mean) + (c2[n] - c2[cut] - (c1[n] - c1[cut]) * right_mean)
    sse[right_mean - left_mean < min_rise] = np.inf
    best = int(np.argmin(sse))
    return None if not np.isfinite(sse[best]) else int(cut[best])


# --- grapheme to phoneme -----------------------------------------------------------------------

_WORD = re.compile(r"[\w'’\-]+")
_IPA_NOISE = re.compile(r"[ˈˌ\-\s]")


def _words(text: str) -> list[str]:
    """The words of ``text``: runs of letters, digits, apostrophes and hyphens, trimmed."""
    out = []
    for token in _WORD.findall(text):
        token = token.strip("'’-_")
        if token and any(ch.isalnum() for ch in token):
            out.append(token)
    return out


def espeak_phonemes(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """espeak-ng's IPA for ``text`` clause by clause, ``[(source, phonemes), …]``: phonemes
    separated by ``_`` (a diphthong or affricate is one phoneme), words by spaces, stress marks
    on the phoneme they stress. ``source`` is the stretch of text espeak-ng read for the clause."""
    with _LOCK:
        engine = _espeak()
        engine.select(voice)
        return engine.clauses(text, _PHONEMES_SEPARATED)


def text_to_ipa(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """espeak-ng's pronunciation of each word of ``text``: ``[(word, ipa), …]``, one per word, in order.

    Words are the runs of letters, digits, apostrophes and hyphens of ``text`` (punctuation
    around them removed), exactly as written. The IPA carries espeak-ng's stress marks (ˈ ˌ) and
    length marks; feed it to :func:`~studio.audio.phones.ipa_to_arpabet`.

    How words are split: espeak-ng transcribes a clause at a time, in context (French liaison,
    English weak forms), and separates its words by spaces, but its words are not always the
    text's: it joins some pairs (English "of the" → ``ʌvðə``) and speaks numbers and some
    abbreviations as several words (``42`` → ``fˈɔːɹɾi tˈuː``). Each clause's words are therefore
    matched to the text's by dynamic programming against every word's pronunciation on its own:
    one-to-one where they agree, a joined pair is cut where its halves best match the two words'
    own pronunciations, a word spoken as several keeps them joined by a space, and a word
    espeak-ng left out of its clause gets its own pronunciation. A word with nothing to say
    (rare: a lone symbol espeak-ng skips) has ``""``.
    """
    if not text or not text.strip():
        return []
    out: list[tuple[str, str]] = []
    with _LOCK:
        engine = _espeak()
        engine.select(voice)
        for source, phonemes in _clause_sources(engine, text):
            words = _words(source)
            spoken = phonemes.split()
            if not words:
                continue
            alone = [[p for _, ph in engine.clauses(w, _PHONEMES_IPA) for p in ph.split()] for w in words]
            out.extend(zip(words, _match_words(alone, spoken)))
    return out


def _clause_sources(engine: _Espeak, text: str) -> list[tuple[str, str]]:
    """``(clause text, IPA)`` per clause; espeak-ng reads one character past a clause, so each
    boundary is moved back to the start of the word it falls in."""
    clauses = engine.clauses(text, _PHONEMES_IPA)
    out = []
    begin = 0
    consumed = 0
    for k, (source, phonemes) in enumerate(clauses):
        consumed += len(source)
        end = len(text) if k == len(clauses) - 1 else min(consumed, len(text))
        while end > begin and _WORD.match(text[end - 1]):
            end -= 1
        if k == len(clauses) - 1:
            end = len(text)
        out.append((text[begin:end], phonemes))
        begin = end
    return out


def _ipa_distance(a: str, b: str) -> float:
    """0 for the same phonemes (stress and spacing ignored) … 1 for nothing in common."""
    a, b = _IPA_NOISE.sub("", a), _IPA_NOISE.sub("", b)
    if not a and not b:
        return 0.0
    return 1.0 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _match_words(alone: list[list[str]], spoken: list[str]) -> list[str]:
    """The IPA of each word, given each word's own pronunciation and the clause's spoken words."""
    n, m = len(alone), len(spoken)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    step: list[list[tuple | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0

    def relax(i, j, i2, j2, c, how):
        if i2 <= n and j2 <= m and cost[i][j] + c < cost[i2][j2]:
            cost[i2][j2] = cost[i][j] + c
            step[i2][j2] = (i, j, how)

    for i in range(n + 1):
        for j in range(m + 1):
            if cost[i][j] == inf:
                continue
            if i < n:
                own = " ".join(alone[i])
                relax(i, j, i + 1, j, 1.0 if own else 0.0, "alone")  # not in the clause
                for k in {1, len(alone[i])} - {0}:  # one word, or as many as it says alone
                    if j + k <= m:
                        relax(i, j, i + 1, j + k, _ipa_distance(own, "".join(spoken[j:j + k])), "spoken")
                for k in (2, 3):  # k words joined into one spoken word
                    if i + k <= n and j < m:
                        joined = "".join("".join(a) for a in alone[i:i + k])
                        relax(i, j, i + k, j + 1, _ipa_distance(joined, spoken[j]) + 0.1 * (k - 1), "joined")
            if j < m:
                relax(i, j, i, j + 1, 1.0, "extra")  # a spoken word of no text word
    result: list[str] = [""] * n
    i, j = n, m
    while (i, j) != (0, 0):
        pi, pj, how = step[i][j]
        if how == "alone":
            result[pi] = " ".join(alone[pi])
        elif how == "spoken":
            result[pi] = " ".join(spoken[pj:j])
        elif how == "joined":
            result[pi:i] = _cut(spoken[pj], ["".join(a) for a in alone[pi:i]])
        i, j = pi, pj
    return result


def _cut(joined: str, parts: list[str]) -> list[str]:
    """Cut one spoken word into ``len(parts)`` pieces that best match ``parts``."""
    if len(parts) == 1:
        return [joined]
    best = None
    for p in range(1, len(joined)):
        if unicodedata.combining(joined[p]) or joined[p] in "ːˑ͜͡" or joined[p - 1] in "ˈˌ͜͡":
            continue  # never split a phoneme from its marks
        rest = _cut(joined[p:], parts[1:])
        score = _ipa_distance(joined[:p], parts[0]) + sum(_ipa_distance(r, q) for r, q in zip(rest, parts[1:]))
        if best is None or score < best[0]:
            best = (score, [joined[:p], *rest])
    return best[1] if best else [joined] + [""] * (len(parts) - 1)


# --- flite -------------------------------------------------------------------------------------

#: Voices compiled into the Debian/Ubuntu flite program (``awb_time`` only says the time).
FLITE_VOICES: tuple[str, ...] = ("slt", "kal", "kal16", "awb", "rms")


def synthesize_flite(text: str, voice: str = "slt", *, duration_stretch: float = 1.0,
                     f0_mean: float | None = None) -> Synthesis:
    """Speak ``text`` (English) with the flite program; phones from its own segment end times.

    flite prints each segment with ``-psdur`` (``pau:0.193 p:0.271 …``, end times in seconds);
    labels are lower-case ARPAbet, normalized here (``pau`` → ``SIL``, ``ax`` → ``AH``). The last
    segment is cut or stretched to the audio's end (the diphone voices ``kal``/``kal16`` write
    about 0.1 s less trailing pause than they print).

    ``duration_stretch`` > 1 speaks slower (flite's ``duration_stretch``, 0.5…2);
    ``f0_mean`` sets the mean pitch in Hz (``int_f0_target_mean``, 50…400; default: the voice's).
    """
    if not text or not text.strip():
        raise SynthesisError("cannot synthesize empty text")
    if voice not in FLITE_VOICES:
        raise SynthesisError(f"flite has no voice {voice!r} (available: {', '.join(FLITE_VOICES)})")
    if not 0.5 <= duration_stretch <= 2.0:
        raise SynthesisError(f"duration_stretch must be 0.5…2, got {duration_stretch}")
    if f0_mean is not None and not 50 <= f0_mean <= 400:
        raise SynthesisError(f"f0_mean must be 50…400 Hz, got {f0_mean}")
    program = shutil.which("flite")
    if program is None:
        raise SynthesisError("flite is not installed (no 'flite' program on PATH)")
    # flite speaks each sentence as its own utterance and restarts its printed times with each,
    # so every sentence is spoken on its own and the pieces are joined at their real lengths.
    parts = [_flite_utterance(program, sentence, voice, duration_stretch, f0_mean)
             for sentence in _sentences(" ".join(text.split()))]
    sample_rate = parts[0][1]
    samples = np.concatenate([p[0] for p in parts])
    phones: list[Phone] = []
    starts: list[tuple[str, float]] = []
    offset = 0.0
    for part_samples, rate, part_phones, part_starts in parts:
        phones += [Phone(ph.label, ph.start + offset, ph.end + offset, ph.stress) for ph in part_phones]
        starts += [(label, start + offset) for label, start in part_starts]
        offset += len(part_samples) / rate
    phones = merge_silences(phones)
    validate_phones(phones, f"flite phones of {text!r}")
    return Synthesis(samples, int(sample_rate), phones, text, voice, "flite", starts)


def _sentences(text: str) -> list[str]:
    """Sentences as flite's tokenizer ends them (after . ! ? followed by space), never empty."""
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text)]
    return [p for p in pieces if p] or [text]


def _flite_utterance(program: str, text: str, voice: str, duration_stretch: float, f0_mean: float | None):
    """One flite utterance: samples, rate, phones and segment starts; an error if flite split it."""
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        txt = Path(tmp) / "in.txt"
        txt.write_text(text + "\n", encoding="utf-8")
        try:
            command = [program, "-voice", voice, "-psdur", "--setf", f"duration_stretch={duration_stretch:g}"]
            if f0_mean is not None:
                command += ["--setf", f"int_f0_target_mean={f0_mean:g}"]
            done = subprocess.run([*command, "-f", str(txt), "-o", str(wav)],
                                  check=False, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"flite took longer than 120 s on {text[:40]!r}") from None
        if done.returncode != 0 or not wav.exists():
            raise SynthesisError(f"flite failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
        samples, sample_rate = sf.read(str(wav), dtype="float32", always_2d=True)
    if len([line for line in done.stdout.splitlines() if line.strip()]) > 1:
        raise SynthesisError(f"flite split {text[:60]!r} into several utterances; their phone times restart "
                             "and cannot be joined exactly: give it one sentence at a time")
    samples = samples.mean(axis=1).astype(np.float32)
    events = _parse_psdur(done.stdout)
    phones = _flite_phones(events, len(samples) / sample_rate)
    starts = [(label, a) for (label, _), a in zip(events, [0.0] + [e for _, e in events[:-1]])]
    return samples, int(sample_rate), phones, starts


def _parse_psdur(output: str) -> list[tuple[str, float]]:
    """``[(label, end_s), …]`` from flite's ``-psdur`` line(s)."""
    events = []
    for token in output.split():
        label, sep, end = token.rpartition(":")
        if not sep:
            continue
        try:
            events.append((label, float(end)))
        except ValueError:
            continue
    if not events:
        raise SynthesisError(f"flite printed no segments: {output.strip()[:200]!r}")
    return events


def _flite_phones(events: list[tuple[str, float]], duration: float) -> list[Phone]:
    phones = []
    start = 0.0
    for k, (label, end) in enumerate(events):
        if k == len(events) - 1:
            end = duration
        end = min(end, duration)
        if end <= start:
            continue
        try:
            arpabet = normalize_label(label)
        except ValueError as exc:
            raise SynthesisError(f"flite segment {label!r}: {exc}") from None
        phones.append(Phone(arpabet, start, end, 0))
        start = end
    if phones and phones[-1].end < duration:
        last = phones[-1]
        phones[-1] = Phone(last.label, last.start, duration, last.stress)
    return merge_silences(phones)


# --- festival ----------------------------------------------------------------------------------

#: Where festival looks for voices (its ``voice-path``): ``<dir>/<language>/<voice>/festvox/<voice>.scm``.
FESTIVAL_VOICE_DIRS: tuple[Path, ...] = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"),
                                         Path("/usr/local/share/festival/voices"))
#: Language folders of festival's voice path that hold English voices.
_FESTIVAL_ENGLISH_DIRS = frozenset({"english", "us", "british", "american", "uk"})

#: Festival's English phone sets → ARPAbet, one entry per phone (a phone mapped to two ARPAbet
#: phones splits its span evenly). ``radio`` is the American set (CMU lexicon: ``kal_diphone``,
#: ``ked_diphone``, the CMU ARCTIC HTS and clunits voices): ARPAbet in lower case plus TIMIT's
#: reduced and syllabic phones. ``mrpa`` is the British set (OALD lexicon: ``rab_diphone``,
#: ``don_diphone``); its vowels are mapped by what the lips do, as :func:`ipa_to_arpabet` maps
#: the same IPA vowels (``o`` = LOT /ɒ/ → AO, ``uh`` = STRUT /ʌ/ → AH, ``@@`` = NURSE → ER, the
#: centring diphthongs to two phones).
#:
#: ======  =================================================================================
#: radio   aa ae ah ao aw ay eh er ey ih iy ow oy uh uw, b ch d dh f g hh jh k l m n ng p r s sh
#:         t th v w y z zh: the same ARPAbet phone; ax → AH, axr → ER, dx (flap) → D,
#:         nx → N, el → L, em → M, en → N, hv → HH; pau, h#, brth → SIL
#: mrpa    uh → AH, e → EH, a → AE, o → AO, i → IH, u → UH, ii → IY, uu → UW, oo → AO, aa → AA,
#:         @@ → ER, @ → AH, ai → AY, ei → EY, oi → OY, ou → OW, au → AW, i@ → IH AH,
#:         e@ → EH AH, u@ → UH AH, h → HH, consonants as in ARPAbet; # → SIL
#: ======  =================================================================================
FESTIVAL_PHONE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "radio": {
        **{p.lower(): (p,) for p in ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                                     "UH", "UW", "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N",
                                     "NG", "P", "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH")},
        "ax": ("AH",), "axr": ("ER",), "dx": ("D",), "nx": ("N",), "el": ("L",), "em": ("M",), "en": ("N",),
        "hv": ("HH",), "pau": (SILENCE,), "h#": (SILENCE,), "brth": (SILENCE,),
    },
    "mrpa": {
        "uh": ("AH",), "e": ("EH",), "a": ("AE",), "o": ("AO",), "i": ("IH",), "u": ("UH",), "ii": ("IY",),
        "uu": ("UW",), "oo": ("AO",), "aa": ("AA",), "@@": ("ER",), "@": ("AH",), "ai": ("AY",), "ei": ("EY",),
        "oi": ("OY",), "ou": ("OW",), "au": ("AW",), "i@": ("IH", "AH"), "e@": ("EH", "AH"), "u@": ("UH", "AH"),
        **{p.lower(): (p,) for p in ("P", "T", "K", "B", "D", "G", "S", "Z", "SH", "ZH", "F", "V", "TH", "DH",
                                     "CH", "JH", "M", "N", "NG", "L", "Y", "R", "W")},
        "h": ("HH",), "#": (SILENCE,),
    },
}
assert all(p in PHONES for table in FESTIVAL_PHONE_SETS.values() for phones in table.values() for p in phones)

#: festival's waveform methods whose timing follows ``Duration_Stretch`` (the diphone voices'); HTS
#: voices take the engine's speed (``-r``) instead. ``f0_mean`` works for the diphone ones, whose
#: F0 contour is built from linear-regression targets (``int_lr_params``).
_FESTIVAL_STRETCH_METHODS = ("UniSyn", "Diphone_Synthesize")
_FESTIVAL_F0_METHODS = ("UniSyn", "Diphone_Synthesize")
_FESTIVAL_TIMEOUT_S = 120


def festival_voices() -> tuple[str, ...]:
    """The English festival voices installed here (``kal_diphone``, ``cmu_us_slt_arctic_hts``, …), sorted;
    empty without the ``festival`` program. Found as festival finds them: a voice is a folder
    ``<voice dir>/<language>/<voice>/festvox/<voice>.scm`` of :data:`FESTIVAL_VOICE_DIRS`."""
    if shutil.which("festival") is None:
        return ()
    found = set()
    for root in FESTIVAL_VOICE_DIRS:
        for language in _FESTIVAL_ENGLISH_DIRS:
            folder = root / language
            if folder.is_dir():
                found |= {v.name for v in folder.iterdir() if (v / "festvox" / f"{v.name}.scm").is_file()}
    return tuple(sorted(found))


#: The English festival voices installed when this module was imported (:func:`festival_voices`):
#: with the Debian/Ubuntu packages festvox-kallpc16k, festvox-kdlpc16k and festvox-us-slt-hts,
#: ``cmu_us_slt_arctic_hts``, ``kal_diphone``, ``ked_diphone``.
FESTIVAL_VOICES: tuple[str, ...] = festival_voices()


@dataclass(frozen=True)
class FestivalVoice:
    """What a festival voice is: its phone set (a key of :data:`FESTIVAL_PHONE_SETS`), its waveform
    method (``UniSyn``/``Diphone_Synthesize`` for diphone voices, ``HTS``, ``Clunits``) and its mean
    F0 in Hz where ``f0_mean`` can change it (``None``: the voice's pitch is fixed)."""

    name: str
    phone_set: str
    method: str
    f0_mean: float | None


@functools.cache
def festival_voice(voice: str) -> FestivalVoice:
    """The :class:`FestivalVoice` of an installed voice (festival is asked once per voice)."""
    info = _festival_report(_run_festival(voice, ""))
    f0 = info.get("f0", "nil")
    return FestivalVoice(voice, info["phoneset"], info["method"], None if f0 == "nil" else float(f0))


def synthesize_festival(text: str, voice: str = "kal_diphone", *, duration_stretch: float = 1.0,
                        f0_mean: float | None = None) -> Synthesis:
    """Speak ``text`` (English) with a festival voice; phones from festival's own Segment relation.

    festival runs in batch mode on a small Scheme script that selects ``voice``, synthesizes the
    whole text as one utterance (so the segment times run on across its sentences, unlike
    flite's), saves the wave and prints every segment's name, end time and syllable stress. The
    times are the synthesis's own: a diphone voice (``kal_diphone``, ``ked_diphone``) places its
    diphones at the segment times it was given, an HTS voice (``cmu_us_slt_arctic_hts``) writes back
    the durations its engine generated (whole 5 ms frames). Labels are mapped with
    :data:`FESTIVAL_PHONE_SETS` for the voice's phone set; vowels keep festival's stress (0 or 1).
    The last segment is cut or stretched to the audio's end (diphone voices write up to ~30 ms
    more trailing pause than they print). The times are used as festival gives them: measured on
    the English sentence bank, every P after a vowel holds its closure (30 dB below the loud
    frames), which starts 14…27 ms (median per voice, at most ~50 ms) after the P's start, as a
    vowel's last pitch periods ring on (flite's ``slt``: 23 ms).

    ``duration_stretch`` > 1 speaks slower (0.5…2: festival's ``Duration_Stretch`` on top of the
    voice's own, or the HTS engine's speed ``1 / duration_stretch``). ``f0_mean`` sets the mean
    pitch in Hz (50…400) of a voice that has F0 targets (the diphone voices: their standard
    deviation is scaled with it); other voices (HTS) raise :class:`SynthesisError` for it. Samples are
    at the voice's own rate (16 kHz for the diphone voices, 32 kHz for ``cmu_us_slt_arctic_hts``).
    """
    if not text or not text.strip():
        raise SynthesisError("cannot synthesize empty text")
    if not 0.5 <= duration_stretch <= 2.0:
        raise SynthesisError(f"duration_stretch must be 0.5…2, got {duration_stretch}")
    if f0_mean is not None and not 50 <= f0_mean <= 400:
        raise SynthesisError(f"f0_mean must be 50…400 Hz, got {f0_mean}")
    spoken = _festival_text(text)
    if not spoken.strip():
        raise SynthesisError(f"festival cannot speak {text[:40]!r}: no English letters")
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        wav = Path(tmp) / "out.wav"
        stdout = _run_festival(voice, _festival_script(spoken, wav, duration_stretch, f0_mean))
        if not wav.exists():
            raise SynthesisError(f"festival wrote no audio for {text[:40]!r} with {voice}")
        samples, sample_rate = sf.read(str(wav), dtype="float32", always_2d=True)
    info = _festival_report(stdout)
    if "refused" in info:
        raise SynthesisError(f"festival voice {voice!r} ({info.get('method')}) {info['refused']}")
    table = FESTIVAL_PHONE_SETS.get(info.get("phoneset", ""))
    if table is None:
        raise SynthesisError(f"festival voice {voice!r} uses the phone set {info.get('phoneset')!r}, "
                             f"which has no ARPAbet table (known: {', '.join(FESTIVAL_PHONE_SETS)})")
    segments = []
    for line in stdout.splitlines():
        if line.startswith("SEG "):
            _, name, end, stress = line.split()
            segments.append((name, float(end), int(stress) if stress.isdigit() else 0))
    if not segments:
        raise SynthesisError(f"festival printed no segments for {text[:40]!r} with {voice}")
    samples = samples.mean(axis=1).astype(np.float32)
    phones = _festival_phones(segments, len(samples) / sample_rate, table, voice)
    starts = [(name, a) for (name, _, _), a in zip(segments, [0.0] + [end for _, end, _ in segments[:-1]])]
    validate_phones(phones, f"festival phones of {text!r}")
    return Synthesis(samples, int(sample_rate), phones, text, voice, "festival", starts)


def _festival_script(text: str, wav: Path, duration_stretch: float, f0_mean: float | None) -> str:
    """The Scheme that follows the voice's selection: speed, pitch, synthesis of ``text`` as one
    utterance, the wave saved to ``wav``, and a ``SEG name end stress`` line per segment (stress:
    the syllable's, for vowels; 0 for the others). A setting the voice cannot take prints
    ``STUDIO refused …``."""
    stretch_methods = _scheme_list(_FESTIVAL_STRETCH_METHODS)
    f0_methods = _scheme_list(_FESTIVAL_F0_METHODS)
    return f"""
(set! studio::method (Parameter.get 'Synth_Method))
(set! studio::stretch {float(duration_stretch)!r})
(set! studio::f0 {"nil" if f0_mean is None else repr(float(f0_mean))})
(if (not (equal? studio::stretch 1.0))
    (cond
     ((string-equal studio::method "HTS")
      (set! hts_engine_params (cons (list "-r" (/ 1.0 studio::stretch)) hts_engine_params)))
     ((member_string studio::method {stretch_methods})
      (Parameter.set 'Duration_Stretch (* studio::stretch (or (Parameter.get 'Duration_Stretch) 1.0))))
     (t (format t "STUDIO refused cannot change its speed\\n"))))
(if studio::f0
    (if (member_string studio::method {f0_methods})
        (let ((mean (car (cdr (assq 'target_f0_mean int_lr_params))))
              (std (car (cdr (assq 'target_f0_std int_lr_params)))))
          (set! int_lr_params
                (list (list 'target_f0_mean studio::f0) (list 'target_f0_std (* std (/ studio::f0 mean)))
                      (assq 'model_f0_mean int_lr_params) (assq 'model_f0_std int_lr_params))))
        (format t "STUDIO refused has no pitch control (f0_mean)\\n")))
(set! studio::utt (Utterance Text {_scheme_string(text)}))
(utt.synth studio::utt)
(utt.save.wave studio::utt {_scheme_string(str(wav))} 'riff)
(mapcar
 (lambda (s)
   (format t "SEG %s %f %s\\n" (item.name s) (item.feat s "end")
           (if (string-equal (item.feat s "ph_vc") "+") (item.feat s "R:SylStructure.parent.stress") 0)))
 (utt.relation.items studio::utt 'Segment))
"""


def _run_festival(voice: str, script: str) -> str:
    """Run festival on ``(voice_<voice>)``, a report of the voice, then ``script``; its stdout."""
    installed = festival_voices()
    if voice not in installed:
        if shutil.which("festival") is None:
            raise SynthesisError("festival is not installed (no 'festival' program on PATH)")
        raise SynthesisError(f"festival has no English voice {voice!r} (installed: "
                             f"{', '.join(installed) or 'none; install e.g. festvox-kallpc16k'})")
    head = f"""(voice_{voice})
(format t "STUDIO phoneset %s\\n" (Param.get 'PhoneSet))
(format t "STUDIO method %s\\n" (Parameter.get 'Synth_Method))
(format t "STUDIO f0 %s\\n" (if (member_string (Parameter.get 'Synth_Method) {_scheme_list(_FESTIVAL_F0_METHODS)})
                               (car (cdr (assq 'target_f0_mean int_lr_params))) "nil"))
"""
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        path = Path(tmp) / "script.scm"
        path.write_text(head + script, encoding="ascii")
        try:
            done = subprocess.run(["festival", "--batch", str(path)], check=False, capture_output=True, text=True,
                                  timeout=_FESTIVAL_TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"festival took longer than {_FESTIVAL_TIMEOUT_S} s with {voice}") from None
    # festival exits 0 after some failures: a Scheme error or HTS segments that did not match.
    problem = next((line for line in done.stderr.splitlines() if "SIOD ERROR" in line or "mismatch" in line), None)
    if done.returncode != 0 or problem:
        raise SynthesisError(f"festival failed with {voice} (exit {done.returncode}): "
                             f"{(problem or done.stderr.strip())[:300]}")
    return done.stdout


def _festival_report(stdout: str) -> dict[str, str]:
    """``{key: value}`` of the ``STUDIO key value`` lines festival printed."""
    return dict(line.split(" ", 2)[1:] for line in stdout.splitlines() if line.startswith("STUDIO "))


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scheme_list(names: tuple[str, ...]) -> str:
    """A quoted Scheme list of strings: ``'("a" "b")``."""
    return "'(" + " ".join(_scheme_string(n) for n in names) + ")"


_ASCII_PUNCTUATION = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": ", ", "…": "..."})


def _festival_text(text: str) -> str:
    """``text`` as the ASCII festival reads: typographic punctuation replaced, accents dropped,
    other non-ASCII characters and control characters removed, whitespace collapsed."""
    plain = unicodedata.normalize("NFKD", text.translate(_ASCII_PUNCTUATION))
    plain = "".join(ch for ch in plain if ch.isascii() and (ch.isprintable() or ch.isspace()))
    return " ".join(plain.split())


def _festival_phones(segments: list[tuple[str, float, int]], duration: float,
                     table: dict[str, tuple[str, ...]], voice: str) -> list[Phone]:
    """Contiguous ARPAbet phones from festival's ``(name, end, stress)`` segments; the last one ends
    with the audio."""
    phones: list[Phone] = []
    start = 0.0
    for k, (name, end, stress) in enumerate(segments):
        end = duration if k == len(segments) - 1 else min(end, duration)
        if end <= start:
            continue
        labels = table.get(name)
        if labels is None:
            raise SynthesisError(f"festival voice {voice!r}: segment {name!r} is not in its phone set's table")
        edges = np.linspace(start, end, len(labels) + 1)
        for label, a, b in zip(labels, edges[:-1], edges[1:]):
            phones.append(Phone(label, float(a), float(b), min(stress, 2) if label in VOWELS else 0))
        start = end
    return merge_silences(phones)
