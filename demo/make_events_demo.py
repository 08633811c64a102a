"""Build demo/events.wav + events.txt + events-ATTRIBUTION.md: a sound-event scene of ESC-10 fold-4 clips (the fold
no training scene uses) over the held-out part of the Speech Commands background noise, made by the code that
builds training scenes (`spotter.train.scenes`). Run from the repository root (or `make demo/events.wav`):

    .venv/bin/python demo/make_events_demo.py
"""

from __future__ import annotations

import csv
from pathlib import Path

from spotter.files import write_text, write_wav
from spotter.labels import write_labels
from spotter.train.scenes import SceneConfig, compose_scenes

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data"
ESC10 = DATA / "esc10"
CONFIG = SceneConfig(minutes=80 / 60, ebr_min_db=10.0, ebr_max_db=20.0, gap_min_s=1.0, gap_max_s=2.0,
                     folds=(4,))
"""80 s (2.6 MB) with short gaps, every event at least 10 dB over the noise: every class, each at least once."""


def attribution(paths: list[Path]) -> str:
    """Markdown naming the dataset and, per clip, its Freesound source, author and licence (from the dataset's
    MANIFEST.csv and ATTRIBUTION.txt)."""
    with open(ESC10 / "MANIFEST.csv", newline="", encoding="utf-8") as manifest:
        rows = {row["file"].rsplit(".", 1)[0]: row for row in csv.DictReader(manifest)}
    lines = {}
    for line in (ESC10 / "ATTRIBUTION.txt").read_text(encoding="utf-8").splitlines():
        if "->" in line:
            text, _, name = line.rpartition("->")
            lines[name.strip()] = text.split("]:", 1)[-1].strip()
    clips = []
    for path in paths:
        name = f"{path.parent.name}/{path.stem}"
        row = rows[name]
        clips.append(f"| `{name}` | {row['freesound_id']} | {row['freesound_author']} | {row['freesound_license']} "
                     f"| {lines[name]} |")
    return "\n".join([
        "# Sound-event demo recording: attribution",
        "",
        f"`events.wav` ({CONFIG.minutes * 60:.0f} s, 16 kHz mono, 16-bit) and its labels `events.txt` (Audacity",
        "format) were built by `demo/make_events_demo.py` with `spotter.train.scenes`: the clips below placed one",
        f"after another with {CONFIG.gap_min_s:g} to {CONFIG.gap_max_s:g} s gaps, each at {CONFIG.ebr_min_db:g} to "
        f"{CONFIG.ebr_max_db:g} dB over the background, labelled with their class where their events lie.",
        "",
        "The clips are from **ESC-10**, the CC BY subset of ESC-50, by Karol J. Piczak, licensed under **Creative",
        "Commons Attribution 3.0 Unported (CC BY 3.0)** (<https://creativecommons.org/licenses/by/3.0/>). Cite it as:",
        "",
        "> K. J. Piczak, \"ESC: Dataset for Environmental Sound Classification\", Proceedings of the 23rd Annual ACM",
        "> Conference on Multimedia (ACM MM 2015), Brisbane, Australia, pp. 1015-1018. DOI: 10.1145/2733373.2806390",
        "",
        "Each clip is an excerpt of a Freesound recording (`https://freesound.org/s/<id>/`); the licence column is",
        "that of the Freesound source, as the dataset lists it. All are from fold 4, which no training scene uses.",
        "",
        "| clip | Freesound id | author | source licence | source |",
        "|---|---:|---|---|---|",
        *clips,
        "",
        "The background loops the held-out last fifth of the six `_background_noise_` recordings of the **Speech",
        "Commands dataset** by Pete Warden (Google), licensed under **CC BY 4.0**",
        "(<https://creativecommons.org/licenses/by/4.0/>); cite it as: P. Warden, \"Speech Commands: A Dataset for",
        "Limited-Vocabulary Speech Recognition\", arXiv:1804.03209, 2018.",
        "",
        "Changes made: clips decoded (from the 16 kHz MP3 files of the ESC-10 copy this project uses), cut to their",
        "non-silent extent, faded in and out over 10 ms, scaled, mixed over the background noise, re-encoded as WAV.",
        "",
    ])


def main() -> None:
    scene = compose_scenes(ESC10, CONFIG, DATA / "speech_commands", held_out=True)[0]
    write_wav(ROOT / "demo" / "events.wav", scene.audio, CONFIG.sample_rate)
    write_labels(ROOT / "demo" / "events.txt", scene.events)
    paths = [placement.path for placement in scene.placements]
    write_text(ROOT / "demo" / "events-ATTRIBUTION.md", attribution(paths))
    for path in paths:
        print(path.relative_to(ESC10))


if __name__ == "__main__":
    main()
