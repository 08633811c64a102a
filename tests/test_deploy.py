"""deploy/spotter.service is a unit systemd accepts (`systemd-analyze verify`, where systemd is installed) and says
what the README promises: restart on failure, start at boot, logs in the journal, detections into the FIFO it
makes, and a spotter command line that spotter's own parser takes as listening to the microphone with --reconnect."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from spotter.cli import build_parser, listen

from .conftest import ROOT

UNIT = ROOT / "deploy" / "spotter.service"
SPOTTER = "%h/spotter/.venv/bin/spotter"
"""The README's install: a clone in ~/spotter with its virtual environment."""
FIFO = "%t/spotter/detections"
"""Where detections go: in the user's runtime directory (/run/user/UID), which the unit has systemd make."""


def _service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#", ";"))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    unit.read_string(UNIT.read_text())
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    assert unit["Install"]["WantedBy"] == "default.target"  # a user unit: at boot once lingering is enabled
    return unit["Service"]


def exec_start() -> list[str]:
    """ExecStart as systemd runs it, but for %h and %t: `$$` is its escape for `$`."""
    argv = [word.replace("$$", "$") for word in shlex.split(_service()["ExecStart"])]
    assert argv[:2] == ["/bin/sh", "-c"]
    return argv


def _shell_command() -> tuple[list[str], list[str]]:
    """The shell script's words, and its positional arguments ($0, $1)."""
    argv = exec_start()
    return shlex.split(argv[2]), argv[3:]


def test_the_unit_restarts_and_logs_to_the_journal() -> None:
    service = _service()
    assert service["Restart"] == "on-failure"
    assert service["StandardError"] == "journal"
    assert service["RuntimeDirectory"] == "spotter" and FIFO.startswith("%t/spotter/")


def test_exec_start_makes_the_fifo_and_runs_a_command_line_spotter_accepts() -> None:
    words, positional = _shell_command()
    assert positional == [SPOTTER, FIFO]
    assert words[:8] == ["test", "-p", "$1", "||", "mkfifo", "-m", "0600", "$1"]
    start = words.index("exec") + 1
    assert words[start] == "$0" and words[-1] == ">$1"  # spotter itself (no shell left), stdout into the FIFO
    args = build_parser().parse_args(words[start + 1 : -1])
    assert args.func is listen.run
    assert args.input is None and args.reconnect and args.quiet  # the microphone, reopened when it comes back


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found (no systemd here)")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """As a user unit: it needs a home (%h) and a runtime directory (%t) to resolve against."""
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    result = subprocess.run(["systemd-analyze", "verify", "--user", str(UNIT)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "spotter.service" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
