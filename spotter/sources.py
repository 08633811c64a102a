"""Audio sources: WAV files, raw PCM on stdin, and the microphone. Each yields int16 chunks at the engine's rate.

Only the microphone imports sounddevice, and only when it is used, so file and stdin modes need no PortAudio.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from .config import ms_to_samples
from .resample import Resampler

INT16_MAX = 32767


class AudioError(Exception):
    """Unreadable, truncated or unsupported audio, or an input device that cannot be used: one line for the user."""


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples), -INT16_MAX - 1, INT16_MAX).astype(np.int16)


class _Converter:
    """Downmix to mono and resample to the target rate, keeping state across chunks."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.resampler = Resampler(source_rate, target_rate)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        mono = frames.mean(axis=1) if frames.ndim == 2 and frames.shape[1] > 1 else frames.reshape(-1)
        if self.resampler.identity:
            return to_int16(mono)
        return to_int16(self.resampler.push(mono))

    def flush(self) -> np.ndarray:
        return to_int16(self.resampler.flush())


_WAV_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}


def _decode_pcm(raw: bytes, width: int, channels: int) -> np.ndarray:
    """Little-endian PCM bytes -> float samples in int16 units, shape (frames, channels)."""
    if width == 3:
        data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        values = (data[:, 0].astype(np.int32) | (data[:, 1].astype(np.int32) << 8) | (data[:, 2].astype(np.int32) << 16))
        values = np.where(values >= 1 << 23, values - (1 << 24), values).astype(np.float64) / 256.0
    elif width == 1:
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    else:
        values = np.frombuffer(raw, dtype=np.dtype(_WAV_DTYPES[width]).newbyteorder("<")).astype(np.float64)
        if width == 4:
            values /= 65536.0
    return values.reshape(-1, channels)


class WavFile:
    """Any PCM WAV (8, 16, 24 or 32-bit integer, any rate, any channels), read in blocks."""

    def __init__(self, path: Path, target_rate: int, block_ms: float = 100.0, realtime: bool = False) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.dropped_blocks = 0
        try:
            self._wav = wave.open(str(self.path), "rb")
        except FileNotFoundError:
            raise AudioError(f"input file not found: {self.path}") from None
        except (wave.Error, EOFError) as exc:
            raise AudioError(f"{self.path}: not a PCM WAV file ({exc or 'empty or truncated header'})") from None
        except OSError as exc:
            raise AudioError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self.rate = self._wav.getframerate()
        self.channels = self._wav.getnchannels()
        self.width = self._wav.getsampwidth()
        self.frames = self._wav.getnframes()
        if self.width not in (1, 2, 3, 4):
            raise AudioError(f"{self.path}: {8 * self.width}-bit samples are not supported")
        self.target_rate = target_rate
        self._block = max(1, ms_to_samples(block_ms, self.rate))
        self._convert = _Converter(self.rate, target_rate)

    @property
    def description(self) -> str:
        return f"{self.path} ({self.rate} Hz, {self.channels} ch, {8 * self.width}-bit)"

    def __iter__(self) -> Iterator[np.ndarray]:
        read = 0
        started = time.monotonic()
        try:
            while read < self.frames:
                raw = self._wav.readframes(min(self._block, self.frames - read))
                got = len(raw) // (self.width * self.channels)
                if got == 0:
                    break
                read += got
                yield self._convert(_decode_pcm(raw[: got * self.width * self.channels], self.width, self.channels))
                if self.realtime:
                    delay = started + read / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        finally:
            self._wav.close()
        if read < self.frames:
            raise AudioError(f"{self.path}: truncated: header promises {self.frames} frames, file holds {read}")
        tail = self._convert.flush()
        if tail.size:
            yield tail


class RawStdin:
    """Signed 16-bit little-endian mono PCM from a pipe, e.g. `arecord -f S16_LE -r 16000 -c 1`."""

    def __init__(self, rate: int, target_rate: int, block_ms: float = 100.0, stream: BinaryIO | None = None) -> None:
        self.rate = rate
        self.target_rate = target_rate
        self.stream = stream or sys.stdin.buffer
        self.dropped_blocks = 0
        self._block_bytes = 2 * max(1, ms_to_samples(block_ms, rate))
        self._convert = _Converter(rate, target_rate)
        self.odd_byte = False

    @property
    def description(self) -> str:
        return f"stdin (s16le mono, {self.rate} Hz)"

    def __iter__(self) -> Iterator[np.ndarray]:
        fd = self.stream.fileno() if hasattr(self.stream, "fileno") else None
        leftover = b""
        while True:
            try:
                data = os.read(fd, self._block_bytes) if fd is not None else self.stream.read(self._block_bytes)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not data:
                break
            data = leftover + data
            usable = len(data) - len(data) % 2
            leftover = data[usable:]
            if usable:
                yield self._convert(np.frombuffer(data[:usable], dtype="<i2").astype(np.float64))
        if leftover:
            self.odd_byte = True
        tail = self._convert.flush()
        if tail.size:
            yield tail


class RingBuffer:
    """Fixed-size sample store between the audio callback and the worker. The writer only copies; when the
    reader falls behind, whole blocks are dropped and counted, never silently overwritten."""

    def __init__(self, capacity: int, channels: int = 1) -> None:
        self._data = np.zeros((capacity, channels), dtype=np.float32)
        self._capacity = capacity
        self._write = 0
        self._read = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.dropped_blocks = 0

    def write(self, block: np.ndarray) -> None:
        count = block.shape[0]
        with self._lock:
            if self._write - self._read + count > self._capacity:
                self.dropped_blocks += 1
                return
            start = self._write % self._capacity
            first = min(count, self._capacity - start)
            self._data[start : start + first] = block[:first]
            self._data[: count - first] = block[first:]
            self._write += count
        self._ready.set()

    def read(self, timeout: float) -> np.ndarray:
        """Everything written since the last read (waits up to `timeout` for something)."""
        self._ready.wait(timeout)
        with self._lock:
            self._ready.clear()
            count = self._write - self._read
            start = self._read % self._capacity
            idx = (start + np.arange(count)) % self._capacity
            out = self._data[idx].copy()
            self._read += count
        return out


class Microphone:
    """Live input through sounddevice. The callback copies into the ring buffer and counts overflows."""

    def __init__(self, device: str | None, target_rate: int, block_ms: float = 50.0, buffer_s: float = 10.0) -> None:
        self.sd = import_sounddevice()
        self.target_rate = target_rate
        self.device_index, self.device_name = find_input_device(self.sd, device)
        self.rate = self._open_rate(target_rate)
        self.block = max(1, ms_to_samples(block_ms, self.rate))
        self.ring = RingBuffer(int(self.rate * buffer_s))
        self.overflows = 0
        self._convert = _Converter(self.rate, target_rate)
        self._stop = threading.Event()

    @property
    def dropped_blocks(self) -> int:
        return self.ring.dropped_blocks + self.overflows

    @property
    def description(self) -> str:
        return f"{self.device_name} (device {self.device_index}, {self.rate} Hz)"

    def _open_rate(self, wanted: int) -> int:
        """The engine's rate where the device takes it, else the device's own default rate (then resampled)."""
        try:
            self.sd.check_input_settings(device=self.device_index, samplerate=wanted, channels=1, dtype="int16")
            return wanted
        except Exception:  # sounddevice raises PortAudioError or ValueError for an unsupported rate
            info = self.sd.query_devices(self.device_index)
            return int(info["default_samplerate"])

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        self.ring.write(indata)

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            stream = self.sd.InputStream(
                device=self.device_index, samplerate=self.rate, channels=1, dtype="float32",
                blocksize=self.block, callback=self._callback,
            )
        except Exception as exc:
            raise AudioError(f"cannot open input device {self.device_name!r}: {exc}") from None
        with stream:
            while not self._stop.is_set():
                block = self.ring.read(timeout=0.2)
                if block.size:
                    yield self._convert(block * 32768.0)


def import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:
        raise AudioError("PortAudio library not found: install it (Debian: sudo apt install libportaudio2)") from None
    except ImportError:
        raise AudioError("sounddevice is not installed: pip install sounddevice") from None
    return sounddevice


def input_devices(sd: Any) -> list[tuple[int, dict[str, Any]]]:
    try:
        devices = sd.query_devices()
    except Exception as exc:
        raise AudioError(f"cannot list audio devices: {exc}") from None
    return [(i, d) for i, d in enumerate(devices) if d["max_input_channels"] > 0]


def find_input_device(sd: Any, wanted: str | None) -> tuple[int, str]:
    """`wanted` is a device index, part of a device name, or None for the system default input."""
    inputs = input_devices(sd)
    if not inputs:
        raise AudioError("no audio input device found")
    if wanted is None:
        try:
            index = sd.default.device[0]
        except Exception:
            index = -1
        if index is None or index < 0:
            index = inputs[0][0]
        return int(index), str(sd.query_devices(index)["name"])
    if wanted.strip().isdigit():
        index = int(wanted)
        for i, d in inputs:
            if i == index:
                return i, str(d["name"])
        raise AudioError(f"no input device with index {index} (see: spotter devices)")
    matches = [(i, d) for i, d in inputs if wanted.lower() in d["name"].lower()]
    if not matches:
        raise AudioError(f"no input device matching {wanted!r} (see: spotter devices)")
    return matches[0][0], str(matches[0][1]["name"])
