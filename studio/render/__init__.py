"""Renderers: the 2D portrait warp and the 3D mesh deformers."""
