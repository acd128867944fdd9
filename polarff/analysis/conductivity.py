"""Ionic conductivity: Einstein–Helfand, Green–Kubo and Nernst–Einstein; molar conductivity.

Units: positions in nm (unwrapped), times in ps, charges in e, the translational dipole ``M`` in e·nm,
the current ``J = dM/dt`` in e·nm/ps, volumes in nm³, temperatures in K, conductivities σ in S/m,
diffusion coefficients in 1e-9 m²/s, concentrations in mol/L, molar conductivities Λ in S cm² mol⁻¹.

Einstein–Helfand (EH)
---------------------
``σ = lim_{t→∞} <|ΔM(t)|²> / (6 V k_B T t)`` with the collective translational dipole
``M(t) = Σ_i q_i(t) (r_i(t) − r_ref)`` over *unwrapped* positions; ``<|ΔM|²>`` is averaged over all time
origins (FFT algorithm) and its slope is fitted over a window of lag times (default 10 %–50 % of the block
duration, as for diffusion); the error bar comes from block averaging.

(a) Formal, fixed charges: pass ``charges`` of shape (N,), e.g. +1/−1 on the ions and 0 on water, or the
    force field's fixed partial charges.
(b) Time-dependent, environment-dependent charges: pass ``charges`` of shape (T, N), frame t's own
    charges ``q_i(t)``. Every frame's dipole uses that frame's charges and positions, and
    ``ΔM = M(t+τ) − M(t)`` is taken between such dipoles, so that
    ``ΔM = ∫ Σ_i [q_i ṙ_i + q̇_i (r_i − r_ref)] dt``: the polarization (charge-flow) current
    ``Σ q̇_i r_i`` is included exactly, with no separate derivative of the charges. Intramolecular
    charge flow contributes: a bounded oscillation of a molecule's dipole adds a constant to
    ``<|ΔM|²>`` at long lags (it does not change the slope by itself), while charge that moves between
    atoms (e.g. a hopping charge) or charge flow correlated with ion translation changes the slope.
    Because ``r_i`` enters with ``q̇_i``, molecules must be kept whole in the unwrapped trajectory and
    the total charge must stay constant (checked: ``net_charge_tolerance``); charge transferred between
    atoms whose unwrapped images are far apart would add spurious jumps of ``δq · L``.
    ``r_ref`` is the centroid of frame 0, a fixed point; for a constant total charge the result does
    not depend on it.

Green–Kubo (GK)
---------------
``σ = 1/(3 V k_B T) ∫_0^∞ <J(0)·J(t)> dt`` with ``J = dM/dt``. From saved frames, ``J`` is the forward
difference ``(M(t+Δt) − M(t))/Δt`` (:func:`dipole_current`; with time-dependent charges it contains the
``q̇ r`` terms) or ``Σ_i q_i v_i`` from velocities (:func:`charge_current`; this misses ``q̇ r``). The
trapezoidal running integral of the forward-difference current is the discrete counterpart of the EH
slope, so both estimators agree on the same data. The running integral is returned for plotting, and
the plateau estimate is its mean over ``plateau_window``.

Nernst–Einstein (NE)
--------------------
``σ_NE = e² / (V k_B T) Σ_s N_s z_s² D_s`` neglects all cross-correlations between ions;
``σ / σ_NE`` is the inverse Haven ratio.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np
import scipy.constants as const

from polarff.analysis.diffusion import (NM2_PER_PS_IN_1E9_M2_PER_S, DiffusionResult, msd_per_atom,
                                        resolve_fit_window)
from polarff.analysis.stats import (as_series, as_trajectory, autocorrelation, block_slices, fit_line, require_finite,
                                    require_positive, standard_error, time_step)
from polarff.errors import ConfigError, InputError

#: e² nm² ps⁻¹ / (nm³ · J K⁻¹) → S/m, i.e. σ = value · SI_FACTOR / (V T) with value in e² nm²/ps.
_SIGMA_SI_FACTOR = const.e ** 2 * 1e-18 / 1e-12 / 1e-27 / const.k
#: Default Green–Kubo integration length as a fraction of the block duration.
DEFAULT_GK_MAX_LAG_FRACTION = 0.1
#: Default Green–Kubo plateau window as fractions of the integration length.
DEFAULT_GK_PLATEAU_FRACTIONS = (0.5, 1.0)


@dataclass(frozen=True)
class EinsteinHelfandResult:
    """Conductivity from the mean squared displacement of the translational dipole.

    Attributes
    ----------
    sigma : float
        Conductivity, S/m (whole trajectory).
    error : float
        Standard error from block averaging, S/m.
    fit_window : tuple of float
        Lag-time window of the linear fit, ps.
    lag_times : ndarray, shape (T,)
        ps.
    msd_dipole : ndarray, shape (T,)
        ``<|M(t+τ) − M(t)|²>`` over time origins, e² nm².
    slope, intercept : float
        Fitted line, e² nm²/ps and e² nm².
    block_values : ndarray
        σ on each block, S/m.
    time_dependent_charges : bool
        Whether per-frame charges were used (case (b)).
    """

    sigma: float
    error: float
    fit_window: tuple[float, float]
    lag_times: np.ndarray
    msd_dipole: np.ndarray
    slope: float
    intercept: float
    block_values: np.ndarray
    time_dependent_charges: bool


@dataclass(frozen=True)
class GreenKuboResult:
    """Conductivity from the integral of the current autocorrelation function.

    Attributes
    ----------
    sigma : float
        Plateau of the running integral, S/m (whole trajectory).
    error : float
        Standard error of the plateau from block averaging, S/m.
    lag_times : ndarray, shape (L,)
        ps.
    acf : ndarray, shape (L,)
        ``<J(0)·J(t)>``, e² nm²/ps².
    running_integral : ndarray, shape (L,)
        ``σ(t) = 1/(3 V k_B T) ∫_0^t <J(0)·J(t')> dt'`` (trapezoid), S/m.
    plateau_window : tuple of float
        Lag-time window averaged for the plateau, ps.
    block_values : ndarray
        Plateau on each block, S/m.
    """

    sigma: float
    error: float
    lag_times: np.ndarray
    acf: np.ndarray
    running_integral: np.ndarray
    plateau_window: tuple[float, float]
    block_values: np.ndarray


@dataclass(frozen=True)
class ConductivityEstimate:
    """A conductivity with an optional error bar (S/m)."""

    sigma: float
    error: float | None


def _charges(charges: np.ndarray, n_frames: int, n_atoms: int) -> np.ndarray:
    q = np.asarray(charges, dtype=np.float64)
    if q.shape not in ((n_atoms,), (n_frames, n_atoms)):
        raise InputError("charges must be per atom (N,) or per frame and atom (T, N)", field="charges",
                         expected=f"({n_atoms},) or ({n_frames}, {n_atoms})", found=q.shape)
    require_finite(q, "charges")
    return q


def translational_dipole(positions: np.ndarray, charges: np.ndarray, *,
                         net_charge_tolerance: float = 1e-3) -> np.ndarray:
    """Collective translational dipole ``M(t) = Σ_i q_i(t) (r_i(t) − r_ref)``.

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.
    charges : array_like, shape (N,) or (T, N)
        Fixed charges, or each frame's own (environment-dependent) charges, e.
    net_charge_tolerance : float
        Largest allowed change of the total charge between frames, e (time-dependent charges only).

    Returns
    -------
    ndarray, shape (T, 3)
        M in e·nm, relative to ``r_ref`` = centroid of frame 0.

    Raises
    ------
    InputError
        Bad shapes, non-finite values, or a total charge that changes between frames.
    """
    pos = as_trajectory(positions)
    q = _charges(charges, *pos.shape[:2])
    reference = pos[0].mean(axis=0)
    if q.ndim == 1:
        return np.einsum("tnk,n->tk", pos, q) - q.sum() * reference
    total = q.sum(axis=1)
    drift = float(np.max(np.abs(total - total[0])))
    if drift > net_charge_tolerance:
        worst = int(np.argmax(np.abs(total - total[0])))
        raise InputError("total charge changes between frames, so ΔM would depend on the origin",
                         frame=worst, field="charges",
                         expected=f"constant total charge (±{net_charge_tolerance:g} e)",
                         found=f"change of {drift:.3g} e")
    return np.einsum("tnk,tn->tk", pos, q) - total[:, None] * reference


def einstein_helfand(positions: np.ndarray, times: np.ndarray, charges: np.ndarray, volume: float,
                     temperature: float, *, fit_window: tuple[float, float] | None = None,
                     n_blocks: int = 5, net_charge_tolerance: float = 1e-3) -> EinsteinHelfandResult:
    """Einstein–Helfand conductivity from positions and fixed or per-frame charges.

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.
    times : array_like, shape (T,)
        Frame times, ps, uniformly spaced.
    charges : array_like, shape (N,) or (T, N)
        (a) fixed formal charges or (b) each frame's environment-dependent charges, e.
    volume : float
        Box volume, nm³ (average volume for NPT).
    temperature : float
        K.
    fit_window : (float, float), optional
        Lag window of the linear fit of ``<|ΔM|²>``, ps; default 10 %–50 % of the block duration.
    n_blocks : int
        Blocks for the error bar.
    net_charge_tolerance : float
        See :func:`translational_dipole`, e.

    Returns
    -------
    EinsteinHelfandResult
        σ and its error in S/m, ``<|ΔM|²>`` (e² nm²) vs lag (ps), the fit.
    """
    dipole = translational_dipole(positions, charges, net_charge_tolerance=net_charge_tolerance)
    result = einstein_helfand_from_dipole(dipole, times, volume, temperature, fit_window=fit_window,
                                          n_blocks=n_blocks)
    return dataclasses.replace(result, time_dependent_charges=np.ndim(charges) == 2)


def einstein_helfand_from_dipole(dipole: np.ndarray, times: np.ndarray, volume: float,
                                 temperature: float, *, fit_window: tuple[float, float] | None = None,
                                 n_blocks: int = 5) -> EinsteinHelfandResult:
    """Einstein–Helfand conductivity from a precomputed translational dipole ``M(t)`` (e·nm, (T, 3)).

    Same method and parameters as :func:`einstein_helfand`; use it when the simulation reports
    ``M(t)`` directly (it must be built from unwrapped positions).
    """
    m = as_series(dipole, "dipole")
    n_frames = m.shape[0]
    dt = time_step(times, n_frames)
    factor = _sigma_prefactor(volume, temperature) / 6.0
    blocks = block_slices(n_frames, n_blocks)
    first, last = resolve_fit_window(fit_window, blocks[0].stop - blocks[0].start, dt)
    lags = np.arange(n_frames) * dt

    def msd_of(series: np.ndarray) -> np.ndarray:
        padded = np.zeros((len(series), 1, 3))
        padded[:, 0, :series.shape[1]] = series
        return msd_per_atom(padded)[:, 0]

    def fit(msd: np.ndarray) -> tuple[float, float]:
        return fit_line(lags[first:last + 1], msd[first:last + 1])

    msd = msd_of(m)
    slope, intercept = fit(msd)
    block_values = np.array([fit(msd_of(m[s]))[0] for s in blocks]) * factor
    return EinsteinHelfandResult(
        sigma=slope * factor, error=standard_error(block_values), fit_window=(first * dt, last * dt),
        lag_times=lags, msd_dipole=msd, slope=slope, intercept=intercept, block_values=block_values,
        time_dependent_charges=False)


def dipole_current(dipole: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Charge current ``J = dM/dt`` by forward differences of the translational dipole.

    Parameters
    ----------
    dipole : array_like, shape (T, 3)
        ``M(t)``, e·nm (from :func:`translational_dipole`; with per-frame charges it includes the
        polarization current).
    times : array_like, shape (T,)
        ps, uniformly spaced.

    Returns
    -------
    current : ndarray, shape (T-1, 3)
        ``(M(t+Δt) − M(t)) / Δt``, e·nm/ps.
    mid_times : ndarray, shape (T-1,)
        Midpoints of the frame intervals, ps.
    """
    m = as_series(dipole, "dipole")
    dt = time_step(times, m.shape[0])
    t = np.asarray(times, dtype=np.float64)
    return np.diff(m, axis=0) / dt, 0.5 * (t[1:] + t[:-1])


def charge_current(velocities: np.ndarray, charges: np.ndarray) -> np.ndarray:
    """Charge current ``J(t) = Σ_i q_i(t) v_i(t)`` from velocities.

    Parameters
    ----------
    velocities : array_like, shape (T, N, 3)
        nm/ps.
    charges : array_like, shape (N,) or (T, N)
        e.

    Returns
    -------
    ndarray, shape (T, 3)
        e·nm/ps. With time-dependent charges this omits the ``Σ q̇_i r_i`` polarization current; use
        :func:`dipole_current` to include it.
    """
    vel = as_trajectory(velocities, field="velocities")
    q = _charges(charges, *vel.shape[:2])
    return np.einsum("tnk,n->tk", vel, q) if q.ndim == 1 else np.einsum("tnk,tn->tk", vel, q)


def current_autocorrelation(current: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """``C(k) = <J(t)·J(t+k)>`` averaged over all time origins (FFT, zero-padded, unbiased).

    Parameters
    ----------
    current : array_like, shape (T, 3) or (T,)
        Any unit u.
    max_lag : int, optional
        Largest lag in frames (default T-1).

    Returns
    -------
    ndarray, shape (max_lag + 1,)
        u².
    """
    return autocorrelation(current, max_lag=max_lag, name="current")


def _plateau_indices(plateau_window: tuple[float, float] | None, max_lag: int, dt: float
                     ) -> tuple[int, int]:
    if plateau_window is None:
        t0, t1 = (f * max_lag * dt for f in DEFAULT_GK_PLATEAU_FRACTIONS)
    else:
        try:
            t0, t1 = (float(v) for v in plateau_window)
        except (TypeError, ValueError):
            raise ConfigError(f"plateau_window must be (start, end) in ps (found {plateau_window!r})") \
                from None
    if not 0 <= t0 <= t1 or t1 > max_lag * dt * (1 + 1e-9):
        raise ConfigError(f"plateau_window ({t0:g}, {t1:g}) ps must satisfy 0 <= start <= end <= "
                          f"max_lag_time = {max_lag * dt:g} ps")
    first, last = int(math.ceil(t0 / dt - 1e-9)), int(math.floor(t1 / dt + 1e-9))
    if last < first:
        raise ConfigError(f"plateau_window ({t0:g}, {t1:g}) ps contains no lag at a {dt:g} ps step")
    return first, last


def green_kubo(current: np.ndarray, times: np.ndarray, volume: float, temperature: float, *,
               max_lag_time: float | None = None, plateau_window: tuple[float, float] | None = None,
               n_blocks: int = 5) -> GreenKuboResult:
    """Green–Kubo conductivity from the charge current.

    Parameters
    ----------
    current : array_like, shape (T, 3)
        ``J(t)``, e·nm/ps (:func:`dipole_current` or :func:`charge_current`).
    times : array_like, shape (T,)
        Times of the current samples, ps, uniformly spaced.
    volume : float
        nm³.
    temperature : float
        K.
    max_lag_time : float, optional
        Upper limit of the integral, ps. Default: 10 % of the block duration.
    plateau_window : (float, float), optional
        Lag window over which the running integral is averaged, ps. Default: the second half of
        ``[0, max_lag_time]``. Look at ``running_integral`` and choose it where the curve is flat.
    n_blocks : int
        Blocks for the error bar (each block computes its own correlation function).

    Returns
    -------
    GreenKuboResult
        Plateau σ and error in S/m, the current ACF and the running integral.
    """
    j = as_series(current, "current")
    n_frames = j.shape[0]
    dt = time_step(times, n_frames)
    factor = _sigma_prefactor(volume, temperature) / 3.0
    blocks = block_slices(n_frames, n_blocks)
    block_frames = blocks[0].stop - blocks[0].start
    if max_lag_time is None:
        max_lag = max(1, int(DEFAULT_GK_MAX_LAG_FRACTION * (block_frames - 1)))
    else:
        max_lag = int(math.floor(require_positive(max_lag_time, "max_lag_time", "ps") / dt + 1e-9))
        if not 1 <= max_lag < block_frames:
            raise ConfigError(f"max_lag_time {max_lag_time:g} ps must span at least one step and be "
                              f"shorter than a block ({(block_frames - 1) * dt:g} ps)")
    first, last = _plateau_indices(plateau_window, max_lag, dt)

    def running(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        acf = current_autocorrelation(series, max_lag)
        integral = np.concatenate([[0.0], np.cumsum(0.5 * (acf[1:] + acf[:-1]))]) * dt * factor
        return acf, integral

    acf, integral = running(j)
    block_values = np.array([running(j[s])[1][first:last + 1].mean() for s in blocks])
    return GreenKuboResult(
        sigma=float(integral[first:last + 1].mean()), error=standard_error(block_values),
        lag_times=np.arange(max_lag + 1) * dt, acf=acf, running_integral=integral,
        plateau_window=(first * dt, last * dt), block_values=block_values)


def nernst_einstein(diffusion: Mapping[str, Union[float, DiffusionResult]], valences: Mapping[str, float],
                    volume: float, temperature: float, *, counts: Mapping[str, int] | None = None,
                    diffusion_errors: Mapping[str, float] | None = None) -> ConductivityEstimate:
    """Nernst–Einstein conductivity ``σ_NE = e² / (V k_B T) Σ_s N_s z_s² D_s``.

    Parameters
    ----------
    diffusion : mapping of str to float or DiffusionResult
        ``D_s`` per species in 1e-9 m²/s (periodic-box values, no finite-size correction, to compare
        with σ from the same box), e.g. the output of
        :func:`polarff.analysis.diffusion.diffusion_by_species`.
    valences : mapping of str to float
        ``z_s`` of the charge carriers, e.g. ``{'Na': 1, 'Cl': -1}``; only these species are summed.
    volume : float
        nm³.
    temperature : float
        K.
    counts : mapping of str to int, optional
        ``N_s``; taken from ``DiffusionResult.n_atoms`` when omitted.
    diffusion_errors : mapping of str to float, optional
        Standard errors of ``D_s`` (1e-9 m²/s); taken from ``DiffusionResult.error`` when omitted.

    Returns
    -------
    ConductivityEstimate
        σ_NE in S/m with the propagated error (None if no errors are known).
    """
    factor = _sigma_prefactor(volume, temperature) / NM2_PER_PS_IN_1E9_M2_PER_S  # D in 1e-9 m²/s
    total, variance, have_errors = 0.0, 0.0, True
    for species, z in valences.items():
        if species not in diffusion:
            raise InputError("no diffusion coefficient for a charged species", field="diffusion",
                             expected=f"an entry for '{species}'", found=sorted(diffusion))
        entry = diffusion[species]
        d = entry.diffusion if isinstance(entry, DiffusionResult) else float(entry)
        err = (diffusion_errors or {}).get(species,
                                           entry.error if isinstance(entry, DiffusionResult) else None)
        if counts is not None and species in counts:
            n = int(counts[species])
        elif isinstance(entry, DiffusionResult):
            n = entry.n_atoms
        else:
            raise InputError("number of ions unknown for a species", field="counts",
                             expected=f"a count for '{species}'", found=None if counts is None
                             else sorted(counts))
        total += n * float(z) ** 2 * d
        if err is None:
            have_errors = False
        else:
            variance += (n * float(z) ** 2 * float(err)) ** 2
    return ConductivityEstimate(factor * total, factor * math.sqrt(variance) if have_errors else None)


def salt_concentration(n_formula_units: float, volume: float) -> float:
    """Molar concentration (mol/L) of ``n_formula_units`` in a box of ``volume`` nm³."""
    return float(n_formula_units) / (const.N_A * require_positive(volume, "volume", "nm³") * 1e-24)


def molar_conductivity(sigma: float, concentration: float) -> float:
    """Molar conductivity ``Λ = σ / c``.

    Parameters
    ----------
    sigma : float
        Conductivity, S/m.
    concentration : float
        Salt concentration, mol/L (molar, not molal; see :func:`salt_concentration`).

    Returns
    -------
    float
        Λ in S cm² mol⁻¹ (``10 σ / c`` with these units).
    """
    c = require_positive(concentration, "concentration", "mol/L")
    return float(sigma) / (c * 1e3) * 1e4


def haven_ratio(sigma_nernst_einstein: float, sigma: float) -> float:
    """Haven ratio ``H = σ_NE / σ`` (1 for uncorrelated ions; > 1 when ion pairing lowers σ)."""
    return float(sigma_nernst_einstein) / require_positive(sigma, "sigma", "S/m")


def _sigma_prefactor(volume: float, temperature: float) -> float:
    """``e² / (V k_B T)`` turning e² nm²/ps into S/m (divide by 6 for EH, 3 for GK)."""
    v = require_positive(volume, "volume", "nm³")
    t = require_positive(temperature, "temperature", "K")
    return _SIGMA_SI_FACTOR / (v * t)
