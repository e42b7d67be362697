"""Playback on an abstract clock: the playhead follows the clock, loops or stops at the end,
restarts the clock where the user scrubs; with no sound device the playback is silent on a wall
clock and the status bar says so."""

from __future__ import annotations

import numpy as np

from studio.core.document import Project
from studio.core.session import AudioInfo, Media, Session
from studio.qt.transport import (
    Clock,
    Transport,
    WallClock,
    default_clock,
    output_device,
)


class HandClock(Clock):
    """A clock the test moves by hand; remembers where it was started."""

    def __init__(self):
        self.now = 0.0
        self.starts: list[float] = []
        self.running = False

    def start(self, at):
        self.now = at
        self.starts.append(at)
        self.running = True

    def stop(self):
        self.running = False

    def position(self):
        return self.now


def make_transport(frames: int = 50, looping: bool = True):
    session = Session(Project(25, frames))
    session.looping = looping
    clock = HandClock()
    return session, clock, Transport(session, lambda audio: (clock, ""))


def test_the_playhead_follows_the_clock_and_loops(qtbot, no_leaks):
    session, clock, transport = make_transport()
    session.frame = 10
    transport.toggle()
    assert session.playing and clock.starts == [0.4]  # started where the playhead was
    clock.now = 1.0
    transport._tick()
    assert session.frame == 25
    clock.now = 2.5  # past the last frame (49 = 1.96 s): back to the start
    transport._tick()
    assert session.frame == 0 and clock.starts[-1] == 0.0 and session.playing
    session.frame = 30  # scrubbing while playing restarts the clock there
    assert clock.starts[-1] == 1.2
    transport.toggle()
    assert not session.playing and not clock.running


def test_without_looping_playback_stops_on_the_last_frame(qtbot, no_leaks):
    session, clock, transport = make_transport(looping=False)
    transport.toggle()
    clock.now = 5.0
    transport._tick()
    assert session.frame == 49 and not session.playing
    transport.toggle()  # playing again from the end starts over
    assert session.frame == 0 and clock.starts[-1] == 0.0
    transport.step(3)
    assert not session.playing and session.frame == 3
    transport.to_end()
    assert session.frame == 49
    transport.to_start()
    assert session.frame == 0


def test_the_timer_drives_the_playhead_on_a_wall_clock(qtbot, no_leaks):
    session = Session(Project(25, 100))
    transport = Transport(session, lambda audio: (WallClock(), ""))
    transport.toggle()
    qtbot.waitUntil(lambda: session.frame >= 5, timeout=3000)
    transport.shutdown()
    assert not session.playing


def test_no_sound_device_means_silent_playback_with_a_notice(make_window, qtbot):
    ok, reason = output_device()
    audio = AudioInfo("speech.wav", np.zeros(16000, np.float32), 16000)
    clock, message = default_clock(audio)
    if ok:  # a machine with a sound card: the audio itself is the clock
        assert not clock.silent and message == ""
        return
    assert isinstance(clock, WallClock) and message.startswith("Playing silently") and reason in message
    quiet, note = default_clock(None)
    assert isinstance(quiet, WallClock) and note == ""  # no audio: nothing to say
    window = make_window(clock_for=default_clock)
    window.session.project.set_timing(num_frames=40)
    window.session.media = Media(audio=audio)
    window.play_action.trigger()
    assert window.session.playing and window.statusBar().currentMessage() == message
    assert window.play_action.text() == "&Pause"
    qtbot.waitUntil(lambda: window.session.frame > 0, timeout=3000)
    window.play_action.trigger()
    assert not window.session.playing
