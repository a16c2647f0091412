"""napari-unet-seg: segment microscopy images with a U-Net, in napari or from Python.

>>> from napari_unet_seg import segment
>>> labels = segment(image)            # the built-in "nuclei" model

The public API lives here; everything it names comes from the Qt-free core.
"""

from .__about__ import __version__
from .core.common.callbacks import Cancelled
from .core.inference.options import RunOptions
from .core.inference.pipeline import (
    SegmentResult, predict_logits, predict_scaled, segment, segment_image, segment_to_zarr,
)
from .core.inference.postprocess import logits_to_labels
from .core.inference.prediction import NetworkPrediction, predict_network
from .core.inference.tiling import predict_tiled
from .core.model.modelfile import Model, ModelFileError, new_model, save_model
from .core.model.registry import available_models, load_model
from .core.model.unet import UNet

__all__ = [
    "Cancelled",
    "Model",
    "ModelFileError",
    "NetworkPrediction",
    "RunOptions",
    "SegmentResult",
    "UNet",
    "__version__",
    "available_models",
    "load_model",
    "logits_to_labels",
    "new_model",
    "predict_logits",
    "predict_network",
    "predict_scaled",
    "predict_tiled",
    "save_model",
    "segment",
    "segment_image",
    "segment_to_zarr",
]
