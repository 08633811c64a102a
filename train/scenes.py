"""Long sound-event scenes built from a clip folder of events (ESC style: one subfolder per class), with Audacity
labels at each event's real extent: recordings that `spotter train` learns sound events from.

Each clip's events are found by energy inside it (`event_bounds`). The clip is placed from its first to its last
non-zero sample (the digital-silence padding of the ESC release never reaches a scene), faded in and out, scaled to
a drawn event-to-background ratio over a looped bed of real background noise, and its events are labelled with the
clip's class folder name where they landed.

No TensorFlow here: plain numpy, tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from spotter.config import ms_to_samples
from spotter.labels import Event
from spotter.sources import INT16_MAX, to_int16

from .audio import FLOOR_PERCENTILE, FRAME_MS, _runs, band_energy_db, bridged, read_audio
from .data import BACKGROUND_DIR, Clip, as_paths, list_clips, read_noise
from .streams import noise_bed

SILENT_RMS = 2.0
"""Frames under this RMS (int16 units, about -84 dBFS) are digital silence: the exact zeros that pad many ESC clips
and the one or two LSB the MP3 decoder leaves around them. They are never part of an event, nor of the floor."""
SEED_BELOW_PEAK_DB = 20.0
"""An event's core: frames within this much of the clip's loudest frame. When even the clip's floor
(`FLOOR_PERCENTILE` of its sounding frames) is this close to the peak, nothing stands out of the floor: the sound is
steady (rain, a chainsaw, a helicopter) and is one event over the whole sounding part of the clip."""
EDGE_ABOVE_FLOOR_DB = 6.0
EDGE_BELOW_PEAK_DB = 50.0
"""From its core an event grows over contiguous frames at least this far above the clip's floor and no further below
its peak than this: a decay more than 50 dB under the peak is lost under any background a scene puts beneath it."""
BRIDGE_MS = 250.0
"""Parts of an event closer than this are one event (the syllables of a crow, a double bark); never across silence."""
MARGIN_MS = 30.0
"""Added at both ends of an event, never into digital silence: a frame that crosses the threshold starts late."""
RECUR_GAP_MS = 1000.0
CONTINUOUS_SHARE = 0.8
"""A sound whose events recur less than `RECUR_GAP_MS` apart (clock ticks, a dog barking on and on) and, so
bridged, cover this share of the clip's sounding part is one continuous event from its first to its last part:
any one-second window inside it holds some of it."""

FADE_MS = 10.0
"""Each placed clip fades in and out over this: a clip cut mid-sound would otherwise click where it starts and ends."""
CLIP_TOP_HZ = 7000.0
"""ESC-10's MP3s carry almost nothing above about 7.2 kHz (README of the data); the bed is cut there too, or every
placed clip would stand out by its missing top band, a shortcut a model could learn instead of the sound."""
SILENT_BACKGROUND_POWER = 1.0
"""Background power (int16 units squared) assumed under a clip where the bed is digital silence: one LSB RMS."""


@dataclass(frozen=True)
class SceneConfig:
    minutes: float = 3.0
    ebr_min_db: float = 0.0
    ebr_max_db: float = 20.0
    """Event-to-background ratio, drawn per clip: the mean power of its events over that of the bed under it."""
    gap_min_s: float = 1.0
    gap_max_s: float = 4.0
    """Background alone between two placed clips: long enough for windows that hold no event."""
    folds: tuple[int, ...] = (1, 2, 3)
    seed: int = 0
    sample_rate: int = 16000


@dataclass(frozen=True)
class Placement:
    """One clip in a scene: where its piece lies ([start, end) in samples), the ratio drawn for it, its events."""

    path: Path
    start: int
    end: int
    ratio_db: float
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Scene:
    """A scene's audio (int16) and the clips placed in it, in time order."""

    audio: np.ndarray
    placements: list[Placement]

    @property
    def events(self) -> list[Event]:
        return [event for placement in self.placements for event in placement.events]


def fold_of(path: Path) -> int | None:
    """ESC names clips `{FOLD}-{CLIP_ID}-{TAKE}-{TARGET}`: the fold is the number before the first `-`."""
    head = path.stem.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def event_bounds(samples: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """[start, end) in samples of the events inside a clip, found by band energy per `FRAME_MS` frame.

    Frames under `SILENT_RMS` are silence; the floor is `FLOOR_PERCENTILE` of the other (sounding) frames. A steady
    sound (peak less than `SEED_BELOW_PEAK_DB` above the floor) is one event over the sounding part. Otherwise events
    grow from their cores (`SEED_BELOW_PEAK_DB`) over their edges (`EDGE_ABOVE_FLOOR_DB`, `EDGE_BELOW_PEAK_DB`);
    events that recur throughout the clip (`RECUR_GAP_MS`, `CONTINUOUS_SHARE`) are one continuous event; the others
    are merged across `BRIDGE_MS` and given `MARGIN_MS`. Every bound lies on a non-zero sample.
    """
    frame = max(1, ms_to_samples(FRAME_MS, rate))
    db = band_energy_db(samples, rate)
    count = db.size
    if count == 0:
        return []
    power = np.square(samples[: count * frame].astype(np.float64)).reshape(count, frame).mean(axis=1)
    silent = power < SILENT_RMS**2
    sounding = np.flatnonzero(~silent)
    if sounding.size == 0:
        return []
    floor = float(np.percentile(db[sounding], FLOOR_PERCENTILE))
    peak = float(db[sounding].max())
    if peak - floor < SEED_BELOW_PEAK_DB:
        return _on_samples(samples, [(int(sounding[0]), int(sounding[-1]) + 1)], frame)
    seed = (db >= peak - SEED_BELOW_PEAK_DB) & ~silent
    edge = (db >= max(floor + EDGE_ABOVE_FLOOR_DB, peak - EDGE_BELOW_PEAK_DB)) & ~silent
    parts = [(start, end) for start, end in _runs(edge) if seed[start:end].any()]
    recurring = bridged(parts, int(RECUR_GAP_MS / FRAME_MS))
    extent = int(sounding[-1]) + 1 - int(sounding[0])
    margin = int(MARGIN_MS / FRAME_MS)
    if sum(end - start for start, end in recurring) >= CONTINUOUS_SHARE * extent:
        spans = [_widen(parts[0][0], parts[-1][1], margin, silent)]
    else:
        spans = [_widen(start, end, margin, silent) for start, end in bridged(parts, int(BRIDGE_MS / FRAME_MS), silent)]
    return _on_samples(samples, spans, frame)


def _widen(start: int, end: int, margin: int, silent: np.ndarray) -> tuple[int, int]:
    """[start, end) frames grown by up to `margin` frames each way, stopping at silence."""
    low = start
    while low > 0 and start - low < margin and not silent[low - 1]:
        low -= 1
    high = end
    while high < silent.size and high - end < margin and not silent[high]:
        high += 1
    return low, high


def _on_samples(samples: np.ndarray, spans: list[tuple[int, int]], frame: int) -> list[tuple[int, int]]:
    """Frame spans as sample bounds, each pulled in to its first and last non-zero sample."""
    bounds = []
    for low, high in spans:
        nonzero = np.flatnonzero(samples[low * frame : min(samples.size, high * frame)])
        if nonzero.size:
            bounds.append((low * frame + int(nonzero[0]), low * frame + int(nonzero[-1]) + 1))
    return bounds


def event_gain(piece: np.ndarray, bounds: list[tuple[int, int]], background: np.ndarray, ratio_db: float) -> float:
    """The gain that puts the mean power of a piece's events `ratio_db` above the mean power of the background
    under the piece: the power ratio `streams.mix_noise` sets between speech and its bed, set here per event."""
    events = np.concatenate([piece[start:end] for start, end in bounds]).astype(np.float64)
    event_power = float(np.mean(np.square(events)))
    background_power = max(float(np.mean(np.square(background, dtype=np.float64))), SILENT_BACKGROUND_POWER)
    return float(np.sqrt(background_power * 10 ** (ratio_db / 10) / event_power))


def band_limited(bed: np.ndarray, rate: int) -> np.ndarray:
    """The bed without what lies above `CLIP_TOP_HZ` (a brick-wall cut in the frequency domain: offline, exact)."""
    spectrum = np.fft.rfft(bed)
    spectrum[np.fft.rfftfreq(bed.size, 1.0 / rate) > CLIP_TOP_HZ] = 0.0
    return np.fft.irfft(spectrum, bed.size)


def _faded(piece: np.ndarray, rate: int) -> np.ndarray:
    """A raised-cosine fade in and out over `FADE_MS` (at most half the piece), never exactly zero at the ends."""
    length = min(ms_to_samples(FADE_MS, rate), piece.size // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)
    out = piece.astype(np.float64)
    out[:length] *= ramp
    out[out.size - length :] *= ramp[::-1]
    return out


def _rounds(clips: list[Clip], rng: np.random.Generator) -> Iterator[Clip]:
    """Clips in rounds of one per class, classes in shuffled order, each class walking shuffled cycles of its own
    clips: every clip is used about equally often, and every class comes back within a round."""
    by_class: dict[str, list[Clip]] = {}
    for clip in clips:
        by_class.setdefault(clip.word, []).append(clip)
    names = sorted(by_class)
    queues: dict[str, list[Clip]] = {name: [] for name in names}
    while True:
        for index in rng.permutation(len(names)):
            queue = queues[names[index]]
            if not queue:
                members = by_class[names[index]]
                queue.extend(members[i] for i in rng.permutation(len(members)))
            yield queue.pop()


def compose_scenes(
    root: Path, config: SceneConfig, noise_roots: Path | Sequence[Path], held_out: bool = False, count: int = 1
) -> list[Scene]:
    """`count` scenes of `config.minutes`, each over a looped bed of the `_background_noise_` recordings of
    `noise_roots` (their training part, or their held-out part when `held_out`), with clips of `config.folds` from
    `root` placed one after another with random gaps, each at a random event-to-background ratio.

    The clip rounds run on from one scene to the next, so a set of scenes uses every clip about equally often.
    Deterministic for `config.seed`; scene i of a set draws its own bed, gaps and ratios from (seed, i)."""
    rate = config.sample_rate
    clips = [c for c in list_clips(root) if fold_of(c.path) in config.folds]
    folds = ", ".join(map(str, config.folds))
    if not clips:
        raise FileNotFoundError(f"no clips of folds {folds} under {root} (names start with their fold: 1-100032-A-0)")
    noise_from = as_paths(noise_roots)
    parts = [part for folder in noise_from for part in read_noise(folder, rate)[1 if held_out else 0]]
    if not parts:
        raise FileNotFoundError(f"no background noise under {', '.join(str(r / BACKGROUND_DIR) for r in noise_from)}")
    rounds = _rounds(clips, np.random.default_rng(config.seed))
    scenes = []
    pending: tuple[Clip, np.ndarray, list[tuple[int, int]]] | None = None
    for index in range(count):
        rng = np.random.default_rng([config.seed, index])
        total = int(config.minutes * 60 * rate)
        offset = int(rng.integers(sum(part.size for part in parts)))
        bed = band_limited(noise_bed([parts[i] for i in rng.permutation(len(parts))], offset + total)[offset:], rate)
        track = np.zeros(total)
        placements: list[Placement] = []
        position = int(rng.uniform(config.gap_min_s, config.gap_max_s) * rate)
        while True:
            clip, piece, bounds = pending or _next_piece(rounds, len(clips), rate, f"folds {folds} under {root}")
            pending = None
            if position + piece.size > total:
                pending = clip, piece, bounds  # the next scene starts with it
                break
            ratio = float(rng.uniform(config.ebr_min_db, config.ebr_max_db))
            gain = event_gain(piece, bounds, bed[position : position + piece.size], ratio)
            track[position : position + piece.size] = piece * gain
            events = tuple(Event((position + a) / rate, (position + b) / rate, clip.word) for a, b in bounds)
            placements.append(Placement(clip.path, position, position + piece.size, ratio, events))
            position += piece.size + int(rng.uniform(config.gap_min_s, config.gap_max_s) * rate)
        mix = bed + track
        loudest = float(np.abs(mix).max())
        if loudest > INT16_MAX:  # scaled whole, so every drawn ratio holds
            mix *= INT16_MAX / loudest
        scenes.append(Scene(to_int16(mix), placements))
    return scenes


def _next_piece(
    rounds: Iterator[Clip], clip_count: int, rate: int, where: str
) -> tuple[Clip, np.ndarray, list[tuple[int, int]]]:
    """The next clip that holds a sound: its piece from its first to its last non-zero sample, faded, and its
    events' bounds inside the piece."""
    for _ in range(clip_count + 1):
        clip = next(rounds)
        samples = read_audio(clip.path, rate)
        bounds = event_bounds(samples, rate)
        if bounds:
            nonzero = np.flatnonzero(samples)
            first = int(nonzero[0])
            piece = _faded(samples[first : int(nonzero[-1]) + 1], rate)
            return clip, piece, [(start - first, end - first) for start, end in bounds]
    raise ValueError(f"no clip of {where} holds a sound")


def build_scene(
    root: Path, config: SceneConfig, noise_roots: Path | Sequence[Path], held_out: bool = False
) -> tuple[np.ndarray, list[Event]]:
    """One scene's audio (int16) and its events (`compose_scenes` without the record of where each clip went)."""
    scene = compose_scenes(root, config, noise_roots, held_out)[0]
    return scene.audio, scene.events
