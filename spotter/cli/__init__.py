"""spotter's command line: one module per subcommand (`add_arguments`, `run`), shared options in `options`.

Building the parser imports only argparse-level modules: a subcommand imports what it runs (the model runtime,
TensorFlow for training) when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Iterable

from .options import EXIT_BAD_INPUT, CommandError

EXIT_BROKEN_PIPE = 141
"""What a shell reports for a writer killed by SIGPIPE; `spotter listen | head -1` ends with it, silently."""
COMMANDS = ("listen", "devices", "info", "eval", "train", "embed", "explain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotter", description="Offline streaming keyword spotter.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Every failure ends here in one line and an exit status (README, "Failure behaviour")."""
    from ..output import ForgivingStream

    if sys.stdout is None:  # `>&-`: nobody can read detections, as with a closed pipe
        return EXIT_BROKEN_PIPE
    sys.stderr = ForgivingStream(sys.stderr)  # `2>&-`, `2>/dev/full`: keep detecting, keep stdout clean
    try:
        parser = build_parser()
        args = parser.parse_args(list(argv) if argv is not None else None)
    except KeyboardInterrupt:  # Ctrl-C while starting up
        return 0
    from ..modelfile import ModelFileError
    from ..sources import AudioError

    try:
        return int(args.func(args))
    except (CommandError, ModelFileError, AudioError, ValueError, FileNotFoundError) as exc:
        print(f"spotter: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader went away (`| head -1`): stop quietly, without Python's flush error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        # a full disk, a read-only or vanished folder: what failed and on which file, in one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"spotter: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 0
