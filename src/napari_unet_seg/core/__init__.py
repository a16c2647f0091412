"""The Qt-free core: network, model files, tiling, post-processing, training, batch.

Nothing below this package may import Qt or napari, so that scripts and cluster
workers can use it (enforced by ``tests/test_architecture.py``).
"""
