"""Per-object measurements of labels: shape, position and intensity, as a table and as CSV.

Builds on :mod:`..common` only; batches and every user interface use it.
"""
