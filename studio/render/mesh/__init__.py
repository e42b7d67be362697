"""3D heads: the FLAME model (linear blend skinning), a FLAME-format stand-in head, mesh loaders.

* :mod:`studio.render.mesh.flame` — :class:`~studio.render.mesh.flame.FlameModel`: shape,
  expression and pose blendshapes with linear blend skinning, vectorized over frames; the 21
  keypoints on FLAME-topology meshes.
* :mod:`studio.render.mesh.flame_synth` — a procedural head in FLAME's exact file format (not
  FLAME: FLAME's license forbids shipping it) for tests, benchmarks and demos.
* :mod:`studio.render.mesh.loaders` — :class:`~studio.render.mesh.loaders.HeadMesh` from FLAME
  model files, VOCA templates and any OBJ/PLY/GLB/glTF/STL head with a keypoint file.
"""
