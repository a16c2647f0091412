"""A Segment result layer says where it came from, and its command remakes the same labels from the file."""

from __future__ import annotations

import hashlib
import shlex

import numpy as np
import pytest
import tifffile
from napari.layers import Labels

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.inference.provenance import read_provenance
from napari_unet_seg.core.measure.table_csv import read_objects_csv
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui


def test_result_layer_provenance_reruns_and_follows_into_the_measurements_csv(make_napari_viewer, qtbot, tmp_path):
    model_path = save_model(threshold_model(), user_model_dir() / "disks")
    tifffile.imwrite(tmp_path / "cells.tif", synthetic_nuclei((48, 64), n=6, seed=5)[0])
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "cells.tif"), plugin="napari")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    assert widget.model_picker.choose(model_path)
    widget.settings.device.setCurrentText("cpu")
    widget.run(viewer.layers["cells"])
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)

    layer = viewer.layers["cells labels"]
    assert isinstance(layer, Labels)
    record = layer.metadata["provenance"]
    assert record["input"] == str(tmp_path / "cells.tif") and record["ran_on"]["device"] == "cpu"
    assert record["model"]["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    args = shlex.split(record["command"])
    args[args.index("-o") + 1] = str(tmp_path / "cli")
    assert main(args[1:]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cli" / "cells_labels.tif"), np.asarray(layer.data))

    _, measure = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Measurements")  # its CSV says so too
    measure.labels_picker.setCurrentText("cells labels")
    assert measure.run() is not None
    qtbot.waitUntil(lambda: measure.worker is None, timeout=30_000)
    assert read_provenance(measure.save_csv(str(tmp_path / "cells_objects.csv"))) == record
    layer.paint((5, 5), 99)  # the user corrects the labels: the table says its provenance is of the segmentation
    _, comments = read_objects_csv(measure.save_csv(str(tmp_path / "edited_objects.csv")))
    assert "changed after they were made" in comments["edited"]
