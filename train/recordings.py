"""Long recordings with events marked in an Audacity label file: labelled training windows, and held-back
stretches kept whole for streaming evaluation.

No TensorFlow here: window labelling is plain numpy, tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotter.config import UNKNOWN, ms_to_samples
from spotter.labels import Event, labels_path, read_labels

from . import audio as audio_files
from .audio import AUDIO_SUFFIXES, read_audio

ALIGNMENT_SETTINGS = ("FRAME_MS", "BAND_HZ", "FLOOR_PERCENTILE", "SEED_BELOW_PEAK_DB", "BRIDGE_MS",
                      "EDGE_ABOVE_FLOOR_DB", "EDGE_BELOW_PEAK_DB", "EDGE_MAX_MS", "MARGIN_MS")


def settings() -> dict[str, object]:
    """The alignment and window-labelling constants, recorded in every model's training metadata."""
    values = {name: getattr(audio_files, name) for name in ALIGNMENT_SETTINGS}
    values.update(NEGATIVE_STRIDE_MS=NEGATIVE_STRIDE_MS)
    return {name.lower(): value for name, value in values.items()}


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


@dataclass(frozen=True)
class Recording:
    audio_path: Path
    labels_path: Path

    @property
    def whole_split(self) -> str | None:
        """`validation` or `test` for a recording held back whole (named `validation-*` or `test-*`): another
        day, room or microphone, or clips of other source recordings (ESC-10's folds), never seen in training."""
        return next((split for prefix, split in WHOLE_SPLIT_PREFIXES.items()
                     if self.audio_path.name.lower().startswith(prefix)), None)


WHOLE_SPLIT_PREFIXES = {"validation-": "validation", "test-": "test"}
LASTING_WINDOWS = 2.0
"""A label whose annotated events last, at the median, at least this many windows is reported with a start and an
end (`DecisionConfig.lasting`): rain, a chainsaw. Shorter ones (a bark, a sneeze, a word) fire once."""


def lasting_labels(spans: list[Span], labels: tuple[str, ...], window_samples: int) -> tuple[str, ...]:
    """The labels, of those asked for, whose annotated events are long (`LASTING_WINDOWS`)."""
    out = []
    for label in labels:
        lengths = [s.end - s.start for s in spans if s.label == label]
        if lengths and np.median(lengths) >= LASTING_WINDOWS * window_samples:
            out.append(label)
    return tuple(out)


def find_audio(folder: Path) -> list[Recording]:
    """Every audio file in `folder` (not its subfolders), label file or not: long recordings of negatives."""
    return [Recording(p, labels_path(p)) for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]


def find_recordings(folder: Path) -> list[Recording]:
    """Audio files in `folder` (not its subfolders) that have an Audacity label file of the same name (.txt)."""
    return [recording for recording in find_audio(folder) if recording.labels_path.is_file()]


def read_recording(recording: Recording, sample_rate: int) -> tuple[np.ndarray, list[Span]]:
    """The audio and its events (none when the recording has no label file)."""
    audio = read_audio(recording.audio_path, sample_rate)
    events = read_labels(recording.labels_path) if recording.labels_path.is_file() else []
    spans = to_spans(events, sample_rate)
    for span in spans:
        if span.end > audio.size:
            raise ValueError(
                f"{recording.labels_path}: event {span.label!r} ends at {span.end / sample_rate:.3f} s, "
                f"after the recording's end ({audio.size / sample_rate:.3f} s)"
            )
    return audio, spans


POSITIVE_STRIDE_MS = 50.0
"""Windows holding an event whole are taken this far apart by default (`TrainConfig.event_stride_ms`): the event at
every position the model will see it."""
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
class HeldBack:
    """A held-back stretch of an annotated recording, kept whole for streaming evaluation."""

    name: str
    audio: np.ndarray
    events: list[Span]


@dataclass
class Windows:
    """Labelled fixed-length windows of one annotated recording, and its held-back stretches kept whole."""

    audio: np.ndarray
    labels: list[str]
    splits: list[str]
    held_back: dict[str, HeldBack]
    quiet: list[np.ndarray]
    """The training part's stretches clear of events (`quiet_stretches`)."""
    training_events: list[Span]
    """The events of the training part (their lengths decide `lasting_labels`)."""


def annotated_windows(
    recording: Recording,
    labels: tuple[str, ...],
    sample_rate: int,
    length: int,
    validation_pct: float,
    test_pct: float,
    negative: bool = False,
    positive_stride_ms: float = POSITIVE_STRIDE_MS,
) -> Windows:
    """Cut an annotated recording into training rows (see `window_label`); events of labels the model does not
    have count as background, and so does everything in a `negative` recording (every window `_unknown_`). Each
    split's windows come from its own stretch of the recording; a `whole_split` recording is all held back."""
    audio, spans = read_recording(recording, sample_rate)
    events = [] if negative else spans
    known = [s for s in events if s.label in labels]
    held = recording.whole_split
    if held is None:
        first, second = split_points(audio.size, spans, validation_pct, test_pct)
    else:
        first, second = (0, audio.size) if held == "validation" else (0, 0)
    positive_stride = max(1, ms_to_samples(positive_stride_ms, sample_rate))
    negative_every = max(1, int(round(NEGATIVE_STRIDE_MS / positive_stride_ms)))
    rows: list[np.ndarray] = []
    out_labels: list[str] = []
    out_splits: list[str] = []
    held_back: dict[str, HeldBack] = {}
    for split, lo, hi in (("train", 0, first), ("validation", first, second), ("test", second, audio.size)):
        if split != "train" and hi > lo:
            inside = [Span(s.start - lo, s.end - lo, s.label) for s in events if lo <= s.start and s.end <= hi]
            held_back[split] = HeldBack(f"{recording.audio_path.name}:{split}", audio[lo:hi].copy(), inside)
        starts = np.arange(lo, hi - length + 1, positive_stride)
        for k, (start, label) in enumerate(zip(starts.tolist(), window_labels(starts, length, known))):
            if label is None or label not in labels or (label == UNKNOWN and k % negative_every):
                continue
            rows.append(audio[start : start + length])
            out_labels.append(label)
            out_splits.append(split)
    stacked = np.stack(rows) if rows else np.zeros((0, length), np.int16)
    trained = [s for s in known if s.end <= first]
    return Windows(stacked, out_labels, out_splits, held_back, quiet_stretches(audio, spans, first, length), trained)


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
