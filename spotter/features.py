"""The one log-mel front end, shared by training, evaluation and the live engine.

It reproduces ``python_speech_features.logfbank`` (rectangular window, pre-emphasis, power spectrum over
``n_fft`` points, triangular mel filters, natural log with an ``eps`` floor) but emits only complete frames,
so a stream pushed in chunks of any size gives exactly the frames of the whole signal.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from python_speech_features import get_filterbanks

from .config import FeatureConfig

_EPS = float(np.finfo(float).eps)


class LogMel:
    """Log-mel filterbank energies, over whole clips, batches, or incrementally from chunks."""

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.config = config
        high = config.high_hz or config.sample_rate / 2
        self._fbank_t = np.ascontiguousarray(
            get_filterbanks(config.n_mels, config.n_fft, config.sample_rate, config.low_hz, high).T
        )
        self._win = config.window_samples
        self._step = config.step_samples
        self._floor = self._noise_energies(config.noise_floor) if config.noise_floor > 0 else None
        self.reset()

    def _noise_energies(self, rms: float) -> np.ndarray:
        """Exact expected band energies of pre-emphasised white noise of the given RMS in one frame: the power
        spectrum of every input sample's contribution (frame samples and the one before), summed."""
        a = self.config.preemphasis
        contributions = np.zeros((self._win + 1, self._win))  # row m: how input sample m-1 enters the frame
        contributions[np.arange(1, self._win + 1), np.arange(self._win)] = 1.0
        contributions[np.arange(self._win), np.arange(self._win)] -= a
        spectrum = np.fft.rfft(contributions, self.config.n_fft, axis=1)
        power = rms**2 * np.sum(np.abs(spectrum) ** 2, axis=0) / self.config.n_fft
        return power @ self._fbank_t

    # ---- whole signals -------------------------------------------------------------------------------------
    def compute(self, signal: np.ndarray) -> np.ndarray:
        """Frames of one whole signal: shape (frames, n_mels)."""
        return self.compute_batch(np.asarray(signal)[None, :])[0]

    def compute_batch(self, signals: np.ndarray) -> np.ndarray:
        """Frames of equal-length signals at once: (batch, samples) -> (batch, frames, n_mels).

        About 1 ms per one-second clip on one core, so training can augment on the fly.
        """
        x = np.asarray(signals, dtype=np.float64)
        emphasized = np.empty_like(x)
        emphasized[:, :1] = x[:, :1]
        emphasized[:, 1:] = x[:, 1:] - self.config.preemphasis * x[:, :-1]
        return self._frames_to_logmel(self._frame(emphasized))

    # ---- streaming ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream: zeroed pre-emphasis memory, no leftover samples."""
        self._last_sample = 0.0
        self._pending = np.zeros(0, dtype=np.float64)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feed samples of any count; return the complete frames they finish: (new_frames, n_mels)."""
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return np.zeros((0, self.config.n_mels))
        emphasized = np.empty_like(x)
        emphasized[0] = x[0] - self.config.preemphasis * self._last_sample
        emphasized[1:] = x[1:] - self.config.preemphasis * x[:-1]
        self._last_sample = float(x[-1])
        buffered = np.concatenate([self._pending, emphasized])
        n_frames = self.config.frames_for(buffered.size)
        if n_frames == 0:
            self._pending = buffered
            return np.zeros((0, self.config.n_mels))
        self._pending = buffered[n_frames * self._step :]
        return self._frames_to_logmel(self._frame(buffered[None, :])[0])

    # ---- shared core ------------------------------------------------------------------------------------------
    def _frame(self, emphasized: np.ndarray) -> np.ndarray:
        """(batch, samples) -> (batch, complete frames, window_samples), a strided view."""
        n_frames = self.config.frames_for(emphasized.shape[-1])
        if n_frames == 0:
            return np.zeros(emphasized.shape[:-1] + (0, self._win))
        view = sliding_window_view(emphasized, self._win, axis=-1)[..., :: self._step, :]
        return view[..., :n_frames, :]

    def _frames_to_logmel(self, frames: np.ndarray) -> np.ndarray:
        spectrum = scipy.fft.rfft(frames, self.config.n_fft, axis=-1, workers=-1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        power *= 1.0 / self.config.n_fft
        energies = power @ self._fbank_t
        if self._floor is not None:
            energies += self._floor
        energies[energies == 0] = _EPS
        return np.log(energies)
