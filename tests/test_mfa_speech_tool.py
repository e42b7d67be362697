"""tools/mfa_speech_corpus.py: the clips' transcripts read as a literal, nothing of MFA's test code run.

Its TextGrids go through studio.audio.reference (tests/test_reference.py)."""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("mfa_speech_corpus",
                                               Path(__file__).parents[1] / "tools" / "mfa_speech_corpus.py")
tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tool)


def test_transcripts_are_read_as_a_literal_without_running_anything(tmp_path):
    conftest = tmp_path / "conftest.py"
    conftest.write_text('import os\nos.remove("nothing")\n\n\ndef reference_transcripts():\n'
                        '    return {"mfa_putty": "m f a is like putty", "mfa_whisper": "montreal"}\n', encoding="utf-8")
    assert tool.reference_transcripts(conftest) == {"mfa_putty": "m f a is like putty", "mfa_whisper": "montreal"}
    assert tool.LEFT_OUT.search("mfa_whisper") and not tool.LEFT_OUT.search("mfa_putty")
