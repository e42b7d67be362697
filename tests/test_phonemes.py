"""Phone recognition and forced alignment: real pocketsphinx on real espeak-ng speech.

espeak-ng speech comes with the exact time of every phone (studio.audio.synth), so timing is
checked against the truth: where the lips close (P/B/M) and where vowels start. Bounds are
generous multiples of what was measured (see the module docstring of studio.audio.phonemes).
"""

import difflib
import logging

import numpy as np
import pytest
from scipy.signal import resample_poly

from studio.audio import phonemes
from studio.audio.decode import Audio
from studio.audio.phones import BILABIALS, OPEN_VOWELS, SILENCE, VOWELS, Phone, ipa_to_arpabet, validate_phones
from studio.audio.phonemes import (
    AlignmentError,
    Cancelled,
    PhoneResult,
    TranscriptError,
    align_phones,
    bilabial_scores,
    phones_for,
    read_transcript,
    recognize_phones,
    transcript_words,
)
from studio.audio.synth import synthesize_espeak, text_to_ipa

BOB = "Bob met Pam by the map."
LONG_SENTENCES = (
    "Peter Piper picked a peck of pickled peppers.",
    "My mom bought a big blue boat by the pier.",
    "Maybe you should move the lamp up above the cabinet.",
    "Please bring me a cup of warm soup and some bread.",
    "The committee will meet in the main hall on Monday morning.",
    "She opened the window and a cold breeze swept through the apartment.",
    "Every morning he jogs along the beach before breakfast.",
    "The small boy climbed up the maple tree to grab his ball.",
    "Combine the butter, sugar and milk in a bowl.",
    "What time does the last bus leave for the airport tonight?",
)
PAUSE = 0.6  # s of silence around and between sentences


def _audio(samples: np.ndarray) -> Audio:
    return Audio(np.asarray(samples, np.float32), 16000, 16000, 1)


def _speak(text: str, voice: str = "en-us", rate: int = 175) -> tuple[Audio, list[Phone]]:
    """espeak-ng speech at 16 kHz with PAUSE s of silence before and after, and its true phones."""
    syn = synthesize_espeak(text, voice, rate=rate)
    samples = resample_poly(syn.samples, 16000, syn.sample_rate).astype(np.float32)
    return _padded([(samples, syn.phones)])


def _padded(pieces) -> tuple[Audio, list[Phone]]:
    """Pieces of speech joined with PAUSE s of silence around each; the true non-SIL phones."""
    gap = np.zeros(round(PAUSE * 16000), np.float32)
    parts, truth, t = [gap], [], PAUSE
    for samples, phones in pieces:
        parts += [samples, gap]
        truth += [Phone(p.label, p.start + t, p.end + t, p.stress) for p in phones if p.label != SILENCE]
        t += len(samples) / 16000 + PAUSE
    return _audio(np.concatenate(parts)), truth


def _sentences(truth: list[Phone]) -> list[tuple[float, float]]:
    """Time spans of the pieces of speech in ``truth`` (separated by pauses of PAUSE s)."""
    spans = [[truth[0].start, truth[0].end]]
    for p in truth[1:]:
        if p.start - spans[-1][1] > PAUSE / 2:
            spans.append([p.start, p.end])
        spans[-1][1] = p.end
    return [(a, b) for a, b in spans]


def _assert_covers(phones: list[Phone], audio: Audio) -> None:
    validate_phones(phones)
    assert phones[0].start == 0.0
    assert phones[-1].end == pytest.approx(audio.duration, abs=1e-6)
    for a, b in zip(phones, phones[1:]):
        assert b.start == pytest.approx(a.end, abs=1e-9)
        assert b.end > b.start
        assert not (a.label == SILENCE and b.label == SILENCE)


def _overlap(a: Phone, b: Phone) -> float:
    return min(a.end, b.end) - max(a.start, b.start)


def _bilabial_hits(found: list[Phone], truth: list[Phone]) -> tuple[int, int, list[float]]:
    """(true P/B/M with a found P/B/M overlapping, true P/B/M, onset errors of those hits)."""
    closures = [p for p in found if p.label in BILABIALS]
    true = [p for p in truth if p.label in BILABIALS]
    errors = []
    for p in true:
        near = [c for c in closures if _overlap(c, p) > 0]
        if near:
            errors.append(min(abs(c.start - p.start) for c in near))
    return len(errors), len(true), errors


def _boundary_errors(found: list[Phone], truth: list[Phone]) -> np.ndarray:
    """Start-time errors of the phones both sequences share, matched in order by label within
    each sentence (a sentence's phones differ where the dictionary and espeak-ng disagree)."""
    errors = []
    for t0, t1 in _sentences(truth):
        a = [p for p in found if p.label != SILENCE and t0 - PAUSE / 2 < p.start < t1 + PAUSE / 2]
        b = [p for p in truth if t0 <= p.start < t1]
        matcher = difflib.SequenceMatcher(None, [p.label for p in a], [p.label for p in b], autojunk=False)
        errors += [a[m.a + k].start - b[m.b + k].start
                   for m in matcher.get_matching_blocks() for k in range(m.size)]
    return np.array(errors)


@pytest.fixture(scope="module")
def bob():
    return _speak(BOB)


@pytest.fixture(scope="module")
def long_speech():
    """About 70 s: ten sentences twice, in four voices, PAUSE s apart, with the transcript."""
    voices = ("en-us", "en-gb", "en-us+f3", "en-us+m3")
    pieces, texts = [], []
    for k in range(2):
        for i, text in enumerate(LONG_SENTENCES):
            syn = synthesize_espeak(text, voices[(i + k) % len(voices)], rate=150)
            pieces.append((resample_poly(syn.samples, 16000, syn.sample_rate).astype(np.float32), syn.phones))
            texts.append(text)
    audio, truth = _padded(pieces)
    return audio, truth, " ".join(texts)


# --- recognition -------------------------------------------------------------------------------

def test_recognition_finds_the_lip_closures_in_time(bob):
    hits = total = 0
    errors = []
    for audio, truth in (bob, _speak(BOB, "en-gb")):
        found = recognize_phones(audio)
        _assert_covers(found, audio)
        h, n, e = _bilabial_hits(found, truth)
        hits, total, errors = hits + h, total + n, errors + e
        # The lips do not close in the middle of the open vowels.
        for v in (p for p in truth if p.label in OPEN_VOWELS):
            middle = Phone(v.label, v.start + 0.3 * v.duration, v.end - 0.3 * v.duration)
            assert not any(p.label in BILABIALS and _overlap(p, middle) > 0 for p in found), v
        # The silence around the sentence is silence.
        assert found[0].label == SILENCE and found[0].end >= PAUSE - 0.1
        assert found[-1].label == SILENCE and found[-1].start <= audio.duration - PAUSE + 0.1
    # Measured: 9 of the 16 P/B/M found (pocketsphinx defaults without the dither: 0), onset error
    # median 7 ms.
    assert total == 16
    assert hits >= 6
    assert np.median(errors) < 0.03


def test_recognition_of_a_long_file_runs_in_chunks_at_pauses(long_speech):
    audio, truth, _ = long_speech
    assert audio.duration > 60
    levels = phonemes._frame_rms(audio.samples)
    bounds = phonemes._chunk_bounds(levels, len(audio.samples))
    assert len(bounds) >= 3
    assert all((b - a) / 16000 <= phonemes.MAX_CHUNK_SECONDS for a, b in bounds)
    # Every cut falls in a pause between sentences.
    for _, cut in bounds[:-1]:
        t = cut / 16000
        assert not any(p.start + 0.02 < t < p.end - 0.02 for p in truth), t
    reports = []
    found = recognize_phones(audio, progress=reports.append)
    _assert_covers(found, audio)
    assert reports[0] == 0.0 and reports[-1] == 1.0
    assert all(b > a for a, b in zip(reports, reports[1:]))
    assert len(reports) >= len(bounds) + 1
    hits, total, _ = _bilabial_hits(found, truth)
    assert hits >= 0.4 * total
    # Speech where there is speech, silence in the pauses.
    speech = [p for p in found if p.label != SILENCE]
    assert sum(p.duration for p in speech) > 0.7 * sum(p.duration for p in truth)
    assert sum(p.duration for p in speech) < 1.2 * sum(p.duration for p in truth)


def test_rescoring_pass_only_turns_heard_phones_into_their_bilabial_counterparts(bob):
    audio, _ = bob
    job = phonemes._Job(audio, None, None, 1)
    pcm = job.pcm(job.chunks[0])
    loop = phonemes._decode_loop(phonemes._phone_loop(), pcm)
    chain = phonemes._chain_decoder()
    heard = [label for label, _, _ in loop.spans if label != SILENCE]
    assert any(label in phonemes.BILABIAL_ALTERNATIVE for label in heard)
    counts = []
    for prior in (1e-6, phonemes.BILABIAL_PRIOR, 1e12):
        found = phonemes._decode_chain(chain, pcm, loop.spans, prior)
        labels = [label for label, _, _ in found if label != SILENCE]
        assert len(labels) == len(heard)  # the same phones, in the same order …
        for was, now in zip(heard, labels):  # … some of them turned bilabial
            assert now == was or now == phonemes.BILABIAL_ALTERNATIVE.get(was)
        counts.append(sum(label in BILABIALS for label in labels))
    assert counts == sorted(counts) and counts[-1] > counts[0]  # a stronger prior, more closures


def test_rescoring_finds_more_lip_closures_than_the_phone_loop():
    hits = {"loop": 0, "rescored": 0}
    total = 0
    for voice in ("en-us", "en-gb", "en-us+f3", "en-us+m3"):
        audio, truth = _speak(BOB, voice)
        job = phonemes._Job(audio, None, None, 1)
        rescored = job.recognize()
        loop = [p for c in job.chunks for p in c.recognized]
        for name, found in (("loop", loop), ("rescored", rescored)):
            hits[name] += _bilabial_hits(found, truth)[0]
        total += 8
        # … and none of them in the middle of an open vowel.
        for v in (p for p in truth if p.label in OPEN_VOWELS):
            middle = Phone(v.label, v.start + 0.3 * v.duration, v.end - 0.3 * v.duration)
            assert not any(p.label in BILABIALS and _overlap(p, middle) > 0 for p in rescored), (voice, v)
    assert hits["rescored"] > hits["loop"]


def test_recognition_in_worker_processes_equals_one_process(long_speech, monkeypatch):
    audio, _, _ = long_speech
    monkeypatch.setattr(phonemes, "WORKERS", 2)
    opened = []
    real_open = phonemes._Pool.open.__func__
    monkeypatch.setattr(phonemes._Pool, "open", classmethod(lambda cls, n: opened.append(n) or real_open(cls, n)))
    in_workers = recognize_phones(audio)
    assert opened and opened[0] >= 3
    monkeypatch.setattr(phonemes, "WORKERS", 1)
    assert recognize_phones(audio) == in_workers


def test_a_broken_worker_pool_decodes_in_this_process(long_speech, monkeypatch, caplog):
    from concurrent.futures.process import BrokenProcessPool

    audio, _, text = long_speech
    monkeypatch.setattr(phonemes, "WORKERS", 1)
    expected = recognize_phones(audio)
    monkeypatch.setattr(phonemes, "WORKERS", 2)

    def broken(self, fn, *args):
        raise BrokenProcessPool("a worker died")

    monkeypatch.setattr(phonemes._Pool, "submit", broken)
    with caplog.at_level(logging.WARNING, logger="studio.audio.phonemes"):
        assert recognize_phones(audio) == expected
        assert phones_for(audio, text).method == "aligned"
    assert "decoding in this process" in caplog.text


def test_recognition_of_silence_and_tiny_audio():
    silence = _audio(np.zeros(16000 * 3))
    assert recognize_phones(silence) == [Phone(SILENCE, 0.0, 3.0)]
    quiet_noise = _audio(np.random.default_rng(0).normal(0, 1e-4, 16000).astype(np.float32))
    found = recognize_phones(quiet_noise)
    _assert_covers(found, quiet_noise)
    assert recognize_phones(_audio(np.zeros(0))) == []
    for n in (1, 100, 480, 800):
        tiny = _audio(np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32))
        found = recognize_phones(tiny)
        _assert_covers(found, tiny)


def test_recognition_resamples_other_rates(bob):
    audio, truth = bob
    at_8k = Audio(resample_poly(audio.samples, 1, 2).astype(np.float32), 8000, 8000, 1)
    found = recognize_phones(at_8k)
    assert found[-1].end == pytest.approx(audio.duration, abs=1e-3)
    assert any(p.label in BILABIALS for p in found)


def test_cancel_stops_recognition_and_alignment(long_speech):
    audio, _, text = long_speech
    calls = []

    def cancel_after_two():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        recognize_phones(audio, cancel=cancel_after_two)
    assert len(calls) == 3
    with pytest.raises(Cancelled):
        align_phones(audio, text, cancel=lambda: True)
    with pytest.raises(Cancelled):
        phones_for(audio, text, cancel=lambda: True)


# --- alignment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("voice", ["en-us", "en-gb", "en-us+f3"])
def test_alignment_places_the_transcripts_phones(voice):
    audio, truth = _speak(BOB, voice)
    found = align_phones(audio, BOB)
    _assert_covers(found, audio)
    # The CMU dictionary's phones, in order: B AA B / M EH T / P AE M / B AY / DH AH / M AE P.
    assert [p.label for p in found if p.label != SILENCE] == \
        "B AA B M EH T P AE M B AY DH AH M AE P".split()
    errors = _boundary_errors(found, truth)
    assert len(errors) >= 12  # espeak-ng en-gb says B AO B, not B AA B
    # Measured: median 5-10 ms on these voices.
    assert np.median(np.abs(errors)) < 0.03
    hits, total, onsets = _bilabial_hits(found, truth)
    assert hits == total == 8
    assert np.median(onsets) < 0.03


def test_fast_speech_aligns_at_the_higher_frame_rate():
    # At 400 words/min consonants are shorter than the 30 ms a phone needs at 100 frames/s.
    audio, truth = _speak(BOB, rate=400)
    with pytest.raises(AlignmentError):
        phonemes._Job(audio, None, None, 3, frame_rate=100).align(BOB, "en-us")
    reports = []
    found = align_phones(audio, BOB, progress=reports.append)
    _assert_covers(found, audio)
    hits, total, errors = _bilabial_hits(found, truth)
    assert total == 8 and hits >= 7
    assert np.median(errors) < 0.02
    assert reports[-1] == 1.0 and all(b > a for a, b in zip(reports, reports[1:]))


def test_alignment_carries_stress_and_spells_unknown_words_with_espeak():
    text = "About the zorblax, Bob, record 42 records."
    audio, truth = _speak(text)
    found = align_phones(audio, text)
    _assert_covers(found, audio)
    labels = [p.label for p in found if p.label != SILENCE]
    # "zorblax" is not in the CMU dictionary: espeak-ng spells it (Z OW R B L AE K S).
    zorblax = ipa_to_arpabet(text_to_ipa("zorblax")[0][1])
    assert zorblax[0] == "Z" and len(zorblax) >= 7
    assert labels[labels.index("DH") + 2:][:len(zorblax)] == zorblax
    # "42" is spoken as words, the way espeak-ng says it: forty-two.
    forty_two = ipa_to_arpabet(text_to_ipa("42")[0][1])
    assert len(forty_two) >= 6
    assert " ".join(forty_two) in " ".join(labels)
    vowels = [p for p in found if p.label in VOWELS]
    # a·BOUT: AH0 AW1
    assert (vowels[0].label, vowels[0].stress) == ("AH", 0)
    assert (vowels[1].label, vowels[1].stress) == ("AW", 1)
    assert all(p.stress == 0 for p in found if p.label not in VOWELS)
    assert any(p.stress == 1 for p in vowels[2:])
    errors = _boundary_errors(found, truth)
    assert np.median(np.abs(errors)) < 0.03


def test_alignment_of_german_with_espeak_g2p():
    text = "Guten Morgen, wie geht es dir heute?"
    audio, truth = _speak(text, "de")
    found = align_phones(audio, text, language="de")
    _assert_covers(found, audio)
    assert [p.label for p in found if p.label != SILENCE][:6] == "G UW T AH N M".split()
    assert any(p.stress == 1 for p in found)
    errors = _boundary_errors(found, truth)
    assert len(errors) >= 20
    assert np.median(np.abs(errors)) < 0.03


def test_alignment_of_a_long_file_in_chunks(long_speech):
    audio, truth, text = long_speech
    # Two words of the transcript are not the ones spoken ("bread" ends the first chunk): a few
    # wrong words are aligned anyway, without shifting the rest.
    assert text.count("bread.") == 2 and text.count("breakfast.") == 2
    text = text.replace("bread.", "cheese.", 1).replace("breakfast.", "dinner.", 1)
    reports = []
    found = align_phones(audio, text, progress=reports.append)
    _assert_covers(found, audio)
    assert reports[0] == 0.0 and reports[-1] == 1.0
    assert all(b > a for a, b in zip(reports, reports[1:]))
    errors = _boundary_errors(found, truth)
    assert len(errors) > 0.8 * len(truth)
    # Measured: median 10 ms, 90th percentile 30 ms.
    assert np.median(np.abs(errors)) < 0.03
    assert np.percentile(np.abs(errors), 90) < 0.08
    hits, total, _ = _bilabial_hits(found, truth)
    assert hits >= 0.95 * total


def test_a_long_transcript_that_skips_sentences_is_an_alignment_error(long_speech):
    audio, _, text = long_speech
    sentences = text.split(". ")
    skipping = ". ".join(sentences[:4] + sentences[7:])
    reports = []
    result = phones_for(audio, skipping, progress=reports.append)
    assert result.method == "recognized" and len(result.warnings) == 1
    # Sentences 5-7 are spoken from 14.2 s to 26 s.
    assert "speech between 0:1" in result.warnings[0] and "missing from the transcript" in result.warnings[0]
    assert reports[0] == 0.0 and reports[-1] == 1.0
    assert all(b > a for a, b in zip(reports, reports[1:]))
    _assert_covers(result.phones, audio)


def test_cancel_in_the_middle_of_an_alignment(long_speech):
    audio, _, text = long_speech
    asked = []
    with pytest.raises(Cancelled):
        align_phones(audio, text, cancel=lambda: asked.append(1) or len(asked) > 4)
    assert len(asked) == 5


def test_a_wrong_transcript_is_an_alignment_error(bob):
    audio, _ = bob
    for wrong in ("The quick brown fox jumps over the lazy dog.",
                  "Please bring me a cup of warm soup.",
                  "Bob met Pam by the map and then they walked home together slowly."):
        with pytest.raises(AlignmentError, match="transcript|alignment|words"):
            align_phones(audio, wrong)


# --- place of articulation --------------------------------------------------------------------

def test_bilabial_scores_rank_the_true_bilabials_above_other_stops(long_speech):
    """Given the true phones of clean espeak-ng speech, a p/b/m scores above a t/d/k/g/n/… far more
    often than not (0.84 of the pairs here; 0.76 over recognized phones of recordings, model card
    session 14); every other phone scores 0; the same audio and phones give the same scores."""
    audio, truth, _ = long_speech
    scores = bilabial_scores(audio, truth)
    assert scores.shape == (len(truth),) and scores.dtype == np.float64
    weighed = np.array([p.label in phonemes.PLACE_COUNTERPART for p in truth])
    assert np.all(scores[~weighed] == 0) and np.count_nonzero(scores[weighed]) >= 0.95 * weighed.sum()
    bilabial = np.array([p.label in BILABIALS for p in truth])
    high, low = scores[weighed & bilabial], scores[weighed & ~bilabial]
    assert len(high) > 100 and len(low) > 100
    assert (high[:, None] > low[None]).mean() > 0.75
    assert np.array_equal(bilabial_scores(audio, truth), scores)


def test_bilabial_scores_of_silence_no_phones_and_a_cancel(bob):
    silence = _audio(np.zeros(16000 * 2))
    phones = [Phone(SILENCE, 0.0, 0.5), Phone("P", 0.5, 0.6), Phone("AA", 0.6, 2.0)]
    assert np.array_equal(bilabial_scores(silence, phones), np.zeros(3))  # nothing to hear: all 0
    assert bilabial_scores(bob[0], []).shape == (0,)
    with pytest.raises(Cancelled):
        bilabial_scores(bob[0], bob[1], cancel=lambda: True)
    with pytest.raises(ValueError):
        bilabial_scores(bob[0], list(reversed(bob[1])))


def test_phones_for_falls_back_to_recognition_with_a_warning(bob, caplog):
    audio, truth = bob
    with caplog.at_level(logging.WARNING, logger="studio.audio.phonemes"):
        result = phones_for(audio, "The quick brown fox jumps over the lazy dog.")
    assert isinstance(result, PhoneResult)
    assert result.method == "recognized"
    assert len(result.warnings) == 1 and "transcript" in result.warnings[0]
    assert any("transcript" in r.getMessage() for r in caplog.records)
    _assert_covers(result.phones, audio)
    assert result.phones == recognize_phones(audio)

    aligned = phones_for(audio, BOB)
    assert aligned.method == "aligned" and aligned.warnings == ()
    assert aligned.phones == align_phones(audio, BOB)
    recognized = phones_for(audio)
    assert recognized.method == "recognized" and recognized.warnings == ()


def test_empty_transcripts_and_silent_audio(bob):
    audio, _ = bob
    for empty in ("", "   \n\t", "... !?"):
        with pytest.raises(AlignmentError, match="no words"):
            align_phones(audio, empty)
        result = phones_for(audio, empty)
        assert result.method == "recognized" and "no words" in result.warnings[0]
    silence = _audio(np.zeros(16000 * 2))
    with pytest.raises(AlignmentError, match="silent"):
        align_phones(silence, BOB)
    result = phones_for(silence, BOB)
    assert result.phones == [Phone(SILENCE, 0.0, 2.0)] and result.method == "recognized"
    with pytest.raises(AlignmentError, match="too short"):
        align_phones(_audio(np.zeros(800)), BOB)


def test_transcript_words():
    assert transcript_words("Hello, world! It's 42 — e-mail “quoted” _x_ ’tis") == \
        ["Hello", "world", "It's", "42", "e-mail", "quoted", "x", "tis"]


# --- transcripts -------------------------------------------------------------------------------

def test_read_transcript(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("Bob met Pam.\n", encoding="utf-8")
    assert read_transcript(plain) == "Bob met Pam.\n"
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffGrüße aus Köln".encode("utf-8"))
    assert read_transcript(bom) == "Grüße aus Köln"
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text("Bob met Pam", encoding="utf-16")
    assert read_transcript(utf16) == "Bob met Pam"
    binary = tmp_path / "audio.wav"
    binary.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00" + bytes(200))
    with pytest.raises(TranscriptError, match="audio.wav.*binary"):
        read_transcript(binary)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Grüße".encode("latin-1"))
    with pytest.raises(TranscriptError, match="latin1.txt.*UTF-8"):
        read_transcript(latin1)
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"word " * (phonemes.MAX_TRANSCRIPT_BYTES // 5 + 1))
    with pytest.raises(TranscriptError, match="huge.txt.*MB"):
        read_transcript(huge)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(TranscriptError, match="empty"):
        read_transcript(empty)
    with pytest.raises(TranscriptError, match="not found"):
        read_transcript(tmp_path / "missing.txt")
    with pytest.raises(TranscriptError, match="not a file"):
        read_transcript(tmp_path)


# --- measurement (not a test): python tests/test_phonemes.py ----------------------------------

MEASURE_SENTENCES = LONG_SENTENCES + (
    BOB,
    "The quick brown fox jumps over the lazy dog.",
    "Ambient music plays in the empty room.",
    "Barbara baked a pumpkin pie for the campers.",
    "I have never seen anything quite as beautiful as that sunset.",
    "Remember to bring an umbrella, it might rain later.",
)
MEASURE_VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb-scotland", "en-us-nyc", "en-029",
                  "en-gb-x-rp+f2", "flite:slt", "flite:awb", "flite:rms", "flite:kal16")


def _measure_corpus():
    """(voice, text, audio, true phones) for every sentence and voice (two rates for espeak-ng)."""
    from studio.audio.synth import SynthesisError, synthesize_flite

    out = []
    for voice in MEASURE_VOICES:
        for rate in ((175,) if voice.startswith("flite:") else (150, 200)):
            for text in MEASURE_SENTENCES:
                try:
                    syn = (synthesize_flite(text, voice[6:]) if voice.startswith("flite:")
                           else synthesize_espeak(text, voice, rate=rate))
                except SynthesisError:
                    continue
                samples = resample_poly(syn.samples, 16000, syn.sample_rate).astype(np.float32)
                audio, truth = _padded([(samples, syn.phones)])
                out.append((voice, text, audio, truth))
    return out


def _measure(corpus, find):
    """Lip-sync accuracy of ``find(audio, text) -> phones`` over the corpus, and its RTF."""
    import time

    hits = total = opened = closed = 0
    onsets, vowel_onsets, boundaries = [], [], []
    seconds = duration = 0.0
    for _, text, audio, truth in corpus:
        t0 = time.perf_counter()
        found = find(audio, text)
        seconds += time.perf_counter() - t0
        duration += audio.duration
        h, n, errors = _bilabial_hits(found, truth)
        hits, total, onsets = hits + h, total + n, onsets + errors
        for v in (p for p in truth if p.label in OPEN_VOWELS):
            middle = Phone(v.label, v.start + 0.25 * v.duration, v.end - 0.25 * v.duration)
            opened += 1
            closed += any(p.label in BILABIALS and _overlap(p, middle) > 0 for p in found)
        found_vowels = [p for p in found if p.label in VOWELS]
        for v in (p for p in truth if p.label in VOWELS):
            near = [p for p in found_vowels if _overlap(p, v) > 0]
            if near:
                vowel_onsets.append(min(abs(p.start - v.start) for p in near))
        boundaries += list(_boundary_errors(found, truth))
    return (f"P/B/M found {hits / total:.3f} | false closure in open vowels {closed / opened:.3f} | "
            f"onset error median: P/B/M {1000 * np.median(onsets):.1f} ms, vowels "
            f"{1000 * np.median(vowel_onsets):.1f} ms, matched phones "
            f"{1000 * np.median(np.abs(boundaries)):.1f} ms (bias {1000 * np.median(boundaries):+.1f}) | "
            f"RTF {seconds / duration:.3f}")


def _measure_rtf(repeats=3):
    """Median seconds per second of audio on about 60 s of speech (recognition, alignment)."""
    import time

    pieces, texts = [], []
    for i, text in enumerate(LONG_SENTENCES * 2):
        syn = synthesize_espeak(text, ("en-us", "en-gb", "en-us+f3")[i % 3], rate=160)
        pieces.append((resample_poly(syn.samples, 16000, syn.sample_rate).astype(np.float32), syn.phones))
        texts.append(text)
    audio, _ = _padded(pieces)
    text = " ".join(texts)
    for name, run in (("recognize_phones", lambda: recognize_phones(audio)),
                      ("align_phones", lambda: align_phones(audio, text))):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        median = float(np.median(times))
        print(f"{name} on {audio.duration:.1f} s: median {median:.2f} s, RTF {median / audio.duration:.3f}")


if __name__ == "__main__":
    corpus = _measure_corpus()
    seconds = sum(audio.duration for _, _, audio, _ in corpus)
    print(f"{len(corpus)} utterances, {seconds:.0f} s, voices: {', '.join(MEASURE_VOICES)}")
    chosen = dict(phonemes.RECOGNIZER_CONFIG), phonemes.DITHER_DB
    for label, config, dither in (("pocketsphinx defaults (lw 6.5), no dither", {}, None),
                                  ("lw 6.5, dither", {}, chosen[1]),
                                  ("lw 2, dither", {"lw": 2.0}, chosen[1]),
                                  (f"chosen {chosen[0]}, dither {chosen[1]:g} dB", chosen[0], chosen[1])):
        phonemes.RECOGNIZER_CONFIG = config
        phonemes.DITHER_DB = -300.0 if dither is None else dither
        print(f"recognition, {label}: {_measure(corpus, lambda audio, text: recognize_phones(audio))}")
    phonemes.RECOGNIZER_CONFIG, phonemes.DITHER_DB = chosen
    rejected = []
    voice_of = {id(audio): voice for voice, _, audio, _ in corpus}

    def align(audio, text):
        try:
            return align_phones(audio, text)
        except AlignmentError as exc:
            rejected.append(f"{voice_of[id(audio)]} {text!r}: {exc}")
            return recognize_phones(audio)

    print(f"alignment: {_measure(corpus, align)}; {len(rejected)} of {len(corpus)} correct transcripts "
          "rejected" + "".join(f"\n    {r}" for r in rejected))
    accepted = []
    for k, (voice, text, audio, _) in enumerate(corpus):
        other = MEASURE_SENTENCES[(MEASURE_SENTENCES.index(text) + 1 + k % 5) % len(MEASURE_SENTENCES)]
        try:
            align_phones(audio, other)
            accepted.append(f"{voice} {text!r} as {other!r}")
        except AlignmentError:
            pass
    print(f"wrong transcripts (another sentence): {len(corpus) - len(accepted)} of {len(corpus)} rejected"
          + "".join(f"\n    accepted: {a}" for a in accepted))
    _measure_rtf()
