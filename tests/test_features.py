"""The log-mel front end equals python_speech_features.logfbank and does not depend on chunking."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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


def _pushed(frontend: LogMel, signal: np.ndarray, size: Callable[[int], int]) -> np.ndarray:
    """The frames of `signal` pushed in chunks, `size(position)` samples at a time."""
    parts, i = [], 0
    while i < signal.size:
        step = size(i)
        parts.append(frontend.push(signal[i : i + step]))
        i += step
    return np.concatenate(parts)


def test_random_chunkings_equal_one_call(speech_commands: Path) -> None:
    rng = np.random.default_rng(1)
    signal = np.concatenate(_clips(speech_commands, 3))
    whole = LogMel().compute(signal)
    for max_chunk in (1, 7, 160, 401, 4000):
        def size(i: int) -> int:
            if max_chunk == 1 and i > 3000:  # one-sample pushes are slow: switch to random sizes after 3000
                return int(rng.integers(1, 900))
            return int(rng.integers(1, max_chunk + 1)) if max_chunk > 1 else 1

        streamed = _pushed(LogMel(), signal, size)
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


# ---- PCEN ---------------------------------------------------------------------------------------------------
PCEN = FeatureConfig(compression="pcen")
EXACT = 1e-10
"""PCEN streams and batches must match the whole-signal frames to rounding, not merely to feature precision."""


def _pcen_reference(energies: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The paper's formula, one frame at a time, with the smoother starting at the first frame's energy."""
    s = config.pcen_smoothing
    smooth = np.empty_like(energies)
    smooth[0] = energies[0]
    for t in range(1, len(energies)):
        smooth[t] = (1 - s) * smooth[t - 1] + s * energies[t]
    gain = energies / (config.pcen_eps + smooth) ** config.pcen_alpha
    return (gain + config.pcen_delta) ** config.pcen_root - config.pcen_delta**config.pcen_root


def test_pcen_smoothing_is_the_papers_at_10_ms() -> None:
    assert abs(PCEN.pcen_smoothing - 0.025) < 1e-12
    slower = FeatureConfig(step_ms=20.0)  # the same time constant at twice the step smooths less per frame
    assert abs(slower.pcen_smoothing - (1 - 0.975**2)) < 1e-12


def test_pcen_follows_the_formula(speech_commands: Path) -> None:
    signal = np.concatenate(_clips(speech_commands, 2))
    frontend = LogMel(PCEN)
    frames = frontend.compute(signal)
    reference = _pcen_reference(frontend.energies_batch(signal[None])[0], PCEN)
    np.testing.assert_allclose(frames, reference, atol=EXACT, rtol=0)
    assert np.all(frames >= 0) and np.all(np.isfinite(frames))
    assert not np.allclose(frames, LogMel().compute(signal))


def test_pcen_chunkings_equal_one_call(speech_commands: Path) -> None:
    signal = np.concatenate(_clips(speech_commands, 3))
    whole = LogMel(PCEN).compute(signal)
    one_sample_span = 4000  # one-sample pushes are slow: the first quarter second, then the rest at once
    frontend = LogMel(PCEN)
    parts = [frontend.push(signal[i : i + 1]) for i in range(one_sample_span)]
    parts.append(frontend.push(signal[one_sample_span:]))
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=EXACT, rtol=0)
    rng = np.random.default_rng(2)
    for size in (7, 159, 401, 4001, None):
        frontend.reset()
        streamed = _pushed(frontend, signal, lambda _, size=size: size or int(rng.integers(1, 3000)))
        assert streamed.shape == whole.shape
        np.testing.assert_allclose(streamed, whole, atol=EXACT, rtol=0)


def test_pcen_batch_rows_are_independent_and_reset_restarts(speech_commands: Path) -> None:
    clips = np.stack([c for c in _clips(speech_commands, 3) if c.size == 16000])
    frontend = LogMel(PCEN)
    batch = frontend.compute_batch(clips)
    for row, clip in zip(batch, clips):
        np.testing.assert_allclose(row, frontend.compute(clip), atol=EXACT, rtol=0)
    frontend.push(clips[0][:5000])
    frontend.reset()
    np.testing.assert_allclose(frontend.push(clips[1]), batch[1], atol=EXACT, rtol=0)


def test_compress_of_energies_is_compute(speech_commands: Path) -> None:
    """The two public steps compose to compute_batch, for both compressions, so training can work between them."""
    clips = np.stack([c for c in _clips(speech_commands, 3) if c.size == 16000])
    for config in (FeatureConfig(), PCEN, FeatureConfig(compression="pcen", noise_floor=1.0)):
        frontend = LogMel(config)
        energies = frontend.energies_batch(clips)
        assert energies.shape == (len(clips), config.frames_for(16000), config.n_mels)
        assert energies.dtype == np.float64
        assert np.all(energies >= frontend.floor_energies) and np.all(energies > 0)
        np.testing.assert_array_equal(frontend.compress_batch(energies), frontend.compute_batch(clips))
    np.testing.assert_array_equal(np.log(LogMel().energies_batch(clips)), LogMel().compute_batch(clips))


def test_pcen_divides_out_a_gain_change_as_the_smoother_settles() -> None:
    """Steady noise that jumps 20 dB: log-mel stays log(100) off for good, PCEN jumps and then settles back close
    to the unchanged signal (not exactly: alpha < 1 leaves gain**(2 * (1 - alpha)))."""
    rate = PCEN.sample_rate
    steady = np.random.default_rng(0).normal(0.0, 100.0, rate * 6)
    jump_at, gain = rate * 2, 10.0
    louder = steady.copy()
    louder[jump_at:] *= gain
    first_changed = PCEN.frames_for(jump_at)  # the first frame reaching past the jump
    half_second = 50

    def drift(config: FeatureConfig) -> np.ndarray:
        frontend = LogMel(config)
        return np.abs(frontend.compute(louder) - frontend.compute(steady)).mean(axis=1)[first_changed:]

    pcen, log = drift(PCEN), drift(FeatureConfig())
    early, middle = pcen[:half_second].mean(), pcen[half_second : 2 * half_second].mean()
    late = pcen[-2 * half_second :].mean()
    assert pcen[:10].max() > 1.0
    assert early > middle > late and late < early / 10
    assert late < 0.05
    np.testing.assert_allclose(log[-2 * half_second :], np.log(gain**2), atol=1e-6)
