"""Tests of polarff.analysis.spectra: dipole signals with known frequencies and amplitudes."""

from __future__ import annotations

import numpy as np
import pytest

from polarff.analysis.experiment import WATER_IR_BANDS_298K
from polarff.analysis.spectra import (CM_INV_PER_THZ, autocorrelation, find_peaks, ir_spectrum,
                                      quantum_correction_factor)
from polarff.errors import ConfigError, InputError

DT = 0.0005  # ps (0.5 fs)
FRAMES = 8000  # 4 ps
BANDS = np.array([200.0, 1645.0, 3400.0])  # cm⁻¹, water-like
AMPLITUDES = np.array([5.0, 1.0, 1.0])  # e·Å


@pytest.fixture(scope="module")
def signal():
    """Total dipole (e·Å) with one cosine per Cartesian component, random phases, small noise."""
    rng = np.random.default_rng(1)
    t = np.arange(FRAMES) * DT
    freq_thz = BANDS / CM_INV_PER_THZ
    dipole = np.stack([a * np.cos(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                       for a, f in zip(AMPLITUDES, freq_thz)], axis=1)
    return dipole + rng.normal(scale=0.05, size=dipole.shape), t


def peaks_by_band(spectrum, min_prominence=0.02):
    found = find_peaks(spectrum.wavenumbers, spectrum.intensity, wavenumber_range=(50, 5000),
                       min_prominence=min_prominence)
    return {int(BANDS[np.argmin(np.abs(BANDS - p.wavenumber))]): p for p in found}


def test_unit_conversion_thz_to_wavenumber():
    assert CM_INV_PER_THZ == pytest.approx(33.35641, rel=1e-6)  # 1 THz = 33.356 cm⁻¹


def test_peaks_appear_at_the_input_wavenumbers(signal):
    dipole, t = signal
    spectrum = ir_spectrum(dipole, t, quantum_correction=None)
    peaks = peaks_by_band(spectrum)
    assert sorted(peaks) == [200, 1645, 3400]
    for band, peak in peaks.items():
        assert peak.wavenumber == pytest.approx(band, abs=3.0)
    assert spectrum.wavenumbers[-1] == pytest.approx(1 / (2 * DT) * CM_INV_PER_THZ, rel=1e-3)  # Nyquist


def test_classical_intensities_scale_with_omega_squared(signal):
    dipole, t = signal
    peaks = peaks_by_band(ir_spectrum(dipole, t, quantum_correction="classical"))
    top = peaks[3400].intensity
    assert top == pytest.approx(1.0)  # normalised
    assert peaks[1645].intensity / top == pytest.approx((1645 / 3400) ** 2, rel=0.02)
    assert peaks[200].intensity / top == pytest.approx(25 * (200 / 3400) ** 2, rel=0.03)


def test_harmonic_quantum_correction_reweights_bands(signal):
    dipole, t = signal
    peaks = peaks_by_band(ir_spectrum(dipole, t, quantum_correction="harmonic", temperature=300.0))
    q = quantum_correction_factor(np.array([1645.0, 3400.0]), 300.0, "harmonic")
    expected = (1645 / 3400) ** 2 * q[0] / q[1]
    assert peaks[1645].intensity / peaks[3400].intensity == pytest.approx(expected, rel=0.02)
    assert expected < 0.5 * (1645 / 3400) ** 2  # the correction is large at 300 K


def test_quantum_correction_factors():
    x_3400 = 1.4387769 * 3400 / 300.0  # βħω = h c ν̃ / (k_B T)
    nu = np.array([0.0, 1.0, 3400.0])
    harmonic = quantum_correction_factor(nu, 300.0, "harmonic")
    x_1 = 1.4387769 / 300.0
    assert harmonic[0] == 1.0 and harmonic[1] == pytest.approx(1 + x_1 / 2 + x_1 ** 2 / 12, rel=1e-8)
    assert harmonic[2] == pytest.approx(x_3400 / (1 - np.exp(-x_3400)), rel=1e-6)
    assert quantum_correction_factor(nu, 300.0, "schofield")[2] == pytest.approx(np.exp(x_3400 / 2))
    np.testing.assert_array_equal(quantum_correction_factor(nu, 300.0, None), 1.0)
    with pytest.raises(ConfigError, match="harmonic"):
        quantum_correction_factor(nu, 300.0, "kubo")


def test_static_dipole_and_window_choice(signal):
    dipole, t = signal
    base = ir_spectrum(dipole, t)
    shifted = ir_spectrum(dipole + np.array([10.0, -3.0, 0.0]), t)
    np.testing.assert_allclose(shifted.intensity, base.intensity, atol=1e-9)
    blackman = peaks_by_band(ir_spectrum(dipole, t, window="blackman", quantum_correction=None))
    assert blackman[1645].wavenumber == pytest.approx(1645, abs=3.0)
    short = ir_spectrum(dipole, t, max_lag_time=1.0)
    assert short.lag_times[-1] == pytest.approx(1.0)
    assert base.acf[0] == pytest.approx(np.sum(AMPLITUDES ** 2) / 2 + 3 * 0.05 ** 2, rel=0.02)


def test_autocorrelation_of_cosine_and_direct_sum():
    t = np.arange(4000) * DT
    omega = 2 * np.pi * 50.0  # rad/ps
    acf = autocorrelation(np.cos(omega * t), max_lag=100)
    np.testing.assert_allclose(acf, 0.5 * np.cos(omega * t[:101]), atol=0.01)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    direct = [np.mean(np.sum(x[k:] * x[:30 - k], axis=1)) for k in range(30)]
    np.testing.assert_allclose(autocorrelation(x), direct, rtol=1e-10)


def test_water_reference_bands_are_in_spectral_order():
    positions = [WATER_IR_BANDS_298K[name].value for name in
                 ("intermolecular H-bond stretch", "libration", "H-O-H bend",
                  "bend + libration combination", "O-H stretch")]
    assert positions == sorted(positions)
    assert all(ref.unit == "cm^-1" and "Bertie" in ref.source for ref in WATER_IR_BANDS_298K.values())


def test_bad_inputs_give_clear_errors(signal):
    dipole, t = signal
    with pytest.raises(InputError, match="dipole.*expected \\(T, 3\\)"):
        ir_spectrum(dipole[:, :, None], t)
    with pytest.raises(InputError, match="times.*expected shape \\(8000,\\)"):
        ir_spectrum(dipole, t[:-1])
    with pytest.raises(ConfigError, match="unknown window"):
        ir_spectrum(dipole, t, window="no-such-window")
    with pytest.raises(ConfigError, match="max_lag_time"):
        ir_spectrum(dipole, t, max_lag_time=100.0)
    with pytest.raises(InputError, match="equal length"):
        find_peaks(np.arange(10.0), np.arange(9.0))
