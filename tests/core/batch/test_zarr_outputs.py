"""A batch's zarr outputs are NGFF labels that ome-zarr-py reads; every reader takes them, and older outputs."""

import json
import shutil

import numpy as np
import zarr
from helpers import synthetic_nuclei
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.batch.runner import run_batch
from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
from napari_unet_seg.core.imageio import read_image, read_labels
from napari_unet_seg.core.inference.pipeline import segment_image
from napari_unet_seg.core.inference.provenance import read_provenance
from napari_unet_seg.core.measure.table_csv import read_objects_csv

RUN_ATTRS = ("napari_unet_seg", "objects", "mean_area", "pixel_size", "notes")


def _zarr_input(path, image, pixel_size=None):
    chunks = (1,) * (image.ndim - 2) + (128, 128)
    source = zarr.open_array(str(path), mode="w", shape=image.shape, chunks=chunks, dtype=image.dtype)
    source[:] = image
    if pixel_size:
        source.attrs["pixel_size"] = list(pixel_size)
    return path


def _ome_zarr_input(path, image, axes):
    root = zarr.open_group(str(path), mode="w")
    root.create_array("0", shape=image.shape, dtype=image.dtype, chunks=image.shape)[:] = image
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": n} for n in axes], "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * image.ndim}]}]}]
    return path


def test_a_zarr_output_is_an_ngff_image_label_group_equal_to_the_in_memory_labels(tmp_path, options):
    image, _ = synthetic_nuclei((560, 520), n=60, seed=5)
    [row] = run_batch([_zarr_input(tmp_path / "big.zarr", image, (0.5, 0.4))], tmp_path / "out", options)
    assert row.status == "ok" and row.output.endswith("big_labels.zarr")
    [node] = list(Reader(parse_url(row.output, fmt=FormatV04()))())
    assert node.load(Label) is not None  # what napari-ome-zarr opens as a labels layer
    reference = segment_image(image, options).labels  # one block: exactly the in-memory result
    np.testing.assert_array_equal(np.asarray(node.data[0]), reference)
    np.testing.assert_array_equal(np.asarray(node.data[1]), reference[::2, ::2])
    [multiscale] = zarr.open_group(row.output, mode="r").attrs["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["y", "x"]
    assert multiscale["datasets"][0] == {"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                                       "scale": [0.5, 0.4]}]}
    assert read_image(row.output).pixel_size == (0.5, 0.4)


def test_the_stack_axis_of_an_ome_zarr_time_series_is_t(tmp_path, options):
    frames = np.stack([synthetic_nuclei((64, 64), n=4, seed=s)[0] for s in range(3)])
    series = _ome_zarr_input(tmp_path / "movie.ome.zarr", frames, "tyx")
    volume = _zarr_input(tmp_path / "volume.zarr", frames)  # no axes said: a stack is z
    rows = run_batch([series, volume], tmp_path / "out", options)
    assert [r.status for r in rows] == ["ok", "ok"]
    for row, stack_axis in zip(rows, ("t", "z"), strict=True):
        [multiscale] = zarr.open_group(row.output, mode="r").attrs["multiscales"]
        assert [a["name"] for a in multiscale["axes"]] == [stack_axis, "y", "x"]
        [node] = list(Reader(parse_url(row.output, fmt=FormatV04()))())
        assert node.load(Label) is not None and node.data[0].shape == frames.shape


def _every_reader_takes(store, labels, record, objects, capsys):
    """The Batch widget's reader, provenance (Python and CLI), measure and export all open ``store``."""
    np.testing.assert_array_equal(read_labels(store)[:], labels)
    np.testing.assert_array_equal(np.asarray(read_image(store).data), labels)
    assert read_provenance(store) == record
    assert main(["provenance", str(store)]) == 0 and record["command"] in capsys.readouterr().out
    csv = store.parent / "again_objects.csv"
    assert main(["measure", str(store), "-o", str(csv), "--overwrite"]) == 0
    table, comments = read_objects_csv(csv)
    assert len(table["label"]) == objects and json.loads(comments["provenance"]) == record
    assert main(["export", str(store), "--format", "geojson", "--overwrite"]) == 0
    assert main(["export", str(store), "--format", "ome-zarr", "--overwrite"]) == 0
    assert read_provenance(store.with_name("big_labels.ome.zarr")) == record


def test_an_older_plain_array_output_still_resumes_opens_measures_and_tells_its_provenance(tmp_path, options, capsys):
    image, _ = synthetic_nuclei((100, 90), n=10, seed=5)
    source, out = _zarr_input(tmp_path / "big.zarr", image), tmp_path / "out"
    [first] = run_batch([source], out, options)
    store = out / "big_labels.zarr"
    labels, record = open_labels_zarr(store)[:], read_provenance(store)
    attrs = dict(zarr.open_group(str(store), mode="r").attrs)
    _every_reader_takes(store, labels, record, first.objects, capsys)

    shutil.rmtree(store)  # the same output as an older version wrote it: one plain zarr array
    old = zarr.open_array(str(store), mode="w", shape=labels.shape, chunks=(64, 64), dtype=labels.dtype, fill_value=0)
    old[:] = labels
    old.attrs.update({key: attrs[key] for key in RUN_ATTRS})
    [again] = run_batch([source], out, options)
    assert again.status == "skipped" and again.objects == first.objects and again.settings == first.settings
    assert isinstance(zarr.open(str(store), mode="r"), zarr.Array)  # resumed: left as it was
    _every_reader_takes(store, labels, record, first.objects, capsys)

    [redo] = run_batch([source], out, options, overwrite=True)
    assert redo.status == "ok" and isinstance(zarr.open(str(store), mode="r"), zarr.Group)
    np.testing.assert_array_equal(open_labels_zarr(store)[:], labels)
