"""tools/independent_reference_corpus.py and tools/aligned_reference_corpus.py: the same recordings
with an independent reference and with ours, on real synthesized speech and a real alignment."""

import importlib.util
import json
from pathlib import Path

import soundfile

from studio.audio.reference import read_reference
from studio.audio.synth import synthesize_espeak

TOOLS = Path(__file__).parents[1] / "tools"


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arctic_labels_and_both_references(tmp_path):
    independent, aligned = _tool("independent_reference_corpus"), _tool("aligned_reference_corpus")
    arctic = tmp_path / "arctic"
    arctic.mkdir()
    speech = synthesize_espeak(independent.ARCTIC_TEXT, "en-us")
    soundfile.write(arctic / "arctic_a0009.wav", speech.samples, speech.sample_rate, subtype="PCM_16")
    (arctic / "arctic_a0009_phone.lab").write_text(
        "".join(f"{round(p.start * 1e7)} {round(p.end * 1e7)} {p.label.lower() if p.label != 'sil' else 'pau'}\n"
                for p in speech.phones), encoding="utf-8")
    labels = read_reference(arctic / "arctic_a0009_phone.lab")

    assert independent.main([str(tmp_path / "indep"), "--arctic", str(arctic)]) == 0
    manifest = json.loads((tmp_path / "indep" / "manifest.json").read_text(encoding="utf-8"))
    [item] = manifest["items"]
    assert item["id"] == "arctic_a0009" and item["reference"] == "ehmm labels"
    assert _same(read_reference(tmp_path / "indep" / item["phones"]), labels)
    assert (tmp_path / "indep" / item["transcript"]).read_text(encoding="utf-8").strip() == independent.ARCTIC_TEXT

    assert aligned.main([str(tmp_path / "indep" / "manifest.json"), str(tmp_path / "ours")]) == 0
    ours = json.loads((tmp_path / "ours" / "manifest.json").read_text(encoding="utf-8"))
    source = json.loads((tmp_path / "ours" / "source_manifest.json").read_text(encoding="utf-8"))
    assert ours["source_items"] == ["arctic_a0009"] and [i["id"] for i in source["items"]] == ["arctic_a0009"]
    assert _same(read_reference(tmp_path / "ours" / source["items"][0]["phones"]), labels)
    mine = read_reference(tmp_path / "ours" / ours["items"][0]["phones"])  # our alignment of the same words
    assert not _same(mine, labels) and {"P", "B"} <= {p.label for p in mine}
    assert abs(mine[-1].end - speech.duration) < 0.05


def _same(a, b):
    return [p.label for p in a] == [p.label for p in b] and all(
        abs(p.start - q.start) < 1e-5 and abs(p.end - q.end) < 1e-5 for p, q in zip(a, b))
