"""Process-wide resources, loaded once per process with `st.cache_resource`.

These objects are shared by every session and every frame thread: EmotionClassifier and the
detectors serialise their interpreter calls with a lock, so sharing them is safe.
"""

from __future__ import annotations

import gc

import streamlit as st

from fer_core.dataset_store import DatasetStore, default_root
from fer_core.detection import FaceDetector, create_detector
from fer_core.inference import EmotionClassifier, EmotionRecognizer
from fer_core.registry import ModelRegistry, RegisteredModel


@st.cache_resource(show_spinner="Loading the emotion model...")
def load_classifier(model_dir: str, card_sha: str) -> EmotionClassifier:
    """`card_sha` (the weights' checksum) is part of the cache key so a retrained folder reloads."""
    classifier = EmotionClassifier(model_dir)
    freeze_loaded_objects()
    return classifier


@st.cache_resource(show_spinner="Loading the face detector...")
def load_detector(name: str) -> FaceDetector:
    detector = create_detector(name)
    freeze_loaded_objects()
    return detector


def freeze_loaded_objects() -> None:
    """Put everything alive now (TensorFlow's and the models' ~430k objects) out of the garbage
    collector's reach, once per loaded resource.

    Why: after every script run (each live-panel fragment rerun too, every 1-5 s) Streamlit
    runs a full `gc.collect()` twice, through `keras.backend.clear_session()` (TensorFlow imports
    keras) and `runner.postScriptGC`. With TensorFlow loaded each took ~230 ms holding the GIL,
    which starved the webcam's frame thread down to ~1 fps. Frozen, they take well under 1 ms;
    objects made later (per run) are still collected as usual. The price: a model later dropped
    from the cache keeps its reference cycles (if any) until the process ends.
    """
    gc.collect()
    gc.freeze()


def model_checksum(model: RegisteredModel) -> str:
    """The served weights' checksum from the card: changes when a folder is retrained in place."""
    return model.card.sha256.get("model.tflite") or model.card.sha256.get("model.keras", "")


def model_cache_key(model: RegisteredModel) -> str:
    """A model as part of a cache key: its folder and the served weights' checksum."""
    return f"{model.path.resolve()}:{model_checksum(model)}"


def load_recognizer(model: RegisteredModel, detector_name: str) -> EmotionRecognizer:
    return EmotionRecognizer(load_detector(detector_name), load_classifier(str(model.path), model_checksum(model)))


def registry() -> ModelRegistry:
    # Cheap (reads a few small JSON files) and must see models registered since the last run.
    return ModelRegistry()


@st.cache_resource(show_spinner=False)
def load_dataset_store(root: str) -> DatasetStore:
    """One store object per dataset folder, shared by every session and thread (it holds only
    paths; each call opens its own SQLite connection). Keyed by the folder, so FER_DATASET_DIR
    pointing elsewhere gets its own.

    Freezing here matters for the Label view, which never loads a model: without it every key
    press paid Streamlit's post-run full GC over the app's ~200k imported objects (150-300 ms
    holding the GIL, so the next face reached the browser that much later)."""
    store = DatasetStore(root)
    freeze_loaded_objects()
    return store


def dataset_store() -> DatasetStore:
    """The custom dataset of `fer_core.dataset_store.default_root()` (FER_DATASET_DIR or data/custom);
    DatasetError when that folder cannot be used."""
    return load_dataset_store(str(default_root().resolve()))
