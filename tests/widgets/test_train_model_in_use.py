"""The model in use follows the loop: into every open dock, into docks opened later, and into napari started again.

A second Train dock (the Plugins menu opens one beside a dock added by name)
must follow a model the first put in use rather than crash napari; a Train
dock opened later starts where the loop is; the project remembers the model in
use, so the next day's Segment and Train do not fall back to the built-in model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import synthetic_nuclei
from napari_unet_seg._widgets import _model_in_use
from napari_unet_seg._widgets.segment import SegmentWidget
from napari_unet_seg._widgets.train import TrainWidget
from napari_unet_seg._widgets.train_form import SCRATCH
from napari_unet_seg.core.model.modelfile import new_model, save_model
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.project import Project, default_project_dir

pytestmark = pytest.mark.gui


def _saved_model(folder, name: str):
    torch.manual_seed(0)
    return save_model(new_model("instances", depth=2, base_channels=4), folder / f"{name}.safetensors")


def _viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((96, 128))
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells labels")
    return viewer


def test_a_model_put_in_use_reaches_a_second_train_dock_and_segment(make_napari_viewer, private_model_dir, tmp_path):
    viewer = _viewer(make_napari_viewer)
    project = tmp_path / "project"
    first, second = TrainWidget(viewer), TrainWidget(viewer)
    segment = SegmentWidget(viewer)
    for name, widget in (("Train", first), ("Train 2", second), ("Segment", segment)):
        viewer.window.add_dock_widget(widget, name=name)
    for widget in (first, second):
        widget.settings.project_dir.setText(str(project))
    mine = _saved_model(private_model_dir, "nuclei-finetuned")
    first.use_model(mine)  # what a better round (or History's "Use this model") does
    assert second.settings.model_box.currentText() == "nuclei-finetuned"  # followed it; it crashed napari before
    assert segment.model_picker.path() == mine
    assert Project(project).in_use == mine.absolute()  # remembered for napari started again


def test_docks_opened_later_and_napari_started_again_start_on_the_model_in_use(make_napari_viewer, private_model_dir,
                                                                               monkeypatch):
    viewer = _viewer(make_napari_viewer)
    mine = _saved_model(private_model_dir, "nuclei-finetuned")
    _model_in_use.set_model_in_use(viewer, mine)  # the default project, as a user's first round
    later = TrainWidget(viewer)
    viewer.window.add_dock_widget(later, name="Train")
    assert later.settings.model_box.currentText() == "nuclei-finetuned"  # not the built-in 'nuclei'
    # napari started again: nothing in memory, the project still knows
    monkeypatch.setattr(_model_in_use, "_IN_USE", type(_model_in_use._IN_USE)())
    tomorrow = _viewer(make_napari_viewer)
    segment, train = SegmentWidget(tomorrow), TrainWidget(tomorrow)
    assert segment.model_picker.path() == mine
    assert train.settings.model_box.currentText() == "nuclei-finetuned"
    # the chosen model's file deleted while the docks are open: a refresh says which model is chosen instead
    from napari_unet_seg._widgets import segment_pickers

    warned = []
    monkeypatch.setattr(segment_pickers, "show_warning", warned.append)
    monkeypatch.setattr(_model_in_use, "show_warning", warned.append)
    mine.unlink()
    segment.model_picker.refresh()
    assert segment.model_picker.path().stem == "nuclei"
    assert warned == [f"The model 'nuclei-finetuned' is gone ({mine} no longer exists): 'nuclei' is chosen instead."]
    # and napari started again: docks start on the built-in model again, no error, and it is said once
    monkeypatch.setattr(_model_in_use, "_IN_USE", type(_model_in_use._IN_USE)())
    again = _viewer(make_napari_viewer)
    assert SegmentWidget(again).model_picker.path().stem == "nuclei"
    TrainWidget(again)
    assert warned[1:] == [f"The model in use, 'nuclei-finetuned', is gone ({mine.absolute()} no longer exists): the "
                          "docks start on 'nuclei' instead. Put it back, or choose another model in Train's History."]


def test_a_model_in_use_renamed_in_the_model_folder_is_found_and_one_deleted_falls_back_to_the_history(
        make_napari_viewer, private_model_dir, monkeypatch):
    """Renamed by hand between sessions, the model in use was 'gone': the docks fell back to the built-in model and
    its History row stayed "[file missing]". Deleted, the docks fell back to 'nuclei', not to the loop's last good
    model."""
    said = []
    monkeypatch.setattr(_model_in_use, "show_info", said.append)
    monkeypatch.setattr(_model_in_use, "show_warning", said.append)

    def trained(name: str, date: str):
        torch.manual_seed(0)
        model = new_model("instances", depth=2, base_channels=4)
        model.metadata["lineage"] = [{"date": date}]
        return save_model(model, private_model_dir / f"{name}.safetensors")

    project = Project(default_project_dir())
    earlier, best = trained("round-1", "2026-12-01T09:00:00Z"), trained("round-2", "2026-12-01T10:00:00Z")
    for path in (earlier, best):
        project.record_model(path, {"parent": "nuclei", "improved": True})
    project.set_in_use(best)
    renamed = best.rename(best.with_name("my best tissue.safetensors"))
    segment = SegmentWidget(_viewer(make_napari_viewer))  # napari started again
    assert segment.model_picker.path() == renamed.absolute()
    assert said == [f"The model in use, 'round-2', is now 'my best tissue' ({renamed.absolute()}): the docks start on "
                    "it, and its rows in Train's History follow it."]
    again = Project(default_project_dir())
    assert again.in_use == renamed.absolute() and again.models[1]["path"] == str(renamed.absolute())
    renamed.unlink()
    monkeypatch.setattr(_model_in_use, "_IN_USE", type(_model_in_use._IN_USE)())
    segment = SegmentWidget(_viewer(make_napari_viewer))
    assert segment.model_picker.path() == earlier.absolute()
    assert said[1].startswith("The model in use, 'my best tissue', is gone") and "the docks start on 'round-1', " \
        "the newest better model of this project's History, instead" in said[1]


def test_a_project_moved_between_sessions_is_said_and_comes_back_from_its_new_folder(make_napari_viewer,
                                                                                     private_model_dir, tmp_path,
                                                                                     monkeypatch):
    """Moved away, the project looked empty: no corrections, no History, Segment on 'nuclei', and not a word."""
    import shutil

    from napari_unet_seg._widgets import train as train_module
    from napari_unet_seg.core.training.project import remember_project_dir

    warned = []
    monkeypatch.setattr(train_module, "show_warning", warned.append)
    mine = _saved_model(private_model_dir, "tissue-round")
    project = Project(tmp_path / "tissue")
    project.add(TrainingPair(*synthetic_nuclei((64, 64), seed=3), name="day one"))
    project.set_in_use(mine)
    remember_project_dir(tmp_path / "tissue")
    shutil.move(tmp_path / "tissue", tmp_path / "moved tissue")
    viewer = _viewer(make_napari_viewer)
    train, again = TrainWidget(viewer), TrainWidget(viewer)
    assert len(warned) == 1 and warned[0].startswith(f"The project Train used last, {tmp_path / 'tissue'}, is gone")
    train.settings.project_dir.setText(str(tmp_path / "moved tissue"))  # as the "…" button leaves it
    train.settings.project_dir.editingFinished.emit()
    assert train.settings.model_box.currentText() == "tissue-round"
    assert "1 annotated image" in train.settings.project_info.text()
    assert again is not None


def test_cancel_winds_down_in_words_and_once(make_napari_viewer, qtbot, tmp_path):
    from helpers import quick_training

    viewer = _viewer(make_napari_viewer)
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    quick_training(widget, tmp_path / "project", 100_000, {"crop_size": 48, "batch_size": 2, "preview_every": 1})
    widget.settings.max_seconds.setValue(600)
    widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.steps) >= 2, timeout=60_000)
    said = []
    shown = widget.status.setText
    widget.status.setText = lambda text: (said.append(text), shown(text))
    widget.cancel()
    assert not widget.cancel_button.isEnabled()  # pressed once: the run winds down
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.outcome.result.train.cancelled
    assert widget.status.text().startswith("cancelled: saved ")  # not "done"
    assert not any(text.startswith("step ") for text in said)  # no "step N ... left" once cancelled
    # the run is over: the labels to correct next are not under its preview
    assert widget.preview_layer is None and "training preview" not in viewer.layers
    again = TrainWidget(viewer)  # another dock's run shows its preview in a layer of that name again
    viewer.window.add_dock_widget(again, name="Train again")
    again._on_preview((0, 96, 0, 128), np.ones((96, 128), np.uint32))
    assert again.preview_layer.name == "training preview" and viewer.layers["training preview"].visible
    assert sum(layer.name.startswith("training preview") for layer in viewer.layers) == 1


def test_a_model_in_use_outside_the_model_folder_reaches_segment(make_napari_viewer, tmp_path):
    """A project's model in use written by `unet-seg train -o elsewhere/m.safetensors` lies outside the model folder:
    Segment quietly stayed on 'nuclei' while Train said "Segment uses it"."""
    viewer = _viewer(make_napari_viewer)
    elsewhere = _saved_model(tmp_path, "m3")
    Project(default_project_dir()).set_in_use(elsewhere)
    segment, train = SegmentWidget(viewer), TrainWidget(viewer)
    assert segment.model_picker.path() == elsewhere
    assert train.settings.starting_point() == str(elsewhere)
    viewer.window.add_dock_widget(segment, name="Segment")
    other = _saved_model(tmp_path / "more", "m4")
    train.use_model(other)  # History's "Use this model" on a model outside the model folder
    assert train.settings.starting_point() == str(other) and segment.model_picker.path() == other


def test_a_project_chosen_stays_chosen_and_brings_its_model_in_use(make_napari_viewer, private_model_dir, tmp_path,
                                                                    monkeypatch):
    """A project folder typed into Train went back to the default one when the dock was opened again, and typing
    it did not switch to its model: the next round mixed two projects' histories."""
    image, labels = synthetic_nuclei((96, 128))
    theirs = _saved_model(private_model_dir, "nuclei-finetuned-2")
    mine = tmp_path / "my project"
    project = Project(mine)
    project.add(TrainingPair(image, labels, name="cells"))
    project.set_in_use(theirs)
    default_in_use = _saved_model(private_model_dir, "nuclei-finetuned-4")
    Project(default_project_dir()).set_in_use(default_in_use)

    viewer = _viewer(make_napari_viewer)
    train, segment = TrainWidget(viewer), SegmentWidget(viewer)
    viewer.window.add_dock_widget(train, name="Train")
    viewer.window.add_dock_widget(segment, name="Segment")
    assert train.settings.model_box.currentText() == "nuclei-finetuned-4"  # the default project's, for now
    train.settings.project_dir.setText(str(mine))
    train.settings.project_dir.editingFinished.emit()
    assert train.settings.model_box.currentText() == "nuclei-finetuned-2"  # that project's loop goes on
    assert segment.model_picker.path() == theirs
    again = TrainWidget(viewer)  # opened again: the project chosen, not the default one
    assert again.settings.project_dir.text() == str(mine.absolute())
    monkeypatch.setattr(_model_in_use, "_IN_USE", type(_model_in_use._IN_USE)())  # napari started again
    tomorrow = _viewer(make_napari_viewer)
    assert SegmentWidget(tomorrow).model_picker.path() == theirs
    assert TrainWidget(tomorrow).settings.model_box.currentText() == "nuclei-finetuned-2"


def test_scribbles_leave_any_objects_model_for_a_new_class_model(make_napari_viewer, private_model_dir):
    viewer = _viewer(make_napari_viewer)
    mine = _saved_model(private_model_dir, "nuclei-finetuned")
    _model_in_use.set_model_in_use(viewer, mine)
    train = TrainWidget(viewer)
    assert train.settings.model_box.currentText() == "nuclei-finetuned"
    train.settings.mode_box.setCurrentIndex(2)  # scribbles: they train class models
    assert train.settings.model_box.currentText() == SCRATCH
    train.settings.mode_box.setCurrentIndex(0)  # only a look: back to dense, back to the model in use
    assert train.settings.model_box.currentText() == "nuclei-finetuned"
    assert train.settings.task_box.currentText() == "instances"
    # a class model trained in scribbles mode becomes the starting point there; back in dense, the objects loop
    # goes on from its own model, not from the class model
    train.settings.mode_box.setCurrentIndex(2)
    save_model(new_model("semantic", num_classes=3, depth=2, base_channels=4),
               private_model_dir / "classes-model.safetensors")
    train.refresh_models()
    train.settings.model_box.setCurrentText("classes-model")
    train.settings.mode_box.setCurrentIndex(0)
    assert train.settings.model_box.currentText() == "nuclei-finetuned"


def test_round_two_on_the_same_image_keeps_round_ones_corrections_and_says_so(make_napari_viewer, qtbot, tmp_path):
    """The loop as a user runs it: Segment, correct the left third, Train; Segment again (a new layer), correct the
    right third, Train. The project keeps both corrections, and the verdict says how many earlier objects stayed."""
    from napari.layers import Labels

    from napari_unet_seg._sample_data import nuclei_sample

    viewer = make_napari_viewer()
    for data, kwargs, kind in nuclei_sample():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    truth = np.asarray(viewer.layers["nuclei ground truth"].data)
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    _, train = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    train.settings.project_dir.setText(str(tmp_path / "project"))
    train.settings.max_steps.setValue(1)
    width = truth.shape[1]

    def round_(part: slice) -> Labels:
        segment.run(viewer.layers["nuclei"])
        qtbot.waitUntil(lambda: segment.worker is None, timeout=120_000)
        layer = [item for item in viewer.layers
                 if isinstance(item, Labels) and item.name.startswith("nuclei labels")][-1]
        corrected = np.asarray(layer.data).copy()
        corrected[:, part] = np.where(truth[:, part] > 0, truth[:, part] + corrected.max() + 1, 0)
        layer.data = corrected
        viewer.layers.selection.active = layer
        train.start()
        qtbot.waitUntil(lambda: train.worker is None, timeout=120_000)
        return layer

    first = round_(slice(0, width // 3))
    second = round_(slice(2 * width // 3, width))
    assert second is not first  # Segment kept the corrected layer and made a new one
    (saved,) = Project(tmp_path / "project").pairs()
    for part in (slice(0, width // 3), slice(2 * width // 3, width)):  # both rounds' corrections, object for object
        assert len(np.unique(saved.labels[:, part])) == len(np.unique(truth[:, part]))
    assert "Note: " in train.result.text() and "of your earlier correction of nuclei were kept" in train.result.text()
