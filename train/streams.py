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
from spotter.evaluation import Event

from .data import BACKGROUND_DIR, EVAL_NOISE_FRACTION, as_paths, list_clips, read_audio, speaker_of, split_of
from .recordings import locate

TRIM_WINDOW_MS = 20.0
TRIM_RELATIVE_DB = -30.0
"""A clip's spoken part: 20 ms windows within 30 dB of its loudest window."""
TRIM_MARGIN_MS = 50.0


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


def spoken_part(clip: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """[start, end) of the spoken part of a clip, with a small margin, by short-time energy."""
    window = max(1, int(sample_rate * TRIM_WINDOW_MS / 1000))
    count = clip.size // window
    if count == 0:
        return 0, clip.size
    energy = np.square(clip[: count * window].astype(np.float64)).reshape(count, window).mean(axis=1) + 1e-3
    loud = np.flatnonzero(10 * np.log10(energy / energy.max()) >= TRIM_RELATIVE_DB)
    margin = int(sample_rate * TRIM_MARGIN_MS / 1000)
    return max(0, loud[0] * window - margin), min(clip.size, (loud[-1] + 1) * window + margin)


def _noise_bed(roots: list[Path], length: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Held-out parts (the last fifth) of the background-noise recordings, concatenated and looped."""
    parts = []
    for root in roots:
        for path in sorted((root / BACKGROUND_DIR).glob("*.wav")):
            noise = read_audio(path, sample_rate).astype(np.float64)
            parts.append(noise[int(noise.size * (1 - EVAL_NOISE_FRACTION)) :])
    if not parts:
        raise FileNotFoundError(f"no background noise under {', '.join(str(r / BACKGROUND_DIR) for r in roots)}")
    order = rng.permutation(len(parts))
    bed = np.concatenate([parts[i] for i in order])
    reps = -(-length // bed.size)
    return np.tile(bed, reps)[:length]


def trim(samples: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """The utterance inside a clip: `spoken_part` for one-second clips, `recordings.locate` inside longer
    recordings (where a click or a breath far from the word would stretch the energy-relative trim)."""
    if samples.size > sample_rate:
        return locate(samples, sample_rate)
    return spoken_part(samples, sample_rate)


def build(
    roots: Path | Sequence[Path], keywords: tuple[str, ...], config: StreamConfig
) -> tuple[np.ndarray, list[Event]]:
    """A stream of `config.minutes` with its ground truth. Keyword streams mix keywords and other words;
    negatives-only streams hold other words and silence clips only. Only clips of `config.split` speakers,
    from every clip folder in `roots` (keywords from one folder, other words from another works)."""
    rng = np.random.default_rng(config.seed)
    rate = config.sample_rate
    roots = as_paths(roots)
    clips = [c for root in roots for c in list_clips(root) if split_of(speaker_of(c.path)) == config.split]
    keyword_clips = [c for c in clips if c.word in keywords]
    other_clips = [c for c in clips if c.word not in keywords and c.word != "_silence_"]
    silence_clips = [c for c in clips if c.word == "_silence_"]
    if not config.negatives_only and not keyword_clips:
        raise FileNotFoundError(f"no {config.split} clips of {', '.join(keywords)} under {root}")
    total = int(config.minutes * 60 * rate)
    audio = np.zeros(total, dtype=np.float64)
    events: list[Event] = []
    speech_power = []
    position = int(rng.uniform(config.gap_min_s, config.gap_max_s) * rate)
    kw_order = rng.permutation(len(keyword_clips)) if keyword_clips else np.zeros(0, int)
    kw_next = 0
    while True:
        if config.negatives_only:
            pool = silence_clips if (silence_clips and rng.random() < 0.2) else other_clips
            clip = pool[int(rng.integers(len(pool)))]
            label = SILENCE if clip.word == "_silence_" else UNKNOWN
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
        events.append(Event(position / rate, (position + piece.size) / rate, label))
        if label != SILENCE:
            speech_power.append(float(np.mean(np.square(piece))))
        position += piece.size + int(rng.uniform(config.gap_min_s, config.gap_max_s) * rate)
    if config.snr_db is not None:
        bed = _noise_bed(roots, total, rng, rate)
        level = np.sqrt(np.mean(speech_power) if speech_power else 1e6)
        audio += bed * level / (np.sqrt(np.mean(np.square(bed))) * 10 ** (config.snr_db / 20))
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16), events
