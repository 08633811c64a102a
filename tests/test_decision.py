"""Trigger: smoothing, per-label thresholds, refractory period, never firing for background labels; lasting
labels with a start and an end."""

from __future__ import annotations

import numpy as np

from spotter.config import DecisionConfig
from spotter.decision import EVENT_END, EVENT_START, Detection, Trigger, lag_samples

LABELS = ("yes", "no", "_unknown_", "_silence_")
RATE = 16000
HOP = 1600  # 100 ms
WINDOW = 16000


def _trigger(config: DecisionConfig, labels: tuple[str, ...] = LABELS) -> Trigger:
    return Trigger(labels, config, RATE, WINDOW, HOP)


def _lines(trigger: Trigger, rows: list[list[float]]) -> list[Detection]:
    out = []
    for i, row in enumerate(rows):
        out += trigger.update((i + 1) * HOP, np.array(row))
    return out


def _run(trigger: Trigger, rows: list[list[float]]) -> list[tuple[str, int]]:
    return [(event.label, event.sample) for event in _lines(trigger, rows)]


def test_smoothing_delays_and_averages() -> None:
    trigger = _trigger(DecisionConfig(smoothing_ms=300, refractory_ms=1000, default_threshold=0.8))
    rows = [[0, 0, 0, 1]] * 3 + [[1, 0, 0, 0]] * 5
    # the average over the last 300 ms (three hops) first reaches 1.0 >= 0.8 at the third keyword hop
    assert _run(trigger, rows) == [("yes", 6 * HOP)]


def test_refractory_suppresses_then_allows() -> None:
    trigger = _trigger(DecisionConfig(smoothing_ms=0, refractory_ms=500, default_threshold=0.5))
    rows = [[0.9, 0.1, 0, 0]] * 12
    events = _run(trigger, rows)
    assert [s for _, s in events] == [1 * HOP, 6 * HOP, 11 * HOP]


def test_per_label_thresholds() -> None:
    config = DecisionConfig(smoothing_ms=0, refractory_ms=0, thresholds={"yes": 0.95}, default_threshold=0.6)
    trigger = _trigger(config)
    assert _run(trigger, [[0.9, 0.1, 0, 0], [0.1, 0.7, 0.2, 0]]) == [("no", 2 * HOP)]


def test_background_labels_never_fire() -> None:
    trigger = _trigger(DecisionConfig(smoothing_ms=0, refractory_ms=0, default_threshold=0.1))
    assert _run(trigger, [[0, 0, 1, 0], [0, 0, 0, 1], [0.05, 0.05, 0.9, 0]]) == []


def test_reset_forgets_history() -> None:
    trigger = _trigger(DecisionConfig(smoothing_ms=1000, refractory_ms=5000, default_threshold=0.5))
    assert _run(trigger, [[1, 0, 0, 0]]) == [("yes", HOP)]
    trigger.reset()
    assert _run(trigger, [[1, 0, 0, 0]]) == [("yes", HOP)]


EVENTS = ("rain", "dog", "_unknown_", "_silence_")
RAIN_ONLY = DecisionConfig(smoothing_ms=0, refractory_ms=1000, default_threshold=0.5, lasting=("rain",), bridge_ms=300)


def test_lag_is_the_mean_centre_of_the_smoothed_windows() -> None:
    assert lag_samples(WINDOW, HOP, 0) == WINDOW // 2
    # 400 ms of smoothing at a 100 ms hop averages the windows ending 0, 100, 200 and 300 ms back
    assert lag_samples(WINDOW, HOP, 6400) == WINDOW // 2 + 3 * HOP // 2
    assert lag_samples(WINDOW, HOP, 6500) == WINDOW // 2 + 4 * HOP // 2


def test_a_lasting_label_gives_one_start_and_one_end_with_its_bounds() -> None:
    trigger = _trigger(RAIN_ONLY, EVENTS)
    rows = [[0, 0, 1, 0]] * 10 + [[0.9, 0, 0.1, 0]] * 30 + [[0, 0, 1, 0]] * 10
    lines = _lines(trigger, rows)
    assert [(d.label, d.event) for d in lines] == [("rain", EVENT_START), ("rain", EVENT_END)]
    start, end = lines
    assert start.sample == 11 * HOP and start.start == 11 * HOP - trigger.lag
    # the first hop below the threshold is 41; the end line waits out the 300 ms bridge, the end is not moved by it
    assert end.sample == 44 * HOP and end.end == 41 * HOP - trigger.lag and end.start == start.start
    assert end.score == 0.9


def test_dips_shorter_than_the_bridge_do_not_split_a_lasting_event() -> None:
    trigger = _trigger(RAIN_ONLY, EVENTS)
    rows = [[0.9, 0, 0.1, 0]] * 10 + [[0.2, 0, 0.8, 0]] * 2 + [[0.95, 0, 0.05, 0]] * 10 + [[0, 0, 1, 0]] * 5
    lines = _lines(trigger, rows)
    assert [d.event for d in lines] == [EVENT_START, EVENT_END]
    assert lines[1].end == 23 * HOP - trigger.lag and lines[1].score == 0.95


def test_a_lasting_event_still_sounding_ends_with_the_input() -> None:
    trigger = _trigger(RAIN_ONLY, EVENTS)
    assert [d.event for d in _lines(trigger, [[0.9, 0, 0.1, 0]] * 5)] == [EVENT_START]
    (end,) = trigger.finish(5 * HOP + 123)
    assert end.event == EVENT_END and end.end == end.sample == 5 * HOP + 123
    assert trigger.finish(6 * HOP) == []


def test_short_labels_keep_one_line_while_a_lasting_one_goes_on() -> None:
    """A dog barking in the rain: the bark fires once (refractory as before) and the rain is not cut by it."""
    trigger = _trigger(RAIN_ONLY, EVENTS)
    rows = [[0.6, 0.3, 0.1, 0]] * 5 + [[0.5, 0.5, 0, 0]] * 3 + [[0.6, 0.3, 0.1, 0]] * 5 + [[0, 0, 1, 0]] * 5
    lines = _lines(trigger, rows)
    assert [(d.label, d.event, d.sample) for d in lines] == [
        ("rain", EVENT_START, HOP), ("dog", "", 6 * HOP), ("rain", EVENT_END, 17 * HOP)]
