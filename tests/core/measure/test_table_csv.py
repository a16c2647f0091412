"""Objects CSV: a plain table, what made it in the JSON beside it, exact round trip, recognisable as ours."""

import numpy as np
import pytest

from napari_unet_seg.core.measure.measurements import measure_objects
from napari_unet_seg.core.measure.table_csv import (
    MARKER,
    is_objects_csv,
    objects_csv_path,
    read_objects_csv,
    write_objects_csv,
)


def test_round_trip_keeps_every_value_and_the_comments_beside_the_table(tmp_path):
    labels = np.zeros((2, 30, 30), np.uint16)
    labels[0, 3:9, 4:17] = 1
    labels[1, 10:29, 2:5] = 2
    table = measure_objects(labels, {"img": np.random.default_rng(0).random(labels.shape)}, pixel_size=(0.3, 0.3))
    path = write_objects_csv(tmp_path / "a_objects.csv", table, {"labels": "a_labels.tif", "model": "nuclei\nv2"})
    lines = path.read_text().splitlines()
    assert lines[0].startswith("label,slice,centroid_y")  # a plain table: the header row first
    back, comments = read_objects_csv(path)
    assert comments == {"labels": "a_labels.tif", "model": "nuclei\nv2"}
    assert list(back) == list(table)
    for column in table:
        np.testing.assert_array_equal(back[column], table[column], err_msg=column)
    assert is_objects_csv(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_objects.csv", "a_objects.json"]  # no leftovers


def test_pandas_reads_it_with_its_defaults(tmp_path):
    pd = pytest.importorskip("pandas")
    table = measure_objects(np.eye(6, dtype=np.uint8))
    frame = pd.read_csv(write_objects_csv(tmp_path / "t.csv", table, {"k": "v"}))
    assert frame["area"].tolist() == [6] and list(frame.columns) == list(table)


def test_a_table_of_an_earlier_version_with_comment_lines_is_still_read_and_ours(tmp_path):
    (tmp_path / "old.csv").write_text(f"{MARKER}\n# labels: a_labels.tif\nlabel,area\n1,2\n")
    table, comments = read_objects_csv(tmp_path / "old.csv")
    assert is_objects_csv(tmp_path / "old.csv") and comments == {"labels": "a_labels.tif"}
    assert table["area"].tolist() == [2]


def test_a_users_json_beside_the_table_is_kept_and_the_table_then_not_taken_for_ours(tmp_path):
    (tmp_path / "t.json").write_text('{"mine": 1}')
    path = write_objects_csv(tmp_path / "t.csv", measure_objects(np.eye(4, dtype=np.uint8)), {"k": "v"})
    assert (tmp_path / "t.json").read_text() == '{"mine": 1}' and path.exists()
    assert not is_objects_csv(path)  # so a batch would never replace it


def test_a_table_edited_since_it_was_written_is_the_users(tmp_path):
    path = write_objects_csv(tmp_path / "t.csv", measure_objects(np.eye(4, dtype=np.uint8)), {"k": "v"})
    assert is_objects_csv(path)
    path.write_text(path.read_text() + "2,99\n")  # a row typed in by hand, saved in place
    assert not is_objects_csv(path)  # a batch's --overwrite keeps it


@pytest.mark.parametrize("earlier", [False, True])
def test_a_run_killed_between_the_json_and_the_table_leaves_no_table_taken_for_the_users(tmp_path, monkeypatch,
                                                                                        earlier):
    """A batch killed after one file of the pair was in place left a table without its JSON, which every later run
    kept as the user's ("not written by unet-seg"), stale, even with overwrite."""
    from napari_unet_seg.core.common import atomic

    path = tmp_path / "a_objects.csv"
    if earlier:
        write_objects_csv(path, measure_objects(np.eye(5, dtype=np.uint8)), {"run": "1"})
    real, renames = atomic.replace_atomically, []

    def killed_before_the_second(tmp, target):
        renames.append(target)
        if len(renames) == 2:
            raise KeyboardInterrupt  # as a kill between the two files' renames, whichever comes first
        real(tmp, target)

    monkeypatch.setattr(atomic, "replace_atomically", killed_before_the_second)
    with pytest.raises(KeyboardInterrupt):
        write_objects_csv(path, measure_objects(np.eye(7, dtype=np.uint8)), {"run": "2"})
    monkeypatch.setattr(atomic, "replace_atomically", real)
    assert not path.exists() or is_objects_csv(path)  # no table, or one still shown to be ours
    write_objects_csv(path, measure_objects(np.eye(7, dtype=np.uint8)), {"run": "3"})
    assert is_objects_csv(path) and read_objects_csv(path)[0]["area"].tolist() == [7]
    path.write_text(path.read_text() + "1,0,0,0,0\n")  # edited by the user since
    assert not is_objects_csv(path)


def test_empty_table_round_trips_to_its_columns(tmp_path):
    table = measure_objects(np.zeros((8, 8), np.uint8))
    back, _ = read_objects_csv(write_objects_csv(tmp_path / "e.csv", table))
    assert list(back) == list(table) and all(len(v) == 0 for v in back.values())


def test_a_users_file_is_not_ours(tmp_path):
    (tmp_path / "mine.csv").write_text("label,area\n1,2\n")
    assert not is_objects_csv(tmp_path / "mine.csv") and not is_objects_csv(tmp_path / "missing.csv")


@pytest.mark.parametrize("labels, expected", [
    ("out/img_labels.tif", "out/img_objects.csv"),
    ("out/img_labels.zarr", "out/img_objects.csv"),
    ("out/a.b_tif_labels.tif", "out/a.b_tif_objects.csv"),
    ("out/scan.ome.zarr", "out/scan_objects.csv"),
])
def test_objects_csv_sits_beside_the_labels(labels, expected):
    assert str(objects_csv_path(labels)) == expected
