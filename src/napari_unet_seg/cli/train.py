"""``unet-seg train``: fine-tune (or train from scratch) on annotated images, into one model file."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.batch.files import with_channels
from ..core.common.atomic import check_writable_folder
from ..core.common.errors import first_line
from ..core.imageio import ImageReadError, read_image, untouched_output
from ..core.inference.options import RunOptions
from ..core.inference.provenance import read_provenance
from ..core.model.modelfile import ModelFileError, ModelInfo
from ..core.model.registry import resolve_model_path, user_model_dir
from ..core.training.checks import UnusableAnnotation, check_pairs, classes_called_for
from ..core.training.data import TrainingPair, input_channels
from ..core.training.evaluation import main_score_name
from ..core.training.finetune import default_config, finetune, is_scratch, starting_model
from ..core.training.loop import StepReport
from ..core.training.naming import (
    checkpoint_path, model_file_path, path_in_folder, save_trained_somewhere, starting_label,
)
from ..core.training.project import INDEX, Project
from ..core.training.saving import save_round
from .errors import UserError, require_positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="fine-tune a model on annotated images (or train one from scratch)",
        description=(
            "Train on pairs of image and label files. Instance labels: one id per object, 0 = background. "
            "Semantic labels: class ids, 0 = background. With --scribbles: 0 = not annotated, 1 = background, "
            "v = class v-1. A multi-page TIFF stack trains on every slice that has annotation. Part of the "
            "annotation is held out to pick the best checkpoint when there is enough of it."
        ),
    )
    parser.add_argument("--image", action="append", required=True, metavar="IMG",
                        help="an image file (TIFF, PNG, JPEG); repeat for more images")
    parser.add_argument("--labels", action="append", required=True, metavar="LBL",
                        help="the label file of the image at the same position; repeat for more")
    parser.add_argument("--mask", action="append", default=None, metavar="VALID_MASK",
                        help="annotated region of the image at the same position (nonzero = annotated, the rest "
                             "is ignored); give one per image or none")
    parser.add_argument("--channel", type=int, default=None, metavar="K",
                        help="train on channel K (from 0) of multichannel or colour images alone, e.g. the nuclear "
                             "stain, as `unet-seg predict --channel K` reads them (default: every channel the model "
                             "takes; a new model takes as many as the images have)")
    parser.add_argument("--scribbles", action="store_true",
                        help="sparse semantic labels: 0 = not annotated, 1 = background, v = class v-1")
    parser.add_argument("--init", default=None, metavar="nuclei|PATH|none",
                        help="start from a model name or file, or 'none' for a new model (default: 'nuclei', "
                             "or 'none' with --scribbles or --classes)")
    parser.add_argument("--classes", type=int, default=None, metavar="N",
                        help="train a semantic model with N classes, background included (default with "
                             "--scribbles: the largest label value)")
    parser.add_argument("--class-names", default=None, metavar="NAME,NAME,...",
                        help="names of a new class model's classes 1, 2... (scribble values 2, 3...), shown by "
                             "Segment, Measurements and QuPath (default: class 1, class 2...)")
    parser.add_argument("--depth", type=int, default=None, metavar="D", help="U-Net depth of a new model (default 4)")
    parser.add_argument("--width", type=int, default=None, metavar="W",
                        help="channels of a new model's first level (default 16)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N steps (default 5000)")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="stop training after S seconds (default 110, so that all is done within 2 minutes; "
                             "none when only --max-steps is given)")
    parser.add_argument("--encoder", default="nuclei", metavar="NAME|PATH|none",
                        help="a new model (--init none) starts with this model's trained encoder when their "
                             "architectures match (default: the built-in 'nuclei'); 'none' starts from random weights")
    parser.add_argument("--diameter", type=float, default=None, metavar="PX",
                        help="typical object diameter in the training images, in pixels: they are resized to the "
                             "model's object size exactly as `unet-seg predict` resizes images (default: measured, "
                             "as predict does)")
    parser.add_argument("--checkpoint-every", type=float, default=None, metavar="S",
                        help="save the best weights so far every S seconds while training, so that a crash loses "
                             "at most that much (default 30)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="processes that make training crops ahead, for training on a GPU, where making them "
                             "(not the network) limits the speed; the crops are the same with any N (default 0)")
    parser.add_argument("--project", default=None, metavar="DIR",
                        help="a project folder (as the Train widget's): these pairs are saved into it, training "
                             "learns from all its pairs of this kind, and the earlier rounds' corrections also judge "
                             "that the new model forgets nothing")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_FILE",
                        help="the .safetensors model file to write (never overwritten)")
    parser.set_defaults(run=run)


def _read(path: str) -> tuple[np.ndarray, bool, bool]:
    try:
        image = read_image(path)
    except ImageReadError as exc:
        raise UserError(str(exc)) from None
    return np.asarray(image.data), image.rgb, image.stack


def _read_image(path: str, channel: int | None, in_channels: int | None) -> tuple[np.ndarray, bool, bool, bool]:
    """(data, rgb, stack, multichannel): an image file as `unet-seg predict` reads it. Its planes are (C, H, W)
    when the file says they are channels (ImageJ's CYX, two channels last) or the model takes that many channels;
    ``channel`` keeps one channel of a multichannel or colour image, as ``--channel`` does for predict."""
    try:
        image = read_image(path)
    except ImageReadError as exc:
        raise UserError(str(exc)) from None
    planes = int(image.data.shape[0]) if np.ndim(image.data) == 3 else 0
    said_channels = str(image.metadata.get("axes") or "").upper()[:1] == "C"
    image = with_channels(image, RunOptions(channel=channel), in_channels or (planes if said_channels else 1))
    data, multichannel = np.asarray(image.data), image.channel_axis is not None
    if channel is None:
        return data, image.rgb, data.ndim == (4 if multichannel or image.rgb else 3), multichannel
    if not (multichannel or image.rgb):
        raise UserError(f"{path} has one channel: train on it without --channel")
    count = data.shape[-3] if multichannel else data.shape[-1]
    if channel >= count:
        raise UserError(f"--channel {channel}: {path} has {count} channels (0 to {count - 1})")
    data = data[..., channel, :, :] if multichannel else data[..., channel]
    return data, False, data.ndim == 3, False


def _refuse_an_untouched_output(path: str, labels: np.ndarray, scribbles: bool) -> None:
    """unet-seg's own output is no annotation until corrected (it would teach the model its own mistakes), and
    never scribbles (its ids are objects or classes with 0 = background), as the Train dock says too."""
    try:
        record = read_provenance(path)
    except Exception:  # noqa: BLE001 - a file without a readable record is the user's: nothing to refuse
        return
    if not isinstance(record, dict) or "model" not in record:
        return
    if scribbles:
        raise UserError(f"{path} is unet-seg's output, not scribbles: paint scribbles in a file of their own "
                        "(1 = background, 2 = first class...), or correct the output and train on it without "
                        "--scribbles")
    if untouched_output(labels, record):
        raise UserError(f"{path} is unet-seg's output exactly as it came out: correct it first (in napari: paint "
                        "the missed objects, erase the wrong ones, save it), then train on it")


def load_pairs(images: list[str], labels: list[str], masks: list[str] | None, *, scribbles: bool,
               channel: int | None = None, in_channels: int | None = None) -> list[TrainingPair]:
    """Files -> training pairs (stacks give one pair per annotated slice), with one-line errors.

    Images are read as `unet-seg predict` reads them (:func:`_read_image`):
    ``channel`` alone, or (C, H, W) planes for a model of ``in_channels``.
    """
    if len(images) != len(labels):
        raise UserError(f"{len(images)} --image but {len(labels)} --labels: give one label file per image")
    if masks is not None and len(masks) != len(images):
        raise UserError(f"{len(masks)} --mask for {len(images)} --image: give one mask per image, or none")
    pairs = []
    for i, (image_path, label_path) in enumerate(zip(images, labels)):
        image, rgb, stack, multichannel = _read_image(image_path, channel, in_channels)
        lab, _, _ = _read(label_path)
        _refuse_an_untouched_output(label_path, lab, scribbles)
        valid = None if masks is None else _read(masks[i])[0] > 0
        plane = image.shape[:-1] if rgb else (image.shape[:-3] + image.shape[-2:] if multichannel else image.shape)
        if lab.shape != plane and stack and lab.shape == plane[-2:] and channel is None:
            # a multichannel image read as planes (its channels unsaid): the labels are of one plane
            raise UserError(f"{image_path} holds {int(np.prod(plane[:-2]))} planes of {lab.shape} and {label_path} is "
                            "one: if they are channels, choose the nuclear one with --channel K (counted from 0)")
        if lab.shape != plane:
            raise UserError(f"{label_path} has shape {lab.shape} but {image_path} is {plane}: they must match")
        if valid is not None and valid.shape != lab.shape:
            raise UserError(f"{masks[i]} has shape {valid.shape} but {label_path} is {lab.shape}: they must match")
        if not np.issubdtype(lab.dtype, np.integer) and lab.dtype != bool:
            raise UserError(f"{label_path} holds {lab.dtype} values; labels must be integers")
        name = Path(image_path).stem
        if not stack:
            pairs.append(TrainingPair(image, lab, valid, rgb=rgb, name=name))
            continue
        for z in range(image.shape[0]):
            region = np.ones(lab.shape[1:], bool) if valid is None else valid[z]
            annotated = region & (lab[z] > 0) if scribbles else region
            if annotated.any() and (scribbles or valid is not None or lab[z].any()):
                pairs.append(TrainingPair(image[z], lab[z], None if valid is None else valid[z], rgb=rgb,
                                          name=f"{name}[{z}]"))
    return pairs


def _project_model(project: str | None) -> str | None:
    """The objects model in use of ``project`` (the one napari's docks start on), if it has one whose file is there:
    a round from the command line continues the loop, as a round in the Train dock does."""
    if project is None or not (Path(project) / INDEX).is_file():
        return None
    try:
        path, moved_from = Project(project).locate_in_use()
        if path is not None and moved_from is not None:
            print(f"project {project}: its model in use, '{moved_from.stem}', is now {path} (renamed or moved): the "
                  "project follows it", flush=True)
        return str(path) if path is not None and ModelInfo.of(path).task == "instances" else None
    except (ValueError, OSError, ModelFileError):
        return None  # a damaged project or model is said where it is used


def run(args: argparse.Namespace) -> int:
    if Path(args.output).is_dir():  # "-o models/" meant a folder: a file beside it would surprise
        raise UserError(f"{args.output} is a folder; give the model file's name, e.g. "
                        f"{Path(args.output) / 'my-model.safetensors'}")
    output = model_file_path(args.output)
    if output.exists():
        raise UserError(f"{output} already exists; choose another name (model files are never overwritten)")
    if Path(args.output).suffix and output.name != Path(args.output).name:  # model.pt: say so, not silently
        print(f"unet-seg train: note: model files are safetensors (never pickles): writing {output.name}",
              file=sys.stderr)
    check_writable_folder(output.parent)  # before training, not after
    # the Train dock's ranges: a depth of 50 would halve the image 50 times and fill the memory before one step
    for name, (low, high) in {"classes": (2, 255), "depth": (1, 6), "width": (2, 128), "max_steps": (1, None)}.items():
        value = getattr(args, name)
        flag = f"--{name.replace('_', '-')}"
        if value is not None and value < low:
            raise UserError(f"{flag} must be at least {low}, not {value}")
        if value is not None and high is not None and value > high:
            raise UserError(f"{flag} must be from {low} to {high}, not {value}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise UserError(f"--max-seconds must be positive, not {args.max_seconds}")
    require_positive(args.diameter, "--diameter")
    require_positive(args.checkpoint_every, "--checkpoint-every")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, not {args.workers}")
    init = args.init or ("none" if args.scribbles or args.classes else _project_model(args.project) or "nuclei")
    if args.init is None and init != "nuclei" and not is_scratch(init):
        print(f"starting from project {args.project}'s model in use, {Path(init).stem} (as the Train dock does; "
              "--init nuclei starts from the built-in model)", flush=True)
    scratch = is_scratch(init)
    if not scratch and (args.depth is not None or args.width is not None):
        raise UserError("--depth and --width describe a new model; use them with --init none")
    if args.channel is not None and args.channel < 0:
        raise UserError(f"--channel counts from 0, so {args.channel} is no channel")
    in_channels = None if scratch else ModelInfo.of(resolve_model_path(init)).in_channels
    pairs = load_pairs(args.image, args.labels, args.mask, scribbles=args.scribbles, channel=args.channel,
                       in_channels=in_channels)
    if not pairs:
        raise UserError("the label files contain no annotation")
    semantic = args.scribbles or args.classes is not None
    classes = args.classes
    if scratch and semantic and classes is None:
        try:
            classes = classes_called_for(pairs, scribbles=args.scribbles)
        except UnusableAnnotation as exc:
            raise UserError(str(exc)) from None
    channels = input_channels(pairs[0])
    names = tuple(name.strip() for name in (args.class_names or "").split(",") if name.strip())
    if args.class_names is not None and not (scratch and semantic):
        raise UserError("--class-names names the classes of a new class model: use it with --scribbles or "
                        "--classes and --init none")
    try:
        model = starting_model(init, task="semantic" if semantic else "instances", classes=classes,
                               depth=args.depth or 4, width=args.width or 16, in_channels=channels,
                               encoder=args.encoder, class_names=names)
    except ValueError as exc:
        if not names:
            raise
        raise UserError(f"--class-names: {exc}") from None
    if not scratch and classes is not None and classes != len(model.class_names):
        raise UserError(f"--classes {classes} does not match the {len(model.class_names)} classes of {init}")
    try:  # before anything is printed or saved: an unusable annotation must not reach the project
        check_pairs(model, pairs, scribbles=args.scribbles, require_objects=args.project is None)
    except UnusableAnnotation as exc:
        raise UserError(str(exc)) from None
    project = None
    if args.project is not None:
        check_writable_folder(Path(args.project))
        try:
            project = Project(args.project)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        in_use_at_start = project.recorded_in_use(model.task)  # what this round is judged against, in effect
        try:
            saved = save_round(project, model, pairs, scribbles=args.scribbles)
        except UnusableAnnotation as exc:
            raise UserError(str(exc)) from None
        this_round = len(pairs)
        pairs = saved.pairs
        for problem in [*project.unreadable, *filter(None, [saved.unsaved_note()])]:
            print(f"unet-seg train: warning: {problem}", file=sys.stderr, flush=True)
        if len(pairs) > this_round:
            print(f"project {args.project}: training on {len(pairs)} pair(s), {len(pairs) - this_round} of them "
                  "from earlier rounds", flush=True)
    max_seconds = args.max_seconds if args.max_seconds is not None else (None if args.max_steps else 110.0)
    config = default_config(scratch=scratch, task=model.task, scribbles=args.scribbles,
                            max_steps=args.max_steps, max_seconds=max_seconds)
    if args.checkpoint_every is not None:
        config = replace(config, checkpoint_every=args.checkpoint_every)
    config = replace(config, workers=args.workers)
    base = "scratch" if scratch else starting_label(init)  # as the user named it, not the name inside the file

    def report(r: StepReport) -> None:
        if r.step % 25 == 0 or r.val_score is not None:
            parent = f", parent {r.parent_score:.3f}" if r.parent_score is not None else ""
            score = (f", held-out {main_score_name(r.scores or {})} {r.val_score:.3f} (best {r.best_score:.3f}{parent})"
                     if r.val_score is not None else "")
            left = f", ~{r.seconds_left:.0f} s left" if r.seconds_left is not None else ""
            print(f"step {r.step}: loss {r.loss:.4f}{score}{left}", flush=True)

    kind = f"semantic, {len(model.class_names)} classes" if model.task == "semantic" else "instances"
    if scratch:
        borrowed = model.metadata.get("training", {}).get("encoder_from")
        kind += f", encoder from '{borrowed}'" if borrowed else ", random start"
    checkpoint = checkpoint_path(output)
    shown = "a new model" if scratch else base
    print(f"training {shown} ({kind}) on {len(pairs)} image(s); until it ends, the best weights so far are saved "
          f"every {config.checkpoint_every:g} s in {checkpoint.name}", flush=True)
    warned: list[str] = []  # said before the first step, while Ctrl+C still saves minutes

    def warn(text: str) -> None:
        warned.append(text)
        print(f"unet-seg train: warning: {text}", file=sys.stderr, flush=True)

    try:
        result = finetune(model, pairs, scribbles=args.scribbles, config=config, base=base, progress=report,
                          diameter=args.diameter, checkpoint_to=checkpoint, status=lambda text: print(text, flush=True),
                          warn=warn)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl+C: the checkpoint is the training so far; say where it is
        if checkpoint.is_file():
            print(f"unet-seg train: interrupted; the best weights so far are kept in {checkpoint} (a model file: "
                  "use it with --model or --init, or rename it)", file=sys.stderr)
            return 130
        raise
    try:  # the folder changed under us (disk full, unmounted): the model is kept all the same, elsewhere
        path, notes = save_trained_somewhere(model, [output, path_in_folder(user_model_dir(), output.stem, base)])
    except OSError as exc:
        raise UserError(str(exc)) from None
    for note in notes:
        print(f"unet-seg train: warning: {note}", file=sys.stderr)
    steps = f"{result.train.steps} step{'' if result.train.steps == 1 else 's'}"
    print(f"saved {path} after {steps} in {result.train.seconds:.0f} s; {result.score_text()} "
          f"on {result.scores_where()}")
    checkpoint.unlink(missing_ok=True)  # the final model replaces it (this run's checkpoint only)
    if project is not None:
        try:
            parent = "scratch" if scratch else str(Path(init).absolute()) if Path(init).is_file() else init
            project.record_model(path, result.history_record(parent))  # a file's path absolute, as the rows
            if result.worth_using and project.set_in_use_if(path, in_use_at_start):  # as the Train dock does
                print(f"it is now the model in use of project {args.project}: napari's Segment, Train and Batch "
                      "docks on that project start on it")
            elif result.worth_using:
                now = project.recorded_in_use(model.task)
                print(f"it is not made the model in use of project {args.project}: "
                      f"'{Path(now).stem if now else 'nuclei'}' was put in use there while this round trained "
                      f"(in napari?), and this round was not compared with it; use this one with --model {path}")
            elif result.doubtful_labels:
                print(f"it is not made the model in use of project {args.project}: the labels of "
                      f"{', '.join(result.doubtful_labels)} look like another image's")
        except OSError as exc:
            print(f"unet-seg train: warning: the project folder could not be written ({first_line(exc)}): {path} "
                  "is saved, but not in the project's history", file=sys.stderr)
    verdict = result.verdict(base)
    if verdict:
        print(verdict[0].upper() + verdict[1:])
    focus = result.focus_text()
    if focus:
        print(focus[0].upper() + focus[1:])
    for warning in result.warnings:
        if warning not in warned:
            print(f"unet-seg train: warning: {warning}", file=sys.stderr)
    return 0
