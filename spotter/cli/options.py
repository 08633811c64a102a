"""Options more than one subcommand takes, and flags derived from the config dataclasses.

A config field declared with `config.documented` carries its help, choices and limits; `add_config_flags` turns
it into a flag (name, type and default from the field) and `config_from_args` copies the parsed values back, so no
setting is restated by hand between the config and the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import typing
from typing import Any, Callable, Iterable, TypeVar

from ..config import THRESHOLDS, DecisionConfig, Range, finite

EXIT_BAD_INPUT = 2
DECISION_FLAGS = ("hop_ms", "smoothing_ms", "refractory_ms", "bridge_ms")
"""The decision settings every command that runs a model may override."""

Config = TypeVar("Config")


class CommandError(Exception):
    """A failure a command reports as one line on stderr with a non-zero exit (`spotter: <message>`)."""


def training_module(name: str, command: str) -> Any:
    """`spotter.train.<name>`, or one line saying which extra to install when the runtime install lacks what it
    imports (soundfile to decode clip folders, TensorFlow to train)."""
    try:
        return importlib.import_module(f"spotter.train.{name}")
    except ImportError as exc:
        raise CommandError(f"{command} needs {exc.name or exc}, which the runtime install leaves out: "
                           "pip install 'spotter[train]'") from None


def _number(kind: type, allowed: Range) -> Callable[[str], Any]:
    """A converter that refuses non-finite numbers and those outside the field's range (the rule a model file's
    value meets too, `config.check_fields`), with the flag's name."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not finite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must be {allowed.words()}, got {text}")
        return value

    return convert


def _field(cls: type, path: str) -> tuple[dataclasses.Field, type]:  # type: ignore[type-arg]
    """The dataclass field at a dotted path (`augment.shift_ms`) and its resolved type."""
    head, _, rest = path.partition(".")
    hints = typing.get_type_hints(cls)
    if rest:
        return _field(hints[head], rest)
    return next(f for f in dataclasses.fields(cls) if f.name == head), hints[head]


def _value(config: Any, path: str) -> Any:
    for name in path.split("."):
        config = getattr(config, name)
    return config


def _dest(path: str) -> str:
    return path.replace(".", "__")


def add_config_flags(parser: argparse.ArgumentParser, defaults: Any, paths: Iterable[str], overrides: bool = False) -> None:
    """One flag per config field at each dotted path, defaulting to its value in `defaults`. With `overrides` the
    default is None: the flag changes a value the model file carries."""
    for path in paths:
        field, hint = _field(type(defaults), path)
        meta = dict(field.metadata)
        if "help" not in meta:
            raise TypeError(f"{type(defaults).__name__}.{path} is not declared with config.documented")
        names = [meta.get("name", "--" + path.rpartition(".")[2].replace("_", "-")), *meta.get("aliases", ())]
        default = None if overrides else _value(defaults, path)
        help_text = meta["help"] + (" (default: the model file's)" if overrides else f" (default: {default})")
        kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        kwargs: dict[str, Any] = {"dest": _dest(path), "default": default, "help": help_text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif "choices" in meta:
            kwargs["choices"] = meta["choices"]
        else:
            kwargs["type"] = _number(kind, meta["allowed"]) if kind in (int, float) else kind
            kwargs["metavar"] = meta.get("metavar", path.rpartition(".")[2].upper())
        parser.add_argument(*names, **kwargs)


def config_from_args(config: Config, args: argparse.Namespace, paths: Iterable[str]) -> Config:
    """`config` with every given flag's value (None: not given, as with override flags) put at its path."""
    for path in paths:
        value = getattr(args, _dest(path))
        if value is not None:
            config = _replace(config, path, value)
    return config


def _replace(config: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    return dataclasses.replace(config, **{head: _replace(getattr(config, head), rest, value) if rest else value})


def add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="model file (.tflite with spotter metadata) or a shipped model's name "
                        "(kws, computer, jarvis, events); default: kws")


def add_decision(parser: argparse.ArgumentParser, thresholds: bool = True) -> None:
    """Overrides of the decision settings a model file carries."""
    if thresholds:
        parser.add_argument("--threshold", "-t", action="append", metavar="[LABEL=]VALUE",
                            help="override thresholds: VALUE for all labels, LABEL=VALUE for one (repeatable)")
    add_config_flags(parser, DecisionConfig(), DECISION_FLAGS, overrides=True)


def _parse_thresholds(values: list[str], labels: tuple[str, ...]) -> tuple[dict[str, float], float | None]:
    per_label: dict[str, float] = {}
    overall = None
    for value in values:
        label, _, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            raise CommandError(f"--threshold {value!r}: expected VALUE or LABEL=VALUE with a number") from None
        if not (finite(threshold) and threshold in THRESHOLDS):
            raise CommandError(f"--threshold {value!r}: the value must be {THRESHOLDS.words()}")
        if label:
            if label not in labels:
                raise CommandError(f"--threshold {value!r}: the model has no label {label!r} (labels: {', '.join(labels)})")
            per_label[label] = threshold
        else:
            overall = threshold
    return per_label, overall


def decision_from_args(base: DecisionConfig, args: argparse.Namespace, labels: tuple[str, ...]) -> DecisionConfig:
    """The model's own decision settings with the command line's overrides on top (added by `add_decision`)."""
    decision = config_from_args(base, args, DECISION_FLAGS)
    per_label, overall = _parse_thresholds(getattr(args, "threshold", None) or [], labels)
    thresholds = {} if overall is not None else dict(decision.thresholds)
    thresholds.update(per_label)
    default = decision.default_threshold if overall is None else overall
    return dataclasses.replace(decision, thresholds=thresholds, default_threshold=default)
