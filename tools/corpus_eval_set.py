"""Write items of a training corpus as an eval corpus: their audio, true phones and text.

A training corpus item holds augmented synthetic speech and the true phone times it was made
with, so any of its items can be scored by ``studio eval lipsync --corpus`` like the dev corpus's.
This is how one voice's items become a dev set of any size — for instance the Piper voice's
(a network learned from one real speaker), which a model trained without it reads about as badly
as recorded speech::

    python tools/corpus_eval_set.py build/train_corpus_p /tmp/piper-eval --synthesizer piper --items 40
    studio eval lipsync --corpus /tmp/piper-eval/manifest.json --mode without --generator neural

Items are taken in corpus order, English only (language ``en…``), optionally of one
synthesizer, split and sentence source (``--sentences natural``: only items saying the everyday
sentences, ``bank``: only the main bank's). The corpus's own split is kept in each entry, so
``--split`` on the eval side works too. **A model trained on the corpus has heard its ``train``
items**: score those only with models that were not (and say so).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile

from studio.audio.phones import Phone
from studio.audio.reference import write_phones_json
from studio.generate.devcorpus import SAMPLE_RATE, load_sentences, write_json
from studio.generate.neural.corpus import (
    NATURAL_SENTENCES,
    CorpusError,
    load_item,
    read_manifest,
)


def natural_sentences() -> list[str]:
    """The everyday English sentences, longest first (so a sentence that starts another is tried last)."""
    return sorted(load_sentences(NATURAL_SENTENCES)["en"], key=len, reverse=True)


def says(text: str, natural: list[str]) -> str:
    """``"natural"`` when every sentence of ``text`` is an everyday one, else ``"bank"``."""
    # the corpus joins one to three sentences with single spaces; each natural one ends in . ? or !
    remaining = text.strip()
    while remaining:
        match = next((s for s in natural if remaining.startswith(s)), None)
        if match is None:
            return "bank"
        remaining = remaining[len(match):].lstrip()
    return "natural"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a training corpus folder (studio train corpus)")
    parser.add_argument("out", type=Path, help="folder for the eval corpus")
    parser.add_argument("--synthesizer", help="only items of this synthesizer (espeak-ng, flite, festival, piper)")
    parser.add_argument("--split", help="only items of this split (train, val, heldout)")
    parser.add_argument("--sentences", choices=("natural", "bank"), help="only items saying these sentences")
    parser.add_argument("--items", type=int, default=40, help="at most this many items (default 40)")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.corpus)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    natural = natural_sentences()
    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for entry in manifest["items"]:
        if len(entries) >= args.items:
            break
        text = entry.get("text") or ""
        if not entry.get("language", "").startswith("en") or not text:
            continue
        if (args.synthesizer and entry.get("synthesizer") != args.synthesizer) or (args.split and entry["split"] != args.split):
            continue
        if args.sentences and says(text, natural) != args.sentences:
            continue
        try:
            item = load_item(args.corpus / entry["file"])
        except CorpusError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        ident = f"{entry.get('synthesizer', 'item')}-{entry['id']}"
        phones = [Phone(str(label), float(start), float(end))
                  for label, start, end in zip(item["phone_labels"], item["phone_starts"], item["phone_ends"])]
        soundfile.write(args.out / f"{ident}.wav", item["audio"], SAMPLE_RATE, subtype="PCM_16")
        write_phones_json(phones, args.out / f"{ident}.phones.json", text=text, voice=entry["speaker"])
        (args.out / f"{ident}.txt").write_text(text + "\n", encoding="utf-8")
        entries.append({"id": ident, "audio": f"{ident}.wav", "phones": f"{ident}.phones.json",
                        "transcript": f"{ident}.txt", "synthesizer": entry.get("synthesizer", ""),
                        "speaker": entry["speaker"], "voice": entry.get("voice", ""), "language": entry["language"],
                        "split": entry["split"], "duration": len(item["audio"]) / SAMPLE_RATE,
                        "source_item": entry["id"]})
    if not entries:
        print("error: no item of the corpus matches", file=sys.stderr)
        return 1
    out = {"version": 1, "corpus": f"training corpus items ({args.corpus.name})",
           "source": {"synthesizer": args.synthesizer, "split": args.split, "sentences": args.sentences},
           "audio_seconds": sum(e["duration"] for e in entries), "items": entries}
    write_json(args.out / "manifest.json", out)
    print(f"{len(entries)} items, {out['audio_seconds']:.1f} s → {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
