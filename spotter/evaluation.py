"""Streaming evaluation: detections scored against ground truth (`labels.Event`), threshold sweeps (DET curves)
replayed from one pass over the audio, and `calibrate`, the one threshold-setting pipeline that training,
`spotter eval run` and the benchmarks call.

Scoring rule: a detection is a hit if its label is right and it fires between the event's start and
HIT_AFTER_END_S after the event's end; a wrong label counts as a miss plus a false alarm; anything else is a false
alarm. Each event takes at most one detection, each detection at most one event.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .config import BACKGROUND_LABELS, TARGET_FALSE_ALARMS_PER_HOUR, DecisionConfig
from .decision import EVENT_END, Detection, Trigger
from .engine import REPLAY_BLOCK_MS, Spotter
from .labels import Event

HIT_AFTER_END_S = 1.0
RULE = (
    "hit: right label, fired between event start and 1.0 s after event end; "
    "wrong label: a miss and a false alarm; any other detection: a false alarm"
)


def match(detections: list[Detection], truth: list[Event]) -> tuple[list[tuple[Event, Detection]], list[Detection], list[Event]]:
    """Pair detections with events in time order: (hits, false alarms, misses), by the rule above. A lasting
    event counts by its start line (its end line is no new detection)."""
    events = [e for e in truth if e.label not in BACKGROUND_LABELS]
    taken: set[int] = set()
    hits = []
    unmatched = []
    fired = [d for d in detections if d.event != EVENT_END]
    for detection in sorted(fired, key=lambda d: d.sample):
        t = detection.offset
        chosen = None
        for index, event in enumerate(events):
            if index not in taken and event.label == detection.label and event.start <= t <= event.end + HIT_AFTER_END_S:
                chosen = index
                break
        if chosen is None:
            unmatched.append(detection)
        else:
            taken.add(chosen)
            hits.append((events[chosen], detection))
    misses = [e for i, e in enumerate(events) if i not in taken]
    return hits, unmatched, misses


def false_alarm_causes(false_alarms: list[Detection], truth: list[Event], window_s: float) -> list[dict[str, Any]]:
    """Each false alarm with what its window held: the labelled events it overlaps (what was said, where the
    labels name it), so a user sees which sounds the model takes for a keyword."""
    out = []
    for detection in false_alarms:
        t = detection.offset
        heard = [e.said or e.label for e in truth if e.end > t - window_s and e.start < t]
        out.append({"time_s": round(t, 3), "label": detection.label, "score": round(detection.score, 4),
                    "heard": heard})
    return out


def score(detections: list[Detection], truth: list[Event], labels: Iterable[str], duration_s: float) -> dict[str, Any]:
    """Recall, false alarms per hour and latency (fire time minus event end), per label and overall."""
    hits, false_alarms, misses = match(detections, truth)
    hours = duration_s / 3600.0

    def summary(h: list[tuple[Event, Detection]], fa: int, events: int) -> dict[str, Any]:
        latency = [d.offset - e.end for e, d in h]
        return {
            "events": events,
            "hits": len(h),
            "recall": len(h) / events if events else None,
            "false_alarms": fa,
            "false_alarms_per_hour": fa / hours if hours > 0 else None,
            "latency_median_s": float(np.median(latency)) if latency else None,
            "latency_p90_s": float(np.percentile(latency, 90)) if latency else None,
        }

    per_label = {}
    for label in labels:
        if label in BACKGROUND_LABELS:
            continue
        h = [(e, d) for e, d in hits if e.label == label]
        count = sum(1 for e in truth if e.label == label)
        per_label[label] = summary(h, sum(1 for d in false_alarms if d.label == label), count)
    keyword_events = sum(1 for e in truth if e.label not in BACKGROUND_LABELS)
    return {
        "rule": RULE,
        "duration_s": duration_s,
        "overall": summary(hits, len(false_alarms), keyword_events),
        "labels": per_label,
        "misses": len(misses),
    }


@dataclass
class Trace:
    """The smoothed scores of every hop of one pass over a stream, enough to replay any threshold."""

    samples: np.ndarray  # (hops,) sample index at which each hop's window ends
    smoothed: np.ndarray  # (hops, labels)
    sample_rate: int
    duration_s: float
    window_samples: int
    hop_samples: int

    def trigger(self, labels: tuple[str, ...], decision: DecisionConfig, every: int = 1) -> Trigger:
        """A fresh trigger for these hops (every `every`-th of them)."""
        return Trigger(labels, decision, self.sample_rate, self.window_samples, self.hop_samples * every)

    @property
    def total_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate))

    def resmoothed(self, labels: tuple[str, ...], decision: DecisionConfig, every: int = 1) -> "Trace":
        """The trace that every `every`-th hop with `decision`'s smoothing would have given, from a trace recorded
        without smoothing (whose smoothed scores are the raw posteriors): one model pass compares many settings."""
        trigger = self.trigger(labels, decision, every)
        samples, posteriors = self.samples[::every], self.smoothed[::every]
        smoothed = []
        for sample, scores in zip(samples, posteriors):
            trigger.update(int(sample), scores)
            smoothed.append(trigger.smoothed.copy())
        return Trace(samples, np.array(smoothed).reshape(len(samples), len(labels)), self.sample_rate, self.duration_s,
                     self.window_samples, self.hop_samples * every)


def run_stream(spotter: Spotter, audio: np.ndarray, block_ms: float = REPLAY_BLOCK_MS) -> tuple[list[Detection], Trace]:
    """One pass (in blocks of `block_ms`): the spotter's own detections and the trace of smoothed scores of every
    hop."""
    spotter.record = True
    detections = spotter.run(audio, block_ms)
    rate = spotter.spec.features.sample_rate
    samples = np.array([s for s, _ in spotter.trace], dtype=np.int64)
    smoothed = np.array([p for _, p in spotter.trace]).reshape(len(samples), len(spotter.spec.labels))
    hop = spotter.hop_frames * spotter.spec.features.step_samples
    return detections, Trace(samples, smoothed, rate, audio.size / rate, spotter.spec.window_samples, hop)


def replay(trace: Trace, labels: tuple[str, ...], decision: DecisionConfig) -> list[Detection]:
    """What the trigger would have fired with other thresholds, from the stored smoothed scores."""
    trigger = trace.trigger(labels, decision)
    out = []
    for sample, smoothed in zip(trace.samples, trace.smoothed):
        out += trigger.decide(int(sample), smoothed)
    return out + trigger.finish(trace.total_samples)


SWEEP_THRESHOLDS = np.unique(np.round(np.concatenate([
    np.arange(0.30, 0.90, 0.01), np.arange(0.90, 0.99, 0.0025), 1.0 - np.logspace(-2, -5, 13),
]), 6))
"""Finer near the top: a confident model's keyword and false-alarm scores both crowd just under 1 (down to
1e-5 from it, which models with logit outputs resolve)."""


def sweep(
    traces: list[tuple[Trace, list[Event]]], labels: tuple[str, ...], decision: DecisionConfig,
    thresholds: np.ndarray = SWEEP_THRESHOLDS,
) -> dict[str, Any]:
    """Miss rate and false alarms per hour for every threshold (applied to all labels at once), per label,
    replayed from the traces; a point equals a direct run at that threshold by construction."""
    hours = sum(trace.duration_s for trace, _ in traces) / 3600.0
    keywords = [label for label in labels if label not in BACKGROUND_LABELS]
    curves: dict[str, dict[str, list[float]]] = {k: {"miss_rate": [], "false_alarms_per_hour": []} for k in keywords}
    curves["overall"] = {"miss_rate": [], "false_alarms_per_hour": []}
    for threshold in thresholds:
        config = dataclasses.replace(decision, thresholds={}, default_threshold=float(threshold))
        hits: list[tuple[Event, Detection]] = []
        false_alarms: list[Detection] = []
        events: list[Event] = []
        for trace, truth in traces:
            h, fa, _ = match(replay(trace, labels, config), truth)
            hits += h
            false_alarms += fa
            events += [e for e in truth if e.label not in BACKGROUND_LABELS]
        for key in [*keywords, "overall"]:
            n_events = sum(1 for e in events if key == "overall" or e.label == key)
            n_hits = sum(1 for e, _ in hits if key == "overall" or e.label == key)
            n_fa = sum(1 for d in false_alarms if key == "overall" or d.label == key)
            curves[key]["miss_rate"].append(1.0 - n_hits / n_events if n_events else float("nan"))
            curves[key]["false_alarms_per_hour"].append(n_fa / hours if hours else float("nan"))
    return {"rule": RULE, "hours": hours, "thresholds": [float(t) for t in thresholds], "curves": curves}


def operating_points(det: dict[str, Any], target: float = TARGET_FALSE_ALARMS_PER_HOUR) -> dict[str, dict[str, float]]:
    """Per curve, the lowest threshold whose false alarms per hour are at most `target`, with its recall."""
    out = {}
    for key, curve in det["curves"].items():
        for threshold, miss, fa in zip(det["thresholds"], curve["miss_rate"], curve["false_alarms_per_hour"]):
            if fa <= target:
                out[key] = {"threshold": threshold, "recall": 1.0 - miss, "false_alarms_per_hour": fa}
                break
    return out


SWITCHED_OFF = 1.01
"""A threshold above any posterior: the keyword never fires (a float softmax can round to exactly 1.0)."""


def label_thresholds(
    traces: list[tuple[Trace, list[Event]]], labels: tuple[str, ...], decision: DecisionConfig, det: dict[str, Any],
    target: float = TARGET_FALSE_ALARMS_PER_HOUR,
) -> dict[str, float]:
    """Per-keyword thresholds that keep every keyword within an equal share of `target` false alarms per hour, so
    all together stay within it on these streams. Start from each keyword's point on the common-threshold sweep
    `det`, then replay with the mixed thresholds and raise any keyword still over its share one sweep step
    (thresholds interact: a keyword held back no longer pre-empts another's false alarm through the refractory
    period). A keyword that never gets there is switched off (`SWITCHED_OFF`)."""
    keywords = [key for key in det["curves"] if key != "overall"]
    share = target / max(1, len(keywords))
    grid = [float(t) for t in det["thresholds"]] + [SWITCHED_OFF]
    points = operating_points({**det, "curves": {k: det["curves"][k] for k in keywords}}, share)
    chosen = {k: float(points[k]["threshold"]) if k in points else SWITCHED_OFF for k in keywords}
    while True:
        result = score_traces(traces, labels, dataclasses.replace(decision, thresholds=chosen))
        over = [k for k in keywords if chosen[k] < SWITCHED_OFF and result["labels"][k]["false_alarms_per_hour"] > share]
        if not over:
            return chosen
        for k in over:
            chosen[k] = next(t for t in grid if t > chosen[k])


def score_traces(traces: list[tuple[Trace, list[Event]]], labels: tuple[str, ...], decision: DecisionConfig) -> dict[str, Any]:
    """Recall, false alarms per hour and latency with the given decision settings (per-label thresholds and
    all), replayed from the traces and scored over all streams together."""
    detections: list[Detection] = []
    truth: list[Event] = []
    offset, duration = 0.0, 0.0
    for trace, events in traces:
        for d in replay(trace, labels, decision):
            detections.append(dataclasses.replace(d, sample=d.sample + int(round(offset * trace.sample_rate))))
        truth += [dataclasses.replace(e, start=e.start + offset, end=e.end + offset) for e in events]
        offset += trace.duration_s + 10.0  # a gap longer than the hit window keeps streams apart
        duration += trace.duration_s
    return score(detections, truth, labels, duration)


@dataclass
class Calibration:
    """What `calibrate` found on a set of streams."""

    det: dict[str, Any]
    """The common-threshold sweep (`sweep`)."""
    operating_points: dict[str, dict[str, float]]
    """Per keyword and overall, the common threshold at the target (`operating_points`)."""
    decision: DecisionConfig
    """The decision settings with the per-keyword thresholds (`label_thresholds`)."""
    result: dict[str, Any]
    """Recall, false alarms per hour and latency with them, over all streams together (`score_traces`)."""


def calibrate(
    traces: list[tuple[Trace, list[Event]]], labels: tuple[str, ...], decision: DecisionConfig,
    target: float = TARGET_FALSE_ALARMS_PER_HOUR,
) -> Calibration:
    """Thresholds from streams, the one pipeline: sweep a common threshold, take each keyword's point at an equal
    share of `target` false alarms per hour, settle the mixed thresholds, and score them."""
    det = sweep(traces, labels, decision)
    thresholds = label_thresholds(traces, labels, decision, det, target)
    tuned = dataclasses.replace(decision, thresholds=thresholds)
    return Calibration(det, operating_points(det, target), tuned, score_traces(traces, labels, tuned))


ONSET_COLLAR_S = 0.2
OFFSET_COLLAR_SHARE = 0.5
"""Event-based scoring as DCASE does it: an onset within 200 ms, an offset within 200 ms or half the event's
length, whichever is longer."""
SEGMENT_S = 1.0
"""Segment-based scoring on 1 s segments."""


def extents(trace: Trace, labels: tuple[str, ...], decision: DecisionConfig) -> list[Event]:
    """Every keyword label's stretches above its threshold as events with bounds: the trigger's lasting-event rule
    (`Trigger`) applied to all labels, since sound-event scoring needs the bounds of short sounds too."""
    keywords = tuple(label for label in labels if label not in BACKGROUND_LABELS)
    lines = replay(trace, labels, dataclasses.replace(decision, lasting=keywords))
    rate = trace.sample_rate
    return [Event(d.start / rate, d.end / rate, d.label) for d in lines
            if d.event == EVENT_END and d.start is not None and d.end is not None]


def sed_metrics(streams: dict[str, tuple[list[Event], list[Event]]], labels: tuple[str, ...]) -> dict[str, Any] | None:
    """Event-based F1 and error rate (collars above) and segment-based F1 and error rate (1 s segments), overall
    and per label, from `streams` (name: (reference events, estimated events)). Computed by sed_eval, the DCASE
    reference implementation, rather than re-written; None where it is not installed."""
    try:
        import dcase_util
        import sed_eval
    except ImportError:
        return None
    keywords = [label for label in labels if label not in BACKGROUND_LABELS]

    def container(events: list[Event], name: str) -> Any:
        rows = [{"event_label": e.label, "onset": e.start, "offset": e.end, "filename": name}
                for e in events if e.label in keywords]
        return dcase_util.containers.MetaDataContainer(rows)

    event_based = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=keywords, t_collar=ONSET_COLLAR_S, percentage_of_length=OFFSET_COLLAR_SHARE,
        evaluate_onset=True, evaluate_offset=True)
    segment_based = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=keywords, time_resolution=SEGMENT_S)
    for name, (reference, estimated) in streams.items():
        ref, est = container(reference, name), container(estimated, name)
        event_based.evaluate(reference_event_list=ref, estimated_event_list=est)
        segment_based.evaluate(reference_event_list=ref, estimated_event_list=est)

    def summary(results: dict[str, Any]) -> dict[str, Any]:
        return {
            "f1": results["overall"]["f_measure"]["f_measure"],
            "error_rate": results["overall"]["error_rate"]["error_rate"],
            "labels": {label: {"f1": r["f_measure"]["f_measure"], "error_rate": r["error_rate"]["error_rate"],
                               "events": int(r["count"]["Nref"])} for label, r in results["class_wise"].items()},
        }

    return {
        "rule": (f"sed_eval: event-based with onset collar {ONSET_COLLAR_S:g} s and offset collar "
                 f"max({ONSET_COLLAR_S:g} s, {OFFSET_COLLAR_SHARE:.0%} of the event); segment-based on {SEGMENT_S:g} s segments"),
        "event_based": summary(event_based.results()),
        "segment_based": summary(segment_based.results()),
    }
