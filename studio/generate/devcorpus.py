"""The lip-sync dev corpus: synthetic speech in eight languages and ~70 voices, with exact phones.

``build_dev_corpus(out_dir)`` (``studio eval build-corpus``) writes, per item, a 16 kHz mono WAV,
its reference phones (``<id>.phones.json``, :func:`~studio.audio.reference.write_phones_json`)
and its transcript (``<id>.txt``), and a ``manifest.json`` listing them; ``studio eval lipsync
--corpus`` scores the generators on it. Speech comes from :mod:`studio.audio.synth`: espeak-ng in
en/de/fr/es/it/pt/nl/pl with many voice variants, and flite's English voices. Sentences come from
the bundled bank ``assets/corpus/sentences.json`` (original sentences rich in p/b/m and open
vowels).

Everything is drawn from ``numpy.random.default_rng([seed, index])``, so an item depends only on
the seed and its index: the same seed gives the same corpus, byte for byte, and a bigger corpus
starts with the smaller one. An item whose files are present and were built from the same draw
is kept, so an interrupted build resumes where it stopped.

**Held-out voices.** Voices are "speakers": an espeak-ng variant (the same timbre in every
language; the plain voice is the variant ``default``) or a flite voice. A fifth of them, chosen
by hashing the name with the seed, are *held out*: every fifth item (index 4, 9, …) speaks with
one of them and is marked ``"split": "heldout"``, the others ``"dev"``. A training corpus built
with the same seed must avoid the manifest's ``heldout_speakers``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from studio.audio.phones import SILENCE, Phone, merge_silences
from studio.audio.reference import PhoneFileError, read_phones_json, write_phones_json
from studio.audio.synth import (
    FLITE_VOICES,
    Synthesis,
    espeak_variants,
    synthesize_espeak,
    synthesize_festival,
    synthesize_flite,
)
from studio.generate.pipeline import Cancelled

__all__ = ["ESPEAK_LANGUAGES", "ESPEAK_VARIANTS", "SAMPLE_RATE", "build_dev_corpus", "load_sentences"]

SAMPLE_RATE = 16000
DEFAULT_ITEMS = 120
MANIFEST_VERSION = 1
SENTENCES = Path(__file__).resolve().parent.parent.parent / "assets" / "corpus" / "sentences.json"

#: Sentence-bank language → the espeak-ng voices (language codes) that speak it.
ESPEAK_LANGUAGES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb"), "de": ("de",), "fr": ("fr",), "es": ("es", "es-419"),
    "it": ("it",), "pt": ("pt", "pt-br"), "nl": ("nl",), "pl": ("pl",),
}
#: Weight of each language when an espeak-ng item is drawn (English: a third of the items).
LANGUAGE_WEIGHTS = {"en": 3.5, "de": 1.0, "fr": 1.0, "es": 1.0, "it": 1.0, "pt": 1.0, "nl": 1.0, "pl": 1.0}

#: espeak-ng variants used ("default" is the plain voice). Left out: whisper and whisperf
#: (whispered, unlike the voiced speech the corpus stands for), "mr serious" (a space in its
#: name), and the Klatt voices with an echo (announcer, robosoft, robosoft2, robosoft3,
#: unirobot), whose pauses cannot be found, so their stop closures would be missed.
ESPEAK_VARIANTS: tuple[str, ...] = (
    "default", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "croak", "grandma", "grandpa",
    "adam", "alicia", "andrea", "andy", "annie", "aunty", "belinda", "benjamin", "boris", "caleb",
    "david", "denis", "diogo", "ed", "edward", "gene", "gustave", "henrique", "hugo", "iven",
    "jacky", "john", "lee", "linda", "marco", "mario", "max", "michael", "michel", "miguel",
    "mike", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby",
    "steph", "storm", "travis", "victor", "zac",
)
_FLITE_SHARE = 0.2  # of the items whose split has flite voices
_HELDOUT_SHARE = 0.2


def load_sentences(path: str | os.PathLike = SENTENCES) -> dict[str, list[str]]:
    """``{language: [sentence, …]}`` of the sentence bank (keys starting with ``_`` are notes)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    bank = {lang: list(sentences) for lang, sentences in data.items() if not lang.startswith("_")}
    if not bank or not all(bank.values()):
        raise ValueError(f"{path}: no sentences")
    return bank


def build_dev_corpus(
    out_dir: str | os.PathLike,
    *,
    items: int = DEFAULT_ITEMS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> Path:
    """Build (or finish building) the corpus in ``out_dir``; return the path of ``manifest.json``.

    ``progress(done, total)`` is called after each item; when ``cancel()`` returns True the
    build stops after the items in flight and raises :class:`~studio.generate.pipeline.Cancelled`
    (the finished items stay, and the next build reuses them). ``workers`` items are synthesized
    at a time (default: up to 4). Build statistics (wall time, items built and reused, bytes)
    go to ``build.json`` beside the manifest, which itself depends only on ``items`` and ``seed``.
    """
    if items < 1:
        raise ValueError(f"items must be ≥ 1, got {items}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bank = load_sentences()
    available = set(espeak_variants()) | {"default"}
    variants = tuple(v for v in ESPEAK_VARIANTS if v in available)
    speakers = [f"espeak-ng+{v}" for v in variants] + [f"flite:{v}" for v in FLITE_VOICES]
    heldout = heldout_speakers_of(speakers, seed)
    plans = [_plan(index, seed, bank, speakers, heldout) for index in range(items)]

    stop = cancel or (lambda: False)
    entries: list[dict] = [{}] * items
    built = done = submitted = 0
    cancelled = False
    threads = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: dict = {}
        while True:
            while not cancelled and submitted < items and len(pending) < 2 * threads:
                pending[pool.submit(_make_item, out, plans[submitted])] = submitted
                submitted += 1
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                entries[index], was_built = future.result()
                built += was_built
                done += 1
                if progress:
                    progress(done, items)
            cancelled = cancelled or stop()
    if cancelled and done < items:
        raise Cancelled(f"corpus build cancelled after {done} of {items} items")

    manifest = {
        "version": MANIFEST_VERSION,
        "corpus": "lipsync-dev",
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "speakers": speakers,
        "heldout_speakers": sorted(heldout),
        "audio_seconds": round(sum(e["duration"] for e in entries), 3),
        "items": entries,
    }
    path = out / "manifest.json"
    write_json(path, manifest)
    size = sum((out / e[key]).stat().st_size for e in entries for key in ("audio", "phones", "transcript"))
    write_json(out / "build.json", {
        "seconds": round(time.perf_counter() - started, 2), "items": items, "built": built,
        "reused": items - built, "bytes": size + path.stat().st_size,
        "audio_seconds": manifest["audio_seconds"],
    })
    return path


def heldout_speakers_of(speakers: list[str], seed: int) -> set[str]:
    """The fifth of the speakers (by a seeded hash of their names) kept out of training."""
    ranked = sorted(speakers, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    espeak = [s for s in ranked if s.startswith("espeak-ng+")]
    flite = [s for s in ranked if s.startswith("flite:")]
    count = max(1, round(_HELDOUT_SHARE * len(espeak)))
    return set(espeak[:count]) | set(flite[:max(1, round(_HELDOUT_SHARE * len(flite)))])


def _plan(index: int, seed: int, bank: dict[str, list[str]], speakers: list[str],
          heldout: set[str]) -> dict:
    """Everything item ``index`` is made from, drawn from ``default_rng([seed, index])``."""
    rng = np.random.default_rng([seed, index])
    split = "heldout" if index % 5 == 4 else "dev"
    pool = [s for s in speakers if (s in heldout) == (split == "heldout")]
    flite = [s for s in pool if s.startswith("flite:")]
    espeak = [s for s in pool if s.startswith("espeak-ng+")]
    if flite and "en" in bank and rng.random() < _FLITE_SHARE:
        speaker = flite[rng.integers(len(flite))]
        voice = speaker.split(":", 1)[1]
        language, espeak_language = "en", "en-us"
        settings = {"duration_stretch": round(float(rng.uniform(0.85, 1.2)), 3)}
        synthesizer = "flite"
    else:
        speaker = espeak[rng.integers(len(espeak))]
        variant = speaker.split("+", 1)[1]
        languages = [lang for lang in LANGUAGE_WEIGHTS if lang in bank]
        weights = np.array([LANGUAGE_WEIGHTS[lang] for lang in languages])
        language = languages[rng.choice(len(languages), p=weights / weights.sum())]
        options = ESPEAK_LANGUAGES[language]
        espeak_language = options[rng.integers(len(options))]
        voice = espeak_language if variant == "default" else f"{espeak_language}+{variant}"
        settings = {
            "rate": int(rng.integers(130, 231)),
            "pitch": int(rng.integers(25, 76)),
            "pitch_range": int(rng.integers(30, 91)),
            "word_gap": int(rng.integers(1, 4)) if rng.random() < 0.2 else 0,
        }
        synthesizer = "espeak-ng"
    sentences = bank[language]
    return {
        "id": f"{index:04d}",
        "synthesizer": synthesizer,
        "speaker": speaker,
        "voice": voice,
        "language": espeak_language,
        "text": sentences[rng.integers(len(sentences))],
        "settings": settings,
        "padding": [round(float(rng.uniform(0.1, 0.4)), 3), round(float(rng.uniform(0.1, 0.4)), 3)],
        "split": split,
    }


def _make_item(out: Path, plan: dict) -> tuple[dict, bool]:
    """The manifest entry of one item, and whether it had to be built (False: reused)."""
    ident = plan["id"]
    files = {"audio": f"{ident}.wav", "phones": f"{ident}.phones.json", "transcript": f"{ident}.txt"}
    entry = {"id": ident, **files, **{k: plan[k] for k in ("synthesizer", "speaker", "voice", "language",
                                                         "split", "settings", "padding")}}
    existing = _existing_duration(out, files, plan)
    if existing is not None:
        return {**entry, "duration": existing}, False
    speech = synthesize_plan(plan)
    samples, phones = padded_16k(speech, plan["padding"])
    duration = round(len(samples) / SAMPLE_RATE, 6)
    (out / files["transcript"]).write_text(plan["text"] + "\n", encoding="utf-8")
    tmp = out / f"{ident}.tmp.wav"
    sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16")
    tmp.replace(out / files["audio"])
    # Written last: its presence (with the same plan) marks the item as complete.
    write_phones_json(phones, out / files["phones"], plan=plan, sample_rate=SAMPLE_RATE,
                      duration=duration, synthesizer=speech.synthesizer,
                      native_sample_rate=speech.sample_rate)
    return {**entry, "duration": duration}, True


def synthesize_plan(plan: dict) -> Synthesis:
    """Speaks an item's drawn plan (synthesizer, voice, text, settings); shared with the neural
    model's training corpus, which draws its items the same way (and also speaks with festival and
    Piper voices)."""
    settings = plan["settings"]
    if plan["synthesizer"] == "flite":
        return synthesize_flite(plan["text"], plan["voice"], **settings)
    if plan["synthesizer"] == "festival":
        return synthesize_festival(plan["text"], plan["voice"], **settings)
    if plan["synthesizer"] == "piper":
        from studio.audio.piper import synthesize_piper

        return synthesize_piper(plan["text"], plan["voice"], **settings)
    return synthesize_espeak(plan["text"], plan["voice"], **settings)


def padded_16k(speech: Synthesis, padding: list[float]) -> tuple[np.ndarray, list[Phone]]:
    """16 kHz samples with ``padding`` s of silence before and after; phones shifted to match."""
    rate = speech.sample_rate
    divisor = np.gcd(SAMPLE_RATE, rate)
    samples = resample_poly(speech.samples.astype(np.float64), SAMPLE_RATE // divisor, rate // divisor)
    lead, trail = (round(p * SAMPLE_RATE) for p in padding)
    samples = np.concatenate([np.zeros(lead), np.clip(samples, -1.0, 1.0), np.zeros(trail)]).astype(np.float32)
    offset = lead / SAMPLE_RATE
    end = len(samples) / SAMPLE_RATE
    spoken_end = offset + speech.phones[-1].end
    phones = [Phone(SILENCE, 0.0, offset)]
    phones += [Phone(p.label, p.start + offset, p.end + offset, p.stress) for p in speech.phones]
    phones.append(Phone(SILENCE, spoken_end, end))
    return samples, merge_silences(phones)


def _existing_duration(out: Path, files: dict[str, str], plan: dict) -> float | None:
    """Duration of an item already built from ``plan`` with all its files intact, else None."""
    paths = {key: out / name for key, name in files.items()}
    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        meta = json.loads(paths["phones"].read_text(encoding="utf-8"))
        if meta.get("plan") != plan or meta.get("sample_rate") != SAMPLE_RATE:
            return None
        phones = read_phones_json(paths["phones"])
        info = sf.info(str(paths["audio"]))
        if paths["transcript"].read_text(encoding="utf-8").strip() != plan["text"]:
            return None
    except (OSError, ValueError, PhoneFileError, RuntimeError):
        return None
    duration = info.frames / info.samplerate
    if info.samplerate != SAMPLE_RATE or info.channels != 1 or abs(phones[-1].end - duration) > 1e-3:
        return None
    return round(duration, 6)


def write_json(path: Path, data: dict) -> None:
    """Writes ``data`` as JSON through a temporary file renamed over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
