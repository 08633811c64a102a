"""Training end to end from a tiny annotated long recording, made here from real clips and real noise: the model
it writes must find its events in a fresh stream it never heard."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="training tests need the train extra")

from spotter import evaluation, modelfile  # noqa: E402
from spotter.config import SILENCE, UNKNOWN  # noqa: E402
from spotter.engine import Spotter  # noqa: E402
from spotter.labels import Event, write_labels  # noqa: E402
from spotter.model import Classifier  # noqa: E402
from spotter.train.audio import read_audio, spoken_part  # noqa: E402
from spotter.train.data import BACKGROUND_DIR  # noqa: E402
from spotter.train.fit import train  # noqa: E402
from spotter.train.options import TrainConfig, TuneSettings  # noqa: E402
from spotter.train.streams import mix_noise, noise_bed  # noqa: E402

from .conftest import write_wav  # noqa: E402

RATE = 16000
SNR_DB = 20.0
TARGET = "yes"
OTHERS = ("no", "up", "down", "left", "right", "stop", "go", "on", "off")


def _clips(root: Path, word: str, skip: int, count: int) -> list[np.ndarray]:
    paths = sorted((root / word).iterdir())[skip : skip + count]
    out = []
    for path in paths:
        clip = read_audio(path, RATE)
        start, end = spoken_part(clip, RATE)
        out.append(clip[start:end].astype(np.float64))
    return out


def _recording(targets: list[np.ndarray], others: list[np.ndarray], noise: np.ndarray, seed: int) -> tuple[np.ndarray, list[Event]]:
    """Targets and other words in random order with random gaps, over real background noise at about 20 dB SNR;
    only the targets are annotated, as a user marking their word in Audacity would."""
    rng = np.random.default_rng(seed)
    items = [(TARGET, c) for c in targets] + [("other", c) for c in others]
    order = rng.permutation(len(items))
    gaps = rng.uniform(0.6, 1.6, len(items) + 1)
    total = int((sum(c.size for _, c in items) / RATE + gaps.sum()) * RATE) + RATE
    audio = np.zeros(total)
    events, position = [], int(gaps[0] * RATE)
    for k, index in enumerate(order):
        label, clip = items[index]
        audio[position : position + clip.size] += clip
        if label == TARGET:
            events.append(Event(position / RATE, (position + clip.size) / RATE, TARGET))
        position += clip.size + int(gaps[k + 1] * RATE)
    return mix_noise(audio, [c for _, c in items], noise_bed([noise], total), SNR_DB), events


def test_train_from_annotated_recording_detects_in_a_fresh_stream(speech_commands: Path, tmp_path: Path) -> None:
    noise = read_audio(sorted((speech_commands / BACKGROUND_DIR).glob("*.wav"))[0], RATE).astype(np.float64)
    half = noise.size // 2
    data = tmp_path / "recordings"
    data.mkdir()
    audio, events = _recording(_clips(speech_commands, TARGET, 0, 80),
                               [c for w in OTHERS for c in _clips(speech_commands, w, 0, 16)], noise[:half], seed=1)
    write_wav(data / "session.wav", audio)
    write_labels(data / "session.txt", events)

    out = tmp_path / "yes.tflite"
    config = dataclasses.replace(
        TrainConfig(), data=(str(data),), labels=(TARGET, UNKNOWN, SILENCE), epochs=12, per_class=300,
        batch_size=50, learning_rate=3e-3, tune=TuneSettings(), feature_variants=2, architecture="tc-resnet8",
        hard_negative_share=0.0,
    )
    train(config, out)
    spec = modelfile.read_spec(out)
    assert spec.labels == (TARGET, UNKNOWN, SILENCE)
    assert spec.training["config"]["data"] == [str(data)] or spec.training["config"]["data"] == (str(data),)
    assert spec.training["data_summary"]["train"][TARGET] > 0 and spec.training["data_summary"]["validation"][TARGET] > 0

    # a fresh stream: other clips of the same word and of other words, other noise, another arrangement
    fresh, truth = _recording(_clips(speech_commands, TARGET, 80, 20),
                              [c for w in OTHERS for c in _clips(speech_commands, w, 16, 3)], noise[half:], seed=2)
    detections = Spotter(Classifier.load(out)).run(fresh)
    result = evaluation.score(detections, truth, spec.labels, fresh.size / RATE)
    overall = result["overall"]
    assert overall["events"] == 20
    assert overall["recall"] >= 0.6, result
    # 80 training examples from 80 speakers cannot tell every other word apart; most detections must be right
    assert overall["hits"] >= 2 * overall["false_alarms"], result
