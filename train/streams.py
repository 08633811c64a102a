"""Continuous test streams built from a clip folder, with exact ground truth, for streaming evaluation.

Clips are trimmed to their spoken part, placed one after another with random gaps, and mixed over a noise bed at
a chosen SNR (or none: clean). The ground truth is the placed span of every trimmed clip, to the sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spotter.config import SILENCE, UNKNOWN
from spotter.labels import Event
from spotter.sources import to_int16

from .audio import read_audio, trim
from .data import BACKGROUND_DIR, SILENCE_DIR, as_paths, list_clips, read_noise, speaker_of, split_of

SILENCE_SHARE = 0.2
"""Share of placed items that are silence clips (in a negatives-only stream)."""
SILENT_SPEECH_POWER = 1e6
"""Speech power (int16 units squared) assumed when a stream holds no speech to measure: an RMS of 1000."""

@dataclass(frozen=True)
class StreamConfig:
    minutes: float = 10.0
    snr_db: float | None = None
    negatives_only: bool = False
    gap_min_s: float = 1.0
    gap_max_s: float = 3.0
    unknown_share: float = 0.25
    """Share of placed items that are other words (in a keyword stream)."""
    split: str = "validation"
    seed: int = 0
    sample_rate: int = 16000


def noise_bed(parts: list[np.ndarray], length: int) -> np.ndarray:
    """Noise recordings end to end, looped to `length` samples, as float64."""
    bed = np.concatenate([part.astype(np.float64) for part in parts])
    return np.tile(bed, -(-length // bed.size))[:length]


def mix_noise(audio: np.ndarray, speech: list[np.ndarray], bed: np.ndarray, snr_db: float) -> np.ndarray:
    """`audio` with the noise `bed` (as long) under it, `snr_db` below the mean power of the `speech` pieces in
    it, as int16: the one definition of a stream's SNR (built streams, tuning streams, tests)."""
    powers = [float(np.mean(np.square(piece, dtype=np.float64))) for piece in speech if piece.size]
    level = np.sqrt(np.mean(powers) if powers else SILENT_SPEECH_POWER)
    scale = level / (np.sqrt(np.mean(np.square(bed))) * 10 ** (snr_db / 20))
    return to_int16(np.asarray(audio, np.float64) + bed * scale)


def build(
    roots: Path | Sequence[Path], keywords: tuple[str, ...], config: StreamConfig,
    noise_roots: Path | Sequence[Path] | None = None,
) -> tuple[np.ndarray, list[Event]]:
    """A stream of `config.minutes` with its ground truth. Keyword streams mix keywords and other words;
    negatives-only streams hold other words and silence clips only. Only clips of `config.split` speakers,
    from every clip folder in `roots` (keywords from one folder, other words from another works). The noise
    bed comes from the held-out part of the `_background_noise_` of `noise_roots` (default: `roots`)."""
    rng = np.random.default_rng(config.seed)
    rate = config.sample_rate
    roots = as_paths(roots)
    clips = [c for root in roots for c in list_clips(root) if split_of(speaker_of(c.path)) == config.split]
    keyword_clips = [c for c in clips if c.word in keywords]
    other_clips = [c for c in clips if c.word not in keywords and c.word != SILENCE_DIR]
    silence_clips = [c for c in clips if c.word == SILENCE_DIR]
    if not config.negatives_only and not keyword_clips:
        where = ", ".join(str(root) for root in roots)
        raise FileNotFoundError(f"no {config.split} clips of {', '.join(keywords)} under {where}")
    total = int(config.minutes * 60 * rate)
    audio = np.zeros(total, dtype=np.float64)
    events: list[Event] = []
    speech: list[np.ndarray] = []
    position = int(rng.uniform(config.gap_min_s, config.gap_max_s) * rate)
    kw_order = rng.permutation(len(keyword_clips)) if keyword_clips else np.zeros(0, int)
    kw_next = 0
    while True:
        if config.negatives_only:
            pool = silence_clips if (silence_clips and rng.random() < SILENCE_SHARE) else other_clips
            clip = pool[int(rng.integers(len(pool)))]
            label = SILENCE if clip.word == SILENCE_DIR else UNKNOWN
        elif rng.random() < config.unknown_share and other_clips:
            clip = other_clips[int(rng.integers(len(other_clips)))]
            label = UNKNOWN
        else:
            clip = keyword_clips[kw_order[kw_next % len(kw_order)]]
            kw_next += 1
            label = clip.word
        samples = read_audio(clip.path, rate).astype(np.float64)
        start, end = trim(samples, rate) if label != SILENCE else (0, samples.size)
        piece = samples[start:end]
        if position + piece.size > total:
            break
        audio[position : position + piece.size] += piece
        said = clip.word if label == UNKNOWN else ""
        events.append(Event(position / rate, (position + piece.size) / rate, label, said))
        if label != SILENCE:
            speech.append(piece)
        position += piece.size + int(rng.uniform(config.gap_min_s, config.gap_max_s) * rate)
    if config.snr_db is None:
        return to_int16(audio), events
    noise_from = roots if noise_roots is None else as_paths(noise_roots)
    parts = [part for root in noise_from for part in read_noise(root, rate)[1]]
    if not parts:
        raise FileNotFoundError(f"no background noise under {', '.join(str(r / BACKGROUND_DIR) for r in noise_from)}")
    bed = noise_bed([parts[i] for i in rng.permutation(len(parts))], total)
    return mix_noise(audio, speech, bed, config.snr_db), events
