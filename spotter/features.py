"""The one mel front end, shared by training, evaluation and the live engine.

Two steps, so training can mix and scale audio as mel energies before compressing them:
``energies_batch`` (rectangular window, pre-emphasis, power spectrum over ``n_fft`` points, triangular mel
filters, noise floor, ``eps`` floor) and ``compress_batch`` (natural log, reproducing
``python_speech_features.logfbank``, or PCEN). Only complete frames are emitted, and the PCEN smoother carries
over between pushes, so a stream pushed in chunks of any size gives exactly the frames of the whole signal.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from python_speech_features import get_filterbanks

from .config import FeatureConfig

_EPS = float(np.finfo(float).eps)


class LogMel:
    """Compressed mel filterbank energies (log or PCEN, as the config says), over whole clips, batches, or
    incrementally from chunks. The name predates PCEN; `MelFrontEnd` is an alias."""

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.config = config
        high = config.high_hz or config.sample_rate / 2
        self._fbank_t = np.ascontiguousarray(
            get_filterbanks(config.n_mels, config.n_fft, config.sample_rate, config.low_hz, high).T
        )
        self._win = config.window_samples
        self._step = config.step_samples
        self._floor = self._noise_energies(config.noise_floor) if config.noise_floor > 0 else None
        self.floor_energies: np.ndarray = np.zeros(config.n_mels) if self._floor is None else self._floor.copy()
        """What `energies_batch` adds to every frame (the noise floor): mixing two clips' energies adds it twice."""
        self.floor_energies.flags.writeable = False
        smoothing = config.pcen_smoothing
        self._smoother = (np.array([smoothing]), np.array([1.0, smoothing - 1.0]))  # lfilter (b, a) of M
        self._delta_root = config.pcen_delta**config.pcen_root
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

        About 1 ms per one-second clip on one core (log), so training can augment on the fly.
        """
        return self.compress_batch(self.energies_batch(signals))

    def energies_batch(self, signals: np.ndarray) -> np.ndarray:
        """Mel energies, floors included, of equal-length signals: (batch, samples) -> (batch, frames, n_mels).

        Everything before the compression, so training can mix or scale clips here and then `compress_batch`.
        """
        x = np.asarray(signals, dtype=np.float64)
        emphasized = np.empty_like(x)
        emphasized[:, :1] = x[:, :1]
        emphasized[:, 1:] = x[:, 1:] - self.config.preemphasis * x[:, :-1]
        return self._frames_to_energies(self._frame(emphasized))

    def compress_batch(self, energies: np.ndarray) -> np.ndarray:
        """Features of positive mel energies: (batch, frames, n_mels) -> same shape, float64.

        Each row is its own signal: the PCEN smoother starts at the row's first frame, as `compute` does.
        """
        energies = np.asarray(energies, dtype=np.float64)
        if energies.ndim != 3:
            raise ValueError(f"compress_batch wants (batch, frames, n_mels) energies, got shape {energies.shape}")
        return self._compress(energies, None)[0]

    # ---- streaming ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream: zeroed pre-emphasis memory, no leftover samples, fresh PCEN smoother."""
        self._last_sample = 0.0
        self._pending = np.zeros(0, dtype=np.float64)
        self._smoother_state: np.ndarray | None = None

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
        energies = self._frames_to_energies(self._frame(buffered[None, :]))
        features, self._smoother_state = self._compress(energies, self._smoother_state)
        return features[0]

    # ---- shared core ------------------------------------------------------------------------------------------
    def _frame(self, emphasized: np.ndarray) -> np.ndarray:
        """(batch, samples) -> (batch, complete frames, window_samples), a strided view."""
        n_frames = self.config.frames_for(emphasized.shape[-1])
        if n_frames == 0:
            return np.zeros(emphasized.shape[:-1] + (0, self._win))
        view = sliding_window_view(emphasized, self._win, axis=-1)[..., :: self._step, :]
        return view[..., :n_frames, :]

    def _frames_to_energies(self, frames: np.ndarray) -> np.ndarray:
        spectrum = scipy.fft.rfft(frames, self.config.n_fft, axis=-1, workers=-1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        power *= 1.0 / self.config.n_fft
        energies = power @ self._fbank_t
        if self._floor is not None:
            energies += self._floor
        energies[energies == 0] = _EPS
        return energies

    def _compress(self, energies: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(batch, frames, n_mels) energies -> features, and the smoother state after the last frame.

        `state` is lfilter's (batch, 1, n_mels) memory from the previous frames; None starts each row at its first
        frame's energy (M[-1] = E[0], so M[0] = E[0]), like librosa's lfilter_zi. Carrying lfilter's own final
        state makes chunked streams equal the whole signal up to rounding.
        """
        if self.config.compression == "log":
            return np.log(energies), state
        if energies.shape[1] == 0:
            return energies.copy(), state
        import scipy.signal  # here, not at the top: it costs a second of start-up that log-mel models never need

        b, a = self._smoother
        if state is None:
            state = (1.0 - b[0]) * energies[:, :1, :]
        smooth, state = scipy.signal.lfilter(b, a, energies, axis=1, zi=state)
        smooth += self.config.pcen_eps
        np.power(smooth, -self.config.pcen_alpha, out=smooth)
        smooth *= energies
        smooth += self.config.pcen_delta
        np.power(smooth, self.config.pcen_root, out=smooth)
        smooth -= self._delta_root
        return smooth, state


MelFrontEnd = LogMel
"""The front end under a name that fits PCEN too."""
