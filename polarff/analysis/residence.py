"""How long water stays in an ion's first shell: the Impey–Madden–McDonald residence time.

A water belongs to the shell while its O lies within the shell radius of the ion (minimum image). Its
residence is not broken by excursions out of the shell shorter than a tolerance t* (2 ps by convention:
R. W. Impey, P. A. Madden, I. R. McDonald, J. Phys. Chem. 87, 5071 (1983)). The shell correlation

    C(t) = Σ_j ⟨P_j(t₀, t)⟩ / Σ_j ⟨P_j(t₀, 0)⟩,

with P_j(t₀, t) = 1 when water j is in the shell at t₀ and at t₀ + t without having left it for longer than t*
in between, decays as exp(−t/τ); the residence time is τ = ∫ C(t) dt.
"""

from __future__ import annotations

import numpy as np

from polarff.analysis.structure import _partner_vectors
from polarff.errors import ConfigError

#: Tolerance t* (ps) for excursions out of the shell (Impey, Madden and McDonald).
EXCURSION_TOLERANCE_PS = 2.0


def shell_membership(positions: np.ndarray, boxes: np.ndarray, centre: int, partners, cutoff_nm: float
                     ) -> np.ndarray:
    """Boolean (F, P): whether each of the ``partners`` atoms is within ``cutoff_nm`` of atom ``centre`` in each
    frame (minimum image). Arguments as for :func:`polarff.analysis.structure.shell_offset` (positions (F, N, 3)
    and orthorhombic boxes (F, 3, 3) in nm)."""
    return np.linalg.norm(_partner_vectors(positions, boxes, [centre], partners)[:, 0], axis=-1) < cutoff_nm


def _fill_short_gaps(inside: np.ndarray, max_gap: int) -> np.ndarray:
    """``inside`` (F,) with absences of at most ``max_gap`` frames between two presences set present."""
    filled = inside.copy()
    present = np.flatnonzero(inside)
    for a, b in zip(present[:-1], present[1:]):
        if 1 < b - a <= max_gap + 1:
            filled[a:b] = True
    return filled


def _run_ends(filled: np.ndarray) -> np.ndarray:
    """For each frame, the (exclusive) end of the run of present frames it belongs to (its own index if absent)."""
    n = len(filled)
    ends = np.arange(n)
    end = n
    for k in range(n - 1, -1, -1):
        if not filled[k]:
            end = k
        else:
            ends[k] = end
    return ends


def shell_correlation(membership: np.ndarray, frame_ps: float, max_lag_ps: float,
                      tolerance_ps: float = EXCURSION_TOLERANCE_PS) -> tuple[np.ndarray, np.ndarray]:
    """The shell correlation C(t) of :mod:`this module <polarff.analysis.residence>`.

    Parameters
    ----------
    membership : ndarray of bool, shape (F, P)
        :func:`shell_membership` of frames equally spaced by ``frame_ps``.
    frame_ps : float
        Time between frames, ps.
    max_lag_ps : float
        Longest lag, ps (less than the run).
    tolerance_ps : float
        Excursions out of the shell up to this long (ps) do not end a residence.

    Returns
    -------
    (ndarray, ndarray)
        Lags t (ps) and C(t), C(0) = 1.

    Raises
    ------
    ConfigError
        If the lag or the spacing is not positive, the lag is not shorter than the run, or no partner is ever
        in the shell.
    """
    inside = np.asarray(membership, dtype=bool)
    n_frames = inside.shape[0]
    if frame_ps <= 0 or max_lag_ps <= 0 or tolerance_ps < 0:
        raise ConfigError(f"shell_correlation: frame spacing and lag must be positive, tolerance ≥ 0 (found "
                          f"{frame_ps} ps, {max_lag_ps} ps, {tolerance_ps} ps)")
    n_lags = int(round(max_lag_ps / frame_ps)) + 1
    if n_lags >= n_frames:
        raise ConfigError(f"shell_correlation: the longest lag ({max_lag_ps} ps) must be shorter than the run "
                          f"({(n_frames - 1) * frame_ps:g} ps)")
    max_gap = int(np.floor(tolerance_ps / frame_ps + 1e-9))
    n_origins = n_frames - n_lags + 1
    counts = np.zeros(n_lags)
    for j in range(inside.shape[1]):
        m = inside[:, j]
        if not m[:n_origins].any():
            continue
        ends = _run_ends(_fill_short_gaps(m, max_gap))
        origins = np.flatnonzero(m[:n_origins])
        for lag in range(n_lags):
            later = origins + lag
            counts[lag] += np.count_nonzero(m[later] & (later < ends[origins]))
    if counts[0] == 0:
        raise ConfigError("shell_correlation: no partner is ever in the shell; check the indices and the radius")
    return np.arange(n_lags) * frame_ps, counts / counts[0]


def residence_time(lags_ps: np.ndarray, correlation: np.ndarray) -> float:
    """τ = ∫ C(t) dt (ps) by the trapezoidal rule over the lags given (a lower bound while C has not decayed)."""
    c = np.asarray(correlation, dtype=np.float64)
    t = np.asarray(lags_ps, dtype=np.float64)
    return float(np.sum(0.5 * (c[1:] + c[:-1]) * np.diff(t)))
