"""The objects table as Qt sees it (a sortable model), and colours of labels by one of its columns."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.utils.colormaps import DirectLabelColormap, ensure_colormap
from qtpy.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt

from ..core.measure.measurements import ObjectTable

NO_PARENT = QModelIndex()  # Qt's "top level": a table has no other
SORT_ROLE = Qt.ItemDataRole.UserRole  # the raw number, so 10 sorts after 9
UNMEASURED = (0.6, 0.6, 0.6, 1.0)  # labels painted after measuring


class ObjectTableModel(QAbstractTableModel):
    """A read-only view of an :data:`ObjectTable`; thousands of rows without one widget per cell."""

    def __init__(self, table: ObjectTable | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.table: ObjectTable = table or {}
        self.columns: list[str] = list(self.table)

    def set_table(self, table: ObjectTable) -> None:
        self.beginResetModel()
        self.table, self.columns = table, list(table)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = NO_PARENT) -> int:
        return 0 if parent.isValid() or not self.columns else len(self.table[self.columns[0]])

    def columnCount(self, parent: QModelIndex = NO_PARENT) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        value = self.table[self.columns[index.column()]][index.row()]
        text = isinstance(value, str)
        if role == SORT_ROLE:
            return value if text else float(value)  # class names sort as text
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{value:.4g}" if isinstance(value, np.floating) else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            side = Qt.AlignmentFlag.AlignLeft if text else Qt.AlignmentFlag.AlignRight
            return int(side | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None


def sortable(model: ObjectTableModel) -> QSortFilterProxyModel:
    """``model`` behind a proxy that sorts numerically when a header is clicked."""
    proxy = QSortFilterProxyModel(model)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    return proxy


def numeric_columns(table: ObjectTable) -> list[str]:
    """Columns worth colouring by: numbers that vary, not ids, indices or boxes."""
    skip = ("label", "slice", "bbox_")
    return [c for c, v in table.items() if not c.startswith(skip) and np.issubdtype(np.asarray(v).dtype, np.number)]


DIRECT_COLOUR_LIMIT = 2**16  # napari colours ids above this one by one only with numba installed


def colours_need_numba(ids: np.ndarray) -> str | None:
    """Why napari cannot draw these ids in colours of their own here (ids above 65,536 without numba), else None.

    napari would fail while drawing, leaving a grey canvas and a traceback, not when the colours are set."""
    import importlib.util

    top = int(np.max(ids)) if len(ids) else 0
    if top <= DIRECT_COLOUR_LIMIT or importlib.util.find_spec("numba") is not None:
        return None
    return (f"colouring by a measurement needs numba for label ids above {DIRECT_COLOUR_LIMIT:,} (this layer's go "
            f"up to {top:,}): `pip install numba`, restart napari and choose again; the labels keep their colours")


def colours_by(ids: np.ndarray, values: np.ndarray, colormap: str = "viridis") -> DirectLabelColormap:
    """Each label coloured by its value, from the lowest value to the highest; other labels grey."""
    values = np.asarray(values, np.float64)
    low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if len(values) else (0.0, 1.0)
    scaled = (values - low) / (high - low) if high > low else np.full(len(values), 0.5)
    rgba = ensure_colormap(colormap).map(np.nan_to_num(scaled, nan=0.0))
    colours: dict[int | None, Any] = {None: np.array(UNMEASURED), 0: np.zeros(4)}
    colours.update({int(i): c for i, c in zip(ids, rgba)})
    return DirectLabelColormap(color_dict=colours)
