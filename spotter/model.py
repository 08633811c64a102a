"""Classifier: a window of log-mel frames in, one posterior per label out. No decisions live here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import modelfile
from .config import ModelSpec


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum so it cannot overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class Classifier:
    """Runs the model file's interpreter; (de)quantisation of int8 models is handled inside."""

    def __init__(self, tflite: bytes, spec: ModelSpec, num_threads: int = 1, preserve_all_tensors: bool = False) -> None:
        self.spec = spec
        self._interpreter = modelfile.make_interpreter(tflite, num_threads, preserve_all_tensors)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        expected = (self.spec.window_frames, self.spec.features.n_mels)
        if tuple(self._input["shape"][1:]) != expected:
            raise modelfile.ModelFileError(
                f"model input shape {tuple(self._input['shape'])} does not match its spec {expected}"
            )
        if self._output["shape"][-1] != len(spec.labels):
            raise modelfile.ModelFileError(
                f"model has {self._output['shape'][-1]} outputs but its spec names {len(spec.labels)} labels"
            )
        self._batch = 1

    @classmethod
    def load(cls, path: Path, num_threads: int = 1) -> "Classifier":
        tflite, spec = modelfile.read(path)
        return cls(tflite, spec, num_threads)

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """Posteriors for one window of shape (window_frames, n_mels)."""
        return self.predict(window[None])[0]

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Posteriors for a batch of windows: (batch, window_frames, n_mels) -> (batch, labels)."""
        count = windows.shape[0]
        if count != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [count, *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()
            self._batch = count
        self._interpreter.set_tensor(self._input["index"], self._quantize(windows))
        self._interpreter.invoke()
        out = self._dequantize(self._interpreter.get_tensor(self._output["index"]))
        return softmax(out) if self.spec.outputs == "logits" else out

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return np.asarray(x, dtype=np.float32)
        scale, zero = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._output["dtype"] == np.float32:
            return y.astype(np.float32)
        scale, zero = self._output["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
