"""Streaming and partial re-generation below the window (no Qt): a child process publishing pieces
of its result; the neural generator handing out its frames as chunks settle (exactly the motion
it returns, at 25 fps and at other rates); the document previewing a base motion without an undo
step; :func:`splice_base` keeping every frame that did not change bit for bit; and hand-assigned
mesh keypoints as undoable document edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_neural_model import tiny_model

from studio.core.document import SPLICE_FADE, BaseMotion, Project, splice_base
from studio.core.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS
from studio.core.motion import NEUTRAL_FRAME, NUM_CHANNELS
from studio.jobs import Partial, run_in_process

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def counting(request, *, progress, cancel, publish):
    """A job that publishes ``request`` pieces, then returns how many it published."""
    for i in range(request):
        publish({"piece": i, "values": np.full(3, i, np.float32)})
        progress((i + 1) / request)
    return request


def test_a_child_process_publishes_pieces_before_its_result():
    pieces, fractions = [], []
    work = run_in_process(counting, 4, publish=True)
    try:
        while True:
            value = next(work)
            if isinstance(value, Partial):
                pieces.append(value.value)
            elif value is not None:
                fractions.append(value)
    except StopIteration as stop:
        result = stop.value
    assert result == 4
    assert [p["piece"] for p in pieces] == [0, 1, 2, 3]
    np.testing.assert_array_equal(pieces[3]["values"], [3, 3, 3])
    assert fractions and fractions[-1] == 1.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from studio.generate.neural.runner import CHECKPOINT_FORMAT
    from studio.generate.neural.train import save_checkpoint

    model = tiny_model(seed=5)
    path = tmp_path_factory.mktemp("neural") / "tiny.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "version": 1, "config": model.config.to_dict(),
                           "model": model.state_dict()})
    return path


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_the_neural_generator_hands_out_exactly_its_motion_chunk_by_chunk(checkpoint, fps):
    from dataclasses import replace

    from studio.audio.decode import load_audio
    from studio.audio.features import compute_features
    from studio.audio.phones import Phone
    from studio.generate.neural.runner import neural_motion
    from studio.generate.rig import default_conditions, num_frames_for

    audio = load_audio(DEMO / "speech.flac")
    audio = replace(audio, samples=audio.samples[:int(2.4 * audio.sample_rate)])  # 2.4 s: a few chunks
    features = compute_features(audio)
    phones = [Phone("M", 0.1, 0.3), Phone("AA", 0.3, 0.6)]
    frames = num_frames_for(audio.duration, fps)
    conditions = default_conditions(frames, emotion="happy")
    pieces = []
    motion = neural_motion(features, phones, duration=audio.duration, fps=fps, conditions=conditions, seed=2,
                           steps=2, device="cpu", model_path=checkpoint,
                           on_chunk=lambda start, values: pieces.append((start, values.copy())))
    assert len(pieces) >= 2  # more than one chunk: the first frames came before the last were sampled
    starts = [start for start, _ in pieces]
    assert starts[0] == 0 and starts == sorted(starts)
    for (start, values), (following, _) in zip(pieces, pieces[1:] + [(len(motion), None)]):
        assert start + len(values) == following  # contiguous, no gap, no overlap
    np.testing.assert_array_equal(np.concatenate([v for _, v in pieces]), motion)


def test_the_neural_generator_trusts_the_sound_less_when_the_phones_were_aligned(checkpoint):
    from dataclasses import replace

    from studio.audio.decode import load_audio
    from studio.audio.features import compute_features
    from studio.audio.phones import Phone
    from studio.generate.neural.runner import (
        AUDIO_TRUST_ALIGNED,
        AUDIO_TRUST_RECOGNIZED,
        neural_motion,
    )
    from studio.generate.rig import default_conditions, num_frames_for

    audio = load_audio(DEMO / "speech.flac")
    audio = replace(audio, samples=audio.samples[:int(1.2 * audio.sample_rate)])
    features = compute_features(audio)
    phones = [Phone("M", 0.1, 0.3), Phone("AA", 0.3, 0.6)]
    conditions = default_conditions(num_frames_for(audio.duration, 25.0))

    def run(trust, aligned):
        return neural_motion(features, phones, duration=audio.duration, fps=25.0, conditions=conditions, steps=2,
                             device="cpu", model_path=checkpoint, audio_trust=trust, phones_from_transcript=aligned)

    assert (AUDIO_TRUST_RECOGNIZED, AUDIO_TRUST_ALIGNED) == (1.0, 0.5)
    np.testing.assert_array_equal(run(None, True), run(AUDIO_TRUST_ALIGNED, True))
    np.testing.assert_array_equal(run(None, False), run(AUDIO_TRUST_RECOGNIZED, False))
    assert np.abs(run(None, True) - run(1.0, True)).max() > 1e-4  # the default changed what came out
    assert np.abs(run(0.8, True) - run(None, True)).max() > 1e-5  # a given trust is used as given


def _base(values, conditions=None, generator="rig"):
    values = np.asarray(values, np.float32)
    if conditions is None:
        conditions = np.tile(np.r_[1.0, 1.0, np.zeros(7), np.full(4, np.nan)], (len(values), 1))
    return BaseMotion(values, conditions, generator, {"seed": 1})


def test_splice_keeps_unchanged_frames_bit_for_bit_and_fades_into_replaced_runs():
    rng = np.random.default_rng(0)
    old = _base(NEUTRAL_FRAME + 0.01 * rng.standard_normal((40, NUM_CHANNELS)))
    new_values = (NEUTRAL_FRAME + 0.02 * rng.standard_normal((40, NUM_CHANNELS))).astype(np.float32)
    new_conditions = old.conditions.copy()
    new_conditions[10:30, 1:3] = [0.0, 1.0]  # happy there
    stale = np.zeros(40, bool)
    stale[10:30] = True
    spliced = splice_base(old, new_values, new_conditions, stale)
    assert spliced.generator == "rig" and dict(spliced.settings) == {"seed": 1}
    np.testing.assert_array_equal(spliced.values[~stale], old.values[~stale])
    np.testing.assert_array_equal(spliced.conditions, new_conditions)
    inner = slice(10 + SPLICE_FADE, 30 - SPLICE_FADE)
    np.testing.assert_array_equal(spliced.values[inner], new_values[inner])
    w = 1.0 / (SPLICE_FADE + 1)  # frame 10 is one frame from the kept frame 9
    np.testing.assert_allclose(spliced.values[10], (1 - w) * old.values[10] + w * new_values[10], atol=1e-6)
    np.testing.assert_allclose(spliced.values[29], (1 - w) * old.values[29] + w * new_values[29], atol=1e-6)

    # Frames the old base never had are always taken; with no base, everything is.
    longer = np.concatenate([new_values, new_values[:5]])
    grown = splice_base(old, longer, np.concatenate([new_conditions, new_conditions[:5]]), np.zeros(45, bool))
    np.testing.assert_array_equal(grown.values[:40], old.values)
    np.testing.assert_array_equal(grown.values[40:], longer[40:])
    fresh = splice_base(None, new_values, new_conditions, np.zeros(40, bool))
    np.testing.assert_array_equal(fresh.values, new_values)
    with pytest.raises(ValueError, match="re-generated conditions"):
        splice_base(old, new_values, new_conditions[:, :5], stale)


def test_a_previewed_base_is_no_undo_step_and_the_commit_is_one():
    project = Project(num_frames=20)
    original = _base(np.tile(NEUTRAL_FRAME, (20, 1)))
    project.set_base(original)
    steps = len(project.undo_stack)
    changes = []
    project.events.base.connect(lambda event: changes.append(project.base))
    streamed = _base(np.tile(NEUTRAL_FRAME, (8, 1)) + 0.1)
    project.preview_base(streamed)
    assert project.base is streamed and changes == [streamed]
    assert len(project.undo_stack) == steps and project.undo_stack.undo_text == "Generate motion"
    np.testing.assert_allclose(project.evaluate([3])[0], streamed.values[3])  # views see the streamed frames
    project.preview_base(original)
    final = _base(np.tile(NEUTRAL_FRAME, (20, 1)) + 0.2)
    with project.macro("Regenerate 20 changed frames"):
        project.set_base(final)
    assert len(project.undo_stack) == steps + 1 and project.undo_stack.undo_text == "Regenerate 20 changed frames"
    project.undo_stack.undo()
    assert project.base is original
    with pytest.raises(TypeError):
        project.preview_base(np.zeros((3, NUM_CHANNELS)))


def test_mesh_keypoints_are_assigned_one_undo_step_at_a_time():
    project = Project()
    project.set_mesh_keypoint("nose_tip", 120)
    project.set_mesh_keypoint("chin", 7)
    assigned = project.mesh_keypoints
    assert len(assigned) == NUM_KEYPOINTS and assigned[KEYPOINT_INDEX["nose_tip"]] == 120
    assert sum(v is not None for v in assigned) == 2
    assert project.undo_stack.undo_text == "Assign keypoint chin"
    assert project.copy().mesh_keypoints == assigned
    project.undo_stack.undo()
    assert project.mesh_keypoints[KEYPOINT_INDEX["chin"]] is None
    project.set_mesh_keypoint("nose_tip", None)
    assert project.mesh_keypoints is None  # nothing assigned any more
    project.set_mesh_keypoints(range(NUM_KEYPOINTS))
    assert project.mesh_keypoints == tuple(range(NUM_KEYPOINTS))
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="vertex id"):
            project.set_mesh_keypoint("chin", bad)
    with pytest.raises(KeyError):
        project.set_mesh_keypoint("ear_lobe", 3)
    with pytest.raises(ValueError, match="21 vertex ids"):
        project.set_mesh_keypoints([1, 2, 3])
