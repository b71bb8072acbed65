"""Process-wide resources, loaded once per process with `st.cache_resource`.

These objects are shared by every session and every frame thread: EmotionClassifier and the
detectors serialise their interpreter calls with a lock, so sharing them is safe.
"""

from __future__ import annotations

import streamlit as st

from fer_core.detection import FaceDetector, create_detector
from fer_core.inference import EmotionClassifier, EmotionRecognizer
from fer_core.registry import ModelRegistry, RegisteredModel


@st.cache_resource(show_spinner="Loading the emotion model...")
def load_classifier(model_dir: str, card_sha: str) -> EmotionClassifier:
    """`card_sha` (the weights' checksum) is part of the cache key so a retrained folder reloads."""
    return EmotionClassifier(model_dir)


@st.cache_resource(show_spinner="Loading the face detector...")
def load_detector(name: str) -> FaceDetector:
    return create_detector(name)


def model_checksum(model: RegisteredModel) -> str:
    """The served weights' checksum from the card: changes when a folder is retrained in place."""
    return model.card.sha256.get("model.tflite") or model.card.sha256.get("model.keras", "")


def load_recognizer(model: RegisteredModel, detector_name: str) -> EmotionRecognizer:
    return EmotionRecognizer(load_detector(detector_name), load_classifier(str(model.path), model_checksum(model)))


def registry() -> ModelRegistry:
    # Cheap (reads a few small JSON files) and must see models registered since the last run.
    return ModelRegistry()
