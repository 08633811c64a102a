"""Speech Commands-style clip folders: listing, speaker-disjoint split, and one decode into memory."""

from __future__ import annotations

import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from spotter.config import BACKGROUND_LABELS, SILENCE, UNKNOWN
from spotter.features import LogMel

from .audio import AUDIO_SUFFIXES, cut_window, read_audio
from .augment import INT16_MAX, noise_segments, rms
from .options import DEFAULT_LABELS, SPLITS
from .recordings import POSITIVE_STRIDE_MS, HeldBack, Span, annotated_windows, find_audio, find_recordings, lasting_labels

BACKGROUND_DIR = "_background_noise_"
SILENCE_DIR = "_silence_"
EVAL_SEED = 12345
"""Draws the unknown-word and silence rows of every clip-level evaluation set, so runs compare on the same rows."""
SPLIT_SALT = "spotter-split-v1:"
EVAL_EXTRA_FRACTION = 0.1
"""Validation and test hold unknown words and silence at 10% of the keyword count each (as TensorFlow's
speech_commands recipe does), so accuracy is comparable to the usual 12-class figure; and at least as many as
there are clips of one keyword, so a one-word model's validation is not nearly all keyword."""
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


def has_word_folders(root: Path) -> bool:
    """Whether `root` has clip subfolders (a folder of only long recordings has none)."""
    return any(p.is_dir() and p.name != BACKGROUND_DIR for p in Path(root).iterdir())


def list_clips(root: Path) -> list[Clip]:
    """Every clip under root/<word>/, including `_silence_`, excluding the long background-noise files.

    Listing Speech Commands takes about a second and training lists it once per stream it builds, so listings are
    kept, keyed by each word folder's modification time: adding or removing a clip lists the folder afresh."""
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name != BACKGROUND_DIR)
    return list(_listing(tuple((folder, folder.stat().st_mtime_ns) for folder in folders), str(root)))


@functools.lru_cache(maxsize=16)
def _listing(folders: tuple[tuple[Path, int], ...], root: str) -> tuple[Clip, ...]:
    clips = []
    for folder, _ in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                clips.append(Clip(path, folder.name, speaker_of(path)))
    if not clips:
        raise FileNotFoundError(f"no audio clips found under {root}")
    return tuple(clips)


def decode_all(paths: list[Path], sample_rate: int, length: int, workers: int = 2) -> np.ndarray:
    """Decode every clip once, in parallel, into one (clips, length) int16 array."""
    def one(path: Path) -> np.ndarray:
        return cut_window(read_audio(path, sample_rate), length, sample_rate)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(one, paths))) if paths else np.zeros((0, length), np.int16)


@dataclass
class Pool:
    """Decoded clips (or labelled windows) with their label index and split, the background noise split into
    train/eval parts, and the held-back stretches of annotated recordings."""

    labels: tuple[str, ...]
    audio: np.ndarray  # (clips, samples) int16
    label_index: np.ndarray  # (clips,) int
    words: list[str]
    speakers: list[str]
    split: np.ndarray  # (clips,) str
    noise_train: list[np.ndarray]
    noise_eval: list[np.ndarray]
    held_back: dict[str, list[HeldBack]] = field(default_factory=dict)
    lasting: tuple[str, ...] = ()
    """Labels whose annotated training events are long (`recordings.lasting_labels`)."""

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


def _slice_per_word(clips: list[Clip], max_per_word: int | None) -> list[Clip]:
    if max_per_word is None:
        return clips
    kept: dict[str, int] = {}
    sliced = []
    for clip in clips:
        if kept.get(clip.word, 0) < max_per_word:
            kept[clip.word] = kept.get(clip.word, 0) + 1
            sliced.append(clip)
    return sliced


def read_noise(root: Path, sample_rate: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A clip folder's background-noise recordings, each cut into its training part and its held-out last
    `EVAL_NOISE_FRACTION` (for validation, test and streams)."""
    noise_train, noise_eval = [], []
    noise_dir = root / BACKGROUND_DIR
    if noise_dir.is_dir():
        for path in sorted(noise_dir.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                noise = read_audio(path, sample_rate)
                cut = int(noise.size * (1 - EVAL_NOISE_FRACTION))
                noise_train.append(noise[:cut])
                noise_eval.append(noise[cut:])
    return noise_train, noise_eval


def as_paths(sources: Path | str | Sequence[Path | str]) -> list[Path]:
    if isinstance(sources, (str, Path)):
        return [Path(sources)]
    return [Path(s) for s in sources]


def load_pool(
    sources: Path | str | Sequence[Path | str],
    labels: tuple[str, ...] = DEFAULT_LABELS,
    sample_rate: int = 16000,
    length: int = 16000,
    validation_pct: float = 10.0,
    test_pct: float = 10.0,
    max_per_word: int | None = None,
    negatives: Sequence[Path | str] = (),
    event_stride_ms: float = POSITIVE_STRIDE_MS,
) -> Pool:
    """Everything training reads, as fixed-length rows.

    Each source is either a clip folder (one subfolder per word, Speech Commands layout; clips longer than the
    window are cut around the utterance inside them) or a folder of long recordings, each with an Audacity label
    file of the same name (cut into labelled windows, `recordings.annotated_windows`). Words in `labels` are
    keywords, other words `_unknown_`, `_silence_` clips silence. Everything in a `negatives` folder is
    `_unknown_`: the clips in its word subfolders, and every window of the long recordings directly inside it
    (running speech, a day of a room with no events). `max_per_word` takes a small slice (for tests);
    `event_stride_ms` spaces the windows that hold an event whole.
    """
    roots = as_paths(sources)
    negative_roots = as_paths(negatives) if negatives else []
    clips: list[Clip] = []
    clip_labels: list[str] = []
    recordings = []

    def label_of(word: str, negative: bool) -> str:
        if word == SILENCE_DIR:
            return SILENCE
        if word in labels and not negative:
            return word
        return UNKNOWN

    for root, negative in [(r, False) for r in roots] + [(r, True) for r in negative_roots]:
        if not root.is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
        found = find_audio(root) if negative else find_recordings(root)
        recordings.extend((recording, negative) for recording in found)
        if found and not (negative and has_word_folders(root)):
            continue
        listed = _slice_per_word(list_clips(root), max_per_word)
        clips.extend(listed)
        clip_labels.extend(label_of(c.word, negative) for c in listed)
    present = set(clip_labels)
    rows: list[np.ndarray] = []
    row_labels: list[str] = []
    words: list[str] = []
    speakers: list[str] = []
    splits: list[str] = []
    held_back: dict[str, list[HeldBack]] = {}
    quiet: list[np.ndarray] = []
    trained_events: list[Span] = []
    # recordings held back whole (validation-*, test-*) replace the held-back last stretch of every other one
    whole = any(recording.whole_split for recording, negative in recordings if not negative)
    for recording, negative in recordings:
        shares = (0.0, 0.0) if whole else (validation_pct, test_pct)
        cut = annotated_windows(recording, labels, sample_rate, length, *shares, negative, event_stride_ms)
        rows.append(cut.audio)
        row_labels.extend(cut.labels)
        words.extend(cut.labels)
        speakers.extend([recording.audio_path.name] * len(cut.labels))
        splits.extend(cut.splits)
        present.update(cut.labels)
        for split, stretch in cut.held_back.items():
            held_back.setdefault(split, []).append(stretch)
        quiet += cut.quiet
        trained_events += cut.training_events
    missing = [w for w in labels if w not in BACKGROUND_LABELS and w not in present]
    if missing:
        where = ", ".join(str(r) for r in roots)
        raise FileNotFoundError(f"no clips or labelled events of {', '.join(missing)} under {where}")

    keep = [i for i, lab in enumerate(clip_labels) if lab in labels]
    clips = [clips[i] for i in keep]
    clip_labels = [clip_labels[i] for i in keep]
    audio = np.concatenate([decode_all([c.path for c in clips], sample_rate, length), *rows])
    noise_train, noise_eval = [], []
    for root in roots + negative_roots:
        more_train, more_eval = read_noise(root, sample_rate)
        noise_train += more_train
        noise_eval += more_eval
    if not noise_train:
        noise_train = quiet
    all_labels = clip_labels + row_labels
    return Pool(
        labels=tuple(labels),
        audio=audio,
        label_index=np.array([labels.index(label) for label in all_labels], dtype=np.int64),
        words=[c.word for c in clips] + words,
        speakers=[c.speaker for c in clips] + speakers,
        split=np.array([split_of(c.speaker, validation_pct, test_pct) for c in clips] + splits, dtype=object).astype(str),
        noise_train=noise_train,
        noise_eval=noise_eval,
        held_back=held_back,
        lasting=lasting_labels(trained_events, tuple(labels), length),
    )


@dataclass
class EvalSet:
    frames: np.ndarray
    truth: np.ndarray


def _eval_audio(pool: Pool, split: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Real clips of one split: every keyword clip, plus unknown words and silence at 10% of the keyword count each
    (silence from the split's `_silence_` clips, topped up from held-out noise)."""
    keyword_rows = [pool.indices(split, label) for label in pool.labels if label not in BACKGROUND_LABELS]
    keywords = np.concatenate(keyword_rows) if keyword_rows else np.zeros(0, np.int64)
    extra = max(1, int(round(EVAL_EXTRA_FRACTION * keywords.size)), int(round(keywords.size / max(1, len(keyword_rows)))))
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
    return np.concatenate(waves), np.concatenate(truth)


def eval_set(pool: Pool, split: str, frontend: LogMel, rng: np.random.Generator) -> EvalSet:
    """`_eval_audio`'s clips as log-mel frames."""
    audio, truth = _eval_audio(pool, split, rng)
    return EvalSet(frontend.compute_batch(audio).astype(np.float32), truth)


def selection_set(pool: Pool, frontend: LogMel, snr_db: float) -> EvalSet:
    """The validation clips (drawn as `eval_set` draws them first with EVAL_SEED) twice: as they are, and under
    held-out noise at `snr_db` below each clip's level. Epochs are judged on both: a one-word model gets every clean
    clip right within a few epochs, and from then on clean clips cannot tell a noise-robust epoch from a fragile one."""
    audio, truth = _eval_audio(pool, "validation", np.random.default_rng(EVAL_SEED))
    rng = np.random.default_rng(EVAL_SEED + 1)
    noise = noise_segments(pool.noise_eval, audio.shape[0], audio.shape[1], rng).astype(np.float64)
    scale = rms(audio) / (rms(noise) * 10.0 ** (snr_db / 20.0))
    noisy = np.clip(audio + noise * scale[:, None], -INT16_MAX - 1, INT16_MAX)
    frames = frontend.compute_batch(np.concatenate([audio, noisy])).astype(np.float32)
    return EvalSet(frames, np.concatenate([truth, truth]))
