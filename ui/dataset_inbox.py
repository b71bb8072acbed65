"""Faces the user sent from the Upload page to the custom dataset, waiting to be saved.

The Upload page only queues faces here (in the session); the Dataset & labeling page owns the
custom dataset on disk and decides how to store them. This keeps the two pages independent:
the Upload page works the same before and after the dataset feature exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

INBOX_KEY = "dataset_inbox"


@dataclass
class InboxFace:
    """One labelled face: what the model saw (`gray_crop`) plus where it came from."""

    label: str  # the label the user chose
    predicted: str  # the model's top emotion, kept apart from the user's label
    confidence: float
    source: str  # file name
    digest: str  # SHA-256 of the source file
    face_index: int
    box: tuple[int, int, int, int]  # x, y, width, height in the analysed image
    gray_crop: np.ndarray = field(repr=False)  # (S, S) uint8, the model's input
    thumbnail: np.ndarray = field(repr=False)  # RGB colour crop for display

    @property
    def key(self) -> tuple[str, int]:
        return (self.digest, self.face_index)


def inbox() -> list[InboxFace]:
    return st.session_state.setdefault(INBOX_KEY, [])


def add_to_inbox(face: InboxFace) -> bool:
    """Queue a face (replacing an earlier label for the same face); True if it was new."""
    queued = inbox()
    for position, existing in enumerate(queued):
        if existing.key == face.key:
            queued[position] = face
            return False
    queued.append(face)
    return True


def take_inbox() -> list[InboxFace]:
    """Remove and return every queued face (for the page that saves them)."""
    return st.session_state.pop(INBOX_KEY, [])
