"""Are `spotter embed` features useful for a word the model never had as a keyword? A linear probe.

Clips of WORD (a Speech Commands word the model lumps into `_unknown_`) against clips of the model's other
`_unknown_` words, all from speakers the model held back (its validation and test splits: it never heard any of these
recordings). The speakers are split in half at random, a logistic regression is fitted on one half's clips and
scored on the other half's, and this is repeated over many random speaker splits. The same regressor (standardised
features, scikit-learn defaults) runs on `spotter embed --per-file` features and on per-clip averages of the log-mel
features the model itself reads (and on their averages and standard deviations), so the difference is what the
network's layers add.

usage: python bench/embed_probe.py [--word happy] [--model kws] [--data ../shared/data/speech_commands] [--splits 20]
                                  [--every-speaker]
needs: pip install -e '.[embed,train]' (scikit-learn, and soundfile for the MP3 clips)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spotter import models, modelfile
from spotter.config import BACKGROUND_LABELS
from spotter.embedding import centred, read_input
from spotter.features import LogMel
from spotter.train.data import speaker_of, split_of

HELD_BACK = ("validation", "test")
"""The model's own held-back splits (`train.data.split_of`): the probe's clips all come from these speakers."""
SEED = 0
MAX_ITER = 2000


def clips(data: Path, word: str, keywords: tuple[str, ...], every_speaker: bool) -> tuple[list[Path], np.ndarray]:
    """Held-back speakers' clips (or with `every_speaker` all clips) of `word` (1) and of every other non-keyword
    word (0), as many as of `word`, drawn evenly at random from those words."""
    def held_back(folder: Path) -> list[Path]:
        return sorted(p for p in folder.glob("*.mp3") if every_speaker or split_of(speaker_of(p)) in HELD_BACK)

    positives = held_back(data / word)
    others = [p for d in sorted(data.iterdir()) if d.is_dir() and not d.name.startswith("_")
              and d.name not in keywords and d.name != word for p in held_back(d)]
    rng = np.random.default_rng(SEED)
    negatives = [others[i] for i in sorted(rng.choice(len(others), size=len(positives), replace=False))]
    return positives + negatives, np.array([1] * len(positives) + [0] * len(negatives))


def embeddings(model: Path, paths: list[Path]) -> np.ndarray:
    """`spotter embed --per-file` of every clip, through the command itself."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "probe.npy"
        subprocess.run([sys.executable, "-m", "spotter", "embed", "-m", str(model), "--per-file", "-o", str(out),
                        *map(str, paths)], check=True)
        table = np.load(out)
    if list(table["file"]) != [str(p) for p in paths]:
        raise SystemExit("spotter embed returned rows out of order")
    return table["embedding"]


def log_mel_stats(model: Path, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip mean, and mean with standard deviation, of the model's own features over the clip (centred in one
    window when shorter, as `embed --per-file` does)."""
    spec = modelfile.read_spec(model)
    frontend = LogMel(spec.features)
    frames = [frontend.compute(centred(read_input(p, spec.features.sample_rate), spec.window_samples)) for p in paths]
    means = np.array([f.mean(axis=0) for f in frames])
    return means, np.hstack([means, np.array([f.std(axis=0) for f in frames])])


def probe(features: np.ndarray, truth: np.ndarray, train: np.ndarray) -> float:
    """Accuracy on the clips not in `train` of a logistic regression fitted on those in it."""
    regressor = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
    regressor.fit(features[train], truth[train])
    return float((regressor.predict(features[~train]) == truth[~train]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--word", default="happy")
    parser.add_argument("--model", default="kws")
    parser.add_argument("--data", default="../shared/data/speech_commands")
    parser.add_argument("--splits", type=int, default=20, help="random speaker splits to average over")
    parser.add_argument("--every-speaker", action="store_true",
                        help="also clips of speakers the model trained on (it heard them as _unknown_), for words "
                        "with few held-back clips")
    args = parser.parse_args()
    model = models.resolve(args.model)
    keywords = tuple(label for label in modelfile.read_spec(model).labels if label not in BACKGROUND_LABELS)
    if args.word in keywords:
        raise SystemExit(f"{args.word} is one of the model's keywords; pick a word it files under _unknown_")
    paths, truth = clips(Path(args.data), args.word, keywords, args.every_speaker)
    speakers = np.array([speaker_of(p) for p in paths])
    ways = {"spotter embed --per-file": embeddings(model, paths)}
    ways["log-mel mean"], ways["log-mel mean and std"] = log_mel_stats(model, paths)
    rng = np.random.default_rng(SEED)
    unique = np.unique(speakers)
    scores: dict[str, list[float]] = {name: [] for name in ways}
    sizes = []
    for _ in range(args.splits):
        train = np.isin(speakers, rng.permutation(unique)[: unique.size // 2])
        sizes.append((int(train.sum()), int((truth[train] == 1).sum()), int((~train).sum()), int((truth[~train] == 1).sum())))
        for name, features in ways.items():
            scores[name].append(probe(features, truth, train))
    n_train, pos_train, n_test, pos_test = np.mean(sizes, axis=0)
    print(f"{model.name}: '{args.word}' ({int(truth.sum())} clips) against other _unknown_ words ({int((truth == 0).sum())} "
          f"clips), {unique.size} {'' if args.every_speaker else 'held-back '}speakers split in half {args.splits} times: on average {n_train:.0f} "
          f"training clips ({pos_train:.0f} '{args.word}'), {n_test:.0f} test clips ({pos_test:.0f} '{args.word}')")
    for name, values in scores.items():
        width = ways[name].shape[1]
        print(f"  {name:<26} {width:>3} features: accuracy {np.mean(values):.1%} +- {np.std(values):.1%} "
              f"(min {np.min(values):.1%}, max {np.max(values):.1%})")


if __name__ == "__main__":
    main()
