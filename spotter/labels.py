"""Audacity label tracks: the ground truth of streams and annotated recordings, read and written in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .config import BACKGROUND_LABELS
from .files import write_text

SECONDS_DECIMALS = 7
"""One sample at 16 kHz is 1/16000 s: seven decimals keep every boundary on its sample."""
SAID_SEPARATOR = ":"
"""A background label may name what was heard after it (`_unknown_:cat`): scoring reads `_unknown_`, reports of
false alarms show "cat"."""


@dataclass(frozen=True)
class Event:
    start: float
    end: float
    label: str
    said: str = ""
    """What was heard, where the labels file names it; only background labels (`_unknown_`) carry it."""

    @property
    def text(self) -> str:
        """The label as a labels file writes it."""
        return f"{self.label}{SAID_SEPARATOR}{self.said}" if self.said else self.label


class LabelFileError(ValueError):
    """A label file that cannot be read; the message names the file and line."""


def labels_path(audio: Path) -> Path:
    """Where the labels of an audio file live: next to it, as Audacity exports them (`<name>.txt`)."""
    return Path(audio).with_suffix(".txt")


def read_labels(path: Path) -> list[Event]:
    """Audacity label track export: `start<TAB>end<TAB>label` per line, seconds. Blank lines and Audacity's
    spectral-selection lines (starting with a backslash) are skipped; labels may contain spaces."""
    events = []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelFileError(f"label file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"cannot read label file {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("\\"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 2:
            raise LabelFileError(f"{path}:{number}: expected start<TAB>end<TAB>label, got {line.strip()!r}")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise LabelFileError(f"{path}:{number}: start and end must be numbers of seconds, got {line.strip()!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
            raise LabelFileError(f"{path}:{number}: times must be finite and not negative")
        if end < start:
            raise LabelFileError(f"{path}:{number}: end {end} is before start {start}")
        label = "\t".join(fields[2:]).strip()
        if not label:
            raise LabelFileError(f"{path}:{number}: the label is empty")
        head, separator, said = label.partition(SAID_SEPARATOR)
        if separator and head.strip() in BACKGROUND_LABELS:
            events.append(Event(start, end, head.strip(), said.strip()))
        else:
            events.append(Event(start, end, label))
    return sorted(events, key=lambda e: (e.start, e.end))


def write_labels(path: Path, events: Iterable[Event]) -> None:
    text = "".join(f"{e.start:.{SECONDS_DECIMALS}f}\t{e.end:.{SECONDS_DECIMALS}f}\t{e.text}\n" for e in events)
    write_text(path, text)
