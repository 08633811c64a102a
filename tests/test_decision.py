"""Trigger: smoothing, per-label thresholds, refractory period, never firing for background labels."""

from __future__ import annotations

import numpy as np

from spotter.config import DecisionConfig
from spotter.decision import Trigger

LABELS = ("yes", "no", "_unknown_", "_silence_")
RATE = 16000
HOP = 1600  # 100 ms


def _run(trigger: Trigger, rows: list[list[float]]) -> list[tuple[str, int]]:
    events = []
    for i, row in enumerate(rows):
        event = trigger.update((i + 1) * HOP, np.array(row))
        if event is not None:
            events.append((event.label, event.sample))
    return events


def test_smoothing_delays_and_averages() -> None:
    trigger = Trigger(LABELS, DecisionConfig(smoothing_ms=300, refractory_ms=1000, default_threshold=0.8), RATE)
    rows = [[0, 0, 0, 1]] * 3 + [[1, 0, 0, 0]] * 5
    # the average over the last 300 ms (three hops) first reaches 1.0 >= 0.8 at the third keyword hop
    assert _run(trigger, rows) == [("yes", 6 * HOP)]


def test_refractory_suppresses_then_allows() -> None:
    trigger = Trigger(LABELS, DecisionConfig(smoothing_ms=0, refractory_ms=500, default_threshold=0.5), RATE)
    rows = [[0.9, 0.1, 0, 0]] * 12
    events = _run(trigger, rows)
    assert [s for _, s in events] == [1 * HOP, 6 * HOP, 11 * HOP]


def test_per_label_thresholds() -> None:
    config = DecisionConfig(smoothing_ms=0, refractory_ms=0, thresholds={"yes": 0.95}, default_threshold=0.6)
    trigger = Trigger(LABELS, config, RATE)
    assert _run(trigger, [[0.9, 0.1, 0, 0], [0.1, 0.7, 0.2, 0]]) == [("no", 2 * HOP)]


def test_background_labels_never_fire() -> None:
    trigger = Trigger(LABELS, DecisionConfig(smoothing_ms=0, refractory_ms=0, default_threshold=0.1), RATE)
    assert _run(trigger, [[0, 0, 1, 0], [0, 0, 0, 1], [0.05, 0.05, 0.9, 0]]) == []


def test_reset_forgets_history() -> None:
    trigger = Trigger(LABELS, DecisionConfig(smoothing_ms=1000, refractory_ms=5000, default_threshold=0.5), RATE)
    assert _run(trigger, [[1, 0, 0, 0]]) == [("yes", HOP)]
    trigger.reset()
    assert _run(trigger, [[1, 0, 0, 0]]) == [("yes", HOP)]
