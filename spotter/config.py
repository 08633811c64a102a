"""Typed, frozen configuration: what a model file carries so the runtime never needs training flags again."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

SPEC_VERSION = 4
"""Newest version of the JSON spec this spotter reads. Older versions keep loading; newer ones are refused.
Version 2 added `outputs` (a version-1 reader would take logits for posteriors); version 3 added PCEN
`compression` (a version-2 reader would ignore the key and feed log-mel frames to a PCEN network); version 4 added
`decision.lasting` (a version-3 reader would report a chainsaw as a line a second instead of a start and an end)."""

LOG_SPEC_VERSION = 2
"""Version written for log-mel models: they mean the same to version-2 readers, so those keep running them."""

PCEN_SPEC_VERSION = 3
"""Version written for PCEN models, so older readers refuse them instead of silently computing log-mel."""

LASTING_SPEC_VERSION = 4
"""Version written for models with lasting labels, so older readers refuse them instead of misreporting them."""

COMPRESSIONS = ("log", "pcen")
"""How mel energies become features: natural log (logfbank), or per-channel energy normalisation."""

PAPER_PCEN_SMOOTHING = 0.025
PAPER_STEP_MS = 10.0
PAPER_PCEN_SMOOTH_MS = -PAPER_STEP_MS / math.log1p(-PAPER_PCEN_SMOOTHING)
"""About 395 ms: the time constant giving Wang et al.'s smoothing coefficient s = 0.025 at their 10 ms step."""

OUTPUT_KINDS = ("probabilities", "logits")
"""What the network's output tensor holds; `logits` means the runtime applies the softmax."""

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_LABELS = frozenset({SILENCE, UNKNOWN})
"""Labels that describe 'no keyword'; the decision logic never fires for them."""


TARGET_FALSE_ALARMS_PER_HOUR = 0.5
"""The operating point thresholds are set for: about one false alarm in a waking day of a home assistant."""


@dataclass(frozen=True)
class Range:
    """Where a number may lie: the one rule a command-line flag (`spotter.cli.options`) and a model file's spec
    (`check_fields`) are both held to, worded the same for both."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def words(self) -> str:
        """'more than 0', 'between 1 and 256', 'at least 0 and less than 1'; empty for no bound at all."""
        if math.isfinite(self.low) and math.isfinite(self.high) and not (self.low_open or self.high_open):
            return f"between {self.low:g} and {self.high:g}"
        low = f"{'more than' if self.low_open else 'at least'} {self.low:g}" if math.isfinite(self.low) else ""
        high = f"{'less than' if self.high_open else 'at most'} {self.high:g}" if math.isfinite(self.high) else ""
        return " and ".join(part for part in (low, high) if part)


ANY_NUMBER = Range()
POSITIVE = Range(0.0, low_open=True)
NON_NEGATIVE = Range(0.0)
SHARE = Range(0.0, 1.0)
MINIMUMS = {"positive": POSITIVE, "non-negative": NON_NEGATIVE, "share": SHARE}
"""The ranges `documented(..., minimum=...)` names."""

SWITCHED_OFF_THRESHOLD = 1.01
"""A threshold above any posterior (`spotter.evaluation.SWITCHED_OFF`): `eval run --write-thresholds` writes it
for a keyword that never reaches its false-alarm share, so files carry it."""
THRESHOLDS = Range(0.0, SWITCHED_OFF_THRESHOLD)
SAMPLE_RATES = Range(8000, 192000)
MIC_BLOCK_MS = 200.0
"""Audio per callback (`spotter listen` uses the hop where it is longer). What the microphone path costs beyond the
engine is paid per callback, not per sample: PortAudio and PulseAudio (with a callback that does nothing, through
the PulseAudio virtual microphone: about 4 ms per second of audio at 50 ms blocks, 2 at 100, 0.5 at 200) and
waking the worker, whose caches are cold again each time (the same pushes cost twice the CPU with a sleep between
them). `spotter listen` then costs 6.8 ms per second of audio at 200 ms blocks against 12.4 at 100 (a file: 4.6);
the price is 50 ms more latency on average (README: Benchmarks); `spotter listen --block-ms` chooses."""
MIC_BLOCK_RANGE_MS = Range(10.0, 1000.0)
MAX_N_FFT = 4096
"""85 ms at 48 kHz. The window must fit in the FFT, and the exact noise floor (`LogMel._noise_energies`) holds
about 24 x window x n_fft bytes at once: 0.4 GB here, where 65536 points would take 100 GB."""
MAX_MELS = 256
MAX_FRAME_MS = 1000.0
"""Longest window or step: a second, far beyond any speech front end, still cheap to frame."""
MAX_WINDOW_FRAMES = 1000
INT16_FULL_SCALE = 32768.0
"""A noise floor louder than full scale is no floor."""
MAX_DECISION_MS = 60_000.0
"""Longest hop or smoothing: a minute. Smoothing keeps every hop's scores in that span and averages them each hop."""
SHOWN_CHARS = 40
"""How much of an offending value an error message quotes, so it stays one short line."""


def documented(default: Any, help: str, *, minimum: str | None = None, allowed: Range | None = None,
               **flag: Any) -> Any:
    """A config field that is also a command-line flag: the flag's name, type, default, choices and help are derived
    from the field (`spotter.cli.options.add_config_flags`), so a setting is described once, here. A number's
    range is `allowed`, or `minimum` ("positive", "non-negative" or "share", which is 0 to 1); the flag and a
    model file's spec are both checked against it. `flag` may set `name` (when the flag is not the field's name),
    `aliases`, `choices` and `metavar`."""
    limits = allowed or (MINIMUMS[minimum] if minimum else ANY_NUMBER)
    return field(default=default, metadata={"help": help, "allowed": limits, **flag})


def bounded(default: Any, allowed: Range) -> Any:
    """A numeric config field that is no flag, with the range a model file's value must lie in."""
    return field(default=default, metadata={"allowed": allowed})


def integer(value: Any) -> bool:
    """An int, not a bool (True is no window size) and not a float, even a whole one (98.0 is no frame count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def finite(value: Any) -> bool:
    """A real number other than NaN and the infinities, and not a bool; an int too large for a float is not finite
    either (it would overflow the arithmetic it meets)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: Any) -> str:
    """An offending value as an error message quotes it: its repr, cut short."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit limit on conversion to text
        text = f"an {type(value).__name__} too long to print"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(config: Any, prefix: str) -> None:
    """Refuse a dataclass whose fields break their declared types, `allowed` ranges or `choices`, with one line
    naming the first such field: model files are untrusted, and every value they carry passes through here."""
    hints = _hints(type(config))
    for item in dataclasses.fields(config):
        _check(prefix + item.name, getattr(config, item.name), hints[item.name], item.metadata)


def _check(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> None:
    """Refuse `value` unless it has type `hint` (the field's annotation, so the rule is written once) and lies in
    the metadata's range and choices; list items and object values are checked one by one, so the message names
    the offending one (`decision.thresholds['yes']`)."""
    nullable = typing.get_origin(hint) in (typing.Union, types.UnionType)
    if nullable:
        if value is None:
            return
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    origin = typing.get_origin(hint) or hint
    allowed: Range = meta.get("allowed", ANY_NUMBER)
    choices = meta.get("choices")
    if origin is dict:
        fits, wanted = isinstance(value, dict), "an object"
    elif origin is tuple:
        fits, wanted = isinstance(value, tuple), "a list"
    elif hint is int:
        fits, wanted = integer(value) and value in allowed, f"an integer {allowed.words()}"
    elif hint is float:
        fits, wanted = finite(value) and value in allowed, f"a finite number {allowed.words()}"
    elif hint is str:
        fits = isinstance(value, str) and (not choices or value in choices)
        wanted = f"one of {', '.join(choices)}" if choices else "a string"
    elif dataclasses.is_dataclass(hint):
        fits, wanted = isinstance(value, hint), "an object"
    else:
        fits, wanted = True, ""
    if not fits:
        raise ValueError(f"{name} must be {'null or ' if nullable else ''}{wanted.strip()}, got {shown(value)}")
    inner = typing.get_args(hint)
    if origin is dict and inner[1] is not Any:
        for key, item in value.items():
            _check(f"{name}[{shown(key)}]", item, inner[1], meta)
    elif origin is tuple:
        for index, item in enumerate(value):
            _check(f"{name}[{index}]", item, inner[0], meta)


def ms_to_samples(ms: float, sample_rate: int) -> int:
    """Every time setting is written in milliseconds and counted in samples, rounded half up."""
    return int(ms * sample_rate / 1000.0 + 0.5)


@dataclass(frozen=True)
class FeatureConfig:
    """Mel front end (log or PCEN); the defaults reproduce python_speech_features.logfbank with 40 filters."""

    sample_rate: int = bounded(16000, SAMPLE_RATES)
    window_ms: float = bounded(25.0, Range(0.0, MAX_FRAME_MS, low_open=True))
    step_ms: float = bounded(10.0, Range(0.0, MAX_FRAME_MS, low_open=True))
    n_fft: int = bounded(512, Range(1, MAX_N_FFT))
    """At least the window's samples (checked in `__post_init__`): a shorter FFT would drop the window's end."""
    n_mels: int = bounded(40, Range(1, MAX_MELS))
    preemphasis: float = bounded(0.97, Range(0.0, 1.0, high_open=True))
    low_hz: float = bounded(0.0, NON_NEGATIVE)
    high_hz: float | None = bounded(None, POSITIVE)
    """None: half the sample rate, the most it may be."""
    noise_floor: float = documented(
        0.0, "add the expected energies of white noise of this RMS (int16 units) to every frame, in training and at "
        "run time: digital silence then looks like a quiet microphone instead of log(eps) (0: logfbank exactly)",
        allowed=Range(0.0, INT16_FULL_SCALE), metavar="RMS")
    compression: str = documented(
        "log", "front end: log-mel (logfbank), or per-channel energy normalisation (PCEN) of the mel energies; PCEN "
        "divides by each band's recent energy, so give it a --noise-floor where input may hold digital silence",
        choices=COMPRESSIONS)
    """`pcen`: P = (E / (eps + M)**alpha + delta)**root - delta**root, with M the energy E smoothed over time per
    band, so a constant gain divides out once M settles (Wang et al., ICASSP 2017). The PCEN ranges are where it is
    defined and compresses (root > 1 would expand; eps > 0 keeps the division finite)."""
    pcen_smooth_ms: float = bounded(PAPER_PCEN_SMOOTH_MS, POSITIVE)
    """Time constant T of the smoother M[t] = (1 - s) M[t-1] + s E[t], with s = 1 - exp(-step_ms / T): the exact
    discrete first-order low-pass, so s stays in (0, 1) for any T > 0 and means the same time at any step."""
    pcen_alpha: float = bounded(0.98, SHARE)
    pcen_delta: float = bounded(2.0, NON_NEGATIVE)
    pcen_root: float = bounded(0.5, Range(0.0, 1.0, low_open=True))
    pcen_eps: float = bounded(1e-6, POSITIVE)

    def __post_init__(self) -> None:
        """Refuse what a model file must not carry, with one line naming the field (files are untrusted)."""
        check_fields(self, "features.")
        for name in ("window_ms", "step_ms"):
            if ms_to_samples(getattr(self, name), self.sample_rate) < 1:
                raise ValueError(f"features.{name} must span a sample at {self.sample_rate} Hz, got {getattr(self, name)!r}")
        if self.n_fft < self.window_samples:
            raise ValueError(f"features.n_fft must be at least the window's {self.window_samples} samples, got {self.n_fft}")
        if not self.n_mels < self.n_fft / 2:
            raise ValueError(f"features.n_mels must be less than n_fft / 2 ({self.n_fft / 2:g}), got {self.n_mels}")
        nyquist = self.sample_rate / 2
        if self.high_hz is not None and self.high_hz > nyquist:
            raise ValueError(f"features.high_hz must be at most half the sample rate ({nyquist:g}), got {self.high_hz!r}")
        top = nyquist if self.high_hz is None else self.high_hz
        if not self.low_hz < top:
            raise ValueError(f"features.low_hz must be below the top band edge ({top:g} Hz), got {self.low_hz!r}")

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

    hop_ms: float = documented(100.0, "run the model every this many ms",
                               allowed=Range(0.0, MAX_DECISION_MS, low_open=True))
    smoothing_ms: float = documented(300.0, "average posteriors over this many ms", allowed=Range(0.0, MAX_DECISION_MS))
    refractory_ms: float = documented(1000.0, "stay silent this long after a detection (0: none)", minimum="non-negative")
    thresholds: dict[str, float] = field(default_factory=dict, metadata={"allowed": THRESHOLDS})
    """Per label; the model file's labels only (checked by `ModelSpec`)."""
    default_threshold: float = bounded(0.7, THRESHOLDS)
    lasting: tuple[str, ...] = ()
    """Labels of sounds that last (rain, a chainsaw): reported with a start line and an end line carrying the
    event's bounds, instead of one line when they fire. Training sets it from the annotated events' lengths."""
    bridge_ms: float = documented(
        500.0, "a lasting event ends once its score stays below its threshold this long: shorter dips are bridged",
        minimum="non-negative")

    def __post_init__(self) -> None:
        """Refuse a setting a flag would refuse, and thresholds out of range, naming the field."""
        check_fields(self, "decision.")

    def threshold_for(self, label: str) -> float:
        return self.thresholds.get(label, self.default_threshold)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime needs, saved as JSON inside the .tflite file."""

    labels: tuple[str, ...]
    """Distinct, non-empty and printable: they name the network's outputs, and the live view and the start-up line
    print them."""
    features: FeatureConfig = FeatureConfig()
    window_frames: int = bounded(98, Range(1, MAX_WINDOW_FRAMES))
    decision: DecisionConfig = DecisionConfig()
    architecture: str = ""
    quantization: str = "float32"
    outputs: str = field(default="probabilities", metadata={"choices": OUTPUT_KINDS})
    """`logits` when the network stops before its softmax: an int8 softmax output has steps of 1/256 and piles
    every confident window onto the same top value, so the thresholds that decide false alarms lose their
    resolution; int8 logits keep it, and the softmax costs nothing in numpy."""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    version: int = bounded(LOG_SPEC_VERSION, Range(1, SPEC_VERSION))
    """The oldest spec version that reads this spec correctly, not always SPEC_VERSION: a PCEN model is raised to
    PCEN_SPEC_VERSION so older spotters refuse it, while log-mel models stay readable by them. Files keep the
    version they were read with (a version-1 file stays 1)."""

    def __post_init__(self) -> None:
        """Refuse a spec the runtime would misread or crash on, naming the field (files are untrusted)."""
        check_fields(self, "")
        if not self.labels:
            raise ValueError("model spec has no labels")
        for index, label in enumerate(self.labels):
            if not (label and label.isprintable()):
                raise ValueError(f"labels[{index}] must be a non-empty printable string, got {shown(label)}")
        if len(set(self.labels)) < len(self.labels):
            twice = next(label for index, label in enumerate(self.labels) if label in self.labels[:index])
            raise ValueError(f"labels must be distinct, got {shown(twice)} twice")
        lacking = [label for label in self.decision.thresholds if label not in self.labels]
        if lacking:
            raise ValueError(f"decision.thresholds must name the model's labels only, got {shown(lacking[0])}")
        odd = [label for label in self.decision.lasting if label not in self.keyword_labels]
        if odd:
            raise ValueError(f"decision.lasting must name the model's labels other than {UNKNOWN} and {SILENCE}, "
                             f"got {shown(odd[0])}")
        if self.features.compression != "log" and self.version < PCEN_SPEC_VERSION:
            object.__setattr__(self, "version", PCEN_SPEC_VERSION)
        if self.decision.lasting and self.version < LASTING_SPEC_VERSION:
            object.__setattr__(self, "version", LASTING_SPEC_VERSION)

    @property
    def window_samples(self) -> int:
        return self.features.samples_for(self.window_frames)

    @property
    def keyword_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if label not in BACKGROUND_LABELS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "ModelSpec":
        """Build a spec from parsed JSON, refusing versions from the future and, field by field, anything of the
        wrong type or out of range (see `check_fields`); unknown keys are ignored, so files from other versions
        load."""
        if not isinstance(data, dict):
            raise ValueError(f"model spec must be an object, got {shown(data)}")
        version = data.get("version", 1)
        if integer(version) and version > SPEC_VERSION:
            raise ValueError(
                f"model spec version {version} is newer than this spotter understands ({SPEC_VERSION}); upgrade spotter"
            )
        sections: dict[str, Any] = {}
        for name, kind in (("features", FeatureConfig), ("decision", DecisionConfig)):
            section = data.get(name, {})
            if not isinstance(section, dict):
                raise ValueError(f"{name} must be an object, got {shown(section)}")
            sections[name] = kind(**known_fields(kind, section))
        rest = {key: value for key, value in known_fields(cls, data).items() if key not in sections}
        if "labels" not in rest:
            raise ValueError("model spec has no labels")
        return cls(**sections, **rest)

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of dataclass `cls`, JSON lists made tuples where the field is one:
    files from other versions load."""
    hints = _hints(cls)
    out = {}
    for name in {f.name for f in dataclasses.fields(cls)} & data.keys():
        tuple_field = (typing.get_origin(hints[name]) or hints[name]) is tuple
        out[name] = tuple(data[name]) if tuple_field and isinstance(data[name], list) else data[name]
    return out
