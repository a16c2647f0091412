"""Quality-control pictures of a batch: each file's outlines over its image, and one page to look at them all.

A batch of hundreds of files is checked by eye faster than by opening each
in napari: ``OUTDIR/qc/<output>.png`` shows the objects' outlines (yellow;
cells cyan; a class output's regions tinted) over the image, and
``OUTDIR/qc/index.html`` puts every file's picture beside its counts, with a
bar chart of objects per file where an empty or failed file stands out.
Pictures are at most :data:`LONGEST_SIDE` px (a large image is read with a
stride, never whole), the middle plane of a stack.
"""

from __future__ import annotations

import datetime
import html
import math
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..common.atomic import atomic_path
from ..common.errors import first_line
from ..common.file_names import file_stem, resolved

QC_FOLDER = "qc"
INDEX_NAME = "index.html"
MARKER = "<!-- napari-unet-seg batch QC -->"  # the index's first line: ours, so a rerun may replace it
LONGEST_SIDE = 1024  # px of a picture: enough to see every outline of a field of view, small enough for a page
SMALLEST_SIDE = 512  # px: small images are enlarged (whole pixels) so their outlines can be seen
OBJECTS = (255, 215, 0)  # yellow outlines: seen on gray and on most stains
CELLS = (0, 200, 255)  # cyan: cells around the nuclei
CLASS_TINTS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))
TINT_NAMES = ("red", "green", "blue", "orange", "purple", "cyan")  # the tints as the QC page names them


class SummaryRow(Protocol):
    """What the page reads of a summary row (:class:`~.files.FileResult`, which imports this module)."""

    file: str
    status: str
    objects: int
    mean_area: float
    message: str
    output: str


def qc_picture_path(target: Path, outdir: Path) -> Path:
    """``OUTDIR/qc/<output's path under OUTDIR>.png``: one picture per output, subfolders mirrored."""
    target, outdir = resolved(Path(target)), resolved(Path(outdir))
    try:
        relative = target.relative_to(outdir)
    except ValueError:
        relative = Path(target.name)
    name = file_stem(relative.name) + ".png"
    return outdir / QC_FOLDER / relative.parent / name


def is_qc_folder(path: Path, outdir: Path) -> bool:
    """This batch's QC folder, or an earlier batch's (its page is ours): pictures, never images to segment."""
    path = Path(path)
    return resolved(path) == resolved(Path(outdir)) / QC_FOLDER or \
        (path.name == QC_FOLDER and is_qc_index(path / INDEX_NAME))


def write_qc_picture(path: Path, image: Any, labels: Any, *, rgb: bool = False, channel_axis: int | None = None,
                     cells: Any = None, classes: bool = False) -> str:
    """Write the picture of one output; a note for the summary row ("" when written). Never raises.

    ``image`` is the file's pixels as read ((H, W), RGB, channels at
    ``channel_axis``, stacks in front); ``labels`` the output (objects, or
    classes when ``classes``), ``cells`` the cells grown from the objects.
    """
    try:
        Path(path).unlink(missing_ok=True)  # an earlier run's picture never passes for this one's
        picture = qc_picture(image, labels, rgb=rgb, channel_axis=channel_axis, cells=cells, classes=classes)
        _write_png(path, picture)
    except Exception as exc:  # noqa: BLE001 - the labels are written; a picture that cannot be made is a note
        return f"no QC picture: {first_line(exc)}"
    return ""


def qc_picture(image: Any, labels: Any, *, rgb: bool = False, channel_axis: int | None = None, cells: Any = None,
               classes: bool = False) -> np.ndarray:
    """(h, w, 3) uint8: the middle plane of ``image`` in gray (or its colours), the outlines drawn over it."""
    from skimage.segmentation import find_boundaries

    plane_shape = tuple(int(s) for s in labels.shape[-2:])
    stride = max(1, math.ceil(max(plane_shape) / LONGEST_SIDE))
    enlarge = max(1, SMALLEST_SIDE // max(plane_shape)) if stride == 1 else 1
    lab = _enlarged(_middle_plane(labels, 2, stride), enlarge)
    background = _enlarged(_background(image, rgb, channel_axis, stride), enlarge)
    picture = background[: lab.shape[0], : lab.shape[1]].copy()
    if classes:
        for k in np.unique(lab[lab > 0]):  # each class's regions tinted, outlined in the same colour
            tint = np.array(CLASS_TINTS[(int(k) - 1) % len(CLASS_TINTS)], np.float32)
            inside = lab == k
            picture[inside] = (0.6 * picture[inside] + 0.4 * tint).astype(np.uint8)
            picture[find_boundaries(inside, mode="inner")] = tint.astype(np.uint8)
        return picture
    if cells is not None:
        picture[find_boundaries(_enlarged(_middle_plane(cells, 2, stride), enlarge), mode="inner")] = CELLS
    picture[find_boundaries(lab, mode="inner")] = OBJECTS
    return picture


def _middle_plane(array: Any, plane_ndim: int, stride: int) -> np.ndarray:
    """The middle plane of a stack (every leading axis at its middle), read with ``stride``: never whole."""
    lead = tuple(int(s) // 2 for s in array.shape[: array.ndim - plane_ndim])
    window = (slice(None, None, stride), slice(None, None, stride)) + (slice(None),) * (plane_ndim - 2)
    return np.asarray(array[lead + window])


def _background(image: Any, rgb: bool, channel_axis: int | None, stride: int) -> np.ndarray:
    """(h, w, 3) uint8: colours as they are, channels each stretched and mixed into gray, gray stretched."""
    if rgb:
        plane = _middle_plane(image, 3, stride)[..., :3].astype(np.float32)
        return _stretch(plane).astype(np.uint8)
    if channel_axis is not None:
        moved = np.moveaxis(np.asarray(_middle_channels(image, channel_axis, stride)), 0, -1)
        gray = np.mean([_stretch(moved[..., c].astype(np.float32)) for c in range(moved.shape[-1])], axis=0)
    else:
        gray = _stretch(_middle_plane(image, 2, stride).astype(np.float32))
    return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)


def _middle_channels(image: Any, channel_axis: int, stride: int) -> np.ndarray:
    """The (C, h, w) planes of the middle of a stack of multichannel planes."""
    axis = channel_axis % image.ndim
    lead = tuple(int(s) // 2 for s in image.shape[:axis])
    return np.asarray(image[lead + (slice(None), slice(None, None, stride), slice(None, None, stride))])


def _stretch(values: np.ndarray) -> np.ndarray:
    """0-255 from the 1st to the 99.8th percentile (as Segment normalises), NaN as 0."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.zeros(values.shape, np.float32)
    low, high = np.percentile(finite, [1, 99.8])
    scaled = (np.nan_to_num(values, nan=low) - low) / max(float(high - low), 1e-12)
    return np.clip(scaled * 255, 0, 255)


def _enlarged(plane: np.ndarray, factor: int) -> np.ndarray:
    return plane if factor == 1 else np.repeat(np.repeat(plane, factor, axis=0), factor, axis=1)


def _write_png(path: Path, picture: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")


def qc_page(outdir: str | os.PathLike) -> Path | None:
    """The batch's QC page in ``outdir`` when there is one of ours (None: no QC, or the name is the user's)."""
    path = Path(outdir) / QC_FOLDER / INDEX_NAME
    return path if is_qc_index(path) else None


def pictures_of(results: Sequence[SummaryRow], outdir: str | os.PathLike) -> bool:
    """Whether any of ``results`` has its QC picture on disk: a page of none (a full disk) is not offered."""
    return any(qc_picture_path(Path(r.output), Path(outdir)).exists() for r in results if r.output)


def is_qc_index(path: Path) -> bool:
    """Whether ``path`` is a QC page this package wrote (its first line is our marker)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() == MARKER
    except (OSError, UnicodeDecodeError):
        return False


def write_qc_index(outdir: str | os.PathLike, rows: Sequence[SummaryRow], *, title: str = "") -> Path | None:
    """``OUTDIR/qc/index.html``: every file's picture, counts and message, and a chart of objects per file.

    ``rows`` are the summary's (:class:`~.files.FileResult`). A page of that
    name that unet-seg did not write is kept (None is returned).
    """
    outdir = Path(outdir).resolve()
    path = outdir / QC_FOLDER / INDEX_NAME
    if path.exists() and not is_qc_index(path):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(_page(outdir, list(rows), title), encoding="utf-8")
    return path


def is_class_output(output: str) -> bool:
    """Whether an output is a class map (``<stem>_classes.tif``): it counts no objects, and 0 would say none found."""
    return file_stem(Path(output).name).endswith("_classes") if output else False


def _classes(row: SummaryRow) -> bool:
    """A class output's row: it counts no objects, and that is not a file where nothing was found."""
    return is_class_output(row.output)


SHARES = "class map: "  # how a class map's row message starts: each class's share of the pixels (files.class_shares)


def split_shares(message: str) -> tuple[str, str]:
    """A row's message as (a class map's shares, without ``SHARES``; its other notes): ("", message) for others."""
    if not message.startswith(SHARES):
        return "", message
    shares, _, rest = message.removeprefix(SHARES).partition("; ")
    return shares, rest


def _page(outdir: Path, rows: list[SummaryRow], title: str) -> str:
    ok = [r for r in rows if r.status == "ok"]
    failed = [r for r in rows if r.status == "failed"]
    empty = [r for r in ok if not r.objects and not _classes(r)]
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    heading = html.escape(title or f"Batch QC: {outdir.name}")
    maps = sum(_classes(r) for r in ok)  # class maps count no objects: "0 objects in all" would say none found
    counts = f"{len(rows)} files: {len(ok)} segmented or kept, {len(failed)} failed"
    if maps < len(ok) or not ok:
        counts += f", {len(empty)} with no objects; {sum(r.objects for r in ok if not _classes(r))} objects in all"
    if maps:
        counts += f"; {maps} class map{'s' if maps > 1 else ''} (a class per pixel)"
    cards = "\n".join(_card(outdir, r) for r in rows)
    return f"""{MARKER}
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; background: #262930; color: #eee; }}
a {{ color: #8cf; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }}
.card {{ background: #363a43; padding: 6px; border-radius: 4px; font-size: 13px; overflow-wrap: anywhere; }}
.card img {{ width: 100%; image-rendering: pixelated; display: block; }}
.failed {{ outline: 2px solid #e6194b; }}
.empty {{ outline: 2px solid #f58231; }}
.message {{ color: #bbb; }}
svg text {{ fill: #eee; font-size: 11px; }}
</style></head><body>
<h1>{heading}</h1>
<p>{html.escape(counts)}. Outlines: objects yellow, cells cyan; a class output's regions tinted; a stack or
time-lapse shows its middle plane (every axis before the image's at its middle). Made {when} by
napari-unet-seg from <code>{html.escape(str(outdir))}</code>; click a picture to see it whole.</p>
{_chart(rows)}
<div class="grid">
{cards}
</div>
</body></html>
"""


def _card(outdir: Path, row: SummaryRow) -> str:
    name = html.escape(Path(row.file).name)
    picture = qc_picture_path(Path(row.output), outdir) if row.output else None
    image = "<i>no picture (made without QC pictures, or it could not be drawn)</i><br>" if row.output else ""
    if picture is not None and picture.exists():  # a link: '#', '?' and '%' in a name are a URL's, not the file's
        link = html.escape(urllib.parse.quote(picture.relative_to(outdir / QC_FOLDER).as_posix()))
        image = f'<a href="{link}"><img src="{link}" alt="outlines over {name}" loading="lazy"></a>'
    classes = _classes(row)
    kind = "failed" if row.status == "failed" else "empty" if row.status == "ok" and not row.objects and not classes \
        else ""
    shares, said = split_shares(row.message) if classes else ("", row.message)  # shares with "a class map", once
    figures = html.escape(f"a class map ({shares})" if shares else "a class map" if classes
                          else f"{row.objects} objects, mean area {row.mean_area:g} px" if row.status == "ok"
                          else row.status)
    message = f'<div class="message">{html.escape(said)}</div>' if said else ""
    return f'<div class="card {kind}" title="{html.escape(row.file)}">{image}<b>{name}</b><br>{figures}{message}</div>'


def _chart(rows: list[SummaryRow]) -> str:
    """A bar per file (objects), in the page's order: a file far from the rest is seen at a glance."""
    if not rows:
        return "<p>No files.</p>"
    if all(_classes(r) for r in rows if r.status == "ok") and any(r.status == "ok" for r in rows):
        tints = ", ".join(f"{colour} for class {k}" for k, colour in enumerate(TINT_NAMES, start=1))
        return (f"<p>Class maps count no objects, so there is no chart of objects: each picture tints its classes "
                f"({tints}; background clear) and says each class's share of the pixels.</p>")
    height, bar, gap, left = 160, 14, 2, 36
    top = max([r.objects for r in rows] + [1])
    width = left + len(rows) * (bar + gap) + 10
    bars = []
    for i, row in enumerate(rows):
        h = 0 if row.status != "ok" else round(row.objects / top * (height - 20))
        colour = "#e6194b" if row.status == "failed" else "#888888" if _classes(row) else \
            "#f58231" if not row.objects else "#ffd700"
        x = left + i * (bar + gap)
        said = row.status if row.status != "ok" else "a class map" if _classes(row) else f"{row.objects} objects"
        tip = html.escape(f"{Path(row.file).name}: {said}")
        bars.append(f'<rect x="{x}" y="{height - h - 2}" width="{bar}" height="{max(h, 2)}" fill="{colour}">'
                    f"<title>{tip}</title></rect>")
    return (f'<svg width="{width}" height="{height + 4}" role="img" aria-label="objects per file">'
            f'<text x="0" y="12">{top}</text><text x="0" y="{height - 2}">0</text>'
            f'<line x1="{left - 4}" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>'
            + "".join(bars) + "</svg><p>Objects per file (orange: none found, red: failed, grey: a class map).</p>")
