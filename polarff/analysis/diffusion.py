"""Self-diffusion coefficients from unwrapped trajectories, with the Yeh–Hummer finite-size correction.

Units: positions in nm (unwrapped: no jumps at the periodic boundary), times in ps, mean squared
displacements (MSD) in nm², diffusion coefficients in 1e-9 m²/s (numerically equal to 1e-5 cm²/s;
water at 298 K: 2.30).

Method
------
* MSD over all time origins, ``MSD(τ) = < |r_i(t+τ) − r_i(t)|² >_{i, t}``, computed with the FFT
  algorithm (Kneller et al., Comput. Phys. Commun. 91, 191 (1995); Calandrini et al., École thématique
  de la Société Française de la Neutronique 12, 201 (2011)): O(T log T) per atom, vectorised over atoms.
* ``D = slope / 6`` of a straight line fitted to the MSD over a fitting window of lag times.
  Default window: from 10 % to 50 % of the *block* duration (see below). The start skips the ballistic
  and caging regime (sub-ps in liquids), the end stays clear of the long lags where few time origins are
  left and the MSD becomes noisy. Pass ``fit_window=(t_start, t_end)`` in ps to choose it yourself.
* Error bar by block averaging: the trajectory is cut into ``n_blocks`` contiguous blocks, the MSD and
  its fit are repeated on every block over the same window, and the standard error of the block values
  is reported. The value itself comes from the whole trajectory (more time origins, less noise).
* Yeh & Hummer, J. Phys. Chem. B 108, 15873 (2004): ``D_inf = D_pbc + k_B T ξ / (6 π η L)`` with
  ``ξ = 2.837297`` for a cubic box of edge ``L``; ``η`` is the shear viscosity *of the model*. The default
  0.89 mPa·s is the experimental value of water at 298 K; pass the model's own viscosity when known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.fft
import scipy.constants as const

from polarff.analysis.stats import (as_trajectory, block_slices, fit_line, require_positive,
                                    standard_error, time_step)
from polarff.errors import ConfigError, InputError

#: Yeh–Hummer constant ξ for a cubic periodic lattice (dimensionless).
YEH_HUMMER_XI = 2.837297
#: Default shear viscosity in mPa·s: experimental liquid water at 298 K (CRC Handbook, 0.890 mPa·s).
WATER_VISCOSITY_MPA_S = 0.89
#: Default fitting window as fractions of the block duration (start, end).
DEFAULT_FIT_FRACTIONS = (0.1, 0.5)
#: nm²/ps expressed in the output unit 1e-9 m²/s.
NM2_PER_PS_IN_1E9_M2_PER_S = 1e3
#: Largest number of (frame x atom) values transformed at once by :func:`msd_per_atom`.
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class DiffusionResult:
    """Self-diffusion coefficient of a group of atoms.

    Attributes
    ----------
    diffusion : float
        D under periodic boundary conditions, 1e-9 m²/s (from the whole trajectory).
    error : float
        Standard error from block averaging, 1e-9 m²/s.
    fit_window : tuple of float
        Lag-time window of the straight-line fit, ps (both ends included).
    lag_times : ndarray, shape (L,)
        Lag times, ps (0 .. duration).
    msd : ndarray, shape (L,)
        MSD of the whole trajectory averaged over the atoms, nm².
    slope, intercept : float
        Fitted line ``msd = slope * t + intercept`` (nm²/ps, nm²).
    block_values : ndarray, shape (n_blocks,)
        D on each block, 1e-9 m²/s.
    n_atoms : int
        Number of atoms averaged over.
    correction : float or None
        Yeh–Hummer correction ``k_B T ξ / (6 π η L)``, 1e-9 m²/s, when temperature and box length were
        given.
    diffusion_corrected : float or None
        ``diffusion + correction`` (estimate for an infinite system), 1e-9 m²/s.
    """

    diffusion: float
    error: float
    fit_window: tuple[float, float]
    lag_times: np.ndarray
    msd: np.ndarray
    slope: float
    intercept: float
    block_values: np.ndarray
    n_atoms: int
    correction: float | None = None
    diffusion_corrected: float | None = None


def msd_per_atom(positions: np.ndarray) -> np.ndarray:
    """Mean squared displacement of every atom, averaged over all time origins (FFT algorithm).

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.

    Returns
    -------
    ndarray, shape (T, N)
        ``msd[m, i] = 1/(T-m) Σ_t |r_i(t+m) − r_i(t)|²`` in nm², for lags m = 0 .. T-1 frames.

    Raises
    ------
    InputError
        If ``positions`` is not a finite (T, N, 3) array with T >= 2.
    """
    pos = as_trajectory(positions)
    n_frames, n_atoms = pos.shape[:2]
    out = np.empty((n_frames, n_atoms))
    chunk = max(1, _CHUNK_VALUES // (3 * n_frames))
    for start in range(0, n_atoms, chunk):
        part = pos[:, start:start + chunk]
        out[:, start:start + chunk] = _msd_fft(part - part[0])
    return out


def _msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD over time origins of ``x`` (T, M, 3); returns (T, M). Shift-invariant, O(T log T)."""
    n_frames = x.shape[0]
    n_fft = scipy.fft.next_fast_len(2 * n_frames, real=True)
    spectrum = scipy.fft.rfft(x, n=n_fft, axis=0)
    autocorr = scipy.fft.irfft(spectrum * np.conj(spectrum), n=n_fft, axis=0)[:n_frames].sum(axis=2)
    n_origins = (n_frames - np.arange(n_frames))[:, None]
    squares = np.sum(x * x, axis=2)
    total = 2.0 * squares.sum(axis=0)
    # S1(m) = Σ_{t=0}^{T-1-m} (x_t² + x_{t+m}²): drop x_{m-1}² and x_{T-m}² at each step in m.
    dropped = np.cumsum(squares[:-1] + squares[::-1][:-1], axis=0)
    s1 = np.concatenate([total[None], total[None] - dropped], axis=0)
    return np.maximum((s1 - 2.0 * autocorr) / n_origins, 0.0)


def _select_atoms(n_atoms: int, atoms: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if atoms is None:
        return np.arange(n_atoms)
    sel = np.asarray(atoms)
    if sel.dtype == bool:
        if sel.shape != (n_atoms,):
            raise InputError("boolean atom mask has the wrong length", field="atoms",
                             expected=(n_atoms,), found=sel.shape)
        sel = np.flatnonzero(sel)
    sel = sel.astype(np.int64).ravel()
    if len(sel) == 0:
        raise InputError("no atoms selected", field="atoms", expected="at least one atom", found=0)
    if sel.min() < 0 or sel.max() >= n_atoms:
        raise InputError("atom index out of range", field="atoms", expected=f"0 .. {n_atoms - 1}",
                         found=f"{sel.min()} .. {sel.max()}")
    return sel


def mean_squared_displacement(positions: np.ndarray, atoms: Sequence[int] | np.ndarray | None = None,
                              ) -> np.ndarray:
    """MSD averaged over the selected atoms and all time origins.

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.
    atoms : sequence of int or bool mask, optional
        Atoms to average over; all by default.

    Returns
    -------
    ndarray, shape (T,)
        MSD in nm² at lags 0 .. T-1 frames.
    """
    pos = as_trajectory(positions)
    sel = _select_atoms(pos.shape[1], atoms)
    return msd_per_atom(pos[:, sel]).mean(axis=1)


def msd_by_species(positions: np.ndarray, species: Sequence[str]) -> dict[str, np.ndarray]:
    """MSD (nm², shape (T,)) of each species, keyed by the labels in ``species`` (length N)."""
    pos = as_trajectory(positions)
    labels = _species_labels(species, pos.shape[1])
    per_atom = msd_per_atom(pos)
    return {s: per_atom[:, labels == s].mean(axis=1) for s in _unique_in_order(labels)}


def remove_center_of_mass_motion(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Subtract the displacement of the centre of mass of all atoms from every atom.

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.
    masses : array_like, shape (N,)
        Atomic masses (any unit; only ratios matter).

    Returns
    -------
    ndarray, shape (T, N, 3)
        Positions in nm with the centre of mass held at its frame-0 position.
    """
    pos = as_trajectory(positions)
    m = np.asarray(masses, dtype=np.float64)
    if m.shape != (pos.shape[1],) or not np.all(m > 0):
        raise InputError("masses must be positive, one per atom", field="masses",
                         expected=(pos.shape[1],), found=m.shape)
    com = np.einsum("tnk,n->tk", pos, m) / m.sum()
    return pos - (com - com[0])[:, None, :]


def resolve_fit_window(fit_window: tuple[float, float] | None, block_frames: int, dt: float
                       ) -> tuple[int, int]:
    """Lag indices (first, last, inclusive) of the fitting window.

    Parameters
    ----------
    fit_window : (float, float) or None
        Window in ps; None for the default :data:`DEFAULT_FIT_FRACTIONS` of the block duration.
    block_frames : int
        Frames per block (lags up to ``block_frames - 1`` are available in every block).
    dt : float
        Time between frames, ps.

    Raises
    ------
    ConfigError
        If the window is reversed, negative, longer than a block, or holds fewer than 3 lags.
    """
    longest = (block_frames - 1) * dt
    if fit_window is None:
        t0, t1 = (f * longest for f in DEFAULT_FIT_FRACTIONS)
    else:
        try:
            t0, t1 = (float(v) for v in fit_window)
        except (TypeError, ValueError):
            raise ConfigError(f"fit_window must be (start, end) in ps (found {fit_window!r})") from None
    if not (0 <= t0 < t1):
        raise ConfigError(f"fit_window must satisfy 0 <= start < end (found {t0}, {t1} ps)")
    if t1 > longest * (1 + 1e-9):
        raise ConfigError(f"fit_window ends at {t1:g} ps, beyond the longest lag of a block "
                          f"({longest:g} ps); shorten the window or use fewer blocks")
    first = int(math.ceil(t0 / dt - 1e-9))
    last = int(math.floor(t1 / dt + 1e-9))
    if last - first + 1 < 3:
        raise ConfigError(f"fit_window ({t0:g}, {t1:g}) ps holds {last - first + 1} lags at a "
                          f"{dt:g} ps step; at least 3 are needed")
    return first, last


def yeh_hummer_correction(temperature: float, box_length: float,
                          viscosity: float = WATER_VISCOSITY_MPA_S) -> float:
    """Finite-size correction of a diffusion coefficient, ``k_B T ξ / (6 π η L)``.

    Parameters
    ----------
    temperature : float
        Temperature, K.
    box_length : float
        Edge of the cubic periodic box, nm (for a non-cubic box the cube root of the volume is the
        usual approximation).
    viscosity : float
        Shear viscosity of the *model*, mPa·s (= cP). Default 0.89, experimental water at 298 K.

    Returns
    -------
    float
        Correction to add to the periodic-box value, 1e-9 m²/s.
    """
    t = require_positive(temperature, "temperature", "K")
    length_m = require_positive(box_length, "box_length", "nm") * 1e-9
    eta = require_positive(viscosity, "viscosity", "mPa·s") * 1e-3
    d_m2_per_s = const.k * t * YEH_HUMMER_XI / (6.0 * math.pi * eta * length_m)
    return d_m2_per_s * 1e9


def yeh_hummer_corrected(diffusion: float, temperature: float, box_length: float,
                         viscosity: float = WATER_VISCOSITY_MPA_S) -> float:
    """``D_inf = D_pbc + k_B T ξ / (6 π η L)``; ``diffusion`` and the result in 1e-9 m²/s.

    See :func:`yeh_hummer_correction` for the other parameters (K, nm, mPa·s).
    """
    return float(diffusion) + yeh_hummer_correction(temperature, box_length, viscosity)


def inverse_box_extrapolation(first: tuple[float, float, float], second: tuple[float, float, float]
                              ) -> tuple[float, float, float, float]:
    """A quantity measured in two box sizes, extrapolated linearly in 1/L to an infinite box.

    The hydrodynamic box effect on self-diffusion is linear in 1/L (:func:`yeh_hummer_correction`); where
    the ratio of the Einstein–Helfand to the Nernst–Einstein conductivity does not depend on the box, the
    conductivity follows the same law. Unlike the Yeh–Hummer term this needs no viscosity: the slope is
    measured. Through (L₁, x₁) and (L₂, x₂): ``x∞ = (L₂ x₂ − L₁ x₁) / (L₂ − L₁)`` and
    ``x∞ / x₁ = (L₂ q − L₁) / (L₂ − L₁)`` with ``q = x₂ / x₁``.

    Parameters
    ----------
    first, second : (float, float, float)
        Value, standard error and box edge (nm) of each box; the two estimates independent, the edges
        different.

    Returns
    -------
    (float, float, float, float)
        x∞ and its standard error, x∞ / x₁ and its standard error (units of x, then dimensionless).

    Raises
    ------
    ConfigError
        If an edge is not positive, the edges are equal, or x₁ is zero.
    """
    (x1, s1, length1), (x2, s2, length2) = first, second
    require_positive(length1, "box_length", "nm")
    require_positive(length2, "box_length", "nm")
    if math.isclose(length1, length2, rel_tol=1e-6) or x1 == 0:
        raise ConfigError(f"inverse_box_extrapolation: expected two different box edges and a non-zero first "
                          f"value (found L = {length1:g} and {length2:g} nm, x₁ = {x1:g})")
    span = length2 - length1
    value = (length2 * x2 - length1 * x1) / span
    error = math.hypot(length2 * s2, length1 * s1) / span
    q = x2 / x1
    q_error = abs(q) * math.hypot(s1 / x1, s2 / x2) if x2 != 0 else abs(s2 / x1)
    return value, error, (length2 * q - length1) / span, abs(length2 * q_error / span)


def viscosity_from_box_dependence(first: tuple[float, float, float], second: tuple[float, float, float],
                                  temperature: float) -> tuple[float, float]:
    """Shear viscosity from a periodic-box self-diffusion coefficient measured in two box sizes.

    Inverts the Yeh–Hummer law ``D_pbc(L) = D∞ − k_B T ξ / (6 π η L)`` (Yeh and Hummer, J. Phys. Chem. B 108,
    15873 (2004), who proposed this route to η): ``η = k_B T ξ (1/L₁ − 1/L₂) / (6 π (D₂ − D₁))``.

    Parameters
    ----------
    first, second : (float, float, float)
        Periodic-box D (1e-9 m²/s), its standard error (1e-9 m²/s) and the box edge (nm) of each box.
    temperature : float
        Temperature, K.

    Returns
    -------
    (float, float)
        η and its standard error, mPa·s (propagated from the two D; the slope must exceed its error for
        the value to mean anything, which the caller should check: D₂ − D₁ against √(σ₁² + σ₂²)).

    Raises
    ------
    ConfigError
        If the edges are equal or not positive, or the D of the larger box is not the larger.
    """
    (d1, s1, length1), (d2, s2, length2) = sorted([first, second], key=lambda x: x[2])
    require_positive(length1, "box_length", "nm")
    if math.isclose(length1, length2, rel_tol=1e-6):
        raise ConfigError(f"viscosity_from_box_dependence: expected two different box edges (found {length1:g} nm twice)")
    slope = d2 - d1
    if slope <= 0:
        raise ConfigError(f"viscosity_from_box_dependence: expected a larger D in the larger box (found {d1:g} at "
                          f"{length1:g} nm and {d2:g} at {length2:g} nm); the box dependence is not resolved")
    # yeh_hummer_correction(T, L) is k_B T ξ / (6 π η₀ L) for η₀ = WATER_VISCOSITY_MPA_S
    predicted = (yeh_hummer_correction(temperature, length1, WATER_VISCOSITY_MPA_S)
                 - yeh_hummer_correction(temperature, length2, WATER_VISCOSITY_MPA_S))
    viscosity = WATER_VISCOSITY_MPA_S * predicted / slope
    return viscosity, viscosity * math.hypot(s1, s2) / slope


def diffusion_coefficient(positions: np.ndarray, times: np.ndarray, *,
                          atoms: Sequence[int] | np.ndarray | None = None,
                          fit_window: tuple[float, float] | None = None, n_blocks: int = 5,
                          masses: np.ndarray | None = None, temperature: float | None = None,
                          box_length: float | None = None,
                          viscosity: float = WATER_VISCOSITY_MPA_S) -> DiffusionResult:
    """Self-diffusion coefficient from the MSD slope, with a block-averaged error bar.

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.
    times : array_like, shape (T,)
        Frame times, ps, uniformly spaced.
    atoms : sequence of int or bool mask, optional
        Atoms to average over (e.g. the oxygens of water); all by default.
    fit_window : (float, float), optional
        Lag-time window of the linear fit, ps. Default: 10 %–50 % of the block duration.
    n_blocks : int
        Number of contiguous blocks for the error bar (>= 2).
    masses : array_like, shape (N,), optional
        If given, the centre-of-mass drift of all N atoms is removed first.
    temperature : float, optional
        K; with ``box_length``, the Yeh–Hummer correction is added to the result.
    box_length : float, optional
        Cubic box edge, nm.
    viscosity : float
        Model shear viscosity for the correction, mPa·s (default 0.89, experimental water, 298 K).

    Returns
    -------
    DiffusionResult
        D and its error in 1e-9 m²/s, the MSD curve (nm² vs ps) and the fit.

    Raises
    ------
    InputError
        Bad shapes, non-finite values, non-uniform times.
    ConfigError
        Invalid fitting window or number of blocks.
    """
    pos = as_trajectory(positions)
    n_frames = pos.shape[0]
    dt = time_step(times, n_frames)
    if masses is not None:
        pos = remove_center_of_mass_motion(pos, masses)
    pos = pos[:, _select_atoms(pos.shape[1], atoms)]
    blocks = block_slices(n_frames, n_blocks)
    first, last = resolve_fit_window(fit_window, blocks[0].stop - blocks[0].start, dt)
    lags = np.arange(n_frames) * dt

    def fit(msd: np.ndarray) -> tuple[float, float]:
        return fit_line(lags[first:last + 1], msd[first:last + 1])

    msd = msd_per_atom(pos).mean(axis=1)
    slope, intercept = fit(msd)
    block_values = np.array([fit(msd_per_atom(pos[s]).mean(axis=1))[0] for s in blocks])
    to_output = NM2_PER_PS_IN_1E9_M2_PER_S / 6.0
    value = slope * to_output
    correction = corrected = None
    if temperature is not None and box_length is not None:
        correction = yeh_hummer_correction(temperature, box_length, viscosity)
        corrected = value + correction
    return DiffusionResult(
        diffusion=value, error=standard_error(block_values * to_output),
        fit_window=(first * dt, last * dt), lag_times=lags, msd=msd, slope=slope, intercept=intercept,
        block_values=block_values * to_output, n_atoms=pos.shape[1], correction=correction,
        diffusion_corrected=corrected)


def diffusion_by_species(positions: np.ndarray, times: np.ndarray, species: Sequence[str], **options
                         ) -> dict[str, DiffusionResult]:
    """:func:`diffusion_coefficient` for every species.

    Parameters
    ----------
    positions : array_like, shape (T, N, 3)
        Unwrapped positions, nm.
    times : array_like, shape (T,)
        Frame times, ps.
    species : sequence of str, length N
        Label of every atom (e.g. chemical symbols ``['O', 'H', 'H', ..., 'Na', 'Cl']``).
    **options
        Passed to :func:`diffusion_coefficient` (``fit_window``, ``n_blocks``, ``masses``,
        ``temperature``, ``box_length``, ``viscosity``); ``atoms`` is not allowed.

    Returns
    -------
    dict of str to DiffusionResult
        In order of first appearance in ``species``.
    """
    if "atoms" in options:
        raise ConfigError("diffusion_by_species selects atoms by species; do not pass 'atoms'")
    pos = as_trajectory(positions)
    labels = _species_labels(species, pos.shape[1])
    if options.get("masses") is not None:
        pos = remove_center_of_mass_motion(pos, options.pop("masses"))
    options.pop("masses", None)
    return {s: diffusion_coefficient(pos, times, atoms=labels == s, **options)
            for s in _unique_in_order(labels)}


def _species_labels(species: Sequence[str], n_atoms: int) -> np.ndarray:
    labels = np.asarray([str(s) for s in species])
    if labels.shape != (n_atoms,):
        raise InputError("species must name every atom of the trajectory", field="species",
                         expected=f"{n_atoms} labels", found=f"{labels.size} labels")
    return labels


def _unique_in_order(labels: np.ndarray) -> list[str]:
    seen: dict[str, None] = {}
    for s in labels:
        seen.setdefault(str(s), None)
    return list(seen)
