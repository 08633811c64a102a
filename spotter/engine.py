"""Spotter: the one hardware-free path from int16 samples to detections.

Microphone, file, stdin, evaluation and tests all call `push`; the result does not depend on chunk sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .config import DecisionConfig, ModelSpec, ms_to_samples
from .decision import Detection, Trigger
from .features import LogMel
from .model import Classifier


@dataclass
class StageTimes:
    """CPU seconds (this thread) spent per stage, for `make bench`; immune to other processes on the machine."""

    features: float = 0.0
    model: float = 0.0
    decision: float = 0.0
    invocations: int = 0


REPLAY_BLOCK_MS = 100.0
"""Block size `Spotter.run` pushes: what a microphone delivers; results do not depend on it."""


class Spotter:
    """Ring of the last `window_frames` log-mel frames; every hop the classifier scores the window and the
    trigger decides."""

    def __init__(self, classifier: Classifier, decision: DecisionConfig | None = None, record: bool = False) -> None:
        self.classifier = classifier
        self.spec: ModelSpec = classifier.spec
        self.decision = decision or self.spec.decision
        features = self.spec.features
        self.frontend = LogMel(features)
        self.hop_frames = max(1, round(self.decision.hop_ms / features.step_ms))
        self.trigger = Trigger(self.spec.labels, self.decision, features.sample_rate, self.spec.window_samples,
                               self.hop_frames * features.step_samples)
        self.times = StageTimes()
        self.record = record
        """Keep (sample, smoothed scores) of every hop in `trace`, for threshold sweeps."""
        self.reset()

    def reset(self) -> None:
        """Back to the state of a fresh stream: zeroed ring, no history."""
        self._ring = np.zeros((self.spec.window_frames, self.spec.features.n_mels), dtype=np.float32)
        self._frames_seen = 0
        self.samples_seen = 0
        self.frontend.reset()
        self.trigger.reset()
        self.last_posteriors = np.zeros(len(self.spec.labels), dtype=np.float32)
        self.trace: list[tuple[int, np.ndarray]] = []

    def push(self, chunk: np.ndarray) -> list[Detection]:
        """Feed int16 samples (any count); return the detections that fire within them."""
        chunk = np.asarray(chunk).reshape(-1)
        self.samples_seen += chunk.size
        start = time.thread_time()
        frames = self.frontend.push(chunk)
        self.times.features += time.thread_time() - start
        detections = []
        window = self.spec.window_frames
        for frame in frames:
            self._ring[:-1] = self._ring[1:]
            self._ring[-1] = frame
            self._frames_seen += 1
            if self._frames_seen < window or (self._frames_seen - window) % self.hop_frames:
                continue
            start = time.thread_time()
            self.last_posteriors = self.classifier(self._ring)
            middle = time.thread_time()
            sample = self.spec.features.samples_for(self._frames_seen)
            detections += self.trigger.update(sample, self.last_posteriors)
            if self.record:
                self.trace.append((sample, self.trigger.smoothed.copy()))
            self.times.model += middle - start
            self.times.decision += time.thread_time() - middle
            self.times.invocations += 1
        return detections

    def finish(self) -> list[Detection]:
        """The end lines of lasting events still open when the input ends (or the listener stops)."""
        return self.trigger.finish(self.samples_seen)

    def run(self, audio: np.ndarray, block_ms: float = REPLAY_BLOCK_MS) -> list[Detection]:
        """A whole recording from a fresh state, pushed in microphone-sized blocks: the one replay helper that
        evaluation, the benchmarks and the tests share."""
        self.reset()
        audio = np.asarray(audio).reshape(-1)
        block = max(1, ms_to_samples(block_ms, self.spec.features.sample_rate))
        detections: list[Detection] = []
        for start in range(0, audio.size, block):
            detections += self.push(audio[start : start + block])
        return detections + self.finish()
