"""The shipped models, installed as spotter.models, and how a name on the command line finds them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT = "kws"
"""What `spotter listen` runs without --model."""


def shipped(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(f"{name}.tflite")))


def resolve(value: str | None) -> Path:
    """A model path, or the name of a shipped model (`kws`, `computer`, `jarvis`, `events`); none: the default keyword
    model. An existing file of that name wins over a shipped model."""
    if not value:
        return shipped(DEFAULT)
    path = Path(value)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1 and shipped(value).is_file():
        return shipped(value)
    return path
