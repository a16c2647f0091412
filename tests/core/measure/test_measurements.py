"""Per-object measurements equal scikit-image's regionprops, whole or block by block, in memory or lazily."""

import dask.array as da
import numpy as np
import pytest
import zarr
from helpers import synthetic_nuclei
from skimage.measure import regionprops

from napari_unet_seg.core.common.callbacks import Cancelled
from napari_unet_seg.core.measure.measurements import measure_objects


def reference(labels, intensity=None):
    """The columns regionprops gives for the whole plane, by label."""
    rows = {}
    for r in regionprops(labels, intensity_image=intensity):
        row = {
            "centroid_y": r.centroid[0], "centroid_x": r.centroid[1], "area": r.area, "perimeter": r.perimeter,
            "equivalent_diameter": r.equivalent_diameter_area, "eccentricity": r.eccentricity,
            "solidity": r.solidity, "bbox_y0": r.bbox[0], "bbox_x0": r.bbox[1], "bbox_y1": r.bbox[2],
            "bbox_x1": r.bbox[3],
        }
        if intensity is not None:
            values = r.image_intensity[r.image]
            row.update(img_mean=values.mean(), img_median=np.median(values), img_integrated=values.sum())
        rows[r.label] = row
    return rows


def assert_matches(table, expected, row_filter=None):
    rows = np.arange(len(table["label"])) if row_filter is None else np.flatnonzero(row_filter)
    assert sorted(int(table["label"][i]) for i in rows) == sorted(expected)
    for i in rows:
        want = expected[int(table["label"][i])]
        for column, value in want.items():
            assert table[column][i] == pytest.approx(value, rel=1e-9, abs=1e-9), column


def irregular_labels():
    """Touching disks, a ring (not convex), a line, a single pixel, objects on the image border, gaps in ids."""
    _, labels = synthetic_nuclei((70, 90), n=14, radius=(4, 12), seed=3, touching=True)
    labels = labels.astype(np.int32) * 3  # ids 3, 6, 9...: not consecutive
    yy, xx = np.mgrid[0:70, 0:90]
    ring = (np.hypot(yy - 35, xx - 45) < 20) & (np.hypot(yy - 35, xx - 45) > 15)
    labels[ring] = 1000
    labels[0, 10:40] = 7
    labels[69, 89] = 5
    return labels


@pytest.mark.parametrize("block_size", [2048, 16, 7])
def test_each_object_is_measured_as_regionprops_measures_the_whole_image(block_size):
    labels = irregular_labels()
    rng = np.random.default_rng(1)
    intensity = rng.normal(100, 20, labels.shape)
    table = measure_objects(labels, {"img": intensity}, block_size=block_size)
    assert_matches(table, reference(labels, intensity))
    assert list(table["label"]) == sorted(table["label"])  # one row per object, by label
    assert table["label"].dtype == np.int64 and table["area"].dtype == np.int64


def test_blocks_give_exactly_the_whole_image_result_on_zarr_and_dask(tmp_path):
    labels = irregular_labels()
    intensity = np.random.default_rng(2).integers(0, 4000, labels.shape).astype(np.uint16)
    whole = measure_objects(labels, {"img": intensity})
    store = zarr.open_array(str(tmp_path / "labels.zarr"), mode="w", shape=labels.shape, chunks=(16, 16),
                            dtype=labels.dtype)
    store[:] = labels
    lazy = measure_objects(store, {"img": da.from_array(intensity, chunks=20)}, block_size=16)
    assert list(whole) == list(lazy)
    for column in whole:  # the same up to the last bit of a float (a centroid offset by its region's corner)
        np.testing.assert_allclose(whole[column], lazy[column], rtol=1e-12, err_msg=column)
        assert whole[column].dtype == lazy[column].dtype


def test_stacks_are_measured_per_slice_with_a_slice_column():
    planes = [synthetic_nuclei((48, 64), n=n, seed=s)[1] for n, s in ((6, 0), (4, 1), (0, 2))]
    stack = np.stack(planes)
    table = measure_objects(stack, {"img": stack.astype(float) * 2}, block_size=20)
    assert list(table)[:2] == ["label", "slice"]
    assert len(table["label"]) == 10 and np.bincount(table["slice"], minlength=3).tolist() == [6, 4, 0]
    for z, plane in enumerate(planes[:2]):
        assert_matches(table, {k: {c: v for c, v in row.items()} for k, row in reference(plane).items()},
                       row_filter=table["slice"] == z)
    assert table["area"].mean() == pytest.approx(np.count_nonzero(stack) / 10)
    time_z = measure_objects(stack[None], lead_names=("t", "z"))
    assert list(time_z)[:3] == ["label", "t", "z"] and time_z["z"].tolist() == table["slice"].tolist()


def test_channels_and_other_images_get_their_own_columns():
    image, labels = synthetic_nuclei((40, 50), n=5, seed=4)
    rgb = np.stack([image, image // 2, 255 - image], axis=-1)
    table = measure_objects(labels, {"rgb": rgb, "nuclei": image})
    for k, channel in enumerate((image, image // 2, 255 - image)):
        expected = reference(labels, channel)
        for i, lab in enumerate(table["label"]):
            assert table[f"rgb_ch{k}_mean"][i] == pytest.approx(expected[lab]["img_mean"])
            assert table[f"rgb_ch{k}_integrated"][i] == pytest.approx(expected[lab]["img_integrated"])
    np.testing.assert_allclose(table["nuclei_median"], table["rgb_ch0_median"])


def test_pixel_size_adds_physical_columns():
    labels = np.zeros((30, 30), np.uint16)
    labels[10:20, 4:8] = 1
    square = measure_objects(labels, pixel_size=(0.5, 0.5), unit="um")
    assert square["area_um2"][0] == pytest.approx(40 * 0.25)
    assert square["centroid_y_um"][0] == pytest.approx(14.5 * 0.5) and square["centroid_x_um"][0] == 2.75
    assert square["perimeter_um"][0] == pytest.approx(square["perimeter"][0] * 0.5)
    oblong = measure_objects(labels, pixel_size=(2.0, 0.5))
    assert oblong["area_um2"][0] == pytest.approx(40.0) and oblong["centroid_y_um"][0] == pytest.approx(29.0)
    assert "perimeter_um" not in oblong  # not a scaling of the pixel perimeter when pixels are not square


def test_the_eccentricity_on_oblong_pixels_is_the_objects_not_its_pixel_grids():
    # a round nucleus on 0.4 x 0.2 µm pixels (20 rows by 40 columns) read 0.87 where square pixels gave ~0
    yy, xx = np.mgrid[:40, :60]
    disk = (((yy - 20) / 10.0) ** 2 + ((xx - 30) / 20.0) ** 2 <= 1).astype(np.uint8)  # 8 µm across both ways
    oblong = measure_objects(disk, pixel_size=(0.4, 0.2))
    plain = measure_objects(disk)
    assert plain["eccentricity"][0] > 0.8 and oblong["eccentricity"][0] < 0.3
    assert oblong["solidity"][0] == plain["solidity"][0]  # a ratio of areas: the same on any pixels
    square = measure_objects(disk, pixel_size=(0.3, 0.3))
    assert square["eccentricity"][0] == plain["eccentricity"][0]


def test_empty_labels_give_an_empty_table_with_every_column():
    table = measure_objects(np.zeros((2, 20, 20), np.uint8), {"img": np.ones((2, 20, 20))}, pixel_size=(1, 1))
    assert "img_mean" in table and "centroid_y_um" in table and "slice" in table
    assert all(len(v) == 0 for v in table.values())


def test_huge_ids_and_bool_masks():
    labels = np.zeros((20, 20), np.uint32)
    labels[2:5, 2:5] = 4_000_000_000
    labels[10:12, 10:18] = 7
    table = measure_objects(labels, block_size=8)
    assert table["label"].tolist() == [7, 4_000_000_000] and table["area"].tolist() == [16, 9]
    mask = measure_objects(labels > 0)  # a mask is one object, label 1, however many pieces
    assert mask["label"].tolist() == [1] and mask["area"].tolist() == [25]


@pytest.mark.parametrize("labels, images, message", [
    (np.zeros((5, 5), np.float32), None, "integer"),
    (np.zeros(5, np.uint8), None, "two axes"),
    (np.zeros((5, 5), np.uint8), {"img": np.zeros((5, 6))}, "must match"),
    (np.full((5, 5), -1, np.int16), None, "non-negative"),
])
def test_bad_inputs_raise_one_line(labels, images, message):
    with pytest.raises(ValueError, match=message) as info:
        measure_objects(labels, images)
    assert "\n" not in str(info.value)


def test_progress_reaches_the_end_and_cancel_stops():
    labels = irregular_labels()
    calls = []
    measure_objects(labels, block_size=32, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    with pytest.raises(Cancelled):
        measure_objects(labels, cancel=lambda: True)


def test_labels_given_as_nested_lists_are_measured_as_segment_accepts_them():
    _, labels = synthetic_nuclei((48, 48))
    from_lists = measure_objects(labels.tolist())
    from_array = measure_objects(labels)
    assert list(from_lists["label"]) == list(from_array["label"]) and len(from_array["label"])
