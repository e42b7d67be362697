"""The viewer model of the studio: what is open and where the animator is looking.

napari's ``ViewerModel`` for this application: the :class:`Session` holds the open
:class:`~studio.core.document.Project` and its file path, the playhead (a frame, clamped to the
project), playing and looping, the media loaded from the project's sources (plain information,
no renderer or face fit: those live with the views that need them), the selection (channels
and keys, as plain data) and the active layer (where keys go). Every field has its own event (``session.events.frame`` …), set through
a property that validates, stores and emits.

Views observe it; they never talk to each other. The session also gives them what several need:
the evaluated motion at the playhead (:meth:`Session.frame_values`, cached per frame and
invalidated by the project's ``changed`` event, announced as ``events.motion``), the window title,
and keying the selected channels at the playhead (one undo step, through the document, by the one
rule of :mod:`studio.core.keying`).

Pure: numpy only, no Qt; tested without a QApplication.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from studio.core.document import Project
from studio.core.events import EmitterGroup
from studio.core.keying import key_channels
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX

#: How many evaluated frames :meth:`Session.frame_values` keeps (scrubbing back and forth).
FRAME_CACHE_SIZE = 512
#: The portrait's fit, as the media bin and the 2D view report it.
FACE_STATES = ("pending", "detected", "placed", "missing")


@dataclass(frozen=True)
class PortraitInfo:
    """The loaded portrait: its file, its size and the state of its face fit."""

    path: str
    size: tuple[int, int]  # (height, width) pixels
    face: str = "pending"  # one of FACE_STATES: being fitted, found by the detector, placed by hand, none

    def __post_init__(self):
        if self.face not in FACE_STATES:
            raise ValueError(f"unknown face state {self.face!r}; expected one of {', '.join(FACE_STATES)}")


@dataclass(frozen=True, eq=False)
class AudioInfo:
    """The decoded sound: float32 mono samples in −1…1 (read-only) at ``sample_rate``."""

    path: str
    samples: np.ndarray = field(repr=False)
    sample_rate: int

    def __post_init__(self):
        samples = np.array(self.samples, dtype=np.float32, copy=True).reshape(-1)
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class MeshInfo:
    """A loaded head mesh: its file and its size."""

    path: str
    num_vertices: int
    num_faces: int


@dataclass(frozen=True)
class Media:
    """What has been loaded from the project's sources (None: not loaded, or no such source)."""

    portrait: PortraitInfo | None = None
    audio: AudioInfo | None = None
    transcript: str | None = None
    mesh: MeshInfo | None = None


@dataclass(frozen=True)
class Selection:
    """Selected channels (names of the motion space) and keys (curve path → key indices)."""

    channels: tuple[str, ...] = ()
    keys: Mapping[tuple, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self):
        unknown = [c for c in self.channels if c not in CHANNEL_INDEX]
        if unknown:
            raise KeyError(f"unknown motion channels {unknown}")
        ordered = tuple(sorted(set(self.channels), key=CHANNEL_INDEX.__getitem__))
        object.__setattr__(self, "channels", ordered)
        keys = {tuple(path): tuple(sorted({int(i) for i in indices})) for path, indices in self.keys.items()}
        object.__setattr__(self, "keys", MappingProxyType({p: i for p, i in keys.items() if i}))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return self.channels == other.channels and dict(self.keys) == dict(other.keys)

    __hash__ = None


def format_time(seconds: float) -> str:
    """``m:ss.cc`` (minutes, seconds, hundredths), as the status bar and the transport show time."""
    seconds = max(0.0, float(seconds))
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:05.2f}"


class Session:
    """The open project, the playhead, playback state, loaded media and the selection."""

    EVENTS = ("project", "path", "frame", "playing", "looping", "media", "selection", "motion", "modified", "layer")

    def __init__(self, project: Project | None = None, path: str | Path | None = None):
        self.events = EmitterGroup(self, self.EVENTS)
        self._project = Project()
        self._path: Path | None = None
        self._frame = 0
        self._playing = False
        self._looping = True
        self._media = Media()
        self._selection = Selection()
        self._layer_choice: str | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.set_project(project if project is not None else Project(), path)

    # --- the project ----------------------------------------------------------------------------
    @property
    def project(self) -> Project:
        return self._project

    def follow_project(self, handlers: Mapping[str, Callable], opened: Callable[[], None]) -> None:
        """Keep ``handlers`` (event → callback) connected to whichever project is open: moved from
        the previous project to the new one at each :meth:`set_project`, after which ``opened()``
        runs — and runs once now, for the project open already. An event is named as in
        ``project.events`` (``"timing"``) or by its dotted path from the project
        (``"undo_stack.events.index"``); one callback may take several events."""
        def emitter(project: Project, name: str):
            return functools.reduce(getattr, name.split("."), project) if "." in name else getattr(project.events, name)

        def swap(event) -> None:
            if event is not None:
                for name, handler in handlers.items():
                    emitter(event.previous, name).disconnect(handler)
            for name, handler in handlers.items():
                emitter(self._project, name).connect(handler)
            opened()

        self.events.project.connect(swap)
        swap(None)

    def set_project(self, project: Project, path: str | Path | None = None) -> None:
        """Open ``project`` (saved at ``path``, None when it has no file yet): the playhead goes to
        the start, playback stops, the selection and the loaded media are cleared. The ``project``
        event carries the ``previous`` project."""
        previous = self._project
        previous.events.changed.disconnect(self._on_changed)
        previous.events.timing.disconnect(self._on_timing)
        previous.undo_stack.events.clean.disconnect(self._on_clean)
        self._project = project
        self._path = None if path is None else Path(path)
        self._cache.clear()
        project.events.changed.connect(self._on_changed)
        project.events.timing.connect(self._on_timing)
        project.undo_stack.events.clean.connect(self._on_clean)
        self._playing = False
        self._frame = 0
        self._selection = Selection()
        self._layer_choice = None
        self._media = Media()
        self.events.project.emit(previous=previous)  # views drop their connections to the previous one
        self.events.path.emit()
        self.events.frame.emit(frame=0)
        self.events.playing.emit(playing=False)
        self.events.selection.emit()
        self.events.layer.emit()
        self.events.media.emit()
        self.events.motion.emit()
        self.events.modified.emit(modified=project.is_modified)

    @property
    def path(self) -> Path | None:
        return self._path

    @path.setter
    def path(self, value: str | Path | None) -> None:
        self._path = None if value is None else Path(value)
        self.events.path.emit()

    @property
    def is_modified(self) -> bool:
        return self._project.is_modified

    @property
    def display_name(self) -> str:
        return self._path.name if self._path is not None else "Untitled"

    @property
    def title(self) -> str:
        """The window title: the file name, ``*`` when modified (Qt's ``[*]`` convention is not used,
        so the title reads the same everywhere)."""
        return f"{self.display_name}{'*' if self.is_modified else ''} — Talking Head Studio"

    def _on_changed(self, event) -> None:
        self._cache.clear()
        self.events.motion.emit()

    def _on_timing(self, event) -> None:
        self.frame = self._frame  # clamp to the new length

    def _on_clean(self, event) -> None:
        self.events.modified.emit(modified=self.is_modified)

    # --- the playhead ---------------------------------------------------------------------------
    @property
    def last_frame(self) -> int:
        return max(self._project.num_frames - 1, 0)

    @property
    def frame(self) -> int:
        return self._frame

    @frame.setter
    def frame(self, value: float) -> None:
        value = int(np.clip(round(float(value)), 0, self.last_frame))
        if value != self._frame:
            self._frame = value
            self.events.frame.emit(frame=value)

    @property
    def time(self) -> float:
        """The playhead in seconds."""
        return self._frame / self._project.fps

    def step(self, frames: int) -> None:
        self.frame = self._frame + int(frames)

    # --- playback -------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._playing

    @playing.setter
    def playing(self, value: bool) -> None:
        value = bool(value) and self._project.num_frames > 1
        if value != self._playing:
            self._playing = value
            self.events.playing.emit(playing=value)

    @property
    def looping(self) -> bool:
        return self._looping

    @looping.setter
    def looping(self, value: bool) -> None:
        if bool(value) != self._looping:
            self._looping = bool(value)
            self.events.looping.emit(looping=self._looping)

    # --- media ----------------------------------------------------------------------------------
    @property
    def media(self) -> Media:
        return self._media

    @media.setter
    def media(self, value: Media) -> None:
        if not isinstance(value, Media):
            raise TypeError(f"media must be a Media, got {type(value).__name__}")
        if value != self._media:
            self._media = value
            self.events.media.emit()

    def update_media(self, **changes) -> None:
        """Replace some fields of :attr:`media` (``portrait=…``, ``audio=…``, …)."""
        self.media = replace(self._media, **changes)

    # --- selection ------------------------------------------------------------------------------
    @property
    def selection(self) -> Selection:
        return self._selection

    @selection.setter
    def selection(self, value: Selection) -> None:
        if value != self._selection:
            self._selection = value
            self.events.selection.emit()

    def select_channels(self, channels, add: bool = False) -> None:
        """Select channels by name or by group (a :data:`~studio.core.motion.CHANNEL_GROUPS` key)."""
        names: list[str] = []
        for name in channels:
            names.extend(CHANNEL_GROUPS.get(name, (name,)))
        if add:
            names.extend(self._selection.channels)
        self.selection = replace(self._selection, channels=tuple(names))

    def clear_selection(self) -> None:
        self.selection = Selection()

    # --- derived values -------------------------------------------------------------------------
    def frame_values(self, frame: int | None = None) -> np.ndarray:
        """The evaluated motion (74,) float32 at ``frame`` (the playhead when None), read-only."""
        frame = self._frame if frame is None else int(frame)
        values = self._cache.get(frame)
        if values is None:
            values = self._project.evaluate([frame])[0]
            values.setflags(write=False)
            self._cache[frame] = values
            if len(self._cache) > FRAME_CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(frame)
        return values

    # --- the active layer -------------------------------------------------------------------------
    @property
    def active_layer(self) -> str | None:
        """The layer keys go to and the timeline shows: the one chosen (:meth:`set_active_layer`)
        while the project has it, else the top layer; None when the project has no layer yet."""
        layers = self._project.layers
        if self._layer_choice is not None and any(layer.id == self._layer_choice for layer in layers):
            return self._layer_choice
        return layers[-1].id if layers else None

    @property
    def layer_choice(self) -> str | None:
        """The layer chosen with :meth:`set_active_layer` (None: follow the top layer)."""
        return self._layer_choice

    def set_active_layer(self, layer_id: str | None) -> None:
        """Choose the layer keys go to (None: the top layer, whichever it is)."""
        if layer_id is not None and not any(layer.id == layer_id for layer in self._project.layers):
            raise KeyError(f"no layer {layer_id!r} in the project")
        if layer_id != self._layer_choice:
            self._layer_choice = layer_id
            self.events.layer.emit()

    def key_selected_channels(self) -> int:
        """Key every selected channel at the playhead with the value it shows, on the active layer
        (created when there is none), as one undo step; the evaluated motion stays as it was, on a
        ``REPLACE``, ``ADD`` or partial-influence layer alike (:func:`studio.core.keying.key_channels`).
        Channels of locked groups are skipped. Returns how many channels were keyed."""
        channels = self._selection.channels
        if not channels:
            return 0
        values = self.frame_values()
        desired = {channel: float(values[CHANNEL_INDEX[channel]]) for channel in channels}
        return key_channels(self._project, channels, self._frame, desired, layer=self.active_layer)
