"""Error text for people: the first line of the message, or the exception's type when it has none."""

from napari_unet_seg.core.common.errors import first_line


def test_first_line_of_a_multi_line_message():
    exc = ValueError("cannot read a.tif\nTraceback (most recent call last):\n  File ...")
    assert first_line(exc) == "cannot read a.tif"


def test_leading_blank_lines_and_spaces_are_skipped():
    assert first_line(RuntimeError("\n\n  disk full\nmore")) == "disk full"


def test_an_empty_message_gives_the_type_name():
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("   \n ")) == "OSError"


def test_limit_truncates():
    exc = ValueError("x" * 500 + "\nsecond")
    assert first_line(exc, 200) == "x" * 200
    assert first_line(exc) == "x" * 500
    assert first_line(ValueError("short"), 200) == "short"
