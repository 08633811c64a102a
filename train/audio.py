"""Reading audio files for training, and finding the utterance inside a clip or a longer take: the one home of
decoding and trimming (clip folders, annotated recordings, streams and the demo all use these).

No TensorFlow here: plain numpy, tested on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from spotter.config import ms_to_samples
from spotter.resample import Resampler
from spotter.sources import to_int16

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")

FRAME_MS = 10.0
"""Energy frames for alignment."""
BAND_HZ = (150.0, 6000.0)
"""Energy is measured in the speech band: mains hum and rumble below it dominate many home recordings."""
FLOOR_PERCENTILE = 10.0
"""The recording's noise floor: this percentile of its frame energies."""
SEED_BELOW_PEAK_DB = 15.0
"""Seeds are the loud frames (vowels): within this much of the recording's loudest frame."""
BRIDGE_MS = 350.0
"""Seed runs closer than this belong to one utterance (the consonants between the vowels of "com-pu-ter")."""
EDGE_ABOVE_FLOOR_DB = 10.0
EDGE_BELOW_PEAK_DB = 45.0
EDGE_MAX_MS = 250.0
"""From the vowels the utterance grows outward over contiguous frames this far above the floor (and not too far
below the peak), at most this far: weak onsets and a final /s/ belong to the word, clicks across a quiet gap don't."""
MARGIN_MS = 30.0


TRIM_WINDOW_MS = 20.0
TRIM_RELATIVE_DB = -30.0
"""A clip's spoken part: 20 ms windows within 30 dB of its loudest window."""
TRIM_MARGIN_MS = 50.0


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode one file to int16 mono at sample_rate: channels downmixed, other rates resampled with the same
    resampler the runtime uses for files and microphones."""
    try:
        audio, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot decode: {exc}") from None
    mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1).round().astype(np.int16)
    if rate == sample_rate:
        return mono
    resampler = Resampler(rate, sample_rate)
    return to_int16(np.concatenate([resampler.push(mono), resampler.flush()]))


def band_energy_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per FRAME_MS frame, the energy in BAND_HZ, in dB."""
    frame = max(1, ms_to_samples(FRAME_MS, sample_rate))
    count = audio.size // frame
    x = audio[: count * frame].astype(np.float64).reshape(count, frame) * np.hanning(frame)
    spectrum = np.square(np.abs(np.fft.rfft(x, axis=1)))
    freqs = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    return 10.0 * np.log10(spectrum[:, band].sum(axis=1) / frame + 1.0)


def locate(audio: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """[start, end) in samples of the one utterance inside a recording.

    The loud frames (vowels) that lie close together form candidate utterances; the one with the most energy is
    taken, then grown outward over its weaker edges. Falls back to the whole recording when nothing stands out
    (a silent file).
    """
    frame = max(1, ms_to_samples(FRAME_MS, sample_rate))
    db = band_energy_db(audio, sample_rate)
    if db.size < 3:
        return 0, audio.size
    floor = float(np.percentile(db, FLOOR_PERCENTILE))
    peak = float(db.max())
    if peak - floor < EDGE_ABOVE_FLOOR_DB:
        return 0, audio.size
    clusters = bridged(_runs(db >= peak - SEED_BELOW_PEAK_DB), int(BRIDGE_MS / FRAME_MS))
    power = np.power(10.0, db / 10.0)
    first, last = max(clusters, key=lambda c: float(power[c[0] : c[1]].sum()))
    edge = max(floor + EDGE_ABOVE_FLOOR_DB, peak - EDGE_BELOW_PEAK_DB)
    reach = int(EDGE_MAX_MS / FRAME_MS)
    low = first
    while low > 0 and first - low < reach and db[low - 1] >= edge:
        low -= 1
    high = last
    while high < db.size and high - last < reach and db[high] >= edge:
        high += 1
    margin = ms_to_samples(MARGIN_MS, sample_rate)
    return max(0, low * frame - margin), min(audio.size, high * frame + margin)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def bridged(runs: list[tuple[int, int]], gap: int, silent: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Runs of frames closer than `gap` frames merged (not across a silent frame, when `silent` is given): the
    syllables of a word, the parts of a crow or a double bark."""
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] <= gap and (silent is None or not silent[merged[-1][1] : start].any()):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def cut_window(audio: np.ndarray, length: int, sample_rate: int) -> np.ndarray:
    """A `length`-sample window around the utterance: centred on it when the recording is longer than the window,
    zero-padded around it when shorter (one-second clips keep their usual centring)."""
    if audio.size <= length:
        out = np.zeros(length, dtype=audio.dtype)
        start = (length - audio.size) // 2
        out[start : start + audio.size] = audio
        return out
    start, end = locate(audio, sample_rate)
    first = int(np.clip((start + end) // 2 - length // 2, 0, audio.size - length))
    return audio[first : first + length].copy()


def spoken_part(clip: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """[start, end) of the spoken part of a clip, with a small margin, by short-time energy."""
    window = max(1, ms_to_samples(TRIM_WINDOW_MS, sample_rate))
    count = clip.size // window
    if count == 0:
        return 0, clip.size
    energy = np.square(clip[: count * window].astype(np.float64)).reshape(count, window).mean(axis=1) + 1e-3
    loud = np.flatnonzero(10 * np.log10(energy / energy.max()) >= TRIM_RELATIVE_DB)
    margin = ms_to_samples(TRIM_MARGIN_MS, sample_rate)
    return max(0, loud[0] * window - margin), min(clip.size, (loud[-1] + 1) * window + margin)


def trim(samples: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """The utterance inside a clip: `spoken_part` for one-second clips, `locate` inside longer
    recordings (where a click or a breath far from the word would stretch the energy-relative trim)."""
    if samples.size > sample_rate:
        return locate(samples, sample_rate)
    return spoken_part(samples, sample_rate)
