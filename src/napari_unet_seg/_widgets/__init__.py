"""Thin Qt dock widgets over the Qt-free core: Segment, Train, Batch segment."""
