"""A model's history in its own file: what it was trained from, on what, for how long, how well."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..inference.object_size import rescale_factor
from ..model.modelfile import Model
from .data import TrainingPair
from .loop import TrainConfig, TrainResult
from .tuning import Tuning


def record_lineage(model: Model, *, base: str, pairs: Sequence[TrainingPair], result: TrainResult,
                   scores: dict[str, float], held_out: bool, config: TrainConfig, scribbles: bool,
                   parent_scores: dict[str, float] | None = None, tuning: Tuning | None = None) -> None:
    """Append this training run to the model's lineage: base model, data and its scale, steps, scores."""
    data = []
    for pair in pairs:
        labels = np.asarray(pair.labels)
        annotated = np.ones(labels.shape, bool) if pair.valid is None else np.asarray(pair.valid) > 0
        if scribbles:
            annotated &= labels > 0
        data.append({"name": pair.name, "shape": list(labels.shape), "annotated_pixels": int(annotated.sum()),
                     "object_diameter": pair.diameter,
                     "scale": round(rescale_factor(model, pair.diameter), 4) if pair.diameter else 1.0})
    run: dict[str, Any] = {
        "base": base,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "scribbles" if scribbles else ("region" if any(p.valid is not None for p in pairs) else "dense"),
        "data": data,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "cancelled": result.cancelled,
        "starting_model_errors": result.errors_found,
        "turned_down_for_forgetting": result.forgot,
        "scores": {k: round(float(v), 4) for k, v in scores.items()},
        "scores_on": "held-out annotation" if held_out else "training data",
        "parent_scores": None if parent_scores is None else {k: round(float(v), 4) for k, v in parent_scores.items()},
        # "parent": no trained weights beat the starting ones on the held-out annotation, so those were kept
        "kept_weights": None if parent_scores is None or not held_out else (
            "trained" if (result.best_scores or {}).get("step", 0) else "parent"),
        "postprocess_fitted": None if tuning is None else {
            "on": "the annotation (brightness, and outlines when the parent's weights were kept: all of it; "
                  "seeds: held-out part)",
            "ap50_before": round(tuning.before, 4), "ap50_after": round(tuning.after, 4),
            "changed": tuning.changed, "settings": tuning.settings,
            "steps": [{"changed": step.changed, "on": step.on, "ap50_before": round(step.before, 4),
                       "ap50_after": round(step.after, 4)} for step in tuning.steps]},
        "config": {"learning_rate": config.learning_rate, "crop_size": config.crop_size,
                   "batch_size": config.batch_size, "max_steps": config.max_steps, "max_seconds": config.max_seconds,
                   "focus_errors": config.focus_errors, "error_weight": config.error_weight},
    }
    model.metadata["lineage"] = list(model.metadata.get("lineage", [])) + [run]
    if base != "scratch":  # a package or a colleague reads what the model now is, not its parent's description
        origin = model.metadata.setdefault("origin_description", model.metadata.get("description") or "")
        # the parent's makers made the parent, not this model: they are credited as such, the new one's are asked for
        makers = model.metadata.pop("authors", None)
        if isinstance(makers, list) and makers:
            model.metadata.setdefault("parent_authors", [str(a) for a in makers])
        parent_by = model.metadata.get("parent_authors") or []
        by = f" (by {', '.join(parent_by)})" if parent_by else ""
        names = ", ".join(d["name"] for d in data[:3] if d["name"]) + (", ..." if len(data) > 3 else "")
        where = f" ({names})" if names else ""
        model.metadata["description"] = (f"Fine-tuned from '{base}'{by} with napari-unet-seg on {len(data)} "
                                         f"annotated image(s){where}. {origin}").strip()[:1024]
    earlier = model.metadata.get("training", {})
    kept = {k: earlier[k] for k in ("encoder_from",) if isinstance(earlier, dict) and k in earlier}
    model.metadata["training"] = {**kept, **run, "history": [h for h in result.history if len(h) > 3]}
