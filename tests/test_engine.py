"""The engine: chunk-size invariance, reset, and real keywords found where they were spoken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spotter import modelfile
from spotter.config import FeatureConfig
from spotter.engine import Spotter
from spotter.model import Classifier
from spotter.sources import WavFile

from spotter.evaluation import match
from spotter.labels import read_labels

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
