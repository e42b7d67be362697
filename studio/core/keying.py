"""Where a key goes and what value it gets: one rule for every way of keying (K, the inspector,
the timeline's "Key" commands).

A key for a motion channel goes on the *active* layer — the one the animator chose
(:attr:`Session.active_layer <studio.core.session.Session.active_layer>`), else the top layer,
created when there is none — or, for an eye channel whose gaze/blink override curve covers the
frame, on that override; ``"intensity"`` keys the intensity curve. The key's value is chosen so
that the *evaluated* value at its frame becomes the one asked for, whatever the layer's blend
(``ADD``) and influence (:func:`key_value_for`, solved from :func:`values_below`): keying the
value a channel shows keeps the picture as it is, on any layer.

Pure: numpy only (through the document), no Qt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from studio.core.document import BlendType, Project
from studio.core.fcurve import Interpolation
from studio.core.motion import CHANNEL_GROUPS, CHANNEL_INDEX, EYE_CHANNELS

#: The key of the intensity control (a curve of the document, beside the motion channels).
INTENSITY = "intensity"


def group_of_channel(channel: str) -> str | None:
    """The channel group (:data:`CHANNEL_GROUPS` key) a motion channel belongs to; None otherwise."""
    for group, channels in CHANNEL_GROUPS.items():
        if channel in channels:
            return group
    return None


def is_locked(project: Project, key: str) -> bool:
    """Whether ``key`` (a channel) lies in a locked group: it keeps the generated motion, nothing keys it."""
    group = group_of_channel(key)
    return group is not None and group in project.locked_groups


def edit_path(project: Project, key: str, frame: int, create: bool = False, layer: str | None = None) -> tuple | None:
    """The curve an edit of ``key`` at ``frame`` keys: an eye channel's override when that override
    covers the frame, else the channel on ``layer`` (when it is one of the project's) or the top
    layer — created when ``create`` and there is none (call it inside a macro) —,
    ``("intensity",)`` for the intensity. None: no layer yet."""
    if key == INTENSITY:
        return (INTENSITY,)
    if key in EYE_CHANNELS:
        curve = project.overrides.get(key)
        if curve is not None and curve.frames[0] <= frame <= curve.frames[-1]:
            return ("override", key)
    if layer is not None and any(existing.id == layer for existing in project.layers):
        return ("layer", layer, key)
    if create:
        return ("layer", project.default_layer_id(), key)
    return ("layer", project.layers[-1].id, key) if project.layers else None


def values_below(project: Project, layer_id: str, channels: Iterable[str], frame: int) -> dict[str, float]:
    """What ``channels`` evaluate to at ``frame`` without layer ``layer_id`` (and without their
    limits): evaluated on a copy of the project, so through the one evaluation path."""
    channels = list(channels)
    twin = project.copy()
    twin.set_layer(layer_id, mute=True)
    for channel in channels:
        if channel in twin.limits:
            twin.set_limit(channel, None)
    row = twin.evaluate([frame])[0]
    return {c: float(row[CHANNEL_INDEX[c]]) for c in channels}


def key_value_for(project: Project, path: tuple, desired: float, below: float | None) -> float:
    """The key that makes the evaluated value at its frame ``desired``: the value itself on an
    override, the intensity or a full-influence ``REPLACE`` layer; on an ``ADD`` layer or one of
    partial influence, solved from ``below`` (:func:`values_below`). A muted layer keys the value
    as it is (it shows once the layer is unmuted)."""
    if path[0] != "layer":
        return float(desired)
    layer = project.layer(path[1])
    weight = float(layer.influence)
    if layer.mute or weight <= 0.0 or below is None:
        return float(desired)
    if layer.blend is BlendType.ADD:
        return (desired - below) / weight
    if weight >= 1.0:
        return float(desired)
    return below + (desired - below) / weight


def needs_below(project: Project, path: tuple) -> bool:
    """Whether a key on ``path`` is solved from the value below its layer (:func:`key_value_for`)."""
    if path[0] != "layer":
        return False
    layer = project.layer(path[1])
    return not layer.mute and layer.influence > 0.0 and (layer.blend is BlendType.ADD or layer.influence < 1.0)


def insert_key(project: Project, path: tuple, frame: int, value: float) -> None:
    """Key ``value`` at ``frame`` on the curve at ``path``, keeping an existing key's interpolation."""
    curve = project.curve(path)
    i = None if curve is None else curve.key_index(frame)
    mode = Interpolation.BEZIER if i is None else Interpolation(int(curve.interpolation[i]))
    project.insert_keys(path, [frame], [value], mode)


def key_channels(project: Project, keys: Iterable[str], frame: int, desired: Mapping[str, float], *,
                 layer: str | None = None, text: str | None = None) -> int:
    """Key ``keys`` (motion channels, ``"intensity"``) at ``frame`` so that they evaluate to
    ``desired[key]`` there, on ``layer`` (see :func:`edit_path`), as one undo step; channels of
    locked groups are skipped. Returns how many were keyed."""
    keys = [k for k in keys if not is_locked(project, k)]
    if not keys:
        return 0
    frame = int(frame)
    label = text or (keys[0] if len(keys) == 1 else f"{len(keys)} channels")
    with project.macro(f"Key {label} at frame {frame}"):
        paths = {k: edit_path(project, k, frame, create=True, layer=layer) for k in keys}
        layered = [k for k in keys if needs_below(project, paths[k])]
        below = values_below(project, paths[layered[0]][1], layered, frame) if layered else {}
        for key in keys:
            path = paths[key]
            insert_key(project, path, frame, key_value_for(project, path, float(desired[key]), below.get(key)))
    return len(keys)
