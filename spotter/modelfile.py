"""Model files: a .tflite flatbuffer with a zip archive appended that holds the spec as JSON.

Both interpreters ignore the appended bytes, and the stdlib's zipfile finds the archive from the end of the file,
so reading the spec needs nothing but Python. The interpreter package is chosen here and nowhere else.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import stat
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

try:
    import lzma
except ImportError:  # a Python built without liblzma; zipfile then refuses LZMA members itself
    lzma = None  # type: ignore[assignment]

from .config import ModelSpec
from .files import write_atomic

SPEC_NAME = "spotter.json"
TFLITE_IDENTIFIER = b"TFL3"
MAX_MODEL_BYTES = 64 << 20
"""Read no more of a file than this: the largest architecture's model is a few MB, and a bound keeps a device or
an endless file given as --model from filling memory."""
MAX_SPEC_BYTES = 1 << 20
"""A spec is a few KB of JSON; a member declaring more (a zip bomb) is refused before it is inflated."""
MAX_SPEC_DEPTH = 32
"""Shipped specs nest 5 deep (training config, metrics); far deeper JSON would exhaust the stack of the code that
copies and prints a spec."""
ENCRYPTED_FLAG = 0x1
"""Bit 0 of a zip member's general-purpose flags."""
UNREADABLE_ERRORS = (NotImplementedError, RuntimeError)
"""What zipfile raises for a zip version or compression method it (or this Python build) cannot read."""
INFLATE_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, *((lzma.LZMAError,) if lzma else ()),
)
"""What inflating a corrupt member raises: deflate, bzip2 (OSError), LZMA (where this Python has it), a truncated
stream (EOFError), a CRC mismatch (BadZipFile)."""


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
    """The file's bytes (interpreters ignore the appended zip) and its spec, or a ModelFileError saying what is wrong.

    Everything in the file is untrusted: its size, the archive, the spec's size, nesting and every field (checked
    by `ModelSpec.from_dict`)."""
    path = Path(path)
    data = _read_bounded(path)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite model (no TFL3 identifier)")
    spec_data = _json_spec(_spec_bytes(path, data), path)
    try:
        spec = ModelSpec.from_dict(spec_data)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid spotter metadata: {_first_line(exc)}") from None
    return data, spec


def _read_bounded(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_MODEL_BYTES of them. Opened without blocking and checked on the open
    descriptor, so a FIFO with no writer or a device like /dev/zero is refused instead of waited on or read forever."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ModelFileError(f"{path} is not a regular file, so not a model file")
        if status.st_size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{path} is larger than a model file may be ({MAX_MODEL_BYTES >> 20} MiB)")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, MAX_MODEL_BYTES + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_MODEL_BYTES:  # it grew while we read it
                raise ModelFileError(f"{path} is larger than a model file may be ({MAX_MODEL_BYTES >> 20} MiB)")
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _spec_bytes(path: Path, data: bytes) -> bytes:
    """The spec member's bytes from the appended archive; its declared size is checked before it is inflated and
    the inflating stops past MAX_SPEC_BYTES, so a zip bomb costs nothing."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        info = archive.getinfo(SPEC_NAME)
    except (zipfile.BadZipFile, KeyError):
        raise ModelFileError(f"{path} is a plain TFLite model without spotter metadata; train it with spotter train") from None
    except UNREADABLE_ERRORS as exc:
        raise ModelFileError(f"{path}: unreadable spotter metadata ({_first_line(exc)})") from None
    except (zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"{path}: corrupt spotter metadata ({_first_line(exc)})") from None
    with archive:
        if info.flag_bits & ENCRYPTED_FLAG:
            raise ModelFileError(f"{path}: the spotter metadata is encrypted; spotter writes it in the clear")
        if info.file_size > MAX_SPEC_BYTES:
            raise ModelFileError(f"{path}: spotter metadata of {info.file_size} bytes is larger than a spec may be "
                                 f"({MAX_SPEC_BYTES >> 20} MiB)")
        try:
            with archive.open(info) as member:
                raw = member.read(MAX_SPEC_BYTES + 1)
        except UNREADABLE_ERRORS as exc:
            raise ModelFileError(f"{path}: unreadable spotter metadata ({_first_line(exc)})") from None
        except INFLATE_ERRORS as exc:
            raise ModelFileError(f"{path}: corrupt spotter metadata ({_first_line(exc)})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise ModelFileError(f"{path}: spotter metadata is larger than a spec may be ({MAX_SPEC_BYTES >> 20} MiB)")
    return raw


def _json_spec(raw: bytes, path: Path) -> Any:
    """The spec's JSON, refused when it does not parse or nests deeper than any spec does."""
    try:
        parsed = json.loads(raw)
    except RecursionError:
        raise ModelFileError(f"{path}: corrupt spotter metadata (nested too deeply)") from None
    except ValueError as exc:  # malformed JSON, bad UTF-8, an integer of more than 4300 digits
        raise ModelFileError(f"{path}: corrupt spotter metadata ({_first_line(exc)})") from None
    if _depth(parsed) > MAX_SPEC_DEPTH:
        raise ModelFileError(f"{path}: corrupt spotter metadata (nested more than {MAX_SPEC_DEPTH} deep)")
    return parsed


def _depth(value: Any) -> int:
    """How deep lists and objects nest in parsed JSON, counted without recursion (1 for a scalar)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _first_line(exc: BaseException) -> str:
    """An exception as one line of an error message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


INTERPRETERS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
"""LiteRT where it has wheels; tflite-runtime where only it has (32-bit Pi OS, armv7l)."""
NO_INTERPRETER = ("no TFLite interpreter could be imported ({reasons}): pip install ai-edge-litert, or on 32-bit "
                  "Pi OS (armv7l) pip install tflite-runtime 'numpy<2' (README: Raspberry Pi)")


def _interpreter_class() -> Any:
    """The first interpreter class that imports. Whatever an import raises means that one is unusable, not only
    ImportError: tflite-runtime, built for numpy 1, raises ImportError, SystemError or AttributeError under numpy 2,
    after numpy prints a warning with a traceback in it (silenced: the error is one line)."""
    reasons: list[str] = []
    for module in INTERPRETERS:
        try:
            with _quiet_stderr():
                return importlib.import_module(module).Interpreter
        except Exception as exc:
            reasons.append(f"{module.split('.')[0]}: {_first_line(exc)}")
    raise ModelFileError(NO_INTERPRETER.format(reasons="; ".join(reasons)))


def make_interpreter(tflite: bytes, num_threads: int = 1, preserve_all_tensors: bool = False) -> Any:
    """A TFLite interpreter from LiteRT (ai-edge-litert) or, where only it exists, tflite-runtime.

    `preserve_all_tensors` keeps every intermediate tensor readable after `invoke` (`spotter embed` reads the
    classifier's input); it runs the built-in kernels only, since a delegate keeps the tensors it runs to itself.
    """
    Interpreter = _interpreter_class()
    options: dict[str, Any] = {}
    if preserve_all_tensors:
        resolvers = sys.modules[Interpreter.__module__].OpResolverType
        options = {"experimental_preserve_all_tensors": True,
                   "experimental_op_resolver_type": resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    try:
        with _quiet_stderr():  # LiteRT announces its XNNPACK delegate on fd 2; stderr belongs to spotter
            interpreter = Interpreter(model_content=tflite, num_threads=num_threads, **options)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"the TFLite interpreter rejected the model: {_first_line(exc)}") from None
    return interpreter
