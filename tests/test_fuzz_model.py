"""Seeded fuzzing of the shipped model's spec: whatever a model file's spec holds, `spotter info` and `spotter
listen` end with exit 0 or with exit 2 and one line on stderr, never a traceback, a hang or a huge allocation.

Most cases run `spotter.cli.main` in this process (milliseconds each) under a watchdog timer; the few where memory
or blocking is the risk run as processes that report their peak memory."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from spotter import modelfile
from spotter.cli import main

from .conftest import SHIPPED_MODEL, write_wav

SEED = 13
CASES = 300
ARCHIVE_CASES = 1000
CASE_SECONDS = 10.0
"""Watchdog per case (both commands): a few tens of milliseconds is usual, even on a loaded machine."""
PROCESS_SECONDS = 60
MAX_RSS_KIB = 1 << 20
"""A process may peak at 1 GiB: the interpreter, LiteRT and the largest front end a valid spec allows (the exact
noise floor of a 4096-point FFT over a 4096-sample window, about 0.4 GB)."""
DEEP = "@@deep@@"
"""Stands for JSON nested far deeper than Python's own encoder would write; spliced into the text."""
DEEP_LEVELS = 5000
NASTY: list[Any] = [
    None, True, False, 0, -1, 1, 0.5, 1.01, 1.5, -0.5, math.nan, math.inf, -math.inf, 1e308, -1e308, 2**31, 2**63,
    10**30, "", "x", "0.8", "log", [], [1], ["yes"], {}, {"a": 1}, 98.0, 16000.0, 512.0, 44100, 8000, 192000, 4096,
    65536, 1e-9, DEEP,
]
"""Values a mutation puts in place: wrong types, non-finite, huge, negative, float spellings of ints, edges."""


class Hang(BaseException):
    """Raised by the watchdog; a BaseException, so no `except Exception` in spotter can swallow it."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def paths(spec: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Where a mutation may strike: every top-level key, every field of features and decision, every threshold and
    label (training and metrics are struck whole)."""
    found: list[tuple[Any, ...]] = [(key,) for key in spec]
    for section in ("features", "decision"):
        if isinstance(spec.get(section), dict):
            found += [(section, key) for key in spec[section]]
    thresholds = spec.get("decision", {}).get("thresholds") if isinstance(spec.get("decision"), dict) else None
    if isinstance(thresholds, dict):
        found += [("decision", "thresholds", key) for key in thresholds]
    if isinstance(spec.get("labels"), list):
        found += [("labels", index) for index in range(len(spec["labels"]))]
    return found


def mutate(spec: dict[str, Any], rng: random.Random) -> Any:
    """One random change: delete, put a nasty value, scale or retype a number, nest, or add an unknown key."""
    where = rng.choice(paths(spec))
    parent: Any = spec
    for step in where[:-1]:
        parent = parent[step]
    key = where[-1]
    old = parent[key]
    kind = rng.random()
    if kind < 0.15:
        del parent[key]
    elif kind < 0.55:
        parent[key] = copy.deepcopy(rng.choice(NASTY))
    elif kind < 0.8 and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = rng.choice([
            -old, old * 1000, old * 1e-3, old + 0.5, float(old), int(old) if math.isfinite(old) else old, str(old),
            old * 10**6, old - 1,
        ])
    elif kind < 0.9:
        parent[key] = rng.choice([[old], {"value": old}, [[[[old]]]]])
    elif kind < 0.97:
        holder = parent if isinstance(parent, dict) else spec
        holder[rng.choice(["unknown", "features_v9", "x" * 50])] = copy.deepcopy(rng.choice(NASTY))
    else:
        return rng.choice([[spec], "spec", 3, None])
    return spec


def model_bytes(flatbuffer: bytes, spec: Any) -> bytes:
    text = json.dumps(spec).replace(json.dumps(DEEP), "[" * DEEP_LEVELS + "]" * DEEP_LEVELS)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(modelfile.SPEC_NAME, text)
    return flatbuffer + archive.getvalue()


def run_in_process(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), watchdog(CASE_SECONDS):
        code = main(list(args))
    return code, err.getvalue()


def assert_clean_end(code: int, err: str, case: str) -> None:
    """Exit 0, or exit 2 whose last stderr line is spotter's one-line refusal; never a traceback."""
    assert "Traceback" not in err, case
    assert code in (0, 2), f"{case}: exit {code}: {err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith("spotter: ") and "\n" not in lines[-1], f"{case}: {err}"


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s of quiet noise: a window and a few hops of the shipped model."""
    noise = np.random.default_rng(SEED).normal(0.0, 300.0, 24000)
    return write_wav(tmp_path_factory.mktemp("fuzz") / "noise.wav", noise)


def test_mutated_specs_end_cleanly(tmp_path: Path, short_wav: Path) -> None:
    rng = random.Random(SEED)
    flatbuffer = modelfile.flatbuffer(SHIPPED_MODEL.read_bytes())
    with zipfile.ZipFile(SHIPPED_MODEL) as zf:
        original = json.loads(zf.read(modelfile.SPEC_NAME))
    outcomes: dict[int, int] = {0: 0, 2: 0}
    path = tmp_path / "fuzzed.tflite"
    for case in range(CASES):
        spec: Any = copy.deepcopy(original)
        for _ in range(rng.choice([1, 1, 2, 3])):
            if isinstance(spec, dict) and paths(spec):
                spec = mutate(spec, rng)
        path.write_bytes(model_bytes(flatbuffer, spec))
        name = f"case {case}: {json.dumps(spec)[:300]}"
        for command in (["info"], ["listen", "--quiet", "--input", str(short_wav)]):
            code, err = run_in_process(*command, "--model", str(path))
            assert_clean_end(code, err, name)
            outcomes[code] += 1
    assert outcomes[0] > CASES // 10 and outcomes[2] > CASES // 2, outcomes  # both paths were exercised


def test_corrupted_archives_are_refused_in_one_line(tmp_path: Path) -> None:
    """Random bytes changed, cut or inserted in the appended archive (each compression method zipfile writes):
    every read either loads or raises ModelFileError with one line."""
    rng = random.Random(SEED)
    data = SHIPPED_MODEL.read_bytes()
    flatbuffer = modelfile.flatbuffer(data)
    text = json.dumps(json.loads(zipfile.ZipFile(SHIPPED_MODEL).read(modelfile.SPEC_NAME)))
    archives = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", compression=method) as zf:
            zf.writestr(modelfile.SPEC_NAME, text)
        archives.append(archive.getvalue())
    path = tmp_path / "corrupt.tflite"
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(ARCHIVE_CASES):
        tail = bytearray(rng.choice(archives))
        for _ in range(rng.choice([1, 2, 4])):
            at = len(tail) - 1 - min(int(rng.expovariate(1 / 300)), len(tail) - 1)  # headers sit near the end
            kind = rng.random()
            if kind < 0.6:
                tail[at] = rng.randrange(256)
            elif kind < 0.8:
                del tail[at : at + rng.randrange(1, 50)]
            else:
                tail[at:at] = rng.randbytes(rng.randrange(1, 20))
        path.write_bytes(flatbuffer + bytes(tail))
        try:
            modelfile.read(path)
            outcomes["loaded"] += 1
        except modelfile.ModelFileError as exc:
            assert "\n" not in str(exc), f"case {case}: {exc}"
            outcomes["refused"] += 1
    assert outcomes["refused"] > ARCHIVE_CASES // 2, outcomes


CHILD = """
import re, sys
from pathlib import Path
from spotter.cli import main
try:
    code = main(sys.argv[1:])
finally:
    # VmHWM, not getrusage: Linux carries the forking parent's peak (pytest with TensorFlow loaded) into ru_maxrss
    peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
    print("maxrss-kib", peak, file=sys.stderr)
sys.exit(code)
"""


def run_process(*args: str) -> tuple[int, str, int]:
    """`spotter ...` in a process of its own: exit status, stderr without the report line, peak memory in KiB."""
    result = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, timeout=PROCESS_SECONDS)
    lines = result.stderr.decode().splitlines()
    report = [line for line in lines if line.startswith("maxrss-kib ")]
    assert report, result.stderr.decode()
    return result.returncode, "\n".join(line for line in lines if line not in report), int(report[-1].split()[1])


def _spec(**changes: Any) -> dict[str, Any]:
    with zipfile.ZipFile(SHIPPED_MODEL) as zf:
        spec = json.loads(zf.read(modelfile.SPEC_NAME))
    spec["features"].update(changes)
    return spec


@pytest.mark.parametrize("spec, refused", [
    pytest.param(_spec(n_fft=2**40), True, id="n_fft-2^40"),
    pytest.param(_spec(sample_rate=10**9, window_ms=1e6), True, id="rate-10^9"),
    pytest.param(_spec(window_ms=256.0, n_fft=4096, noise_floor=1.0), False, id="largest-valid-front-end"),
    pytest.param({"labels": ["a"], "training": DEEP}, True, id="nested-5000-deep"),
])
def test_risky_specs_stay_small_in_a_process(tmp_path: Path, short_wav: Path, spec: dict[str, Any], refused: bool) -> None:
    path = tmp_path / "risky.tflite"
    path.write_bytes(model_bytes(modelfile.flatbuffer(SHIPPED_MODEL.read_bytes()), spec))
    code, err, rss = run_process("listen", "--quiet", "--model", str(path), "--input", str(short_wav))
    assert_clean_end(code, err, str(spec)[:200])
    assert code == (2 if refused else 0) and rss < MAX_RSS_KIB, (code, err, rss)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_as_model_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    started = time.monotonic()
    code, err, _ = run_process("info", "--model", str(fifo))
    assert code == 2 and err == f"spotter: {fifo} is not a regular file, so not a model file"
    assert time.monotonic() - started < PROCESS_SECONDS
