"""Labelling through fer_core.labeling.LabelWalk and the store's keyset queues, on a real store.

Two walks on one store stand for two browser tabs: the second one's write on a face the first
one changed is refused, and nothing is lost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_core.classes import CLASSES
from fer_core.dataset_records import Prediction
from fer_core.dataset_store import DatasetStore
from fer_core.drawing import fit_face
from fer_core.labeling import LabelWalk
from tests.conftest import synthetic_face

CONFIDENCES = [0.9, 0.3, None, 0.6, 0.3, 0.8, 0.5]


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    """Seven unlabelled faces (ids 1-7); face 3 has no prediction, the others predict happy."""
    store = DatasetStore(tmp_path / "dataset")
    rng = np.random.default_rng(5)
    for number, confidence in enumerate(CONFIDENCES):
        prediction = None if confidence is None else Prediction("happy", confidence, "m")
        store.add_face(synthetic_face(number % len(CLASSES), 48, rng), source="import", prediction=prediction)
    return store


@pytest.mark.parametrize("kind", ["unlabelled", "low_confidence", "disagreement"])
def test_pages_read_after_a_face_continue_the_queue_in_order(store: DatasetStore, kind: str) -> None:
    store.bulk_set_label([1, 4, 6], "sad")  # disagree with the model
    everything = store.queue(kind, limit=100)
    assert everything, kind
    paged, after = [], None
    while True:
        page = store.queue(kind, limit=2, after=after)
        if not page:
            break
        paged += page
        after = page[-1]
    assert [face.id for face in paged] == [face.id for face in everything]
    for number, face in enumerate(everything, start=1):
        position = store.queue_position(kind, face)
        assert (position.number, position.total, position.inside) == (number, len(everything), True)


def test_queue_orders_and_membership(store: DatasetStore) -> None:
    assert [face.id for face in store.queue("low_confidence")] == [2, 5, 7, 4, 6, 1, 3]
    store.set_label(2, "happy")
    assert store.queue_face("unlabelled", 2) is None and store.queue_face("unlabelled", 5).id == 5
    position = store.queue_position("unlabelled", store.get(2))
    assert (position.inside, position.total) == (False, 6)


def test_a_walk_labels_skips_goes_back_and_undoes(store: DatasetStore) -> None:
    walk = LabelWalk("unlabelled", page_size=3)
    assert walk.current(store).id == 1
    assert walk.label(store, "angry", "tab").text == "labelled #1 angry; U undoes"
    assert walk.current(store).id == 2
    walk.skip(store)
    assert walk.current(store).id == 3
    walk.back(store)
    assert walk.current(store).id == 2
    walk.back(store)
    assert walk.current(store).id == 1 and walk.current(store).label == "angry"
    walk.label(store, "fear", "tab")  # relabel a face already labelled, then on to where we were
    assert store.get(1).label == "fear" and walk.current(store).id == 2
    walk.skip(store)
    assert walk.current(store).id == 3
    assert walk.undo(store, "tab").text == "Undid the label of face 1"
    assert walk.current(store).id == 1 and store.get(1).label == "angry"
    walk.delete(store, "tab")
    assert store.get(1).deleted and walk.current(store).id == 3
    walk.undo(store, "tab")
    assert not store.get(1).deleted and walk.current(store).id == 1
    assert walk.undo(store, "other").text == "Nothing to undo." and not walk.last.ok


def test_two_tabs_never_overwrite_each_other(store: DatasetStore) -> None:
    first, second = LabelWalk("unlabelled"), LabelWalk("unlabelled")
    assert first.current(store).id == second.current(store).id == 1
    first.label(store, "happy", "tab-1")
    step = second.label(store, "sad", "tab-2")
    assert not step.ok and "face 1 was changed meanwhile" in step.text and "nothing was overwritten" in step.text
    assert store.get(1).label == "happy"
    assert second.shown.label == "happy", "the refused tab now shows the face as it is"
    assert second.label(store, "sad", "tab-2").ok, "deciding again on what is shown works"
    assert store.get(1).label == "sad"
    assert first.current(store).id == 2


def test_a_walk_skips_faces_another_tab_labelled_meanwhile(store: DatasetStore) -> None:
    walk = LabelWalk("unlabelled")
    assert walk.current(store).id == 1  # faces 1-7 read ahead now
    store.bulk_set_label([2, 3], "neutral", actor="other")
    walk.label(store, "happy", "tab")
    assert walk.current(store).id == 4


def test_a_face_deleted_by_another_tab_is_left_behind(store: DatasetStore) -> None:
    walk = LabelWalk("unlabelled")
    assert walk.current(store).id == 1
    store.delete(1, actor="other")
    assert walk.current(store).id == 2


def test_walk_rejects_an_unknown_queue() -> None:
    with pytest.raises(ValueError, match="unknown review queue"):
        LabelWalk("random")


def test_bulk_restore_is_one_undo_step(store: DatasetStore) -> None:
    store.bulk_delete([1, 2], actor="tab")
    assert store.bulk_restore([1, 2, 3], actor="tab") == 2
    assert store.count() == 7
    assert store.undo("tab").action == "restore"
    assert store.count(deleted_only=True) == 2


def test_training_problems_say_what_is_missing(store: DatasetStore) -> None:
    problems = store.stats().training_problems()
    assert any("too few labelled training faces in 7 of 7 classes" in problem for problem in problems)
    assert any("no labelled face in the test split" in problem for problem in problems)


def test_fit_face_enlarges_small_crops_crisply_and_shrinks_large_ones() -> None:
    small = np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)
    big = fit_face(small, 288)
    assert big.shape == (288, 288) and np.array_equal(big[::6, ::6], small)
    assert fit_face(np.zeros((256, 128, 3), np.uint8), 112).shape == (112, 56, 3)
