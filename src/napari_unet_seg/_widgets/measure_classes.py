"""Which Labels layer holds classes, what they are called, and objects coloured as their class.

A class layer is Segment's output of a class model (its provenance says so,
and its features name the classes) or any Labels layer a user painted
regions into; the Measurements dock gives each object the class most of its
classified pixels have (:mod:`napari_unet_seg.core.measure.classes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap

from ..core.inference.provenance import records_classes
from .measure_table import UNMEASURED
from .train_form import PREVIEW_KEY, SCRIBBLES_KEY

NO_CLASSES = "(none)"


def is_class_output(layer: Labels) -> bool:
    """Segment's output of a class model (or an instance model's mask): a layer to classify objects by."""
    return records_classes(layer.metadata.get("provenance"))


def made_objects(layer: Labels) -> bool:
    """Objects the plugin made (Segment's objects, grown cells): never a class map."""
    record = layer.metadata.get("provenance") or {}
    return not is_class_output(layer) and ("model" in record or record.get("kind") == "cells")


def may_hold_classes(layer: Labels) -> bool:
    """What the Classes picker offers: class outputs and layers a user painted, not objects or previews."""
    return not made_objects(layer) and not layer.metadata.get(PREVIEW_KEY)


def holds_objects(layer: Labels) -> bool:
    """Labels of objects, as far as the layer says: not a class model's output, Train's live preview, nor
    scribbles Train read."""
    return not is_class_output(layer) and not layer.metadata.get(PREVIEW_KEY) \
        and not layer.metadata.get(SCRIBBLES_KEY)


def class_names_of(layer: Labels) -> list[str] | None:
    """The classes' names, indexed by class: Segment's features (``index``, ``class``), else its provenance."""
    features = layer.features
    if "class" in features and "index" in features and "label" not in features:
        names: dict[int, str] = {}
        for index, name in zip(features["index"], features["class"]):
            if isinstance(name, str) and int(index) >= 0:
                names[int(index)] = name
        if names:
            return [names.get(k, "") for k in range(max(names) + 1)]
    recorded = ((layer.metadata.get("provenance") or {}).get("model") or {}).get("class_names")
    return [str(n) for n in recorded] if isinstance(recorded, list) else None


def name_classes(layer: Labels, names: list[str]) -> None:
    """Give ``layer``'s classes ``names`` (indexed by class) as napari shows names: its features, by index.

    Only the features change (never a pixel); a class model's output gets
    the same features from Segment.
    """
    top = max(len(names) - 1, int(np.max(layer.features["index"])) if "index" in layer.features and
              len(layer.features["index"]) else 0)
    full = [names[k] if k < len(names) and names[k] else ("background" if k == 0 else f"class {k}")
            for k in range(top + 1)]
    layer.features = {"index": np.arange(len(full)), "class": full}


def colours_of_classes(layer: Labels, classes: np.ndarray) -> dict[int, np.ndarray]:
    """Each class's colour as ``layer`` shows it (read on the main thread, while the layer is there)."""
    return {int(k): np.asarray(layer.get_color(int(k)), np.float32) for k in np.unique(classes) if k != 0}


def colours_by_class(ids: np.ndarray, classes: np.ndarray, colours: dict[int, Any]) -> DirectLabelColormap:
    """Each object in its class's colour; unclassified objects and labels painted after measuring grey."""
    table: dict[int | None, Any] = {None: np.array(UNMEASURED), 0: np.zeros(4)}
    grey = np.array((0.35, 0.35, 0.35, 1.0))
    table.update({int(i): np.asarray(colours.get(int(c), grey)) for i, c in zip(ids, classes)})
    return DirectLabelColormap(color_dict=table)
