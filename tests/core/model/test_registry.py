"""Finding models by name: the user folder, built-ins that are never hidden, file paths, and the load cache."""

import os

import pytest
import torch

from napari_unet_seg import ModelFileError, available_models, load_model, save_model


def test_user_models_are_listed_and_loadable_by_name(private_model_dir, tiny_model):
    save_model(tiny_model, private_model_dir / "mine")
    assert "mine" in available_models()
    assert load_model("mine").net.depth == 2
    with pytest.raises(ModelFileError, match="no model named"):
        load_model("nonexistent")


def test_user_folder_comes_from_the_environment(private_model_dir, monkeypatch, tmp_path):
    from napari_unet_seg.core.model.registry import user_model_dir

    assert user_model_dir() == private_model_dir
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("NAPARI_UNET_SEG_MODEL_DIR", str(elsewhere))
    assert user_model_dir() == elsewhere
    monkeypatch.delenv("NAPARI_UNET_SEG_MODEL_DIR")
    default = user_model_dir()
    assert default.name == "models" and "napari-unet-seg" in str(default) and default != elsewhere


def test_only_model_files_of_the_user_folder_are_listed(private_model_dir, tiny_model):
    from napari_unet_seg.core.model.registry import builtin_model_paths

    assert available_models() == builtin_model_paths()  # the folder does not exist yet
    save_model(tiny_model, private_model_dir / "a")
    (private_model_dir / "notes.txt").write_text("not a model")
    (private_model_dir / "old.pt").write_bytes(b"pickle")
    listed = available_models()
    assert listed["a"] == private_model_dir / "a.safetensors"
    assert set(listed) == {"a"} | set(builtin_model_paths())


def test_a_user_model_never_hides_a_built_in_one(private_model_dir, tmp_path, monkeypatch):
    from napari_unet_seg.core.model import registry
    from napari_unet_seg.core.model.modelfile import new_model

    builtin = save_model(new_model(depth=1, base_channels=2), tmp_path / "package" / "demo")
    monkeypatch.setattr(registry, "builtin_model_paths", lambda: {"demo": builtin})
    impostor = save_model(new_model(depth=2, base_channels=4), private_model_dir / "demo")
    save_model(new_model(depth=2, base_channels=4), private_model_dir / "mine")
    models = available_models()
    assert models["demo"] == builtin and models["mine"] == private_model_dir / "mine.safetensors"
    assert load_model("demo").net.depth == 1  # the name means the built-in...
    assert load_model(impostor).net.depth == 2  # ...the user's file is still reachable by its path


def test_the_real_built_in_is_not_hidden(private_model_dir, tiny_model):
    from napari_unet_seg.core.model.registry import builtin_model_paths

    builtins = builtin_model_paths()
    if "nuclei" not in builtins:
        pytest.skip("no built-in nuclei model in this copy")
    save_model(tiny_model, private_model_dir / "nuclei")
    assert available_models()["nuclei"] == builtins["nuclei"]


def test_resolving_names_and_paths(private_model_dir, tmp_path, tiny_model, monkeypatch):
    from napari_unet_seg.core.model import registry
    from napari_unet_seg.core.model.registry import resolve_model_path

    saved = save_model(tiny_model, private_model_dir / "mine")
    elsewhere = save_model(tiny_model, tmp_path / "files" / "other")
    assert resolve_model_path("mine") == saved
    assert resolve_model_path(str(elsewhere)) == elsewhere
    assert resolve_model_path(elsewhere) == elsewhere
    pickle = tmp_path / "weights.pth"
    with pytest.raises(ModelFileError, match="model file not found"):
        resolve_model_path(pickle)  # missing is said as missing, not as a pickle
    pickle.write_bytes(b"PK")
    with pytest.raises(ModelFileError, match="pickle"):
        resolve_model_path(pickle)  # refused by name, before it is opened
    written = save_model(tiny_model, tmp_path / "m.pt")
    assert written.name == "m.pt.safetensors" and resolve_model_path(tmp_path / "m.pt") == written
    with pytest.raises(ModelFileError, match="model file not found"):
        resolve_model_path(tmp_path / "missing.safetensors")
    with pytest.raises(ModelFileError, match=r"no model named 'typo' \(available: .*mine"):
        resolve_model_path("typo")
    monkeypatch.setattr(registry, "builtin_model_paths", lambda: {})
    with pytest.raises(ModelFileError, match="built-in 'nuclei' model is not installed"):
        resolve_model_path("nuclei")


def test_loaded_models_are_cached_until_the_file_changes(private_model_dir, tiny_model):
    from napari_unet_seg.core.model.registry import cached_model

    path = save_model(tiny_model, private_model_dir / "cached")
    first = cached_model("cached")
    assert cached_model("cached") is first
    assert cached_model(path) is first  # by name or by path: one file, one cache entry
    assert cached_model(str(private_model_dir / "." / "cached.safetensors")) is first
    with torch.no_grad():
        for p in tiny_model.net.parameters():
            p.add_(1.0)
    save_model(tiny_model, path, overwrite=True)
    stamp = path.stat().st_mtime + 5
    os.utime(path, (stamp, stamp))  # a new modification time, however coarse the filesystem's clock
    second = cached_model("cached")
    assert second is not first
    changed = [not torch.equal(a, b) for a, b in zip(first.net.parameters(), second.net.parameters())]
    assert all(changed)  # the new weights were read, not the cached ones
    assert cached_model("cached") is second


def test_load_model_gives_a_copy_of_ones_own_so_changing_it_changes_no_later_run(private_model_dir, tiny_model):
    """A script that fine-tunes or re-sets ``load_model("x")`` changed every later ``segment(img, "x")``."""
    import numpy as np

    from helpers import synthetic_nuclei
    from napari_unet_seg import segment
    from napari_unet_seg.core.model.registry import cached_model

    save_model(tiny_model, private_model_dir / "shared")
    image, _ = synthetic_nuclei((64, 64))
    before = segment(image, "shared", device="cpu", precision="fp32")
    mine = load_model("shared")
    assert mine is not load_model("shared") and mine.net is not cached_model("shared").net
    mine.metadata["postprocess"]["foreground_threshold"] = 0.99
    with torch.no_grad():
        for p in mine.net.parameters():
            p.mul_(-3.0)
    np.testing.assert_array_equal(segment(image, "shared", device="cpu", precision="fp32"), before)
    assert cached_model("shared").metadata["postprocess"].get("foreground_threshold") != 0.99
