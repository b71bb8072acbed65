"""fer_core.evaluation: metrics checked by hand on a tiny case, TTA views, the report file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fer_core.classes import CLASSES
from fer_core.data import FaceDataset
from fer_core.evaluation import EvaluationReport, evaluate, predict_with_tta, report_from_predictions, tta_views

# Seven faces: classes 0-3 are present, class 4 (neutral) is predicted once but never true.
Y_TRUE = np.array([0, 0, 1, 1, 2, 3, 3])
Y_PRED = np.array([0, 1, 1, 1, 2, 0, 4])


def test_hand_checked_accuracy_confusion_matrix_and_per_class_scores():
    report = report_from_predictions(Y_TRUE, Y_PRED, data="hand", model="by-hand")
    assert report.accuracy == pytest.approx(4 / 7)
    assert report.n_images == 7 and report.classes == list(CLASSES)
    expected = np.zeros((7, 7), int)
    expected[0, 0], expected[0, 1] = 1, 1  # angry: one right, one called disgust
    expected[1, 1] = 2  # disgust: both right
    expected[2, 2] = 1  # fear: right
    expected[3, 0], expected[3, 4] = 1, 1  # happy: called angry and neutral
    assert report.confusion_matrix == expected.tolist()
    angry, disgust, fear, happy, neutral = (report.per_class[name] for name in CLASSES[:5])
    assert (angry["precision"], angry["recall"], angry["f1"], angry["support"]) == (0.5, 0.5, 0.5, 2)
    assert disgust["precision"] == pytest.approx(2 / 3) and disgust["recall"] == 1.0
    assert disgust["f1"] == pytest.approx(0.8)
    assert (fear["precision"], fear["recall"], fear["f1"]) == (1.0, 1.0, 1.0)
    assert (happy["precision"], happy["recall"], happy["f1"], happy["support"]) == (0.0, 0.0, 0.0, 2)
    assert (neutral["f1"], neutral["support"]) == (0.0, 0)
    assert report.per_class["sad"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_macro_f1_averages_classes_that_are_true_or_predicted():
    """(0.5 + 0.8 + 1 + 0 + 0) / 5: the wrongly predicted neutral counts, absent classes do not,
    which is scikit-learn's macro-F1."""
    report = report_from_predictions(Y_TRUE, Y_PRED)
    assert report.macro_f1 == pytest.approx(0.46)
    assert report.macro_f1 == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))


def test_perfect_predictions():
    perfect = report_from_predictions(np.arange(7), np.arange(7))
    assert perfect.accuracy == 1.0 and perfect.macro_f1 == 1.0
    assert np.array_equal(np.array(perfect.confusion_matrix), np.eye(7, dtype=int))


def test_report_json_round_trip_and_table(tmp_path: Path):
    report = report_from_predictions(Y_TRUE, Y_PRED, tta="flip", data="hand")
    report.extra = {"split": "test"}
    path = report.write_json(tmp_path / "sub" / "evaluation.json")
    again = EvaluationReport.read_json(path)
    assert again == report
    table = report.table()
    assert table.splitlines()[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert "accuracy 0.5714   macro-F1 0.4600   images 7   TTA flip" in table
    assert len(table.splitlines()) == 1 + 7 + 1


# --- test-time augmentation --------------------------------------------------------------------


def test_tta_view_shapes_and_contents():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    none = tta_views(faces, "none")
    assert none.shape == (1, 3, 48, 48)
    np.testing.assert_array_equal(none[0], faces)
    flip = tta_views(faces, "flip")
    assert flip.shape == (2, 3, 48, 48)
    np.testing.assert_array_equal(flip[1], faces[:, :, ::-1])
    ten = tta_views(faces, "tencrop")
    assert ten.shape == (10, 3, 48, 48) and ten.dtype == np.uint8
    for index in range(0, 10, 2):  # each crop is followed by its mirror
        np.testing.assert_array_equal(ten[index + 1], ten[index][:, :, ::-1])
    multi = tta_views(faces, "multicrop")  # the whole face and its mirror, then the ten crops
    assert multi.shape == (12, 3, 48, 48)
    np.testing.assert_array_equal(multi[:2], flip)
    np.testing.assert_array_equal(multi[2:], ten)
    with pytest.raises(ValueError, match=r"unknown TTA mode 'rotate'; use one of none, flip, tencrop, multicrop"):
        tta_views(faces, "rotate")


def test_tencrop_views_are_corners_and_centre():
    face = np.zeros((1, 48, 48), np.uint8)
    face[0, 0, 0] = 255  # top-left pixel lies only in the top-left crop (and its mirror)
    views = tta_views(face, "tencrop")  # 43x43 crops (90%) resized back to 48x48
    assert views[0, 0, 0, 0] > 0 and views[1, 0, 0, -1] > 0
    assert all(views[index].max() == 0 for index in range(2, 10))


def left_half_brightness(faces: np.ndarray) -> np.ndarray:
    """A deterministic stand-in 'classifier': probability of class 0 = mean of the left half."""
    left = faces[:, :, : faces.shape[2] // 2].mean(axis=(1, 2)) / 255.0
    probabilities = np.zeros((len(faces), 7), np.float32)
    probabilities[:, 0], probabilities[:, 1] = left, 1.0 - left
    return probabilities


def test_flip_tta_averages_the_views():
    face = np.zeros((1, 4, 4), np.uint8)
    face[:, :, :2] = 255  # bright left half; its mirror has a dark left half
    assert predict_with_tta(left_half_brightness, face, "none")[0, 0] == pytest.approx(1.0)
    assert predict_with_tta(left_half_brightness, face, "flip")[0, 0] == pytest.approx(0.5)


def test_evaluate_a_prediction_function_on_a_dataset():
    images = np.zeros((4, 4, 4), np.uint8)
    images[:2, :, :2] = 255  # two bright-left faces -> class 0, two dark -> class 1
    dataset = FaceDataset(images, np.array([0, 0, 1, 0], np.int32), source="tiny")
    report = evaluate(left_half_brightness, dataset, model="left-half")
    assert report.accuracy == pytest.approx(0.75)
    assert report.confusion_matrix[0][:2] == [2, 1] and report.confusion_matrix[1][:2] == [0, 1]
    assert (report.data, report.model, report.tta) == ("tiny", "left-half", "none")
