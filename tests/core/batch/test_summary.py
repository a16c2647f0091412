"""summary.csv: what a rerun resumes from; written whole, and an unreadable one is as good as none."""

from napari_unet_seg.core.batch.files import FileResult
from napari_unet_seg.core.batch.summary import SUMMARY_NAME, read_summary, write_summary


def _rows():
    return [
        FileResult("/data/a.tif", "ok", 12, 87.25, 1.5, "", "/out/a_labels.tif"),
        FileResult("/data/sub dir ü/b, c.png", "failed", 0, 0.0, 0.012,
                   'b, c.png: cannot read "this" file; not an image', ""),
        FileResult("/data/d.tif", "skipped", 3, 10.0, 0.0, "output exists (use overwrite to redo it)",
                   "/out/d_labels.tif"),
    ]


def test_round_trip(tmp_path):
    rows = _rows()
    path = write_summary(rows, tmp_path)
    assert path == tmp_path / SUMMARY_NAME
    assert read_summary(tmp_path) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_NAME]  # no temporary file left


def test_rewriting_replaces_the_whole_file(tmp_path):
    write_summary(_rows(), tmp_path)
    write_summary(_rows()[:1], tmp_path)
    assert read_summary(tmp_path) == _rows()[:1]
    write_summary([], tmp_path)
    assert read_summary(tmp_path) == []
    assert (tmp_path / SUMMARY_NAME).read_text().startswith("file,status,objects")  # the header stays


def test_missing_or_unreadable_summaries_read_as_empty(tmp_path):
    assert read_summary(tmp_path / "no such folder") == []
    cases = {
        "not a table": "hello\nworld\n",
        "a damaged number": "file,status,objects,mean_area,seconds,message,output\na.tif,ok,many,1,1,,x\n",
        "columns missing": "file,status\na.tif,ok\n",
    }
    for name, text in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / SUMMARY_NAME).write_text(text)
        assert read_summary(folder) == [], name
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / SUMMARY_NAME).write_bytes(b"\xff\xfe\x00garbage\x80")
    assert read_summary(binary) == []
    folder_named_like_it = tmp_path / "dir"
    (folder_named_like_it / SUMMARY_NAME).mkdir(parents=True)
    assert read_summary(folder_named_like_it) == []


def test_empty_counts_read_as_zero(tmp_path):
    (tmp_path / SUMMARY_NAME).write_text("file,status,objects,mean_area,seconds,message,output\n"
                                         "a.tif,failed,,,,broken,\n")
    assert read_summary(tmp_path) == [FileResult("a.tif", "failed", 0, 0.0, 0.0, "broken", "")]


def test_the_last_line_counts_skips_by_reason_not_by_where_each_rows_counts_came_from():
    from napari_unet_seg.core.batch.files import FileResult
    from napari_unet_seg.core.batch.summary import skip_reasons

    exists = "output exists (use overwrite to redo it)"
    rows = [FileResult("a", "skipped", message=exists)] * 3 + [
        FileResult("b", "skipped", message=f"{exists}; counts read from the output (the run that made it left no row)"),
        FileResult("c", "skipped", message=f"from an earlier run; {exists}; objects table measured now"),
        FileResult("d", "skipped", message="output exists, made with other settings (diameter: auto -> 30 px); "
                                           "use overwrite to redo it"),
        FileResult("e", "ok")]
    assert skip_reasons(rows, "--overwrite") == (
        "5 x output exists (use --overwrite to redo it) | 1 x output exists, made with other settings "
        "(diameter: auto -> 30 px); use --overwrite to redo it")


def test_a_results_folder_copied_elsewhere_keeps_its_rows_on_a_rerun(tmp_path, folder, options):
    """Rows name outputs by absolute path: in a copy, every row seemed missing ("the run that made it left no
    row")."""
    import shutil

    from napari_unet_seg.core.batch.runner import run_batch

    root, _ = folder
    first = run_batch([root / "a.tif", root / "b c.png"], tmp_path / "out", options)
    shutil.copytree(tmp_path / "out", tmp_path / "copy")
    again = run_batch([root / "a.tif", root / "b c.png"], tmp_path / "copy", options)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert all("left no row" not in r.message for r in again)
    assert [r.objects for r in again] == [r.objects for r in first]
    assert {r.output for r in read_summary(tmp_path / "copy")} == {str(tmp_path / "copy" / "a_labels.tif"),
                                                                   str(tmp_path / "copy" / "b c_labels.tif")}
