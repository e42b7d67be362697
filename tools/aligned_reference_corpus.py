"""Copy an eval corpus with its exact reference phones replaced by our forced alignment.

The recorded-speech corpora (``tools/real_speech_corpus.py``) can only be scored against an
*alignment* — pocketsphinx's, made with the same acoustic model that recognizes the phones the rig
and the neural model are given — because nobody knows a recording's true phone times. Synthesized
speech does have true times. Scoring the same synthesized items against both references shows how
much that choice of reference alone moves the figures: which generator an alignment reference
favours, and by how much, with everything else equal::

    python tools/aligned_reference_corpus.py /tmp/devcorpus/manifest.json /tmp/devcorpus-aligned
    studio eval lipsync --corpus /tmp/devcorpus-aligned/manifest.json --mode without --generator rig
    studio eval lipsync --corpus /tmp/devcorpus-aligned/source_manifest.json --mode without --generator rig

Only items in a language the aligner's dictionary covers (``en-*``) are kept, since an English
acoustic model aligns other languages poorly; items whose alignment fails are left out and
listed. The audio and transcripts are copied, the split and voice are kept, and the written
manifest's ``source_items`` lists the ids kept. Beside it ``source_manifest.json`` holds the same
items with their original reference (copied as ``source-<phones file>``), so that both references
score exactly the same recordings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from studio.audio.decode import load_audio
from studio.audio.phonemes import AlignmentError, align_phones
from studio.audio.reference import write_phones_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="the eval corpus's manifest.json")
    parser.add_argument("out", type=Path, help="folder for the copy")
    parser.add_argument("--split", help="only items of this split")
    args = parser.parse_args(argv)
    source = json.loads(args.manifest.read_text(encoding="utf-8"))
    root = args.manifest.parent
    args.out.mkdir(parents=True, exist_ok=True)
    kept, failed = [], []
    for item in source["items"]:
        if not str(item.get("language", "")).startswith("en") or (args.split and item.get("split") != args.split):
            continue
        if not item.get("transcript"):
            failed.append((item["id"], "no transcript"))
            continue
        text = (root / item["transcript"]).read_text(encoding="utf-8").strip()
        audio = load_audio(root / item["audio"], require_sound=True)
        try:
            phones = align_phones(audio, text, language=item["language"])
        except AlignmentError as error:
            failed.append((item["id"], str(error)))
            continue
        for key in ("audio", "transcript"):
            shutil.copyfile(root / item[key], args.out / item[key])
        write_phones_json(phones, args.out / item["phones"])
        shutil.copyfile(root / item["phones"], args.out / f"source-{item['phones']}")
        kept.append(item)
    manifest = {**source, "corpus": f"{source.get('corpus', 'corpus')} (aligned reference)",
                "items": kept, "source_items": [i["id"] for i in kept],
                "audio_seconds": round(sum(float(i.get("duration", 0.0)) for i in kept), 3)}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    original = {**manifest, "corpus": source.get("corpus", "corpus"),
                "items": [{**i, "phones": f"source-{i['phones']}"} for i in kept]}
    (args.out / "source_manifest.json").write_text(json.dumps(original, indent=1), encoding="utf-8")
    print(f"wrote {args.out / 'manifest.json'}: {len(kept)} items, {manifest['audio_seconds']:.1f} s")
    for ident, why in failed:
        print(f"  left out {ident}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
