"""Model files are checked before anything is built: bad metadata or headers fail in one line, fast."""

from __future__ import annotations

import json
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.modelfile import ModelFileError, ModelInfo, load_model_file, read_metadata, save_model
from napari_unet_seg.core.model.registry import available_models, user_model_dir

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
KEYS = ["format_version", "task", "architecture", "class_names", "normalization", "postprocess", "object_diameter",
        "auto_band", "lineage", "training", "name", "input"]
ARCH_KEYS = ["in_channels", "num_classes", "depth", "base_channels"]


def rewrite(path, out, change):
    """A copy of the model file at ``path`` whose metadata ``change(meta)`` edited."""
    meta = read_metadata(path)
    change(meta)
    save_file(load_file(str(path)), str(out), metadata={"napari_unet_seg": json.dumps(meta)})
    return out


@pytest.fixture
def good(tmp_path, tiny_model):
    return save_model(tiny_model, tmp_path / "good.safetensors")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=json_values)
def test_any_metadata_value_loads_or_fails_with_one_clear_line(good, tmp_path, key, value):
    bad = rewrite(good, tmp_path / "fuzzed.safetensors", lambda meta: meta.__setitem__(key, value))
    try:
        model = load_model_file(bad)
    except ModelFileError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert model.net is not None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(ARCH_KEYS), value=json_values)
def test_any_architecture_value_loads_or_fails_with_one_clear_line(good, tmp_path, key, value):
    bad = rewrite(good, tmp_path / "arch.safetensors", lambda meta: meta["architecture"].__setitem__(key, value))
    try:
        load_model_file(bad)
    except ModelFileError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), junk=st.binary(max_size=64))
def test_damaged_headers_fail_with_one_clear_line(good, tmp_path, cut, junk):
    data = good.read_bytes()
    bad = tmp_path / "damaged.safetensors"
    bad.write_bytes(data[:cut] + junk + data[cut + len(junk):] if cut < len(data) else junk)
    try:
        load_model_file(bad)
    except ModelFileError as exc:
        assert "\n" not in str(exc)


def test_a_huge_declared_network_is_refused_before_any_allocation(good, tmp_path):
    bad = rewrite(good, tmp_path / "huge.safetensors", lambda meta: meta["architecture"].update(base_channels=4096))
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="base_channels"):
        load_model_file(bad)
    assert time.perf_counter() - start < 2.0
    lying = rewrite(good, tmp_path / "lying.safetensors", lambda meta: meta["architecture"].update(base_channels=64))
    with pytest.raises(ModelFileError, match="architecture in its metadata needs"):
        load_model_file(lying)


@pytest.mark.parametrize("change, words", [
    (lambda meta: meta.update(format_version="1"), "format_version"),
    (lambda meta: meta.update(format_version=99), "newer"),
    (lambda meta: meta.update(task="magic"), "unknown task"),
    (lambda meta: meta.update(object_diameter=-3), "object_diameter"),
    (lambda meta: meta.update(postprocess={"foreground_threshold": "high"}), "foreground_threshold"),
    (lambda meta: meta.update(architecture={"in_channels": 1}), "num_classes"),
])
def test_lying_metadata_names_what_is_wrong(good, tmp_path, change, words):
    with pytest.raises(ModelFileError, match=words):
        load_model_file(rewrite(good, tmp_path / "lie.safetensors", change))


def test_deeply_nested_metadata_is_refused(good, tmp_path):
    tensors = load_file(str(good))
    bad = tmp_path / "deep.safetensors"
    save_file(tensors, str(bad), metadata={"napari_unet_seg": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(ModelFileError, match="not a napari-unet-seg model file"):
        load_model_file(bad)
    header = json.dumps({"__metadata__": {"x": "y"}, "nested": "[" * 10}).encode()
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelFileError):
        load_model_file(raw)


def test_one_bad_file_in_the_model_folder_breaks_nothing_else(good, tmp_path, capsys):
    folder = user_model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    rewrite(good, folder / "broken.safetensors", lambda meta: meta.update(format_version="1"))
    save_model(load_model_file(good), folder / "fine.safetensors")
    assert {"broken", "fine", "nuclei"} <= set(available_models())
    with pytest.raises(ModelFileError):
        ModelInfo.of(folder / "broken.safetensors")
    assert ModelInfo.of(folder / "fine.safetensors").in_channels == 1
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "broken" in out and "unreadable" in out and "fine" in out and "Traceback" not in out


def test_a_key_with_a_line_break_still_fails_on_one_line(good, tmp_path):
    # found by the fuzz test above: a post-processing setting named "\n" broke the message in two
    bad = rewrite(good, tmp_path / "newline.safetensors", lambda meta: meta.__setitem__("postprocess", {"\n": None}))
    with pytest.raises(ModelFileError) as caught:
        load_model_file(bad)
    assert "\n" not in str(caught.value) and "setting '\\n' must be a number" in str(caught.value)
