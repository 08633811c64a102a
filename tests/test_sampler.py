"""The epoch sampler mixes in the mel-energy domain from a cache of variants: exact where the waveform recipe is
linear per frame (shift, gain), close where it is not (noise), and reproducible from the epoch number alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from spotter.features import LogMel
from spotter.train.augment import DITHER, AugmentConfig, spec_augment
from spotter.train.data import EVAL_SEED, eval_set, load_pool, selection_set
from spotter.train.options import TrainConfig
from spotter.train.sampler import EpochSampler, FeatureCache

from .conftest import read_clip


@pytest.fixture(scope="module")
def clips(speech_commands: Path) -> np.ndarray:
    paths = sorted((speech_commands / "yes").iterdir())[:6] + sorted((speech_commands / "left").iterdir())[:6]
    return np.stack([np.pad(c, (0, max(0, 16000 - c.size)))[:16000] for c in map(read_clip, paths)])


def shifted(clip: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros(clip.size)
    if shift >= 0:
        out[shift:] = clip[: clip.size - shift]
    else:
        out[:shift] = clip[-shift:]
    return out


def test_cached_windows_are_shifted_clips(clips: np.ndarray) -> None:
    """Without speed perturbation a cached window is exactly the log-mel energies of the clip moved by the
    variant's offset and the frame shift, and its power is the moved clip's mean square."""
    frontend = LogMel()
    augment = dataclasses.replace(AugmentConfig(), speed_prob=0.0)
    cache = FeatureCache(clips, augment, frontend, variants=2, refresh_epochs=1, seed=3)
    cache.prepare(0)
    rows = np.arange(clips.shape[0])
    rng = np.random.default_rng(0)
    variant = rng.integers(0, 2, rows.size)
    frame = rng.integers(0, 2 * cache.shift_frames + 1, rows.size)
    energies, power = cache.take(rows, variant, frame)
    shifts = cache.offsets[rows, variant] - frame * cache.step
    assert np.abs(shifts).max() <= augment.shift_ms * 16 + cache.step and len(set(shifts.tolist())) > 6
    moved = np.stack([shifted(c, s) for c, s in zip(clips, shifts)])
    expected = frontend.energies_batch(moved)
    # frame 0 differs by one pre-emphasis term: the cached window's first sample has its predecessor, as in a stream
    np.testing.assert_allclose(energies[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(power, np.mean(np.square(moved), axis=1), rtol=1e-5)


def test_noise_mixed_in_mel_domain_is_close_to_mixing_waveforms(clips: np.ndarray, speech_commands: Path) -> None:
    """Adding energies drops each FFT bin's speech-noise cross term, which averages out inside a mel band: the
    log-mel of a real mix at 0-20 dB SNR differs from the energy sum by a few hundredths on average."""
    import soundfile

    noise, _ = soundfile.read(str(speech_commands / "_background_noise_" / "running_tap.wav"), dtype="int16")
    frontend = LogMel()
    rng = np.random.default_rng(1)
    speech = clips.astype(np.float64)
    excerpt = np.stack([noise[s : s + 16000] for s in rng.integers(0, noise.size - 16000, len(clips))]).astype(np.float64)
    snr_db = np.linspace(0, 20, len(clips))
    scale = np.sqrt(np.mean(speech**2, axis=1) / (np.mean(excerpt**2, axis=1) * 10 ** (snr_db / 10)))
    waveform = frontend.compute_batch(speech + excerpt * scale[:, None])
    energies = frontend.energies_batch(speech) + frontend.energies_batch(excerpt) * scale[:, None, None] ** 2
    mel_domain = frontend.compress_batch(energies)
    error = np.abs(waveform - mel_domain)
    assert error.mean() < 0.1 and np.median(error) < 0.06
    assert np.abs(waveform - frontend.compute_batch(speech)).mean() > 5 * error.mean()  # the noise itself matters


def test_silent_window_is_the_dither_floor(speech_commands: Path) -> None:
    pool = load_pool(speech_commands, max_per_word=3)
    config = dataclasses.replace(TrainConfig(), augment=dataclasses.replace(AugmentConfig(), time_masks=0, freq_masks=0))
    sampler = EpochSampler(pool, config, LogMel(config.features))
    dither = LogMel(dataclasses.replace(config.features, noise_floor=DITHER)).compute(np.zeros(16000))
    np.testing.assert_allclose(sampler.floor, np.exp(dither[0]), rtol=1e-9)
    sampler.cache.prepare(0)
    frames = sampler.mix(np.zeros(4, np.int64), np.ones(4, bool), np.zeros(4, bool), np.random.default_rng(0))
    assert np.all(frames >= dither[0] - 1e-5)  # noise only ever adds energy above the floor


def test_epochs_follow_from_seed_and_epoch_alone(speech_commands: Path) -> None:
    """A resumed run rebuilds the cache as it stood at its epoch, so its epochs equal an uninterrupted run's."""
    pool = load_pool(speech_commands, max_per_word=8)
    config = dataclasses.replace(TrainConfig(), per_class=20, feature_variants=2, refresh_epochs=3)
    straight = EpochSampler(pool, config, LogMel(config.features))
    runs = [straight.epoch(100 + e, e) for e in range(5)]
    resumed = EpochSampler(pool, config, LogMel(config.features))
    frames, truth = resumed.epoch(104, 4)
    np.testing.assert_array_equal(resumed.cache.energies, straight.cache.energies)
    np.testing.assert_array_equal(frames, runs[4][0])
    np.testing.assert_array_equal(truth, runs[4][1])
    assert not np.array_equal(runs[3][0], runs[4][0])
    fresh = EpochSampler(pool, config, LogMel(config.features))
    fresh.cache.prepare(0)
    assert not np.array_equal(fresh.cache.energies, straight.cache.energies)  # groups were redrawn since epoch 0
    counts = np.bincount(truth, minlength=len(config.labels))
    assert counts[config.labels.index("_unknown_")] == config.examples_of("_unknown_")
    assert set(counts[: len(config.labels) - 2]) == {config.per_class}


def test_spec_augment_masks_are_bounded_and_filled_with_the_mean() -> None:
    config = AugmentConfig(time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bins=5)
    frames = np.random.default_rng(0).normal(0, 1, (300, 98, 40)).astype(np.float32)
    out = spec_augment(frames, config, np.random.default_rng(1))
    changed = out != frames
    fill = frames.mean(axis=(1, 2))
    assert np.allclose(out[changed], np.broadcast_to(fill[:, None, None], out.shape)[changed])
    full_rows = changed.all(axis=2).sum(axis=1)  # frames masked across every band
    full_cols = changed.all(axis=1).sum(axis=1)
    assert full_rows.max() <= 20 and full_cols.max() <= 10
    assert full_rows.mean() > 5 and full_cols.mean() > 2


def test_keywords_shift_anywhere_that_keeps_them_whole(clips: np.ndarray) -> None:
    """With `keyword_inside`, a keyword moves up to shift_ms but its loud part always stays in the window."""
    augment = dataclasses.replace(AugmentConfig(), shift_ms=400.0, keyword_inside=True, speed_prob=0.0)
    cache = FeatureCache(clips, augment, LogMel(), variants=1, refresh_epochs=1, seed=0)
    cache.prepare(0)
    rows = np.repeat(np.arange(clips.shape[0]), 200)
    variant = np.zeros(rows.size, np.int64)
    frame = cache.inside_frames(rows, variant, np.random.default_rng(0))
    first, last = cache.loud[rows, 0, 0], cache.loud[rows, 0, 1]
    fits = last - first < cache.blocks
    assert fits.mean() > 0.9
    assert np.all(frame[fits] <= first[fits]) and np.all(frame[fits] + cache.blocks - 1 >= last[fits])
    energies, _ = cache.take(rows, variant, frame)
    loudest = energies.sum(axis=2).argmax(axis=1)  # the loudest frame sits at a different place each time
    assert np.ptp(loudest) > 40
    speech = np.square(clips.astype(np.float64))
    start = frame * cache.step - cache.offsets[rows, 0]  # where each window starts, in the clip's own samples
    kept = np.array([speech[r, max(0, s) : max(0, s + 16000)].sum() for r, s in zip(rows, start)])
    assert np.median(kept / speech[rows].sum(axis=1)) > 0.95  # the window holds the clip's energy


def test_windows_past_the_padded_variant_are_silence(clips: np.ndarray) -> None:
    """A window starting before (or ending after) the cached variant holds zero energy there and the variant's
    own frames elsewhere: what a cut-off word or a neighbour far out needs."""
    cache = FeatureCache(clips, AugmentConfig(), LogMel(), variants=1, refresh_epochs=1, seed=0)
    cache.prepare(0)
    rows, variant = np.arange(3), np.zeros(3, np.int64)
    inside, power_inside = cache.take(rows, variant, np.zeros(3, np.int64))
    before, power_before = cache.take(rows, variant, np.full(3, -30))
    assert np.all(before[:, :30] == 0)
    np.testing.assert_array_equal(before[:, 30:], inside[:, : inside.shape[1] - 30])
    assert np.all(power_before < power_inside + 1e-6)
    last = cache.frames - 10
    after, _ = cache.take(rows, variant, np.full(3, last))
    assert np.all(after[:, 10:] == 0) and np.all(after[:, :10].sum(axis=2) > 0)


def test_cut_off_keywords_keep_only_part_of_their_core(clips: np.ndarray) -> None:
    """Keywords drawn as other speech are placed so that the window holds at most 60% of their loud core, cut
    at its start or its end, both sides as often."""
    cache = FeatureCache(clips, AugmentConfig(), LogMel(), variants=1, refresh_epochs=1, seed=0)
    cache.prepare(0)
    rows = np.repeat(np.arange(clips.shape[0]), 100)
    variant = np.zeros(rows.size, np.int64)
    frame = cache.partial_frames(rows, variant, (0.2, 0.6), np.random.default_rng(0))
    first, last = cache.loud[rows, 0, 0], cache.loud[rows, 0, 1]
    seen = np.minimum(last, frame + cache.blocks - 1) - np.maximum(first, frame) + 1
    share = np.clip(seen, 0, None) / (last - first + 1)
    assert share.max() <= 0.6 and share.mean() > 0.2
    cut_at_start = frame > first
    assert 0.4 < cut_at_start.mean() < 0.6
    assert np.all(frame[~cut_at_start] + cache.blocks - 1 < last[~cut_at_start])  # the others lose their end


def test_neighbouring_words_stay_clear_of_the_word(speech_commands: Path) -> None:
    """With `context`, another word is added before or after each word, its loud core `gap` blocks clear of the
    word's; the word's own core is left untouched."""
    pool = load_pool(speech_commands, max_per_word=6)
    augment = dataclasses.replace(AugmentConfig(), speed_prob=0.0, shift_ms=300.0)
    config = dataclasses.replace(TrainConfig(), augment=augment)
    sampler = EpochSampler(pool, config, LogMel(config.features))
    cache = sampler.cache
    cache.prepare(0)
    rng = np.random.default_rng(0)
    slots = sampler.slot[rng.choice(sampler.speech_rows, 400)]
    variant = np.zeros(400, np.int64)
    frame = rng.integers(0, 2 * cache.shift_frames + 1, 400)
    other = sampler.slot[rng.choice(sampler.rows["_unknown_"], 400)]
    gap = np.full(400, 10)
    start, fits = cache.neighbour_frames(slots, variant, frame, other, variant, gap, rng)
    assert fits.mean() > 0.8
    core = np.stack([cache.loud[slots, 0, 0] - frame, cache.loud[slots, 0, 1] - frame], axis=1)
    other_core = np.stack([cache.loud[other, 0, 0] - start, cache.loud[other, 0, 1] - start], axis=1)
    before = other_core[:, 1] < core[:, 0]
    clear = np.where(before, core[:, 0] - other_core[:, 1], other_core[:, 0] - core[:, 1])
    assert np.all(clear[fits] == gap[fits])
    assert 0.3 < before[fits].mean() < 0.7
    assert np.all(np.where(before, other_core[:, 1] >= 0, other_core[:, 0] <= cache.blocks - 1)[fits])


def test_context_and_cut_off_keywords_change_only_what_they_should(speech_commands: Path) -> None:
    """An epoch with cut-off keywords has that share of its `_unknown_` examples drawn from keyword clips; with
    neither option none is."""
    pool = load_pool(speech_commands, max_per_word=6)
    plain = dataclasses.replace(TrainConfig(), per_class=50)
    options = dataclasses.replace(plain, augment=dataclasses.replace(plain.augment, partial_keywords=0.25, context=0.5))
    rows, truth, silent, partial = EpochSampler(pool, options, LogMel(options.features)).draw(np.random.default_rng(0))
    unknown = truth == pool.labels.index("_unknown_")
    assert partial.sum() == round(0.25 * unknown.sum()) and np.all(unknown[partial])
    assert np.all(np.isin(pool.label_index[rows[partial]], [pool.labels.index(w) for w in pool.labels[:10]]))
    sampler = EpochSampler(pool, plain, LogMel(plain.features))
    rows_plain, _, _, partial_plain = sampler.draw(np.random.default_rng(0))
    assert not partial_plain.any()
    frames = EpochSampler(pool, options, LogMel(options.features)).epoch(seed=1)[0]
    assert np.isfinite(frames).all() and frames.shape[0] == rows.size


def test_selection_set_is_the_validation_clips_clean_then_under_noise(speech_commands: Path) -> None:
    pool = load_pool(speech_commands, max_per_word=12)
    frontend = LogMel()
    validation = eval_set(pool, "validation", frontend, np.random.default_rng(EVAL_SEED))
    n = validation.truth.size
    loud = selection_set(pool, frontend, snr_db=0.0)
    np.testing.assert_array_equal(loud.truth, np.concatenate([validation.truth, validation.truth]))
    np.testing.assert_array_equal(loud.frames[:n], validation.frames)
    speech = validation.truth != pool.labels.index("_silence_")

    def lift(snr_db: float) -> float:
        """Mean rise of a word's log-mel energies under the noise (the noisy half against the clean half)."""
        chosen = loud if snr_db == 0.0 else selection_set(pool, frontend, snr_db)
        return float((chosen.frames[n:] - chosen.frames[:n])[speech].mean())

    lifts = [lift(snr) for snr in (0.0, 20.0, 60.0)]
    assert lifts[0] > lifts[1] > lifts[2] > 0.0  # louder noise lifts the quiet frames of a word more
