"""Synthesize the demo speech clip in ``assets/demo/``: audio, transcript and exact phone timings.

The demo clip is what the studio opens with and what the README's examples animate, so it is
speech whose phones are known exactly rather than guessed: espeak-ng (``en-us``) speaks a sentence
rich in bilabials (p/b/m, where the lips must close) and open vowels (where the jaw must drop),
and its phone spans (:func:`studio.audio.synth.synthesize_espeak`) are written beside the audio.
The same espeak-ng gives the same samples on every run (each synthesis runs in a pristine
process), so the files change only when espeak-ng or the settings below do.

Writes ``speech.flac`` (16-bit FLAC at the synthesizer's rate), ``speech.txt`` (the transcript)
and ``speech.phones.json`` (:func:`studio.audio.reference.write_phones_json`).

    .venv/bin/python tools/make_demo_audio.py [--out assets/demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from studio.audio.reference import write_phones_json
from studio.audio.synth import synthesize_espeak

DEMO_FOLDER = Path(__file__).resolve().parents[1] / "assets" / "demo"
TEXT = "My mom bought a bamboo map. Papa laughed, and we all had apple pie by the harbor."
VOICE = "en-us"
RATE_WPM = 130  # unhurried, so every lip closure lasts a few video frames; about 6.4 s
AUDIO_NAME, TRANSCRIPT_NAME, PHONES_NAME = "speech.flac", "speech.txt", "speech.phones.json"
AUDIO_SUBTYPE = "PCM_16"  # espeak-ng synthesizes 16-bit samples: FLAC stores them losslessly


def make_demo_audio(out: Path = DEMO_FOLDER) -> list[Path]:
    """Synthesize the clip and write its three files into ``out``; returns their paths."""
    speech = synthesize_espeak(TEXT, VOICE, rate=RATE_WPM)
    out.mkdir(parents=True, exist_ok=True)
    audio = out / AUDIO_NAME
    samples = np.clip(speech.samples, -1.0, 1.0)
    sf.write(audio, samples, speech.sample_rate, format="FLAC", subtype=AUDIO_SUBTYPE)
    transcript = out / TRANSCRIPT_NAME
    transcript.write_text(TEXT + "\n", encoding="utf-8")
    phones = write_phones_json(
        speech.phones, out / PHONES_NAME, text=TEXT, audio=AUDIO_NAME,
        sample_rate=speech.sample_rate, duration=round(speech.duration, 6),
        synthesizer=speech.synthesizer, voice=VOICE, rate_wpm=RATE_WPM)
    return [audio, transcript, phones]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEMO_FOLDER, help="folder to write into")
    args = parser.parse_args()
    for path in make_demo_audio(args.out):
        print(f"{path}  ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
