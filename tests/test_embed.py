"""`spotter embed`: one row per window the engine scores (or per file), the same rows however the audio is chunked,
the classifier's real input, labels from a labels file or a Speech Commands folder, and one line for bad input."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spotter import modelfile
from spotter.cli import main
from spotter.embedding import Embedder, centred, classifier_inputs, embed_file, embed_files
from spotter.engine import Spotter
from spotter.features import LogMel
from spotter.labels import read_labels
from spotter.model import softmax
from spotter.modelfile import ModelFileError
from spotter.sources import WavFile

from .conftest import DEMO_LABELS, DEMO_WAV, SHIPPED_MODEL, write_wav

ODD_SAMPLES = 16000 * 5 + 3717
"""A length that ends mid-frame and mid-hop, so the count of windows is not a round number."""


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(*modelfile.read(SHIPPED_MODEL))


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    return np.concatenate(list(WavFile(DEMO_WAV, 16000)))


def expected_windows(embedder: Embedder, samples: int) -> int:
    """Windows the engine scores over `samples`, counted from the spec alone."""
    spec = embedder.spec
    frames = spec.features.frames_for(samples)
    hop = max(1, round(spec.decision.hop_ms / spec.features.step_ms))
    return 0 if frames < spec.window_frames else 1 + (frames - spec.window_frames) // hop


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_one_row_per_window_whatever_the_chunks(embedder: Embedder, demo: np.ndarray) -> None:
    audio = demo[:ODD_SAMPLES]
    spotter = Spotter(embedder)
    whole, ends = embed_file(spotter, audio, block_ms=1000.0 * audio.size / 16000)
    assert whole.shape == (expected_windows(embedder, audio.size), embedder.width)
    assert np.all(np.diff(ends) == spotter.hop_frames * embedder.spec.features.step_samples)
    for block_ms in (100.0, 37.0):
        chunked, chunked_ends = embed_file(spotter, audio, block_ms)
        np.testing.assert_array_equal(chunked_ends, ends)
        np.testing.assert_array_equal(chunked, whole)
    assert np.ptp(whole, axis=0).max() > 0, "the rows differ between windows of speech and of silence"


def real_values(interpreter: Any, index: int) -> np.ndarray:
    """A constant tensor's real values from its own (per-tensor or per-channel) scales and zero points."""
    details = next(t for t in interpreter.get_tensor_details() if t["index"] == index)
    values = interpreter.get_tensor(index).astype(np.float64)
    quantization = details["quantization_parameters"]
    if not quantization["scales"].size:
        return values
    shape = [1] * values.ndim
    shape[quantization["quantized_dimension"]] = -1
    return (values - quantization["zero_points"].reshape(shape)) * quantization["scales"].reshape(shape)


def test_embedding_is_what_the_classifier_layer_reads(embedder: Embedder, demo: np.ndarray) -> None:
    """The dequantised rows, put through the last dense layer's own weights, give the model's posteriors."""
    interpreter = embedder._interpreter
    heads = [op for op in interpreter._get_ops_details()
             if op["op_name"] == "FULLY_CONNECTED" and op["inputs"][0] in {t["index"] for t in embedder.tensors}]
    assert len(heads) == len(embedder.tensors) >= 1
    spec = embedder.spec
    windows = np.stack([demo[start : start + spec.window_samples] for start in (0, 20000, 150000, 400000)])
    frames = LogMel(spec.features).compute_batch(windows)
    assert frames.shape[1] == spec.window_frames
    embedder.clear()
    posteriors = embedder.predict(frames)
    rows = embedder.embeddings()
    assert rows.shape == (len(windows), embedder.width)
    logits, column = [], 0
    for head, width in zip(heads, embedder.widths):  # an ensemble's members' scores are averaged
        weights, bias = (real_values(interpreter, i) for i in head["inputs"][1:3])
        logits.append(rows[:, column : column + width] @ weights.T + bias)
        column += width
    recomputed = softmax(np.mean(logits, axis=0))
    np.testing.assert_allclose(recomputed, posteriors, atol=0.03)
    assert len(set(posteriors.argmax(axis=1).tolist())) > 1, "the windows hold different things"
    assert posteriors.argmax(axis=1).tolist() == recomputed.argmax(axis=1).tolist()


def test_the_classifier_layers_are_found_in_the_graph() -> None:
    """The dense ops that give one score per label (an ensemble has one per member); else the last dense op; none
    refused."""
    ops = [{"op_name": "CONV_2D", "inputs": [0, 1, 2], "outputs": [3]}, {"op_name": "MEAN", "inputs": [3, 4], "outputs": [5]}]
    widths = {9: 12, 10: 64, 11: 12, 12: 12}.__getitem__
    with pytest.raises(ModelFileError, match="no FULLY_CONNECTED op"):
        classifier_inputs(ops, widths, 12)
    hidden = {"op_name": "FULLY_CONNECTED", "inputs": [5, 6, 7], "outputs": [10]}
    members = [{"op_name": "FULLY_CONNECTED", "inputs": [8, 6, 7], "outputs": [11]},
               {"op_name": "FULLY_CONNECTED", "inputs": [13, 6, 7], "outputs": [12]}]
    assert classifier_inputs([*ops, hidden, members[0]], widths, 12) == [8]
    assert classifier_inputs([*ops, hidden, *members], widths, 12) == [8, 13]
    assert classifier_inputs([*ops, members[0], hidden], widths, 3) == [5]  # no 3-wide head: the last dense op


def test_cli_refuses_a_model_without_a_dense_layer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    listed = Interpreter._get_ops_details
    monkeypatch.setattr(Interpreter, "_get_ops_details",
                        lambda self: [op for op in listed(self) if op["op_name"] != "FULLY_CONNECTED"])
    code, out, err = run_main("embed", str(DEMO_WAV), "-o", str(tmp_path / "x.csv"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().count("\n") == 0 and "no FULLY_CONNECTED op" in err
    assert not (tmp_path / "x.csv").exists()


def test_per_window_rows_carry_the_labels_file(tmp_path: Path, embedder: Embedder) -> None:
    code, _, err = run_main("embed", str(DEMO_WAV), "-o", str(tmp_path / "demo.csv"))
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "demo.csv").open()))
    samples = sum(c.size for c in WavFile(DEMO_WAV, 16000))
    assert len(rows) == expected_windows(embedder, samples)
    assert [k for k in rows[0]][:3] == ["file", "offset", "label_if_known"] and len(rows[0]) == 3 + embedder.width
    window_s = embedder.spec.window_samples / 16000
    events = read_labels(DEMO_LABELS)
    for row in rows:
        end = float(row["offset"])
        held = [e.label for e in events if end - window_s <= e.start and e.end <= end]
        assert row["label_if_known"] == "+".join(dict.fromkeys(held)), row["offset"]
    assert {r["label_if_known"] for r in rows} >= {"", "yes", "stop", "_unknown_"}


def test_per_file_one_row_each_with_folder_labels(tmp_path: Path, speech_commands: Path, embedder: Embedder) -> None:
    clips = [sorted((speech_commands / word).glob("*.mp3"))[0] for word in ("marvin", "yes")]
    short = write_wav(tmp_path / "short.wav", np.full(4000, 300, dtype=np.int16))  # a quarter of a window
    inputs = [*map(str, clips), str(short)]
    code, _, err = run_main("embed", *inputs, "--per-file", "-o", str(tmp_path / "clips.npy"))
    assert code == 0, err
    table = np.load(tmp_path / "clips.npy")
    assert table["file"].tolist() == inputs
    assert table["label_if_known"].tolist() == ["marvin", "yes", ""]
    assert table["offset"][2] == pytest.approx(0.25)
    assert table["embedding"].shape == (3, embedder.width)
    from spotter.train.audio import read_audio

    clip = read_audio(clips[0], 16000)
    alone, _ = embed_file(Spotter(embedder), centred(clip, embedder.spec.window_samples))
    np.testing.assert_array_equal(table["embedding"][0], alone.mean(axis=0))
    code, _, err = run_main("embed", *inputs, "--per-file", "-o", str(tmp_path / "clips.csv"))
    assert code == 0, err
    rows = list(csv.reader((tmp_path / "clips.csv").open()))[1:]
    assert len(rows) == 3
    np.testing.assert_array_equal(np.array([r[3:] for r in rows], dtype=np.float32), table["embedding"])


def test_a_file_shorter_than_a_window_has_no_window_rows(tmp_path: Path, embedder: Embedder) -> None:
    short = write_wav(tmp_path / "short.wav", np.zeros(8000, dtype=np.int16))
    table = embed_files(embedder, [short], per_file=False)
    assert len(table) == 0 and table.features.shape == (0, embedder.width)
    assert len(embed_files(embedder, [short], per_file=True)) == 1


def test_parquet_needs_pyarrow(tmp_path: Path) -> None:
    out = tmp_path / "demo.parquet"
    code, _, err = run_main("embed", str(DEMO_WAV), "-o", str(out))
    try:
        import pyarrow.parquet
    except ImportError:
        assert code == 2 and "needs pyarrow" in err and err.count("\n") == 1 and not out.exists()
        return
    assert code == 0, err
    table = pyarrow.parquet.read_table(out)
    assert table.column_names[:4] == ["file", "offset", "label_if_known", "f0"]


@pytest.mark.parametrize("case", ["missing", "not-audio", "wrong-model", "bad-output", "no-folder"])
def test_bad_input_is_one_line(tmp_path: Path, case: str) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio at all")
    args = {
        "missing": [str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.csv")],
        "not-audio": [str(junk), "-o", str(tmp_path / "x.csv")],
        "wrong-model": ["-m", str(DEMO_WAV), str(DEMO_WAV), "-o", str(tmp_path / "x.csv")],
        "bad-output": [str(DEMO_WAV), "-o", str(tmp_path / "x.txt")],
        "no-folder": [str(DEMO_WAV), "-o", str(tmp_path / "nowhere" / "x.csv")],
    }[case]
    code, out, err = run_main("embed", *args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("spotter: ")
    assert not (tmp_path / "x.csv").exists()
