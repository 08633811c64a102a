"""Sound events end to end: scenes of real ESC-10 clips with Audacity labels, `train` on the folder with no other
step, then lasting events with a start and an end, and short ones with one line, on a held-back fold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from spotter import evaluation, modelfile  # noqa: E402
from spotter.config import SILENCE, UNKNOWN  # noqa: E402
from spotter.decision import EVENT_END, EVENT_START  # noqa: E402
from spotter.engine import Spotter  # noqa: E402
from spotter.labels import write_labels  # noqa: E402
from spotter.model import Classifier  # noqa: E402
from spotter.train.fit import train  # noqa: E402
from spotter.train.options import TrainConfig  # noqa: E402
from spotter.train.scenes import SceneConfig, compose_scenes  # noqa: E402

from .conftest import write_wav  # noqa: E402

RATE = 16000
CLASSES = ("dog", "rain")
"""A short sound and a lasting one."""


def test_train_on_event_scenes_reports_starts_and_ends(esc10: Path, speech_commands: Path, tmp_path: Path) -> None:
    root = tmp_path / "esc"
    root.mkdir()
    for name in CLASSES:
        (root / name).symlink_to(esc10 / name, target_is_directory=True)
    data = tmp_path / "scenes"
    data.mkdir()
    training = compose_scenes(root, SceneConfig(minutes=2.0, folds=(1, 2, 3), seed=5), speech_commands, count=2)
    held = compose_scenes(root, SceneConfig(minutes=2.0, folds=(4,), seed=6), speech_commands, held_out=True)[0]
    for name, scene in [(f"train-{i}", s) for i, s in enumerate(training)] + [("validation-0", held)]:
        write_wav(data / f"{name}.wav", scene.audio)
        write_labels(data / f"{name}.txt", scene.events)

    out = tmp_path / "events.tflite"
    config = dataclasses.replace(
        TrainConfig(), data=(str(data),), labels=(*CLASSES, UNKNOWN, SILENCE), epochs=8, per_class=300,
        batch_size=50, learning_rate=3e-3, tune=None, feature_variants=2, architecture="tc-resnet8",
        hard_negative_share=0.0,
    )
    train(config, out)
    spec = modelfile.read_spec(out)
    assert spec.decision.lasting == ("rain",)  # rain clips are one 5 s event each; barks are short
    summary = spec.training["data_summary"]
    assert summary["train"]["dog"] > 0 and summary["validation"]["rain"] > 0 and summary["validation"]["speakers"] == 1

    spotter = Spotter(Classifier.load(out), record=True)
    lines, trace = evaluation.run_stream(spotter, held.audio)
    starts = [d for d in lines if d.label == "rain" and d.event == EVENT_START]
    ends = [d for d in lines if d.label == "rain" and d.event == EVENT_END]
    assert starts and len(starts) == len(ends) and all(d.event == "" for d in lines if d.label == "dog")
    assert all(e.start == s.start and e.end is not None and e.end > e.start for s, e in zip(starts, ends))
    truth = held.events
    rains = [e for e in truth if e.label == "rain"]
    # most rain events are found, each start line inside the event it reports
    found = sum(any(r.start - 1.0 <= s.start / RATE <= r.end for s in starts) for r in rains)
    assert found >= len(rains) / 2, (found, len(rains))
    sed = evaluation.sed_metrics({"held": (truth, evaluation.extents(trace, spec.labels, spotter.decision))}, spec.labels)
    assert sed is not None and sed["segment_based"]["f1"] >= 0.5, sed
    assert np.isfinite(sed["event_based"]["error_rate"])
