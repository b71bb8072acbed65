"""The model zoo: every network the product can train, by name.

Modelled on timm's registry: a module dict filled by `@register_model`, `create_model(name)`
failing loudly on unknown names, `list_models()`. Each entry carries its input size and the
training defaults that suit it, and that spec is written into the model card, so inference
never hard-codes an input size or a class list.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import keras
from keras import layers

from fer_core.classes import NUM_CLASSES
from fer_core.errors import FerError


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture."""

    name: str
    description: str
    source: str  # which seed document or design it comes from
    input_size: int  # square grayscale input side in pixels
    builder: Callable[..., keras.Model] = field(repr=False, compare=False)
    optimizer: str = "sgd"  # "sgd" (Nesterov + warm-up/cosine) or "adam"
    learning_rate: float = 0.1
    batch_size: int = 128

    def describe(self) -> dict:
        info = asdict(self)
        info.pop("builder")
        return info


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, *, description: str, source: str, input_size: int, **defaults) -> Callable:
    """Decorator that records a builder `fn(num_classes, **kwargs) -> keras.Model` under `name`."""

    def decorate(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _MODELS:
            warnings.warn(f"model {name!r} registered twice; the later definition wins", stacklevel=2)
        _MODELS[name] = ModelSpec(name, description, source, input_size, builder, **defaults)
        return builder

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_spec(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise FerError(f"unknown architecture {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, num_classes: int = NUM_CLASSES, **kwargs) -> keras.Model:
    """Build a fresh, uncompiled Keras model of architecture `name`."""
    spec = get_spec(name)
    model = spec.builder(num_classes=num_classes, input_size=spec.input_size, **kwargs)
    return model


def count_flops(model: keras.Model) -> int:
    """Floating-point operations for one face through `model` (a multiply-add counts as 2).

    Counted from the layers' shapes, as TensorFlow's profiler does for the layers that matter:
    convolutions (incl. depthwise and separable), dense layers and their biases. Normalisation,
    activations, pooling and additions are a few percent of a conv net and are left out; a
    nested model (MobileNet's base) is counted layer by layer.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_flops(layer)
            continue
        if not isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Dense)):
            continue
        output = layer.output.shape
        channels_in = layer.input.shape[-1]
        positions = 1
        for dimension in output[1:-1]:
            positions *= int(dimension)
        if isinstance(layer, layers.Dense):
            macs = positions * channels_in * layer.units
        elif isinstance(layer, layers.DepthwiseConv2D):
            kernel_h, kernel_w = layer.kernel_size
            macs = positions * kernel_h * kernel_w * channels_in * layer.depth_multiplier
        elif isinstance(layer, layers.SeparableConv2D):
            kernel_h, kernel_w = layer.kernel_size
            macs = positions * channels_in * (kernel_h * kernel_w * layer.depth_multiplier + layer.depth_multiplier * layer.filters)
        else:
            kernel_h, kernel_w = layer.kernel_size
            macs = positions * kernel_h * kernel_w * channels_in * layer.filters // layer.groups
        total += 2 * macs + (positions * int(output[-1]) if getattr(layer, "use_bias", False) else 0)
    return int(total)


def _inputs(input_size: int) -> keras.KerasTensor:
    return keras.Input(shape=(input_size, input_size, 1), name="face")


def _classifier(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    # float32 softmax even under a mixed-precision policy, for a numerically sound loss.
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def _conv_bn_relu(x, filters: int, kernel: int = 3, strides: int = 1, name: str = ""):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


# --- the team's network -------------------------------------------------------------------


def _residual_block(x, filters: int, strides: int, name: str):
    shortcut = x
    y = _conv_bn_relu(x, filters, 3, strides, name=f"{name}_a")
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _resnet(num_classes: int, input_size: int, widths: tuple[int, ...], blocks: tuple[int, ...], dropout: float, name: str):
    inputs = _inputs(input_size)
    # A stride-2 stem: full-resolution layers dominate CPU cost, and 48x48 faces lose little at 24x24.
    x = _conv_bn_relu(inputs, widths[0], 3, strides=2, name="stem")
    for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        for index in range(count):
            strides = 2 if (stage > 0 and index == 0) else 1
            x = _residual_block(x, width, strides, name=f"stage{stage + 1}_block{index + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name=name)


@register_model(
    "resnet_fer",
    description="Team network: ResNet 64-128-256 with 1-2-2 basic blocks and a stride-2 stem, 388 MFLOPs a face; "
    "the accurate model for photos, and the teacher the live model is distilled from",
    source="team design (measured-facts.md CPU calibration, FER2013 ResNet recipes)",
    input_size=48,
)
def resnet_fer(num_classes: int = NUM_CLASSES, input_size: int = 48, dropout: float = 0.2) -> keras.Model:
    return _resnet(num_classes, input_size, (64, 128, 256), (1, 2, 2), dropout, name="resnet_fer")


@register_model(
    "resnet_fer_small",
    description="Narrow ResNet 32-64-128-256, one block per stage: quick experiments and tests",
    source="team design",
    input_size=48,
)
def resnet_fer_small(num_classes: int = NUM_CLASSES, input_size: int = 48, dropout: float = 0.2) -> keras.Model:
    return _resnet(num_classes, input_size, (32, 64, 128, 256), (1, 1, 1, 1), dropout, name="resnet_fer_small")


@register_model(
    "resnet_fer_lite",
    description="Live-video network: narrow ResNet 16-32-64-128 with 1-2-2-2 basic blocks and a stride-2 "
    "stem, 34 MFLOPs a face (a tenth of resnet_fer); trained by distillation from the best model",
    source="team design (issue: a fast live model distilled from the best one)",
    input_size=48,
)
def resnet_fer_lite(num_classes: int = NUM_CLASSES, input_size: int = 48, dropout: float = 0.1) -> keras.Model:
    return _resnet(num_classes, input_size, (16, 32, 64, 128), (1, 2, 2, 2), dropout, name="resnet_fer_lite")


@register_model(
    "resnet_fer_lite_wide",
    description="Wider live network: resnet_fer_lite with a 160-channel last stage (16-32-64-160), "
    "38.6 MFLOPs a face, 0.97M parameters: more capacity where the maps are 3x3 and it costs least",
    source="team design (issue 12: the live model's accuracy within the 40 MFLOPs cap)",
    input_size=48,
)
def resnet_fer_lite_wide(num_classes: int = NUM_CLASSES, input_size: int = 48, dropout: float = 0.1) -> keras.Model:
    return _resnet(num_classes, input_size, (16, 32, 64, 160), (1, 2, 2, 2), dropout, name="resnet_fer_lite_wide")


# --- networks from the seed documents -------------------------------------------------------


@register_model(
    "seed_cnn3",
    description="3 blocks of two 3x3 convs (64/128/256) with BN, ReLU and max-pooling, "
    "1x1 convs, dropout 0.1/0.2, dense head 128-128-7; Adam",
    source="seeds/000 Facial_Emotion_Recognition",
    input_size=48,
    optimizer="adam",
    learning_rate=1e-3,
    batch_size=64,
)
def seed_cnn3(num_classes: int = NUM_CLASSES, input_size: int = 48) -> keras.Model:
    inputs = _inputs(input_size)
    x = inputs
    for index, filters in enumerate((64, 128, 256), start=1):
        x = _conv_bn_relu(x, filters, 3, name=f"block{index}_conv1")
        x = _conv_bn_relu(x, filters, 3, name=f"block{index}_conv2")
        x = _conv_bn_relu(x, filters, 1, name=f"block{index}_conv1x1")
        x = layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
        x = layers.Dropout(0.1 if index < 3 else 0.2, name=f"block{index}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.2, name="fc1_dropout")(x)
    x = layers.Dense(128, activation="relu", name="fc2")(x)
    x = layers.Dropout(0.2, name="fc2_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="seed_cnn3")


@register_model(
    "vgg4",
    description="VGG-style: 4 stages of two conv-ReLU-BN blocks (64/128/256/512) with max-pooling, "
    "3 fully connected layers (1024-1024-7)",
    source="seeds/003 FacialEmotionRecognition (Khaireddin & Chen style VGGNet)",
    input_size=48,
    learning_rate=0.01,
)
def vgg4(num_classes: int = NUM_CLASSES, input_size: int = 48, dropout: float = 0.5) -> keras.Model:
    inputs = _inputs(input_size)
    x = inputs
    for stage, filters in enumerate((64, 128, 256, 512), start=1):
        for index in (1, 2):
            # conv -> ReLU -> BN, in the order the seed describes
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"stage{stage}_conv{index}")(x)
            x = layers.BatchNormalization(name=f"stage{stage}_bn{index}")(x)
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = layers.Dense(1024, activation="relu", name=f"fc{index}")(x)
        x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="vgg4")


@register_model(
    "mobilenet_transfer",
    description="MobileNet (v1) base + GAP + dense head; ImageNet weights only from a user-given "
    "file (--weights), otherwise trained from scratch; Adam",
    source="seeds/002 Facial_Emotion_Detection (MobileNet transfer learning)",
    input_size=96,
    optimizer="adam",
    learning_rate=1e-3,
    batch_size=64,
)
def mobilenet_transfer(
    num_classes: int = NUM_CLASSES, input_size: int = 96, weights: str | None = None, alpha: float = 1.0
) -> keras.Model:
    """`weights`: path to a Keras MobileNet ImageNet weights file (no top); never downloaded."""
    if weights is not None and not os.path.isfile(weights):
        raise FerError(f"{weights}: MobileNet weights file not found (nothing is downloaded; pass a local file)")
    inputs = _inputs(input_size)
    # MobileNet expects 3 channels in [-1, 1]; the face is grayscale in [0, 1].
    x = layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
    x = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(x)
    base = keras.applications.MobileNet(
        input_shape=(input_size, input_size, 3), include_top=False, weights=None, alpha=alpha
    )
    if weights is not None:
        base.load_weights(weights)
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(256, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.3, name="fc1_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="mobilenet_transfer")


@register_model(
    "tiny_cnn32",
    description="Small 2-conv network on 32x32 input: conv32-pool-dropout, conv64-pool-dropout, "
    "dense 128, softmax; Adam",
    source="seeds/004 Facial Emotion Recognition Using Deep CNN",
    input_size=32,
    optimizer="adam",
    learning_rate=1e-3,
    batch_size=64,
)
def tiny_cnn32(num_classes: int = NUM_CLASSES, input_size: int = 32) -> keras.Model:
    inputs = _inputs(input_size)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Dropout(0.25, name="dropout1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.25, name="dropout2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="tiny_cnn32")
