"""The streaming resampler equals scipy's resample_poly over the whole signal, for any chunking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from spotter.resample import Resampler


@pytest.mark.parametrize("source_rate", [8000, 22050, 32000, 44100, 48000])
def test_stream_equals_resample_poly(source_rate: int) -> None:
    rng = np.random.default_rng(source_rate)
    signal = rng.standard_normal(source_rate + 777) * 3000
    resampler = Resampler(source_rate, 16000)
    parts, i = [], 0
    while i < signal.size:
        size = int(rng.integers(1, 2500))
        parts.append(resampler.push(signal[i : i + size]))
        i += size
    parts.append(resampler.flush())
    streamed = np.concatenate(parts)
    reference = resample_poly(signal, resampler.up, resampler.down)
    assert streamed.shape == reference.shape
    np.testing.assert_allclose(streamed, reference, atol=1e-8)


def test_same_rate_passes_through() -> None:
    resampler = Resampler(16000, 16000)
    chunk = np.arange(10.0)
    np.testing.assert_array_equal(resampler.push(chunk), chunk)
    assert resampler.flush().size == 0
