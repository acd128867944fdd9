"""Native mode (polarff.openmm.native): AMOEBA/Drude parameters from the model, their updates, their physics
and their (non-)conservation of energy compared with the exact autograd force."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
openmm = pytest.importorskip("openmm")

from openmm import app, unit  # noqa: E402

from conftest import synthetic_labels, water_box  # noqa: E402
from polarff.build import build_ion_box  # noqa: E402
from polarff.errors import ConfigError, InputError, ModelError  # noqa: E402
from polarff.openmm.native import (MODES, NATIVE_FORCE_NAME, create_native_system, drude_integrator,  # noqa: E402
                                   energy_drift, find_native_force, nve_energy_trace)

KJ = unit.kilojoule_per_mole
FORCE_UNIT = unit.kilojoule_per_mole / unit.nanometer
CUTOFF_NM = 0.45  # below half of the ~1.0 nm box of 32 waters + NaCl


@pytest.fixture(scope="module")
def responsive_model():
    """A small model whose charges respond strongly to the environment (5x the synthetic variation)."""
    from polarff.model import FitConfig, fit

    base = {"H": 0.35, "O": -0.7, "Na": 0.9, "Cl": -0.9}
    frames = synthetic_labels([water_box(n_side=3, seed=s, ions=s % 2) for s in range(24)])
    for frame in frames:
        species_base = np.array([base[s] for s in frame.symbols])
        q = species_base + 5.0 * (frame.labels["charges"] - species_base)
        frame.labels["charges"] = q - (q.sum() - frame.total_charge) / frame.n_atoms
    cfg = FitConfig(epochs=40, eval_every=10, hidden=[32, 32], n_bins=12, cutoff=4.0, n_radial=4, n_angular=2,
                    batch_frames=4, seed=3)
    model, _ = fit(frames, cfg, progress=False)
    return model


@pytest.fixture(scope="module")
def small_box():
    """32 waters + 1 NaCl, periodic (~1.0 nm box): topology, positions (nm), box edge (nm)."""
    return build_ion_box("NaCl", 1, 32, seed=7)


def cluster(n_waters: int = 6, seed: int = 3):
    """A non-periodic cluster of whole molecules: NaCl + waters cut from a small periodic box."""
    topology, positions, box = build_ion_box("NaCl", 1, n_waters, seed=seed)
    positions = positions.copy()
    for residue in topology.residues():
        members = [a.index for a in residue.atoms()]
        for k in members[1:]:
            d = positions[k] - positions[members[0]]
            positions[k] = positions[members[0]] + d - box * np.round(d / box)
    topology.setPeriodicBoxVectors(None)
    return topology, positions


def model_charges(model, topology, positions_nm, box_nm=None):
    """Charges (e) and polarizabilities (nm^3) from the model's torch twin, evaluated independently."""
    from polarff.openmm.system import formal_total_charge, topology_symbols
    from polarff.runtime.network import ChargeModel

    symbols = topology_symbols(topology)
    twin = ChargeModel(model, symbols, formal_total_charge(symbols))
    cell = np.zeros((3, 3)) if box_nm is None else np.eye(3) * box_nm
    with torch.no_grad():
        q, alpha = twin(torch.tensor(positions_nm * 10.0), torch.tensor(cell * 10.0), box_nm is not None)
    return q.numpy(), alpha.numpy() * 1e-3


def amoeba_parameters(force):
    rows = [force.getMultipoleParameters(i) for i in range(force.getNumMultipoles())]
    charges = np.array([r[0].value_in_unit(unit.elementary_charge) for r in rows])
    dipoles = np.array([r[1].value_in_unit(unit.elementary_charge * unit.nanometer) for r in rows])
    thole = np.array([r[7] for r in rows])
    damping = np.array([r[8] for r in rows])
    polarity = np.array([r[9].value_in_unit(unit.nanometer ** 3) for r in rows])
    return charges, dipoles, thole, damping, polarity


def make_context(system, positions, platform="Reference", integrator=None):
    context = openmm.Context(system, integrator or openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    return context


def energy_and_forces(context, groups=-1):
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(FORCE_UNIT)


# ------------------------------------------------------------------------------------------ parameters
def test_amoeba_parameters_are_the_model_charges(responsive_model, small_box):
    topology, positions, box = small_box
    native = create_native_system(responsive_model, topology, positions, update_interval=5,
                                  nonbonded_cutoff_nm=CUTOFF_NM)
    force = find_native_force(native.system)
    assert isinstance(force, openmm.AmoebaMultipoleForce) and force.getName() == NATIVE_FORCE_NAME
    charges, dipoles, thole, damping, polarity = amoeba_parameters(force)
    q_model, alpha_model = model_charges(responsive_model, topology, positions, box)
    np.testing.assert_allclose(charges, q_model, atol=1e-6)
    assert abs(charges.sum()) < 1e-9  # NaCl in water: neutral
    np.testing.assert_allclose(polarity, alpha_model, rtol=1e-9)
    np.testing.assert_allclose(damping, alpha_model ** (1 / 6), rtol=1e-9)
    assert np.all(thole == 0.39) and np.all(dipoles == 0)
    assert np.ptp(charges[:-2:3]) > 0.01  # the charges depend on the environment (not species constants)
    # covalent maps: no permanent interaction inside a water, one polarization group per molecule
    c12 = force.getCovalentMap(0, openmm.AmoebaMultipoleForce.Covalent12)
    c13 = force.getCovalentMap(1, openmm.AmoebaMultipoleForce.Covalent13)
    p11 = force.getCovalentMap(0, openmm.AmoebaMultipoleForce.PolarizationCovalent11)
    assert sorted(c12) == [1, 2] and list(c13) == [2] and sorted(p11) == [1, 2]
    assert force.getPolarizationType() == openmm.AmoebaMultipoleForce.Mutual


def test_updates_follow_the_positions_and_reach_the_context(responsive_model, small_box):
    topology, positions, box = small_box
    system, updater = create_native_system(responsive_model, topology, positions, update_interval=10,
                                           nonbonded_cutoff_nm=CUTOFF_NM)
    context = make_context(system, positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    initial = updater.charges_.copy()
    updater.step(context, 25)  # update before step 1, after steps 10 and 20
    assert updater.n_updates == 3
    state = context.getState(getPositions=True, getEnergy=True)
    now = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    # the parameters are those of step 20, not of now (step 25) nor of step 0
    assert np.max(np.abs(updater.charges_ - initial)) > 1e-5
    assert np.max(np.abs(updater.charges_ - model_charges(responsive_model, topology, now, box)[0])) > 1e-7
    updater.step(context, 5)  # step 30: update at the current positions
    state = context.getState(getPositions=True, getEnergy=True)
    now = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    q_model, alpha_model = model_charges(responsive_model, topology, now, box)
    np.testing.assert_allclose(updater.charges_, q_model, atol=1e-6)
    np.testing.assert_allclose(amoeba_parameters(find_native_force(system))[0], q_model, atol=1e-6)
    assert abs(updater.charges_.sum()) < 1e-9
    # the Context uses the new parameters: same energy as a fresh Context built with them
    fresh_system, _ = create_native_system(responsive_model, topology, now, nonbonded_cutoff_nm=CUTOFF_NM)
    fresh = make_context(fresh_system, now)
    fresh_energy = fresh.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    assert state.getPotentialEnergy().value_in_unit(KJ) == pytest.approx(fresh_energy, abs=1e-3)


def test_updater_as_simulation_reporter(responsive_model, small_box):
    topology, positions, _ = small_box
    system, updater = create_native_system(responsive_model, topology, positions, update_interval=4,
                                           nonbonded_cutoff_nm=CUTOFF_NM)
    simulation = app.Simulation(topology, system, openmm.VerletIntegrator(0.0005),
                                openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(positions)
    simulation.reporters.insert(0, updater)
    assert updater.describeNextReport(simulation)["steps"] == 4
    simulation.step(10)
    assert updater.n_updates == 2  # after steps 4 and 8
    assert updater.describeNextReport(simulation)["steps"] == 2


# ------------------------------------------------------------------------------------------ physics
def test_amoeba_cluster_energy_and_forces_equal_polarff_electrostatics(responsive_model):
    """Without periodicity AMOEBA (charges + Thole-damped mutual dipoles, polarff's scaling rules) is exactly
    polarff's electrostatics at fixed charges; the exact force differs by the chain-rule term only."""
    from polarff.openmm.potential import PolarffPotential
    from polarff.openmm.system import intramolecular_pairs, topology_symbols

    topology, positions = cluster()
    system, updater = create_native_system(responsive_model, topology, positions)
    force = find_native_force(system)
    force.setMutualInducedTargetEpsilon(1e-10)
    force.setForceGroup(1)
    e_native, f_native = energy_and_forces(make_context(system, positions), groups={1})

    options = {"induction_cutoff_nm": 3.0, "n_induction_iterations": 60}  # every pair inside the switch
    potential = PolarffPotential(responsive_model, topology_symbols(topology), intramolecular_pairs(topology),
                                 False, 0.0, None, options)
    x = torch.tensor(positions, requires_grad=True)
    no_box = torch.zeros((3, 3), dtype=torch.float64)
    q, alpha = potential.charges_and_polarizabilities(x, None)
    np.testing.assert_allclose(updater.charges_, q.detach().numpy(), atol=1e-12)
    e_fixed = potential.electrostatics(x, no_box, q.detach(), alpha.detach())
    (grad_fixed,) = torch.autograd.grad(e_fixed, x)
    assert e_native == pytest.approx(float(e_fixed.detach()), rel=1e-6)
    scale = np.abs(f_native).max()
    np.testing.assert_allclose(f_native, -grad_fixed.numpy(), atol=1e-6 * scale)

    # exact force = native force - sum_i dE/dq_i dq_i/dr - sum_i dE/dalpha_i dalpha_i/dr
    e_exact = potential.electrostatics(x, no_box, q, alpha)
    (grad_exact,) = torch.autograd.grad(e_exact, x)
    q_leaf, alpha_leaf = q.detach().requires_grad_(), alpha.detach().requires_grad_()
    de_dq, de_dalpha = torch.autograd.grad(potential.electrostatics(x.detach(), no_box, q_leaf, alpha_leaf),
                                           (q_leaf, alpha_leaf))
    x2 = torch.tensor(positions, requires_grad=True)
    q2, alpha2 = potential.charges_and_polarizabilities(x2, None)
    (chain,) = torch.autograd.grad((de_dq * q2).sum() + (de_dalpha * alpha2).sum(), x2)
    missing = -chain.numpy()
    np.testing.assert_allclose(-grad_exact.numpy(), f_native + missing, atol=1e-6 * scale)
    assert np.abs(missing).max() > 1e-3 * scale  # the term native mode drops is not negligible


def test_per_species_thole_is_paired_by_min_in_amoeba_and_in_polarff(responsive_model):
    """A model with its own Thole strengths for the ions: OpenMM's AMOEBA (which pairs a = min(a_i, a_j))
    and polarff's electrostatics (which takes them from the model) still agree, and the values matter."""
    import copy

    from polarff.openmm.potential import PolarffPotential
    from polarff.openmm.system import intramolecular_pairs, topology_symbols

    variant = copy.copy(responsive_model)
    variant.thole = {"a": {"Cl": 0.05, "Na": 0.2}, "basis": "test"}
    topology, positions = cluster()
    symbols = topology_symbols(topology)
    energies = {}
    for name, model in (("default", responsive_model), ("ions", variant)):
        system, _ = create_native_system(model, topology, positions)
        force = find_native_force(system)
        force.setMutualInducedTargetEpsilon(1e-10)
        force.setForceGroup(1)
        assert [force.getMultipoleParameters(i)[7] for i in range(len(symbols))] == model.thole_per_atom(symbols)
        e_native, _ = energy_and_forces(make_context(system, positions), groups={1})
        options = {"induction_cutoff_nm": 3.0, "n_induction_iterations": 60}
        potential = PolarffPotential(model, symbols, intramolecular_pairs(topology), False, 0.0, None, options)
        x = torch.tensor(positions)
        q, alpha = potential.charges_and_polarizabilities(x, None)
        e_polarff = float(potential.electrostatics(x, torch.zeros((3, 3), dtype=torch.float64), q, alpha))
        assert e_native == pytest.approx(e_polarff, rel=1e-6)
        energies[name] = e_native
    assert abs(energies["ions"] - energies["default"]) > 1e-3 * abs(energies["default"])


def test_periodic_polarising_field_equals_amoeba_pme_direct_induction(responsive_model, small_box):
    """Periodic box: OpenMM's AMOEBA PME with direct polarization gives mu_i = alpha_i E_i from the Thole-damped
    Ewald field of the permanent charges; polarff's full-range field gives the same dipoles, while the field
    switched off at the cutoff (earlier polarff) misses the long-range part."""
    from polarff.openmm.potential import PolarffPotential
    from polarff.openmm.system import intramolecular_pairs, topology_symbols

    topology, positions, box = small_box
    native = create_native_system(responsive_model, topology, positions, nonbonded_cutoff_nm=CUTOFF_NM,
                                  polarization="direct", ewald_error_tolerance=1e-6)
    force = find_native_force(native.system)
    context = make_context(native.system, positions)
    amoeba = np.array(force.getInducedDipoles(context))  # e nm
    dipoles = {}
    for field in ("full", "switched"):
        options = {"cutoff_nm": CUTOFF_NM, "induction_cutoff_nm": CUTOFF_NM, "ewald_error_tolerance": 1e-6,
                   "induction_field": field}
        potential = PolarffPotential(responsive_model, topology_symbols(topology), intramolecular_pairs(topology),
                                     True, 0.0, None, options)
        x, cell = torch.tensor(positions), torch.tensor(np.asarray(box, dtype=float) * np.eye(3))
        q, alpha = potential.charges_and_polarizabilities(x, cell)
        e = potential.electrostatics.permanent_field(x, cell, q, alpha)
        dipoles[field] = (alpha.unsqueeze(1) * e).detach().numpy()
    scale = np.abs(amoeba).max()
    np.testing.assert_allclose(dipoles["full"], amoeba, atol=2e-5 * scale)  # measured 2.6e-6
    assert np.abs(dipoles["switched"] - amoeba).max() > 0.1 * scale  # measured 0.38


def test_drude_mode_matches_amoeba_for_distant_ions(responsive_model):
    """Two ions 1.5 nm apart: damping is negligible, so the Drude oscillator (k from alpha at fixed q_D)
    and AMOEBA's point dipoles give the same mutual induction energy, up to the finite length d of the
    Drude dipole (relative corrections O(d/r) ~ 1e-3 here)."""
    topology = app.Topology()
    chain = topology.addChain()
    for name, element in (("NA", "Na"), ("CL", "Cl")):
        residue = topology.addResidue(name, chain)
        topology.addAtom(name, app.Element.getBySymbol(element), residue)
    positions = np.array([[0.0, 0.0, 0.0], [1.5, 0.1, -0.05]])
    energies = {}
    for mode in MODES:
        native = create_native_system(responsive_model, topology, positions, mode=mode)
        system = native.system
        for atom in range(2):
            system.setParticleMass(atom, 0.0)  # ions fixed; only the Drude particles relax
        if mode == "drude":
            assert system.getNumParticles() == 4 and native.positions_nm.shape == (4, 3)
            assert [a.element for a in native.topology.atoms()][2:] == [None, None]
            integrator = drude_integrator("scf", 0.001, scf_tolerance=1e-8)
        else:
            integrator = openmm.VerletIntegrator(0.001)
        context = make_context(system, native.positions_nm, integrator=integrator)
        if mode == "drude":
            integrator.step(1)
            nonbonded = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
            parent_plus_drude = [nonbonded.getParticleParameters(a)[0].value_in_unit(unit.elementary_charge)
                                 + nonbonded.getParticleParameters(d)[0].value_in_unit(unit.elementary_charge)
                                 for a, d in ((0, 2), (1, 3))]
            np.testing.assert_allclose(parent_plus_drude, native.updater.charges_, atol=1e-12)
        energies[mode] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    q, alpha = model_charges(responsive_model, topology, positions)
    r = np.linalg.norm(positions[1] - positions[0])
    first_order_induction = -0.5 * 138.935456 * (alpha[0] * q[1] ** 2 + alpha[1] * q[0] ** 2) / r ** 4
    assert abs(first_order_induction) > 0.02
    assert energies["drude"] == pytest.approx(energies["amoeba"], abs=1e-2 * abs(first_order_induction))


def test_drude_water_box_parameters_and_langevin_run(responsive_model, small_box):
    """Liquid: one Drude per O and ion carrying the molecule's hydrogen polarizabilities; charges add up."""
    topology, positions, box = small_box
    native = create_native_system(responsive_model, topology, positions, mode="drude", update_interval=5,
                                  nonbonded_cutoff_nm=CUTOFF_NM)
    system, updater = native
    n_atoms = topology.getNumAtoms()
    drude_force = find_native_force(system)
    assert isinstance(drude_force, openmm.DrudeForce)
    assert drude_force.getNumParticles() == 32 + 2 and system.getNumParticles() == n_atoms + 34
    q_model, alpha_model = model_charges(responsive_model, topology, positions, box)
    entries = [drude_force.getParticleParameters(k) for k in range(drude_force.getNumParticles())]
    parents = [e[1] for e in entries]
    assert parents == list(range(0, 96, 3)) + [96, 97]
    hosted = alpha_model.copy()
    hosted[0:96:3] += alpha_model[1:96:3] + alpha_model[2:96:3]
    np.testing.assert_allclose([e[6].value_in_unit(unit.nanometer ** 3) for e in entries], hosted[parents],
                               rtol=1e-9)
    nonbonded = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    site_charges = np.array([nonbonded.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                             for i in range(system.getNumParticles())])
    per_atom = site_charges[:n_atoms].copy()
    per_atom[parents] += site_charges[n_atoms:]
    np.testing.assert_allclose(per_atom, q_model, atol=1e-6)
    integrator = drude_integrator("langevin", 0.0005)
    context = make_context(system, native.positions_nm, platform="CPU", integrator=integrator)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    updater.step(context, 20)
    assert updater.n_updates == 5 and np.isfinite(context.getState(getEnergy=True).getPotentialEnergy()._value)


@pytest.mark.slow
def test_nve_native_drifts_more_than_exact(responsive_model, small_box):
    """Same start, same 0.3 ps NVE run: the exact TorchForce conserves energy, native mode does not."""
    topology, positions, box = small_box
    start = equilibrated_start(topology, positions)
    exact = exact_reference_system(responsive_model, topology)
    drift = {"exact": run_nve(exact, start, 300)}
    for interval in (1, 10):
        system, updater = create_native_system(responsive_model, topology, start[0], update_interval=interval,
                                               nonbonded_cutoff_nm=CUTOFF_NM)
        drift[interval] = run_nve(system, start, 300, updater)
    for interval in (1, 10):
        assert drift["exact"]["max_deviation_kj_mol"] < 0.5 * drift[interval]["max_deviation_kj_mol"], drift
        assert abs(drift["exact"]["slope_kj_mol_ps"]) < abs(drift[interval]["slope_kj_mol_ps"]), drift


def test_torchforce_reference_force_is_the_energy_gradient(responsive_model, small_box):
    """The exact reference of the NVE comparison: create_system's force must be -dE/dr (central differences)."""
    pytest.importorskip("openmmtorch")
    from polarff.openmm.system import FORCE_NAME, create_system

    topology, positions, _ = small_box
    system = create_system(responsive_model, topology, nonbonded_cutoff_nm=CUTOFF_NM)
    for force in system.getForces():
        force.setForceGroup(1 if force.getName() == FORCE_NAME else 0)
    context = make_context(system, positions)
    _, forces = energy_and_forces(context, groups={1})
    direction = np.random.default_rng(0).normal(size=positions.shape)
    direction /= np.linalg.norm(direction)
    h = 1e-5
    context.setPositions(positions + h * direction)
    e_plus, _ = energy_and_forces(context, groups={1})
    context.setPositions(positions - h * direction)
    e_minus, _ = energy_and_forces(context, groups={1})
    assert (e_plus - e_minus) / (2 * h) == pytest.approx(-np.sum(forces * direction), rel=1e-5)


def equilibrated_start(topology, positions):
    """Minimised, 0.5 ps Langevin-equilibrated positions and velocities with the fixed-charge baseline."""
    from polarff.build import forcefield_path

    baseline = app.ForceField(forcefield_path("fixed_charge_baseline")).createSystem(
        topology, nonbondedMethod=app.PME, nonbondedCutoff=CUTOFF_NM * unit.nanometer)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 5 / unit.picosecond, 0.001 * unit.picosecond)
    integrator.setRandomNumberSeed(11)
    context = make_context(baseline, positions, platform="CPU", integrator=integrator)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 5)
    integrator.step(500)
    state = context.getState(getPositions=True, getVelocities=True)
    return state.getPositions(asNumpy=True), state.getVelocities(asNumpy=True)


def exact_reference_system(model, topology):
    """The exact polarff force: create_system's TorchForce (autograd through charges and polarizabilities)."""
    pytest.importorskip("openmmtorch")
    from polarff.openmm.system import create_system

    return create_system(model, topology, nonbonded_cutoff_nm=CUTOFF_NM)


def run_nve(system, start, n_steps, updater=None):
    """Velocity Verlet (1 fs) from ``start`` (both systems switch Lennard-Jones smoothly to 0 at the cutoff)."""
    context = make_context(system, start[0], platform="CPU")
    context.setVelocities(start[1])
    trace = nve_energy_trace(context, n_steps, 10, updater)
    return energy_drift(trace["time_ps"], trace["total"], system.getNumParticles())


@pytest.mark.slow
def test_benchmark_example_runs(responsive_model, tmp_path):
    """examples/benchmark_openmm.py: both subcommands on a tiny box write their JSON tables."""
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "benchmark_openmm.py"
    spec = importlib.util.spec_from_file_location("benchmark_openmm", script)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    model_path = tmp_path / "model.pff"
    responsive_model.save(model_path)
    common = ["--model", str(model_path), "--waters", "32", "--cutoff", str(CUTOFF_NM), "--threads", "1",
              "--out-dir", str(tmp_path)]
    assert benchmark.main(["speed", *common, "--rows", "tip3p", "native-amoeba", "native-drude", "--warmup", "1",
                           "--min-steps", "2", "--min-seconds", "0", "--json", str(tmp_path / "speed.json")]) == 0
    speed = json.loads((tmp_path / "speed.json").read_text())
    assert set(speed["rows"]) == {"tip3p", "native-amoeba", "native-drude"} and speed["n_atoms"] == 98
    assert all(row["ms_per_step"] > 0 and row["platform"] == "CPU" for row in speed["rows"].values())
    assert "| native-amoeba | CPU |" in benchmark.speed_table(speed)
    assert benchmark.main(["drift", *common, "--steps", "20", "--equilibrate", "0", "--intervals", "5",
                           "--json", str(tmp_path / "drift.json")]) == 0
    drift = json.loads((tmp_path / "drift.json").read_text())
    assert list(drift["runs"]) == ["TorchForce (exact)", "native every 5", "native never updated"]


# ------------------------------------------------------------------------------------------ errors
def test_bad_input_raises_typed_errors(responsive_model, small_box):
    topology, positions, _ = small_box
    with pytest.raises(ConfigError, match="native mode"):
        create_native_system(responsive_model, topology, positions, mode="charmm")
    with pytest.raises(ConfigError, match="update_interval"):
        create_native_system(responsive_model, topology, positions, update_interval=0)
    with pytest.raises(ConfigError, match="half the box"):
        create_native_system(responsive_model, topology, positions, nonbonded_cutoff_nm=0.9)
    with pytest.raises(InputError, match="positions_nm"):
        create_native_system(responsive_model, topology, positions[:-1], nonbonded_cutoff_nm=CUTOFF_NM)
    kcl_topology, kcl_positions, _ = build_ion_box("KCl", 1, 32, seed=1)
    with pytest.raises(ModelError, match="K"):
        create_native_system(responsive_model, kcl_topology, kcl_positions, nonbonded_cutoff_nm=CUTOFF_NM)


def test_energy_drift_recovers_a_known_slope():
    t = np.linspace(0.0, 2.0, 201)
    e = -100.0 + 3.0 * t + 0.1 * np.sin(40 * t)
    drift = energy_drift(t, e, n_atoms=30)
    assert drift["slope_kj_mol_ps"] == pytest.approx(3.0, abs=0.01)
    assert drift["slope_kj_mol_ns_atom"] == pytest.approx(100.0, abs=0.5)
    assert drift["max_deviation_kj_mol"] == pytest.approx(6.0, abs=0.2)
