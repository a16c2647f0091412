"""Sharing a model with other ecosystems: a bioimage.io model package (needs the optional ``bioimageio`` extra)."""

from .bioimageio import ExportError, export_bioimageio

__all__ = ["ExportError", "export_bioimageio"]
