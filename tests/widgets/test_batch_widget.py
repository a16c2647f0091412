"""The Batch segment dock: runs in the background, fills the table, writes summary.csv, opens results."""

import numpy as np
import pytest
import tifffile

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model
from napari_unet_seg._widgets.batch import COLUMNS, BatchWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer, qtbot, tmp_path, private_model_dir):
    save_model(threshold_model(), private_model_dir / "disks.safetensors")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"img {i}.tif", synthetic_nuclei((40, 48), n=5, seed=i)[0],
                         resolution=(2.0, 2.0), imagej=True, metadata={"unit": "um"})
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    viewer = make_napari_viewer()
    widget = BatchWidget(viewer)
    qtbot.addWidget(widget)
    widget.model_picker.refresh()
    widget.input_dir.setText(str(folder))
    widget.output_dir.setText(str(tmp_path / "out"))
    widget.device.setCurrentText("cpu")
    return widget, viewer, tmp_path


def run_and_wait(widget, qtbot):
    assert widget.run() is not None
    # not waitSignal(worker.finished): a quick run can finish before the wait connects, and the signal is lost
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.run_button.isEnabled()


def test_batch_fills_table_and_opens_results(widget, qtbot):
    widget, viewer, tmp_path = widget
    run_and_wait(widget, qtbot)
    statuses = [widget.table.item(r, 1).text() for r in range(widget.table.rowCount())]
    assert sorted(statuses) == ["failed", "ok", "ok", "ok"]
    assert (tmp_path / "out" / "summary.csv").exists()
    assert "3 segmented" in widget.status.text() and "1 failed" in widget.status.text()
    row = statuses.index("ok")
    widget.table.cellDoubleClicked.emit(row, 0)
    assert [layer.name for layer in viewer.layers][-2:] == ["img 0", "img 0 labels"]
    labels = viewer.layers["img 0 labels"]
    assert np.asarray(labels.data).max() > 0 and tuple(labels.scale) == (0.5, 0.5)
    assert labels.selected_label == labels.data.max() + 1  # a nucleus painted next is a new object
    run_and_wait(widget, qtbot)  # rerun: resumes
    statuses = [widget.table.item(r, 1).text() for r in range(widget.table.rowCount())]
    assert sorted(statuses) == ["failed", "skipped", "skipped", "skipped"]
    skipped = widget.table.item(statuses.index("skipped"), 5).text()  # the option as the dock names it
    assert skipped == "output exists (use 'redo finished files' to redo it)"
    assert widget.status.text().endswith("; skipped: output exists (use 'redo finished files' to redo it)")


def test_an_opened_result_is_refused_by_train_until_corrected_and_its_table_not_called_edited(widget, qtbot):
    """A batch output opened from the table is the model's own output, as Segment's is: training on it as it came
    out would teach the model its own mistakes."""
    from napari_unet_seg._widgets.measure import MeasureWidget
    from napari_unet_seg._widgets.train import TrainWidget

    widget, viewer, tmp_path = widget
    run_and_wait(widget, qtbot)
    statuses = [widget.table.item(r, 1).text() for r in range(widget.table.rowCount())]
    widget.open_result(statuses.index("ok"))
    labels = viewer.layers[-1]
    train = TrainWidget(viewer)
    qtbot.addWidget(train)
    train.settings.image_box.setCurrentText(viewer.layers[-2].name)
    train.settings.labels_box.setCurrentText(labels.name)
    train.start()
    assert train.worker is None and "exactly as it came out: correct it first" in train.status.text()
    measure = MeasureWidget(viewer)
    qtbot.addWidget(measure)
    measure.labels_picker.setCurrentText(labels.name)
    measure.run()
    qtbot.waitUntil(lambda: measure.worker is None, timeout=30_000)
    assert "command" in measure._provenance_comments() and "edited" not in measure._provenance_comments()
    labels.paint((5, 5), 99, refresh=True)  # corrected: now it is the user's work
    assert "edited" in measure._provenance_comments()
    assert train.settings.job({}, preview_box=lambda: (0, 1, 0, 1)).pairs  # accepted for training
    # a file corrected in Fiji (which keeps the record) opens as the user's work, never as an untouched result
    from napari_unet_seg._widgets.segment_layers import is_segment_result
    from napari_unet_seg.core.imageio import PROVENANCE_TAG
    from napari_unet_seg.core.inference.provenance import read_provenance

    row = statuses.index("ok")
    output = widget.jobs[row].target
    corrected = tifffile.imread(output)
    corrected[:4, :4] = 77
    tifffile.imwrite(output, corrected, metadata={PROVENANCE_TAG: read_provenance(output)})
    widget.open_result(row)
    assert not is_segment_result(viewer.layers[-1]) and viewer.layers[-1].metadata["provenance"]


def test_the_qc_page_opens_in_the_browser_and_is_not_drawn_when_unticked(widget, qtbot, monkeypatch):
    from napari_unet_seg._widgets import batch as batch_module

    widget, _, tmp_path = widget
    opened, warned = [], []
    monkeypatch.setattr(batch_module.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    monkeypatch.setattr(batch_module, "show_warning", warned.append)
    assert widget.qc.isChecked() and not widget.qc_button.isEnabled()  # on by default; nothing to open yet
    run_and_wait(widget, qtbot)
    page = tmp_path / "out" / "qc" / "index.html"
    assert widget.qc_button.isEnabled() and "press QC page" in widget.status.text()
    assert len(list((tmp_path / "out" / "qc").glob("*.png"))) == 3  # one per segmented file, none for the broken
    widget.qc_button.click()
    assert opened == [str(page)]
    widget.output_dir.setText(str(tmp_path / "bare"))
    widget.qc.setChecked(False)
    run_and_wait(widget, qtbot)
    assert not (tmp_path / "bare" / "qc").exists() and not widget.qc_button.isEnabled()
    assert "QC page" not in widget.status.text()
    assert widget.open_qc_page() is False and warned and "No QC page" in warned[-1]


def test_the_users_summary_csv_is_kept_and_the_status_names_ours(widget, qtbot, monkeypatch):
    from napari_unet_seg._widgets import batch as batch_module

    widget, _, tmp_path = widget
    infos: list[str] = []
    monkeypatch.setattr(batch_module, "show_info", infos.append)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.csv").write_text("my notes\n")
    run_and_wait(widget, qtbot)
    assert (tmp_path / "out" / "summary.csv").read_text() == "my notes\n"
    assert widget.status.text().endswith(f"summary in {tmp_path / 'out' / 'summary-2.csv'}; every file's outlines: "
                                         "press QC page")
    assert any("summary.csv was not written by unet-seg: kept" in text for text in infos)


def test_cancel_and_bad_settings(widget, qtbot):
    widget, viewer, tmp_path = widget
    widget.cancel()  # nothing running: harmless
    assert widget.run() is not None
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.run_button.isEnabled()
    assert "cancel" in widget.status.text().lower()
    widget.input_dir.setText(str(tmp_path / "missing"))
    assert widget.run() is None



def test_a_long_message_is_readable_whole(widget, qtbot):
    """The message column takes the width the others leave, and its tooltip holds the whole message."""
    widget, _, _ = widget
    widget.resize(320, 500)  # a narrow dock: the message cannot fit on the row
    widget.show()
    run_and_wait(widget, qtbot)
    table, last = widget.table, len(COLUMNS) - 1
    assert table.horizontalHeaderItem(last).text() == "message"
    row = [table.item(r, 1).text() for r in range(table.rowCount())].index("failed")
    message = widget.results[widget.jobs[row]].message
    assert message.startswith("broken.png: ") and len(message) > 40
    assert table.item(row, last).text() == message and table.item(row, last).toolTip() == message
    header = table.horizontalHeader()
    assert header.stretchLastSection()
    assert header.sectionViewportPosition(last) + header.sectionSize(last) >= table.viewport().width()  # no gap


@pytest.fixture
def docked(widget, make_napari_viewer):
    """The Batch segment dock as napari opens it from the menu, set like the ``widget`` fixture's."""
    fixture_widget, _, tmp_path = widget
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Batch segment")
    dock.model_picker.refresh()
    dock.input_dir.setText(fixture_widget.input_dir.text())
    dock.output_dir.setText(fixture_widget.output_dir.text())
    dock.device.setCurrentText("cpu")
    return dock, tmp_path


def test_a_run_that_stops_on_an_error_says_so_in_the_table_and_status(docked, qtbot, monkeypatch):
    from napari_unet_seg._widgets import _common
    from napari_unet_seg._widgets import batch as batch_module

    errors: list[str] = []
    monkeypatch.setattr(_common, "show_error", errors.append)
    real = batch_module.iter_jobs

    def one_then_full_disk(jobs, *args, **kwargs):
        yield from real(jobs[:1], *args, **kwargs)
        raise OSError("no space left on the output disk")

    monkeypatch.setattr(batch_module, "iter_jobs", one_then_full_disk)
    widget, _ = docked
    run_and_wait(widget, qtbot)
    rows = [[widget.table.item(r, c).text() for c in range(len(COLUMNS))] for r in range(widget.table.rowCount())]
    assert len(rows) == 4 and [row[1] for row in rows].count("not run") == 3  # none left "queued"
    assert {row[5] for row in rows if row[1] == "not run"} == {"stopped: no space left on the output disk"}
    status = widget.status.text()
    assert status.startswith("Stopped: no space left on the output disk. Before that: ")
    assert errors and "no space left" in errors[0]


def test_an_output_folder_that_is_a_file_stops_with_no_impossible_summary_path(docked, qtbot):
    widget, tmp_path = docked
    (tmp_path / "notes.txt").write_text("not a folder")
    widget.output_dir.setText(str(tmp_path / "notes.txt"))
    run_and_wait(widget, qtbot)
    status = widget.status.text()
    assert status.startswith("Not started:") and "summary in" not in status and "notes.txt/" not in status
    assert all(widget.table.item(r, 1).text() != "queued" for r in range(widget.table.rowCount()))


def test_the_status_counts_files_and_time_and_names_subfolders(widget, qtbot, monkeypatch):
    from napari_unet_seg._widgets import batch as batch_module

    widget, _, tmp_path = widget
    folder = tmp_path / "in"
    (folder / "sub").mkdir()
    tifffile.imwrite(folder / "sub" / "deep.tif", synthetic_nuclei((40, 48), n=5, seed=9)[0])
    widget.recursive.setChecked(True)
    seen: list[str] = []
    show = batch_module.BatchWidget._show_status

    def recorded(self):
        show(self)
        seen.append(self.status.text())

    monkeypatch.setattr(batch_module.BatchWidget, "_show_status", recorded)
    ticks = iter(range(0, 10_000, 7))  # a clock on which each file takes seconds, as real images do
    monkeypatch.setattr(batch_module, "time", type("Clock", (), {"monotonic": staticmethod(lambda: next(ticks))}))
    run_and_wait(widget, qtbot)
    assert seen[0].startswith("Segmenting: 0 / 5 files done · ")  # said as soon as the files are found
    assert any(text.startswith("Segmenting: ") and " left · " in text for text in seen)  # an estimate once paced
    names = [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())]
    assert "sub/deep.tif" in names  # where it is, not only its name
    row = [widget.table.item(r, 1).text() for r in range(widget.table.rowCount())].index("failed")
    assert widget.table.item(row, 1).toolTip().startswith("failed: broken.png: ")  # why, without scrolling right
    widget.pattern.setText("*.jpg")  # matches nothing: no earlier run's summary passed off as this one's
    run_and_wait(widget, qtbot)
    assert widget.table.rowCount() == 0 and "summary in" not in widget.status.text()


def test_the_estimate_counts_down_through_a_slow_file_and_never_below_the_files_not_started():
    from napari_unet_seg._widgets.batch import time_left

    assert time_left(0.0, 5.0, 0, 4) is None  # nothing segmented yet: no pace to go by
    assert time_left(30.0, 0.0, 3, 0) is None  # nothing left
    at_start = time_left(30.0, 0.0, 3, 4)  # 10 s a file, 4 files left
    assert at_start == 40.0
    assert time_left(30.0, 6.0, 3, 4) == 34.0  # 6 s into the next file: the estimate falls, it does not grow
    slow = [time_left(30.0, t, 3, 4) for t in (10.0, 60.0, 600.0)]
    assert slow == [30.0, 30.0, 30.0]  # a file slower than the rest: the 3 not started still take their time


def test_the_channel_choice_segments_the_nuclear_stain_of_each_file_alone(widget, qtbot):
    from napari_unet_seg import segment
    from napari_unet_seg.core.model.registry import load_model

    widget, _, tmp_path = widget
    folder = tmp_path / "two channels"
    folder.mkdir()
    dapi, _ = synthetic_nuclei((40, 48), n=5, seed=9)
    tifffile.imwrite(folder / "dapi gfp.tif", np.stack([np.full_like(dapi, dapi.max()), dapi]), imagej=True,
                     metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "a blank.tif", np.zeros((40, 48), np.uint8))  # first by name, its note less useful
    widget.input_dir.setText(str(folder))
    run_and_wait(widget, qtbot)  # no channel chosen: two planes, said in the status (the table's column is far right)
    assert "notes (2 files, e.g. dapi gfp.tif): " in widget.status.text()
    assert "the image's 2 planes along its first axis were segmented one by one" in widget.status.text()
    (folder / "a blank.tif").unlink()
    widget.channel.setCurrentIndex(widget.channel.findData(1))
    widget.overwrite.setChecked(True)
    run_and_wait(widget, qtbot)
    assert widget.table.item(0, 1).text() == "ok"
    expected = segment(dapi, load_model(widget.model_picker.path()), device="cpu")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "dapi gfp_labels.tif"), expected)


def test_cells_over_a_channel_grow_beside_the_labels_and_open_with_them(widget, qtbot):
    """Nuclear channel 0, cells over channel 1: the cells `unet-seg cells` grows, opened with the labels."""
    from helpers import tissue

    from napari_unet_seg.core.inference.cells import grow_cells

    widget, viewer, tmp_path = widget
    folder = tmp_path / "cells"
    folder.mkdir()
    _, nuclei, cytoplasm, _ = tissue()
    nuclear = (nuclei > 0) * 1000.0 + np.random.default_rng(0).normal(0, 20, nuclei.shape)
    tifffile.imwrite(folder / "exp.tif", np.stack([nuclear, cytoplasm]).astype(np.float32), imagej=True,
                     metadata={"axes": "CYX"})
    widget.input_dir.setText(str(folder))
    widget.channel.setCurrentIndex(widget.channel.findData(0))
    assert not widget.cell_boundary.isEnabled()
    widget.cells_channel.setCurrentIndex(widget.cells_channel.findData(1))
    assert widget.cell_boundary.isEnabled() and widget.cell_boundary.currentText() == "cytoplasm"
    run_and_wait(widget, qtbot)
    assert widget.table.item(0, 1).text() == "ok" and "9 cells around 9 nuclei" in widget.status.text()
    labels = tifffile.imread(tmp_path / "out" / "exp_labels.tif")
    cells = tifffile.imread(tmp_path / "out" / "exp_cells.tif")
    np.testing.assert_array_equal(cells, grow_cells(labels, cytoplasm))
    assert (tmp_path / "out" / "exp_cells_objects.csv").exists()
    widget.table.cellDoubleClicked.emit(0, 0)
    assert [layer.name for layer in viewer.layers][-2:] == ["exp labels", "exp cells"]
    assert sum(layer.name.startswith("exp") and layer.ndim == 2 and not hasattr(layer, "selected_label")
               for layer in viewer.layers) == 2  # the file's two channels, not a two-plane stack
    opened = viewer.layers["exp cells"]  # as the Cells dock shows cells: outlines over the nuclei, with provenance
    assert opened.contour == 2 and opened.metadata["provenance"]["kind"] == "cells"
    assert "--cells-channel 1" in viewer.layers["exp labels"].metadata["provenance"]["command"]
    _, cells_dock = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Cells from nuclei")
    assert cells_dock.nuclei_picker.findText("exp cells") == -1  # cells are never offered as nuclei


def test_the_files_under_way_say_how_far_and_give_an_estimate_before_any_has_finished(widget, qtbot, monkeypatch):
    from napari_unet_seg._widgets import batch as batch_module
    from napari_unet_seg._widgets.batch import first_time_left

    assert first_time_left(1.0, 0.01, 1.0, 4) is None  # too early to go by
    assert first_time_left(10.0, 0.5, 10.0, 4) == 70.0  # half a file in 10 s: 3.5 files of 20 s left
    between = [first_time_left(10.0, 0.5, t, 4) for t in (10.0, 12.0, 15.0)]  # no new report: it counts down
    assert between == [70.0, 68.0, 65.0]
    finishing = [first_time_left(20.0, 1.0, t, 4) for t in (20.0, 25.0, 40.0, 90.0)]  # its network done in 20 s
    assert finishing == [60.0] * 4  # while it finishes: the 3 files not started, never growing with the seconds
    widget, _, tmp_path = widget
    heard = []
    real = batch_module.iter_jobs

    def observed(*args, progress=None, **kwargs):  # the dock's own callback, as the core calls it
        def hear(job, done, total):
            heard.append((job, done, total))
            progress(job, done, total)
        return real(*args, progress=hear, **kwargs)

    monkeypatch.setattr(batch_module, "iter_jobs", observed)
    run_and_wait(widget, qtbot)
    assert heard and {total for _, _, total in heard} >= {1}
    assert all(job in widget.jobs for job, _, _ in heard)  # reported under the jobs the table shows
    assert not widget._under_way  # every finished file left the list

    widget.run()  # a second run; its first file is shown as under way, two of its five windows done
    qtbot.waitUntil(lambda: bool(widget.jobs), timeout=30_000)
    widget._cancel.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    widget._cancel.clear()
    widget._clock.start()
    widget.results = {}
    widget._started -= 10.0  # the run began 10 s ago, and its first file has done two of its five windows
    widget._hear(widget.jobs[0], 2, 5)
    widget._show_status()
    widget._clock.stop()
    assert widget.table.item(0, 1).text() == "running 40 %"
    assert "left" in widget.status.text()


def test_a_class_models_batch_says_class_map_with_shares_and_opens_in_its_classes_colours(widget, qtbot):
    from helpers import brightness_class_model
    from napari_unet_seg._widgets.segment_layers import show_classes

    widget, viewer, tmp_path = widget
    path = save_model(brightness_class_model(["background", "dim", "bright"]), tmp_path / "cls.safetensors")
    widget.refresh_models(choose=path)
    run_and_wait(widget, qtbot)
    rows = [[widget.table.item(r, c).text() for c in range(len(COLUMNS))] for r in range(widget.table.rowCount())]
    done = [r for r in rows if r[1] == "ok"]
    assert done and all(r[2] == "class map" for r in done)  # not a blank where objects go
    assert all(r[5].startswith("class map: ") and "% background" in r[5] and "% dim" in r[5] for r in done)
    assert "every file's classes" in widget.status.text() and "notes" not in widget.status.text()  # shares: no note
    widget.open_result(rows.index(done[0]))
    opened = viewer.layers[-1]
    assert opened.name.endswith(" classes") and list(opened.features["class"]) == ["background", "dim", "bright"]
    expected = viewer.add_labels(np.zeros((2, 2), np.uint8), name="reference")
    show_classes(expected, ["background", "dim", "bright"])  # as Segment colours a class output
    np.testing.assert_allclose(opened.colormap.map(np.array([1, 2])), expected.colormap.map(np.array([1, 2])))


def test_a_refused_or_empty_run_says_so_in_the_status_and_makes_no_output_folder(widget, qtbot, monkeypatch):
    widget, _, tmp_path = widget
    run_and_wait(widget, qtbot)
    widget.input_dir.setText(str(tmp_path / "no such folder"))
    assert widget.run() is None
    assert widget.status.text().startswith("Not started: choose an input folder that exists")  # not the last outcome
    empty = tmp_path / "empty"
    empty.mkdir()
    widget.input_dir.setText(str(empty))
    widget.output_dir.setText(str(tmp_path / "new out"))
    run_and_wait(widget, qtbot)
    assert widget.status.text().startswith(f"No images found in {empty}: nothing segmented")
    assert not (tmp_path / "new out").exists()  # no folder with a header-only summary.csv
    (empty / "day1").mkdir()
    for name in ("a.tif", "b.tif"):
        (empty / "day1" / name).write_bytes((tmp_path / "in" / "img 0.tif").read_bytes())
    run_and_wait(widget, qtbot)
    assert widget.status.text() == (f"No images found in {empty}: 2 images are in its subfolders: tick 'include "
                                    "subfolders' to segment them")
    monkeypatch.chdir(tmp_path)
    widget.input_dir.setText(str(tmp_path / "in"))
    widget.output_dir.setText("relative out")
    run_and_wait(widget, qtbot)
    assert f"summary in {tmp_path / 'relative out' / 'summary.csv'}" in widget.status.text()  # said whole


def test_an_output_folder_of_earlier_results_shows_them_to_open_after_a_restart(widget, qtbot, monkeypatch):
    widget, viewer, tmp_path = widget
    (tmp_path / "in" / "day2").mkdir()
    tifffile.imwrite(tmp_path / "in" / "day2" / "img 0.tif", synthetic_nuclei((40, 48), n=5, seed=7)[0])
    widget.recursive.setChecked(True)
    run_and_wait(widget, qtbot)
    during = sorted(widget.table.item(r, 0).text() for r in range(widget.table.rowCount()))
    assert "day2/img 0.tif" in during and "img 0.tif" in during
    later = BatchWidget(viewer)  # napari started again: a new dock, on the last run's folders
    qtbot.addWidget(later)
    assert later.output_dir.text() == str(tmp_path / "out") and later.table.rowCount() == 5
    later.output_dir.setText("")
    later.output_dir.setText(str(tmp_path / "out"))  # typed: the same results shown
    assert later.table.rowCount() == 5 and later.table.isVisibleTo(later)
    # named as the run named them: the subfolder's file is not a second "img 0.tif"
    assert sorted(later.table.item(r, 0).text() for r in range(later.table.rowCount())) == during
    statuses = [later.table.item(r, 1).text() for r in range(later.table.rowCount())]
    assert sorted(statuses) == ["failed", "ok", "ok", "ok", "ok"]
    assert later.status.text().startswith(f"Earlier results in {tmp_path / 'out'}: 5 files")
    assert later.qc_button.isEnabled()
    later.open_result(statuses.index("ok"))
    assert viewer.layers[-1].name.endswith(" labels") and np.asarray(viewer.layers[-1].data).max() > 0
    later.output_dir.setText(str(tmp_path / "elsewhere"))  # no results there: the table is left as it was
    assert later.table.rowCount() == 5


def test_the_progress_bar_moves_while_one_large_file_runs(widget):
    """The bar counted files: on one large mosaic it sat at 0 % for minutes while its row said "running 38 %"."""
    import time as time_module
    from pathlib import Path

    from napari_unet_seg._widgets.batch import STEPS_PER_FILE
    from napari_unet_seg.core.batch.jobs import Job

    widget, _, _ = widget
    jobs = [Job(Path(f"in/{k}.tif"), Path(f"out/{k}_labels.tif")) for k in range(2)]
    widget.jobs, widget.results = jobs, {}
    widget.progress_bar.setRange(0, 2 * STEPS_PER_FILE)
    widget._under_way[jobs[0]] = (38, 100, time_module.monotonic())
    widget._show_progress()
    assert widget.progress_bar.value() == int(0.38 * STEPS_PER_FILE)



def test_the_next_napari_session_opens_on_the_last_runs_folders_while_they_exist(widget, qtbot, make_napari_viewer):
    # a lab runs the same folders day after day: they were typed again at every napari start (newcomer trial)
    import shutil

    widget, viewer, tmp_path = widget
    widget.pattern.setText("img*.tif")
    widget.qc.setChecked(False)
    run_and_wait(widget, qtbot)
    again = BatchWidget(make_napari_viewer())
    qtbot.addWidget(again)
    assert again.input_dir.text() == str(tmp_path / "in") and again.output_dir.text() == str(tmp_path / "out")
    assert again.pattern.text() == "img*.tif" and not again.qc.isChecked() and not again.recursive.isChecked()
    assert again.table.rowCount() == 3  # the earlier results, ready to open
    shutil.rmtree(tmp_path / "in")  # the experiment moved away: nothing offered that is not there
    gone = BatchWidget(make_napari_viewer())
    qtbot.addWidget(gone)
    assert gone.input_dir.text() == "" and gone.output_dir.text() == ""


def test_a_long_note_is_said_in_brief_under_the_table_and_whole_in_its_row(widget, qtbot):
    """A folder of z-stacks: the 2D note ran to three lines in the status (and its notification)."""
    widget, _, tmp_path = widget
    folder = tmp_path / "stacks"
    folder.mkdir()
    stack = np.stack([synthetic_nuclei((40, 48), n=4, seed=seed)[0] for seed in range(3)])
    tifffile.imwrite(folder / "z.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    widget.input_dir.setText(str(folder))
    run_and_wait(widget, qtbot)
    row = widget.table.item(0, COLUMNS.index("message")).text()
    assert "each of the 3 slices was segmented on its own (2D): an object seen in several slices" in row
    status = widget.status.text()
    assert "notes (1 file): each of the 3 slices was segmented on its own … (whole in the message column)" in status
    assert "an object seen in several slices" not in status
