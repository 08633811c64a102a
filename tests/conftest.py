"""Shared fixtures: paths to ../shared/data slices, the shipped model, and small audio helpers."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SPOTTER_DATA", ROOT.parent / "shared" / "data"))
SPEECH_COMMANDS = DATA / "speech_commands"
ESC10 = DATA / "esc10"
DEMO_WAV = ROOT / "demo" / "keywords.wav"
DEMO_LABELS = ROOT / "demo" / "keywords.txt"
SHIPPED_MODEL = ROOT / "models" / "kws.tflite"


def read_clip(path: Path) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="int16")
    assert rate == 16000
    return audio


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    samples = np.asarray(samples)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def speech_commands() -> Path:
    if not SPEECH_COMMANDS.is_dir():
        pytest.skip(f"Speech Commands pool not found at {SPEECH_COMMANDS}")
    return SPEECH_COMMANDS


@pytest.fixture(scope="session")
def esc10() -> Path:
    if not ESC10.is_dir():
        pytest.skip(f"ESC-10 clips not found at {ESC10}")
    return ESC10


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    assert SHIPPED_MODEL.is_file(), "models/kws.tflite is missing"
    return SHIPPED_MODEL
