"""ESP charges (pyscf), GFN2 → ESP charge factors and their application to labels."""

from __future__ import annotations

import numpy as np
import pytest

from polarff.clusters import water_monomer
from polarff.errors import ConfigError, InputError
from polarff.esp import (VDW_RADII_A, ChargeCalibration, ChargeEntry, apply_charge_scales, esp_grid,
                         fit_charge_scales, fit_esp_charges, molecular_dipole_debye)

from conftest import water_box


def test_esp_grid_lies_on_the_shells_outside_every_atom():
    w = water_monomer()
    points = esp_grid(w.symbols, w.positions)
    radii = np.array([VDW_RADII_A[s] for s in w.symbols])
    scaled = np.linalg.norm(points[:, None, :] - w.positions[None], axis=-1) / radii[None]
    assert scaled.min() >= 1.4 - 1e-9          # outside the innermost shell of every atom
    assert scaled.min(axis=1).max() <= 2.0 + 1e-9  # on some atom's shell, never beyond the outermost
    assert 200 < len(points) < 1000
    with pytest.raises(InputError, match="van der Waals"):
        esp_grid(["Xe"], np.zeros((1, 3)))


def test_esp_fit_recovers_point_charges_from_their_own_potential():
    rng = np.random.default_rng(3)
    w = water_monomer()
    truth = np.array([-0.8, 0.45, 0.35])
    points = esp_grid(w.symbols, w.positions)
    potential = (truth[None] / np.linalg.norm(points[:, None] - w.positions[None], axis=-1)).sum(axis=1)
    np.testing.assert_allclose(fit_esp_charges(w.positions, points, potential, 0.0), truth, atol=1e-10)
    # the total-charge constraint is exact even when the data disagree with it
    q = fit_esp_charges(w.positions, points, potential + rng.normal(0, 0.01, len(points)), 0.3)
    assert q.sum() == pytest.approx(0.3, abs=1e-12)


def test_dft_esp_charges_of_water_are_symmetric_neutral_and_larger_than_gfn2():
    pytest.importorskip("pyscf")
    from polarff.esp import dft_esp_charges
    from polarff.label import gfn2_charges

    w = water_monomer()
    esp = dft_esp_charges(w)
    assert esp.charges.sum() == pytest.approx(0.0, abs=1e-10)
    assert esp.charges[1] == pytest.approx(esp.charges[2], abs=2e-3)  # the two H are equivalent
    assert -0.75 < esp.charges[0] < -0.65  # B3LYP/def2-SVPD: -0.697 (measured)
    assert esp.relative_rms < 0.25
    assert 1.8 < esp.dipole_debye < 2.0   # DFT 1.89 D; experiment 1.855 D
    # three point charges carry the dipole of the density within 15 %
    assert molecular_dipole_debye(w.symbols, w.positions, esp.charges) == pytest.approx(esp.dipole_debye, rel=0.15)
    gfn2 = gfn2_charges(w)
    assert gfn2.sum() == pytest.approx(0.0, abs=1e-12)
    assert esp.charges[0] / gfn2[0] > 1.15  # population charges under-state the potential


def _entry(name, symbols, gfn2, esp) -> ChargeEntry:
    return ChargeEntry(name, list(symbols), np.zeros((len(symbols), 3)).tolist(), float(np.sum(esp)),
                       list(gfn2), list(esp), 0.1, 0.0, 0.0)


def test_charge_scales_water_from_the_monomer_ions_from_their_clusters():
    entries = [
        _entry("H2O", "OHH", [-0.5, 0.25, 0.25], [-0.6, 0.3, 0.3]),
        # the dimer's charges are polarized by its partner: must not enter the water factor
        _entry("(H2O)2", "OHHOHH", [-0.5, 0.25, 0.25] * 2, [-0.9, 0.45, 0.45] * 2),
        _entry("Na+", ["Na"], [1.0], [1.0]),  # bare ion: no information
        _entry("Na+(H2O)1", ["Na", "O", "H", "H"], [0.8, -0.5, 0.35, 0.35], [0.88, -0.8, 0.46, 0.46]),
        _entry("Cl-(H2O)1", ["Cl", "O", "H", "H"], [-0.9, -0.6, 0.25, 0.25], [-0.81, -0.8, 0.3, 0.31]),
    ]
    scales = fit_charge_scales(entries)
    assert scales["O"] == scales["H"] == pytest.approx(1.2)
    assert scales["Na"] == pytest.approx(1.1)
    assert scales["Cl"] == pytest.approx(0.9)
    with pytest.raises(ConfigError, match="Na"):
        fit_charge_scales([entries[0], entries[2]])
    with pytest.raises(ConfigError, match="water_target"):
        fit_charge_scales(entries, "quadrupole")


def test_dipole_target_makes_the_scaled_water_carry_the_dft_dipole():
    w = water_monomer()
    gfn2 = np.array([-0.56, 0.28, 0.28])
    entry = ChargeEntry("H2O", list(w.symbols), w.positions.tolist(), 0.0, gfn2.tolist(), [-0.7, 0.35, 0.35],
                        0.17, 1.89, 0.0)
    ion = _entry("Na+(H2O)1", ["Na", "O", "H", "H"], [0.8, -0.5, 0.35, 0.35], [0.88, -0.8, 0.46, 0.46])
    scales = fit_charge_scales([entry, ion], "dipole")
    assert molecular_dipole_debye(w.symbols, w.positions, gfn2 * scales["O"]) == pytest.approx(1.89, rel=1e-12)
    assert scales["H"] == scales["O"] and scales["Na"] == pytest.approx(1.1)


def test_fixed_water_factor_keeps_the_fitted_ion_factors_and_is_recorded(tmp_path):
    entries = [_entry("H2O", "OHH", [-0.5, 0.25, 0.25], [-0.6, 0.3, 0.3]),
               _entry("Na+(H2O)1", ["Na", "O", "H", "H"], [0.8, -0.5, 0.35, 0.35], [0.88, -0.8, 0.46, 0.46])]
    scales = fit_charge_scales(entries, "fixed", 1.11)
    assert scales["O"] == scales["H"] == pytest.approx(1.11, rel=1e-12) and scales["Na"] == pytest.approx(1.1)
    for target, factor in [("fixed", None), ("esp", 1.11), ("fixed", 3.0)]:
        with pytest.raises(ConfigError, match="water"):
            fit_charge_scales(entries, target, factor)
    calib = ChargeCalibration("test", entries, scales, "fixed", 1.11)
    calib.save(tmp_path / "c.json")
    back = ChargeCalibration.load(tmp_path / "c.json")
    assert back.water_factor == 1.11 and back.source == "test; water: fixed factor 1.11"


def test_applied_scales_keep_the_total_charge_exact_and_travel_with_the_file(tmp_path):
    from polarff.io import read_frames, write_frames

    frame = water_box(n_side=2, seed=1, ions=1)
    rng = np.random.default_rng(0)
    base = {"H": 0.29, "O": -0.58, "Na": 0.6, "Cl": -0.9}
    q = np.array([base[s] for s in frame.symbols]) + rng.normal(0, 0.01, frame.n_atoms)
    frame.labels["charges"] = q - q.mean()
    scales = {"H": 1.236, "O": 1.236, "Na": 1.13, "Cl": 0.94}
    scaled = apply_charge_scales([frame], scales, source="test method")[0]
    assert scaled.labels["charges"].sum() == pytest.approx(0.0, abs=1e-12)
    expected = frame.labels["charges"] * np.array([scales[s] for s in frame.symbols])
    shift = scaled.labels["charges"] - expected
    np.testing.assert_allclose(shift, shift[0], atol=1e-14)  # the residual is removed uniformly
    assert abs(shift[0]) < 0.01
    write_frames(tmp_path / "scaled.xyz", [scaled])
    back = read_frames(tmp_path / "scaled.xyz")[0]
    stored = dict(item.split(":") for item in back.info["charge_scale"].split())
    assert float(stored["Na"]) == pytest.approx(1.13)
    assert back.info["charge_scale_source"] == "test method"
    with pytest.raises(InputError, match="already scaled"):
        apply_charge_scales([back], scales)
    with pytest.raises(InputError, match="no charge scale"):
        apply_charge_scales([frame], {"H": 1.0, "O": 1.0})


def test_training_refuses_mixed_scaled_and_unscaled_frames_and_records_the_scaling():
    from polarff.model import label_scaling

    a = water_box(n_side=2, seed=1)
    a.labels["charges"] = np.zeros(a.n_atoms)
    b = apply_charge_scales([a], {"H": 1.2, "O": 1.2}, source="calib")[0]
    assert label_scaling([b, b]) == {"charge_scale": {"factors": "H:1.2 O:1.2", "source": "calib"}}
    assert label_scaling([a]) == {}
    with pytest.raises(ConfigError, match="mix charge_scale"):
        label_scaling([a, b])


def test_calibration_file_round_trip_and_clear_error(tmp_path):
    calib = ChargeCalibration("test", [_entry("H2O", "OHH", [-0.5, 0.25, 0.25], [-0.6, 0.3, 0.3])], {"O": 1.2, "H": 1.2})
    calib.save(tmp_path / "c.json")
    back = ChargeCalibration.load(tmp_path / "c.json")
    assert back.scales == calib.scales and back.entries == calib.entries
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="bad.json"):
        ChargeCalibration.load(tmp_path / "bad.json")


@pytest.mark.parametrize("name, target, water", [("charge_calibration_b3lyp.json", "esp", 1.236),
                                                  ("charge_calibration_b3lyp_dipole.json", "dipole", 1.191),
                                                  ("charge_calibration_b3lyp_water1.11.json", "fixed", 1.11),
                                                  ("charge_calibration_b3lyp_water1.13.json", "fixed", 1.13)])
def test_shipped_calibrations_hold_the_measured_factors(name, target, water):
    from importlib.resources import files

    calib = ChargeCalibration.load(files("polarff") / "data" / name)
    assert calib.method == "B3LYP/def2-svpd (pyscf) ESP" and calib.water_target == target
    assert set(calib.scales) == {"H", "O", "Na", "Cl"}
    assert fit_charge_scales(calib.entries, target, calib.water_factor) == pytest.approx(calib.scales)
    assert calib.scales["O"] == pytest.approx(water, abs=0.002)
    assert calib.scales["Na"] == pytest.approx(1.129, abs=0.002)
