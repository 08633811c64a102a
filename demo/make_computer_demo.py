"""Build demo/computer.wav + computer.txt: held-back (test-split) takes of "computer", two of "jarvis" and four
Speech Commands words, each cut to its utterance, with pauses between them. Run from the repository root:

    .venv/bin/python demo/make_computer_demo.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spotter.config import UNKNOWN
from spotter.files import write_wav
from spotter.labels import Event, write_labels
from spotter.sources import to_int16
from spotter.train.audio import read_audio, trim
from spotter.train.data import speaker_of, split_of

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data"
RATE = 16000
PAUSE_S = 1.5


def held_back(folder: Path, count: int) -> list[Path]:
    return [p for p in sorted(folder.glob("*.mp3")) if split_of(speaker_of(p)) == "test"][:count]


def main() -> None:
    computer = held_back(DATA / "wakewords" / "computer", 6)
    others = held_back(DATA / "wakewords" / "jarvis", 2) + [
        held_back(DATA / "speech_commands" / word, 1)[0] for word in ("forward", "marvin", "learn", "house")
    ]
    order = [computer[0], others[0], computer[1], others[2], computer[2], others[3], computer[3], others[1],
             computer[4], others[4], others[5], computer[5]]
    pieces, events, position = [np.zeros(int(RATE * PAUSE_S))], [], int(RATE * PAUSE_S)
    for path in order:
        audio = read_audio(path, RATE)
        start, end = trim(audio, RATE)
        piece = audio[start:end].astype(np.float64)
        label = "computer" if path in computer else UNKNOWN
        events.append(Event(position / RATE, (position + piece.size) / RATE, label))
        pieces += [piece, np.zeros(int(RATE * PAUSE_S))]
        position += piece.size + int(RATE * PAUSE_S)
    audio = np.concatenate(pieces)
    audio += np.random.default_rng(0).normal(0, 8, audio.size)  # a quiet room, not digital silence
    write_wav(ROOT / "demo" / "computer.wav", to_int16(audio), RATE)
    write_labels(ROOT / "demo" / "computer.txt", events)
    for path in order:
        print(path.relative_to(path.parents[1]))


if __name__ == "__main__":
    main()
