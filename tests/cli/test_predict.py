"""`unet-seg predict` on folders: exit codes, stderr lines, resume, overwrite, scheduler errors."""

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model, segment
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.registry import load_model


@pytest.fixture
def setup(tmp_path):
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    root = tmp_path / "in"
    (root / "day 1").mkdir(parents=True)
    for i, name in enumerate(["a.tif", "day 1/b.tif"]):
        tifffile.imwrite(root / name, synthetic_nuclei((40, 56), n=5, seed=i)[0])
    return root, model


def test_folder_recursive_then_resume(tmp_path, setup, capsys):
    root, model = setup
    out = tmp_path / "out"
    args = ["predict", str(root), "-o", str(out), "--recursive", "--model", str(model), "--device", "cpu"]
    assert main(args) == 0
    labels = tifffile.imread(out / "day 1" / "b_labels.tif")
    image = tifffile.imread(root / "day 1" / "b.tif")
    np.testing.assert_array_equal(labels, segment(image, load_model(model), device="cpu"))
    assert "2 segmented" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 segmented, 2 skipped" in capsys.readouterr().out
    assert main(args + ["--overwrite", "--pattern", "a*"]) == 0
    assert "1 segmented" in capsys.readouterr().out


def test_bad_file_is_one_stderr_line_and_exit_1(tmp_path, setup, capsys):
    root, model = setup
    (root / "broken.tif").write_bytes(b"II*\x00garbage")
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, (np.random.default_rng(0).random((128, 128)) * 1000).astype(np.uint16), compression="zlib")
    (root / "cut.tif").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a copy that did not finish
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((256, 256), np.uint16))  # not compressed: cut short, its pixels are missing
    (root / "d.tif").write_bytes(plain.read_bytes()[: plain.stat().st_size // 3])
    code = main(["predict", str(root), "-o", str(tmp_path / "out"), "--model", str(model)])
    err = sorted(capsys.readouterr().err.strip().splitlines())  # one line a file: no library log line before it
    assert code == 1 and len(err) == 3, err  # (sorted: two files run at once and may finish in either order)
    assert err[0].startswith(f"unet-seg predict: {root / 'broken.tif'}: ")  # named as given, in its folder
    for name, line in (("cut.tif", err[1]), ("d.tif", err[2])):
        assert line.startswith(f"unet-seg predict: {root / name}: cannot be read as an image: the file is "
                               "damaged or cut short"), line
    assert (tmp_path / "out" / "a_labels.tif").exists()


def test_unreachable_scheduler_exit_2_fast(tmp_path, setup, capsys):
    root, model = setup
    start = time.perf_counter()
    code = main(["predict", str(root), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot reach the dask scheduler" in err[0]
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists()  # no folder of an empty summary left behind
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["predict", str(root), "-o", str(tmp_path / "mine"), "--model", str(model),
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"  # a folder of the user's stays as it was


def test_nothing_to_do_is_a_clear_error(tmp_path, setup, capsys):
    root, model = setup
    assert main(["predict", str(root), "-o", str(tmp_path / "o"), "--model", str(model), "--pattern", "*.nd2"]) == 2
    assert f"no input files found in {root} matching '*.nd2'" in capsys.readouterr().err


def test_help_mentions_batch_options(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for option in ("--pattern", "--recursive", "--overwrite", "--scheduler", "zarr"):
        assert option in text


def test_a_costly_window_is_said_on_stderr(tmp_path, setup, capsys):
    _, model = setup
    tifffile.imwrite(tmp_path / "big.tif", synthetic_nuclei((300, 260), n=20, seed=3)[0])  # 64 px keeps 8 of each
    code = main(["predict", str(tmp_path / "big.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--device", "cpu", "--tile-size", "64"])
    err = capsys.readouterr().err
    assert code == 0 and "big.tif: a 64-px window would have cost" in err and "note:" in err


def test_a_rerun_with_another_model_says_which_setting_differs_in_the_last_line(tmp_path, setup, capsys):
    root, model = setup
    other = save_model(threshold_model(), tmp_path / "other.safetensors")
    out = tmp_path / "out"
    assert main(["predict", str(root), "-o", str(out), "--model", str(model), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["predict", str(root), "-o", str(out), "--model", str(other), "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    last = printed.out.strip().splitlines()[-1]
    assert last == (f"0 segmented, 1 skipped, 0 failed of 1 files; summary in {out / 'summary.csv'}; pictures in "
                    f"{out / 'qc' / 'index.html'}; skipped: "
                    "output exists, made with other settings (model: disks -> other); use --overwrite to redo it")
    assert "(model: disks -> other); use --overwrite to redo it" in printed.err and " overwrite" not in printed.err
    # a row of its own (the earlier run's row lost with its summary) names the option as the command line spells it
    (out / "summary.csv").unlink()
    assert main(["predict", str(root), "-o", str(out), "--model", str(other), "--device", "cpu"]) == 0
    assert "(model: disks -> other); use --overwrite to redo it" in (out / "summary.csv").read_text()


def test_the_users_summary_csv_is_kept_and_said_in_one_line(tmp_path, setup, capsys):
    root, model = setup
    (root / "summary.csv").write_text("my notes\n")
    assert main(["predict", str(root), "-o", str(root), "--model", str(model), "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    assert (root / "summary.csv").read_text() == "my notes\n"
    note = (f"unet-seg predict: note: {root / 'summary.csv'} was not written by unet-seg: kept; "
            f"this batch's summary is {root / 'summary-2.csv'}")
    assert printed.err.strip().splitlines() == [note]
    page = root / "qc" / "index.html"
    assert printed.out.strip().endswith(f"summary in {root / 'summary-2.csv'}; pictures in {page}")


def test_hand_made_labels_are_kept_with_overwrite_and_the_line_says_how_to_proceed(tmp_path, setup, capsys):
    root, model = setup
    annotation = root / "a_labels.tif"
    tifffile.imwrite(annotation, synthetic_nuclei((40, 56), n=5, seed=0)[1])
    before = annotation.read_bytes()
    code = main(["predict", str(root), "-o", str(root), "--model", str(model), "--device", "cpu", "--overwrite"])
    printed = capsys.readouterr()
    assert code == 0 and annotation.read_bytes() == before
    [note] = printed.err.strip().splitlines()
    assert note.startswith(f"unet-seg predict: note: {root / 'a.tif'}: output exists and was not written by unet-seg")
    assert "even with --overwrite; move it away or choose another output folder" in note
    assert "0 segmented, 1 skipped" in printed.out


def test_an_output_folder_that_is_a_file_is_one_line_and_exit_2(tmp_path, setup, capsys):
    root, model = setup
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["predict", str(root), "-o", str(tmp_path / "notes.txt"), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err == f"unet-seg predict: error: output {tmp_path / 'notes.txt'} exists and is not a folder\n"


def test_a_folder_whose_images_are_all_in_subfolders_says_to_add_recursive(tmp_path, setup, capsys):
    root, model = setup
    (tmp_path / "exp" / "day1").mkdir(parents=True)
    (tmp_path / "exp" / "day1" / "a.tif").write_bytes((root / "a.tif").read_bytes())
    assert main(["predict", str(tmp_path / "exp"), "-o", str(tmp_path / "out"), "--model", str(model)]) == 2
    assert capsys.readouterr().err == (f"unet-seg predict: error: no input files found in {tmp_path / 'exp'}: 1 image "
                                       "is in subfolders, add --recursive to segment them\n")


def test_an_output_folder_on_a_drive_that_is_not_there_is_refused_not_made_on_the_system_disk(tmp_path, setup,
                                                                                              capsys, monkeypatch):
    from napari_unet_seg.core.batch import output_folder

    root, model = setup
    media = tmp_path / "media"
    (media / "alice").mkdir(parents=True)
    monkeypatch.setattr(output_folder, "MOUNT_ROOTS", (media,))
    out = media / "alice" / "usbstick" / "results"
    assert main(["predict", str(root), "-o", str(out), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"unet-seg predict: error: output {out}: no drive is connected there "
                          f"({media / 'alice' / 'usbstick'} does not exist)") and err.count("\n") == 1
    assert not (media / "alice" / "usbstick").exists()
    monkeypatch.setattr(output_folder, "MOUNT_ROOTS", (tmp_path / "run" / "media",))  # its root not even there
    assert main(["predict", str(root), "-o", str(tmp_path / "run" / "media" / "bob" / "STICK" / "results"),
                 "--model", str(model)]) == 2
    assert not (tmp_path / "run").exists()
    capsys.readouterr()
    monkeypatch.setattr(output_folder, "MOUNT_ROOTS", (media,))
    (media / "alice" / "usbstick").mkdir()  # the drive, connected: a folder on it is made as asked
    assert main(["predict", str(root), "-o", str(out / "run1"), "--model", str(model)]) == 0
    assert (out / "run1" / "summary.csv").is_file()


def test_object_filters_are_recorded_remade_and_a_rerun_without_them_says_so(tmp_path, capsys):
    import shlex

    from napari_unet_seg.core.inference.provenance import read_provenance

    image = synthetic_nuclei((120, 140), n=30, radius=(4, 9), seed=5)[0]
    tifffile.imwrite(tmp_path / "cells.tif", image)
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    out = tmp_path / "out"
    base = ["predict", str(tmp_path / "cells.tif"), "-o", str(out), "--model", str(model), "--device", "cpu"]
    assert main(base + ["--min-area", "100", "--exclude-border"]) == 0
    printed = capsys.readouterr()
    assert "objects dropped (kept: objects of 100 px or more, not touching the border)" in printed.err
    labels = tifffile.imread(out / "cells_labels.tif")
    everything = segment(image, load_model(model), device="cpu")
    areas = np.bincount(everything.ravel())
    assert 0 < len(np.unique(labels)) - 1 < len(areas) - 1
    assert np.bincount(labels.ravel())[1:].compress(np.bincount(labels.ravel())[1:] > 0).min() >= 100
    assert not set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    record = read_provenance(out / "cells_labels.tif")
    assert record["settings"]["min_area"] == 100 and "--min-area 100 --exclude-border" in record["command"]
    capsys.readouterr()
    assert main(["provenance", str(out / "cells_labels.tif")]) == 0
    assert ", kept only objects of 100 px or more, not touching the border" in capsys.readouterr().out
    again = shlex.split(record["command"])[1:]  # the recorded command, into another folder
    again[again.index("-o") + 1] = str(tmp_path / "again")
    assert main(again) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again" / "cells_labels.tif"), labels)
    capsys.readouterr()
    assert main(base) == 0  # without the filters: the output is not passed off as this run's
    assert ("(object filters: objects of 100 px or more, not touching the border -> none); use --overwrite"
            in capsys.readouterr().out)


@pytest.mark.parametrize("flags, said", [
    (["--min-area", "-5"], "--min-area must be 0 (no limit) or more, not -5"),
    (["--min-area", "500", "--max-area", "100"], "the largest area (100 px) is below the smallest (500 px)"),
    (["--exclude-border", "--output-kind", "semantic"], "object filters (smallest/largest area, border) apply to"),
])
def test_object_filters_that_cannot_work_are_one_line_and_exit_2(tmp_path, setup, capsys, flags, said):
    root, model = setup
    code = main(["predict", str(root), "-o", str(tmp_path / "out"), "--model", str(model)] + flags)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0]
    assert not (tmp_path / "out").exists()


def test_link_frames_follows_objects_through_a_time_lapse_and_is_recorded(tmp_path, capsys):
    from helpers import drifting_disks
    from napari_unet_seg.core.inference.provenance import read_provenance

    movie = drifting_disks()
    tifffile.imwrite(tmp_path / "movie.tif", movie, imagej=True, metadata={"axes": "TYX"})
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "movie.tif"), "-o", str(out), "--model", str(model), "--device", "cpu",
                 "--link-frames"]) == 0
    assert "objects linked across 5 frames: 4 ids" in capsys.readouterr().err
    labels = tifffile.imread(out / "movie_labels.tif")
    assert labels.shape == movie.shape and len({int(labels[t, 20 + 2 * t, 20 + 2 * t]) for t in range(5)}) == 1
    assert "--link-frames" in read_provenance(out / "movie_labels.tif")["command"]


def test_a_movie_saved_as_a_plain_stack_and_linked_keeps_frames_in_its_labels_and_exports(tmp_path, capsys):
    """--link-frames says the planes are frames: a plain or ImageJ-slices file's labels must not call them slices,
    or QuPath and TrackMate take the movie for a z-stack."""
    import json

    from helpers import drifting_disks

    movie = drifting_disks()
    tifffile.imwrite(tmp_path / "plain.tif", movie)
    tifffile.imwrite(tmp_path / "slices.tif", movie, imagej=True, metadata={"axes": "ZYX"})
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "plain.tif"), str(tmp_path / "slices.tif"), "-o", str(out), "--model",
                 str(model), "--device", "cpu", "--link-frames"]) == 0
    for stem in ("plain", "slices"):
        with tifffile.TiffFile(out / f"{stem}_labels.tif") as tif:
            assert tif.series[0].axes.startswith("T"), (stem, tif.series[0].axes)
        geojson = tmp_path / f"{stem}.geojson"
        assert main(["export", str(out / f"{stem}_labels.tif"), "--format", "geojson", "-o", str(geojson)]) == 0
        planes = {(f["geometry"]["plane"]["z"], f["geometry"]["plane"]["t"])
                  for f in json.loads(geojson.read_text())["features"]}
        assert planes == {(0, t) for t in range(len(movie))}
    assert main(["predict", str(tmp_path / "plain.tif"), "-o", str(tmp_path / "unlinked"), "--model", str(model),
                 "--device", "cpu"]) == 0
    with tifffile.TiffFile(tmp_path / "unlinked" / "plain_labels.tif") as tif:  # not linked: a stack, as before
        assert not tif.series[0].axes.startswith("T")


def test_channel_segments_the_nuclear_stain_of_multichannel_files_alone(tmp_path, capsys):
    """A DAPI + GFP experiment: ImageJ (C, Y, X) and plain (2, H, W) TIFFs alike; (Z, C, Y, X) hyperstacks."""
    from napari_unet_seg.core.inference.provenance import read_provenance

    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    image, _ = synthetic_nuclei((40, 56), n=5, seed=3)
    other = np.full_like(image, image.max())  # a bright cytoplasm stain: everything "nuclei" if mixed in
    root = tmp_path / "in"
    root.mkdir()
    tifffile.imwrite(root / "hyper.tif", np.stack([other, image]), imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(root / "plain.tif", np.stack([other, image]))
    out = tmp_path / "out"
    args = ["predict", str(root), "-o", str(out), "--model", str(model), "--device", "cpu"]
    assert main(args + ["--no-measure"]) == 0  # no channel asked: two planes, as before, and said
    said = capsys.readouterr().err
    assert "2 planes along its first axis" in said and "choose the nuclear channel with --channel K (from 0)" in said
    assert main(args + ["--channel", "1", "--overwrite"]) == 0
    alone = segment(image, load_model(model), device="cpu")
    for stem in ("hyper", "plain"):
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}_labels.tif"), alone)
    assert "--channel 1" in read_provenance(out / "hyper_labels.tif")["command"]
    capsys.readouterr()
    assert main(args + ["--channel", "0"]) == 0  # a rerun with another channel says so and keeps the outputs
    assert "made with other settings (channel: 1 -> 0)" in capsys.readouterr().out
    assert main(args + ["--channel", "-1"]) == 2
    capsys.readouterr()
    tifffile.imwrite(root / "z.tif", np.stack([np.stack([other, image])] * 2), imagej=True,
                     metadata={"axes": "ZCYX"})
    assert main(args + ["--pattern", "z.tif"]) == 1  # two channels per slice, none chosen: which one?
    assert "choose the nuclear channel" in capsys.readouterr().err
    assert main(args + ["--pattern", "z.tif", "--channel", "1", "--overwrite"]) == 0
    np.testing.assert_array_equal(tifffile.imread(out / "z_labels.tif"), np.stack([alone, alone]))


def test_a_channels_last_tiff_is_read_as_channels_not_as_planes_two_pixels_wide(tmp_path, capsys):
    """numpy's (H, W, 2) saved as is (tifffile writes H pages of W x 2 px): --channel picks its stain."""
    from napari_unet_seg.core.imageio import read_image

    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    image, _ = synthetic_nuclei((40, 56), n=5, seed=3)
    other = np.full_like(image, image.max())
    tifffile.imwrite(tmp_path / "yxc.tif", np.stack([other, image], axis=-1))
    read = read_image(tmp_path / "yxc.tif")
    assert read.data.shape == (2, 40, 56) and read.channel_axis == -3 and not read.stack
    args = ["predict", str(tmp_path / "yxc.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
            "--device", "cpu", "--channel", "1"]
    assert main(args) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "yxc_labels.tif"),
                                  segment(image, load_model(model), device="cpu"))


def test_a_two_channel_model_takes_both_channels_of_a_cyx_file(tmp_path, capsys):
    from napari_unet_seg import new_model

    model = save_model(new_model(in_channels=2, depth=2, base_channels=4), tmp_path / "two.safetensors")
    image, _ = synthetic_nuclei((40, 56), n=5, seed=3)
    tifffile.imwrite(tmp_path / "x.tif", np.stack([image, image]), imagej=True, metadata={"axes": "CYX"})
    assert main(["predict", str(tmp_path / "x.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--device", "cpu", "--no-measure"]) == 0
    assert tifffile.imread(tmp_path / "out" / "x_labels.tif").shape == (40, 56)


def test_cells_grow_beside_the_nuclei_of_a_two_channel_experiment_as_unet_seg_cells_grows_them(tmp_path, capsys):
    """`predict --channel 0 --cells-channel 1`: labels, cells and both tables, the cells those `unet-seg cells`
    makes from the labels file; a rerun names a change of cell settings; mistakes are one line."""
    from helpers import tissue

    from napari_unet_seg.core.inference.provenance import read_provenance
    from napari_unet_seg.core.measure.table_csv import read_objects_csv

    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    _, nuclei, cytoplasm, _ = tissue()
    nuclear = (nuclei > 0) * 1000.0 + np.random.default_rng(0).normal(0, 20, nuclei.shape)
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    tifffile.imwrite(root / "exp.tif", np.stack([nuclear, cytoplasm]).astype(np.float32), imagej=True,
                     metadata={"axes": "CYX"})
    tifffile.imwrite(root / "gray.tif", nuclear.astype(np.float32))
    args = ["predict", str(root / "exp.tif"), "-o", str(out), "--model", str(model), "--device", "cpu",
            "--channel", "0", "--cells-channel", "1", "--cell-max-distance", "40"]
    assert main(args) == 0
    assert "9 cells around 9 nuclei" in capsys.readouterr().err  # the row's note
    labels, cells = tifffile.imread(out / "exp_labels.tif"), tifffile.imread(out / "exp_cells.tif")
    assert set(np.unique(cells)) == set(np.unique(labels)) and len(np.unique(labels)) == 10
    table, _ = read_objects_csv(out / "exp_cells_objects.csv")
    assert table["label"].tolist() == list(range(1, 10)) and "intensity_ch1_mean" in table
    record = read_provenance(out / "exp_cells.tif")
    assert record["kind"] == "cells" and "--cells-channel 1" in read_provenance(out / "exp_labels.tif")["command"]
    assert main(["cells", str(out / "exp_labels.tif"), "--image", str(root / "exp.tif"), "--channel", "1",
                 "--max-distance", "40", "-o", str(tmp_path / "again.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again.tif"), cells)  # the same cells either way
    capsys.readouterr()
    assert main(["provenance", str(out / "exp_labels.tif")]) == 0
    assert "channel 0, cells over channel 1, cytoplasm, reach 40 px" in capsys.readouterr().out
    assert main(args[:-2] + ["--cell-boundary", "membrane"]) == 0
    assert ("cells: channel 1, cytoplasm, reach 40 px -> channel 1, membrane" in capsys.readouterr().out)
    for extra, message in [
        (["--cell-max-distance", "5"], "give the cell stain's channel with --cells-channel K"),
        (["--cells-channel", "-2"], "--cells-channel counts from 0"),
        (["--cells-channel", "1", "--output-kind", "semantic"], "cells grow from nuclei"),
    ]:
        assert main(["predict", str(root / "exp.tif"), "-o", str(out), "--model", str(model), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, extra
    assert main(["predict", str(root / "gray.tif"), "-o", str(out), "--model", str(model),
                 "--cells-channel", "1"]) == 1
    assert "this image has one channel: grow them over a stain in another file" in capsys.readouterr().err


def test_cells_of_a_whole_folder_never_clash_resume_when_missing_and_raw_cells_images_are_segmented(tmp_path,
                                                                                                   capsys):
    """`ctrl.tif` and `ctrl_nuclei.tif` get their own cells; a run stopped before the cells grows them on the
    rerun; a raw image called `HeLa_cells.tif` is segmented (only unet-seg's own `_cells` files are left out);
    without --channel, the two-channel files ask for the nuclear one."""
    from helpers import tissue

    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    root, out = tmp_path / "in", tmp_path / "in" / "out"
    root.mkdir()
    for seed, stem in enumerate(("ctrl", "ctrl_nuclei", "HeLa_cells")):
        _, nuclei, cytoplasm, _ = tissue(seed)
        nuclear = (nuclei > 0) * 1000.0 + np.random.default_rng(seed).normal(0, 20, nuclei.shape)
        tifffile.imwrite(root / f"{stem}.tif", np.stack([nuclear, cytoplasm]).astype(np.float32), imagej=True,
                         metadata={"axes": "CYX"})
    args = ["predict", str(root), "-o", str(out), "--model", str(model), "--cells-channel", "1"]
    assert main(args) == 1  # no nuclear channel: which one?
    assert capsys.readouterr().err.count("choose the nuclear channel with --channel K (from 0)") == 3
    assert main([*args, "--channel", "0"]) == 0
    made = sorted(p.name for p in out.glob("*_cells.tif"))
    assert made == ["HeLa_cells_cells.tif", "ctrl_cells.tif", "ctrl_nuclei_cells.tif"]
    for stem in ("ctrl", "ctrl_nuclei"):  # each file's cells hold its own nuclei
        labels, cells = tifffile.imread(out / f"{stem}_labels.tif"), tifffile.imread(out / f"{stem}_cells.tif")
        assert np.all(cells[labels > 0] == labels[labels > 0])
    (out / "ctrl_cells.tif").unlink()  # as if the run had stopped between the labels and the cells
    capsys.readouterr()
    assert main([*args, "--channel", "0"]) == 0  # the outputs inside the input folder are not segmented
    said = capsys.readouterr().out
    assert "ctrl.tif: 9 objects" in said and (out / "ctrl_cells.tif").exists()
    assert "1 segmented, 2 skipped, 0 failed of 3 files" in said


def test_other_cell_settings_with_overwrite_grow_the_cells_again_from_the_labels_there(tmp_path, capsys):
    """Tuning the cells of a whole experiment: the nuclei stay (not segmented again), the cells are regrown, and
    the labels' provenance takes the new settings, so the next run finds nothing changed."""
    from helpers import tissue

    from napari_unet_seg.core.inference.cells import CellOptions, grow_cells
    from napari_unet_seg.core.inference.provenance import read_provenance

    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    truth, nuclei, cytoplasm, membrane = tissue()
    nuclear = (nuclei > 0) * 1000.0 + np.random.default_rng(0).normal(0, 20, nuclei.shape)
    tifffile.imwrite(tmp_path / "exp.tif", np.stack([nuclear, membrane]).astype(np.float32), imagej=True,
                     metadata={"axes": "CYX"})
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "exp.tif"), "-o", str(out), "--model", str(model), "--channel", "0",
            "--cells-channel", "1"]
    assert main(args) == 0
    labels = tifffile.imread(out / "exp_labels.tif")
    capsys.readouterr()
    membrane_args = [*args, "--cell-boundary", "membrane"]
    assert main([*membrane_args, "--overwrite"]) == 0
    said = capsys.readouterr().err
    assert "cells grown again from the labels already there" in said
    np.testing.assert_array_equal(tifffile.imread(out / "exp_labels.tif"), labels)  # the nuclei stay
    np.testing.assert_array_equal(tifffile.imread(out / "exp_cells.tif"),
                                  grow_cells(labels, membrane, options=CellOptions("membrane")))
    record = read_provenance(out / "exp_labels.tif")
    assert record["settings"]["cell_boundary"] == "membrane" and "--cell-boundary membrane" in record["command"]
    assert read_provenance(out / "exp_cells.tif")["settings"]["boundary"] == "membrane"
    assert main(membrane_args) == 0
    assert "skipped" in capsys.readouterr().out  # nothing changed now: resumed, not redone


def test_an_output_folder_another_run_writes_into_is_one_line_and_exit_2(tmp_path, setup, capsys):
    import json
    import os
    import socket

    from napari_unet_seg.core.batch.folder_lock import LOCK_NAME

    root, model = setup
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                             "started": time.time()}))  # a live process: the test's parent
    code = main(["predict", str(root), "-o", str(out), "--model", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another batch run" in err[0], err
    assert not (out / "a_labels.tif").exists() and (out / LOCK_NAME).exists()  # the other run's lock is kept


def test_a_file_that_takes_long_is_followed_now_and_then_not_left_silent(capsys, monkeypatch):
    """A 4800² mosaic ran 60-110 s with nothing printed: a run that looked hung."""
    from napari_unet_seg.cli import predict
    from napari_unet_seg.core.batch.jobs import Job

    clock = iter([0.0, 5.0, 12.0, 14.0, 30.0, 31.0])
    monkeypatch.setattr(predict.time, "monotonic", lambda: next(clock))
    notes, job = predict.SlowFileNotes(), Job(Path("big.tif"), Path("out/big_labels.tif"))
    for done in (1, 2, 4, 5, 6, 10):  # at 0, 5, 12, 14, 30 and 31 s, of 10 windows
        notes(job, done, 10)
    assert capsys.readouterr().out.splitlines() == [
        "big.tif: 40 % through the network, 12 s so far",  # nothing for the first 10 s
        "big.tif: 60 % through the network, 30 s so far",  # then one line every 15 s at most
        # and the last stage, which reports nothing, is named (it ran a silent minute on a large scan)
        "big.tif: network done, 31 s so far; separating the objects, writing"]


def test_a_run_on_the_built_in_model_says_when_napari_uses_a_fine_tuned_one(tmp_path, setup, capsys,
                                                                              private_model_dir):
    # the Batch dock started on the fine-tuned model in use, unet-seg predict on 'nuclei': one folder, two results
    from napari_unet_seg.core.training.project import Project, current_project_dir

    root, _ = setup
    mine = save_model(threshold_model(), private_model_dir / "mine.safetensors")
    assert main(["predict", str(root / "a.tif"), "-o", str(tmp_path / "before"), "--device", "cpu"]) == 0
    assert "napari's" not in capsys.readouterr().err  # no model in use yet: nothing to say
    Project(current_project_dir()).set_in_use(mine)
    assert main(["predict", str(root / "a.tif"), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "napari's Segment and Batch docks use 'mine'" in err and f"--model {mine}" in err
    assert main(["predict", str(root / "a.tif"), "-o", str(tmp_path / "chosen"), "--model", "nuclei"]) == 0
    assert "napari's" not in capsys.readouterr().err  # a model chosen: the user knows which


def test_a_link_back_to_itself_in_a_folder_is_passed_over_and_one_named_is_one_failed_row(tmp_path, capsys):
    # `ln -s loop loop` in an experiment folder ended the run in a traceback (Path.resolve raises on a loop) and
    # nothing was segmented; the Batch dock stopped at it too
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", synthetic_nuclei((40, 48), n=4, seed=1)[0])
    (folder / "loop").symlink_to("loop")
    common = ["--model", str(model), "--device", "cpu", "--no-qc"]
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), *common]) == 0
    assert (tmp_path / "out" / "a_labels.tif").exists()
    assert main(["predict", str(folder / "loop"), str(folder / "a.tif"), "-o", str(tmp_path / "named"),
                 *common]) == 1  # a file failed: said in the exit status
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "loop: no such file (a link to nothing, or back to itself)" in out.err
    assert "1 segmented, 0 skipped, 1 failed of 2 files" in out.out


def test_the_last_line_offers_no_pictures_when_none_could_be_drawn(tmp_path, capsys, monkeypatch):
    # a full disk: every picture failed ("no QC picture: [Errno 28]"), and the line still said "pictures in ..."
    from napari_unet_seg.core.batch import qc

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    tifffile.imwrite(tmp_path / "a.tif", synthetic_nuclei((40, 48), n=4, seed=1)[0])
    monkeypatch.setattr(qc, "_write_png", full)
    assert main(["predict", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--device", "cpu"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("1 segmented, 0 skipped, 0 failed of 1 files") and "pictures in" not in last
    monkeypatch.undo()
    assert main(["predict", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--device", "cpu", "--overwrite"]) == 0
    assert "; pictures in " in capsys.readouterr().out.strip().splitlines()[-1]
