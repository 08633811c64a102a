"""`spotter eval`: build test streams, score a model on streams (recall, false alarms per hour, latency, DET
curves, per-keyword thresholds), and clip-level accuracy on a clip folder, with the code training uses.

`run` needs only the runtime install; `build` and `clips` decode clip folders and need the training extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..config import TARGET_FALSE_ALARMS_PER_HOUR
from ..files import write_text
from ..train.options import DEFAULT_WORDS, SPLITS, TrainConfig
from .options import CommandError, add_decision, add_model, decision_from_args, training_module

HELP = "streaming evaluation: build streams, score models, DET curves"
DEFAULT_DATA = TrainConfig().data[0]
FALSE_ALARMS_SHOWN = 10
"""False alarms listed per stream with what their window held; eval.json has them all."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", required=True)
    build = sub.add_parser("build", help="build a continuous test stream (WAV + Audacity labels) from a clip folder")
    build.add_argument("--data", action="append", metavar="FOLDER",
                       help=f"clip folder, repeatable (keywords from one, other words from another); default {DEFAULT_DATA}")
    build.add_argument("--output", "-o", required=True, help="WAV to write; labels go next to it as .txt")
    build.add_argument("--keywords", default=",".join(DEFAULT_WORDS))
    build.add_argument("--minutes", type=float, default=10.0)
    build.add_argument("--snr", default="clean", help="'clean' or the SNR in dB of the noise bed")
    build.add_argument("--negatives", action=argparse.BooleanOptionalAction, default=False,
                       help="other words, silence and noise only (for false alarms per hour)")
    build.add_argument("--noise", action="append", metavar="FOLDER",
                       help="folder whose _background_noise_ makes the noise bed, repeatable (default: the --data folders)")
    build.add_argument("--split", choices=SPLITS, default="validation",
                       help="keyword streams: the speakers' split; --events: 'train' lays the scene over the training "
                       "part of the background noise, the others over its held-out part")
    build.add_argument("--seed", type=int, default=0)
    events = build.add_argument_group(
        "sound-event scenes", "--events builds a scene instead of a keyword stream: the folder's clips placed at "
        "random over looped background noise (--noise, default the _background_noise_ of "
        f"{DEFAULT_DATA}), labelled at each event's extent; --data, --negatives and --snr are for keyword streams")
    events.add_argument("--events", metavar="FOLDER",
                        help="ESC-style folder of sound events: one subfolder per class, clips named <fold>-...")
    events.add_argument("--folds", type=_folds, metavar="1,2,3",
                        help="with --events (required): the folds whose clips to use")
    events.add_argument("--ebr", type=_db_range, metavar="MIN,MAX",
                        help="with --events: event-to-background ratio range in dB, drawn per clip (default 0,20): "
                        "the mean power of its events over that of the noise under it")
    events.add_argument("--count", type=int, metavar="N",
                        help="with --events: build a set of N scenes, -o NAME.wav writing NAME-00.wav ... "
                        "NAME-<N-1>.wav; the set uses every clip about equally often")

    score = sub.add_parser("run", help="score a model on streams with Audacity labels next to them (.txt)")
    add_model(score)
    score.add_argument("streams", nargs="+", help="WAV files, each with its labels in <name>.txt")
    score.add_argument("--report", default="eval-report", help="folder for eval.json and det.png")
    add_decision(score, thresholds=False)
    score.add_argument("--write-thresholds", action=argparse.BooleanOptionalAction, default=False,
                       help=f"write the decision settings and per-label thresholds at {TARGET_FALSE_ALARMS_PER_HOUR} "
                       "false alarms/h into the model: each keyword gets an equal share, so together they stay within it")

    clips = sub.add_parser("clips", help="clip-level accuracy and confusion matrix on a clip folder's split")
    add_model(clips)
    clips.add_argument("--data", action="append", metavar="FOLDER",
                       help="clip folder, repeatable; default: the folders the model was trained on (in its metadata)")
    clips.add_argument("--negatives", action="append", metavar="FOLDER", default=[],
                       help="with --data: folders whose every word is _unknown_")
    clips.add_argument("--split", choices=SPLITS, default="validation")
    clips.add_argument("--report", help="write the metrics as JSON here")


def run(args: argparse.Namespace) -> int:
    return {"build": run_build, "run": run_score, "clips": run_clips}[args.eval_command](args)


def _folds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fold numbers separated by commas (1,2,3), got {text!r}") from None


def _db_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in dB (0,20), got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise argparse.ArgumentTypeError(f"MIN and MAX must be finite, got {text!r}")
    if low > high:
        raise argparse.ArgumentTypeError(f"MIN must not exceed MAX, got {text!r}")
    return low, high


def run_build(args: argparse.Namespace) -> int:
    if args.events is not None:
        return _build_scenes(args)
    given = [flag for flag, value in (("--folds", args.folds), ("--ebr", args.ebr), ("--count", args.count))
             if value is not None]
    if given:
        raise CommandError(f"{', '.join(given)}: only with --events (sound-event scenes)")
    from ..files import write_wav
    from ..labels import labels_path, write_labels

    streams = training_module("streams", "eval build")
    config = streams.StreamConfig(
        minutes=args.minutes, snr_db=None if args.snr == "clean" else float(args.snr),
        negatives_only=args.negatives, split=args.split, seed=args.seed,
    )
    keywords = tuple(w for w in args.keywords.split(",") if w)
    noise = [Path(d) for d in args.noise] if args.noise else None
    audio, events = streams.build([Path(d) for d in (args.data or [DEFAULT_DATA])], keywords, config, noise)
    out = Path(args.output)
    write_wav(out, audio, config.sample_rate)
    write_labels(labels_path(out), events)
    counted = sum(1 for e in events if e.label in keywords)
    print(f"wrote {out} ({audio.size / config.sample_rate / 60:.1f} min, {counted} keywords, "
          f"{len(events) - counted} other events) and {labels_path(out)}", file=sys.stderr)
    return 0


def _build_scenes(args: argparse.Namespace) -> int:
    """`eval build --events`: one scene, or a set of `--count` scenes whose clip rounds run on from one to the next."""
    from ..files import write_wav
    from ..labels import labels_path, write_labels

    mixed = [flag for flag, used in (("--data", args.data), ("--negatives", args.negatives),
                                     ("--snr", args.snr != "clean")) if used]
    if mixed:
        raise CommandError(f"{', '.join(mixed)} are for keyword streams, not --events scenes (the level is --ebr)")
    if args.folds is None:
        raise CommandError("--events needs --folds: the folds whose clips to use (1,2,3 to train, 4 to validate)")
    count = 1 if args.count is None else args.count
    if count < 1:
        raise CommandError(f"--count must be at least 1, got {count}")
    scenes = training_module("scenes", "eval build")
    ratios = {} if args.ebr is None else {"ebr_min_db": args.ebr[0], "ebr_max_db": args.ebr[1]}
    config = scenes.SceneConfig(minutes=args.minutes, folds=args.folds, seed=args.seed, **ratios)
    noise = [Path(d) for d in (args.noise or [DEFAULT_DATA])]
    built = scenes.compose_scenes(Path(args.events), config, noise, held_out=args.split != "train", count=count)
    out = Path(args.output)
    for index, scene in enumerate(built):
        path = out if args.count is None else out.with_name(f"{out.stem}-{index:02d}{out.suffix}")
        write_wav(path, scene.audio, config.sample_rate)
        write_labels(labels_path(path), scene.events)
        classes = len({e.label for e in scene.events})
        print(f"wrote {path} ({scene.audio.size / config.sample_rate / 60:.1f} min, {len(scene.events)} events of "
              f"{classes} classes from {len(scene.placements)} clips) and {labels_path(path)}", file=sys.stderr)
    return 0


def run_score(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import evaluation, modelfile, models
    from ..engine import Spotter
    from ..labels import labels_path, read_labels
    from ..model import Classifier
    from ..sources import WavFile
    from ..train.report import refresh_card, save_det

    model_path = models.resolve(args.model)
    classifier = Classifier.load(model_path)
    spec = classifier.spec
    spotter = Spotter(classifier, decision_from_args(spec.decision, args, spec.labels), record=True)
    out = Path(args.report)
    try:  # before the long pass over the audio, not after it
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot make the report folder {out}: {exc.strerror or exc}") from None
    target = TARGET_FALSE_ALARMS_PER_HOUR
    window_s = spec.features.samples_for(spec.window_frames) / spec.features.sample_rate
    traces = []
    results: dict[str, Any] = {}
    bounded: dict[str, tuple[list[Any], list[Any]]] = {}
    for wav in [Path(p) for p in args.streams]:
        truth = _known_labels(read_labels(labels_path(wav)), spec.labels, labels_path(wav))
        audio = np.concatenate(list(WavFile(wav, spec.features.sample_rate)))
        detections, trace = evaluation.run_stream(spotter, audio)
        traces.append((trace, truth))
        results[wav.name] = evaluation.score(detections, truth, spec.labels, trace.duration_s)
        _, false_alarms, _ = evaluation.match(detections, truth)
        results[wav.name]["false_alarm_causes"] = evaluation.false_alarm_causes(false_alarms, truth, window_s)
        bounded[wav.name] = (truth, evaluation.extents(trace, spec.labels, spotter.decision))
    labelled = any(e.label in spec.keyword_labels for truth, _ in bounded.values() for e in truth)
    sed = evaluation.sed_metrics(bounded, spec.labels) if labelled else None  # no events: nothing to score
    calibration = evaluation.calibrate(traces, spec.labels, spotter.decision, target)
    points = calibration.operating_points
    written = [out / "eval.json"]
    try:
        save_det(calibration.det, points, out / "det.png", f"{model_path.name}: {', '.join(results)}", target)
        written.append(out / "det.png")
    except ImportError:
        print("spotter eval: matplotlib missing, DET curve not drawn (pip install 'spotter[train]')", file=sys.stderr)
    for name, result in results.items():
        o = result["overall"]
        lat = "-" if o["latency_median_s"] is None else f"{o['latency_median_s'] * 1000:.0f}/{o['latency_p90_s'] * 1000:.0f} ms"
        recall = "-" if o["recall"] is None else f"{o['recall']:.1%}"
        print(f"{name}: recall {recall} ({o['hits']}/{o['events']}), {o['false_alarms']} false alarms "
              f"({o['false_alarms_per_hour']:.2f}/h over {result['duration_s'] / 3600:.2f} h), latency median/p90 {lat}")
        causes = result["false_alarm_causes"]
        for cause in causes[:FALSE_ALARMS_SHOWN]:
            heard = ", ".join(cause["heard"]) or "nothing labelled"
            print(f"  false alarm at {cause['time_s']:.2f} s: {cause['label']} ({cause['score']:.2f}) on {heard}")
        if len(causes) > FALSE_ALARMS_SHOWN:
            print(f"  ... and {len(causes) - FALSE_ALARMS_SHOWN} more in eval.json")
    if len(results) > 1:
        hits, events = (sum(r["overall"][k] for r in results.values()) for k in ("hits", "events"))
        alarms = sum(r["overall"]["false_alarms"] for r in results.values())
        hours = sum(r["duration_s"] for r in results.values()) / 3600
        recall = f"{hits / events:.1%}" if events else "-"
        print(f"all {len(results)} streams: recall {recall} ({hits}/{events}), {alarms} false alarms "
              f"({alarms / hours:.2f}/h over {hours:.2f} h)")
    if labelled and sed is None:
        print("spotter eval: sed_eval missing, no event-based or segment-based scores (pip install 'spotter[train]')",
              file=sys.stderr)
    elif sed is not None:
        e, g = sed["event_based"], sed["segment_based"]
        print(f"sound events (all streams, {sed['rule']}): event-based F1 {e['f1']:.1%}, error rate "
              f"{e['error_rate']:.2f}; segment-based F1 {g['f1']:.1%}, error rate {g['error_rate']:.2f}")
        print("  event-based F1 per label: " + ", ".join(f"{k} {v['f1']:.1%}" for k, v in e["labels"].items()))
    chosen, tuned = calibration.decision.thresholds, calibration.result["overall"]
    has_keywords = bool(tuned["events"])
    report = {"model": model_path.name, "decision": dataclasses.asdict(spotter.decision), "rule": evaluation.RULE,
              "streams": results, "operating_points": points, "det": calibration.det,
              "label_thresholds": {"thresholds": chosen, "overall": tuned}, "sound_events": sed}
    write_text(out / "eval.json", json.dumps(report, indent=1))
    if not has_keywords:
        print("no keyword events in these streams: only false alarms are measured, no thresholds chosen")
    else:
        p = points["overall"]
        print(f"at {target} false alarms/h (all streams): threshold {p['threshold']:.4g}, recall {p['recall']:.1%}")
        print(f"per-keyword thresholds sharing {target} false alarms/h equally (all streams): "
              f"recall {tuned['recall']:.1%}, {tuned['false_alarms_per_hour']:.2f} false alarms/h; "
              + ", ".join(f"{k} {v:g}" for k, v in chosen.items()))
    if args.write_thresholds and not has_keywords:
        print("spotter eval: --write-thresholds needs streams with keyword events; the model is unchanged",
              file=sys.stderr)
        return 2
    if args.write_thresholds:
        decision = calibration.decision
        modelfile.update_spec(model_path, spec.replace(decision=decision))
        print(f"wrote hop {decision.hop_ms:g} ms, smoothing {decision.smoothing_ms:g} ms, refractory "
              f"{decision.refractory_ms:g} ms and thresholds into {model_path}: {chosen}", file=sys.stderr)
        card = refresh_card(model_path)
        if card is not None:
            print(f"rewrote {card} with them", file=sys.stderr)
    print(f"report: {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def _known_labels(truth: list[Any], labels: tuple[str, ...], source: Path) -> list[Any]:
    """Events whose label the model does not have (a typo, another model's word, an extra column) cannot be hits:
    they are scored as other sounds (`_unknown_:<label>`), and named once on stderr instead of silently missed."""
    from ..config import UNKNOWN

    foreign = Counter(e.label for e in truth if e.label not in labels)
    if foreign:
        named = ", ".join(f"{label!r} ({count})" for label, count in sorted(foreign.items()))
        print(f"spotter eval: {source}: labels the model does not have, scored as other sounds: {named}",
              file=sys.stderr)
    return [dataclasses.replace(e, label=UNKNOWN, said=e.label) if e.label in foreign else e for e in truth]


def _as_list(value: Any) -> list[str]:
    """Model files from before several data folders stored one string."""
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def run_clips(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import models
    from ..config import ms_to_samples
    from ..features import LogMel
    from ..metrics import clip_metrics
    from ..model import Classifier

    data = training_module("data", "eval clips")
    from ..train.report import print_metrics

    model_path = models.resolve(args.model)
    classifier = Classifier.load(model_path)
    spec = classifier.spec
    trained_on = spec.training.get("config", {})
    sources = args.data or _as_list(trained_on.get("data")) or [DEFAULT_DATA]
    negatives = args.negatives if args.data else _as_list(trained_on.get("negatives"))
    window = ms_to_samples(trained_on.get("window_ms", 1000.0), spec.features.sample_rate)
    pool = data.load_pool(sources, spec.labels, spec.features.sample_rate, window, negatives=negatives)
    clips = data.eval_set(pool, args.split, LogMel(spec.features), np.random.default_rng(data.EVAL_SEED))
    metrics = clip_metrics(clips.truth, classifier.predict(clips.frames), spec.labels)
    print_metrics(f"{model_path.name} on {args.split} clips", metrics)
    if args.report:
        write_text(Path(args.report), json.dumps(metrics, indent=1))
    return 0
