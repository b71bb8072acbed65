"""The training augmentation's settings and its backend-neutral parts (Keras layers and ops only).

Two input paths use them: `fer_core.pipeline` applies them to batches inside tf.data (the CPU path,
TensorFlow), and `fer_core.accelerated` runs them inside the jitted training step on a GPU machine
that has JAX but no TensorFlow. Keeping the geometry and the erasing rectangle here, written once,
is what makes a model trained on either path the same recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import ops


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotation_degrees: float = 10.0
    shift: float = 0.1  # fraction of the side
    zoom: float = 0.1
    erasing_probability: float = 0.5
    erasing_area: tuple[float, float] = (0.02, 0.2)
    # Photometric jitter, off by default (the shipped models' recipe). `photometric_probability`
    # is the share of faces that get it; each of those draws every change below independently.
    photometric_probability: float = 0.0
    gamma: float = 1.0  # gamma drawn log-uniformly from [1/gamma, gamma]
    contrast: float = 0.0  # contrast factor from [1 - contrast, 1 + contrast], around the face's mean
    brightness: float = 0.0  # added to every pixel, from [-brightness, brightness] (pixels in [0, 1])
    noise: float = 0.0  # Gaussian noise whose sigma is drawn from [0, noise]
    blur_probability: float = 0.0  # share of jittered faces blended towards a 3x3 binomial blur
    jpeg_probability: float = 0.0  # share of jittered faces re-encoded as JPEG
    jpeg_quality: tuple[int, int] = (20, 90)


# What `train --photo-augment` turns on: exposure up to gamma 2 either way, contrast and brightness
# +-40% / +-0.15, noise up to 12 grey levels, blur and JPEG (quality 20-90) on a third each.
PHOTO_AUGMENT = AugmentConfig(
    photometric_probability=0.5, gamma=2.0, contrast=0.4, brightness=0.15, noise=12 / 255,
    blur_probability=0.3, jpeg_probability=0.3,
)

# Random erasing's aspect ratio (height / width) is drawn log-uniformly from [ASPECT, 1 / ASPECT].
ERASING_ASPECT = 0.3


def geometric_layers(config: AugmentConfig, seed: int | None = None) -> list[keras.layers.Layer]:
    """Flip, rotation, zoom and shift as Keras preprocessing layers (they run in tf.data and in a
    model on any backend), with edge pixels repeated rather than black corners."""
    steps: list[keras.layers.Layer] = []
    if config.flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation_degrees:
        steps.append(keras.layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="nearest", seed=seed))
    if config.zoom:
        steps.append(keras.layers.RandomZoom(config.zoom, fill_mode="nearest", seed=seed))
    if config.shift:
        steps.append(keras.layers.RandomTranslation(config.shift, config.shift, fill_mode="nearest", seed=seed))
    return steps


def erasing_mask(height: int, width: int, area: tuple[float, float], uniforms) -> object:
    """Where random erasing (Zhong et al. 2017) blanks each face: a (N, H, W, 1) boolean mask of
    one rectangle per face, from four uniform draws in [0, 1) per face, `uniforms` of shape (4, N):
    its area (a fraction in `area` of the face), aspect ratio, top and left."""
    height_f, width_f = float(height), float(width)
    uniforms = ops.cast(uniforms, "float32")
    low, high = math.log(ERASING_ASPECT), math.log(1 / ERASING_ASPECT)
    target_area = (area[0] + uniforms[0] * (area[1] - area[0])) * height_f * width_f
    aspect = ops.exp(low + uniforms[1] * (high - low))
    erase_h = ops.clip(ops.sqrt(target_area * aspect), 1.0, height_f)
    erase_w = ops.clip(ops.sqrt(target_area / aspect), 1.0, width_f)
    top = uniforms[2] * (height_f - erase_h)
    left = uniforms[3] * (width_f - erase_w)
    rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1))
    cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width))
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + erase_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + erase_w)[:, None, None])
    )
    return inside[..., None]


@keras.saving.register_keras_serializable(package="fer_core")
class RandomErasing(keras.layers.Layer):
    """Random erasing inside a model (the accelerator path): with `probability`, one rectangle of
    each face becomes uniform noise. Identity at inference. The tf.data path draws the same
    rectangles through `erasing_mask` (pipeline._random_erasing)."""

    def __init__(self, probability: float = 0.5, area: tuple[float, float] = (0.02, 0.2), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.probability = float(probability)
        self.area = (float(area[0]), float(area[1]))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or self.probability <= 0:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        uniforms = keras.random.uniform((5, batch), seed=self.seed_generator)
        mask = erasing_mask(height, width, self.area, uniforms[:4])
        mask = mask & (uniforms[4] < self.probability)[:, None, None, None]
        noise = keras.random.uniform(ops.shape(images), dtype=images.dtype, seed=self.seed_generator)
        return ops.where(mask, noise, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "probability": self.probability, "area": self.area, "seed": self.seed}
