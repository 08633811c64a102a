"""What drove a detection: the window that fired, an occlusion map over it, and the score trace around it.

Occlusion needs only inference, so it works on the int8 `.tflite` alone: every time-frequency patch of the window is
replaced in turn by the recording's background level and the window scored again; the drop in the label's posterior
is that patch's importance. The background is a low percentile of each mel band over the whole input (its noise
floor), so an occluded patch looks like the quiet parts of the same recording rather than like a value the model
never saw (digital silence, zeros of a normalised feature).

The windows are the engine's own: `Spotter.run` replays the input and a `WindowTap` keeps a copy of the windows it is
asked for, so the explained window is exactly the one the engine scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

import numpy as np

from .config import BACKGROUND_LABELS, DecisionConfig, ModelSpec
from .decision import EVENT_END, Detection
from .engine import Spotter
from .evaluation import run_stream
from .features import LogMel
from .model import Classifier

BACKGROUND_PERCENTILE = 10.0
"""Each band's background level: this percentile of its values over the whole input."""
TRACE_CONTEXT_S = 2.0
"""The score trace is drawn this far either side of the explained hop."""
DECIMALS = 4
"""Rounding of the numbers in the JSON."""
FIGURE_DPI = 72
"""9 x 6 inches at 72 dpi: legible, and small enough to keep next to the audio (and in the README)."""


class WindowTap(Classifier):
    """A Classifier that counts the windows the engine scores, keeps every window's posteriors, and copies the
    windows whose index it is asked for."""

    def __init__(self, tflite: bytes, spec: ModelSpec) -> None:
        super().__init__(tflite, spec)
        self.wanted: set[int] = set()
        self.clear()

    def clear(self) -> None:
        self.calls = 0
        self.kept: dict[int, np.ndarray] = {}
        self.posteriors: list[np.ndarray] = []

    def __call__(self, window: np.ndarray) -> np.ndarray:
        if self.calls in self.wanted:
            self.kept[self.calls] = window.copy()
        self.calls += 1
        posteriors = super().__call__(window)
        self.posteriors.append(posteriors)
        return posteriors


@dataclass
class Replay:
    """One pass of the engine over an input: detections, and per hop its end sample, raw and smoothed scores."""

    detections: list[Detection]
    ends: np.ndarray  # (hops,) samples
    raw: np.ndarray  # (hops, labels)
    smoothed: np.ndarray  # (hops, labels)


def replay(spotter: Spotter, audio: np.ndarray, wanted: Collection[int] = ()) -> tuple[Replay, dict[int, np.ndarray]]:
    """Run the engine over `audio` from a fresh state; return what it scored and the windows at the `wanted` hops."""
    tap = spotter.classifier
    if not isinstance(tap, WindowTap):
        raise TypeError("replay needs a Spotter built on a WindowTap")
    tap.clear()
    tap.wanted = set(wanted)
    detections, trace = run_stream(spotter, audio)
    raw = np.array(tap.posteriors, dtype=np.float32).reshape(-1, len(spotter.spec.labels))
    return Replay(detections, trace.samples, raw, trace.smoothed.astype(np.float32)), dict(tap.kept)


@dataclass
class Target:
    """One hop to explain, and the label whose score is occluded."""

    hop: int
    label: str
    detection_score: float | None = None
    """The smoothed score the detection fired with; None for a hop asked for with --at."""


def targets_at(run: Replay, seconds: list[float], spec: ModelSpec, label: str | None, duration_s: float) -> list[Target]:
    """The hop whose window ends nearest each time, with `label` or the keyword scoring highest in that window."""
    if not run.ends.size:
        raise ValueError(f"the input ({duration_s:.2f} s) is shorter than the model's window "
                         f"({spec.window_samples / spec.features.sample_rate:g} s): nothing was scored")
    keywords = [i for i, name in enumerate(spec.labels) if name not in BACKGROUND_LABELS]
    out = []
    for at in seconds:
        if not (math.isfinite(at) and 0.0 <= at <= duration_s):
            raise ValueError(f"--at {at:g} is outside the input (0 to {duration_s:.2f} s)")
        hop = int(np.argmin(np.abs(run.ends / spec.features.sample_rate - at)))
        chosen = label or spec.labels[max(keywords or range(len(spec.labels)), key=lambda i: run.raw[hop, i])]
        out.append(Target(hop, chosen))
    return out


def targets_of_detections(run: Replay) -> list[Target]:
    """Every detection (a lasting event's start, not its end) at the hop that fired it."""
    hop_of = {int(sample): hop for hop, sample in enumerate(run.ends)}
    return [Target(hop_of[d.sample], d.label, d.score) for d in run.detections
            if d.event != EVENT_END and d.sample in hop_of]


def background_level(audio: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Each mel band's background: `BACKGROUND_PERCENTILE` of its features over the whole input, computed by the one
    front end (whole-signal frames equal the streamed ones)."""
    frames = LogMel(spec.features).compute(audio)
    return np.percentile(frames, BACKGROUND_PERCENTILE, axis=0).astype(np.float32)


@dataclass
class Occlusion:
    """Importance of each patch: the posterior of `label` on the whole window minus that with the patch occluded."""

    score: float
    drops: np.ndarray  # (time patches, band patches)
    patch_frames: int
    patch_bands: int


def occlude(classifier: Classifier, window: np.ndarray, label_index: int, background: np.ndarray,
            patch_frames: int, patch_bands: int) -> Occlusion:
    """Score every copy of `window` with one patch set to `background`, all in one batch."""
    frames, bands = window.shape
    time_starts = range(0, frames, patch_frames)
    band_starts = range(0, bands, patch_bands)
    batch = np.repeat(window[None], len(time_starts) * len(band_starts) + 1, axis=0)
    for k, (t, b) in enumerate((t, b) for t in time_starts for b in band_starts):
        batch[k + 1, t : t + patch_frames, b : b + patch_bands] = background[b : b + patch_bands]
    scores = classifier.predict(batch)[:, label_index]
    drops = (scores[0] - scores[1:]).reshape(len(time_starts), len(band_starts))
    return Occlusion(float(scores[0]), drops, patch_frames, patch_bands)


@dataclass
class Explanation:
    """Everything one PNG shows, and its JSON."""

    input: str
    model: str
    target: Target
    offset_s: float
    window_start_s: float
    window: np.ndarray
    occlusion: Occlusion
    background: np.ndarray
    trace_offsets_s: np.ndarray
    trace_smoothed: np.ndarray
    trace_raw: np.ndarray
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        def rounded(values: np.ndarray) -> Any:
            return np.round(np.asarray(values, dtype=np.float64), DECIMALS).tolist()

        o = self.occlusion
        return {
            "input": self.input, "model": self.model, "label": self.target.label,
            "offset_s": round(self.offset_s, DECIMALS), "window_start_s": round(self.window_start_s, DECIMALS),
            "detection_score": None if self.target.detection_score is None else round(self.target.detection_score, DECIMALS),
            "window_score": round(o.score, DECIMALS), "threshold": self.threshold,
            "occlusion": {
                "patch_frames": o.patch_frames, "patch_bands": o.patch_bands,
                "background_percentile": BACKGROUND_PERCENTILE,
                "drops": rounded(o.drops),
                "drops_doc": "rows: time patches from the window's start; columns: mel band patches from the lowest; "
                             "value: the label's posterior on the whole window minus that with the patch set to the "
                             "background",
            },
            "background": rounded(self.background),
            "window": rounded(self.window),
            "trace": {"offset_s": rounded(self.trace_offsets_s), "smoothed": rounded(self.trace_smoothed),
                      "raw": rounded(self.trace_raw)},
        }


def explain(tap: WindowTap, run: Replay, windows: dict[int, np.ndarray], target: Target, background: np.ndarray,
            decision: DecisionConfig, patch_frames: int, patch_bands: int, names: tuple[str, str]) -> Explanation:
    """The explanation of one target hop from a replay that kept its window."""
    spec = tap.spec
    rate = spec.features.sample_rate
    index = spec.labels.index(target.label)
    occlusion = occlude(tap, windows[target.hop], index, background, patch_frames, patch_bands)
    offsets = run.ends / rate
    end = float(offsets[target.hop])
    near = np.abs(offsets - end) <= TRACE_CONTEXT_S
    return Explanation(
        input=names[0], model=names[1], target=target, offset_s=end,
        window_start_s=(run.ends[target.hop] - spec.window_samples) / rate, window=windows[target.hop],
        occlusion=occlusion, background=background, trace_offsets_s=offsets[near],
        trace_smoothed=run.smoothed[near, index], trace_raw=run.raw[near, index],
        threshold=decision.thresholds.get(target.label, decision.default_threshold),
    )


def figure(explanation: Explanation, spec: ModelSpec) -> Any:
    """The PNG's figure: the window's features, the occlusion map over the same axes, and the score trace."""
    from matplotlib.figure import Figure

    e, o = explanation, explanation.occlusion
    step_s = spec.features.step_samples / spec.features.sample_rate
    frames, bands = e.window.shape
    extent = (e.window_start_s, e.window_start_s + frames * step_s, 0, bands)
    fig = Figure(figsize=(9, 6), dpi=FIGURE_DPI, layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 2))
    features = fig.add_subplot(grid[0, 0])
    image = features.imshow(e.window.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
                            interpolation="nearest")
    fig.colorbar(image, ax=features, label="log-mel" if spec.features.compression == "log" else spec.features.compression)
    features.set(title="window that was scored", xlabel="seconds in the input", ylabel="mel band")
    importance = fig.add_subplot(grid[0, 1], sharey=features)
    limit = max(float(np.abs(o.drops).max()), 1e-6)
    cells = np.kron(o.drops, np.ones((o.patch_frames, o.patch_bands)))[:frames, :bands]
    image = importance.imshow(cells.T, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                              vmin=-limit, vmax=limit, interpolation="nearest")
    fig.colorbar(image, ax=importance, label=f"drop in P({e.target.label})")
    importance.set(title=f"occlusion: {o.patch_frames} frames x {o.patch_bands} bands to background",
                   xlabel="seconds in the input")
    trace = fig.add_subplot(grid[1, :])
    trace.plot(e.trace_offsets_s, e.trace_raw, color="0.6", lw=1, label="window posterior")
    trace.plot(e.trace_offsets_s, e.trace_smoothed, color="C0", lw=2, label="smoothed score")
    trace.axhline(e.threshold, color="C3", ls="--", lw=1, label=f"threshold {e.threshold:g}")
    trace.axvspan(e.window_start_s, e.offset_s, color="C1", alpha=0.15, label="explained window")
    trace.axvline(e.offset_s, color="C1", lw=1)
    trace.set(ylim=(0, 1.02), xlabel="seconds in the input (window end)", ylabel=f"score of {e.target.label}")
    trace.legend(loc="center right", fontsize="x-small")
    score = "" if e.target.detection_score is None else f", detection {e.target.detection_score:.2f}"
    fig.suptitle(f"{Path(e.input).name}: {e.target.label} at {e.offset_s:.2f} s (window {o.score:.2f}{score}) - "
                 f"{e.model}")
    return fig
