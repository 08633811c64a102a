"""Training report: rich progress while fitting, metrics tables, confusion matrix as PNG and JSON. No TensorFlow here,
so `spotter eval clips` can print the same tables without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from spotter.files import save_figure, write_text

console = Console(stderr=True)


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def print_metrics(title: str, metrics: dict[str, Any]) -> None:
    table = Table(title=f"{title}: accuracy {metrics['accuracy']:.2%} on {metrics['clips']} clips")
    table.add_column("label")
    table.add_column("recall", justify="right")
    table.add_column("clips", justify="right")
    for label in metrics["labels"]:
        recall = metrics["recall"][label]
        table.add_row(label, "-" if recall is None else f"{recall:.1%}", str(metrics["support"][label]))
    console.print(table)


def save_confusion(metrics: dict[str, Any], png: Path, json_path: Path, title: str) -> None:
    """The confusion matrix as JSON (counts and labels) and as a PNG heat map with row-normalised colours."""
    write_text(json_path, json.dumps({k: metrics[k] for k in ("labels", "confusion", "accuracy", "recall")}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = metrics["labels"]
    counts = np.asarray(metrics["confusion"])
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def save_det(det: dict[str, Any], points: dict[str, Any], png: Path, title: str, target: float) -> None:
    """DET curves (miss rate against false alarms per hour), per label and overall, the operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for key, curve in det["curves"].items():
        style = {"color": "black", "linewidth": 2.5} if key == "overall" else {"linewidth": 1}
        ax.plot(curve["false_alarms_per_hour"], np.asarray(curve["miss_rate"]) * 100, label=key, **style)
    if "overall" in points:
        p = points["overall"]
        ax.plot([p["false_alarms_per_hour"]], [(1 - p["recall"]) * 100], "o", color="red",
                label=f"{target} FA/h: threshold {p['threshold']:.2f}")
    ax.axvline(target, color="red", linestyle=":", linewidth=1)
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel("false alarms per hour (linear below 0.5, then logarithmic)")
    ax.set_ylabel("miss rate (%)")
    worst = (1 - points["overall"]["recall"]) * 100 if "overall" in points else 0.0
    ax.set_ylim(0, min(100.0, max(50.0, worst + 10.0)))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _attribution(folder: str) -> str:
    """The first heading and licence line of a data folder's README, so the card names what it was trained on."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return f"`{folder}`"
    lines = [line.strip() for line in readme.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    title = next((line.lstrip("# ") for line in lines if line.startswith("#")), folder)
    return f"`{folder}`: {title} (licence and attribution: `{folder}/README.md`)"


def command_line() -> str | None:
    """The `spotter train ...` command being run, for the card and the metadata."""
    import shlex
    import sys

    return shlex.join(["spotter", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("spotter", "__main__.py") else None


def _threshold(value: float) -> str:
    """Enough digits to tell 0.9994 from 1 (logit models are tuned that close to it); above 1: never fires."""
    return "off" if value > 1.0 else f"{value:.4g}"


KEEP_MARK = "<!-- Notes below this line are yours: retraining rewrites the card above it and keeps them. -->"


def kept_notes(card: Path) -> str:
    """The hand-written part of an existing card (after `KEEP_MARK`), so retraining does not erase it."""
    if not card.is_file():
        return ""
    text = card.read_text()
    at = text.find(KEEP_MARK)
    return "" if at < 0 else text[at + len(KEEP_MARK):].lstrip("\n")


def _trained_row(training: dict[str, Any], metrics: dict[str, Any], config: Any) -> str:
    members = training.get("members", [])
    if not members:
        return f"| Trained | {training['seconds'] / 60:.0f} min, best epoch {metrics['best_epoch']} of {config.epochs} |"
    minutes = " + ".join(f"{(m.get('seconds') or 0) / 60:.0f}" for m in members)
    epochs = ", ".join(str(m.get("best_epoch")) for m in members)
    return f"| Trained | {len(members)} members: {minutes} min, best epochs {epochs} of {config.epochs} |"


def write_card(path: Path, model_path: Path, spec: Any, metrics: dict[str, Any], config: Any) -> None:
    """The model card: what the model is, what it was trained on, how it scores on held-back data, and the
    command that made it. Everything in it is also in the model file's metadata."""
    training = spec.training
    decision = spec.decision
    thresholds = ", ".join(f"{k} {_threshold(v)}" for k, v in decision.thresholds.items())
    command = training.get("command")
    lines = [
        f"# Model card: `{model_path.name}`",
        "",
        "| | |",
        "|---|---|",
        f"| Labels | {', '.join(spec.labels)} |",
        f"| Architecture | `{spec.architecture}`: {training['parameters']:,} parameters, "
        f"{training['multiplies'] / 1e6:.2f} M multiplies per inference, {spec.quantization} |",
        f"| Input | {spec.window_frames} frames x {spec.features.n_mels} "
        f"{'PCEN' if spec.features.compression == 'pcen' else 'log-mel'} bands "
        f"({spec.features.sample_rate} Hz, {config.window_ms:g} ms window) |",
        f"| Decision (in the file) | hop {decision.hop_ms:g} ms, smoothing {decision.smoothing_ms:g} ms, "
        f"refractory {decision.refractory_ms:g} ms; thresholds {thresholds} |",
        _trained_row(training, metrics, config),
        "",
        "## Data",
        "",
        *[f"- {_attribution(folder)}" for folder in config.data],
        *[f"- negatives (every word `_unknown_`): {_attribution(folder)}" for folder in config.negatives],
        "",
        "Clips longer than the window are cut around the utterance found by energy (`train/recordings.py`); long "
        "recordings with Audacity labels give a window per position that holds an event whole, negatives from "
        "windows clear of events, and none from windows that cut an event. Held-back speakers (or recordings, or "
        "the last stretch of each annotated recording) are never trained on. Files without a speaker id in their name "
        "(`<speaker>_nohash_<n>`) are each their own group, so one speaker's other recordings may sit in training.",
        "",
        "| split | " + " | ".join(spec.labels) + " | speakers |",
        "|---|" + "---:|" * (len(spec.labels) + 1),
    ]
    for split in ("train", "validation", "test"):
        counts = training["data_summary"][split]
        lines.append(f"| {split} | " + " | ".join(str(counts[label]) for label in spec.labels) + f" | {counts['speakers']} |")
    lines += ["", "## Clip level (held-back clips or windows)", "", "| | validation | test |", "|---|---:|---:|"]
    for q in ("int8", "float32"):
        if f"{q}_validation" in metrics:
            lines.append(f"| {q} accuracy | {_pct(metrics[f'{q}_validation']['accuracy'])} | "
                         f"{_pct(metrics[f'{q}_test']['accuracy'])} |")
    chosen = f"{spec.quantization}_validation"
    if chosen in metrics:
        for label in spec.labels:
            lines.append(f"| {spec.quantization} recall, {label} | {_pct(metrics[chosen]['recall'][label])} | "
                         f"{_pct(metrics[f'{spec.quantization}_test']['recall'][label])} |")
        lines += ["", "A spotter fires on neither `_unknown_` nor `_silence_`: confusing the two costs nothing, and "
                  "model selection ignores it."]
    streaming = metrics.get("streaming")
    if streaming:
        target = config.tune.target_false_alarms_per_hour
        lines += [
            "",
            f"## Streaming (the thresholds above, set at {target} false alarms per hour on clean validation streams)",
            "",
            f"Rule: {streaming['det']['rule']}.",
            "",
            f"Streams from clip folders: {config.tune.keyword_minutes:g} minutes of the split's keyword clips mixed "
            f"with other words (a quarter of the items) at 1-3 s gaps, plus {config.tune.negative_minutes:g} minutes "
            "of other words and silence only, so false alarms are counted on speech, not only on noise; noisy "
            f"conditions add held-out background noise at {config.tune.noisy_snr_db:g} dB SNR. Annotated "
            "recordings contribute their held-back stretches as they are. Latency is fire time minus the end of the "
            "word; it is negative when the model is sure before the word's tail ends.",
            "",
            "| condition | minutes | recall | false alarms per hour | latency median / p90 (ms) |",
            "|---|---:|---:|---:|---:|",
        ]
        for condition, result in streaming["results"].items():
            o = result["overall"]
            lines.append(f"| {condition} | {streaming['minutes'][condition]:g} | {_pct(o['recall'])} ({o['hits']}/{o['events']}) | "
                         f"{o['false_alarms_per_hour']:.2f} ({o['false_alarms']}) | "
                         f"{_ms(o['latency_median_s'])} / {_ms(o['latency_p90_s'])} |")
        lines += ["", f"![DET curve, validation streams]({path.with_suffix('').name}.det.png)"]
    lines += ["", "## Reproduce", ""]
    member_commands = [m["command"] for m in training.get("members", []) if m.get("command")]
    if member_commands:
        lines += ["Train each member, then combine them:", "", "```", *member_commands, "```", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"`spotter info --full {model_path}` prints every setting stored in the model file.", "", KEEP_MARK, ""]
    kept = kept_notes(path)
    write_text(path, "\n".join(lines) + ("\n" + kept if kept else ""))


def refresh_card(model_path: Path) -> Path | None:
    """Rewrite a trained model's card from what its file and report now hold (after `spotter eval run
    --write-thresholds` changed its decision settings); hand-written notes below `KEEP_MARK` are kept. None
    without a report, or when the card exists without the marker (written by hand: left alone)."""
    from spotter import modelfile

    from .options import TrainConfig

    stem = model_path.with_suffix("")
    report_path = Path(f"{stem}.report.json")
    spec = modelfile.read_spec(model_path)
    if not report_path.is_file() or "config" not in spec.training:
        return None
    card = Path(f"{stem}.md")
    if card.is_file() and KEEP_MARK not in card.read_text():
        return None  # a card written by hand, without the marker: not ours to rewrite
    metrics = json.loads(report_path.read_text())["metrics"]
    write_card(card, model_path, spec, metrics, TrainConfig.from_dict(spec.training["config"]))
    return card
