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
    json_path.write_text(json.dumps({k: metrics[k] for k in ("labels", "confusion", "accuracy", "recall")}, indent=1))
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
    fig.savefig(png)
    plt.close(fig)
