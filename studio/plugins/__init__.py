"""Plugin API (plain-data specs) and the registry every importer, exporter and generator uses.

Write a plugin: a module or package with ``register(registry)`` that calls ``registry.add`` with
``ExporterSpec``, ``ImporterSpec`` or ``GeneratorSpec`` records (see ``studio.plugins.api`` for
the callables' contracts and ``plugins/README.md`` for an example). Use a plugin:
``default_registry().exporter_for("take.json", kind="motion").export(motion, "take.json")``.
"""

from studio.plugins.api import (
    EXPORTER_KINDS,
    IMPORTER_KINDS,
    ExporterSpec,
    GeneratorSpec,
    ImporterSpec,
    PluginSpec,
)
from studio.plugins.registry import (
    ENTRY_POINT_GROUP,
    PLUGIN_PATH_ENV_VAR,
    PluginLoadError,
    Registry,
    build_registry,
    default_registry,
    plugin_folders,
    reset_default_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXPORTER_KINDS",
    "IMPORTER_KINDS",
    "PLUGIN_PATH_ENV_VAR",
    "ExporterSpec",
    "GeneratorSpec",
    "ImporterSpec",
    "PluginLoadError",
    "PluginSpec",
    "Registry",
    "build_registry",
    "default_registry",
    "plugin_folders",
    "reset_default_registry",
]
