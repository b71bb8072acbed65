"""The model shipped in models/: it loads, its files match its card, it reads the committed sample
correctly, and (where the FER2013 data is present) it reaches its accuracy on the validation set."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_core.card import KERAS_FILE, TFLITE_FILE, sha256_of
from fer_core.data import load_dataset
from fer_core.detection import DetectorSettings
from fer_core.evaluation import evaluate
from fer_core.inference import EmotionClassifier, EmotionRecognizer
from fer_core.registry import ModelRegistry

MIN_VAL_ACCURACY = 0.67  # single pass, the live webcam's path
MIN_VAL_ACCURACY_TTA = 0.70  # with the card's test-time augmentation, the Upload page's and `evaluate`'s path


@pytest.fixture(scope="module")
def shipped(repo_root: Path):
    """The default model of the repository's own models/ folder (not FER_MODELS_DIR)."""
    return ModelRegistry(repo_root / "models").default()


@pytest.fixture(scope="module")
def shipped_classifier(shipped) -> EmotionClassifier:
    return EmotionClassifier(shipped.path)


def test_default_model_loads_with_a_complete_card(shipped, shipped_classifier):
    assert shipped.is_default
    assert shipped_classifier.backend == "tflite"
    assert shipped_classifier.input_size == shipped.card.input_size
    for name in (KERAS_FILE, TFLITE_FILE):
        assert shipped.card.sha256.get(name) == sha256_of(shipped.path / name), f"{name} does not match card.json"
    assert isinstance(shipped.card.metrics.get("val_accuracy"), float)


def test_astronaut_is_one_happy_face(shipped_classifier, blazeface_detector, astronaut_rgb):
    result = EmotionRecognizer(blazeface_detector, shipped_classifier).analyze(astronaut_rgb, DetectorSettings())
    assert len(result.faces) == 1
    face = result.faces[0]
    top = ", ".join(f"{name} {p:.2f}" for name, p in sorted(zip(face.classes, face.probabilities, strict=True), key=lambda x: -x[1])[:3])
    assert face.label == "happy", f"astronaut.png read as {top}"


def test_validation_accuracy(shipped, shipped_classifier, fer_data_dir: Path):
    val_dir = fer_data_dir / "val"
    if not val_dir.is_dir():
        pytest.skip(f"{val_dir} is absent")
    dataset = load_dataset(val_dir, image_size=shipped_classifier.input_size)
    report = evaluate(shipped_classifier.predict_faces, dataset, tta="none", model=shipped.name)
    assert report.accuracy >= MIN_VAL_ACCURACY, f"val accuracy {report.accuracy:.4f} < {MIN_VAL_ACCURACY}"
    # the card's number is the same measurement (same data, same served path)
    assert report.accuracy == pytest.approx(shipped.card.metrics["val_accuracy"], abs=0.005)

    tta = shipped_classifier.best_tta
    assert tta == shipped.card.metrics["best_tta"] and tta in ("tencrop", "multicrop")
    with_tta = evaluate(shipped_classifier.predict_faces, dataset, tta=tta, model=shipped.name)
    assert with_tta.accuracy >= MIN_VAL_ACCURACY_TTA, f"{tta} val accuracy {with_tta.accuracy:.4f} < {MIN_VAL_ACCURACY_TTA}"
    assert with_tta.accuracy == pytest.approx(shipped.card.metrics["val_accuracy_by_tta"][tta], abs=0.005)
