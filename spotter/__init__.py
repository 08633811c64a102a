"""spotter: offline, streaming keyword and sound-event spotting."""

__version__ = "0.1.0"
