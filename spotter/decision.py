"""Trigger: posteriors over time -> events. Smoothing, per-label thresholds and a refractory period; labels that
last (rain, a chainsaw) get a start and an end instead of one firing.

Time is counted in samples of the input, so a file and a microphone give the same events.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .config import BACKGROUND_LABELS, DecisionConfig, ms_to_samples

EVENT_START = "start"
EVENT_END = "end"


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    """The smoothed score when it fired; for a lasting event's end, the highest it reached during the event."""
    sample: int
    """Index of the input sample at which the line is due (the end of the window that decided it)."""
    sample_rate: int
    event: str = ""
    """Empty for a label that fires once; `start` or `end` for a lasting label's event."""
    start: int | None = None
    """A lasting event's estimated first sample (see `lag_samples`)."""
    end: int | None = None
    """A lasting event's estimated end, on its end line."""

    @property
    def offset(self) -> float:
        return self.sample / self.sample_rate


def lag_samples(window_samples: int, hop_samples: int, smoothing_samples: int) -> int:
    """How far the audio a smoothed score describes lies behind the hop it is reported at: the mean centre of the
    windows averaged (`Trigger.update` keeps the hops within `smoothing_samples`, at least one). A lasting event
    starts and ends where its smoothed score crosses its threshold, moved back by this lag; for a score that is
    the share of the window the sound fills, crossing one half, that is exact to within a hop."""
    averaged = max(1, math.ceil(smoothing_samples / hop_samples))
    return int(round(window_samples / 2 + (averaged - 1) * hop_samples / 2))


@dataclass
class _Lasting:
    """A lasting event in progress."""

    start: int
    peak: float
    below_since: int | None = None


class Trigger:
    """Averages posteriors over the last `smoothing_ms`; fires the top keyword when its average passes its
    threshold, then stays silent for `refractory_ms`. `_unknown_` and `_silence_` never fire. A lasting label
    (`DecisionConfig.lasting`) starts when its average reaches its threshold and ends once it has stayed below
    for `bridge_ms`; lasting labels are followed each on its own, so rain can go on while a dog barks."""

    def __init__(self, labels: tuple[str, ...], config: DecisionConfig, sample_rate: int, window_samples: int,
                 hop_samples: int) -> None:
        self.labels = labels
        self.config = config
        self.sample_rate = sample_rate
        self._smoothing = ms_to_samples(config.smoothing_ms, sample_rate)
        self._refractory = ms_to_samples(config.refractory_ms, sample_rate)
        self._bridge = ms_to_samples(config.bridge_ms, sample_rate)
        self.lag = lag_samples(window_samples, hop_samples, self._smoothing)
        self._thresholds = np.array([config.threshold_for(label) for label in labels])
        self._is_lasting = np.array([label in config.lasting for label in labels])
        self._lasting = np.flatnonzero(self._is_lasting).tolist()
        self._can_fire = np.array([label not in BACKGROUND_LABELS and label not in config.lasting for label in labels])
        self.reset()

    def reset(self) -> None:
        self._history: deque[tuple[int, np.ndarray]] = deque()
        self._last_fire: int | None = None
        self._open: dict[int, _Lasting] = {}
        self.smoothed = np.zeros(len(self.labels))

    def update(self, sample: int, posteriors: np.ndarray) -> list[Detection]:
        """Add the posteriors of the window ending at `sample`; return the lines due now."""
        self._history.append((sample, np.asarray(posteriors, dtype=np.float64)))
        while len(self._history) > 1 and self._history[0][0] <= sample - self._smoothing:
            self._history.popleft()
        self.smoothed = np.mean([p for _, p in self._history], axis=0)
        return self.decide(sample, self.smoothed)

    def decide(self, sample: int, smoothed: np.ndarray) -> list[Detection]:
        """The firing rule on already smoothed scores; threshold sweeps replay stored scores through it."""
        out = self._follow_lasting(sample, smoothed)
        top = int(np.argmax(np.where(self._is_lasting, -np.inf, smoothed)))
        if not self._can_fire[top] or smoothed[top] < self._thresholds[top]:
            return out
        if self._last_fire is not None and sample - self._last_fire < self._refractory:
            return out
        self._last_fire = sample
        return [*out, Detection(self.labels[top], float(smoothed[top]), sample, self.sample_rate)]

    def _follow_lasting(self, sample: int, smoothed: np.ndarray) -> list[Detection]:
        out = []
        for i in self._lasting:
            score, above = float(smoothed[i]), smoothed[i] >= self._thresholds[i]
            event = self._open.get(i)
            if event is None:
                if above:
                    self._open[i] = _Lasting(max(0, sample - self.lag), score)
                    out.append(Detection(self.labels[i], score, sample, self.sample_rate, EVENT_START,
                                         start=self._open[i].start))
            elif above:
                event.peak, event.below_since = max(event.peak, score), None
            else:
                event.below_since = sample if event.below_since is None else event.below_since
                if sample - event.below_since >= self._bridge:
                    out.append(self._close(i, sample))
        return out

    def _close(self, index: int, sample: int) -> Detection:
        """The end line, due at `sample`: the event ended where its score first fell below its threshold (moved
        back by the lag), or, still sounding, at `sample`."""
        event = self._open.pop(index)
        end = sample if event.below_since is None else max(event.start, event.below_since - self.lag)
        return Detection(self.labels[index], event.peak, sample, self.sample_rate, EVENT_END, event.start, end)

    def finish(self, sample: int) -> list[Detection]:
        """End the lasting events still open when the input ends at `sample`: one still sounding ends there."""
        return [self._close(index, sample) for index in sorted(self._open)]
