"""The one segmentation pipeline: image -> planes -> normalised windows -> logits -> labels.

Every path (Segment widget, Layers menu, CLI, batch, dask workers, Python)
calls :func:`segment_image` with a :class:`~.options.RunOptions`, so they all
preprocess from the model's metadata, loop over planes the same way and give
identical results. Labels go to memory, or block by block to a zarr store.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from ..common.callbacks import CancelCallback, ProgressCallback, part_progress, raise_if_cancelled
from ..common.labels_zarr import LARGEST_ID, create_labels_store, finish_labels_store, open_labels_zarr
from ..common.notes import collecting_notes
from ..model.devices import resolve_device, resolve_precision
from ..model.modelfile import Model
from ..model.registry import cached_model
from .blockwise import CHUNK, segment_plane_blockwise
from .call_checks import check_callbacks, check_options, check_store_path, checked_pixel_size, checked_planes
from .cells import cells_note
from .cells_step import cell_stain, check_cells, grow_run_cells
from .frame_links import check_frame_links, link_frames, linked_note
from .layout import (
    PlaneView,
    channels_as_planes_note,
    channels_first,
    channels_mixed_note,
    check_channels,
    check_plane_size,
    is_rgb,
    numeric_image,
    one_channel,
    plane_layout,
    plane_size,
)
from .object_filter import ObjectFilter, check_object_filter, dropped_note, filter_plane
from .options import RunOptions
from .postprocess import probability_maps, semantic_labels
from .prediction import BLANK_NOTE, NONFINITE_NOTE, NetworkPrediction, predict_network, predict_plane
from .provenance import KEY as PROVENANCE
from .provenance import describe_run

Planes = tuple[tuple[int, ...], ...]


@dataclass
class SegmentResult:
    """The labels of the requested planes, how they were made, and what they hold.

    ``labels`` is a numpy array (leading axes, H, W), or the open zarr array
    when the run had a ``store``. ``objects`` counts instances over all planes
    (None for class outputs); ``mean_area`` is their mean area in pixels.
    ``provenance`` says where they came from (:mod:`.provenance`).
    """

    labels: Any
    planes: Planes
    probabilities: np.ndarray | None
    model_name: str
    device: str
    precision: str
    seconds: float
    objects: int | None = None
    mean_area: float = 0.0
    class_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0  # objects the object filters dropped (they are not in ``objects``)
    cells: np.ndarray | None = None  # with ``RunOptions.cells_channel``: each nucleus's cell, with its id


def segment_image(
    image: Any,
    options: RunOptions = RunOptions(),
    *,
    model: Model | str | os.PathLike | None = None,
    rgb: bool | None = None,
    channel_axis: int | None = None,
    planes: Planes | None = None,
    pixel_size: tuple[float, float] | None = None,
    image_path: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    file_axes: str | None = None,
) -> SegmentResult:
    """Segment ``image`` (numpy, dask, zarr; read lazily) as ``options`` say.

    The image is (H, W), (H, W, 3|4) with ``rgb`` (None: guessed from an
    8-bit trailing axis of 3 or 4), or multichannel with ``channel_axis``,
    each optionally with leading Z/T axes, segmented plane by plane
    (``planes``: the leading indices to do; None: all). ``model`` overrides
    ``options.model`` with an already loaded model (or a name or path, loaded). ``image_path`` (the
    image's file, if any) goes into the result's provenance; ``file_axes``, its axes as the file names
    them (``ZYX``: ImageJ's or OME's), keeps planes the file calls Z or T from being taken for channels.
    ``progress(done, total)`` is called as the work advances (fractions of one whole);
    ``cancel()`` returning True stops the run by raising ``Cancelled``. The result's
    ``labels`` have the image's plane shape (leading axes kept), 0 for background,
    unsigned integers (uint16 when the ids fit). Raises ``Cancelled``, ``ModelFileError``,
    ``DeviceError`` or ``ValueError`` with one clear line.
    """
    start = time.perf_counter()
    check_options(options)
    check_callbacks(progress, cancel)
    image = numeric_image(image)
    pixel_size = checked_pixel_size(pixel_size)
    if options.store is not None:
        check_store_path(options.store)
    model = model if isinstance(model, Model) else cached_model(options.model if model is None else model)
    device = resolve_device(options.device)
    requested = options
    options = replace(options, device=str(device), precision=resolve_precision(options.precision, device))
    if channel_axis is not None:
        rgb = False
    elif rgb is None:
        rgb = is_rgb(image)
    if options.channel is not None and model.in_channels != 1:
        raise ValueError(f"one channel alone was asked (channel {options.channel}), but model '{model.name}' takes "
                         f"{model.in_channels} channels: leave the channel unset for it")
    check_cells(options, model.task)
    stain = None if options.cells_channel is None else cell_stain(image, options, rgb=rgb, channel_axis=channel_axis)
    channels_said = channel_axis is not None or rgb  # another short axis is then no channels in disguise
    if options.channel is not None:  # the nuclear stain alone: a one-channel image from here on
        image, rgb, channel_axis = one_channel(image, options.channel, rgb=rgb, channel_axis=channel_axis), False, None
    lead, channels, height, width = plane_layout(tuple(image.shape), rgb, channel_axis)
    check_plane_size(lead, height, width)
    image = channels_first(image, channel_axis)
    check_channels(model.in_channels, min(channels, 3) if rgb else channels, model.name)  # RGBA: alpha unused
    mixed_note = channels_mixed_note(rgb, channel_axis, channels, model.in_channels)
    if options.store is not None and (options.probabilities or (options.output == "semantic"
                                                                 and model.task == "instances")):
        raise ValueError("labels written to disk hold the model's own output: no probability map, and no foreground "
                         "mask of an instance model (keep them in memory for those)")
    check_object_filter(options, model.task)
    check_frame_links(options, lead, model.task)
    if 0 in tuple(image.shape):
        raise ValueError(f"the image is empty (shape {tuple(image.shape)}): there is nothing to segment")
    planes = checked_planes(planes, lead) or tuple(np.ndindex(*lead))
    every_plane = planes == tuple(np.ndindex(*lead))
    # frames linked: the user said they are a movie; a channel axis given: the planes left are not channels
    stack_note = every_plane and not options.link_frames and not _named_stack(file_axes) and not channels_said \
        and channels_as_planes_note(tuple(image.shape), rgb, channel_axis, model.in_channels)
    if not stack_note and every_plane and len(planes) > 1 and not options.link_frames \
            and model.task == "instances" and not str(file_axes or "").upper().startswith("T"):
        stack_note = slices_on_their_own_note(len(planes))
    provenance = describe_run(model, requested, device=options.device, precision=options.precision,
                              image_path=image_path,
                              planes=None if every_plane else planes, rgb=rgb, channel_axis=channel_axis)
    with collecting_notes() as deeper:  # e.g. a window raised in tiling
        if options.store is not None:
            result = _segment_to_store(image, model, options, rgb=rgb, lead=lead, planes=planes,
                                       pixel_size=pixel_size, progress=progress, cancel=cancel,
                                       provenance=provenance,
                                       notes=[note for note in (stack_note, mixed_note) if note])
        else:
            result = _segment_in_memory(image, model, options, rgb=rgb, lead=lead, planes=planes, progress=progress,
                                        cancel=cancel)
        if stain is not None:  # the labels are in memory (check_cells), whole
            result.cells = grow_run_cells(result.labels, stain, options, planes, cancel=cancel)
    said = [note for note in (stack_note, mixed_note) if note]
    if stain is not None:
        same = options.cells_channel == options.channel
        said += [cells_note(result.labels, result.cells)
                 + ("; grown over the nuclear channel itself: give the cytoplasm or membrane stain's" if same else "")]
    result.notes = list(dict.fromkeys([*result.notes, *deeper.values(), *said]))
    result.seconds = time.perf_counter() - start
    result.provenance = provenance
    return result


def output_labels(prediction: NetworkPrediction, model: Model, output: str) -> np.ndarray:
    """Instances or classes; an instance model's "semantic" output is its foreground mask."""
    if output == "semantic" and model.task == "instances":
        threshold = float(model.postprocess.get("foreground_threshold", 0.5))
        return semantic_labels(prediction.image_logits[:1], threshold)
    return prediction.labels(model)


def links_wanted(options: RunOptions, instances: bool, lead: tuple[int, ...], planes: Planes) -> bool:
    """Frames are linked when asked, for objects of a (T, H, W) stack segmented whole (not one slice)."""
    return options.link_frames and instances and len(lead) == 1 and len(planes) == lead[0] > 1


def smallest_dtype(labels: np.ndarray) -> np.ndarray:
    """uint32 instance ids as uint16 when they fit (half the memory, and what ImageJ reads)."""
    if labels.dtype == np.uint32 and labels.max(initial=0) < 2**16:
        return labels.astype(np.uint16)
    return labels


def _in_blocks(plane: Any, model: Model, options: RunOptions, *, rgb: bool) -> bool:
    """Planes larger than a block are segmented block by block in memory too: the same labels (see
    :mod:`.blockwise`), with each block's seeds and watershed running while the network predicts the next
    block (the 4096² sample mosaic: 35 s whole, 27 s in blocks). Not when the maps themselves are wanted."""
    if options.probabilities or options.output != "instances" or model.task != "instances":
        return False
    return max(plane_size(plane, rgb)) > options.block_size


def _note_plane(notes: dict[str, list[tuple[int, ...]]], said: Sequence[str], index: tuple[int, ...]) -> None:
    """Remember which planes each note was said of."""
    for note in said:
        notes.setdefault(note, []).append(index)


def _planes_said(notes: dict[str, list[tuple[int, ...]]], count: int) -> list[str]:
    """The planes' notes for the whole image: a note of the image itself (blank, NaN pixels) said of only some
    planes of a stack names them ("slice 3 is blank ..."), or it would say a movie with one empty frame is blank."""
    out = []
    for note, indices in notes.items():
        if count <= 1 or len(indices) == count or note not in (BLANK_NOTE, NONFINITE_NOTE):
            out.append(note)
            continue
        names = ", ".join(str(i[0]) if len(i) == 1 else str(i) for i in indices[:8]) + (", ..." if len(indices) > 8
                                                                                         else "")
        one = len(indices) == 1
        which = f"slice{'' if one else 's'} {names} of {count}"
        if note == BLANK_NOTE:
            out.append(f"{which} {'is' if one else 'are'} blank (all {'its' if one else 'their'} pixels read as one "
                       "value): nothing to segment there")
        else:
            out.append(f"{which} {'has' if one else 'have'} NaN or infinite pixels: NaN and -inf were read as the "
                       "darkest value, +inf as the brightest")
    return out


def slices_on_their_own_note(count: int) -> str:
    """Said of a stack's objects: 2D slice by slice, a nucleus through 10 slices counts 10 times with 10 ids
    (a newcomer read "894 objects" of a z-stack of about 30 nuclei, and ids that looked linked but were not)."""
    return (f"each of the {count} slices was segmented on its own (2D): an object seen in several slices is counted "
            "in each, with an id of its own in each (same id across slices, --link-frames, links them)")


def _named_stack(axes: str | None) -> bool:
    """Whether a file names its leading axes, and only as Z or T (``ZYX``, ``TZYX``; not ``CYX``, nor tifffile's
    ``QYX`` or ``IYX`` for pages it cannot name): its planes are slices or frames, not channels in disguise.

    A C beside them (``TCYX``) is the channel axis, read as channels (not planes): the planes left are the frames.
    """
    leading = (axes or "").upper().replace("Y", "").replace("X", "").replace("S", "").replace("C", "")
    return bool(leading) and set(leading) <= set("ZT")


def _segment_in_memory(image: Any, model: Model, options: RunOptions, *, rgb: bool, lead: tuple[int, ...],
                       planes: Planes, progress: ProgressCallback | None,
                       cancel: CancelCallback | None) -> SegmentResult:
    instances = options.output == "instances" and model.task == "instances"
    found = ObjectFilter.of(options)
    labels = probabilities = None
    objects, area, dropped = 0, 0.0, 0
    notes: dict[str, list[tuple[int, ...]]] = {}
    for k, idx in enumerate(planes):
        plane = image[idx] if idx else image
        plane_progress = part_progress(progress, k, len(planes))
        if _in_blocks(plane, model, options, rgb=rgb):  # the same labels, post-processing beside the network
            plane_labels = np.zeros(plane_size(plane, rgb), np.uint32)
            outcome = segment_plane_blockwise(plane, model, plane_labels, (), options, rgb=rgb,
                                              progress=plane_progress, cancel=cancel)
            _note_plane(notes, outcome.notes, idx)
            plane_objects = outcome.objects
        else:
            prediction = predict_plane(model, plane, options, rgb=rgb, progress=plane_progress, cancel=cancel)
            raise_if_cancelled(cancel)  # before seconds of post-processing nobody wants any more
            _note_plane(notes, prediction.notes, idx)
            plane_labels = output_labels(prediction, model, options.output)
            raise_if_cancelled(cancel)
            plane_objects = int(plane_labels.max(initial=0))  # ids run 1..N: no copy of the plane to count them
        if instances and found.active:  # the plane's objects are whole here (blocks joined)
            plane_objects, plane_area, plane_dropped = filter_plane(plane_labels, (), found, len(plane_labels))
            objects, area, dropped = objects + plane_objects, area + plane_area, dropped + plane_dropped
        elif instances:
            objects, area = objects + plane_objects, area + float(np.count_nonzero(plane_labels))
        if not lead:
            labels = plane_labels
        else:
            if labels is None:
                labels = np.zeros(lead + plane_labels.shape, dtype=np.uint32 if instances else plane_labels.dtype)
            labels[idx] = plane_labels
        if options.probabilities:
            maps = probability_maps(prediction.image_logits, model.task)
            if probabilities is None:
                probabilities = maps if not lead else np.zeros(lead + maps.shape, dtype=np.float32)
            if lead:
                probabilities[idx] = maps
    said = dict.fromkeys(_planes_said(notes, len(planes)))
    if found.active and instances:
        said[dropped_note(found, dropped)] = None
    if links_wanted(options, instances, lead, planes):  # on finished, filtered frames
        said[linked_note(lead[0], link_frames(labels, labels.shape[1]))] = None
    return SegmentResult(smallest_dtype(labels), planes, probabilities, model.name, options.device, options.precision,
                         0.0, objects if instances else None, area / objects if objects else 0.0, model.class_names,
                         list(said), dropped=dropped)


def _segment_to_store(image: Any, model: Model, options: RunOptions, *, rgb: bool, lead: tuple[int, ...],
                      planes: Planes, pixel_size: tuple[float, float] | None, progress: ProgressCallback | None,
                      cancel: CancelCallback | None, provenance: dict[str, Any] | None = None,
                      notes: Sequence[str] = ()) -> SegmentResult:
    """Labels written block by block into an NGFF labels store, complete or not at all (an atomic rename).

    The store keeps the run's notes (the blocks', then the caller's
    ``notes``) in its attributes: a batch output read later says what the run said.
    """
    instances = model.task == "instances"
    plane_shape = tuple(int(s) for s in (image.shape[-3:-1] if rgb else image.shape[-2:]))
    dtype = np.uint32 if instances else (np.uint8 if model.net.num_classes <= 256 else np.uint16)
    chunks = (1,) * len(lead) + tuple(min(CHUNK, s) for s in plane_shape)
    path = Path(options.store)
    path.parent.mkdir(parents=True, exist_ok=True)
    objects, area, dropped, largest_id = 0, 0.0, 0, 0
    found = ObjectFilter.of(options)
    by_plane: dict[str, list[tuple[int, ...]]] = {}
    with atomic_path(path) as tmp:
        out = create_labels_store(tmp, lead + plane_shape, chunks, dtype)
        with collecting_notes() as deeper:  # kept in the store too
            for k, idx in enumerate(planes):
                plane = PlaneView(image, idx) if idx else image
                outcome = segment_plane_blockwise(plane, model, out, idx, options, rgb=rgb,
                                                  progress=part_progress(progress, k, len(planes)), cancel=cancel)
                _note_plane(by_plane, outcome.notes, idx)
                largest_id = max(largest_id, outcome.largest_id)  # filtering only removes ids
                if instances and found.active:  # on the finished plane: objects joined across blocks
                    plane_objects, plane_area, plane_dropped = filter_plane(out, idx, found, CHUNK)
                    objects, area, dropped = objects + plane_objects, area + plane_area, dropped + plane_dropped
                else:
                    objects, area = objects + outcome.objects, area + outcome.area
        said = dict.fromkeys(_planes_said(by_plane, len(planes)))
        if instances and found.active:
            said[dropped_note(found, dropped)] = None
        if links_wanted(options, instances, lead, planes):
            largest_id = link_frames(out, CHUNK)  # the ids used over all frames
            said[linked_note(lead[0], largest_id)] = None
        said.update(dict.fromkeys([*deeper.values(), *notes]))  # in the order segment_image gives them
        finish_labels_store(tmp, {
            "napari_unet_seg": {"model": model.name, "task": model.task, PROVENANCE: provenance},
            "objects": objects,
            "mean_area": area / objects if objects else 0.0,
            LARGEST_ID: largest_id,  # a store is not read whole to find the next free id for the brush
            "pixel_size": list(pixel_size) if pixel_size else None,
            "notes": list(said),
        }, name=path.name.removesuffix(".zarr"), pixel_size=pixel_size, cancel=cancel)
    labels = open_labels_zarr(path, mode="r+")  # writable: users paint corrections on it
    return SegmentResult(labels, planes, None, model.name, options.device, options.precision, 0.0,
                         objects if instances else None, area / objects if objects else 0.0, model.class_names,
                         list(said), dropped=dropped)


def segment(
    image: Any,
    model: Model | str | None = None,
    *,
    rgb: bool | None = None,
    channel_axis: int | None = None,
    diameter: float | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    flip_average: bool = False,
) -> np.ndarray:
    """Segment an image with a model (default: the built-in ``nuclei`` model); returns the labels.

    2D images give (H, W) labels. Stacks (Z or T leading axes) are segmented
    slice by slice and give labels of the same leading shape. ``rgb=None``
    guesses colour from an 8-bit trailing axis of 3 or 4; ``channel_axis``
    names the channel axis of multichannel images. :func:`segment_image` is
    the same with a :class:`RunOptions` and a full :class:`SegmentResult`.
    """
    model = model if isinstance(model, Model) else cached_model(model)
    options = RunOptions(diameter=diameter, tile_size=tile_size, batch_size=batch_size, device=device,
                         precision=precision, flip_average=flip_average)
    return segment_image(image, options, model=model, rgb=rgb, channel_axis=channel_axis, progress=progress,
                         cancel=cancel).labels


def segment_to_zarr(
    source: Any,
    model: Model | str | None,
    path: str | os.PathLike,
    *,
    rgb: bool | None = None,
    channel_axis: int | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    diameter: float | None = None,
    block_size: int = 2048,
    halo: int | None = None,
    pixel_size: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    flip_average: bool = False,
) -> Any:
    """Segment ``source`` (numpy, dask, zarr; read lazily) into a zarr labels array at ``path``.

    :func:`segment_image` with ``RunOptions(store=path)`` (``rgb=None``: guessed, as :func:`segment`
    does). ``halo`` (default :func:`~.blockwise.halo_for`) is the context around each block; it must
    hold the largest object. ``path`` never holds a partial result. Instance
    ids are unique within each plane. ``path`` becomes an NGFF labels store
    (:mod:`~..common.labels_zarr`); returns its labels as an opened zarr
    array (``attrs``: objects, mean_area, pixel_size, notes).
    """
    model = model if isinstance(model, Model) else cached_model(model)
    options = RunOptions(diameter=diameter, tile_size=tile_size, batch_size=batch_size, device=device,
                         precision=precision, store=str(path), block_size=block_size, halo=halo,
                         flip_average=flip_average)
    segment_image(source, options, model=model, rgb=rgb, channel_axis=channel_axis, pixel_size=pixel_size,
                  progress=progress, cancel=cancel)
    return open_labels_zarr(path, mode="r")


def predict_logits(model: Model, image: Any, **options: Any) -> np.ndarray:
    """Deprecated: use ``predict_network(model, image, ...).image_logits``."""
    warnings.warn("predict_logits is deprecated; use predict_network(model, image, ...).image_logits",
                  DeprecationWarning, stacklevel=2)
    return predict_network(model, image, **options).image_logits


def predict_scaled(model: Model, image: Any, **options: Any) -> tuple[np.ndarray, float]:
    """Deprecated: use ``predict_network(model, image, ...)`` (``.image_logits``, ``.scale``)."""
    warnings.warn("predict_scaled is deprecated; use predict_network(model, image, ...) and its .image_logits "
                  "and .scale", DeprecationWarning, stacklevel=2)
    prediction = predict_network(model, image, **options)
    return prediction.image_logits, prediction.scale
