"""Negatives of every kind a user has: long recordings with no events, and synthesised phrases
(`python -m spotter.train.synth`), all `_unknown_` whatever their label files say."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from spotter.config import UNKNOWN
from spotter.labels import Event, read_labels, write_labels
from spotter.train import synth
from spotter.train.data import load_pool
from spotter.train.recordings import NEGATIVE_STRIDE_MS

from .conftest import write_wav

RATE = 16000
LABELS = ("yes", UNKNOWN, "_silence_")


def test_phrases_saying_a_keyword_are_refused(tmp_path: Path) -> None:
    listed = tmp_path / "phrases.txt"
    listed.write_text("# a comment\ngopher\nYes please\nthe kettle, on the stove\n\nsnow  # trailing note\n")
    kept, refused = synth.read_phrases(listed, ("yes", "on"))
    assert kept == ["gopher", "snow"]  # "gopher" starts like "go" but is another word
    assert refused == ["Yes please", "the kettle, on the stove"]


def test_shipped_phrase_lists_say_no_shipped_keyword_and_share_no_phrase() -> None:
    training, refused = synth.read_phrases(synth.TRAINING_PHRASES, synth.SHIPPED_KEYWORDS)
    held_back, refused_held = synth.read_phrases(synth.HELD_BACK_PHRASES, synth.SHIPPED_KEYWORDS)
    assert refused == [] and refused_held == []
    assert len(training) > 100 and len(held_back) > 30
    assert not set(training) & set(held_back)


def _sc_slice(root: Path, tmp_path: Path) -> Path:
    """A few real "yes" clips and other words, so a pool can be made."""
    out = tmp_path / "sc"
    for word in ("yes", "no"):
        (out / word).mkdir(parents=True)
        for path in sorted((root / word).iterdir())[:4]:
            shutil.copy(path, out / word / path.name)
    return out


def test_long_recording_in_negatives_is_every_window_unknown(speech_commands: Path, tmp_path: Path) -> None:
    """A 60 s recording, even one whose label file marks a keyword, gives only `_unknown_` windows, every
    NEGATIVE_STRIDE_MS over its training part, and held-back stretches with no events."""
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    rng = np.random.default_rng(0)
    seconds = 60
    write_wav(negatives / "room.wav", (rng.standard_normal(seconds * RATE) * 300).astype(np.int16))
    write_labels(negatives / "room.txt", [Event(10.0, 10.5, "yes")])
    pool = load_pool(_sc_slice(speech_commands, tmp_path), LABELS, negatives=[negatives])
    rows = [i for i, s in enumerate(pool.speakers) if s == "room.wav"]
    assert rows and all(pool.label_index[i] == LABELS.index(UNKNOWN) for i in rows)
    train_part = 0.8 * seconds  # validation and test hold the last 10% each
    expected = int((train_part - 1.0) / (NEGATIVE_STRIDE_MS / 1000)) + 1
    assert abs(sum(pool.split[i] == "train" for i in rows) - expected) <= 1
    held = [h for split in ("validation", "test") for h in pool.held_back.get(split, []) if h.name.startswith("room.wav")]
    assert len(held) == 2 and all(h.events == [] for h in held)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_synthesised_folder_trains_as_negatives(speech_commands: Path, tmp_path: Path) -> None:
    voices = [v for v in synth.available_voices() if v.engine == "espeak"][:2]
    phrases = ["snow", "nose", "the kettle is boiling in the kitchen while we wait for the bread"]
    out = tmp_path / "tts"
    counts = synth.synthesize(phrases, out, voices, per_voice=3, seed=0, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["nose", "snow"]  # the sentence is too long
    assert counts["clips"] == 4 and counts["recordings"] == 2
    for voice in voices:
        assert (out / "snow" / f"{voice.speaker}_nohash_0.wav").is_file()
        said = read_labels(out / f"{voice.speaker}.txt")
        assert [e.label for e in said] == [UNKNOWN] * 3 and sorted(e.said for e in said) == sorted(phrases)
        assert all(a.end < b.start for a, b in zip(said, said[1:]))
    pool = load_pool(_sc_slice(speech_commands, tmp_path), LABELS, negatives=[out])
    from_tts = [i for i, (w, s) in enumerate(zip(pool.words, pool.speakers))
                if w in ("snow", "nose") or s.endswith(".wav")]
    assert len(from_tts) > 4  # the clips, and the windows of the running speech
    assert all(pool.label_index[i] == LABELS.index(UNKNOWN) for i in from_tts)
