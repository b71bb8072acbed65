"""fer_core.zoo: every registered architecture builds, predicts and takes a training step.

Parametrised over `zoo.list_models()` (as timm's tests are), so a newly registered network is
tested without editing this file. Batches are tiny to keep the suite fast on a 2-core CPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from fer_core import zoo
from fer_core.classes import NUM_CLASSES
from fer_core.errors import FerError
from fer_core.training import TrainConfig, _make_optimizer


def test_the_zoo_has_the_team_network_and_the_seed_networks():
    assert {"resnet_fer", "resnet_fer_small", "seed_cnn3", "vgg4", "mobilenet_transfer", "tiny_cnn32"} <= set(
        zoo.list_models()
    )
    assert zoo.list_models() == sorted(zoo.list_models())


@pytest.mark.parametrize("name", zoo.list_models())
def test_architecture_builds_predicts_and_trains_one_step(name: str):
    spec = zoo.get_spec(name)
    keras.utils.set_random_seed(0)
    model = zoo.create_model(name)
    size = spec.input_size
    assert model.input_shape == (None, size, size, 1)
    assert model.output_shape == (None, NUM_CLASSES)
    assert model.count_params() > 0

    rng = np.random.default_rng(0)
    images = rng.random((2, size, size, 1), dtype=np.float32)
    labels = keras.utils.to_categorical([3, 5], NUM_CLASSES)
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, NUM_CLASSES)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    config = TrainConfig(architecture=name, train_data="unused", out="unused").resolved()
    assert config.optimizer == spec.optimizer and config.batch_size == spec.batch_size
    # eager: tracing a train function costs more than the single step it would speed up
    model.compile(
        optimizer=_make_optimizer(config),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        run_eagerly=True,
    )
    before = [weight.copy() for weight in model.get_weights()]
    loss = float(np.ravel(model.train_on_batch(images, labels))[0])
    assert np.isfinite(loss) and loss > 0
    after = model.get_weights()
    assert any(not np.array_equal(old, new) for old, new in zip(before, after, strict=True)), "the step changed no weight"


def test_spec_describes_itself_without_the_builder():
    info = zoo.get_spec("resnet_fer").describe()
    assert info["name"] == "resnet_fer" and info["input_size"] == 48
    assert "builder" not in info and info["description"]


def test_unknown_architecture_names_the_available_ones():
    with pytest.raises(FerError, match=r"unknown architecture 'resnet99'; available: .*resnet_fer"):
        zoo.create_model("resnet99")


def test_registering_a_name_twice_warns():
    name = "tiny_cnn32"
    original = zoo._MODELS[name]
    try:
        with pytest.warns(UserWarning, match="registered twice"):
            zoo.register_model(name, description="dup", source="test", input_size=32)(original.builder)
    finally:
        zoo._MODELS[name] = original


def test_mobilenet_weights_file_must_exist_and_nothing_is_downloaded(tmp_path: Path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_download)
    missing = tmp_path / "mobilenet_1_0_96_tf_no_top.h5"
    with pytest.raises(FerError, match=r"mobilenet_1_0_96_tf_no_top\.h5: MobileNet weights file not found \(nothing is downloaded"):
        zoo.create_model("mobilenet_transfer", weights=str(missing))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras notes that 96x96 has no ImageNet weights of its own
        model = zoo.create_model("mobilenet_transfer")  # from scratch: no download either
    assert model.input_shape == (None, 96, 96, 1)
