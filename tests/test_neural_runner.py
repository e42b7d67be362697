"""Running the neural model: ONNX export and runner, the streaming driver (blending, progress,
cancel), ``studio generate --generator neural``, checkpoints that resume, fine-tuning on a motion
dataset, the benchmark."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from test_neural_model import TINY, tiny_model

from studio.cli import main
from studio.core.motion import CHANNEL_INDEX, NUM_CHANNELS
from studio.core.motion_file import Motion, write_motion
from studio.generate.neural.corpus import build_train_corpus, load_item, read_manifest
from studio.generate.neural.inputs import NUM_INPUTS
from studio.generate.neural.model import euler, flow_times
from studio.generate.neural.runner import (
    CHECKPOINT_FORMAT,
    OnnxRunner,
    TorchRunner,
    bench_neural,
    chunk_starts,
    export_onnx,
    format_bench_neural,
    load_checkpoint,
    stream_motion,
)
from studio.generate.neural.train import FitOptions, fit, save_checkpoint
from studio.generate.pipeline import Cancelled, GenerateError, GenerateRequest, generate
from studio.generate.rig import default_conditions, num_frames_for

STEPS = 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = tiny_model(seed=3)
    path = tmp_path_factory.mktemp("neural-model") / "tiny.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "version": 1, "config": model.config.to_dict(),
                           "model": model.state_dict()})
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("neural-corpus")
    build_train_corpus(out, items=4, seed=0, workers=1)
    return out


def _inputs(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((frames, NUM_INPUTS)).astype(np.float32)


def _stream(runner, frames=130, **kwargs):
    kwargs.setdefault("steps", STEPS)
    return list(stream_motion(runner, _inputs(frames), default_conditions(frames, emotion="happy"), **kwargs))


@pytest.fixture(scope="module")
def exported(checkpoint):
    onnx_path = checkpoint.with_suffix(".onnx")
    return onnx_path, export_onnx(checkpoint, onnx_path)


def test_onnx_export_matches_torch(checkpoint, exported):
    onnx_path, report = exported
    assert report["max_difference"] <= 1e-3 and onnx_path.stat().st_size == report["bytes"]
    onnx_runner = OnnxRunner(onnx_path, device="cpu")
    assert onnx_runner.device == "cpu" and onnx_runner.config == TorchRunner(checkpoint, "cpu").config
    for guidance in (1.0, 2.5):
        a = np.concatenate([c.values for c in _stream(TorchRunner(checkpoint, "cpu"), guidance=guidance)])
        b = np.concatenate([c.values for c in _stream(onnx_runner, guidance=guidance)])
        assert np.abs(a - b).max() <= 1e-3


def test_onnx_runner_warns_when_cuda_is_asked_for_and_missing(checkpoint, exported):
    onnx_path, _ = exported
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = OnnxRunner(onnx_path, device="cuda")
    if "CUDAExecutionProvider" in runner.session.get_providers():
        assert runner.device == "cuda" and not caught
    else:
        assert runner.device == "cpu"
        assert any("CUDA was asked for" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="not a usable ONNX model|not an exported"):
        OnnxRunner(checkpoint)


def test_chunk_starts_cover_the_frames():
    assert chunk_starts(50, 80, 10) == [0]
    assert chunk_starts(80, 80, 10) == [0]
    assert chunk_starts(100, 80, 10) == [0, 20]
    assert chunk_starts(300, 80, 10) == [0, 70, 140, 210, 220]
    with pytest.raises(ValueError):
        chunk_starts(100, 80, 80)


class _OracleRunner:
    """A runner whose flow carries every chunk exactly to a known smooth curve plus an offset of
    its own (±``offset`` by chunk parity), ignoring the reference: chunks that disagree."""

    def __init__(self, config, offset):
        self.config, self.device, self.offset = config, "cpu", offset
        self.motion_mean = np.zeros(NUM_CHANNELS, np.float32)
        self.motion_std = np.ones(NUM_CHANNELS, np.float32)
        self.chunks = 0

    def sampling(self):
        return torch.no_grad()

    def prepare(self, window, variants=("full",)):
        start = round(float(window.audio[self.config.reference, 0]))  # the test's inputs carry the frame number
        frames = start + np.arange(self.config.chunk)
        target = np.sin(2 * np.pi * frames / 100.0)[:, None] * np.ones(NUM_CHANNELS)
        self.chunks += 1
        return target + (self.offset if self.chunks % 2 else -self.offset)

    def velocity(self, target, x, t):
        return (target[None] - x) / (1.0 - t)


def test_the_cross_fade_hides_disagreeing_chunks():
    config = tiny_model().config
    frames = 200
    inputs = np.zeros((frames, NUM_INPUTS), np.float32)
    inputs[:, 0] = np.arange(frames)
    truth = np.sin(2 * np.pi * np.arange(frames) / 100.0)
    own = np.abs(np.diff(truth)).max()  # the motion's own largest frame-to-frame change

    def border_steps(overlap):
        runner = _OracleRunner(config, offset=0.1)
        pieces = list(stream_motion(runner, inputs, default_conditions(frames), steps=3, overlap=overlap))
        x = np.concatenate([p.values for p in pieces])[:, CHANNEL_INDEX["exp.nose_tip.x"]]
        starts = chunk_starts(frames, config.chunk, overlap)
        steps = np.abs(np.diff(x))
        return max(steps[s - 1:s + overlap].max() for s in starts[1:]), steps

    hard, _ = border_steps(0)
    soft, steps = border_steps(10)
    assert hard > 0.19 and hard > 2 * own          # chunks 0.2 apart jump without an overlap
    assert soft <= own + 0.2 / 11 + 1e-5           # with one, the 0.2 is spread over 11 frames
    assert steps.max() <= own + 0.2 / 11 + 1e-5


def test_streaming_yields_chunks_as_they_finish_and_honours_cancel(checkpoint):
    runner = TorchRunner(checkpoint, "cpu")
    C = runner.config.chunk
    calls = []
    prepare = runner.prepare
    runner.prepare = lambda window, variants=("full",): calls.append(1) or prepare(window, variants)
    frames = 130
    stream = stream_motion(runner, _inputs(frames), default_conditions(frames), steps=STEPS)
    first = next(stream)
    assert len(calls) == 1 and first.start == 0 and first.end == C - 10 and first.index == 0
    rest = list(stream)
    pieces = [first, *rest]
    assert [p.start for p in pieces[1:]] == [p.end for p in pieces[:-1]] and pieces[-1].end == frames
    assert len(calls) == len(pieces) == len(chunk_starts(frames, C, 10)) and pieces[-1].fraction == 1.0
    # a smaller chunk gives the first frames earlier
    early = next(stream_motion(runner, _inputs(frames), default_conditions(frames), steps=STEPS, chunk=12))
    assert early.end == 2
    calls.clear()
    seen = []
    stream = stream_motion(runner, _inputs(frames), default_conditions(frames), steps=STEPS, cancel=lambda: bool(seen))
    seen.append(next(stream))
    with pytest.raises(Cancelled):
        next(stream)
    assert len(calls) == 1


def test_eye_overrides_and_lips_are_respected(checkpoint):
    runner = TorchRunner(checkpoint, "cpu")
    conditions = default_conditions(60)
    conditions[10:30, -4:-2] = 1.0     # eyes held closed
    motion = np.concatenate([p.values for p in stream_motion(runner, _inputs(60), conditions, steps=STEPS)])
    assert np.all(motion[10:30, CHANNEL_INDEX["eye.blink_l"]] == 1.0)
    assert np.all((motion[:, CHANNEL_INDEX["eye.blink_r"]] >= 0) & (motion[:, CHANNEL_INDEX["eye.blink_r"]] <= 1))
    assert np.all(motion[:, CHANNEL_INDEX["exp.lip_lower_center.y"]] <= motion[:, CHANNEL_INDEX["exp.lip_upper_center.y"]])


@pytest.fixture(scope="module")
def speech(tmp_path_factory, corpus):
    """A corpus item's audio as a WAV, with its motion as a motion file beside it (a motion dataset)."""
    folder = tmp_path_factory.mktemp("motion-dataset")
    entry = read_manifest(corpus)["items"][0]
    item = load_item(corpus / entry["file"])
    sf.write(folder / "take.wav", item["audio"], 16000, subtype="PCM_16")
    write_motion(Motion(item["motion"], 25.0, item["canonical"]), folder / "take.json")
    return folder


def test_generate_neural_without_weights_is_a_clear_error(speech, tmp_path, capsys):
    missing = tmp_path / "models" / "best.pt"
    out = tmp_path / "motion.json"
    assert main(["generate", str(speech / "take.wav"), "--generator", "neural", "--model", str(missing),
                 "-o", str(out)]) == 2
    message = capsys.readouterr().err
    assert f"no trained neural model at {missing}" in message and "studio train fit" in message
    assert not out.exists()
    with pytest.raises(GenerateError, match="studio train fit CORPUS --out models/neural"):
        generate(GenerateRequest(speech / "take.wav", generator="neural", model=missing))


def test_generate_neural_end_to_end(speech, checkpoint, tmp_path):
    request = GenerateRequest(speech / "take.wav", generator="neural", model=checkpoint, fps=30, steps=STEPS,
                              seed=4, emotion="sad", device="cpu")
    fractions = []
    result = generate(request, progress=fractions.append)
    motion = result.motion
    assert motion.fps == 30 and len(motion) == num_frames_for(result.duration, 30)
    assert np.all(np.isfinite(motion.values)) and fractions[-1] == pytest.approx(1.0)
    assert np.array_equal(generate(request).motion.values, motion.values)
    out = tmp_path / "neural.npz"
    assert main(["generate", str(speech / "take.wav"), "--generator", "neural", "--model", str(checkpoint),
                 "--steps", "2", "--device", "cpu", "-o", str(out)]) == 0 and out.exists()
    seen = []  # cancelled once the motion stage has reported its first chunk
    with pytest.raises(Cancelled, match="frames"):
        generate(request, progress=seen.append, cancel=lambda: bool(seen) and 0.9 < seen[-1] < 1.0)


def test_training_checkpoints_resume_and_choose_by_lip_score(corpus, tmp_path):
    # a warm-up longer than the runs: the learning rate then does not depend on the planned length
    options = FitOptions(batch=4, seed=5, threads=1, warmup=100, config=TINY, log_every=2)
    straight = fit(corpus, tmp_path / "straight", options=replace(options, steps=8), log=lambda s: None)
    assert straight["step"] == 8
    fit(corpus, tmp_path / "resumed", options=replace(options, steps=5), log=lambda s: None)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["train"]["step"] == 5
    again = fit(corpus, tmp_path / "resumed", options=replace(options, steps=8), log=lambda s: None)
    assert again["step"] == 8
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for name, value in a["train"]["weights"].items():
        assert torch.allclose(value, b["train"]["weights"][name], atol=1e-6), name
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["resumed"] for r in log if r["event"] == "start"] == [False, True]
    validations = [r for r in log if r["event"] == "validate"]
    assert validations and {"closure_recall", "mouth_correlation", "false_closure_rate", "score"} <= set(validations[0])
    best = load_checkpoint(tmp_path / "resumed" / "best.pt")
    assert "train" not in best and best["metrics"]["score"] == max(v["score"] for v in validations)
    runner = TorchRunner(tmp_path / "resumed" / "best.pt", device="auto")
    assert runner.device == "cpu" or runner.device.startswith("cuda")
    assert _stream(runner, frames=40)[-1].end == 40


def test_cli_fit_takes_a_new_models_config(corpus, tmp_path, capsys):
    fields = ",".join(f"{k}={v}" for k, v in TINY.items())
    out = tmp_path / "absolute"
    assert main(["train", "fit", str(corpus), "--out", str(out), "--steps", "2", "--batch", "2",
                 "--model-config", f"{fields},mouth_residual=true,mel_augment=0.5"]) == 0
    config = load_checkpoint(out / "best.pt")["config"]
    assert config["mouth_residual"] is True and config["mel_augment"] == 0.5 and config["width"] == TINY["width"]
    for bad, message in (("widht=3", "no field 'widht'"), ("width=wide", "width is int"),
                         ("mouth_residual=maybe", "mouth_residual is bool"), ("width", "FIELD=VALUE pairs")):
        assert main(["train", "fit", str(corpus), "--out", str(tmp_path / "x"), "--model-config", bad]) == 2
        assert message in capsys.readouterr().err


def test_fine_tuning_on_a_motion_dataset(speech, corpus, tmp_path):
    base = tmp_path / "base"
    fit(corpus, base, options=FitOptions(steps=2, batch=2, threads=1, config=TINY), log=lambda s: None)
    out = tmp_path / "tuned"
    summary = fit(speech, out, init=base / "best.pt", options=FitOptions(steps=3, batch=2, threads=1), log=lambda s: None)
    assert summary["step"] == 3 and (out / "inputs" / "take.npz").is_file() and (out / "best.pt").is_file()
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["init"] == str(base / "best.pt") and start["kind"] == "motion dataset" and start["train_items"] == 1
    # a fine-tuning run may change how it regularizes, never the architecture or the inputs
    fit(speech, tmp_path / "augmented", init=base / "best.pt",
        options=FitOptions(steps=1, batch=2, threads=1, config={"mel_augment": 0.5, "acoustic_dropout": 0.3}),
        log=lambda s: None)
    config = load_checkpoint(tmp_path / "augmented" / "best.pt")["config"]
    assert config["mel_augment"] == 0.5 and config["acoustic_dropout"] == 0.3 and config["width"] == TINY["width"]
    with pytest.raises(ValueError, match="width cannot change"):
        fit(speech, tmp_path / "wider", init=base / "best.pt",
            options=FitOptions(steps=1, config={"width": 128, "mel_augment": 0.5}), log=lambda s: None)
    (speech / "orphan.json").write_bytes((speech / "take.json").read_bytes())
    try:
        with pytest.raises(ValueError, match="orphan.json: no audio beside it"):
            fit(speech, tmp_path / "broken", init=base / "best.pt", options=FitOptions(steps=1), log=lambda s: None)
    finally:
        (speech / "orphan.json").unlink()


def test_two_fine_tunes_of_one_model_average_tensor_by_tensor(corpus, tmp_path, capsys):
    base = tmp_path / "base"
    fit(corpus, base, options=FitOptions(steps=2, batch=2, threads=1, config=TINY), log=lambda s: None)
    for name, seed, changes in (("a", 1, {"closure_weight": 3.0}), ("b", 2, {})):
        fit(corpus, tmp_path / name, init=base / "best.pt", log=lambda s: None,
            options=FitOptions(steps=3, batch=2, threads=1, seed=seed, config=changes))
    first, second = tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt"
    out = tmp_path / "soup.pt"
    assert main(["train", "average", str(first), str(second), "--weight", "0.25", "--out", str(out),
                 "--validate", str(corpus)]) == 0
    assert "0.25 × " in capsys.readouterr().out
    a, b, soup = (load_checkpoint(p) for p in (first, second, out))
    assert "train" not in soup and soup["config"]["closure_weight"] == 3.0  # training fields: the first's
    assert soup["metrics"]["items"] == 1 and {"closure_recall", "mouth_correlation", "score"} <= set(soup["metrics"])
    assert soup["data"]["weight"] == 0.25 and [s["step"] for s in soup["data"]["sources"]] == [3, 3]
    moved = 0
    for name, value in soup["model"].items():
        assert value.dtype == a["model"][name].dtype
        assert torch.allclose(value, 0.25 * a["model"][name] + 0.75 * b["model"][name], atol=1e-6), name
        moved += not torch.equal(a["model"][name], b["model"][name])
    assert moved > 10  # the two fine-tunes really differ, so the average is not one of them
    assert torch.equal(soup["model"]["motion_std"], a["model"]["motion_std"])
    assert _stream(TorchRunner(out, device="cpu"), frames=40)[-1].end == 40
    whole = tmp_path / "whole.pt"
    assert main(["train", "average", str(first), str(second), "--weight", "1", "--out", str(whole)]) == 0
    assert all(torch.equal(v, a["model"][k]) for k, v in load_checkpoint(whole)["model"].items())
    assert load_checkpoint(whole)["metrics"] == {}

    # what cannot be averaged says why, and writes nothing
    other = tmp_path / "other"
    fit(corpus, other, options=FitOptions(steps=1, batch=2, threads=1, config={**TINY, "width": 24}),
        log=lambda s: None)
    renormalized = tmp_path / "renormalized.pt"
    changed = load_checkpoint(second)
    changed["model"]["motion_mean"] = changed["model"]["motion_mean"] + 0.1
    save_checkpoint(renormalized, changed)
    bad = tmp_path / "bad.pt"
    for args, message in (([first, second, "--weight", "1.5"], "within 0…1"),
                          ([first, other / "last.pt"], "differ in width"),
                          ([first, renormalized], "differ in motion_mean"),
                          ([first, tmp_path / "missing.pt"], "no trained neural model"),
                          ([first], "needs two checkpoints")):
        assert main(["train", "average", *map(str, args), "--out", str(bad)]) == 2
        assert message in capsys.readouterr().err
        assert not bad.exists()
    assert main(["train", "export", str(first), str(second), "--out", str(bad)]) == 2
    assert "takes one folder or file" in capsys.readouterr().err


def test_bench_neural_reports_the_motion_stage_and_the_first_chunk(checkpoint):
    result = bench_neural(checkpoint, seconds=6, steps=2, repeat=1, device="cpu")
    assert result["frames"] == 150 and result["chunks"] == len(chunk_starts(150, 24, 10))
    assert 0 < result["first_chunk_median_s"] <= result["motion_median_s"]
    assert result["inputs_median_s"] > 0 and "model inputs" in format_bench_neural(result)


def test_euler_integrates_a_straight_flow_exactly():
    target = np.array([2.0, -1.0])
    x = euler(lambda x, t: (target - x) / (1.0 - t), np.zeros(2), steps=5)
    assert np.allclose(x, target) and flow_times(2).tolist() == [0.0, 0.5, 1.0]


def test_lipsync_evaluation_scores_the_neural_generator(speech, checkpoint, corpus):
    """`studio eval lipsync --generator neural` scores the model's own motion (its lag measured on
    the model's mouth interpolated to the lag's grid), against the item's true phones."""
    from studio.audio.phones import Phone
    from studio.generate.evaluate import EvalItem, evaluate_lipsync

    entry = read_manifest(corpus)["items"][0]
    item = load_item(corpus / entry["file"])
    phones = tuple(Phone(str(label), float(a), float(b), 0)
                   for label, a, b in zip(item["phone_labels"], item["phone_starts"], item["phone_ends"]))
    report = evaluate_lipsync([EvalItem(speech / "take.wav", phones, None, "en-us", "take")], with_transcript=False,
                              generator="neural", model=checkpoint)
    score = report.items[0]
    assert score.counts.bilabials > 0 and np.isfinite(score.correlation) and np.isfinite(score.lag_ms)


def test_controls_evaluation_reports_diversity_and_emotion_offsets(speech, checkpoint, corpus, capsys):
    """`studio eval controls`: two seeds, eight emotions, on the real generation path."""
    from studio.audio.phones import Phone
    from studio.generate.evaluate import EvalItem, evaluate_controls, format_controls

    entry = read_manifest(corpus)["items"][0]
    item = load_item(corpus / entry["file"])
    phones = tuple(Phone(str(label), float(a), float(b), 0)
                   for label, a, b in zip(item["phone_labels"], item["phone_starts"], item["phone_ends"]))
    report = evaluate_controls([EvalItem(speech / "take.wav", phones, None, "en-us", "take")], model=checkpoint,
                               steps=STEPS)
    assert report["items"] == 1 and report["bilabials"] > 0 and len(report["closure_recall_by_seed"]) == 2
    assert report["head_rms_difference_deg"] > 0  # the seeds draw different noise
    assert set(report["emotions"]) == {"happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt"}
    # the (untrained, randomly weighted) model still reads its emotion input: every label moves the face
    assert all(e["offset_norm"] > 0 and len(e["largest"]) == 3 for e in report["emotions"].values())
    text = format_controls(report)
    assert "between the seeds" in text and "happy" in text


def test_a_mouth_residual_model_adds_the_rigs_mouth_and_reads_its_reference_without_it():
    from studio.generate.neural.inputs import prior_motion
    from studio.generate.neural.model import MotionFlowModel

    absolute = tiny_model(seed=5)
    assert not absolute.config.mouth_residual  # the default: the whole motion
    whole = MotionFlowModel(replace(absolute.config, mouth_residual=True)).eval()
    whole.load_state_dict(absolute.state_dict())
    residual_runner, absolute_runner = TorchRunner.from_model(whole, "cpu"), TorchRunner.from_model(absolute, "cpu")
    frames = whole.config.chunk  # one chunk: no reference frames, the same network output
    inputs, conditions = _inputs(frames, seed=2), default_conditions(frames)
    prior = prior_motion(inputs)
    assert np.abs(prior).max() > 0.05
    a = np.concatenate([c.values for c in stream_motion(residual_runner, inputs, conditions, steps=STEPS)])
    b = np.concatenate([c.values for c in stream_motion(absolute_runner, inputs, conditions, steps=STEPS)])
    lip_down, eyes = CHANNEL_INDEX["exp.lip_lower_center.y"], slice(CHANNEL_INDEX["eye.blink_l"], NUM_CHANNELS)
    keep = np.ones(NUM_CHANNELS, bool)
    keep[[lip_down]] = keep[eyes] = False  # finish_frames clamps these after the prior is added
    np.testing.assert_allclose(a[:, keep], (b + prior)[:, keep], atol=1e-5)

    # more chunks: each reads the motion it already made less the prior as its reference
    frames = 3 * whole.config.chunk
    inputs, conditions = _inputs(frames, seed=3), default_conditions(frames)
    references, prepare = [], residual_runner.prepare
    residual_runner.prepare = lambda window, variants=("full",): references.append(window) or prepare(window, variants)
    motion = np.concatenate([c.values for c in stream_motion(residual_runner, inputs, conditions, steps=STEPS)])
    R, prior = whole.config.reference, prior_motion(inputs)
    starts = chunk_starts(frames, whole.config.chunk, 10)
    assert len(references) == len(starts) > 1
    for window, start in zip(references[1:], starts[1:]):
        np.testing.assert_allclose(window.reference, (motion - prior)[start - R:start], atol=1e-5)
