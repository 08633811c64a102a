"""spotter's command line: listen, devices, info, train (with the training extra)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .config import DecisionConfig
from .modelfile import ModelFileError

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a writer killed by SIGPIPE; `spotter listen | head -1` ends with it, silently."""


def default_model_path() -> Path:
    """The model shipped inside the package (models/ in the repository)."""
    return shipped_model("kws")


def shipped_model(name: str) -> Path:
    return Path(str(resources.files("spotter.models").joinpath(f"{name}.tflite")))


def resolve_model(value: str | None) -> Path:
    """A model path, or the name of a shipped model (`kws`, `computer`); none: the default keyword model."""
    if not value:
        return default_model_path()
    path = Path(value)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1 and shipped_model(value).is_file():
        return shipped_model(value)
    return path


class Stop(KeyboardInterrupt):
    """Raised from the SIGTERM handler so a stream ends the same way as with Ctrl-C (and exits 0 anywhere)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stop()


def _parse_thresholds(values: list[str], labels: tuple[str, ...]) -> tuple[dict[str, float], float | None]:
    per_label: dict[str, float] = {}
    overall = None
    for value in values:
        label, _, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            raise ValueError(f"--threshold {value!r}: expected VALUE or LABEL=VALUE with a number") from None
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"--threshold {value!r}: the value must lie between 0 and 1")
        if label:
            if label not in labels:
                raise ValueError(f"--threshold {value!r}: the model has no label {label!r} (labels: {', '.join(labels)})")
            per_label[label] = threshold
        else:
            overall = threshold
    return per_label, overall


def decision_from_args(base: DecisionConfig, args: argparse.Namespace, labels: tuple[str, ...]) -> DecisionConfig:
    """The model's own decision settings with the command line's overrides on top."""
    per_label, overall = _parse_thresholds(args.threshold or [], labels)
    thresholds = dict(base.thresholds)
    default = base.default_threshold
    if overall is not None:
        thresholds = {}
        default = overall
    thresholds.update(per_label)
    changes: dict[str, Any] = {"thresholds": thresholds, "default_threshold": default}
    for name in ("hop_ms", "smoothing_ms", "refractory_ms"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0 and name != "smoothing_ms":
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
            changes[name] = value
    return dataclasses.replace(base, **changes)


def _level_db(chunk: np.ndarray) -> float:
    if chunk.size == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(np.square(chunk, dtype=np.float64))))
    return 20.0 * math.log10(max(rms, 1e-6) / 32768.0)


def cmd_listen(args: argparse.Namespace) -> int:
    from . import sources
    from .engine import Spotter
    from .model import Classifier
    from .output import JsonLines, LiveView, summary_line

    model_path = resolve_model(args.model)
    classifier = Classifier.load(model_path)
    spec = classifier.spec
    spotter = Spotter(classifier, decision_from_args(spec.decision, args, spec.labels))
    rate = spec.features.sample_rate
    source: Any
    if args.input == "-":
        source = sources.RawStdin(args.rate, rate)
    elif args.input:
        source = sources.WavFile(Path(args.input), rate, realtime=args.realtime)
    else:
        source = sources.Microphone(args.device, rate)
    signal.signal(signal.SIGTERM, _on_sigterm)  # before the banner: once it shows, SIGTERM ends cleanly
    keywords = ", ".join(spec.keyword_labels)
    print(
        f"spotter: model {model_path.name} ({spec.architecture}, {spec.quantization}; {keywords}), "
        f"input {source.description}, {rate} Hz, hop {spotter.decision.hop_ms:g} ms",
        file=sys.stderr, flush=True,
    )
    writer = JsonLines()
    live = LiveView(spec.labels) if (sys.stderr.isatty() and not args.quiet) else None
    cpu_start = time.process_time()
    error: str | None = None
    try:
        if live:
            live.__enter__()
        for chunk in source:
            detections = spotter.push(chunk)
            for detection in detections:
                writer.write(detection)
            if live:
                live.update(_level_db(chunk), spotter.trigger.smoothed, detections, time.monotonic())
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through Stop
        pass
    except sources.AudioError as exc:
        error = str(exc)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if live:
            live.__exit__(None, None, None)
        if isinstance(source, sources.Microphone):
            source.stop()
    seconds = spotter.samples_seen / rate
    print(summary_line(seconds, writer.count, source.dropped_blocks, time.process_time() - cpu_start), file=sys.stderr)
    if getattr(source, "odd_byte", False):
        print("spotter: warning: input ended with an odd byte (half a sample), ignored", file=sys.stderr)
    if error:
        print(f"spotter: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from . import sources

    sd = sources.import_sounddevice()
    try:
        default = sd.default.device[0]
    except Exception:
        default = None
    for index, device in sources.input_devices(sd):
        mark = "*" if index == default else " "
        print(f"{mark} {index:3d}  {device['name']}  ({device['max_input_channels']} ch, {device['default_samplerate']:.0f} Hz)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from . import modelfile

    spec = modelfile.read_spec(resolve_model(args.model))
    data = spec.to_dict()
    if not args.full:
        data["training"] = {k: v for k, v in data["training"].items() if k not in ("config", "data_summary")}
    print(json.dumps(data, indent=1))
    return 0


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="model file (.tflite with spotter metadata) or a shipped model's name (kws, computer, jarvis); "
                        "default: kws")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotter", description="Offline streaming keyword spotter.")
    sub = parser.add_subparsers(dest="command", required=True)

    listen = sub.add_parser("listen", help="detect keywords live (microphone) or in a WAV file or stdin; JSON lines out")
    _add_model(listen)
    listen.add_argument("--input", "-i", help="WAV file, or - for raw s16le mono PCM on stdin; default: microphone")
    listen.add_argument("--rate", type=int, default=16000, help="sample rate of raw PCM on stdin (default 16000)")
    listen.add_argument("--device", "-d", help="input device: index or part of its name (see: spotter devices)")
    listen.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=False,
                        help="pace a file like a microphone")
    listen.add_argument("--threshold", "-t", action="append", metavar="[LABEL=]VALUE",
                        help="override thresholds: VALUE for all labels, LABEL=VALUE for one (repeatable)")
    listen.add_argument("--hop-ms", type=float, help="run the model every this many ms (default: from the model)")
    listen.add_argument("--smoothing-ms", type=float, help="average posteriors over this many ms")
    listen.add_argument("--refractory-ms", type=float, help="stay silent this long after a detection")
    listen.add_argument("--quiet", "-q", action=argparse.BooleanOptionalAction, default=False,
                        help="no live view on stderr")
    listen.set_defaults(func=cmd_listen)

    devices = sub.add_parser("devices", help="list audio input devices")
    devices.set_defaults(func=cmd_devices)

    info = sub.add_parser("info", help="print a model file's metadata")
    _add_model(info)
    info.add_argument("--full", action=argparse.BooleanOptionalAction, default=False, help="include training config and data")
    info.set_defaults(func=cmd_info)

    from .train import cli as train_cli  # light: TensorFlow is imported only when training starts
    from .train import evaluate as eval_cli

    evaluate = sub.add_parser("eval", help="streaming evaluation: build streams, score models, DET curves")
    eval_cli.add_arguments(evaluate)

    train = sub.add_parser("train", help="train a model (needs the training extra: pip install 'spotter[train]')")
    train_cli.add_arguments(train)
    train.set_defaults(func=train_cli.run)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    from .sources import AudioError

    try:
        return int(args.func(args))
    except (ModelFileError, AudioError, ValueError, FileNotFoundError) as exc:
        print(f"spotter: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader went away (`| head -1`): stop quietly, without Python's flush error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
