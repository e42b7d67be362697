"""The project document: evaluation with layers, blend modes, locks, overrides, limits; controls;
every edit's undo/redo; merging; macros; events."""

import gc

import numpy as np
import pytest

from studio.core.document import (
    CONDITION_CHANNELS,
    EMOTIONS,
    BaseMotion,
    EmotionSegment,
    Layer,
    Project,
    Source,
    emotion_weights,
)
from studio.core.fcurve import FCurve, Interpolation as I
from studio.core.motion import CHANNEL_INDEX, EXP, NEUTRAL_FRAME, neutral_motion

CHIN_Y = CHANNEL_INDEX["exp.chin.y"]
YAW = CHANNEL_INDEX["pose.yaw"]


def base_project(n=50, seed=0):
    rng = np.random.default_rng(seed)
    p = Project(25, n)
    values = neutral_motion(n)
    values[:, EXP] = rng.normal(0, 0.05, (n, 63)).astype(np.float32)
    values[:, YAW] = np.linspace(-5, 5, n)
    p.set_base(BaseMotion(values, p.conditions(np.arange(n)), "test", {"seed": seed}))
    p.undo_stack.clear()
    return p


def test_empty_project_evaluates_to_neutral():
    p = Project(30, 4)
    np.testing.assert_array_equal(p.evaluate(), np.tile(NEUTRAL_FRAME, (4, 1)))
    assert p.evaluate().dtype == np.float32
    assert p.duration == pytest.approx(4 / 30)
    with pytest.raises(ValueError, match="fps"):
        Project(0, 10)
    with pytest.raises(ValueError, match="frame count"):
        Project(25, -1)


def test_base_motion_and_frames_outside_it():
    p = base_project(10)
    np.testing.assert_array_equal(p.evaluate(), p.base.values)
    out = p.evaluate([-1, 3, 10, 99])
    np.testing.assert_array_equal(out[[0, 2, 3]], np.tile(NEUTRAL_FRAME, (3, 1)))
    np.testing.assert_array_equal(out[1], p.base.values[3])
    with pytest.raises(ValueError, match="conditions"):
        BaseMotion(neutral_motion(3), np.zeros((2, len(CONDITION_CHANNELS))))


def test_replace_and_add_layers_with_influence_and_order():
    p = base_project()
    below = p.evaluate()[:, CHIN_Y].astype(np.float64)
    rep = p.add_layer("Keys")
    p.insert_keys(("layer", rep, "exp.chin.y"), [0, 49], [-0.2, -0.2], I.LINEAR)
    np.testing.assert_allclose(p.evaluate()[:, CHIN_Y], -0.2, atol=1e-7)
    p.set_layer(rep, influence=0.25)
    np.testing.assert_allclose(p.evaluate()[:, CHIN_Y], 0.75 * below + 0.25 * -0.2, atol=1e-6)
    add = p.add_layer("Offsets", blend="ADD", influence=0.5)
    p.insert_keys(("layer", add, "exp.chin.y"), [0], [0.1])
    np.testing.assert_allclose(p.evaluate()[:, CHIN_Y], 0.75 * below + 0.25 * -0.2 + 0.05, atol=1e-6)
    p.move_layer(add, 0)  # ADD below REPLACE: the replace now mixes over base + offset
    np.testing.assert_allclose(p.evaluate()[:, CHIN_Y], 0.75 * (below + 0.05) + 0.25 * -0.2, atol=1e-6)
    p.set_layer(rep, mute=True)
    np.testing.assert_allclose(p.evaluate()[:, CHIN_Y], below + 0.05, atol=1e-6)
    with pytest.raises(ValueError, match="influence"):
        p.set_layer(add, influence=1.5)
    with pytest.raises(TypeError):
        p.set_layer(add, curves={})


def test_locked_groups_keep_the_generated_motion():
    p = base_project()
    layer = p.add_layer()
    p.insert_keys(("layer", layer, "exp.chin.y"), [0], [0.3])
    p.insert_keys(("layer", layer, "exp.brow_inner_l.y"), [0], [0.3])
    p.lock_groups(["jaw"])
    out = p.evaluate()
    np.testing.assert_array_equal(out[:, CHIN_Y], p.base.values[:, CHIN_Y])
    assert np.all(out[:, CHANNEL_INDEX["exp.brow_inner_l.y"]] == np.float32(0.3))
    p.lock_groups(["jaw"], locked=False)
    assert np.all(p.evaluate()[:, CHIN_Y] == np.float32(0.3))
    with pytest.raises(KeyError, match="unknown channel groups"):
        p.lock_groups(["ears"])


def test_overrides_apply_between_their_first_and_last_key():
    p = base_project()
    p.insert_keys(("override", "eye.gaze_x"), [10, 20], [0.5, -0.5], I.LINEAR)
    gaze = p.evaluate()[:, CHANNEL_INDEX["eye.gaze_x"]]
    assert np.all(gaze[:10] == 0) and np.all(gaze[21:] == 0)
    np.testing.assert_allclose(gaze[[10, 15, 20]], [0.5, 0.0, -0.5], atol=1e-7)
    with pytest.raises(KeyError, match="curve path"):
        p.insert_keys(("override", "pose.yaw"), [0], [1.0])


def test_limits_and_valid_ranges_clamp_the_result():
    p = base_project()
    layer = p.add_layer()
    p.insert_keys(("layer", layer, "pose.yaw"), [0], [40.0])
    p.insert_keys(("layer", layer, "eye.blink_l"), [0], [3.0])
    p.set_limit("pose.yaw", -10, 10)
    out = p.evaluate()
    assert np.all(out[:, YAW] == 10) and np.all(out[:, CHANNEL_INDEX["eye.blink_l"]] == 1.0)
    p.set_limit("pose.yaw", 15)  # a single magnitude: ±15
    assert p.limits["pose.yaw"] == (-15.0, 15.0)
    assert np.all(p.evaluate()[:, YAW] == 15)
    p.set_limit("pose.yaw", None)
    assert np.all(p.evaluate()[:, YAW] == 40)
    p.set_limit("eye.blink_l", 2.0, 3.0)  # entirely above the valid range: pins to its edge
    assert np.all(p.evaluate()[:, CHANNEL_INDEX["eye.blink_l"]] == 1.0)


def test_emotion_weights_ramp_overlap_and_normalize():
    segs = [EmotionSegment("happy", 10, 20, 0.8, 4, 4), EmotionSegment("sad", 15, 30, 1.0)]
    w = emotion_weights(segs, np.arange(35))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    happy, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")
    assert w[9, 0] == 1.0 and w[30, 0] == 1.0
    assert 0 < w[10, happy] < w[12, happy] < w[14, happy] == pytest.approx(0.8)  # ramps in
    assert w[19, happy] < w[16, happy]  # ramps out
    assert w[17, happy] + w[17, sad] == pytest.approx(1.0) and w[17, 0] == 0.0  # overlap normalized
    with pytest.raises(ValueError, match="unknown emotion"):
        EmotionSegment("bored", 0, 5)
    with pytest.raises(ValueError, match="end after"):
        EmotionSegment("happy", 5, 5)
    with pytest.raises(ValueError, match="strength"):
        EmotionSegment("happy", 0, 5, 1.5)
    with pytest.raises(ValueError, match="blend"):
        EmotionSegment("happy", 0, 5, 1.0, 3, 3)


def test_conditions_and_stale_frames():
    p = base_project(60)
    assert not p.stale_frames().any()
    p.add_emotion("angry", 10, 20)
    stale = p.stale_frames()
    assert stale[10:20].all() and stale.sum() == 10
    p.undo_stack.undo()
    p.insert_keys(("intensity",), [30, 40], [1.0, 2.0], I.LINEAR)
    stale = p.stale_frames()
    assert not stale[:31].any() and stale[31:].all()
    cond = p.conditions([35])
    assert cond[0, 0] == pytest.approx(1.5)
    p.undo_stack.undo()
    p.insert_keys(("override", "eye.blink_l"), [5, 7], [1.0, 1.0])
    assert np.flatnonzero(p.stale_frames()).tolist() == [5, 6, 7]
    p.set_timing(num_frames=70)
    assert p.stale_frames()[60:].all()  # never generated
    assert Project(25, 5).stale_frames().all()


def test_evaluating_a_subset_equals_the_full_evaluation():
    p = base_project(80)
    layer = p.add_layer()
    for ch, frames in (("exp.chin.y", [0, 20, 50]), ("pose.roll", [5, 60])):
        p.insert_keys(("layer", layer, ch), frames, np.linspace(-0.1, 0.1, len(frames)))
    p.insert_keys(("override", "eye.gaze_y"), [30, 40], [0.2, 0.4])
    full = p.evaluate()
    picks = np.array([79, 0, 35, 36, 3])
    np.testing.assert_array_equal(p.evaluate(picks), full[picks])


# --- commands -----------------------------------------------------------------------------------

def state(p: Project):
    return (p.fps, p.num_frames, dict(p.sources), None if p.identity is None else p.identity.tolist(),
            p.base, p.layers, p.emotion_segments, p.intensity, dict(p.overrides), p.locked_groups,
            dict(p.limits), p.evaluate().tobytes())


def check_undo_redo(p: Project, edit):
    before = state(p)
    steps = len(p.undo_stack)
    edit()
    after = state(p)
    assert after != before, "the edit changed nothing"
    assert len(p.undo_stack) == steps + 1, "an edit must be exactly one undo step"
    p.undo_stack.undo()
    assert state(p) == before
    p.undo_stack.redo()
    assert state(p) == after


def test_every_edit_is_one_undoable_step(tmp_path):
    p = base_project()
    layer = p.add_layer("Keys")
    path = ("layer", layer, "exp.chin.y")
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF....")
    edits = [
        lambda: p.set_source("audio", Source.from_file("audio", audio)),
        lambda: p.set_identity(np.ones((21, 3))),
        lambda: p.set_timing(fps=30),
        lambda: p.set_timing(num_frames=80),
        lambda: p.set_base(BaseMotion(neutral_motion(60), p.conditions(np.arange(60)), "again")),
        lambda: p.add_layer("More", blend="ADD"),
        lambda: p.insert_keys(path, [0, 10, 20], [0.0, -0.2, 0.1]),
        lambda: p.set_key(path, 10, -0.3),
        lambda: p.delete_keys(path, [1]),
        lambda: p.move_keys({path: [0, 1]}, frame_delta=3, value_delta=0.05),
        lambda: p.set_interpolation({path: [0]}, I.CONSTANT),
        lambda: p.set_curve(path, FCurve.from_keys([0], [0.2])),
        lambda: p.set_layer(layer, influence=0.5),
        lambda: p.set_layer(layer, name="Renamed", blend="ADD"),
        lambda: p.move_layer(layer, 1),
        lambda: p.add_emotion("happy", 5, 25, 0.7, 2, 2),
        lambda: p.update_emotion(p.emotion_segments[0].id, end=30, label="surprised"),
        lambda: p.update_emotion(p.emotion_segments[0].id, strength=0.3),
        lambda: p.remove_emotion(p.emotion_segments[0].id),
        lambda: p.insert_keys(("intensity",), [0, 40], [0.5, 1.5]),
        lambda: p.insert_keys(("override", "eye.blink_r"), [3, 6], [1.0, 1.0]),
        lambda: p.lock_groups(["jaw", "head"]),
        lambda: p.lock_groups(["head"], locked=False),
        lambda: p.set_limit("exp.chin.y", -0.05, 0.05),
        lambda: p.remove_layer(p.layers[-1].id),
    ]
    for number, edit in enumerate(edits):
        try:
            check_undo_redo(p, edit)
        except AssertionError as exc:
            raise AssertionError(f"edit #{number}: {exc}") from None
    # Undo everything back to the start, redo everything: the same project.
    end = state(p)
    while p.undo_stack.can_undo:
        p.undo_stack.undo()
    assert p.layers == () and p.sources == {}
    while p.undo_stack.can_redo:
        p.undo_stack.redo()
    assert state(p) == end


def test_failed_edits_change_nothing():
    p = base_project()
    layer = p.add_layer()
    before, steps = state(p), len(p.undo_stack)
    for bad in (lambda: p.insert_keys(("layer", layer, "exp.jaw.y"), [0], [1]),
                lambda: p.delete_keys(("layer", layer, "exp.chin.x"), [0]),
                lambda: p.set_layer("nope", influence=0.5),
                lambda: p.set_source("video", None),
                lambda: p.set_identity(np.zeros((3, 3))),
                lambda: p.update_emotion("nope", end=3),
                lambda: p.set_timing(fps=1000)):
        with pytest.raises((KeyError, ValueError, TypeError)):
            bad()
    assert state(p) == before and len(p.undo_stack) == steps


def test_slider_drags_merge_into_one_step():
    p = base_project()
    layer = p.add_layer()
    path = ("layer", layer, "pose.yaw")
    before = state(p)
    steps = len(p.undo_stack)
    for value in np.linspace(0, 20, 15):
        p.set_key(path, 12, value)
    assert len(p.undo_stack) == steps + 1
    assert p.curve(path).values.tolist() == [20.0]
    p.set_key(path, 13, 1.0)  # another frame: a new step
    assert len(p.undo_stack) == steps + 2
    p.undo_stack.undo()
    p.undo_stack.undo()
    assert state(p) == before
    # Influence drags merge too.
    for w in (0.9, 0.8, 0.7):
        p.set_layer(layer, merge=True, influence=w)
    p.undo_stack.undo()
    assert p.layer(layer).influence == 1.0


def test_macro_is_one_step_and_rolls_back_on_error():
    p = base_project()
    layer = p.add_layer()
    a, b = ("layer", layer, "exp.chin.y"), ("layer", layer, "exp.chin.x")
    with p.macro("Paste"):
        p.insert_keys(a, [0, 5], [0.1, 0.2])
        p.insert_keys(b, [0, 5], [0.1, 0.2])
    assert p.undo_stack.undo_text == "Paste"
    p.undo_stack.undo()
    assert p.layer(layer).curves == {}
    before = state(p)
    with pytest.raises(KeyError):
        with p.macro("Broken"):
            p.insert_keys(a, [0], [0.3])
            p.insert_keys(("layer", layer, "exp.nope.x"), [0], [0.3])
    assert state(p) == before


def test_clean_state_tracks_saves_undo_and_merges():
    p = base_project()
    seen = []
    p.undo_stack.events.clean.connect(lambda e: seen.append(e.clean))
    assert not p.is_modified
    layer = p.add_layer()
    assert p.is_modified and seen == [False]
    p.undo_stack.set_clean()
    assert not p.is_modified and seen == [False, True]
    p.undo_stack.undo()
    assert p.is_modified
    p.undo_stack.redo()
    assert not p.is_modified
    p.set_key(("layer", layer, "pose.yaw"), 1, 1.0)
    p.undo_stack.set_clean()
    p.set_key(("layer", layer, "pose.yaw"), 1, 2.0)  # merges into the saved step: modified again
    assert p.is_modified
    p.undo_stack.undo()
    p.undo_stack.undo()
    p.add_layer("Branch")  # the saved state is gone from history
    while p.undo_stack.can_undo:
        p.undo_stack.undo()
        assert p.is_modified


def test_events_are_emitted_and_views_are_held_weakly():
    p = base_project()
    log = []

    class View:
        def on_keys(self, event):
            log.append(("keys", event.path))

        def on_changed(self, event):
            log.append(("changed", event.slot[0]))

    view = View()
    p.events.keys.connect(view.on_keys)
    p.events.changed.connect(view.on_changed)
    layer = p.add_layer()
    p.insert_keys(("layer", layer, "exp.chin.y"), [0], [0.1])
    assert ("keys", ("layer", layer, "exp.chin.y")) in log
    assert [e for e in log if e[0] == "changed"] == [("changed", "layers"), ("changed", "curve")]
    p.undo_stack.undo()
    assert log[-1] == ("changed", "curve")
    del view
    gc.collect()
    n = len(log)
    p.undo_stack.redo()
    assert len(log) == n and len(p.events.keys) == 0
    received = []
    p.events.emotion.connect(received.append)
    p.add_emotion("sad", 0, 5)
    assert received[0].type == "emotion" and received[0].source is p


def test_layer_and_source_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown channels"):
        Layer("x", curves={"exp.jaw.y": FCurve.from_keys([0], [0])})
    with pytest.raises(ValueError, match="empty"):
        Layer("x", curves={"exp.chin.y": FCurve()})
    with pytest.raises(ValueError, match="cannot read audio"):
        Source.from_file("audio", tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="role"):
        Source("video", "x", "0")
    p = Project()
    with pytest.raises(ValueError, match="cannot be set as"):
        p.set_source("audio", Source("portrait", "x", "0"))
    assert p.default_layer_id() == p.layers[0].id == p.default_layer_id()
