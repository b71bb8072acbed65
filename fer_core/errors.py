"""Errors the engine raises for bad input: each names the file and the problem.

They derive from ValueError so callers that only know "bad value" still catch them; the
CLI and the pages print `str(error)` instead of a traceback.
"""

from __future__ import annotations


class FerError(ValueError):
    """Base class for every user-facing error of fer_core."""


class ImageError(FerError):
    """An image could not be read: not an image, corrupt, empty, too large."""


class DatasetError(FerError):
    """A dataset (CSV or image folder) is malformed."""


class ModelError(FerError):
    """A model folder is missing files, has a bad card, or does not fit its card."""
