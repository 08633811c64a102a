"""python -m spotter: the same as the `spotter` command."""

from .cli import main

raise SystemExit(main())
