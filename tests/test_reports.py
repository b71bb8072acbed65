"""fer_core.reports: stored evaluations, calibration, confused pairs, per-class tables, lineage;
and data.load_faces, which finds an evaluation's faces again for the gallery of mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from fer_core.card import read_card, write_card
from fer_core.classes import CLASSES
from fer_core.data import FaceDataset, load_dataset, load_faces
from fer_core.errors import DatasetError, FerError
from fer_core.evaluation import report_from_predictions
from fer_core.reports import (
    calibration,
    confused_pairs,
    evaluate_and_store,
    evaluation_slug,
    lineage_curve,
    list_evaluations,
    load_evaluation,
    mistakes,
    model_lineage,
    per_class_rows,
    store_evaluation,
)
from fer_core.training import write_lineage
from tests.conftest import build_model_folder


def one_hot_like(labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Probabilities whose top class is `predicted` with `confidence`, the rest spread evenly."""
    rest = (1.0 - confidence) / (len(CLASSES) - 1)
    probabilities = np.repeat(rest[:, None], len(CLASSES), axis=1)
    probabilities[np.arange(len(labels)), predicted] = confidence
    return probabilities


def test_calibration_of_known_confidences():
    labels = np.zeros(100, int)
    predicted = np.where(np.arange(100) < 80, 0, 1)  # 80% right
    honest = calibration(one_hot_like(labels, predicted, np.full(100, 0.8)), labels)
    assert honest.ece == pytest.approx(0.0, abs=1e-9)
    assert sum(honest.counts) == 100 and honest.counts[7] == 100  # 0.8 falls in (0.7, 0.8]
    overconfident = calibration(one_hot_like(labels, predicted, np.full(100, 0.95)), labels)
    assert overconfident.ece == pytest.approx(0.15)
    assert overconfident.mce == pytest.approx(0.15)
    with pytest.raises(FerError):
        calibration(np.zeros((0, 7)), np.zeros(0, int))


def test_confused_pairs_largest_first_with_shares():
    matrix = np.diag([10] * 7)
    matrix[2, 5] = 6  # fear -> sad
    matrix[1, 0] = 6  # disgust -> angry: same count, larger share of its row
    matrix[1, 1] = 2
    pairs = confused_pairs(matrix.tolist())
    assert [(pair.true, pair.predicted, pair.count) for pair in pairs[:2]] == [("disgust", "angry", 6), ("fear", "sad", 6)]
    assert pairs[0].share == pytest.approx(6 / 8)
    assert len(pairs) == 2


def test_per_class_rows_match_scikit_learn_averages():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 300)
    predicted = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 7, 300))
    rows = per_class_rows(report_from_predictions(labels, predicted))
    assert [row["class"] for row in rows] == [*CLASSES, "macro avg", "weighted avg"]
    for average, row in (("macro", rows[-2]), ("weighted", rows[-1])):
        precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average=average, zero_division=0)
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision, recall, f1))
    assert rows[-1]["support"] == 300


def test_a_stored_evaluation_round_trips_with_every_face(tmp_path: Path):
    labels = np.array([0, 3, 3, 6, 5], np.int32)
    dataset = FaceDataset(np.zeros((5, 48, 48), np.uint8), labels, source="/data/fer2013/val",
                          ids=[f"{CLASSES[label]}/{index}.jpg" for index, label in enumerate(labels)])
    probabilities = one_hot_like(labels, np.array([0, 3, 5, 6, 3]), np.array([0.9, 0.8, 0.7, 0.6, 0.95]))
    stored = store_evaluation(tmp_path, probabilities, dataset, "flip", model_name="m")
    assert stored.slug == "val-flip" == evaluation_slug("/data/fer2013/val/", None, "flip")
    assert evaluation_slug("x/fer2013.csv", ["PrivateTest"], "none") == "fer2013.csv-PrivateTest-none"
    listed = list_evaluations(tmp_path)
    assert [item.slug for item in listed] == ["val-flip"] and listed[0].probabilities is None
    loaded = load_evaluation(tmp_path, "val-flip")
    assert loaded.report.accuracy == pytest.approx(0.6) and loaded.report.tta == "flip"
    np.testing.assert_allclose(loaded.probabilities, probabilities, atol=1e-3)  # stored as float16
    assert loaded.ids == dataset.ids and loaded.labels.tolist() == labels.tolist()
    # the most confident mistake first; one pair at a time
    assert mistakes(loaded).tolist() == [4, 2]
    assert mistakes(loaded, true="sad", predicted="happy").tolist() == [4]
    with pytest.raises(FerError, match="no stored evaluation"):
        load_evaluation(tmp_path, "nope")


def test_evaluate_and_store_uses_the_served_model(tiny_model_dir: Path, tmp_path: Path, make_image_folder):
    folder = make_image_folder(tmp_path / "val", per_class=2, size=32)
    dataset = load_dataset(folder, image_size=32)
    seen = []
    stored = evaluate_and_store(tiny_model_dir, dataset, "auto", progress=lambda done, total: seen.append((done, total)))
    try:
        assert stored.report.tta == "none" and stored.report.n_images == 14
        assert seen[-1] == (14, 14)
        assert (tiny_model_dir / "evaluations" / "val-none.npz").is_file()
    finally:
        for suffix in (".json", ".npz"):
            (tiny_model_dir / "evaluations" / f"val-none{suffix}").unlink()


def test_lineage_carries_every_ancestor_and_one_curve_across_cycles(tmp_path: Path):
    def history(folder: Path, epochs: int, start_accuracy: float) -> None:
        rows = ["epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"]
        rows += [f"{e},1.0,{start_accuracy + e / 100},1.1,{start_accuracy + e / 200},0.01,2" for e in range(1, epochs + 1)]
        (folder / "history.csv").write_text("\n".join(rows) + "\n")

    grandparent = build_model_folder(tmp_path / "first")
    history(grandparent, 6, 0.3)
    card = read_card(grandparent)
    card.best_epoch, card.epochs_trained = 4, 6
    write_card(grandparent, card)
    parent = build_model_folder(tmp_path / "second")
    history(parent, 3, 0.4)
    card = read_card(parent)
    card.best_epoch, card.epochs_trained = 3, 3
    write_card(parent, card)
    write_lineage(parent, grandparent)  # what train --init-from does when the run starts

    run = tmp_path / "run"
    run.mkdir()
    write_lineage(run, parent)
    stored = json.loads((run / "lineage.json").read_text())
    assert [entry["name"] for entry in stored] == ["first", "second"]
    assert stored[0]["sha256"] == read_card(grandparent).sha256["model.keras"]

    steps = model_lineage(parent)
    assert [step.name for step in steps] == ["first", "second"]
    curve = lineage_curve(steps)
    assert [row["global_epoch"] for row in curve] == [1, 2, 3, 4, 5, 6, 5, 6, 7]
    assert [row["after_kept"] for row in curve] == [False] * 4 + [True, True] + [False] * 3
    assert [row["global_epoch"] for row in curve if row["kept"]] == [4, 7]


def test_load_faces_from_a_folder_a_csv_and_a_store(tmp_path: Path, make_image_folder, make_fer_csv):
    folder = make_image_folder(tmp_path / "faces", per_class=2)
    dataset = load_dataset(folder)
    faces = load_faces(folder, dataset.ids[:3] + ["../../etc/passwd", "angry/missing.png"])
    assert all(face.shape == (48, 48) for face in faces[:3])
    np.testing.assert_array_equal(faces[0], dataset.images[0])
    assert faces[3] is None and faces[4] is None  # outside the data root, and gone

    csv_path = make_fer_csv(tmp_path / "fer.csv", per_class=1, usages=("Training", "PublicTest"))
    public = load_dataset(csv_path, ["PublicTest"])
    again = load_faces(csv_path, public.ids)
    np.testing.assert_array_equal(np.stack(again), public.images)

    from fer_core.dataset_store import DatasetStore

    store = DatasetStore(tmp_path / "store")
    record = store.add_face(dataset.images[1], source="import", label="angry")
    assert load_faces(store.root, [f"face {record.id}"])[0].shape == (48, 48)

    with pytest.raises(DatasetError, match="not on this machine"):
        load_faces(tmp_path / "gone", ["angry/0.png"])
