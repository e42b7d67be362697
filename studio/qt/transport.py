"""Playback: play, pause, loop, step and scrub, driven by an abstract clock.

The :class:`Transport` moves the session's playhead from a :class:`Clock` — the position in
seconds of what the viewer hears — read on a precise timer. With the project's audio loaded and
an output device present, the clock is the audio itself (:class:`AudioClock`: sounddevice plays
the samples and the picture follows the samples actually played); otherwise playback is silent on
a :class:`WallClock`, and the transport says so once (``notice``). Moving the playhead while
playing (scrubbing) restarts the clock there. Tests give the transport their own clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from studio.core.session import AudioInfo, Session

#: How often the playhead is updated while playing (ms); the picture itself is rate-limited by the view.
TICK_MS = 10


class Clock:
    """Seconds of playback: ``start(at)`` runs from ``at``, ``position()`` reads, ``stop()`` halts."""

    silent = True

    def start(self, at: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def position(self) -> float:
        raise NotImplementedError


class WallClock(Clock):
    """Silent playback: the position advances with a monotonic clock (``now``, for tests)."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self._now = now
        self._origin = 0.0
        self._at = 0.0
        self._running = False

    def start(self, at: float) -> None:
        self._at, self._origin, self._running = float(at), self._now(), True

    def stop(self) -> None:
        self._at, self._running = self.position(), False

    def position(self) -> float:
        return self._at + (self._now() - self._origin if self._running else 0.0)


def output_device() -> tuple[bool, str]:
    """Whether sounddevice has a default output device, and if not, why not (in words)."""
    try:
        import sounddevice
    except OSError as exc:  # PortAudio missing
        return False, f"no PortAudio library ({exc})"
    try:
        device = sounddevice.query_devices(kind="output")
    except Exception as exc:  # noqa: BLE001 - no device, a broken host API: silent playback
        return False, f"no sound output device ({exc})"
    if not device or device.get("max_output_channels", 0) < 1:
        return False, "no sound output device"
    return True, str(device.get("name", "output"))


class AudioClock(Clock):
    """Plays mono samples through sounddevice; the position is the sample being heard now (the
    callback's count, advanced by the wall time since the last callback, minus the output latency)."""

    silent = False

    def __init__(self, audio: AudioInfo):
        import sounddevice

        self._sounddevice = sounddevice
        self._samples = audio.samples
        self._rate = int(audio.sample_rate)
        self._stream = None
        self._lock = threading.Lock()
        self._next = 0  # next sample the callback hands out
        self._stamp = (0, 0.0)  # (sample count, perf_counter) at the last callback
        self._latency = 0.0

    def start(self, at: float) -> None:
        self.stop()
        with self._lock:
            self._next = max(0, round(at * self._rate))
            self._stamp = (self._next, time.perf_counter())
        self._stream = self._sounddevice.OutputStream(samplerate=self._rate, channels=1, dtype="float32",
                                                      callback=self._callback)
        self._latency = float(self._stream.latency)
        self._stream.start()

    def _callback(self, outdata, frames, time_info, status) -> None:  # the PortAudio thread
        with self._lock:
            chunk = self._samples[self._next:self._next + frames]
            outdata[:len(chunk), 0] = chunk
            outdata[len(chunk):, 0] = 0.0
            self._stamp = (self._next, time.perf_counter())
            self._next += frames

    def stop(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.stop()
            stream.close()

    def position(self) -> float:
        with self._lock:
            played, stamp = self._stamp
        if self._stream is None:
            return played / self._rate
        return max(0.0, played / self._rate + (time.perf_counter() - stamp) - self._latency)


def default_clock(audio: AudioInfo | None) -> tuple[Clock, str]:
    """The audio clock when there is sound and somewhere to play it, else a wall clock and why."""
    if audio is None:
        return WallClock(), ""
    ok, reason = output_device()
    if not ok:
        return WallClock(), f"Playing silently: {reason}"
    try:
        clock = AudioClock(audio)
    except Exception as exc:  # noqa: BLE001 - a device that cannot be opened
        return WallClock(), f"Playing silently: the sound device cannot be used ({exc})"
    return clock, ""


class Transport(QObject):
    """Plays the session (see the module docstring). ``clock_for(audio) -> (Clock, notice)``."""

    notice = Signal(str)

    def __init__(self, session: Session, clock_for: Callable = default_clock, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self._clock_for = clock_for
        self.clock: Clock | None = None
        self._moving = False  # the playhead is being moved by the transport itself
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        session.events.playing.connect(self._on_playing)
        session.events.frame.connect(self._on_frame)

    # --- commands (menu actions) ----------------------------------------------------------------
    def toggle(self) -> None:
        self.session.playing = not self.session.playing

    def step(self, frames: int) -> None:
        self.session.playing = False
        self.session.step(frames)

    def to_start(self) -> None:
        self.session.frame = 0

    def to_end(self) -> None:
        self.session.playing = False
        self.session.frame = self.session.last_frame

    # --- playing --------------------------------------------------------------------------------
    def _on_playing(self, event) -> None:
        if event.playing:
            if self.session.frame >= self.session.last_frame:
                self._move(0)  # play from the start when parked at the end
            self.clock, message = self._clock_for(self.session.media.audio)
            if message:
                self.notice.emit(message)
            self.clock.start(self.session.time)
            self._timer.start()
        else:
            self._timer.stop()
            if self.clock is not None:
                self.clock.stop()

    def _on_frame(self, event) -> None:
        if self.session.playing and not self._moving and self.clock is not None:
            self.clock.start(self.session.time)  # scrubbed while playing: play on from there

    def _move(self, frame: int) -> None:
        self._moving = True
        try:
            self.session.frame = frame
        finally:
            self._moving = False

    def _tick(self) -> None:
        session = self.session
        frame = math.floor(self.clock.position() * session.project.fps + 1e-6)
        if frame <= session.last_frame:
            self._move(frame)
            return
        if session.looping:
            self._move(0)
            self.clock.start(0.0)
        else:
            self._move(session.last_frame)
            session.playing = False

    def shutdown(self) -> None:
        self.session.playing = False
        self._timer.stop()
        if self.clock is not None:
            self.clock.stop()

