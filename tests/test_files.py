"""Atomic writes keep the permissions a user expects."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from spotter.files import write_atomic


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_umask_permissions_not_mkstemps_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "model.tflite", b"new")
    finally:
        os.umask(old)
    assert mode(tmp_path / "model.tflite") == 0o644
    assert (tmp_path / "model.tflite").read_bytes() == b"new"


def test_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomic(target, b"new")
    assert mode(target) == 0o640
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]
