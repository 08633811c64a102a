"""A streaming polyphase resampler: pushed in chunks of any size it gives exactly scipy's `resample_poly` of the
whole signal (same Kaiser-windowed FIR), so a 44.1 kHz file or microphone feeds the 16 kHz engine seamlessly."""

from __future__ import annotations

from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

KAISER_BETA = 5.0
HALF_LEN_PER_RATE = 10
TAP_BLOCK = 1 << 16
"""Taps are computed this many at a time: np.sinc and np.kaiser make a dozen temporaries the size of the whole
filter, which for a rate with no common factor with 16 kHz (191,999 Hz: 3.8 M taps) peaked at 430 MB."""


def lowpass(numtaps: int, cutoff: float) -> np.ndarray:
    """Kaiser-windowed sinc with unit DC gain: scipy.signal.firwin(numtaps, cutoff, window=("kaiser", 5.0)),
    written out because importing scipy.signal costs ~80 MB and ~0.5 s at start-up. `numtaps` is odd, > 1."""
    centre = (numtaps - 1) / 2.0
    taps = np.empty(numtaps)
    for start in range(0, numtaps, TAP_BLOCK):
        m = np.arange(start, min(start + TAP_BLOCK, numtaps)) - centre
        kaiser = np.i0(KAISER_BETA * np.sqrt(1.0 - (m / centre) ** 2)) / np.i0(KAISER_BETA)  # np.kaiser's formula
        taps[start : start + m.size] = cutoff * np.sinc(cutoff * m) * kaiser
    taps /= taps.sum()
    return taps


class Resampler:
    def __init__(self, source_rate: int, target_rate: int) -> None:
        divisor = gcd(source_rate, target_rate)
        self.up = target_rate // divisor
        self.down = source_rate // divisor
        max_rate = max(self.up, self.down)
        if self.up == self.down:
            self.reset()
            return
        half_len = HALF_LEN_PER_RATE * max_rate
        taps = lowpass(2 * half_len + 1, 1.0 / max_rate)
        taps *= self.up
        self._delay = half_len
        per_phase = -(-taps.size // self.up)
        padded = np.zeros(per_phase * self.up)
        padded[: taps.size] = taps
        # phase p uses taps p, p+up, p+2up, ... against x[i0], x[i0-1], ...
        self._phases_reversed = padded.reshape(per_phase, self.up).T[:, ::-1].copy()
        self._span = per_phase
        self.reset()

    @property
    def identity(self) -> bool:
        return self.up == self.down

    def reset(self) -> None:
        if self.identity:
            return
        self._history = np.zeros(self._span, dtype=np.float64)
        self._history_start = -self._span  # absolute input index of _history[0]
        self._received = 0
        self._emitted = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Resample the next samples; returns as many output samples as the input so far determines."""
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if self.identity:
            return x
        self._history = np.concatenate([self._history, x])
        self._received += x.size
        return self._emit(self._received)

    def flush(self) -> np.ndarray:
        """The tail: outputs that need samples past the end, taken as zeros, up to resample_poly's length."""
        if self.identity:
            return np.zeros(0)
        total = -(-self._received * self.up // self.down)
        pad = self._delay // self.up + self._span + 1
        self._history = np.concatenate([self._history, np.zeros(pad)])
        return self._emit(self._received + pad, limit=total)

    def _emit(self, available: int, limit: int | None = None) -> np.ndarray:
        # output m needs input index (m*down + delay) // up, which must be < available
        last = (available * self.up - 1 - self._delay) // self.down  # largest m with its input index available
        end = last + 1 if limit is None else min(last + 1, limit)
        if end <= self._emitted:
            return np.zeros(0)
        m = np.arange(self._emitted, end)
        n = m * self.down + self._delay
        phase = n % self.up
        base = n // self.up - self._history_start
        # rows of the history ending at each base index, oldest first, against the phase filters reversed
        windows = sliding_window_view(self._history, self._span)[base - self._span + 1]
        out = np.einsum("mj,mj->m", windows, self._phases_reversed[phase])
        self._emitted = end
        keep_from = max(0, (end * self.down + self._delay) // self.up - self._span - self._history_start)
        self._history = self._history[keep_from:]
        self._history_start += keep_from
        return out
