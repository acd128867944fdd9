"""TorchForce System XML loads back (rebuilt from its embedded module) and polarff info describes it."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")

from polarff.build import build_ion_box  # noqa: E402
from polarff.openmm.loading import load_system_xml  # noqa: E402
from polarff.openmm.system import create_system, find_polarff_force  # noqa: E402


def test_torchforce_xml_round_trip_and_info(trained_model, tmp_path, capsys):
    from polarff.cli import main

    topology, positions, _ = build_ion_box("NaCl", 1, 32, seed=2)
    system = create_system(trained_model[0], topology, nonbonded_cutoff_nm=0.45)
    path = tmp_path / "system.xml"
    path.write_text(openmm.XmlSerializer.serialize(system))
    clone = load_system_xml(str(path))
    assert find_polarff_force(clone) is not None
    energies = []
    for s in (system, clone):
        ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
        ctx.setPositions(positions)
        energies.append(ctx.getState(getEnergy=True).getPotentialEnergy()._value)
    assert energies[0] == pytest.approx(energies[1], rel=1e-12)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "TorchForce 'polarff'" in out and f"particles:   {topology.getNumAtoms()}" in out


def test_d4_ions_method_gives_hydrated_ion_values():
    from polarff.label import HYDRATED_ION_ALPHA_A3, d4_with_hydrated_ions
    from conftest import water_box

    frame = water_box(n_side=2, seed=4, ions=1)
    alpha = d4_with_hydrated_ions(frame)
    symbols = np.array(frame.symbols)
    assert alpha[symbols == "Na"][0] == HYDRATED_ION_ALPHA_A3["Na"]
    assert alpha[symbols == "Cl"][0] == HYDRATED_ION_ALPHA_A3["Cl"]
    assert np.all((alpha[symbols == "O"] > 0.5) & (alpha[symbols == "O"] < 2.0))  # D4 kept for water
