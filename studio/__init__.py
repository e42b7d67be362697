"""Talking Head Studio: speech → facial animation for a portrait photo or a 3D face mesh.

Package layout (see ../shared/DESIGN.md): ``core`` is the pure motion space, document and files
(numpy only); ``audio``, ``generate``, ``render`` and ``io`` are the headless pipeline; ``plugins``
is the registry every importer, exporter and generator goes through; ``qt`` is the only place that
touches Qt.
"""

__version__ = "0.1.0"
