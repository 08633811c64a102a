"""Streaming evaluation: label files, the scoring rule on a hand-made case, the stream builder's ground truth,
and threshold sweeps that equal direct runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from spotter.decision import Detection
from spotter.engine import Spotter
from spotter.cli import main
from spotter import evaluation
from spotter.config import SILENCE, DecisionConfig
from spotter.evaluation import (
    SWITCHED_OFF,
    calibrate,
    false_alarm_causes,
    match,
    operating_points,
    replay,
    run_stream,
    score,
    score_traces,
    sweep,
)
from spotter.labels import Event, LabelFileError, read_labels, write_labels
from spotter.model import Classifier
from spotter.train.audio import read_audio, spoken_part
from spotter.train.streams import StreamConfig, build

RATE = 16000


def _det(label: str, seconds: float) -> Detection:
    return Detection(label, 0.9, int(round(seconds * RATE)), RATE)


def test_label_file_odd_input(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("\n1.5\t2.0\tyes\n\n3\t3.25\tturn on the light\n\\\t100\t200\n7.0\t7.0\tclap\n")
    assert read_labels(path) == [Event(1.5, 2.0, "yes"), Event(3.0, 3.25, "turn on the light"), Event(7.0, 7.0, "clap")]
    for bad, message in [
        ("2.0\t1.0\tyes\n", "before start"),
        ("one\t2\tyes\n", "must be numbers"),
        ("1.0 2.0 yes\n", "expected start<TAB>end<TAB>label"),
        ("1.0\t2.0\t\n", "label is empty"),
        ("-1\t2\tyes\n", "finite and not negative"),
    ]:
        path.write_text("0\t1\tok\n" + bad)
        with pytest.raises(LabelFileError, match=message) as info:
            read_labels(path)
        assert ":2:" in str(info.value), "the message names the line"
    with pytest.raises(LabelFileError, match="not found"):
        read_labels(tmp_path / "missing.txt")


def test_labels_round_trip_sample_exact(tmp_path: Path) -> None:
    events = [Event(k / RATE, (k + 12345) / RATE, "yes") for k in (1, 7, 16001, 3 * RATE + 9)]
    write_labels(tmp_path / "l.txt", events)
    back = read_labels(tmp_path / "l.txt")
    assert [round(e.start * RATE) for e in back] == [1, 7, 16001, 3 * RATE + 9]
    assert all(abs(e.start * RATE - round(e.start * RATE)) < 1e-3 for e in back)


def test_labels_name_what_was_heard(tmp_path: Path) -> None:
    """`_unknown_:cat` scores as `_unknown_` and names the word; other labels keep their colons."""
    events = [Event(1.0, 1.5, "_unknown_", "cat"), Event(2.0, 2.5, "door: front"), Event(3.0, 3.1, "_silence_")]
    write_labels(tmp_path / "l.txt", events)
    assert "_unknown_:cat" in (tmp_path / "l.txt").read_text()
    assert read_labels(tmp_path / "l.txt") == events


def test_false_alarms_name_what_their_window_held() -> None:
    truth = [Event(1.0, 1.5, "yes"), Event(3.0, 3.4, "_unknown_", "cat"), Event(3.6, 4.0, "_unknown_", "bed")]
    detections = [_det("stop", 4.1), _det("no", 8.0)]
    hits, false_alarms, _ = match(detections, truth)
    causes = false_alarm_causes(false_alarms, truth, window_s=1.0)
    assert not hits and [c["heard"] for c in causes] == [["cat", "bed"], []]
    assert causes[0]["label"] == "stop" and causes[0]["time_s"] == pytest.approx(4.1)


def test_scoring_hand_made_case() -> None:
    truth = [Event(1.0, 1.5, "yes"), Event(5.0, 5.4, "no"), Event(10.0, 10.5, "yes"), Event(20.0, 20.6, "_unknown_")]
    detections = [
        _det("yes", 1.9),    # hit: within 1 s after the end of the first "yes"
        _det("yes", 2.3),    # second detection of the same event: false alarm
        _det("yes", 5.2),    # wrong label inside "no": "no" is missed, this is a false alarm
        _det("yes", 11.6),   # too late (more than 1 s after 10.5): false alarm, and the event is missed
        _det("stop", 20.3),  # on an unknown word: false alarm
    ]
    result = score(detections, truth, ("yes", "no", "stop", "_unknown_", "_silence_"), duration_s=1800.0)
    overall = result["overall"]
    assert (overall["events"], overall["hits"], overall["false_alarms"]) == (3, 1, 4)
    assert overall["recall"] == pytest.approx(1 / 3)
    assert overall["false_alarms_per_hour"] == pytest.approx(8.0)
    assert overall["latency_median_s"] == pytest.approx(0.4)
    assert result["labels"]["yes"]["recall"] == 0.5 and result["labels"]["yes"]["false_alarms"] == 3
    assert result["labels"]["no"]["recall"] == 0.0 and result["labels"]["stop"]["false_alarms"] == 1
    assert result["misses"] == 2


def test_stream_ground_truth_is_sample_exact(speech_commands: Path) -> None:
    """Rebuild the stream by hand from the labels: each clean event is exactly the trimmed clip placed there."""
    config = StreamConfig(minutes=0.5, seed=4)
    audio, events = build(speech_commands, ("yes", "no"), config)
    assert audio.size == 30 * RATE and len(events) >= 5
    rebuilt = np.zeros(audio.size)
    for event in events:
        start, end = round(event.start * RATE), round(event.end * RATE)
        assert abs(event.start * RATE - start) < 1e-6 and end > start
        segment = audio[start:end]
        assert np.any(segment != 0)
        rebuilt[start:end] = segment
    # nothing outside the events: the clean stream is silent between placed clips
    np.testing.assert_array_equal(rebuilt, audio)
    others = [e for e in events if e.label == "_unknown_"]
    assert others and all(e.said and e.said not in ("yes", "no") for e in others), "other words are named"
    # and the first keyword event is the spoken part of a real clip of its label
    first = next(e for e in events if e.label in ("yes", "no"))
    segment = audio[round(first.start * RATE) : round(first.end * RATE)]
    found = False
    for path in sorted((speech_commands / first.label).glob("*.mp3")):
        clip = read_audio(path, RATE)
        s, e = spoken_part(clip, RATE)
        if e - s == segment.size and np.array_equal(clip[s:e], segment):
            found = True
            break
    assert found, "the first keyword event's audio is a trimmed clip of its label"


def test_noisy_stream_has_requested_snr(speech_commands: Path) -> None:
    clean, events = build(speech_commands, ("yes", "no"), StreamConfig(minutes=0.5, seed=4))
    noisy, events10 = build(speech_commands, ("yes", "no"), StreamConfig(minutes=0.5, seed=4, snr_db=10.0))
    assert events10 == events
    noise = noisy.astype(np.float64) - clean
    speech = np.concatenate([clean[round(e.start * RATE) : round(e.end * RATE)] for e in events if e.label != SILENCE])
    snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_sweep_point_equals_direct_run(shipped_model: Path, speech_commands: Path) -> None:
    classifier = Classifier.load(shipped_model)
    audio, truth = build(speech_commands, classifier.spec.keyword_labels, StreamConfig(minutes=1.0, seed=9))
    spotter = Spotter(classifier)
    _, trace = run_stream(spotter, audio)
    det = sweep([(trace, truth)], classifier.spec.labels, spotter.decision, np.array([0.5, 0.8]))
    for i, threshold in enumerate((0.5, 0.8)):
        decision = dataclasses.replace(spotter.decision, thresholds={}, default_threshold=threshold)
        direct, _ = run_stream(Spotter(classifier, decision), audio)
        replayed = replay(trace, classifier.spec.labels, decision)
        assert [(d.label, d.sample) for d in replayed] == [(d.label, d.sample) for d in direct]
        result = score(direct, truth, classifier.spec.labels, trace.duration_s)
        assert det["curves"]["overall"]["miss_rate"][i] == pytest.approx(1 - result["overall"]["recall"])
        assert det["curves"]["overall"]["false_alarms_per_hour"][i] == pytest.approx(
            result["overall"]["false_alarms_per_hour"]
        )
    # per-label thresholds replayed from the same trace score exactly as a direct run with them
    mixed = dataclasses.replace(spotter.decision, thresholds={k: 0.5 + 0.04 * i for i, k in enumerate(classifier.spec.keyword_labels)})
    direct, _ = run_stream(Spotter(classifier, mixed), audio)
    assert score_traces([(trace, truth)], classifier.spec.labels, mixed) == score(direct, truth, classifier.spec.labels, trace.duration_s)


def test_label_thresholds_share_the_budget(shipped_model: Path, speech_commands: Path) -> None:
    """Per-keyword thresholds keep each keyword within its equal share of the budget when replayed together."""
    classifier = Classifier.load(shipped_model)
    labels = classifier.spec.labels
    traces = []
    for seed, negatives in ((7, False), (8, True)):
        audio, truth = build(speech_commands, classifier.spec.keyword_labels, StreamConfig(minutes=2.0, seed=seed, negatives_only=negatives))
        traces.append((run_stream(Spotter(classifier), audio)[1], truth))
    decision = Spotter(classifier).decision
    target = 60.0  # false alarms per hour: 6 per keyword over these 4 minutes allow 0.4 false alarms each: none
    calibration = calibrate(traces, labels, decision, target)
    det, chosen, result = calibration.det, calibration.decision.thresholds, calibration.result
    assert result == score_traces(traces, labels, dataclasses.replace(decision, thresholds=chosen))
    share = target / len(chosen)
    assert all(result["labels"][k]["false_alarms_per_hour"] <= share for k in chosen)
    assert result["overall"]["false_alarms_per_hour"] <= target
    start = operating_points({**det, "curves": {k: det["curves"][k] for k in chosen}}, share)
    for k, t in chosen.items():  # from each keyword's point on the common sweep, only ever raised
        assert t == SWITCHED_OFF or t in det["thresholds"]
        assert t >= start.get(k, {"threshold": SWITCHED_OFF})["threshold"]


def test_eval_cli_builds_runs_and_writes_thresholds(
    shipped_model: Path, speech_commands: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`spotter eval build` then `spotter eval run --write-thresholds`, as a user runs them: the model file ends up
    with the per-keyword thresholds the report states, and the report's figures for them are a replay of its streams."""
    import json
    import shutil

    from spotter import modelfile

    streams = [tmp_path / "kw.wav", tmp_path / "neg.wav"]
    for out, extra in zip(streams, ([], ["--negatives"])):
        assert main(["eval", "build", "--data", str(speech_commands), "-o", str(out), "--minutes", "1", "--seed", "5",
                     *extra]) == 0
        assert read_labels(out.with_suffix(".txt"))
    model = tmp_path / "kws.tflite"
    shutil.copy(shipped_model, model)
    capsys.readouterr()
    assert main(["eval", "run", "-m", str(model), *map(str, streams), "--report", str(tmp_path / "r"),
                 "--write-thresholds"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    chosen = report["label_thresholds"]["thresholds"]
    assert set(chosen) == set(Classifier.load(shipped_model).spec.keyword_labels)
    assert modelfile.read_spec(model).decision.thresholds == chosen
    assert report["label_thresholds"]["overall"]["false_alarms_per_hour"] <= 0.5
    assert "per-keyword thresholds sharing 0.5 false alarms/h" in printed
    assert (tmp_path / "r" / "det.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_run_on_streams_without_events_counts_every_detection(
    shipped_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recordings with empty label files are false-alarm streams: every detection counts, the all-streams line sums
    them, no threshold is chosen, and --write-thresholds leaves the model as it was."""
    import shutil

    from .conftest import DEMO_WAV, read_clip

    classifier = Classifier.load(shipped_model)
    audio = read_clip(DEMO_WAV)
    fired = len(Spotter(classifier, classifier.spec.decision).run(audio, 100.0))
    assert fired > 0
    streams = []
    for name in ("a", "b"):
        shutil.copy(DEMO_WAV, tmp_path / f"{name}.wav")
        (tmp_path / f"{name}.txt").write_text("")
        streams.append(str(tmp_path / f"{name}.wav"))
    model = tmp_path / "kws.tflite"
    shutil.copy(shipped_model, model)
    capsys.readouterr()
    assert main(["eval", "run", "-m", str(model), *streams, "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"all 2 streams: recall - (0/0), {2 * fired} false alarms" in out
    assert "no keyword events in these streams" in out
    assert main(["eval", "run", "-m", str(model), *streams, "--report", str(tmp_path / "r"), "--write-thresholds"]) == 2
    assert "needs streams with keyword events" in capsys.readouterr().err
    assert model.read_bytes() == shipped_model.read_bytes()


def test_eval_cli_bad_input_is_one_line(
    shipped_model: Path, speech_commands: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A keyword the folder does not have, and a decision override `listen` would refuse, end in one line each."""
    assert main(["eval", "build", "--data", str(speech_commands), "-o", str(tmp_path / "s.wav"), "--minutes", "0.1",
                 "--keywords", "banana"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no validation clips of banana" in err[0] and not (tmp_path / "s.wav").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "run", "-m", str(shipped_model), str(tmp_path / "s.wav"), "--hop-ms", "0"])
    assert exit_info.value.code == 2 and "--hop-ms: must be more than 0" in capsys.readouterr().err


def test_resmoothed_trace_equals_a_direct_run(shipped_model: Path, speech_commands: Path) -> None:
    """One unsmoothed pass at a fine hop, re-smoothed at every other hop, gives what the engine gives with that hop
    and smoothing: the decision sweep's settings compare on the engine's own numbers."""
    classifier = Classifier.load(shipped_model)
    audio, _ = build(speech_commands, classifier.spec.keyword_labels, StreamConfig(minutes=0.5, seed=3))
    base = dataclasses.replace(classifier.spec.decision, hop_ms=50.0, smoothing_ms=0.0)
    _, raw = run_stream(Spotter(classifier, base), audio)
    wanted = dataclasses.replace(classifier.spec.decision, hop_ms=100.0, smoothing_ms=300.0)
    _, direct = run_stream(Spotter(classifier, wanted), audio)
    again = raw.resmoothed(classifier.spec.labels, wanted, every=2)
    np.testing.assert_array_equal(again.samples, direct.samples)
    np.testing.assert_allclose(again.smoothed, direct.smoothed, atol=1e-6)


def test_eval_build_on_the_runtime_install_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without soundfile (the runtime install, `pip install .`), `eval build` says in one line what to install."""
    import sys

    for name in [n for n in sys.modules if n.startswith("spotter.train.") and n != "spotter.train.options"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "soundfile", None)  # import soundfile now raises ImportError
    assert main(["eval", "build", "-o", str(tmp_path / "s.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spotter: eval build needs soundfile, which the runtime install leaves out: pip install 'spotter[train]'"]


def test_sound_event_scores_follow_the_dcase_collars() -> None:
    """sed_eval's event-based F1 takes an onset 150 ms off but not one 300 ms off (200 ms collar), and a long
    event's offset up to half its length off; segment-based F1 on 1 s segments barely notices either."""
    labels = ("dog", "rain", "_unknown_", "_silence_")
    truth = [Event(1.0, 1.4, "dog"), Event(5.0, 15.0, "rain"), Event(20.0, 20.5, "_unknown_")]
    near = [Event(1.15, 1.5, "dog"), Event(5.1, 12.0, "rain")]
    far = [Event(1.3, 1.6, "dog"), Event(5.1, 9.0, "rain")]
    exact = evaluation.sed_metrics({"a": (truth, truth)}, labels)
    assert exact is not None and exact["event_based"]["f1"] == 1.0 and exact["segment_based"]["error_rate"] == 0.0
    assert evaluation.sed_metrics({"a": (truth, near)}, labels)["event_based"]["f1"] == 1.0  # type: ignore[index]
    off = evaluation.sed_metrics({"a": (truth, far)}, labels)
    assert off is not None and off["event_based"]["f1"] == 0.0 and off["event_based"]["labels"]["dog"]["events"] == 1
    assert off["segment_based"]["f1"] > 0.5


def test_extents_give_every_label_its_bounds() -> None:
    """Short labels too get the stretch their score stayed above the threshold, moved back by the trigger's lag."""
    labels = ("dog", "_unknown_")
    decision = DecisionConfig(smoothing_ms=0, refractory_ms=1000, default_threshold=0.5, bridge_ms=0)
    samples = np.arange(1, 51) * 1600
    dog = ((samples >= 10 * 1600) & (samples < 20 * 1600)).astype(float)
    trace = evaluation.Trace(samples, np.stack([dog, 1 - dog], axis=1), 16000, 5.0, 16000, 1600)
    (event,) = evaluation.extents(trace, labels, decision)
    assert (event.label, event.start, event.end) == ("dog", 0.5, 1.5)
