"""The session (the studio's viewer model) and the document additions it needs, without Qt:
playhead clamping and events, the evaluated-frame cache, keying the selection as one undo step,
the portrait's hand-placed keypoints, project copies and the recovered (never clean) state."""

import gc

import numpy as np
import pytest

from studio.core.document import BaseMotion, Project
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX, neutral_motion
from studio.core.session import (
    AudioInfo,
    Media,
    PortraitInfo,
    Selection,
    Session,
    format_time,
)


def generated(n=40, seed=0) -> Project:
    rng = np.random.default_rng(seed)
    values = neutral_motion(n)
    values[:, :63] = rng.normal(0, 0.05, (n, 63)).astype(np.float32)
    p = Project(25, n)
    p.set_base(BaseMotion(values, p.conditions(np.arange(n)), "rig"))
    p.undo_stack.clear()
    return p


class Recorder:
    def __init__(self, session):
        self.log = []
        for name in session.events.names:
            getattr(session.events, name).connect(self.on_event)

    def on_event(self, event):
        self.log.append((event.type, {k: v for k, v in vars(event).items() if k not in ("type", "source")}))

    def types(self):
        return [t for t, _ in self.log]


def test_the_playhead_is_clamped_and_emits_only_on_change():
    s = Session(generated(40))
    rec = Recorder(s)
    s.frame = 12.4
    assert s.frame == 12 and rec.log == [("frame", {"frame": 12})]
    s.frame = 12
    s.frame = 500
    assert s.frame == 39
    s.frame = -3
    assert s.frame == 0
    s.step(5)
    s.step(-1)
    assert s.frame == 4 and rec.types() == ["frame"] * 5
    assert s.time == pytest.approx(4 / 25)
    s.frame = 30
    s.project.set_timing(num_frames=20)  # a shorter project pulls the playhead in
    assert s.frame == 19
    s.project.undo_stack.undo()
    assert s.frame == 19 and s.last_frame == 39


def test_playing_needs_frames_and_looping_is_evented():
    s = Session()
    s.playing = True
    assert not s.playing  # an empty project has nothing to play
    s.set_project(generated(10))
    rec = Recorder(s)
    s.playing = True
    s.looping = False
    s.looping = False
    assert s.playing and not s.looping
    assert rec.log == [("playing", {"playing": True}), ("looping", {"looping": False})]


def test_frame_values_are_cached_and_invalidated_by_edits():
    p = generated(40)
    s = Session(p)
    motions = []
    s.events.motion.connect(motions.append)
    s.frame = 7
    first = s.frame_values()
    np.testing.assert_array_equal(first, p.evaluate([7])[0])
    assert s.frame_values() is first  # cached
    assert not first.flags.writeable
    layer = p.add_layer("Keys")
    p.insert_keys(("layer", layer, "exp.chin.y"), [0], [0.3])
    assert len(motions) == 2  # one per changed event
    again = s.frame_values()
    assert again is not first and again[CHANNEL_INDEX["exp.chin.y"]] == pytest.approx(0.3)
    p.set_source("audio", None)  # not a motion edit: the cache stays
    assert s.frame_values() is again and len(motions) == 2


def test_opening_a_project_resets_the_view_and_stops_listening_to_the_old_one():
    old = generated(40)
    s = Session(old)
    s.frame, s.playing = 20, True
    s.select_channels(["lips"])
    s.update_media(transcript="hello")
    rec = Recorder(s)
    new = generated(30, seed=1)
    s.set_project(new, "/tmp/x.thproj")
    assert (s.frame, s.playing, s.selection, s.media) == (0, False, Selection(), Media())
    assert s.path.name == "x.thproj" and s.project is new
    assert {"project", "path", "frame", "playing", "selection", "media", "motion", "modified"} <= set(rec.types())
    assert rec.log[0] == ("project", {"previous": old})
    rec.log.clear()
    old.add_layer("Ignored")
    assert rec.log == []


def test_follow_project_moves_handlers_to_each_opened_project():
    session = Session(generated())
    first = session.project
    heard, opened = [], []
    session.follow_project({"timing": lambda e: heard.append(session.project)}, lambda: opened.append(session.project))
    assert opened == [first]
    second = generated(seed=1)
    session.set_project(second)
    assert opened == [first, second]
    first.events.timing.emit()
    assert heard == []  # the previous project is no longer listened to
    second.events.timing.emit()
    assert heard == [second]


def test_follow_project_takes_dotted_paths_and_one_handler_on_several_events():
    session = Session(generated())
    first = session.project
    heard = []

    def handler(event=None):
        heard.append(session.project)

    session.follow_project({"undo_stack.events.index": handler, "base": handler, "emotion": handler}, lambda: None)
    first.add_layer("Keys")  # an undoable edit moves the stack's index
    assert heard and set(heard) == {first}
    second = generated(seed=1)
    session.set_project(second)
    heard.clear()
    first.add_layer("Ignored")
    first.events.base.emit()
    assert heard == []  # all three left the previous project
    second.events.base.emit()
    second.events.emotion.emit()
    second.add_layer("Keys")
    assert len(heard) >= 3 and set(heard) == {second}


def test_title_follows_the_path_and_the_modified_state():
    s = Session(generated(10))
    modified = []
    s.events.modified.connect(lambda e: modified.append(e.modified))
    assert s.title == "Untitled — Talking Head Studio"
    s.project.add_layer("Keys")
    assert s.title == "Untitled* — Talking Head Studio" and modified == [True]
    s.path = "/projects/talk.thproj"
    s.project.undo_stack.set_clean()
    assert s.title == "talk.thproj — Talking Head Studio" and modified == [True, False]


def test_selection_by_channel_or_group_is_plain_data():
    s = Session(generated(10))
    s.select_channels(["exp.chin.y", "pose.yaw"])
    assert s.selection.channels == ("exp.chin.y", "pose.yaw")
    s.select_channels(["eyes"], add=True)
    assert set(s.selection.channels) == {"exp.chin.y", "pose.yaw", *CHANNEL_GROUPS["eyes"]}
    with pytest.raises(KeyError, match="unknown motion channels"):
        s.select_channels(["exp.nope.x"])
    assert Selection(keys={("intensity",): [3, 1, 3]}).keys == {("intensity",): (1, 3)}
    assert Selection(keys={("intensity",): []}) == Selection()
    s.clear_selection()
    assert s.selection == Selection()


def test_keying_the_selection_is_one_undo_step_at_the_playhead():
    p = generated(40)
    s = Session(p)
    assert s.key_selected_channels() == 0 and len(p.undo_stack) == 0
    s.frame = 15
    s.select_channels(["lips"])
    before = p.evaluate()
    keyed = s.key_selected_channels()
    assert keyed == len(CHANNEL_GROUPS["lips"]) and len(p.undo_stack) == 1
    layer = p.layers[-1].id
    curve = p.curve(("layer", layer, "exp.lip_upper_center.y"))
    assert curve.frames.tolist() == [15.0]
    after = p.evaluate()
    np.testing.assert_allclose(after[15], before[15], atol=1e-6)  # keyed as it was at the playhead
    lips = [CHANNEL_INDEX[c] for c in CHANNEL_GROUPS["lips"]]
    assert np.allclose(after[:, lips], before[15, lips], atol=1e-6)  # a single key holds everywhere
    p.undo_stack.undo()
    assert p.layers == () and np.array_equal(p.evaluate(), before)
    p.undo_stack.redo()
    assert np.array_equal(p.evaluate(), after)


def test_media_info_validates_and_is_read_only():
    audio = AudioInfo("a.wav", np.zeros(16000), 16000)
    assert audio.duration == 1.0 and audio.samples.dtype == np.float32 and not audio.samples.flags.writeable
    with pytest.raises(ValueError, match="unknown face state"):
        PortraitInfo("p.png", (10, 10), "maybe")
    s = Session()
    seen = []
    s.events.media.connect(seen.append)
    s.update_media(portrait=PortraitInfo("p.png", (512, 512), "detected"))
    s.update_media(portrait=PortraitInfo("p.png", (512, 512), "detected"))
    assert len(seen) == 1 and s.media.portrait.face == "detected"


def test_the_session_is_held_weakly_by_its_project():
    p = generated(10)
    s = Session(p)
    del s
    gc.collect()
    assert len(p.events.changed) == 0


def test_format_time():
    assert format_time(0) == "0:00.00"
    assert format_time(61.257) == "1:01.26"
    assert format_time(-1) == "0:00.00"


# --- document additions the studio needs --------------------------------------------------------

def test_portrait_keypoints_are_one_undo_step_and_validated():
    p = Project(25, 10)
    seen = []
    p.events.portrait_keypoints.connect(seen.append)
    changed = []
    p.events.changed.connect(changed.append)
    points = np.random.default_rng(0).uniform(0, 500, (21, 2))
    p.set_portrait_keypoints(points)
    assert np.array_equal(p.portrait_keypoints, points) and not p.portrait_keypoints.flags.writeable
    assert p.undo_stack.undo_text == "Place face keypoints" and len(seen) == 1 and changed == []
    p.undo_stack.undo()
    assert p.portrait_keypoints is None
    p.undo_stack.redo()
    assert np.array_equal(p.portrait_keypoints, points)
    for bad in (np.zeros((21, 3)), np.full((21, 2), np.nan)):
        with pytest.raises(ValueError, match="portrait keypoints"):
            p.set_portrait_keypoints(bad)
    assert len(p.undo_stack) == 1


def test_copy_shares_the_state_without_the_history():
    p = generated(20)
    layer = p.add_layer("Keys")
    p.insert_keys(("layer", layer, "pose.yaw"), [0, 10], [1.0, 5.0])
    p.add_emotion("happy", 2, 8)
    p.set_portrait_keypoints(np.ones((21, 2)))
    twin = p.copy()
    np.testing.assert_array_equal(twin.evaluate(), p.evaluate())
    assert twin.layers == p.layers and twin.emotion_segments == p.emotion_segments
    assert np.array_equal(twin.portrait_keypoints, p.portrait_keypoints)
    assert not twin.is_modified and not twin.undo_stack.can_undo
    p.insert_keys(("layer", layer, "pose.yaw"), [20], [9.0])  # the copy does not follow later edits
    assert twin.curve(("layer", layer, "pose.yaw")).frames.tolist() == [0.0, 10.0]


def test_reset_clean_leaves_no_clean_point():
    p = generated(10)
    seen = []
    p.undo_stack.events.clean.connect(lambda e: seen.append(e.clean))
    p.undo_stack.reset_clean()
    assert p.is_modified and seen == [False]
    p.add_layer("x")
    p.undo_stack.undo()
    assert p.is_modified  # no state in the history is the saved one
    p.undo_stack.set_clean()
    assert not p.is_modified
