"""Small helpers shared by tests (import as `from helpers import ...`)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_unet_seg.core.model.modelfile import new_model
from napari_unet_seg.core.training.targets import centre_map


def randomize_batchnorm(net: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial eval statistics, so tests see their effect."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def synthetic_nuclei(shape=(96, 128), n=12, radius=(5, 9), seed=0, touching=False):
    """Bright disks on a dark noisy background, with their instance labels."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    labels = np.zeros(shape, np.uint16)
    image = rng.normal(10, 2, shape)
    k = 0
    for _ in range(n * 20):
        if k == n:
            break
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        if not touching and (labels[disk] > 0).any():
            continue
        k += 1
        labels[disk & (labels == 0)] = k
        image[disk] += rng.uniform(80, 150)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def bright_and_dim_nuclei(shape=(300, 280), n=150, radius=(4, 8), seed=3):
    """Separate disks, the odd ones bright and the even ones dim (out of focus, as annotators leave them out).

    Returns the image, all disks' labels and the bright disks' labels. Normalised
    (1st-99.8th percentile), the bright disks are ~1.0, the dim ones ~0.35.
    """
    _, labels = synthetic_nuclei(shape, n=n, radius=radius, seed=seed)
    rng = np.random.default_rng(seed)
    image = rng.normal(10, 2, shape) + np.where(labels % 2 == 1, 200.0, np.where(labels > 0, 75.0, 0.0))
    bright = np.where(labels % 2 == 1, labels, 0).astype(labels.dtype)
    return np.clip(image, 0, 255).astype(np.uint8), labels, bright


def threshold_model(fg: float = 0.2, seed: float = 0.3):
    """A hand-made U-Net whose logits threshold the normalised image: an 'oracle' for separated disks."""
    model = new_model("instances", depth=2, base_channels=4)
    model.metadata["normalization"]["invert"] = False
    net = model.net
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_(), m.running_var.fill_(1.0), m.weight.fill_(1.0)
        for block in (net.down[0], net.up_conv[-1]):
            block[0].weight[0, 0, 1, 1] = 1.0  # pass channel 0 (image, then skip) through
            block[3].weight[0, 0, 1, 1] = 1.0
        net.head.weight[:, 0] = 20.0
        net.head.bias[:] = torch.tensor([-20.0 * fg, -20.0 * seed])
    net.eval()
    return model


def brightness_class_model(class_names=("background", "dim", "bright")):
    """A hand-made 3-class model: background below 0.2 of the normalised image, "dim" above, "bright" above 0.9."""
    model = new_model("semantic", num_classes=3, depth=2, base_channels=4, class_names=list(class_names))
    model.metadata["normalization"]["invert"] = False
    state = threshold_model().net.state_dict()
    state["head.weight"] = torch.zeros_like(model.net.head.weight)
    state["head.weight"][:, 0, 0, 0] = torch.tensor([0.0, 20.0, 60.0])
    state["head.bias"] = torch.tensor([0.0, -4.0, -40.0])
    model.net.load_state_dict(state)
    model.net.eval()
    return model


def oracle_logits(labels):
    """Logits a perfect instance model would give."""
    c = np.clip(centre_map(labels), 1e-4, 1 - 1e-4)
    fg = np.where(labels > 0, 8.0, -8.0)
    return np.stack([fg, np.log(c) - np.log1p(-c)]).astype(np.float32)


def blob_logits(shape, centres, radius):
    """Logits of round nuclei at ``centres``: foreground inside ``radius``, a centre map falling linearly to the rim."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    distance = np.min([np.hypot(yy - cy, xx - cx) for cy, cx in centres], axis=0)
    centre = np.clip(1 - distance / radius, 1e-3, 1 - 1e-3)
    return np.stack([np.where(distance <= radius, 8.0, -8.0), np.log(centre / (1 - centre))]).astype(np.float32)


QUICK_RUN = {"crop_size": 48, "batch_size": 2, "eval_every": 2, "preview_every": 2}  # TrainConfig fields


def quick_training(widget, project, steps: int, overrides: dict | None = None):
    """Set a Train dock for a tiny model from scratch and a quick run (``overrides``: default QUICK_RUN)."""
    from napari_unet_seg._widgets.train_form import SCRATCH

    widget.settings.model_box.setCurrentText(SCRATCH)
    widget.settings.depth.setValue(2)
    widget.settings.width.setValue(4)
    widget.settings.max_steps.setValue(steps)
    widget.settings.project_dir.setText(str(project))
    widget.overrides = dict(QUICK_RUN if overrides is None else overrides)
    return widget


def drifting_disks(frames: int = 5, shape: tuple[int, int] = (120, 140), step: int = 2) -> np.ndarray:
    """Bright disks that drift ``step`` px a frame; one appears halfway, one leaves after the first frame."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centres = [(20, 20), (60, 40), (90, 100), (30, 110)]
    movie = np.zeros((frames, *shape), np.float32)
    for t in range(frames):
        for i, (y, x) in enumerate(centres):
            if (i == 3 and t < frames // 2) or (i == 2 and t > 0):
                continue
            movie[t][(yy - y - step * t) ** 2 + (xx - x - step * t) ** 2 <= 8**2] = 200.0
    return movie + 10.0


def tissue(seed: int = 0, size: int = 160, count: int = 9):
    """Touching cells (Voronoi regions of jittered grid points, inside a disk of tissue) with a small nucleus
    at each centre; a cytoplasm stain bright in the cells, dim on the seams between them and outside; a
    membrane stain bright on the seams (and around the tissue). Returns (true cells, nuclei, cytoplasm, membrane)."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(count))
    step = size / (side + 1)
    centres = np.array([((i + 1) * step, (j + 1) * step) for i in range(side) for j in range(side)])
    centres += rng.uniform(-step / 6, step / 6, centres.shape)
    markers = np.zeros((size, size), np.int32)
    for k, (y, x) in enumerate(centres.astype(int), start=1):
        markers[y, x] = k
    _, (iy, ix) = ndi.distance_transform_edt(markers == 0, return_indices=True)
    cells = markers[iy, ix]
    yy, xx = np.mgrid[:size, :size]
    cells[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 > (0.45 * size) ** 2] = 0
    seams = (ndi.maximum_filter(cells, 3) != ndi.minimum_filter(cells, 3)) & (cells > 0)
    nuclei = np.zeros_like(cells)
    for k, (y, x) in enumerate(centres, start=1):
        nuclei[((yy - y) ** 2 + (xx - x) ** 2 <= 36) & (cells == k)] = k
    noise = rng.normal(0, 0.03, cells.shape)
    cytoplasm = (cells > 0) * 1.0 - seams * 0.7 + noise + 0.1
    membrane = seams * 1.0 + (cells > 0) * 0.05 + noise  # a cell's inside barely brighter than outside
    return cells, nuclei, (1000 * cytoplasm).astype(np.float32), (1000 * membrane).astype(np.float32)


def watch_previews(viewer) -> list:
    """The training preview layers added to ``viewer`` from now on (a run removes its own when it ends)."""
    added: list = []
    viewer.layers.events.inserted.connect(
        lambda event: added.append(event.value) if event.value.name.startswith("training preview") else None)
    return added
