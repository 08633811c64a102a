"""Seeded fuzz of label files under `spotter eval run`: whatever a labels file holds, the command ends with exit 0
or 2, one line for a refusal, no traceback, within a time bound, and neither the stream nor the model changes."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from spotter.cli import main

from .conftest import SHIPPED_MODEL, write_wav

SEED = 13
CASES = 150
SECONDS_PER_CASE = 10.0
RATE = 16000
VALID = "0.5\t1.0\tyes\n1.5\t2.0\t_unknown_:cat\n2.2\t2.8\tstop\n"
NASTY_FIELDS = ["nan", "inf", "-1", "1e308", "-0", "0x10", "", " ", "1,5", "yes", "\x00", "9" * 400, "\u00e9", "[red]"]


def mutate(text: str, rng: np.random.Generator) -> bytes:
    """One of: a field replaced by something nasty, a line duplicated or cut, tabs lost, random bytes flipped or
    inserted, an encoding mark, Windows line ends."""
    lines = text.splitlines()
    kind = int(rng.integers(7))
    if kind == 0:
        row = int(rng.integers(len(lines)))
        fields = lines[row].split("\t")
        fields[int(rng.integers(len(fields)))] = str(rng.choice(NASTY_FIELDS))
        lines[row] = "\t".join(fields)
    elif kind == 1:
        lines.insert(int(rng.integers(len(lines))), lines[int(rng.integers(len(lines)))][: int(rng.integers(12))])
    elif kind == 2:
        lines = [line.replace("\t", " ", int(rng.integers(1, 3))) for line in lines]
    elif kind == 3:
        lines.append("\t".join(str(rng.choice(NASTY_FIELDS)) for _ in range(int(rng.integers(1, 6)))))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if kind == 4:
        raw = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
        data = bytes(raw)
    elif kind == 5:
        data = rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b""]) + data.replace(b"\n", b"\r\n")
    elif kind == 6:
        data = bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8))
    return data


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fuzzed_label_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(SEED)
    wav = write_wav(tmp_path / "s.wav", rng.normal(0, 300, 3 * RATE))
    model = shutil.copy(SHIPPED_MODEL, tmp_path / "kws.tflite")
    before = (digest(wav), digest(Path(model)))
    outcomes = {0: 0, 2: 0}
    for case in range(CASES):
        (tmp_path / "s.txt").write_bytes(mutate(VALID, rng))
        start = time.monotonic()
        code = main(["eval", "run", "-m", str(model), str(wav), "--report", str(tmp_path / "report")])
        elapsed = time.monotonic() - start
        out, err = capsys.readouterr()
        assert code in outcomes, f"case {case}: exit {code}\n{err}"
        assert "Traceback" not in err + out, f"case {case}"
        assert elapsed < SECONDS_PER_CASE, f"case {case} took {elapsed:.1f} s"
        if code == 2:
            assert len(err.strip().splitlines()) == 1, f"case {case}: {err}"
        outcomes[code] += 1
    assert (digest(wav), digest(Path(model))) == before
    assert outcomes[0] and outcomes[2], outcomes  # both valid and refused files were generated
