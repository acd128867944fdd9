"""Tests of polarff.analysis.conductivity on synthetic systems with known conductivities."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.constants as const
import scipy.signal

from polarff.analysis.conductivity import (charge_current, current_autocorrelation, dipole_current,
                                           einstein_helfand, einstein_helfand_from_dipole, green_kubo,
                                           haven_ratio, molar_conductivity, nernst_einstein,
                                           salt_concentration, translational_dipole)
from polarff.analysis.diffusion import diffusion_by_species
from polarff.analysis.experiment import (D_CL_298K, D_NA_298K, NACL_MOLAR_CONDUCTIVITY_298K,
                                        nacl_molar_conductivity)
from polarff.errors import ConfigError, InputError

VOLUME = 27.0  # nm³
TEMPERATURE = 298.15  # K
#: e² nm²/ps → S/m divided by V T: σ = x * SI / (V T) (independent of the module's constant)
SI = const.e ** 2 * 1e-18 / 1e-12 / (1e-27 * const.k)


def brownian(rng, n_frames, diffusion_nm2_ps, dt):
    d = np.asarray(diffusion_nm2_ps, dtype=float)
    steps = rng.normal(size=(n_frames, len(d), 3)) * np.sqrt(2 * d * dt)[None, :, None]
    steps[0] = rng.uniform(0.0, 3.0, size=(len(d), 3))
    return np.cumsum(steps, axis=0)


def ou_process(rng, n_frames, n_components, sigma, tau, dt):
    """Stationary Ornstein–Uhlenbeck samples: variance sigma², correlation exp(-t/tau)."""
    a = np.exp(-dt / tau)
    kicks = rng.normal(size=(n_frames, n_components)) * sigma * np.sqrt(1 - a * a)
    kicks[0] = rng.normal(size=n_components) * sigma
    return scipy.signal.lfilter([1.0], [1.0, -a], kicks, axis=0)


@pytest.fixture(scope="module")
def ions():
    """10 Na-like (+1, D = 1.33) and 10 Cl-like (−1, D = 2.03) uncorrelated Brownian ions."""
    rng = np.random.default_rng(5)
    n, dt, frames = 10, 0.1, 20000
    d = np.r_[np.full(n, 1.33e-3), np.full(n, 2.03e-3)]
    pos = brownian(rng, frames, d, dt)
    charges = np.r_[np.ones(n), -np.ones(n)]
    species = ["Na"] * n + ["Cl"] * n
    return pos, np.arange(frames) * dt, charges, species


# --------------------------------------------------------------------------------- Nernst–Einstein

def test_nernst_einstein_with_crc_diffusion_reproduces_limiting_molar_conductivity():
    # one ion pair per 1.66 nm³ = 1 mol/L; at infinite dilution NE is exact: Λ° = F²(D+ + D−)/(RT)
    volume = 1.0 / (const.N_A * 1e-24)
    assert salt_concentration(1, volume) == pytest.approx(1.0)
    ne = nernst_einstein({"Na": D_NA_298K.value, "Cl": D_CL_298K.value}, {"Na": 1, "Cl": -1}, volume,
                         TEMPERATURE, counts={"Na": 1, "Cl": 1})
    lam = molar_conductivity(ne.sigma, 1.0)
    assert lam == pytest.approx(NACL_MOLAR_CONDUCTIVITY_298K[0.0].value, rel=2e-3)
    assert ne.error is None
    assert molar_conductivity(8.576, 1.0) == pytest.approx(85.76)  # S/m, mol/L -> S cm² mol⁻¹


def test_nernst_einstein_takes_diffusion_results_and_propagates_errors(ions):
    pos, times, charges, species = ions
    per_species = diffusion_by_species(pos, times, species)
    ne = nernst_einstein(per_species, {"Na": 1, "Cl": -1}, VOLUME, TEMPERATURE)
    expected = SI / (VOLUME * TEMPERATURE) * 10 * (1.33e-3 + 2.03e-3)
    assert ne.error is not None and ne.error > 0
    assert abs(ne.sigma - expected) < max(3 * ne.error, 0.05 * expected)
    doubly = nernst_einstein(per_species, {"Na": 2, "Cl": -1}, VOLUME, TEMPERATURE)
    assert doubly.sigma > ne.sigma  # z² weighting
    with pytest.raises(InputError, match="'K'"):
        nernst_einstein(per_species, {"K": 1}, VOLUME, TEMPERATURE)


def test_experimental_molar_conductivity_lookup():
    assert nacl_molar_conductivity(0.1).value == 106.7
    assert nacl_molar_conductivity(1.0).source.startswith("J. F. Chambers")
    values = [nacl_molar_conductivity(c).value for c in (0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)]
    assert values == sorted(values, reverse=True)  # Λ falls monotonically with concentration
    between = nacl_molar_conductivity(0.5)
    assert 85.76 < between.value < 106.7 and between.error is not None and "interpolated" in between.note
    assert "molar" in between.conditions
    with pytest.raises(ConfigError, match="available range"):
        nacl_molar_conductivity(2.0)


# -------------------------------------------------------------------------- Einstein–Helfand & GK

def test_einstein_helfand_and_green_kubo_equal_nernst_einstein_for_uncorrelated_ions(ions):
    pos, times, charges, _ = ions
    sigma_ne = SI / (VOLUME * TEMPERATURE) * 10 * (1.33e-3 + 2.03e-3)  # 7.76 S/m
    eh = einstein_helfand(pos, times, charges, VOLUME, TEMPERATURE, fit_window=(0.5, 5.0))
    assert not eh.time_dependent_charges
    assert abs(eh.sigma - sigma_ne) < 3 * eh.error
    assert eh.sigma == pytest.approx(sigma_ne, rel=0.08)

    current, mid_times = dipole_current(translational_dipole(pos, charges), times)
    gk = green_kubo(current, mid_times, VOLUME, TEMPERATURE, max_lag_time=1.0, plateau_window=(0.2, 1.0))
    assert abs(gk.sigma - sigma_ne) < 3 * gk.error
    assert gk.sigma == pytest.approx(sigma_ne, rel=0.08)
    # trapezoidal GK of the forward-difference current is the discrete twin of the EH slope
    assert gk.sigma == pytest.approx(eh.sigma, rel=0.03)
    assert gk.running_integral[0] == 0.0 and len(gk.running_integral) == len(gk.lag_times) == 11
    assert haven_ratio(sigma_ne, eh.sigma) == pytest.approx(1.0, abs=0.08)


def test_charge_current_from_velocities_matches_dipole_derivative():
    rng = np.random.default_rng(2)
    velocities = rng.normal(size=(50, 6, 3))
    charges = rng.normal(size=6)
    t = np.arange(51) * 0.01
    pos = np.concatenate([np.zeros((1, 6, 3)), np.cumsum(velocities * 0.01, axis=0)])
    j_dipole, _ = dipole_current(translational_dipole(pos, charges), t)
    np.testing.assert_allclose(charge_current(velocities, charges), j_dipole, rtol=1e-9, atol=1e-12)


def test_green_kubo_on_ornstein_uhlenbeck_current_with_known_integral():
    # three OU components, variance s², correlation time τ: ∫ <J(0)·J(t)> dt = 3 s² τ
    rng = np.random.default_rng(0)
    s, tau, dt, frames = 2.0, 0.1, 0.01, 200_000
    current = ou_process(rng, frames, 3, s, tau, dt)
    times = np.arange(frames) * dt
    exact_integral = 3 * s * s * dt / (2 * np.tanh(dt / (2 * tau)))  # trapezoid of the sampled exp
    assert exact_integral == pytest.approx(3 * s * s * tau, rel=1e-3)
    expected = exact_integral * SI / (3 * VOLUME * 300.0)
    gk = green_kubo(current, times, VOLUME, 300.0, max_lag_time=1.0, plateau_window=(0.6, 1.0),
                    n_blocks=10)
    assert abs(gk.sigma - expected) < 3 * gk.error
    assert gk.sigma == pytest.approx(expected, rel=0.05)
    assert gk.acf[0] == pytest.approx(3 * s * s, rel=0.02)
    assert gk.acf[10] / gk.acf[0] == pytest.approx(np.exp(-1.0), abs=0.02)  # decays as exp(-t/τ)
    default = green_kubo(current, times, VOLUME, 300.0)  # 10 % of a 400 ps block, plateau 20-40 ps
    assert default.lag_times[-1] == pytest.approx(40.0, abs=0.01)
    assert default.plateau_window == pytest.approx((20.0, 40.0), abs=0.01)


def test_current_autocorrelation_equals_direct_sum():
    rng = np.random.default_rng(4)
    j = rng.normal(size=(40, 3))
    direct = [np.mean(np.sum(j[k:] * j[:40 - k], axis=1)) for k in range(10)]
    np.testing.assert_allclose(current_autocorrelation(j, 9), direct, rtol=1e-10)


# ------------------------------------------------------------------ time-dependent charges (case b)

def hopping_system(rng, n_carriers=10, frames=2000, spacing=0.3, hop_probability=0.5):
    """Static lattice sites; a +1 charge hops between neighbours on each chain, −1 fixed counter-ion.

    No atom moves, so all charge transport is carried by q̇ r (the polarization current).
    """
    p = hop_probability
    hops = rng.choice([-1, 0, 1], p=[p / 2, 1 - p, p / 2], size=(frames, n_carriers))
    hops[0] = 0
    site = np.cumsum(hops, axis=0)
    sites, charges = [], []
    for k in range(n_carriers):
        lo, hi = site[:, k].min(), site[:, k].max()
        chain = np.zeros((hi - lo + 2, 3))
        chain[:-1, 0] = np.arange(lo, hi + 1) * spacing
        chain[:, 1] = 0.5 * k
        chain[-1, 2] = 1.0  # counter-ion
        q = np.zeros((frames, hi - lo + 2))
        q[np.arange(frames), site[:, k] - lo] = 1.0
        q[:, -1] = -1.0
        sites.append(chain)
        charges.append(q)
    lattice = np.concatenate(sites)
    positions = np.broadcast_to(lattice, (frames,) + lattice.shape)
    # the same charge transport carried by moving point charges with fixed charges
    moving = np.zeros((frames, 2 * n_carriers, 3))
    moving[:, :n_carriers, 0] = site * spacing
    moving[:, :, 1] = np.tile(0.5 * np.arange(n_carriers), 2)
    moving[:, n_carriers:, 2] = 1.0
    return positions, np.concatenate(charges, axis=1), moving, np.r_[np.ones(n_carriers),
                                                                      -np.ones(n_carriers)]


def test_einstein_helfand_with_hopping_charges_counts_the_polarization_current():
    rng = np.random.default_rng(21)
    dt, spacing, p, n = 0.1, 0.3, 0.5, 10
    positions, charges, moving, fixed_charges = hopping_system(rng, n, 2000, spacing, p)
    times = np.arange(2000) * dt
    window = (0.5, 5.0)
    hopping = einstein_helfand(positions, times, charges, VOLUME, 300.0, fit_window=window)
    carriers = einstein_helfand(moving, times, fixed_charges, VOLUME, 300.0, fit_window=window)
    frozen = einstein_helfand(positions, times, charges[0], VOLUME, 300.0, fit_window=window)
    assert hopping.time_dependent_charges and not frozen.time_dependent_charges
    # per-frame charges give exactly the conductivity of the equivalent moving charges ...
    np.testing.assert_allclose(hopping.msd_dipole, carriers.msd_dipole, rtol=1e-9, atol=1e-9)
    assert hopping.sigma == pytest.approx(carriers.sigma, rel=1e-9)
    # ... while frame-0 charges on the static lattice see no transport at all
    assert frozen.sigma == pytest.approx(0.0, abs=1e-9)
    # 1-D hops of length a with probability p per step: <|ΔM|²> = n a² p t / Δt
    expected = n * spacing ** 2 * p / dt / 6 * SI / (VOLUME * 300.0)
    assert abs(hopping.sigma - expected) < 3 * hopping.error


def test_intramolecular_charge_flow_adds_an_offset_not_a_slope(ions):
    pos_ions, times, q_ions, _ = ions
    rng = np.random.default_rng(8)
    frames, n_mol, bond, s = len(times), 100, 0.1, 0.5
    # neutral diatomics that diffuse as rigid units; charge ±δ(t) flows between their two atoms
    centres = brownian(rng, frames, np.full(n_mol, 2.3e-3), 0.1)
    axes = rng.normal(size=(n_mol, 3))
    axes *= bond / np.linalg.norm(axes, axis=1, keepdims=True)
    delta = ou_process(rng, frames, n_mol, s, 0.5, 0.1)
    pos = np.concatenate([pos_ions, centres + axes / 2, centres - axes / 2], axis=1)
    charges = np.concatenate([np.broadcast_to(q_ions, (frames, len(q_ions))), delta, -delta], axis=1)
    window = (5.0, 40.0)
    molecules = einstein_helfand(pos[:, len(q_ions):], times, charges[:, len(q_ions):], VOLUME,
                                 TEMPERATURE, fit_window=window)
    full = einstein_helfand(pos, times, charges, VOLUME, TEMPERATURE, fit_window=window)
    ions_only = einstein_helfand(pos_ions, times, q_ions, VOLUME, TEMPERATURE, fit_window=window)
    assert full.time_dependent_charges and molecules.time_dependent_charges
    # bounded molecular dipoles: <|Δμ|²> -> 2 Σ <|μ|²> = 2 n s² d² at lags >> 0.5 ps, no slope
    plateau = 2 * n_mol * s * s * bond * bond
    lag = slice(int(5.0 / 0.1), int(40.0 / 0.1))
    np.testing.assert_allclose(molecules.msd_dipole[lag], plateau, rtol=0.08)
    assert molecules.msd_dipole[1] < 0.25 * plateau  # correlated at short lags
    assert abs(molecules.sigma) < 0.01 * ions_only.sigma
    # adding them to the ions leaves the conductivity unchanged within noise
    assert abs(full.sigma - ions_only.sigma) < 3 * max(full.error, ions_only.error)
    assert abs(full.sigma - ions_only.sigma) < 0.05 * ions_only.sigma


# -------------------------------------------------------------------------------------- bad input

def test_bad_inputs_give_clear_errors(ions):
    pos, times, charges, _ = ions
    pos, times = pos[:100], times[:100]
    with pytest.raises(InputError, match="charges.*expected \\(20,\\) or \\(100, 20\\), found \\(19,\\)"):
        einstein_helfand(pos, times, charges[:19], VOLUME, TEMPERATURE)
    drifting = np.tile(charges, (100, 1))
    drifting[60:, 0] += 0.1
    with pytest.raises(InputError, match="frame 60.*total charge changes"):
        einstein_helfand(pos, times, drifting, VOLUME, TEMPERATURE)
    with pytest.raises(ConfigError, match="volume"):
        einstein_helfand(pos, times, charges, -1.0, TEMPERATURE)
    with pytest.raises(InputError, match="dipole.*expected \\(T, 3\\)"):
        einstein_helfand_from_dipole(np.zeros((100, 3, 1)), times, VOLUME, TEMPERATURE)
    with pytest.raises(ConfigError, match="max_lag_time"):
        green_kubo(np.zeros((100, 3)), times, VOLUME, TEMPERATURE, max_lag_time=50.0)
    with pytest.raises(ConfigError, match="plateau_window"):
        green_kubo(np.zeros((100, 3)), times, VOLUME, TEMPERATURE, max_lag_time=1.0,
                   plateau_window=(0.5, 2.0))
    with pytest.raises(InputError, match="velocities"):
        charge_current(np.zeros((10, 3)), charges)
    with pytest.raises(ConfigError, match="concentration"):
        molar_conductivity(1.0, 0.0)
