"""Plain-Python events so views can observe the pure model (no Qt in the core).

``Signal.connect(callback)`` registers ``callback(event)``; ``emit(**info)`` calls every callback
with an :class:`Event` carrying ``type``, ``source`` and the info as attributes. Bound methods of
Python objects are held weakly, so a closed view never keeps the model alive nor receives events after it is gone.
``EmitterGroup`` bundles a model's signals: ``project.events.keys.connect(...)``.
"""

from __future__ import annotations

import weakref
from types import MethodType, SimpleNamespace
from typing import Any, Callable


class Event(SimpleNamespace):
    type: str
    source: Any


class Signal:
    def __init__(self, name: str, source: Any = None):
        self.name = name
        self._source = weakref.ref(source) if source is not None else (lambda: None)
        self._callbacks: list[Callable[[], Callable | None]] = []
        self.blocked = False

    def connect(self, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        ref = weakref.WeakMethod(callback) if isinstance(callback, MethodType) else (lambda cb=callback: cb)
        self._callbacks.append(ref)
        return callback

    def disconnect(self, callback: Callable[[Event], Any] | None = None) -> None:
        """Disconnect one callback, or all of them when None."""
        if callback is None:
            self._callbacks.clear()
            return
        self._callbacks = [r for r in self._callbacks if r() is not None and r() != callback]

    def emit(self, **info: Any) -> Event:
        event = Event(type=self.name, source=self._source(), **info)
        if self.blocked:
            return event
        dead = False
        for ref in list(self._callbacks):  # a snapshot: callbacks may connect others while we emit
            cb = ref()
            if cb is None:
                dead = True
                continue
            cb(event)
        if dead:
            self._callbacks = [r for r in self._callbacks if r() is not None]
        return event

    def __len__(self) -> int:
        return sum(1 for r in self._callbacks if r() is not None)


class EmitterGroup:
    """A named set of signals; ``group.add('keys')`` creates ``group.keys``."""

    def __init__(self, source: Any, names: tuple[str, ...] = ()):
        self._source = source
        self._names: list[str] = []
        for name in names:
            self.add(name)

    def add(self, name: str) -> Signal:
        signal = Signal(name, self._source)
        setattr(self, name, signal)
        self._names.append(name)
        return signal

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)
