"""Training settings, importable without TensorFlow so the command line starts fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from spotter.config import SILENCE, TARGET_FALSE_ALARMS_PER_HOUR, UNKNOWN, DecisionConfig, FeatureConfig, documented, known_fields

from .augment import AugmentConfig

ARCHITECTURE_NAMES = (
    "ds-cnn", "cnn-one-fstride4", "cnn-trad-fpool3", "ds-cnn-wide", "tc-resnet8", "tc-resnet8-1.5", "tc-resnet14",
    "bc-resnet-1", "bc-resnet-2",
)
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DEFAULT_LABELS = (*DEFAULT_WORDS, UNKNOWN, SILENCE)
SPLITS = ("train", "validation", "test")
QUANTIZATIONS = ("int8", "float32")


@dataclass(frozen=True)
class TuneSettings:
    """The streams that set and check the thresholds after fitting (see train/tune.py)."""

    keyword_minutes: float = 20.0
    negative_minutes: float = 120.0
    """Negatives-only stream (other words, silence): false alarms per hour need hours of audio to mean much."""
    noisy_snr_db: float = 10.0
    target_false_alarms_per_hour: float = TARGET_FALSE_ALARMS_PER_HOUR
    seed: int = 1


@dataclass(frozen=True)
class TrainConfig:
    """Every training choice; saved whole in the model file's metadata."""

    data: tuple[str, ...] = ("../shared/data/speech_commands",)
    """Clip folders (one subfolder per word; clips may be longer recordings with the word somewhere inside) or
    folders of long recordings with Audacity label files."""
    negatives: tuple[str, ...] = ()
    """Clip folders whose every word is `_unknown_` (other speech for false alarms), their noise used too."""
    labels: tuple[str, ...] = DEFAULT_LABELS
    architecture: str = documented("ds-cnn", "network (train/architectures.py)", choices=ARCHITECTURE_NAMES, aliases=("--arch",))
    epochs: int = documented(80, "passes of `per_class` examples per label", minimum="positive")
    per_class: int = documented(1200, "examples of each label per epoch", minimum="positive")
    unknown_weight: float = documented(
        1.0, "other words per epoch as a multiple of --per-class: more of them trades recall for fewer false alarms",
        minimum="non-negative")
    hard_negative_share: float = documented(
        0.25, "share of other words per epoch drawn from the training negatives the model currently scores highest "
        "for a keyword, re-mined every `mine_every` epochs (0: off)", name="--hard-negatives", metavar="SHARE",
        minimum="non-negative")
    hard_negative_pool: float = 0.05
    """The hardest this share of training negatives form the mined set."""
    mine_every: int = 4
    feature_variants: int = documented(
        4, "speed-perturbed, sub-frame-shifted variants of every clip kept as mel energies (train/sampler.py); gain, "
        "shift, noise and SpecAugment are drawn fresh on top of them for every example", name="--variants",
        minimum="positive")
    refresh_epochs: int = documented(
        16, "every clip's variants are redrawn once in this many epochs (a share of the clips each epoch)",
        minimum="positive")
    batch_size: int = documented(100, "examples per optimiser step", minimum="positive")
    learning_rate: float = documented(3e-3, "peak learning rate (warm-up, then cosine decay)", minimum="positive")
    warmup_epochs: int = 2
    label_smoothing: float = documented(
        0.1, "softened targets; 0 keeps the ranking among confident windows that strict thresholds need",
        minimum="non-negative")
    weight_decay: float = 1e-3
    validation_pct: float = 10.0
    test_pct: float = 10.0
    quantize: str = documented("int8", "weights and activations of the exported model", choices=QUANTIZATIONS)
    seed: int = documented(0, "seed of every random draw: the same seed and data give the same model")
    max_per_word: int | None = documented(None, "use at most this many clips a word (quick runs)", minimum="positive")
    steps_per_epoch: int | None = documented(None, "cap the steps of each epoch (quick runs)", minimum="positive")
    select_snr_db: float | None = documented(
        None, "judge each epoch on the validation clips both clean and under held-out noise this many dB below them "
        "(a one-word model gets every clean clip right within a few epochs; from then on only noise tells epochs "
        "apart)", name="--select-snr", metavar="DB")
    features: FeatureConfig = FeatureConfig()
    augment: AugmentConfig = AugmentConfig()
    decision: DecisionConfig = DecisionConfig()
    window_ms: float = documented(1000.0, "the model's input window", minimum="positive")
    event_stride_ms: float = documented(
        50.0, "annotated recordings: windows holding an event whole start this far apart (the time shift still "
        "moves each); wider strides fit more recordings in memory", minimum="positive")
    tune: TuneSettings | None = TuneSettings()
    """Thresholds set on held-back streams (None: from held-back clips only)."""

    def examples_of(self, label: str) -> int:
        """Examples of a label in each epoch."""
        return int(round(self.per_class * (self.unknown_weight if label == UNKNOWN else 1.0)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The config a model file's metadata stored (`to_dict`); keys this version does not know are ignored."""
        values = known_fields(cls, data)
        nested = {"features": FeatureConfig, "augment": AugmentConfig, "decision": DecisionConfig, "tune": TuneSettings}
        for name, kind in nested.items():
            if isinstance(values.get(name), dict):
                values[name] = kind(**known_fields(kind, values[name]))
        for name in ("data", "negatives", "labels"):
            if name in values:
                values[name] = tuple([values[name]] if isinstance(values[name], str) else values[name])
        return cls(**values)
