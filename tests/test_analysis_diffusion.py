"""Tests of polarff.analysis.diffusion and polarff.analysis.stats against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from polarff.analysis.diffusion import (diffusion_by_species, diffusion_coefficient,
                                        inverse_box_extrapolation, mean_squared_displacement, msd_per_atom,
                                        viscosity_from_box_dependence,
                                        yeh_hummer_correction, yeh_hummer_corrected)
from polarff.analysis.stats import block_average, block_estimate, fit_line
from polarff.errors import ConfigError, InputError


def brownian(rng: np.random.Generator, n_frames: int, diffusion: np.ndarray, dt: float) -> np.ndarray:
    """Unwrapped random walks (nm) with per-atom diffusion coefficients ``diffusion`` (nm²/ps)."""
    diffusion = np.asarray(diffusion, dtype=float)
    steps = rng.normal(size=(n_frames, len(diffusion), 3)) * np.sqrt(2 * diffusion * dt)[None, :, None]
    steps[0] = rng.uniform(0.0, 3.0, size=(len(diffusion), 3))
    return np.cumsum(steps, axis=0)


# ----------------------------------------------------------------------------------------------- MSD

def test_fft_msd_equals_direct_average_over_time_origins():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(60, 5, 3)), axis=0) + 1e3  # large offset: cancellation check
    direct = np.array([[np.mean(np.sum((x[m:, i] - x[:60 - m, i]) ** 2, axis=1)) for i in range(5)]
                       for m in range(60)])
    np.testing.assert_allclose(msd_per_atom(x), direct, rtol=1e-9, atol=1e-8)


def test_ballistic_motion_gives_quadratic_msd():
    velocities = np.array([[0.1, 0.0, 0.0], [0.0, -0.2, 0.3]])  # nm/ps
    t = np.arange(40) * 0.5
    pos = t[:, None, None] * velocities[None] + 1.0
    expected = np.mean(np.sum(velocities ** 2, axis=1)) * t ** 2
    np.testing.assert_allclose(mean_squared_displacement(pos), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(mean_squared_displacement(pos, atoms=[1]),
                               np.sum(velocities[1] ** 2) * t ** 2, rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------------------------------------- D

def test_brownian_diffusion_coefficient_recovered_within_error_bar():
    rng = np.random.default_rng(42)
    d_true = 2.3  # 1e-9 m²/s = 2.3e-3 nm²/ps
    dt = 0.1
    pos = brownian(rng, 5000, np.full(200, d_true * 1e-3), dt)
    res = diffusion_coefficient(pos, np.arange(5000) * dt, n_blocks=5)
    assert res.fit_window == pytest.approx((10.0, 49.9))  # 10 %-50 % of the 99.9 ps block
    assert abs(res.diffusion - d_true) < 3 * res.error
    assert abs(res.diffusion - d_true) < 0.05 * d_true
    assert 0.002 * d_true < res.error < 0.1 * d_true
    assert res.n_atoms == 200 and len(res.block_values) == 5
    # the MSD passes through 6 D t (intercept ~ 0 for Brownian motion)
    assert abs(res.intercept) < 0.05 * res.slope * res.fit_window[1]


def test_per_species_coefficients_and_centre_of_mass_drift_removal():
    rng = np.random.default_rng(7)
    dt, n_frames = 0.2, 3000
    d_per_atom = np.r_[np.full(60, 1.33e-3), np.full(60, 2.03e-3)]
    species = ["Na"] * 60 + ["Cl"] * 60
    pos = brownian(rng, n_frames, d_per_atom, dt)
    times = np.arange(n_frames) * dt
    drift = np.array([0.02, -0.01, 0.015])  # nm/ps, same for every atom (a flying ice cube)
    drifting = pos + times[:, None, None] * drift
    masses = np.r_[np.full(60, 22.99), np.full(60, 35.45)]

    plain = diffusion_by_species(pos, times, species)
    assert list(plain) == ["Na", "Cl"]
    for name, d_true in (("Na", 1.33), ("Cl", 2.03)):
        assert abs(plain[name].diffusion - d_true) < max(3 * plain[name].error, 0.08 * d_true)

    contaminated = diffusion_coefficient(drifting, times, atoms=np.array(species) == "Na")
    assert contaminated.diffusion > 1.5 * 1.33  # drift adds a ballistic v² t² term
    cleaned = diffusion_by_species(drifting, times, species, masses=masses)
    for name, d_true in (("Na", 1.33), ("Cl", 2.03)):
        assert abs(cleaned[name].diffusion - d_true) < max(3 * cleaned[name].error, 0.08 * d_true)


def test_yeh_hummer_correction_value_and_scaling():
    # k_B T ξ / (6 π η L) for 298.15 K, L = 3 nm, η = 0.89 mPa s, evaluated by hand: 0.23207e-9 m²/s
    assert yeh_hummer_correction(298.15, 3.0) == pytest.approx(0.232065, rel=1e-5)
    assert yeh_hummer_correction(298.15, 6.0) == pytest.approx(0.232065 / 2, rel=1e-5)
    assert yeh_hummer_correction(596.30, 3.0, viscosity=1.78) == pytest.approx(0.232065, rel=1e-5)
    # TIP3P-like model viscosity (0.32 mPa s) makes the correction 0.89/0.32 times larger
    assert yeh_hummer_correction(298.15, 3.0, viscosity=0.32) == pytest.approx(0.232065 * 0.89 / 0.32,
                                                                               rel=1e-5)
    assert yeh_hummer_corrected(2.0, 298.15, 3.0) == pytest.approx(2.232065, rel=1e-6)


def test_inverse_box_extrapolation_recovers_a_yeh_hummer_law_and_propagates_errors():
    # periodic-box D of a Yeh–Hummer law at two edges extrapolates to the infinite-box value exactly
    d_inf = 2.3
    pbc = [(d_inf - yeh_hummer_correction(298.15, length), 0.05, length) for length in (1.25, 1.98)]
    value, error, gain, gain_error = inverse_box_extrapolation(*pbc)
    assert value == pytest.approx(d_inf, rel=1e-12) and gain == pytest.approx(d_inf / pbc[0][0], rel=1e-12)
    assert error == pytest.approx(np.hypot(1.98 * 0.05, 1.25 * 0.05) / 0.73)
    # the two boxes of docs/replica-statistics.md: Λ∞ = 2 Λ(2.5 nm) − Λ(1.25 nm), Λ∞ / Λ(1.25 nm) = 2 q − 1
    value, error, gain, gain_error = inverse_box_extrapolation((105.4, 6.7, 1.25), (131.4, 6.5, 2.5))
    assert value == pytest.approx(157.4) and error == pytest.approx(np.hypot(2 * 6.5, 6.7))
    assert gain == pytest.approx(157.4 / 105.4)
    assert gain_error == pytest.approx(2 * (131.4 / 105.4) * np.hypot(6.7 / 105.4, 6.5 / 131.4))
    # a quantity with no box effect extrapolates to itself
    assert inverse_box_extrapolation((2.0, 0.1, 1.0), (2.0, 0.1, 3.0))[::2] == pytest.approx((2.0, 1.0))
    with pytest.raises(ConfigError, match="two different box edges"):
        inverse_box_extrapolation((2.0, 0.1, 1.25), (2.1, 0.1, 1.25))
    with pytest.raises(ConfigError, match="box_length"):
        inverse_box_extrapolation((2.0, 0.1, -1.0), (2.1, 0.1, 1.25))


def test_viscosity_from_box_dependence_inverts_the_yeh_hummer_law():
    # D_pbc of a model with η = 0.5 mPa·s in two boxes gives back η, in either order of the boxes
    d_inf, eta = 2.3, 0.5
    boxes = [(d_inf - yeh_hummer_correction(298.15, length, viscosity=eta), 0.03, length) for length in (1.25, 1.98)]
    for pair in (boxes, boxes[::-1]):
        value, error = viscosity_from_box_dependence(*pair, temperature=298.15)
        assert value == pytest.approx(eta, rel=1e-12)
        slope = boxes[1][0] - boxes[0][0]
        assert error == pytest.approx(eta * np.hypot(0.03, 0.03) / slope)
    with pytest.raises(ConfigError, match="larger D in the larger box"):
        viscosity_from_box_dependence((2.0, 0.1, 1.25), (1.9, 0.1, 2.5), temperature=298.15)
    with pytest.raises(ConfigError, match="two different box edges"):
        viscosity_from_box_dependence((2.0, 0.1, 1.25), (2.1, 0.1, 1.25), temperature=298.15)


def test_corrected_value_attached_to_result():
    rng = np.random.default_rng(3)
    pos = brownian(rng, 400, np.full(20, 2e-3), 0.1)
    res = diffusion_coefficient(pos, np.arange(400) * 0.1, temperature=300.0, box_length=2.5,
                                viscosity=0.5)
    assert res.correction == pytest.approx(yeh_hummer_correction(300.0, 2.5, 0.5))
    assert res.diffusion_corrected == pytest.approx(res.diffusion + res.correction)


# ------------------------------------------------------------------------------------------- stats

def test_block_average_error_of_correlated_series_matches_theory():
    # AR(1) with φ = 0.9: standard error of the mean = s sqrt((1 + φ)/(1 − φ) / T)
    rng = np.random.default_rng(11)
    phi, n = 0.9, 200_000
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0]
    for i in range(1, n):  # noqa: B007 - simple recursion, 0.1 s
        x[i] = phi * x[i - 1] + noise[i]
    est = block_average(x, 20)
    sem_theory = np.sqrt(1 / (1 - phi ** 2)) * np.sqrt((1 + phi) / (1 - phi) / n)
    assert est.error == pytest.approx(sem_theory, rel=0.4)
    naive = x.std() / np.sqrt(n)
    assert est.error > 3 * naive  # correlated samples: the naive error is far too small
    assert abs(est.value) < 4 * sem_theory


def test_block_estimate_and_fit_line():
    x = np.linspace(0, 10, 50)
    slope, intercept = fit_line(x, 3.0 * x - 2.0)
    assert (slope, intercept) == pytest.approx((3.0, -2.0))
    data = np.arange(100.0)
    est = block_estimate(lambda a: a.mean(), data, n_blocks=4)
    assert est.value == pytest.approx(49.5)
    np.testing.assert_allclose(est.block_values, [12.0, 37.0, 62.0, 87.0])
    assert est.error == pytest.approx(np.std(est.block_values, ddof=1) / 2)


# ------------------------------------------------------------------------------------------ errors

def test_bad_inputs_give_clear_errors():
    pos = np.zeros((10, 4, 3))
    times = np.arange(10) * 0.1
    with pytest.raises(InputError, match="positions.*expected \\(T, N, 3\\), found \\(10, 4\\)"):
        diffusion_coefficient(pos[:, :, 0], times)
    with pytest.raises(InputError, match="times.*expected shape \\(10,\\)"):
        diffusion_coefficient(pos, times[:9], n_blocks=2)
    bad_times = times.copy()
    bad_times[5] += 0.03
    with pytest.raises(InputError, match="not uniformly spaced"):
        diffusion_coefficient(pos, bad_times, n_blocks=2)
    with pytest.raises(ConfigError, match="beyond the longest lag"):
        diffusion_coefficient(pos, times, n_blocks=2, fit_window=(0.1, 0.8))
    with pytest.raises(ConfigError, match="n_blocks"):
        diffusion_coefficient(pos, times, n_blocks=1)
    with pytest.raises(InputError, match="species"):
        diffusion_by_species(pos, times, ["O", "H"], n_blocks=2)
    nan_pos = pos.copy()
    nan_pos[3, 1, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        mean_squared_displacement(nan_pos)
    with pytest.raises(InputError, match="atom index out of range"):
        mean_squared_displacement(pos, atoms=[7])
    with pytest.raises(ConfigError, match="box_length"):
        yeh_hummer_correction(300.0, -1.0)
