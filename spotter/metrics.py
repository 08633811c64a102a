"""Clip-level scores shared by training reports and `spotter eval`: accuracy, per-class recall, confusion."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_labels: int) -> np.ndarray:
    """Rows are true labels, columns predicted labels."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(predicted)), 1)
    return matrix


def clip_metrics(truth: np.ndarray, posteriors: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, per-class recall and the confusion matrix of argmax decisions."""
    predicted = np.argmax(posteriors, axis=1)
    matrix = confusion_matrix(truth, predicted, len(labels))
    support = matrix.sum(axis=1)
    recall = {
        label: (float(matrix[i, i] / support[i]) if support[i] else None) for i, label in enumerate(labels)
    }
    return {
        "clips": int(len(truth)),
        "accuracy": float(np.mean(predicted == truth)) if len(truth) else None,
        "recall": recall,
        "support": {label: int(n) for label, n in zip(labels, support)},
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }
