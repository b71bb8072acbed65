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


class DuplicateFaceError(DatasetError):
    """A face with exactly these pixels is in the custom dataset already (`existing_id`)."""

    def __init__(self, message: str, existing_id: int | None = None):  # defaults: errors must unpickle
        super().__init__(message)
        self.existing_id = existing_id


class ConflictError(FerError):
    """A record changed since the caller read it (another tab or process); nothing was overwritten.

    `current` holds the record as it is now, so a page can show it."""

    def __init__(self, message: str, current: object = None):
        super().__init__(message)
        self.current = current


class VideoError(FerError):
    """A video file cannot be analysed: no video stream, corrupt, empty, undecodable, too long."""
