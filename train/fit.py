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
from spotter.config import SILENCE, UNKNOWN, ModelSpec
from spotter.features import LogMel
from spotter.metrics import clip_metrics
from spotter.model import Classifier

from . import architectures, checkpoint, export, recordings, report, tune
from .data import eval_set, load_pool
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
        if label in (UNKNOWN, SILENCE):
            continue
        others = np.sort(posteriors[truth != index, index])
        if others.size == 0:
            out[label] = 0.5
            continue
        cut = others[min(others.size - 1, int(math.floor((1 - FALSE_ACCEPT_TARGET) * others.size)))]
        out[label] = float(np.clip(round(float(cut) + 0.005, 3), 0.5, 0.95))
    return out


def train(config: TrainConfig, output: Path, resume: bool = False) -> Result:
    """Everything `spotter train` does: data, fitting with validation, export, evaluation, model file, report.

    Every epoch is checkpointed in `checkpoint.run_dir(output)`; with `resume` the run continues from there."""
    started = time.time()
    run = checkpoint.run_dir(output)
    if not resume:
        checkpoint.start(run, config, output)
    keras.utils.set_random_seed(config.seed)
    frontend = LogMel(config.features)
    window_frames = config.features.frames_for(int(config.window_ms * config.features.sample_rate / 1000))
    window_samples = config.features.samples_for(window_frames)
    report.console.print(f"[bold]spotter train[/]: {config.architecture} on {', '.join(config.data)}"
                         + (f", negatives from {', '.join(config.negatives)}" if config.negatives else ""))
    with report.console.status("decoding clips"):
        pool = load_pool(
            list(config.data), tuple(config.labels), config.features.sample_rate, int(config.window_ms * config.features.sample_rate / 1000),
            config.validation_pct, config.test_pct, config.max_per_word, list(config.negatives),
        )
    assert pool.audio.shape[1] >= window_samples
    summary = pool.summary()
    report.console.print(
        f"{pool.audio.shape[0]} clips; speakers train/validation/test: "
        f"{summary['train']['speakers']}/{summary['validation']['speakers']}/{summary['test']['speakers']}"
    )
    eval_rng = np.random.default_rng(12345)
    validation = eval_set(pool, "validation", frontend, eval_rng)
    test = eval_set(pool, "test", frontend, eval_rng)
    with report.console.status("caching augmented variants of the training clips"):
        sampler = EpochSampler(pool, config, frontend)
        first = sampler.epoch(config.seed * 1000, 0)
    mean = first[0].mean(axis=(0, 1))
    std = first[0].std(axis=(0, 1)) + 1e-3
    n_labels = len(config.labels)
    model = architectures.build(config.architecture, window_frames, config.features.n_mels, n_labels, mean, std)
    params = architectures.count_parameters(model)
    multiplies = architectures.count_multiplies(model)
    report.console.print(f"{config.architecture}: {params:,} parameters, {multiplies:,} multiplies per inference")
    optimizer = keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    progress_state, best_weights = checkpoint.Progress(), model.get_weights()
    if resume:
        restored = checkpoint.restore(run, model, optimizer)
        if restored is not None:
            progress_state, best_weights = restored
            sampler.hard_rows = np.asarray(progress_state.hard_rows, np.int64)
            report.console.print(f"resuming {run} after epoch {progress_state.epochs_done} of {config.epochs}")
    done = progress_state.epochs_done
    history = progress_state.history
    is_background = np.array([label in (UNKNOWN, SILENCE) for label in config.labels])

    def background_merged(indices: np.ndarray) -> np.ndarray:
        """Model selection counts `_unknown_` taken for `_silence_` (or back) as right: a spotter fires on
        neither, and that noisy confusion must not decide which epoch is kept."""
        return np.where(is_background[indices], -1, indices)

    def merged_loss(scores: np.ndarray, truth: np.ndarray) -> float:
        """Cross-entropy with the background labels as one class: breaks ties once accuracy saturates (a one-word
        model reaches 100% on its validation clips early), so later, surer epochs can win."""
        background_p = scores[:, is_background].sum(axis=1)
        p = np.where(is_background[truth], background_p, scores[np.arange(truth.size), truth])
        return float(np.mean(-np.log(np.clip(p, 1e-7, 1.0))))

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
                fit = model.fit(
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
                accuracy = float(np.mean(background_merged(np.argmax(scores, 1)) == background_merged(validation.truth)))
                loss = merged_loss(scores, validation.truth)
                seconds = {
                    "data (worker process)": data_seconds, "waiting for data": waited, "fit": fit_seconds,
                    "mining": mine_seconds, "validation": time.perf_counter() - tick,
                }
                history.append({"epoch": epoch + 1, "loss": float(fit.history["loss"][0]),
                                "validation_accuracy": accuracy, "validation_loss": loss})
                p = progress_state
                if (accuracy, -loss) > (p.best_accuracy, -p.best_loss):
                    p.best_accuracy, p.best_loss, best_weights, p.best_epoch = accuracy, loss, model.get_weights(), epoch + 1
                p.epochs_done, p.history, p.hard_rows = epoch + 1, history, [int(r) for r in sampler.hard_rows]
                tick = time.perf_counter()
                checkpoint.save(run, model, optimizer, best_weights, p)
                seconds["checkpoint"] = time.perf_counter() - tick
                seconds["epoch"] = time.perf_counter() - epoch_started
                history[-1]["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
                status = f"val {accuracy:.2%} (best {p.best_accuracy:.2%} @ {p.best_epoch})"
                progress.update(epochs_task, advance=1, status=status)
                if not report.console.is_terminal:
                    report.console.print(f"epoch {epoch + 1}/{config.epochs}: loss {history[-1]['loss']:.4f}, {status}")
    except KeyboardInterrupt:
        report.console.print(f"interrupted after epoch {progress_state.epochs_done}; continue with: "
                             f"spotter train --resume {run}")
        raise
    best_epoch = progress_state.best_epoch
    model.set_weights(best_weights)

    metrics: dict[str, Any] = {"best_epoch": best_epoch, "history": history}
    keras_val = model.predict(validation.frames, batch_size=500, verbose=0)
    metrics["keras_validation"] = clip_metrics(validation.truth, keras_val, tuple(config.labels))
    with report.console.status("exporting float and int8 TFLite"):
        count = min(REPRESENTATIVE_WINDOWS, first[0].shape[0])
        representative = first[0][np.random.default_rng(1).choice(first[0].shape[0], count, replace=False)]
        scorer = architectures.logits_model(model)
        exported = {"float32": export.to_tflite(scorer), "int8": export.to_tflite(scorer, representative)}
    base_spec = ModelSpec(
        labels=tuple(config.labels), features=config.features, window_frames=window_frames,
        decision=config.decision, architecture=config.architecture, outputs="logits",
    )
    posteriors: dict[str, np.ndarray] = {}
    for name, blob in exported.items():
        classifier = Classifier(blob, base_spec)
        for split, data in (("validation", validation), ("test", test)):
            scores = classifier.predict(data.frames)
            posteriors[f"{name}/{split}"] = scores
            metrics[f"{name}_{split}"] = clip_metrics(data.truth, scores, tuple(config.labels))
    chosen = config.quantize
    thresholds = suggest_thresholds(posteriors[f"{chosen}/validation"], validation.truth, tuple(config.labels))
    decision = dataclasses.replace(config.decision, thresholds=thresholds)
    streaming = None
    if config.tune is not None:
        with report.console.status("setting thresholds on held-back streams"):
            streaming = tune.tune_model(Classifier(exported[chosen], base_spec), pool, config, report.console.print)
        if streaming is not None:
            decision = streaming["decision"]
            metrics["streaming"] = {k: v for k, v in streaming.items() if k != "decision"}
    training = {
        "config": config.to_dict(),
        "data_summary": summary,
        "recordings": recordings.settings(),
        "command": report.command_line(),
        "parameters": params,
        "multiplies": multiplies,
        "seconds": round(time.time() - started, 1),
        "keras": keras.__version__,
    }
    headline = {
        "parameters": params,
        "multiplies": multiplies,
        "best_epoch": best_epoch,
        **{
            f"{q}_{s}_accuracy": metrics[f"{q}_{s}"]["accuracy"]
            for q in exported for s in ("validation", "test")
        },
        "validation_recall": metrics[f"{chosen}_validation"]["recall"],
    }
    if streaming is not None:
        headline["streaming"] = {
            condition: {k: result["overall"][k] for k in ("recall", "false_alarms_per_hour", "latency_median_s")}
            for condition, result in streaming["results"].items()
        }
    spec = base_spec.replace(
        quantization=chosen,
        decision=decision,
        training=training,
        metrics=headline,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    modelfile.write(output, exported[chosen], spec)
    stem = output.with_suffix("")
    model.save(f"{stem}.keras")  # the trained network itself, so other exports need no retraining
    Path(f"{stem}.report.json").write_text(json.dumps({"training": training, "metrics": metrics}, indent=1))
    report.save_confusion(
        metrics[f"{chosen}_validation"], Path(f"{stem}.confusion.png"), Path(f"{stem}.confusion.json"),
        f"{config.architecture} ({chosen}), validation speakers",
    )
    if streaming is not None:
        report.save_det(streaming["det"], streaming["operating_points"], Path(f"{stem}.det.png"),
                        f"{output.name}: validation streams, clean", config.tune.target_false_alarms_per_hour)
    report.write_card(Path(f"{stem}.md"), output, spec, metrics, config)
    for name in exported:
        for split in ("validation", "test"):
            report.print_metrics(f"{name} {split}", metrics[f"{name}_{split}"])
    report.console.print(f"wrote {output} ({len(exported[chosen]) // 1024} KiB) in {time.time() - started:.0f} s")
    return Result(spec, model, exported[chosen], metrics)
