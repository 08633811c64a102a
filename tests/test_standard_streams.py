"""stdout, stderr and stdin that are closed or full, and the signals a service sees: one line or silence, the
documented exit status, never a traceback, and stdout carries only JSON lines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from rich.console import Console

from spotter.output import LiveView

from .conftest import DEMO_WAV

LISTEN = [sys.executable, "-m", "spotter", "listen", "--input", str(DEMO_WAV), "--quiet"]
EXIT_BROKEN_PIPE = 141


def run_with(stdout: object, stderr: object, stdin: object = subprocess.DEVNULL, args: list[str] = LISTEN) -> int:
    return subprocess.run(args, stdout=stdout, stderr=stderr, stdin=stdin, timeout=60).returncode


def test_full_stdout_ends_like_a_closed_pipe(tmp_path) -> None:
    err = tmp_path / "err"
    with open("/dev/full", "w") as full, open(err, "w") as errors:
        assert run_with(full, errors) == EXIT_BROKEN_PIPE
    assert "Traceback" not in err.read_text()


def test_closed_stdout_ends_like_a_closed_pipe() -> None:
    result = subprocess.run(f"{' '.join(LISTEN)} >&-", shell=True, capture_output=True, timeout=60)
    assert result.returncode == EXIT_BROKEN_PIPE and b"Traceback" not in result.stdout + result.stderr


def test_unusable_stderr_keeps_detecting_with_a_clean_stdout() -> None:
    for redirect in ("2>/dev/full", "2>&-"):
        result = subprocess.run(f"{' '.join(LISTEN)} {redirect}", shell=True, capture_output=True, timeout=60)
        assert result.returncode == 0, redirect
        lines = result.stdout.decode().splitlines()
        assert lines and all("label" in json.loads(line) for line in lines), redirect


def test_closed_stdin_is_one_line() -> None:
    args = [sys.executable, "-m", "spotter", "listen", "--input", "-", "--quiet"]
    result = subprocess.run(" ".join(args) + " <&-", shell=True, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == ["spotter: stdin is closed: nothing to read raw PCM from (--input -)"]


def test_sighup_ends_the_stream_with_its_summary() -> None:
    with subprocess.Popen([*LISTEN, "--realtime"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stderr is not None
        process.stderr.readline()  # the start-up line: the handlers are in place
        time.sleep(0.5)
        process.send_signal(signal.SIGHUP)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "s of audio" in err.decode() and "Traceback" not in err.decode()


def test_live_view_shows_labels_literally() -> None:
    view = LiveView(("[red]x", "_silence_"))
    view.console = Console(record=True, width=80)
    view.recent = []
    view.update(-20.0, [0.9, 0.1], [], now=0.0)
    view.console.print(view._render())
    assert "[red]x" in view.console.export_text()
