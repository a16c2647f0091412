"""The correction loop in the Train widget: pickers follow the corrected layer, and the history goes back in one click."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.model.modelfile import save_model
from napari_unet_seg.core.model.registry import user_model_dir
from napari_unet_seg._widgets.train_layers import MODES
from napari_unet_seg.core.training.project import Project

pytestmark = pytest.mark.gui
PLUGIN = "napari-unet-seg"


def test_the_labels_picker_follows_the_layer_being_corrected(make_napari_viewer):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((64, 64))
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="first labels")
    corrected = viewer.add_labels(labels.copy(), name="corrected labels")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    assert train.settings.labels_box.currentText() == "corrected labels"  # the selected layer, not merely the first
    viewer.layers.selection.active = viewer.layers["first labels"]
    assert train.settings.labels_box.currentText() == "first labels"
    viewer.layers.selection.active = corrected
    assert train.settings.labels_box.currentText() == "corrected labels"
    assert train.settings.image_box.currentText() == "cells"


def test_history_lists_every_model_and_goes_back_in_one_click(make_napari_viewer, tmp_path, tiny_model):
    folder = user_model_dir()
    first = save_model(tiny_model, folder / "cells-finetuned.safetensors")
    second = save_model(tiny_model, folder / "cells-finetuned-2.safetensors")
    project = Project(tmp_path / "project")
    project.record_model(first, {"steps": 40, "parent": "nuclei", "improved": True, "ap50": 0.81, "dice": 0.9})
    project.record_model(second, {"steps": 40, "parent": "cells-finetuned", "improved": False, "ap50": 0.79})
    third = save_model(tiny_model, folder / "cells-finetuned-3.safetensors")
    project.record_model(third, {"steps": 40, "parent": "cells-finetuned", "improved": True, "tied": True,
                                 "ap50": 1.0})
    fourth = save_model(tiny_model, folder / "cells-finetuned-4.safetensors")
    project.record_model(fourth, {"steps": 40, "parent": "cells-finetuned-3", "improved": False, "fitted": True,
                                  "ap50": 0.95})
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    history = train.settings.history.models
    train.settings.project_dir.setText(str(tmp_path / "project"))
    train.settings.project_dir.editingFinished.emit()
    texts = [history.item(i).text() for i in range(history.count())]
    assert len(texts) == 5
    # a fine-tune Segment switched to although training lost: its parent's weights with fitted settings
    assert texts[0].startswith("cells-finetuned-4: AP50 0.950, cells-finetuned-3's weights (training did not beat "
                               "them), post-processing fitted (")
    assert texts[1].startswith("cells-finetuned-3: AP50 1.000, as good as cells-finetuned (held-out part all right)")
    assert texts[2].startswith("cells-finetuned-2: AP50 0.790, not better than cells-finetuned (")
    assert texts[3].startswith("cells-finetuned: AP50 0.810, better than nuclei (")
    assert texts[4] == "nuclei: where this project started [start from]"  # the model Train starts from now
    assert all(history.item(i).toolTip() == texts[i] for i in range(5))  # the whole line, however narrow the dock
    history.setCurrentRow(3)  # back to the earlier, better model
    train.settings.history.use_button.click()
    assert segment.model_picker.path() == first
    assert train.settings.model_box.currentText() == "cells-finetuned"
    assert history.item(3).text().endswith("[start from]") and not history.item(4).text().endswith("[start from]")
    history.setCurrentRow(4)  # and back to where it all started
    train.settings.history.use_button.click()
    assert segment.model_picker.path().stem == "nuclei" and train.settings.model_box.currentText() == "nuclei"
    assert all(path.exists() for path in (first, second, third, fourth))  # going back deletes nothing

def test_a_segment_result_must_be_corrected_before_training_on_it(make_napari_viewer, qtbot, tmp_path, tiny_model):
    save_model(tiny_model, user_model_dir() / "tiny.safetensors")
    viewer = make_napari_viewer()
    image, _ = synthetic_nuclei((64, 64))
    viewer.add_image(image, name="cells")
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    segment.model_picker.combo.setCurrentText("tiny")
    segment.run()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=60_000)
    labels = viewer.layers["cells labels"]
    viewer.layers.selection.active = labels
    assert train.settings.labels_box.currentText() == "cells labels"
    train.settings.project_dir.setText(str(tmp_path / "project"))
    train.start()  # the model's own output would teach it its own mistakes
    assert train.worker is None
    assert train.status.text() == ("Not started: 'cells labels' is Segment's result exactly as it came out: correct "
                                   "it first (paint the missed objects, erase the wrong ones), then press Train")
    assert len(Project(tmp_path / "project")) == 0  # nothing saved as a correction either
    labels.paint((20, 20), int(labels.data.max()) + 1)  # one correction, as the brush makes it
    train.settings.mode_box.setCurrentIndex(list(MODES).index("scribbles"))
    train.start()  # read as scribbles, its ids would teach every class one off: never, corrected or not
    assert train.worker is None and train.status.text().startswith("Not started: 'cells labels' is a Segment "
                                                                   "result, not scribbles: paint scribbles on a new")
    assert len(Project(tmp_path / "project")) == 0
    train.settings.mode_box.setCurrentIndex(list(MODES).index("dense"))
    train.settings.max_steps.setValue(1)
    train.start()
    assert train.worker is not None  # corrected: training starts
    qtbot.waitUntil(lambda: train.worker is None, timeout=120_000)



def test_history_compares_each_round_on_its_own_part_and_offers_every_starting_model(make_napari_viewer, tmp_path,
                                                                                    tiny_model, monkeypatch):
    """Class models beside a nuclei loop: both roots are offered; a path recorded relative still opens."""
    folder = user_model_dir()
    classes = save_model(tiny_model, folder / "classes-model.safetensors")
    tuned = save_model(tiny_model, folder / "nuclei-finetuned.safetensors")
    project = Project(tmp_path / "project")
    project.record_model(classes, {"steps": 30, "parent": "scratch", "improved": None, "mean_iou": 0.36})
    monkeypatch.chdir(folder)
    project.record_model("nuclei-finetuned.safetensors", {"steps": 40, "parent": "nuclei", "improved": True,
                                                          "ap50_90": 0.365, "parent_ap50_90": 0.301})
    assert Project(tmp_path / "project").models[1]["path"] == str(tuned)  # absolute: napari runs elsewhere
    monkeypatch.chdir(tmp_path)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    train.settings.project_dir.setText(str(tmp_path / "project"))
    train.settings.project_dir.editingFinished.emit()
    history = train.settings.history.models
    texts = [history.item(i).text() for i in range(history.count())]
    assert texts[0].startswith("nuclei-finetuned: AP50-90 0.365 (parent 0.301), better than nuclei")
    assert texts[1].startswith("classes-model (class model): mean IoU 0.360, from scratch")
    assert [t.split(" [")[0] for t in texts[2:]] == ["nuclei: where this project started"]  # scratch is no model
    assert not any("[file missing]" in t for t in texts)


def test_a_relative_path_of_an_earlier_release_is_found_in_the_model_folder(tmp_path, tiny_model, monkeypatch):
    from napari_unet_seg.core.training.project import recorded_model_path

    saved = save_model(tiny_model, user_model_dir() / "m1.safetensors")
    monkeypatch.chdir(tmp_path)  # not where the command ran
    assert recorded_model_path({"path": "cli2/m1.safetensors"}) == saved
    assert recorded_model_path({"path": "cli2/gone.safetensors"}) == Path("cli2/gone.safetensors")


def test_docks_opened_after_training_start_on_the_model_train_put_in_use(make_napari_viewer, tiny_model):
    """"Segment uses it" stays true for a Segment or Batch dock opened after the round."""
    tuned = save_model(tiny_model, user_model_dir() / "cells-finetuned.safetensors")
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    train.use_model(tuned)  # what a round worth keeping does, and Use this model
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch segment")
    assert segment.model_picker.path() == tuned and batch.model_picker.path() == tuned
    again = save_model(tiny_model, user_model_dir() / "cells-finetuned-2.safetensors")
    train.use_model(again)  # docks open now switch at once
    assert segment.model_picker.path() == again and batch.model_picker.path() == again
    other = make_napari_viewer()  # another viewer's docks are not touched
    _, elsewhere = other.window.add_plugin_dock_widget(PLUGIN, "Segment")
    assert elsewhere.model_picker.path() != tuned


def test_a_round_started_from_a_loaded_file_names_its_parent_by_the_files_name(tmp_path):
    from napari_unet_seg._widgets.train_history import history_line

    record = {"path": str(tmp_path / "mine-finetuned.safetensors"),
              "parent": str(tmp_path / "from us" / "mine.safetensors"), "improved": True, "ap50": 0.8,
              "saved": "2026-12-01T19:00:00"}
    assert history_line(record).startswith("mine-finetuned: AP50 0.800, better than mine (2026-12-01)")


def test_a_row_whose_model_was_moved_away_and_replaced_says_so_and_is_not_used(make_napari_viewer, tmp_path,
                                                                               tiny_model, monkeypatch):
    """Another project's round saved a new model at the path of one renamed by hand: the row opened the newcomer."""
    from napari_unet_seg._widgets import train_history

    folder = user_model_dir()
    tiny_model.metadata["lineage"] = [{"base": "nuclei", "date": "2026-12-01T10:00:00Z"}]
    first = save_model(tiny_model, folder / "cells-finetuned.safetensors")
    Project(tmp_path / "project").record_model(first, {"steps": 40, "parent": "nuclei", "improved": True,
                                                       "ap50": 0.81})
    first.rename(folder / "mine.safetensors")
    tiny_model.metadata["lineage"] = [{"base": "nuclei", "date": "2026-12-02T09:00:00Z"}]
    save_model(tiny_model, folder / "cells-finetuned.safetensors")  # a newer model at the same path
    viewer = make_napari_viewer()
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    train.settings.project_dir.setText(str(tmp_path / "project"))
    train.settings.project_dir.editingFinished.emit()
    history = train.settings.history.models
    assert history.item(0).text().startswith("cells-finetuned: AP50 0.810, better than nuclei (")
    assert history.item(0).text().endswith("[another model is at its path now]")
    errors = []
    monkeypatch.setattr(train_history, "show_error", errors.append)
    history.setCurrentRow(0)
    train.settings.history.use_button.click()
    assert errors == [f"{first} now holds another model: this one was renamed or moved away (find it by its name "
                      "in your files and load it in Segment with 'Load from file…')."]


def test_a_saved_annotation_can_be_left_out_of_training_and_put_back_from_the_dock(make_napari_viewer, tmp_path):
    from qtpy.QtCore import Qt

    from napari_unet_seg.core.training.data import TrainingPair
    from napari_unet_seg.core.training.project import Project

    project = Project(tmp_path / "project")
    project.add(TrainingPair(*synthetic_nuclei((48, 48), n=4, seed=1), name="day one"))
    project.add(TrainingPair(*synthetic_nuclei((48, 48), n=5, seed=2), name="HaCaT by mistake"))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    widget.settings.project_dir.setText(str(tmp_path / "project"))
    widget.settings.project_dir.editingFinished.emit()
    shown = widget.settings.annotations.list
    assert [shown.item(i).text().split(" (")[0] for i in range(shown.count())] == ["HaCaT by mistake", "day one"]
    assert all(shown.item(i).checkState() == Qt.CheckState.Checked for i in range(shown.count()))
    shown.item(0).setCheckState(Qt.CheckState.Unchecked)  # as a click on its box
    assert [p.name for p in Project(tmp_path / "project").pairs()] == ["day one"]
    assert widget.settings.annotations.note.text() == "1 left out of training (kept; tick to put back)"
    assert widget.settings.project_info.text() == ("2 annotated image(s) saved in this project, 1 of them left out "
                                                   "of training")
    shown.item(0).setCheckState(Qt.CheckState.Checked)
    assert len(Project(tmp_path / "project").pairs()) == 2
    assert widget.settings.project_info.text() == "2 annotated image(s) saved in this project"
