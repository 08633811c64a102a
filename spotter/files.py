"""Files a user keeps are replaced whole or not at all."""

from __future__ import annotations

import io
import os
import tempfile
import wave
from pathlib import Path

import numpy as np


def write_atomic(path: Path | str, data: bytes) -> None:
    """Write `data` to a temporary file in the target's folder, fsync it, then rename it over `path`: a crash or a
    full disk leaves either the old file or the new one, never half of one. The file gets the permissions the old
    one had, or those a plain `open` would give (mkstemp's 0600 would hide a shared model from its service)."""
    target = Path(path)
    mode = _mode_for(target)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _mode_for(target: Path) -> int:
    """The replaced file's permission bits, or 0666 less the umask for a new file."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; platforms whose folders cannot be opened or synced skip it."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_text(path: Path | str, text: str) -> None:
    """UTF-8 text (reports, cards, eval.json), written atomically."""
    write_atomic(path, text.encode("utf-8"))


def save_figure(figure, path: Path | str) -> None:  # type: ignore[no-untyped-def]
    """A matplotlib figure as PNG, rendered in memory and written atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())


def write_wav(path: Path | str, audio: np.ndarray, sample_rate: int) -> None:
    """A mono 16-bit PCM WAV, written atomically (`write_atomic`), its folder made if missing."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.asarray(audio).astype("<i2").tobytes())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
