"""fer_core.pipeline: the tf.data input pipelines, the training augmentation and mixup."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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


# --- photometric jitter (train --photo-augment) ---------------------------------------------------

ONLY_PHOTOMETRIC = dict(flip=False, rotation_degrees=0, shift=0, zoom=0, erasing_probability=0.0, photometric_probability=1.0)


def ramps(count: int) -> tf.Tensor:
    """Faces whose pixels run from 0.3 to 0.7 across: mid-grey with a known mean and spread."""
    row = np.linspace(0.3, 0.7, 48, dtype=np.float32)
    return tf.constant(np.broadcast_to(row[None, None, :, None], (count, 48, 48, 1)).copy())


def jitter(images: tf.Tensor, **settings) -> np.ndarray:
    tf.random.set_seed(21)
    return BatchAugmenter(AugmentConfig(**{**ONLY_PHOTOMETRIC, **settings}), seed=4)(images).numpy()


def test_photometric_jitter_reaches_only_its_share_of_the_faces_and_stays_in_range():
    from fer_core.pipeline import PHOTO_AUGMENT

    images = ramps(200)
    out = BatchAugmenter(PHOTO_AUGMENT, seed=4)(images).numpy()
    assert out.shape == images.shape and 0.0 <= out.min() and out.max() <= 1.0
    config = dict(dataclasses.asdict(PHOTO_AUGMENT), **{key: value for key, value in ONLY_PHOTOMETRIC.items() if key != "photometric_probability"})
    untouched = (np.abs(jitter(images, **config) - images.numpy()).max(axis=(1, 2, 3)) == 0).sum()
    assert 60 <= untouched <= 140, f"{untouched} of 200 faces untouched at probability 0.5"


def test_each_photometric_change_does_what_it_names():
    images = ramps(64)
    source = images.numpy()
    # gamma in [1/2, 2]: a monotone remap, so the ramp keeps its order, and both darker and lighter faces occur
    gamma = jitter(images, gamma=2.0)
    assert (np.diff(gamma[:, 0, :, 0], axis=1) >= -1e-6).all()
    means = gamma.mean(axis=(1, 2, 3))
    assert means.min() < source.mean() - 0.05 and means.max() > source.mean() + 0.05
    # contrast +-40% around the face's own mean: the mean stays, the spread scales by 0.6-1.4
    contrast = jitter(images, contrast=0.4)
    np.testing.assert_allclose(contrast.mean(axis=(1, 2, 3)), source.mean(), atol=1e-4)
    ratio = contrast.std(axis=(1, 2, 3)) / source.std()
    assert ratio.min() >= 0.6 - 1e-3 and ratio.max() <= 1.4 + 1e-3 and ratio.max() - ratio.min() > 0.3
    # brightness: one offset per face, at most 0.15
    offset = (jitter(images, brightness=0.15) - source).reshape(64, -1)
    assert np.ptp(offset, axis=1).max() < 1e-5 and np.abs(offset).max() <= 0.15 + 1e-5
    # noise: zero-mean, per-face sigma at most 12 grey levels
    noise = (jitter(images, noise=12 / 255) - source).reshape(64, -1)
    assert noise.std(axis=1).max() <= 12 / 255 * 1.1 and noise.std(axis=1).mean() > 2 / 255
    # blur towards the 3x3 binomial: a checkerboard only loses contrast
    checker = tf.constant(np.kron(np.ones((24, 24)), [[0.2, 0.8], [0.8, 0.2]])[None, :, :, None].repeat(32, 0), tf.float32)
    blurred = jitter(checker, blur_probability=1.0)
    spread = blurred.std(axis=(1, 2, 3))
    assert spread.max() <= 0.3 + 1e-5 and spread.min() < 0.2
    # JPEG: a re-encoded face differs from its source by compression error, not by much
    textured = tf.constant(faces(16, seed=6)[..., None] / 255.0, tf.float32)
    jpeg = jitter(textured, jpeg_probability=1.0)
    error = np.abs(jpeg - textured.numpy()).mean(axis=(1, 2, 3))
    assert (error > 0.01).all() and (error < 0.35).all()


def test_the_jpeg_step_is_what_libjpeg_makes_of_a_face():
    """augmentation.jpeg_roundtrip (tensor ops, so it runs on the accelerator path too) against
    OpenCV's JPEG encoder and decoder, on 48x48 grayscale crops of the sample photos."""
    import cv2

    from fer_core.augmentation import jpeg_roundtrip

    crops = []
    for name in ("astronaut.png", "camera.png"):
        gray = cv2.imread(str(Path(__file__).resolve().parent.parent / "sample_images" / name), cv2.IMREAD_GRAYSCALE)
        crops.append(cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA))
        crops += [gray[top : top + 48, left : left + 48] for top, left in ((100, 120), (200, 260), (300, 50))]
    crops = np.stack(crops)
    for quality in (20, 50, 90):
        libjpeg = np.stack([
            cv2.imdecode(cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
            for crop in crops
        ]).astype(np.float32)
        ours = np.asarray(jpeg_roundtrip(crops[..., None] / np.float32(255), np.full(len(crops), quality)))[..., 0] * 255
        assert np.abs(ours - libjpeg).mean() < 0.3, quality  # integer vs float DCT: a fraction of a grey level
        assert abs(np.abs(ours - crops).mean() - np.abs(libjpeg - crops).mean()) < 0.05
