"""Synthesised negatives: phrases spoken by many offline voices (espeak-ng, festival), written as a folder that
`spotter train --negatives` reads.

Real recordings teach a model the words; they also teach it the channel they were recorded through. Speech from
other "microphones" that is never a keyword (confusable words, sentences, other wake phrases) breaks that link.
Synthesised speech is cheap and endlessly varied in voice, speed and pitch, but it is not a person: use it for
negatives, never as a keyword's only positives.

The folder holds, per phrase short enough for one window, a word folder with one clip per voice
(`<phrase>/<voice>_nohash_0.wav`: the voice is the speaker, so the speaker-disjoint split holds voices back), and
per voice one long recording of phrases back to back (`<voice>.wav`: running speech, every window `_unknown_`,
its last stretch held back in time order), with an Audacity label file that marks each phrase as `_unknown_:<phrase>`,
so that `spotter eval run` takes it as a stream with no keyword (false alarms per hour on speech a model has never
heard) and names the phrase behind each false alarm. Phrases that contain a keyword of the model are refused: a negative that
says the keyword teaches the model to miss it.

    python -m spotter.train.synth -o runs/tts                       # the shipped phrase list
    python -m spotter.train.synth --phrases mine.txt --keywords marvin -o runs/tts-marvin
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotter.config import UNKNOWN, ms_to_samples
from spotter.files import write_text, write_wav
from spotter.labels import Event, labels_path, write_labels

from .audio import read_audio, spoken_part
from .options import DEFAULT_WORDS

PHRASES = Path(__file__).parent / "phrases"
TRAINING_PHRASES = PHRASES / "negatives.txt"
HELD_BACK_PHRASES = PHRASES / "heldback.txt"
"""Phrases no training run uses: streams of them measure false alarms on speech the model has never heard."""
SHIPPED_KEYWORDS = (*DEFAULT_WORDS, "computer", "jarvis", "alexa")
"""Every word a shipped model spots: the default for `--keywords`."""

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("m1", "m3", "f2", "f4")
"""espeak-ng voice variants: two male, two female formant sets, so each accent gets four speakers."""
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
ESPEAK_WORDS_PER_MINUTE = (130, 200)
ESPEAK_PITCH = (25, 75)
FESTIVAL_STRETCH = (0.85, 1.25)
"""Per rendering, a speed and pitch drawn from these ranges: one voice never says two phrases identically."""
GAP_MS = (150.0, 600.0)
"""Pause between phrases in a voice's running-speech recording: short enough that no one-second window is only
pause (that would be `_silence_`, not other speech)."""
RENDER_TIMEOUT_S = 60.0
SAMPLE_RATE = 16000
WINDOW_MS = 1000.0


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak" or "festival"
    name: str

    @property
    def speaker(self) -> str:
        """The file-name-safe speaker id (`_nohash_` precedes the take number)."""
        return f"{self.engine}-{re.sub(r'[^a-z0-9]+', '-', self.name.lower())}"


def available_voices() -> list[Voice]:
    """Every voice of the installed engines: espeak-ng accents x variants, and festival's installed English voices."""
    voices: list[Voice] = []
    if shutil.which("espeak-ng"):
        voices += [Voice("espeak", f"{accent}+{variant}") for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS]
    if shutil.which("text2wave"):
        voices += [Voice("festival", name) for name in FESTIVAL_VOICES if _festival_has(name)]
    return voices


def _festival_has(name: str) -> bool:
    return any(FESTIVAL_VOICE_DIR.glob(f"*/{name}"))


def read_phrases(path: Path, keywords: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The phrases of a list (one per line, `#` comments), and those refused because they say a keyword."""
    banned = {k.lower() for k in keywords}
    kept, refused = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        phrase = line.split("#", 1)[0].strip()
        if not phrase:
            continue
        words = set(re.findall(r"[a-z']+", phrase.lower()))
        (refused if words & banned else kept).append(phrase)
    return kept, refused


def render(voice: Voice, text: str, rng: np.random.Generator, folder: Path) -> np.ndarray:
    """One phrase in one voice, at a random speed and pitch, as int16 at SAMPLE_RATE."""
    out = folder / "render.wav"
    if voice.engine == "espeak":
        speed = int(rng.integers(*ESPEAK_WORDS_PER_MINUTE))
        pitch = int(rng.integers(*ESPEAK_PITCH))
        command = ["espeak-ng", "-v", voice.name, "-s", str(speed), "-p", str(pitch), "-w", str(out), text]
    else:
        stretch = rng.uniform(*FESTIVAL_STRETCH)
        script = folder / "text.txt"
        script.write_text(text + "\n", encoding="utf-8")
        command = ["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                   f"(Parameter.set 'Duration_Stretch {stretch:.3f})", "-o", str(out), str(script)]
    subprocess.run(command, check=True, capture_output=True, timeout=RENDER_TIMEOUT_S)
    return read_audio(out, SAMPLE_RATE)


def slug(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def synthesize(
    phrases: list[str], output: Path, voices: list[Voice], per_voice: int, seed: int, log=print  # type: ignore[no-untyped-def]
) -> dict[str, int]:
    """Write the negatives folder (see the module docstring); returns how many clips and recordings it holds."""
    window = ms_to_samples(WINDOW_MS, SAMPLE_RATE)
    counts = {"clips": 0, "recordings": 0, "seconds": 0}
    with tempfile.TemporaryDirectory() as scratch:
        for number, voice in enumerate(voices):
            rng = np.random.default_rng([seed, number])
            chosen = set(rng.permutation(len(phrases))[:per_voice].tolist())
            running: list[np.ndarray] = []
            said: list[Event] = []
            position = 0
            for index, phrase in enumerate(phrases):
                audio = render(voice, phrase, rng, Path(scratch))
                start, end = spoken_part(audio, SAMPLE_RATE)
                spoken = audio[start:end]
                if spoken.size <= window:
                    write_wav(output / slug(phrase) / f"{voice.speaker}_nohash_0.wav", spoken, SAMPLE_RATE)
                    counts["clips"] += 1
                if index in chosen:
                    gap = ms_to_samples(float(rng.uniform(*GAP_MS)), SAMPLE_RATE)
                    running += [spoken, np.zeros(gap, np.int16)]
                    said.append(Event(position / SAMPLE_RATE, (position + spoken.size) / SAMPLE_RATE, UNKNOWN, phrase))
                    position += spoken.size + gap
            if running:
                speech = np.concatenate(running)
                write_wav(output / f"{voice.speaker}.wav", speech, SAMPLE_RATE)
                write_labels(labels_path(output / f"{voice.speaker}.wav"), said)  # no keyword: a false-alarm stream
                counts["recordings"] += 1
                counts["seconds"] += int(speech.size // SAMPLE_RATE)
            log(f"{voice.speaker}: done ({number + 1}/{len(voices)})")
    return counts


def describe(output: Path, source: Path, voices: list[Voice], per_voice: int, seed: int, counts: dict[str, int]) -> None:
    lines = [
        "# Synthesised negatives", "",
        f"Written by `python -m spotter.train.synth` from `{source}` (seed {seed}), {len(voices)} voices, "
        f"{per_voice} phrases per voice in each running-speech recording.", "",
        f"- {counts['clips']} clips of phrases that fit one window, one folder per phrase, one clip per voice",
        f"- {counts['recordings']} running-speech recordings, {counts['seconds']} s in all", "",
        "Voices: " + ", ".join(v.speaker for v in voices) + ".", "",
        "Synthetic speech (espeak-ng, GPL-3.0; festival and its voices, free licences): no recorded person's voice.",
    ]
    write_text(output / "README.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spotter.train.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrases", type=Path, default=TRAINING_PHRASES,
                        help="phrase list, one per line (default: the shipped training list; "
                        f"{HELD_BACK_PHRASES.name} is for evaluation only)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder to write (made if missing)")
    parser.add_argument("--keywords", default=",".join(SHIPPED_KEYWORDS),
                        help="phrases saying any of these words are refused (default: every shipped keyword)")
    parser.add_argument("--per-voice", type=int, default=40,
                        help="phrases per voice in its running-speech recording (memory: each second is a training row)")
    parser.add_argument("--voices", type=int, default=0, help="use only the first N voices (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        voices = available_voices()
        if not voices:
            raise ValueError("no speech synthesiser found: install espeak-ng (and festival) with apt")
        voices = voices[: args.voices] if args.voices > 0 else voices
        phrases, refused = read_phrases(args.phrases, tuple(k.strip() for k in args.keywords.split(",") if k.strip()))
        if refused:
            print(f"refused {len(refused)} phrases that say a keyword: {'; '.join(refused[:5])}", file=sys.stderr)
        if not phrases:
            raise ValueError(f"{args.phrases}: no phrases left to synthesise")
        counts = synthesize(phrases, args.output, voices, args.per_voice, args.seed,
                            log=lambda m: print(m, file=sys.stderr))
        describe(args.output, args.phrases, voices, args.per_voice, args.seed, counts)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"spotter synth: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {counts['clips']} clips, {counts['recordings']} recordings ({counts['seconds']} s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
