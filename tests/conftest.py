"""Shared fixtures: tiny networks, a private model folder, synthetic nuclei images."""

from __future__ import annotations

import pytest
import torch

from helpers import randomize_batchnorm
from napari_unet_seg.core.model.modelfile import Model, new_model


# tiny networks gain nothing from threads, and threads fight other processes on 2 cores
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def private_model_dir(tmp_path, monkeypatch):
    """Tests never read or write the real user model folder."""
    folder = tmp_path / "user_models"
    monkeypatch.setenv("NAPARI_UNET_SEG_MODEL_DIR", str(folder))
    return folder


@pytest.fixture
def tiny_model() -> Model:
    torch.manual_seed(0)
    model = new_model("instances", depth=2, base_channels=4)
    randomize_batchnorm(model.net)
    model.net.eval()
    return model


