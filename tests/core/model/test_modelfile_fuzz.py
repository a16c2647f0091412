"""Whatever bytes a model file holds, loading it gives a model or one ModelFileError: never another exception."""

from __future__ import annotations

import json
import struct

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_unet_seg.core.model.modelfile import load_model_file, new_model, read_metadata, save_model
from napari_unet_seg.core.model.schema import ModelFileError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tiny_file(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    return save_model(new_model("instances", depth=2, base_channels=4), folder / "m.safetensors").read_bytes()


def _load(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("case") / "m.safetensors"
    path.write_bytes(data)
    for read in (load_model_file, read_metadata):
        try:
            result = read(path)
        except ModelFileError as error:
            assert str(error) and "\n" not in str(error).strip()  # one line for the user
        else:
            assert result is not None


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_bytes(tmp_path_factory, data):
    _load(tmp_path_factory, data)


@SETTINGS
@given(cut=st.floats(0, 1))
def test_a_file_cut_short_anywhere(tmp_path_factory, cut):
    good = _tiny_file(tmp_path_factory)
    _load(tmp_path_factory, good[:int(len(good) * cut)])


@SETTINGS
@given(positions=st.lists(st.integers(0, 10**9), min_size=1, max_size=8), seed=st.integers(0, 255))
def test_flipped_bytes_anywhere(tmp_path_factory, positions, seed):
    data = bytearray(_tiny_file(tmp_path_factory))
    for p in positions:
        data[p % len(data)] ^= (seed % 255) + 1
    _load(tmp_path_factory, bytes(data))


@SETTINGS
@given(metadata=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                             lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=3), max_leaves=8),
       key=st.sampled_from(["depth", "base_channels", "task", "normalization", "postprocess", "object_diameter",
                            "num_classes", "in_channels", "auto_band", "class_names"]))
def test_any_value_in_any_metadata_field(tmp_path_factory, metadata, key):
    """A hand-edited model file: the header's JSON metadata says anything in any field."""
    good = _tiny_file(tmp_path_factory)
    (length,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + length])
    inner = json.loads(header["__metadata__"]["napari_unet_seg"])
    inner[key] = metadata
    header["__metadata__"]["napari_unet_seg"] = json.dumps(inner, allow_nan=True)
    body = json.dumps(header).encode()
    _load(tmp_path_factory, struct.pack("<Q", len(body)) + body + good[8 + length:])


def test_the_fuzzed_file_is_a_real_model(tmp_path_factory):
    good = _tiny_file(tmp_path_factory)
    path = tmp_path_factory.mktemp("ok") / "m.safetensors"
    path.write_bytes(good)
    model = load_model_file(path)
    assert np.isfinite(sum(float(p.detach().sum()) for p in model.net.parameters()))
