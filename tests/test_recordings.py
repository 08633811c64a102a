"""Training material from real recordings: the utterance found inside unaligned wake-word takes, and windows
labelled from Audacity files exactly at event boundaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import DATA, read_clip, write_wav
from spotter.config import UNKNOWN
from spotter.labels import Event, write_labels
from spotter.sources import to_int16
from spotter.train.audio import cut_window, locate
from spotter.train.data import load_pool
from spotter.train.recordings import (
    Recording,
    Span,
    annotated_windows,
    find_recordings,
    lasting_labels,
    split_points,
    to_spans,
    window_label,
    window_labels,
)

RATE = 16000
WAKEWORDS = DATA / "wakewords"

# Word bounds read by eye off spectrograms (onset of the first consonant's burst or frication to the end of the
# last voiced or fricative energy), in seconds. Several of these files have clicks, hum or a breath well away
# from the word, which an energy trim relative to the loudest frame takes in.
HAND_CHECKED = {
    "computer/0386da81-9db7-499c-b4f8-910beec53c23.mp3": (1.25, 2.00),
    "computer/414b5dbf-5b9b-42cf-9fe3-414c3989761b.mp3": (1.05, 1.95),
    "computer/c5420d05-7e2b-41cb-bbb9-3bedfd6dabcd.mp3": (1.07, 1.97),  # clicks at 0.15, 0.4 and 0.78 s
    "computer/85f29be8-b834-4aa5-9682-db294bd49dd9.mp3": (1.02, 1.88),  # clicks at 0.4 and 0.65 s
    "computer/42b693ad-d203-434d-82eb-aea9b6032bbb.mp3": (1.10, 1.97),
    "computer/208d5ce1-5ee9-4527-9737-97330326ef49.mp3": (0.73, 1.62),  # noise at 0.2 s
    "jarvis/0f597704-ff80-4c39-9ef4-275d70461617.mp3": (1.10, 1.93),  # noise at 0.7 s
}
TOLERANCE_S = 0.1


@pytest.mark.parametrize("name", sorted(HAND_CHECKED))
def test_alignment_finds_the_word_in_real_recordings(name: str) -> None:
    path = WAKEWORDS / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    audio = read_clip(path)
    start, end = locate(audio, RATE)
    want_start, want_end = HAND_CHECKED[name]
    assert abs(start / RATE - want_start) <= TOLERANCE_S, (start / RATE, want_start)
    assert abs(end / RATE - want_end) <= TOLERANCE_S, (end / RATE, want_end)
    window = cut_window(audio, RATE, RATE)
    assert window.size == RATE
    # the cut one-second window holds the whole word
    first = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(audio, RATE) == window, axis=1))[0]) \
        if audio.size < 4 * RATE else None
    assert first is not None and first <= want_start * RATE and first + RATE >= want_end * RATE


def test_alignment_on_made_audio_and_silence() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 20, 3 * RATE)
    t = np.arange(int(0.6 * RATE)) / RATE
    audio[int(1.7 * RATE) : int(2.3 * RATE)] += 3000 * np.sin(2 * np.pi * 440 * t)
    audio[int(0.2 * RATE) : int(0.21 * RATE)] += 8000  # a click far from the tone
    start, end = locate(audio.astype(np.int16), RATE)
    assert abs(start / RATE - 1.7) < 0.05 and abs(end / RATE - 2.3) < 0.05
    assert locate(np.zeros(RATE * 2, np.int16), RATE) == (0, 2 * RATE)
    short = np.arange(100, dtype=np.int16)
    padded = cut_window(short, 1000, RATE)
    assert padded.size == 1000 and np.array_equal(padded[450:550], short)


def test_window_label_exact_at_event_boundaries() -> None:
    length = 16000
    word = Span(40000, 48000, "computer")  # 0.5 s event
    spans = [word]
    # the earliest window that holds the event whole ends exactly at its end
    assert window_label(word.end - length, length, spans) == "computer"
    assert window_label(word.end - length - 1, length, spans) is None  # one sample short: cuts the event
    assert window_label(word.start, length, spans) == "computer"  # the latest starts exactly at its start
    assert window_label(word.start + 1, length, spans) is None
    assert window_label(word.start - length, length, spans) == UNKNOWN  # ends where the event starts: clear
    assert window_label(word.start - length + 1, length, spans) is None  # one sample of overlap
    assert window_label(word.end, length, spans) == UNKNOWN
    assert window_label(word.end - 1, length, spans) is None
    # an event longer than the window: windows inside it take its label, windows straddling its edge don't
    long_event = [Span(100000, 150000, "alarm")]
    assert window_label(100000, length, long_event) == "alarm"
    assert window_label(150000 - length, length, long_event) == "alarm"
    assert window_label(99999, length, long_event) is None
    # two different events whole in one window: ambiguous, excluded; the same label twice is fine
    assert window_label(0, length, [Span(1000, 2000, "a"), Span(5000, 6000, "b")]) is None
    assert window_label(0, length, [Span(1000, 2000, "a"), Span(5000, 6000, "a")]) == "a"
    # every window around the event at once (24,010 of them, across the labeller's chunks): exact counts
    starts = np.arange(word.start - length - 5, word.end + 5)
    labels = window_labels(starts, length, spans)
    assert labels.count("computer") == length - (word.end - word.start) + 1  # starts end-length .. start
    assert labels.count(UNKNOWN) == 6 + 5  # starts up to start-length, and from end on
    assert labels.count(None) == starts.size - labels.count("computer") - labels.count(UNKNOWN)
    assert labels[int(word.end - length - starts[0])] == "computer" and labels[int(word.start - starts[0]) + 1] is None


def test_audacity_seconds_become_samples_exactly(tmp_path: Path) -> None:
    events = [Event(40000 / RATE, 48000 / RATE, "computer"), Event(123457 / RATE, 130001 / RATE, "door knock")]
    write_labels(tmp_path / "take.txt", events)
    write_wav(tmp_path / "take.wav", np.zeros(200000, np.int16))
    [recording] = find_recordings(tmp_path)
    from spotter.train.recordings import read_recording

    _, spans = read_recording(recording, RATE)
    assert spans == [Span(40000, 48000, "computer"), Span(123457, 130001, "door knock")]
    assert to_spans(events, RATE) == spans


def test_annotated_windows_and_time_split(tmp_path: Path) -> None:
    """Every positive window holds its event whole, negatives touch none, and the held-back stretches are the
    recording's end, never cut through an event."""
    rng = np.random.default_rng(1)
    total = 60 * RATE
    audio = rng.normal(0, 30, total).astype(np.int16)
    events, spans = [], []
    for k, start in enumerate(range(2 * RATE, total - 2 * RATE, 3 * RATE)):
        label = "knock" if k % 3 else "bell"
        spans.append(Span(start, start + 6000, label))
        events.append(Event(start / RATE, (start + 6000) / RATE, label))
        audio[start : start + 6000] = 5000 if label == "knock" else -5000  # recognisable content
    write_wav(tmp_path / "long.wav", audio)
    write_labels(tmp_path / "long.txt", events)
    cut = annotated_windows(Recording(tmp_path / "long.wav", tmp_path / "long.txt"), ("knock", UNKNOWN), RATE, RATE, 10.0, 10.0)
    assert set(cut.labels) == {"knock", UNKNOWN}  # "bell" is not a model label: background
    for row, label in zip(cut.audio, cut.labels):
        if label == "knock":
            assert np.count_nonzero(row == 5000) == 6000, "a positive window holds its knock whole"
        else:
            assert np.count_nonzero(row == 5000) == 0, "a negative window touches no knock"
    first, second = split_points(total, spans, 10.0, 10.0)
    assert all(not (s.start < p < s.end) for s in spans for p in (first, second))
    assert first <= second and first >= int(total * 0.8)
    held = cut.held_back["validation"]
    assert held.audio.size == second - first and np.array_equal(held.audio, audio[first:second])
    assert all(0 <= s.start < s.end <= held.audio.size for s in held.events)
    assert {"train", "validation", "test"} >= set(cut.splits) and "train" in cut.splits


def test_takes_at_other_rates_and_layouts_are_read(tmp_path: Path) -> None:
    """A 44.1 kHz stereo take is resampled and downmixed on reading; the word is found at the same place."""
    path = WAKEWORDS / "computer/0386da81-9db7-499c-b4f8-910beec53c23.mp3"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from scipy.signal import resample_poly

    from spotter.train.audio import read_audio

    audio = read_clip(path)
    stereo = np.stack([resample_poly(audio.astype(np.float64), 441, 160)] * 2, axis=1)
    write_wav(tmp_path / "take.wav", to_int16(stereo), rate=44100)
    back = read_audio(tmp_path / "take.wav", RATE)
    assert abs(back.size - audio.size) <= 2
    start, end = locate(back, RATE)
    want_start, want_end = HAND_CHECKED["computer/0386da81-9db7-499c-b4f8-910beec53c23.mp3"]
    assert abs(start / RATE - want_start) <= TOLERANCE_S and abs(end / RATE - want_end) <= TOLERANCE_S


def test_labels_discovered_from_folders(tmp_path: Path) -> None:
    from spotter.cli.train import discover_labels

    (tmp_path / "takes" / "hey_robot").mkdir(parents=True)
    (tmp_path / "takes" / "_background_noise_").mkdir()
    (tmp_path / "long").mkdir()
    write_wav(tmp_path / "long" / "kitchen.wav", np.zeros(RATE * 4, np.int16))
    write_labels(tmp_path / "long" / "kitchen.txt", [Event(1.0, 1.5, "door knock"), Event(2.0, 2.2, UNKNOWN)])
    assert discover_labels([str(tmp_path / "takes"), str(tmp_path / "long")]) == ("door knock", "hey_robot")
    with pytest.raises(FileNotFoundError):
        discover_labels([str(tmp_path / "missing")])


def _knocks(folder: Path, name: str, seconds: int, length: int = 6000) -> None:
    """A recording with a knock (a recognisable constant) every 3 s, and its labels."""
    rng = np.random.default_rng(len(name))
    audio = rng.normal(0, 30, seconds * RATE).astype(np.int16)
    events = []
    for start in range(RATE, (seconds - 2) * RATE, 3 * RATE):
        audio[start : start + length] = 5000
        events.append(Event(start / RATE, (start + length) / RATE, "knock"))
    write_wav(folder / f"{name}.wav", audio)
    write_labels(folder / f"{name}.txt", events)


def test_recordings_named_validation_or_test_are_held_back_whole(tmp_path: Path) -> None:
    """Whole held-back recordings (another day or room; ESC-10's other folds) replace the held-back last stretch:
    the others are trained on whole, the named ones never."""
    for name in ("day1", "day2", "validation-day3", "test-day4"):
        _knocks(tmp_path, name, 30)
    pool = load_pool([tmp_path], ("knock", UNKNOWN), RATE, RATE)
    by_split = {split: {pool.speakers[i] for i in np.flatnonzero(pool.split == split)} for split in ("train", "validation", "test")}
    assert by_split == {"train": {"day1.wav", "day2.wav"}, "validation": {"validation-day3.wav"}, "test": {"test-day4.wav"}}
    assert [held.name for held in pool.held_back["validation"]] == ["validation-day3.wav:validation"]
    assert [held.name for held in pool.held_back["test"]] == ["test-day4.wav:test"]
    assert pool.held_back["validation"][0].audio.size == 30 * RATE and len(pool.held_back["validation"][0].events) == 9


def test_labels_of_long_events_are_lasting() -> None:
    spans = [Span(0, 3 * RATE, "rain"), Span(0, RATE // 2, "dog"), Span(0, 5 * RATE, "dog"), Span(0, RATE // 3, "dog"),
             Span(0, 2 * RATE, "saw")]
    assert lasting_labels(spans, ("rain", "dog", "saw", "bell"), RATE) == ("rain", "saw")
    assert lasting_labels(spans, ("rain", "dog", "saw"), 2 * RATE) == ()


def test_event_stride_spaces_the_windows_that_hold_an_event(tmp_path: Path) -> None:
    """A 375 ms knock in a 1 s window fits at 625 ms of start positions: 13 windows 50 ms apart, 4 or 5 at 150 ms
    (by where the grid falls); the negatives keep their own spacing (about every 500 ms) whatever the stride."""
    _knocks(tmp_path, "day1", 30)
    fine, wide = (load_pool([tmp_path], ("knock", UNKNOWN), RATE, RATE, 0.0, 0.0, event_stride_ms=ms)
                  for ms in (50.0, 150.0))
    knocks = 9
    assert int(np.sum(fine.label_index == 0)) == 13 * knocks
    assert 4 * knocks <= int(np.sum(wide.label_index == 0)) <= 5 * knocks
    negatives = [int(np.sum(pool.label_index == 1)) for pool in (fine, wide)]
    assert abs(negatives[0] - negatives[1]) <= 0.15 * negatives[0]
