"""Shared fixtures of the engine tests (fer_core): paths, sample images, tiny datasets, a model.

Everything here is real: images are decoded from the committed samples or drawn with numpy,
datasets are written as real files in tmp folders, and the tiny model folder is built, exported
to TFLite and described by a card exactly like a finalized run. Expensive objects (detectors,
models) are session-scoped so TensorFlow work happens once per test run.
"""
from __future__ import annotations

# NOTE: load the WebRTC stack before any test module imports TensorFlow: importing aiortc's
# pylibsrtp after TensorFlow 2.21 crashes the interpreter (see ui/__init__.py).
import streamlit_webrtc  # noqa: E402, F401  isort: skip

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from fer_core.classes import CLASSES, CSV_CODE_TO_CLASS

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FER_DIR = REPO_ROOT.parent / "shared" / "data" / "fer2013"

# The region around the astronaut's face in sample_images/astronaut.png that `multi_face_rgb`
# pastes three times; BlazeFace finds the face at (174, 70) 105x105, Haar at (177, 67) 93x93,
# i.e. centred at (86, 92) of this region with a side of about 105.
ASTRONAUT_FACE_REGION = (140, 30, 175, 185)  # x, y, width, height
ASTRONAUT_FACE_BOX = (174, 70, 105, 105)


@pytest.fixture(scope="session", autouse=True)
def private_runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trainings started by tests take the one-training-per-machine lock in their own runs
    folder, never in the repository's runs/ (where a real training may be running)."""
    from fer_core.runs import RUNS_DIR_ENV

    root = tmp_path_factory.mktemp("runs")
    previous = os.environ.get(RUNS_DIR_ENV)
    os.environ[RUNS_DIR_ENV] = str(root)
    yield root
    if previous is None:
        os.environ.pop(RUNS_DIR_ENV, None)
    else:
        os.environ[RUNS_DIR_ENV] = previous


# --- paths and sample images ---------------------------------------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_images_dir() -> Path:
    return REPO_ROOT / "sample_images"


@pytest.fixture(scope="session")
def astronaut_path(sample_images_dir: Path) -> Path:
    return sample_images_dir / "astronaut.png"


@pytest.fixture(scope="session")
def camera_path(sample_images_dir: Path) -> Path:
    return sample_images_dir / "camera.png"


@pytest.fixture(scope="session")
def astronaut_rgb(astronaut_path: Path) -> np.ndarray:
    from fer_core.image_io import decode_image

    return decode_image(astronaut_path).rgb


@pytest.fixture(scope="session")
def astronaut_face_box():
    """Where the detectors find the astronaut's face in sample_images/astronaut.png."""
    from fer_core.preprocessing import Box

    return Box(*ASTRONAUT_FACE_BOX)


@pytest.fixture(scope="session")
def astronaut_face_crop(astronaut_rgb: np.ndarray) -> np.ndarray:
    """The astronaut's head and shoulders (RGB), for composing test pictures."""
    x, y, width, height = ASTRONAUT_FACE_REGION
    return astronaut_rgb[y : y + height, x : x + width].copy()


def compose_multi_face(astronaut: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """A 640x480 frame holding the astronaut's face three times at different sizes.

    Returns the image and, per copy, the expected face (centre_x, centre_y, side) in it.
    """
    x, y, width, height = ASTRONAUT_FACE_REGION
    face = Image.fromarray(astronaut[y : y + height, x : x + width])
    canvas = Image.new("RGB", (640, 480), (120, 120, 120))
    placements = [(20, 40, 200), (260, 60, 150), (450, 260, 110)]
    for left, top, side in placements:
        canvas.paste(face.resize((side, round(side * height / width)), Image.Resampling.LANCZOS), (left, top))
    faces = [(left + 86 * side / width, top + 92 * side / width, 105 * side / width) for left, top, side in placements]
    return np.asarray(canvas), faces


@pytest.fixture(scope="session")
def multi_face(astronaut_rgb: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """(image, expected faces): three copies of the astronaut's face, boxes of about 120, 90
    and 65 px, on a 640x480 frame; see `compose_multi_face`."""
    return compose_multi_face(astronaut_rgb)


@pytest.fixture(scope="session")
def multi_face_rgb(multi_face) -> np.ndarray:
    return multi_face[0]


# --- the real FER2013 data (only on machines that have it) ---------------------------------


@pytest.fixture(scope="session")
def fer_data_dir() -> Path:
    """../shared/data/fer2013 (train/ and val/ image folders); skips when this machine lacks it."""
    if not SHARED_FER_DIR.is_dir():
        pytest.skip(f"FER2013 data not present at {SHARED_FER_DIR} (only on the development machine)")
    return SHARED_FER_DIR


# --- tiny synthetic datasets -----------------------------------------------------------------


def synthetic_face(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) uint8 image whose pattern depends on the class, plus noise: learnable
    enough for a training smoke test, and obviously not a real face."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    angle = np.pi * label / len(CLASSES)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * (rows * np.cos(angle) + cols * np.sin(angle)))
    noisy = stripes * 200 + rng.normal(0, 20, (size, size)) + 25
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def make_image_folder() -> Callable[..., Path]:
    """Factory: write `<root>/<class>/NN.png` synthetic faces and return root.

    make_image_folder(root, per_class=10, size=48, classes=CLASSES, seed=0)
    """

    def make(
        root: Path, per_class: int = 10, size: int = 48, classes: Sequence[str] = CLASSES, seed: int = 0
    ) -> Path:
        rng = np.random.default_rng(seed)
        for name in classes:
            folder = Path(root) / name
            folder.mkdir(parents=True, exist_ok=True)
            label = CLASSES.index(name) if name in CLASSES else 0
            for index in range(per_class):
                Image.fromarray(synthetic_face(label, size, rng)).save(folder / f"{index:02d}.png")
        return Path(root)

    return make


@pytest.fixture(scope="session")
def make_training_folders(make_image_folder) -> Callable[[Path], dict[str, Path]]:
    """Factory: under `base`, 70 synthetic training faces (10 a class), 14 validation faces, and
    where a training run goes; returns {"train", "val", "run"} paths."""

    def make(base: Path) -> dict[str, Path]:
        return {
            "train": make_image_folder(base / "train", per_class=10, seed=1),
            "val": make_image_folder(base / "val", per_class=2, seed=2),
            "run": base / "run",
        }

    return make


CSV_CLASS_TO_CODE = {name: code for code, name in CSV_CODE_TO_CLASS.items()}


@pytest.fixture(scope="session")
def make_fer_csv() -> Callable[..., Path]:
    """Factory: write a Kaggle-style `emotion,pixels,Usage` CSV and return its path.

    make_fer_csv(path, rows=None, per_class=2, side=48, usages=("Training",))
    rows: explicit rows (lists of cells written as-is, for bad-input tests); otherwise
    `per_class` synthetic faces of every class for each Usage value, in CSV code order.
    """

    def make(
        path: Path,
        rows: Sequence[Sequence[str]] | None = None,
        per_class: int = 2,
        side: int = 48,
        usages: Sequence[str] = ("Training",),
        header: Sequence[str] = ("emotion", "pixels", "Usage"),
    ) -> Path:
        if rows is None:
            rng = np.random.default_rng(0)
            rows = []
            for usage in usages:
                for code in sorted(CSV_CODE_TO_CLASS):
                    label = CLASSES.index(CSV_CODE_TO_CLASS[code])
                    for _ in range(per_class):
                        pixels = synthetic_face(label, side, rng)
                        rows.append([str(code), " ".join(str(value) for value in pixels.ravel()), usage])
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        return Path(path)

    return make


# --- a tiny real model folder ----------------------------------------------------------------


def build_model_folder(folder: Path, architecture: str = "tiny_cnn32", seed: int = 7) -> Path:
    """An untrained zoo network saved like a finalized run: model.keras, model.tflite, card.json.

    Untrained weights are enough to check shapes, batching, errors and the registry; what a
    trained model predicts is checked in test_shipped_model.py.
    """
    import keras

    from fer_core import zoo
    from fer_core.card import KERAS_FILE, TFLITE_FILE, ModelCard, sha256_of, write_card
    from fer_core.export import to_tflite

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = zoo.create_model(architecture)
    model.save(folder / KERAS_FILE)
    (folder / TFLITE_FILE).write_bytes(to_tflite(model, "int8"))
    card = ModelCard(
        name=folder.name,
        architecture=architecture,
        input_size=zoo.get_spec(architecture).input_size,
        parameters=int(model.count_params()),
        flops=zoo.count_flops(model),
        metrics={"val_accuracy": 0.25, "best_tta": "none"},
        notes="untrained test model",
    )
    card.sha256 = {name: sha256_of(folder / name) for name in (KERAS_FILE, TFLITE_FILE)}
    write_card(folder, card)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (tiny_cnn32, 32x32 input, untrained) built once per test session."""
    return build_model_folder(tmp_path_factory.mktemp("models") / "tiny_test")


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir: Path):
    from fer_core.inference import EmotionClassifier

    return EmotionClassifier(tiny_model_dir)


@pytest.fixture(scope="session")
def blazeface_detector():
    from fer_core.detection import create_detector

    return create_detector("blazeface")


@pytest.fixture(scope="session")
def haar_detector():
    from fer_core.detection import create_detector

    return create_detector("haar")


# --- the Streamlit app (AppTest and browser tests; tests/test_app_shell.py and friends) ------


@pytest.fixture(scope="session")
def app_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models folder the app tests use: the registry's own (`models/`, or $FER_MODELS_DIR)
    when it holds a usable model, otherwise one with a tiny untrained model built for the tests."""
    from fer_core.registry import ModelRegistry

    registry = ModelRegistry()
    if registry.list():
        return registry.root
    root = tmp_path_factory.mktemp("app_models")
    build_model_folder(root / "tiny_test")
    return root


@pytest.fixture
def app_registry(app_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the in-process registry (used by AppTest runs) at `app_models_dir`."""
    import fer_core.registry

    monkeypatch.setattr(fer_core.registry, "DEFAULT_MODELS_DIR", app_models_dir)
    return app_models_dir


@pytest.fixture
def app_model_is_trained(app_models_dir: Path) -> bool:
    """False when the app tests run on the tiny untrained stand-in (no model in models/)."""
    from fer_core.registry import ModelRegistry

    return ModelRegistry(app_models_dir).default().card.notes != "untrained test model"
