"""Command line of the trainer: `spotter train ...` or `python -m train ...`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from spotter.config import COMPRESSIONS, SILENCE, UNKNOWN

from .options import ARCHITECTURE_NAMES, DEFAULT_LABELS, TrainConfig, TuneSettings


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--data", action="append", metavar="FOLDER",
                        help="training material, repeatable: a clip folder with one subfolder per word (clips may be "
                        "longer recordings with the word somewhere inside), or a folder of long recordings each with "
                        f"an Audacity label file <name>.txt (default: {defaults.data[0]})")
    parser.add_argument("--negatives", action="append", metavar="FOLDER", default=[],
                        help="clip folder whose every word counts as other speech (_unknown_), repeatable")
    parser.add_argument("--output", "-o", type=Path, default=Path("models/kws.tflite"),
                        help="model file to write; its card (.md), report and curves go next to it")
    parser.add_argument("--labels", help="comma-separated words or events to spot (default: the Speech Commands "
                        "ten for the default data, else every word folder and label found in --data); _unknown_ "
                        "and _silence_ are added")
    parser.add_argument("--window-ms", type=float, default=defaults.window_ms, help="the model's input window")
    parser.add_argument("--architecture", "--arch", choices=ARCHITECTURE_NAMES, default=defaults.architecture)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--per-class", type=int, default=defaults.per_class, help="examples of each label per epoch")
    parser.add_argument("--unknown-weight", type=float, default=defaults.unknown_weight,
                        help="other words per epoch as a multiple of --per-class")
    parser.add_argument("--hard-negatives", type=float, default=defaults.hard_negative_share, metavar="SHARE",
                        help="share of other words per epoch drawn from the ones the model confuses most, re-mined "
                        f"every {defaults.mine_every} epochs (0: off)")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing,
                        help="softened targets; 0 keeps the ranking among confident windows that strict thresholds need")
    parser.add_argument("--shift-ms", type=float, default=defaults.augment.shift_ms,
                        help="random time shift of training words, up to this either way: a stream meets words at "
                        "every offset its hop allows")
    parser.add_argument("--keyword-inside", action=argparse.BooleanOptionalAction, default=defaults.augment.keyword_inside,
                        help="shift keywords anywhere up to --shift-ms as long as their loud part stays inside the window")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--quantize", choices=("int8", "float32"), default=defaults.quantize)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-per-word", type=int, default=None, help="use at most this many clips a word (quick runs)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cap the steps of each epoch (quick runs)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default=defaults.features.compression,
                        help="front end: log-mel, or per-channel energy normalisation (PCEN) of the mel energies")
    parser.add_argument("--noise-floor", type=non_negative, default=defaults.features.noise_floor, metavar="RMS",
                        help="add the expected energies of white noise of this RMS (int16 units) to every frame, in "
                        "training and at run time: digital silence then looks like a quiet microphone (0: logfbank)")
    parser.add_argument("--variants", type=positive_int, default=defaults.feature_variants,
                        help="speed-perturbed variants of every clip kept as mel energies; gain, shift, noise and "
                        "SpecAugment are drawn fresh on top of them for every example")
    parser.add_argument("--refresh-epochs", type=positive_int, default=defaults.refresh_epochs,
                        help="every clip's variants are redrawn once in this many epochs")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run from its last epoch (the <output>.run folder it made); "
                        "its stored settings are used and other options are ignored")
    parser.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                        help="set thresholds on held-back streams at 0.5 false alarms/h and measure them (else: "
                        "from held-back clips)")
    parser.add_argument("--tune-minutes", type=float, default=TuneSettings().keyword_minutes,
                        help="minutes of keyword stream per condition; the negatives-only stream is 6x as long")


def discover_labels(folders: list[str]) -> tuple[str, ...]:
    """Every word folder and Audacity label found in the data folders, in sorted order."""
    from spotter.evaluation import read_labels

    from .data import BACKGROUND_DIR, SILENCE_DIR
    from .recordings import find_recordings

    found: set[str] = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
        recordings = find_recordings(folder)
        if recordings:
            found.update(e.label for r in recordings for e in read_labels(r.labels_path))
        else:
            found.update(p.name for p in folder.iterdir() if p.is_dir() and p.name not in (BACKGROUND_DIR, SILENCE_DIR))
    return tuple(sorted(found - {UNKNOWN, SILENCE}))


def choose_labels(args: argparse.Namespace, data: tuple[str, ...]) -> tuple[str, ...]:
    if args.labels:
        words = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    elif data == TrainConfig().data:
        words = DEFAULT_LABELS
    else:
        words = discover_labels(list(data))
    return (*[w for w in words if w not in (UNKNOWN, SILENCE)], UNKNOWN, SILENCE)


def run(args: argparse.Namespace) -> int:
    try:
        from .fit import train
    except ImportError as exc:
        print(f"spotter train: {exc.name or exc} is missing: pip install 'spotter[train]'", file=sys.stderr)
        return 2

    if args.resume is not None:
        from .checkpoint import CheckpointError, load_config

        try:
            config, output = load_config(args.resume)
            train(config, output, resume=True)
        except (CheckpointError, FileNotFoundError, ValueError) as exc:
            print(f"spotter train: {exc}", file=sys.stderr)
            return 2
        return 0
    data = tuple(args.data) if args.data else TrainConfig().data
    try:
        labels = choose_labels(args, data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"spotter train: {exc}", file=sys.stderr)
        return 2
    tune = dataclasses.replace(TuneSettings(), keyword_minutes=args.tune_minutes, negative_minutes=6 * args.tune_minutes)
    config = dataclasses.replace(
        TrainConfig(),
        data=data,
        negatives=tuple(args.negatives),
        labels=labels,
        window_ms=args.window_ms,
        tune=tune if args.tune else None,
        architecture=args.architecture,
        epochs=args.epochs,
        per_class=args.per_class,
        unknown_weight=args.unknown_weight,
        hard_negative_share=args.hard_negatives,
        label_smoothing=args.label_smoothing,
        augment=dataclasses.replace(TrainConfig().augment, shift_ms=args.shift_ms, keyword_inside=args.keyword_inside),
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        quantize=args.quantize,
        seed=args.seed,
        max_per_word=args.max_per_word,
        steps_per_epoch=args.steps_per_epoch,
        features=dataclasses.replace(TrainConfig().features, compression=args.compression, noise_floor=args.noise_floor),
        feature_variants=args.variants,
        refresh_epochs=args.refresh_epochs,
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
