"""The README.md of an exported bioimage.io package: what the model is, what the package holds, what it leaves out."""

from __future__ import annotations

from typing import Any

from ..inference.postprocess import DEFAULTS
from .mapping import ExportedNormalization, not_mapped


def output_description(metadata: dict[str, Any]) -> list[str]:
    """One line per output channel: what its values mean."""
    if metadata.get("task") == "instances":
        return ["`foreground`: probability that the pixel belongs to an object (sigmoid of the network's logit)",
                "`centre`: the centre map, rising from 0 at an object's edge to 1 in its middle (sigmoid)"]
    names = metadata.get("class_names") or []
    if len(names) == 1:
        return [f"`{names[0]}`: probability of the class (sigmoid)"]
    return [f"`{name}`: probability of the class (softmax over the {len(names)} channels)" for name in names]


def _labels_recipe(metadata: dict[str, Any]) -> str:
    if metadata.get("task") != "instances":
        return "Each pixel's class is the channel with the highest probability (argmax; 0 = background).\n"
    settings = {**DEFAULTS, **metadata.get("postprocess", {})}
    return (
        "napari-unet-seg turns the two maps into labels as follows (its settings for this model in brackets):\n\n"
        f"1. foreground = `foreground > {settings['foreground_threshold']:g}`;\n"
        f"2. smooth the centre map with a gaussian of sigma {settings['smoothing']:g} px;\n"
        f"3. seeds = h-maxima of the smoothed centre map of height {settings['seed_prominence']:g}, inside the "
        "foreground, one per connected group;\n"
        "4. watershed of the negated centre map from the seeds, inside the foreground; foreground pieces without "
        "a seed become objects of their own;\n"
        f"5. drop objects whose smoothed centre map never reaches {settings['min_peak']:g}, "
        + (f"objects whose mean normalised intensity (over channels) is below {settings['min_brightness']:g}, "
           if settings["min_brightness"] > 0 else "")
        + f"and objects smaller than {settings['min_size']:g} px.\n\n"
        "To get exactly napari-unet-seg's labels (with its normalisation, rescaling and tiling), load the "
        "attached `.safetensors` model file in napari-unet-seg (`pip install napari-unet-seg`; "
        "`unet-seg predict --model MODEL.safetensors IMAGES -o OUT`, or the plugin's Segment dock).\n"
    )


def _ordinal(value: float) -> str:
    """1 -> "1st", 2 -> "2nd", 99.8 -> "99.8th": a percentile as people write it."""
    text = f"{value:g}"
    if "." in text or (len(text) > 1 and text[-2] == "1"):
        return f"{text}th"
    return text + {"1": "st", "2": "nd", "3": "rd"}.get(text[-1], "th")


def _scores(metadata: dict[str, Any]) -> str:
    """The held-out score training recorded, if any (labels after napari-unet-seg's own post-processing)."""
    training = metadata.get("training", {})
    score = training.get("best_holdout_ap50")
    scores = training.get("scores")
    held_out = isinstance(scores, dict) and training.get("scores_on") == "held-out annotation"
    if not isinstance(score, (int, float)) and held_out:  # a fine-tune's: its last round, on its held-out part
        score = scores.get("ap50")
    if not isinstance(score, (int, float)) and held_out and isinstance(scores.get("mean_iou"), (int, float)):
        return (f"During training, napari-unet-seg's classes from this model scored a mean IoU of "
                f"{scores['mean_iou']:.3f} on the held-out part of its annotation.")
    if not isinstance(score, (int, float)):
        return "No held-out score was recorded for this model."
    return (f"During training, napari-unet-seg's labels from this model scored AP@0.5 = {score:.3f} on held-out "
            "annotated images (with the full pipeline, including what the package cannot express).")


def _torchscript_line(torchscript_file: str | None) -> list[str]:
    if torchscript_file is None:
        return []
    return [(f"- `{torchscript_file}`: the same network as TorchScript (traced in eval mode, BatchNorm folded "
             "into the convolutions), for runners without Python such as deepImageJ. Like the source, it is code "
             "that runs on loading; napari-unet-seg itself imports only the state dict.")]


def documentation(metadata: dict[str, Any], norm: ExportedNormalization, *, model_file: str,
                  weights_file: str, architecture_file: str, torchscript_file: str | None = None) -> str:
    """Markdown for the package: model, inputs, outputs, the normalisation that maps and every part that does not.

    ``torchscript_file`` names the TorchScript weights when the package carries them.
    """
    name = metadata.get("name", "model")
    lines = [
        f"# {name}",
        "",
        metadata.get("description") or f"A U-Net {metadata.get('task', 'instances')} segmentation model "
                                       "trained with napari-unet-seg.",
        "",
        "## What this package contains",
        "",
        (f"- `{weights_file}`: the weights as a PyTorch state dict (`torch.save` of tensors only; bioimage.io "
        "runners read it with `torch.load(weights_only=True)`)."),
        (f"- `{architecture_file}`: the network's Python source (a classic U-Net, Ronneberger et al. 2015, "
        "with BatchNorm), which a runner imports to rebuild the network. This is code that runs on loading."),
        *_torchscript_line(torchscript_file),
        (f"- `{model_file}`: the same model as a napari-unet-seg model file (safetensors weights plus JSON "
        "metadata, no code), with every setting below and the model's training history."),
        "- a test input and the output expected from it, and a cover image.",
        "",
        "## Input",
        "",
        (f"One 2D image with {metadata.get('input', {}).get('channels', 1)} channel(s), axes batch, channel, y, x. "
        "Height and width must be multiples of the size step given in `rdf.yaml`."),
        "",
        "### Normalisation carried by the package",
        "",
        (f"Per image and channel, the {_ordinal(norm.low)} percentile maps to 0 and the {_ordinal(norm.high)} to 1 "
        f"(`scale_range`){'; then the image is inverted, 1 - x (`scale_linear`)' if norm.invert else ''}."),
        "",
        "### What the package cannot express",
        "",
        *[f"- {note}" for note in not_mapped(metadata, norm.invert)],
        "",
        "## Outputs",
        "",
        *[f"- {line}" for line in output_description(metadata)],
        "",
        "## From maps to labels",
        "",
        _labels_recipe(metadata),
        "## Validation",
        "",
        "The test output was computed by napari-unet-seg itself (its normalisation code and network, on the CPU); "
        "`bioimageio test rdf.yaml` checks that a bioimage.io runner reproduces it from the test input, with "
        "each weights format the package holds. "
        + _scores(metadata),
        "",
        "## Provenance",
        "",
        (f"Exported by napari-unet-seg {metadata.get('package_version', 'unknown')} from the model file "
        f"`{model_file}`; its `napari_unet_seg` metadata holds the training data, settings and lineage."),
        "",
    ]
    return "\n".join(lines)
