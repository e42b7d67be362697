"""Piper voices: exact phone spans read from the network, deterministic for a seed."""

import itertools

import numpy as np
import pytest
import soundfile as sf

from studio.audio.decode import load_audio
from studio.audio.phonemes import align_phones
from studio.audio.phones import SILENCE
from studio.audio.piper import piper_voices, synthesize_piper
from studio.audio.synth import SynthesisError

pytestmark = pytest.mark.skipif("joe" not in piper_voices(), reason="the Piper voice package is not installed")

TEXT = "Maybe the blue map belongs to Bob, but probably not."


@pytest.fixture(scope="module")
def spoken():
    return synthesize_piper(TEXT, seed=3)


def test_the_phones_are_the_words_and_cover_the_audio(spoken):
    phones = spoken.phones
    assert phones[0].start == 0.0 and phones[-1].end == pytest.approx(spoken.duration, abs=1e-6)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(phones))
    labels = [p.label for p in phones if p.label != SILENCE]
    assert labels[:8] == ["M", "EY", "B", "IY", "DH", "AH", "B", "L"]
    assert sum(label in ("P", "B", "M") for label in labels) == 12
    assert any(p.label == SILENCE and p.duration > 0.05 for p in phones[1:-1])  # the comma's pause
    assert spoken.sample_rate == 22050 and spoken.synthesizer == "piper" and np.abs(spoken.samples).max() > 0.1


def test_the_spans_agree_with_a_forced_alignment_of_the_sound(spoken, tmp_path):
    sf.write(tmp_path / "spoken.wav", spoken.samples, spoken.sample_rate)
    aligned = [p for p in align_phones(load_audio(tmp_path / "spoken.wav"), TEXT) if p.label != SILENCE]
    ours = [p for p in spoken.phones if p.label != SILENCE]
    assert [p.label for p in ours] == [p.label for p in aligned]
    starts = np.array([a.start - b.start for a, b in zip(ours, aligned)])
    assert abs(np.median(starts)) < 0.02 and np.median(np.abs(starts)) < 0.04


def test_the_seed_decides_the_sound_and_the_tempo_scales_it(spoken):
    again = synthesize_piper(TEXT, seed=3)
    assert np.array_equal(again.samples, spoken.samples) and again.phones == spoken.phones
    other = synthesize_piper(TEXT, seed=4)
    n = min(len(other.samples), len(spoken.samples))
    assert not np.array_equal(other.samples[:n], spoken.samples[:n])
    slow = synthesize_piper(TEXT, seed=3, length_scale=1.5, noise_w=0.0)
    fast = synthesize_piper(TEXT, seed=3, length_scale=0.75, noise_w=0.0)
    assert 1.6 < slow.duration / fast.duration < 2.4


@pytest.mark.parametrize("kwargs, message", [
    ({"text": "  "}, "empty text"),
    ({"voice": "nobody"}, "unknown Piper voice"),
    ({"length_scale": 9.0}, "length_scale"),
    ({"noise_w": -1.0}, "noise_w"),
])
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(SynthesisError, match=message):
        synthesize_piper(**{"text": TEXT, **kwargs})
