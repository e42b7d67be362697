"""The neural model's inputs and training corpus: real synthesis, recognition and rig, a tiny corpus."""

import json
import shutil
import zipfile

import numpy as np
import pytest

from studio.audio.features import compute_features
from studio.audio.phonemes import phones_for
from studio.audio.phones import PHONES, SILENCE, Phone
from studio.audio.synth import FESTIVAL_VOICES, festival_voice, synthesize_espeak
from studio.cli import main
from studio.core.document import CONDITION_CHANNELS, EMOTIONS
from studio.core.keypoints import (
    KEYPOINT_INDEX,
    KEYPOINT_REGIONS,
    MEAN_FACE,
    eye_centers,
)
from studio.core.motion import CHANNEL_INDEX, EXP, NUM_CHANNELS
from studio.generate.devcorpus import build_dev_corpus, load_sentences, padded_16k
from studio.generate.lipsync import closure_counts, lag_ms
from studio.generate.neural.corpus import (
    ITEM_KEYS,
    NATURAL_SENTENCES,
    NATURAL_SHARE,
    PIPER_SHARE,
    SAME_PERSON,
    CorpusError,
    _plan,
    build_train_corpus,
    canonical_keypoints,
    change_pitch_and_tempo,
    degrade,
    item_audio,
    load_item,
    read_manifest,
    speaker_splits,
)
from studio.generate.neural.inputs import (
    ACOUSTIC_CHANNELS,
    INPUT_NAMES,
    NUM_INPUTS,
    neural_inputs,
    prior_motion,
)
from studio.generate.rig import (
    LIP_PRIOR,
    lip_prior,
    mouth_gap,
    num_frames_for,
    rig_motion,
)

ITEMS = 7  # indices 2 (val) and 5 (heldout) give every split; 1 and 6 are festival items, 6 with a tempo
# change; 3 and 4 the Piper voice's; 0 (flite) and 1 say everyday sentences


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-corpus")
    calls = []
    manifest = build_train_corpus(out, items=ITEMS, seed=0, workers=2,
                                  progress=lambda done, total: calls.append((done, total)))
    return out, manifest, calls


def _true_phones(item) -> list[Phone]:
    return [Phone(str(label), float(start), float(end))
            for label, start, end in zip(item["phone_labels"], item["phone_starts"], item["phone_ends"])]


def _mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "items").iterdir()}


# --- inputs --------------------------------------------------------------------------------------

def test_input_channels_are_documented_and_moderate():
    assert len(INPUT_NAMES) == NUM_INPUTS == len(set(INPUT_NAMES))
    assert 80 <= NUM_INPUTS <= 110
    assert [n for n in INPUT_NAMES if n.startswith("phone.")][:len(PHONES)] == [f"phone.{p}" for p in PHONES]
    assert INPUT_NAMES[-len(LIP_PRIOR) - 2:] == ("phones_from_transcript", *(f"rig.{n}" for n in LIP_PRIOR), "acoustic")
    assert [INPUT_NAMES[i] for i in ACOUSTIC_CHANNELS] == [*(f"mel.{i:02d}" for i in range(40)), "voicing", "log_f0",
                                                          "voiced", "acoustic"]


def test_mel_inputs_ignore_the_recordings_level_and_microphone():
    """Per-recording mean normalization: the same speech 14 dB quieter and through a tilted
    microphone response (a first-order high-pass) gives nearly the same mel channels during
    speech; only the level channel keeps the difference."""
    speech = synthesize_espeak("Bob bought a map of Maple Street, mind you.", "en-us+m3")
    samples, phones = padded_16k(speech, [0.3, 0.3])
    frames = num_frames_for(len(samples) / 16000, 25.0)
    other = 0.2 * np.concatenate([samples[:1], samples[1:] - 0.7 * samples[:-1]]).astype(np.float32)
    fa, fb = compute_features(samples), compute_features(other)
    a, b = neural_inputs(fa, phones, frames, 25.0), neural_inputs(fb, phones, frames, 25.0)
    speaking = a[:, INPUT_NAMES.index("vad")] > 0
    shift = np.abs(a[speaking, :40] - b[speaking, :40]).mean()
    # without the normalization: the same bands, a fixed scale
    raw = np.abs(fa.log_mel[fa.vad] - fb.log_mel[fa.vad]).mean() / 4.5
    assert shift < 0.2 and raw > 0.5 and shift < raw / 3
    energy = INPUT_NAMES.index("energy")
    assert (a[speaking, energy] - b[speaking, energy]).mean() > 0.5


def test_inputs_keep_a_short_bilabial_and_flag_the_phone_source():
    samples = np.zeros(16000, np.float32)
    features = compute_features(samples)
    # a 20 ms P between two frame times (0.40 and 0.44 s) at 25 fps
    phones = [Phone(SILENCE, 0.0, 0.3), Phone("AA", 0.3, 0.41), Phone("P", 0.41, 0.43), Phone("AA", 0.43, 0.6)]
    assert not any(0.41 <= k / 25 < 0.43 for k in range(25))  # no frame time falls in the P
    x = neural_inputs(features, phones, 25, 25.0)
    y = neural_inputs(features, phones, 25, 25.0, phones_from_transcript=True)
    assert x.shape == (25, NUM_INPUTS) and x.dtype == np.float32 and np.isfinite(x).all()
    one_hot = x[:, INPUT_NAMES.index("phone.AA"):INPUT_NAMES.index("phone.SIL") + 1]
    np.testing.assert_allclose(one_hot.sum(axis=1), 1.0, atol=1e-6)
    p = INPUT_NAMES.index("phone.P")
    # frames 10 and 11 span 0.38…0.42 and 0.42…0.46 s: each holds 10 ms of the P
    assert x[10, p] == pytest.approx(0.25) and x[11, p] == pytest.approx(0.25) and x[9, p] == x[12, p] == 0
    flag = INPUT_NAMES.index("phones_from_transcript")
    assert x[:, flag].max() == 0.0 and y[:, flag].min() == 1.0
    np.testing.assert_array_equal(np.delete(x, flag, axis=1), np.delete(y, flag, axis=1))
    progress = x[:, INPUT_NAMES.index("phone.progress")]
    assert progress[8] == pytest.approx((0.32 - 0.3) / 0.11)  # frame 8 (0.32 s) is in the AA
    # digital silence reads as the floor everywhere, past the features' end too
    assert np.allclose(x[:, 0], x[0, 0]) and x[0, 0] < -3


def test_inputs_carry_the_rigs_lip_prior():
    samples = np.zeros(16000, np.float32)
    features = compute_features(samples)
    phones = [Phone(SILENCE, 0.0, 0.3), Phone("AA", 0.3, 0.41), Phone("P", 0.41, 0.43), Phone("AA", 0.43, 0.6),
              Phone(SILENCE, 0.6, 1.0)]
    x = neural_inputs(features, phones, 25, 25.0)
    prior = x[:, INPUT_NAMES.index("rig.jaw"):INPUT_NAMES.index("rig.gap") + 1]
    expected = lip_prior(phones, np.arange(25) / 25.0, features=features)
    expected[:, -1] /= 0.4
    np.testing.assert_allclose(prior, expected, atol=1e-6)
    closure, gap = prior[:, LIP_PRIOR.index("closure")], prior[:, LIP_PRIOR.index("gap")]
    # the 20 ms P closes the frame nearest its centre; the AA before it opens the mouth wide
    assert closure[10] == 1.0 and gap[10] < 0.01 and gap[9] > 0.5
    # the rig's own mouth for the same phones has the same gap (it is the rig's answer)
    motion = rig_motion(phones, num_frames=25, fps=25.0, features=features)
    np.testing.assert_allclose(gap * 0.4, mouth_gap(motion), atol=1e-5)
    # and its whole mouth reads back from the prior: the lips and jaw a residual model starts from
    mouth = [CHANNEL_INDEX[f"exp.{k}.{a}"] for k in (*KEYPOINT_REGIONS["lips"], *KEYPOINT_REGIONS["jaw"]) for a in "xyz"]
    back = prior_motion(x)
    np.testing.assert_allclose(back[:, mouth], motion[:, mouth], atol=1e-5)
    assert not back[:, EXP.stop:].any()  # head, eyes: nothing


def test_the_level_reaches_the_model_through_the_energy_channel_only():
    speech = synthesize_espeak("Bob bought a map.", "en-us")
    samples, phones = padded_16k(speech, [0.2, 0.2])
    frames = num_frames_for(len(samples) / 16000, 25.0)
    features = compute_features(samples)
    full = neural_inputs(features, phones, frames, 25.0)
    half = neural_inputs(compute_features(0.5 * samples), phones, frames, 25.0)
    speaking = full[:, INPUT_NAMES.index("vad")] > 0
    # half the amplitude: −6.02 dB, 0.301 in energy units of 20 dB; the mel is normalized per
    # recording, but for a clip this short only in part: its speech mean is shrunk by 20 frames
    energy = INPUT_NAMES.index("energy")
    assert np.median(full[speaking, energy] - half[speaking, energy]) == pytest.approx(6.02 / 20, abs=0.01)
    drop = (full[speaking, :40] - half[speaking, :40]) * 4.5
    shrunk = np.log(4.0) * 20 / (int(features.vad.sum()) + 20)  # what the shrinkage alone leaves
    assert shrunk <= np.median(drop) < 0.25 * np.log(4.0)  # (quiet bands at the floor leave a little more)


# --- augmentation and identity ------------------------------------------------------------------------

def test_tempo_and_pitch_keep_phones_on_the_speech():
    speech = synthesize_espeak("Bob bought a map of Maple Street, mind you.", "en-us+m3")
    samples, phones = padded_16k(speech, [0.2, 0.2])
    base = compute_features(samples)
    for pitch, tempo in ((1.0, 0.8), (1.15, 1.25), (0.85, 0.9)):
        moved, moved_phones = change_pitch_and_tempo(samples, phones, pitch, tempo)
        assert len(moved) == pytest.approx(len(samples) / tempo, abs=2)
        assert moved_phones[-1].end == len(moved) / 16000
        starts = np.array([p.start for p in moved_phones])
        np.testing.assert_allclose(starts, np.array([p.start for p in phones]) / tempo)
        features = compute_features(moved)
        times = np.arange(features.num_frames) / 100
        expected = np.interp(times * tempo, np.arange(base.num_frames) / 100, base.energy_db)
        assert abs(lag_ms(features.energy_db, expected, 100.0)) < 5.0
        ratio = np.median(features.f0[features.f0 > 0]) / np.median(base.f0[base.f0 > 0])
        assert ratio == pytest.approx(pitch, rel=0.04)


def test_degrade_applies_each_condition():
    t = np.arange(32000) / 16000
    clean = (0.5 * np.sin(2 * np.pi * 200 * t) * (t < 1.0) + 0.3 * np.sin(2 * np.pi * 6000 * t) * (t < 1.0))
    plain = {"pitch": 1.0, "tempo": 1.0, "reverb": None, "noise": None, "codec": None,
             "level": {"peak_db": -6.0}, "seed": 1}
    out = degrade(clean, plain)
    assert out.dtype == np.int16 and len(out) == len(clean)
    assert np.abs(out).max() == pytest.approx(32767 * 10 ** (-6 / 20), rel=1e-3)
    assert np.abs(out[16000:]).max() == 0
    noisy = degrade(clean, {**plain, "noise": {"snr_db": 10.0, "color": 1.0}}).astype(float)
    assert 0 < np.mean(noisy[20000:] ** 2) < np.mean(noisy[:16000] ** 2) / 5
    room = degrade(clean, {**plain, "reverb": {"rt60": 0.5, "drr_db": 0.0, "predelay_ms": 2.0}}).astype(float)
    assert np.abs(room[16000:16800]).max() > 100 and np.abs(room[-1000:]).max() < np.abs(room[16000:16800]).max()
    phone = degrade(clean, {**plain, "codec": {"kind": "telephone"}}).astype(float)
    spectrum = np.abs(np.fft.rfft(phone[:16000]))
    assert spectrum[6000] < 0.01 * spectrum[200]  # 6 kHz gone, 200 Hz kept (its 1 s: 1 Hz bins)
    low = degrade(clean, {**plain, "codec": {"kind": "lowbitrate", "cutoff_hz": 4000, "step_db": 3.0,
                                             "floor_db": 30.0}}).astype(float)
    spectrum = np.abs(np.fft.rfft(low[:16000]))
    assert spectrum[6000] < 0.01 * spectrum[200] and spectrum[200] > 0
    loud = degrade(clean, {**plain, "level": {"peak_db": 6.0}})
    assert np.abs(loud).max() == 32767  # clipped


def test_identities_are_small_smooth_changes_of_the_mean_face():
    a, b = canonical_keypoints(1), canonical_keypoints(2)
    np.testing.assert_array_equal(a, canonical_keypoints(1))
    assert a.shape == (21, 3) and a.dtype == np.float32 and not np.array_equal(a, b)
    for face in (a, b):
        left, right = eye_centers(face)
        assert np.linalg.norm(left - right) == pytest.approx(1.0, abs=1e-5)
        assert abs(left[1] - right[1]) < 1e-5
        np.testing.assert_allclose(face[KEYPOINT_INDEX["lip_upper_center"]], face[KEYPOINT_INDEX["lip_lower_center"]],
                                   atol=1e-6)
        change = np.linalg.norm(face - MEAN_FACE, axis=1)
        assert 0.005 < change.mean() < 0.2


# --- the corpus ------------------------------------------------------------------------------------------

def test_manifest_and_splits_by_voice(corpus, tmp_path):
    out, manifest, calls = corpus
    data = read_manifest(out)
    assert json.loads(manifest.read_text(encoding="utf-8")) == data
    assert data["format"] == "studio-train-corpus" and data["version"] == 1 and data["seed"] == 0
    assert data["fps"] == 25.0 and data["input_names"] == list(INPUT_NAMES)
    assert data["condition_channels"] == list(CONDITION_CHANNELS)
    assert calls[-1] == (ITEMS, ITEMS) and len(calls) == ITEMS
    heldout, val = set(data["heldout_speakers"]), set(data["val_speakers"])
    assert heldout and val and not heldout & val
    # the held-out voices are the dev corpus's for the same seed, and a festival voice
    dev = json.loads(build_dev_corpus(tmp_path / "dev", items=1, seed=0).read_text(encoding="utf-8"))
    assert {s for s in heldout if not s.startswith("festival:")} == set(dev["heldout_speakers"])
    assert any(s.startswith("festival:") for s in heldout)
    # the tiny corpus has a festival item (item 1, three sentences: one utterance)
    festival = [item for item in data["items"] if item["synthesizer"] == "festival"]
    assert festival and festival[0]["speaker"] in data["train_speakers"] and festival[0]["language"] == "en-us"
    splits = speaker_splits(0)
    assert set(splits["heldout"]) == heldout and set(splits["val"]) == val
    assert not (set(splits["train"]) & (heldout | val))
    seen = {item["split"] for item in data["items"]}
    assert seen == {"train", "val", "heldout"}
    # the tiny corpus exercises both phone sources and a tempo change (the later tests rely on it)
    assert {item["phones_from_transcript"] for item in data["items"]} == {True, False}
    assert any(item["augment"]["tempo"] != 1.0 for item in data["items"])
    for item in data["items"]:
        assert item["split"] == {2: "val", 5: "heldout"}.get(int(item["id"]), "train")
        assert (item["speaker"] in heldout) == (item["split"] == "heldout")
        assert (item["speaker"] in val) == (item["split"] == "val")
        assert item["file"] == f"items/{item['id']}.npz" and item["language"]
        assert item["frames"] == num_frames_for(item["seconds"], 25.0)
        assert isinstance(item["phones_from_transcript"], bool) and set(item["augment"]) >= {"pitch", "tempo"}
    report = data["report"]
    assert report["items"] == ITEMS and report["bytes"] > 0 and report["seconds"] > 0
    assert report["synthesizers"] == {"espeak-ng": 2, "festival": 2, "flite": 1, "piper": 2}
    assert data["piper_share"] == PIPER_SHARE and data["natural_share"] == NATURAL_SHARE
    piper = [item for item in data["items"] if item["synthesizer"] == "piper"]
    assert {item["speaker"] for item in piper} == {"piper:joe"} and "piper:joe" in data["train_speakers"]
    assert report["hours"] == pytest.approx(sum(i["seconds"] for i in data["items"]) / 3600, abs=1e-4)


def test_festival_voices_are_split_by_voice():
    """Every installed festival voice is in one split: one held out, one for validation (three or
    more installed), the rest for training; a voice whose person speaks a held-out flite voice is
    held out too. The plans draw festival items from their split's voices only, and every item no
    festival voice speaks is the one a corpus without festival has."""
    voices = {f"festival:{v}" for v in FESTIVAL_VOICES}
    assert len(voices) >= 3
    bank = load_sentences()
    for seed in range(6):
        splits = speaker_splits(seed)
        festival = {name: {s for s in speakers if s.startswith("festival:")} for name, speakers in splits.items()}
        assert set().union(*festival.values()) == voices and sum(map(len, festival.values())) == len(voices)
        assert len(festival["heldout"]) >= 1 and len(festival["val"]) == 1
        for voice, twins in SAME_PERSON.items():
            if voice in voices and set(twins) & set(splits["heldout"]):
                assert voice in splits["heldout"]
        without = {name: [s for s in speakers if not s.startswith("festival:")] for name, speakers in splits.items()}
        counts = {name: 0 for name in splits}
        for index in range(200):
            plan = _plan(index, seed, bank, splits)
            assert plan["speaker"] in splits[plan["split"]]
            if plan["synthesizer"] == "festival":
                counts[plan["split"]] += 1
                assert plan["voice"] == plan["speaker"].split(":", 1)[1] and plan["language"] == "en-us"
                assert 0.8 <= plan["settings"]["duration_stretch"] <= 1.25
                assert ("f0_mean" in plan["settings"]) == (festival_voice(plan["voice"]).f0_mean is not None)
            else:
                assert plan == _plan(index, seed, bank, without)
        assert counts["train"] > 10 and counts["val"] + counts["heldout"] > 3, counts
    # seed 0: ked_diphone (nobody else's voice) is held out; kal_diphone trains, as flite's kal16 does
    assert speaker_splits(0)["heldout"].count("festival:ked_diphone") == 1
    assert "festival:kal_diphone" in speaker_splits(0)["train"]


def test_piper_items_and_everyday_sentences():
    """The Piper voice speaks only ``train`` items, always everyday sentences, with its tempo and
    noise drawn in range; about half the other English ``train`` items say everyday sentences,
    their plans otherwise unchanged; with both shares 0 no item does (the first corpus)."""
    bank = load_sentences()
    natural = set(load_sentences(NATURAL_SENTENCES)["en"])
    assert len(natural) >= 100 and not natural & set(bank["en"])
    splits = speaker_splits(0)
    assert "piper:joe" in splits["train"] and not any(s.startswith("piper:") for s in splits["val"] + splits["heldout"])
    every_bank_sentence = {sentence for sentences in bank.values() for sentence in sentences}
    counts = {"piper": 0, "natural": 0, "english": 0}
    for index in range(300):
        plan, plain = _plan(index, 0, bank, splits), _plan(index, 0, bank, splits, 0.0, 0.0)
        assert plain["synthesizer"] != "piper" and set(plain["sentences"]) <= every_bank_sentence
        if plan["synthesizer"] == "piper":
            counts["piper"] += 1
            settings = plan["settings"]
            assert plan["split"] == "train" and plan["speaker"] == "piper:joe" and plan["language"] == "en-us"
            assert set(plan["sentences"]) <= natural and plan["text"] == " ".join(plan["sentences"])
            assert 0.8 <= settings["length_scale"] <= 1.25 and 0.4 <= settings["noise_scale"] <= 0.9
            assert 0.4 <= settings["noise_w"] <= 1.1 and isinstance(settings["seed"], int)
            continue
        english = plain["sentences"][0] in bank["en"]
        if plan["split"] == "train" and english:
            counts["english"] += 1
        if plan["sentences"] != plain["sentences"]:
            counts["natural"] += 1
            assert plan["split"] == "train" and english and set(plan["sentences"]) <= natural
            assert len(plan["sentences"]) == len(plain["sentences"])
            assert {**plan, "sentences": None, "text": None} == {**plain, "sentences": None, "text": None}
        else:
            assert plan == plain
    assert 0.15 < counts["piper"] / 240 < 0.35, counts
    assert 0.3 < counts["natural"] / counts["english"] < 0.7, counts
    with pytest.raises(ValueError, match="piper_share"):
        build_train_corpus("unused", items=1, piper_share=1.5)


def test_piper_can_say_the_bank_sentences():
    """``piper_sentences="bank"``: the same Piper items with the same voice settings, saying the
    bank's English sentences; every other item is the plan it would be without it."""
    bank = load_sentences()
    splits = speaker_splits(0)
    piper_items = 0
    for index in range(120):
        natural, said = _plan(index, 0, bank, splits, 0.25, 0.0), _plan(index, 0, bank, splits, 0.25, 0.0, "bank")
        if natural["synthesizer"] != "piper":
            assert said == natural
            continue
        piper_items += 1
        assert said["synthesizer"] == "piper" and said["settings"] == natural["settings"]
        assert said["speaker"] == natural["speaker"] and said["split"] == "train"
        assert set(said["sentences"]) <= set(bank["en"]) and said["text"] == " ".join(said["sentences"])
    assert piper_items >= 10
    with pytest.raises(ValueError, match="piper_sentences"):
        build_train_corpus("unused", items=1, piper_sentences="poems")


def test_clean_share_drops_noise_room_and_codec_of_train_items_only():
    """``clean_share``: about that share of the ``train`` items (Piper's too) lose their noise, room
    and codec and keep the rest of their plan (pitch, tempo, level, voice, text); val and held-out
    items, and every item at share 0, are the plan they would be without it."""
    bank = load_sentences()
    splits = speaker_splits(0)
    cleaned = train = 0
    for index in range(300):
        drawn, clean = _plan(index, 0, bank, splits), _plan(index, 0, bank, splits, clean_share=0.5)
        assert _plan(index, 0, bank, splits, clean_share=0.0) == drawn
        if clean == drawn:
            continue
        assert clean["split"] == "train"
        cleaned += 1
        augment = clean["augment"]
        assert augment["noise"] is None and augment["reverb"] is None and augment["codec"] is None
        assert {k: v for k, v in augment.items() if k not in ("noise", "reverb", "codec")} == \
            {k: v for k, v in drawn["augment"].items() if k not in ("noise", "reverb", "codec")}
        assert {**clean, "augment": None} == {**drawn, "augment": None}
    train = sum(_plan(index, 0, bank, splits)["split"] == "train" for index in range(300))
    # items drawn without noise, room and codec stay the same plan: fewer than half change
    assert 0.25 < cleaned / train < 0.5, (cleaned, train)
    with pytest.raises(ValueError, match="clean_share"):
        build_train_corpus("unused", items=1, clean_share=-0.1)


def test_items_have_the_contracted_arrays(corpus):
    out, _, _ = corpus
    for entry in read_manifest(out)["items"]:
        path = out / entry["file"]
        with np.load(path, allow_pickle=False) as archive:
            assert sorted(archive.files) == sorted(ITEM_KEYS)
        item = load_item(path)
        frames = entry["frames"]
        assert item["inputs"].shape == (frames, NUM_INPUTS) and item["inputs"].dtype == np.float32
        assert item["motion"].shape == (frames, NUM_CHANNELS) and item["motion"].dtype == np.float32
        assert item["conditions"].shape == (frames, len(CONDITION_CHANNELS))
        assert item["conditions"].dtype == np.float32
        assert item["canonical"].shape == (21, 3) and item["canonical"].dtype == np.float32
        assert item["phone_labels"].dtype.kind == "U" and item["phone_starts"].dtype == np.float64
        assert item["audio"].dtype == np.int16 and len(item["audio"]) == round(entry["seconds"] * 16000)
        assert item["phone_starts"][0] == 0 and item["phone_ends"][-1] == pytest.approx(entry["seconds"])
        conditions = item["conditions"]
        np.testing.assert_allclose(conditions[:, 1:1 + len(EMOTIONS)].sum(axis=1), 1.0, atol=1e-5)
        assert conditions[:, 0].min() >= 0.3 - 1e-6 and conditions[:, 0].max() <= 1.6 + 1e-6
        overrides = conditions[:, 1 + len(EMOTIONS):]  # NaN where none
        assert not np.isinf(overrides).any() and np.all(np.abs(overrides[np.isfinite(overrides)]) <= 1.0)


def test_inputs_are_what_the_run_time_path_computes(corpus):
    out, _, _ = corpus
    for entry in read_manifest(out)["items"]:
        item = load_item(out / entry["file"])
        audio = item_audio(item["audio"])
        transcript = entry["text"] if entry["phones_from_transcript"] else None
        found = phones_for(audio, transcript, language=entry["language"])
        assert (found.method == "aligned") == entry["phones_from_transcript"]
        again = neural_inputs(compute_features(audio), found.phones, entry["frames"], 25.0,
                              phones_from_transcript=entry["phones_from_transcript"])
        np.testing.assert_array_equal(again, item["inputs"])


def test_targets_and_audio_follow_the_true_phones(corpus):
    out, _, _ = corpus
    closed = total = 0
    vad = INPUT_NAMES.index("vad")
    for entry in read_manifest(out)["items"]:
        item = load_item(out / entry["file"])
        phones = _true_phones(item)
        counts = closure_counts(mouth_gap(item["motion"]), 25.0, phones)
        closed, total = closed + counts.closed_bilabials, total + counts.bilabials
        # the augmented audio's voice activity lines up with the (tempo-changed) true phones
        times = np.arange(entry["frames"]) / 25.0
        starts = np.array([p.start for p in phones])
        label = [phones[i].label for i in np.clip(np.searchsorted(starts, times, side="right") - 1, 0, None)]
        speaking = np.array([lab != SILENCE for lab in label])
        assert np.mean((item["inputs"][:, vad] > 0.5) == speaking) > 0.8, entry["id"]
    assert total >= 10 and closed / total >= 0.9


def test_same_seed_same_bytes_and_resume(corpus, tmp_path):
    out, _, _ = corpus
    again = tmp_path / "again"
    build_train_corpus(again, items=ITEMS, seed=0, workers=1)  # in this process instead of two workers
    for entry in read_manifest(out)["items"]:
        assert (again / entry["file"]).read_bytes() == (out / entry["file"]).read_bytes()
    before = _mtimes(again)
    victim = again / "items" / "000003.npz"
    original = victim.read_bytes()
    victim.unlink()
    assert main(["train", "corpus", str(again), "--items", str(ITEMS), "--workers", "1"]) == 0
    report = read_manifest(again)["report"]
    assert report["built"] == 1 and report["kept"] == ITEMS - 1
    after = _mtimes(again)
    changed = {name for name in before if after[name] != before[name]}
    assert changed == {"000003.npz", "000003.json"}
    assert victim.read_bytes() == original


def test_items_built_with_other_inputs_are_refreshed_from_their_audio(corpus, tmp_path):
    out, _, _ = corpus
    old = tmp_path / "old"
    shutil.copytree(out, old)
    record = old / "items" / "000001.json"
    meta = json.loads(record.read_text())
    del meta["input_names"]  # as a corpus built before the inputs had the rig's prior
    record.write_text(json.dumps(meta))
    build_train_corpus(old, items=ITEMS, seed=0, workers=1)
    report = read_manifest(old)["report"]
    assert report["refreshed"] == 1 and report["kept"] == ITEMS - 1 and report["built"] == 0
    assert json.loads(record.read_text())["input_names"] == list(INPUT_NAMES)
    # refreshing recomputes the inputs exactly as a build does
    for name in ("000001.npz", "000001.json"):
        assert (old / "items" / name).read_bytes() == (out / "items" / name).read_bytes()


def test_bad_files_are_named(corpus, tmp_path):
    out, _, _ = corpus
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CorpusError, match="broken.npz"):
        load_item(broken)
    partial = tmp_path / "partial.npz"
    with zipfile.ZipFile(out / "items" / "000000.npz") as source, zipfile.ZipFile(partial, "w") as target:
        for name in source.namelist():
            if name != "motion.npy":
                target.writestr(name, source.read(name))
    with pytest.raises(CorpusError, match=r"partial.npz.*motion"):
        load_item(partial)
    with pytest.raises(CorpusError, match="manifest.json"):
        read_manifest(tmp_path)
    copy = tmp_path / "copy"
    (copy / "items").mkdir(parents=True)
    (copy / "manifest.json").write_text((out / "manifest.json").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(CorpusError, match="000000.npz"):
        read_manifest(copy)


def test_cli_train_fit_names_what_it_needs(capsys):
    assert main(["train", "fit"]) == 2
    assert "needs the training data" in capsys.readouterr().err
    assert main(["train", "fit", "corpus", "--threads", "0"]) == 2
    assert "--threads must be ≥ 1, got 0" in capsys.readouterr().err


def test_cli_train_corpus_refuses_a_share_out_of_range(capsys, tmp_path):
    for option in ("--piper-share", "--natural-share", "--clean-share"):
        assert main(["train", "corpus", str(tmp_path / "out"), "--items", "1", option, "1.5"]) == 2
        assert "must be 0…1, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _corpus_eval_set_tool():
    """tools/corpus_eval_set.py as a module (tools/ is not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("corpus_eval_set", Path(__file__).parents[1] / "tools" / "corpus_eval_set.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_corpus_eval_set_tool_writes_items_the_eval_scores_with_their_true_phones(corpus, tmp_path):
    """tools/corpus_eval_set.py: each English item's augmented audio, true phones and text, read
    back by the eval's manifest reader exactly as the corpus holds them."""
    from studio.audio.decode import load_audio
    from studio.generate.evaluate import items_from_manifest

    tool = _corpus_eval_set_tool()
    out_dir, manifest, _ = corpus
    english = [e for e in json.loads(manifest.read_text())["items"] if e["language"].startswith("en")]
    assert english, "the fixture corpus has English items"
    out = tmp_path / "eval"
    assert tool.main([str(out_dir), str(out), "--items", "3"]) == 0
    written = json.loads((out / "manifest.json").read_text())["items"]
    assert [w["source_item"] for w in written] == [e["id"] for e in english[:3]]
    items = items_from_manifest(out / "manifest.json")
    for entry, item in zip(english, items):
        source = load_item(out_dir / entry["file"])
        assert np.array_equal(load_audio(item.audio).samples, source["audio"] / 32768.0)
        assert [p.label for p in item.reference] == source["phone_labels"].tolist()
        assert np.allclose([p.start for p in item.reference], source["phone_starts"], atol=1e-6)
        assert item.transcript == entry["text"]
    # a filter no item passes: nothing written, exit 1
    assert tool.main([str(out_dir), str(tmp_path / "none"), "--synthesizer", "no-such-voice"]) == 1
    assert not (tmp_path / "none" / "manifest.json").exists()


def test_corpus_eval_set_tool_tells_everyday_sentences_from_the_bank():
    tool = _corpus_eval_set_tool()
    natural = tool.natural_sentences()
    bank = load_sentences()["en"]
    assert tool.says(f"{natural[3]} {natural[10]}", natural) == "natural"
    assert tool.says(natural[0], natural) == "natural"
    assert tool.says(f"{natural[3]} {bank[0]}", natural) == "bank"
    assert tool.says(bank[1], natural) == "bank"
