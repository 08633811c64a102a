"""Typed, frozen configuration: what a model file carries so the runtime never needs training flags again."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = 2
"""Version of the JSON spec written into model files. Older versions keep loading; newer ones are refused.
Version 2 added `outputs` (a version-1 reader would take logits for posteriors)."""

OUTPUT_KINDS = ("probabilities", "logits")
"""What the network's output tensor holds; `logits` means the runtime applies the softmax."""

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_LABELS = frozenset({SILENCE, UNKNOWN})
"""Labels that describe 'no keyword'; the decision logic never fires for them."""


def ms_to_samples(ms: float, sample_rate: int) -> int:
    """Every time setting is written in milliseconds and counted in samples, rounded half up."""
    return int(ms * sample_rate / 1000.0 + 0.5)


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end; the defaults reproduce python_speech_features.logfbank with 40 filters."""

    sample_rate: int = 16000
    window_ms: float = 25.0
    step_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    preemphasis: float = 0.97
    low_hz: float = 0.0
    high_hz: float | None = None
    noise_floor: float = 0.0
    """RMS (int16 units) of white noise whose expected band energies are added before the log: a deterministic
    dither, so digital silence looks like a quiet microphone instead of log(eps). 0 reproduces logfbank exactly."""

    @property
    def window_samples(self) -> int:
        return ms_to_samples(self.window_ms, self.sample_rate)

    @property
    def step_samples(self) -> int:
        return ms_to_samples(self.step_ms, self.sample_rate)

    def frames_for(self, n_samples: int) -> int:
        """Number of complete frames in n_samples (no zero-padded final frame)."""
        if n_samples < self.window_samples:
            return 0
        return 1 + (n_samples - self.window_samples) // self.step_samples

    def samples_for(self, n_frames: int) -> int:
        """Samples spanned by n_frames complete frames."""
        return self.window_samples + (n_frames - 1) * self.step_samples if n_frames > 0 else 0


@dataclass(frozen=True)
class DecisionConfig:
    """How posteriors become events: all times in milliseconds."""

    hop_ms: float = 100.0
    smoothing_ms: float = 300.0
    refractory_ms: float = 1000.0
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.7

    def threshold_for(self, label: str) -> float:
        return self.thresholds.get(label, self.default_threshold)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime needs, saved as JSON inside the .tflite file."""

    labels: tuple[str, ...]
    features: FeatureConfig = FeatureConfig()
    window_frames: int = 98
    decision: DecisionConfig = DecisionConfig()
    architecture: str = ""
    quantization: str = "float32"
    outputs: str = "probabilities"
    """`logits` when the network stops before its softmax: an int8 softmax output has steps of 1/256 and piles
    every confident window onto the same top value, so the thresholds that decide false alarms lose their
    resolution; int8 logits keep it, and the softmax costs nothing in numpy."""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION

    @property
    def window_samples(self) -> int:
        return self.features.samples_for(self.window_frames)

    @property
    def keyword_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if label not in BACKGROUND_LABELS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Build a spec from JSON, refusing versions from the future and ignoring unknown keys."""
        version = int(data.get("version", 1))
        if version > SPEC_VERSION:
            raise ValueError(
                f"model spec version {version} is newer than this spotter understands ({SPEC_VERSION}); upgrade spotter"
            )
        feats = known_fields(FeatureConfig, data.get("features", {}))
        decision = known_fields(DecisionConfig, data.get("decision", {}))
        rest = known_fields(cls, data)
        rest.pop("features", None)
        rest.pop("decision", None)
        if "labels" not in rest or not rest["labels"]:
            raise ValueError("model spec has no labels")
        rest["labels"] = tuple(str(label) for label in rest["labels"])
        if rest.get("outputs", "probabilities") not in OUTPUT_KINDS:
            raise ValueError(f"model spec has unknown outputs {rest['outputs']!r}; expected one of {', '.join(OUTPUT_KINDS)}")
        return cls(features=FeatureConfig(**feats), decision=DecisionConfig(**decision), **rest)

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of dataclass `cls`: files from other versions load."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
