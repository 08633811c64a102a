"""Speech Commands-style clip folders: listing, speaker-disjoint split, and one decode into memory."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from spotter.config import SILENCE, UNKNOWN

from spotter.features import LogMel

from .augment import noise_segments
from .options import DEFAULT_LABELS

BACKGROUND_DIR = "_background_noise_"
SILENCE_DIR = "_silence_"
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")
SPLITS = ("train", "validation", "test")
SPLIT_SALT = "spotter-split-v1:"
EVAL_EXTRA_FRACTION = 0.1
"""Validation and test hold unknown words and silence at 10% of the keyword count each (as TensorFlow's
speech_commands recipe does), so accuracy is comparable to the usual 12-class figure."""
EVAL_NOISE_FRACTION = 0.2
"""The last fifth of every background-noise file is kept for validation and test, never mixed into training."""


@dataclass(frozen=True)
class Clip:
    path: Path
    word: str
    speaker: str


def speaker_of(path: Path) -> str:
    """Speech Commands names clips `<speaker>_nohash_<n>`; files without that pattern are their own speaker."""
    stem = path.stem
    return stem.split("_nohash_")[0] if "_nohash_" in stem else f"{path.parent.name}/{stem}"


def split_of(speaker: str, validation_pct: float = 10.0, test_pct: float = 10.0) -> str:
    """Stable speaker-disjoint split: every clip of a speaker lands in the same split on every machine.

    The hash is salted: the pool's own curators withheld speakers by the unsalted sha1 bucket, so an unsalted
    hash puts no speaker of this pool in the first buckets.
    """
    digest = hashlib.sha1(f"{SPLIT_SALT}{speaker}".encode("utf-8")).hexdigest()
    bucket = int(digest, 16) % 10000 / 100.0
    if bucket < validation_pct:
        return "validation"
    if bucket < validation_pct + test_pct:
        return "test"
    return "train"


def list_clips(root: Path) -> list[Clip]:
    """Every clip under root/<word>/, including `_silence_`, excluding the long background-noise files."""
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != BACKGROUND_DIR):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                clips.append(Clip(path, folder.name, speaker_of(path)))
    if not clips:
        raise FileNotFoundError(f"no audio clips found under {root}")
    return clips


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode one file to int16 mono at sample_rate (downmixing; other rates are refused here, clips are 16 kHz)."""
    audio, rate = sf.read(str(path), dtype="int16", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    if audio.shape[1] == 1:
        return audio[:, 0]
    return audio.mean(axis=1).round().astype(np.int16)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Centre a clip in `length` samples: pad both sides with zeros, or cut the middle out of a longer one."""
    out = np.zeros(length, dtype=audio.dtype)
    if audio.size >= length:
        start = (audio.size - length) // 2
        return audio[start : start + length].copy()
    start = (length - audio.size) // 2
    out[start : start + audio.size] = audio
    return out


def decode_all(paths: list[Path], sample_rate: int, length: int, workers: int = 2) -> np.ndarray:
    """Decode every clip once, in parallel, into one (clips, length) int16 array."""
    def one(path: Path) -> np.ndarray:
        return fit_length(read_audio(path, sample_rate), length)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(one, paths))) if paths else np.zeros((0, length), np.int16)


@dataclass
class Pool:
    """Decoded clips with their label index and split, plus the background noise split into train/eval parts."""

    labels: tuple[str, ...]
    audio: np.ndarray  # (clips, samples) int16
    label_index: np.ndarray  # (clips,) int
    words: list[str]
    speakers: list[str]
    split: np.ndarray  # (clips,) str
    noise_train: list[np.ndarray]
    noise_eval: list[np.ndarray]

    def indices(self, split: str, label: str | None = None) -> np.ndarray:
        mask = self.split == split
        if label is not None:
            mask &= self.label_index == self.labels.index(label)
        return np.flatnonzero(mask)

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            out[split] = {label: int(self.indices(split, label).size) for label in self.labels}
            out[split]["speakers"] = len({s for s, sp in zip(self.speakers, self.split) if sp == split})
        return out


def load_pool(
    root: Path,
    labels: tuple[str, ...] = DEFAULT_LABELS,
    sample_rate: int = 16000,
    length: int = 16000,
    validation_pct: float = 10.0,
    test_pct: float = 10.0,
    max_per_word: int | None = None,
) -> Pool:
    """Read a Speech Commands layout: words in `labels` are keywords, other words are `_unknown_`,
    `_silence_` clips are silence. `max_per_word` takes a small slice (for tests)."""
    clips = list_clips(root)
    if max_per_word is not None:
        kept: dict[str, int] = {}
        sliced = []
        for clip in clips:
            if kept.get(clip.word, 0) < max_per_word:
                kept[clip.word] = kept.get(clip.word, 0) + 1
                sliced.append(clip)
        clips = sliced
    missing = [w for w in labels if w not in (UNKNOWN, SILENCE) and w not in {c.word for c in clips}]
    if missing:
        raise FileNotFoundError(f"no clips for {', '.join(missing)} under {root}")

    def label_of(word: str) -> str:
        if word in labels:
            return word
        if word == SILENCE_DIR:
            return SILENCE
        return UNKNOWN

    clip_labels = [label_of(c.word) for c in clips]
    keep = [i for i, lab in enumerate(clip_labels) if lab in labels]
    clips = [clips[i] for i in keep]
    audio = decode_all([c.path for c in clips], sample_rate, length)
    noise_train, noise_eval = [], []
    noise_dir = root / BACKGROUND_DIR
    if noise_dir.is_dir():
        for path in sorted(noise_dir.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                noise = read_audio(path, sample_rate)
                cut = int(noise.size * (1 - EVAL_NOISE_FRACTION))
                noise_train.append(noise[:cut])
                noise_eval.append(noise[cut:])
    return Pool(
        labels=tuple(labels),
        audio=audio,
        label_index=np.array([labels.index(label_of(c.word)) for c in clips], dtype=np.int64),
        words=[c.word for c in clips],
        speakers=[c.speaker for c in clips],
        split=np.array([split_of(c.speaker, validation_pct, test_pct) for c in clips]),
        noise_train=noise_train,
        noise_eval=noise_eval,
    )


@dataclass
class EvalSet:
    frames: np.ndarray
    truth: np.ndarray


def eval_set(pool: Pool, split: str, frontend: LogMel, rng: np.random.Generator) -> EvalSet:
    """Real clips of one split as log-mel frames: every keyword clip, plus unknown words and silence at 10% of
    the keyword count each (silence from the split's `_silence_` clips, topped up from held-out noise)."""
    keyword_rows = [pool.indices(split, label) for label in pool.labels if label not in (UNKNOWN, SILENCE)]
    keywords = np.concatenate(keyword_rows) if keyword_rows else np.zeros(0, np.int64)
    extra = max(1, int(round(EVAL_EXTRA_FRACTION * keywords.size)))
    waves = [pool.audio[keywords].astype(np.float64)]
    truth = [pool.label_index[keywords]]
    if UNKNOWN in pool.labels:
        unknown = pool.indices(split, UNKNOWN)
        unknown = rng.choice(unknown, size=min(extra, unknown.size), replace=False) if unknown.size else unknown
        waves.append(pool.audio[unknown].astype(np.float64))
        truth.append(pool.label_index[unknown])
    if SILENCE in pool.labels:
        clips = pool.indices(split, SILENCE)
        waves.append(pool.audio[clips].astype(np.float64))
        count = max(0, extra - clips.size)
        gains = np.exp(rng.uniform(np.log(0.05), np.log(1.0), count))
        waves.append(noise_segments(pool.noise_eval, count, pool.audio.shape[1], rng) * gains[:, None])
        truth.append(np.full(clips.size + count, pool.labels.index(SILENCE)))
    audio = np.concatenate(waves)
    return EvalSet(frontend.compute_batch(audio).astype(np.float32), np.concatenate(truth))
