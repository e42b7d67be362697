"""tools/mfa_speech_corpus.py: Praat TextGrids in both text formats, their phones, the transcripts read as a literal."""

import importlib.util
from pathlib import Path

import pytest

from studio.audio.phones import SILENCE

_SPEC = importlib.util.spec_from_file_location("mfa_speech_corpus",
                                               Path(__file__).parents[1] / "tools" / "mfa_speech_corpus.py")
tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tool)

WORDS = [(0.0, 0.15, ""), (0.15, 0.9, "map")]
PHONES = [(0.0, 0.2, ""), (0.2, 0.35, "M"), (0.35, 0.7, "AE1"), (0.7, 0.85, "P")]
MARKS = [(0.5, "x")]  # a point tier, which the reader skips


def _short() -> str:
    """The three tiers in Praat's short text format: values only, one per line."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", "0.9", "<exists>", "3"]
    for kind, name, rows in (("IntervalTier", "words", WORDS), ("TextTier", "marks", MARKS),
                             ("IntervalTier", "phones", PHONES)):
        lines += [f'"{kind}"', f'"{name}"', "0", "0.9", str(len(rows))]
        for row in rows:
            lines += [str(v) if not isinstance(v, str) else f'"{v}"' for v in row]
    return "\n".join(lines) + "\n"


def _long() -> str:
    """The same tiers in the long text format: keyed values under numbered item headers."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", "xmax = 0.9",
             "tiers? <exists>", "size = 3", "item []:"]
    for k, (kind, name, rows) in enumerate((("IntervalTier", "words", WORDS), ("TextTier", "marks", MARKS),
                                            ("IntervalTier", "phones", PHONES)), 1):
        lines += [f"    item [{k}]:", f'        class = "{kind}"', f'        name = "{name}"',
                  "        xmin = 0", "        xmax = 0.9"]
        part = "intervals" if kind == "IntervalTier" else "points"
        lines.append(f"        {part}: size = {len(rows)}")
        for n, row in enumerate(rows, 1):
            keys = ("xmin", "xmax", "text") if kind == "IntervalTier" else ("number", "mark")
            lines.append(f"        {part} [{n}]:")
            lines += [f"            {key} = " + (f'"{v}"' if isinstance(v, str) else str(v)) for key, v in zip(keys, row)]
    return "\n".join(lines) + "\n"


def test_both_text_formats_read_the_same_tiers(tmp_path):
    short, long = tmp_path / "short.TextGrid", tmp_path / "long.TextGrid"
    short.write_text(_short(), encoding="utf-8")
    long.write_text(_long(), encoding="utf-8")
    tiers = tool.read_textgrid(short)
    assert tiers == tool.read_textgrid(long)
    assert set(tiers) == {"words", "phones"}  # the point tier is skipped
    assert tiers["words"] == [(0.0, 0.15, ""), (0.15, 0.9, "map")]
    phones = tool.textgrid_phones(tiers, duration=1.0)
    assert [(p.label, p.start, p.end) for p in phones] == [
        (SILENCE, 0.0, 0.2), ("M", 0.2, 0.35), ("AE", 0.35, 0.7), ("P", 0.7, 0.85), (SILENCE, 0.85, 1.0)]


def test_bad_textgrids_are_refused(tmp_path):
    path = tmp_path / "bad.TextGrid"
    path.write_text("just text\n", encoding="utf-8")
    with pytest.raises(tool.TextGridError, match="not a Praat text file"):
        tool.read_textgrid(path)
    path.write_text(_short().replace('"P"\n', ""), encoding="utf-8")  # an interval cut short
    with pytest.raises(tool.TextGridError, match="not a TextGrid this reader understands"):
        tool.read_textgrid(path)
    with pytest.raises(tool.TextGridError, match="no phones tier"):
        tool.textgrid_phones({"words": []}, 1.0)


def test_transcripts_are_read_as_a_literal_without_running_anything(tmp_path):
    conftest = tmp_path / "conftest.py"
    conftest.write_text('import os\nos.remove("nothing")\n\n\ndef reference_transcripts():\n'
                        '    return {"mfa_putty": "m f a is like putty", "mfa_whisper": "montreal"}\n', encoding="utf-8")
    assert tool.reference_transcripts(conftest) == {"mfa_putty": "m f a is like putty", "mfa_whisper": "montreal"}
    assert tool.LEFT_OUT.search("mfa_whisper") and not tool.LEFT_OUT.search("mfa_putty")
