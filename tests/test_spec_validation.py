"""A model file's spec is untrusted input: every field of the wrong type or out of range is refused when the file
is read, with one line naming the field, and the archive around it (size, compression, encryption, nesting) cannot
make spotter crash, hang or fill memory."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from spotter import modelfile
from spotter.cli import main
from spotter.config import (
    LASTING_SPEC_VERSION, MAX_DECISION_MS, SPEC_VERSION, SWITCHED_OFF_THRESHOLD, THRESHOLDS, DecisionConfig,
    FeatureConfig, ModelSpec,
)
from spotter.evaluation import SWITCHED_OFF
from spotter.modelfile import ModelFileError

from .conftest import SHIPPED_MODEL

DELETE = object()
"""A mutation's value that removes the key instead of setting it."""
NAN, INF = float("nan"), float("inf")


def shipped_spec() -> dict[str, Any]:
    with zipfile.ZipFile(SHIPPED_MODEL) as zf:
        return json.loads(zf.read(modelfile.SPEC_NAME))


def flatbuffer() -> bytes:
    return modelfile.flatbuffer(SHIPPED_MODEL.read_bytes())


def with_spec(spec: Any, path: Path, *, text: str | None = None, method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A model file holding `spec` as JSON exactly as given (NaN and infinities survive), or the raw `text`."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=method) as zf:
        zf.writestr(modelfile.SPEC_NAME, json.dumps(spec) if text is None else text)
    path.write_bytes(flatbuffer() + archive.getvalue())
    return path


def mutated(changes: dict[str, Any]) -> dict[str, Any]:
    """The shipped spec with each dotted path set to its value (or deleted)."""
    spec = shipped_spec()
    for path, value in changes.items():
        *parents, key = path.split(".")
        node = spec
        for name in parents:
            node = node[name]
        if value is DELETE:
            del node[key]
        else:
            node[key] = copy.deepcopy(value)
    return spec


def cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


REFUSED = [
    # the wrong type
    pytest.param({"decision": "fast"}, "decision must be an object, got 'fast'", id="decision-string"),
    pytest.param({"decision": [1, 2]}, "decision must be an object, got [1, 2]", id="decision-list"),
    pytest.param({"decision": None}, "decision must be an object, got None", id="decision-null"),
    pytest.param({"features": "logmel"}, "features must be an object", id="features-string"),
    pytest.param({"features": []}, "features must be an object", id="features-list"),
    pytest.param({"features": None}, "features must be an object", id="features-null"),
    pytest.param({"features.n_fft": 512.0}, "features.n_fft must be an integer between 1 and 4096, got 512.0",
                 id="float-n_fft"),
    pytest.param({"features.sample_rate": 16000.0}, "features.sample_rate must be an integer", id="float-rate"),
    pytest.param({"window_frames": 98.0}, "window_frames must be an integer between 1 and 1000, got 98.0",
                 id="float-window_frames"),
    pytest.param({"features.sample_rate": True}, "features.sample_rate must be an integer", id="bool-rate"),
    pytest.param({"decision.hop_ms": True}, "decision.hop_ms must be a finite number", id="bool-hop"),
    pytest.param({"decision.thresholds.yes": "0.8"}, "decision.thresholds['yes'] must be a finite number",
                 id="string-threshold"),
    pytest.param({"decision.thresholds": [0.8]}, "decision.thresholds must be an object", id="list-thresholds"),
    pytest.param({"features.preemphasis": "0.97"}, "features.preemphasis must be a finite number", id="string-number"),
    pytest.param({"features.high_hz": "8000"}, "features.high_hz must be null or a finite number", id="string-high_hz"),
    pytest.param({"labels": "yes"}, "labels must be a list, got 'yes'", id="labels-string"),
    pytest.param({"labels": None}, "labels must be a list, got None", id="labels-null"),
    pytest.param({"architecture": 8}, "architecture must be a string, got 8", id="architecture-int"),
    pytest.param({"training": []}, "training must be an object, got []", id="training-list"),
    pytest.param({"metrics": "good"}, "metrics must be an object", id="metrics-string"),
    pytest.param({"outputs": None}, "outputs must be one of probabilities, logits, got None", id="outputs-null"),
    pytest.param({"decision.lasting": "yes"}, "decision.lasting must be a list, got 'yes'", id="lasting-string"),
    pytest.param({"decision.lasting": [1]}, "decision.lasting[0] must be a string, got 1", id="lasting-number"),
    pytest.param({"decision.lasting": ["rain"]}, "decision.lasting must name the model's labels other than",
                 id="lasting-unknown-label"),
    pytest.param({"decision.lasting": ["_silence_"]}, "decision.lasting must name the model's labels other than",
                 id="lasting-background"),
    pytest.param({"decision.bridge_ms": -1}, "decision.bridge_ms must be a finite number at least 0",
                 id="bridge-negative"),
    pytest.param({"version": "2"}, f"version must be an integer between 1 and {SPEC_VERSION}, got '2'", id="version-string"),
    pytest.param({"version": 2.0}, "version must be an integer", id="version-float"),
    # out of range: features
    pytest.param({"features.high_hz": 9000.0}, "features.high_hz must be at most half the sample rate (8000), got 9000",
                 id="high_hz-above-nyquist"),
    pytest.param({"features.high_hz": 0}, "features.high_hz must be null or a finite number more than 0, got 0",
                 id="high_hz-zero"),
    pytest.param({"features.low_hz": 4000.0, "features.high_hz": 3000.0},
                 "features.low_hz must be below the top band edge (3000 Hz), got 4000", id="low_hz-above-high_hz"),
    pytest.param({"features.low_hz": -1.0}, "features.low_hz must be a finite number at least 0", id="low_hz-negative"),
    pytest.param({"features.step_ms": 0}, "features.step_ms must be a finite number more than 0 and at most 1000, got 0",
                 id="step-zero"),
    pytest.param({"features.step_ms": 0.01}, "features.step_ms must span a sample at 16000 Hz, got 0.01",
                 id="step-under-a-sample"),
    pytest.param({"features.window_ms": 0}, "features.window_ms must be a finite number more than 0", id="window-zero"),
    pytest.param({"features.window_ms": INF}, "features.window_ms must be a finite number more than 0 and at most 1000, got inf",
                 id="window-inf"),
    pytest.param({"features.window_ms": 5000.0}, "features.window_ms must be a finite number more than 0 and at most 1000",
                 id="window-long"),
    pytest.param({"features.n_fft": 16}, "features.n_fft must be at least the window's 400 samples, got 16",
                 id="n_fft-below-window"),
    pytest.param({"features.n_fft": 2**40}, "features.n_fft must be an integer between 1 and 4096", id="n_fft-huge"),
    pytest.param({"features.sample_rate": 10**9}, "features.sample_rate must be an integer between 8000 and 192000",
                 id="rate-huge"),
    pytest.param({"features.sample_rate": 10**400}, "features.sample_rate must be an integer between 8000 and 192000",
                 id="rate-beyond-float"),
    pytest.param({"features.sample_rate": 4000}, "features.sample_rate must be an integer between 8000 and 192000",
                 id="rate-low"),
    pytest.param({"features.n_mels": 0}, "features.n_mels must be an integer between 1 and 256, got 0", id="mels-zero"),
    pytest.param({"features.n_mels": 256}, "features.n_mels must be less than n_fft / 2 (256), got 256",
                 id="mels-vs-n_fft"),
    pytest.param({"features.preemphasis": NAN}, "features.preemphasis must be a finite number at least 0 and less than "
                 "1, got nan", id="preemphasis-nan"),
    pytest.param({"features.preemphasis": 1.0}, "features.preemphasis must be", id="preemphasis-one"),
    pytest.param({"features.noise_floor": -1.0}, "features.noise_floor must be a finite number between 0 and 32768",
                 id="noise-floor-negative"),
    pytest.param({"features.noise_floor": 1e300}, "features.noise_floor must be", id="noise-floor-huge"),
    # out of range: decision
    pytest.param({"decision.hop_ms": NAN}, "decision.hop_ms must be a finite number more than 0 and at most 60000, got nan",
                 id="hop-nan"),
    pytest.param({"decision.hop_ms": 0}, "decision.hop_ms must be a finite number more than 0", id="hop-zero"),
    pytest.param({"decision.hop_ms": -100.0}, "decision.hop_ms must be", id="hop-negative"),
    pytest.param({"decision.hop_ms": 1e9}, "decision.hop_ms must be", id="hop-huge"),
    pytest.param({"decision.smoothing_ms": -1.0}, "decision.smoothing_ms must be a finite number between 0 and 60000",
                 id="smoothing-negative"),
    pytest.param({"decision.smoothing_ms": -INF}, "decision.smoothing_ms must be", id="smoothing-minus-inf"),
    pytest.param({"decision.refractory_ms": -1.0}, "decision.refractory_ms must be a finite number at least 0",
                 id="refractory-negative"),
    pytest.param({"decision.thresholds.yes": NAN}, "decision.thresholds['yes'] must be a finite number between 0 and "
                 "1.01, got nan", id="threshold-nan"),
    pytest.param({"decision.thresholds.yes": -0.5}, "decision.thresholds['yes'] must be", id="threshold-negative"),
    pytest.param({"decision.thresholds.yes": 1.5}, "decision.thresholds['yes'] must be", id="threshold-above"),
    pytest.param({"decision.thresholds.bed": 0.5}, "decision.thresholds must name the model's labels only, got 'bed'",
                 id="threshold-foreign-label"),
    pytest.param({"decision.default_threshold": INF}, "decision.default_threshold must be", id="default-threshold-inf"),
    # labels and the rest
    pytest.param({"labels": []}, "model spec has no labels", id="labels-empty"),
    pytest.param({"labels": DELETE}, "model spec has no labels", id="labels-missing"),
    pytest.param({"labels": ["yes", 2]}, "labels[1] must be a string, got 2", id="label-int"),
    pytest.param({"labels": ["yes", "yes"]}, "labels must be distinct, got 'yes' twice", id="labels-twice"),
    pytest.param({"labels": ["yes", ""]}, "labels[1] must be a non-empty printable string, got ''", id="label-empty"),
    pytest.param({"labels": ["yes", "no\nspotter: ok"]}, "labels[1] must be a non-empty printable string",
                 id="label-newline"),
    pytest.param({"window_frames": 0}, "window_frames must be an integer between 1 and 1000, got 0", id="frames-zero"),
    pytest.param({"window_frames": 10**7}, "window_frames must be an integer between 1 and 1000", id="frames-huge"),
    pytest.param({"version": 0}, f"version must be an integer between 1 and {SPEC_VERSION}, got 0", id="version-zero"),
    pytest.param({"version": 99}, "model spec version 99 is newer than this spotter understands", id="version-future"),
]


@pytest.mark.parametrize("changes, message", REFUSED)
def test_bad_field_is_refused_by_name(changes: dict[str, Any], message: str, tmp_path: Path) -> None:
    """The loader, the file reader and the command line all refuse it with the same one line naming the field."""
    spec = mutated(changes)
    with pytest.raises(ValueError) as refused:
        ModelSpec.from_dict(spec)
    assert message in str(refused.value)
    path = with_spec(spec, tmp_path / "bad.tflite")
    with pytest.raises(ModelFileError) as read:
        modelfile.read(path)
    assert str(read.value) == f"{path}: invalid spotter metadata: {refused.value}"
    code, err = cli("info", "--model", str(path))
    assert code == 2 and err == f"spotter: {read.value}\n"


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="invalid spotter metadata: model spec must be an object, got \\[1, 2\\]"):
        modelfile.read(with_spec([1, 2], tmp_path / "list.tflite"))


@pytest.mark.parametrize("changes", [
    {"decision.thresholds.yes": SWITCHED_OFF, "decision.thresholds._unknown_": 0.0},
    {"decision.refractory_ms": 0, "decision.smoothing_ms": 0, "decision.hop_ms": 10},
    {"features.high_hz": 8000.0, "features.low_hz": 20, "features.preemphasis": 0},
    {"features.sample_rate": 8000, "features.n_fft": 256, "features.n_mels": 40},
    {"version": 1, "outputs": DELETE, "features.compression": DELETE, "unknown_key": {"a": [1]}},
    {"features.n_fft": 400, "features.noise_floor": 1, "decision.thresholds": {}},
])
def test_unusual_but_valid_specs_load(changes: dict[str, Any]) -> None:
    """Edges of every range, older versions and unknown keys still load: only what is wrong is refused."""
    spec = ModelSpec.from_dict(mutated(changes))
    assert spec.labels[-1] == "_silence_"


def test_shipped_models_load() -> None:
    for path in sorted(SHIPPED_MODEL.parent.glob("*.tflite")):
        assert modelfile.read_spec(path).labels


def test_thresholds_allow_the_switched_off_sentinel() -> None:
    """`eval run --write-thresholds` writes evaluation.SWITCHED_OFF for a keyword it switches off."""
    assert SWITCHED_OFF == SWITCHED_OFF_THRESHOLD == THRESHOLDS.high
    assert DecisionConfig(thresholds={"yes": SWITCHED_OFF}).threshold_for("yes") == SWITCHED_OFF


@pytest.mark.parametrize("flag, value, field, spec_value", [
    ("--hop-ms", str(MAX_DECISION_MS * 2), "decision.hop_ms", MAX_DECISION_MS * 2),
    ("--hop-ms", "0", "decision.hop_ms", 0.0),
    ("--smoothing-ms", "-1", "decision.smoothing_ms", -1.0),
    ("--refractory-ms", "-5", "decision.refractory_ms", -5.0),
])
def test_flags_and_files_share_the_rule(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, field: str, spec_value: float
) -> None:
    """The range a flag refuses is the one a model file's value is refused by, worded the same."""
    with pytest.raises(SystemExit) as exit_info:
        main(["listen", "--model", str(SHIPPED_MODEL), flag, value])
    flag_error = capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(ValueError) as refused:
        ModelSpec.from_dict(mutated({field: spec_value}))
    words = str(refused.value).split(" must be a finite number ")[1].split(", got")[0]
    assert exit_info.value.code == 2 and f"argument {flag}: must be {words}, got {value}" in flag_error


def test_threshold_flag_uses_the_spec_range(tmp_path: Path) -> None:
    code, err = cli("listen", "--quiet", "--input", str(tmp_path / "none.wav"), "--threshold", "nan")
    assert code == 2 and "--threshold 'nan': the value must be between 0 and 1.01" in err


def test_construction_checks_too() -> None:
    """The checks live in the dataclasses, so flags (dataclasses.replace) and code meet them as files do."""
    with pytest.raises(ValueError, match="decision.hop_ms must be"):
        DecisionConfig(hop_ms=-1.0)
    with pytest.raises(ValueError, match="features.n_fft must be at least the window's 400 samples"):
        FeatureConfig(n_fft=256)
    with pytest.raises(ValueError, match="labels must be a list"):
        ModelSpec(labels=["a"])  # type: ignore[arg-type]


# ---- the archive around the spec ------------------------------------------------------------------------------

def _patched(path: Path, local: tuple[int, bytes], central: tuple[int, bytes]) -> Path:
    """The model file with bytes replaced at offsets into the spec member's local and central headers."""
    data = bytearray(path.read_bytes())
    for signature, (offset, value) in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        at = data.rindex(signature) + offset
        data[at : at + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def test_unknown_compression_method_is_refused(tmp_path: Path) -> None:
    method = struct.pack("<H", 99)
    path = _patched(with_spec(shipped_spec(), tmp_path / "m.tflite"), (8, method), (10, method))
    with pytest.raises(ModelFileError, match="unreadable spotter metadata \\(.*compression method"):
        modelfile.read(path)


def test_zip_version_from_the_future_is_refused(tmp_path: Path) -> None:
    """zipfile refuses to list an archive whose member needs a newer zip version, before any member is read."""
    version = struct.pack("<H", 99)
    path = _patched(with_spec(shipped_spec(), tmp_path / "m.tflite"), (4, version), (6, version))
    with pytest.raises(ModelFileError, match="unreadable spotter metadata \\(zip file version 9.9\\)"):
        modelfile.read(path)


def test_encrypted_member_is_refused(tmp_path: Path) -> None:
    flags = struct.pack("<H", 1)
    path = _patched(with_spec(shipped_spec(), tmp_path / "m.tflite"), (6, flags), (8, flags))
    with pytest.raises(ModelFileError, match="spotter metadata is encrypted"):
        modelfile.read(path)


def test_corrupt_deflate_stream_is_refused(tmp_path: Path) -> None:
    path = with_spec(shipped_spec(), tmp_path / "m.tflite")
    data = bytearray(path.read_bytes())
    start = data.rindex(b"PK\x03\x04") + 30 + len(modelfile.SPEC_NAME)
    data[start : start + 64] = bytes(range(64))
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt spotter metadata"):
        modelfile.read(path)


def test_spec_bomb_is_refused_before_inflating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec declaring more than a megabyte is refused from its header; a header that lies about its size still
    stops the inflating at the declared size (zipfile's CRC check then fails)."""
    spec = mutated({"metrics": {"padding": " " * (modelfile.MAX_SPEC_BYTES + 1)}})
    bomb = with_spec(spec, tmp_path / "bomb.tflite")
    plain = with_spec(shipped_spec(), tmp_path / "plain.tflite")
    assert bomb.stat().st_size - plain.stat().st_size < 10_000  # a megabyte inflated from a few kilobytes
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *args, **kwargs: pytest.fail("inflated"))
    with pytest.raises(ModelFileError, match="spotter metadata of 10[0-9]{5} bytes is larger than a spec may be \\(1 MiB\\)"):
        modelfile.read(bomb)
    monkeypatch.undo()
    liar = _patched(bomb, (22, struct.pack("<I", 4000)), (24, struct.pack("<I", 4000)))
    with pytest.raises(ModelFileError, match="corrupt spotter metadata"):
        modelfile.read(liar)


@pytest.mark.parametrize("text, message", [
    ('{"labels": ["a"], "training": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"labels": ["a"], "training": {"x": ' + "[" * 40 + "]" * 40 + "}}", "nested more than 32 deep"),
    ('{"labels": ["a"], "window_frames": 1' + "0" * 5000 + "}", "corrupt spotter metadata"),
    ('{"labels": ["a"], ', "corrupt spotter metadata"),
    ("\udcff", "corrupt spotter metadata"),
])
def test_malformed_json_is_refused(tmp_path: Path, text: str, message: str) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(modelfile.SPEC_NAME, text.encode("utf-8", "surrogateescape"))
    path = tmp_path / "m.tflite"
    path.write_bytes(flatbuffer() + archive.getvalue())
    with pytest.raises(ModelFileError, match=message):
        modelfile.read(path)


def test_fifo_device_and_folder_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.tflite"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        if path.exists():
            code, err = cli("info", "--model", str(path))
            assert code == 2 and err == f"spotter: {path} is not a regular file, so not a model file\n"


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.tflite"
    with path.open("wb") as sparse:
        sparse.truncate(modelfile.MAX_MODEL_BYTES + 1)
    with pytest.raises(ModelFileError, match="larger than a model file may be \\(64 MiB\\)"):
        modelfile.read(path)


def test_a_model_with_lasting_labels_is_written_as_version_4() -> None:
    """Older spotters (version 3) would print one line a second for rain: the version makes them refuse instead."""
    spec = ModelSpec.from_dict(mutated({"decision.lasting": ["yes"]}))
    assert spec.decision.lasting == ("yes",) and spec.version == LASTING_SPEC_VERSION == SPEC_VERSION
    assert ModelSpec.from_dict(mutated({})).version < LASTING_SPEC_VERSION
