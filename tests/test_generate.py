"""``studio generate`` and ``studio eval lipsync`` end to end: real espeak-ng speech, real
pocketsphinx, real motion files written and read back."""

import json

import numpy as np
import pytest
import soundfile as sf

from studio.audio.reference import write_phones_json
from studio.audio.synth import synthesize_espeak
from studio.cli import main
from studio.core.keypoints import KEYPOINT_NAMES, MEAN_FACE
from studio.core.motion import CHANNELS, keypoints
from studio.core.motion_file import read_motion
from studio.generate.lipsync import closure_counts
from studio.generate.pipeline import Cancelled, GenerateError, GenerateRequest, generate
from studio.generate.rig import mouth_gap, num_frames_for

TEXT = "Bob put the map by my bed."


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    s = synthesize_espeak(TEXT, "en-us")
    wav = folder / "speech.wav"
    pad = np.zeros(int(0.3 * s.sample_rate), np.float32)
    sf.write(wav, np.concatenate([pad, s.samples, pad]), s.sample_rate, subtype="PCM_16")
    from studio.audio.phones import Phone

    phones = [Phone("SIL", 0.0, 0.3)] + [Phone(p.label, p.start + 0.3, p.end + 0.3, p.stress) for p in s.phones]
    phones.append(Phone("SIL", phones[-1].end, s.duration + 0.6))
    ref = write_phones_json(phones, folder / "speech.phones.json")
    (folder / "speech.txt").write_text(TEXT + "\n", encoding="utf-8")
    return wav, ref, folder / "speech.txt", s.duration + 0.6, phones


def test_generate_with_text_writes_the_motion_file_of_the_brief(speech, tmp_path, capsys):
    wav, _, _, duration, reference = speech
    out = tmp_path / "motion.json"
    assert main(["generate", str(wav), "--text", TEXT, "--emotion", "happy", "-o", str(out),
                 "--phones", str(tmp_path / "phones.json")]) == 0
    assert "phones aligned" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["format"] == "studio-motion" and data["channels"] == list(CHANNELS)
    assert data["keypoint_names"] == list(KEYPOINT_NAMES) and data["fps"] == 25
    motion = read_motion(out)
    assert len(motion) == num_frames_for(duration, 25)
    assert np.allclose(motion.canonical_keypoints, MEAN_FACE, atol=1e-6)
    assert np.allclose(np.array(data["keypoints"]), keypoints(motion.values), atol=1e-5)
    counts = closure_counts(mouth_gap(motion.values), 25, reference)
    assert counts.bilabials == 8 and counts.recall == 1.0 and counts.false_rate == 0.0
    assert (tmp_path / "phones.json").exists()


def test_generate_without_transcript_at_30_fps_to_npz(speech, tmp_path):
    wav, _, _, duration, reference = speech
    out = tmp_path / "motion.npz"
    assert main(["generate", str(wav), "--fps", "30", "--seed", "3", "-o", str(out)]) == 0
    motion = read_motion(out)
    assert motion.fps == 30 and len(motion) == num_frames_for(duration, 30)
    counts = closure_counts(mouth_gap(motion.values), 30, reference)
    assert counts.recall >= 0.5  # recognition finds most of them; the corpus evaluation measures it


def test_wrong_transcript_falls_back_with_a_warning(speech, tmp_path, capsys):
    wav = speech[0]
    out = tmp_path / "m.json"
    assert main(["generate", str(wav), "--text", "Seven green giraffes sing loudly at sunrise.", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "phones recognized" in captured.out
    assert out.exists()


def test_bad_inputs_fail_clearly_and_write_nothing(speech, tmp_path, capsys):
    wav = speech[0]
    text_file = tmp_path / "notes.wav"
    text_file.write_text("this is not audio")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    out = tmp_path / "m.json"
    for argv in (["generate", str(text_file), "-o", str(out)],
                 ["generate", str(silent), "-o", str(out)],
                 ["generate", str(tmp_path / "missing.wav"), "-o", str(out)],
                 ["generate", str(wav), "--emotion", "bored", "-o", str(out)],
                 ["generate", str(wav), "--fps", "0", "-o", str(out)],
                 ["generate", str(wav), "--intensity", "3", "-o", str(out)],
                 ["generate", str(wav), "--text", "   ", "-o", str(out)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("studio: ") and err.count("\n") == 1, err
        assert not out.exists()


def test_generate_reports_progress_and_can_be_cancelled(speech):
    wav = speech[0]
    seen = []
    result = generate(GenerateRequest(wav, transcript=TEXT), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert result.phone_method == "aligned" and set(result.seconds) == {"decode", "features", "phones", "motion"}
    with pytest.raises(Cancelled):
        generate(GenerateRequest(wav), cancel=lambda: True)
    with pytest.raises(GenerateError, match="conditions"):
        generate(GenerateRequest(wav, conditions=np.zeros((3, 13))))


def test_eval_lipsync_on_one_file_and_on_a_built_corpus(speech, tmp_path, capsys):
    wav, ref, transcript, _, _ = speech
    report = tmp_path / "report.json"
    assert main(["eval", "lipsync", str(wav), "--reference", str(ref), "--transcript", str(transcript),
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "with transcript" in out and "without transcript" in out
    data = json.loads(report.read_text())
    assert data["with"]["summary"]["closure_recall"] == 1.0
    assert data["with"]["summary"]["bilabials"] == 8
    # the reference rig (true phones) is reported beside the generated mouth
    assert data["without"]["summary"]["reference_closure_recall"] == 1.0 and "the reference rig" in out
    assert abs(data["with"]["summary"]["lag_ms_median"]) < 20

    corpus = tmp_path / "corpus"
    assert main(["eval", "build-corpus", str(corpus), "--items", "3", "--seed", "1"]) == 0
    assert main(["eval", "lipsync", "--corpus", str(corpus / "manifest.json"), "--mode", "with"]) == 0
    assert "3 items" in capsys.readouterr().out
    assert main(["eval", "lipsync"]) == 2
