"""What every page does with the custom dataset: who acts (one id per browser session, for the
store's history and undo) and adding faces with a clear message for each outcome.

The Upload page, webcam snapshots and the Dataset page's Collect view all add faces through
`save_faces`, so they say the same things in the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import streamlit as st

from fer_core.dataset_records import FaceRecord, NewFace
from fer_core.errors import DuplicateFaceError, FerError
from ui.resources import dataset_store

ACTOR_KEY = "dataset_actor"
SAVED_KEY = "dataset_saved"  # a caller's key for a face -> the id it has in the dataset


def session_actor() -> str:
    """This browser session's name in the dataset's history: undo reverts its own changes only."""
    if ACTOR_KEY not in st.session_state:
        st.session_state[ACTOR_KEY] = f"browser-{uuid.uuid4().hex[:8]}"
    return st.session_state[ACTOR_KEY]


def saved_face_id(key: str) -> int | None:
    """The dataset id of a face this session added (or found there already) under `key`."""
    return st.session_state.get(SAVED_KEY, {}).get(key)


@dataclass
class SaveOutcome:
    """What `save_faces` did, one entry per face added or found to be a duplicate."""

    added: list[FaceRecord] = field(default_factory=list)
    duplicates: list[DuplicateFaceError] = field(default_factory=list)
    error: str | None = None


def _ids(records: Sequence[FaceRecord]) -> str:
    return ", ".join(f"#{record.id}" + (f" ({record.label})" if record.label else "") for record in records)


def save_faces(faces: Sequence[NewFace], keys: Sequence[str], what: str) -> SaveOutcome:
    """Add `faces` to the custom dataset in one step (one undo), remember their ids under `keys`,
    and say what happened: a toast naming the new face ids, a warning naming the face that holds
    each duplicate, an error when the dataset refused (nothing is added then)."""
    outcome = SaveOutcome()
    try:
        results = dataset_store().add_faces(list(faces), actor=session_actor())
    except FerError as error:  # a bad crop, a folder that cannot be written, a busy index
        outcome.error = f"Could not add {what} to the custom dataset: {error}"
        st.error(outcome.error, icon=":material/error:")
        return outcome
    saved = st.session_state.setdefault(SAVED_KEY, {})
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, DuplicateFaceError):
            outcome.duplicates.append(result)
            saved[key] = result.existing_id
        else:
            outcome.added.append(result)
            saved[key] = result.id
    if outcome.added:
        count = len(outcome.added)
        st.toast(f"Added {what if count == len(results) else f'{count} face(s)'} to the custom dataset as "
                 f"face {_ids(outcome.added)}; undo it on the Dataset & labeling page (Label, key U).",
                 icon=":material/add_photo_alternate:")
    for duplicate in outcome.duplicates:
        st.warning(f"Not added again: {duplicate}", icon=":material/content_copy:")
    return outcome
