"""Thresholds from streaming evaluation: after fitting, the model runs through the real engine over continuous
streams of held-back speakers (or the held-back stretches of annotated recordings); each keyword's threshold is
the lowest that keeps its false alarms at or under the target per hour, and recall is then measured with those
thresholds, clean and at a noisier SNR."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spotter import evaluation
from spotter.config import DecisionConfig
from spotter.engine import Spotter
from spotter.labels import Event
from spotter.model import Classifier

from .data import Pool, as_paths, has_word_folders
from .options import TuneSettings
from .recordings import Span, find_recordings
from .streams import StreamConfig, build, mix_noise, noise_bed


@dataclass
class Stream:
    name: str
    audio: np.ndarray
    events: list[Event]


def _events(spans: list[Span], rate: int) -> list[Event]:
    return [Event(s.start / rate, s.end / rate, s.label) for s in spans]


def _add_noise(audio: np.ndarray, events: list[Event], noise: list[np.ndarray], snr_db: float, rate: int) -> np.ndarray | None:
    """Noise from held-out recordings under a stream, at `snr_db` below the level of its events."""
    if not noise:
        return None
    speech = [audio[int(round(e.start * rate)) : int(round(e.end * rate))] for e in events]
    return mix_noise(audio, speech, noise_bed(noise, audio.size), snr_db)


def streams_for(
    pool: Pool, sources: list[str], negatives: list[str], keywords: tuple[str, ...], split: str,
    snr_db: float | None, config: TuneSettings, rate: int,
) -> list[Stream]:
    """Held-back streams of one split: built from clip folders when they hold that split's keyword clips, plus
    the split's stretches of annotated recordings."""
    out: list[Stream] = []
    condition = "clean" if snr_db is None else f"{snr_db:g}dB"
    clip_sources = [p for p in as_paths(sources) if not _annotated(p)]
    clip_roots = clip_sources + [p for p in as_paths(negatives) if has_word_folders(p)]
    if clip_sources and any(pool.words[i] in keywords for i in np.flatnonzero(pool.split == split)):
        base = StreamConfig(minutes=config.keyword_minutes, snr_db=snr_db, split=split, seed=config.seed, sample_rate=rate)
        try:
            audio, events = build(clip_roots, keywords, base)
            out.append(Stream(f"{split}-{condition}", audio, events))
            negative = dataclasses.replace(base, minutes=config.negative_minutes, negatives_only=True, seed=config.seed + 100)
            audio, events = build(clip_roots, keywords, negative)
            out.append(Stream(f"{split}-negatives-{condition}", audio, events))
        except FileNotFoundError:
            if snr_db is None:
                raise
    for held in pool.held_back.get(split, []):
        events = _events(held.events, rate)
        audio = held.audio if snr_db is None else _add_noise(held.audio, events, pool.noise_eval, snr_db, rate)
        if audio is not None:
            out.append(Stream(f"{held.name}-{condition}", audio, events))
    return out


def _annotated(path: Path) -> bool:
    return path.is_dir() and bool(find_recordings(path))


def run(classifier: Classifier, decision: DecisionConfig, streams: list[Stream]) -> list[tuple[evaluation.Trace, list[Event]]]:
    spotter = Spotter(classifier, decision, record=True)
    return [(evaluation.run_stream(spotter, s.audio)[1], s.events) for s in streams]


def tune_model(classifier: Classifier, pool: Pool, config: Any, log: Any = print) -> dict[str, Any] | None:
    """Set the keyword thresholds on clean validation streams, then measure recall, false alarms per hour and
    latency with them on validation and test streams, clean and noisy. None when no held-back stream can be made."""
    settings: TuneSettings = config.tune
    spec = classifier.spec
    rate = spec.features.sample_rate
    keywords = spec.keyword_labels

    def streams(split: str, snr: float | None) -> list[Stream]:
        return streams_for(pool, list(config.data), list(config.negatives), keywords, split, snr, settings, rate)

    validation = streams("validation", None)
    if not any(e.label in keywords for s in validation for e in s.events):
        log("no held-back keyword events to set thresholds on: keeping the clip-level suggestion")
        return None
    log(f"thresholds: {len(validation)} validation streams, "
        f"{sum(s.audio.size for s in validation) / rate / 60:.0f} min")
    traces = run(classifier, config.decision, validation)
    calibration = evaluation.calibrate(traces, spec.labels, config.decision, settings.target_false_alarms_per_hour)
    results: dict[str, Any] = {}
    minutes: dict[str, float] = {}
    for split in ("validation", "test"):
        for snr in (None, settings.noisy_snr_db):
            condition = f"{split}/{'clean' if snr is None else f'{snr:g} dB'}"
            made = validation if (split, snr) == ("validation", None) else streams(split, snr)
            if not any(e.label in keywords for s in made for e in s.events):
                continue
            split_traces = traces if made is validation else run(classifier, config.decision, made)
            results[condition] = evaluation.score_traces(split_traces, spec.labels, calibration.decision)
            minutes[condition] = round(sum(s.audio.size for s in made) / rate / 60, 1)
            o = results[condition]["overall"]
            log(f"{condition}: recall {o['recall']:.1%}, {o['false_alarms_per_hour']:.2f} false alarms/h "
                f"over {minutes[condition]:.0f} min")
    return {"thresholds": calibration.decision.thresholds, "decision": calibration.decision, "results": results,
            "minutes": minutes, "det": calibration.det, "operating_points": calibration.operating_points}
