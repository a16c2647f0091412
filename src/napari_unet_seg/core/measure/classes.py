"""A class per object: the class most of an object's pixels have in a class map.

The class map is a class model's output (0 = background, k = class k) or
regions a user painted (tumour, stroma...). Class outputs and instance
outlines rarely agree to the pixel, so unclassified pixels (0) under an
object do not vote: an object takes the class most of its *classified*
pixels have, and ``class_fraction`` says how much of the object that class
covers, so doubtful objects can be filtered. An object with no classified
pixel is class 0, "unclassified".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

UNCLASSIFIED = "unclassified"
CLASS_COLUMNS = ("class", "class_name", "class_fraction")


def check_class_map(classes: Any, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` (one line) for a class map that cannot classify labels of ``shape``."""
    class_shape = tuple(int(s) for s in classes.shape)
    if class_shape != shape:
        raise ValueError(f"the class map has shape {class_shape} but the labels have shape {shape}: "
                         "they must match pixel for pixel")
    dtype = np.dtype(classes.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise ValueError(f"the class map must hold integer classes (0 = none), not {dtype} values")


def check_class_names(class_names: Sequence[str]) -> None:
    """Raise ``ValueError`` for names of classes 1, 2... that cannot tell two classes apart (one name twice, or
    'background', class 0's name): a measurement table's ``class_name`` column would say one name for two."""
    seen: set[str] = set()
    for name in (name.strip() for name in class_names):
        if not name:  # left out: the class keeps its default name
            continue
        if name.casefold() == "background":
            raise ValueError("'background' is class 0's name (the unpainted or background scribble): name "
                             "classes 1, 2... something else")
        if name.casefold() in seen:
            raise ValueError(f"class names must differ: {name!r} is given twice ({', '.join(class_names)})")
        seen.add(name.casefold())


def majority_classes(local: np.ndarray, count: int, class_window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The class of objects 1..``count`` of ``local`` and the share of each object's pixels in it.

    Ties go to the lowest class. An object with no classified pixel gets
    class 0 and share 1.0 (all of it is unclassified).
    """
    if class_window.dtype == bool:
        class_window = class_window.view(np.uint8)
    inside = local > 0
    objects = local[inside].astype(np.int64)
    classes = class_window[inside]
    if classes.size and classes.min() < 0:
        raise ValueError("the class map must hold non-negative classes (0 = none)")
    areas = np.bincount(objects, minlength=count + 1)[1:]
    classified = classes != 0
    objects, classes = objects[classified], classes[classified].astype(np.uint64)
    order = np.lexsort((classes, objects))
    objects, classes = objects[order], classes[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(objects) != 0) | (np.diff(classes) != 0)]) if len(objects) else \
        np.zeros(0, np.intp)
    runs = np.diff(np.r_[starts, len(objects)])
    pair_object, pair_class = objects[starts], classes[starts]
    best = np.lexsort((pair_class, -runs, pair_object))  # per object: most pixels first, then the lowest class
    pair_object, pair_class, runs = pair_object[best], pair_class[best], runs[best]
    first = np.r_[True, np.diff(pair_object) != 0] if len(pair_object) else np.zeros(0, bool)
    out_class = np.zeros(count, np.int64)
    fraction = np.ones(count, np.float64)
    index = pair_object[first] - 1
    out_class[index] = pair_class[first].astype(np.int64)
    fraction[index] = runs[first] / np.maximum(areas[index], 1)
    return out_class, fraction


def looks_like_objects(classes: np.ndarray) -> bool:
    """Whether objects' classes look like ids of objects (a labels layer given as the class map by mistake):
    more than a handful of classes, nearly one per object."""
    found = len(np.unique(classes[classes != 0]))
    return found > 32 or (found > 4 and found >= 0.8 * len(classes))


def class_name(k: int, names: Sequence[str] | None) -> str:
    """The name of class ``k``: from ``names`` (indexed by class, 0 = background), else "class k"."""
    if k == 0:
        return UNCLASSIFIED
    if names is not None and k < len(names) and str(names[k]).strip():
        return str(names[k])
    return f"class {k}"


def class_names_of(ids: np.ndarray, names: Sequence[str] | None) -> np.ndarray:
    """Each id's class name (a text column)."""
    lookup = {int(k): class_name(int(k), names) for k in np.unique(ids)}
    return np.array([lookup[int(k)] for k in ids], dtype=object)


def class_counts(table: dict[str, Any]) -> str:
    """"tumour: 12, stroma: 30, unclassified: 2", by class (unclassified last); "" without classes."""
    if "class" not in table or not len(table["class"]):
        return ""
    ids, first, counts = np.unique(np.asarray(table["class"]), return_index=True, return_counts=True)
    order = np.r_[np.flatnonzero(ids != 0), np.flatnonzero(ids == 0)]
    names = np.asarray(table["class_name"], dtype=object)
    return ", ".join(f"{names[first[i]]}: {counts[i]}" for i in order)


def class_names_note(typed: list[str] | None, top: int) -> str:
    """Class names typed for more or fewer classes than the class layer has (up to ``top``): which names went
    unused, or which classes kept a plain "class k"; "" when they fit (or none were typed)."""
    if not typed or top < 1:
        return ""
    names = typed[1:]  # typed[0] is the background
    if len(names) > top:
        extra = ", ".join(repr(n) for n in names[top:] if n)
        return f"{extra} named no class (the class layer's classes go up to {top})" if extra else ""
    unnamed = [k for k in range(1, top + 1) if k > len(names) or not names[k - 1]]
    return (f"no name was typed for {', '.join(f'class {k}' for k in unnamed)}, so the table calls "
            f"{'it' if len(unnamed) == 1 else 'them'} so") if unnamed else ""
