"""Speech synthesis with exact phone timings: real espeak-ng, flite and festival, checked against the waveform.

The timings are checked where the lips matter: a P/B must contain its silent closure (espeak-ng
synthesizes it before the stop's event; synth.py moves it into the stop), an M must be quieter
than the open vowel after it, and every phone sequence must tile the audio exactly.
"""

import shutil
import subprocess

import numpy as np
import pytest

from studio.audio import synth
from studio.audio.phones import BILABIALS, PHONES, SILENCE, VOWELS, ipa_to_arpabet
from studio.audio.synth import (
    FESTIVAL_PHONE_SETS,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    Synthesis,
    SynthesisError,
    espeak_variants,
    espeak_voices,
    festival_voice,
    festival_voices,
    synthesize_espeak,
    synthesize_festival,
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
    (lambda: synthesize_festival(" ", "kal_diphone"), "empty"),
    (lambda: synthesize_festival("hello", "nosuch"), "no English voice 'nosuch' \\(installed: .*kal_diphone"),
    (lambda: synthesize_festival("hello", "kal_diphone", duration_stretch=3), "duration_stretch"),
    (lambda: synthesize_festival("hello", "kal_diphone", f0_mean=20), "f0_mean"),
    (lambda: synthesize_festival("hello", "cmu_us_slt_arctic_hts", f0_mean=150), "no pitch control"),
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


# --- festival ----------------------------------------------------------------------------------

def test_festival_voices_are_the_installed_english_ones():
    """make setup installs festvox-kallpc16k, festvox-kdlpc16k and festvox-us-slt-hts."""
    assert {"kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"} <= set(FESTIVAL_VOICES)
    assert festival_voices() == FESTIVAL_VOICES
    for voice in FESTIVAL_VOICES:
        assert festival_voice(voice).phone_set in FESTIVAL_PHONE_SETS
    assert festival_voice("kal_diphone").f0_mean == 105.0  # the voice's own int_lr_params
    assert festival_voice("cmu_us_slt_arctic_hts").method == "HTS"
    assert festival_voice("cmu_us_slt_arctic_hts").f0_mean is None


@pytest.mark.parametrize("voice", FESTIVAL_VOICES)
def test_festival_phones(voice):
    s = synthesize_festival("Bob paid for the map, mama.", voice)
    assert s.synthesizer == "festival" and s.voice == voice and s.samples.dtype == np.float32
    assert s.sample_rate == (32000 if voice == "cmu_us_slt_arctic_hts" else 16000)
    assert 0.05 < np.abs(s.samples).max() <= 1.0
    _assert_tiles(s)
    spoken = [p for p in s.phones if p.label != SILENCE]
    assert [p.label for p in spoken][:5] == ["B", "AA", "B", "P", "EY"]
    assert sum(p.label in BILABIALS for p in spoken) == 7
    assert {p.stress for p in spoken if p.label in VOWELS} == {0, 1}
    assert all(p.stress == 0 for p in spoken if p.label not in VOWELS)
    assert s.events[0] == ("pau", 0.0) and s.events[1][0] == "b"


@pytest.mark.parametrize("voice", FESTIVAL_VOICES)
def test_festival_closures_follow_the_segment_times_across_sentences(voice):
    """Every P after a vowel holds its closure (30 dB below the loud frames) and the vowel before
    it is still loud in its last 15 ms — in the second sentence too: festival speaks the text as
    one utterance and its times run on (flite's restart at every sentence). Measured on the
    English sentence bank, the closure starts 14…27 ms (median; at most 48) after the P's start."""
    s = synthesize_festival("Keep a happy puppy up. I saw a mama and a papa.", voice)
    _assert_tiles(s)
    level, hop = _energy_db(s)
    loud = np.percentile(level, 95)
    pause = next(p for p in s.phones[1:-1] if p.label == SILENCE)
    assert np.median(_frames(level, hop, pause.start, pause.end)) < loud - 30, "the pause between the sentences"
    checked = []
    for before, p in zip(s.phones, s.phones[1:]):
        if p.label != "P" or before.label not in VOWELS:
            continue
        inside = _frames(level, hop, p.start, p.end)
        quiet = np.flatnonzero(inside < loud - 30)
        assert quiet.size, f"no closure inside {p}"
        assert quiet[0] * hop <= 0.05, f"the closure of {p} starts {quiet[0] * hop:.3f} s into it"
        assert _frames(level, hop, before.end - 0.015, before.end).min() > loud - 25, f"{before} ends in silence"
        checked.append(p.start > pause.start)
    assert checked == [False] * 5 + [True] * 2  # keep, happy, puppy ×2, up; papa ×2


@pytest.mark.parametrize("voice", FESTIVAL_VOICES)
def test_festival_duration_stretch(voice):
    normal = synthesize_festival("Bob paid for the map.", voice)
    slow = synthesize_festival("Bob paid for the map.", voice, duration_stretch=1.5)
    assert slow.duration == pytest.approx(1.5 * normal.duration, rel=0.1)
    assert [p.label for p in slow.phones] == [p.label for p in normal.phones]
    _assert_tiles(slow)


def test_festival_f0_mean_moves_the_pitch():
    def median_f0(s):
        x, rate = s.samples.astype(np.float64), s.sample_rate
        frame, lags = int(0.04 * rate), np.arange(rate // 400, rate // 60)
        f0 = []
        for i in range(0, len(x) - frame, frame // 2):
            w = x[i:i + frame] * np.hanning(frame)
            ac = np.correlate(w, w, "full")[frame - 1:]
            k = lags[np.argmax(ac[lags])]
            if np.sqrt(np.mean(w**2)) > 0.01 and ac[k] > 0.4 * ac[0]:
                f0.append(rate / k)
        return np.median(f0)

    text = "My mother made a big batch of plum jam."
    assert median_f0(synthesize_festival(text, "kal_diphone")) == pytest.approx(105, rel=0.1)
    assert median_f0(synthesize_festival(text, "kal_diphone", f0_mean=150)) == pytest.approx(150, rel=0.1)


def test_festival_text_is_made_ascii():
    """Typographic punctuation and accents are made ASCII; quotes and backslashes reach festival
    escaped (it reads a backslash as the word)."""
    text = "It\u2019s Bob\u2019s caf\u00e9 \u2014 \"map\" \\ mama."
    s = synthesize_festival(text, "kal_diphone")
    assert s.text == text
    assert " ".join(p.label for p in s.phones if p.label != SILENCE) == (
        "IH T S B AA B Z K AH F EY M AE P B AE K S L AE SH M AA M AH")


def test_festival_phone_set_tables():
    """The tables cover festival's own phone sets (as festival lists them); mrpa's centring
    diphthongs split their span evenly."""
    for name, table in FESTIVAL_PHONE_SETS.items():
        listed = subprocess.run(
            ["festival", "-b", f"(require '{name}_phones)", f"(PhoneSet.select '{name})",
             "(print (mapcar car (cadr (assoc 'phones (PhoneSet.description)))))"],
            capture_output=True, text=True, check=True, timeout=60).stdout
        assert set(table) == set(listed.strip().strip("()").split()), name
    phones = synth._festival_phones([("#", 0.1, 0), ("b", 0.2, 0), ("i@", 0.4, 1), ("#", 0.5, 0)], 0.6,
                                    FESTIVAL_PHONE_SETS["mrpa"], "rab_diphone")
    assert [(p.label, round(p.start, 6), round(p.end, 6), p.stress) for p in phones] == [
        ("SIL", 0.0, 0.1, 0), ("B", 0.1, 0.2, 0), ("IH", 0.2, 0.3, 1), ("AH", 0.3, 0.4, 1), ("SIL", 0.4, 0.6, 0)]
    with pytest.raises(SynthesisError, match="segment 'xx'"):
        synth._festival_phones([("xx", 0.1, 0)], 0.1, FESTIVAL_PHONE_SETS["radio"], "kal_diphone")


def test_missing_festival_program(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert festival_voices() == ()
    with pytest.raises(SynthesisError, match="festival is not installed"):
        synthesize_festival("hello", "kal_diphone")
