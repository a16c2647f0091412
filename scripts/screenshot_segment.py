"""Refresh the README screenshot of the Segment widget in use.

    xvfb-run -a python scripts/screenshot_segment.py [--out docs/images/segment_widget.png]

Opens napari with the nuclei sample, docks "Segment", presses Segment and
saves the whole window once the labels are in. Uses the built-in ``nuclei``
model when it is installed; otherwise trains a small demo model on the other
shipped samples for ``--train-steps`` steps (in a temporary model folder, so
your own models are untouched). Rerun it once the built-in model ships.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_model_name(train_steps: int) -> str:
    """"nuclei" if shipped, else a quickly trained stand-in saved in the (temporary) user folder."""
    from napari_unet_seg import available_models, new_model, save_model
    from napari_unet_seg._sample_data import MAIN_SAMPLE, _pair, sample_stems
    from napari_unet_seg.core.model.registry import user_model_dir
    from napari_unet_seg.core.training.loop import TrainConfig, train
    from napari_unet_seg.core.training.data import TrainingPair

    if "nuclei" in available_models():
        return "nuclei"
    pairs = [TrainingPair(*_pair(stem), name=stem) for stem in sample_stems() if stem != MAIN_SAMPLE]
    model = new_model("instances", depth=3, base_channels=8)
    print(f"no built-in model yet: training a demo model for {train_steps} steps ...")
    train(model, pairs, TrainConfig(max_steps=train_steps, crop_size=128, eval_every=10**6, eval_initial=False,
                                    preview_every=10**6))
    model.metadata["name"] = "demo (sample-trained)"
    save_model(model, user_model_dir() / "demo")
    return "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "segment_widget.png")
    parser.add_argument("--train-steps", type=int, default=600)
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_UNET_SEG_MODEL_DIR", tempfile.mkdtemp(prefix="unet-seg-screenshot-"))

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet_seg._sample_data import nuclei_sample

    model_name = demo_model_name(args.train_steps)
    viewer = napari.Viewer(title="napari-unet-seg")
    viewer.window.resize(1400, 860)
    for data, kwargs, kind in nuclei_sample():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers["nuclei ground truth"].visible = False
    viewer.layers.selection.active = viewer.layers["nuclei"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    widget.model_picker.combo.setCurrentIndex(widget.model_picker.combo.findText(model_name))
    widget.run()
    deadline = time.monotonic() + 300
    while widget.worker is not None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    labels = viewer.layers["nuclei labels"]
    labels.opacity = 0.6
    viewer.layers.selection.active = labels
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"saved {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
