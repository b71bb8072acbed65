"""fer_core.pipeline: the tf.data input pipelines, the training augmentation and mixup."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from fer_core.classes import NUM_CLASSES
from fer_core.pipeline import AugmentConfig, BatchAugmenter, make_dataset, mixup


def faces(count: int, size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size), dtype=np.uint8)


def test_evaluation_pipeline_keeps_order_and_scales_to_unit_range():
    images, labels = faces(10), np.arange(10) % NUM_CLASSES
    batches = list(make_dataset(images, labels, 48, batch_size=4, training=False))
    assert [len(x) for x, _ in batches] == [4, 4, 2]  # the last partial batch is kept
    x = np.concatenate([x.numpy() for x, _ in batches])
    y = np.concatenate([y.numpy() for _, y in batches])
    assert x.shape == (10, 48, 48, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], images / 255.0, atol=1e-6)
    np.testing.assert_array_equal(y.argmax(axis=1), labels)


def test_images_of_another_size_are_resized_to_the_model_input():
    (x, _), = make_dataset(faces(3, size=64), np.zeros(3, int), 48, batch_size=8, training=False)
    assert x.shape == (3, 48, 48, 1)


def test_training_pipeline_shuffles_and_augments_within_range():
    images, labels = faces(64, seed=1), np.arange(64) % NUM_CLASSES
    dataset = make_dataset(images, labels, 48, batch_size=64, training=True, augment=AugmentConfig(), seed=3)
    (x, y), = dataset
    x, y = x.numpy(), y.numpy()
    assert x.shape == (64, 48, 48, 1) and 0.0 <= x.min() and x.max() <= 1.0
    assert sorted(y.argmax(axis=1)) == sorted(labels)  # every example once, in another order
    assert not np.array_equal(y.argmax(axis=1), labels)
    originals = {int(label): images[labels == label] / 255.0 for label in np.unique(labels)}
    unchanged = sum(
        any(np.allclose(x[i, ..., 0], original, atol=1e-6) for original in originals[int(y[i].argmax())])
        for i in range(len(x))
    )
    assert unchanged < 8, f"{unchanged} of 64 images came through the augmentation untouched"


def test_random_erasing_blanks_a_rectangle_when_it_is_the_only_step():
    config = AugmentConfig(flip=False, rotation_degrees=0, shift=0, zoom=0, erasing_probability=1.0)
    zeros = tf.zeros((16, 48, 48, 1))
    erased = BatchAugmenter(config, seed=5)(zeros).numpy()[..., 0]
    for image in erased:
        rows, cols = np.nonzero(image)
        assert len(rows) > 0, "nothing was erased"
        box = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.size <= 0.2 * 48 * 48 * 1.2  # at most the largest area (plus rounding to pixels)
        assert (box > 0).mean() > 0.95  # one filled rectangle, not scattered pixels


def test_mixup_blends_images_and_labels_with_the_same_weights():
    """Seven images, one per class, each a constant grey c_k: a blended image's pixels must equal
    sum_k label_k * c_k, and every blend keeps at least half of its own example."""
    values = np.linspace(0.1, 0.9, NUM_CLASSES).astype(np.float32)
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (NUM_CLASSES, 8, 8, 1)).copy())
    labels = tf.one_hot(np.arange(NUM_CLASSES), NUM_CLASSES)
    tf.random.set_seed(11)
    mixed_images, mixed_labels = (tensor.numpy() for tensor in mixup(images, labels, alpha=0.4))
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, atol=1e-6)
    assert (np.diag(mixed_labels) >= 0.5 - 1e-6).all()
    expected = mixed_labels @ values
    np.testing.assert_allclose(mixed_images.reshape(NUM_CLASSES, -1), np.repeat(expected[:, None], 64, axis=1), atol=1e-5)
    assert (np.diag(mixed_labels) < 1.0 - 1e-3).sum() >= 3, "alpha 0.4 should blend most examples"


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_mixup_is_applied_only_when_asked(alpha: float):
    images, labels = faces(32, seed=2), np.arange(32) % NUM_CLASSES
    (_, y), = make_dataset(images, labels, 48, batch_size=32, training=True, seed=1, mixup_alpha=alpha)
    soft = (y.numpy().max(axis=1) < 1.0).sum()
    assert (soft > 0) == (alpha > 0)
