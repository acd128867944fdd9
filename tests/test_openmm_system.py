"""The OpenMM export: parity with Keras, exact forces, TorchForce = PythonForce, XML round trip,
charge conservation along MD, energy conservation in NVE, openmm-ml plugin, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
openmm = pytest.importorskip("openmm")
from openmm import app, unit  # noqa: E402

from polarff.build import build_ion_box  # noqa: E402
from polarff.errors import ModelError  # noqa: E402
from polarff.openmm.potential import energy_and_forces  # noqa: E402
from polarff.openmm.system import build_potential, create_system, find_polarff_force  # noqa: E402

CUTOFF = 0.45  # nm: the 32-water test box is ~1.0 nm wide
ELEC = {"cutoff_nm": CUTOFF, "induction_cutoff_nm": CUTOFF}
KJ = unit.kilojoule_per_mole


def platforms():
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    return [n for n in names if n in ("Reference", "CPU", "CUDA")]


@pytest.fixture(scope="module")
def box():
    topology, positions, length = build_ion_box("NaCl", 1, 32, seed=1)
    return topology, positions, np.eye(3) * length


@pytest.fixture(scope="module")
def model(trained_model):
    return trained_model[0]


def context(system, platform="CPU", integrator=None):
    integrator = integrator or openmm.VerletIntegrator(0.001)
    props = {"Threads": "1"} if platform == "CPU" else {}
    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), props)


def energy_forces(ctx, positions):
    ctx.setPositions(positions)
    state = ctx.getState(getEnergy=True, getForces=True, groups={1})
    return (state.getPotentialEnergy().value_in_unit(KJ),
            state.getForces(asNumpy=True).value_in_unit(KJ / unit.nanometer))


def polarff_only(system):
    find_polarff_force(system).setForceGroup(1)
    return system


def test_runtime_charges_match_keras(model, box):
    from polarff.data import Frame
    from polarff.model import predict

    topology, positions, cell = box
    module = build_potential(model, topology, electrostatics=ELEC)
    q, alpha = module.charges_and_polarizabilities(torch.tensor(positions), torch.tensor(cell))
    symbols = [a.element.symbol for a in topology.atoms()]
    pred = predict(model, [Frame(symbols, positions * 10, cell=cell * 10, pbc=[True] * 3)])
    assert np.max(np.abs(q.detach().numpy() - pred["charges"])) < 1e-5
    assert np.max(np.abs(alpha.detach().numpy() * 1e3 - pred["polarizabilities"])) < 1e-5
    assert abs(float(q.detach().sum())) < 1e-10


@pytest.mark.parametrize("platform", platforms())
def test_forces_are_minus_energy_gradient(model, box, platform):
    topology, positions, _ = box
    system = polarff_only(create_system(model, topology, nonbonded_cutoff_nm=CUTOFF))
    ctx = context(system, platform)
    _, forces = energy_forces(ctx, positions)
    h = 1e-5
    for atom, axis in [(0, 0), (1, 2), (50, 1), (96, 0), (97, 2)]:
        plus, minus = positions.copy(), positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(energy_forces(ctx, plus)[0] - energy_forces(ctx, minus)[0]) / (2 * h)
        assert forces[atom, axis] == pytest.approx(fd, rel=2e-4, abs=0.05), (atom, axis)


def test_torchforce_and_pythonforce_agree(model, box):
    topology, positions, _ = box
    e_t, f_t = energy_forces(context(polarff_only(create_system(model, topology, nonbonded_cutoff_nm=CUTOFF))),
                             positions)
    e_p, f_p = energy_forces(context(polarff_only(create_system(model, topology, nonbonded_cutoff_nm=CUTOFF,
                                                                implementation="python"))), positions)
    assert e_t == pytest.approx(e_p, rel=1e-9)
    np.testing.assert_allclose(f_t, f_p, rtol=1e-6, atol=1e-6)


def test_xml_round_trip_gives_identical_energy(model, box):
    topology, positions, _ = box
    system = create_system(model, topology, nonbonded_cutoff_nm=CUTOFF, implementation="python")
    clone = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    ctx1, ctx2 = context(system), context(clone)
    for ctx in (ctx1, ctx2):
        ctx.setPositions(positions)
    energies = [c.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ) for c in (ctx1, ctx2)]
    assert energies[0] == energies[1]


def test_total_charge_conserved_at_every_step(model, box):
    topology, positions, cell = box
    system = create_system(model, topology, nonbonded_cutoff_nm=CUTOFF)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds)
    integrator.setRandomNumberSeed(3)
    ctx = context(system, integrator=integrator)
    ctx.setPositions(positions)
    module = build_potential(model, topology, electrostatics=ELEC)
    for _ in range(10):
        integrator.step(2)
        state = ctx.getState(getPositions=True)
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        q, _ = module.charges_and_polarizabilities(torch.tensor(pos), torch.tensor(cell))
        assert abs(float(q.detach().sum())) < 1e-10


@pytest.mark.slow
def test_nve_energy_conservation(model, box):
    """2 ps of NVE at 1 fs (rigid water): total-energy drift per ns per atom is bounded."""
    topology, positions, _ = box
    system = create_system(model, topology, nonbonded_cutoff_nm=CUTOFF)
    warm = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds)
    warm.setRandomNumberSeed(1)
    ctx = context(system, integrator=warm)
    ctx.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    warm.step(100)
    state = ctx.getState(getPositions=True, getVelocities=True)
    nve = openmm.VerletIntegrator(0.001 * unit.picoseconds)
    nve.setConstraintTolerance(1e-8)
    ctx = context(system, integrator=nve)
    ctx.setPositions(state.getPositions())
    ctx.setVelocities(state.getVelocities())
    energies = []
    for _ in range(100):
        nve.step(20)
        s = ctx.getState(getEnergy=True)
        energies.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(KJ))
    times_ps = 0.02 * np.arange(1, 101)
    slope = np.polyfit(times_ps, energies, 1)[0]  # kJ/mol/ps
    drift_per_ns_atom = abs(slope) * 1000 / system.getNumParticles()
    kinetic = s.getKineticEnergy().value_in_unit(KJ)
    print(f"NVE drift {drift_per_ns_atom:.3f} kJ/mol/ns/atom, fluctuation {np.std(energies):.3f} kJ/mol, "
          f"kinetic {kinetic:.1f} kJ/mol")
    assert drift_per_ns_atom < 5.0
    assert np.std(energies) < 0.02 * kinetic


def test_openmm_ml_plugin_matches_create_system(model, box, trained_model):
    from openmmml import MLPotential

    topology, positions, _ = box
    path = str(trained_model[2])
    potential = MLPotential("polarff", modelPath=path)
    system = potential.createSystem(topology, electrostatics=ELEC)
    ctx = context(system)
    ctx.setPositions(positions)
    e_ml = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    ref = create_system(model, topology, nonbonded_cutoff_nm=CUTOFF, rigid_water=False)
    ctx = context(ref)
    ctx.setPositions(positions)
    e_ref = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    assert e_ml == pytest.approx(e_ref, rel=1e-6, abs=1e-3)
    with pytest.raises(ValueError, match="modelPath"):
        MLPotential("polarff")


def test_unknown_species_and_mismatched_topology_are_clear_errors(model, box):
    topology, _, _ = box
    k_top, _, _ = build_ion_box("KCl", 1, 32, seed=1)
    with pytest.raises(ModelError, match=r"species \['K'\].*model species"):
        create_system(model, k_top, nonbonded_cutoff_nm=CUTOFF)
    odd = app.Topology()
    chain = odd.addChain()
    res = odd.addResidue("XYZ", chain)
    odd.addAtom("O1", app.element.oxygen, res)
    odd.addAtom("H1", app.element.hydrogen, res)
    with pytest.raises(ModelError, match="does not match the topology"):
        create_system(model, odd)


def test_export_cli_writes_loadable_xml(tmp_path, trained_model, box):
    from polarff.build import write_topology_pdb
    from polarff.cli import main

    topology, positions, cell = box
    pdb = tmp_path / "box.pdb"
    write_topology_pdb(topology, positions, cell[0, 0], pdb)
    out = tmp_path / "system.xml"
    assert main(["export", str(trained_model[2]), "--topology", str(pdb), "-o", str(out),
                 "--cutoff", str(CUTOFF)]) == 0
    system = openmm.XmlSerializer.deserialize(out.read_text())
    assert find_polarff_force(system) is not None and system.getNumParticles() == topology.getNumAtoms()
    assert main(["info", str(out)]) == 0
