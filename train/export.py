"""Keras model -> .tflite bytes, float or full int8 with representative data from the training set."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def to_tflite(model: keras.Model, representative: np.ndarray | None = None) -> bytes:
    """Float model when `representative` is None, else full int8 (int8 input and output, int8 kernels)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def samples():  # type: ignore[no-untyped-def]
            for window in representative:
                yield [window[None].astype(np.float32)]

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())
