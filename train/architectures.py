"""Small-footprint keyword-spotting CNNs, named as in their papers, built in Keras.

cnn-trad-fpool3 and cnn-one-fstride4: Sainath & Parada, "Convolutional Neural Networks for Small-footprint
Keyword Spotting", 2015. ds-cnn: Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers", 2017.
tc-resnet: Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile Devices", Interspeech 2019.
bc-resnet: Kim et al., "Broadcasted Residual Learning for Efficient Keyword Spotting", Interspeech 2021.
Every model starts with a fixed per-mel normalisation of the log-mel input, so the .tflite takes raw log-mel
frames exactly as ``spotter.features.LogMel`` emits them, and ends with a softmax after a layer named
`LOGITS`, so export can stop before it.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import keras
import numpy as np
from keras import layers, ops

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
    window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray, channels: int = 64, blocks: int = 4,
    name: str = "ds-cnn",
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
    return keras.Model(inputs, _head(x, n_classes), name=name)


def _tc_block(x: keras.KerasTensor, channels: int, stride: int) -> keras.KerasTensor:
    """Two 9-frame convolutions; a 1x1 convolution on the shortcut where the block strides or widens."""
    y = _bn_relu(layers.Conv2D(channels, (9, 1), strides=(stride, 1), padding="same", use_bias=False)(x))
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(layers.Conv2D(channels, (9, 1), padding="same", use_bias=False)(y))
    shortcut = x
    if stride != 1 or x.shape[-1] != channels:
        shortcut = _bn_relu(layers.Conv2D(channels, (1, 1), strides=(stride, 1), use_bias=False)(x))
    return layers.ReLU()(layers.Add()([y, shortcut]))


def tc_resnet(
    window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray, blocks_per_width: int = 1,
    width: float = 1.0, name: str = "tc-resnet8",
) -> keras.Model:
    """TC-ResNet: the mel bands are the channels of a 1-D convolution over time, so even the first layer sees
    the whole spectrum and every layer is cheap. Conv2D with (k, 1) kernels on a (frames, 1, mels) map: the
    same arithmetic as Conv1D, and the TFLite kernel Conv1D is lowered to anyway.
    tc-resnet8: one stride-2 block per width (24, 32, 48); tc-resnet14: two, the second with identity shortcut.
    """
    inputs, x = _input(window_frames, n_mels, mean, std)
    x = layers.Reshape((window_frames, 1, n_mels))(x)
    x = _bn_relu(layers.Conv2D(int(16 * width), (3, 1), padding="same", use_bias=False)(x))
    for channels in (24, 32, 48):
        for block in range(blocks_per_width):
            x = _tc_block(x, int(channels * width), stride=2 if block == 0 else 1)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, _head(x, n_classes), name=name)


@keras.saving.register_keras_serializable(package="spotter")
class SubSpectralNorm(layers.Layer):
    """Batch norm with its own statistics and scale per frequency sub-band and channel (Chang et al.,
    "Subspectral Normalization for Neural Audio Data Processing", ICASSP 2021; BC-ResNet's SSN).

    Written out rather than reshape -> BatchNormalization -> reshape because, in this (time, frequency,
    channel) layout, sub-band and channel are not adjacent: Keras's one-axis batch norm would need two
    transposes around it. Here inference is one multiply and one add by constant (frequency, channel) maps,
    which convert to int8 TFLite MUL and ADD (it cannot fold into the depthwise conv before it, whose weights
    are shared across frequency).
    """

    def __init__(self, sub_bands: int = 5, momentum: float = BN_MOMENTUM, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sub_bands = int(sub_bands)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        frequencies, channels = input_shape[-2], input_shape[-1]
        if frequencies % self.sub_bands:
            raise ValueError(f"{frequencies} frequency bins do not split into {self.sub_bands} sub-bands")
        shape = (self.sub_bands, 1, channels)
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape=shape, initializer="ones", trainable=False, name="moving_variance")

    def call(self, x: Any, training: bool | None = None) -> Any:
        frequencies, channels = x.shape[-2], x.shape[-1]
        per_band = frequencies // self.sub_bands
        if training and self.trainable:
            bands = ops.reshape(x, (-1, self.sub_bands, per_band, channels))
            mean = ops.mean(bands, axis=(0, 2), keepdims=True)[0]
            variance = ops.var(bands, axis=(0, 2), keepdims=True)[0]
            self.moving_mean.assign(self.momentum * self.moving_mean + (1.0 - self.momentum) * mean)
            self.moving_variance.assign(self.momentum * self.moving_variance + (1.0 - self.momentum) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        scale = self.gamma * ops.rsqrt(variance + self.epsilon)
        offset = self.beta - mean * scale

        def per_bin(v: Any) -> Any:
            return ops.reshape(ops.repeat(v, per_band, axis=1), (frequencies, channels))

        return x * per_bin(scale) + per_bin(offset)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sub_bands": self.sub_bands, "momentum": self.momentum, "epsilon": self.epsilon}


def _sub_bands(frequencies: int) -> int:
    """The paper's 5 sub-bands where the frequency bins split evenly (40 mels: 20, 10, 5 bins), else fewer."""
    return next(s for s in (5, 4, 3, 2, 1) if frequencies % s == 0)


def _bc_block(x: keras.KerasTensor, channels: int, stride: int, dilation: int) -> keras.KerasTensor:
    """Broadcasted residual block. The map is (time, frequency, channel): a frequency-depthwise conv with
    sub-spectral norm keeps the 2-D features (f2); their average over frequency goes through a dilated
    temporal depthwise conv, swish and a 1x1 conv (f1), and is broadcast back over frequency onto them. A
    transition block (new width or frequency stride) starts with a 1x1 conv and has no identity shortcut."""
    transition = stride != 1 or x.shape[-1] != channels
    shortcut = x
    if transition:
        x = _bn_relu(layers.Conv2D(channels, (1, 1), use_bias=False)(x))
    x = layers.DepthwiseConv2D((1, 3), padding="same", use_bias=False)(x)
    if stride != 1:  # TensorFlow's depthwise kernel refuses a (1, 2) stride; keeping every other bin of the
        # stride-1 output is the same arithmetic as the paper's stride-2, padding-1 conv
        x = layers.MaxPooling2D((1, 1), strides=(1, stride))(x)
    aux = x = SubSpectralNorm(_sub_bands(x.shape[2]))(x)
    x = layers.AveragePooling2D((1, x.shape[2]))(x)
    x = layers.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding="same", use_bias=False)(x)
    x = layers.Activation("silu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    x = layers.Conv2D(channels, (1, 1), use_bias=False)(x)
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.Add()([aux, x] if transition else [aux, x, shortcut])
    return layers.ReLU()(x)


def bc_resnet(
    window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray, base: int = 8,
    name: str = "bc-resnet-1",
) -> keras.Model:
    """BC-ResNet-tau with base width 8*tau, laid out as the paper's Table 1: a 5x5 stem striding frequency by 2;
    stages of 2, 2, 4, 4 blocks at widths 1, 1.5, 2, 2.5 x base, striding frequency in stages 2 and 3 and
    dilating time 1, 2, 4, 8; a 5x(frequency) depthwise head collapsing frequency, a 1x1 conv to 4 x base and
    the mean over time."""
    inputs, x = _input(window_frames, n_mels, mean, std)
    x = _bn_relu(layers.Conv2D(2 * base, (5, 5), strides=(1, 2), padding="same", use_bias=False)(x))
    stages = ((2, base, 1), (2, int(base * 1.5), 2), (4, 2 * base, 2), (4, int(base * 2.5), 1))
    for stage, (blocks, channels, stride) in enumerate(stages):
        for block in range(blocks):
            x = _bc_block(x, channels, stride if block == 0 else 1, dilation=2**stage)
    x = layers.ZeroPadding2D(((2, 2), (0, 0)))(x)
    x = layers.DepthwiseConv2D((5, x.shape[2]), use_bias=False)(x)
    x = _bn_relu(layers.Conv2D(4 * base, (1, 1), use_bias=False)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, n_classes), name=name)


WIDE_CHANNELS = 76
"""The widest ds-cnn (multiple of 4) within 10M multiplies on 98x40: the stem's 40 multiplies per output hold it back."""


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "cnn-trad-fpool3": cnn_trad_fpool3,
    "cnn-one-fstride4": cnn_one_fstride4,
    "ds-cnn": ds_cnn,
    "ds-cnn-wide": partial(ds_cnn, channels=WIDE_CHANNELS, name="ds-cnn-wide"),
    "tc-resnet8": partial(tc_resnet, blocks_per_width=1, name="tc-resnet8"),
    "tc-resnet8-1.5": partial(tc_resnet, blocks_per_width=1, width=1.5, name="tc-resnet8-1.5"),
    "tc-resnet14": partial(tc_resnet, blocks_per_width=2, name="tc-resnet14"),
    "bc-resnet-1": partial(bc_resnet, base=8, name="bc-resnet-1"),
    "bc-resnet-2": partial(bc_resnet, base=16, name="bc-resnet-2"),
}


assert set(ARCHITECTURES) == set(ARCHITECTURE_NAMES)


def build(name: str, window_frames: int, n_mels: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> keras.Model:
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None
    return factory(window_frames, n_mels, n_classes, mean, std)


def ensemble(members: list[keras.Model]) -> keras.Model:
    """One network that runs every member on the same input and averages their logits (the geometric mean of
    their posteriors, renormalised): its `LOGITS` layer is that average, so export and training code treat it
    like any single architecture. Each member keeps its own input normalisation."""
    if len({tuple(m.inputs[0].shape) for m in members}) != 1:
        raise ValueError("ensemble members take inputs of different shapes")
    inputs = keras.Input(shape=members[0].inputs[0].shape[1:], name="logmel")
    logits = [keras.Model(m.inputs, m.get_layer(LOGITS).output, name=f"member{k}")(inputs) for k, m in enumerate(members)]
    averaged = layers.Average(name=LOGITS)(logits)
    return keras.Model(inputs, layers.Softmax(name="posteriors")(averaged), name=f"ensemble{len(members)}")


def count_multiplies(model: keras.Model) -> int:
    """Multiplies per inference in convolutions (any dilation or grouping), dense layers, and sub-spectral
    norm's scaling (batch norm folds into the convolutions at export; SSN cannot, its scale varies over
    frequency). Activations, pooling and the input normalisation are not counted."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # an ensemble's members
            total += count_multiplies(layer)
            continue
        shape = layer.output.shape
        positions = int(np.prod(shape[1:-1]))
        if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
            total += positions * shape[-1] * int(np.prod(layer.kernel_size))
        elif isinstance(layer, (layers.Conv1D, layers.Conv2D)):
            taps = int(np.prod(layer.kernel_size)) * layer.input.shape[-1] // layer.groups
            total += positions * shape[-1] * taps
        elif isinstance(layer, layers.Dense):
            total += positions * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, SubSpectralNorm):
            total += int(np.prod(shape[1:]))
    return int(total)


def count_parameters(model: keras.Model) -> int:
    """Parameters that ship: trainable weights (batch-norm statistics fold into the convolutions)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
