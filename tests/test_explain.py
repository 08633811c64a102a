"""`spotter explain`: occlusion finds the keyword in a real clip, a PNG and JSON per detection at the engine's own
offsets, one line for bad input, and neither embed nor explain imports TensorFlow."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spotter import modelfile
from spotter.cli import main
from spotter.engine import Spotter
from spotter.explain import WindowTap, replay
from spotter.sources import WavFile

from .conftest import DEMO_WAV, SHIPPED_MODEL, read_clip, write_wav

RATE = 16000
PAD_S = 1.0
"""Quiet padding either side of the clip: room for windows that hold the word and silence around it."""
PAD_RMS = 3.0
"""The padding is a quiet room (about -80 dBFS), not digital silence, so occluding it is not trivially a no-op."""
WORD_MARGIN_S = 0.2
"""The clip's own quiet before and after the word, at least: a clip that cuts its word off is passed over."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEMO_SECONDS = 6.0
"""The demo's first two keywords (yes, no): enough detections to check, few PNGs to draw."""


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def padded_yes(speech_commands: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """The first real "yes" clip whose word (found by the project's word finder) is whole inside it, in quiet
    padding, as a WAV; with the word's first and last sample in it."""
    from spotter.train.audio import locate

    margin = int(WORD_MARGIN_S * RATE)
    for path in sorted((speech_commands / "yes").glob("*.mp3")):
        clip = read_clip(path)
        start, end = locate(clip, RATE)
        if start >= margin and end <= clip.size - margin:
            break
    pad = int(PAD_S * RATE)
    noise = np.random.default_rng(0).normal(0.0, PAD_RMS, pad * 2 + clip.size)
    audio = np.round(noise).astype(np.int16)
    audio[pad : pad + clip.size] += clip
    path = write_wav(tmp_path_factory.mktemp("explain") / "yes-padded.wav", audio)
    return path, pad + start, pad + end


def test_occluding_the_keyword_lowers_its_score_more_than_silence(padded_yes: tuple[Path, int, int],
                                                                    tmp_path: Path) -> None:
    path, start, end = padded_yes
    centre_s = (start + end) / 2 / RATE
    at = centre_s + 0.5  # the window ending here is centred on the word, with silence either side
    code, out, err = run_main("explain", str(path), "--at", f"{at:.3f}", "--label", "yes", "-o", str(tmp_path))
    assert code == 0, err
    shown = json.loads(out)
    numbers = json.loads(Path(shown["json"]).read_text())
    assert numbers["window_score"] > 0.5, "the model hears the word in this window"
    occlusion = numbers["occlusion"]
    drops = np.array(occlusion["drops"])
    step_s = modelfile.read_spec(SHIPPED_MODEL).features.step_ms / 1000.0
    patch_s = occlusion["patch_frames"] * step_s
    patch_starts = numbers["window_start_s"] + np.arange(drops.shape[0]) * patch_s
    speech = (patch_starts < end / RATE) & (patch_starts + patch_s > start / RATE)
    silence = (patch_starts + patch_s <= start / RATE) | (patch_starts >= end / RATE)
    assert speech.sum() >= 2 and silence.sum() >= 2, (speech, silence)
    by_time = drops.max(axis=1)  # the strongest band patch at each time
    assert by_time[speech].max() > 0.1, "occluding part of the word costs the score something"
    assert by_time[speech].max() > by_time[silence].max()
    assert drops[speech].mean() > drops[silence].mean()


def test_one_png_and_json_per_detection(tmp_path: Path) -> None:
    audio = np.concatenate(list(WavFile(DEMO_WAV, RATE)))[: int(DEMO_SECONDS * RATE)]
    short = write_wav(tmp_path / "demo-start.wav", audio)
    tap = WindowTap(*modelfile.read(SHIPPED_MODEL))
    spotter = Spotter(tap)
    run, _ = replay(spotter, audio)
    detections = spotter.run(audio)
    assert [d.label for d in detections] == ["yes", "no"]
    code, out, err = run_main("explain", str(short), "--detections", "-o", str(tmp_path / "out"))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["label"] for line in lines] == ["yes", "no"]
    assert [line["offset"] for line in lines] == [round(d.offset, 4) for d in detections]
    for line, detection in zip(lines, detections):
        png, numbers = Path(line["png"]), json.loads(Path(line["json"]).read_text())
        assert png.read_bytes()[:8] == PNG_MAGIC and png.parent == tmp_path / "out"
        assert np.array(numbers["window"]).shape == (tap.spec.window_frames, tap.spec.features.n_mels)
        assert numbers["detection_score"] == round(detection.score, 4)
        hop = int(np.flatnonzero(run.ends == detection.sample)[0])
        label = tap.spec.labels.index(detection.label)
        assert numbers["window_score"] == pytest.approx(float(run.raw[hop, label]), abs=1e-4)
        assert numbers["offset_s"] in numbers["trace"]["offset_s"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [Path(line["png"]).name for line in lines] + [Path(line["json"]).name for line in lines])


@pytest.mark.parametrize("case", ["outside", "negative", "missing", "wrong-model", "label", "patch"])
def test_bad_input_is_one_line(tmp_path: Path, case: str) -> None:
    args = {
        "outside": [str(DEMO_WAV), "--at", "500"],
        "negative": [str(DEMO_WAV), "--at", "-1"],
        "missing": [str(tmp_path / "missing.wav"), "--at", "1"],
        "wrong-model": ["-m", str(DEMO_WAV), str(DEMO_WAV), "--at", "1"],
        "label": [str(DEMO_WAV), "--at", "1", "--label", "hello"],
        "patch": [str(DEMO_WAV), "--at", "1", "--patch-bands", "0"],
    }[case]
    code, out, err = run_main("explain", *args, "-o", str(tmp_path / "out"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("spotter: "), err
    assert not (tmp_path / "out").exists()


def test_without_matplotlib_one_line_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    code, out, err = run_main("explain", str(DEMO_WAV), "--at", "1.7", "-o", str(tmp_path / "out"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "pip install" in err and "matplotlib" in err


def test_embed_and_explain_never_import_tensorflow(tmp_path: Path) -> None:
    audio = np.concatenate(list(WavFile(DEMO_WAV, RATE)))[: 2 * RATE]
    short = write_wav(tmp_path / "two-seconds.wav", audio)
    code = (
        "import sys; from spotter.cli import main; "
        f"assert main(['embed', {str(short)!r}, '-o', {str(tmp_path / 'e.npy')!r}]) == 0; "
        f"assert main(['explain', {str(short)!r}, '--at', '1.7', '-o', {str(tmp_path / 'x')!r}]) == 0; "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
