"""Model files carry their spec; foreign, corrupt and future files get one clear error."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spotter import modelfile
from spotter.config import SPEC_VERSION, DecisionConfig, ModelSpec
from spotter.model import Classifier
from spotter.modelfile import ModelFileError


def _flatbuffer(path: Path) -> bytes:
    """The pure TFLite part of a model file: what any converter would write, without spotter metadata."""
    data = path.read_bytes()
    return data[: data.rindex(b"PK\x03\x04")]


def _with_raw_spec(tflite: bytes, spec: dict, path: Path) -> Path:  # type: ignore[type-arg]
    """A model file holding `spec` exactly as given (no ModelSpec in between, so it may be invalid)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(modelfile.SPEC_NAME, json.dumps(spec))
    path.write_bytes(tflite + archive.getvalue())
    return path


def test_spec_round_trips(shipped_model: Path, tmp_path: Path) -> None:
    tflite = _flatbuffer(shipped_model)
    spec = ModelSpec(labels=("a", "b", "_unknown_"), decision=DecisionConfig(thresholds={"a": 0.8}), metrics={"x": 1})
    out = tmp_path / "m.tflite"
    modelfile.write(out, tflite, spec)
    assert modelfile.read_spec(out) == spec
    assert modelfile.read_spec(out).decision.threshold_for("a") == 0.8


def test_spec_reads_with_stdlib_only(shipped_model: Path) -> None:
    with zipfile.ZipFile(shipped_model) as zf:
        data = json.loads(zf.read(modelfile.SPEC_NAME))
    assert data["labels"] == list(Classifier.load(shipped_model).spec.labels)
    assert data["features"]["n_mels"] == 40 and data["window_frames"] == 98


def test_foreign_tflite_is_refused(shipped_model: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(_flatbuffer(shipped_model))
    with pytest.raises(ModelFileError, match="without spotter metadata"):
        modelfile.read(plain)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not a TFLite model"), (b"hello world, not a model", "not a TFLite model"), (b"RIFF\x00\x00\x00\x00WAVE", "not a TFLite")],
)
def test_garbage_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        modelfile.read(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        modelfile.read(tmp_path / "nope.tflite")


def test_truncated_model_is_refused(shipped_model: Path, tmp_path: Path) -> None:
    data = shipped_model.read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        Classifier.load(path)


def test_corrupt_flatbuffer_with_valid_spec_is_refused(shipped_model: Path, tmp_path: Path) -> None:
    tflite = bytearray(_flatbuffer(shipped_model))
    tflite[8:] = bytes(len(tflite) - 8)  # keep the identifier, zero everything else
    path = _with_raw_spec(bytes(tflite), modelfile.read_spec(shipped_model).to_dict(), tmp_path / "zeroed.tflite")
    with pytest.raises(ModelFileError):
        Classifier.load(path)


def test_future_spec_version_is_refused(shipped_model: Path, tmp_path: Path) -> None:
    spec = modelfile.read_spec(shipped_model).to_dict()
    spec["version"] = SPEC_VERSION + 1
    path = _with_raw_spec(_flatbuffer(shipped_model), spec, tmp_path / "future.tflite")
    with pytest.raises(ModelFileError, match="newer than this spotter"):
        modelfile.read(path)


def test_spec_without_labels_is_refused(shipped_model: Path, tmp_path: Path) -> None:
    path = _with_raw_spec(_flatbuffer(shipped_model), {"version": 1}, tmp_path / "nolabels.tflite")
    with pytest.raises(ModelFileError, match="no labels"):
        modelfile.read(path)


def test_logit_outputs_get_the_softmax(shipped_model: Path) -> None:
    """A spec that says `logits` makes the classifier apply the softmax itself (the network's own output, here
    posteriors, is treated as logits); version-1 files, which predate the field, stay `probabilities`."""
    tflite, spec = modelfile.read(shipped_model)
    assert ModelSpec.from_dict({"labels": ["a"], "version": 1}).outputs == "probabilities"
    windows = np.random.default_rng(0).normal(8.0, 3.0, (4, spec.window_frames, spec.features.n_mels)).astype(np.float32)
    raw = Classifier(tflite, spec.replace(outputs="probabilities")).predict(windows)
    soft = Classifier(tflite, spec.replace(outputs="logits")).predict(windows)
    expected = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soft, expected, rtol=1e-5)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_output_kind_is_refused(shipped_model: Path, tmp_path: Path) -> None:
    spec = modelfile.read_spec(shipped_model).to_dict()
    spec["outputs"] = "log-probabilities"
    path = _with_raw_spec(_flatbuffer(shipped_model), spec, tmp_path / "odd.tflite")
    with pytest.raises(ModelFileError, match="unknown outputs"):
        modelfile.read(path)
