"""polarff simulate: outputs and units, unwrapped whole molecules, restart equivalence, reporters vs recomputation."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct

import numpy as np
import pytest

pytest.importorskip("openmm")

from polarff.errors import ConfigError, InputError  # noqa: E402
from polarff.simulate import (SimulationConfig, completed_chunks, load_trajectory,  # noqa: E402
                              run_simulation)

TIP3P_R_OH_NM = 0.09572


@pytest.fixture(scope="module")
def salt_pdb(tmp_path_factory):
    """16 waters + 1 NaCl (box ~0.8 nm) as a PDB; atoms are wrapped one by one, so molecules are broken."""
    from polarff.build import build_ion_box, write_topology_pdb

    topology, positions, box_nm = build_ion_box("NaCl", 1, 16, seed=3)
    path = tmp_path_factory.mktemp("box") / "box.pdb"
    write_topology_pdb(topology, positions, box_nm, path)
    return str(path)


def baseline_config(pdb: str, **changes) -> SimulationConfig:
    options = dict(topology=pdb, forcefield="fixed_charge_baseline", cutoff_nm=0.39, length_ps=0.2,
                   report_interval_fs=4.0, energy_interval_fs=8.0, checkpoint_interval_ps=0.04,
                   equilibration_ps=0.02, minimize=False, seed=5, threads=1)
    options.update(changes)
    return SimulationConfig(**options)


def read_dcd(path) -> np.ndarray:
    """Positions (F, N, 3) in Å from an OpenMM-written DCD (box block present)."""
    data = open(path, "rb").read()
    n_frames = struct.unpack("<i", data[8:12])[0]
    n_atoms = struct.unpack("<i", data[268:272])[0]
    frame_bytes = (48 + 8) + 3 * (4 * n_atoms + 8)
    header = len(data) - n_frames * frame_bytes
    frames = []
    for f in range(n_frames):
        start = header + f * frame_bytes + 56
        xyz = [np.frombuffer(data, dtype="<f4", count=n_atoms, offset=start + k * (4 * n_atoms + 8) + 4)
               for k in range(3)]
        frames.append(np.stack(xyz, axis=1))
    return np.array(frames)


def test_config_validation(tmp_path, salt_pdb):
    with pytest.raises(ConfigError, match="unknown key.*'temprature_k'"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "fixed_charge_baseline",
                                    "temprature_k": 300})
    with pytest.raises(ConfigError, match="exactly one of"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "fixed_charge_baseline", "model": "m.pff"})
    with pytest.raises(ConfigError, match="ensemble"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "x", "ensemble": "nph"})
    with pytest.raises(ConfigError, match=r"thermostat must be one of \('langevin', 'nose-hoover'\) \(found 'berendsen'"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "x", "thermostat": "berendsen"})
    with pytest.raises(ConfigError, match="collision_frequency_per_ps must be a finite number > 0"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "x", "collision_frequency_per_ps": 0})
    with pytest.raises(ConfigError, match="whole multiple of timestep_fs"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "x", "report_interval_fs": 5.0})
    with pytest.raises(ConfigError, match="'threads' expects int"):
        SimulationConfig.from_dict({"topology": salt_pdb, "forcefield": "x", "threads": "two"})
    (tmp_path / "sub").mkdir()
    cfg_path = tmp_path / "sub" / "run.yaml"
    cfg_path.write_text("topology: box.pdb\nforcefield: fixed_charge_baseline\nlength_ps: 1\n")
    cfg = SimulationConfig.from_yaml(cfg_path)
    assert cfg.topology == str(tmp_path / "sub" / "box.pdb") and cfg.length_ps == 1.0
    assert cfg.n_steps == 500 and cfg.frame_interval == 5 and cfg.chunk_steps % 50 == 0
    with pytest.raises(InputError, match="topology file not found"):
        run_simulation(cfg, tmp_path / "out", progress=False)


def test_outputs_shapes_units_and_whole_molecules(tmp_path, salt_pdb):
    from polarff.reporters import read_dcd_frame_count

    cfg = baseline_config(salt_pdb, minimize=True)
    summary = run_simulation(cfg, tmp_path / "run", progress=False)
    traj = load_trajectory(tmp_path / "run")
    n_atoms = 16 * 3 + 2
    n_frames = cfg.n_steps // cfg.frame_interval
    assert summary.complete and summary.frames == n_frames
    assert traj["positions"].shape == (n_frames, n_atoms, 3)
    assert traj["charges"].shape == (n_frames, n_atoms) and traj["dipole"].shape == (n_frames, 3)
    np.testing.assert_allclose(traj["time"], 0.004 * np.arange(1, n_frames + 1), atol=1e-9)  # ps
    assert traj["frame_step"][0] == cfg.frame_interval
    # units (nm) and whole molecules: every O-H distance is the rigid TIP3P bond, in every frame, although
    # the starting PDB has atoms wrapped one by one and frames are never wrapped
    oh1 = np.linalg.norm(traj["positions"][:, 1:48:3] - traj["positions"][:, 0:48:3], axis=-1)
    oh2 = np.linalg.norm(traj["positions"][:, 2:48:3] - traj["positions"][:, 0:48:3], axis=-1)
    np.testing.assert_allclose(oh1, TIP3P_R_OH_NM, atol=1e-5)
    np.testing.assert_allclose(oh2, TIP3P_R_OH_NM, atol=1e-5)
    steps = np.linalg.norm(np.diff(traj["positions"], axis=0), axis=-1)
    assert steps.max() < 0.3  # continuous trajectories: no jump by a box length (0.8 nm)
    # fixed charges of the baseline, and the dipole reporter = Σ q r over the saved (unwrapped) positions
    np.testing.assert_allclose(traj["charges"][:, :3], np.tile([-0.834, 0.417, 0.417], (n_frames, 1)))
    np.testing.assert_allclose(traj["charges"][:, -2:], np.tile([1.0, -1.0], (n_frames, 1)))
    np.testing.assert_allclose(traj["dipole"], np.einsum("tnk,tn->tk", traj["positions"], traj["charges"]),
                               atol=1e-10)
    assert np.all(traj["induced_dipole"] == 0)
    # energies: one report every energy interval, finite, temperatures of a thermostatted liquid
    assert traj["potential_energy"].shape == (cfg.n_steps // cfg.energy_interval,)
    np.testing.assert_allclose(traj["total_energy"], traj["potential_energy"] + traj["kinetic_energy"])
    assert 150 < traj["temperature"].mean() < 450
    np.testing.assert_allclose(traj["volume"], np.linalg.det(traj["box"][0]), rtol=1e-9)
    # the DCD holds the same unwrapped positions (Å, float32)
    assert read_dcd_frame_count(tmp_path / "run" / "trajectory.dcd") == n_frames
    np.testing.assert_allclose(read_dcd(tmp_path / "run" / "trajectory.dcd"), traj["positions"] * 10, atol=2e-3)
    # one frame as a polarff Frame: Å, periodic, the run's cell
    from polarff.simulate import trajectory_frame

    frame = trajectory_frame(traj, n_frames - 1)
    assert frame.symbols[-2:] == ["Na", "Cl"] and frame.periodic and frame.total_charge == 0.0
    np.testing.assert_allclose(frame.positions, traj["positions"][-1] * 10.0)
    np.testing.assert_allclose(frame.cell, traj["box"][-1] * 10.0)
    assert list(traj["symbols"][:3]) == ["O", "H", "H"] and list(traj["symbols"][-2:]) == ["Na", "Cl"]


@pytest.mark.parametrize("thermostat", ["langevin", "nose-hoover"])
def test_interrupted_run_resumes_without_lost_or_duplicated_frames(tmp_path, salt_pdb, thermostat):
    """The checkpoint holds the thermostat's state too (the Nosé–Hoover chain), so a resumed run is the same."""
    from polarff.reporters import read_dcd_frame_count

    cfg = baseline_config(salt_pdb, thermostat=thermostat)
    run_simulation(cfg, tmp_path / "straight", progress=False)
    stopped = run_simulation(cfg, tmp_path / "resumed", progress=False, stop_after_chunks=2)
    assert not stopped.complete and stopped.steps_done == 2 * cfg.chunk_steps
    assert len(completed_chunks(tmp_path / "resumed")) == 2
    # leftovers of a crash: a temporary file and a chunk that does not continue the run
    chunks = tmp_path / "resumed" / "chunks"
    (chunks / "chunk_000002.npz.tmp").write_bytes(b"partial")
    shutil.copy(chunks / "chunk_000000.npz", chunks / "chunk_000004.npz")
    resumed = run_simulation(cfg, tmp_path / "resumed", progress=False)
    assert resumed.complete and resumed.resumed_from_step == 2 * cfg.chunk_steps
    a, b = load_trajectory(tmp_path / "straight"), load_trajectory(tmp_path / "resumed")
    assert len(a["time"]) == len(b["time"]) == cfg.n_steps // cfg.frame_interval
    assert len(np.unique(b["time"])) == len(b["time"])
    np.testing.assert_array_equal(a["time"], b["time"])
    np.testing.assert_array_equal(a["energy_step"], b["energy_step"])
    k = 2 * cfg.chunk_steps // cfg.frame_interval
    # same trajectory on the CPU platform (1 thread); not bitwise: two OpenMM CPU contexts of the same
    # System were measured to differ by ~1e-9 nm after the first steps on a loaded machine (round-off),
    # and MD amplifies that over time
    np.testing.assert_allclose(a["positions"][:k], b["positions"][:k], atol=1e-5)  # before the restart
    np.testing.assert_allclose(a["positions"], b["positions"], atol=1e-3)
    assert read_dcd_frame_count(tmp_path / "resumed" / "trajectory.dcd") == len(b["time"])
    assert not list(chunks.glob("*.tmp"))


def test_extending_a_finished_run_and_refusing_other_settings(tmp_path, salt_pdb):
    cfg = baseline_config(salt_pdb, length_ps=0.08)
    run_simulation(cfg, tmp_path / "run", progress=False)
    longer = dataclasses.replace(cfg, length_ps=0.16)
    summary = run_simulation(longer, tmp_path / "run", progress=False)
    traj = load_trajectory(tmp_path / "run")
    assert summary.complete and len(traj["time"]) == 40 and len(np.unique(traj["time"])) == 40
    with pytest.raises(ConfigError, match="temperature_k"):
        run_simulation(dataclasses.replace(longer, temperature_k=350.0), tmp_path / "run", progress=False)
    # a record written before a config key existed resumes as if it held that key's default
    record_path = tmp_path / "run" / "run.json"
    record = json.loads(record_path.read_text())
    for key in ("thermostat", "collision_frequency_per_ps"):
        del record["config"][key]
    record_path.write_text(json.dumps(record))
    assert run_simulation(dataclasses.replace(cfg, length_ps=0.2), tmp_path / "run", progress=False).complete
    with pytest.raises(ConfigError, match="thermostat: expected 'langevin' to resume, found 'nose-hoover'"):
        run_simulation(dataclasses.replace(cfg, length_ps=0.24, thermostat="nose-hoover"), tmp_path / "run",
                       progress=False)


def test_nose_hoover_conserves_its_extended_energy_and_holds_the_temperature(salt_pdb):
    """NoseHooverIntegrator with the config's coupling: total + heat-bath energy is conserved (the
    thermostat only moves energy to and from its chain), while the total energy itself is not."""
    import openmm
    from openmm import unit

    from polarff.simulate import build_system, make_simulation, read_pdb

    cfg = baseline_config(salt_pdb, thermostat="nose-hoover", collision_frequency_per_ps=5.0, timestep_fs=1.0)
    topology, positions, box = read_pdb(salt_pdb)
    simulation = make_simulation(cfg, topology, build_system(cfg, topology))
    integrator = simulation.integrator
    assert isinstance(integrator, openmm.NoseHooverIntegrator)
    assert integrator.getCollisionFrequency().value_in_unit(unit.picosecond ** -1) == pytest.approx(5.0)
    simulation.context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
    simulation.context.setPositions(positions)
    simulation.context.applyConstraints(1e-6)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(cfg.temperature_k * unit.kelvin, 1)
    simulation.step(200)
    total, extended, kinetic = [], [], []
    for _ in range(150):
        simulation.step(10)
        state = simulation.context.getState(getEnergy=True)
        e = (state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole)
        total.append(e)
        extended.append(e + integrator.computeHeatBathEnergy().value_in_unit(unit.kilojoule_per_mole))
        kinetic.append(state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert np.std(extended) < 0.1 * np.std(total)
    n_dof = integrator.getThermostat(0).getNumDegreesOfFreedom()
    temperature = 2 * np.mean(kinetic) / (n_dof * unit.MOLAR_GAS_CONSTANT_R.value_in_unit(
        unit.kilojoule_per_mole / unit.kelvin))
    assert 250.0 < temperature < 350.0  # 16 waters: instantaneous T fluctuates by ~40 K


def test_npt_changes_the_volume_and_nve_conserves_energy(tmp_path, salt_pdb):
    npt = run_simulation(baseline_config(salt_pdb, ensemble="npt", barostat_interval=2), tmp_path / "npt",
                         progress=False)
    traj = load_trajectory(npt.out_dir)
    assert np.ptp(traj["volume"]) > 0
    np.testing.assert_allclose(traj["volume"], np.abs(np.linalg.det(traj["box"][1::2])), rtol=1e-9)
    nve = run_simulation(baseline_config(salt_pdb, ensemble="nve", timestep_fs=1.0, report_interval_fs=4.0,
                                         energy_interval_fs=4.0, equilibration_ps=0.0), tmp_path / "nve",
                         progress=False)
    traj = load_trajectory(nve.out_dir)
    assert np.std(traj["total_energy"]) < 0.1 * np.std(traj["potential_energy"])


@pytest.fixture(scope="module")
def polarff_run(trained_model, salt_pdb, tmp_path_factory):
    _, _, model_path = trained_model
    cfg = SimulationConfig(topology=salt_pdb, model=str(model_path), cutoff_nm=0.39, length_ps=0.04,
                           report_interval_fs=4.0, energy_interval_fs=8.0, checkpoint_interval_ps=0.02,
                           minimize=True, minimize_iterations=10, save_induced_dipoles=True, seed=2)
    out = tmp_path_factory.mktemp("polarff")
    run_simulation(cfg, out, progress=False)
    return cfg, out


def test_polarff_reporters_equal_recomputation_from_saved_arrays(polarff_run):
    torch = pytest.importorskip("torch")
    from polarff.artifact import load_model
    from polarff.openmm.system import build_potential
    from polarff.simulate import read_pdb

    cfg, out = polarff_run
    traj = load_trajectory(out)
    assert traj["charges"].shape == (10, 50) and traj["induced_dipoles"].shape == (10, 50, 3)
    np.testing.assert_allclose(traj["charges"].sum(axis=1), 0.0, atol=1e-9)  # exact neutrality per frame
    assert np.ptp(traj["charges"][:, 0]) > 0  # environment-dependent charges change along the run
    # the dipole reporter is Σ q r (unwrapped, whole molecules) + Σ μ_ind, from the saved arrays
    permanent = np.einsum("tnk,tn->tk", traj["positions"], traj["charges"])
    np.testing.assert_allclose(traj["permanent_dipole"], permanent, atol=1e-12)
    np.testing.assert_allclose(traj["dipole"], permanent + traj["induced_dipoles"].sum(axis=1), atol=1e-12)
    assert np.abs(traj["induced_dipole"]).max() > 0
    # an independently built potential gives the same charges and induced dipoles at the saved positions
    topology, _, _ = read_pdb(cfg.topology)
    module = build_potential(load_model(cfg.model), topology, None, None,
                             {"cutoff_nm": cfg.cutoff_nm, "induction_cutoff_nm": cfg.cutoff_nm})
    for k in (0, 9):
        props = module.properties(torch.tensor(traj["positions"][k]), torch.tensor(traj["box"][k]))
        np.testing.assert_allclose(props["charges"].detach().numpy(), traj["charges"][k], atol=1e-9)
        np.testing.assert_allclose(props["induced_dipoles"].detach().numpy(), traj["induced_dipoles"][k],
                                   atol=1e-9)
    # energy terms of the polarff force at the energy reports (every second frame here)
    for e, step in enumerate(traj["energy_step"]):
        k = int(step) // cfg.frame_interval - 1
        props = module.properties(torch.tensor(traj["positions"][k]), torch.tensor(traj["box"][k]))
        assert float(props["induction_energy"].detach()) == pytest.approx(traj["polarff_induction_energy"][e],
                                                                          rel=1e-9)
        assert float(props["permanent_energy"].detach()) == pytest.approx(traj["polarff_permanent_energy"][e],
                                                                          rel=1e-9)
    assert np.all(traj["polarff_induction_energy"] < 0)  # induction always lowers the energy


def test_system_xml_input_gives_the_same_run_as_the_model(polarff_run, tmp_path):
    from polarff.openmm.export import export_system

    cfg, _ = polarff_run
    xml = tmp_path / "system.xml"
    export_system(cfg.model, cfg.topology, str(xml), "torch", cfg.cutoff_nm)
    short = dict(length_ps=0.008, minimize=False, equilibration_ps=0.0, save_induced_dipoles=False)
    from_model = dataclasses.replace(cfg, **short)
    from_xml = dataclasses.replace(cfg, model=None, system=str(xml), **short)
    run_simulation(from_model, tmp_path / "a", progress=False)
    run_simulation(from_xml, tmp_path / "b", progress=False)
    a, b = load_trajectory(tmp_path / "a"), load_trajectory(tmp_path / "b")
    np.testing.assert_allclose(a["positions"], b["positions"], atol=1e-9)
    np.testing.assert_allclose(a["charges"], b["charges"], atol=1e-9)


def test_python_force_implementation_gives_the_same_run(polarff_run, tmp_path):
    cfg, _ = polarff_run
    short = dict(length_ps=0.008, minimize=False, equilibration_ps=0.0, save_induced_dipoles=False)
    run_simulation(dataclasses.replace(cfg, **short), tmp_path / "torch", progress=False)
    run_simulation(dataclasses.replace(cfg, implementation="python", **short), tmp_path / "python", progress=False)
    a, b = load_trajectory(tmp_path / "torch"), load_trajectory(tmp_path / "python")
    np.testing.assert_allclose(a["positions"], b["positions"], atol=1e-9)
    np.testing.assert_allclose(a["dipole"], b["dipole"], atol=1e-9)


def test_example_config_is_valid_and_runs(polarff_run, tmp_path):
    import yaml
    from pathlib import Path

    cfg, _ = polarff_run
    example = Path(__file__).resolve().parents[1] / "examples" / "simulate.yaml"
    options = yaml.safe_load(example.read_text())
    SimulationConfig.from_dict(options, source=str(example))  # every key of the example is valid
    options.update(topology=cfg.topology, model=cfg.model, cutoff_nm=0.39, length_ps=0.02, equilibration_ps=0.0,
                   minimize=False, threads=1, output=str(tmp_path / "md-out"))
    copy = tmp_path / "simulate.yaml"
    copy.write_text(yaml.safe_dump(options))
    from polarff.cli import main

    assert main(["simulate", str(copy), "--quiet"]) == 0
    traj = load_trajectory(tmp_path / "md-out")
    assert len(traj["time"]) == 2 and traj["charges"].shape == (2, 50)


def test_cli_simulate_runs_and_reports_bad_config(tmp_path, salt_pdb, capsys):
    from polarff.cli import main

    good = tmp_path / "md.yaml"
    good.write_text(f"topology: {salt_pdb}\nforcefield: fixed_charge_baseline\ncutoff_nm: 0.39\nlength_ps: 0.04\n"
                    "report_interval_fs: 4\nenergy_interval_fs: 8\nminimize: false\n")
    assert main(["simulate", str(good), "-o", str(tmp_path / "out"), "--quiet", "--stop-after-chunks", "0"]) == 0
    assert "rerun the same command to resume" in capsys.readouterr().out
    assert main(["simulate", str(good), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "trajectory.npz").exists() and (tmp_path / "out" / "trajectory.dcd").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"topology: {salt_pdb}\nforcefield: fixed_charge_baseline\ntimestep: 2\n")
    assert main(["simulate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key(s) ['timestep']" in err[0]


@pytest.mark.slow
def test_demo_transport_runs_resumes_and_prints_estimates(trained_model, tmp_path, capsys):
    from polarff.simulate import demo_transport

    _, _, model_path = trained_model
    summary = demo_transport(str(model_path), str(tmp_path), md_ps=0.6, n_waters=16, n_pairs=1,
                             md_budget_s=600, threads=1, equilibration_ps=0.1, n_blocks=3)
    text = capsys.readouterr().out
    assert "SHORT-RUN ESTIMATE" in text and "D(Na+" in text and "Einstein-Helfand" in text
    assert "Nosé–Hoover 1/ps" in text  # the benchmark's thermostat, not the diffusion-slowing Langevin friction
    assert set(summary["diffusion"]) == {"H2O", "Na+", "Cl-"} and "conductivity" in summary
    again = demo_transport(str(model_path), str(tmp_path), md_ps=0.6, n_waters=16, n_pairs=1, threads=1,
                           equilibration_ps=0.1, n_blocks=3)
    assert again["diffusion"]["H2O"]["pbc"] == summary["diffusion"]["H2O"]["pbc"]  # finished stages reused
