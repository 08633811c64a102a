"""Command line of the trainer: `spotter train ...` or `python -m train ...`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .options import ARCHITECTURE_NAMES, DEFAULT_LABELS, TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--data", default=defaults.data, help="clip folder in Speech Commands layout")
    parser.add_argument("--output", "-o", type=Path, default=Path("models/kws.tflite"), help="model file to write")
    parser.add_argument("--labels", default=",".join(DEFAULT_LABELS), help="comma-separated labels, with _unknown_ and _silence_")
    parser.add_argument("--architecture", "--arch", choices=ARCHITECTURE_NAMES, default=defaults.architecture)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--per-class", type=int, default=defaults.per_class, help="examples of each label per epoch")
    parser.add_argument("--unknown-weight", type=float, default=defaults.unknown_weight,
                        help="other words per epoch as a multiple of --per-class")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--quantize", choices=("int8", "float32"), default=defaults.quantize)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-per-word", type=int, default=None, help="use at most this many clips a word (quick runs)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cap the steps of each epoch (quick runs)")


def run(args: argparse.Namespace) -> int:
    try:
        from .fit import train
    except ImportError as exc:
        print(f"spotter train: {exc.name or exc} is missing: pip install 'spotter[train]'", file=sys.stderr)
        return 2

    config = dataclasses.replace(
        TrainConfig(),
        data=args.data,
        labels=tuple(label.strip() for label in args.labels.split(",") if label.strip()),
        architecture=args.architecture,
        epochs=args.epochs,
        per_class=args.per_class,
        unknown_weight=args.unknown_weight,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        quantize=args.quantize,
        seed=args.seed,
        max_per_word=args.max_per_word,
        steps_per_epoch=args.steps_per_epoch,
    )
    try:
        train(config, args.output)
    except (FileNotFoundError, ValueError) as exc:
        print(f"spotter train: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description="Train a keyword model from a clip folder.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
