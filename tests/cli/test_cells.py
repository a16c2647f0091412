"""`unet-seg cells`: cells grown from a nuclei file, linked by id; mistakes are one stderr line."""

import numpy as np
import pytest
import tifffile
from helpers import tissue

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.imageio import read_tiff_provenance
from napari_unet_seg.core.inference.cells import CellOptions, grow_cells


@pytest.fixture
def files(tmp_path):
    truth, nuclei, cytoplasm, membrane = tissue()
    tifffile.imwrite(tmp_path / "img_labels.tif", nuclei.astype(np.uint16), resolution=(2.0, 2.0), imagej=True,
                     metadata={"unit": "um"})
    tifffile.imwrite(tmp_path / "img.tif", np.stack([membrane, cytoplasm]), metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "cyto.tif", cytoplasm)
    tifffile.imwrite(tmp_path / "small.tif", cytoplasm[:20, :20])
    return tmp_path, nuclei, cytoplasm, membrane


def test_cells_are_written_beside_the_nuclei_as_the_core_grows_them(files, capsys):
    folder, nuclei, cytoplasm, _ = files
    assert main(["cells", str(folder / "img_labels.tif"), "--image", str(folder / "cyto.tif")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("9 cells around 9 nuclei, same ids") and out.strip().endswith(str(folder / "img_cells.tif"))
    with tifffile.TiffFile(folder / "img_cells.tif") as tif:
        cells = tif.asarray()
        assert tif.pages[0].tags["XResolution"].value == (2, 1)  # the nuclei's pixel size travels
    np.testing.assert_array_equal(cells, grow_cells(nuclei.astype(np.uint16), cytoplasm))
    record = read_tiff_provenance(folder / "img_cells.tif")
    assert record["kind"] == "cells" and record["settings"]["boundary"] == "cytoplasm"
    assert main(["provenance", str(folder / "img_cells.tif")]) == 0
    said = capsys.readouterr().out
    assert f"cells of:  {folder / 'img_labels.tif'}" in said and "boundary cytoplasm, threshold auto" in said
    command = said.split("command:")[1].split()  # the command it prints makes the same cells
    assert main([*command[1:], "-o", str(folder / "again.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(folder / "again.tif"), cells)


def test_a_channel_of_a_multichannel_file_and_a_membrane_boundary(files, capsys):
    folder, nuclei, _, membrane = files
    out = folder / "membrane.tif"
    args = ["cells", str(folder / "img_labels.tif"), "--image", str(folder / "img.tif"), "--channel", "0",
            "--boundary", "membrane", "-o", str(out)]
    assert main(args) == 0
    expected = grow_cells(nuclei.astype(np.uint16), membrane, options=CellOptions(boundary="membrane"))
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_without_an_image_cells_reach_a_given_distance(files):
    folder, nuclei, *_ = files
    assert main(["cells", str(folder / "img_labels.tif"), "--max-distance", "4"]) == 0
    cells = tifffile.imread(folder / "img_cells.tif")
    assert (cells > 0).sum() > (nuclei > 0).sum() and set(np.unique(cells)) == set(np.unique(nuclei))


@pytest.mark.parametrize(("extra", "message"), [
    (["--image", "{f}/cyto.tif", "--channel", "1"], "has one channel: --channel is for multichannel"),
    (["--image", "{f}/img.tif", "--channel", "5"], "--channel 5 is out of range: {f}/img.tif has channels 0 to 1"),
    (["--channel", "0"], "--channel picks a channel of --image"),
    ([], "give the largest distance from a nucleus"),
    (["--image", "{f}/cyto.tif", "--threshold", "2"], "above 0 and below 1"),
    (["--image", "{f}/cyto.tif", "--threshold", "0.3", "--mask", "{f}/img_labels.tif"], "give one of them"),
    (["--max-distance", "-1"], "--max-distance must be a positive number"),
    (["--image", "{f}/cyto.tif", "-o", "{f}/out.png"], "does not end in .tif"),
    (["--image", "{f}/cyto.tif", "-o", "{f}/img_labels.tif", "--overwrite"], "is one of the inputs"),
    (["--image", "{f}/missing.tif"], "IMAGE:"),
    (["--image", "{f}/img.tif"], "has 2 channels: choose the cytoplasm or membrane stain's with --channel K"),
    (["--image", "{f}/small.tif"], "error: {f}/small.tif has shape (20, 20) but the nuclei have"),  # its own name
])
def test_mistakes_are_one_line_and_write_nothing(files, capsys, extra, message):
    folder = files[0]
    before = sorted(p.name for p in folder.iterdir())
    args = ["cells", str(folder / "img_labels.tif"), *(a.format(f=folder) for a in extra)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message.format(f=folder) in err and err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == before


def test_an_existing_output_is_kept_without_overwrite(files, capsys):
    folder = files[0]
    (folder / "img_cells.tif").write_bytes(b"mine")
    assert main(["cells", str(folder / "img_labels.tif"), "--max-distance", "3"]) == 2
    assert "exists (use --overwrite" in capsys.readouterr().err
    assert (folder / "img_cells.tif").read_bytes() == b"mine"


def test_growing_over_the_channel_the_nuclei_were_found_in_is_warned(tmp_path, capsys):
    from helpers import threshold_model

    from napari_unet_seg import save_model

    _, nuclei, cytoplasm, _ = tissue()
    dapi = (nuclei > 0).astype(np.float32) * 200 + 10
    tifffile.imwrite(tmp_path / "img.tif", np.stack([cytoplasm, dapi]), imagej=True, metadata={"axes": "CYX"})
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    assert main(["predict", str(tmp_path / "img.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--device", "cpu", "--channel", "1", "--no-measure"]) == 0
    labels = str(tmp_path / "out" / "img_labels.tif")
    capsys.readouterr()
    assert main(["cells", labels, "--image", str(tmp_path / "img.tif"), "--channel", "1"]) == 0
    assert "is the image the nuclei were segmented from" in capsys.readouterr().err
    assert main(["cells", labels, "--image", str(tmp_path / "img.tif"), "--channel", "0", "--overwrite"]) == 0
    assert capsys.readouterr().err == ""


def test_a_stacks_cells_are_counted_plane_by_plane_and_a_plane_of_stain_is_refused_by_its_shape(files, capsys):
    """A Z stack's slices number their nuclei each from 1: counting distinct ids said 9 cells for 27."""
    folder, nuclei, cytoplasm, _ = files
    tifffile.imwrite(folder / "stack_labels.tif", np.stack([nuclei] * 3).astype(np.uint16), imagej=True,
                     metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "stack_cyto.tif", np.stack([cytoplasm] * 3), imagej=True, metadata={"axes": "ZYX"})
    assert main(["cells", str(folder / "stack_labels.tif"), "--image", str(folder / "stack_cyto.tif")]) == 0
    assert capsys.readouterr().out.startswith("27 cells around 27 nuclei in 3 planes, same ids")
    code = main(["cells", str(folder / "stack_labels.tif"), "--image", str(folder / "cyto.tif"), "-o",
                 str(folder / "x.tif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "but the nuclei have (3, " in err[0] and "channels" not in err[0], err


def test_an_image_given_as_nuclei_is_warned_about_and_an_ome_zarr_gives_its_labels(files, capsys):
    from napari_unet_seg.core.export import write_ome_zarr

    folder, nuclei, cytoplasm, _ = files
    tifffile.imwrite(folder / "cyto16.tif", np.clip(cytoplasm, 0, None).astype(np.uint16))  # an image, integer
    assert main(["cells", str(folder / "cyto16.tif"), "--max-distance", "5", "-o", str(folder / "oops.tif")]) == 0
    assert "like an image rather than labels: did you give the image as NUCLEI?" in capsys.readouterr().err
    store = write_ome_zarr(folder / "both.ome.zarr", nuclei.astype(np.uint16), cytoplasm)  # image and labels
    for command in (["cells", str(store), "--image", str(folder / "cyto.tif"), "-o", str(folder / "z.tif")],
                    ["measure", str(store), "-o", str(folder / "z.csv")]):
        assert main(command) == 0
        printed = capsys.readouterr()
        assert printed.out.startswith("9 ") and "like an image" not in printed.err  # its labels, not its image


def test_a_stain_of_another_size_is_refused_by_its_shape_not_taken_for_channels(files, capsys):
    folder, _, cytoplasm, _ = files
    tifffile.imwrite(folder / "big.tif", np.stack([np.zeros((256, 256), np.float32)] * 2), imagej=True,
                     metadata={"axes": "CYX"})
    for extra in ([], ["--channel", "1"]):
        code = main(["cells", str(folder / "img_labels.tif"), "--image", str(folder / "big.tif"), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "has shape (2, 256, 256) but the nuclei have (160, 160)" in err[0], err
