"""The streaming resampler (libsoxr): any chunking gives, sample for sample, what the whole signal gives; the output
keeps the input's duration and timing; speech-band tones pass and what the target rate cannot carry is removed.
With it the demo at 44.1 kHz gives the same int16 samples whatever block size a file is read in."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from spotter.resample import QUALITY, Resampler
from spotter.sources import WavFile

from .conftest import DEMO_WAV, write_wav

TARGET = 16000
RATES = [8000, 22050, 32000, 44100, 48000, 191999]
"""Common device and file rates, and the highest awkward one accepted (no common factor with 16 kHz)."""
TONE_HZ = 1000.0
PASSBAND_ERROR = 1e-5
"""Largest difference, relative to the amplitude, between a resampled tone and the tone computed at 16 kHz
(measured: 3e-7 to 6e-7)."""
ALIAS_HZ = 12000.0
"""Above 16 kHz's Nyquist frequency: must not fold back into the band."""
STOPBAND_ATTENUATION_DB = 120.0
"""Measured: -142 dB from 44.1 kHz, below -200 dB from 48 kHz."""
EDGE_S = 0.05
"""The filter's start and end transients are left out of the tone comparisons."""


def _pushed(resampler: Resampler, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    parts, i = [], 0
    while i < signal.size:
        size = int(rng.integers(1, 2500))
        parts.append(resampler.push(signal[i : i + size]))
        i += size
    parts.append(resampler.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("source_rate", RATES)
def test_any_chunking_equals_the_whole_signal(source_rate: int) -> None:
    rng = np.random.default_rng(source_rate)
    signal = rng.standard_normal(source_rate + 777) * 3000
    whole = soxr.resample(signal.astype(np.float32), source_rate, TARGET, quality=QUALITY)
    for _ in range(3):
        np.testing.assert_array_equal(_pushed(Resampler(source_rate, TARGET), signal, rng), whole)
    one_push = Resampler(source_rate, TARGET)
    np.testing.assert_array_equal(np.concatenate([one_push.push(signal), one_push.flush()]), whole)
    assert abs(whole.size - signal.size * TARGET / source_rate) <= 1


def _tone(rate: int, seconds: float, hz: float) -> np.ndarray:
    return 10000.0 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)


@pytest.mark.parametrize("source_rate", [44100, 48000, 8000])
def test_a_tone_keeps_its_shape_and_timing(source_rate: int) -> None:
    resampler = Resampler(source_rate, TARGET)
    out = np.concatenate([resampler.push(_tone(source_rate, 1.0, TONE_HZ)), resampler.flush()])
    expected = _tone(TARGET, 1.0, TONE_HZ)
    edge = int(EDGE_S * TARGET)
    # no delay: sample n of the output is the input at n / 16000 s
    np.testing.assert_allclose(out[edge:-edge], expected[edge:-edge], atol=PASSBAND_ERROR * 10000.0)


@pytest.mark.parametrize("source_rate", [44100, 48000])
def test_what_16khz_cannot_carry_is_removed(source_rate: int) -> None:
    resampler = Resampler(source_rate, TARGET)
    out = np.concatenate([resampler.push(_tone(source_rate, 1.0, ALIAS_HZ)), resampler.flush()])
    edge = int(EDGE_S * TARGET)
    level_db = 20 * np.log10(np.sqrt(np.mean(out[edge:-edge].astype(np.float64) ** 2)) / (10000.0 / np.sqrt(2)))
    assert level_db < -STOPBAND_ATTENUATION_DB, f"{ALIAS_HZ:g} Hz folds back at {level_db:.0f} dB"


def test_same_rate_passes_through() -> None:
    resampler = Resampler(TARGET, TARGET)
    chunk = np.arange(10.0)
    np.testing.assert_array_equal(resampler.push(chunk), chunk)
    assert resampler.flush().size == 0


@pytest.mark.parametrize("block_ms", [100.0, 37.0, 250.0])
def test_a_44k_file_reads_the_same_in_any_block_size(block_ms: float, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Detections depend only on the int16 samples, so equal samples mean the same detections, whatever the block."""
    demo = np.concatenate(list(WavFile(DEMO_WAV, TARGET)))
    path = write_wav(tmp_path / "demo44k.wav", soxr.resample(demo.astype(np.float32), TARGET, 44100, quality=QUALITY)
                     .round().clip(-32768, 32767).astype(np.int16), 44100)
    reference = np.concatenate(list(WavFile(path, TARGET, block_ms=100.0)))
    assert reference.dtype == np.int16 and abs(reference.size - demo.size) <= 1
    np.testing.assert_array_equal(np.concatenate(list(WavFile(path, TARGET, block_ms=block_ms))), reference)
