"""Model files carry their spec; foreign, corrupt and future files get one clear error."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spotter import modelfile
from spotter.config import (
    LOG_SPEC_VERSION, PCEN_SPEC_VERSION, SPEC_VERSION, DecisionConfig, FeatureConfig, ModelSpec,
)
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
    with pytest.raises(ModelFileError, match="outputs must be one of probabilities, logits"):
        modelfile.read(path)


def test_pcen_spec_round_trips_and_needs_version_3(shipped_model: Path, tmp_path: Path) -> None:
    """PCEN models say version 3, so a version-2 spotter refuses them instead of feeding them log-mel frames;
    log-mel models keep saying 2, so version-2 spotters still run them."""
    tflite = _flatbuffer(shipped_model)
    features = FeatureConfig(compression="pcen", pcen_alpha=0.9, pcen_smooth_ms=300.0)
    spec = ModelSpec(labels=("a", "_unknown_"), features=features)
    out = tmp_path / "pcen.tflite"
    modelfile.write(out, tflite, spec)
    loaded = modelfile.read_spec(out)
    assert loaded == spec and loaded.features.compression == "pcen" and loaded.features.pcen_alpha == 0.9
    with zipfile.ZipFile(out) as zf:
        stored = json.loads(zf.read(modelfile.SPEC_NAME))
    assert stored["version"] == PCEN_SPEC_VERSION < SPEC_VERSION and stored["features"]["compression"] == "pcen"
    assert ModelSpec(labels=("a",)).version == LOG_SPEC_VERSION < PCEN_SPEC_VERSION
    assert ModelSpec(labels=("a",), features=features, version=1).version == PCEN_SPEC_VERSION


def test_old_specs_load_as_log_mel() -> None:
    for version in (1, 2):
        spec = ModelSpec.from_dict({"labels": ["a"], "version": version, "features": {"n_mels": 40}})
        assert spec.features.compression == "log" and spec.features == FeatureConfig() and spec.version == version


@pytest.mark.parametrize(
    "features, message",
    [
        ({"compression": "mfcc"}, "features.compression must be one of log, pcen, got 'mfcc'"),
        ({"compression": None}, "features.compression must be one of log, pcen, got None"),
        ({"compression": "pcen", "pcen_alpha": float("nan")}, "features.pcen_alpha must be a finite number"),
        ({"compression": "pcen", "pcen_smooth_ms": -400.0}, "features.pcen_smooth_ms must be a finite number more than 0"),
        ({"pcen_smooth_ms": 0}, "features.pcen_smooth_ms must be"),
        ({"pcen_root": 2.0}, "features.pcen_root must be a finite number more than 0 and at most 1"),
        ({"pcen_eps": float("inf")}, "features.pcen_eps must be"),
        ({"pcen_delta": "2"}, "features.pcen_delta must be a finite number"),
        ({"pcen_alpha": True}, "features.pcen_alpha must be"),
    ],
)
def test_bad_pcen_settings_are_refused(
    shipped_model: Path, tmp_path: Path, features: dict[str, object], message: str
) -> None:
    data = {"labels": ["a"], "version": PCEN_SPEC_VERSION, "features": features}
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_dict(data)
    path = _with_raw_spec(_flatbuffer(shipped_model), data, tmp_path / "bad.tflite")  # NaN survives the JSON
    with pytest.raises(ModelFileError, match="invalid spotter metadata: " + message):
        modelfile.read(path)


def test_a_rewrite_that_fails_midway_leaves_the_model_byte_identical(
    shipped_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during `--write-thresholds` (here: the write raises ENOSPC halfway) leaves the old model file
    whole and loadable, and no temporary file behind."""
    import errno
    import os
    import shutil

    from spotter import modelfile

    model = tmp_path / "kws.tflite"
    shutil.copy(shipped_model, model)
    before = model.read_bytes()
    spec = modelfile.read_spec(model)
    real_fdopen = os.fdopen

    class FullDisk:
        """The temporary file takes half the bytes, then the disk is full."""

        def __init__(self, fd: int, mode: str) -> None:
            self.file = real_fdopen(fd, mode)

        def __enter__(self) -> "FullDisk":
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", FullDisk)
    with pytest.raises(OSError):
        modelfile.update_spec(model, spec.replace(decision=spec.decision))
    monkeypatch.undo()
    assert model.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kws.tflite"]
