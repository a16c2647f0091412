"""napari-unet-seg: segment microscopy images with a U-Net, in napari or from Python.

>>> from napari_unet_seg import segment
>>> labels = segment(image)            # the built-in "nuclei" model

Also here: ``finetune`` (with ``TrainingPair`` and ``default_config``) to train on
corrections, ``measure_objects`` for a table per object, and ``run_batch`` for
files and folders (optionally on a dask cluster). The public API lives here;
everything it names comes from the Qt-free core.
"""

from .__about__ import __version__
from .core.batch.runner import FileResult, run_batch
from .core.common.callbacks import Cancelled
from .core.inference.options import RunOptions
from .core.inference.pipeline import (
    SegmentResult, predict_logits, predict_scaled, segment, segment_image, segment_to_zarr,
)
from .core.inference.postprocess import logits_to_labels
from .core.inference.prediction import NetworkPrediction, predict_network
from .core.inference.tiling import predict_tiled
from .core.measure.measurements import measure_objects
from .core.model.devices import DeviceError
from .core.model.modelfile import Model, ModelFileError, new_model, save_model
from .core.model.registry import available_models, load_model
from .core.model.unet import UNet
from .core.training.checks import UnusableAnnotation
from .core.training.data import TrainingPair
from .core.training.finetune import FinetuneResult, default_config, finetune

__all__ = [
    "Cancelled",
    "DeviceError",
    "FileResult",
    "FinetuneResult",
    "Model",
    "ModelFileError",
    "NetworkPrediction",
    "RunOptions",
    "SegmentResult",
    "TrainingPair",
    "UNet",
    "UnusableAnnotation",
    "__version__",
    "available_models",
    "default_config",
    "finetune",
    "load_model",
    "logits_to_labels",
    "measure_objects",
    "new_model",
    "predict_logits",
    "predict_network",
    "predict_scaled",
    "predict_tiled",
    "run_batch",
    "save_model",
    "segment",
    "segment_image",
    "segment_to_zarr",
]
