"""tf.data input pipelines and the training augmentation.

Augmentation runs on whole batches inside tf.data (vectorised, parallel to the model step),
never inside the model, so saved models and their TFLite exports contain no training-only ops.
The recipe follows what reaches >70% on FER2013: flips, small rotations, shifts and zooms
(random crops), random erasing, and optionally mixup (Zhang et al. 2018) for runs that overfit.
`PHOTO_AUGMENT` adds photometric jitter (exposure, contrast, brightness, sensor noise, blur, JPEG)
for faces from photos and webcams, the conditions `benchmarks/bench_robustness.py` found the
shipped models weakest in.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fer_core.augmentation import (
    PHOTO_AUGMENT,
    PHOTOMETRIC_DRAWS,
    AugmentConfig,
    blend_with_mirror_rows,
    erasing_mask,
    geometric_layers,
    photometric_jitter,
)
from fer_core.classes import NUM_CLASSES

__all__ = ["PHOTO_AUGMENT", "AugmentConfig", "BatchAugmenter", "make_dataset", "mixup"]


def _random_erasing(images: tf.Tensor, probability: float, area: tuple[float, float]) -> tf.Tensor:
    """Blank one random rectangle per image with noise (Zhong et al. 2017), vectorised over a batch;
    the rectangle is `augmentation.erasing_mask`'s, as on the accelerator path."""
    shape = tf.shape(images)
    batch = shape[0]
    mask = erasing_mask(images.shape[1], images.shape[2], area, tf.random.uniform([4, batch]))
    apply = tf.random.uniform([batch]) < probability
    mask = tf.logical_and(mask, apply[:, None, None, None])
    noise = tf.random.uniform(shape, dtype=images.dtype)
    return tf.where(mask, noise, images)


def _photometric(images: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """`augmentation.photometric_jitter` with TensorFlow's random draws (the accelerator path's
    `PhotometricJitter` layer draws them with Keras's)."""
    batch = tf.shape(images)[0]
    return photometric_jitter(images, config, tf.random.uniform([PHOTOMETRIC_DRAWS, batch]), tf.random.normal(tf.shape(images)))


class BatchAugmenter:
    """Random geometric, erasing and (optional) photometric augmentation for batches of
    (N, S, S, 1) floats in [0, 1]."""

    def __init__(self, config: AugmentConfig | None = None, seed: int | None = None):
        self.config = config = config or AugmentConfig()
        self.steps = geometric_layers(config, seed)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        for step in self.steps:
            images = step(images, training=True)
        if self.config.photometric_probability > 0:  # before erasing: the erased patch is noise already
            images = _photometric(images, self.config)
        if self.config.erasing_probability > 0:
            images = _random_erasing(images, self.config.erasing_probability, self.config.erasing_area)
        return tf.clip_by_value(images, 0.0, 1.0)


def mixup(images: tf.Tensor, labels: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Blend each example with another of the same batch, weight lam ~ Beta(alpha, alpha).

    lam is folded to >= 0.5 so every blend keeps its own image dominant; labels are blended with
    the same weights, so they stay distributions (one-hot or label-smoothed inputs both work). The
    batch is shuffled, so each example's partner is its mirror row, as in the accelerator path's
    `MixupPairs` (the same `blend_with_mirror_rows`; here the draws are tf.data's).
    """
    batch = tf.shape(images)[0]
    first = tf.random.gamma([batch], alpha)
    second = tf.random.gamma([batch], alpha)
    lam = first / (first + second)
    lam = tf.maximum(lam, 1.0 - lam)
    return blend_with_mirror_rows(images, lam), blend_with_mirror_rows(labels, lam)


def _to_inputs(
    images: tf.Tensor, labels: tf.Tensor, input_size: int, soft: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 (N, S, S) batch -> float (N, size, size, 1) in [0, 1] and one-hot labels (with the
    teacher's probabilities appended when distilling: see fer_core.distillation)."""
    images = tf.cast(images, tf.float32)[..., tf.newaxis] / 255.0
    if images.shape[1] != input_size:
        images = tf.image.resize(images, (input_size, input_size), method="area" if images.shape[1] > input_size else "bilinear")
    targets = tf.one_hot(labels, NUM_CLASSES)
    if soft is not None:
        targets = tf.concat([targets, tf.cast(soft, tf.float32)], axis=-1)
    return images, targets


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    input_size: int,
    batch_size: int,
    training: bool,
    augment: AugmentConfig | None = None,
    seed: int | None = None,
    mixup_alpha: float = 0.0,
    soft_targets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """A batched tf.data pipeline over in-memory faces; shuffled and augmented when training.

    `mixup_alpha` > 0 blends training batches after the geometric augmentation (see `mixup`).
    `soft_targets` (N, 7): a teacher's probabilities, appended to each one-hot label row.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if soft_targets is not None and soft_targets.shape != (len(images), NUM_CLASSES):
        raise ValueError(f"soft targets of shape {soft_targets.shape} for {len(images)} images")
    columns = (images, labels.astype(np.int32))
    if soft_targets is not None:
        columns += (soft_targets.astype(np.float32),)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(lambda *batch: _to_inputs(*batch[:2], input_size, *batch[2:]), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        augmenter = BatchAugmenter(augment, seed=seed)
        dataset = dataset.map(lambda x, y: (augmenter(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training and mixup_alpha > 0:
        dataset = dataset.map(lambda x, y: mixup(x, y, mixup_alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
