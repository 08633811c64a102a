"""Training end to end on a small slice of the pool: a model file whose metadata reads back and whose
interpreter agrees with the Keras model it came from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="training tests need the train extra")

import keras  # noqa: E402

from spotter import modelfile  # noqa: E402
from spotter.model import Classifier  # noqa: E402
from spotter.train import architectures, export, report  # noqa: E402
from spotter.train.data import load_pool, split_of  # noqa: E402
from spotter.train.fit import train  # noqa: E402
from spotter.train.options import TrainConfig, TuneSettings  # noqa: E402

INT8_TOLERANCE = 0.1
"""int8 posteriors may differ from the float model's by at most this much per label (one quantisation step of
the logits is about 0.1; the rest comes from int8 weights and activations)."""


@pytest.fixture(scope="module")
def trained(speech_commands: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One tiny run that every test here reads: mining every epoch and variants redrawn every other epoch, so the
    resume test's uninterrupted reference exercises all the state a checkpoint must carry."""
    out = tmp_path_factory.mktemp("train") / "tiny.tflite"
    config = dataclasses.replace(
        TrainConfig(), data=(str(speech_commands),), max_per_word=12, epochs=3, per_class=16, batch_size=16,
        steps_per_epoch=3, tune=TuneSettings(keyword_minutes=0.5, negative_minutes=0.5), mine_every=1,
        feature_variants=2, refresh_epochs=2, select_snr_db=10.0,
    )
    return train(config, out), out, config


def test_model_file_and_report(trained) -> None:  # type: ignore[no-untyped-def]
    result, out, config = trained
    spec = modelfile.read_spec(out)
    assert spec.labels == config.labels
    assert spec.window_frames == 98 and spec.features == config.features
    assert spec.quantization == "int8" and spec.architecture == "ds-cnn"
    assert set(spec.decision.thresholds) == set(spec.keyword_labels)
    assert all(0.3 <= t <= 1.0 for t in spec.decision.thresholds.values())
    streaming = spec.metrics["streaming"]
    assert {"validation/clean", "validation/10 dB", "test/clean", "test/10 dB"} <= set(streaming)
    assert all(0.0 <= c["recall"] <= 1.0 for c in streaming.values())
    card = out.with_suffix(".md").read_text()
    assert "| validation/clean |" in card and "tiny.det.png" in card
    assert out.with_suffix(".det.png").read_bytes()[:4] == b"\x89PNG"
    assert spec.training["config"]["epochs"] == 3 and spec.training["config"]["hard_negative_share"] == 0.25
    assert spec.training["config"]["select_snr_db"] == 10.0
    assert spec.training["recordings"]["bridge_ms"] > 0  # alignment settings travel with the model
    assert spec.training["data_summary"]["validation"]["speakers"] > 0
    assert spec.metrics["parameters"] == architectures.count_parameters(result.model)
    assert 0.0 <= spec.metrics["int8_validation_accuracy"] <= 1.0
    confusion = json.loads(out.with_suffix(".confusion.json").read_text())
    assert np.asarray(confusion["confusion"]).shape == (12, 12)
    assert out.with_suffix(".confusion.png").read_bytes()[:4] == b"\x89PNG"
    reloaded = keras.models.load_model(out.with_suffix(".keras"))
    windows = np.random.default_rng(1).normal(8.0, 3.0, (2, 98, 40)).astype(np.float32)
    np.testing.assert_allclose(reloaded.predict(windows, verbose=0), result.model.predict(windows, verbose=0), atol=1e-6)
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert len(report["metrics"]["history"]) == 3


def test_card_keeps_hand_written_notes(trained) -> None:  # type: ignore[no-untyped-def]
    result, out, config = trained
    card = out.with_suffix(".md")
    card.write_text(card.read_text() + "Heard fine in my kitchen.\n")
    for _ in range(2):  # retrained twice: the notes survive, once
        report.write_card(card, out, result.spec, result.metrics, config)
    text = card.read_text()
    assert text.count("Heard fine in my kitchen.") == 1
    assert text.index("## Reproduce") < text.index(report.KEEP_MARK) < text.index("Heard fine")


def test_config_round_trips_and_card_follows_new_thresholds(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What `spotter eval run --write-thresholds` does to a trained model: new thresholds in the file, and the card
    rewritten from file and report to state them."""
    import shutil

    result, out, config = trained
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    model = tmp_path / "tiny.tflite"
    for suffix in (".tflite", ".report.json", ".md"):
        shutil.copy(out.with_suffix(suffix), model.with_suffix(suffix))
    spec = modelfile.read_spec(model)
    thresholds = {label: 0.9994 for label in spec.keyword_labels} | {"yes": 1.01}
    modelfile.update_spec(model, spec.replace(decision=dataclasses.replace(spec.decision, thresholds=thresholds)))
    assert report.refresh_card(model) == model.with_suffix(".md")
    card = model.with_suffix(".md").read_text()
    decision_row = next(line for line in card.splitlines() if line.startswith("| Decision"))
    assert "yes off" in decision_row and "no 0.9994," in decision_row and report.KEEP_MARK in card, decision_row


def test_interpreter_matches_keras(trained) -> None:  # type: ignore[no-untyped-def]
    result, out, _ = trained
    rng = np.random.default_rng(0)
    windows = (rng.standard_normal((8, 98, 40)) * 2 + 8).astype(np.float32)
    keras_out = result.model.predict(windows, verbose=0)
    assert result.spec.outputs == "logits"  # exported before the softmax; the classifier applies it
    float_model = Classifier(export.to_tflite(architectures.logits_model(result.model)), result.spec)
    np.testing.assert_allclose(float_model.predict(windows), keras_out, atol=1e-5)
    int8_model = Classifier.load(out)
    assert np.abs(int8_model.predict(windows) - keras_out).max() <= INT8_TOLERANCE


def test_split_is_speaker_disjoint(speech_commands: Path) -> None:
    pool = load_pool(speech_commands, max_per_word=30)
    by_speaker: dict[str, set[str]] = {}
    for speaker, split in zip(pool.speakers, pool.split):
        by_speaker.setdefault(speaker, set()).add(str(split))
    assert all(len(splits) == 1 for splits in by_speaker.values())
    assert {"train", "validation", "test"} <= set(pool.split.tolist())
    shares = {split: 0 for split in ("train", "validation", "test")}
    for k in range(4000):
        shares[split_of(f"speaker-{k}")] += 1
    assert abs(shares["validation"] / 4000 - 0.1) < 0.02 and abs(shares["test"] / 4000 - 0.1) < 0.02


def test_interrupted_run_resumes_to_the_same_model(trained, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C after two of three epochs, then `--resume`: the same weights, optimizer state and history as the
    fixture's run, which was never stopped (thresholds are set after the last epoch, so tuning is left out)."""
    from spotter.cli import main
    from spotter.train import checkpoint

    straight, straight_out, config = trained
    config = dataclasses.replace(config, tune=None)

    save = checkpoint.save

    def interrupted(run, model, optimizer, best, progress):  # type: ignore[no-untyped-def]
        save(run, model, optimizer, best, progress)
        if progress.epochs_done == 2:
            raise KeyboardInterrupt  # Ctrl-C right after the second epoch's checkpoint

    monkeypatch.setattr(checkpoint, "save", interrupted)
    monkeypatch.setattr(report, "command_line", lambda: "spotter train --epochs 3 -o m.tflite")
    out = tmp_path / "stopped" / "m.tflite"
    with pytest.raises(KeyboardInterrupt):
        train(config, out)
    monkeypatch.setattr(report, "command_line", lambda: "spotter train --resume stopped/m.run")
    run = checkpoint.run_dir(out)
    assert checkpoint.Progress(**json.loads((run / checkpoint.PROGRESS).read_text())).epochs_done == 2
    assert not out.exists()
    monkeypatch.setattr(checkpoint, "save", save)
    assert main(["train", "--resume", str(run)]) == 0
    assert modelfile.read_spec(out).training["command"] == "spotter train --epochs 3 -o m.tflite"  # what made it
    resumed = json.loads(out.with_suffix(".report.json").read_text())["metrics"]
    expected = straight.metrics
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in expected["history"]]
    assert resumed["best_epoch"] == expected["best_epoch"]
    for a, b in zip(keras.models.load_model(out.with_suffix(".keras")).get_weights(), straight.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    final = [np.load(r / checkpoint.VARIABLES) for r in (run, checkpoint.run_dir(straight_out))]
    for key in final[0].files:  # the last epoch's weights and optimizer moments, not only the best epoch's
        np.testing.assert_array_equal(final[0][key], final[1][key])


def test_resume_refuses_a_folder_that_is_no_run(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from spotter.cli import main

    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a training run folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ensemble(trained, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The fixture's run and a second seed of it, combined by `spotter train --ensemble`."""
    from spotter.cli import main

    _, first, config = trained
    second = tmp_path_factory.mktemp("member") / "seed1.tflite"
    train(dataclasses.replace(config, seed=1, tune=None), second)
    out = tmp_path_factory.mktemp("ensemble") / "both.tflite"
    assert main(["train", "--ensemble", str(first), str(second), "--output", str(out)]) == 0
    return [first, second], out


def test_ensemble_averages_its_members_logits(ensemble) -> None:  # type: ignore[no-untyped-def]
    members, out = ensemble
    networks = [keras.models.load_model(m.with_suffix(".keras")) for m in members]
    combined = keras.models.load_model(out.with_suffix(".keras"))
    windows = np.random.default_rng(0).normal(-5.0, 3.0, (8, 98, 40)).astype(np.float32)
    member_logits = [architectures.logits_model(n).predict(windows, verbose=0) for n in networks]
    np.testing.assert_allclose(architectures.logits_model(combined).predict(windows, verbose=0),
                               np.mean(member_logits, axis=0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(member_logits[0], member_logits[1])  # two seeds, two different networks
    spec = modelfile.read_spec(out)
    assert spec.architecture == "ensemble of 2 ds-cnn" and spec.outputs == "logits"
    assert spec.metrics["parameters"] == sum(architectures.count_parameters(n) for n in networks)
    assert spec.metrics["multiplies"] == sum(architectures.count_multiplies(n) for n in networks)
    assert [m["seed"] for m in spec.training["members"]] == [0, 1]
    assert "validation/clean" in spec.metrics["streaming"]  # thresholds set on streams, as the first member's were
    card = out.with_suffix(".md").read_text()
    epochs = ", ".join(str(modelfile.read_spec(m).metrics["best_epoch"]) for m in members)
    assert "| Trained | 2 members: " in card and f"best epochs {epochs} of 3 |" in card
    # the int8 file gives what the float network gives, within quantisation
    int8 = Classifier(out.read_bytes(), spec).predict(windows)
    np.testing.assert_allclose(int8, combined.predict(windows, verbose=0), atol=INT8_TOLERANCE)
    # spotter embed reads every member's classifier input, side by side
    from spotter.embedding import Embedder

    embedder = Embedder(*modelfile.read(out))
    assert len(embedder.tensors) == 2 and embedder.width == 2 * embedder.widths[0]


def test_ensemble_refuses_members_that_cannot_be_averaged(ensemble, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from spotter.cli import main

    members, _ = ensemble
    other_labels = tmp_path / "other.tflite"
    spec = modelfile.read_spec(members[1])
    config = dict(spec.training["config"], labels=["yes", "_unknown_", "_silence_"])
    tflite, _ = modelfile.read(members[1])
    modelfile.write(other_labels, tflite, spec.replace(training=dict(spec.training, config=config)))
    other_labels.with_suffix(".keras").write_bytes(members[1].with_suffix(".keras").read_bytes())
    assert main(["train", "--ensemble", str(members[0]), str(other_labels), "-o", str(tmp_path / "x.tflite")]) == 2
    err = capsys.readouterr().err
    assert "differ in labels" in err and err.count("\n") == 1
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(members[0].read_bytes())
    assert main(["train", "--ensemble", str(members[0]), str(lonely), "-o", str(tmp_path / "y.tflite")]) == 2
    assert "lonely.keras is not beside it" in capsys.readouterr().err
    assert main(["train", "--ensemble", str(members[0]), "-o", str(tmp_path / "z.tflite")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x.tflite", "y.tflite", "z.tflite"))
