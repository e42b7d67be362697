"""The one registry of importers, exporters and generators, and how plugins are found.

Plugins come from two places, loaded in this order by ``default_registry()``:

1. entry points of installed distributions in the group ``talking_head_studio.plugins``
   (``name = "package.module:register"``); the studio's built-ins are registered this way;
2. plugin folders (``plugin_folders()``): each sub-package (a folder with ``__init__.py``) or
   single ``.py`` module in such a folder is imported under a private module name and its
   ``register(registry)`` is called.

A plugin that fails — import error, no ``register``, ``register`` raising, a duplicate name — is
recorded in ``Registry.errors`` as a ``PluginLoadError`` and skipped (anything it registered
before failing is rolled back); it never stops the application.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from studio.plugins.api import (
    EXPORTER_KINDS,
    IMPORTER_KINDS,
    ExporterSpec,
    GeneratorSpec,
    ImporterSpec,
    PluginSpec,
)

ENTRY_POINT_GROUP = "talking_head_studio.plugins"
PLUGIN_PATH_ENV_VAR = "STUDIO_PLUGIN_PATH"
USER_PLUGIN_SUBFOLDER = Path("talking-head-studio") / "plugins"

_logger = logging.getLogger(__name__)
_private_module_counter = itertools.count()


@dataclass(frozen=True)
class PluginLoadError:
    """One plugin that could not be loaded: where it came from and what went wrong."""

    source: str
    message: str
    details: str = ""  # the traceback, when there is one

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


_CATEGORY_OF_SPEC_TYPE: dict[type, str] = {
    ExporterSpec: "exporter",
    ImporterSpec: "importer",
    GeneratorSpec: "generator",
}
_KINDS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "exporter": EXPORTER_KINDS,
    "importer": IMPORTER_KINDS,
}


class Registry:
    """Named importers, exporters and generators, looked up by name, kind or file extension."""

    def __init__(self) -> None:
        self._specs_by_category: dict[str, dict[str, PluginSpec]] = {
            category: {} for category in _CATEGORY_OF_SPEC_TYPE.values()
        }
        self._source_by_spec: dict[tuple[str, str], str] = {}
        self._loading_source: str | None = None
        self.errors: list[PluginLoadError] = []

    # --- registering -------------------------------------------------------------------------

    def add(self, spec: PluginSpec, *, replace: bool = False) -> PluginSpec:
        """Registers ``spec``; replacing a spec of the same name in its category needs ``replace``."""
        category = _CATEGORY_OF_SPEC_TYPE.get(type(spec))
        if category is None:
            raise TypeError(
                "registry.add expects an ExporterSpec, ImporterSpec or GeneratorSpec; "
                f"got {type(spec).__name__}"
            )
        specs = self._specs_by_category[category]
        if spec.name in specs and not replace:
            registered_by = self._source_by_spec.get((category, spec.name))
            by = f" by {registered_by}" if registered_by else ""
            raise ValueError(
                f"{category} {spec.name!r} is already registered{by}; "
                "pass replace=True to replace it"
            )
        specs[spec.name] = spec
        if self._loading_source is not None:
            self._source_by_spec[(category, spec.name)] = self._loading_source
        else:
            self._source_by_spec.pop((category, spec.name), None)
        return spec

    # --- listing and lookup by name ----------------------------------------------------------

    def exporters(self, kind: str | None = None) -> list[ExporterSpec]:
        """Registered exporters, in registration order, optionally only those of ``kind``."""
        return self._listed("exporter", kind)  # type: ignore[return-value]

    def importers(self, kind: str | None = None) -> list[ImporterSpec]:
        """Registered importers, in registration order, optionally only those of ``kind``."""
        return self._listed("importer", kind)  # type: ignore[return-value]

    def generators(self) -> list[GeneratorSpec]:
        """Registered generators, in registration order."""
        return self._listed("generator", None)  # type: ignore[return-value]

    def exporter(self, name: str) -> ExporterSpec:
        return self._named("exporter", name)  # type: ignore[return-value]

    def importer(self, name: str) -> ImporterSpec:
        return self._named("importer", name)  # type: ignore[return-value]

    def generator(self, name: str) -> GeneratorSpec:
        return self._named("generator", name)  # type: ignore[return-value]

    def source_of(self, spec: PluginSpec) -> str | None:
        """The plugin (entry point or file) that registered ``spec``; None if added directly."""
        category = _CATEGORY_OF_SPEC_TYPE.get(type(spec), "")
        return self._source_by_spec.get((category, spec.name))

    def _listed(self, category: str, kind: str | None) -> list[PluginSpec]:
        known_kinds = _KINDS_BY_CATEGORY.get(category, ())
        if kind is not None and kind not in known_kinds:
            known = ", ".join(known_kinds)
            raise ValueError(f"unknown {category} kind {kind!r}; known kinds: {known}")
        specs = self._specs_by_category[category].values()
        return [spec for spec in specs if kind is None or getattr(spec, "kind", None) == kind]

    def _named(self, category: str, name: str) -> PluginSpec:
        specs = self._specs_by_category[category]
        try:
            return specs[name]
        except KeyError:
            known = ", ".join(sorted(specs)) or "none"
            raise KeyError(f"no {category} named {name!r}; known {category}s: {known}") from None

    # --- lookup by file extension ------------------------------------------------------------

    def exporter_for(self, path: str | os.PathLike[str], kind: str | None = None) -> ExporterSpec:
        """The exporter whose extension matches ``path`` (longest extension wins)."""
        return self._for_path("exporter", path, kind)  # type: ignore[return-value]

    def importer_for(self, path: str | os.PathLike[str], kind: str | None = None) -> ImporterSpec:
        """The importer whose extension matches ``path`` (longest extension wins)."""
        return self._for_path("importer", path, kind)  # type: ignore[return-value]

    def _for_path(
        self, category: str, path: str | os.PathLike[str], kind: str | None
    ) -> ExporterSpec | ImporterSpec:
        file_name = os.path.basename(os.fspath(path)).lower()
        candidates = self._listed(category, kind)
        best_spec = None
        best_length = 0
        for spec in candidates:
            for extension in spec.extensions:  # type: ignore[union-attr]
                matches = file_name.endswith(extension) and len(file_name) > len(extension)
                if matches and len(extension) > best_length:
                    best_spec, best_length = spec, len(extension)
        if best_spec is not None:
            return best_spec  # type: ignore[return-value]
        what = f"{kind} {category}" if kind else category
        supported = sorted({ext for spec in candidates for ext in spec.extensions})  # type: ignore[union-attr]
        if supported:
            extensions = ", ".join(supported)
            raise ValueError(f"no {what} for {os.fspath(path)!r}: supported extensions are {extensions}")
        raise ValueError(f"no {what} for {os.fspath(path)!r}: no {what}s are registered")

    # --- loading plugins ---------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Calls ``register(self)`` of every installed entry point in ``group``."""
        for entry_point in importlib.metadata.entry_points(group=group):
            source = f"entry point {entry_point.name!r} ({entry_point.value}) in group {group!r}"
            try:
                register = entry_point.load()
            except Exception as error:  # a broken plugin must not stop the application
                self._record_error(source, f"could not be imported: {_describe(error)}")
                continue
            self._call_register(register, source)

    def load_folder(self, folder: str | os.PathLike[str]) -> None:
        """Imports each sub-package and ``.py`` module in ``folder`` and calls its ``register``.

        Names starting with ``_`` or ``.`` (``__pycache__``, private helpers) and folders
        without ``__init__.py`` are skipped.
        """
        folder = Path(folder)
        if not folder.is_dir():
            self._record_error(str(folder), "plugin folder does not exist or is not a folder")
            return
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(("_", ".")):
                continue
            package_init = entry / "__init__.py"
            if entry.is_dir() and package_init.is_file():
                self._load_plugin_file(package_init, package_folder=entry, source=str(entry))
            elif entry.is_file() and entry.suffix == ".py":
                self._load_plugin_file(entry, package_folder=None, source=str(entry))

    def _load_plugin_file(self, file: Path, package_folder: Path | None, source: str) -> None:
        stem = package_folder.name if package_folder is not None else file.stem
        readable_stem = re.sub(r"\W", "_", stem)
        module_name = f"_studio_plugin_{next(_private_module_counter)}_{readable_stem}"
        search_locations = [str(package_folder)] if package_folder is not None else None
        try:
            module_spec = importlib.util.spec_from_file_location(
                module_name, file, submodule_search_locations=search_locations
            )
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot create an import spec for {file}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module  # relative imports inside a package need this
            module_spec.loader.exec_module(module)
        except Exception as error:
            _forget_modules(module_name)
            self._record_error(source, f"could not be imported: {_describe(error)}")
            return
        register = getattr(module, "register", None)
        if register is None:
            self._record_error(source, "has no register(registry) function")
            return
        self._call_register(register, source)

    def _call_register(self, register: object, source: str) -> None:
        if not callable(register):
            self._record_error(source, f"register is not callable ({type(register).__name__})")
            return
        saved_specs = {category: dict(specs) for category, specs in self._specs_by_category.items()}
        saved_sources = dict(self._source_by_spec)
        self._loading_source = source
        try:
            register(self)
        except Exception as error:
            self._specs_by_category = saved_specs
            self._source_by_spec = saved_sources
            self._record_error(source, f"register(registry) failed: {_describe(error)}")
        finally:
            self._loading_source = None

    def _record_error(self, source: str, message: str) -> None:
        details = traceback.format_exc() if sys.exc_info()[0] is not None else ""
        error = PluginLoadError(source=source, message=message, details=details)
        self.errors.append(error)
        _logger.warning("plugin skipped: %s", error)

    # --- summary -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many exporters, importers and generators are registered."""
        return {f"{category}s": len(specs) for category, specs in self._specs_by_category.items()}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _forget_modules(module_name: str) -> None:
    prefix = module_name + "."
    for name in [name for name in sys.modules if name == module_name or name.startswith(prefix)]:
        del sys.modules[name]


def _source_checkout_plugin_folder() -> Path | None:
    """``plugins/`` beside the ``studio`` package when running from a source checkout."""
    repository_root = Path(__file__).resolve().parents[2]
    folder = repository_root / "plugins"
    if (repository_root / "pyproject.toml").is_file() and folder.is_dir():
        return folder
    return None


def _user_plugin_folder(environ: Mapping[str, str]) -> Path:
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / USER_PLUGIN_SUBFOLDER


def plugin_folders(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Folders to scan for plugins, in order, without duplicates.

    ``STUDIO_PLUGIN_PATH`` entries (``os.pathsep``-separated; reported as errors later when
    missing, so typos show), the source checkout's ``plugins/`` and the user folder
    ``$XDG_DATA_HOME/talking-head-studio/plugins`` (default ``~/.local/share/...``), the last two
    only when they exist.
    """
    environ = os.environ if environ is None else environ
    folders = [
        Path(entry).expanduser()
        for entry in environ.get(PLUGIN_PATH_ENV_VAR, "").split(os.pathsep)
        if entry.strip()
    ]
    checkout_folder = _source_checkout_plugin_folder()
    if checkout_folder is not None:
        folders.append(checkout_folder)
    user_folder = _user_plugin_folder(environ)
    if user_folder.is_dir():
        folders.append(user_folder)
    return _without_duplicates(folders)


def _without_duplicates(folders: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique = []
    for folder in folders:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(folder)
    return unique


_default_registry: Registry | None = None
_default_registry_is_loading = False
_default_registry_lock = threading.RLock()


def build_registry(
    *, group: str = ENTRY_POINT_GROUP, folders: Iterable[str | os.PathLike[str]] | None = None
) -> Registry:
    """A fresh registry loaded from the entry points of ``group``, then from ``folders``."""
    registry = Registry()
    registry.load_entry_points(group)
    for folder in plugin_folders() if folders is None else folders:
        registry.load_folder(folder)
    return registry


def default_registry() -> Registry:
    """The application's registry: built once (entry points, then plugin folders), then cached."""
    global _default_registry, _default_registry_is_loading
    with _default_registry_lock:
        if _default_registry is None:
            if _default_registry_is_loading:
                raise RuntimeError(
                    "default_registry() was called while plugins are loading; a plugin must use "
                    "the registry passed to its register(registry)"
                )
            _default_registry_is_loading = True
            try:
                _default_registry = build_registry()
            finally:
                _default_registry_is_loading = False
        return _default_registry


def reset_default_registry() -> None:
    """Forgets the cached default registry (tests; after installing a plugin)."""
    global _default_registry
    with _default_registry_lock:
        _default_registry = None

