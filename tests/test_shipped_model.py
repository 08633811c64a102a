"""The shipped default model: within budget, and right on real clips of speakers it never trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spotter.config import UNKNOWN
from spotter.features import LogMel
from spotter.model import Classifier
from train.data import fit_length, speaker_of, split_of

from .conftest import read_clip

CLIPS_PER_WORD = 4


def test_budget_and_metadata(shipped_model: Path) -> None:
    spec = Classifier.load(shipped_model).spec
    assert spec.metrics["parameters"] <= 250_000 and spec.metrics["multiplies"] <= 10_000_000
    assert spec.metrics["int8_validation_accuracy"] >= 0.92
    assert spec.quantization == "int8" and len(spec.labels) == 12


def test_classifies_real_test_speaker_clips(shipped_model: Path, speech_commands: Path) -> None:
    classifier = Classifier.load(shipped_model)
    labels = classifier.spec.labels
    frontend = LogMel(classifier.spec.features)
    windows, truth = [], []
    for word in [*classifier.spec.keyword_labels, "bed", "happy"]:
        paths = [p for p in sorted((speech_commands / word).glob("*.mp3")) if split_of(speaker_of(p)) == "test"]
        for path in paths[:CLIPS_PER_WORD]:
            windows.append(frontend.compute(fit_length(read_clip(path), 16000)))
            truth.append(labels.index(word if word in labels else UNKNOWN))
    predicted = np.argmax(classifier.predict(np.stack(windows).astype(np.float32)), axis=1)
    accuracy = float(np.mean(predicted == np.array(truth)))
    assert len(truth) == 12 * CLIPS_PER_WORD
    assert accuracy >= 0.9, f"{accuracy:.0%}: {[(labels[t], labels[p]) for t, p in zip(truth, predicted) if t != p]}"
