"""`spotter devices`: the audio inputs a microphone can be chosen from."""

from __future__ import annotations

import argparse

HELP = "list audio input devices"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from .. import sources

    sd = sources.import_sounddevice()
    inputs = sources.input_devices(sd)
    if not inputs:
        raise sources.AudioError("no audio input device found: connect a microphone, or check that PortAudio "
                                 "reaches the sound server (ALSA, PulseAudio)")
    try:
        default = sd.default.device[0]
    except Exception:  # PortAudio reports a missing default in several ways; the list still prints
        default = None
    for index, device in inputs:
        mark = "*" if index == default else " "
        print(f"{mark} {index:3d}  {device['name']}  ({device['max_input_channels']} ch, {device['default_samplerate']:.0f} Hz)")
    return 0
