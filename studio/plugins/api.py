"""The plugin API: what a plugin registers, as plain data (no Qt, no torch).

Every importer, exporter and generator of the studio — built-in or third-party — reaches the
application the same way: a *plugin* is a Python module or package exposing

    def register(registry):
        registry.add(ExporterSpec(...))
        registry.add(ImporterSpec(...))
        registry.add(GeneratorSpec(...))

and is found either through the entry-point group ``talking_head_studio.plugins`` of an
installed distribution (the built-ins use this too, see pyproject.toml) or as a sub-package or
single ``.py`` module in a plugin folder (the repository's ``plugins/``, ``STUDIO_PLUGIN_PATH``,
``$XDG_DATA_HOME/talking-head-studio/plugins``); see ``studio.plugins.registry``.

A spec is a frozen record: a ``name`` (``[a-z0-9_]+``, unique within its category), a
human ``label`` for menus, a ``kind``, the file ``extensions`` it handles (lowercase, with the
dot, multi-dot allowed: ``".tar.gz"``) and one callable. The callables take and return plain
data — numpy arrays, numbers, strings, paths, the studio's motion track — never widgets, and
they may run on a worker thread, so they must not touch Qt. Extra keyword ``options`` are
plugin-specific and documented in the spec's ``description``.

Exporter callables, per ``kind`` (return value ignored unless stated; ``path`` is a
``str`` or ``os.PathLike``; raise ``ValueError``/``OSError`` naming the file on failure):

``"motion"``
    ``export(motion, path, **options)`` — writes a motion track (the studio's T × 74 motion
    space with its fps and canonical keypoints, see the motion-file keys in DESIGN.md).
``"curves"``
    ``export(motion, path, **options)`` — writes animation curves derived from a motion track
    (e.g. ARKit blendshape curves, CSV channels) for other tools.
``"video"``
    ``export(frames, path, *, fps, audio=None, **options)`` — ``frames`` is an iterable of
    H × W × 3 ``uint8`` RGB arrays; ``audio`` is ``None`` or ``(samples, sample_rate)`` with
    ``samples`` a float32 mono array in −1…1.
``"image_sequence"``
    ``export(frames, path, **options) -> list[path]`` — ``frames`` as for video; ``path`` is
    the folder to write numbered images into; returns the files written.
``"mesh"``
    ``export(vertices, faces, path, *, fps, **options)`` — ``vertices`` is a T × V × 3
    float32 array (one mesh per frame), ``faces`` an F × 3 integer array.

Importer callables, per ``kind`` (``load(path, **options)``; raise ``ValueError``/``OSError``
naming the file when it cannot be read):

``"motion"``
    returns a motion track (as accepted by motion exporters).
``"portrait"``
    returns an H × W × 3 ``uint8`` RGB array.
``"mesh"``
    returns ``(vertices, faces)``: V × 3 float32 and F × 3 integer arrays.
``"audio"``
    returns ``(samples, sample_rate)``: a float32 mono array in −1…1 and an ``int``.
``"transcript"``
    returns the spoken text as a ``str``.

Generator callables: ``create(**options)`` returns a motion generator implementing the
interface of ``studio.generate`` (audio and per-frame controls in, motion track out).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

EXPORTER_KINDS: tuple[str, ...] = ("motion", "video", "image_sequence", "mesh", "curves")
IMPORTER_KINDS: tuple[str, ...] = ("motion", "portrait", "mesh", "audio", "transcript")

_NAME_PATTERN = re.compile(r"[a-z0-9_]+")
_EXTENSION_PATTERN = re.compile(r"(\.[a-z0-9_+\-]+)+")


def _check_name(category: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{category} name must be a non-empty string of lowercase letters, digits and "
            f"underscores ([a-z0-9_]+); got {name!r}"
        )


def _check_label(category: str, name: str, label: object) -> None:
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{category} {name!r}: label must be a non-empty string; got {label!r}")


def _check_description(category: str, name: str, description: object) -> None:
    if not isinstance(description, str):
        raise ValueError(
            f"{category} {name!r}: description must be a string; got {type(description).__name__}"
        )


def _check_kind(category: str, name: str, kind: object, known_kinds: tuple[str, ...]) -> None:
    if kind not in known_kinds:
        raise ValueError(
            f"{category} {name!r}: kind must be one of {', '.join(known_kinds)}; got {kind!r}"
        )


def _normalized_extensions(category: str, name: str, extensions: object) -> tuple[str, ...]:
    if isinstance(extensions, str) or not isinstance(extensions, (tuple, list)):
        raise ValueError(
            f"{category} {name!r}: extensions must be a tuple of strings like ('.json',); "
            f"got {extensions!r}"
        )
    if not extensions:
        raise ValueError(f"{category} {name!r}: extensions must list at least one, like ('.json',)")
    for extension in extensions:
        if not isinstance(extension, str) or not _EXTENSION_PATTERN.fullmatch(extension):
            raise ValueError(
                f"{category} {name!r}: extension {extension!r} must be lowercase and start with "
                f"a dot, like '.json' or '.tar.gz'"
            )
    return tuple(extensions)


def _check_callable(category: str, name: str, field_name: str, function: object) -> None:
    if not callable(function):
        raise ValueError(
            f"{category} {name!r}: {field_name} must be callable; got {type(function).__name__}"
        )


@dataclass(frozen=True)
class ExporterSpec:
    """A file writer: ``export`` writes plain data of ``kind`` to a file (see module docs)."""

    name: str
    label: str
    kind: str
    extensions: tuple[str, ...]
    export: Callable[..., object]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("exporter", self.name)
        _check_label("exporter", self.name, self.label)
        _check_kind("exporter", self.name, self.kind, EXPORTER_KINDS)
        extensions = _normalized_extensions("exporter", self.name, self.extensions)
        object.__setattr__(self, "extensions", extensions)
        _check_callable("exporter", self.name, "export", self.export)
        _check_description("exporter", self.name, self.description)


@dataclass(frozen=True)
class ImporterSpec:
    """A file reader: ``load`` returns plain data of ``kind`` from a file (see module docs)."""

    name: str
    label: str
    kind: str
    extensions: tuple[str, ...]
    load: Callable[..., object]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("importer", self.name)
        _check_label("importer", self.name, self.label)
        _check_kind("importer", self.name, self.kind, IMPORTER_KINDS)
        extensions = _normalized_extensions("importer", self.name, self.extensions)
        object.__setattr__(self, "extensions", extensions)
        _check_callable("importer", self.name, "load", self.load)
        _check_description("importer", self.name, self.description)


@dataclass(frozen=True)
class GeneratorSpec:
    """A motion generator factory: ``create(**options)`` returns a generator object."""

    name: str
    label: str
    create: Callable[..., object]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("generator", self.name)
        _check_label("generator", self.name, self.label)
        _check_callable("generator", self.name, "create", self.create)
        _check_description("generator", self.name, self.description)


PluginSpec = ExporterSpec | ImporterSpec | GeneratorSpec
