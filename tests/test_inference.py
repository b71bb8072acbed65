"""fer_core.inference: the classifier served through TFLite and the detector + classifier pipeline.

Uses the tiny untrained model folder from conftest (tiny_cnn32, 32x32 input, so nothing here can
pass by assuming 48x48): shapes, batching, one model call per image, thread safety and the
errors of broken model folders. What a trained model predicts is in test_shipped_model.py.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fer_core.card import CARD_FILE, KERAS_FILE, TFLITE_FILE
from fer_core.classes import CLASSES
from fer_core.detection import DetectorSettings
from fer_core.errors import ModelError
from fer_core.inference import EmotionClassifier, EmotionRecognizer, FacePrediction, ImageResult
from fer_core.preprocessing import DEFAULT_MARGIN, Box


def random_faces(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size), dtype=np.uint8)


class CountingPredict:
    """Wraps a classifier's batch function to record the batch sizes it is called with."""

    def __init__(self, classifier: EmotionClassifier):
        self.inner = classifier._predict_batch
        self.batch_sizes: list[int] = []

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(faces))
        return self.inner(faces)


@pytest.fixture(scope="module")
def recognizer(blazeface_detector, tiny_classifier) -> EmotionRecognizer:
    return EmotionRecognizer(blazeface_detector, tiny_classifier)


# --- the classifier ------------------------------------------------------------------------------


def test_classifier_takes_size_and_classes_from_the_card(tiny_classifier: EmotionClassifier):
    assert tiny_classifier.backend == "tflite"
    assert tiny_classifier.input_size == 32 == tiny_classifier.card.input_size
    assert tiny_classifier.classes == CLASSES
    assert tiny_classifier.margin == tiny_classifier.card.face_margin == pytest.approx(DEFAULT_MARGIN)


def test_predict_faces_returns_probabilities_per_face(tiny_classifier: EmotionClassifier):
    probabilities = tiny_classifier.predict_faces(random_faces(5))
    assert probabilities.shape == (5, 7) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert tiny_classifier.predict_faces(np.zeros((0, 32, 32), np.uint8)).shape == (0, 7)


def test_batch_size_does_not_change_the_answer(tiny_classifier: EmotionClassifier):
    faces = random_faces(6, seed=1)
    one_by_one = np.concatenate([tiny_classifier.predict_faces(face[np.newaxis]) for face in faces])
    for batch in (faces, faces[:3], faces):  # the batched interpreter is re-planned in between
        np.testing.assert_allclose(tiny_classifier.predict_faces(batch), one_by_one[: len(batch)], atol=1e-5)


def test_tflite_export_agrees_with_the_keras_model(tiny_model_dir: Path, tiny_classifier: EmotionClassifier):
    keras_classifier = EmotionClassifier(tiny_model_dir, prefer_tflite=False)
    assert keras_classifier.backend == "keras"
    faces = random_faces(8, seed=2)
    served, reference = tiny_classifier.predict_faces(faces), keras_classifier.predict_faces(faces)
    assert np.abs(served - reference).max() < 0.05  # int8 weights, float activations


def test_flip_tta_runs_two_views(tiny_classifier: EmotionClassifier, monkeypatch):
    counting = CountingPredict(tiny_classifier)
    monkeypatch.setattr(tiny_classifier, "_predict_batch", counting)
    probabilities = tiny_classifier.predict_faces(random_faces(3), tta="flip")
    assert probabilities.shape == (3, 7) and counting.batch_sizes == [3, 3]


def test_wrong_face_shape_is_a_clear_error(tiny_classifier: EmotionClassifier):
    with pytest.raises(ValueError, match=r"expected faces of shape \(N, 32, 32\), got \(2, 48, 48\)"):
        tiny_classifier.predict_faces(random_faces(2, size=48))


def test_prepare_face_crops_a_box_or_the_whole_image(tiny_classifier: EmotionClassifier, astronaut_rgb, astronaut_face_box):
    crop = tiny_classifier.prepare_face(astronaut_rgb, astronaut_face_box)
    whole = tiny_classifier.prepare_face(astronaut_rgb)
    assert crop.shape == whole.shape == (32, 32) and crop.dtype == np.uint8
    assert not np.array_equal(crop, whole)


def test_one_classifier_serves_several_threads(tiny_classifier: EmotionClassifier):
    batches = [random_faces(size, seed=size) for size in (1, 2, 3, 4, 1, 5, 2, 3)]
    expected = [tiny_classifier.predict_faces(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(tiny_classifier.predict_faces, batches))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


# --- detector + classifier ---------------------------------------------------------------------


def test_analyze_classifies_every_face_in_one_model_call(recognizer, multi_face_rgb, monkeypatch):
    counting = CountingPredict(recognizer.classifier)
    monkeypatch.setattr(recognizer.classifier, "_predict_batch", counting)
    result = recognizer.analyze(multi_face_rgb, DetectorSettings())
    assert isinstance(result, ImageResult)
    assert counting.batch_sizes == [3]  # all faces batched into one call
    assert (result.width, result.height) == (640, 480) and not result.whole_image
    assert set(result.timings_ms) == {"detect", "classify"}
    assert [face.index for face in result.faces] == [1, 2, 3]
    for face in result.faces:
        assert isinstance(face, FacePrediction) and isinstance(face.box, Box)
        assert 0.5 <= face.detection_score <= 1.0
        assert face.probabilities.shape == (7,)
        assert face.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert face.label == CLASSES[int(np.argmax(face.probabilities))]
        assert face.confidence == pytest.approx(face.probabilities.max())
        assert face.crop.shape == (32, 32)


def test_face_row_for_tables_and_json(recognizer, astronaut_rgb):
    face = recognizer.analyze(astronaut_rgb).faces[0]
    row = face.as_row()
    assert list(row)[:7] == ["face", "x", "y", "width", "height", "emotion", "confidence"]
    assert list(row)[7:] == list(CLASSES)
    assert row["face"] == 1 and row["emotion"] == face.label
    json.dumps(row)  # plain Python numbers only


def test_no_face_means_no_model_call(recognizer, monkeypatch):
    counting = CountingPredict(recognizer.classifier)
    monkeypatch.setattr(recognizer.classifier, "_predict_batch", counting)
    result = recognizer.analyze(np.full((240, 320, 3), 90, np.uint8))
    assert result.faces == [] and counting.batch_sizes == []


def test_classify_whole_image_treats_the_picture_as_one_face(recognizer, astronaut_rgb):
    result = recognizer.classify_whole_image(astronaut_rgb)
    assert result.whole_image and len(result.faces) == 1
    face = result.faces[0]
    assert face.box == Box(0, 0, 512, 512) and face.index == 1
    assert face.probabilities.shape == (7,)


# --- broken model folders --------------------------------------------------------------------------


def copy_model(source: Path, target: Path, files=(CARD_FILE, KERAS_FILE, TFLITE_FILE)) -> Path:
    target.mkdir(parents=True)
    for name in files:
        shutil.copy2(source / name, target / name)
    return target


def edit_card(folder: Path, **changes) -> None:
    card = json.loads((folder / CARD_FILE).read_text())
    card.update(changes)
    (folder / CARD_FILE).write_text(json.dumps(card))


def test_model_folder_without_card(tmp_path: Path, tiny_model_dir: Path):
    folder = copy_model(tiny_model_dir, tmp_path / "nocard", files=(KERAS_FILE, TFLITE_FILE))
    with pytest.raises(ModelError, match=r"nocard: not a model folder \(it has no card\.json\)"):
        EmotionClassifier(folder)
    with pytest.raises(ModelError, match=r"missing: no such model folder"):
        EmotionClassifier(tmp_path / "missing")


@pytest.mark.parametrize("prefer_tflite", [True, False], ids=["tflite", "keras"])
def test_input_size_that_does_not_match_the_network(tmp_path: Path, tiny_model_dir: Path, prefer_tflite: bool):
    folder = copy_model(tiny_model_dir, tmp_path / "mismatch")
    edit_card(folder, input_size=48)
    expected_file = TFLITE_FILE if prefer_tflite else KERAS_FILE
    with pytest.raises(
        ModelError,
        match=rf"{expected_file}: the network takes input \(32, 32, 1\), but card\.json says \(48, 48, 1\)",
    ):
        EmotionClassifier(folder, prefer_tflite=prefer_tflite)


def test_card_without_model_files(tmp_path: Path, tiny_model_dir: Path):
    folder = copy_model(tiny_model_dir, tmp_path / "cardonly", files=(CARD_FILE,))
    with pytest.raises(ModelError, match=r"cardonly: the folder has a card but neither model\.tflite nor model\.keras"):
        EmotionClassifier(folder)


def test_corrupt_model_files(tmp_path: Path, tiny_model_dir: Path):
    folder = copy_model(tiny_model_dir, tmp_path / "corrupt")
    (folder / TFLITE_FILE).write_bytes(b"not a flatbuffer at all" * 10)
    (folder / KERAS_FILE).write_bytes(b"not a zip archive")
    with pytest.raises(ModelError, match=r"model\.tflite: not a valid TFLite model"):
        EmotionClassifier(folder)
    with pytest.raises(ModelError, match=r"model\.keras: cannot be loaded as a Keras model"):
        EmotionClassifier(folder, prefer_tflite=False)
