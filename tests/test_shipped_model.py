"""The models shipped in models/: they load, their files match their cards, they read the committed
sample correctly, and (where the FER2013 data is present) they reach their accuracy floors on the
validation set: the default model for photos, and the fast live model for the webcam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_core.card import KERAS_FILE, TFLITE_FILE, sha256_of
from fer_core.data import load_dataset
from fer_core.detection import DetectorSettings
from fer_core.ensemble import is_ensemble
from fer_core.evaluation import evaluate
from fer_core.inference import EmotionClassifier, EmotionRecognizer
from fer_core.registry import ModelRegistry
from fer_core.reports import load_evaluation

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"
# Floors (validation, served TFLite path): single pass, the live webcam's path; and with the
# card's test-time augmentation, the Upload page's and `evaluate`'s path (None: not checked).
FLOORS = {
    "resnet_fer_ensemble": (0.72, None),  # its best TTA is one pass: members, not crops
    "resnet_fer_long": (0.69, 0.71),
    "resnet_fer_lite_long": (0.677, 0.69),
    "resnet_fer": (0.67, 0.70),
    "resnet_fer_lite": (0.65, 0.66),
}
TTA_SAMPLE = 300  # faces re-predicted with TTA through the served path (the full pass is stored)
ENSEMBLE_SAMPLE = 600  # the same for an ensemble's single pass (its members' passes a face)


def shipped_names() -> list[str]:
    return [model.name for model in ModelRegistry(REPO_MODELS).list() if model.name in FLOORS]


@pytest.fixture(scope="module", params=shipped_names())
def shipped(request):
    return ModelRegistry(REPO_MODELS).get(request.param)


@pytest.fixture(scope="module")
def shipped_classifier(shipped) -> EmotionClassifier:
    return EmotionClassifier(shipped.path)


@pytest.fixture(scope="module")
def validation(fer_data_dir: Path, shipped_classifier: EmotionClassifier):
    val_dir = fer_data_dir / "val"
    if not val_dir.is_dir():
        pytest.skip(f"{val_dir} is absent")
    return load_dataset(val_dir, image_size=shipped_classifier.input_size)


def test_the_registry_has_a_default_and_a_live_model():
    registry = ModelRegistry(REPO_MODELS)
    assert registry.default().name == "resnet_fer_ensemble"  # the most accurate, for photos
    assert registry.live_default().name == "resnet_fer_lite_long"  # the most accurate at a tenth of the FLOPs


def test_model_loads_with_a_complete_card(shipped, shipped_classifier):
    assert shipped_classifier.backend == "tflite"
    assert shipped_classifier.input_size == shipped.card.input_size
    # A shipped ensemble serves from model.tflite alone (model.keras would be all members' weights).
    expected = (TFLITE_FILE,) if is_ensemble(shipped.card) else (KERAS_FILE, TFLITE_FILE)
    assert set(shipped.card.sha256) == set(expected)
    for name in expected:
        assert shipped.card.sha256[name] == sha256_of(shipped.path / name), f"{name} does not match card.json"
    assert isinstance(shipped.card.metrics.get("val_accuracy"), float)
    assert shipped.card.flops > 0 and shipped.card.face_margin == pytest.approx(0.07)


def test_astronaut_is_one_happy_face(shipped_classifier, blazeface_detector, astronaut_rgb):
    result = EmotionRecognizer(blazeface_detector, shipped_classifier).analyze(astronaut_rgb, DetectorSettings())
    assert len(result.faces) == 1
    face = result.faces[0]
    top = ", ".join(f"{name} {p:.2f}" for name, p in sorted(zip(face.classes, face.probabilities, strict=True), key=lambda x: -x[1])[:3])
    assert face.label == "happy", f"astronaut.png read as {top}"


def _check_stored_evaluation(shipped, classifier: EmotionClassifier, validation, tta: str, floor: float, sample: int) -> None:
    """The stored per-face evaluation with `tta` covers the whole validation split with its true
    labels and meets the floor; a seeded sample re-predicted through the served path now gives
    the same answers (so the stored pass is this model's, not a stale file)."""
    stored = load_evaluation(shipped.path, f"val-{tta}")
    assert stored.ids == validation.ids and np.array_equal(stored.labels, validation.labels)
    assert stored.report.accuracy >= floor, f"{tta} val accuracy {stored.report.accuracy:.4f} < {floor}"
    assert stored.report.accuracy == pytest.approx(shipped.card.metrics["val_accuracy_by_tta"][tta], abs=0.005)
    picked = np.random.default_rng(0).choice(len(validation), sample, replace=False)
    again = classifier.predict_faces(validation.images[picked], tta=tta)
    np.testing.assert_allclose(again, stored.probabilities[picked], atol=2e-3)  # stored as float16
    assert (again.argmax(axis=1) == stored.predictions[picked]).mean() >= 0.99


def test_validation_accuracy_single_pass(shipped, shipped_classifier, validation):
    floor, _ = FLOORS[shipped.name]
    if is_ensemble(shipped.card):
        # four networks a face: the stored full pass, checked against the served path on a sample
        _check_stored_evaluation(shipped, shipped_classifier, validation, "none", floor, ENSEMBLE_SAMPLE)
        return
    report = evaluate(shipped_classifier.predict_faces, validation, tta="none", model=shipped.name)
    assert report.accuracy >= floor, f"val accuracy {report.accuracy:.4f} < {floor}"
    # the card's number is the same measurement (same data, same served path)
    assert report.accuracy == pytest.approx(shipped.card.metrics["val_accuracy"], abs=0.005)


def test_validation_accuracy_with_the_cards_tta(shipped, shipped_classifier, validation):
    _, floor = FLOORS[shipped.name]
    tta = shipped_classifier.best_tta
    if floor is None or tta == "none":
        pytest.skip(f"{shipped.name} has no TTA floor")
    _check_stored_evaluation(shipped, shipped_classifier, validation, tta, floor, TTA_SAMPLE)
