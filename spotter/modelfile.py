"""Model files: a .tflite flatbuffer with a zip archive appended that holds the spec as JSON.

Both interpreters ignore the appended bytes, and the stdlib's zipfile finds the archive from the end of the file,
so reading the spec needs nothing but Python. The interpreter package is chosen here and nowhere else.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .config import ModelSpec
from .files import write_atomic

SPEC_NAME = "spotter.json"
TFLITE_IDENTIFIER = b"TFL3"


class ModelFileError(Exception):
    """A model file that is missing, foreign or corrupt; its message is one clear line for the user."""


def pack(tflite: bytes, spec: ModelSpec) -> bytes:
    """The bytes of a model file: the flatbuffer, then a zip with the spec."""
    if tflite[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError("refusing to pack: the model bytes are not a TFLite flatbuffer")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(SPEC_NAME, json.dumps(spec.to_dict(), indent=1, sort_keys=True))
    return tflite + archive.getvalue()


def write(path: Path, tflite: bytes, spec: ModelSpec) -> None:
    """Written whole or not at all: a full disk or a crash mid-write leaves the old model loadable."""
    write_atomic(path, pack(tflite, spec))


def read(path: Path) -> tuple[bytes, ModelSpec]:
    """The file's bytes (interpreters ignore the appended zip) and its spec, or a ModelFileError saying what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite model (no TFL3 identifier)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            spec_data: Any = json.loads(zf.read(SPEC_NAME))
    except (zipfile.BadZipFile, KeyError):
        raise ModelFileError(f"{path} is a plain TFLite model without spotter metadata; train it with spotter train") from None
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: corrupt spotter metadata ({exc})") from None
    try:
        spec = ModelSpec.from_dict(spec_data)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid spotter metadata: {exc}") from None
    return data, spec


def read_spec(path: Path) -> ModelSpec:
    return read(path)[1]


def flatbuffer(data: bytes) -> bytes:
    """The TFLite part of a model file's bytes: everything before the appended archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return data[: min(info.header_offset for info in zf.infolist())]


def update_spec(path: Path, spec: ModelSpec) -> None:
    """Rewrite a model file's spec in place (for example measured thresholds), keeping its model bytes."""
    data, _ = read(path)
    write(path, flatbuffer(data), spec)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def make_interpreter(tflite: bytes, num_threads: int = 1) -> Any:
    """A TFLite interpreter from LiteRT (ai-edge-litert) or, where only it exists, tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            raise ModelFileError(
                "no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime on 32-bit Pi OS)"
            ) from None
    try:
        with _quiet_stderr():  # LiteRT announces its XNNPACK delegate on fd 2; stderr belongs to spotter
            interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"the TFLite interpreter rejected the model: {first}") from None
    return interpreter
