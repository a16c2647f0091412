"""Sharing a model with other ecosystems: bioimage.io model packages, out and in (needs the optional ``bioimageio`` extra)."""

from .bioimageio import ExportError, export_bioimageio
from .importing import ImportedModel, import_bioimageio, suggested_name
from .package import ImportRefused

__all__ = ["ExportError", "ImportRefused", "ImportedModel", "export_bioimageio", "import_bioimageio",
           "suggested_name"]
