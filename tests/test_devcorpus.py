"""The lip-sync dev corpus builder: real synthesis, deterministic per seed, resumable, held-out voices."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from studio.audio.phones import SILENCE
from studio.audio.reference import read_reference
from studio.generate.devcorpus import SENTENCES, build_dev_corpus, load_sentences
from studio.generate.pipeline import Cancelled

ITEMS = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    calls = []
    manifest = build_dev_corpus(out, items=ITEMS, seed=0, progress=lambda done, total: calls.append((done, total)))
    return out, manifest, calls


def _mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name[0].isdigit()}


def test_items_are_complete_and_consistent(corpus):
    out, manifest, calls = corpus
    data = json.loads(manifest.read_text(encoding="utf-8"))
    assert data["seed"] == 0 and data["sample_rate"] == 16000 and len(data["items"]) == ITEMS
    assert calls[-1] == (ITEMS, ITEMS) and len(calls) == ITEMS
    bank = load_sentences()
    for entry in data["items"]:
        info = sf.info(str(out / entry["audio"]))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.frames / 16000 == pytest.approx(entry["duration"], abs=1e-6)
        phones = read_reference(out / entry["phones"])
        assert phones[0].start == 0 and phones[-1].end == pytest.approx(entry["duration"], abs=1e-3)
        assert phones[0].label == SILENCE and phones[0].end >= entry["padding"][0] - 1e-6
        assert phones[-1].label == SILENCE
        text = (out / entry["transcript"]).read_text(encoding="utf-8").strip()
        assert any(text in sentences for sentences in bank.values())
        assert entry["synthesizer"] in ("espeak-ng", "flite")
        # the audio is silent where the padding is, and speech is where the phones say
        samples, _ = sf.read(str(out / entry["audio"]), dtype="float32")
        lead = round(entry["padding"][0] * 16000)
        assert np.abs(samples[:lead]).max() == 0 and np.abs(samples).max() > 0.05
    build = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert build["built"] + build["reused"] == ITEMS and build["bytes"] > 0


def test_heldout_voices(corpus):
    _, manifest, _ = corpus
    data = json.loads(manifest.read_text(encoding="utf-8"))
    heldout = set(data["heldout_speakers"])
    assert heldout and heldout < set(data["speakers"])
    for index, entry in enumerate(data["items"]):
        assert entry["split"] == ("heldout" if index % 5 == 4 else "dev")
        assert (entry["speaker"] in heldout) == (entry["split"] == "heldout")


def test_same_seed_same_corpus_and_resume(corpus, tmp_path):
    out, manifest, _ = corpus
    before = _mtimes(out)
    again = build_dev_corpus(out, items=ITEMS, seed=0)
    assert again.read_bytes() == manifest.read_bytes()
    assert _mtimes(out) == before  # nothing rebuilt
    assert json.loads((out / "build.json").read_text(encoding="utf-8"))["reused"] == ITEMS
    # a fresh directory gives byte-identical audio and phones
    fresh = build_dev_corpus(tmp_path / "fresh", items=4, seed=0)
    first = json.loads(fresh.read_text(encoding="utf-8"))["items"]
    assert first == json.loads(manifest.read_text(encoding="utf-8"))["items"][:4]
    for entry in first:
        for key in ("audio", "phones", "transcript"):
            assert (tmp_path / "fresh" / entry[key]).read_bytes() == (out / entry[key]).read_bytes()


def test_other_seed_other_corpus(corpus, tmp_path):
    _, manifest, _ = corpus
    other = build_dev_corpus(tmp_path / "seed1", items=4, seed=1)
    a = json.loads(manifest.read_text(encoding="utf-8"))
    b = json.loads(other.read_text(encoding="utf-8"))
    assert [e["voice"] for e in a["items"][:4]] != [e["voice"] for e in b["items"]]
    assert a["heldout_speakers"] != b["heldout_speakers"]


def test_damaged_items_are_rebuilt(tmp_path):
    out = tmp_path / "c"
    manifest = build_dev_corpus(out, items=3, seed=2)
    original = manifest.read_bytes()
    entries = json.loads(original)["items"]
    (out / entries[0]["audio"]).unlink()
    (out / entries[1]["phones"]).write_text("{broken", encoding="utf-8")
    build_dev_corpus(out, items=3, seed=2)
    build = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert (build["built"], build["reused"]) == (2, 1)
    assert manifest.read_bytes() == original


def test_cancel_keeps_finished_items(tmp_path):
    out = tmp_path / "c"
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        build_dev_corpus(out, items=12, seed=3, cancel=cancel, workers=1)
    assert not (out / "manifest.json").exists()
    finished = len(list(out.glob("*.phones.json")))
    assert 1 <= finished < 12
    build_dev_corpus(out, items=12, seed=3, workers=2)
    build = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert build["reused"] == finished and build["built"] == 12 - finished


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="items"):
        build_dev_corpus(tmp_path, items=0)


def test_sentence_bank():
    bank = load_sentences()
    assert set(bank) >= {"en", "de", "fr", "es", "it", "pt", "nl", "pl"}
    assert len(bank["en"]) >= 25 and all(8 <= len(v) <= 12 for k, v in bank.items() if k != "en")
    for sentences in bank.values():
        assert len(set(sentences)) == len(sentences)
        for sentence in sentences:
            assert 4 <= len(sentence.split()) <= 14, sentence
            assert sum(sentence.lower().count(c) for c in "pbm") >= 2, sentence
    assert os.path.getsize(SENTENCES) < 8000  # a few KB
