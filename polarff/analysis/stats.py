"""Block averaging, straight-line fits and the input checks shared by the analysis modules.

Error bars in :mod:`polarff.analysis` come from *block averaging*: the trajectory is cut into
``n_blocks`` contiguous blocks of equal length, the same estimator (a mean, the slope of a fitted MSD,
a Green–Kubo plateau) is evaluated on every block, and the standard error is the standard deviation of
the block values divided by ``sqrt(n_blocks)``. Blocks much longer than the correlation time of the
quantity make the block values independent, which is what the formula assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.fft

from polarff.errors import ConfigError, InputError


@dataclass(frozen=True)
class BlockEstimate:
    """An estimate with a block-averaging error bar.

    Attributes
    ----------
    value : float
        The estimate (unit of the estimator). For :func:`block_average` the mean of the block means;
        for :func:`block_estimate` the estimator applied to the whole data.
    error : float
        Standard error: ``std(block_values, ddof=1) / sqrt(n_blocks)``.
    block_values : ndarray, shape (n_blocks,)
        The estimator on each block.
    """

    value: float
    error: float
    block_values: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        return int(len(self.block_values))


def block_slices(n_frames: int, n_blocks: int) -> list[slice]:
    """Contiguous, equal-length blocks covering the first ``n_blocks * (n_frames // n_blocks)`` frames.

    Parameters
    ----------
    n_frames : int
        Length of the series.
    n_blocks : int
        Number of blocks, at least 2.

    Returns
    -------
    list of slice
        One slice per block; trailing frames that do not fill a block are left out.

    Raises
    ------
    ConfigError
        If ``n_blocks < 2`` or a block would hold fewer than 2 frames.
    """
    n_blocks = int(n_blocks)
    if n_blocks < 2:
        raise ConfigError(f"n_blocks must be at least 2 for an error bar (found {n_blocks})")
    length = n_frames // n_blocks
    if length < 2:
        raise ConfigError(f"{n_frames} frames cannot be cut into {n_blocks} blocks of at least 2 frames; "
                          "use fewer blocks or a longer trajectory")
    return [slice(b * length, (b + 1) * length) for b in range(n_blocks)]


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of independent block values: ``std(ddof=1) / sqrt(n)``."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


def block_average(series: np.ndarray, n_blocks: int) -> BlockEstimate:
    """Mean of a time series with its block-averaged standard error.

    Parameters
    ----------
    series : array_like, shape (T,)
        Samples in time order (any unit).
    n_blocks : int
        Number of contiguous blocks (>= 2); trailing samples that do not fill a block are dropped.

    Returns
    -------
    BlockEstimate
        ``value`` = mean of the block means (same unit as ``series``), ``error`` = its standard error.

    Raises
    ------
    InputError
        If ``series`` is not one-dimensional or holds non-finite values.
    ConfigError
        If ``n_blocks`` is invalid for the series length.
    """
    data = np.asarray(series, dtype=np.float64)
    if data.ndim != 1:
        raise InputError("series must be one-dimensional", field="series", expected="shape (T,)",
                         found=data.shape)
    require_finite(data, "series")
    means = np.array([data[s].mean() for s in block_slices(len(data), n_blocks)])
    return BlockEstimate(float(means.mean()), standard_error(means), means)


def block_estimate(estimator: Callable[..., float], *arrays: np.ndarray, n_blocks: int) -> BlockEstimate:
    """Apply an estimator to the whole data and to contiguous blocks of it; error from the blocks.

    This is the generic helper behind every fitted quantity in :mod:`polarff.analysis` (diffusion
    coefficient from an MSD slope, conductivity from ``<|ΔM|²>``, Green–Kubo plateaus).

    Parameters
    ----------
    estimator : callable
        ``estimator(*blocks) -> float``; receives every array of ``arrays`` cut along axis 0.
    *arrays : ndarray
        Time series sharing their first axis (frames).
    n_blocks : int
        Number of contiguous blocks (>= 2).

    Returns
    -------
    BlockEstimate
        ``value`` = ``estimator(*arrays)`` on all frames; ``error`` = standard error of the block
        values; ``block_values`` = the estimator on each block.

    Raises
    ------
    InputError
        If the arrays do not share their first axis.
    ConfigError
        If ``n_blocks`` is invalid for the series length.
    """
    if not arrays:
        raise InputError("block_estimate needs at least one array", field="arrays",
                         expected="one or more arrays", found=0)
    n_frames = len(arrays[0])
    for i, a in enumerate(arrays):
        if len(a) != n_frames:
            raise InputError("arrays passed to block_estimate differ in length", field=f"arrays[{i}]",
                             expected=n_frames, found=len(a))
    blocks = np.array([float(estimator(*(a[s] for a in arrays)))
                       for s in block_slices(n_frames, n_blocks)])
    return BlockEstimate(float(estimator(*arrays)), standard_error(blocks), blocks)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ordinary least-squares straight line ``y = slope * x + intercept``.

    Parameters
    ----------
    x, y : array_like, shape (K,)
        Abscissa and ordinate (any units); at least 2 points, ``x`` not all equal.

    Returns
    -------
    slope, intercept : float
        In units of ``y/x`` and ``y``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise InputError("a straight-line fit needs two 1-D arrays of equal length >= 2", field="x, y",
                         expected="shape (K,), K >= 2", found=(x.shape, y.shape))
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if sxx == 0.0:
        raise InputError("all abscissae are equal; the slope is undefined", field="x",
                         expected="distinct values", found=float(xm))
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    return slope, float(ym - slope * xm)


# --------------------------------------------------------------------------------------------------
# Input checks shared by diffusion, conductivity and spectra (clear InputError / ConfigError messages).
# --------------------------------------------------------------------------------------------------

def require_finite(array: np.ndarray, field: str) -> None:
    """Raise :class:`InputError` naming ``field`` if ``array`` holds NaN or infinite values."""
    bad = ~np.isfinite(array)
    if np.any(bad):
        raise InputError("array contains NaN or infinite values", field=field, expected="finite values",
                         found=f"{int(bad.sum())} non-finite")


def as_trajectory(positions: np.ndarray, field: str = "positions") -> np.ndarray:
    """Check and return a trajectory of shape ``(T, N, 3)`` as float64 (at least 2 frames)."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[0] < 2 or pos.shape[1] < 1:
        raise InputError("trajectory must have shape (T frames, N atoms, 3) with T >= 2", field=field,
                         expected="(T, N, 3)", found=pos.shape)
    require_finite(pos, field)
    return pos


def as_series(values: np.ndarray, field: str, n_frames: int | None = None) -> np.ndarray:
    """Check and return a vector time series of shape ``(T, 3)`` (or ``(T,)`` promoted to ``(T, 1)``)."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] < 2:
        raise InputError("time series must have shape (T,) or (T, d) with T >= 2", field=field,
                         expected="(T, 3)", found=np.shape(values))
    if n_frames is not None and data.shape[0] != n_frames:
        raise InputError("time series length does not match the time axis", field=field,
                         expected=f"{n_frames} frames", found=f"{data.shape[0]} frames")
    require_finite(data, field)
    return data


def time_step(times: np.ndarray, n_frames: int, field: str = "times") -> float:
    """Check that ``times`` (ps) has ``n_frames`` uniformly spaced, increasing entries; return the step.

    Raises
    ------
    InputError
        Wrong length, non-increasing or non-uniform spacing (relative deviation above 1e-4); the
        FFT-based correlation functions need a uniform grid.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or len(t) != n_frames:
        raise InputError("times must have one entry per frame", field=field, expected=f"shape ({n_frames},)",
                         found=t.shape)
    require_finite(t, field)
    steps = np.diff(t)
    dt = float(np.mean(steps))
    if not dt > 0:
        raise InputError("times must increase", field=field, expected="increasing times (ps)",
                         found=f"mean step {dt}")
    worst = float(np.max(np.abs(steps - dt)) / dt)
    if worst > 1e-4:
        raise InputError("frames are not uniformly spaced in time", field=field,
                         expected="constant step (relative deviation <= 1e-4)",
                         found=f"relative deviation {worst:.2e}")
    return dt


def require_positive(value: float, name: str, unit: str) -> float:
    """Return ``float(value)`` or raise :class:`ConfigError` if it is not a finite positive number."""
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        raise ConfigError(f"{name} must be a positive number in {unit} (found {value!r})")
    return v


def autocorrelation(series: np.ndarray, *, max_lag: int | None = None, subtract_mean: bool = False,
                    name: str = "series") -> np.ndarray:
    """Time autocorrelation ``C(k) = 1/(T−k) Σ_t x(t)·x(t+k)`` via zero-padded FFT.

    Parameters
    ----------
    series : array_like, shape (T,) or (T, d)
        Samples in time order; vector components are dotted.
    max_lag : int, optional
        Largest lag in frames (default T-1).
    subtract_mean : bool
        Remove the time average of every component first.
    name : str
        Name of the input in error messages.

    Returns
    -------
    ndarray, shape (max_lag + 1,)
        In (unit of ``series``)².
    """
    x = as_series(series, name)
    if subtract_mean:
        x = x - x.mean(axis=0)
    n_frames = x.shape[0]
    max_lag = n_frames - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < n_frames:
        raise ConfigError(f"max_lag must lie in 0 .. {n_frames - 1} frames (found {max_lag})")
    n_fft = scipy.fft.next_fast_len(2 * n_frames, real=True)
    spectrum = scipy.fft.rfft(x, n=n_fft, axis=0)
    corr = scipy.fft.irfft(spectrum * np.conj(spectrum), n=n_fft, axis=0)[:max_lag + 1].sum(axis=1)
    return corr / (n_frames - np.arange(max_lag + 1))
