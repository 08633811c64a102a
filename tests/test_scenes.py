"""Sound-event scenes: events found inside real ESC-10 clips where a person reading their spectrograms puts them,
and scenes whose labels, levels and clips are what was asked for, written by `spotter eval build --events`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spotter.cli import main
from spotter.config import UNKNOWN
from spotter.labels import labels_path, read_labels
from spotter.train.audio import _runs, read_audio
from spotter.train.recordings import to_spans, window_labels
from spotter.train import scenes
from spotter.train.scenes import SceneConfig, Scene, compose_scenes, event_bounds, fold_of

from .conftest import read_clip, write_wav

RATE = 16000
TOLERANCE_S = 0.1
"""Hand-read bounds are good to a few tens of ms; the found ones add a 30 ms margin."""
HAND_BOUNDS = {
    "dog/4-183992-A-0.mp3": [(0.69, 1.58), (3.73, 4.40)],
    "sneezing/1-81883-A-21.mp3": [(1.07, 1.80)],
    "sneezing/3-142605-A-21.mp3": [(1.00, 1.24)],
    "rooster/2-95035-A-1.mp3": [(0.58, 2.42)],
    "crying_baby/4-59579-A-20.mp3": [(0.30, 4.46)],
    "clock_tick/1-62849-A-38.mp3": [(0.29, 4.85)],
    "chainsaw/1-19898-A-41.mp3": [(0.20, 5.00)],
    "rain/1-17367-A-10.mp3": [(0.00, 5.00)],
}
"""Read by hand from spectrograms (256-point FFT, 0 to 60 dB below the clip's maximum, 0.1 s grid), drawn with the
clip's level per 10 ms and its 150-6000 Hz band level over its 10th percentile: an event starts where it rises out
of the clip's background and ends where it falls back into it, or where its decay passes 50 dB under its peak.
- dog: two groups of barks, 0.69-1.58 and 3.73-4.40 (each tail rings on to the stated end in the band level);
- sneezing 1-81883: an inhaled "ha" at 1.07, the sneeze at 1.32, its noise gone by 1.80; exact zeros from 2.76 s;
- sneezing 3-142605: one 0.24 s sneeze over a loud hum below 150 Hz that fills the clip;
- rooster: the crow's harmonics from 0.58 to 2.42; before it faint yard noise, after it exact zeros and dither;
- crying baby: the cry from 0.30 to 4.46, where its harmonics stop (a fainter sound follows to 4.8 s);
- clock: a tick every second from 0.29, the last one ringing to 50 dB under its peak at 4.85: one continuous sound;
- chainsaw: quiet until it starts at 0.20 s, then runs to the end;
- rain: steady over the whole clip."""
PADDING_RUN = 80
"""A run of exact zeros this long (5 ms) is padding or digital silence, not a waveform crossing zero."""
WHITE_RMS = 300.0


@pytest.fixture(scope="module")
def white_noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `_background_noise_` is stationary white noise: the bed's power is the same under every clip."""
    root = tmp_path_factory.mktemp("noise")
    (root / "_background_noise_").mkdir()
    noise = np.random.default_rng(0).normal(0, WHITE_RMS, 30 * RATE).round().astype(np.int16)
    write_wav(root / "_background_noise_" / "white.wav", noise)
    return root


def zero_runs(samples: np.ndarray) -> list[tuple[int, int]]:
    return [(a, b) for a, b in _runs(samples == 0) if b - a >= PADDING_RUN]


@pytest.mark.parametrize("name", sorted(HAND_BOUNDS))
def test_event_bounds_match_the_hand_checked_spectrograms(esc10, name: str) -> None:
    samples = read_audio(esc10 / name, RATE)
    found = [(start / RATE, end / RATE) for start, end in event_bounds(samples, RATE)]
    assert len(found) == len(HAND_BOUNDS[name]), found
    for (start, end), (hand_start, hand_end) in zip(found, HAND_BOUNDS[name]):
        assert abs(start - hand_start) <= TOLERANCE_S and abs(end - hand_end) <= TOLERANCE_S, (found, name)


@pytest.mark.parametrize("name", ["sneezing/1-81883-A-21.mp3", "rooster/2-95035-A-1.mp3", "sneezing/1-26143-A-21.mp3"])
def test_zero_padding_is_never_part_of_an_event(esc10, name: str) -> None:
    samples = read_audio(esc10 / name, RATE)
    padding = zero_runs(samples)
    assert sum(b - a for a, b in padding) > RATE  # more than a second of the clip is exact zeros
    bounds = event_bounds(samples, RATE)
    assert bounds
    for start, end in bounds:
        assert samples[start] != 0 and samples[end - 1] != 0
        assert all(b <= start or a >= end for a, b in padding), (start, end)


def test_silence_holds_no_event() -> None:
    assert event_bounds(np.zeros(5 * RATE, np.int16), RATE) == []
    dither = np.random.default_rng(1).integers(-1, 2, 5 * RATE).astype(np.int16)
    assert event_bounds(dither, RATE) == []


def measured_ratios(scene: Scene) -> list[tuple[float, float]]:
    """(measured, drawn) event-to-background ratio per placed clip: the power of the scene over the clip's events,
    less the power of the background alone in the gap before it, over that background power."""
    audio = scene.audio.astype(np.float64)
    out, previous_end = [], 0
    for placement in scene.placements:
        background = float(np.mean(np.square(audio[previous_end : placement.start])))
        spans = to_spans(list(placement.events), RATE)
        mixed = float(np.mean(np.square(np.concatenate([audio[s.start : s.end] for s in spans]))))
        out.append((10 * np.log10((mixed - background) / background), placement.ratio_db))
        previous_end = placement.end
    return out


def test_scene_levels_are_the_drawn_ratios_within_the_range(esc10, white_noise) -> None:
    config = SceneConfig(minutes=1.0, ebr_min_db=3.0, ebr_max_db=12.0, folds=(1,), seed=4)
    scene = compose_scenes(esc10, config, white_noise)[0]
    ratios = measured_ratios(scene)
    assert len(ratios) >= 6
    for measured, drawn in ratios:
        assert 3.0 <= drawn <= 12.0
        assert abs(measured - drawn) < 0.5, ratios


def test_scene_labels_lie_inside_without_overlap_from_the_asked_folds_only(esc10, white_noise) -> None:
    config = SceneConfig(minutes=1.5, folds=(2, 4), seed=5)
    scene = compose_scenes(esc10, config, white_noise)[0]
    duration = scene.audio.size / RATE
    assert scene.audio.dtype == np.int16 and scene.audio.size == int(1.5 * 60 * RATE)
    events = scene.events
    assert len({e.label for e in events}) >= 5
    assert all(0 <= e.start < e.end <= duration for e in events)
    assert all(a.end <= b.start for a, b in zip(events, events[1:]))
    assert {fold_of(p.path) for p in scene.placements} <= {2, 4}
    for placement in scene.placements:
        assert all(e.label == placement.path.parent.name for e in placement.events)
        assert all(placement.start <= round(e.start * RATE) < round(e.end * RATE) <= placement.end
                   for e in placement.events)


def test_scene_pieces_leave_the_padding_out_and_the_scene_holds_no_digital_silence(esc10, white_noise) -> None:
    """Each clip is placed from its first to its last non-zero sample, over the bed (not instead of it)."""
    scene = compose_scenes(esc10, SceneConfig(minutes=2.0, folds=(1,), seed=6), white_noise)[0]
    trimmed = 0
    for placement in scene.placements:
        clip = read_audio(placement.path, RATE)
        nonzero = np.flatnonzero(clip)
        assert placement.end - placement.start == nonzero[-1] + 1 - nonzero[0]
        trimmed += clip.size - (placement.end - placement.start) >= RATE
    assert trimmed >= 2  # padded clips were among them, and lost their padding
    longest = max((b - a for a, b in _runs(scene.audio == 0)), default=0)
    assert longest <= 3


def test_a_scene_is_the_same_for_a_seed_and_a_set_uses_every_clip(esc10, white_noise) -> None:
    config = SceneConfig(minutes=1.0, folds=(3,), seed=7)
    first, again = (compose_scenes(esc10, config, white_noise)[0] for _ in range(2))
    np.testing.assert_array_equal(first.audio, again.audio)
    assert first.events == again.events
    other = compose_scenes(esc10, SceneConfig(minutes=1.0, folds=(3,), seed=8), white_noise)[0]
    assert other.events != first.events
    scenes = compose_scenes(esc10, SceneConfig(minutes=3.0, folds=(3,), seed=9), white_noise, count=4)
    uses = Counter(p.path for scene in scenes for p in scene.placements)
    assert len(uses) == 80 and max(uses.values()) == 2  # all of fold 3's 80 clips, each once before any comes back


def test_window_labels_read_a_scene_as_its_events(esc10, white_noise) -> None:
    """A window wholly inside a long event gets its label; one in a gap between clips is a negative."""
    scene = compose_scenes(esc10, SceneConfig(minutes=1.0, gap_min_s=1.5, folds=(4,), seed=10), white_noise)[0]
    spans = to_spans(scene.events, RATE)
    long = next(s for s in spans if s.end - s.start >= 2 * RATE)
    gap_start = scene.placements[0].end
    starts = np.array([long.start + RATE // 2, gap_start + RATE // 8, long.start - RATE // 2])
    assert window_labels(starts, RATE, spans) == [long.label, UNKNOWN, None]


def test_eval_build_writes_a_scene_and_its_labels(esc10, white_noise, tmp_path, capsys) -> None:
    out = tmp_path / "scene.wav"
    assert main(["eval", "build", "--events", str(esc10), "--folds", "4", "--minutes", "0.5", "--ebr", "5,15",
                 "--noise", str(white_noise), "--seed", "3", "-o", str(out)]) == 0
    audio = read_clip(out)
    events = read_labels(labels_path(out))
    assert audio.size == 30 * RATE and events
    assert all(0 <= e.start < e.end <= 30.0 for e in events)
    assert f"wrote {out} (0.5 min, {len(events)} events" in capsys.readouterr().err
    assert main(["eval", "build", "--folds", "4", "-o", str(tmp_path / "kw.wav")]) == 2
    assert capsys.readouterr().err.strip() == "spotter: --folds: only with --events (sound-event scenes)"


def test_the_bed_is_cut_where_the_clips_are() -> None:
    """ESC-10's MP3s hold nothing above about 7.2 kHz; a bed that did would mark each placed clip by its gap."""
    noise = np.random.default_rng(0).normal(0, 1000, 16000)
    cut = scenes.band_limited(noise, 16000)
    spectrum = np.abs(np.fft.rfft(cut)) ** 2
    high = np.fft.rfftfreq(cut.size, 1 / 16000) > scenes.CLIP_TOP_HZ
    assert spectrum[high].sum() < 1e-9 * spectrum.sum()
    below = np.fft.rfftfreq(cut.size, 1 / 16000) < scenes.CLIP_TOP_HZ - 100
    np.testing.assert_allclose(np.abs(np.fft.rfft(cut))[below], np.abs(np.fft.rfft(noise))[below], rtol=1e-6)
