"""`spotter explain`: what drove a detection. For each detection (--detections) or moment (--at SECONDS), a PNG of
the log-mel window the engine scored, an occlusion map over it (the drop in the label's posterior when each
time-frequency patch is set to the recording's background level) and the score trace around it, plus the numbers
as JSON next to it. Needs only the .tflite and matplotlib; one JSON line per explanation on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from .options import CommandError, add_decision, add_model, decision_from_args

HELP = "draw what drove a detection: the window, an occlusion importance map and the score trace (PNG + JSON)"
DEFAULT_OUTPUT = "explain"
PATCH_MS = 100.0
PATCH_BANDS = 4
"""Default occlusion patch: 100 ms by 4 mel bands, 10 x 10 patches over a one-second window of 40 bands (one batch
of 100). Here, not in spotter.explain: building the parser must not import the engine."""
UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
"""Characters replaced in the file names made from an input's name and a label."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser)
    parser.add_argument("input", metavar="INPUT",
                        help="audio file: WAV (any rate and channels), or MP3/FLAC/OGG with the training extra")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--at", type=float, action="append", metavar="SECONDS",
                       help="explain the window ending nearest this time (repeatable)")
    which.add_argument("--detections", action="store_true", help="explain every detection the model makes")
    parser.add_argument("--label", help="with --at: the label to explain (default: the keyword scoring highest there)")
    parser.add_argument("--output", "-o", default=DEFAULT_OUTPUT,
                        help=f"folder for the PNG and JSON files (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--patch-ms", type=float, default=PATCH_MS,
                        help=f"occlusion patch length in ms (default {PATCH_MS:g})")
    parser.add_argument("--patch-bands", type=int, default=PATCH_BANDS,
                        help=f"occlusion patch height in mel bands (default {PATCH_BANDS})")
    add_decision(parser)


def _safe(text: str) -> str:
    return UNSAFE_NAME.sub("_", text).strip("_") or "_"


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401  (only checked here: drawing comes after the passes over the audio)
    except ImportError:
        raise CommandError("spotter explain draws with matplotlib, which is not installed: "
                           "pip install 'spotter[train]' (or pip install matplotlib)") from None
    from .. import modelfile, models
    from ..embedding import read_input
    from ..engine import Spotter
    from ..explain import WindowTap, background_level, explain, figure, replay, targets_at, targets_of_detections
    from ..files import save_figure, write_text

    model_path = models.resolve(args.model)
    tap = WindowTap(*modelfile.read(model_path))
    spec = tap.spec
    if args.label is not None and args.detections:
        raise CommandError("--label is for --at; --detections explains each detection's own label")
    if args.label is not None and args.label not in spec.labels:
        raise CommandError(f"--label {args.label!r}: the model has no such label (labels: {', '.join(spec.labels)})")
    if not (math.isfinite(args.patch_ms) and args.patch_ms > 0):
        raise CommandError(f"--patch-ms must be a positive number of milliseconds, got {args.patch_ms:g}")
    if not 1 <= args.patch_bands <= spec.features.n_mels:
        raise CommandError(f"--patch-bands must be between 1 and the model's {spec.features.n_mels} bands, "
                           f"got {args.patch_bands}")
    patch_frames = max(1, round(args.patch_ms / spec.features.step_ms))
    decision = decision_from_args(spec.decision, args, spec.labels)
    spotter = Spotter(tap, decision)
    source = Path(args.input)
    audio = read_input(source, spec.features.sample_rate)
    duration = audio.size / spec.features.sample_rate
    first, _ = replay(spotter, audio)
    if args.detections:
        targets = targets_of_detections(first)
        if not targets:
            print(f"spotter explain: no detections in {source}: nothing to draw", file=sys.stderr)
            return 0
    else:
        targets = targets_at(first, args.at, spec, args.label, duration)
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot make the output folder {out}: {exc.strerror or exc}") from None
    run_, windows = replay(spotter, audio, {t.hop for t in targets})
    background = background_level(audio, spec)
    for target in targets:
        shown = explain(tap, run_, windows, target, background, decision, patch_frames, args.patch_bands,
                        (str(source), model_path.name))
        stem = f"{_safe(source.stem)}-{shown.offset_s:.2f}s-{_safe(target.label)}"
        png, numbers = out / f"{stem}.png", out / f"{stem}.json"
        write_text(numbers, json.dumps(shown.to_dict()))
        save_figure(figure(shown, spec), png)
        print(json.dumps({"label": target.label, "offset": round(shown.offset_s, 4),
                          "window_score": round(shown.occlusion.score, 4), "png": str(png), "json": str(numbers)}),
              flush=True)
    print(f"spotter explain: {len(targets)} explained in {out}", file=sys.stderr)
    return 0
