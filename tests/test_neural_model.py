"""The neural motion model: size, the selective scan, shapes and masks, training on a tiny real
corpus, seeded sampling and classifier-free guidance on emotion."""

import numpy as np
import pytest
import torch

from studio.core.document import CONDITION_CHANNELS, EMOTIONS
from studio.core.motion import NUM_CHANNELS
from studio.generate.neural.corpus import build_train_corpus
from studio.generate.neural.inputs import (
    ACOUSTIC_CHANNELS,
    ACOUSTIC_FLAG,
    INPUT_NAMES,
    MEL_BANDS,
    NUM_INPUTS,
)
from studio.generate.neural.model import (
    CONTROL_NAMES,
    LOSS_GROUPS,
    ModelConfig,
    MotionFlowModel,
    augment_mel,
    chunk_noise,
    drop_acoustic,
    drop_emotion,
    encode_controls,
    parameter_count,
    selective_scan,
    selective_scan_reference,
    window_roles,
)
from studio.generate.neural.runner import (
    TorchRunner,
    Window,
    make_window,
    stream_motion,
)
from studio.generate.neural.train import (
    Clip,
    TrainError,
    WindowSampler,
    corpus_clips,
    motion_statistics,
)
from studio.generate.rig import default_conditions

TINY = {"chunk": 24, "reference": 4, "lookahead": 4, "width": 32, "blocks": "SA", "heads": 2, "ssm_heads": 2,
        "cond_width": 32, "audio_width": 32, "audio_layers": 1}


def tiny_model(seed: int = 0) -> MotionFlowModel:
    """A tiny model whose zero-initialized layers (adaLN-Zero, output) are given random weights, so
    that every input — emotion included — changes its output before any training."""
    torch.manual_seed(seed)
    model = MotionFlowModel(ModelConfig(num_inputs=NUM_INPUTS, **TINY))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "loss_log_vars" and not p.abs().sum():
                p.normal_(0.0, 0.2)
    return model.eval()


def window_batch(config: ModelConfig, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    T = 200
    inputs = rng.standard_normal((T, config.num_inputs)).astype(np.float32)
    motion = rng.normal(0, 0.05, (T, NUM_CHANNELS)).astype(np.float32)
    controls = encode_controls(default_conditions(T, emotion="happy", strength=0.7))
    windows = [make_window(inputs, controls, np.zeros(63, np.float32), motion, 60 + 7 * i, config, config.chunk)
               for i in range(batch)]
    out = {k: torch.from_numpy(np.stack([getattr(w, k) for w in windows]))
           for k in ("audio", "controls", "identity", "reference", "roles")}
    out["x"] = torch.from_numpy(rng.standard_normal((batch, config.chunk, NUM_CHANNELS)).astype(np.float32))
    out["t"] = torch.tensor([0.3, 0.8][:batch])
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A real training corpus of 4 items (espeak-ng/flite/festival speech, recognition, rig targets): items
    0, 1 and 3 train, item 2 validates."""
    out = tmp_path_factory.mktemp("neural-corpus")
    build_train_corpus(out, items=4, seed=0, workers=1)
    return out


def test_the_default_model_has_at_most_ten_million_parameters():
    model = MotionFlowModel(ModelConfig(num_inputs=NUM_INPUTS))
    count = parameter_count(model)
    print(f"default config: {count:,} parameters")
    assert 500_000 < count <= 10_000_000
    assert sorted(i for g in LOSS_GROUPS.values() for i in g) == list(range(NUM_CHANNELS))
    assert len(CONTROL_NAMES) == 18


def test_the_scan_equals_the_sequential_recurrence():
    torch.manual_seed(1)
    b, T, H, P, N = 2, 90, 3, 5, 4
    x = torch.randn(b, T, H, P, dtype=torch.float64)
    B, C = torch.randn(b, T, N, dtype=torch.float64), torch.randn(b, T, N, dtype=torch.float64)
    A = -torch.exp(torch.randn(H, N, dtype=torch.float64))
    for scale in (0.05, 1.0, 30.0):  # slow decays … decays clamped at the floor
        delta = torch.nn.functional.softplus(torch.randn(b, T, H, dtype=torch.float64)) * scale
        reference = selective_scan_reference(x, delta, A, B, C)
        assert torch.allclose(selective_scan(x, delta, A, B, C), reference, atol=1e-10)
        got = selective_scan(*(a.float() for a in (x, delta, A, B, C)))
        assert torch.allclose(got.double(), reference, atol=1e-4 * (1 + reference.abs().max()))
    leaves = [a.float().requires_grad_() for a in (x, delta, A, B, C)]
    selective_scan(*leaves).square().sum().backward()
    assert all(torch.isfinite(a.grad).all() for a in leaves)


def test_velocity_shapes_dtypes_and_masks():
    model = tiny_model()
    config = model.config
    batch = window_batch(config)
    args = [batch[k] for k in ("x", "t", "audio", "controls", "identity", "reference", "roles")]
    with torch.no_grad():
        v = model(*args)
        assert v.shape == (2, config.chunk, NUM_CHANNELS) and v.dtype == torch.float32
        context = model.encode(*args[2:])
        assert torch.allclose(model.step(batch["x"], batch["t"], context), v, atol=1e-6)
        assert torch.allclose(model.step(batch["x"], batch["t"], context, model.time_parts(batch["t"])), v)
        # padding frames (role 3) change nothing before them: not attended to, after every SSM frame
        roles = batch["roles"].clone()
        roles[:, config.reference + 20:] = torch.tensor([0.0, 0.0, 0.0, 1.0])
        masked = model(*args[:6], roles)
        x = batch["x"].clone()
        x[:, 20:] = 7.0
        assert torch.allclose(model(x, *args[1:6], roles)[:, :20], masked[:, :20], atol=1e-5)
        # missing reference frames (role 1) are not read
        roles[:, :config.reference] = torch.tensor([0.0, 1.0, 0.0, 0.0])
        a = model(*args[:5], batch["reference"], roles)
        b = model(*args[:5], batch["reference"] + 3.0, roles)
        assert torch.equal(a, b)
        assert not torch.allclose(model(*args[:5], batch["reference"] + 3.0, batch["roles"]), v)


def test_controls_encode_conditions_and_drop_emotion():
    conditions = default_conditions(5, emotion="sad", strength=0.6, intensity=1.5)
    conditions[2, 0] = np.nan
    conditions[3, 1 + len(EMOTIONS) + 2] = 0.4  # gaze x override
    controls = encode_controls(conditions)
    assert controls.shape == (5, 18) and controls.dtype == np.float32
    assert controls[0, 0] == pytest.approx(0.5) and controls[2, 0] == 0.0  # NaN intensity reads 1
    assert controls[0, 1 + EMOTIONS.index("sad")] == pytest.approx(0.6)
    assert controls[0, 1] == pytest.approx(0.4) and np.all(controls[:, 1 + len(EMOTIONS)] == 1.0)
    gaze = CONTROL_NAMES.index("override.eye.gaze_x"), CONTROL_NAMES.index("override_set.eye.gaze_x")
    assert controls[3, gaze[0]] == pytest.approx(0.4) and controls[3, gaze[1]] == 1.0 and controls[2, gaze[1]] == 0.0
    dropped = drop_emotion(controls)
    assert np.all(dropped[:, 1:2 + len(EMOTIONS)] == 0) and np.array_equal(dropped[:, gaze[0]], controls[:, gaze[0]])
    with pytest.raises(ValueError, match="13"):
        encode_controls(np.zeros((5, 12)))
    assert len(CONDITION_CHANNELS) == 13
    roles = window_roles([False, True], [True, False])
    assert roles.argmax(-1).tolist() == [1, 0, 2, 3]


def test_a_tiny_model_learns_on_a_real_corpus(corpus):
    clips = corpus_clips(corpus, "train")
    assert len(clips) == 3 and all(c.inputs.shape[1] == NUM_INPUTS for c in clips)
    mean, std = motion_statistics(clips)
    torch.manual_seed(0)
    model = MotionFlowModel(ModelConfig(num_inputs=NUM_INPUTS, **TINY), mean, std).train()
    sampler = WindowSampler(clips, model.config)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    totals, flows = [], []
    for _ in range(60):
        batch = {k: torch.from_numpy(v) for k, v in sampler.sample(rng, 8).items()}
        assert batch["motion"].shape == (8, model.config.window, NUM_CHANNELS)
        loss, parts = model.loss(batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(float(loss.detach()))
        flows.append(parts["flow"])
    print(f"loss {np.mean(totals[:10]):.3f} → {np.mean(totals[-10:]):.3f}, "
          f"velocity MSE {np.mean(flows[:10]):.3f} → {np.mean(flows[-10:]):.3f}")
    assert np.mean(totals[-10:]) < np.mean(totals[:10]) - 1.0
    assert np.mean(flows[-10:]) < 0.85 * np.mean(flows[:10])


def _generate(runner, conditions, seed=0, guidance=1.0):
    inputs = np.random.default_rng(5).standard_normal((len(conditions), NUM_INPUTS)).astype(np.float32)
    return np.concatenate([c.values for c in stream_motion(runner, inputs, conditions, steps=4, seed=seed,
                                                           guidance=guidance)])


def test_sampling_is_deterministic_per_seed_and_differs_across_seeds():
    runner = TorchRunner.from_model(tiny_model(), device="cpu")
    conditions = default_conditions(70)
    a, b, c = (_generate(runner, conditions, seed=s) for s in (1, 1, 2))
    assert a.shape == (70, NUM_CHANNELS) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_guidance_on_emotion():
    runner = TorchRunner.from_model(tiny_model(), device="cpu")
    happy, sad = default_conditions(50, emotion="happy"), default_conditions(50, emotion="sad")
    plain, guided = _generate(runner, happy), _generate(runner, happy, guidance=3.0)
    assert np.abs(plain - guided).mean() > 1e-3
    assert np.abs(guided - _generate(runner, sad, guidance=3.0)).mean() > np.abs(plain - _generate(runner, sad)).mean()
    # the guided batch is (emotion kept, emotion dropped)
    window = make_window(np.zeros((50, NUM_INPUTS), np.float32), encode_controls(happy), np.zeros(63, np.float32),
                         np.zeros((50, NUM_CHANNELS), np.float32), 0, runner.config, runner.config.chunk)
    x = np.random.default_rng(0).standard_normal((1, runner.config.chunk, NUM_CHANNELS)).astype(np.float32)
    rows = runner.velocity(runner.prepare(window, ("full", "no_emotion", "no_acoustic")), np.concatenate([x, x, x]), 0.5)
    dropped = Window(window.audio, drop_emotion(window.controls), window.identity, window.reference, window.roles)
    deaf = Window(drop_acoustic(window.audio), window.controls, window.identity, window.reference, window.roles)
    assert np.allclose(rows[0], runner.velocity(runner.prepare(window), x, 0.5)[0], atol=1e-5)
    assert np.allclose(rows[1], runner.velocity(runner.prepare(dropped), x, 0.5)[0], atol=1e-5)
    assert np.allclose(rows[2], runner.velocity(runner.prepare(deaf), x, 0.5)[0], atol=1e-5)


def test_audio_trust_interpolates_towards_the_model_without_the_sound():
    """``audio_trust`` 0 is the model with the acoustic inputs blanked, as its training's acoustic
    dropout showed it; 1 is plain sampling; between, in between."""
    runner = TorchRunner.from_model(tiny_model(), device="cpu")
    conditions = default_conditions(60)
    inputs = np.random.default_rng(5).standard_normal((60, NUM_INPUTS)).astype(np.float32)
    inputs[:, ACOUSTIC_FLAG] = 1.0

    def run(x, trust):
        return np.concatenate([p.values for p in stream_motion(runner, x, conditions, steps=3, audio_trust=trust)])

    full, deaf, half = run(inputs, 1.0), run(inputs, 0.0), run(inputs, 0.5)
    np.testing.assert_allclose(deaf, run(drop_acoustic(inputs), 1.0), atol=1e-4)
    assert np.abs(full - deaf).mean() > 1e-3
    assert np.abs(half - full).mean() < np.abs(deaf - full).mean()


def test_training_blanks_the_acoustic_inputs_of_a_share_of_windows():
    model = MotionFlowModel(ModelConfig(num_inputs=NUM_INPUTS, **TINY, acoustic_dropout=0.5, mel_augment=0.0)).train()
    batch = window_batch(model.config, batch=64)
    batch["audio"][..., ACOUSTIC_FLAG] = 1.0
    batch["motion"] = torch.cat([batch["reference"], batch["x"]], 1)
    seen = []
    forward = model.forward
    model.forward = lambda x, t, audio, *rest: seen.append(audio) or forward(x, t, audio, *rest)
    model.loss(batch, torch.Generator().manual_seed(0))
    flags = seen[0][:, :, ACOUSTIC_FLAG]
    blanked = flags.amax(dim=1) == 0
    assert 16 <= int(blanked.sum()) <= 48  # about half of the windows
    assert torch.all(seen[0][blanked][..., list(ACOUSTIC_CHANNELS)] == 0)
    assert torch.equal(seen[0][~blanked], batch["audio"][~blanked])
    energy = INPUT_NAMES.index("energy")
    assert torch.equal(seen[0][..., energy], batch["audio"][..., energy])  # level and voice activity stay


def test_closure_weight_weighs_the_mouth_loss_of_closed_target_lips():
    """closure_weight 3: the mouth group's loss grows by the flow error of the frames whose target
    lips are closed (counted twice more), nothing else changes; without closed frames, or with
    weight 1, the loss is the plain one."""
    from studio.core.motion import CHANNEL_INDEX

    up, lo = CHANNEL_INDEX["exp.lip_upper_center.y"], CHANNEL_INDEX["exp.lip_lower_center.y"]
    plain = MotionFlowModel(ModelConfig(num_inputs=NUM_INPUTS, **TINY, acoustic_dropout=0.0, emotion_dropout=0.0)).train()
    weighted = MotionFlowModel(ModelConfig(num_inputs=NUM_INPUTS, **TINY, acoustic_dropout=0.0, emotion_dropout=0.0,
                                           closure_weight=3.0)).train()
    weighted.load_state_dict(plain.state_dict())
    batch = window_batch(plain.config, batch=4)
    open_lips = torch.cat([batch["reference"], batch["x"]], 1).clone()
    open_lips[..., up], open_lips[..., lo] = 0.2, -0.2
    closed = open_lips.clone()
    closed[:, -8:, up] = closed[:, -8:, lo] = 0.0   # the last 8 chunk frames closed

    def parts(model, motion):
        return model.loss({**batch, "motion": motion}, torch.Generator().manual_seed(3))[1]

    assert parts(weighted, open_lips) == parts(plain, open_lips)
    p, w = parts(plain, closed), parts(weighted, closed)
    assert w["group.mouth"] > p["group.mouth"]
    assert {k: v for k, v in w.items() if k != "group.mouth"} == {k: v for k, v in p.items() if k != "group.mouth"}


def test_mel_augmentation_warps_and_masks_the_mel_of_a_share_of_windows_and_nothing_else():
    rng = np.random.default_rng(0)
    # a smooth spectrum moving over time, like speech's: warping keeps its shape, masking dents it
    bands, frames = np.arange(MEL_BANDS), np.arange(100)
    mel = np.sin(bands[None, :] / 6.0 + frames[:, None] / 9.0)[None] + 0.1 * rng.standard_normal((64, 100, MEL_BANDS))
    audio = torch.from_numpy(np.concatenate([mel, rng.standard_normal((64, 100, NUM_INPUTS - MEL_BANDS))], 2).astype(np.float32))
    audio[..., ACOUSTIC_FLAG] = 1.0
    audio[:8] = drop_acoustic(audio[:8])  # acoustic dropout's windows
    out = augment_mel(audio, 0.5, torch.Generator().manual_seed(1))
    again = augment_mel(audio, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # seeded
    assert torch.equal(out[..., MEL_BANDS:], audio[..., MEL_BANDS:])  # only the mel moves
    assert torch.equal(out[:8], audio[:8])  # blanked windows stay blank
    changed = (out != audio).flatten(1).any(1)
    assert 20 <= int(changed.sum()) <= 44  # about half
    for k in np.flatnonzero(changed.numpy()):
        a, b = audio[k, :, :MEL_BANDS].numpy().ravel(), out[k, :, :MEL_BANDS].numpy().ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.6  # the same spectrum, warped
        assert np.abs(a - b).mean() > 0.02
    assert ModelConfig.from_dict({"num_inputs": NUM_INPUTS}).mel_augment == 0.0  # older models had none


def test_another_seed_moves_the_head_and_keeps_the_mouths_noise():
    mouth = list(LOSS_GROUPS["mouth"])
    rest = [i for i in range(NUM_CHANNELS) if i not in mouth]
    a, b = chunk_noise(0, 3, 80), chunk_noise(1, 3, 80)
    assert not a[:, mouth].any() and not b[:, mouth].any()  # by default the lips start at the mean
    assert np.abs(a[:, rest] - b[:, rest]).mean() > 0.5
    # with a temperature the mouth's noise is drawn, the same for every seed, another per chunk
    a, b = chunk_noise(0, 3, 80, mouth_temperature=1.0), chunk_noise(1, 3, 80, mouth_temperature=1.0)
    assert np.array_equal(a[:, mouth], b[:, mouth])
    assert not np.array_equal(a[:, mouth], chunk_noise(0, 4, 80, mouth_temperature=1.0)[:, mouth])
    assert abs(float(a.std()) - 1.0) < 0.05
    half = chunk_noise(0, 3, 80, mouth_temperature=0.5)
    assert np.allclose(half[:, mouth], 0.5 * a[:, mouth]) and np.array_equal(half[:, rest], a[:, rest])
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="mouth_temperature"):
            chunk_noise(0, 0, 80, mouth_temperature=bad)


def test_learning_rate_decays_with_the_time_budget_when_steps_run_slow():
    from studio.generate.neural.train import _schedule

    assert _schedule(99, 10_000, 300) == pytest.approx(100 / 300)  # warm-up first
    assert _schedule(1_000, 10_000, 300) > 0.9  # early in the planned steps
    # the machine slowed down: the time budget is spent long before the planned steps
    assert _schedule(1_000, 10_000, 300, time_progress=1.0) == pytest.approx(0.1)
    assert _schedule(1_000, 10_000, 300, time_progress=0.5) == pytest.approx(0.55)


def test_window_sampler_draws_each_source_with_its_share():
    rng = np.random.default_rng(0)
    config = ModelConfig(num_inputs=NUM_INPUTS, **TINY)

    def clip(name, frames, source):
        return Clip(name, np.zeros((frames, NUM_INPUTS), np.float32), np.zeros((frames, NUM_CHANNELS), np.float32),
                    default_conditions(frames), np.zeros((21, 3), np.float32), (), source)

    clips = [clip(f"e{i}", 200, "espeak-ng") for i in range(8)] + [clip("f0", 100, "flite"), clip("f1", 300, "flite")]
    plain = WindowSampler(clips, config)
    assert plain.weights[:8].sum() == pytest.approx(1600 / 2000)  # every frame equally likely
    shared = WindowSampler(clips, config, {"espeak-ng": 0.4, "flite": 0.6})
    assert shared.weights[:8].sum() == pytest.approx(0.4) and shared.weights[9] == pytest.approx(3 * shared.weights[8])
    picks = rng.choice(len(clips), size=4000, p=shared.weights)
    assert abs(np.mean(picks >= 8) - 0.6) < 0.03
    with pytest.raises(TrainError, match="flite"):
        WindowSampler(clips, config, {"espeak-ng": 1.0})
