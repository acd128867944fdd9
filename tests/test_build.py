"""Ion-box building and sampling (polarff.build)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openmm")

from polarff.build import (MOLAR_MASS, build_ion_box, molality_to_pairs, pairs_to_molality,  # noqa: E402
                           sample_ion_frames, write_topology_pdb)
from polarff.errors import ConfigError  # noqa: E402

AVOGADRO = 6.02214076e23


def _min_image_distances(positions_a: np.ndarray, box_a: float) -> np.ndarray:
    d = positions_a[:, None, :] - positions_a[None, :, :]
    d -= box_a * np.round(d / box_a)
    r = np.sqrt((d ** 2).sum(-1))
    np.fill_diagonal(r, np.inf)
    return r


def _molecule_index(topology) -> np.ndarray:
    return np.array([atom.residue.index for atom in topology.atoms()])


@pytest.mark.parametrize("ion,cation", [("NaCl", "Na"), ("KCl", "K"), ("LiCl", "Li")])
def test_box_composition_and_residue_names(ion, cation):
    topology, positions, box = build_ion_box(ion, 1, 8, seed=0)
    symbols = [a.element.symbol for a in topology.atoms()]
    assert symbols.count("O") == 8 and symbols.count("H") == 16
    assert symbols.count(cation) == 1 and symbols.count("Cl") == 1
    assert positions.shape == (26, 3)
    residues = [r.name for r in topology.residues()]
    assert residues.count("HOH") == 8
    assert {"NA": "Na", "K": "K", "LI": "Li"}[residues[8]] == cation and residues[9] == "CL"
    assert [a.name for a in list(topology.residues())[0].atoms()] == ["O", "H1", "H2"]
    assert topology.getNumBonds() == 16
    np.testing.assert_allclose(topology.getPeriodicBoxVectors()[0][0].value_in_unit_system(
        __import__("openmm").unit.md_unit_system), box)


@pytest.mark.parametrize("n_pairs,n_waters", [(0, 64), (1, 8), (3, 64)])
def test_box_has_no_overlaps_and_rigid_tip3p_waters(n_pairs, n_waters):
    topology, positions, box = build_ion_box("NaCl", n_pairs, n_waters, seed=11)
    assert np.all(positions >= 0) and np.all(positions < box)
    pos_a, box_a = positions * 10, box * 10
    r = _min_image_distances(pos_a, box_a)
    mol = _molecule_index(topology)
    heavy = np.array([a.element.symbol != "H" for a in topology.atoms()])
    assert r[np.ix_(heavy, heavy)].min() > 1.8  # lattice spacing minus jitter
    intermolecular = r[mol[:, None] != mol[None, :]]
    assert intermolecular.min() > 1.0
    for k in range(n_waters):  # TIP3P geometry, made whole by the minimum image
        o, h1, h2 = pos_a[3 * k: 3 * k + 3]
        v1 = h1 - o - box_a * np.round((h1 - o) / box_a)
        v2 = h2 - o - box_a * np.round((h2 - o) / box_a)
        assert np.linalg.norm(v1) == pytest.approx(0.9572, abs=1e-6)
        assert np.linalg.norm(v2) == pytest.approx(0.9572, abs=1e-6)
        cos = v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2)
        assert np.degrees(np.arccos(cos)) == pytest.approx(104.52, abs=1e-6)


def _density_g_cm3(topology, box_nm: float) -> float:
    mass = sum(MOLAR_MASS[a.element.symbol] for a in topology.atoms())
    return mass / AVOGADRO / (box_nm * 1e-7) ** 3


def test_box_density_pure_water_and_brine():
    top, _, box = build_ion_box("NaCl", 0, 64, seed=0)
    assert _density_g_cm3(top, box) == pytest.approx(0.997, abs=0.002)
    # 2.60 mol/kg NaCl(aq) at 298 K is ~1.10 g/cm^3 (CRC Handbook concentrative properties)
    top, _, box = build_ion_box("NaCl", 3, 64, seed=0)
    assert 1.07 < _density_g_cm3(top, box) < 1.12
    # an explicit density is honoured
    top, _, box = build_ion_box("KCl", 2, 30, seed=0, density_g_cm3=1.05)
    assert _density_g_cm3(top, box) == pytest.approx(1.05, rel=1e-9)


def test_build_is_seeded():
    _, a, _ = build_ion_box("NaCl", 2, 20, seed=5)
    _, b, _ = build_ion_box("NaCl", 2, 20, seed=5)
    _, c, _ = build_ion_box("NaCl", 2, 20, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def test_molality_conversions():
    assert [molality_to_pairs(m, 64) for m in (0.87, 1.73, 2.60)] == [1, 2, 3]
    assert [round(pairs_to_molality(n, 64), 2) for n in (1, 2, 3)] == [0.87, 1.73, 2.60]
    assert molality_to_pairs(0.0, 64) == 0
    with pytest.raises(ConfigError, match="molality"):
        molality_to_pairs(-1.0, 64)


@pytest.mark.parametrize("kwargs,match", [
    (dict(ion="NaBr", n_pairs=1, n_waters=8), "unknown ion pair"),
    (dict(ion="NaCl", n_pairs=-1, n_waters=8), "n_pairs"),
    (dict(ion="NaCl", n_pairs=1, n_waters=0), "n_waters"),
    (dict(ion="NaCl", n_pairs=1.5, n_waters=8), "n_pairs"),
])
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_ion_box(seed=0, **kwargs)


def test_write_topology_pdb_round_trip(tmp_path):
    from openmm import unit
    from openmm.app import PDBFile

    topology, positions, box = build_ion_box("KCl", 1, 10, seed=3)
    path = tmp_path / "box.pdb"
    write_topology_pdb(topology, positions, box, path)
    pdb = PDBFile(str(path))
    assert pdb.topology.getNumAtoms() == topology.getNumAtoms()
    assert [r.name for r in pdb.topology.residues()] == [r.name for r in topology.residues()]
    np.testing.assert_allclose(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), positions, atol=6e-4)
    np.testing.assert_allclose(pdb.topology.getUnitCellDimensions().value_in_unit(unit.nanometer), [box] * 3,
                               atol=1e-3)


def _sample(seed: int):
    return sample_ion_frames("NaCl", 1, 16, 3, seed, equilibration_ps=0.2, interval_ps=0.1, progress=False)


def test_sample_ion_frames_contract_and_rigid_water():
    frames = _sample(4)
    assert len(frames) == 3
    for k, frame in enumerate(frames):
        assert frame.n_atoms == 50 and frame.symbols[:3] == ["O", "H", "H"]
        assert frame.symbols[-2:] == ["Na", "Cl"]
        assert frame.periodic and frame.total_charge == 0.0
        box_a = frame.cell[0, 0]
        np.testing.assert_allclose(frame.cell, np.eye(3) * box_a)
        assert 7.0 < box_a < 9.0  # Å, not nm
        assert frame.info["ion"] == "NaCl" and frame.info["n_pairs"] == 1 and frame.info["n_waters"] == 16
        assert frame.info["seed"] == 4
        assert frame.info["molality"] == pytest.approx(1 / (16 * 0.01801528), rel=1e-3)
        assert frame.info["time_ps"] == pytest.approx(0.2 + 0.1 * (k + 1))
        # constraints hold during dynamics: every water keeps the TIP3P O-H length
        pos = frame.positions
        for m in range(16):
            oh = pos[3 * m + 1: 3 * m + 3] - pos[3 * m]
            oh -= box_a * np.round(oh / box_a)
            np.testing.assert_allclose(np.linalg.norm(oh, axis=1), 0.9572, atol=2e-4)
        r = _min_image_distances(pos, box_a)
        assert r[np.ix_([48], list(range(0, 48, 3)))].min() > 1.9  # Na-O contact >= ~2.1 Å after dynamics
    assert np.abs(frames[0].positions - frames[1].positions).max() > 0.05  # frames move


def test_sample_ion_frames_is_reproducible_for_a_seed():
    a, b, c = _sample(9), _sample(9), _sample(10)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.positions, fb.positions)
    assert np.abs(a[-1].positions - c[-1].positions).max() > 0.1


def test_sampling_a_64_water_box_is_bit_reproducible():
    """openmm.LocalEnergyMinimizer and the CPU platform without DeterministicForces both broke this."""
    run = [sample_ion_frames("NaCl", 3, 64, 2, 7, equilibration_ps=1.0, interval_ps=0.5, progress=False)
           for _ in range(2)]
    for fa, fb in zip(*run):
        np.testing.assert_array_equal(fa.positions, fb.positions)


def test_minimise_lowers_the_energy_deterministically():
    from openmm import unit

    from polarff.build import _make_simulation, minimise

    topology, positions, box = build_ion_box("NaCl", 2, 32, seed=2)
    results = []
    for _ in range(2):
        context, integrator = _make_simulation(topology, box, 2, 1, 300.0, 2.0)
        context.setPositions(positions * unit.nanometer)
        before, after = minimise(context, integrator, 200)
        results.append((before, after, context.getState(getPositions=True).getPositions(asNumpy=True)))
    (before, after, pos_a), (_, _, pos_b) = results
    assert after < before - 1000.0  # kJ/mol: lattice start relaxes by > 15 kJ/mol per molecule
    assert after / 32 < -30.0  # liquid-like cohesive energy per water (TIP3P liquid: about -41 kJ/mol)
    np.testing.assert_array_equal(pos_a, pos_b)
