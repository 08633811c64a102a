"""Seeded fuzzing of WAV headers: random bytes of two small files' headers are overwritten and `spotter listen`
must end every time with exit 0 (the header still made sense) or 2 with one `spotter: ` line, never a traceback,
never a hang, and never memory taken from a size or rate the header claims.

Most cases run `spotter.cli.main` in this process (about 25 ms each); a handful, the corrupt sample rate from
issue 13 and the costliest rate a header may still declare among them, run as processes of their own under an
address-space cap, with their peak RSS measured."""

from __future__ import annotations

import contextlib
import io
import os
import resource
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spotter.cli import main

from .test_sources import chunk, fmt, int24, riff, wav

SEED = 13
CASES = 300
MAX_FLIPS = 4
RIFF_MAGIC_BYTES = 12
"""Bytes left alone: "RIFF", its size and "WAVE". Breaking the magic is one easy refusal (tests/test_sources.py);
the fuzzing goes to the chunks after it."""
CASE_SECONDS = 5.0
"""Bound on one in-process case: a quarter second of audio, whatever the header says."""
SUBPROCESS_TIMEOUT_S = 60.0
RSS_LIMIT_MB = 500
ADDRESS_SPACE_CAP = 2 << 30
"""RLIMIT_AS of the child processes: a regression fails with MemoryError instead of taking the machine's memory
(a normal run reserves about 340 MB of address space and touches 80 MB)."""
CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
"""Address space reserved per thread and per malloc arena would otherwise grow with the machine's cores."""
SUBPROCESS_RANDOM_CASES = 3


def _bases() -> list[tuple[bytes, int]]:
    """(file, header length): 16-bit mono 16 kHz, and extensible 24-bit stereo 44.1 kHz after an odd LIST chunk."""
    rng = np.random.default_rng(SEED)
    mono = (rng.standard_normal(4000) * 3000).astype("<i2")
    plain = wav(fmt(), mono.tobytes())
    stereo = int24(np.repeat(mono.astype(np.int32) << 8, 2))
    extensible = riff(chunk(b"LIST", b"INFOabc"), fmt(2, rate=44100, bits=24, subformat=1), chunk(b"data", stereo))
    return [(plain, len(plain) - mono.nbytes), (extensible, len(extensible) - len(stereo))]


def _mutate(rng: np.random.Generator, base: bytes, header_bytes: int) -> bytes:
    content = bytearray(base)
    for position in rng.integers(RIFF_MAGIC_BYTES, header_bytes, size=int(rng.integers(1, MAX_FLIPS + 1))):
        content[position] = int(rng.integers(0, 256))
    return bytes(content)


def _cases() -> list[bytes]:
    rng = np.random.default_rng(SEED)
    bases = _bases()
    return [_mutate(rng, *bases[i % len(bases)]) for i in range(CASES)]


def _check(code: int, stderr: str, path: Path) -> None:
    assert code in (0, 2), f"{path}: exit {code}\n{stderr}"
    assert "Traceback" not in stderr, f"{path}:\n{stderr}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("spotter: ") for line in lines), f"{path}:\n{stderr}"


def test_fuzzed_headers_in_process(tmp_path: Path) -> None:
    outcomes: Counter[int] = Counter()
    slowest = 0.0
    for number, content in enumerate(_cases()):
        path = tmp_path / f"case{number:03d}.wav"
        path.write_bytes(content)
        err = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("error")  # a numpy warning (a cast of NaN, an overflow) is a failure too
            code = main(["listen", "--quiet", "--input", str(path)])
        slowest = max(slowest, time.monotonic() - started)
        _check(code, err.getvalue(), path)
        outcomes[code] += 1
        path.unlink()
    assert slowest < CASE_SECONDS, f"slowest case took {slowest:.1f} s"
    assert outcomes[0] and outcomes[2], f"the fuzzing should both keep and break headers: {dict(outcomes)}"


PEAK_REPORTING_CHILD = """
import re, sys
from pathlib import Path
from spotter.cli import main
try:
    code = main(sys.argv[2:])
finally:
    # VmHWM, not wait4's ru_maxrss: Linux carries the forking parent's peak (pytest with TensorFlow) into the latter
    Path(sys.argv[1]).write_text(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
sys.exit(code)
"""


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def _run_capped(path: Path, workdir: Path) -> tuple[int, str, float]:
    """`python -m spotter listen` on `path` in a capped child: exit code, stderr, peak RSS in MB (from wait4)."""
    with (workdir / "stderr.txt").open("w+") as err:
        child = subprocess.Popen([sys.executable, "-c", PEAK_REPORTING_CHILD, str(workdir / "peak-kib"),
                                  "listen", "--quiet", "--input", str(path)],
                                 stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **CHILD_ENV},
                                 preexec_fn=_cap_address_space)
        watchdog = threading.Timer(SUBPROCESS_TIMEOUT_S, child.kill)
        watchdog.start()
        try:
            _, status, _ = os.wait4(child.pid, 0)
        finally:
            watchdog.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        peak = workdir / "peak-kib"  # missing when the child was killed: its exit status fails the test then
        return child.returncode, err.read(), int(peak.read_text()) / 1024 if peak.exists() else 0.0


def _with_rate(content: bytes, rate: int) -> bytes:
    return content[:24] + struct.pack("<I", rate) + content[28:]


@pytest.fixture(scope="module")
def subprocess_cases() -> dict[str, bytes]:
    plain = _bases()[0][0]
    random_cases = _cases()[:SUBPROCESS_RANDOM_CASES]
    return {
        "issue 13's corrupt rate 536885888": _with_rate(plain, 536885888),
        "191999 Hz, the costliest accepted rate": _with_rate(plain, 191999),
        "data size 4 GB": plain[:40] + struct.pack("<I", 0xFFFFFFFF) + plain[44:],
        **{f"random case {i}": content for i, content in enumerate(random_cases)},
    }


def test_fuzzed_headers_in_capped_processes(subprocess_cases: dict[str, bytes], tmp_path: Path) -> None:
    peaks = {}
    for name, content in subprocess_cases.items():
        path = tmp_path / "case.wav"
        path.write_bytes(content)
        code, stderr, peak_mb = _run_capped(path, tmp_path)
        assert code != -9, f"{name}: killed after {SUBPROCESS_TIMEOUT_S:.0f} s"
        _check(code, stderr, path)
        peaks[name] = peak_mb
    assert max(peaks.values()) < RSS_LIMIT_MB, peaks
