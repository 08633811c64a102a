"""The real microphone path, no mocks: PulseAudio null sink -> its monitor (default source) -> ALSA pulse plugin ->
PortAudio -> sounddevice -> `spotter listen` in a subprocess.

Keywords from demo/keywords.wav are played into the null sink with paplay, so the "microphone" hears them as
a live input would: in real time, through the ring buffer and the device's rate. Needs PulseAudio (Debian:
libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins); .ci/pulseaudio.sh starts a server when none
answers. Skips, with the reason, where that is not available. A server that already answers is never
reconfigured, and the test runs only where its defaults are a null sink and that sink's monitor, so it never
plays through speakers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
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


def _pactl_info() -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)


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
    fields = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
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


@pytest.fixture
def keepalive(null_sink: str) -> Iterator[subprocess.Popen[bytes]]:
    """Silence streamed into the null sink for the whole test (pacat reads /dev/zero, paced by the server)."""
    writer = subprocess.Popen(
        ["pacat", "--playback", f"--device={null_sink}", "--raw", "--format=s16le", "--rate=16000", "--channels=1",
         "/dev/zero"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield writer
    finally:
        writer.terminate()
        writer.wait(timeout=5)


def _default_sigint() -> None:
    """A child started from a non-interactive shell's background job inherits SIGINT ignored; Ctrl-C must reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def test_listen_default_microphone_hears_played_keywords(
    null_sink: str, model: Path, keepalive: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """Keywords played into the null sink come out of `spotter listen` (default device) as JSON lines; Ctrl-C ends it cleanly."""
    keepalive_started = time.monotonic()
    clip = _head_of_wav(DEMO_WAV, PLAY_UNTIL_S, tmp_path / "keywords-head.wav")
    truth = [event.label for event in read_labels(DEMO_LABELS) if event.end < PLAY_UNTIL_S]
    keywords = set(truth) - NOT_KEYWORDS
    assert len(keywords) >= 8

    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        listener = subprocess.Popen(
            [sys.executable, "-m", "spotter", "listen", "--quiet", "--model", str(model)],
            stdout=out, stderr=err, preexec_fn=_default_sigint,
        )
    try:
        # The banner comes just before the stream opens; model loading overlaps the keep-alive's head start.
        assert _wait_for(err_path, "spotter: model", listener, 20), err_path.read_text()
        time.sleep(max(0.5, keepalive_started + KEEPALIVE_S - time.monotonic()))
        assert listener.poll() is None, f"spotter exited early: {err_path.read_text()}"
        assert keepalive.poll() is None, f"the keep-alive pacat died: {keepalive.stderr.read() if keepalive.stderr else b''!r}"
        played = subprocess.run(["paplay", f"--device={null_sink}", str(clip)], capture_output=True, text=True,
                                timeout=PLAY_UNTIL_S + 15)
        assert played.returncode == 0, played.stderr
        time.sleep(1.0)  # the last keyword's window and smoothing
        listener.send_signal(signal.SIGINT)
        code = listener.wait(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
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
