"""`spotter eval run` on labels it cannot score and reports it cannot write: one line, exit 2 or a warning,
never a traceback or a half-written report."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from spotter import files
from spotter.cli import main

from .conftest import SHIPPED_MODEL, write_wav

RATE = 16000


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    """Three seconds of quiet noise, labelled with a keyword and a word the model does not have."""
    wav = write_wav(tmp_path / "s.wav", np.random.default_rng(0).normal(0, 30, 3 * RATE))
    (tmp_path / "s.txt").write_text("0.5\t1.0\tbanana\textra column\n1.5\t2.0\tyes\n")
    return wav


def test_labels_the_model_lacks_are_named_and_scored_as_other_sounds(stream: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report"
    assert main(["eval", "run", "-m", str(SHIPPED_MODEL), str(stream), "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "labels the model does not have" in err and "banana" in err
    result = json.loads((report / "eval.json").read_text())["streams"]["s.wav"]
    assert result["overall"]["events"] == 1  # only "yes"; the foreign label is not a miss
    assert "Traceback" not in err


def test_report_under_a_file_is_refused_before_the_audio_is_scored(stream: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", "run", "-m", str(SHIPPED_MODEL), str(stream), "--report", str(blocker / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot make the report folder" in err[0]


def test_full_disk_while_writing_the_report_is_one_line_and_keeps_the_old_report(
    stream: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "eval.json").write_text("old")

    def full(path: Path | str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "write_atomic", full)
    assert main(["eval", "run", "-m", str(SHIPPED_MODEL), str(stream), "--report", str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("spotter: No space left on device")
    assert (report / "eval.json").read_text() == "old"
