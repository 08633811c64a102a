"""`spotter info`: a model file's metadata, as JSON."""

from __future__ import annotations

import argparse
import json

from .options import add_model

HELP = "print a model file's metadata"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser)
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=False,
                        help="include training config and data")


def run(args: argparse.Namespace) -> int:
    from .. import modelfile, models

    data = modelfile.read_spec(models.resolve(args.model)).to_dict()
    if not args.full:
        data["training"] = {k: v for k, v in data["training"].items() if k not in ("config", "data_summary")}
    print(json.dumps(data, indent=1))
    return 0
