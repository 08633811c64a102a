"""`make bench-train`: seconds per epoch of the default training recipe, by stage, next to what one epoch's
examples cost through the waveform-domain augmentation that the mel-domain sampler replaced."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from spotter.features import LogMel
from spotter.train.augment import augment_waveforms, spec_augment
from spotter.train.data import load_pool
from spotter.train.fit import train
from spotter.train.options import TrainConfig
from spotter.train.sampler import MIX_CHUNK, EpochSampler

WAVEFORM_CHUNK = 512
"""Examples per batch in the waveform recipe, as the trainer used before the mel-domain sampler."""


def waveform_epoch(sampler: EpochSampler, config: TrainConfig, seed: int) -> float:
    """Seconds to make one epoch's examples by augmenting waveforms and computing their log-mel frames."""
    rng = np.random.default_rng(seed)
    rows, _, silent, _ = sampler.draw(rng)  # the waveform recipe has no cut-off keywords
    frontend = sampler.frontend
    started = time.perf_counter()
    for start in range(0, rows.size, WAVEFORM_CHUNK):
        part = slice(start, start + WAVEFORM_CHUNK)
        waves = augment_waveforms(sampler.pool.audio[rows[part]], silent[part], sampler.pool.noise_train,
                                  config.augment, rng, config.features.sample_rate)
        spec_augment(frontend.compute_batch(waves).astype(np.float32), config.augment, rng)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=TrainConfig().data[0])
    parser.add_argument("--architecture", default=TrainConfig().architecture)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    config = dataclasses.replace(
        TrainConfig(), data=(args.data,), architecture=args.architecture, epochs=args.epochs, unknown_weight=3,
        hard_negative_share=0, tune=None,
    )
    started = time.perf_counter()
    pool = load_pool(list(config.data), tuple(config.labels))
    decode = time.perf_counter() - started
    started = time.perf_counter()
    sampler = EpochSampler(pool, config, LogMel(config.features))
    sampler.cache.prepare(0)
    build = time.perf_counter() - started
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    rows, _, silent, partial = sampler.draw(rng)
    for i in range(0, rows.size, MIX_CHUNK):
        sampler.mix(rows[i : i + MIX_CHUNK], silent[i : i + MIX_CHUNK], partial[i : i + MIX_CHUNK], rng)
    mix = time.perf_counter() - started
    waveform = waveform_epoch(sampler, config, 1)
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "bench.tflite"
        train(config, output)
        history = json.loads(output.with_suffix(".report.json").read_text())["metrics"]["history"]
    steady = history[1:] or history
    stages = list(steady[0]["seconds"])
    examples = sum(config.examples_of(label) for label in config.labels)
    print(f"\n{args.architecture}, {examples} examples an epoch, {len(steady)} epochs after the first; seconds:")
    print(f"  decode the clips once                   {decode:7.1f}")
    print(f"  cache {config.feature_variants} variants of every clip       {build:7.1f}  (once a run; 1/{config.refresh_epochs} "
          "of it redrawn each epoch, in the background)")
    print(f"  one epoch's examples, mel-domain mix    {mix:7.1f}")
    print(f"  one epoch's examples, waveform recipe   {waveform:7.1f}  (what the trainer did before)")
    for stage in stages:
        print(f"  epoch: {stage:<32} {statistics.median(h['seconds'][stage] for h in steady):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
