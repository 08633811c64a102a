"""Every architecture builds within the small-footprint budget, takes training steps, and exports to a full-int8
.tflite whose posteriors follow the Keras model's; the multiply counter counts what it claims to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="architecture tests need the train extra")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from spotter.config import ModelSpec  # noqa: E402
from spotter.model import Classifier  # noqa: E402
from spotter.train import architectures, export  # noqa: E402
from spotter.train.options import ARCHITECTURE_NAMES  # noqa: E402

MAX_PARAMETERS = 250_000
MAX_MULTIPLIES = 10_000_000
OVER_BUDGET = ("cnn-trad-fpool3",)
"""Older baselines kept for comparison; not small-footprint by this budget."""
INT8_TOLERANCE = 0.1
"""As in test_train.py: int8 posteriors within this of the float model's per label."""
FRAMES, MELS, LABELS = 98, 40, tuple(f"w{i}" for i in range(12))


def _windows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(8.0, 3.0, (count, FRAMES, MELS)).astype(np.float32)


def _build(name: str) -> keras.Model:
    return architectures.build(name, FRAMES, MELS, len(LABELS), np.full(MELS, 8.0), np.full(MELS, 3.0))


@pytest.mark.parametrize("name", [n for n in ARCHITECTURE_NAMES if n not in OVER_BUDGET])
def test_trains_and_exports_within_budget(name: str) -> None:
    keras.utils.set_random_seed(0)
    model = _build(name)
    assert model.output_shape == (None, len(LABELS))
    assert architectures.count_parameters(model) <= MAX_PARAMETERS
    assert architectures.count_multiplies(model) <= MAX_MULTIPLIES

    train = _windows(8, 0)
    truth = keras.utils.to_categorical(np.arange(8) % len(LABELS), len(LABELS))
    model.compile(  # eager: tracing a training graph would cost more than the two steps
        optimizer=keras.optimizers.AdamW(3e-3, weight_decay=1e-3), loss="categorical_crossentropy", run_eagerly=True
    )
    history = model.fit(train, truth, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())

    tflite = export.to_tflite(architectures.logits_model(model), train)
    spec = ModelSpec(labels=LABELS, architecture=name, outputs="logits", quantization="int8")
    classifier = Classifier(tflite, spec)
    assert classifier._input["dtype"] == np.int8 and classifier._output["dtype"] == np.int8
    windows = _windows(8, 1)
    keras_logits = keras.ops.convert_to_numpy(architectures.logits_model(model)(windows, training=False))
    keras_out = keras.ops.convert_to_numpy(model(windows, training=False))
    int8_out = classifier.predict(windows)
    assert np.abs(int8_out - keras_out).max() <= INT8_TOLERANCE
    # Posteriors from a barely trained model are nearly flat; the logits (log-posteriors up to a constant per
    # window) show whether the int8 network computes the same function.
    centred = np.log(int8_out) - np.log(int8_out).mean(axis=1, keepdims=True)
    expected = keras_logits - keras_logits.mean(axis=1, keepdims=True)
    assert np.abs(centred - expected).max() <= 0.1 * np.ptp(expected) + 0.01


@pytest.mark.parametrize("name", OVER_BUDGET)
def test_baselines_over_budget_still_build(name: str) -> None:
    model = _build(name)
    assert model.output_shape == (None, len(LABELS))
    assert architectures.count_multiplies(model) > MAX_MULTIPLIES or architectures.count_parameters(model) > MAX_PARAMETERS


def test_sub_spectral_norm_normalises_each_band_and_reloads(tmp_path: Path) -> None:
    """Per sub-band statistics (unlike batch norm over all frequencies), and the custom layer survives a .keras
    save and load, which fit.py does with every model."""
    bands = np.repeat(np.arange(5, dtype=np.float32) * 10, 4)  # 20 bins, each band offset differently
    x = np.random.default_rng(0).normal(size=(8, 6, 20, 3)).astype(np.float32) + bands[None, None, :, None]
    inputs = keras.Input((6, 20, 3))
    model = keras.Model(inputs, architectures.SubSpectralNorm(5, momentum=0.0)(inputs))
    y = keras.ops.convert_to_numpy(model(x, training=True)).reshape(8, 6, 5, 4, 3)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 3)), 1.0, atol=1e-2)
    path = tmp_path / "ssn.keras"
    model.save(path)
    inference = keras.ops.convert_to_numpy(keras.models.load_model(path)(x, training=False))  # moving statistics
    np.testing.assert_allclose(inference.reshape(8, 6, 5, 4, 3), y, atol=2e-3)


def test_count_multiplies_by_hand() -> None:
    inputs = keras.Input((10, 4))
    x = layers.Conv1D(6, 3, padding="same")(inputs)  # 10 * 6 * 3 * 4 = 720
    x = layers.Conv1D(6, 3, padding="same", groups=2)(x)  # 10 * 6 * 3 * 3 = 540
    x = layers.Reshape((10, 1, 6))(x)
    x = layers.DepthwiseConv2D((3, 1), dilation_rate=(2, 1), padding="same")(x)  # 10 * 6 * 3 = 180
    x = layers.Conv2D(5, (1, 1), strides=(2, 1))(x)  # 5 * 5 * 6 = 150
    x = layers.Dense(2)(layers.Reshape((5, 5))(x))  # 5 * 5 * 2 = 50
    x = layers.Dense(3)(layers.Flatten()(x))  # 10 * 3 = 30
    assert architectures.count_multiplies(keras.Model(inputs, x)) == 720 + 540 + 180 + 150 + 50 + 30
