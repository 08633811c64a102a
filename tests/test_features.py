"""The log-mel front end equals python_speech_features.logfbank and does not depend on chunking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from python_speech_features import logfbank

from spotter.config import FeatureConfig
from spotter.features import LogMel

from .conftest import read_clip

TOLERANCE = 1e-5


def _clips(root: Path, count: int) -> list[np.ndarray]:
    paths = sorted((root / "yes").glob("*.mp3"))[:count] + sorted((root / "_silence_").glob("*.mp3"))[:1]
    return [read_clip(p) for p in paths]


def test_whole_clip_matches_logfbank(speech_commands: Path) -> None:
    frontend = LogMel()
    for clip in _clips(speech_commands, 4):
        ours = frontend.compute(clip)
        reference = logfbank(clip, 16000, nfilt=40, nfft=512)
        # logfbank zero-pads a last, incomplete frame; the streaming front end emits only complete ones
        assert ours.shape == (FeatureConfig().frames_for(clip.size), 40)
        assert reference.shape[0] == ours.shape[0] + 1
        np.testing.assert_allclose(ours, reference[:-1], atol=TOLERANCE, rtol=0)


def test_random_chunkings_equal_one_call(speech_commands: Path) -> None:
    rng = np.random.default_rng(1)
    signal = np.concatenate(_clips(speech_commands, 3))
    whole = LogMel().compute(signal)
    for max_chunk in (1, 7, 160, 401, 4000):
        frontend = LogMel()
        parts, i = [], 0
        while i < signal.size:
            size = int(rng.integers(1, max_chunk + 1)) if max_chunk > 1 else 1
            if max_chunk == 1 and i > 3000:  # one-sample pushes are slow: switch to random sizes after 3000
                size = int(rng.integers(1, 900))
            parts.append(frontend.push(signal[i : i + size]))
            i += size
        streamed = np.concatenate(parts)
        assert streamed.shape == whole.shape
        np.testing.assert_allclose(streamed, whole, atol=TOLERANCE, rtol=0)


def test_batch_equals_single_and_reset_restarts(speech_commands: Path) -> None:
    clips = np.stack([c for c in _clips(speech_commands, 3) if c.size == 16000])
    frontend = LogMel()
    batch = frontend.compute_batch(clips)
    for row, clip in zip(batch, clips):
        np.testing.assert_array_equal(row, frontend.compute(clip))
    frontend.push(clips[0][:5000])
    frontend.reset()
    np.testing.assert_allclose(frontend.push(clips[1]), batch[1], atol=TOLERANCE, rtol=0)


def test_digital_silence_uses_logfbank_floor() -> None:
    frames = LogMel().compute(np.zeros(1600, dtype=np.int16))
    np.testing.assert_allclose(frames, np.log(np.finfo(float).eps))


def test_noise_floor_is_expected_dither_energy() -> None:
    """With a noise floor, digital silence gives the log of the expected band energies of that white noise, and
    real noise of that level lands close to it (within the spread of a 400-sample periodogram)."""
    config = FeatureConfig(noise_floor=1.0)
    floored = LogMel(config).compute(np.zeros(4000))
    assert np.all(floored == floored[0]) and np.all(np.isfinite(floored))
    dither = np.random.default_rng(0).normal(0.0, 1.0, 16000 * 5)
    measured = np.log(np.mean(np.exp(LogMel().compute(dither)), axis=0))
    np.testing.assert_allclose(floored[0], measured, atol=0.15)
    plain = LogMel().compute(np.zeros(4000))
    assert np.all(floored > plain)
