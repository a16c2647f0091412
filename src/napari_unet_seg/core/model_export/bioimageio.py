"""A napari-unet-seg model as a bioimage.io model package (spec 0.5), for ilastik, deepImageJ, QuPath, BiaPy...

The package holds the weights as a PyTorch state dict with the network's source
(``unet.py``), by default the same network as TorchScript (:mod:`.torchscript`,
for deepImageJ and other runners without Python), a test input with the output
expected from it, a cover, a README that states what the package cannot
express (:mod:`.mapping`), and our own model file as an attachment. The test
output is computed here, with our own normalisation code and network, so
``bioimageio test`` checks, for each weights format, that a bioimage.io runner
reproduces napari-unet-seg's maps. bioimageio.spec is an optional dependency
(``pip install 'napari-unet-seg[bioimageio]'``), imported only here.
"""

from __future__ import annotations

import os
import shutil
import string
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from ..common.atomic import atomic_path
from ..common.errors import first_line
from ..imageio import ImageFile, read_image
from ..inference.layout import channels_first
from ..inference.preprocess import PreparedImage, fit_normalization
from ..model import unet
from ..model.lock import exclusive
from ..model.modelfile import Model, is_bioimageio_package, save_model
from .documentation import documentation
from .mapping import ExportedNormalization, exported_normalization
from .torchscript import save_torchscript

WEIGHTS_FILE = "weights.pt"
TORCHSCRIPT_FILE = "weights_torchscript.pt"
ARCHITECTURE_FILE = "unet.py"
TEST_SIDE = 256  # px: side of the test input, raised to the smallest size the network accepts
UNET_CITATION = (("Ronneberger, Fischer and Brox (2015): U-Net: Convolutional Networks for Biomedical Image "
                 "Segmentation. MICCAI 2015."), "10.1007/978-3-319-24574-4_28")
INSTALL_HINT = "bioimage.io export needs bioimageio.core: pip install 'napari-unet-seg[bioimageio]'"


class ExportError(ValueError):
    """A model or sample that cannot be exported, or a folder not to overwrite; the message is one line."""


def default_sample() -> Path:
    """The first shipped DSB 2018 nuclei image: a one-channel fluorescence sample for gray models."""
    folder = Path(str(resources.files("napari_unet_seg") / "sample_data"))
    images = sorted(p for p in folder.glob("dsb2018_*.tif") if not p.stem.endswith("_labels"))
    if not images:
        raise ExportError("no sample image is installed; give a sample image")
    return images[0]


def halo(net: Any) -> int:
    """The output border a runner discards: the receptive radius, up to a whole number of ``2**depth`` steps.

    A runner pads each block by the halo; the U-Net gives the same maps only
    for shifts by a multiple of its step (a 122-px halo shifted the image by
    6 px: bioimageio.core's default prediction failed on a size mismatch and
    its blocks differed from the plugin's by up to 0.89 in probability).
    """
    step = net.size_multiple
    return -(-net.receptive_radius // step) * step


def min_side(net: Any) -> int:
    """The smallest input side the package accepts: a multiple of ``2**depth`` leaving pixels inside the halo."""
    step = net.size_multiple
    return (2 * halo(net) // step + 1) * step


def sample_plane(image: ImageFile, in_channels: int) -> np.ndarray:
    """The first plane of a sample image: (H, W), (H, W, 3|4) when RGB, or (C, H, W).

    A TIFF does not say which axis holds channels: for a multi-channel model,
    an axis before height of exactly the model's channel count is taken as it.
    """
    data = image.data
    if image.channel_axis is not None:
        data = channels_first(data, image.channel_axis)
    keep = 3 if image.rgb or image.channel_axis is not None or (
        in_channels > 1 and data.ndim >= 3 and data.shape[-3] == in_channels) else 2
    return np.asarray(data[(0,) * (data.ndim - keep)])


def input_tensor(model: Model, sample: str | os.PathLike | None) -> np.ndarray:
    """A (1, C, S, S) float32 crop of the sample's first plane, before normalisation (RGB made gray if needed)."""
    path = Path(sample) if sample is not None else default_sample()
    image = read_image(path)
    try:
        raw = PreparedImage(sample_plane(image, model.in_channels), in_channels=model.in_channels, rgb=image.rgb,
                            normalization_settings={}).read_raw(slice(None), slice(None))
    except ValueError as exc:
        raise ExportError(f"sample {path.name}: {first_line(exc)}; give a sample image with the model's "
                          "channels") from None
    step, smallest = model.net.size_multiple, min_side(model.net)
    h, w = raw.shape[-2:]
    side = min(max(smallest, TEST_SIDE), h // step * step, w // step * step)
    if side < smallest:
        raise ExportError(f"sample {path.name} is {h} x {w} px; this network needs a sample of at least "
                          f"{smallest} x {smallest} px")
    y0, x0 = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(raw[None, :, y0:y0 + side, x0:x0 + side], np.float32)


def expected_output(model: Model, raw: np.ndarray, norm: ExportedNormalization) -> np.ndarray:
    """What a runner must get from ``raw``: our normalisation, the network, then sigmoid or softmax."""
    normalization = fit_normalization(raw[0], norm.settings())
    net = model.net
    with exclusive(net), torch.no_grad():
        device = next(net.parameters()).device
        net.eval()
        logits = net(torch.from_numpy(normalization.apply(raw[0]))[None].to(device)).float().cpu()
    probabilities = torch.softmax(logits, dim=1) if _uses_softmax(model) else torch.sigmoid(logits)
    return probabilities.numpy().astype(np.float32)


def _uses_softmax(model: Model) -> bool:
    return model.task == "semantic" and model.net.num_classes > 1


def channel_names(model: Model) -> list[str]:
    if model.task == "instances":
        return ["foreground", "centre"]
    names = model.class_names
    return names if len(names) == model.net.num_classes else [f"class{i}" for i in range(model.net.num_classes)]


def export_bioimageio(
    model: Model,
    folder: str | os.PathLike,
    *,
    sample: str | os.PathLike | None = None,
    authors: tuple[str, ...] = (),
    license: str = "CC-BY-4.0",
    invert: bool | None = None,
    torchscript: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a bioimage.io package folder (``rdf.yaml`` and its files), atomically.

    ``sample`` is the image the test input and cover are cut from (default: a
    shipped nuclei image, for one-channel models). ``invert`` fixes the
    inversion a model set to "auto" decides per image (default: what "auto"
    decides on the sample). ``torchscript`` adds the network traced as
    TorchScript beside the state dict, for runners without Python (deepImageJ).
    An existing ``folder`` is kept unless ``overwrite``.
    """
    folder = Path(folder)
    check_package_folder(folder, overwrite=overwrite)
    _check_license(license)  # and that bioimageio.spec is installed, before any long work
    raw = input_tensor(model, sample)
    settings = model.normalization
    if invert is None:
        mode = settings.get("invert", "auto")
        invert = fit_normalization(raw[0], settings).invert if mode == "auto" else bool(mode) and mode != "no"
    try:
        norm = exported_normalization(settings, invert)
    except ValueError as exc:
        raise ExportError(f"{model.name}: {exc}") from None
    output = expected_output(model, raw, norm)
    with tempfile.TemporaryDirectory(prefix="unet-seg-bioimageio-") as scratch:
        files = _write_files(model, Path(scratch), raw, output, norm, torchscript)
        descr = _describe(model, files, raw, norm, authors=authors or ("unknown",), license=license)
        if is_zip_name(folder):  # one file, as bioimage.io uploads and shares packages
            packed = _save_zip(descr, Path(scratch) / "package.zip")
            with atomic_path(folder) as tmp:
                shutil.copyfile(packed, tmp)
        else:
            with atomic_path(folder) as tmp:
                _save_package(descr, tmp)
    return folder


def is_zip_name(path: Path) -> bool:
    """A package output named ``*.zip`` is written as one zip file; any other name as a folder."""
    return path.suffix.lower() == ".zip"


def check_package_folder(folder: Path, *, overwrite: bool) -> None:
    """Refuse a ``folder`` the export would replace unless it is an earlier package and ``overwrite`` says so.

    The package replaces the whole folder, so "--overwrite" on a folder of the
    user's own files would delete them; only an empty folder, or an earlier
    export (an ``rdf.yaml`` and the files it lists, nothing else), is replaced.
    """
    if not folder.exists() and not folder.is_symlink():
        return
    if not overwrite:
        raise ExportError(f"{folder} already exists; choose another {'name' if is_zip_name(folder) else 'folder'} "
                          "or pass --overwrite")
    if is_zip_name(folder):
        if not folder.is_file() or not is_bioimageio_package(folder):
            raise ExportError(f"{folder} exists and is not a bioimage.io package zip: choose another name")
        return
    if not folder.is_dir():
        raise ExportError(f"{folder} exists and is not a folder")
    if any(folder.iterdir()) and not (folder / "rdf.yaml").is_file():
        raise ExportError(f"{folder} holds files that are not a bioimage.io package (no rdf.yaml), and exporting "
                          "replaces the whole folder: choose another folder")
    listed = _package_files(folder)
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in listed)
    if foreign:  # the user's notes beside an earlier package would go with it
        raise ExportError(f"{folder} holds {foreign[0]}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}"
                          ", which the earlier package does not list, and exporting replaces the whole folder: move "
                          "it or choose another folder")


def _package_files(folder: Path) -> set[str]:
    """``rdf.yaml`` and every file of ``folder`` it names: the files an earlier export wrote."""
    import yaml

    try:
        record = yaml.safe_load((folder / "rdf.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {"rdf.yaml"}
    names: set[str] = {"rdf.yaml"}
    stack = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and "/" not in item and (folder / item).is_file():
            names.add(item)
    return names


def _check_license(license: str) -> None:
    try:
        from bioimageio.spec.model.v0_5 import LicenseId
    except ImportError:
        raise ExportError(INSTALL_HINT) from None
    try:
        LicenseId(license)
    except ValueError:
        raise ExportError(f"{license!r} is not an SPDX licence identifier bioimage.io accepts "
                          "(e.g. CC-BY-4.0, MIT)") from None


def _write_files(model: Model, scratch: Path, raw: np.ndarray, output: np.ndarray,
                 norm: ExportedNormalization, torchscript: bool) -> dict[str, Path]:
    """Every file the package refers to, written into ``scratch``."""
    name = model.metadata.get("name") or model.name
    files = {
        "weights": scratch / WEIGHTS_FILE,
        "architecture": scratch / ARCHITECTURE_FILE,
        "input": scratch / "test_input.npy",
        "output": scratch / "test_output.npy",
        "sample_input": scratch / "sample_input.tif",
        "sample_output": scratch / "sample_output.tif",
        "cover": scratch / "cover.png",
        "documentation": scratch / "README.md",
    }
    with exclusive(model.net):
        state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in model.net.state_dict().items()}
    torch.save(state, files["weights"])
    if torchscript:
        files["torchscript"] = scratch / TORCHSCRIPT_FILE
        try:
            save_torchscript(model.net, raw.shape, files["torchscript"])
        except ValueError as exc:
            raise ExportError(f"{model.name}: {exc}; export without TorchScript (--no-torchscript)") from None
    shutil.copyfile(unet.__file__, files["architecture"])
    np.save(files["input"], raw)
    np.save(files["output"], output)
    tifffile.imwrite(files["sample_input"], raw)
    tifffile.imwrite(files["sample_output"], output)
    files["cover"].write_bytes(_cover(raw, output, norm, _uses_softmax(model)))
    files["model"] = save_model(model, scratch / f"{name}.safetensors")
    metadata = {**model.metadata, "name": name}
    files["documentation"].write_text(documentation(
        metadata, norm, model_file=files["model"].name, weights_file=WEIGHTS_FILE,
        architecture_file=ARCHITECTURE_FILE, torchscript_file=TORCHSCRIPT_FILE if torchscript else None),
        encoding="utf-8")
    return files


def _cover(raw: np.ndarray, output: np.ndarray, norm: ExportedNormalization, softmax: bool) -> bytes:
    """A 2:1 PNG: the normalised test input (first channel) beside the probability of an object."""
    import imagecodecs

    image = fit_normalization(raw[0], norm.settings()).apply(raw[0])[0]
    objects = 1.0 - output[0, 0] if softmax else output[0, 0]  # softmax: not background; else the foreground
    both = np.concatenate([np.clip(image, 0, 1), np.clip(objects, 0, 1)], axis=1)
    return imagecodecs.png_encode((both * 255).round().astype(np.uint8))


def _describe(model: Model, files: dict[str, Path], raw: np.ndarray, norm: ExportedNormalization, *,
              authors: tuple[str, ...], license: str) -> Any:
    """The bioimage.io ModelDescr of the files (validated by bioimageio.spec on construction)."""
    from bioimageio.spec.model import v0_5 as spec

    net = model.net
    step, low = net.size_multiple, min_side(net)
    space = [spec.SpaceInputAxis(id=spec.AxisId(a), size=spec.ParameterizedSize(min=low, step=step)) for a in "yx"]
    input_tensor = spec.InputTensorDescr(
        id=spec.TensorId("raw"),
        description="one 2D image, before normalisation",
        axes=[spec.BatchAxis(),
              spec.ChannelAxis(channel_names=[f"channel{i}" for i in range(model.in_channels)]), *space],
        test_tensor=spec.FileDescr(source=files["input"]),
        sample_tensor=spec.FileDescr(source=files["sample_input"]),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[_operation(spec, op, kwargs) for op, kwargs in norm.operations()],
    )
    output_tensor = spec.OutputTensorDescr(
        id=spec.TensorId("probabilities"),
        description=", ".join(channel_names(model)) + " probabilities",
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=channel_names(model)),
              *[spec.SpaceOutputAxisWithHalo(id=spec.AxisId(a), halo=halo(net),
                                            size=spec.SizeReference(tensor_id=spec.TensorId("raw"),
                                                                    axis_id=spec.AxisId(a))) for a in "yx"]],
        test_tensor=spec.FileDescr(source=files["output"]),
        sample_tensor=spec.FileDescr(source=files["sample_output"]),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[spec.SoftmaxDescr(kwargs=spec.SoftmaxKwargs(axis=spec.AxisId("channel")))
                        if _uses_softmax(model) else spec.SigmoidDescr()],
    )
    pytorch_version = spec.Version(torch.__version__.split("+")[0])
    entries = {"pytorch_state_dict": spec.PytorchStateDictWeightsDescr(
        source=files["weights"],
        architecture=spec.ArchitectureFromFileDescr(source=files["architecture"], callable=spec.Identifier("UNet"),
                                                    kwargs=net.config()),
        pytorch_version=pytorch_version,
    )}
    if "torchscript" in files:  # an entry given as None would still be written, as `torchscript: null`
        entries["torchscript"] = spec.TorchscriptWeightsDescr(
            source=files["torchscript"], parent="pytorch_state_dict", pytorch_version=pytorch_version,
            comment="torch.jit.trace of the network in eval mode, BatchNorm folded into the convolutions")
    weights = spec.WeightsDescr(**entries)
    task = "instance-segmentation" if model.task == "instances" else "semantic-segmentation"
    metadata = model.metadata
    return spec.ModelDescr(
        name=package_name(files["model"].stem),
        description=(metadata.get("description") or f"U-Net {task} model trained with napari-unet-seg")[:1024],
        authors=[spec.Author(name=name) for name in authors],
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in citations(metadata)],
        license=spec.LicenseId(license),
        documentation=spec.FileDescr(source=files["documentation"]),
        covers=[spec.FileDescr(source=files["cover"])],
        attachments=[spec.FileDescr(source=files["model"])],
        tags=["unet", "2d", "pytorch", "segmentation", task, "napari-unet-seg"],
        inputs=[input_tensor],
        outputs=[output_tensor],
        weights=weights,
    )


def citations(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, DOI) to cite: the U-Net paper, then what the model file records (the data a built-in model learnt
    from, kept through fine-tunes and imports); entries without both a text and a DOI are passed over."""
    recorded = metadata.get("cite") if isinstance(metadata.get("cite"), list) else []
    found = [(str(c["text"]), str(c["doi"])) for c in recorded
             if isinstance(c, dict) and c.get("text") and isinstance(c.get("doi"), str) and c["doi"].startswith("10.")]
    return list(dict.fromkeys([UNET_CITATION, *found]))


def package_name(name: str) -> str:
    """bioimage.io's name rules: 5 to 128 of letters, digits, ``_+-()`` and spaces."""
    allowed = set(string.ascii_letters + string.digits + "_+-() ")
    cleaned = "".join(c if c in allowed else "-" for c in name).strip()[:100]
    return cleaned if len(cleaned) >= 5 else f"{cleaned} U-Net".strip()


def _operation(spec: Any, op: str, kwargs: dict[str, Any]) -> Any:
    if op == "ensure_dtype":
        return spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(**kwargs))
    if op == "scale_range":
        return spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
            axes=[spec.AxisId(a) for a in kwargs.pop("axes")], **kwargs))
    if op == "scale_linear":
        return spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(**kwargs))
    raise ValueError(f"no bioimage.io operation {op!r}")


def _save_zip(descr: Any, path: Path) -> Path:
    from bioimageio.spec import save_bioimageio_package

    return Path(save_bioimageio_package(descr, output_path=path))


def _save_package(descr: Any, folder: Path) -> None:
    from bioimageio.spec import save_bioimageio_package_as_folder

    save_bioimageio_package_as_folder(descr, output_path=folder)
