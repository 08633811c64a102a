"""On-the-fly augmentation, vectorised over a batch of one-second waveforms (int16 scale, float32).

Speed perturbation (which moves pitch with it), time shift, gain, background noise at a random SNR, and
SpecAugment masks on the log-mel frames. Every draw comes from the generator passed in, so a seed reproduces it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spotter.config import documented, ms_to_samples

INT16_MAX = 32767.0
DITHER = 1.0
"""Standard deviation of a little white noise, in int16 units: real microphones never deliver digital zeros."""


@dataclass(frozen=True)
class AugmentConfig:
    shift_ms: float = documented(
        100.0, "random time shift of training words, up to this either way: a stream meets words at every offset "
        "its hop allows", minimum="non-negative")
    keyword_inside: bool = documented(
        False, "shift keywords anywhere up to --shift-ms as long as their loud part stays inside the window")
    """A keyword cut off is not one; other words shift freely: parts of words are other speech."""
    context: float = documented(
        0.0, "share of spoken training examples that get another word at the window's edge, before or after the "
        "word with a short gap, as in running speech (the label stays the word's)", minimum="share", metavar="SHARE")
    partial_keywords: float = documented(
        0.0, "share of other-word examples that are keywords cut off at the window's edge, only part of their loud "
        "core inside: `_unknown_`, so the model waits for the whole word", minimum="share", metavar="SHARE")
    context_gap_min_ms: float = 50.0
    context_gap_max_ms: float = 300.0
    """Between the loud cores of a word and its neighbour: consonants and a short pause."""
    context_level_min_db: float = -6.0
    context_level_max_db: float = 3.0
    """The neighbour's level against the word's."""
    partial_visible_min: float = 0.2
    partial_visible_max: float = 0.6
    """How much of a cut-off keyword's loud core the window still holds."""
    speed_min: float = 0.85
    speed_max: float = 1.15
    speed_prob: float = 0.8
    gain_db_min: float = -12.0
    gain_db_max: float = 6.0
    noise_prob: float = 0.8
    snr_db_min: float = documented(
        0.0, "lowest SNR of the background noise mixed into training examples, in dB against the power of the whole "
        "window (a half-second word in a one-second window is 3 dB louder than that): quiet words in a noisy room "
        "sit below 0 dB", name="--snr-min", metavar="DB")
    snr_db_max: float = documented(20.0, "highest SNR of the mixed-in noise (see --snr-min)", name="--snr-max",
                                   metavar="DB")
    silence_gain_min: float = 0.02
    silence_gain_max: float = 1.5
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 5

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def noise_segments(noise: list[np.ndarray], count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random excerpts of `length` samples from the noise recordings, as float32."""
    out = np.zeros((count, length), dtype=np.float32)
    usable = [n for n in noise if n.size > length]
    if not usable:
        return out
    which = rng.integers(0, len(usable), count)
    for i, k in enumerate(which):
        start = rng.integers(0, usable[k].size - length)
        out[i] = usable[k][start : start + length]
    return out


def speed_perturb(batch: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Resample each row by its factor around the centre (>1 is faster and higher), keeping the length."""
    n = batch.shape[1]
    centre = (n - 1) / 2.0
    grid = np.arange(n, dtype=np.float64) - centre
    out = np.empty_like(batch)
    for i, f in enumerate(factors):
        out[i] = np.interp(centre + grid * f, np.arange(n), batch[i], left=0.0, right=0.0)
    return out


def time_shift(batch: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move each row by its shift in samples, filling with zeros."""
    out = np.zeros_like(batch)
    n = batch.shape[1]
    for i, s in enumerate(shifts):
        if s >= 0:
            out[i, s:] = batch[i, : n - s]
        else:
            out[i, : n + s] = batch[i, -s:]
    return out


def rms(batch: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(batch, dtype=np.float64), axis=1) + 1e-9)


def augment_waveforms(
    speech: np.ndarray,
    is_silence: np.ndarray,
    noise: list[np.ndarray],
    config: AugmentConfig,
    rng: np.random.Generator,
    sample_rate: int = 16000,
) -> np.ndarray:
    """Augment a batch: speech rows get speed, shift, gain and noise; silence rows become scaled noise."""
    count, length = speech.shape
    x = speech.astype(np.float32)
    speed = np.where(rng.random(count) < config.speed_prob, rng.uniform(config.speed_min, config.speed_max, count), 1.0)
    moved = speed != 1.0
    if moved.any():
        x[moved] = speed_perturb(x[moved], speed[moved])
    max_shift = ms_to_samples(config.shift_ms, sample_rate)
    x = time_shift(x, rng.integers(-max_shift, max_shift + 1, count))
    gain = 10.0 ** (rng.uniform(config.gain_db_min, config.gain_db_max, count) / 20.0)
    x *= gain[:, None].astype(np.float32)

    noise_batch = noise_segments(noise, count, length, rng)
    snr_db = rng.uniform(config.snr_db_min, config.snr_db_max, count)
    scale = rms(x) / (rms(noise_batch) * 10.0 ** (snr_db / 20.0))
    add = (rng.random(count) < config.noise_prob) & ~is_silence
    x[add] += noise_batch[add] * scale[add, None].astype(np.float32)

    silence_gain = np.exp(rng.uniform(np.log(config.silence_gain_min), np.log(config.silence_gain_max), count))
    x[is_silence] = noise_batch[is_silence] * silence_gain[is_silence, None].astype(np.float32)
    x += rng.normal(0.0, DITHER, x.shape).astype(np.float32)
    return np.clip(x, -INT16_MAX - 1, INT16_MAX)


def spec_augment(frames: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment time and frequency masks, filled with each example's mean feature value; vectorised over the
    batch (a per-example loop cost as much as the rest of an epoch's mixing)."""
    count, n_frames, n_mels = frames.shape
    fill = frames.mean(axis=(1, 2), dtype=np.float64).astype(frames.dtype)
    masked = np.zeros((count, n_frames, n_mels), bool)
    for size, masks, most, axis in ((n_frames, config.time_masks, config.time_mask_frames, 1),
                                    (n_mels, config.freq_masks, config.freq_mask_bins, 2)):
        for _ in range(masks):
            width = rng.integers(0, most + 1, count)
            start = rng.integers(0, size - width + 1)
            inside = (np.arange(size) >= start[:, None]) & (np.arange(size) < (start + width)[:, None])
            masked |= inside[:, :, None] if axis == 1 else inside[:, None, :]
    return np.where(masked, fill[:, None, None], frames)
