"""Where results go: detections as JSON lines on stdout; status, live view and summary on stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any

from .decision import Detection


TIME_DECIMALS = 3
"""Seconds of input to the millisecond: finer than any hop."""


def detection_record(detection: Detection, now: datetime | None = None) -> dict[str, Any]:
    """The JSON line: `label`, `score`, `offset` (seconds of input when it fired) and `timestamp` for every
    detection; a lasting label's lines add `event` (start or end) and the event's `start`, and its end line
    `end` and `duration`, all in seconds of input."""
    stamp = (now or datetime.now(timezone.utc)).isoformat(timespec="milliseconds")
    record: dict[str, Any] = {"label": detection.label}
    if detection.event:
        record["event"] = detection.event
    record.update(score=round(detection.score, 4), offset=round(detection.offset, TIME_DECIMALS))
    rate = detection.sample_rate
    if detection.start is not None:
        record["start"] = round(detection.start / rate, TIME_DECIMALS)
    if detection.end is not None and detection.start is not None:
        record["end"] = round(detection.end / rate, TIME_DECIMALS)
        record["duration"] = round((detection.end - detection.start) / rate, TIME_DECIMALS)
    record["timestamp"] = stamp
    return record


class JsonLines:
    """One JSON object per detection, flushed at once so `spotter listen | other-program` reacts immediately."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.count = 0

    def write(self, detection: Detection) -> None:
        """A stdout that is full (`>/dev/full`) or closed ends the run as a closed pipe does: nobody can read on."""
        try:
            self.stream.write(json.dumps(detection_record(detection)) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: a closed file object
            raise BrokenPipeError(getattr(exc, "errno", None), "stdout is full or closed") from None
        self.count += 1


class ForgivingStream:
    """stderr that cannot be written (`2>/dev/full`, closed) must not stop detection or spill onto stdout: its
    writes are dropped instead of raising."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None
        return len(text)

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def flush(self) -> None:
        """Each write is flushed already."""

    def fileno(self) -> int:
        if self._stream is None:
            raise OSError("stderr is closed")
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:
        """Everything else (encoding, errors) is the wrapped stream's, for rich and argparse."""
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


def escape(label: str) -> str:
    """A label as literal text in the live view: rich would take `[red]` inside it for markup."""
    from rich.markup import escape as literal

    return literal(label)


class LiveView:
    """A rich live panel on stderr: input level, the top smoothed scores, recent detections. Terminals only."""

    REFRESH_S = 0.1

    def __init__(self, labels: tuple[str, ...]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.labels = labels
        self.console = Console(stderr=True)
        self.recent: list[str] = []
        self.level_db = -120.0
        self.scores: Any = None
        self._last = 0.0
        self._live = Live(console=self.console, auto_refresh=False, transient=True)

    def __enter__(self) -> "LiveView":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def update(self, level_db: float, scores: Any, detections: list[Detection], now: float) -> None:
        self.level_db = level_db
        self.scores = scores
        for d in detections:
            kind = f" {d.event}" if d.event else ""
            self.recent = ([f"{d.offset:8.2f}s  {escape(d.label)}{kind}  {d.score:.2f}"] + self.recent)[:5]
        if now - self._last >= self.REFRESH_S or detections:
            self._last = now
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        bars = int(max(0.0, min(1.0, (self.level_db + 80.0) / 80.0)) * 30)
        table.add_row("level", f"[green]{'█' * bars}[/]{' ' * (30 - bars)} {self.level_db:6.1f} dBFS")
        if self.scores is not None:
            order = sorted(range(len(self.labels)), key=lambda i: -float(self.scores[i]))[:3]
            table.add_row("top", "   ".join(f"{escape(self.labels[i])} {float(self.scores[i]):.2f}" for i in order))
        for line in self.recent:
            table.add_row("heard", line)
        return table


def summary_line(audio_seconds: float, detections: int, dropped_blocks: int, cpu_seconds: float) -> str:
    per_second = 1000.0 * cpu_seconds / audio_seconds if audio_seconds > 0 else 0.0
    return (
        f"spotter: {audio_seconds:.1f} s of audio, {detections} detection{'s' if detections != 1 else ''}, "
        f"{dropped_blocks} dropped block{'s' if dropped_blocks != 1 else ''}, {per_second:.2f} ms CPU per second of audio"
    )
