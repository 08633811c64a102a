"""Audio sources: WAV files, raw PCM on stdin, and the microphone. Each yields int16 chunks at the engine's rate.

Only the microphone imports sounddevice, and only when it is used, so file and stdin modes need no PortAudio.
"""

from __future__ import annotations

import atexit
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Generator, Iterator

import numpy as np

from .config import MIC_BLOCK_MS, SAMPLE_RATES, ms_to_samples
from .resample import Resampler

INT16_MAX = 32767


class AudioError(Exception):
    """Unreadable, truncated or unsupported audio, or an input device that cannot be used: one line for the user."""


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples), -INT16_MAX - 1, INT16_MAX).astype(np.int16)


class _Converter:
    """Downmix to mono and resample to the target rate, keeping state across chunks. Mono int16 at the target rate
    (a microphone or stdin at 16 kHz) passes through as it is."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.resampler = Resampler(source_rate, target_rate)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        mono = frames.mean(axis=1) if frames.ndim == 2 and frames.shape[1] > 1 else frames.reshape(-1)
        if self.resampler.identity:
            return mono if mono.dtype == np.int16 else to_int16(mono)
        return to_int16(self.resampler.push(mono))

    def flush(self) -> np.ndarray:
        return to_int16(self.resampler.flush())


MAX_CHANNELS = 32
PCM_WIDTHS = (1, 2, 3, 4)
FLOAT_WIDTHS = (4, 8)
"""Bytes per sample that are read: 8 to 32-bit integers, 32 and 64-bit IEEE floats."""

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
"""What many recorders write for 24-bit or multichannel audio: the real format tag is in a sub-format GUID."""
SUBFORMAT_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
"""The 14 bytes after the format tag in the KSDATAFORMAT_SUBTYPE_PCM and _IEEE_FLOAT GUIDs."""
FMT_BYTES = 16
FMT_EXTENSIBLE_BYTES = 40
SKIP_PIECE_BYTES = 1 << 16
"""A chunk that is not needed is skipped by seeking, or in a pipe by reading it this much at a time."""
_INT_DTYPES = {1: np.dtype(np.uint8), 2: np.dtype("<i2"), 4: np.dtype("<i4")}
_FLOAT_DTYPES = {4: np.dtype("<f4"), 8: np.dtype("<f8")}


def rate_problem(rate: int) -> str | None:
    """Why a sample rate from a header, --rate or a device is refused (`config.SAMPLE_RATES`, the range a model
    file's rate meets too), or None: a corrupt header's 536,885,888 Hz would make the resampler's filter gigabytes
    long."""
    if rate in SAMPLE_RATES:
        return None
    return f"{rate} Hz is outside the supported {SAMPLE_RATES.low:g}-{SAMPLE_RATES.high:g} Hz"


def check_rate(rate: int, source: str) -> int:
    """`rate`, or an AudioError naming `source` when it is outside what the resampler is built for."""
    problem = rate_problem(rate)
    if problem:
        raise AudioError(f"{source}: sample rate {problem}")
    return rate


@dataclass(frozen=True)
class WavFormat:
    """A WAV file's validated fmt chunk."""

    rate: int
    channels: int
    width: int
    """Bytes per sample."""
    is_float: bool

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.width

    @property
    def description(self) -> str:
        return f"{self.rate} Hz, {self.channels} ch, {8 * self.width}-bit{' float' if self.is_float else ''}"


def _parse_fmt(body: bytes, size: int, name: str) -> WavFormat:
    """The fmt chunk, checked field by field: a header is untrusted input."""
    if size < FMT_BYTES or len(body) < FMT_BYTES:
        raise AudioError(f"{name}: not a PCM WAV file (fmt chunk of {len(body)} bytes, {FMT_BYTES} needed)")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:FMT_BYTES])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < FMT_EXTENSIBLE_BYTES:
            raise AudioError(f"{name}: not a PCM WAV file (extensible fmt chunk of {len(body)} bytes, "
                             f"{FMT_EXTENSIBLE_BYTES} needed)")
        subformat = body[24:FMT_EXTENSIBLE_BYTES]
        if subformat[2:] != SUBFORMAT_GUID_TAIL:
            raise AudioError(f"{name}: not a PCM WAV file (unknown extensible sub-format {subformat.hex()})")
        tag = struct.unpack("<H", subformat[:2])[0]
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        raise AudioError(f"{name}: not a PCM WAV file (format tag 0x{tag:04x}; only PCM and IEEE float are read)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels; 1 to {MAX_CHANNELS} are supported")
    check_rate(rate, name)
    is_float = tag == WAVE_FORMAT_IEEE_FLOAT
    width = (bits + 7) // 8
    if width not in (FLOAT_WIDTHS if is_float else PCM_WIDTHS) or (is_float and bits != 8 * width):
        raise AudioError(f"{name}: {bits}-bit {'float' if is_float else 'integer'} samples are not supported")
    if block_align != channels * width:
        raise AudioError(f"{name}: inconsistent WAV header: block align {block_align} for {channels} channels "
                         f"of {width} bytes")
    return WavFormat(rate, channels, width, is_float)


def _skip(stream: BinaryIO, count: int) -> None:
    """Past `count` bytes; seeking beyond the end is fine, the next read then finds nothing."""
    if stream.seekable():
        stream.seek(count, os.SEEK_CUR)
        return
    while count > 0:
        piece = stream.read(min(count, SKIP_PIECE_BYTES))
        if not piece:
            return
        count -= len(piece)


def read_wav_header(stream: BinaryIO, name: str) -> tuple[WavFormat, int]:
    """Reads a RIFF/WAVE header up to the first sample; returns the format and the data chunk's declared size.

    Only the fmt chunk's first 40 bytes are ever held; other chunks are skipped, so a size field that lies costs
    a seek, never an allocation. Chunks of odd size are followed by a pad byte."""
    riff = stream.read(12)
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
        raise AudioError(f"{name}: not a PCM WAV file (no RIFF/WAVE header)")
    fmt: WavFormat | None = None
    while True:
        head = stream.read(8)
        if len(head) < 8:
            raise AudioError(f"{name}: not a PCM WAV file (no {'data' if fmt else 'fmt'} chunk)")
        chunk_id, size = head[:4], struct.unpack("<I", head[4:])[0]
        if chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{name}: not a PCM WAV file (data chunk before the fmt chunk)")
            return fmt, size
        if chunk_id == b"fmt ":
            body = stream.read(min(size, FMT_EXTENSIBLE_BYTES))
            fmt = _parse_fmt(body, size, name)
            _skip(stream, size - len(body) + size % 2)
        else:
            _skip(stream, size + size % 2)


def _decode(raw: bytes, fmt: WavFormat) -> np.ndarray:
    """Little-endian samples -> float samples in int16 units, shape (frames, channels)."""
    if fmt.is_float:
        values = np.frombuffer(raw, dtype=_FLOAT_DTYPES[fmt.width]).astype(np.float64)
        # NaN or infinity in a file would poison the resampler's history: silence and full scale instead
        values = np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0) * 32768.0
    elif fmt.width == 3:
        data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        values = (data[:, 0].astype(np.int32) | (data[:, 1].astype(np.int32) << 8) | (data[:, 2].astype(np.int32) << 16))
        values = np.where(values >= 1 << 23, values - (1 << 24), values).astype(np.float64) / 256.0
    elif fmt.width == 1:
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    else:
        values = np.frombuffer(raw, dtype=_INT_DTYPES[fmt.width]).astype(np.float64)
        if fmt.width == 4:
            values /= 65536.0
    return values.reshape(-1, fmt.channels)


class WavFile:
    """Any PCM or IEEE-float WAV (8 to 32-bit integers, 32 or 64-bit floats, WAVE_FORMAT_EXTENSIBLE too; 8-192 kHz,
    1-32 channels), read in blocks. The header is parsed here rather than by the stdlib `wave`, which refuses
    extensible and float files and raises bare RuntimeErrors on some corrupt headers."""

    def __init__(self, path: Path, target_rate: int, block_ms: float = 100.0, realtime: bool = False) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.dropped_blocks = 0
        try:
            self._file = open(self.path, "rb")
        except FileNotFoundError:
            raise AudioError(f"input file not found: {self.path}") from None
        except OSError as exc:
            raise AudioError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            self.format, data_bytes = read_wav_header(self._file, str(self.path))
        except OSError as exc:
            self._file.close()
            raise AudioError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        except AudioError:
            self._file.close()
            raise
        self.rate = self.format.rate
        self.frames = data_bytes // self.format.frame_bytes  # as declared: a bound for reading, never allocated
        self.target_rate = target_rate
        self._block = max(1, ms_to_samples(block_ms, self.rate))
        self._convert = _Converter(self.rate, target_rate)

    @property
    def description(self) -> str:
        return f"{self.path} ({self.format.description})"

    def __iter__(self) -> Iterator[np.ndarray]:
        frame_bytes = self.format.frame_bytes
        read = 0
        started = time.monotonic()
        try:
            while read < self.frames:
                raw = self._file.read(min(self._block, self.frames - read) * frame_bytes)
                got = len(raw) // frame_bytes
                if got == 0:
                    break
                read += got
                yield self._convert(_decode(raw[: got * frame_bytes], self.format))
                if self.realtime:
                    delay = started + read / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        finally:
            self._file.close()
        if read < self.frames:
            raise AudioError(f"{self.path}: truncated: header promises {self.frames} frames, file holds {read}")
        tail = self._convert.flush()
        if tail.size:
            yield tail


class RawStdin:
    """Signed 16-bit little-endian mono PCM from a pipe, e.g. `arecord -f S16_LE -r 16000 -c 1`."""

    def __init__(self, rate: int, target_rate: int, block_ms: float = 100.0, stream: BinaryIO | None = None) -> None:
        self.rate = check_rate(rate, "stdin")
        self.target_rate = target_rate
        if stream is None and sys.stdin is None:
            raise AudioError("stdin is closed: nothing to read raw PCM from (--input -)")
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
                yield self._convert(np.frombuffer(data[:usable], dtype="<i2"))
        if leftover:
            self.odd_byte = True
        tail = self._convert.flush()
        if tail.size:
            yield tail


class RingBuffer:
    """Fixed-size store of mono int16 samples between the audio callback and the worker. The writer only copies;
    when the reader falls behind, whole blocks are dropped and counted, never silently overwritten."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, dtype=np.int16)
        self._capacity = capacity
        self._write = 0
        self._read = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.dropped_blocks = 0

    def write(self, block: np.ndarray) -> None:
        block = block.reshape(-1)
        count = block.size
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
            first = min(count, self._capacity - start)
            out = np.concatenate((self._data[start : start + first], self._data[: count - first]))
            self._read += count
        return out


READ_WAIT_S = 0.2
"""The worker waits this long for samples at a time, so stop() and a lost device are noticed promptly."""
FIRST_SAMPLES_S = 5.0
"""A stream just opened may take this long to deliver its first samples (PulseAudio's monitor: 1.2 s here)."""
STALL_S = 2.0
"""A stream that delivered, then gets no callbacks (not silence: no samples at all) this long, is lost: a frozen
sound server. A server that dies or a device that fails ends the stream, which is noticed at once."""
RELEASE_WAIT_S = 1.0
"""Closing a stream whose server froze blocks inside PortAudio: after this long it is left to a thread."""
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Backoff between attempts to reopen a lost microphone (--reconnect); the last repeats."""
class DeviceLost(AudioError):
    """The microphone stopped delivering audio: its sound server went away, it was unplugged, or its stream failed."""


class Microphone:
    """Live input through sounddevice. The callback copies into the ring buffer and counts overflows; the worker
    notices a stream that ends or stops delivering and then raises DeviceLost, or with `reconnect` reopens the
    device with backoff, telling `notify` each attempt."""

    def __init__(self, device: str | None, target_rate: int, block_ms: float = MIC_BLOCK_MS, buffer_s: float = 10.0,
                 reconnect: bool = False, notify: Callable[[str], None] | None = None) -> None:
        self.sd = import_sounddevice()
        self.wanted = device
        self.target_rate = target_rate
        self.block_ms = block_ms
        self.buffer_s = buffer_s
        self.reconnect = reconnect
        self.notify = notify or (lambda message: None)
        self.overflows = 0
        self._earlier_drops = 0  # blocks dropped by the ring buffers of lost streams
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._unreleased: threading.Thread | None = None
        self._use(*find_input_device(self.sd, device))

    def _use(self, index: int, name: str) -> None:
        """Capture from this device: its rate, and a ring buffer and converter for it."""
        self.device_index, self.device_name = index, name
        self.rate = check_rate(self._open_rate(self.target_rate), f"input device {name!r}")
        if hasattr(self, "ring"):  # a reconnect: keep the lost stream's drops, counted once
            self._earlier_drops += self.ring.dropped_blocks
        self.block = max(1, ms_to_samples(self.block_ms, self.rate))
        self.ring = RingBuffer(int(self.rate * self.buffer_s))
        self._convert = _Converter(self.rate, self.target_rate)

    @property
    def dropped_blocks(self) -> int:
        return self._earlier_drops + self.ring.dropped_blocks + self.overflows

    @property
    def description(self) -> str:
        return f"{self.device_name} (device {self.device_index}, {self.rate} Hz)"

    @property
    def lost_message(self) -> str:
        return f"the microphone ({self.device_name}) stopped delivering audio (device lost)"

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

    def _open(self) -> Any:
        """A started stream. Each has its own `finished` event, so a late one from a lost stream is not mistaken
        for the end of the next."""
        self._finished = threading.Event()
        try:
            stream = self.sd.InputStream(
                device=self.device_index, samplerate=self.rate, channels=1, dtype="int16",
                blocksize=self.block, callback=self._callback, finished_callback=self._finished.set,
            )
        except Exception as exc:
            raise AudioError(f"cannot open input device {self.device_name!r}: {exc}") from None
        try:
            stream.start()
        except Exception as exc:
            self._release(stream)
            raise AudioError(f"cannot start input device {self.device_name!r}: {exc}") from None
        return stream

    def _release(self, stream: Any) -> None:
        """Close a stream without hanging: with a frozen server PortAudio's close blocks, so it runs in a thread
        that is left behind after RELEASE_WAIT_S, and sounddevice's exit handler, which would block the same way
        terminating PortAudio, is dropped."""
        closer = threading.Thread(target=stream.close, name="spotter-microphone-close", daemon=True)
        closer.start()
        closer.join(RELEASE_WAIT_S)
        if closer.is_alive():
            self._unreleased = closer
            handler = getattr(self.sd, "_exit_handler", None)
            if handler is not None:
                atexit.unregister(handler)

    def _capture(self, stream: Any) -> Generator[np.ndarray, None, bool]:
        """Chunks from an open stream until stop() (returns False) or until it stops delivering (True)."""
        silent_s, patience_s = 0.0, FIRST_SAMPLES_S
        while not self._stop.is_set():
            started = time.monotonic()
            block = self.ring.read(timeout=READ_WAIT_S)
            if block.size:
                silent_s, patience_s = 0.0, STALL_S
                yield self._convert(block)
                continue
            if self._finished.is_set():  # PortAudio ended the stream: the server died, the device failed or went
                return True
            silent_s += min(time.monotonic() - started, READ_WAIT_S)  # capped: a suspended process is no lost device
            if silent_s >= patience_s:
                return True
        return False

    def _refresh_devices(self) -> None:
        """PortAudio lists devices once, when initialised: a replugged microphone or a restarted sound server is
        seen only after re-initialising it (sounddevice's own helpers; it has no public call for this)."""
        if self._unreleased is not None and self._unreleased.is_alive():
            raise AudioError("the audio system still holds the lost stream")
        try:
            if self.sd._initialized:
                self.sd._terminate()
            self.sd._initialize()
        except Exception as exc:
            raise AudioError(f"cannot restart PortAudio: {exc}") from None

    def _reopen(self) -> Any | None:
        """Retry the lost device with backoff, one line to `notify` each attempt, until a stream opens (returned)
        or stop() (None). The device is looked up again as given (--device, or the default input)."""
        delay = RECONNECT_DELAYS_S[0]
        self.notify(f"{self.lost_message}; reconnecting in {delay:g} s")
        attempt = 0
        while not self._stop.wait(delay):
            attempt += 1
            try:
                self._refresh_devices()
                index, name = find_input_device(self.sd, self.wanted)
                self._use(index, name)
                stream = self._open()
            except Exception as exc:  # AudioError, or PortAudio's own while a device comes and goes: try again
                delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
                self.notify(f"reconnect attempt {attempt} failed ({exc}); next in {delay:g} s")
                continue
            self.notify(f"microphone back after {attempt} attempt{'s' if attempt > 1 else ''}: {self.description}")
            return stream
        return None

    def __iter__(self) -> Iterator[np.ndarray]:
        stream = self._open()
        try:
            while True:
                lost = yield from self._capture(stream)
                self._release(stream)
                stream = None
                if not lost:
                    return
                if not self.reconnect:
                    raise DeviceLost(self.lost_message)
                stream = self._reopen()
                if stream is None:
                    return
        finally:
            if stream is not None:
                self._release(stream)


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
