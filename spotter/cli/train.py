"""`spotter train`: a model from clip folders, unaligned takes or Audacity-annotated recordings (needs the
training extra). Every flag but the data, labels, output and run control is derived from `TrainConfig`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..config import BACKGROUND_LABELS, SILENCE, UNKNOWN
from ..train.options import DEFAULT_LABELS, TrainConfig, TuneSettings
from .options import CommandError, add_config_flags, config_from_args, training_module

HELP = "train a model (needs the training extra: pip install 'spotter[train]')"
CONFIG_FLAGS = (
    "window_ms", "architecture", "epochs", "per_class", "unknown_weight", "hard_negative_share", "label_smoothing",
    "augment.shift_ms", "augment.keyword_inside", "augment.context", "augment.partial_keywords",
    "augment.snr_db_min", "augment.snr_db_max", "batch_size", "learning_rate", "quantize", "seed", "max_per_word",
    "steps_per_epoch", "features.compression", "features.noise_floor", "feature_variants", "refresh_epochs", "event_stride_ms",
    "select_snr_db",
)
NEGATIVE_MINUTES_PER_KEYWORD_MINUTE = TuneSettings().negative_minutes / TuneSettings().keyword_minutes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--data", action="append", metavar="FOLDER",
                        help="training material, repeatable: a clip folder with one subfolder per word (clips may be "
                        "longer recordings with the word somewhere inside), or a folder of long recordings each with "
                        f"an Audacity label file <name>.txt (default: {defaults.data[0]})")
    parser.add_argument("--negatives", action="append", metavar="FOLDER", default=[],
                        help="negatives, repeatable: a clip folder whose every word counts as other speech "
                        "(_unknown_), and/or long recordings directly inside it whose every window does (running "
                        "speech, a room with no events); `python -m spotter.train.synth` writes such a folder of "
                        "synthesised phrases")
    parser.add_argument("--output", "-o", type=Path, default=Path("models/kws.tflite"),
                        help="model file to write; its card (.md), report and curves go next to it")
    parser.add_argument("--labels", help="comma-separated words or events to spot (default: the Speech Commands "
                        "ten for the default data, else every word folder and label found in --data); _unknown_ "
                        "and _silence_ are added")
    add_config_flags(parser, defaults, CONFIG_FLAGS)
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run from its last epoch (the <output>.run folder it made); "
                        "its stored settings are used and other options are ignored")
    parser.add_argument("--ensemble", nargs="+", type=Path, metavar="MODEL",
                        help="combine models trained by spotter train (each with its .keras beside it; same data, "
                        "labels, window and features) into one --output that averages their class scores; the first "
                        "model's settings decide the clips it is measured on; other options are ignored")
    parser.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                        help="set thresholds on held-back streams at 0.5 false alarms/h and measure them (else: "
                        "from held-back clips)")
    parser.add_argument("--tune-minutes", type=float, default=TuneSettings().keyword_minutes,
                        help="minutes of keyword stream per condition; the negatives-only stream is "
                        f"{NEGATIVE_MINUTES_PER_KEYWORD_MINUTE:g}x as long")


def discover_labels(folders: list[str]) -> tuple[str, ...]:
    """Every word folder and Audacity label found in the data folders, in sorted order."""
    from ..labels import read_labels
    from ..train.data import BACKGROUND_DIR, SILENCE_DIR
    from ..train.recordings import find_recordings

    found: set[str] = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
        recordings = find_recordings(folder)
        if recordings:
            found.update(e.label for r in recordings for e in read_labels(r.labels_path))
        else:
            found.update(p.name for p in folder.iterdir() if p.is_dir() and p.name not in (BACKGROUND_DIR, SILENCE_DIR))
    return tuple(sorted(found - BACKGROUND_LABELS))


def _same_folders(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return [Path(d).resolve() for d in a] == [Path(d).resolve() for d in b]


def choose_labels(args: argparse.Namespace, data: tuple[str, ...]) -> tuple[str, ...]:
    if args.labels:
        words = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    elif _same_folders(data, TrainConfig().data):  # also when named by another path: its ten, not all 35 words
        words = DEFAULT_LABELS
    else:
        words = discover_labels(list(data))
    return (*[w for w in words if w not in BACKGROUND_LABELS], UNKNOWN, SILENCE)


def config_of(args: argparse.Namespace) -> TrainConfig:
    """The training config the command line asks for."""
    data = tuple(args.data) if args.data else TrainConfig().data
    tune = TuneSettings(keyword_minutes=args.tune_minutes,
                        negative_minutes=NEGATIVE_MINUTES_PER_KEYWORD_MINUTE * args.tune_minutes)
    config = dataclasses.replace(TrainConfig(), data=data, negatives=tuple(args.negatives),
                                 labels=choose_labels(args, data), tune=tune if args.tune else None)
    config = config_from_args(config, args, CONFIG_FLAGS)
    if config.augment.snr_db_min > config.augment.snr_db_max:
        raise CommandError(f"--snr-min ({config.augment.snr_db_min:g} dB) is above --snr-max "
                           f"({config.augment.snr_db_max:g} dB)")
    return config


def run(args: argparse.Namespace) -> int:
    fit = training_module("fit", "train")
    try:
        if args.resume is not None:
            checkpoint = training_module("checkpoint", "train")
            try:
                config, output = checkpoint.load_config(args.resume)
            except checkpoint.CheckpointError as exc:
                raise CommandError(str(exc)) from None
            fit.train(config, output, resume=True)
        elif args.ensemble is not None:
            training_module("ensemble", "train").combine(args.ensemble, args.output)
        else:
            fit.train(config_of(args), args.output)
    except (CommandError, FileNotFoundError, ValueError) as exc:
        print(f"spotter train: {exc}", file=sys.stderr)
        return 2
    return 0
