"""The real microphone path, no mocks: PulseAudio null sink -> its monitor (default source) -> ALSA pulse plugin ->
PortAudio -> sounddevice -> `spotter listen` in a subprocess.

Keywords from demo/keywords.wav are played into the null sink with paplay, so the "microphone" hears them as
a live input would: in real time, through the ring buffer and the device's rate. Needs PulseAudio (Debian:
libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins); .ci/pulseaudio.sh starts a server when none
answers. Skips, with the reason, where that is not available. A server that already answers is never
reconfigured, and the test runs only where its defaults are a null sink and that sink's monitor, so it never
plays through speakers.

Device loss is tested on the same path: the server is killed (or frozen) while `spotter listen` captures, which
must then exit 2 with one line, or with --reconnect carry on once .ci/pulseaudio.sh has started a new server.
Each such test leaves a server answering, as the script makes one, for the tests after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Iterator

import pytest

from spotter.labels import read_labels

from .conftest import DEMO_LABELS, DEMO_WAV, ROOT

PULSE_SCRIPT = ROOT / ".ci" / "pulseaudio.sh"
MODEL = Path(os.environ.get("SPOTTER_MIC_MODEL", ROOT / "models" / "kws.tflite"))
"""SPOTTER_MIC_MODEL lets a not-yet-shipped model be checked with this test; the default is the shipped one."""
NOT_KEYWORDS = {"_unknown_", "_silence_"}
KEEPALIVE_S = 3.0
"""A null sink's monitor delivers nothing until something plays into the sink; silence runs this long first."""
PLAY_UNTIL_S = 23.5
"""Play demo/keywords.wav only this far: all ten keywords (the last ends at 22.3 s), and the test stays short."""
SUMMARY = re.compile(r"^spotter: ([0-9.]+) s of audio, (\d+) detections?, (\d+) dropped blocks?", re.M)
LOST = re.compile(r"^spotter: the microphone \(.+\) stopped delivering audio \(device lost\)")
PORTAUDIO_NOISE = ("Expression '", "ALSA lib ")
"""Lines PortAudio's ALSA host API and ALSA print on stderr themselves when the server goes (spotter cannot
silence them: the library exports no hook for its debug output)."""
CAPTURE_BEFORE_LOSS_S = 2.0
EXIT_WITHIN_S = 8.0
"""A dead server ends the stream at once and a frozen one is noticed after 2 s without samples (spotter.sources);
the rest is slack for a loaded machine. Before, spotter never exited."""
RECONNECT_WITHIN_S = 30.0
"""Attempts come 0.5, 1.5, 3.5, 7.5 and 15.5 s after the loss; a new server takes a few seconds to start."""
RECONNECT_CLIP_S = 8.0
"""Played once the microphone is back: "yes", "no" and "up"."""


def _pactl_info() -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)


def _pactl_fields() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in _pactl_info().stdout.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def null_sink() -> str:
    """The default sink's name, once PulseAudio answers and the default source is that null sink's monitor."""
    if shutil.which("pactl") is None:
        pytest.skip("pactl not found: no PulseAudio (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")
    if _pactl_info().returncode != 0:
        started = subprocess.run(["bash", str(PULSE_SCRIPT)], capture_output=True, text=True, timeout=30)
        if started.returncode != 0:
            pytest.skip(f"no PulseAudio server answers and .ci/pulseaudio.sh failed: {started.stderr.strip()}")
    info = _pactl_info()
    if info.returncode != 0:
        pytest.skip(f"no PulseAudio server answers `pactl info`: {info.stderr.strip()}")
    fields = _pactl_fields()
    sink, source = fields.get("Default Sink", ""), fields.get("Default Source", "")
    sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=10).stdout
    drivers = {row.split("\t")[1]: row.split("\t")[2] for row in sinks.splitlines() if row.count("\t") >= 2}
    # Only a null sink: the test must never play through someone's speakers into their microphone.
    if drivers.get(sink) != "module-null-sink.c" or source != f"{sink}.monitor":
        pytest.skip(f"PulseAudio's defaults are sink {sink!r}, source {source!r}, not a null sink and its monitor "
                    "(run .ci/pulseaudio.sh on a machine without a real sound setup)")
    return sink


@pytest.fixture(scope="module")
def model() -> Path:
    """The shipped model: detection of real keywords needs a trained one, not a throwaway."""
    if not MODEL.is_file():
        pytest.skip(f"model {MODEL} not found (the trained default model is not in models/ yet)")
    return MODEL


@contextlib.contextmanager
def _silence_into(sink: str) -> Iterator[subprocess.Popen[bytes]]:
    """Silence streamed into the null sink (pacat reads /dev/zero, paced by the server)."""
    writer = subprocess.Popen(
        ["pacat", "--playback", f"--device={sink}", "--raw", "--format=s16le", "--rate=16000", "--channels=1",
         "/dev/zero"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield writer
    finally:
        writer.terminate()
        writer.wait(timeout=5)


@pytest.fixture
def keepalive(null_sink: str) -> Iterator[subprocess.Popen[bytes]]:
    """Silence into the null sink for the whole test (until the server goes, in the device-loss tests)."""
    with _silence_into(null_sink) as writer:
        yield writer


def _start_server() -> None:
    started = subprocess.run(["bash", str(PULSE_SCRIPT)], capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, f".ci/pulseaudio.sh failed: {started.stderr}"


@pytest.fixture
def server_pid(null_sink: str) -> Iterator[int]:
    """The answering server's pid, read from the pid file beside its socket, for a test that kills or freezes it.
    Afterwards the server is thawed, or a new one started, so that a server answers again."""
    pid_file = Path(_pactl_fields().get("Server String", "")).parent / "pid"
    if not pid_file.is_file():
        pytest.skip(f"no pid file beside the server's socket ({pid_file}): cannot tell which process to kill")
    pid = int(pid_file.read_text().split()[0])
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        _start_server()


def _default_sigint() -> None:
    """A child started from a non-interactive shell's background job inherits SIGINT ignored; Ctrl-C must reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def _listening(model: Path, tmp_path: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """`spotter listen --quiet` on the default microphone, stdout and stderr to files; killed if left running."""
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        listener = subprocess.Popen(
            [sys.executable, "-m", "spotter", "listen", "--quiet", "--model", str(model), *flags],
            stdout=out, stderr=err, preexec_fn=_default_sigint,
        )
    try:
        yield listener, out_path, err_path
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def _exit_code_within(process: subprocess.Popen[bytes], seconds: float, err_path: Path) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"spotter still runs {seconds:.0f} s after the microphone went:\n{err_path.read_text()}")


def _own_lines(stderr: str) -> list[str]:
    """stderr without the lines PortAudio and ALSA write themselves."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(PORTAUDIO_NOISE)]


def _spotter(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spotter", *args], capture_output=True, text=True, timeout=timeout)


def _head_of_wav(source: Path, seconds: float, target: Path) -> Path:
    with wave.open(str(source), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(min(params.nframes, int(seconds * params.framerate)))
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return target


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll a file the process writes until `text` appears; False once it exits or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return text in path.read_text(errors="replace")


def test_devices_lists_an_input_under_pulseaudio(null_sink: str) -> None:
    """PortAudio must reach PulseAudio through ALSA's pulse plugin: its `pulse`/`default` devices, one marked default."""
    result = _spotter("devices")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.strip()]
    assert rows, "spotter devices listed no input device"
    pattern = re.compile(r"^([* ])\s+(\d+)  (.+)  \((\d+) ch, (\d+) Hz\)$")
    parsed = [pattern.match(row) for row in rows]
    assert all(parsed), f"unexpected device lines: {rows}"
    names = {m.group(3) for m in parsed if m}
    assert names & {"pulse", "default"}, f"no PulseAudio-backed ALSA device among {sorted(names)}"
    assert sum(1 for m in parsed if m and m.group(1) == "*") == 1, f"exactly one default input expected: {rows}"
    assert all(int(m.group(4)) > 0 for m in parsed if m)


def test_listen_unknown_device_fails_with_one_line(null_sink: str, model: Path) -> None:
    """A mistyped --device is a user error: exit 2, one line naming it, no traceback."""
    result = _spotter("listen", "--quiet", "--model", str(model), "--device", "no-such-device-xyz")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spotter: ") and "no-such-device-xyz" in lines[0]
    assert "Traceback" not in result.stderr


def _play_then_interrupt(sink: str, clip: Path, seconds: float, listener: subprocess.Popen[bytes]) -> int:
    """Play `clip` (`seconds` long) into the sink, give the last keyword its window and smoothing, then Ctrl-C the
    listener: its exit code."""
    played = subprocess.run(["paplay", f"--device={sink}", str(clip)], capture_output=True, text=True,
                            timeout=seconds + 15)
    assert played.returncode == 0, played.stderr
    time.sleep(1.0)
    listener.send_signal(signal.SIGINT)
    return listener.wait(timeout=10)


def test_listen_default_microphone_hears_played_keywords(
    null_sink: str, model: Path, keepalive: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """Keywords played into the null sink come out of `spotter listen` (default device) as JSON lines; Ctrl-C ends it cleanly."""
    keepalive_started = time.monotonic()
    clip = _head_of_wav(DEMO_WAV, PLAY_UNTIL_S, tmp_path / "keywords-head.wav")
    truth = [event.label for event in read_labels(DEMO_LABELS) if event.end < PLAY_UNTIL_S]
    keywords = set(truth) - NOT_KEYWORDS
    assert len(keywords) >= 8

    with _listening(model, tmp_path) as (listener, out_path, err_path):
        # The banner comes just before the stream opens; model loading overlaps the keep-alive's head start.
        assert _wait_for(err_path, "spotter: model", listener, 20), err_path.read_text()
        time.sleep(max(0.5, keepalive_started + KEEPALIVE_S - time.monotonic()))
        assert listener.poll() is None, f"spotter exited early: {err_path.read_text()}"
        assert keepalive.poll() is None, f"the keep-alive pacat died: {keepalive.stderr.read() if keepalive.stderr else b''!r}"
        code = _play_then_interrupt(null_sink, clip, PLAY_UNTIL_S, listener)
    stdout, stderr = out_path.read_text(), err_path.read_text()

    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    for record in records:
        assert set(record) == {"label", "score", "offset", "timestamp"}, record
        assert 0.0 <= record["score"] <= 1.0 and record["offset"] >= 0.0
    heard = {record["label"] for record in records}
    assert not heard & NOT_KEYWORDS, f"non-keyword labels reported: {sorted(heard & NOT_KEYWORDS)}"
    assert len(heard & keywords) >= len(keywords) / 2, f"heard {sorted(heard)} of {sorted(keywords)}"

    summary = SUMMARY.search(stderr)
    assert summary, stderr
    seconds, detections = float(summary.group(1)), int(summary.group(2))
    # The whole clip went through the stream in real time (listening began before it and ended after).
    assert seconds >= PLAY_UNTIL_S, stderr
    assert detections == len(records)


@pytest.mark.parametrize("loss", [signal.SIGKILL, signal.SIGSTOP], ids=["server killed", "server frozen"])
def test_listen_exits_with_one_line_when_the_microphone_is_lost(
    model: Path, keepalive: subprocess.Popen[bytes], server_pid: int, loss: int, tmp_path: Path
) -> None:
    """A server that dies ends the stream; one that freezes stops the samples. Either way: exit 2 within seconds,
    one line saying so, no traceback (before: spotter hung forever)."""
    with _listening(model, tmp_path) as (listener, _, err_path):
        assert _wait_for(err_path, "spotter: model", listener, 20), err_path.read_text()
        time.sleep(CAPTURE_BEFORE_LOSS_S)
        assert listener.poll() is None, f"spotter exited early: {err_path.read_text()}"
        os.kill(server_pid, loss)
        code = _exit_code_within(listener, EXIT_WITHIN_S, err_path)
    stderr = err_path.read_text()
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = _own_lines(stderr)
    assert all(line.startswith("spotter: ") for line in lines), stderr
    assert LOST.match(lines[-1]) and sum(1 for line in lines if LOST.match(line)) == 1, stderr
    assert SUMMARY.search(stderr), stderr


def test_listen_reconnects_when_a_server_is_back(
    null_sink: str, model: Path, keepalive: subprocess.Popen[bytes], server_pid: int, tmp_path: Path
) -> None:
    """With --reconnect the loss is one line, each attempt another, and keywords played once a new server runs
    are detected: the stream goes on where it was."""
    clip = _head_of_wav(DEMO_WAV, RECONNECT_CLIP_S, tmp_path / "keywords-head.wav")
    keywords = {event.label for event in read_labels(DEMO_LABELS) if event.end < RECONNECT_CLIP_S} - NOT_KEYWORDS
    with _listening(model, tmp_path, "--reconnect") as (listener, out_path, err_path):
        assert _wait_for(err_path, "spotter: model", listener, 20), err_path.read_text()
        time.sleep(CAPTURE_BEFORE_LOSS_S)
        os.kill(server_pid, signal.SIGKILL)
        assert _wait_for(err_path, "reconnecting in", listener, EXIT_WITHIN_S), err_path.read_text()
        _start_server()
        with _silence_into(null_sink):
            assert _wait_for(err_path, "spotter: microphone back", listener, RECONNECT_WITHIN_S), err_path.read_text()
            code = _play_then_interrupt(null_sink, clip, RECONNECT_CLIP_S, listener)
    stdout, stderr = out_path.read_text(), err_path.read_text()

    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = _own_lines(stderr)
    assert all(line.startswith("spotter: ") for line in lines), stderr
    assert sum(1 for line in lines if LOST.match(line) and line.endswith("reconnecting in 0.5 s")) == 1, stderr
    assert all(re.match(r"spotter: reconnect attempt \d+ failed \(.+\); next in [0-9.]+ s$", line)
               for line in lines if "reconnect attempt" in line), stderr
    assert re.search(r"^spotter: microphone back after \d+ attempts?: ", stderr, re.M), stderr
    heard = {json.loads(line)["label"] for line in stdout.splitlines()}
    assert heard & keywords and not heard & NOT_KEYWORDS, f"heard {sorted(heard)} of {sorted(keywords)}"
    summary = SUMMARY.search(stderr)
    assert summary and float(summary.group(1)) >= RECONNECT_CLIP_S, stderr


def test_reconnect_is_for_the_microphone_only(capsys: pytest.CaptureFixture[str]) -> None:
    from spotter.cli import main

    assert main(["listen", "--quiet", "--reconnect", "--input", str(DEMO_WAV)]) == 2
    assert capsys.readouterr().err == "spotter: --reconnect is for the microphone; it does not apply to --input\n"


def test_the_service_command_feeds_its_fifo_while_read(
    null_sink: str, model: Path, keepalive: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """deploy/spotter.service's ExecStart, run as systemd would (its `$$` as `$`, %h's spotter this one, %t a temporary
    folder): it makes the FIFO, waits for a reader, sends it keywords heard on the microphone as JSON lines, and after
    the reader has gone its next detection ends it with 141, for systemd to start it again."""
    from .test_deploy import exec_start

    script = exec_start()[2]
    assert " --model kws " in script
    script = script.replace(" --model kws ", f" --model {shlex.quote(str(model))} ")
    spotter_bin = Path(sys.executable).parent / "spotter"
    fifo = tmp_path / "spotter" / "detections"
    fifo.parent.mkdir()
    clip = _head_of_wav(DEMO_WAV, RECONNECT_CLIP_S, tmp_path / "keywords-head.wav")
    service = subprocess.Popen(["/bin/sh", "-c", script, str(spotter_bin), str(fifo)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 10
        while not fifo.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stat.S_ISFIFO(fifo.stat().st_mode)
        with fifo.open() as reader:  # spotter starts now
            time.sleep(KEEPALIVE_S)
            played = subprocess.run(["paplay", f"--device={null_sink}", str(clip)], capture_output=True, timeout=30)
            assert played.returncode == 0, played.stderr
            time.sleep(1.0)
            os.set_blocking(reader.fileno(), False)
            lines = reader.read().splitlines()
        heard = {json.loads(line)["label"] for line in lines}
        assert heard and not heard & NOT_KEYWORDS, lines
        subprocess.run(["paplay", f"--device={null_sink}", str(clip)], capture_output=True, timeout=30)
        assert service.wait(timeout=10) == 141
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
