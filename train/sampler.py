"""What each epoch trains on: class-balanced draws of training clips, augmented in the mel-energy domain.

Computing log-mel frames for every augmented example was most of an epoch's cost (about 1.4 ms a clip, with the
waveform augmentation). Here the expensive, waveform-only steps (speed perturbation and the sub-frame part of the
time shift) are done a few times per clip into a cache of mel energies (`FeatureCache`); each epoch then draws,
per example, a cached variant, a whole-frame shift, a gain, a noise excerpt at an SNR (or a silence level) and
SpecAugment masks, and mixes them where that is nearly free: energies add, gains multiply. What this changes
against mixing waveforms is measured in tests/test_sampler.py: gain and shift are exact; the noise misses only the
speech-noise cross term of each FFT bin, which averages out inside a mel band; the dither becomes its expected
energy. A share of the cache is redrawn every epoch, so speed factors keep changing over a run; which share, and
with which seed, follows from the epoch alone, so a resumed run rebuilds the same cache.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from spotter.config import BACKGROUND_LABELS, SILENCE, UNKNOWN
from spotter.features import LogMel

from .augment import DITHER, AugmentConfig, speed_perturb, spec_augment
from .data import Pool
from .options import TrainConfig

LOUD_RELATIVE_DB = -20.0
"""A clip's loud part: its step-long blocks within 20 dB of its loudest, the core of the word (at -30 dB the room
noise of many clips counts as loud, and they could not move at all)."""
BUILD_CHUNK = 64
"""Clips whose variants are computed in one batched call: larger batches spill out of the CPU caches and
allocate fresh memory for their temporaries, and ran three times slower per clip."""
MIX_CHUNK = 512
"""Examples mixed and compressed at once."""
WORKER_NICENESS = 10
"""The epoch worker yields the CPU to Keras's fit, which waits on nothing else."""


class FeatureCache:
    """Mel energies of `variants` speed-perturbed, sub-frame-shifted copies of every training clip, padded so
    that any whole-frame shift up to `shift_ms` either way is a slice; plus each step-long block's sum of squares,
    so the SNR of a mix is set from the same signal power as in the waveform domain."""

    def __init__(
        self, audio: np.ndarray, augment: AugmentConfig, energies: LogMel, variants: int, refresh_epochs: int,
        seed: int,
    ) -> None:
        """`energies`: the model's front end without a noise floor (the floor is added once, after mixing)."""
        features = energies.config
        self.audio = audio
        self.augment = augment
        self.variants = variants
        self.refresh_epochs = max(1, refresh_epochs)
        self.seed = seed
        self.step = features.step_samples
        self.length = audio.shape[1]
        self.window_frames = features.frames_for(self.length)
        self.blocks = self.length // self.step
        """Step-long blocks in one window's worth of signal: its power is their sum."""
        self.shift_frames = int(round(augment.shift_ms * features.sample_rate / 1000 / self.step))
        self.pad = self.shift_frames * self.step - self.step // 2
        """Zeros before the clip; a variant's random sub-frame offset (0 to one step) and a whole-frame shift
        of -shift_frames to +shift_frames together move the clip by up to shift_ms either way, centred on 0."""
        padded = self.length + 2 * self.shift_frames * self.step + self.step
        self.padded = padded
        self.frames = features.frames_for(padded)
        self._energies = energies
        self.energies = np.zeros((audio.shape[0], variants, self.frames, features.n_mels), np.float32)
        self.block_power = np.zeros((audio.shape[0], variants, padded // self.step), np.float32)
        self.offsets = np.zeros((audio.shape[0], variants), np.int64)
        """Where each variant's clip starts in its padded signal, in samples."""
        self.loud = np.zeros((audio.shape[0], variants, 2), np.int64)
        """First and last loud block of each variant (see LOUD_RELATIVE_DB)."""
        self.built_epoch = -1

    def group(self, index: int) -> np.ndarray:
        return np.arange(index, self.audio.shape[0], self.refresh_epochs)

    def _build(self, group: int, generation: int) -> None:
        rng = np.random.default_rng([self.seed, group, generation])
        rows = self.group(group)
        config = self.augment
        for start in range(0, rows.size, BUILD_CHUNK):
            part = rows[start : start + BUILD_CHUNK]
            count = part.size * self.variants
            speech = np.repeat(self.audio[part].astype(np.float32), self.variants, axis=0)
            speed = np.where(rng.random(count) < config.speed_prob, rng.uniform(config.speed_min, config.speed_max, count), 1.0)
            moved = speed != 1.0
            if moved.any():
                speech[moved] = speed_perturb(speech[moved], speed[moved])
            offset = rng.integers(0, self.step, count)
            waves = np.zeros((count, self.padded), np.float32)
            for i, o in enumerate(offset):
                waves[i, self.pad + o : self.pad + o + self.length] = speech[i]
            energies = self._energies.energies_batch(waves).astype(np.float32)
            shape = (part.size, self.variants)
            self.energies[part] = energies.reshape(shape + energies.shape[1:])
            blocks = np.square(waves, dtype=np.float64).reshape(count, -1, self.step).sum(axis=2)
            self.block_power[part] = blocks.reshape(shape + blocks.shape[1:]).astype(np.float32)
            self.offsets[part] = (self.pad + offset).reshape(shape)
            loud = blocks >= blocks.max(axis=1, keepdims=True) * 10 ** (LOUD_RELATIVE_DB / 10)
            first, last = loud.argmax(axis=1), loud.shape[1] - 1 - loud[:, ::-1].argmax(axis=1)
            self.loud[part] = np.stack([first, last], axis=1).reshape(shape + (2,))

    def generation(self, group: int, epoch: int) -> int:
        """How often a group was redrawn by the start of `epoch`: group (e - 1) mod refresh_epochs at each e >= 1."""
        return 0 if epoch - 1 < group else (epoch - 1 - group) // self.refresh_epochs + 1

    def prepare(self, epoch: int) -> None:
        """Bring the cache to the state it has at the start of `epoch`: built whole the first time (or after a
        resume), then one group redrawn per epoch."""
        if epoch == self.built_epoch:
            return
        if self.built_epoch < 0 or epoch != self.built_epoch + 1:
            for group in range(self.refresh_epochs):
                self._build(group, self.generation(group, epoch))
        elif epoch >= 1:
            group = (epoch - 1) % self.refresh_epochs
            self._build(group, self.generation(group, epoch))
        self.built_epoch = epoch

    def inside_frames(self, rows: np.ndarray, variant: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A window start per example, uniform over those whose window holds the variant's loud part whole (the
        nearest one where the loud part is longer than the window allows)."""
        first, last = self.loud[rows, variant, 0], self.loud[rows, variant, 1]
        highest = 2 * self.shift_frames
        low = np.clip(last + 1 - self.blocks, 0, highest)  # window blocks [o, o + blocks) must reach past `last`
        high = np.clip(first, 0, highest)
        high = np.maximum(high, low)
        return rng.integers(low, high + 1)

    def partial_frames(
        self, rows: np.ndarray, variant: np.ndarray, visible: tuple[float, float], rng: np.random.Generator
    ) -> np.ndarray:
        """A window start per example that holds only part of the variant's loud core (a share drawn from
        `visible`, rounded down, never all of it), cut at the window's start or its end at random."""
        first, last = self.loud[rows, variant, 0], self.loud[rows, variant, 1]
        size = last - first + 1
        keep = np.minimum(np.floor(rng.uniform(*visible, rows.size) * size).astype(np.int64), size - 1)
        at_start = rng.random(rows.size) < 0.5
        return np.where(at_start, last - keep + 1, first + keep - self.blocks)

    def neighbour_frames(
        self, rows: np.ndarray, variant: np.ndarray, frame: np.ndarray, other: np.ndarray, other_variant: np.ndarray,
        gap: np.ndarray, rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where to take a neighbouring word so that, in the window of each example, its loud core ends `gap`
        blocks before the example's core starts, or starts `gap` after it ends (a side at random, the other
        where only that one leaves part of the neighbour's core inside); and whether any side did."""
        core_start = self.loud[rows, variant, 0] - frame
        core_end = self.loud[rows, variant, 1] - frame
        before_fits = core_start - gap >= 0
        after_fits = core_end + gap <= self.blocks - 1
        before = np.where(rng.random(rows.size) < 0.5, before_fits, before_fits & ~after_fits)
        before &= before_fits
        other_first, other_last = self.loud[other, other_variant, 0], self.loud[other, other_variant, 1]
        start = np.where(before, other_last - (core_start - gap), other_first - (core_end + gap))
        return start, before_fits | after_fits

    def clip_power(self, rows: np.ndarray, variant: np.ndarray) -> np.ndarray:
        """Each variant's whole-clip sum of squares: the level of a word, wherever a window cuts it."""
        return self.block_power[rows, variant].sum(axis=1, dtype=np.float64)

    def take(self, rows: np.ndarray, variant: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies of one window per example, starting at `frame` of the padded variant (before or past it: zero
        energy, silence), and the mean square of the signal the window covers."""
        frames = frame[:, None] + np.arange(self.window_frames)
        blocks = frame[:, None] + np.arange(self.blocks)
        energies = self.energies[rows[:, None], variant[:, None], np.clip(frames, 0, self.frames - 1)]
        power = self.block_power[rows[:, None], variant[:, None], np.clip(blocks, 0, self.block_power.shape[2] - 1)]
        outside = (frames < 0) | (frames >= self.frames)
        if outside.any():
            energies[outside] = 0.0
            power = np.where((blocks < 0) | (blocks >= self.block_power.shape[2]), 0.0, power)
        return energies, power.sum(axis=1, dtype=np.float64) / self.length


class NoiseBank:
    """Mel energies of every frame of the training noise recordings, with cumulative sums of squares, so a
    random one-window excerpt and its mean square are a slice and a difference."""

    def __init__(self, noise: list[np.ndarray], length: int, energies: LogMel) -> None:
        features = energies.config
        self.step = features.step_samples
        self.length = length
        self.window_frames = features.frames_for(length)
        usable = [n.astype(np.float64) for n in noise if n.size > length]
        self.energies = [energies.energies_batch(n[None])[0].astype(np.float32) for n in usable]
        self.squares = [np.concatenate([[0.0], np.cumsum(np.square(n))]) for n in usable]
        self.starts = [(n.size - length) // self.step for n in usable]

    def take(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`count` random excerpts (recording uniform, then a frame-aligned start) as energies and mean squares."""
        n_mels = self.energies[0].shape[1] if self.energies else 0
        out = np.zeros((count, self.window_frames, n_mels), np.float32)
        power = np.zeros(count)
        if not self.energies:
            return out, power
        which = rng.integers(0, len(self.energies), count)
        for k in np.unique(which):
            mine = np.flatnonzero(which == k)
            start = rng.integers(0, self.starts[k] + 1, mine.size)
            out[mine] = self.energies[k][start[:, None] + np.arange(self.window_frames)]
            first = start * self.step
            power[mine] = (self.squares[k][first + self.length] - self.squares[k][first]) / self.length
        return out, power


class EpochSampler:
    """Class-balanced epochs: `per_class` examples of every label (times `unknown_weight` for other words),
    augmented, as features (log-mel or PCEN, as the model's front end says)."""

    def __init__(self, pool: Pool, config: TrainConfig, frontend: LogMel) -> None:
        self.pool = pool
        self.config = config
        self.frontend = frontend
        self.rows = {label: pool.indices("train", label) for label in pool.labels}
        speech = np.concatenate([self.rows[label] for label in pool.labels if label != SILENCE])
        self.speech_rows = np.sort(speech)
        self.slot = np.full(pool.audio.shape[0], -1, np.int64)
        self.slot[self.speech_rows] = np.arange(self.speech_rows.size)
        energies = LogMel(dataclasses.replace(frontend.config, noise_floor=0.0))
        self.cache = FeatureCache(
            pool.audio[self.speech_rows], config.augment, energies, config.feature_variants, config.refresh_epochs,
            config.seed,
        )
        silence_clips = [pool.audio[i] for i in self.rows.get(SILENCE, [])]
        self.noise = NoiseBank(pool.noise_train + silence_clips, pool.audio.shape[1], energies)
        floor = math.hypot(frontend.config.noise_floor, DITHER)
        self.floor = LogMel(dataclasses.replace(frontend.config, noise_floor=floor)).floor_energies
        """What a silent window has: the model's own noise floor and the dither, as expected energies."""
        self.hard_rows = np.zeros(0, np.int64)
        """Training negatives the model last scored highest for a keyword (see `mine`)."""
        self.keyword_indices = [i for i, label in enumerate(pool.labels) if label not in BACKGROUND_LABELS]
        self.keyword_rows = np.concatenate([self.rows[pool.labels[i]] for i in self.keyword_indices] or [np.zeros(0, np.int64)])
        """Training keyword clips, which `AugmentConfig.partial_keywords` cuts off as other speech."""

    def mine(self, predict) -> float:  # type: ignore[no-untyped-def]
        """Score every training negative (clean, centred) with `predict` (frames -> posteriors) and keep the
        hardest as `hard_rows`; returns the lowest keyword score in the mined set."""
        rows = self.rows.get(UNKNOWN, np.zeros(0, np.int64))
        if rows.size == 0 or self.config.hard_negative_share <= 0:
            return 0.0
        keyword = np.array([label not in BACKGROUND_LABELS for label in self.pool.labels])
        scores = []
        for start in range(0, rows.size, 2048):
            feats = self.frontend.compute_batch(self.pool.audio[rows[start : start + 2048]].astype(np.float32))
            scores.append(predict(feats.astype(np.float32))[:, keyword].max(axis=1))
        score = np.concatenate(scores)
        count = max(1, int(round(self.config.hard_negative_pool * rows.size)))
        hardest = np.argsort(-score)[:count]
        self.hard_rows = rows[hardest]
        return float(score[hardest[-1]])

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Which clips an epoch holds, shuffled: pool rows, label indices, which rows are silence, and which are
        keywords to cut off as other speech (`AugmentConfig.partial_keywords`)."""
        chosen, truth, silent, partial = [], [], [], []
        keyword_rows = self.keyword_rows
        share = self.config.augment.partial_keywords
        for index, label in enumerate(self.pool.labels):
            rows = self.rows[label]
            count = self.config.examples_of(label)
            cut = 0
            if label == UNKNOWN and keyword_rows.size and share > 0:
                cut = int(round(count * share)) if rows.size else count  # no other words: all cut-off keywords
            if label == SILENCE or rows.size == 0 and not cut:
                chosen.append(np.zeros(count, np.int64))
                silent.append(np.full(count, label == SILENCE))
            else:
                whole = count - cut
                hard = int(round(whole * self.config.hard_negative_share)) if label == UNKNOWN and self.hard_rows.size else 0
                parts = [rng.choice(keyword_rows, cut, replace=keyword_rows.size < cut)] if cut else []
                if hard:
                    parts.append(rng.choice(self.hard_rows, hard, replace=self.hard_rows.size < hard))
                if whole - hard:
                    parts.append(rng.choice(rows, whole - hard, replace=rows.size < whole - hard))
                chosen.append(np.concatenate(parts))
                silent.append(np.zeros(count, bool))
            partial.append(np.arange(count) < cut)
            truth.append(np.full(count, index))
        order = rng.permutation(sum(c.size for c in chosen))
        return (np.concatenate(chosen)[order], np.concatenate(truth)[order], np.concatenate(silent)[order],
                np.concatenate(partial)[order])

    def mix(self, rows: np.ndarray, silent: np.ndarray, partial: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented features of one chunk of examples (pool rows; silence rows become noise alone; `partial`
        rows are keywords cut off at the window's edge)."""
        config = self.config.augment
        count = rows.size
        slots = np.where(silent, 0, self.slot[rows])
        variant = rng.integers(0, self.cache.variants, count)
        frame = rng.integers(0, 2 * self.cache.shift_frames + 1, count)
        keyword = ~silent & ~partial & np.isin(self.pool.label_index[rows], self.keyword_indices)
        if config.keyword_inside:
            frame[keyword] = self.cache.inside_frames(slots[keyword], variant[keyword], rng)
        if partial.any():
            visible = (config.partial_visible_min, config.partial_visible_max)
            frame[partial] = self.cache.partial_frames(slots[partial], variant[partial], visible, rng)
        speech, speech_power = self.cache.take(slots, variant, frame)
        if config.context > 0:
            self.add_context(speech, slots, variant, frame, ~silent & (rng.random(count) < config.context), rng)
        gain = 10.0 ** (rng.uniform(config.gain_db_min, config.gain_db_max, count) / 10.0)  # a power gain
        noise, noise_power = self.noise.take(count, rng)
        snr_db = rng.uniform(config.snr_db_min, config.snr_db_max, count)
        scale = gain * speech_power / (noise_power * 10.0 ** (snr_db / 10.0) + 1e-9)
        add = (rng.random(count) < config.noise_prob) & ~silent
        silence_gain = np.exp(rng.uniform(np.log(config.silence_gain_min), np.log(config.silence_gain_max), count))
        speech_weight = np.where(silent, 0.0, gain)
        noise_weight = np.where(silent, silence_gain**2, np.where(add, scale, 0.0))
        energies = speech * speech_weight[:, None, None].astype(np.float32)
        energies += noise * noise_weight[:, None, None].astype(np.float32)
        energies += self.floor.astype(np.float32)
        return spec_augment(self.frontend.compress_batch(energies).astype(np.float32), config, rng)

    def add_context(
        self, speech: np.ndarray, slots: np.ndarray, variant: np.ndarray, frame: np.ndarray, chosen: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Add, to the `chosen` examples' energies, another training word just before or after the word, its loud
        core clear of the word's by a short gap (`AugmentConfig.context`): running speech, not a word alone."""
        others = self.rows.get(UNKNOWN, np.zeros(0, np.int64))
        picked = np.flatnonzero(chosen)
        if picked.size == 0 or others.size == 0:
            return
        config = self.config.augment
        step_ms = 1000.0 * self.cache.step / self.frontend.config.sample_rate
        gap = np.round(rng.uniform(config.context_gap_min_ms, config.context_gap_max_ms, picked.size) / step_ms)
        other = self.slot[rng.choice(others, picked.size)]
        other_variant = rng.integers(0, self.cache.variants, picked.size)
        start, fits = self.cache.neighbour_frames(
            slots[picked], variant[picked], frame[picked], other, other_variant, gap.astype(np.int64), rng)
        energies, _ = self.cache.take(other, other_variant, start)
        level_db = rng.uniform(config.context_level_min_db, config.context_level_max_db, picked.size)
        level = self.cache.clip_power(slots[picked], variant[picked]) / (self.cache.clip_power(other, other_variant) + 1e-9)
        weight = np.where(fits, level * 10.0 ** (level_db / 10.0), 0.0).astype(np.float32)
        speech[picked] += energies * weight[:, None, None]

    def epoch(self, seed: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The features and labels of one epoch; the cache is first brought to its state at `epoch`."""
        self.cache.prepare(epoch)
        rng = np.random.default_rng(seed)
        rows, truth, silent, partial = self.draw(rng)
        frames = [self.mix(rows[i : i + MIX_CHUNK], silent[i : i + MIX_CHUNK], partial[i : i + MIX_CHUNK], rng)
                  for i in range(0, rows.size, MIX_CHUNK)]
        return np.concatenate(frames), truth


_worker_sampler: EpochSampler | None = None
"""The worker process's own sampler: inherited through fork with its cache built, then kept up to date there."""


def _start_worker(sampler: EpochSampler) -> None:
    global _worker_sampler
    _worker_sampler = sampler
    os.nice(WORKER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the trainer handles it


def _draw(seed: int, epoch: int, hard_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    assert _worker_sampler is not None
    started = time.perf_counter()
    _worker_sampler.hard_rows = hard_rows
    frames, truth = _worker_sampler.epoch(seed, epoch)
    return frames, truth, time.perf_counter() - started


class EpochWorker:
    """Draws the next epoch in a separate process while Keras fits this one. A thread would share the GIL with
    Keras's per-step Python, and numpy's large gathers hold it: fits took twice as long with the sampler in a
    thread. The process is forked, so it starts with the sampler's cache already built, and it redraws the cache
    itself; each request carries the hard negatives the training side last mined."""

    def __init__(self, sampler: EpochSampler) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
            initargs=(sampler,),
        )

    def submit(self, seed: int, epoch: int, hard_rows: np.ndarray) -> Future[tuple[np.ndarray, np.ndarray, float]]:
        return self._pool.submit(_draw, seed, epoch, hard_rows)

    def __enter__(self) -> "EpochWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
