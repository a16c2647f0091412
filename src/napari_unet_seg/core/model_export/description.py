"""A package's model description (spec 0.4 or 0.5), validated by bioimageio.spec, as plain data for an import.

bioimageio.spec checks the description offline (``perform_io_checks=False``:
nothing is downloaded, no file is hashed); its validated form is then dumped
to JSON-like data and read here, so the rest of the import handles one shape
for both spec versions. Nothing the package holds is run: its Python source
is only named, never read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ..common.errors import first_line
from .package import ImportRefused, PackageFiles

INSTALL_HINT = "bioimage.io import needs bioimageio.spec: pip install 'napari-unet-seg[bioimageio]'"
AXIS_LETTERS = {"b": "batch", "c": "channel", "x": "space", "y": "space", "z": "space", "t": "time", "i": "index"}


@dataclass(frozen=True)
class PackageDescription:
    """What an import needs from a model description.

    ``weights`` is the pytorch_state_dict entry's file, None without one: the
    only format read, since TorchScript and the like run code on loading.
    """

    name: str
    description: str
    authors: tuple[str, ...]
    license: str
    format_version: str
    weight_formats: tuple[str, ...]
    weights: str | None
    weights_sha256: str | None
    architecture: str  # what the network is, in words: "UNet from unet.py", "monai.networks.nets.UNet"
    callable: str
    library: str | None  # the module a library architecture comes from; None: a file in the package
    kwargs: dict[str, Any]
    input_axes: tuple[str, ...]  # axis types in order: batch, channel, space, time, index
    output_axes: tuple[str, ...]
    output_channel_names: tuple[str, ...] | None  # spec 0.5 names them; 0.4 does not
    preprocessing: tuple[tuple[str, dict[str, Any]], ...]
    postprocessing: tuple[tuple[str, dict[str, Any]], ...]
    test_input: str
    test_output: str
    attachments: tuple[str, ...]


def check_installed() -> None:
    """Refuse in one line, before any work, when bioimageio.spec (the optional extra) is missing."""
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise ImportRefused(INSTALL_HINT) from None


def read_description(files: PackageFiles) -> PackageDescription:
    """Validate the package's description and read what an import needs; one-line :class:`ImportRefused` if unusable."""
    from bioimageio.spec import InvalidDescr, ValidationContext, build_description
    from bioimageio.spec.utils import read_yaml

    where = f"its {files.description_name}"
    try:
        content = read_yaml(io.BytesIO(files.description()))
    except ImportRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure on someone else's file is one line
        raise ImportRefused(f"{where} is not readable YAML: {first_line(exc, 200)}") from None
    if not isinstance(content, dict):
        raise ImportRefused(f"{where} is not a bioimage.io description (no YAML mapping)")
    context = ValidationContext(root=files.root, perform_io_checks=False, log_warnings=False,
                                file_name=files.description_name)
    try:
        descr = build_description(content, context=context, format_version="discover")
    except Exception as exc:  # noqa: BLE001 - bioimageio.spec on a malformed description: one line
        raise ImportRefused(f"{where} cannot be read as a bioimage.io description: {first_line(exc, 200)}") from None
    if isinstance(descr, InvalidDescr):
        raise ImportRefused(f"{where} is not a valid bioimage.io description ({_first_error(descr)})")
    if descr.type != "model":
        raise ImportRefused(f"it is a bioimage.io {descr.type}, not a model")
    try:
        return _plain(descr.model_dump(mode="json", exclude_none=True))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:  # valid, yet not what any U-Net package has
        raise ImportRefused(f"{where} lacks what a model package needs ({type(exc).__name__}: {exc})") from None


def _first_error(descr: Any) -> str:
    for detail in descr.validation_summary.details:
        for error in detail.errors:
            loc = ".".join(map(str, error.loc)) or "description"
            return f"{loc}: {first_line(Exception(error.msg), 200)}"
    return "no details given"


def _plain(data: dict[str, Any]) -> PackageDescription:
    """Both spec versions' dumps -> one :class:`PackageDescription`."""
    v04 = str(data.get("format_version", "")).startswith("0.4")
    weights = data.get("weights", {})
    state_dict = weights.get("pytorch_state_dict") or {}
    architecture, callable_, library = _architecture(state_dict, v04)
    inputs, outputs = data.get("inputs", []), data.get("outputs", [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ImportRefused(f"its network has {len(inputs)} input(s) and {len(outputs)} output(s); napari-unet-seg's "
                            "U-Net has one of each")
    source = "name" if v04 else "id"
    return PackageDescription(
        name=str(data.get("name", "")),
        description=str(data.get("description", "")),
        authors=tuple(str(a.get("name", "")) for a in data.get("authors", []) if isinstance(a, dict)),
        license=str(data.get("license", "")),
        format_version=str(data.get("format_version", "")),
        weight_formats=tuple(sorted(weights)),
        weights=state_dict.get("source") if state_dict else None,
        weights_sha256=state_dict.get("sha256"),
        architecture=architecture,
        callable=callable_,
        library=library,
        kwargs=dict(state_dict.get("kwargs", {}) if v04 else (state_dict.get("architecture") or {}).get("kwargs", {})),
        input_axes=_axes(inputs[0]["axes"]),
        output_axes=_axes(outputs[0]["axes"]),
        output_channel_names=_channel_names(outputs[0]["axes"]),
        preprocessing=tuple((op[source], dict(op.get("kwargs", {}))) for op in inputs[0].get("preprocessing", [])),
        postprocessing=tuple((op[source], dict(op.get("kwargs", {}))) for op in outputs[0].get("postprocessing", [])),
        test_input=data["test_inputs"][0] if v04 else inputs[0]["test_tensor"]["source"],
        test_output=data["test_outputs"][0] if v04 else outputs[0]["test_tensor"]["source"],
        attachments=tuple(_attachments(data.get("attachments"), v04)),
    )


def _architecture(state_dict: dict[str, Any], v04: bool) -> tuple[str, str, str | None]:
    """(the architecture in words, its callable's name, its library module or None for a file in the package)."""
    arch = state_dict.get("architecture")
    if not arch:
        return "none", "", None
    if v04:  # "file.py:Name" or "package.module.Name"
        if ":" in arch:
            file, name = arch.rsplit(":", 1)
            return f"{name} from {file}", name, None
        module, _, name = arch.rpartition(".")
        return arch, name, module
    if "import_from" in arch:
        return f"{arch['import_from']}.{arch['callable']}", arch["callable"], arch["import_from"]
    return f"{arch['callable']} from {arch['source']}", arch["callable"], None


def _axes(axes: Any) -> tuple[str, ...]:
    if isinstance(axes, str):  # spec 0.4: "bcyx"
        return tuple(AXIS_LETTERS.get(letter, letter) for letter in axes)
    return tuple(str(axis.get("type")) for axis in axes)


def _channel_names(axes: Any) -> tuple[str, ...] | None:
    if isinstance(axes, str):
        return None
    for axis in axes:
        if axis.get("type") == "channel":
            return tuple(map(str, axis.get("channel_names", []))) or None
    return None


def _attachments(attachments: Any, v04: bool) -> list[str]:
    if not attachments:
        return []
    if v04:  # {"files": [source, ...]}
        return [str(f) for f in attachments.get("files", [])]
    return [str(a["source"]) for a in attachments if isinstance(a, dict) and "source" in a]
