"""Infrared spectra from the total dipole time series of an MD run.

Units: the dipole ``M(t)`` is expected in e·Å (polarff's canonical dipole unit, see
:data:`polarff.data.LABELS`); any other unit only rescales the autocorrelation, and the returned
intensity is in arbitrary units (normalised to a maximum of 1 by default). Times are in ps, wavenumbers
in cm⁻¹, temperatures in K.

Method
------
1. Autocorrelation ``C(t) = <M(0)·M(t)>`` over all time origins (FFT, zero-padded to avoid wrap-around,
   unbiased ``1/(T−k)`` normalisation), after subtracting the mean dipole (a static dipole only gives a
   zero-frequency line).
2. Optional window ``w(t)`` (the decaying half of a symmetric scipy window, Hann by default) over
   ``0 .. max_lag_time`` to suppress the noisy tail and the truncation ripples.
3. Cosine transform ``S(ω) = ∫ w(t) C(t) e^{−iωt} dt = Δt [w₀C₀ + 2 Σ_{k≥1} w_k C_k cos(ω k Δt)]``,
   zero-padded for a finer frequency grid.
4. Classical absorption line shape in the derivative form, ``I(ω) ∝ ω² S(ω)`` (equivalently the spectrum
   of ``dM/dt``), multiplied by a quantum correction factor ``Q(ω)``:

   * ``"harmonic"`` (default): ``Q = βħω / (1 − e^{−βħω})``; exact for harmonic systems with a
     linear dipole and the usual choice for ``ω² × classical`` spectra (Ramírez, López-Ciudad, Kumar &
     Marx, J. Chem. Phys. 121, 3973 (2004)).
   * ``"schofield"``: ``Q = e^{βħω/2}`` (Schofield, Phys. Rev. Lett. 4, 239 (1960)); grows without bound
     and overweights high frequencies.
   * ``"classical"`` or None: ``Q = 1``.

   Other factors in the literature (``2/(1 + e^{−βħω})``, the "standard" one, which goes with a
   ``ω tanh(βħω/2)`` prefactor instead of ``ω²``; Egelstaff's time shift) change intensities, not
   band positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.constants as const
import scipy.fft
import scipy.signal

from polarff.analysis.stats import (as_series, autocorrelation, require_finite,  # noqa: F401 (re-export)
                                   require_positive, time_step)
from polarff.errors import ConfigError, InputError

#: 1 THz (ps⁻¹) in cm⁻¹: ν̃ = f / c.
CM_INV_PER_THZ = 1e12 / (const.c * 100.0)
#: h c / k_B in cm·K: βħω = HC_OVER_KB * ν̃ / T.
HC_OVER_KB_CM_K = const.h * const.c * 100.0 / const.k
#: Quantum correction factors understood by :func:`quantum_correction_factor`.
QUANTUM_CORRECTIONS = ("harmonic", "schofield", "classical")


@dataclass(frozen=True)
class IRSpectrum:
    """An infrared absorption spectrum and the correlation function it came from.

    Attributes
    ----------
    wavenumbers : ndarray, shape (F,)
        cm⁻¹, from 0 to the Nyquist limit.
    intensity : ndarray, shape (F,)
        ``Q(ω) ω² S(ω)``, arbitrary units (maximum 1 when normalised).
    lag_times : ndarray, shape (L,)
        ps.
    acf : ndarray, shape (L,)
        ``<M(0)·M(t)>`` before windowing, (unit of the dipole)², e.g. (e·Å)².
    window : str or None
        Window applied to the ACF.
    quantum_correction : str
        Correction factor used (one of :data:`QUANTUM_CORRECTIONS`).
    temperature : float
        K.
    """

    wavenumbers: np.ndarray
    intensity: np.ndarray
    lag_times: np.ndarray
    acf: np.ndarray
    window: str | None
    quantum_correction: str
    temperature: float


@dataclass(frozen=True)
class Peak:
    """A spectral maximum: position (cm⁻¹, interpolated), height and prominence (intensity units)."""

    wavenumber: float
    intensity: float
    prominence: float


def quantum_correction_factor(wavenumbers: np.ndarray, temperature: float,
                              kind: str | None = "harmonic") -> np.ndarray:
    """Quantum correction factor ``Q(ν̃)`` applied to a classical ``ω² S(ω)`` spectrum.

    Parameters
    ----------
    wavenumbers : array_like
        cm⁻¹ (non-negative).
    temperature : float
        K.
    kind : {'harmonic', 'schofield', 'classical', None}
        ``βħω/(1 − e^{−βħω})``, ``e^{βħω/2}`` or 1; see the module docstring.

    Returns
    -------
    ndarray
        Dimensionless factor, 1 at ν̃ = 0 for every kind.
    """
    kind = "classical" if kind is None else str(kind)
    if kind not in QUANTUM_CORRECTIONS:
        raise ConfigError(f"unknown quantum correction '{kind}'; choose one of {QUANTUM_CORRECTIONS}")
    x = HC_OVER_KB_CM_K * np.asarray(wavenumbers, dtype=np.float64) / require_positive(
        temperature, "temperature", "K")
    if kind == "classical":
        return np.ones_like(x)
    if kind == "schofield":
        return np.exp(x / 2.0)
    out = np.ones_like(x)
    nonzero = np.abs(x) > 1e-12
    out[nonzero] = x[nonzero] / -np.expm1(-x[nonzero])
    return out


def _half_window(name: str | None, length: int) -> np.ndarray:
    if name is None or str(name).lower() == "none":
        return np.ones(length)
    try:
        full = scipy.signal.get_window(name, 2 * length - 1, fftbins=False)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"unknown window {name!r} ({exc}); use a scipy.signal window name such as "
                          "'hann', 'blackman', 'hamming', or None") from None
    return full[length - 1:]


def ir_spectrum(dipole: np.ndarray, times: np.ndarray, *, temperature: float = 298.15,
                max_lag_time: float | None = None, window: str | None = "hann",
                quantum_correction: str | None = "harmonic", zero_padding: int = 4,
                subtract_mean: bool = True, normalize: bool = True) -> IRSpectrum:
    """IR absorption spectrum ``I(ν̃) ∝ Q(ν̃) ω² ∫ w(t) <M(0)·M(t)> e^{−iωt} dt``.

    Parameters
    ----------
    dipole : array_like, shape (T, 3)
        Total dipole of the (periodic) system, e·Å, built from molecules kept whole (a dipole from
        wrapped positions jumps at the boundary and ruins the spectrum).
    times : array_like, shape (T,)
        ps, uniformly spaced; the step sets the Nyquist limit ``1/(2 Δt c)`` (0.5 fs → 33356 cm⁻¹).
    temperature : float
        K, for the quantum correction.
    max_lag_time : float, optional
        Length of the correlation function used, ps; sets the resolution ``≈ 1/(c · max_lag_time)``
        (1 ps → 33 cm⁻¹ before windowing). Default: half the trajectory.
    window : str or None
        scipy window name applied as a decaying half window over the ACF; None for no window.
    quantum_correction : {'harmonic', 'schofield', 'classical', None}
        See :func:`quantum_correction_factor`.
    zero_padding : int
        Factor by which the transform is padded beyond ``2 × max_lag`` (finer frequency grid, no new
        information).
    subtract_mean : bool
        Subtract the mean dipole first.
    normalize : bool
        Scale the intensity to a maximum of 1.

    Returns
    -------
    IRSpectrum
        Wavenumbers (cm⁻¹), intensity (arbitrary units), ACF ((e·Å)²) and settings.
    """
    m = as_series(dipole, "dipole")
    n_frames = m.shape[0]
    dt = time_step(times, n_frames)
    if max_lag_time is None:
        max_lag = max(1, n_frames // 2)
    else:
        max_lag = int(np.floor(require_positive(max_lag_time, "max_lag_time", "ps") / dt + 1e-9))
        if not 1 <= max_lag < n_frames:
            raise ConfigError(f"max_lag_time must lie between one step ({dt:g} ps) and the trajectory "
                              f"length ({(n_frames - 1) * dt:g} ps); found {max_lag_time:g} ps")
    if int(zero_padding) < 1:
        raise ConfigError(f"zero_padding must be a positive integer (found {zero_padding})")
    acf = autocorrelation(m, max_lag=max_lag, subtract_mean=subtract_mean)
    weighted = acf * _half_window(window, max_lag + 1)
    n_fft = scipy.fft.next_fast_len(2 * (max_lag + 1) * int(zero_padding), real=True)
    cosine = dt * (2.0 * scipy.fft.rfft(weighted, n=n_fft).real - weighted[0])
    wavenumbers = scipy.fft.rfftfreq(n_fft, dt) * CM_INV_PER_THZ
    intensity = wavenumbers ** 2 * cosine * quantum_correction_factor(wavenumbers, temperature,
                                                                      quantum_correction)
    if normalize:
        peak = float(np.max(np.abs(intensity)))
        if peak > 0:
            intensity = intensity / peak
    return IRSpectrum(wavenumbers=wavenumbers, intensity=intensity, lag_times=np.arange(max_lag + 1) * dt,
                      acf=acf, window=window, quantum_correction=quantum_correction or "classical",
                      temperature=float(temperature))


def find_peaks(wavenumbers: np.ndarray, intensity: np.ndarray, *,
               wavenumber_range: tuple[float, float] | None = None, min_prominence: float = 0.05,
               min_separation: float | None = None) -> list[Peak]:
    """Local maxima of a spectrum, positions refined by a parabola through the top three points.

    Parameters
    ----------
    wavenumbers : array_like, shape (F,)
        Increasing, uniformly spaced, cm⁻¹.
    intensity : array_like, shape (F,)
        Any unit.
    wavenumber_range : (float, float), optional
        Only peaks inside this range (cm⁻¹) are searched; prominence is relative to the largest
        intensity in the range.
    min_prominence : float
        Minimum prominence as a fraction of the largest intensity (in the range).
    min_separation : float, optional
        Minimum distance between peaks, cm⁻¹ (the higher one wins).

    Returns
    -------
    list of Peak
        Sorted by wavenumber.
    """
    nu = np.asarray(wavenumbers, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if nu.ndim != 1 or y.shape != nu.shape or len(nu) < 3:
        raise InputError("wavenumbers and intensity must be 1-D arrays of equal length >= 3",
                         field="intensity", expected=nu.shape, found=y.shape)
    require_finite(y, "intensity")
    step = float(np.mean(np.diff(nu)))
    if not step > 0:
        raise InputError("wavenumbers must increase", field="wavenumbers", expected="increasing values",
                         found=f"mean step {step}")
    lo, hi = (nu[0], nu[-1]) if wavenumber_range is None else (float(v) for v in wavenumber_range)
    inside = np.flatnonzero((nu >= lo) & (nu <= hi))
    if len(inside) < 3:
        raise ConfigError(f"wavenumber_range ({lo:g}, {hi:g}) cm⁻¹ contains fewer than 3 points")
    offset, segment = inside[0], y[inside]
    scale = float(np.max(segment))
    if scale <= 0:
        return []
    distance = None if min_separation is None else max(1, int(round(float(min_separation) / step)))
    idx, props = scipy.signal.find_peaks(segment, prominence=min_prominence * scale, distance=distance)
    peaks = []
    for i, prom in zip(idx, props["prominences"]):
        shift = 0.0
        if 0 < i < len(segment) - 1:
            left, mid, right = segment[i - 1:i + 2]
            curvature = left - 2 * mid + right
            if curvature < 0:
                shift = 0.5 * (left - right) / curvature
        peaks.append(Peak(float(nu[offset + i] + shift * step), float(segment[i]), float(prom)))
    return peaks
