"""Docks a screen reader can read: every input named as its form row shows it, every button says what it does."""

import pytest
from qtpy.QtWidgets import (
    QAbstractItemView, QAbstractSpinBox, QComboBox, QFormLayout, QHeaderView, QLineEdit, QPushButton, QToolButton,
)

pytestmark = pytest.mark.gui

DOCKS = ["Segment", "Train", "Batch segment", "Measurements", "Cells from nuclei"]


@pytest.mark.parametrize("name", DOCKS)
def test_every_input_has_a_name_and_every_button_a_tooltip(make_napari_viewer, name):
    # the model list, the folder fields and the "…" buttons were announced without a name, and Cancel, Train and
    # Run batch had no tooltip (newcomer trial, keyboard only)
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-unet-seg", name)
    in_forms = set()
    for form in dock.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            label = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            if field is not None and label is not None and label.widget() is not None and label.widget().text():
                holder = field.widget()
                found = [holder] if holder is not None else []
                if holder is not None:
                    found += holder.findChildren((QComboBox, QLineEdit, QAbstractSpinBox))
                in_forms.update(w for w in found if isinstance(w, (QComboBox, QLineEdit, QAbstractSpinBox)))
    assert in_forms
    unnamed = [type(w).__name__ for w in in_forms if not w.accessibleName() and w.parent() is not None
               and not isinstance(w.parent(), (QComboBox, QAbstractSpinBox))]  # a combo's own line edit aside
    assert unnamed == []
    buttons = dock.findChildren((QPushButton, QToolButton))
    symbols = [b for b in buttons if b.text() and not any(c.isalnum() for c in b.text())]
    assert all(b.accessibleName() for b in symbols), [b.text() for b in symbols if not b.accessibleName()]
    silent = [b.text() for b in dock.findChildren(QPushButton) if b.text() and not b.toolTip()]
    assert silent == []
    # outside the forms too: the Colour by list, the tables and the lists of History and annotations
    unnamed = [w for w in dock.findChildren((QComboBox, QLineEdit, QAbstractSpinBox, QAbstractItemView))
               if not w.accessibleName() and not isinstance(w, QHeaderView)
               and not isinstance(w.parent(), (QComboBox, QAbstractSpinBox))  # a combo's own line edit
               and not isinstance(w.parent().parent(), QComboBox)]  # a combo's popup list
    assert unnamed == [], [(type(w).__name__, w.toolTip()) for w in unnamed]
