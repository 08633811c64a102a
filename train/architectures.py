"""Small-footprint keyword-spotting CNNs, named as in their papers, built in Keras.

cnn-trad-fpool3 and cnn-one-fstride4: Sainath & Parada, "Convolutional Neural Networks for Small-footprint
Keyword Spotting", 2015. ds-cnn: Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers", 2017.
Every model starts with a fixed per-mel normalisation of the log-mel input, so the .tflite takes raw log-mel
frames exactly as ``spotter.features.LogMel`` emits them, and ends with a softmax after a layer named
`LOGITS`, so export can stop before it.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
from keras import layers

from .options import ARCHITECTURE_NAMES

BN_MOMENTUM = 0.9
"""Keras's 0.99 settles too slowly with few steps per epoch; 0.9 avoided a collapse of validation accuracy."""


def _input(window_frames: int, n_mels: int, mean: np.ndarray, std: np.ndarray) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=(window_frames, n_mels), name="logmel")
    x = layers.Normalization(axis=-1, mean=np.asarray(mean), variance=np.asarray(std) ** 2)(inputs)
    return inputs, layers.Reshape((window_frames, n_mels, 1))(x)


LOGITS = "logits"


def _head(x: keras.KerasTensor, n_classes: int) -> keras.KerasTensor:
    """The class scores as their own named layer, then the softmax that training uses."""
    return layers.Softmax(name="posteriors")(layers.Dense(n_classes, name=LOGITS)(x))


def logits_model(model: keras.Model) -> keras.Model:
    """The same network without its softmax: what is exported (see `ModelSpec.outputs`)."""
    return keras.Model(model.inputs, model.get_layer(LOGITS).output, name=f"{model.name}-logits")


def _bn_relu(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))


def cnn_trad_fpool3(window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> keras.Model:
    """Two convolutions, max-pooling in frequency only by 3, a low-rank linear layer and one DNN layer."""
    inputs, x = _input(window_frames, n_mels, mean, std)
    x = layers.Conv2D(64, (20, 8), padding="valid", activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=(1, 3))(x)
    x = layers.Conv2D(64, (10, 4), padding="valid", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, _head(x, n_classes), name="cnn-trad-fpool3")


def cnn_one_fstride4(window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> keras.Model:
    """One convolution spanning the whole window in time, striding 4 in frequency; then linear + two DNN layers."""
    inputs, x = _input(window_frames, n_mels, mean, std)
    x = layers.Conv2D(186, (window_frames, 8), strides=(1, 4), padding="valid", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, _head(x, n_classes), name="cnn-one-fstride4")


def ds_cnn(
    window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray, channels: int = 64, blocks: int = 4
) -> keras.Model:
    """Depthwise-separable CNN (Hello Edge): a strided full convolution, then depthwise+pointwise blocks.

    The first block strides again so the pointwise layers, where the multiplies are, run on a 25x10 map.
    """
    inputs, x = _input(window_frames, n_mels, mean, std)
    x = layers.Conv2D(channels, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x)
    x = _bn_relu(x)
    for block in range(blocks):
        x = layers.DepthwiseConv2D((3, 3), strides=(2, 2) if block == 0 else (1, 1), padding="same", use_bias=False)(x)
        x = _bn_relu(x)
        x = layers.Conv2D(channels, (1, 1), use_bias=False)(x)
        x = _bn_relu(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, _head(x, n_classes), name="ds-cnn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "cnn-trad-fpool3": cnn_trad_fpool3,
    "cnn-one-fstride4": cnn_one_fstride4,
    "ds-cnn": ds_cnn,
}


assert set(ARCHITECTURES) == set(ARCHITECTURE_NAMES)


def build(name: str, window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> keras.Model:
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None
    return factory(window_frames, n_mels, n_classes, mean, std)


def count_multiplies(model: keras.Model) -> int:
    """Multiplies per inference in convolutions and dense layers (batch-norm folds into them at export)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return int(total)


def count_parameters(model: keras.Model) -> int:
    """Parameters that ship: trainable weights (batch-norm statistics fold into the convolutions)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
