"""`spotter listen`: detect keywords live (microphone) or in a WAV file or stdin; JSON lines out."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MIC_BLOCK_MS, MIC_BLOCK_RANGE_MS
from .options import EXIT_BAD_INPUT, CommandError, add_decision, add_model, decision_from_args

HELP = "detect keywords live (microphone) or in a WAV file or stdin; JSON lines out"
SILENT_DB = -120.0
"""Level shown for an empty chunk."""


ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""A service manager's stop, and a closed terminal: both end the stream like Ctrl-C, summary included."""


class Stop(KeyboardInterrupt):
    """Raised from the SIGTERM and SIGHUP handler so a stream ends the same way as with Ctrl-C (and exits 0 anywhere)."""


def _on_ending_signal(signum: int, frame: Any) -> None:
    raise Stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser)
    parser.add_argument("--input", "-i", help="WAV file, or - for raw s16le mono PCM on stdin; default: microphone")
    parser.add_argument("--rate", type=_stdin_rate, default=16000,
                        help="sample rate of raw PCM on stdin (default 16000)")
    parser.add_argument("--device", "-d", help="input device: index or part of its name (see: spotter devices)")
    parser.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=False,
                        help="when the microphone stops delivering (unplugged, sound server gone), reopen it with "
                             "backoff and go on, instead of exiting with status 2")
    parser.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=False,
                        help="pace a file like a microphone")
    parser.add_argument("--block-ms", type=_block_ms, default=MIC_BLOCK_MS,
                        help="microphone: audio per callback, at least the hop; smaller answers sooner and costs "
                             f"more CPU (default {MIC_BLOCK_MS:g})")
    add_decision(parser)
    parser.add_argument("--quiet", "-q", action=argparse.BooleanOptionalAction, default=False,
                        help="no live view on stderr")


def _stdin_rate(text: str) -> int:
    """--rate, checked while parsing (before the model loads) against the range every source accepts."""
    from ..sources import rate_problem

    try:
        rate = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    problem = rate_problem(rate)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return rate


def _block_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if value not in MIC_BLOCK_RANGE_MS:
        raise argparse.ArgumentTypeError(f"must be {MIC_BLOCK_RANGE_MS.words()} ms")
    return value


def _notify(message: str) -> None:
    print(f"spotter: {message}", file=sys.stderr, flush=True)


def _level_db(chunk: np.ndarray) -> float:
    if chunk.size == 0:
        return SILENT_DB
    rms = math.sqrt(float(np.mean(np.square(chunk, dtype=np.float64))))
    return 20.0 * math.log10(max(rms, 1e-6) / 32768.0)


def run(args: argparse.Namespace) -> int:
    from .. import models, sources
    from ..engine import Spotter
    from ..model import Classifier
    from ..output import JsonLines, LiveView, summary_line

    if args.reconnect and args.input:
        raise CommandError("--reconnect is for the microphone; it does not apply to --input")
    model_path = models.resolve(args.model)
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
        # blocks of at least a hop: each callback costs CPU however little audio it brings (config.MIC_BLOCK_MS)
        block_ms = max(spotter.decision.hop_ms, args.block_ms)
        source = sources.Microphone(args.device, rate, block_ms=block_ms, reconnect=args.reconnect, notify=_notify)
    for ending in ENDING_SIGNALS:  # before the banner: once it shows, these end the stream cleanly
        signal.signal(ending, _on_ending_signal)
    lasting = spotter.decision.lasting
    keywords = ", ".join(spec.keyword_labels) + (f"; with a start and an end: {', '.join(lasting)}" if lasting else "")
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
        for ending in ENDING_SIGNALS:
            signal.signal(ending, signal.SIG_DFL)
        if live:
            live.__exit__(None, None, None)
        if isinstance(source, sources.Microphone):
            source.stop()
    for detection in spotter.finish():  # lasting events still sounding when the input ended
        writer.write(detection)
    seconds = spotter.samples_seen / rate
    print(summary_line(seconds, writer.count, source.dropped_blocks, time.process_time() - cpu_start), file=sys.stderr)
    if getattr(source, "odd_byte", False):
        print("spotter: warning: input ended with an odd byte (half a sample), ignored", file=sys.stderr)
    if error:
        print(f"spotter: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
