"""Turn the recorded speech in pocketsphinx's source distribution into a lip-sync eval corpus.

The speech the neural model and the rig are measured on must include real voices; none ship with
the installed packages, but pocketsphinx's *source* distribution (PyPI sdist, BSD licence) carries
five LibriVox recordings (public domain, "Sense and Sensibility", one female reader, 16 kHz, 24.7 s)
with transcripts and pocketsphinx's own phone alignment of each (``*.phone.json``). This script
writes them as a corpus that ``studio eval lipsync --corpus`` and ``studio eval controls`` read::

    # pocketsphinx-5.0.4.tar.gz from https://pypi.org/project/pocketsphinx/5.0.4/#files
    tar xzf pocketsphinx-5.0.4.tar.gz
    python tools/real_speech_corpus.py pocketsphinx-5.0.4 /tmp/real
    studio eval lipsync --corpus /tmp/real/manifest.json --generator neural

The reference phones are an alignment (pocketsphinx's, not ours), not a synthesizer's exact
timings: good to a frame or so, which is what the 25 fps metrics resolve.

``--dev`` writes the sdist's *other* recordings instead — the five "cards" utterances (another
speaker, a different microphone) and "go forward ten meters" — with our own forced alignment to
their transcripts as the reference: a small second set to choose sampling options on, so that the
LibriVox recordings stay a test set nothing was tuned on. Use it without a transcript only (with
one, the rig would be scored against its own alignment)::

    python tools/real_speech_corpus.py --dev pocketsphinx-5.0.4 /tmp/real-dev
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile

from studio.audio.decode import load_audio
from studio.audio.phonemes import align_phones
from studio.audio.phones import PHONES, SILENCE, Phone
from studio.audio.reference import write_phones_json

ITEMS = ("0870", "0880", "0890", "0920", "0930")
_FILLERS = {"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+UM+", "+UH+"}


def _phones(alignment: dict) -> list[Phone]:
    phones = []
    for word in alignment["w"]:
        for seg in word["w"]:
            label = seg["t"].upper()
            label = SILENCE if label in _FILLERS or label not in PHONES else label
            phones.append(Phone(label, round(seg["b"], 3), round(seg["b"] + seg["d"], 3)))
    return phones


def main(source: Path, out: Path) -> int:
    folder = source / "test" / "data" / "librivox"
    if not folder.is_dir():
        print(f"{folder}: not found (give the unpacked pocketsphinx source folder)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for name in ITEMS:
        base = folder / f"sense_and_sensibility_01_austen_64kb-{name}"
        shutil.copyfile(base.with_suffix(".wav"), out / f"{name}.wav")
        write_phones_json(_phones(json.loads(base.with_suffix(".phone.json").read_text())), out / f"{name}.phones.json")
        (out / f"{name}.txt").write_text(base.with_suffix(".txt").read_text().strip() + "\n", encoding="utf-8")
        items.append({"id": name, "audio": f"{name}.wav", "phones": f"{name}.phones.json", "transcript": f"{name}.txt",
                      "synthesizer": "recorded", "speaker": "librivox-austen", "voice": "librivox",
                      "language": "en-us", "split": "heldout", "settings": {}, "padding": [0.0, 0.0],
                      "duration": soundfile.info(out / f"{name}.wav").duration})
    manifest = {"version": 1, "corpus": "librivox (pocketsphinx test data)", "seed": None, "sample_rate": 16000,
                "speakers": ["librivox-austen"], "heldout_speakers": ["librivox-austen"],
                "audio_seconds": sum(i["duration"] for i in items), "items": items}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"wrote {out / 'manifest.json'}: {len(items)} recordings, {manifest['audio_seconds']:.1f} s")
    return 0


def _cards(data: Path) -> list[tuple[str, Path, str]]:
    """(id, audio, transcript) of the cards utterances and goforward.raw (16 kHz 16-bit mono)."""
    lines = (data / "cards" / "cards.transcription").read_text().splitlines()
    out = []
    for line in lines:
        words, _, ident = line.replace("<s>", "").replace("</s>", "").rpartition("(")
        ident = ident.strip(") ")
        out.append((f"cards-{ident}", data / "cards" / f"{ident}.wav", " ".join(words.split())))
    out.append(("goforward", data / "goforward.raw", "go forward ten meters"))
    return out


def main_dev(source: Path, out: Path) -> int:
    data = source / "test" / "data"
    if not (data / "cards").is_dir():
        print(f"{data / 'cards'}: not found (give the unpacked pocketsphinx source folder)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for ident, path, text in _cards(data):
        if path.suffix == ".raw":
            samples = np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0
            soundfile.write(out / f"{ident}.wav", samples, 16000, subtype="PCM_16")
        else:
            shutil.copyfile(path, out / f"{ident}.wav")
        audio = load_audio(out / f"{ident}.wav", require_sound=True)
        write_phones_json(align_phones(audio, text), out / f"{ident}.phones.json")
        (out / f"{ident}.txt").write_text(text + "\n", encoding="utf-8")
        items.append({"id": ident, "audio": f"{ident}.wav", "phones": f"{ident}.phones.json",
                      "transcript": f"{ident}.txt", "synthesizer": "recorded", "speaker": "cards",
                      "voice": "cards", "language": "en-us", "split": "dev", "settings": {},
                      "padding": [0.0, 0.0], "duration": audio.duration})
    manifest = {"version": 1, "corpus": "cards + goforward (pocketsphinx test data)", "seed": None,
                "sample_rate": 16000, "speakers": ["cards"], "heldout_speakers": [],
                "audio_seconds": sum(i["duration"] for i in items), "items": items}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"wrote {out / 'manifest.json'}: {len(items)} recordings, {manifest['audio_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    dev = args[:1] == ["--dev"]
    if dev:
        args = args[1:]
    if len(args) != 2:
        print(__doc__.split("::")[1].split("\n\n")[0], file=sys.stderr)
        sys.exit(2)
    sys.exit((main_dev if dev else main)(Path(args[0]), Path(args[1])))
