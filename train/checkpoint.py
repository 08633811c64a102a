"""Epoch checkpoints of a training run, so an interrupted run continues where it stopped and ends with the model
an uninterrupted run makes (`spotter train --resume RUN_DIR`).

A run folder holds the run's config and output path (written once), and after every epoch the network's variables
(weights, batch-norm statistics, dropout seed state), the optimizer's, the best epoch's weights and the progress
so far. Each file is replaced atomically and the progress file last, so a run stopped at any moment resumes from
its last whole epoch. The epoch data need no saved random state: each epoch's draws follow from the seed and the
epoch number (train/sampler.py).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from spotter.files import write_atomic

from .options import TrainConfig

RUN_SUFFIX = ".run"
CONFIG = "config.json"
PROGRESS = "progress.json"
VARIABLES = "variables.npz"
BEST = "best.npz"


class CheckpointError(ValueError):
    """A run folder that cannot be resumed; the message says why."""


def run_dir(output: Path) -> Path:
    """Where a run that writes `output` keeps its checkpoints: `models/kws.tflite` -> `models/kws.run/`."""
    return output.parent / f"{output.stem}{RUN_SUFFIX}"


@dataclass
class Progress:
    """How far a run got: epochs done, the best epoch so far (by the selection rule in fit.py), the history and
    the mined hard negatives that the next epoch draws from."""

    epochs_done: int = 0
    best_epoch: int = -1
    best_accuracy: float = -1.0
    best_loss: float = float("inf")
    history: list[dict[str, float]] = field(default_factory=list)
    hard_rows: list[int] = field(default_factory=list)


def start(run: Path, config: TrainConfig, output: Path, command: str | None = None) -> None:
    run.mkdir(parents=True, exist_ok=True)
    stored = {"config": config.to_dict(), "output": str(output), "command": command}
    write_atomic(run / CONFIG, json.dumps(stored, indent=1).encode())
    (run / PROGRESS).unlink(missing_ok=True)


def load_config(run: Path) -> tuple[TrainConfig, Path]:
    """The config and output path a run was started with, so resuming needs no flags."""
    try:
        stored = json.loads((run / CONFIG).read_text())
        return TrainConfig.from_dict(stored["config"]), Path(stored["output"])
    except FileNotFoundError:
        raise CheckpointError(f"{run} is not a training run folder (no {CONFIG})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{run / CONFIG} is damaged: {exc}") from None


def load_command(run: Path) -> str | None:
    """The command that started the run (for its card: a resumed run was made by that command, not by `--resume`)."""
    try:
        command = json.loads((run / CONFIG).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) else None


def _arrays(values: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, *values)
    return buffer.getvalue()


def _read_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def save(run: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer, best: list[np.ndarray],
         progress: Progress) -> None:
    state = [v.numpy() for v in model.variables] + [v.numpy() for v in optimizer.variables]
    write_atomic(run / VARIABLES, _arrays(state))
    write_atomic(run / BEST, _arrays(best))
    write_atomic(run / PROGRESS, json.dumps(asdict(progress), indent=1).encode())


def restore(run: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> tuple[Progress, list[np.ndarray]] | None:
    """Put the last saved epoch back into `model` and `optimizer` (built the same way as when saved); None when
    the run has no finished epoch yet."""
    if not (run / PROGRESS).is_file():
        return None
    try:
        progress = Progress(**json.loads((run / PROGRESS).read_text()))
        state = _read_arrays(run / VARIABLES)
        best = _read_arrays(run / BEST)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"cannot resume from {run}: {exc}") from None
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = list(model.variables) + list(optimizer.variables)
    if len(state) != len(variables) or any(v.shape != s.shape for v, s in zip(variables, state)):
        raise CheckpointError(f"cannot resume from {run}: its checkpoint does not fit this network")
    for variable, value in zip(variables, state):
        variable.assign(value)
    return progress, best
