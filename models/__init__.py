"""The shipped models, installed as spotter.models."""
