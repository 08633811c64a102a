"""Choose the hop and smoothing: recall at 0.5 false alarms per hour and latency for each setting, from one model
pass per stream (posteriors every 10 ms frame-hop multiple), replayed through the real Trigger.

    python bench/decision_sweep.py --model models/kws.tflite runs/streams/val-clean.wav runs/streams/val-neg-clean.wav
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from spotter import evaluation
from spotter.config import TARGET_FALSE_ALARMS_PER_HOUR
from spotter.engine import Spotter
from spotter.labels import labels_path, read_labels
from spotter.model import Classifier
from spotter.sources import WavFile

BASE_HOP_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("streams", nargs="+", type=Path)
    parser.add_argument("--hops", default="100,150,200")
    parser.add_argument("--smoothing", default="0,200,300,500")
    parser.add_argument("--target", type=float, default=TARGET_FALSE_ALARMS_PER_HOUR,
                        help="false alarms per hour at which to compare settings")
    args = parser.parse_args()
    classifier = Classifier.load(args.model)
    spec = classifier.spec
    rate = spec.features.sample_rate
    raw = dataclasses.replace(spec.decision, hop_ms=BASE_HOP_MS, smoothing_ms=0.0)
    base = Spotter(classifier, raw, record=True)
    data = []
    for path in args.streams:
        audio = np.concatenate(list(WavFile(path, rate)))
        _, trace = evaluation.run_stream(base, audio)  # smoothing 0: the trace holds the raw posteriors
        data.append((trace, read_labels(labels_path(path))))
        print(f"{path.name}: {len(trace.samples)} windows", file=sys.stderr)
    print(f"hop_ms smoothing_ms threshold@{args.target:g}FA/h recall per-keyword-thresholds-recall "
          "latency_median_ms latency_p90_ms")
    for hop in [float(h) for h in args.hops.split(",")]:
        every = int(round(hop / BASE_HOP_MS))
        for smoothing in [float(s) for s in args.smoothing.split(",")]:
            decision = dataclasses.replace(spec.decision, hop_ms=hop, smoothing_ms=smoothing, thresholds={})
            traces = [(trace.resmoothed(spec.labels, decision, every), truth) for trace, truth in data]
            calibration = evaluation.calibrate(traces, spec.labels, decision, args.target)
            point = calibration.operating_points.get("overall")
            tuned = calibration.result["overall"]
            if point is None:
                print(f"{hop:g} {smoothing:g} - - {tuned['recall']:.3f} - -")
                continue
            at = dataclasses.replace(decision, default_threshold=point["threshold"])
            latencies = []
            for trace, truth in traces:
                hits, _, _ = evaluation.match(evaluation.replay(trace, spec.labels, at), truth)
                latencies += [d.offset - e.end for e, d in hits]
            print(f"{hop:g} {smoothing:g} {point['threshold']:.2f} {point['recall']:.3f} {tuned['recall']:.3f} "
                  f"{1000 * np.median(latencies):.0f} {1000 * np.percentile(latencies, 90):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
