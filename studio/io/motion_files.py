"""Motion files (JSON, NPZ, CSV) as built-in importers and exporters of the plugin registry.

The format itself lives in :mod:`studio.core.motion_file`; this module only registers it, through
the same entry-point path as any third-party plugin (see pyproject.toml).
"""

from __future__ import annotations

from functools import partial

from studio.core.motion_file import read_motion, write_motion
from studio.plugins.api import ExporterSpec, ImporterSpec

_LABELS = {"json": "Motion (JSON)", "npz": "Motion (NumPy NPZ)", "csv": "Motion channels (CSV)"}


def register(registry) -> None:
    for fmt, label in _LABELS.items():
        registry.add(ExporterSpec(
            name=f"motion_{fmt}", label=label, kind="motion", extensions=(f".{fmt}",),
            export=partial(write_motion, fmt=fmt),
            description="The studio motion file: fps, the 74 channels, values, canonical keypoints"
                        + (" and per-frame keypoints." if fmt != "csv" else "; no per-frame keypoints.")))
        registry.add(ImporterSpec(
            name=f"motion_{fmt}", label=label, kind="motion", extensions=(f".{fmt}",),
            load=partial(read_motion, fmt=fmt),
            description="Reads a studio motion file; channels missing from older files are neutral."))
