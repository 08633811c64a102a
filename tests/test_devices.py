"""`spotter devices` without any input device says so instead of printing nothing and succeeding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spotter import sources
from spotter.cli import main


def fake_sounddevice(devices: list[dict]) -> SimpleNamespace:
    return SimpleNamespace(query_devices=lambda: devices, default=SimpleNamespace(device=(-1, -1)))


def test_no_input_device_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    speakers_only = [{"name": "HDMI", "max_input_channels": 0, "default_samplerate": 48000.0}]
    monkeypatch.setattr(sources, "import_sounddevice", lambda: fake_sounddevice(speakers_only))
    assert main(["devices"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "no audio input device" in err


def test_inputs_are_listed_with_their_index(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    devices = [{"name": "HDMI", "max_input_channels": 0, "default_samplerate": 48000.0},
               {"name": "USB mic", "max_input_channels": 1, "default_samplerate": 44100.0}]
    monkeypatch.setattr(sources, "import_sounddevice", lambda: fake_sounddevice(devices))
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "USB mic" in out and "HDMI" not in out and out.split()[0] == "1"
