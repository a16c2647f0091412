"""Between napari layers and the Segment job: what to read, where results go.

Everything here runs on the main thread. The one rule that matters: a result
layer is updated in place only while it still holds exactly what the plugin
wrote; once the user has painted on it, a new layer is made instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap, label_colormap
from napari.viewer import Viewer

from .._layer_marks import FINGERPRINT_LIMIT, SEGMENT_KEY, edited_tiles, fingerprint, tile_fingerprints, untouched
from ..core.common.labels_zarr import largest_id_written
from ..core.imageio import stated_axes
from ..core.inference.frame_links import link_frames

METADATA_KEY = SEGMENT_KEY


def is_lazy(array: Any) -> bool:
    return not isinstance(array, np.ndarray)


def spatial_kwargs(layer: Image, channel_axis: int | None) -> dict[str, Any]:
    """Where ``layer`` lies in the world, without its channel axis, so results overlay it: scale, translate,
    rotation, shear and affine (as matrices), units and axis labels."""
    values: dict[str, Any] = {key: list(getattr(layer, key)) for key in ("scale", "translate", "units", "axis_labels")
                              if hasattr(layer, key)}
    matrices = {"rotate": np.asarray(layer.rotate, float), "shear": _shear_matrix(layer.shear, layer.ndim),
                "affine": np.asarray(layer.affine.affine_matrix, float)}
    if channel_axis is not None:
        axis = channel_axis % layer.ndim
        for value in values.values():
            del value[axis]
        matrices = {key: np.delete(np.delete(matrix, axis, 0), axis, 1) for key, matrix in matrices.items()}
    if "units" in values:
        values["units"] = [str(unit) for unit in values["units"]]
    return {**{key: tuple(value) for key, value in values.items()}, **matrices}


MOVED_FROM_KEY = "napari_unet_seg_moved_from"  # a layer made by add_channels_first: its file, its axes' order


def file_of(layer: Any) -> str | None:
    """The file a layer was opened from: napari's record of it, or, for a layer with its channels put first,
    the original's (napari records none for a layer added by code, and the dock lost the file's calibration)."""
    moved = (getattr(layer, "metadata", None) or {}).get(MOVED_FROM_KEY)
    path = moved.get("path") if isinstance(moved, dict) else getattr(getattr(layer, "source", None), "path", None)
    return None if path is None else str(path)


def file_axes(layer: Any) -> str | None:
    """The axes its file names (``"ZCYX"``), in the layer's order (``"CZYX"`` once the channels are put first);
    None when the file names none, or not as many as the layer has."""
    axes = stated_axes(file_of(layer))
    moved = (getattr(layer, "metadata", None) or {}).get(MOVED_FROM_KEY)
    order = moved.get("order") if isinstance(moved, dict) else None
    if axes is None or len(axes) != layer.ndim:
        return None
    return "".join(axes[k] for k in order) if order and len(order) == len(axes) else axes


def add_channels_first(viewer: Viewer, layer: Image, axis: int) -> Image:
    """A new layer of ``layer`` with its channel ``axis`` moved to the front, in the same place in the world.

    napari lines a layer up with another by their last axes: labels of a
    Z x C x Y x X image lay over its channels, not its slices (newcomer
    trial). With the channels first they line up. The data is not copied (a
    numpy view, lazy for dask and zarr); ``layer`` is hidden, not removed.
    """
    axis %= layer.ndim
    order = [axis, *(k for k in range(layer.ndim) if k != axis)]

    def moved(level: Any) -> Any:
        if not isinstance(level, np.ndarray) and not hasattr(level, "dask"):
            import dask.array as da

            level = da.from_array(level, chunks=getattr(level, "chunks", "auto"))  # a zarr array is not read
        return level.transpose(order)

    data = [moved(level) for level in layer.data] if layer.multiscale else moved(layer.data)
    placement: dict[str, Any] = {key: tuple(np.asarray(getattr(layer, key), dtype=object)[order])
                                 for key in ("scale", "translate", "units", "axis_labels") if hasattr(layer, key)}
    placement["units"] = tuple(str(unit) for unit in placement.get("units", ()))
    if not placement["units"]:
        del placement["units"]
    homogeneous = [*order, layer.ndim]
    placement["rotate"] = np.asarray(layer.rotate, float)[np.ix_(order, order)]
    placement["affine"] = np.asarray(layer.affine.affine_matrix, float)[np.ix_(homogeneous, homogeneous)]
    shear = _shear_matrix(layer.shear, layer.ndim)[np.ix_(order, order)]
    if np.allclose(shear, np.triu(shear)):  # napari takes upper-triangular shears only
        placement["shear"] = shear
    path = file_of(layer)
    earlier = (layer.metadata or {}).get(MOVED_FROM_KEY)
    before = earlier.get("order") if isinstance(earlier, dict) and earlier.get("order") else list(range(layer.ndim))
    metadata = {MOVED_FROM_KEY: {"path": path, "order": [before[k] for k in order]}} if path else {}
    new = viewer.add_image(data, name=unique_name(viewer, f"{layer.name} (channels first)"),
                           multiscale=layer.multiscale, contrast_limits=layer.contrast_limits,
                           colormap=layer.colormap, metadata=metadata, **placement)
    layer.visible = False
    return new


def _shear_matrix(shear: Any, ndim: int) -> np.ndarray:
    """napari's shear as a matrix: its upper-triangular vector (row by row) filled into the identity."""
    shear = np.asarray(shear, float)
    if shear.ndim == 2:
        return shear
    matrix = np.eye(ndim)
    matrix[np.triu_indices(ndim, 1)] = shear
    return matrix


def _mark_edited(event: Any) -> None:
    info = event.source.metadata.get(METADATA_KEY)
    if isinstance(info, dict):
        info["edited"] = True


def is_pristine(layer: Labels) -> bool:
    """True while the layer holds exactly what the plugin last wrote into it."""
    return untouched(layer.metadata, layer.data, SEGMENT_KEY)


def is_segment_result(layer: Labels) -> bool:
    """True for a layer Segment made (edited since or not)."""
    return isinstance(layer.metadata.get(METADATA_KEY), dict)


def renamed(layer: Labels) -> bool:
    """True when the user renamed a result layer: a name of their own says "keep this one"."""
    info = layer.metadata.get(METADATA_KEY)
    return isinstance(info, dict) and info.get("name", layer.name) != layer.name


def result_layers(viewer: Viewer, image_name: str, image_id: str | None = None,
                  kind: str = "labels") -> list[Labels]:
    """Labels layers the plugin made from the image called ``image_name`` (or with id ``image_id``), newest last.

    The id follows the image through a rename, so renaming an image does not
    make the next result a new layer. ``kind`` keeps objects ("labels") and a
    class model's output ("classes") apart: neither replaces the other.
    """
    def made_from(info: dict[str, Any]) -> bool:
        if info.get("kind", "labels") != kind:
            return False
        if image_id is not None and info.get("source_id"):
            return info["source_id"] == image_id  # both known: the id decides, whatever the names
        return info.get("source") == image_name

    return [
        layer for layer in viewer.layers
        if isinstance(layer, Labels) and isinstance(layer.metadata.get(METADATA_KEY), dict)
        and made_from(layer.metadata[METADATA_KEY])
    ]


def unique_name(viewer: Viewer, base: str) -> str:
    """``base``, or ``base (2)``, ``base (3)``... whichever is free."""
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    n = 2
    while f"{base} ({n})" in names:
        n += 1
    return f"{base} ({n})"


def publish_labels(
    viewer: Viewer,
    image: Image,
    labels: Any,
    planes: tuple[tuple[int, ...], ...],
    *,
    all_planes: bool,
    channel_axis: int | None,
    provenance: dict[str, Any],
    kind: str = "labels",
) -> tuple[Labels, str]:
    """Put a result into the viewer; returns the layer and "created", "updated", "relinked", "protected" or
    "reshaped".

    ``kind`` is "labels" (objects) or "classes" (a class output): the layer is
    called "<image> labels" or "<image> classes", and replaces only its kind.

    "relinked": some slices of a result whose frames were linked (ids follow
    the nuclei) were segmented again; the frames were linked again around
    them, so the new slices' ids follow the nuclei too.

    "protected" means a result layer existed but held user edits or a name
    the user gave it, so a new layer was made next to it; "another model"
    that it was made by another model (replaced in place, two models' results
    were mixed up unnoticed); "reshaped" that the results there have another
    shape (a stack read as channels since).
    """
    previous = result_layers(viewer, image.name, str(getattr(image, "unique_id", "")) or None, kind)
    same_shape = [layer for layer in previous if tuple(layer.data.shape) == tuple(labels.shape)]
    target = next((layer for layer in reversed(same_shape) if is_pristine(layer) and not renamed(layer)
                   and _model_of(layer) == provenance.get("model")), None)
    if target is not None:
        how = "updated"
        if all_planes:
            target.data = labels
        else:
            _write_planes(target, labels, planes)
            if frames_linked(target) and getattr(target.data, "ndim", 0) == 3:  # not read whole if on disk
                link_frames(target.data)  # frames before the first new slice keep their ids
                target.refresh()
                how = "relinked"
        _record(target, image, provenance, kind)
        _paint_a_new_object_next(target, kind)
        return target, how
    untouched_other = [layer for layer in same_shape if is_pristine(layer) and not renamed(layer)]
    status = "another model" if untouched_other else "protected" if same_shape else \
        ("reshaped" if previous else "created")
    # what made it, known from the moment it is added: docks that check it as it arrives (Train: do these labels
    # overlay that image's channel?) read the record, complete once the layer holds the result
    layer = viewer.add_labels(
        labels, name=unique_name(viewer, f"{image.name} {kind}"),
        metadata={METADATA_KEY: _made(image, provenance, kind)},
        **spatial_kwargs(image, channel_axis),
    )
    layer.events.paint.connect(_mark_edited)
    _record(layer, image, provenance, kind)
    _paint_a_new_object_next(layer, kind)
    return layer, status


def _paint_a_new_object_next(layer: Labels, kind: str) -> None:
    """Select the first unused id, as napari's "new label" button does: a missed nucleus painted with the
    default label 1 joined object 1, which Train then learnt as one nucleus in two places (newcomer trial).
    A store on disk is not read whole for it: its attributes say the largest id written."""
    if kind != "labels":
        return
    largest = int(layer.data.max(initial=0)) if isinstance(layer.data, np.ndarray) else largest_id_written(layer.data)
    if largest is not None:
        layer.selected_label = largest + 1


def frames_linked(layer: Labels) -> bool:
    """Whether the run that made ``layer`` linked its frames (its provenance says so)."""
    record = layer.metadata.get("provenance")
    settings = record.get("settings") if isinstance(record, dict) else None
    return bool(isinstance(settings, dict) and settings.get("link_frames"))


def _write_planes(layer: Labels, labels: np.ndarray, planes: tuple[tuple[int, ...], ...]) -> None:
    data = layer.data
    needed = max((int(labels[idx].max(initial=0)) for idx in planes), default=0)
    if np.issubdtype(data.dtype, np.integer) and needed > np.iinfo(data.dtype).max:
        data = data.astype(np.uint32)
    for idx in planes:
        data[idx] = labels[idx]
    if data is layer.data:
        layer.refresh()
    else:
        layer.data = data


def mark_result(layer: Labels, image: Image, record: dict[str, Any] | None, kind: str = "labels") -> None:
    """Make a layer of a result read from disk (a batch output) count as the plugin's, as Segment's do.

    Until it is painted on, Train refuses it (it would teach the model its own
    mistakes), a saved table does not call it edited, and Segment may update it.
    """
    model = (record or {}).get("model")
    ran_on = (record or {}).get("ran_on")
    layer.events.paint.connect(_mark_edited)
    _record(layer, image, {"model": model.get("name") if isinstance(model, dict) else None,
                           "device": ran_on.get("device") if isinstance(ran_on, dict) else None}, kind)
    _paint_a_new_object_next(layer, kind)  # untouched: the ids its store says it holds are all it holds


def _record(layer: Labels, image: Image, provenance: dict[str, Any], kind: str = "labels") -> None:
    layer.metadata[METADATA_KEY] = {
        **_made(image, provenance, kind), "edited": False, "fingerprint": fingerprint(layer.data), "name": layer.name,
        "plane_fingerprints": _plane_fingerprints(layer.data), "tile_fingerprints": _tile_fingerprints(layer.data),
        "tile_dtype": str(getattr(layer.data, "dtype", "")),
    }


def _model_of(layer: Labels) -> Any:
    """The name of the model that made a result layer, as its record says."""
    return layer.metadata[METADATA_KEY].get("model")


def _made(image: Image, provenance: dict[str, Any], kind: str) -> dict[str, Any]:
    """What a result was made from and how: the start of its record (complete once the layer holds it)."""
    return {"source": image.name, "kind": kind, "source_id": str(getattr(image, "unique_id", "")) or None,
            **provenance}


def _plane_fingerprints(data: Any) -> dict[str, str] | None:
    """A hash of each plane of a stack (by its leading index, "2" or "0,3"), to tell the slices corrected from
    those left as they came out; None for a single plane, or where hashing costs too much."""
    if not isinstance(data, np.ndarray) or data.ndim < 3 or data.nbytes > FINGERPRINT_LIMIT:
        return None
    return {",".join(map(str, index)): str(fingerprint(data[index])) for index in np.ndindex(data.shape[:-2])}


def _tile_fingerprints(data: Any) -> dict[str, list[str]] | None:
    """Each plane's tile hashes (by its leading index, "" for a single plane), to tell where the user corrected
    the result (:func:`edited_region`); None where hashing costs too much."""
    if not isinstance(data, np.ndarray) or data.ndim < 2 or data.nbytes > FINGERPRINT_LIMIT:
        return None
    return {",".join(map(str, index)): tile_fingerprints(data[index]) for index in np.ndindex(data.shape[:-2])}


def edited_region(layer: Labels, index: tuple[int, ...] = ()) -> np.ndarray | None:
    """Where the user changed plane ``index`` of a Segment result since Segment wrote it (whole tiles of
    :data:`~.._layer_marks.EDIT_TILE` px); None when not known (not a Segment result, too big, lazy)."""
    info = layer.metadata.get(METADATA_KEY)
    tiles = info.get("tile_fingerprints") if isinstance(info, dict) else None
    stored = tiles.get(",".join(map(str, index))) if isinstance(tiles, dict) else None
    data = layer.data
    if not isinstance(stored, list) or not isinstance(data, np.ndarray) or data.ndim != len(index) + 2:
        return None
    return edited_tiles(np.asarray(data[index] if index else data), stored, info.get("tile_dtype") or None)


def uncorrected_planes(layer: Labels) -> list[tuple[int, ...]] | None:
    """The planes of a Segment result still exactly as Segment wrote them (None: not known, or not a stack)."""
    info = layer.metadata.get(METADATA_KEY)
    planes = info.get("plane_fingerprints") if isinstance(info, dict) else None
    data = layer.data
    if not isinstance(planes, dict) or not isinstance(data, np.ndarray) or data.ndim < 3:
        return None
    same = [index for index in np.ndindex(data.shape[:-2])
            if planes.get(",".join(map(str, index))) == fingerprint(data[index])]
    return same


def show_classes(layer: Labels, class_names: list[str]) -> None:
    """A class output as the user painted it: class k in the colour a new Labels layer gives value k + 1 (the
    scribble value that taught it; 0, background, clear), and each class's name where the cursor is."""
    painted = label_colormap(49, seed=0.5)  # napari's colours of a new Labels layer
    transparent = np.zeros(4, np.float32)
    colours = {None: transparent, 0: transparent,
               **{k: painted.map(np.array([k + 1]))[0] for k in range(1, len(class_names))}}
    layer.colormap = DirectLabelColormap(color_dict=colours)
    layer.features = {"index": np.arange(len(class_names)), "class": list(class_names)}


def publish_probabilities(viewer: Viewer, image: Image, probabilities: np.ndarray, class_names: list[str],
                          *, channel_axis: int | None, labels_ndim: int) -> None:
    """Add (or refresh) "<image> probability" image layers; they hold no user work, so they are replaced."""
    kwargs = spatial_kwargs(image, channel_axis)
    maps = [probabilities] if probabilities.ndim == labels_ndim else list(np.moveaxis(probabilities, -3, 0))
    names = [f"{image.name} probability"] if len(maps) == 1 else [
        f"{image.name} p({name})" for name in (class_names[1:] + [str(i) for i in range(len(class_names), 99)])
    ]
    for data, name in zip(maps, names):
        if name in viewer.layers and isinstance(viewer.layers[name], Image) \
                and viewer.layers[name].data.shape == data.shape:
            viewer.layers[name].data = data
        else:
            viewer.add_image(data, name=name, colormap="magma", blending="additive",
                             contrast_limits=(0.0, 1.0), **kwargs)
