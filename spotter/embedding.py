"""Embeddings: the activations a model's classifier layer reads, one row per window the engine scores.

The layer before the classifier is found in the graph itself, not recorded at export: it is the input tensor of the
FULLY_CONNECTED op that gives the class scores (of each such op, side by side, in an ensemble whose members' scores
are averaged; else of the last FULLY_CONNECTED op). The interpreter is built with LiteRT's `experimental_preserve_all_tensors` so that tensor
is still readable after `invoke`, and it is dequantised with its own scale and zero point. This needs no re-export
and works for every model already shipped; a graph without a FULLY_CONNECTED op is refused in one line.

The windows are those of `Spotter.run`, the one replay path: the engine calls the `Embedder` for every hop exactly as
it calls a `Classifier`, so the rows cannot drift from what `spotter listen` scores.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import DecisionConfig, ModelSpec
from .engine import REPLAY_BLOCK_MS, Spotter
from .evaluation import run_stream
from .files import write_atomic, write_text
from .labels import labels_path, read_labels
from .model import Classifier
from .modelfile import ModelFileError
from .sources import AudioError, WavFile

CLASSIFIER_OP = "FULLY_CONNECTED"
"""The op whose input is the embedding: every spotter architecture ends in global pooling and one dense layer."""
DECODED_SUFFIXES = (".mp3", ".flac", ".ogg")
"""Read with the training extra's decoder (soundfile); everything else goes to the runtime's own WAV reader."""
SPEECH_COMMANDS_MARK = "_nohash_"
"""Speech Commands names clips `<speaker>_nohash_<n>`; such a clip's folder is its word (as `train.data` reads it)."""
LABEL_JOIN = "+"
"""Separates the labels of a row that holds several events."""
FORMATS = (".csv", ".npy", ".parquet")
CSV_DIGITS = 9
"""Significant digits that write any float32 so it reads back to the same value."""


class Embedder(Classifier):
    """A Classifier that also keeps, for every window it scores, the activations entering its classifier layer."""

    def __init__(self, tflite: bytes, spec: ModelSpec) -> None:
        super().__init__(tflite, spec, preserve_all_tensors=True)
        ops_details = getattr(self._interpreter, "_get_ops_details", None)
        if ops_details is None:
            raise ModelFileError("this TFLite interpreter cannot list a model's ops; spotter embed needs ai-edge-litert")
        details = {t["index"]: t for t in self._interpreter.get_tensor_details()}
        indices = classifier_inputs(ops_details(), lambda index: int(details[index]["shape"][-1]), len(spec.labels))
        self.tensors = [details[index] for index in indices]
        self.widths = [int(np.prod(t["shape"][1:])) for t in self.tensors]
        self.width = sum(self.widths)
        self.rows: list[np.ndarray] = []
        """One (batch, width) block per `predict` call since the last `clear`."""

    def clear(self) -> None:
        self.rows = []

    def predict(self, windows: np.ndarray) -> np.ndarray:
        posteriors = super().predict(windows)
        parts = [dequantize(self._interpreter.get_tensor(t["index"]).reshape(windows.shape[0], width), t["quantization"])
                 for t, width in zip(self.tensors, self.widths)]
        self.rows.append(np.concatenate(parts, axis=1))
        return posteriors

    def embeddings(self) -> np.ndarray:
        """All rows kept since the last `clear`: (windows, width) float32."""
        return np.concatenate(self.rows) if self.rows else np.zeros((0, self.width), dtype=np.float32)


def classifier_inputs(ops: list[dict[str, Any]], width_of: Callable[[int], int], n_labels: int) -> list[int]:
    """Tensor indices of the layer before the classifier: the inputs of the FULLY_CONNECTED ops whose outputs are
    the class scores (`width_of` a tensor index is its last dimension), one per ensemble member, in graph order;
    when no dense op gives exactly one score per label, the input of the last one."""
    dense = [op for op in ops if op.get("op_name") == CLASSIFIER_OP]
    if not dense:
        raise ModelFileError(f"the model's graph has no {CLASSIFIER_OP} op, so there is no layer before a classifier "
                             "to read: spotter embed works with models whose last layer is dense")
    heads = [op for op in dense if width_of(int(op["outputs"][0])) == n_labels] or dense[-1:]
    return [int(op["inputs"][0]) for op in heads]


def dequantize(values: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    """Real values of a tensor from its own (scale, zero point); a float tensor (scale 0) as it is."""
    scale, zero = quantization
    if values.dtype == np.float32 or scale == 0:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def read_input(path: Path, sample_rate: int) -> np.ndarray:
    """An input file as int16 mono at the model's rate. WAV through the runtime's reader (any PCM or float WAV,
    resampled and downmixed as `listen` reads it); MP3, FLAC and OGG through the training extra's decoder."""
    path = Path(path)
    if path.suffix.lower() not in DECODED_SUFFIXES:
        chunks = list(WavFile(path, sample_rate))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    if not path.is_file():
        raise AudioError(f"input file not found: {path}")
    from .cli.options import training_module

    return training_module("audio", f"reading {path.suffix} files").read_audio(path, sample_rate)


@dataclass
class Table:
    """Rows of embeddings with the columns every output format writes: file, offset, label_if_known, f0..fN."""

    width: int
    files: list[str] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    blocks: list[np.ndarray] = field(default_factory=list)

    def add(self, file: str, offsets: list[float], labels: list[str], features: np.ndarray) -> None:
        self.files += [file] * len(offsets)
        self.offsets += offsets
        self.labels += labels
        self.blocks.append(features.reshape(len(offsets), self.width))

    @property
    def features(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros((0, self.width), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.offsets)


def file_label(path: Path) -> str:
    """What the whole file is known to be: the labels of an Audacity labels file beside it (in time order, each
    once), or the folder name of a Speech Commands clip; empty when neither says."""
    beside = labels_path(path)
    if beside.is_file() and beside != path:
        return LABEL_JOIN.join(dict.fromkeys(e.label for e in read_labels(beside)))
    return path.parent.name if SPEECH_COMMANDS_MARK in path.stem else ""


def window_labels(path: Path, ends: np.ndarray, window_samples: int, sample_rate: int) -> list[str]:
    """The label of each window ending at `ends` (samples): that of every labelled event it holds whole, or that it
    lies inside (the rule training cuts windows by), joined; empty for a window clear of or cutting every event.
    Without a labels file, the file's own label (a Speech Commands clip is one word) on every window."""
    beside = labels_path(path)
    if not (beside.is_file() and beside != path):
        return [file_label(path)] * len(ends)
    events = read_labels(beside)
    out = []
    for end in ends:
        start_s, end_s = (end - window_samples) / sample_rate, end / sample_rate
        held = [e.label for e in events
                if (start_s <= e.start and e.end <= end_s) or (e.start <= start_s and end_s <= e.end)]
        out.append(LABEL_JOIN.join(dict.fromkeys(held)))
    return out


def centred(audio: np.ndarray, length: int) -> np.ndarray:
    """A clip shorter than one window, zero-padded around its middle as training pads short clips, so it still
    gives the one window `--per-file` promises; longer audio as it is."""
    if audio.size >= length:
        return audio
    out = np.zeros(length, dtype=audio.dtype)
    start = (length - audio.size) // 2
    out[start : start + audio.size] = audio
    return out


def embed_file(spotter: Spotter, audio: np.ndarray, block_ms: float = REPLAY_BLOCK_MS) -> tuple[np.ndarray, np.ndarray]:
    """The embedding of every window the engine scores over `audio`, and the sample each window ends at."""
    embedder = spotter.classifier
    if not isinstance(embedder, Embedder):
        raise TypeError("embed_file needs a Spotter built on an Embedder")
    embedder.clear()
    _, trace = run_stream(spotter, audio, block_ms)
    ends = trace.samples
    features = embedder.embeddings()
    if features.shape[0] != ends.size:  # one `predict` per hop is the engine's contract; rows must follow it
        raise RuntimeError(f"{features.shape[0]} embeddings for {ends.size} windows")
    return features, ends


def embed_files(embedder: Embedder, paths: list[Path], per_file: bool, decision: DecisionConfig | None = None,
                block_ms: float = REPLAY_BLOCK_MS, notify: Any = None) -> Table:
    """Rows for every input: one per window the engine scores, or with `per_file` one per file, the mean of its
    windows' embeddings (a clip shorter than a window centred in one first)."""
    spec = embedder.spec
    spotter = Spotter(embedder, decision)
    rate = spec.features.sample_rate
    table = Table(embedder.width)
    for path in paths:
        audio = read_input(path, rate)
        if per_file:
            features, _ = embed_file(spotter, centred(audio, spec.window_samples), block_ms)
            table.add(str(path), [audio.size / rate], [file_label(path)], features.mean(axis=0))
            continue
        features, ends = embed_file(spotter, audio, block_ms)
        if not ends.size and notify:
            notify(f"{path} is shorter than one window ({spec.window_samples / rate:g} s): no rows "
                   "(--per-file pads it to one)")
        table.add(str(path), [float(end) / rate for end in ends], window_labels(path, ends, spec.window_samples, rate),
                  features)
    return table


def check_output(path: Path) -> None:
    """Refuse an output the run could not write, before the pass over the audio rather than after it."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write {path}: the output must end in {', '.join(FORMATS)}")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError(f"writing {path} needs pyarrow, which is not installed: pip install pyarrow "
                             "(or write .csv or .npy)") from None
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")


def write_table(table: Table, path: Path) -> None:
    """The table in the format its suffix names, written atomically."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write_text(path, csv_text(table))
    elif suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, structured(table), allow_pickle=False)
        write_atomic(path, buffer.getvalue())
    else:
        write_atomic(path, parquet_bytes(table))


def feature_names(width: int) -> list[str]:
    return [f"f{i}" for i in range(width)]


def csv_text(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "offset", "label_if_known", *feature_names(table.width)])
    for file, offset, label, row in zip(table.files, table.offsets, table.labels, table.features):
        writer.writerow([file, _number(offset), label, *(_number(v) for v in row)])
    return out.getvalue()


def _number(value: float) -> str:
    return f"{value:.{CSV_DIGITS}g}" if math.isfinite(value) else ""


def structured(table: Table) -> np.ndarray:
    """One record per row, loadable with `np.load` and no pickle: `file`, `offset`, `label_if_known` and the
    features as one float32 field `embedding` of shape (N,) (`np.load(p)["embedding"]` is the plain matrix)."""
    longest = max([1, *(len(s) for s in table.files + table.labels)])
    dtype = np.dtype([("file", f"U{longest}"), ("offset", "f8"), ("label_if_known", f"U{longest}"),
                      ("embedding", "f4", (table.width,))])
    records = np.zeros(len(table), dtype=dtype)
    records["file"] = table.files
    records["offset"] = table.offsets
    records["label_if_known"] = table.labels
    records["embedding"] = table.features
    return records


def parquet_bytes(table: Table) -> bytes:
    import pyarrow
    import pyarrow.parquet

    columns: dict[str, Any] = {"file": table.files, "offset": table.offsets, "label_if_known": table.labels}
    features = table.features
    columns.update({name: features[:, i] for i, name in enumerate(feature_names(table.width))})
    buffer = io.BytesIO()
    pyarrow.parquet.write_table(pyarrow.table(columns), buffer)
    return buffer.getvalue()
