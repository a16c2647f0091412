"""From an image to labels: normalisation, exact tiling, rescaling, post-processing, the one pipeline.

Builds on :mod:`..model`; knows nothing of training or of batches of files.
"""
