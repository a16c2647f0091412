"""New class models start from the built-in model's trained encoder; scratch stays an option."""

from __future__ import annotations

import torch

from napari_unet_seg.core.model.registry import load_model
from napari_unet_seg.core.training.finetune import ENCODER_PREFIXES, starting_model


def test_a_new_class_model_borrows_the_nuclei_encoder_and_nothing_else():
    nuclei = load_model("nuclei")
    model = starting_model("none", task="semantic", classes=3, encoder="nuclei",
                           depth=nuclei.net.depth, width=nuclei.net.base_channels)
    ours, theirs = model.net.state_dict(), nuclei.net.state_dict()
    encoder = [k for k in ours if k.startswith(ENCODER_PREFIXES)]
    assert encoder and all(torch.equal(ours[k], theirs[k]) for k in encoder)
    decoder = [k for k in ours if k.startswith("up_conv.") and k.endswith("weight") and ours[k].ndim == 4]
    assert decoder and not any(torch.equal(ours[k], theirs[k]) for k in decoder)
    assert model.metadata["training"]["encoder_from"] == "nuclei"
    assert model.net.num_classes == 3 and nuclei.net.num_classes == 2  # the shared model is untouched


def test_other_architectures_and_scratch_start_from_random_weights():
    nuclei = load_model("nuclei")
    narrow = starting_model("none", task="semantic", classes=3, encoder="nuclei", depth=nuclei.net.depth, width=8)
    assert "encoder_from" not in narrow.metadata.get("training", {})
    random = starting_model("none", task="semantic", classes=3, encoder=None, depth=nuclei.net.depth,
                            width=nuclei.net.base_channels)
    first = next(k for k in random.net.state_dict() if k.startswith("down.") and k.endswith("weight"))
    assert not torch.equal(random.net.state_dict()[first], nuclei.net.state_dict()[first])
    assert starting_model("none", encoder="none", depth=2, width=4).metadata.get("training", {}) == {}


def test_the_borrowed_encoder_is_recorded_in_the_saved_model(tmp_path):
    import numpy as np

    from helpers import synthetic_nuclei
    from napari_unet_seg.core.model.modelfile import read_metadata
    from napari_unet_seg.core.training.data import TrainingPair
    from napari_unet_seg.core.training.finetune import finetune
    from napari_unet_seg.core.training.loop import TrainConfig
    from napari_unet_seg.core.training.naming import save_trained

    nuclei = load_model("nuclei")
    model = starting_model("none", task="semantic", classes=2, encoder="nuclei", depth=nuclei.net.depth,
                           width=nuclei.net.base_channels)
    image, labels = synthetic_nuclei((48, 48))
    config = TrainConfig(max_steps=1, batch_size=1, crop_size=32, device="cpu", precision="fp32")
    finetune(model, [TrainingPair(image, (labels > 0).astype(np.int64))], config=config)
    path = save_trained(model, tmp_path / "classes")
    saved = read_metadata(path)
    assert saved["training"]["encoder_from"] == "nuclei"
    # its features were learnt by the built-in model's makers from its data: credited, cited, its licence kept
    assert saved["description"] == ("Trained with napari-unet-seg on the encoder of 'nuclei' (by napari-unet-seg "
                                    "developers).")
    assert "authors" not in saved and saved["parent_authors"] == ["napari-unet-seg developers"]
    assert saved["license"] == "BSD-3-Clause" and saved["cite"][0]["doi"] == "10.1038/s41592-019-0612-7"
