"""Speech synthesis with exact phone timings: real espeak-ng and flite, checked against the waveform.

The timings are checked where the lips matter: a P/B must contain its silent closure (espeak-ng
synthesizes it before the stop's event; synth.py moves it into the stop), an M must be quieter
than the open vowel after it, and every phone sequence must tile the audio exactly.
"""

import shutil

import numpy as np
import pytest

from studio.audio import synth
from studio.audio.phones import BILABIALS, PHONES, SILENCE, VOWELS, ipa_to_arpabet
from studio.audio.synth import (
    FLITE_VOICES,
    Synthesis,
    SynthesisError,
    espeak_variants,
    espeak_voices,
    synthesize_espeak,
    synthesize_flite,
    text_to_ipa,
)

LANGUAGES = ("en-us", "en-gb", "de", "fr", "es", "it", "pt", "nl", "pl")
SENTENCES = {
    "en-us": "Bob met my mom at the bay.",
    "en-gb": "Pam bought a map of Bombay.",
    "de": "Mama backt am Morgen Brot.",
    "fr": "Le papa de Marie porte un beau chapeau.",
    "es": "Mi mamá prepara pan.",
    "it": "La mamma prepara la pasta.",
    "pt": "O barco branco passa pela ponte.",
    "nl": "Papa parkeert bij de markt.",
    "pl": "Mama piecze babkę z makiem.",
}


def _energy_db(s: Synthesis, window=0.005):
    """Energy (dB) of ``window`` s frames, hop ``window``/2, and the hop in seconds."""
    hop = int(s.sample_rate * window / 2)
    x = s.samples.astype(np.float64)
    power = np.convolve(x * x, np.ones(2 * hop) / (2 * hop), mode="same")[::hop]
    return 10 * np.log10(power + 1e-10), hop / s.sample_rate


def _frames(level, hop, a, b):
    return level[int(np.ceil(a / hop)): max(int(np.ceil(a / hop)) + 1, int(b / hop))]


def _assert_tiles(s: Synthesis):
    """Phones ARPAbet, contiguous from 0, ending at the end of the audio (within 30 ms)."""
    assert s.phones, "no phones"
    assert s.phones[0].start == 0.0
    for a, b in zip(s.phones, s.phones[1:]):
        assert b.start == pytest.approx(a.end, abs=1e-9), (a, b)
        assert b.end > b.start
    assert abs(s.phones[-1].end - s.duration) <= 0.03
    assert all(p.label in PHONES for p in s.phones)


def test_papa_mama_phones_follow_the_waveform():
    s = synthesize_espeak("papa mama", "en-us")
    assert s.sample_rate == 22050 and s.samples.dtype == np.float32 and s.synthesizer == "espeak-ng"
    _assert_tiles(s)
    spoken = [p for p in s.phones if p.label != SILENCE]
    assert [p.label for p in spoken] == ["P", "AA", "P", "AH", "M", "AA", "M", "AH"]
    assert [p.stress for p in spoken if p.label == "AA"] == [1, 1]

    level, hop = _energy_db(s)
    loud = np.percentile(level, 95)
    for k, p in enumerate(spoken):
        inside = _frames(level, hop, p.start, p.end)
        if p.label == "P":
            # the silent closure is inside the P, not in the vowel before it
            assert inside.min() < loud - 40, f"no closure inside {p}"
            if k > 0:
                before = _frames(level, hop, spoken[k - 1].end - 0.015, spoken[k - 1].end)
                assert before.min() > loud - 30, f"the vowel before {p} ends in silence"
        if p.label == "M":
            vowel = spoken[k + 1]
            assert vowel.label in VOWELS
            assert np.median(inside) < np.median(_frames(level, hop, vowel.start, vowel.end)) - 6
            # the vowel starts with its sound: its first 10 ms are already loud
            onset = _frames(level, hop, vowel.start, vowel.start + 0.01)
            assert onset.mean() > np.median(inside) + 6


def test_stop_closures_are_given_to_the_stop():
    """Raw espeak events put a P's closure into the phone before it; the phones do not."""
    s = synthesize_espeak("a map and a pup", "en-us+f3")
    level, hop = _energy_db(s)
    loud = np.percentile(level, 95)
    events = {t for ipa, t in s.events if ipa == "p"}
    stops = [p for p in s.phones if p.label == "P"]
    assert len(stops) == len(events) == 3
    for p in stops:
        event = min(events, key=lambda t: abs(t - p.end) if t >= p.start else 1e9)
        assert p.start < event, "the closure before the burst belongs to the P"
        closure = _frames(level, hop, p.start + 0.005, event - 0.003)  # windows inside the closure
        assert closure.size and closure.max() < loud - 15  # an echo voice: quiet, not silent


@pytest.mark.parametrize("text, count", [
    ("Bob met my mom.", 6), ("Pam bought a map.", 5), ("Maybe a big boat.", 4), ("My pop ate ham.", 4),
])
def test_bilabial_count_matches_the_text(text, count):
    s = synthesize_espeak(text, "en-us")
    assert sum(p.label in BILABIALS for p in s.phones) == count


def test_event_positions_are_samples_and_milliseconds():
    """espeak_EVENT.sample counts samples from the start; audio_position is the same in ms."""
    with synth._LOCK:
        engine = synth._espeak()
        engine.select("en-us")
        raw, events, pause = engine.synthesize("Papa made a big map.".encode())
    rate = engine.sample_rate
    assert events and len(pause) == len(raw)
    samples = [sample for _, sample, _ in events]
    assert samples == sorted(samples) and samples[-1] <= len(raw)
    for _, sample, ms in events:
        assert abs(ms - sample * 1000 / rate) <= 1.0
    # the last event (end of the clause) is the end of the audio
    assert samples[-1] == pytest.approx(len(raw), abs=rate * 0.03)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_gives_phones(language):
    s = synthesize_espeak(SENTENCES[language], language)
    _assert_tiles(s)
    labels = [p.label for p in s.phones]
    assert sum(label in VOWELS for label in labels) >= 4
    assert sum(label in BILABIALS for label in labels) >= 2
    assert any(p.stress == 1 for p in s.phones)


@pytest.mark.parametrize("voice", ["en-us+klatt", "de+m7", "fr+f5", "pl+croak", "it+klatt4"])
def test_variants_and_settings(voice):
    s = synthesize_espeak("Papa made a big map.", voice, rate=220, pitch=30, pitch_range=80, word_gap=2)
    _assert_tiles(s)
    assert sum(p.label in BILABIALS for p in s.phones) >= 4


def test_rate_changes_duration_not_phones():
    slow = synthesize_espeak("Bob met my mom.", "en-us", rate=120)
    fast = synthesize_espeak("Bob met my mom.", "en-us", rate=300)
    assert slow.duration > 1.6 * fast.duration
    assert [p.label for p in slow.phones if p.label != SILENCE] == \
           [p.label for p in fast.phones if p.label != SILENCE]


def test_same_arguments_give_the_same_samples():
    a = synthesize_espeak("Maybe a big boat.", "en-us+f5")
    synthesize_espeak("Something else in between.", "en-us+f5")
    b = synthesize_espeak("Maybe a big boat.", "en-us+f5")
    assert np.array_equal(a.samples, b.samples) and a.phones == b.phones


def test_split_ipa_events_share_their_span():
    s = synthesize_espeak("pizza", "it")  # "tsː" is one espeak phoneme, T S in ARPAbet
    names = [ipa for ipa, _ in s.events]
    k = next(i for i, ipa in enumerate(names) if ipa.startswith("ts"))
    start, end = s.events[k][1], s.events[k + 1][1]
    labels = [p.label for p in s.phones]
    i = labels.index("T")
    assert labels[i + 1] == "S"
    assert s.phones[i].start <= start  # the T also gets its closure
    assert s.phones[i + 1].start == pytest.approx((start + end) / 2, abs=1.5 / s.sample_rate)
    assert s.phones[i + 1].end == pytest.approx(end, abs=1e-9)


@pytest.mark.parametrize("language", LANGUAGES)
def test_text_to_ipa_gives_one_entry_per_word(language):
    text = SENTENCES[language]
    result = text_to_ipa(text, language)
    words = [w.strip(".,;!?") for w in text.split()]
    assert [w for w, _ in result] == words
    for word, ipa in result:
        assert ipa, word
        assert ipa_to_arpabet(ipa), (word, ipa)


def test_text_to_ipa_joined_and_expanded_words():
    result = dict(text_to_ipa("Of the people, for the 42 people!", "en-us"))
    assert ipa_to_arpabet(result["Of"]) == ["AH", "V"]
    assert ipa_to_arpabet(result["the"]) == ["DH", "AH"]
    assert " " in result["42"]  # forty two: two spoken words for one written
    assert text_to_ipa("   ", "en-us") == []
    assert [w for w, _ in text_to_ipa("Le Park est grand.", "fr")] == ["Le", "Park", "est", "grand"]


def test_voice_lists():
    voices = espeak_voices()
    assert set(LANGUAGES) <= set(voices)
    variants = espeak_variants()
    assert {"m1", "m7", "f1", "f5", "klatt", "croak"} <= set(variants)


@pytest.mark.parametrize("voice", FLITE_VOICES)
def test_flite_phones(voice):
    s = synthesize_flite("Bob paid for the map, mama.", voice)
    assert s.synthesizer == "flite" and s.sample_rate == (8000 if voice == "kal" else 16000)
    _assert_tiles(s)
    spoken = [p.label for p in s.phones if p.label != SILENCE]
    assert spoken[:4] == ["B", "AA", "B", "P"]
    assert sum(label in BILABIALS for label in spoken) == 7
    assert s.events[0][0] == "pau" and s.events[0][1] == 0.0
    # the first P contains its closure: a quieter stretch than the vowel before it
    level, hop = _energy_db(s)
    first_p = next(p for p in s.phones if p.label == "P")
    assert _frames(level, hop, first_p.start, first_p.end).min() < np.percentile(level, 95) - 25


def test_flite_duration_stretch():
    normal = synthesize_flite("Bob paid for the map.", "slt")
    slow = synthesize_flite("Bob paid for the map.", "slt", duration_stretch=1.5)
    assert slow.duration > 1.3 * normal.duration
    _assert_tiles(slow)


@pytest.mark.parametrize("call, message", [
    (lambda: synthesize_espeak("", "en-us"), "empty"),
    (lambda: synthesize_espeak("hello", "xx-zz"), "no voice for language 'xx-zz'"),
    (lambda: synthesize_espeak("hello", "en-us+nosuch"), "no voice variant 'nosuch'"),
    (lambda: synthesize_espeak("hello", "en-us", rate=20), "rate"),
    (lambda: synthesize_espeak("hello", "en-us", pitch=150), "pitch"),
    (lambda: synthesize_flite("  ", "slt"), "empty"),
    (lambda: synthesize_flite("hello", "nosuch"), "no voice 'nosuch'"),
    (lambda: synthesize_flite("hello", "slt", duration_stretch=5), "duration_stretch"),
    (lambda: text_to_ipa("hello", "xx-zz"), "no voice for language"),
])
def test_clear_errors(call, message):
    with pytest.raises(SynthesisError, match=message):
        call()


def test_missing_flite_program(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SynthesisError, match="flite is not installed"):
        synthesize_flite("hello", "slt")


def test_missing_espeak_library(monkeypatch):
    def fail(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(synth.ctypes, "CDLL", fail)
    with pytest.raises(SynthesisError, match="espeak-ng is not installed"):
        synth._Espeak()


def test_flite_joins_several_sentences_at_their_real_lengths():
    """flite restarts its printed times at every sentence: each is spoken on its own and joined,
    so the second sentence's phones are its own phones shifted by the first one's length."""
    from studio.audio.synth import synthesize_flite

    both = synthesize_flite("Bob made a map. Pam met Mabel.", "slt")
    first = synthesize_flite("Bob made a map.", "slt")
    second = synthesize_flite("Pam met Mabel.", "slt")
    offset = len(first.samples) / first.sample_rate
    assert len(both.samples) == len(first.samples) + len(second.samples)
    assert both.phones[-1].end == pytest.approx(len(both.samples) / both.sample_rate)
    later = [(p.label, round(p.start, 4)) for p in both.phones if p.start >= offset - 1e-9 and p.label != "SIL"]
    alone = [(p.label, round(p.start + offset, 4)) for p in second.phones if p.label != "SIL"]
    assert later == alone
