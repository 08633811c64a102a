"""Training side of spotter: data, augmentation, architectures, fitting, export. Needs the `train` extra."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
