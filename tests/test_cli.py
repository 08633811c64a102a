"""`spotter listen` as a user runs it: file and stdin modes, the output contract, and every bad input.

Most calls run `spotter.cli.main` in this process (the same exit path, seconds faster); what needs a real process
(a closed pipe, signals, the first import, the `spotter` entry point itself) runs one."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from spotter.cli import main
from spotter.cli.train import CONFIG_FLAGS, config_of
from spotter.model import Classifier
from spotter.sources import WavFile
from spotter.train.options import TrainConfig

from .conftest import DEMO_WAV, SHIPPED_MODEL, write_wav

BORDERLINE_SCORE = 0.01
"""A detection this close above its threshold may come or go with a resampler's rounding."""

SPOTTER = [sys.executable, "-m", "spotter"]


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes


def listen(*args: str) -> Result:
    """`spotter listen --quiet ...` through `main`, with stdout and stderr of its own."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["listen", "--quiet", *args])
    return Result(code, out.getvalue().encode(), err.getvalue().encode())


def events(result: Result | subprocess.CompletedProcess[bytes]) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def assert_one_clear_line(result: Result, pattern: str, stdout_ok: bool = False) -> None:
    err = result.stderr.decode()
    assert result.returncode != 0
    assert "Traceback" not in err
    assert stdout_ok or result.stdout == b""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("spotter: ") and pattern in lines[-1], err


@pytest.fixture(scope="module")
def demo_pcm() -> np.ndarray:
    return np.concatenate(list(WavFile(DEMO_WAV, 16000)))


@pytest.fixture(scope="module")
def file_result() -> subprocess.CompletedProcess[bytes]:
    """The installed entry point in a process of its own, as a user runs it."""
    return subprocess.run([*SPOTTER, "listen", "--quiet", "--input", str(DEMO_WAV)], capture_output=True, timeout=60)


def test_file_mode_output_contract(file_result: subprocess.CompletedProcess[bytes]) -> None:
    assert file_result.returncode == 0, file_result.stderr.decode()
    found = events(file_result)
    assert len(found) >= 8
    for event in found:
        assert set(event) >= {"label", "score", "offset", "timestamp"}
        assert isinstance(event["label"], str) and event["label"] not in ("_unknown_", "_silence_")
        assert 0.0 <= event["score"] <= 1.0 and event["offset"] > 0
        assert event["timestamp"].endswith("+00:00") and "." in event["timestamp"]
    err = file_result.stderr.decode().splitlines()
    assert err[0].startswith("spotter: model kws.tflite") and "16000 Hz" in err[0]
    assert "33.4 s of audio" in err[-1] and f"{len(found)} detections" in err[-1] and "0 dropped" in err[-1]


def test_stdin_mode_equals_file_mode(file_result: subprocess.CompletedProcess[bytes], demo_pcm: np.ndarray) -> None:
    piped = subprocess.run([*SPOTTER, "listen", "--quiet", "--input", "-"], input=demo_pcm.astype("<i2").tobytes(),
                           capture_output=True, timeout=60)  # a real pipe: stdin is read by file descriptor
    assert piped.returncode == 0, piped.stderr.decode()
    strip = lambda found: [(e["label"], e["score"], e["offset"]) for e in found]  # noqa: E731
    assert strip(events(piped)) == strip(events(file_result))


def test_other_rate_and_stereo_are_converted(file_result, demo_pcm: np.ndarray, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    resampled = resample_poly(demo_pcm.astype(np.float64), 441, 160)
    stereo = np.stack([resampled, resampled], axis=1).round().clip(-32768, 32767)
    path = write_wav(tmp_path / "stereo44k.wav", stereo, 44100)
    result = listen("--input", str(path))
    assert result.returncode == 0, result.stderr.decode()
    original, converted = events(file_result), events(result)
    decision = Classifier.load(SHIPPED_MODEL).spec.decision

    def unmatched(mine: list[dict], theirs: list[dict]) -> list[dict]:
        """Events the other run has no counterpart for (same label, within one hop)."""
        hop = decision.hop_ms / 1000 + 1e-6
        return [e for e in mine if not any(o["label"] == e["label"] and abs(o["offset"] - e["offset"]) <= hop
                                           for o in theirs)]

    assert len(original) >= 8
    # resampling changes scores by a few thousandths: only a detection that barely passed its threshold may differ
    for event in unmatched(original, converted) + unmatched(converted, original):
        assert event["score"] < decision.threshold_for(event["label"]) + BORDERLINE_SCORE, event
    assert len(unmatched(original, converted)) <= 1 and len(unmatched(converted, original)) <= 1


def test_threshold_overrides(file_result: subprocess.CompletedProcess[bytes]) -> None:
    assert events(listen("--input", str(DEMO_WAV), "--threshold", "1.0")) == []
    first = events(file_result)[0]["label"]
    only_first_blocked = events(listen("--input", str(DEMO_WAV), "--threshold", f"{first}=1.0"))
    assert only_first_blocked and first not in {e["label"] for e in only_first_blocked}
    assert_one_clear_line(listen("--input", str(DEMO_WAV), "--threshold", "banana=0.5"), "no label 'banana'")
    assert_one_clear_line(listen("--input", str(DEMO_WAV), "--threshold", "yes=high"), "expected VALUE")


def test_bad_models(tmp_path: Path) -> None:
    assert_one_clear_line(listen("--model", str(tmp_path / "missing.tflite"), "--input", str(DEMO_WAV)), "not found")
    assert_one_clear_line(listen("--model", str(DEMO_WAV), "--input", str(DEMO_WAV)), "not a TFLite model")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00\x00\x00\x00TFL3" + bytes(200))
    assert_one_clear_line(listen("--model", str(junk), "--input", str(DEMO_WAV)), "without spotter metadata")


def test_bad_audio(tmp_path: Path) -> None:
    assert_one_clear_line(listen("--input", str(tmp_path / "missing.wav")), "not found")
    text = tmp_path / "text.wav"
    text.write_text("not audio at all")
    assert_one_clear_line(listen("--input", str(text)), "not a PCM WAV")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(DEMO_WAV.read_bytes()[: 16000 * 2 * 3])
    result = listen("--input", str(truncated))
    assert_one_clear_line(result, "truncated", stdout_ok=True)  # detections before the cut are still written
    assert "3.0 s of audio" in result.stderr.decode(), "the audio before the cut is still processed and counted"


def test_closed_stdout_exits_quietly() -> None:
    shell = f"{' '.join(SPOTTER)} listen --quiet --threshold 0.3 --input {DEMO_WAV} | head -1"
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {shell}"], capture_output=True, timeout=60)
    assert len(result.stdout.decode().splitlines()) == 1
    assert "Traceback" not in result.stderr.decode() and "Error" not in result.stderr.decode()
    assert result.returncode == 141


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_flushes_and_exits_zero(signum: int, demo_pcm: np.ndarray) -> None:
    proc = subprocess.Popen([*SPOTTER, "listen", "--quiet", "--input", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    assert proc.stderr is not None
    proc.stdin.write(demo_pcm[: 16000 * 12].astype("<i2").tobytes())
    proc.stdin.flush()
    banner = proc.stderr.readline().decode()  # written once the model is loaded, just before reading starts
    assert banner.startswith("spotter: model")
    time.sleep(2)  # 12 s of audio take well under a second to process; stdin stays open
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert "12.0 s of audio" in err.decode()
    assert len(out.decode().splitlines()) >= 2, "detections made before the signal are written"


def test_sounddevice_only_for_the_microphone() -> None:
    code = (
        "import sys; from spotter.cli import main; "
        f"rc = main(['listen', '--quiet', '--input', {str(DEMO_WAV)!r}]); "
        "assert rc == 0; assert 'sounddevice' not in sys.modules, 'file mode imported sounddevice'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


def test_info_prints_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labels"][-2:] == ["_unknown_", "_silence_"] and info["window_frames"] == 98


def test_decision_overrides_are_validated(capsys: pytest.CaptureFixture[str]) -> None:
    for flag, value in (("--hop-ms", "0"), ("--refractory-ms", "-5"), ("--smoothing-ms", "nan")):
        with pytest.raises(SystemExit) as exit_info:
            main(["listen", "--input", str(DEMO_WAV), flag, value])
        assert exit_info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


def test_train_flags_are_derived_from_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    """Every config flag shows its config default in --help, and parsed flags land in the config fields they name."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    defaults = TrainConfig()
    for flag, value in (("--epochs", defaults.epochs), ("--shift-ms", defaults.augment.shift_ms),
                        ("--variants", defaults.feature_variants), ("--noise-floor", defaults.features.noise_floor)):
        assert flag in help_text and f"(default: {value})" in help_text
    from spotter.cli import build_parser

    args = build_parser().parse_args([
        "train", "--epochs", "7", "--shift-ms", "400", "--keyword-inside", "--variants", "2", "--compression", "pcen",
        "--hard-negatives", "0", "--arch", "tc-resnet8", "--max-per-word", "5", "--no-tune",
    ])
    config = config_of(args)
    assert (config.epochs, config.augment.shift_ms, config.augment.keyword_inside, config.feature_variants) == (7, 400.0, True, 2)
    assert (config.features.compression, config.hard_negative_share, config.architecture) == ("pcen", 0.0, "tc-resnet8")
    assert config.max_per_word == 5 and config.tune is None and config.augment.speed_min == defaults.augment.speed_min
    assert len(CONFIG_FLAGS) == len(set(CONFIG_FLAGS))
    noisy = config_of(build_parser().parse_args(["train", "--snr-min", "-10", "--snr-max", "15"]))
    assert (noisy.augment.snr_db_min, noisy.augment.snr_db_max) == (-10.0, 15.0)


def test_train_refuses_an_snr_range_upside_down(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--snr-min", "10", "--snr-max", "0", "-o", "unused.tflite"]) == 2
    assert capsys.readouterr().err.strip() == "spotter train: --snr-min (10 dB) is above --snr-max (0 dB)"


def test_default_data_named_by_another_path_keeps_the_ten_words() -> None:
    """`--data /abs/path/to/speech_commands` is the default data: its ten keywords, not every one of its word folders."""
    import argparse

    from spotter.cli.train import choose_labels

    default = Path(TrainConfig().data[0])
    args = argparse.Namespace(labels=None)
    assert choose_labels(args, (str(default.resolve()),)) == choose_labels(args, TrainConfig().data)
    assert choose_labels(args, (str(default.resolve()),))[:10] == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


EVENTS_DEMO = DEMO_WAV.parent / "events.wav"


def test_event_model_lines_are_the_same_from_file_and_stdin() -> None:
    """The shipped event model on its demo: lasting sounds give start and end lines carrying their bounds, in
    pairs, short ones a single line, and raw PCM on stdin gives exactly the same lines as the file."""
    from_file = listen("--model", "events", "--input", str(EVENTS_DEMO))
    assert from_file.returncode == 0, from_file.stderr.decode()
    lasting = Classifier.load(SHIPPED_MODEL.parent / "events.tflite").spec.decision.lasting
    found = events(from_file)
    assert any(e.get("event") == "end" for e in found), found
    open_events: dict[str, dict] = {}  # type: ignore[type-arg]
    for line in found:
        if line["label"] not in lasting:
            assert "event" not in line and "start" not in line, line
        elif line["event"] == "start":
            assert line["label"] not in open_events and line["start"] <= line["offset"], line
            open_events[line["label"]] = line
        else:
            began = open_events.pop(line["label"])
            assert line["start"] == began["start"] < line["end"] <= line["offset"], line
            assert line["duration"] == pytest.approx(line["end"] - line["start"], abs=1.5e-3)  # each rounded to 1 ms
    assert not open_events, "every start has its end, the last ones at the end of the input"
    pcm = np.concatenate(list(WavFile(EVENTS_DEMO, 16000))).astype("<i2").tobytes()
    piped = subprocess.run([*SPOTTER, "listen", "--quiet", "--model", "events", "--input", "-"], input=pcm,
                           capture_output=True, timeout=60)
    strip = lambda lines: [{k: v for k, v in e.items() if k != "timestamp"} for e in lines]  # noqa: E731
    assert strip(events(piped)) == strip(found)


@pytest.mark.parametrize(("flag", "opened_with"), [([], 200.0), (["--block-ms", "150"], 150.0), (["--block-ms", "20"], 100.0)])
def test_listen_opens_the_microphone_with_blocks_of_at_least_a_hop(
    flag: list[str], opened_with: float, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--block-ms trades latency for CPU (config.MIC_BLOCK_MS), but never below the model's 100 ms hop."""
    from spotter import sources

    opened: list[float] = []

    def fake_microphone(device: str | None, rate: int, block_ms: float, **kwargs: object) -> None:
        opened.append(block_ms)
        raise sources.AudioError("no microphone in this test")

    monkeypatch.setattr(sources, "Microphone", fake_microphone)
    assert main(["listen", "--quiet", *flag]) == 2
    assert opened == [opened_with]
    assert capsys.readouterr().err.strip().endswith("no microphone in this test")


def test_listen_refuses_a_block_size_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["listen", "--block-ms", "5"])
    assert exit_info.value.code == 2
    assert "--block-ms: must be between 10 and 1000 ms" in capsys.readouterr().err
