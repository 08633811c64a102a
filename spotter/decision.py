"""Trigger: posteriors over time -> events. Smoothing, per-label thresholds and a refractory period.

Time is counted in samples of the input, so a file and a microphone give the same events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .config import BACKGROUND_LABELS, DecisionConfig, ms_to_samples


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    sample: int
    """Index of the input sample at which the event fired (the end of the window that fired it)."""
    sample_rate: int

    @property
    def offset(self) -> float:
        return self.sample / self.sample_rate


class Trigger:
    """Averages posteriors over the last `smoothing_ms`; fires the top keyword when its average passes its
    threshold, then stays silent for `refractory_ms`. `_unknown_` and `_silence_` never fire."""

    def __init__(self, labels: tuple[str, ...], config: DecisionConfig, sample_rate: int) -> None:
        self.labels = labels
        self.config = config
        self.sample_rate = sample_rate
        self._smoothing = ms_to_samples(config.smoothing_ms, sample_rate)
        self._refractory = ms_to_samples(config.refractory_ms, sample_rate)
        self._thresholds = np.array([config.threshold_for(label) for label in labels])
        self._can_fire = np.array([label not in BACKGROUND_LABELS for label in labels])
        self.reset()

    def reset(self) -> None:
        self._history: deque[tuple[int, np.ndarray]] = deque()
        self._last_fire: int | None = None
        self.smoothed = np.zeros(len(self.labels))

    def update(self, sample: int, posteriors: np.ndarray) -> Detection | None:
        """Add the posteriors of the window ending at `sample`; return an event if one fires now."""
        self._history.append((sample, np.asarray(posteriors, dtype=np.float64)))
        while len(self._history) > 1 and self._history[0][0] <= sample - self._smoothing:
            self._history.popleft()
        self.smoothed = np.mean([p for _, p in self._history], axis=0)
        return self.decide(sample, self.smoothed)

    def decide(self, sample: int, smoothed: np.ndarray) -> Detection | None:
        """The firing rule on already smoothed scores; threshold sweeps replay stored scores through it."""
        top = int(np.argmax(smoothed))
        if not self._can_fire[top] or smoothed[top] < self._thresholds[top]:
            return None
        if self._last_fire is not None and sample - self._last_fire < self._refractory:
            return None
        self._last_fire = sample
        return Detection(self.labels[top], float(smoothed[top]), sample, self.sample_rate)
