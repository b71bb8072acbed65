"""The training augmentation's settings and its backend-neutral parts (Keras layers and ops only).

Two input paths use them: `fer_core.pipeline` applies them to batches inside tf.data (the CPU path,
TensorFlow), and `fer_core.accelerated` runs them inside the jitted training step on a GPU machine
that has JAX but no TensorFlow. Keeping the geometry, the erasing rectangle and the photometric
jitter here, written once, is what makes a model trained on either path the same recipe. The
jitter's JPEG step is the codec's lossy part in tensor ops (8x8 DCT, the standard table scaled to
the quality, rounding), so it needs no image library: a grayscale JPEG loses nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import keras
import numpy as np
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

# The JPEG standard's luminance quantization table (ITU T.81, Annex K), row by row.
JPEG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], np.float32).reshape(8, 8)

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


def jpeg_quantization(quality) -> object:
    """(N, 8, 8) quantization tables for per-face JPEG qualities in 1-100 (libjpeg's scaling)."""
    quality = ops.clip(ops.cast(quality, "float32"), 1.0, 100.0)
    scale = ops.where(quality < 50.0, ops.floor(5000.0 / quality), 200.0 - 2.0 * quality)
    table = ops.floor((JPEG_LUMINANCE[None] * scale[:, None, None] + 50.0) / 100.0)
    return ops.clip(table, 1.0, 255.0)


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II, JPEG's forward transform along one axis."""
    k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    matrix = np.cos((2 * n + 1) * k * np.pi / 16) / 2
    matrix[0] /= np.sqrt(2)
    return matrix.astype(np.float32)


def jpeg_roundtrip(images, quality) -> object:
    """Grayscale faces (N, H, W, 1) in [0, 1] as a JPEG encoder at `quality` (N,) leaves them: 8-bit
    levels, 8x8 blocks (edges repeated to fill the last ones), DCT, quantization, inverse."""
    height, width = images.shape[1], images.shape[2]
    padded_h, padded_w = -(-height // 8) * 8, -(-width // 8) * 8
    levels = ops.round(ops.clip(images[..., 0], 0.0, 1.0) * 255.0) - 128.0
    if (padded_h, padded_w) != (height, width):
        levels = ops.pad(levels, [[0, 0], [0, padded_h - height], [0, padded_w - width]], mode="symmetric")
    rows, cols = padded_h // 8, padded_w // 8
    blocks = ops.transpose(ops.reshape(levels, (-1, rows, 8, cols, 8)), (0, 1, 3, 2, 4))  # (N, rows, cols, 8, 8)
    dct = ops.convert_to_tensor(_dct_matrix())
    coefficients = ops.matmul(ops.matmul(dct, blocks), ops.transpose(dct))
    table = jpeg_quantization(quality)[:, None, None]
    coefficients = ops.round(coefficients / table) * table
    blocks = ops.matmul(ops.matmul(ops.transpose(dct), coefficients), dct)
    levels = ops.reshape(ops.transpose(blocks, (0, 1, 3, 2, 4)), (-1, padded_h, padded_w))[:, :height, :width]
    return (ops.clip(ops.round(levels + 128.0), 0.0, 255.0) / 255.0)[..., None]


PHOTOMETRIC_DRAWS = 9  # uniform draws per face that `photometric_jitter` takes


def photometric_jitter(images, config: AugmentConfig, uniforms, normal) -> object:
    """Exposure, contrast, brightness, blur, noise and JPEG jitter on `config.photometric_probability`
    of a batch of (N, S, S, 1) floats in [0, 1] (the rest pass unchanged), from uniform draws in
    [0, 1) of shape (PHOTOMETRIC_DRAWS, N) and a standard normal field shaped like `images`."""
    uniforms = ops.cast(uniforms, "float32")

    def per_face(values):
        return values[:, None, None, None]

    def between(draw, low, high):
        return low + draw * (high - low)

    jittered = images
    if config.gamma != 1.0:
        log_gamma = between(uniforms[1], -math.log(config.gamma), math.log(config.gamma))
        jittered = ops.power(ops.maximum(jittered, 1e-6), per_face(ops.exp(log_gamma)))
    if config.contrast:
        factor = between(uniforms[2], 1.0 - config.contrast, 1.0 + config.contrast)
        mean = ops.mean(jittered, axis=(1, 2, 3), keepdims=True)
        jittered = (jittered - mean) * per_face(factor) + mean
    if config.brightness:
        jittered = jittered + per_face(between(uniforms[3], -config.brightness, config.brightness))
    if config.blur_probability:
        kernel = ops.convert_to_tensor((np.outer([1, 2, 1], [1, 2, 1]) / 16.0).astype(np.float32)[:, :, None, None])
        blurred = ops.conv(ops.pad(jittered, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric"), kernel, padding="valid")
        amount = uniforms[4] * ops.cast(uniforms[5] < config.blur_probability, "float32")
        jittered = jittered + per_face(amount) * (blurred - jittered)
    if config.noise:
        jittered = jittered + per_face(uniforms[6] * config.noise) * ops.cast(normal, "float32")
    jittered = ops.clip(jittered, 0.0, 1.0)
    if config.jpeg_probability:
        low, high = config.jpeg_quality
        quality = ops.floor(between(uniforms[7], float(low), float(high) + 1.0))
        recompressed = jpeg_roundtrip(jittered, quality)
        jittered = ops.where(per_face(uniforms[8] < config.jpeg_probability), recompressed, jittered)
    return ops.where(per_face(uniforms[0] < config.photometric_probability), jittered, images)


@keras.saving.register_keras_serializable(package="fer_core")
class PhotometricJitter(keras.layers.Layer):
    """`photometric_jitter` inside a model (the accelerator path); identity at inference. The
    tf.data path calls the same function with TensorFlow's random draws."""

    def __init__(self, config: AugmentConfig | None = None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config or AugmentConfig()
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or self.config.photometric_probability <= 0:
            return images
        uniforms = keras.random.uniform((PHOTOMETRIC_DRAWS, ops.shape(images)[0]), seed=self.seed_generator)
        normal = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        return photometric_jitter(images, self.config, uniforms, normal)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        settings = {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self.config).items()}
        return {**super().get_config(), "config": settings, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict):
        settings = {key: tuple(value) if isinstance(value, list) else value for key, value in config.pop("config").items()}
        return cls(AugmentConfig(**settings), **config)


def blend_with_mirror_rows(values, lam):
    """Row i blended with row N-1-i of the same batch, weight `lam` (N,) on row i: mixup's pairing
    inside a compiled step. The batch is already shuffled, so the mirror row is a random partner;
    faces and their targets are blended by the same call, so they stay paired."""
    weight = ops.reshape(ops.cast(lam, values.dtype), (-1,) + (1,) * (len(values.shape) - 1))
    return weight * values + (1.0 - weight) * ops.flip(values, axis=0)


@keras.saving.register_keras_serializable(package="fer_core")
class MixupPairs(keras.layers.Layer):
    """Mixup inside the model (the accelerator path, where the batch never leaves the GPU): each
    face is blended with its mirror row, weight lam ~ Beta(alpha, alpha) folded to >= 0.5 as in
    pipeline.mixup, so every blend keeps its own face dominant. Returns the faces and lam; the
    loss (`MixedTargetLoss`) blends the targets with the same lam. At inference lam is 1."""

    def __init__(self, alpha: float = 0.2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        ones = ops.ones(ops.shape(images)[:1], dtype="float32")
        if not training or self.alpha <= 0:
            return images, ones
        lam = keras.random.beta(ops.shape(images)[:1], self.alpha, self.alpha, seed=self.seed_generator)
        lam = ops.maximum(lam, 1.0 - lam)
        return blend_with_mirror_rows(images, lam), lam

    def compute_output_shape(self, input_shape):
        return input_shape, input_shape[:1]

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "seed": self.seed}


class MixedTargetLoss(keras.losses.Loss):
    """`inner` scored against targets blended as `MixupPairs` blended the faces: y_pred is
    [probabilities | lam], the training model's output when it mixes (accelerated.augmented)."""

    def __init__(self, inner: keras.losses.Loss, name: str | None = None, **kwargs):
        super().__init__(name=name or inner.name, **kwargs)
        self.inner = inner

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        targets = blend_with_mirror_rows(ops.cast(y_true, "float32"), y_pred[:, -1])
        return self.inner.call(targets, y_pred[:, :-1])
