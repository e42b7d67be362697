"""The desktop application (the only package that imports Qt, pyqtgraph or vispy)."""
