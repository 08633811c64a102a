"""Fit a keyword model on a clip folder and write the finished model file with its report."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from rich.progress import Progress

from spotter import modelfile
from spotter.config import BACKGROUND_LABELS, DecisionConfig, ModelSpec, ms_to_samples
from spotter.files import write_text
from spotter.features import LogMel
from spotter.metrics import clip_metrics
from spotter.model import Classifier

from . import architectures, checkpoint, export, recordings, report, tune
from .data import EVAL_SEED, EvalSet, Pool, eval_set, load_pool, selection_set
from .options import TrainConfig
from .sampler import EpochSampler, EpochWorker

REPRESENTATIVE_WINDOWS = 400
"""Augmented training windows that calibrate the int8 ranges."""
FALSE_ACCEPT_TARGET = 0.005
"""Suggested threshold: the lowest score that at most this share of other validation clips reach."""


@dataclass
class Result:
    spec: ModelSpec
    model: keras.Model
    tflite: bytes
    metrics: dict[str, Any] = field(default_factory=dict)


class BatchProgress(keras.callbacks.Callback):
    """Advances a rich task every batch and shows the running loss."""

    def __init__(self, progress: Progress, task: Any) -> None:
        super().__init__()
        self.progress = progress
        self.task = task

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        loss = (logs or {}).get("loss")
        self.progress.update(self.task, advance=1, status=f"loss {loss:.3f}" if loss is not None else "")


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if epoch < config.warmup_epochs:
        return config.learning_rate * (epoch + 1) / (config.warmup_epochs + 1)
    progress = (epoch - config.warmup_epochs) / max(1, config.epochs - config.warmup_epochs)
    return config.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def suggest_thresholds(posteriors: np.ndarray, truth: np.ndarray, labels: tuple[str, ...]) -> dict[str, float]:
    """Per keyword, the lowest threshold at which at most FALSE_ACCEPT_TARGET of other clips score above it."""
    out = {}
    for index, label in enumerate(labels):
        if label in BACKGROUND_LABELS:
            continue
        others = np.sort(posteriors[truth != index, index])
        if others.size == 0:
            out[label] = 0.5
            continue
        cut = others[min(others.size - 1, int(math.floor((1 - FALSE_ACCEPT_TARGET) * others.size)))]
        out[label] = float(np.clip(round(float(cut) + 0.005, 3), 0.5, 0.95))
    return out


@dataclass
class Material:
    """What training reads: the decoded pool, the clip-level validation and test sets, and the epoch sampler with
    its first epoch (which also sets the input normalisation and calibrates int8; no sampler when only exporting)."""

    pool: Pool
    validation: EvalSet
    test: EvalSet
    selection: EvalSet
    """The clips that choose the kept epoch: `validation`, or it twice, clean and noisy (`select_snr_db`)."""
    sampler: EpochSampler | None
    first: tuple[np.ndarray, np.ndarray]
    window_frames: int


@dataclass
class Fitted:
    """The network at its best epoch, how it got there, and its size."""

    model: keras.Model
    history: list[dict[str, Any]]
    best_epoch: int
    parameters: int
    multiplies: int


def train(config: TrainConfig, output: Path, resume: bool = False) -> Result:
    """Everything `spotter train` does, in five steps: load the data, fit (keeping the best epoch), export to
    TFLite and measure on clips, set thresholds on streams, write the model file and its report.

    Every epoch is checkpointed in `checkpoint.run_dir(output)`; with `resume` the run continues from there."""
    started = time.time()
    run = checkpoint.run_dir(output)
    command = checkpoint.load_command(run) if resume else report.command_line()
    if not resume:
        checkpoint.start(run, config, output, command)
    keras.utils.set_random_seed(config.seed)
    material = load(config)
    fitted = fit(config, material, run, resume)
    exported, base_spec, metrics = export_and_measure(config, material, fitted)
    decision, streaming = set_thresholds(config, material, exported[config.quantize], base_spec, metrics)
    return write(config, output, material, fitted, exported, base_spec.replace(decision=decision), metrics, streaming,
                 started, command)


def load(config: TrainConfig, export_only: bool = False) -> Material:
    """The pool, the clip-level sets and the first epoch. With `export_only` (an ensemble of networks already
    trained, train/ensemble.py) no sampler is kept and `first` is drawn from a small sample of the training clips
    (`_training_sample`): the sampler's cache of several variants per clip is most of training's memory (12 GB for
    the event scenes)."""
    frontend = LogMel(config.features)
    window = ms_to_samples(config.window_ms, config.features.sample_rate)
    window_frames = config.features.frames_for(window)
    report.console.print(f"[bold]spotter train[/]: {config.architecture} on {', '.join(config.data)}"
                         + (f", negatives from {', '.join(config.negatives)}" if config.negatives else "")
                         + f"; labels {', '.join(config.labels)}")
    with report.console.status("decoding clips"):
        pool = load_pool(list(config.data), tuple(config.labels), config.features.sample_rate, window,
                         config.validation_pct, config.test_pct, config.max_per_word, list(config.negatives),
                         config.event_stride_ms)
    summary = pool.summary()
    report.console.print(
        f"{pool.audio.shape[0]} clips; speakers train/validation/test: "
        f"{summary['train']['speakers']}/{summary['validation']['speakers']}/{summary['test']['speakers']}"
    )
    eval_rng = np.random.default_rng(EVAL_SEED)
    validation = eval_set(pool, "validation", frontend, eval_rng)
    test = eval_set(pool, "test", frontend, eval_rng)
    chooser = validation if config.select_snr_db is None or export_only else selection_set(pool, frontend, config.select_snr_db)
    if export_only:
        with report.console.status("augmenting a sample of the training clips"):
            first = EpochSampler(_training_sample(pool, config.seed), config, frontend).epoch(config.seed * 1000, 0)
        return Material(pool, validation, test, chooser, None, first, window_frames)
    with report.console.status("caching augmented variants of the training clips"):
        sampler = EpochSampler(pool, config, frontend)
        first = sampler.epoch(config.seed * 1000, 0)
    return Material(pool, validation, test, chooser, sampler, first, window_frames)


def _training_sample(pool: Pool, seed: int) -> Pool:
    """REPRESENTATIVE_WINDOWS training rows of every label (fewer where a label has fewer), the rest of the pool as
    it is: an epoch drawn from it is augmented as training's are (noise, gain, dither), which int8 calibration
    needs. Clean clips alone would stretch the input range down to digital silence, which no trained network saw:
    an ensemble calibrated on them lost two thirds of the keywords of clean streams (zeros between words)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in pool.labels:
        found = pool.indices("train", label)
        rows.append(rng.choice(found, min(REPRESENTATIVE_WINDOWS, found.size), replace=False))
    kept = np.sort(np.concatenate(rows))
    return dataclasses.replace(pool, audio=pool.audio[kept], label_index=pool.label_index[kept],
                               words=[pool.words[i] for i in kept], speakers=[pool.speakers[i] for i in kept],
                               split=pool.split[kept])


class Selection:
    """Which epoch is kept: validation accuracy with `_unknown_` and `_silence_` as one class (a spotter fires on
    neither, and that noisy confusion must not decide), ties broken by the merged cross-entropy (a one-word model
    reaches 100% on its validation clips early; later, surer epochs can then still win)."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.is_background = np.array([label in BACKGROUND_LABELS for label in labels])

    def _merged(self, indices: np.ndarray) -> np.ndarray:
        return np.where(self.is_background[indices], -1, indices)

    def accuracy(self, scores: np.ndarray, truth: np.ndarray) -> float:
        return float(np.mean(self._merged(np.argmax(scores, 1)) == self._merged(truth)))

    def loss(self, scores: np.ndarray, truth: np.ndarray) -> float:
        background_p = scores[:, self.is_background].sum(axis=1)
        p = np.where(self.is_background[truth], background_p, scores[np.arange(truth.size), truth])
        return float(np.mean(-np.log(np.clip(p, 1e-7, 1.0))))


def fit(config: TrainConfig, material: Material, run: Path, resume: bool) -> Fitted:
    """The epoch loop: data drawn in a worker process while Keras fits, hard negatives mined, every epoch checkpointed,
    the best epoch by `Selection` kept."""
    first, sampler, validation = material.first, material.sampler, material.selection
    assert sampler is not None, "fitting draws its epochs from the sampler"
    mean = first[0].mean(axis=(0, 1))
    std = first[0].std(axis=(0, 1)) + 1e-3
    n_labels = len(config.labels)
    model = architectures.build(config.architecture, material.window_frames, config.features.n_mels, n_labels, mean, std)
    params = architectures.count_parameters(model)
    multiplies = architectures.count_multiplies(model)
    report.console.print(f"{config.architecture}: {params:,} parameters, {multiplies:,} multiplies per inference")
    optimizer = keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    state, best_weights = checkpoint.Progress(), model.get_weights()
    if resume:
        restored = checkpoint.restore(run, model, optimizer)
        if restored is not None:
            state, best_weights = restored
            sampler.hard_rows = np.asarray(state.hard_rows, np.int64)
            report.console.print(f"resuming {run} after epoch {state.epochs_done} of {config.epochs}")
    done = state.epochs_done
    selection = Selection(tuple(config.labels))
    steps = math.ceil(sum(config.examples_of(label) for label in config.labels) / config.batch_size)
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    try:
        with EpochWorker(sampler) as worker, report.make_progress() as progress:
            def epoch_data(epoch: int) -> Future[tuple[np.ndarray, np.ndarray, float]]:
                return worker.submit(config.seed * 1000 + epoch, epoch, sampler.hard_rows)

            upcoming = epoch_data(done) if done else None
            epochs_task = progress.add_task("epochs", total=config.epochs, completed=done, status="")
            for epoch in range(done, config.epochs):
                epoch_started = tick = time.perf_counter()
                frames, truth, data_seconds = (*first, 0.0) if upcoming is None else upcoming.result()
                waited = time.perf_counter() - tick
                if epoch + 1 < config.epochs:
                    upcoming = epoch_data(epoch + 1)
                frames, truth = frames[: steps * config.batch_size], truth[: steps * config.batch_size]
                optimizer.learning_rate.assign(_learning_rate(config, epoch))
                batch_task = progress.add_task(f"epoch {epoch + 1}", total=steps, status="")
                tick = time.perf_counter()
                history = model.fit(
                    frames, keras.utils.to_categorical(truth, n_labels), batch_size=config.batch_size, epochs=1,
                    verbose=0, shuffle=False, callbacks=[BatchProgress(progress, batch_task)],
                )
                fit_seconds = time.perf_counter() - tick
                progress.remove_task(batch_task)
                tick = time.perf_counter()
                if config.hard_negative_share > 0 and (epoch + 1) % config.mine_every == 0 and epoch + 2 < config.epochs:
                    lowest = sampler.mine(lambda f: model.predict(f, batch_size=512, verbose=0))
                    report.console.print(f"mined {sampler.hard_rows.size} hard negatives (keyword score >= {lowest:.2f})")
                    upcoming.result()  # drawn before the mining: drop it, draw again
                    upcoming = epoch_data(epoch + 1)
                mine_seconds = time.perf_counter() - tick
                tick = time.perf_counter()
                scores = model.predict(validation.frames, batch_size=500, verbose=0)
                accuracy, loss = selection.accuracy(scores, validation.truth), selection.loss(scores, validation.truth)
                seconds = {
                    "data (worker process)": data_seconds, "waiting for data": waited, "fit": fit_seconds,
                    "mining": mine_seconds, "validation": time.perf_counter() - tick,
                }
                state.history.append({"epoch": epoch + 1, "loss": float(history.history["loss"][0]),
                                      "validation_accuracy": accuracy, "validation_loss": loss})
                if (accuracy, -loss) > (state.best_accuracy, -state.best_loss):
                    state.best_accuracy, state.best_loss, best_weights, state.best_epoch = accuracy, loss, model.get_weights(), epoch + 1
                state.epochs_done, state.hard_rows = epoch + 1, [int(r) for r in sampler.hard_rows]
                tick = time.perf_counter()
                checkpoint.save(run, model, optimizer, best_weights, state)
                seconds["checkpoint"] = time.perf_counter() - tick
                seconds["epoch"] = time.perf_counter() - epoch_started
                state.history[-1]["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
                status = f"val {accuracy:.2%} (best {state.best_accuracy:.2%} @ {state.best_epoch})"
                progress.update(epochs_task, advance=1, status=status)
                if not report.console.is_terminal:
                    report.console.print(f"epoch {epoch + 1}/{config.epochs}: loss {state.history[-1]['loss']:.4f}, {status}")
    except KeyboardInterrupt:
        report.console.print(f"interrupted after epoch {state.epochs_done}; continue with: spotter train --resume {run}")
        raise
    model.set_weights(best_weights)
    return Fitted(model, state.history, state.best_epoch, params, multiplies)


def export_and_measure(
    config: TrainConfig, material: Material, fitted: Fitted
) -> tuple[dict[str, bytes], ModelSpec, dict[str, Any]]:
    """Float and int8 TFLite of the kept network, each measured on the validation and test clips, and a spec whose
    thresholds are the clip-level suggestion (`suggest_thresholds`)."""
    labels = tuple(config.labels)
    metrics: dict[str, Any] = {"best_epoch": fitted.best_epoch, "history": fitted.history}
    keras_val = fitted.model.predict(material.validation.frames, batch_size=500, verbose=0)
    metrics["keras_validation"] = clip_metrics(material.validation.truth, keras_val, labels)
    first = material.first[0]
    with report.console.status("exporting float and int8 TFLite"):
        count = min(REPRESENTATIVE_WINDOWS, first.shape[0])
        representative = first[np.random.default_rng(1).choice(first.shape[0], count, replace=False)]
        scorer = architectures.logits_model(fitted.model)
        exported = {"float32": export.to_tflite(scorer), "int8": export.to_tflite(scorer, representative)}
    decision = dataclasses.replace(config.decision, lasting=material.pool.lasting)
    spec = ModelSpec(
        labels=labels, features=config.features, window_frames=material.window_frames,
        decision=decision, architecture=config.architecture, outputs="logits",
    )
    for name, blob in exported.items():
        classifier = Classifier(blob, spec)
        for split, data in (("validation", material.validation), ("test", material.test)):
            scores = classifier.predict(data.frames)
            metrics[f"{name}_{split}"] = clip_metrics(data.truth, scores, labels)
            if name == config.quantize and split == "validation":
                suggested = dataclasses.replace(decision, thresholds=suggest_thresholds(scores, data.truth, labels))
    return exported, spec.replace(decision=suggested), metrics


def set_thresholds(
    config: TrainConfig, material: Material, tflite: bytes, base_spec: ModelSpec, metrics: dict[str, Any]
) -> tuple[DecisionConfig, dict[str, Any] | None]:
    """Thresholds on held-back streams at the target false alarms per hour (`tune`); without streams (or with
    `tune` off), the clip-level suggestion the spec holds."""
    if config.tune is None:
        return base_spec.decision, None
    with report.console.status("setting thresholds on held-back streams"):
        streaming = tune.tune_model(Classifier(tflite, base_spec), material.pool, config, report.console.print)
    if streaming is None:
        return base_spec.decision, None
    metrics["streaming"] = {k: v for k, v in streaming.items() if k != "decision"}
    return streaming["decision"], streaming


def write(
    config: TrainConfig, output: Path, material: Material, fitted: Fitted, exported: dict[str, bytes],
    spec: ModelSpec, metrics: dict[str, Any], streaming: dict[str, Any] | None, started: float, command: str | None,
    members: list[dict[str, Any]] | None = None,
) -> Result:
    """The model file with its metadata, the Keras network, the report, confusion and DET plots and the card;
    `members`: an ensemble's trained models (train/ensemble.py), each with the command that made it."""
    chosen = config.quantize
    training = {
        "config": config.to_dict(),
        "data_summary": material.pool.summary(),
        "recordings": recordings.settings(),
        "command": command,
        "parameters": fitted.parameters,
        "multiplies": fitted.multiplies,
        "seconds": round(time.time() - started, 1),
        "keras": keras.__version__,
        **({"members": members} if members else {}),
    }
    headline = {
        "parameters": fitted.parameters,
        "multiplies": fitted.multiplies,
        "best_epoch": fitted.best_epoch,
        **{f"{q}_{s}_accuracy": metrics[f"{q}_{s}"]["accuracy"] for q in exported for s in ("validation", "test")},
        "validation_recall": metrics[f"{chosen}_validation"]["recall"],
    }
    if streaming is not None:
        headline["streaming"] = {
            condition: {k: result["overall"][k] for k in ("recall", "false_alarms_per_hour", "latency_median_s")}
            for condition, result in streaming["results"].items()
        }
    spec = spec.replace(quantization=chosen, training=training, metrics=headline)
    output.parent.mkdir(parents=True, exist_ok=True)
    modelfile.write(output, exported[chosen], spec)
    stem = output.with_suffix("")
    fitted.model.save(f"{stem}.keras")  # the trained network itself, so other exports need no retraining
    write_text(Path(f"{stem}.report.json"), json.dumps({"training": training, "metrics": metrics}, indent=1))
    report.save_confusion(
        metrics[f"{chosen}_validation"], Path(f"{stem}.confusion.png"), Path(f"{stem}.confusion.json"),
        f"{spec.architecture} ({chosen}), validation speakers",
    )
    if streaming is not None and config.tune is not None:
        report.save_det(streaming["det"], streaming["operating_points"], Path(f"{stem}.det.png"),
                        f"{output.name}: validation streams, clean", config.tune.target_false_alarms_per_hour)
    report.write_card(Path(f"{stem}.md"), output, spec, metrics, config)
    for name in exported:
        for split in ("validation", "test"):
            report.print_metrics(f"{name} {split}", metrics[f"{name}_{split}"])
    report.console.print(f"wrote {output} ({len(exported[chosen]) // 1024} KiB) in {time.time() - started:.0f} s")
    return Result(spec, fitted.model, exported[chosen], metrics)
