"""`make bench`: cost and latency of the default model on a long recording.

Prints CPU milliseconds per second of audio for the whole pipeline and per stage, peak RSS and start-up time of
`spotter listen`, and the latency from the end of each keyword to its detection. With --inputs (the default) also
the resampler's cost at 44.1 and 48 kHz, and `spotter listen` through the microphone against the same on a file.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
from spotter.resample import Resampler
from spotter.sources import WavFile, to_int16

ROOT = Path(__file__).resolve().parents[1]

DEMO = ROOT / "demo" / "keywords.wav"
BLOCK_MS = 100.0
"""Chunk size pushed per call, as a microphone delivers it."""
BENCH_SECONDS = 600.0
"""The demo recording, repeated to about ten minutes of audio."""
DEVICE_RATES = (44100, 48000)
"""What many USB microphones and most recordings offer instead of 16 kHz."""
PULSE_SCRIPT = ROOT / ".ci" / "pulseaudio.sh"
LIVE_WARMUP_S = 4.0
"""`spotter listen` runs this long (model loaded, stream open) before its CPU is counted."""
LIVE_SECONDS = 30.0
"""How long a live run's CPU is counted: the demo plays into a virtual microphone for about this long."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def resampler_cost(audio: np.ndarray, rate: int) -> float:
    """CPU seconds per second of audio to bring `audio` (at `rate`) to 16 kHz in BLOCK_MS pushes."""
    resampler = Resampler(rate, 16000)
    block = int(rate * BLOCK_MS / 1000)
    cpu = time.process_time()
    for start in range(0, audio.size, block):
        resampler.push(audio[start : start + block])
    resampler.flush()
    return (time.process_time() - cpu) / (audio.size / rate)


def listen_cpu(args: list[str]) -> float:
    """CPU seconds of one `spotter listen --quiet` run per second of its audio, from its own summary line (it counts
    from the first block: model loading is left out)."""
    result = subprocess.run([sys.executable, "-m", "spotter", "listen", "--quiet", *args], capture_output=True,
                            text=True, check=True)
    summary = result.stderr.strip().splitlines()[-1]
    return float(summary.split(", ")[-1].split(" ms")[0]) / 1000


def _process_cpu_s(pid: int) -> float:
    """User plus system CPU of a process, all its threads (PortAudio's and PulseAudio's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def virtual_microphone() -> tuple[str | None, str]:
    """(the null sink to play into, or None to listen to a real default microphone; what is being listened to), or
    a RuntimeError saying why there is no microphone path to measure. Like tests/test_microphone.py it plays only
    into a null sink, never through speakers."""
    if shutil.which("pactl") is None:
        raise RuntimeError("no PulseAudio (pactl not found)")
    if subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        started = subprocess.run(["bash", str(PULSE_SCRIPT)], capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"no PulseAudio server, and {PULSE_SCRIPT.name} failed: {started.stderr.strip()}")
    info = dict(line.split(": ", 1) for line in subprocess.run(["pactl", "info"], capture_output=True, text=True)
                .stdout.splitlines() if ": " in line)
    sink, source = info.get("Default Sink", ""), info.get("Default Source", "")
    sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True).stdout
    drivers = {row.split("\t")[1]: row.split("\t")[2] for row in sinks.splitlines() if row.count("\t") >= 2}
    if drivers.get(sink) == "module-null-sink.c" and source == f"{sink}.monitor":
        return sink, f"PulseAudio virtual microphone ({source}), the demo played into it"
    return None, f"the default microphone ({source})"


def live_cpu(model: Path, listen_args: list[str], sink: str | None, clip: Path) -> float:
    """CPU seconds per second of audio of `spotter listen` running in real time, over LIVE_SECONDS after a warm-up,
    read from /proc: start-up and opening the stream are left out, as they would be in a long-running service."""
    player = None
    listener = subprocess.Popen([sys.executable, "-m", "spotter", "listen", "--quiet", "--model", str(model),
                                 *listen_args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if sink:
            player = subprocess.Popen(["paplay", f"--device={sink}", str(clip)], stderr=subprocess.DEVNULL)
        time.sleep(LIVE_WARMUP_S)
        cpu, wall = _process_cpu_s(listener.pid), time.monotonic()
        time.sleep(LIVE_SECONDS)
        cpu, wall = _process_cpu_s(listener.pid) - cpu, time.monotonic() - wall
        if listener.poll() is not None:
            raise RuntimeError(f"spotter listen {' '.join(listen_args)} ended early: {listener.stderr.read()}")
        return cpu / wall
    finally:
        listener.terminate()
        listener.wait(timeout=10)
        if player is not None:
            player.terminate()
            player.wait(timeout=10)


def inputs_report(model: Path, audio: np.ndarray, file_cpu: float, tmp: Path) -> None:
    """Resampled inputs and the microphone, each against the 16 kHz file path."""
    for rate in DEVICE_RATES:
        converted = Resampler(16000, rate)
        high = to_int16(np.concatenate([converted.push(audio), converted.flush()]))
        alone = min(resampler_cost(high.astype(np.float64), rate) for _ in range(3))
        path = tmp / f"bench{rate}.wav"
        write_wav(path, high, rate)
        whole = listen_cpu(["--model", str(model), "--input", str(path)])
        print(f"resampling {rate} Hz to 16 kHz: {1000 * alone:.2f} ms per second of audio; spotter listen on the "
              f"{rate} Hz file {1000 * whole:.2f} ms/s, {whole / file_cpu:.2f}x the 16 kHz file")
    try:
        sink, what = virtual_microphone()
    except RuntimeError as exc:
        print(f"microphone: not measured: {exc}")
        return
    clip = tmp / "live.wav"
    write_wav(clip, audio[: int((LIVE_WARMUP_S + LIVE_SECONDS + 2) * 16000)], 16000)
    realtime = live_cpu(model, ["--input", str(clip), "--realtime"], None, clip)
    mic = live_cpu(model, [], sink, clip)
    print(f"microphone ({what}): {1000 * mic:.2f} ms per second of audio, all threads, over {LIVE_SECONDS:g} s; "
          f"the same file paced in real time (--realtime) {1000 * realtime:.2f} ms/s; "
          f"mic / file: {mic / file_cpu:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=models.resolve(None))
    parser.add_argument("--recording", type=Path, default=DEMO, help="WAV with its Audacity labels next to it (.txt)")
    parser.add_argument("--inputs", action=argparse.BooleanOptionalAction, default=True,
                        help="also 44.1/48 kHz input and the microphone path (PulseAudio), against the 16 kHz file")
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
        file_cpu = listen_cpu(["--model", str(args.model), "--input", str(long_wav)])
        print(f"start-up: {1000 * startup:.0f} ms (spotter listen on 0.1 s of audio, process start to exit)")
        print(f"spotter listen on the {seconds:.0f} s file: {wall:.1f} s wall, peak RSS {peak} MiB, "
              f"{1000 * file_cpu:.2f} ms CPU per second of audio")
        if args.inputs:
            inputs_report(args.model, audio, file_cpu, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
