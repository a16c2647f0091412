"""Many files: finding them, segmenting each through the one pipeline, locally or on dask.distributed.

Builds on :mod:`..inference` and :mod:`..model`; independent of :mod:`..training`.
"""
