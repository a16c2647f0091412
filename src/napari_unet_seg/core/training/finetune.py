"""Fine-tuning as users ask for it, shared by the Train widget and ``unet-seg train``.

Pick a starting model (built-in, user model or scratch), check the annotations
against it (:mod:`.checks`), hold out part of the annotation for validation
when there is enough (:mod:`.split`), train with defaults that need no tuning
(:mod:`.loop`), check the result for the classic failure (predicts nothing or
everything) and write the lineage into the model's metadata (:mod:`.lineage`).
Saving is left to the caller, which knows where (:mod:`.naming`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..common.errors import first_line
from ..inference.object_size import rescale_factor
from ..inference.options import RunOptions
from ..inference.prediction import pipeline_diameter, prepare
from ..measure.classes import check_class_names
from ..model.modelfile import Model, new_model
from ..model.registry import cached_model, load_model
from .augment import AugmentConfig
from .checks import (annotation_warnings, check_pairs, image_warnings, sanity_check, unpainted_class_ids,
                     unpainted_classes)
from .data import PreparedPair, TrainingPair
from .evaluation import (
    SCORE_NAMES, evaluate_pairs, main_score, main_score_name, replay_check_score, replay_scores, score_groups,
)
from .lineage import record_lineage
from .loop import StepReport, TrainConfig, TrainResult, train
from .naming import save_checkpoint
from .split import split_validation
from .tuning import FitStep, Tuning, annotation_to_fit, tune_postprocess

SCRATCH_NAMES = ("none", "scratch", "")


def is_scratch(init: str | Path | None) -> bool:
    """True when ``init`` asks for a new model rather than a named or file model."""
    return init is None or str(init).strip().lower() in SCRATCH_NAMES


ENCODER_PREFIXES = ("down.", "bottleneck.")


def private_copy(name_or_path: str | Path) -> Model:
    """A copy of a named or file model that training may change (:func:`load_model` gives one)."""
    return load_model(name_or_path)


def copy_encoder(model: Model, source: Model) -> int:
    """Copy the encoder (contracting path and bottleneck) of ``source`` where names and shapes match.

    A new class model then starts from features learned on real microscopy
    instead of random ones; its decoder and output layer start fresh.
    Returns the number of tensors copied (0 when the architectures differ).
    """
    own = model.net.state_dict()
    borrowed = {k: v for k, v in source.net.state_dict().items()
                if k.startswith(ENCODER_PREFIXES) and k in own and own[k].shape == v.shape}
    if len(borrowed) < sum(k.startswith(ENCODER_PREFIXES) for k in own):
        return 0  # a partial encoder would mix learned and random layers: all or nothing
    model.net.load_state_dict(borrowed, strict=False)
    model.metadata.setdefault("training", {})["encoder_from"] = source.name
    _credit_encoder(model.metadata, source)
    return len(borrowed)


def _credit_encoder(metadata: dict, source: Model) -> None:
    """A model built on another's encoder credits its makers (not as its own authors), keeps its licence and
    cites what it cites: the features it starts from were learnt from that data."""
    theirs = source.metadata
    makers = theirs.get("authors") or theirs.get("parent_authors") or []
    if isinstance(makers, list) and makers:
        metadata["parent_authors"] = [str(a) for a in makers]
    if isinstance(theirs.get("cite"), list):
        metadata["cite"] = copy.deepcopy(theirs["cite"])
    if isinstance(theirs.get("license"), str) and theirs["license"]:
        metadata["license"] = theirs["license"]
    by = f" (by {', '.join(metadata['parent_authors'])})" if metadata.get("parent_authors") else ""
    metadata["description"] = f"Trained with napari-unet-seg on the encoder of '{source.name}'{by}."


def starting_model(
    init: str | Path | None, *, task: str = "instances", classes: int | None = None,
    depth: int = 4, width: int = 16, in_channels: int = 1, encoder: str | Path | None = None,
    class_names: Sequence[str] = (),
) -> Model:
    """A private copy of a named/file model, or a new one when ``init`` is none.

    A new model takes the encoder of ``encoder`` (e.g. the built-in
    ``nuclei``) when its architecture matches; None starts all from random.
    ``class_names`` name a new class model's classes 1, 2... (the rest are
    "class k"); more names than classes raise ``ValueError``.
    """
    if not is_scratch(init):
        return private_copy(init)
    names = None
    if task == "semantic" and class_names:
        check_class_names(class_names)
        count = (classes or 2) - 1
        if len(class_names) > count:
            raise ValueError(f"{len(class_names)} class names ({', '.join(class_names)}) for {count} class(es): "
                             "paint the others, or name fewer")
        names = ["background", *class_names, *(f"class {k}" for k in range(len(class_names) + 1, count + 1))]
    model = new_model(task, in_channels=in_channels, num_classes=classes, depth=depth, base_channels=width,
                      class_names=names)
    if encoder is not None and not is_scratch(encoder):
        copy_encoder(model, cached_model(encoder))
    return model


def default_config(*, scratch: bool, task: str, scribbles: bool = False, max_steps: int | None = None,
                   max_seconds: float | None = 110.0) -> TrainConfig:
    """Settings that work without tuning: gentle for fine-tuning, brisk from scratch."""
    if task == "instances":
        augment = AugmentConfig(scale_range=(0.5, 2.0) if scratch else (0.7, 1.4))
    else:
        augment = AugmentConfig(scale_range=(0.8, 1.25), dim_objects=False, texture=False)
    # fine-tuning looks first where the starting model was wrong (half the crops, errors weigh 3x): on five
    # domains, 120 s each, the mean AP50 gain went from +0.038 to +0.049 (benchmarks/RESULTS.md)
    focus = not scratch and task == "instances"
    # BatchNorm keeps the statistics learnt from many images: adapting them to a few crops of one image made
    # other images of a mixed domain worse (stained, a third annotated: 0.465 -> 0.393 AP50; frozen: 0.486).
    # Small steps: at 5e-4 no tissue-section checkpoint beat the parent on the other tissue images and one
    # that was worse got through; at 2e-4 no cell of the judge study got worse and the mean AP50 gain went
    # +0.050 -> +0.057 (20 cells; 1e-3 and 2e-3 were no better than 5e-4; benchmarks/RESULTS.md)
    return TrainConfig(
        max_steps=max_steps or 5000, max_seconds=max_seconds, crop_size=256 if task == "instances" else 192,
        batch_size=4, learning_rate=3e-3 if scratch else 2e-4, scribbles=scribbles, augment=augment,
        eval_every=40, eval_initial=not scratch, focus_errors=0.5 if focus else 0.0,
        error_weight=3.0 if focus else 1.0, freeze_batchnorm=focus,
    )


def at_pipeline_scale(model: Model, pairs: Sequence[TrainingPair], diameter: float | None = None,
                      cancel: Callable[[], bool] | None = None) -> list[TrainingPair]:
    """The pairs with the object diameter the pipeline would resize each image for (measured by ``model``).

    Training then shows the network objects at the size Segment shows them,
    and scores what Segment gives (see :class:`~.data.PreparedPair`).
    """
    options = RunOptions(diameter=diameter)
    out = []
    for pair in pairs:
        if pair.diameter is None:
            pair = replace(pair, diameter=pipeline_diameter(model, prepare(model, pair.image, rgb=pair.rgb), options,
                                                            cancel=cancel))
        out.append(pair)
    return out


class CheckpointWriter:
    """Saves checkpoints best-effort: a full disk must not throw the training itself away."""

    def __init__(self, model: Model, path: Path) -> None:
        self.model, self.path, self.failure = model, path, ""

    def __call__(self, state: dict) -> None:
        if self.failure:
            return
        try:
            save_checkpoint(self.model, state, path=self.path)
        except OSError as exc:
            self.failure = f"checkpoints could not be written to {self.path} ({first_line(exc)}); training went on"


@dataclass
class FinetuneResult:
    """A trained model (best weights, lineage recorded) plus what the user should know about it.

    ``scores`` are the final model's (post-processing fitted included);
    ``parent_scores`` are the starting weights' scores on the same held-out
    annotation (None when trained from scratch or nothing was held out);
    ``improved`` says whether the kept weights beat them (compared before any
    post-processing was fitted to that annotation, so the comparison is fair);
    ``tuning`` is the post-processing search, when one ran; ``judge`` the
    held-out score that decided (``TrainConfig.judge``).
    """

    model: Model
    train: TrainResult
    scores: dict[str, float]
    held_out: bool  # False: scores are on the training data itself
    warnings: list[str] = field(default_factory=list)
    parent_scores: dict[str, float] | None = None
    tuning: Tuning | None = None
    judge: str = "ap50_90"
    unlearnt_classes: list[str] = field(default_factory=list)  # classes of a class model annotated nowhere
    doubtful_labels: list[str] = field(default_factory=list)  # images whose labels look like another image's

    @property
    def cancelled(self) -> bool:
        """True when ``cancel()`` stopped training early: the model holds the best weights scored until then."""
        return bool(self.train.cancelled)

    @property
    def improved(self) -> bool | None:
        """True when fine-tuning beat the starting weights on held-out annotation; None when unknown."""
        if self.parent_scores is None or not self.held_out or self.train.best_scores is None:
            return None
        return self.train.best_scores.get("step", 0) > 0  # trained weights only replace the parent's if better

    @property
    def worth_using(self) -> bool:
        """Whether Segment should switch to the new model: trained weights that won, or the parent's weights
        with post-processing fitted to the annotation (a clear gain on 40+ objects), or no judge at all.

        Only a model that is the parent unchanged gives the user nothing; the
        fitted settings lifted the domain's other images in the benchmarks
        (tissue sections 0.690 -> 0.779, stained 0.465 -> 0.502).
        """
        if self.improved is None and self.unlearnt_classes:
            return False  # nothing to compare with, and a class it cannot find: it must not replace a model in use
        if self.improved is None and self.train.cancelled:
            return False  # stopped early with nothing to judge it by (a 1-step model after a Cancel): the user decides
        if self.doubtful_labels:
            return False  # judged (and fitted) on labels that may be another image's: the user decides
        return self.improved is not False or (self.tuning is not None and self.tuning.changed)

    @property
    def tied(self) -> bool:
        """True when the trained weights replaced the parent's on a perfect tie (:func:`.loop.perfect_tie`)."""
        if not self.improved:
            return False
        return not main_score(self.train.best_scores, self.judge) > main_score(self.parent_scores, self.judge)

    def history_record(self, parent: str) -> dict:
        """What a project's model history keeps of this run (the Train widget and ``unet-seg train`` alike)."""
        fitted = self.tuning is not None and self.tuning.changed
        # each round holds out its own part: the parent's score there is the one a row can be compared with
        parents = {f"parent_{k}": v for k, v in (self.parent_scores or {}).items() if k in SCORE_NAMES}
        return {"steps": self.train.steps, "parent": parent, "improved": self.improved,
                **({"tied": True} if self.tied else {}), **({"fitted": True} if fitted else {}),
                "held_out": self.held_out, **self.scores, **parents}

    def score_text(self) -> str:
        """The scores for people: "AP50-90 0.702, AP50 0.812, Dice 0.901 (earlier corrections: ...)"."""
        def named(scores: dict[str, float]) -> str:
            shown = [f"{SCORE_NAMES[k]} {v:.3f}" for k, v in scores.items() if k in SCORE_NAMES]
            if "wrong_objects" in scores:
                shown.append(f"{scores['wrong_objects']:.0f} object(s) wrong")
            return ", ".join(shown)

        earlier = replay_scores(self.scores)
        return named(self.scores) + (f" (earlier corrections: {named(earlier)})" if earlier else "")

    def focus_text(self) -> str | None:
        """What the error focus found, for people; None when it did not run."""
        found = self.train.errors_found
        if found is None:
            return None
        if found == 0:
            return "the starting model got no annotated object wrong"
        # not the held-out figures above (the new model's, on part of it): said so, or they read as a contradiction
        where = ("in the part of your annotation it trained on (the held-out part aside)" if self.held_out
                 else "across your annotation")
        return f"before training, the starting model got {found} object(s) wrong {where}; training looked there first"

    def verdict(self, parent: str) -> str | None:
        """One sentence comparing the result with the model it started from, for people; None when unknown."""
        if self.improved is None:
            return None
        best, first = self.train.best_scores, self.parent_scores
        metric = main_score_name(first, self.judge)
        new, old = main_score(best, self.judge), main_score(first, self.judge)
        ap50 = metric != "AP50" and "ap50" in first  # said beside: AP50 may tie or drop while outlines fit better
        earlier_old = replay_scores(first)
        if not self.improved and self.train.forgot:
            text = (f"better than '{parent}' on the new annotation but worse on earlier corrections (forgetting): "
                    f"its weights were kept; train longer so it learns both")
        elif not self.improved:
            trained = self.best_trained_scores()
            if trained is None:
                text = (f"no trained weights were scored before training stopped, so the weights of '{parent}' were kept "
                        f"({metric} {old:.3f} on the held-out annotation); train longer")
            else:
                text = (f"the trained weights were not better than '{parent}' on the held-out annotation (the best, "
                        f"step {trained['step']:.0f}: {metric} {main_score(trained, self.judge):.3f} vs {old:.3f}"
                        + (f", AP50 {trained['ap50']:.3f} vs {first['ap50']:.3f}" if ap50 and "ap50" in trained else "")
                        + f"), so the new model keeps the weights of '{parent}'; annotate more, or train longer")
        elif self.tied:
            text = (f"as good as '{parent}' on the held-out annotation, which both get entirely right ({metric} "
                    f"{new:.3f}): too easy a part to tell them apart, so the weights that learnt your corrections "
                    "were kept; annotate a harder part to check them")
        else:
            text = (f"better than '{parent}' on the held-out annotation: {metric} {new:.3f} vs {old:.3f} "
                    f"({new - old:+.3f})" + (f", AP50 {best['ap50']:.3f} vs {first['ap50']:.3f}" if ap50 else "")
                    # the pixel overlap beside: the objects may be found better and their outlines fit worse
                    + (f", Dice {best['dice']:.3f} vs {first['dice']:.3f}" if "dice" in best and "dice" in first
                       and metric != "Dice" else ""))
        if self.improved and earlier_old:
            earlier_new = replay_check_score(replay_scores(best))
            text += (f"; and no worse on earlier corrections ({main_score_name(earlier_old, 'ap50')} "
                     f"{earlier_new:.3f} vs {replay_check_score(earlier_old):.3f})")
        if self.tuning is not None and self.tuning.steps:
            # the comparison is of the weights with the settings they had; the headline is after fitting
            text += "; then (the figures above are from before it) post-processing was fitted to your annotation: "
            text += "; ".join(
                _fit_step_text(step, earlier=bool(earlier_old)) for step in self.tuning.steps)
            final = main_score(self.scores, self.judge)
            if earlier_old and self.held_out and final < old:  # fitted to every annotation: this one may lose
                text += (f"; on this round's held-out part alone the new model scores {metric} {final:.3f} vs "
                         f"{old:.3f} for '{parent}': the settings suit all your annotations together better, "
                         "this one less")
        return text

    def best_trained_scores(self) -> dict[str, float] | None:
        """The held-out scores of the best trained checkpoint (step > 0) by the judge; None if none was scored."""
        scored = [h for h in self.train.history if h.get("step", 0) > 0 and {"ap50", "mean_iou"} & h.keys()]
        return max(scored, key=lambda h: main_score(h, self.judge), default=None)

    def scores_where(self) -> str:
        """What :meth:`score_text`'s scores were measured on, for people."""
        if not self.held_out:
            return "the training images (too little annotation to hold any out)"
        if self.tuning is not None and any(step.on == "held-out" for step in self.tuning.steps):
            return "the held-out annotation (post-processing fitted to it, so on the optimistic side)"
        return "the held-out annotation"


def _fit_step_text(step: FitStep, earlier: bool = False) -> str:
    """One fitted post-processing step for people: what changed, and AP50 before -> after where it was fitted.

    ``earlier``: earlier rounds' corrections were part of it, so the figures are not the headline's
    (which is this round's held-out part alone).
    """
    parts = []
    for name, value in step.changed.items():
        if name == "min_brightness":
            parts.append(f"objects dimmer than {value:g} on the 0-1 normalised scale left out, as you left them out")
        else:
            parts.append(f"{name.replace('_', ' ')} {value:g}")
    where = "all of your annotation" if step.on == "all" else "the held-out part"
    if earlier:
        where = "all of your annotations, this round's and earlier" if step.on == "all" else \
            "the held-out parts of this round's and earlier annotations"
    return f"{', '.join(parts)} (AP50 on {where} {step.before:.3f} -> {step.after:.3f})"


def finetune(
    model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool = False, config: TrainConfig | None = None,
    base: str = "scratch", progress: Callable[[StepReport], None] | None = None,
    cancel: Callable[[], bool] | None = None, preview: Callable[[Model], None] | None = None,
    diameter: float | None = None, fit_postprocess: bool = True, checkpoint_to: str | Path | None = None,
    status: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Check, bring to the pipeline's scale, split, train, fit post-processing, score, sanity-check, record.

    ``model`` is trained in place. ``diameter`` is the objects' size in the
    training images (None: measured, as Segment does). ``fit_postprocess``
    fits the instance settings to the annotation (:mod:`.tuning`: brightness, and
    outlines when the parent's weights are kept, on all of it; seeds on the held-out part).
    ``checkpoint_to`` is a file that receives the best weights so far every
    ``config.checkpoint_every`` seconds (a crash loses at most that much); the
    caller removes it once the final model is saved. ``status(text)`` says
    what happens after the last step (fitting post-processing and checking
    the model take seconds, on a big annotation half a minute). ``warn(text)``
    receives what is known to be wrong before the first step (a class painted
    nowhere, a blank image, labels that seem to be another image's), so the
    user can stop at once rather than learn it minutes later; the result's
    ``warnings`` hold them too. ``progress(report)`` receives a :class:`~.loop.StepReport`
    after every step. ``cancel()`` returning True stops training at the next step: it
    does not raise, the result is complete (best weights so far, post-processing fitted)
    and says ``cancelled``. Bad annotations raise :class:`~.checks.UnusableAnnotation`
    (a ``ValueError``) with one line saying what to fix.
    """
    check_pairs(model, pairs, scribbles=scribbles)
    if config is None:
        config = default_config(scratch=base == "scratch", task=model.task, scribbles=scribbles)
    config = replace(config, scribbles=scribbles)
    pairs = at_pipeline_scale(model, pairs, diameter, cancel)
    early = [w for pair in pairs for w in image_warnings(model, pair)]
    doubted = {pair.name or "an image": said for pair in pairs[:8] if not scribbles
               and (said := annotation_warnings(model, pair))}
    early += [w for said in doubted.values() for w in said]
    # only this round's labels keep the model out of use: an earlier release may have saved doubtful ones
    doubtful = [p.name or "an image" for p in pairs[:8] if not p.replay and (p.name or "an image") in doubted]
    unlearnt = [model.class_names[k] for k in unpainted_class_ids(model, pairs, scribbles=scribbles)]
    early += unpainted_classes(model, pairs, scribbles=scribbles)
    for warning in early if warn is not None else ():
        warn(warning)
    scales = [rescale_factor(model, p.diameter) if p.diameter else 1.0 for p in pairs]
    train_pairs, val_pairs = split_validation(pairs, scribbles=scribbles, scales=scales)
    checkpoint = None if checkpoint_to is None else CheckpointWriter(model, Path(checkpoint_to))
    result = train(model, train_pairs, config, val_pairs=val_pairs, progress=progress, cancel=cancel, preview=preview,
                   checkpoint=checkpoint)
    if val_pairs and result.best_scores is not None:
        scores, held_out = {k: v for k, v in result.best_scores.items() if k != "step"}, True
    else:
        scores, held_out = evaluate_pairs(model, train_pairs, scribbles=scribbles), False
    tuning = None
    if result.cancelled and held_out and fit_postprocess and model.task == "instances":
        fit_postprocess = False  # Cancel means stop now: fitting takes seconds, up to half a minute on a big annotation
        cancelled_note = ["training was cancelled, so post-processing was not fitted to your annotation; "
                          "train again to fit it"]
    else:
        cancelled_note = []
    if held_out and fit_postprocess and model.task == "instances":
        if status is not None:
            status("fitting post-processing to your annotation...")
        held = [PreparedPair(p, model) for p in val_pairs]  # normalised and resized once, for both
        annotation = [PreparedPair(p, model) for p in annotation_to_fit(pairs, scales)]  # whole: strip and the rest
        kept_parent = not (result.best_scores or {}).get("step", 0)  # the annotation taught these weights nothing
        tuning = tune_postprocess(model, held, annotation=annotation, parent_weights=kept_parent,
                                  device=config.device, precision=config.precision)
        if tuning is not None and tuning.changed:
            model.metadata["postprocess"] = tuning.settings
            scores = score_groups(model, held, device=config.device, precision=config.precision,
                                  scribbles=scribbles)  # latest and earlier apart
    warnings = early + cancelled_note + sanity_check(model, train_pairs[:4], scribbles=scribbles)
    if result.stopped_because:
        warnings.insert(0, result.stopped_because)
    if checkpoint is not None and checkpoint.failure:
        warnings.append(checkpoint.failure)
    parent = next((h for h in result.history if h.get("step") == 0 and "loss" not in h), None)
    parent_scores = None if parent is None else {k: v for k, v in parent.items() if k not in ("step", "seconds")}
    record_lineage(model, base=base, pairs=pairs, result=result, scores=scores, held_out=held_out,
                   config=config, scribbles=scribbles, parent_scores=parent_scores, tuning=tuning)
    return FinetuneResult(model, result, scores, held_out, warnings, parent_scores, tuning, config.judge,
                          unlearnt_classes=unlearnt, doubtful_labels=doubtful)
