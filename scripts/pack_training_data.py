"""Pack the built-in model's training data small enough to carry to a remote GPU machine.

    python scripts/pack_training_data.py --out /tmp/train_data.tar.xz
    python scripts/pack_training_data.py --unpack /tmp/train_data.tar.xz --to /tmp/data   # on the remote machine

Only what ``train_nuclei.py`` trains and chooses checkpoints on travels:
dsb2018's ``train`` split and s-bsst265 without its validation split
(``BSST_VAL``). Never a validation image. Colour images are reduced to gray
here exactly as the pipeline reduces them (``RGB_WEIGHTS``), rounded to
8 bits: a third of the bytes, and at most half a grey level from what
training would see. The 8-bit images travel as lossless WebP (a sixth smaller
than TIFF inside xz; each one decoded and compared while packing), so that
the data and the repository fit one 64 MiB carry. ``--unpack`` writes them
back as TIFF: the two folders are then read by ``train_nuclei.py`` like the
originals (``--data``, ``--extra-data``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import tifffile

from napari_unet_seg.core.inference.preprocess import RGB_WEIGHTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_nuclei import BSST_VAL  # noqa: E402 - the one definition of the split


def gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return np.clip(np.rint(np.tensordot(image[..., :3].astype(np.float32), RGB_WEIGHTS, axes=([-1], [0]))),
                   0, 255).astype(np.uint8)


def add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def webp_bytes(image: np.ndarray) -> bytes:
    """Lossless WebP of an 8-bit gray image (as RGB: WebP has no gray mode), checked by decoding it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).convert("RGB").save(buffer, format="WEBP", lossless=True, quality=100, method=5)
    if not np.array_equal(from_webp(buffer.getvalue()), image):
        raise SystemExit("lossless WebP did not give the image back; pack with --tiff")
    return buffer.getvalue()


def from_webp(payload: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))[..., 0].copy()


def pack(tar: tarfile.TarFile, data: Path, keep, webp: bool) -> int:
    with open(data / "index.csv") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if keep(r)]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    add(tar, f"{data.name}/index.csv", table.getvalue().encode())
    for row in rows:
        image = tifffile.imread(data / "images" / f"{row['name']}.tif")
        if image.ndim == 3 and image.dtype != np.uint8:
            raise SystemExit(f"{row['name']}: only 8-bit colour images are reduced to gray here")
        image = gray(image)
        if webp and image.dtype == np.uint8 and image.ndim == 2:
            add(tar, f"{data.name}/images/{row['name']}.webp", webp_bytes(image))
        else:
            add(tar, f"{data.name}/images/{row['name']}.tif", tiff_bytes(image))
        add(tar, f"{data.name}/labels/{row['name']}.tif", tiff_bytes(tifffile.imread(data / "labels" / f"{row['name']}.tif")))
    return len(rows)


def unpack(archive: Path, to: Path) -> int:
    """Extract a pack, writing WebP images back as the TIFFs ``train_nuclei.py`` reads."""
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile():
                continue
            payload = tar.extractfile(member).read()
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise SystemExit(f"{member.name}: refusing a path outside {to}")
            target = to / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name.suffix == ".webp":
                target = target.with_suffix(".tif")
                payload = tiff_bytes(from_webp(payload))
                count += 1
            target.write_bytes(payload)
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--bsst", type=Path, default=Path("../shared/data/s-bsst265"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tiff", action="store_true", help="images as TIFF, not lossless WebP (needs no Pillow)")
    parser.add_argument("--unpack", type=Path, metavar="PACK", help="extract PACK into --to instead of packing")
    parser.add_argument("--to", type=Path, default=Path("."))
    args = parser.parse_args()
    if args.unpack:
        print(f"{args.to}: {unpack(args.unpack, args.to)} images decoded from WebP")
        return 0
    if args.out is None:
        parser.error("--out is needed to pack")
    with tarfile.open(args.out, "w:xz", preset=9) as tar:
        dsb = pack(tar, args.dsb, lambda r: r["split"] == "train", not args.tiff)
        bsst = pack(tar, args.bsst, lambda r: r["name"] not in BSST_VAL, not args.tiff)
    print(f"{args.out}: {dsb} dsb2018 train + {bsst} s-bsst265 images, {args.out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
