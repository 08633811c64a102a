"""`make bench`: cost and latency of the default model on a long recording.

Prints CPU milliseconds per second of audio for the whole pipeline and per stage, peak RSS and start-up time of
`spotter listen`, and the latency from the end of each keyword to its detection.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spotter import models
from spotter.engine import Spotter
from spotter.evaluation import match
from spotter.files import write_wav
from spotter.labels import Event, labels_path, read_labels
from spotter.model import Classifier
from spotter.sources import WavFile

ROOT = Path(__file__).resolve().parents[1]

DEMO = ROOT / "demo" / "keywords.wav"
BLOCK_MS = 100.0
"""Chunk size pushed per call, as a microphone delivers it."""
BENCH_SECONDS = 600.0
"""The demo recording, repeated to about ten minutes of audio."""


def pipeline_cost(model: Path, audio: np.ndarray) -> tuple[Spotter, float, list]:  # type: ignore[type-arg]
    spotter = Spotter(Classifier.load(model))
    spotter.run(audio[:16000])  # warm-up: first invoke allocates
    spotter.times.__init__()  # type: ignore[misc]
    cpu = time.process_time()
    events = spotter.run(audio, BLOCK_MS)
    return spotter, time.process_time() - cpu, events


def latency(events: list, truth: list[Event], per_push_s: float) -> list[float]:  # type: ignore[type-arg]
    """Fire time minus the labelled end of each word hit (by the evaluation's rule), plus waiting for the block
    and computing it."""
    hits, _, _ = match(events, truth)
    return [d.offset - e.end + BLOCK_MS / 2000 + per_push_s for e, d in hits]


PEAK_LAUNCHER = (
    "import sys\n"
    "from spotter.cli import main\n"
    "try:\n"
    "    rc = main(sys.argv[2:])\n"
    "finally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "    open(sys.argv[1], 'w').write(hwm)\n"
    "sys.exit(rc)\n"
)
"""Runs `spotter` and reports its own peak RSS (VmHWM, in KiB). getrusage's ru_maxrss would not do: Linux carries it
across exec, so it would count this large benchmark process, which the child was forked from."""


def run_cli(args: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (MiB) of one `spotter listen` process."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as peak_file:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", PEAK_LAUNCHER, peak_file.name, "listen", "--quiet", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        return wall, int(Path(peak_file.name).read_text()) // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=models.resolve(None))
    parser.add_argument("--recording", type=Path, default=DEMO, help="WAV with its Audacity labels next to it (.txt)")
    args = parser.parse_args()
    demo = np.concatenate(list(WavFile(args.recording, 16000)))
    repeats = max(1, int(round(BENCH_SECONDS * 16000 / demo.size)))
    audio = np.tile(demo, repeats)
    seconds = audio.size / 16000
    spotter, cpu, events = pipeline_cost(args.model, audio)
    t = spotter.times
    pushes = audio.size / (16000 * BLOCK_MS / 1000)
    per_push = (t.features + t.model + t.decision) / pushes
    period = demo.size / 16000
    truth = [Event(e.start + k * period, e.end + k * period, e.label)
             for k in range(repeats) for e in read_labels(labels_path(args.recording))]
    lat = latency(events, truth, per_push)
    spec = spotter.spec
    print(f"model: {args.model.name} ({spec.architecture}, {spec.quantization}), {spec.metrics.get('parameters')} "
          f"parameters, {spec.metrics.get('multiplies')} multiplies; hop {spotter.decision.hop_ms:g} ms, "
          f"smoothing {spotter.decision.smoothing_ms:g} ms")
    print(f"audio: {seconds:.0f} s ({args.recording.name} x{repeats}), pushed in {BLOCK_MS:g} ms blocks")
    print(f"CPU, whole pipeline: {1000 * cpu / seconds:.2f} ms per second of audio")
    print(f"  features:  {1000 * t.features / seconds:.2f} ms/s")
    print(f"  model:     {1000 * t.model / seconds:.2f} ms/s ({t.invocations} invokes, "
          f"{1000 * t.model / max(1, t.invocations):.3f} ms each)")
    print(f"  decisions: {1000 * t.decision / seconds:.3f} ms/s")
    print(f"detections: {len(events)} ({len(events) / repeats:.1f} per pass of the recording)")
    if lat:
        print(f"latency, end of keyword to detection: median {1000 * statistics.median(lat):.0f} ms, "
              f"90th percentile {1000 * float(np.percentile(lat, 90)):.0f} ms over {len(lat)} keywords "
              f"(includes {BLOCK_MS / 2:g} ms average block wait)")
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.wav"
        write_wav(short, np.zeros(1600, dtype=np.int16), 16000)
        startup = min(run_cli(["--model", str(args.model), "--input", str(short)])[0] for _ in range(3))
        long_wav = Path(tmp) / "long.wav"
        write_wav(long_wav, audio, 16000)
        wall, peak = run_cli(["--model", str(args.model), "--input", str(long_wav)])
    print(f"start-up: {1000 * startup:.0f} ms (spotter listen on 0.1 s of audio, process start to exit)")
    print(f"spotter listen on the {seconds:.0f} s file: {wall:.1f} s wall, peak RSS {peak} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
