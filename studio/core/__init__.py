"""The pure core: motion space, keypoints, F-curves, the project document, undo, events and files.

Imports numpy only — no Qt, torch or onnxruntime (checked by import-linter, see pyproject.toml).
"""
