"""Naming trained models: fresh names, never over an existing model or file."""

from __future__ import annotations

import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.model.modelfile import ModelFileError
from napari_unet_seg.core.training.finetune import starting_model
from napari_unet_seg.core.training.naming import fresh_model_name, save_trained

TINY = dict(depth=2, width=4)


def test_fresh_names_never_overwrite(private_model_dir):
    image, labels = synthetic_nuclei((64, 64))
    model = starting_model("none", **TINY)
    first = save_trained(model, private_model_dir / fresh_model_name("nuclei", private_model_dir))
    second = save_trained(model, private_model_dir / fresh_model_name(first.stem, private_model_dir))
    assert (first.stem, second.stem) == ("nuclei-finetuned", "nuclei-finetuned-2")
    before = first.read_bytes()
    with pytest.raises(ModelFileError, match="already exists"):
        save_trained(model, first)
    assert first.read_bytes() == before


def test_model_file_path_adds_the_suffix_once(tmp_path):
    from napari_unet_seg.core.training.naming import model_file_path

    assert model_file_path(tmp_path / "m").name == "m.safetensors"
    assert model_file_path(tmp_path / "m.safetensors").name == "m.safetensors"
    assert model_file_path(tmp_path / "model.pt").name == "model.pt.safetensors"  # never a pickle name
    assert model_file_path("v1.2").name == "v1.2.safetensors"


def test_fresh_names_skip_taken_ones_and_do_not_stack_suffixes(private_model_dir, tmp_path, tiny_model):
    from napari_unet_seg.core.model.modelfile import save_model

    save_model(tiny_model, private_model_dir / "cells-finetuned")
    assert fresh_model_name("cells", private_model_dir) == "cells-finetuned-2"
    assert fresh_model_name("cells-finetuned-7", private_model_dir) == "cells-finetuned-2"
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "cells-finetuned-2.safetensors").write_bytes(b"")  # a file in the target folder counts too
    assert fresh_model_name("cells", other) == "cells-finetuned-3"
    assert fresh_model_name("", private_model_dir) == "model-finetuned"
    (other / "classes-model.safetensors").write_bytes(b"")
    assert fresh_model_name("classes-model", other, new=True) == "classes-model-2"  # from scratch: not "finetuned"


def test_path_in_folder_keeps_a_free_name_and_replaces_a_taken_one(private_model_dir, tiny_model, tmp_path,
                                                                    monkeypatch):
    from napari_unet_seg.core.model import registry
    from napari_unet_seg.core.model.modelfile import save_model
    from napari_unet_seg.core.training.naming import path_in_folder

    folder = private_model_dir
    assert path_in_folder(folder, "my cells", "nuclei") == folder / "my cells.safetensors"
    assert path_in_folder(folder, "", "nuclei") == folder / "nuclei-finetuned.safetensors"
    save_model(tiny_model, folder / "my cells")
    assert path_in_folder(folder, "my cells", "nuclei") == folder / "my cells-finetuned.safetensors"
    monkeypatch.setattr(registry, "builtin_model_paths", lambda: {"nuclei": tmp_path / "nuclei.safetensors"})
    assert path_in_folder(folder, "nuclei", "x") == folder / "nuclei-finetuned.safetensors"  # a built-in's name


def test_save_trained_names_the_model_after_its_file(private_model_dir, tiny_model):
    from napari_unet_seg.core.model.modelfile import read_metadata

    path = save_trained(tiny_model, private_model_dir / "round 2")
    assert path == private_model_dir / "round 2.safetensors"
    assert tiny_model.name == "round 2" and tiny_model.path == path
    assert read_metadata(path)["name"] == "round 2"


def test_a_file_written_meanwhile_at_the_models_name_is_kept_and_the_model_saved_beside_it(tmp_path, tiny_model):
    """Two runs given the same -o: the second, after minutes of training, lost its model to "already exists"."""
    from napari_unet_seg.core.training.naming import save_trained_somewhere

    target = tmp_path / "same.safetensors"
    target.write_bytes(b"the other run's model")
    saved, notes = save_trained_somewhere(tiny_model, [target])
    assert saved == tmp_path / "same-2.safetensors" and saved.exists()
    assert target.read_bytes() == b"the other run's model"
    assert len(notes) == 1 and "was written while this model trained" in notes[0] and str(saved) in notes[0]


def test_a_name_in_the_projects_history_is_not_given_again_after_its_file_was_renamed(private_model_dir, tiny_model,
                                                                                       tmp_path):
    """Two history rows on one path would make the older row open the newer model."""
    from napari_unet_seg.core.model.modelfile import save_model
    from napari_unet_seg.core.training.naming import path_in_folder
    from napari_unet_seg.core.training.project import Project

    folder = private_model_dir
    project = Project(tmp_path / "project")
    first = save_model(tiny_model, folder / "nuclei-finetuned")
    project.record_model(first, {"parent": "nuclei", "improved": True})
    first.rename(folder / "cytospin-v1.safetensors")  # renamed by hand: the name is free on disk
    recorded = Project(tmp_path / "project").recorded_names()
    assert recorded == {"nuclei-finetuned"}
    assert path_in_folder(folder, "", "nuclei", taken=recorded) == folder / "nuclei-finetuned-2.safetensors"
    assert path_in_folder(folder, "nuclei-finetuned", "nuclei", taken=recorded) == \
        folder / "nuclei-finetuned-2.safetensors"  # typed: taken too
    assert path_in_folder(folder, "", "nuclei") == folder / "nuclei-finetuned.safetensors"  # without a project
