"""Exports of labels for other tools: ImageJ/Fiji ROI sets, QuPath GeoJSON, OME-Zarr (NGFF 0.4).

One module per format; each writer checks its inputs, never replaces an
existing file unless asked, and writes atomically (complete, or nothing).
Each carries an optional provenance record, in its format's own place (:mod:`.stamp`).
"""

from .geojson import write_geojson
from .imagej_rois import write_imagej_rois
from .ome_zarr import write_ome_zarr

__all__ = ["write_geojson", "write_imagej_rois", "write_ome_zarr"]
