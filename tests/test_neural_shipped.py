"""The weights that ship in models/neural/: they load, and on CPU they generate a mouth that closes
on p/b/m and opens on vowels of speech they were not trained on (real espeak-ng synthesis through
the real generation path, recognized phones, no transcript)."""

from __future__ import annotations

import numpy as np

from studio.audio.synth import synthesize_espeak
from studio.generate.devcorpus import padded_16k
from studio.generate.lipsync import closure_counts
from studio.generate.neural.inputs import NUM_INPUTS
from studio.generate.neural.runner import (
    DEFAULT_CHECKPOINT,
    DEFAULT_OVERLAP,
    chunk_starts,
    load_checkpoint,
    model_from_checkpoint,
)
from studio.generate.pipeline import GenerateRequest, generate
from studio.generate.rig import mouth_gap


def test_the_shipped_model_loads_and_matches_this_code():
    data = load_checkpoint(DEFAULT_CHECKPOINT)
    model = model_from_checkpoint(data, DEFAULT_CHECKPOINT)
    assert model.config.num_inputs == NUM_INPUTS
    assert sum(p.numel() for p in model.parameters()) <= 10_000_000


def test_the_shipped_model_moves_the_lips_with_the_speech(tmp_path):
    import soundfile as sf

    speech = synthesize_espeak("Maybe Bob bought a big map of Paris.", "en-us+m3")
    samples, phones = padded_16k(speech, [0.3, 0.3])
    wav = tmp_path / "maybe.wav"
    sf.write(wav, samples, 16000, subtype="PCM_16")
    result = generate(GenerateRequest(wav, generator="neural", device="cpu", seed=1))
    values = result.motion.values
    assert result.phone_method == "recognized" and values.shape == (len(values), 74)
    assert np.isfinite(values).all()
    gap = mouth_gap(values)
    counts = closure_counts(gap, result.motion.fps, phones)
    assert counts.bilabials == 9 and counts.recall >= 0.5  # most p/b/m close …
    assert counts.false_rate == 0.0  # … and no open vowel does
    assert gap.max() > 0.15 and gap[: int(0.2 * result.motion.fps)].max() < 0.02  # opens to speak, shut before


def test_the_shipped_models_stream_is_seamless_at_chunk_borders(tmp_path):
    """Chunks are cross-faded where they overlap: at the borders of a 10 s generation the motion
    changes from frame to frame no more than it does inside the chunks."""
    import soundfile as sf

    text = ("Paper maps of the old port were pinned above the bench. Maybe Bob will bring them back "
            "before the boats come in, and we can mark the best moorings by the beacon.")
    speech = synthesize_espeak(text, "en-us+f2")
    samples, _ = padded_16k(speech, [0.3, 0.3])
    wav = tmp_path / "maps.wav"
    sf.write(wav, samples, 16000, subtype="PCM_16")
    result = generate(GenerateRequest(wav, generator="neural", device="cpu", seed=2, fps=25))
    values = result.motion.values
    config = model_from_checkpoint(load_checkpoint(DEFAULT_CHECKPOINT)).config
    starts = chunk_starts(len(values), config.chunk, DEFAULT_OVERLAP)
    assert len(starts) >= 3
    step = np.linalg.norm(np.diff(values, axis=0), axis=1)
    border = np.zeros(len(step), bool)
    for s in starts[1:]:
        border[s - 1:s + DEFAULT_OVERLAP] = True
    print(f"frame-to-frame change: borders max {step[border].max():.4f}, elsewhere max {step[~border].max():.4f}")
    assert step[border].max() <= step[~border].max()
