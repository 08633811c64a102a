"""WAV headers are untrusted input: every field is checked, each refusal is one line with exit 2, and what
recorders really write (WAVE_FORMAT_EXTENSIBLE 24-bit or multichannel, IEEE float, extra chunks, pipes) is read
sample for sample like the same audio as 16-bit mono. Also: --rate for stdin, and the resampler's memory at the
highest accepted rate, and the microphone's ring buffer."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from spotter.cli import main
from spotter.resample import Resampler
from spotter.sources import (
    SUBFORMAT_GUID_TAIL,
    WAVE_FORMAT_EXTENSIBLE,
    WAVE_FORMAT_IEEE_FLOAT,
    WAVE_FORMAT_PCM,
    AudioError,
    RawStdin,
    RingBuffer,
    WavFile,
)

RATE = 16000
RESAMPLER_PEAK_MB = 20
"""Resident memory the resampler may add at 191,999 Hz (measured: 2 MB; a polyphase filter peaked at 430 MB)."""


def chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    """A RIFF chunk padded to an even length; `size` may lie about the body."""
    return chunk_id + struct.pack("<I", len(body) if size is None else size) + body + b"\0" * (len(body) % 2)


def fmt(channels: int = 1, rate: int = RATE, bits: int = 16, tag: int = WAVE_FORMAT_PCM,
        subformat: int | None = None, block_align: int | None = None, valid_bits: int | None = None) -> bytes:
    """A fmt chunk; with `subformat`, a WAVE_FORMAT_EXTENSIBLE one whose sub-format GUID carries that tag."""
    align = channels * ((bits + 7) // 8) if block_align is None else block_align
    fields = struct.pack("<HHIIHH", WAVE_FORMAT_EXTENSIBLE if subformat is not None else tag, channels, rate,
                         (rate * align) & 0xFFFFFFFF, align, bits)
    if subformat is not None:
        fields += struct.pack("<HHI", 22, valid_bits or bits, 0) + struct.pack("<H", subformat) + SUBFORMAT_GUID_TAIL
    return chunk(b"fmt ", fields)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav(fmt_chunk: bytes, data: bytes, data_size: int | None = None) -> bytes:
    return riff(fmt_chunk, chunk(b"data", data, data_size))


@pytest.fixture(scope="module")
def pcm() -> np.ndarray:
    """Half a second of loud noise with full-scale extremes, as int16."""
    samples = (np.random.default_rng(13).standard_normal(RATE // 2) * 8000).clip(-32768, 32767).astype(np.int16)
    samples[:2] = (-32768, 32767)
    return samples


def listen(*args: str) -> tuple[int, str, str]:
    """`spotter listen --quiet ...` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["listen", "--quiet", *args])
    return code, out.getvalue(), err.getvalue()


def decoded(path: Path) -> np.ndarray:
    return np.concatenate(list(WavFile(path, RATE)))


def write(tmp_path: Path, content: bytes, name: str = "test.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def int24(values: np.ndarray) -> bytes:
    little = values.astype("<i4").view(np.uint8).reshape(-1, 4)
    return little[:, :3].tobytes()


BAD_HEADERS = {
    "rate 0": (fmt(rate=0), "sample rate 0 Hz is outside the supported 8000-192000 Hz"),
    "corrupt rate": (fmt(rate=536885888), "sample rate 536885888 Hz is outside"),
    "rate just below": (fmt(rate=7999), "sample rate 7999 Hz"),
    "rate just above": (fmt(rate=192001), "sample rate 192001 Hz"),
    "0 channels": (fmt(channels=0), "0 channels; 1 to 32 are supported"),
    "33 channels": (fmt(channels=33), "33 channels"),
    "width 0": (fmt(bits=0), "0-bit integer samples are not supported"),
    "width 5": (fmt(bits=40), "40-bit integer samples"),
    "16-bit float": (fmt(bits=16, tag=WAVE_FORMAT_IEEE_FLOAT), "16-bit float samples"),
    "compressed": (fmt(tag=0x0055), "format tag 0x0055"),
    "extensible, unknown sub-format": (fmt(subformat=WAVE_FORMAT_PCM)[:-1] + b"\x00", "unknown extensible sub-format"),
    "extensible, short": (chunk(b"fmt ", fmt(subformat=WAVE_FORMAT_PCM)[8:26]), "extensible fmt chunk of 18 bytes"),
    "block align": (fmt(block_align=3), "block align 3 for 1 channels of 2 bytes"),
    "short fmt": (chunk(b"fmt ", fmt()[8:22]), "fmt chunk of 14 bytes"),
}


@pytest.mark.parametrize("fmt_chunk, message", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_bad_header_is_one_line_and_exit_2(fmt_chunk: bytes, message: str, tmp_path: Path) -> None:
    path = write(tmp_path, wav(fmt_chunk, bytes(3200)))
    with pytest.raises(AudioError) as error:
        WavFile(path, RATE)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    code, stdout, stderr = listen("--input", str(path))
    assert code == 2 and stdout == ""
    assert stderr.splitlines() == [f"spotter: {error.value}"]


BAD_FILES = {
    "empty": (b"", "no RIFF/WAVE header"),
    "text": (b"RIFF-like text, not audio at all", "no RIFF/WAVE header"),
    "no fmt": (riff(chunk(b"data", bytes(100))), "data chunk before the fmt chunk"),
    "no data": (riff(fmt()), "no data chunk"),
    "junk chunk claims 4 GB": (riff(chunk(b"junk", bytes(10), 0xFFFFFFF0), fmt(), chunk(b"data", bytes(100))),
                               "no fmt chunk"),
    "fmt chunk claims 4 GB": (riff(chunk(b"fmt ", fmt()[8:], 0xFFFFFFF0), chunk(b"data", bytes(100))),
                              "no data chunk"),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_malformed_file_is_not_a_pcm_wav(content: bytes, message: str, tmp_path: Path) -> None:
    path = write(tmp_path, content)
    with pytest.raises(AudioError) as error:
        WavFile(path, RATE)
    assert str(error.value) == f"{path}: not a PCM WAV file ({message})"


def test_extensible_float_and_odd_chunks_read_like_16_bit_mono(pcm: np.ndarray, tmp_path: Path) -> None:
    """The same audio in every layout recorders write decodes to exactly the same samples."""
    reference = decoded(write(tmp_path, wav(fmt(), pcm.astype("<i2").tobytes()), "reference.wav"))
    np.testing.assert_array_equal(reference, pcm)
    shifted = pcm.astype(np.int32)
    stereo24 = int24(np.repeat(shifted << 8, 2))
    variants = {
        "extensible PCM 24-bit stereo": wav(fmt(2, bits=24, subformat=WAVE_FORMAT_PCM), stereo24),
        "extensible PCM 24 valid bits in 32": wav(fmt(bits=32, valid_bits=24, subformat=WAVE_FORMAT_PCM),
                                                  (shifted << 16).astype("<i4").tobytes()),
        "plain PCM 24-bit stereo": wav(fmt(2, bits=24), stereo24),
        "IEEE float 32-bit": wav(fmt(bits=32, tag=WAVE_FORMAT_IEEE_FLOAT), (pcm / 32768.0).astype("<f4").tobytes()),
        "IEEE float 64-bit stereo": wav(fmt(2, bits=64, tag=WAVE_FORMAT_IEEE_FLOAT),
                                        np.repeat(pcm / 32768.0, 2).astype("<f8").tobytes()),
        "extensible float 32-bit, 4 channels": wav(fmt(4, bits=32, subformat=WAVE_FORMAT_IEEE_FLOAT),
                                                   np.repeat(pcm / 32768.0, 4).astype("<f4").tobytes()),
        "odd LIST chunk, 18-byte fmt, fact chunk": riff(
            chunk(b"LIST", b"abc"), chunk(b"fmt ", fmt()[8:] + b"\0\0"), chunk(b"fact", struct.pack("<I", pcm.size)),
            chunk(b"data", pcm.astype("<i2").tobytes())),
    }
    for name, content in variants.items():
        np.testing.assert_array_equal(decoded(write(tmp_path, content)), reference, err_msg=name)


def test_other_rate_extensible_equals_16_bit_mono_at_that_rate(pcm: np.ndarray, tmp_path: Path) -> None:
    mono = decoded(write(tmp_path, wav(fmt(rate=44100), pcm.astype("<i2").tobytes()), "mono.wav"))
    stereo = wav(fmt(2, rate=44100, bits=24, subformat=WAVE_FORMAT_PCM), int24(np.repeat(pcm.astype(np.int32) << 8, 2)))
    assert WavFile(write(tmp_path, stereo), RATE).description.endswith("(44100 Hz, 2 ch, 24-bit)")
    np.testing.assert_array_equal(decoded(write(tmp_path, stereo)), mono)
    assert abs(mono.size - pcm.size * RATE / 44100) <= 1


def test_libsndfile_wavex_files_are_read(pcm: np.ndarray, tmp_path: Path) -> None:
    """What a real writer produces: libsndfile's WAVEX (extensible) 24-bit stereo and float."""
    soundfile = pytest.importorskip("soundfile")
    for subtype in ("PCM_24", "FLOAT"):
        path = tmp_path / f"{subtype}.wav"
        soundfile.write(str(path), np.stack([pcm, pcm], axis=1) / 32768.0, RATE, subtype=subtype, format="WAVEX")
        assert path.read_bytes()[20:22] == struct.pack("<H", WAVE_FORMAT_EXTENSIBLE)
        np.testing.assert_array_equal(decoded(path), pcm, err_msg=subtype)


def test_float_nan_and_infinity_become_silence_and_full_scale(tmp_path: Path) -> None:
    values = np.array([np.nan, np.inf, -np.inf, 0.5, 7.0], dtype="<f4")
    path = write(tmp_path, wav(fmt(bits=32, tag=WAVE_FORMAT_IEEE_FLOAT), values.tobytes()))
    np.testing.assert_array_equal(decoded(path), [0, 32767, -32768, 16384, 32767])


def test_data_larger_than_the_file_is_read_then_called_truncated(pcm: np.ndarray, tmp_path: Path) -> None:
    path = write(tmp_path, wav(fmt(), pcm.astype("<i2").tobytes(), data_size=0xFFFFFFF0))
    chunks = []
    with pytest.raises(AudioError, match=f"truncated: header promises {0xFFFFFFF0 // 2} frames, file holds {pcm.size}"):
        for block in WavFile(path, RATE):
            chunks.append(block)
    np.testing.assert_array_equal(np.concatenate(chunks), pcm)


def test_wav_from_a_pipe_skips_chunks_by_reading(pcm: np.ndarray, tmp_path: Path) -> None:
    """`--input <(sox ...)` is a pipe: chunks before the data cannot be seeked over."""
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    content = riff(chunk(b"junk", bytes(200_001)), fmt(), chunk(b"data", pcm.astype("<i2").tobytes()))
    writer = threading.Thread(target=fifo.write_bytes, args=(content,))
    writer.start()
    try:
        np.testing.assert_array_equal(decoded(fifo), pcm)
    finally:
        writer.join(timeout=10)


@pytest.mark.parametrize("rate", ["0", "-1", "2147483647", "7999"])
def test_stdin_rate_out_of_range_is_refused(rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["listen", "--input", "-", "--rate", rate])
    assert exit_info.value.code == 2
    assert f"argument --rate: {rate} Hz is outside the supported 8000-192000 Hz" in capsys.readouterr().err
    with pytest.raises(AudioError, match=f"^stdin: sample rate {rate} Hz is outside"):
        RawStdin(int(rate), RATE)


def _rss_kib() -> int:
    return int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmRSS:")).split()[1])


def test_resampler_memory_at_the_highest_awkward_rate() -> None:
    """191,999 Hz has no common factor with 16 kHz: a polyphase filter for it would be millions of taps. libsoxr's
    allocations are its own (tracemalloc cannot see them), so the process's resident memory is what is checked."""
    before = _rss_kib()
    resampler = Resampler(191999, RATE)
    out = np.concatenate([resampler.push(np.zeros(191999)), resampler.flush()])
    grown_mb = (_rss_kib() - before) / 1024
    assert abs(out.size - RATE) <= 1
    assert grown_mb < RESAMPLER_PEAK_MB, f"{grown_mb:.0f} MB"


def test_ring_buffer_wraps_and_drops_whole_blocks() -> None:
    """What the microphone's callback writes comes out in order across the wrap; a block that does not fit is
    dropped whole and counted, and what was stored is kept."""
    ring = RingBuffer(10)
    ring.write(np.arange(6, dtype=np.int16).reshape(-1, 1))  # (frames, channels), as PortAudio delivers it
    np.testing.assert_array_equal(ring.read(timeout=0), np.arange(6))
    ring.write(np.arange(6, 14, dtype=np.int16).reshape(-1, 1))  # 8 samples: 4 at the end, 4 wrapped to the start
    ring.write(np.arange(14, 17, dtype=np.int16).reshape(-1, 1))  # 3 more do not fit in the 2 left
    assert ring.dropped_blocks == 1
    out = ring.read(timeout=0)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, np.arange(6, 14))
    assert ring.read(timeout=0).size == 0
