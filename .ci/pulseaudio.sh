#!/usr/bin/env bash
# Headless PulseAudio for the microphone test: a null sink as the default sink, its monitor as the default
# source, so whatever is played into the sink (paplay) is what a "microphone" records. No sound card needed.
#
# Debian packages (installed by .ci/run, not here):
#   apt-get install -y libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
# libportaudio2: sounddevice's PortAudio. libasound2-plugins: ALSA's pulse plugin, which is how PortAudio
# (ALSA host API) reaches PulseAudio: its "default" and "pulse" devices.
#
# Idempotent: a server that already answers is reused, the sink is loaded once; one that was just killed is
# replaced. Works as root (the daemon warns that it is not meant to run as root, and runs). Exits 0 only when
# `pactl info` shows the defaults.
set -euo pipefail

SINK="${SPOTTER_PULSE_SINK:-spotter_null}"
LOG="${SPOTTER_PULSE_LOG:-${TMPDIR:-/tmp}/spotter-pulseaudio.log}"

for tool in pulseaudio pactl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "pulseaudio.sh: $tool not found (apt-get install -y pulseaudio pulseaudio-utils)" >&2
        exit 1
    fi
done

if ! pactl info >/dev/null 2>&1; then
    # A server that was just killed (tests/test_microphone.py kills it) lingers as a zombie until reaped; its pid
    # file still names it, and a new daemon would refuse to start ("Daemon already running"). Wait for it to go.
    for _ in $(seq 50); do
        pulseaudio --check 2>/dev/null || break
        sleep 0.1
    done
    # --exit-idle-time=-1: a CI job may wait longer than the default 20 s between clients.
    pulseaudio --daemonize=yes --system=false --exit-idle-time=-1 --log-target="file:$LOG" \
        || { echo "pulseaudio.sh: pulseaudio did not start (log: $LOG)" >&2; exit 1; }
    for _ in $(seq 50); do
        pactl info >/dev/null 2>&1 && break
        sleep 0.2
    done
    pactl info >/dev/null 2>&1 || { echo "pulseaudio.sh: no answer from the server (log: $LOG)" >&2; exit 1; }
fi

if ! pactl list short sinks | cut -f2 | grep -qx "$SINK"; then
    pactl load-module module-null-sink sink_name="$SINK" rate=16000 channels=1 \
        sink_properties=device.description=spotter-null >/dev/null
fi
# A suspended sink's monitor delivers no samples; never suspend (callers still keep the sink busy).
pactl unload-module module-suspend-on-idle >/dev/null 2>&1 || true
pactl set-default-sink "$SINK"
pactl set-default-source "$SINK.monitor"

info="$(pactl info)"
if ! grep -qx "Default Sink: $SINK" <<<"$info" || ! grep -qx "Default Source: $SINK.monitor" <<<"$info"; then
    echo "pulseaudio.sh: defaults not set:" >&2
    echo "$info" >&2
    exit 1
fi
echo "pulseaudio.sh: ready: $(grep '^Server String' <<<"$info"), default source $SINK.monitor"
