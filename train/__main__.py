"""python -m spotter.train: the same as `spotter train`."""

import sys

from spotter.cli import main

raise SystemExit(main(["train", *sys.argv[1:]]))
