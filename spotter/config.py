"""Typed, frozen configuration: what a model file carries so the runtime never needs training flags again."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

SPEC_VERSION = 3
"""Newest version of the JSON spec this spotter reads. Older versions keep loading; newer ones are refused.
Version 2 added `outputs` (a version-1 reader would take logits for posteriors); version 3 added PCEN
`compression` (a version-2 reader would ignore the key and feed log-mel frames to a PCEN network)."""

LOG_SPEC_VERSION = 2
"""Version written for log-mel models: they mean the same to version-2 readers, so those keep running them."""

PCEN_SPEC_VERSION = 3
"""Version written for PCEN models, so older readers refuse them instead of silently computing log-mel."""

COMPRESSIONS = ("log", "pcen")
"""How mel energies become features: natural log (logfbank), or per-channel energy normalisation."""

PAPER_PCEN_SMOOTHING = 0.025
PAPER_STEP_MS = 10.0
PAPER_PCEN_SMOOTH_MS = -PAPER_STEP_MS / math.log1p(-PAPER_PCEN_SMOOTHING)
"""About 395 ms: the time constant giving Wang et al.'s smoothing coefficient s = 0.025 at their 10 ms step."""

PCEN_LIMITS: dict[str, tuple[Callable[[float], bool], str]] = {
    "pcen_smooth_ms": (lambda v: v > 0, "> 0"),
    "pcen_alpha": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "pcen_delta": (lambda v: v >= 0, ">= 0"),
    "pcen_root": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "pcen_eps": (lambda v: v > 0, "> 0"),
}
"""Ranges where PCEN is defined and compresses (root > 1 would expand; eps > 0 keeps the division finite)."""

OUTPUT_KINDS = ("probabilities", "logits")
"""What the network's output tensor holds; `logits` means the runtime applies the softmax."""

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_LABELS = frozenset({SILENCE, UNKNOWN})
"""Labels that describe 'no keyword'; the decision logic never fires for them."""


TARGET_FALSE_ALARMS_PER_HOUR = 0.5
"""The operating point thresholds are set for: about one false alarm in a waking day of a home assistant."""


def documented(default: Any, help: str, **flag: Any) -> Any:
    """A config field that is also a command-line flag: the flag's name, type, default, choices and help are derived
    from the field (`spotter.cli.options.add_config_flags`), so a setting is described once, here. `flag` may set
    `name` (when the flag is not the field's name), `aliases`, `choices`, `minimum` ("positive", "non-negative" or
    "share", which is 0 to 1)
    and `metavar`."""
    return field(default=default, metadata={"help": help, **flag})


def ms_to_samples(ms: float, sample_rate: int) -> int:
    """Every time setting is written in milliseconds and counted in samples, rounded half up."""
    return int(ms * sample_rate / 1000.0 + 0.5)


@dataclass(frozen=True)
class FeatureConfig:
    """Mel front end (log or PCEN); the defaults reproduce python_speech_features.logfbank with 40 filters."""

    sample_rate: int = 16000
    window_ms: float = 25.0
    step_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    preemphasis: float = 0.97
    low_hz: float = 0.0
    high_hz: float | None = None
    noise_floor: float = documented(
        0.0, "add the expected energies of white noise of this RMS (int16 units) to every frame, in training and at "
        "run time: digital silence then looks like a quiet microphone instead of log(eps) (0: logfbank exactly)",
        minimum="non-negative", metavar="RMS")
    compression: str = documented(
        "log", "front end: log-mel (logfbank), or per-channel energy normalisation (PCEN) of the mel energies; PCEN "
        "divides by each band's recent energy, so give it a --noise-floor where input may hold digital silence",
        choices=COMPRESSIONS)
    """`pcen`: P = (E / (eps + M)**alpha + delta)**root - delta**root, with M the energy E smoothed over time per
    band, so a constant gain divides out once M settles (Wang et al., ICASSP 2017)."""
    pcen_smooth_ms: float = PAPER_PCEN_SMOOTH_MS
    """Time constant T of the smoother M[t] = (1 - s) M[t-1] + s E[t], with s = 1 - exp(-step_ms / T): the exact
    discrete first-order low-pass, so s stays in (0, 1) for any T > 0 and means the same time at any step."""
    pcen_alpha: float = 0.98
    pcen_delta: float = 2.0
    pcen_root: float = 0.5
    pcen_eps: float = 1e-6

    def __post_init__(self) -> None:
        """Refuse what a model file must not carry, with one line naming the field (files are untrusted)."""
        if self.compression not in COMPRESSIONS:
            expected = ", ".join(COMPRESSIONS)
            raise ValueError(f"unknown features.compression {self.compression!r}; expected one of {expected}")
        for name, (allowed, wanted) in PCEN_LIMITS.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and allowed(value)):
                raise ValueError(f"features.{name} must be a finite number {wanted}, got {value!r}")

    @property
    def pcen_smoothing(self) -> float:
        """The per-frame smoothing coefficient s (0.025 with the defaults at a 10 ms step)."""
        return -math.expm1(-self.step_ms / self.pcen_smooth_ms)

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

    hop_ms: float = documented(100.0, "run the model every this many ms", minimum="positive")
    smoothing_ms: float = documented(300.0, "average posteriors over this many ms", minimum="non-negative")
    refractory_ms: float = documented(1000.0, "stay silent this long after a detection", minimum="positive")
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
    version: int = LOG_SPEC_VERSION
    """The oldest spec version that reads this spec correctly, not always SPEC_VERSION: a PCEN model is raised to
    PCEN_SPEC_VERSION so older spotters refuse it, while log-mel models stay readable by them. Files keep the
    version they were read with (a version-1 file stays 1)."""

    def __post_init__(self) -> None:
        if self.features.compression != "log" and self.version < PCEN_SPEC_VERSION:
            object.__setattr__(self, "version", PCEN_SPEC_VERSION)

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
