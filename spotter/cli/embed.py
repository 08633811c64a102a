"""`spotter embed`: the activations of the layer before a model's classifier, per window or per file, as a table
(columns file, offset, label_if_known, f0..fN) for another learner.

Rows are the windows the engine scores (every hop of each input; offset is the end of the window, in seconds, as in
detections) or, with --per-file, one per input (the mean of its windows; offset is its duration). label_if_known
comes from an Audacity labels file beside the input (<name>.txt) or a Speech Commands folder name, else is empty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import DecisionConfig
from .options import add_config_flags, add_model, config_from_args

HELP = "write the activations of the layer before the classifier, per window or per file, to CSV/NPY/Parquet"
HOP_FLAGS = ("hop_ms",)
"""The only decision setting that changes which windows are scored."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files: WAV (any rate and channels), or MP3/FLAC/OGG with the training extra")
    parser.add_argument("--output", "-o", required=True,
                        help="table to write: .csv, .npy (a structured array: file, offset, label_if_known, embedding) "
                        "or .parquet (needs pyarrow)")
    parser.add_argument("--per-file", action=argparse.BooleanOptionalAction, default=False,
                        help="one row per input, the mean over its windows (a clip shorter than a window is centred "
                        "in one)")
    add_config_flags(parser, DecisionConfig(), HOP_FLAGS, overrides=True)


def _notify(message: str) -> None:
    print(f"spotter embed: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from .. import modelfile, models
    from ..embedding import CLASSIFIER_OP, Embedder, check_output, embed_files, write_table

    output = Path(args.output)
    check_output(output)
    model_path = models.resolve(args.model)
    embedder = Embedder(*modelfile.read(model_path))
    decision = config_from_args(embedder.spec.decision, args, HOP_FLAGS)
    table = embed_files(embedder, [Path(p) for p in args.inputs], args.per_file, decision, notify=_notify)
    write_table(table, output)
    rows = f"{len(table)} row{'' if len(table) == 1 else 's'}"
    print(f"spotter embed: wrote {rows} of {table.width} features ({model_path.name}: input of its classifier "
          f"{CLASSIFIER_OP} op{'s' if len(embedder.tensors) > 1 else ''}, "
          f"{', '.join(repr(t['name']) for t in embedder.tensors)}) to {output}", file=sys.stderr)
    return 0
