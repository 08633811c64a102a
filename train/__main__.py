"""python -m train: the same as `spotter train`."""

from .cli import main

raise SystemExit(main())
