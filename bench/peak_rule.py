"""Issue 12 item 3: the first-crossing rule against peak-picking, at equal false alarms. Thresholds are set for each
rule on the validation streams, then scored on the test streams (and optional extra no-keyword streams), all replayed
from one pass of the model. Peak-picking is swapped into `Trigger.decide` here only: it was measured and not kept
(models/kws.md), so the runtime carries no second rule.

usage: python bench/peak_rule.py MODEL HOP_MS SMOOTHING_MS VAL1.wav,... TEST_CLEAN,TEST_10DB,TEST_NEG_CLEAN,TEST_NEG_10DB [EXTRA,...]
"""
import dataclasses, sys, pickle
from pathlib import Path
import numpy as np
from spotter import evaluation
from spotter.decision import Trigger, Detection
from spotter.engine import Spotter
from spotter.labels import labels_path, read_labels
from spotter.model import Classifier
from spotter.sources import WavFile

model, hop, smooth = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
groups = {"val": sys.argv[4].split(","), "test": sys.argv[5].split(",")}
if len(sys.argv) > 6:
    groups["extra"] = sys.argv[6].split(",")
clf = Classifier.load(Path(model))
spec = clf.spec
dec = dataclasses.replace(spec.decision, hop_ms=hop, smoothing_ms=smooth)
cache = Path(f"/tmp/peak-{Path(model).stem}-{hop}-{smooth}.pkl")
if cache.exists():
    traces = pickle.loads(cache.read_bytes())
else:
    sp = Spotter(clf, dec, record=True)
    traces = {}
    for g, wavs in groups.items():
        traces[g] = []
        for w in wavs:
            audio = np.concatenate(list(WavFile(Path(w), spec.features.sample_rate)))
            _, tr = evaluation.run_stream(sp, audio)
            traces[g].append((tr, read_labels(labels_path(Path(w)))))
    cache.write_bytes(pickle.dumps(traces))

first = Trigger.decide

def peak(self, sample, smoothed):
    top = int(np.argmax(smoothed))
    ok = self._can_fire[top] and smoothed[top] >= self._thresholds[top] and not (
        self._last_fire is not None and sample - self._last_fire < self._refractory)
    pending = getattr(self, "_pending", None)
    if ok and (pending is None or smoothed[top] >= pending[1]):
        self._pending = (top, float(smoothed[top]))
        return []
    if pending is None:
        return []
    self._pending = None
    self._last_fire = sample
    return [Detection(self.labels[pending[0]], pending[1], sample, self.sample_rate)]

for name, rule in (("first", first), ("peak", peak)):
    Trigger.decide = rule
    cal = evaluation.calibrate(traces["val"], spec.labels, dec)
    r = cal.result["overall"]
    t = evaluation.score_traces(traces["test"], spec.labels, cal.decision)["overall"]
    print(f"{name}: val recall {r['recall']:.1%} {r['false_alarms_per_hour']:.2f}/h | test recall {t['recall']:.1%} "
          f"{t['false_alarms_per_hour']:.2f}/h ({t['false_alarms']} FA) latency {t['latency_median_s']}")
    n = len(traces["test"])
    for cond, idx in (("clean", [0, 2]), ("10db", [1, 3])) if n == 4 else ():
        t = evaluation.score_traces([traces["test"][i] for i in idx], spec.labels, cal.decision)["overall"]
        print(f"   test {cond}: recall {t['recall']:.1%} {t['false_alarms']} FA {t['false_alarms_per_hour']:.2f}/h")
    if "extra" in traces:
        t = evaluation.score_traces(traces["extra"], spec.labels, cal.decision)["overall"]
        print(f"   extra: {t['false_alarms']} FA {t['false_alarms_per_hour']:.2f}/h")
