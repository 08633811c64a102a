"""Training material from what users record: one utterance somewhere inside a longer take, and long recordings
with events marked in an Audacity label file.

No TensorFlow here: alignment and window labelling are plain numpy, tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotter.config import UNKNOWN
from spotter.evaluation import Event, read_labels

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


def settings() -> dict[str, object]:
    """The alignment and window-labelling constants, recorded in every model's training metadata."""
    names = ("FRAME_MS", "BAND_HZ", "FLOOR_PERCENTILE", "SEED_BELOW_PEAK_DB", "BRIDGE_MS", "EDGE_ABOVE_FLOOR_DB",
             "EDGE_BELOW_PEAK_DB", "EDGE_MAX_MS", "MARGIN_MS", "POSITIVE_STRIDE_MS", "NEGATIVE_STRIDE_MS")
    return {name.lower(): globals()[name] for name in names}


def band_energy_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per FRAME_MS frame, the energy in BAND_HZ, in dB."""
    frame = max(1, int(round(sample_rate * FRAME_MS / 1000)))
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
    frame = max(1, int(round(sample_rate * FRAME_MS / 1000)))
    db = band_energy_db(audio, sample_rate)
    if db.size < 3:
        return 0, audio.size
    floor = float(np.percentile(db, FLOOR_PERCENTILE))
    peak = float(db.max())
    if peak - floor < EDGE_ABOVE_FLOOR_DB:
        return 0, audio.size
    bridge = int(BRIDGE_MS / FRAME_MS)
    clusters: list[list[int]] = []
    for start, end in _runs(db >= peak - SEED_BELOW_PEAK_DB):
        if clusters and start - clusters[-1][1] <= bridge:
            clusters[-1][1] = end
        else:
            clusters.append([start, end])
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
    margin = int(round(sample_rate * MARGIN_MS / 1000))
    return max(0, low * frame - margin), min(audio.size, high * frame + margin)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


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


# --- long recordings with Audacity labels -------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """An event in samples, [start, end)."""

    start: int
    end: int
    label: str


def to_spans(events: list[Event], sample_rate: int) -> list[Span]:
    """Seconds to samples, rounding to the nearest sample: the same rounding everywhere keeps boundaries exact."""
    return [Span(int(round(e.start * sample_rate)), int(round(e.end * sample_rate)), e.label) for e in events]


def window_label(start: int, length: int, spans: list[Span]) -> str | None:
    """The label of the one window [start, start + length): see `window_labels`, the one statement of the rule."""
    return window_labels(np.array([start], dtype=np.int64), length, spans)[0]


def label_windows(total: int, length: int, stride: int, spans: list[Span], first: int = 0) -> list[tuple[int, str | None]]:
    """(start, label) of every window of `length` samples at `stride` inside [first, total)."""
    starts = np.arange(first, total - length + 1, stride, dtype=np.int64)
    return list(zip(starts.tolist(), window_labels(starts, length, spans)))


@dataclass(frozen=True)
class Recording:
    audio_path: Path
    labels_path: Path


def find_recordings(folder: Path) -> list[Recording]:
    """Audio files in `folder` (not its subfolders) that have an Audacity label file of the same name (.txt)."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES and path.with_suffix(".txt").is_file():
            found.append(Recording(path, path.with_suffix(".txt")))
    return found


def read_recording(recording: Recording, sample_rate: int) -> tuple[np.ndarray, list[Span]]:
    from .data import read_audio

    audio = read_audio(recording.audio_path, sample_rate)
    spans = to_spans(read_labels(recording.labels_path), sample_rate)
    for span in spans:
        if span.end > audio.size:
            raise ValueError(
                f"{recording.labels_path}: event {span.label!r} ends at {span.end / sample_rate:.3f} s, "
                f"after the recording's end ({audio.size / sample_rate:.3f} s)"
            )
    return audio, spans


POSITIVE_STRIDE_MS = 50.0
"""Windows holding an event whole are taken every 50 ms: the event at every position the model will see it."""
NEGATIVE_STRIDE_MS = 500.0
"""Windows clear of events are taken every 500 ms: plenty of negatives without an hour of audio filling memory."""


def window_labels(starts: np.ndarray, length: int, spans: list[Span]) -> list[str | None]:
    """The label of each window [start, start + length) over annotated events (vectorised, in chunks):

    - it covers an event whole (or lies wholly inside an event longer than itself): that event's label;
    - it touches no event: `_unknown_`, a negative;
    - it cuts an event partially, or holds two different events whole: None, excluded from training.
    """
    if not spans:
        return [UNKNOWN] * int(starts.size)
    names = sorted({s.label for s in spans})
    a = np.array([s.start for s in spans], dtype=np.int64)
    b = np.array([s.end for s in spans], dtype=np.int64)
    ids = np.array([names.index(s.label) for s in spans], dtype=np.int64)
    whole = np.minimum(length, b - a)
    out: list[str | None] = []
    for first in range(0, starts.size, 2048):
        s = starts[first : first + 2048, None].astype(np.int64)
        overlap = np.minimum(s + length, b) - np.maximum(s, a)
        full = (overlap > 0) & (overlap >= whole)
        partial = (overlap > 0) & ~full
        low = np.where(full, ids, len(names)).min(axis=1)
        high = np.where(full, ids, -1).max(axis=1)
        for i in range(s.shape[0]):
            if partial[i].any() or low[i] != high[i] and high[i] >= 0:
                out.append(None)
            elif high[i] < 0:
                out.append(UNKNOWN)
            else:
                out.append(names[int(low[i])])
    return out


def split_points(total: int, spans: list[Span], validation_pct: float, test_pct: float) -> tuple[int, int]:
    """Where a recording's training part ends and its test part starts: its last `validation_pct` + `test_pct`
    percent are held back in time order, each cut moved past any event it would split."""

    def clear(point: int) -> int:
        moved = True
        while moved:
            moved = False
            for span in spans:
                if span.start < point < span.end:
                    point, moved = span.end, True
        return min(point, total)

    first = clear(int(total * (1 - (validation_pct + test_pct) / 100)))
    second = clear(max(first, int(total * (1 - test_pct / 100))))
    return first, second


@dataclass
class Windows:
    """Labelled fixed-length windows of one annotated recording, and its held-back stretches kept whole."""

    audio: np.ndarray
    labels: list[str]
    splits: list[str]
    held_back: dict[str, object]
    quiet: list[np.ndarray]
    """The training part's stretches clear of events (`quiet_stretches`)."""


def annotated_windows(
    recording: Recording,
    labels: tuple[str, ...],
    sample_rate: int,
    length: int,
    validation_pct: float,
    test_pct: float,
) -> Windows:
    """Cut an annotated recording into training rows (see `window_label`); events of labels the model does not
    have count as background. Each split's windows come from its own stretch of the recording."""
    from .data import HeldBack

    audio, spans = read_recording(recording, sample_rate)
    known = [s for s in spans if s.label in labels]
    first, second = split_points(audio.size, spans, validation_pct, test_pct)
    positive_stride = max(1, int(round(sample_rate * POSITIVE_STRIDE_MS / 1000)))
    negative_every = max(1, int(round(NEGATIVE_STRIDE_MS / POSITIVE_STRIDE_MS)))
    rows: list[np.ndarray] = []
    out_labels: list[str] = []
    out_splits: list[str] = []
    held_back: dict[str, object] = {}
    for split, lo, hi in (("train", 0, first), ("validation", first, second), ("test", second, audio.size)):
        if split != "train" and hi > lo:
            inside = [Span(s.start - lo, s.end - lo, s.label) for s in spans if lo <= s.start and s.end <= hi]
            held_back[split] = HeldBack(f"{recording.audio_path.name}:{split}", audio[lo:hi].copy(), inside)
        starts = np.arange(lo, hi - length + 1, positive_stride)
        for k, (start, label) in enumerate(zip(starts.tolist(), window_labels(starts, length, known))):
            if label is None or label not in labels or (label == UNKNOWN and k % negative_every):
                continue
            rows.append(audio[start : start + length])
            out_labels.append(label)
            out_splits.append(split)
    stacked = np.stack(rows) if rows else np.zeros((0, length), np.int16)
    return Windows(stacked, out_labels, out_splits, held_back, quiet_stretches(audio, spans, first, length))


def quiet_stretches(audio: np.ndarray, spans: list[Span], first: int, length: int) -> list[np.ndarray]:
    """The stretches of a recording's training part (before `first`) between events, longer than a window:
    background to mix into training examples when no noise recordings are given."""
    out, position = [], 0
    for span in sorted(spans, key=lambda s: s.start) + [Span(first, first, "")]:
        stop = min(span.start, first)
        if stop - position > length:
            out.append(audio[position:stop])
        position = max(position, span.end)
    return out
