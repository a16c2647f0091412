"""napari reader (File > Open, drag and drop): OME-Zarr folders, such as this plugin's exports and zarr labels.

napari's own zarr reader finds no arrays in an NGFF group ("No arrays found
in zarr group"), so an OME-Zarr saved from napari could not be opened again
without another plugin. This reads NGFF 0.4 multiscales: the image (unless
it is the placeholder an export of labels alone carries) with its channels
and physical scale, and each labels group as a Labels layer with its
properties as features and its provenance. Labels small enough are read
into memory, so they can be painted on; larger ones stay lazy pyramids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._layer_marks import OPENED_KEY, features_stamp, fingerprint
from .core.export.stamp import record_in
from .core.imageio import micrometres_per

LayerData = tuple[Any, dict[str, Any], str]
PLACEHOLDER = "placeholder (labels only)"  # core.export.ome_zarr names an export's stand-in image so
IN_MEMORY_BYTES = 256 * 2**20  # labels up to this size are read whole: paintable, and their edits noticed


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """``read_ome_zarr`` for a folder holding NGFF multiscales, else None (another reader's turn)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_ome_zarr if _ngff_group(Path(path)) is not None else None


def read_ome_zarr(path: str | list[str]) -> list[LayerData]:
    """The image and every labels group of an OME-Zarr folder as napari layer data."""
    root = _ngff_group(Path(path[0] if isinstance(path, list) else path))
    if root is None:
        raise ValueError(f"{path}: not an OME-Zarr (NGFF) folder")
    name = Path(str(path[0] if isinstance(path, list) else path)).name.removesuffix(".zarr").removesuffix(".ome")
    if "image-label" in root.attrs:  # a labels store on its own (a batch's zarr output)
        return [_labels_layer(root, name)]
    layers = []
    multiscales = _attrs(root)["multiscales"][0]
    if multiscales.get("name") != PLACEHOLDER:
        layers.append(_image_layer(root, multiscales, name))
    if "labels" in root:
        for label_name in root["labels"].attrs.get("labels", []):
            group = root["labels"][label_name]  # its path has no spaces; its multiscales name is the layer's name
            title = (_attrs(group).get("multiscales") or [{}])[0].get("name")
            layers.append(_labels_layer(group, str(title or label_name)))
    return layers


def _ngff_group(path: Path) -> Any:
    if not path.is_dir():
        return None
    import zarr

    try:
        node = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001 - not a zarr group (or a damaged one): another reader's
        return None
    return node if _attrs(node).get("multiscales") else None


def _attrs(node: Any) -> dict[str, Any]:
    attrs = dict(node.attrs)
    return attrs.get("ome", attrs)  # NGFF 0.5 nests its metadata under "ome"


def _levels(node: Any, multiscales: dict[str, Any]) -> tuple[list[Any], list[str], list[float], list[float]]:
    """Every level as a lazy array, the axis names, and level 0's scale and translation (napari's translate)."""
    import dask.array as da

    datasets = multiscales["datasets"]
    levels = [da.from_zarr(node[d["path"]]) for d in datasets]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in multiscales.get("axes", [])]
    scale, translate = [1.0] * levels[0].ndim, [0.0] * levels[0].ndim
    for transform in datasets[0].get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation":
            translate = [float(v) for v in transform["translation"]]
    # in micrometres, as every reader of this package places layers (a store in nanometres: 500 -> 0.5)
    units = [a.get("unit") if isinstance(a, dict) else None for a in multiscales.get("axes", [])]
    for i, unit in enumerate(units[:len(scale)]):
        factor = micrometres_per(unit) if unit else None
        if factor is not None:
            scale[i], translate[i] = scale[i] * factor, translate[i] * factor
    return levels, axes or [""] * levels[0].ndim, scale, translate


def _image_layer(root: Any, multiscales: dict[str, Any], name: str) -> LayerData:
    levels, axes, scale, translate = _levels(root, multiscales)
    data = levels if len(levels) > 1 else levels[0]
    attributes: dict[str, Any] = {"name": multiscales.get("name") or name, "multiscale": len(levels) > 1}
    if "c" in axes:
        channel = axes.index("c")
        channels = int(levels[0].shape[channel])
        attributes.update(channel_axis=channel, scale=[scale[:channel] + scale[channel + 1:]] * channels,
                          translate=[translate[:channel] + translate[channel + 1:]] * channels,
                          name=[f"{attributes['name']} ch{k}" for k in range(channels)])
    else:
        attributes.update(scale=scale, translate=translate)
    return data, attributes, "image"


def _labels_layer(node: Any, name: str) -> LayerData:
    multiscales = _attrs(node)["multiscales"][0]
    levels, _, scale, translate = _levels(node, multiscales)
    whole = levels[0].nbytes <= IN_MEMORY_BYTES
    data: Any = np.asarray(levels[0]) if whole else (levels if len(levels) > 1 else levels[0])
    attributes: dict[str, Any] = {"name": name, "scale": scale, "translate": translate,
                                  "multiscale": not whole and len(levels) > 1}
    record = record_in(dict(node.attrs))
    if record is not None:  # exports of these labels carry it, marked edited once they are painted on
        attributes["metadata"] = {"provenance": record, OPENED_KEY: {"fingerprint": fingerprint(data)}}
    features = _features(_attrs(node).get("image-label", {}).get("properties"))
    if features is not None:  # stamped: painted labels leave their old measurements behind when saved
        attributes["features"] = features
        attributes["metadata"] = {**attributes.get("metadata", {}), **features_stamp(data)}
    return data, attributes, "labels"


def _features(properties: Any) -> Any:
    """NGFF label properties as a napari features table (``index``: napari's key to a label's row)."""
    if not isinstance(properties, list) or not properties:
        return None
    import pandas as pd

    rows = [dict(p) for p in properties if isinstance(p, dict) and "label-value" in p]
    if not rows:
        return None
    table = pd.DataFrame(rows).rename(columns={"label-value": "label"})
    table.insert(0, "index", table["label"])
    return table
