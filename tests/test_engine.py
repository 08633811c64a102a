"""The engine: chunk-size invariance, reset, and real keywords found where they were spoken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spotter import modelfile
from spotter.config import DecisionConfig, FeatureConfig, ModelSpec
from spotter.decision import EVENT_END, EVENT_START
from spotter.engine import Spotter
from spotter.model import Classifier
from spotter.sources import WavFile

from spotter.evaluation import match
from spotter.labels import read_labels
from spotter.output import detection_record

from .conftest import DEMO_LABELS, DEMO_WAV

@pytest.fixture(scope="module")
def classifier(shipped_model: Path) -> Classifier:
    return Classifier.load(shipped_model)


@pytest.fixture(scope="module")
def demo_audio() -> np.ndarray:
    return np.concatenate(list(WavFile(DEMO_WAV, 16000)))


def _run(spotter: Spotter, audio: np.ndarray, sizes: list[int] | None = None, rng: np.random.Generator | None = None):  # type: ignore[no-untyped-def]
    spotter.reset()
    events, i = [], 0
    while i < audio.size:
        size = sizes[0] if sizes else int(rng.integers(1, 5000))  # type: ignore[union-attr]
        events += spotter.push(audio[i : i + size])
        i += size
    return [(e.label, e.sample, round(e.score, 6)) for e in events]


def test_chunk_size_invariance(classifier: Classifier, demo_audio: np.ndarray) -> None:
    spotter = Spotter(classifier)
    audio = demo_audio[: 16000 * 12]
    reference = _run(spotter, audio, [audio.size])
    assert reference, "the first 12 s of the demo hold several keywords"
    for size in (1, 160, 480):
        assert _run(spotter, audio, [size]) == reference
    assert _run(spotter, audio, rng=np.random.default_rng(3)) == reference


def test_offsets_are_sample_counts(classifier: Classifier, demo_audio: np.ndarray) -> None:
    spotter = Spotter(classifier)
    for event in spotter.push(demo_audio):
        # events fire at the end of a complete window, on the hop grid
        frames = (event.sample - classifier.spec.features.window_samples) // classifier.spec.features.step_samples + 1
        assert (frames - classifier.spec.window_frames) % spotter.hop_frames == 0
        assert event.offset == event.sample / 16000


def test_real_keywords_at_expected_offsets(classifier: Classifier, demo_audio: np.ndarray) -> None:
    """Scored by the project's rule: right label, fired between the word's start and 1 s after its end."""
    events = Spotter(classifier).push(demo_audio)
    truth = read_labels(DEMO_LABELS)
    hits, false_alarms, misses = match(events, truth)
    keywords = [e for e in truth if e.label in classifier.spec.keyword_labels]
    # the shipped thresholds find about 77% of keywords in long held-back streams (models/kws.md); 12 words
    # are a small sample, so ask for two thirds
    assert len(hits) >= 2 * len(keywords) / 3, f"missed {misses}"
    assert len(false_alarms) <= 1, f"false alarms: {false_alarms}"
    assert all(0 <= d.offset - e.start for e, d in hits)


def test_silence_gives_nothing(classifier: Classifier) -> None:
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 30, 16000 * 5).astype(np.int16)
    assert Spotter(classifier).push(quiet) == []


def test_pcen_model_streams_chunk_invariantly(
    classifier: Classifier, demo_audio: np.ndarray, shipped_model: Path
) -> None:
    """A spec asking for PCEN gets PCEN frames in the engine (its scores differ from log-mel's), and the smoother
    carried across pushes keeps every hop's scores independent of chunking."""
    tflite, spec = modelfile.read(shipped_model)
    pcen = Classifier(tflite, spec.replace(features=FeatureConfig(compression="pcen")))
    audio = demo_audio[: 16000 * 3]

    def trace(model: Classifier, size: int) -> np.ndarray:
        spotter = Spotter(model, record=True)
        for i in range(0, audio.size, size):
            spotter.push(audio[i : i + size])
        return np.stack([scores for _, scores in spotter.trace])

    whole = trace(pcen, audio.size)
    for size in (1, 161, 4001):
        np.testing.assert_allclose(trace(pcen, size), whole, atol=1e-6)
    assert np.abs(whole - trace(classifier, audio.size)).max() > 1e-3


class LoudnessOracle:
    """A stand-in network whose score for `rain` is the share of the window's frames that are loud: what a
    perfect model of a loud lasting sound would say, so the start and end the engine reports can be checked
    against where the sound really is."""

    LOUD = 15.0
    """Log-mel energy per band between the quiet background (about 4) and the noise burst (about 20)."""

    def __init__(self) -> None:
        self.spec = ModelSpec(
            labels=("rain", "_unknown_", "_silence_"),
            decision=DecisionConfig(hop_ms=100, smoothing_ms=400, refractory_ms=1000, default_threshold=0.5,
                                    lasting=("rain",), bridge_ms=300),
        )

    def __call__(self, window: np.ndarray) -> np.ndarray:
        share = float(np.mean(window.mean(axis=1) > self.LOUD))
        return np.array([share, 1.0 - share, 0.0], dtype=np.float32)


EVENT_START_S, EVENT_END_S, STREAM_S = 2.0, 5.0, 8.0


@pytest.fixture(scope="module")
def burst() -> np.ndarray:
    """Quiet noise with a loud noise burst from 2 s to 5 s."""
    rng = np.random.default_rng(7)
    audio = rng.normal(0, 10, int(STREAM_S * 16000))
    audio[int(EVENT_START_S * 16000) : int(EVENT_END_S * 16000)] = rng.normal(0, 3000, int(3 * 16000))
    return audio.astype(np.int16)


def test_a_three_second_event_gives_one_start_and_one_end_at_its_bounds(burst: np.ndarray) -> None:
    oracle = LoudnessOracle()
    spotter = Spotter(oracle)  # type: ignore[arg-type]
    lines = spotter.run(burst)
    assert [(d.label, d.event) for d in lines] == [("rain", EVENT_START), ("rain", EVENT_END)]
    start, end = (detection_record(d) for d in lines)
    hop_s = oracle.spec.decision.hop_ms / 1000
    assert abs(start["start"] - EVENT_START_S) <= hop_s, start
    assert abs(end["start"] - EVENT_START_S) <= hop_s and abs(end["end"] - EVENT_END_S) <= hop_s, end
    assert end["duration"] == pytest.approx(end["end"] - end["start"], abs=1e-3)
    assert start["offset"] < EVENT_START_S + 1.0 and end["offset"] < EVENT_END_S + 1.5
    assert set(start) == {"label", "event", "score", "offset", "start", "timestamp"}
    assert set(end) == {"label", "event", "score", "offset", "start", "end", "duration", "timestamp"}


def test_start_and_end_lines_do_not_depend_on_chunk_size(burst: np.ndarray) -> None:
    spotter = Spotter(LoudnessOracle())  # type: ignore[arg-type]
    whole = [(d.event, d.sample, d.start, d.end) for d in spotter.run(burst, block_ms=8000)]

    def chunked(sizes: list[int]) -> list[tuple[str, int, int | None, int | None]]:
        spotter.reset()
        out, i, k = [], 0, 0
        while i < burst.size:
            out += spotter.push(burst[i : i + sizes[k % len(sizes)]])
            i, k = i + sizes[k % len(sizes)], k + 1
        return [(d.event, d.sample, d.start, d.end) for d in out + spotter.finish()]

    assert len(whole) == 2
    for sizes in ([1], [160], [4001], [7, 1603, 333]):
        assert chunked(sizes) == whole


def test_an_event_cut_by_the_end_of_the_input_ends_there(burst: np.ndarray) -> None:
    cut = burst[: int(4.0 * 16000)]
    lines = Spotter(LoudnessOracle()).run(cut)  # type: ignore[arg-type]
    assert [d.event for d in lines] == [EVENT_START, EVENT_END]
    assert lines[1].end == lines[1].sample == cut.size
