"""Several trained models as one model file that averages their class scores (`spotter train --ensemble`).

Why: at 0.5 false alarms per hour each keyword's threshold is set by the one or two other words that score highest
for it, and networks trained from different seeds put different words at the top of that tail, while real
keywords score high in all of them; averaging the members' logits lowers the tail more than the keywords (deep
ensembles, Lakshminarayanan et al., NeurIPS 2017). Members are trained as ordinary runs (each resumable, in
parallel or across sessions) and combined afterwards; the combined model is exported, measured and written by the
same steps as one network (`fit.export_and_measure`, `fit.set_thresholds`, `fit.write`); int8 is calibrated on an
augmented epoch drawn from a sample of the training clips (`fit.load`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import keras

from spotter import modelfile

from . import architectures, report
from .fit import Fitted, Result, export_and_measure, load, set_thresholds, write
from .options import TrainConfig

MUST_MATCH = ("data", "labels", "window_ms", "features", "validation_pct", "test_pct", "max_per_word")
"""What decides the input, the output and which speakers are held back: members that differ here cannot be averaged
(or would be measured on clips some of them trained on). Recipes may differ otherwise (seed, augmentation, extra
negatives: a clip's split follows from its speaker alone, so no member trained on the first member's held-back clips)."""


class EnsembleError(ValueError):
    """Members that cannot be combined; the message says why."""


@dataclasses.dataclass(frozen=True)
class Member:
    path: Path
    config: TrainConfig
    training: dict[str, Any]
    metrics: dict[str, Any]
    network: keras.Model


def read_member(path: Path) -> Member:
    """A trained model file and the Keras network `spotter train` saved beside it (`<stem>.keras`)."""
    spec = modelfile.read_spec(path)
    if "config" not in spec.training:
        raise EnsembleError(f"{path}: no training settings in the model file (was it made by spotter train?)")
    keras_path = path.with_suffix(".keras")
    if not keras_path.is_file():
        raise EnsembleError(f"{path}: the trained network {keras_path.name} is not beside it")
    network = keras.models.load_model(keras_path)
    return Member(path, TrainConfig.from_dict(spec.training["config"]), spec.training, spec.metrics, network)


def check_compatible(members: list[Member]) -> None:
    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least two models")
    first = members[0]
    for member in members[1:]:
        for name in MUST_MATCH:
            if getattr(member.config, name) != getattr(first.config, name):
                raise EnsembleError(f"{member.path} and {first.path} differ in {name}: members must share data, "
                                    "labels, window and features")


def combine(paths: list[Path], output: Path) -> Result:
    """The members' average as one model file at `output`, exported, measured and carded like a trained one; the
    first member's settings decide the clips it is measured on and its decision settings."""
    started = time.time()
    members = [read_member(p) for p in paths]
    check_compatible(members)
    config = members[0].config
    names = sorted({m.config.architecture for m in members})
    name = f"ensemble of {len(members)} {'+'.join(names)}"
    model = architectures.ensemble([m.network for m in members])
    fitted = Fitted(
        model, history=[], best_epoch=max(int(m.metrics.get("best_epoch", -1)) for m in members),
        parameters=architectures.count_parameters(model), multiplies=architectures.count_multiplies(model),
    )
    report.console.print(f"[bold]spotter train --ensemble[/]: {name}, {fitted.parameters:,} parameters, "
                         f"{fitted.multiplies:,} multiplies per inference")
    material = load(config, export_only=True)
    exported, base_spec, metrics = export_and_measure(config, material, fitted)
    decision, streaming = set_thresholds(config, material, exported[config.quantize], base_spec, metrics)
    spec = base_spec.replace(decision=decision, architecture=name)
    summaries = [
        {"path": str(m.path), "command": m.training.get("command"), "best_epoch": m.metrics.get("best_epoch"),
         "seconds": m.training.get("seconds"), "seed": m.config.seed,
         "int8_validation_accuracy": m.metrics.get("int8_validation_accuracy")}
        for m in members
    ]
    return write(config, output, material, fitted, exported, spec, metrics, streaming, started, report.command_line(),
                 members=summaries)
