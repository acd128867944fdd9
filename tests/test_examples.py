"""The example scripts users copy actually run."""

from __future__ import annotations

import json
import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openmm_example_runs(trained_model, tmp_path):
    example = load("openmm_polarff")
    out = tmp_path / "run"
    assert example.main(["--model", str(trained_model[2]), "--waters", "32", "--steps", "20", "--cutoff", "0.45",
                         "--out", str(out)]) == 0
    assert (out / "traj.dcd").stat().st_size > 0
    lines = (out / "state.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith('#"Step"') and lines[1].startswith("20,")


def test_rebalance_lj_xml_sets_the_radii_of_a_polarff_system(trained_model, tmp_path):
    """The scan's XML changes only the requested sigmas, and `fixed_terms` puts them into the System."""
    import openmm

    from polarff.build import build_ion_box, write_topology_pdb
    from polarff.errors import ConfigError
    from polarff.simulate import SimulationConfig, build_system, read_pdb

    example = load("rebalance_lj")
    xml = tmp_path / "lj.xml"
    xml.write_text(example.fixed_terms_with_sigmas({"O": 3.3, "Cl": 4.9}))
    topology, positions, box_nm = build_ion_box("NaCl", 1, 16, seed=3)
    pdb = tmp_path / "box.pdb"
    write_topology_pdb(topology, positions, box_nm, pdb)
    topology, _, _ = read_pdb(str(pdb))
    sigmas = {}
    for fixed_terms in (None, str(xml)):
        config = SimulationConfig(topology=str(pdb), model=str(trained_model[2]), fixed_terms=fixed_terms,
                                  cutoff_nm=0.39)
        system = build_system(config, topology)
        nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        sigmas[fixed_terms] = {atom.element.symbol: nonbonded.getParticleParameters(atom.index)[1]._value
                               for atom in topology.atoms()}
    assert sigmas[None]["O"] == pytest.approx(0.315075, abs=1e-6)
    assert sigmas[str(xml)]["O"] == pytest.approx(0.33, abs=1e-12)
    assert sigmas[str(xml)]["Cl"] == pytest.approx(0.49, abs=1e-12)
    assert sigmas[str(xml)]["Na"] == sigmas[None]["Na"]
    with pytest.raises(ConfigError, match="fixed_terms applies to a 'model'"):
        SimulationConfig.from_dict({"topology": str(pdb), "forcefield": "fixed_charge_baseline",
                                    "fixed_terms": str(xml)})
    with pytest.raises(ValueError, match="no scanned atom type for 'K'"):
        example.fixed_terms_with_sigmas({"K": 3.0})


def test_rdf_first_peak_of_a_lattice_and_density_of_water():
    """g(r) peak of a simple cubic lattice sits at the lattice spacing; water's density from its box."""
    import numpy as np

    example = load("rebalance_lj")
    spacing = 0.3
    grid = np.stack(np.meshgrid(*[np.arange(6) * spacing] * 3, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(0)
    frames = grid[None] + rng.normal(0.0, 0.01, size=(20, len(grid), 3))
    boxes = np.repeat(np.eye(3)[None] * 6 * spacing, 20, axis=0)
    peak, height = example.rdf_first_peak(frames, boxes, np.array(["O"] * len(grid)), "O", "O", r_max_nm=0.4)
    assert peak == pytest.approx(3.0, abs=0.05) and height > 3  # ideal gas: 1
    masses = np.array([15.999, 1.008, 1.008] * 216)
    rho, err = example.density_g_cm3(masses, np.repeat(np.eye(3)[None] * 1.8646, 10, axis=0))
    assert rho == pytest.approx(0.997, abs=0.002) and err == pytest.approx(0.0, abs=1e-12)


def _tiny_run(model_path, out, n_pairs: int, cutoff_nm: float) -> None:
    """A 0.02 ps polarff run of 16 waters and ``n_pairs`` NaCl (frames every 4 fs) in ``out``."""
    from polarff.build import build_ion_box, write_topology_pdb
    from polarff.simulate import SimulationConfig, run_simulation

    topology, positions, box = build_ion_box("NaCl", n_pairs, 16, seed=3)
    pdb = out.parent / f"{out.name}.pdb"
    write_topology_pdb(topology, positions, box, pdb)
    cfg = SimulationConfig(topology=str(pdb), model=str(model_path), cutoff_nm=cutoff_nm, length_ps=0.02,
                           report_interval_fs=4.0, energy_interval_fs=8.0, checkpoint_interval_ps=0.02,
                           equilibration_ps=0.0, minimize=True, minimize_iterations=5, seed=1)
    run_simulation(cfg, out, progress=False)


def test_water_dipoles_of_a_run_add_permanent_and_induced_parts(trained_model, tmp_path):
    """The example's per-molecule dipoles: permanent from the predicted charges, induced from the solver."""
    _tiny_run(trained_model[2], tmp_path / "run", n_pairs=0, cutoff_nm=0.39)
    r = load("water_dipoles").water_dipoles(str(tmp_path / "run"), n_frames=2)
    assert r["n_molecules"] == 16 and r["n_frames"] == 2
    # the permanent part equals the one from the charges the run's reporter saved (an independent path)
    from polarff.simulate import load_trajectory

    traj = load_trajectory(str(tmp_path / "run"))
    picks = np.linspace(0, len(traj["positions"]) - 1, 2).round().astype(int)
    saved = [np.linalg.norm(traj["charges"][k][o:o + 3] @ (traj["positions"][k][o:o + 3] - traj["positions"][k][o]))
             for k in picks for o in range(0, 48, 3)]
    assert r["permanent"] == pytest.approx(np.mean(saved) * 48.0320, rel=1e-6)
    assert 0.5 < r["permanent"] < 3.5 and 0.0 < r["induced"] < r["permanent"]
    # per molecule ||p| - |i|| <= |p + i| <= |p| + |i|, so the means obey the same bounds
    assert abs(r["permanent"] - r["induced"]) - 1e-9 <= r["total"] <= r["permanent"] + r["induced"] + 1e-9


def _transport(d_water, err, lam, n_waters=64, d_ions=(1.0, 1.5), n_pairs=1, box_nm=1.25):
    experiment = {"value": 2.3}
    ions = {s: {"corrected": d + 0.5, "pbc": d, "error": 0.1, "experiment": {"value": d + 0.5}}
            for s, d in zip(("Na+", "Cl-"), d_ions)}
    return {"length_ps": 100.0, "n_waters": n_waters, "n_pairs": n_pairs, "box_nm": box_nm, "temperature_k": 298.15,
            "viscosity_mpa_s": 0.89,
            "kinetic_temperature_k": 280.0 + 10 * d_water,
            "diffusion": {"H2O": {"corrected": d_water, "pbc": d_water - 0.5, "error": err, "experiment": experiment},
                          **ions},
            "conductivity": {"molar_conductivity": {"value": lam, "error": 10.0},
                             "molar_conductivity_formal": {"value": lam + 5, "error": 20.0},
                             "experiment": {"molar_conductivity": {"value": 88.0}}}}


def test_combine_replicas_equal_weights_and_clear_errors(tmp_path, capsys):
    import json

    from polarff.benchmark import combine_replicas
    from polarff.errors import ConfigError

    combined = combine_replicas([_transport(2.0, 0.3, 80.0), _transport(2.4, 0.4, 90.0)])
    assert combined["n_replicas"] == 2 and combined["length_ps"] == 200.0
    assert combined["diffusion"]["H2O"]["value"] == pytest.approx(2.2)
    assert combined["diffusion"]["H2O"]["error"] == pytest.approx(0.25)  # sqrt(0.09 + 0.16) / 2
    assert combined["conductivity"]["molar_conductivity"]["value"] == pytest.approx(85.0)
    assert combined["conductivity"]["molar_conductivity_formal"]["error"] == pytest.approx(np.sqrt(800) / 2)
    # replicas that disagree by more than their block errors say: the scatter sets the error bar
    scattered = combine_replicas([_transport(2.0, 0.05, 80.0), _transport(3.0, 0.05, 80.0)])["diffusion"]["H2O"]
    assert scattered["block_error"] == pytest.approx(np.sqrt(0.005) / 2)
    assert scattered["scatter_error"] == pytest.approx(0.5)  # std(2, 3; ddof 1) / sqrt(2)
    assert scattered["error"] == pytest.approx(0.5)
    # Λ × the Yeh–Hummer factor of the mean ion D: (1.25 + 1.75) / (0.75 + 1.25) here
    mixed = combine_replicas([_transport(2.0, 0.3, 80.0, d_ions=(0.5, 1.0)), _transport(2.0, 0.3, 90.0)])
    scaled = mixed["conductivity"]["molar_conductivity_yh_scaled"]
    assert scaled["factor"] == pytest.approx(3.0 / 2.0) and scaled["value"] == pytest.approx(85.0 * 1.5)
    assert scaled["replicas"][0][0] == pytest.approx(80.0 * 2.5 / 1.5)  # each replica's own factor
    assert scaled["scatter_error"] == pytest.approx(mixed["conductivity"]["molar_conductivity"]["scatter_error"] * 1.5)
    single = combine_replicas([_transport(2.0, 0.3, 80.0)])["diffusion"]["H2O"]
    assert single["error"] == pytest.approx(0.3) and np.isnan(single["scatter_error"])
    with pytest.raises(ConfigError, match="n_waters"):
        combine_replicas([_transport(2.0, 0.3, 80.0), _transport(2.0, 0.3, 80.0, n_waters=128)])
    with pytest.raises(ConfigError, match="no replicas"):
        combine_replicas([])

    example = load("combine_replicas")
    for i, d in enumerate((2.0, 2.4)):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "results.json").write_text(json.dumps({"transport": {"polarff-nacl": _transport(d, 0.3, 85.0)}}))
    assert example.main([str(tmp_path / "r0"), str(tmp_path / "r1")]) == 0
    out = capsys.readouterr().out
    assert "| D(H2O) (1e-9 m²/s) | 2.00 ± 0.30 | 2.40 ± 0.30 | 2.20 ± 0.21 | 0.21 / 0.20 | 2.30 | -4 %: within 15 % | 2 |" in out  # (0.283 / 0.23)²
    assert "| mean kinetic T (K) | 300.0 | 304.0 |" in out and "100 ps replicas for ± 10 %" in out
    assert combined["kinetic_temperature_k"] == [300.0, 304.0]
    assert example.main([str(tmp_path / "r0"), str(tmp_path / "missing")]) == 2
    assert "missing/results.json" in capsys.readouterr().out
    # replicas run with different thermostats or frictions are not one estimate; a record made before the
    # thermostat key existed ran Langevin
    for i, friction in enumerate((1.0, 0.1)):
        (tmp_path / f"r{i}" / "runs" / "polarff-nacl").mkdir(parents=True)
        record = {"config": {"model": "m.pff", "friction_per_ps": friction}}
        (tmp_path / f"r{i}" / "runs" / "polarff-nacl" / "run.json").write_text(json.dumps(record))
    assert example.main([str(tmp_path / "r0"), str(tmp_path / "r1")]) == 2
    out = capsys.readouterr().out
    assert "config.friction_per_ps" in out and "r0: 1.0" in out and "r1: 0.1" in out
    record = {"config": {"model": "m.pff", "friction_per_ps": 1.0, "thermostat": "nose-hoover"}}
    (tmp_path / "r1" / "runs" / "polarff-nacl" / "run.json").write_text(json.dumps(record))
    assert example.main([str(tmp_path / "r0"), str(tmp_path / "r1")]) == 2
    out = capsys.readouterr().out
    assert "config.thermostat" in out and "r0: langevin" in out and "r1: nose-hoover" in out


def test_combine_replicas_compares_two_boxes_with_propagated_ratio_errors(tmp_path, capsys):
    """--versus: each set combined on its own, then first / second per quantity with σ_r = r √(Σ (σ/x)²);
    a second set of another composition is refused with both files and the molalities named."""
    import json

    example = load("combine_replicas")

    def write(name, transport):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"transport": {"polarff-nacl": transport}}))

    write("small0", _transport(2.0, 0.3, 80.0))
    write("small1", _transport(2.0, 0.3, 80.0))
    write("large0", _transport(2.2, 0.2, 100.0, n_waters=256, n_pairs=4, box_nm=1.98, d_ions=(1.2, 1.5)))
    assert example.main([str(tmp_path / "small0"), str(tmp_path / "small1"), "--versus", str(tmp_path / "large0")]) == 0
    out = capsys.readouterr().out
    assert ("| quantity | 64 H₂O + 1 NaCl, 1.25 nm, n = 2 | 256 H₂O + 4 NaCl, 1.98 nm, n = 1 | first / second | "
            "1/L → ∞ | ∞ / first |") in out
    # Λ: 80 ± 10/√2 against 100 ± 10 → 0.8 × √(0.0884² + 0.1²) = 0.107; 1/L → ∞: (1.98 × 100 − 1.25 × 80) / 0.73
    # = 134.25 ± √((1.98 × 10)² + (1.25 × 7.07)²) / 0.73 = 29.70, 1.678 over the first
    assert "| Λ EH (S cm²/mol) | 80.00 ± 7.07 | 100.00 ± 10.00 | 0.800 ± 0.107 | 134.25 ± 29.70 | 1.678 ±" in out
    # D(Na⁺): PBC 1.0 against 1.2 and corrected 1.5 against 1.7, both with errors 0.1/√2 and 0.1
    assert "| D(Na+) PBC (1e-9 m²/s) | 1.00 ± 0.07 | 1.20 ± 0.10 | 0.833 ± 0.091 |" in out
    assert "| D(Na+) Yeh–Hummer corrected | 1.50 ± 0.07 | 1.70 ± 0.10 | 0.882 ± 0.067 |" in out
    # water PBC D 1.50 → 1.70 at 298.15 K
    from polarff.analysis import yeh_hummer_correction

    # the slope is 0.7 σ: not resolved, and its 2σ upper end 0.20 + 2 × 0.29 bounds η from below
    slope_top = 0.2 + 2 * np.hypot(0.3 / np.sqrt(2), 0.2)
    bound = 0.89 * (yeh_hummer_correction(298.15, 1.25) - yeh_hummer_correction(298.15, 1.98)) / slope_top
    assert (f"D₂ − D₁ = 0.20 ± 0.29 (0.7 σ): not resolved; η > {bound:.2f} mPa·s at 2σ "
            "(the Yeh–Hummer corrections above use 0.89 mPa·s)") in out
    # with tight water D the slope is resolved and η comes with its error
    write("small2", _transport(1.5, 0.02, 80.0))
    write("large1", _transport(2.2, 0.02, 100.0, n_waters=256, n_pairs=4, box_nm=1.98))
    assert example.main([str(tmp_path / "small2"), "--versus", str(tmp_path / "large1")]) == 0
    eta = 0.89 * (yeh_hummer_correction(298.15, 1.25) - yeh_hummer_correction(298.15, 1.98)) / 0.7
    assert f"(24.7 σ), η = {eta:.2f} ± {eta * np.hypot(0.02, 0.02) / 0.7:.2f} mPa·s" in capsys.readouterr().out
    write("other", _transport(2.2, 0.2, 100.0, n_waters=128, n_pairs=1, box_nm=1.57))
    assert example.main([str(tmp_path / "small0"), "--versus", str(tmp_path / "other")]) == 2
    out = capsys.readouterr().out
    assert "differ in composition" in out and "small0" in out and "other" in out and "0.01562" in out and "0.00781" in out


def test_combine_replicas_reads_a_run_still_under_way_from_its_frames(tmp_path, capsys):
    """A replica folder without results.json (its benchmark still running) is analysed from runs/RUN:
    Brownian ions with set D come back as those D, and the table shows the length read."""
    example = load("combine_replicas")
    rng = np.random.default_rng(5)
    n_pairs, n_waters = 4, 20  # enough atoms that the centre-of-mass removal barely touches the ions
    symbols = ["Na"] * n_pairs + ["Cl"] * n_pairs + ["O", "H", "H"] * n_waters
    d_nm2_ps = np.array([1.33e-3] * n_pairs + [2.03e-3] * n_pairs + [2.3e-3] * 3 * n_waters)  # 1.33, 2.03, 2.3 × 1e-9 m²/s
    n_frames, dt_ps = 4000, 0.025
    steps = rng.normal(size=(n_frames, len(symbols), 3)) * np.sqrt(2 * d_nm2_ps * dt_ps)[None, :, None]
    run = tmp_path / "running" / "runs" / "polarff-nacl"
    run.mkdir(parents=True)
    np.savez(run / "trajectory.npz", time=dt_ps * np.arange(1, n_frames + 1), positions=np.cumsum(steps, axis=0),
             box=np.tile(np.eye(3) * 1.25, (n_frames, 1, 1)), symbols=np.array(symbols), temperature_k=298.15,
             masses=np.array([22.99] * n_pairs + [35.45] * n_pairs + [16.0, 1.008, 1.008] * n_waters),
             charges=np.tile([1.0] * n_pairs + [-1.0] * n_pairs + [-0.8, 0.4, 0.4] * n_waters, (n_frames, 1)),
             residue_index=np.concatenate([np.arange(2 * n_pairs), np.repeat(2 * n_pairs + np.arange(n_waters), 3)]),
             residue_names=np.array(["NA"] * n_pairs + ["CL"] * n_pairs + ["HOH"] * 3 * n_waters))
    transport = example.read_transport(str(tmp_path / "running"), "polarff-nacl")
    assert transport["length_ps"] == pytest.approx(100.0, abs=0.1)
    assert transport["diffusion"]["Na+"]["pbc"] == pytest.approx(1.33, rel=0.3)
    assert transport["diffusion"]["Cl-"]["pbc"] == pytest.approx(2.03, rel=0.3)
    assert transport["diffusion"]["H2O"]["pbc"] == pytest.approx(2.3, rel=0.15)  # sixty atoms' walks
    assert transport["diffusion"]["Na+"]["fit_window_ps"] == pytest.approx([2.0, 9.975], abs=0.01)  # 10–50 % of its 20 ps blocks
    # a run planned for 150 ps gets the lag window its finished analysis will use: 10–50 % of 30 ps
    (run / "run.json").write_text(json.dumps({"config": {"length_ps": 150.0}}))
    planned = example.read_transport(str(tmp_path / "running"), "polarff-nacl")
    assert planned["diffusion"]["Na+"]["fit_window_ps"] == pytest.approx([3.0, 15.0], abs=0.03)
    (run / "run.json").write_text(json.dumps({"config": {"length_ps": 500.0}}))  # 10–50 ps: beyond its blocks so far
    assert example.read_transport(str(tmp_path / "running"), "polarff-nacl")["diffusion"]["Na+"]["fit_window_ps"] == \
        pytest.approx([2.0, 9.975], abs=0.01)
    (run / "run.json").unlink()  # the finished replica below has no run record to compare settings with
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "results.json").write_text(json.dumps({"transport": {"polarff-nacl": {**transport, "length_ps": 50.0}}}))
    assert example.main([str(finished), str(tmp_path / "running")]) == 0
    out = capsys.readouterr().out
    assert "| quantity | finished (50 ps) | running (100 ps) |" in out


def test_ion_environment_charge_of_labelled_frames(tmp_path, capsys):
    """Ions whose first-shell waters (one across the periodic boundary) carry the rest of ±1 give ±1 at every
    radius; a missing charge field is named."""
    import ase
    import ase.io

    from polarff.errors import InputError

    example = load("ion_environment_charge")
    edge = 14.0  # Å
    water = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    positions = [[1.0, 1.0, 1.0], [8.0, 8.0, 8.0]]  # Na, Cl
    positions += (water + [3.6, 1.0, 1.0]).tolist() + (water + [8.0, 8.0, 11.6]).tolist()  # first shells
    positions += (water + [1.0, 1.0, 13.3]).tolist()  # across the boundary, 0.7 Å from Na by minimum image
    symbols = ["Na", "Cl"] + ["O", "H", "H"] * 3
    atoms = ase.Atoms(symbols, positions=positions, cell=[edge] * 3, pbc=True)
    q = np.array([0.8, -0.9, -0.8, 0.45, 0.45, -0.8, 0.35, 0.35, -0.7, 0.4, 0.4])  # waters: +0.1, −0.1, +0.1
    atoms.arrays["REF_charges"] = q
    path = tmp_path / "frame.xyz"
    ase.io.write(path, [atoms, atoms])
    charges = example.label_charges(str(path))
    assert [c for c, _ in charges["Na"]] == pytest.approx([1.0, 1.0, 1.0])
    assert [c for c, _ in charges["Cl"]] == pytest.approx([-1.0, -1.0, -1.0])
    assert example.main(["--labels", str(path)]) == 0
    assert "+1.000" in capsys.readouterr().out
    assert example.label_charges(str(path), n_pairs=2) == {}  # the frames have no n_pairs key
    del atoms.arrays["REF_charges"]
    ase.io.write(path, [atoms])
    with pytest.raises(InputError, match="frame 0: charges"):
        example.label_charges(str(path))


def test_water_factor_scan_interpolates_ln_d_between_the_bracketing_factors():
    """The factor where D(H2O) meets experiment: exact for ln D linear in F, taken from the two neighbouring
    factors on either side (not a global fit), None when no pair brackets experiment; --point is parsed with
    a clear error."""
    import argparse

    example = load("water_factor_scan")
    d_exp = example.D_WATER_EXPERIMENT
    # ln D = ln d_exp - 10 (F - 1.13): exactly 1.13, whatever the order and the far points
    points = [(f, d_exp * np.exp(-10.0 * (f - 1.13))) for f in (1.21, 1.10, 1.16)]
    assert example.water_factor_crossing(points) == pytest.approx(1.13, abs=1e-12)
    # a far point that breaks global linearity does not move the bracketed interpolation
    assert example.water_factor_crossing(points + [(1.40, 0.01)]) == pytest.approx(1.13, abs=1e-12)
    assert example.water_factor_crossing([(1.1, 3.0), (1.2, 2.5)]) is None
    assert example.parse_point("1.13:3.24") == (1.13, 3.24)
    with pytest.raises(argparse.ArgumentTypeError, match="FACTOR:SIGMA_O"):
        example.parse_point("1.13")
    # the two modes: building models needs --point and --chi-runs, measuring a model needs --sigma-o
    for argv in (["--point", "1.13:3.24"], ["--model", "m.pff"], ["--model", "m.pff", "--sigma-o", "3.2",
                                                                  "--point", "1.13:3.24"]):
        with pytest.raises(SystemExit):
            example.main(argv)


def test_ion_water_dimer_binding_is_invariant_and_mp2_binds_the_water_dimer(trained_model):
    """The dimer example's model binding energy does not change when the whole dimer is rotated and moved;
    its parabola finds an exact minimum; counterpoise MP2 binds the water dimer by a hydrogen bond's energy."""
    from scipy.spatial.transform import Rotation

    example = load("ion_water_dimers")
    x = np.array([2.8, 3.0, 3.2, 3.4])
    assert example.parabola_minimum(x, 2.0 * (x - 3.1) ** 2 - 57.0) == pytest.approx((3.1, -57.0))

    model = trained_model[0]
    for kind in ("Cl", "Na"):
        symbols, start, split = example.dimer_start(kind)
        rotated = start @ Rotation.from_euler("xyz", [0.4, -1.1, 2.0]).as_matrix().T + np.array([0.3, -0.2, 0.5])
        e_start, e_rotated = example.model_binding(model, symbols, split, np.array([start, rotated]))
        assert abs(e_start) > 1.0  # an ion next to a water interacts
        assert e_rotated == pytest.approx(e_start, abs=1e-4 * abs(e_start))

    symbols, start, split = example.dimer_start("water")
    e_mp2 = example.mp2_binding(symbols, split, start, basis="aug-cc-pvdz")
    assert -25.0 < e_mp2 < -12.0  # (H2O)2 at O–O 2.86 Å: about −20 kJ/mol


def test_chloride_radius_scan_changes_only_the_cl_radius_and_counts_shell_hydrogens(tmp_path):
    """The scan's XML differs from the model's only in the Cl⁻ sigma; bad XML is named; the H count around Cl⁻
    uses the minimum image."""
    from polarff.build import forcefield_path

    example = load("chloride_radius_scan")
    source = forcefield_path("polarff_nacl_gfn2_water113_fixed_terms")
    original, changed = Path(source).read_text(), example.xml_with_cl_sigma(source, 0.482)
    diff = [(a, b) for a, b in zip(original.splitlines(), changed.splitlines()) if a != b]
    assert len(diff) == 1 and 'type="pff-Cl"' in diff[0][1] and 'sigma="0.482"' in diff[0][1]
    bad = tmp_path / "bad.xml"
    bad.write_text("<ForceField/>")
    with pytest.raises(ValueError, match="bad.xml.*found 0"):
        example.xml_with_cl_sigma(str(bad), 0.48)

    # Cl at the origin of a 2 nm box; H at 0.25 nm across the boundary (counted), 0.35 nm (not), an O near.
    traj = {"symbols": np.array(["Cl", "H", "H", "O"]), "box": np.array([np.eye(3) * 2.0] * 2),
            "positions": np.array([[[0.0, 0, 0], [1.75, 0, 0], [0.0, 0.35, 0], [0.0, 0, 0.2]],
                                   [[0.0, 0, 0], [0.1, 0, 0], [0.0, 0.29, 0], [0.0, 0, 0.2]]])}
    assert example.hydrogens_near(traj) == pytest.approx(1.5)  # 1 then 2


def test_chloride_variant_scales_only_the_cl_class_values(trained_model, tmp_path):
    """--write-variant changes the Cl⁻ α (or q) classes by the factor and nothing else."""
    from polarff.artifact import load_model
    from polarff.errors import ConfigError

    example = load("chloride_radius_scan")
    out = tmp_path / "variant.pff"
    example.write_cl_variant(str(trained_model[2]), str(out), polarizability_factor=0.5)
    before, after = load_model(trained_model[2]), load_model(out)
    row = list(before.bins["polarizabilities"].species).index("Cl")
    for target in ("charges", "polarizabilities"):
        expected = before.bins[target].centres.copy()
        if target == "polarizabilities":
            expected[row] *= 0.5
        np.testing.assert_array_equal(after.bins[target].centres, expected)
    assert "x0.5" in after.card["variant"] and after.thole is None
    example.main(["--model", str(trained_model[2]), "--write-variant", str(out), "--thole", "Cl=0.12",
                  "--thole-basis", "test fit"])
    damped = load_model(out)
    assert damped.thole == {"a": {"Cl": 0.12}, "basis": "test fit"}
    assert damped.thole_per_atom(["O", "Cl"]) == [0.39, 0.12]
    with pytest.raises(ConfigError, match="Br"):
        example.write_cl_variant(str(trained_model[2]), str(out), thole={"Br": 0.1})


def test_ion_shell_response_cuts_a_charged_shell_and_is_rotation_invariant(trained_model):
    """The shell example cuts Cl⁻ with whole neutral waters (the ion at the origin); the model's Δα and |Δμ|
    do not change when the cluster turns about the ion; a free ion has no dipole and its α times the factor;
    the factor interpolation inverts a straight line, inside the scan and (flagged) beyond it."""
    from scipy.spatial.transform import Rotation

    from polarff.data import Frame
    from polarff.io import read_frames

    example = load("ion_shell_response")
    frame = read_frames(EXAMPLES.parent / "polarff" / "data" / "nacl_aq.xyz")[0]
    cluster, waters, alone = example.shell_parts(frame, "Cl")
    assert cluster.total_charge == -1.0 and waters.total_charge == 0.0 and not cluster.periodic
    np.testing.assert_allclose(cluster.positions[cluster.symbols.index("Cl")], 0.0, atol=1e-12)
    assert waters.symbols == ["O", "H", "H"] * (len(waters.symbols) // 3) and len(waters.symbols) >= 9
    o_h = np.linalg.norm(waters.positions[1::3] - waters.positions[0::3], axis=1)
    assert np.all(o_h < 1.2)  # whole waters
    near = [np.linalg.norm(p) for s, p in zip(waters.symbols, waters.positions) if s == "O"]
    assert max(near) < example.SHELL_A["Cl"]

    model = trained_model[0]
    turn = Rotation.from_euler("xyz", [0.7, -0.4, 1.9]).as_matrix()
    turned = Frame(symbols=cluster.symbols, positions=cluster.positions @ turn.T, total_charge=-1.0)
    for factor in (1.0, 0.5):
        a, mu, a_ion = example.model_response(model, cluster, "Cl", factor)
        a_t, mu_t, _ = example.model_response(model, turned, "Cl", factor)
        np.testing.assert_allclose(a_t, turn @ a @ turn.T, atol=1e-8)
        np.testing.assert_allclose(mu_t, turn @ mu, atol=1e-8)
        a_free, mu_free, a_free_ion = example.model_response(model, alone, "Cl", factor)
        np.testing.assert_allclose(mu_free, 0.0, atol=1e-12)
        assert example.isotropic(a_free) == pytest.approx(a_free_ion)
    full, half = (example.model_response(model, alone, "Cl", f)[2] for f in (1.0, 0.5))
    assert half == pytest.approx(0.5 * full)

    # the ion's Thole strength: 0.39 is the model's own; a smaller one damps the ion–water pairs
    default, set_default, damped = (example.model_response(model, cluster, "Cl", 1.0, a) for a in (None, 0.39, 0.05))
    np.testing.assert_array_equal(default[1], set_default[1])
    assert np.linalg.norm(damped[1] - default[1]) > 1e-3
    a_t, mu_t, _ = example.model_response(model, turned, "Cl", 1.0, 0.05)
    np.testing.assert_allclose(mu_t, turn @ damped[1], atol=1e-8)

    assert example.interpolate_factor([1.0, 0.5, 0.25], [3.0, 1.5, 0.75], 2.25) == (pytest.approx(0.75), False)
    assert example.interpolate_factor([1.0, 0.5, 0.25], [3.0, 1.5, 0.75], 4.5) == (pytest.approx(1.5), True)


def test_ion_damping_fit_picks_the_least_rms_error():
    """Per α factor the fit picks the Thole value whose Δμ is closest to DFT's over the frames."""
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        example = load("ion_damping_fit")
    finally:
        sys.path.remove(str(EXAMPLES))
    dft = np.array([[0.30, 4.4], [0.40, 4.4]])
    thole_values = [0.39, 0.2, 0.1]
    model_values = np.zeros((2, 2, 3, 2))
    model_values[..., 0] = [[[0.36, 0.31, 0.25], [0.40, 0.36, 0.30]],
                            [[0.46, 0.41, 0.33], [0.50, 0.45, 0.41]]]
    assert example.best_thole(model_values, dft, thole_values) == [0.2, 0.1]


def test_cutoff_sensitivity_keeps_the_ewald_energy_and_changes_only_the_truncated_induction(trained_model, tmp_path):
    """At the run's own cutoff nothing changes; other cutoffs move the induction but not the Ewald energy."""
    from polarff.errors import ConfigError

    _tiny_run(trained_model[2], tmp_path / "run", n_pairs=1, cutoff_nm=0.35)
    example = load("cutoff_sensitivity")
    result = example.cutoff_sensitivity(str(tmp_path / "run"), [0.35, 0.3, 0.38], n_frames=2)
    own, short, long = result["rows"]
    assert result["run_cutoff_nm"] == 0.35 and result["n_waters"] == 16
    assert all(change == 0.0 for change, _ in own["force_change"].values())
    for row in (short, long):
        assert row["permanent_per_water"] == pytest.approx(own["permanent_per_water"], rel=3e-3)  # Ewald tolerance
        assert abs(row["induction_per_water"] - own["induction_per_water"]) > 1e-4
        assert all(change > 0.0 and size > 0.0 for change, size in row["force_change"].values())
    assert "| 0.35 (run) |" in example.format_table(result)
    # the switched field of earlier versions moves much more with the cutoff than the full one
    switched = example.cutoff_sensitivity(str(tmp_path / "run"), [0.35, 0.3], n_frames=2, induction_field="switched")
    assert (abs(switched["rows"][1]["induction_per_water"] - switched["rows"][0]["induction_per_water"])
            > 2 * abs(short["induction_per_water"] - own["induction_per_water"]))
    on_box = example.box_induction(str(tmp_path / "run"), str(tmp_path / "run.pdb"), [0.35, 0.3])
    assert len(on_box) == 2 and all(v < 0.0 for v in on_box)
    with pytest.raises(ConfigError, match=r"--cutoffs: 0.45 nm must lie in \(0, 0.3"):
        example.cutoff_sensitivity(str(tmp_path / "run"), [0.45])


def test_ship_water_model_writes_fixed_terms_with_the_radius_and_the_card_keys(trained_model, tmp_path):
    import shutil

    from polarff.artifact import load_model
    from polarff.openmm.system import model_fixed_terms

    (tmp_path / "scan" / "f1.5").mkdir(parents=True)
    shutil.copy(trained_model[2], tmp_path / "scan" / "f1.5" / "model.pff")
    xml, path = load("ship_water_model").ship(tmp_path / "scan", "1.5", 3.31, "test density", tmp_path)
    text = xml.read_text()
    assert '<Atom type="pff-OW" charge="0.0" sigma="0.331"' in text and 'sigma="0.466"' in text
    assert "hand-set factor 1.5" in text and "test density" in text
    model = load_model(path)
    assert model.card["fixed_terms"] == "polarff_nacl_gfn2_water15_fixed_terms"
    assert model.card["induction_field"] == "full" and model.thole["a"] == {"Cl": 0.16}
    with pytest.raises(Exception, match="water15"):  # not a shipped name until added to FORCEFIELD_NAMES
        model_fixed_terms(model)


def test_ship_ion_radii_reproduces_the_shipped_fixed_terms_and_keeps_the_network(tmp_path):
    """examples/ship_ion_radii.py on the water-1.26 model with the shipped radii writes the shipped XML body and a
    model that differs from its base only in the card keys fixed_terms and variant."""
    from polarff.artifact import load_model
    from polarff.build import forcefield_path

    folder = Path(forcefield_path("polarff_fixed_terms")).parent
    base_path = folder / "nacl_gfn2_water126_clthole.pff"
    xml, path = load("ship_ion_radii").ship(base_path, "water126_ionradii", 2.27, 4.33, "test basis", tmp_path)
    shipped = (folder / "polarff_nacl_gfn2_water126_ionradii_fixed_terms.xml").read_text()
    text = xml.read_text()
    assert text[text.index("<ForceField>"):] == shipped[shipped.index("<ForceField>"):]
    assert "sigma 2.4393 -> 2.27 A" in text and "sigma 4.66 -> 4.33 A" in text and "test basis" in text
    base, model = load_model(base_path), load_model(path)
    for name, weights in base.weights.items():
        np.testing.assert_array_equal(model.weights[name], weights)
    assert model.electronegativity == base.electronegativity and model.thole == base.thole
    assert model.card["fixed_terms"] == "polarff_nacl_gfn2_water126_ionradii_fixed_terms"
    assert model.card["variant"].startswith(base.card["variant"]) and "sigma_Na 2.27 A" in model.card["variant"]
    with pytest.raises(ValueError, match="cannot hold '--'"):
        load("ship_ion_radii").ship(base_path, "x", 2.3, 4.4, "rebalance_lj.py --paired", tmp_path)
    with pytest.raises(ValueError, match="no fixed_terms"):
        base.card.pop("fixed_terms")
        base.save(tmp_path / "bare.pff")
        load("ship_ion_radii").ship(tmp_path / "bare.pff", "x", 2.3, 4.4, "b", tmp_path)


def test_thermostat_friction_runs_each_thermostat_and_compares_with_the_reference(tmp_path, capsys):
    """Tiny real runs of the fixed-charge baseline at two Langevin frictions and with Nosé–Hoover: one table
    row each with its measured temperature, ratios to the Nosé–Hoover run; resumed (not rerun) the second
    time; bad options are refused."""
    from polarff.errors import ConfigError

    example = load("thermostat_friction")
    args = ["--out", str(tmp_path / "f"), "--waters", "32", "--pairs", "1", "--frictions", "1", "0.1",
            "--nose-hoover", "1", "--length-ps", "2", "--equilibration-ps", "0.2", "--report-interval-fs", "20",
            "--cutoff", "0.45"]
    assert example.main(args) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| Lang")
            or line.startswith("| Nos")}
    assert set(rows) == {"Langevin 1", "Langevin 0.1", "Nosé–Hoover 1"}
    assert rows["Nosé–Hoover 1"].endswith("| 1 | 1 | 1 | 1 |") and "to the run 'Nosé–Hoover 1'" in out
    assert 200.0 < float(rows["Langevin 1"].split("|")[2]) < 400.0  # the measured mean temperature
    saved = json.loads((tmp_path / "f" / "friction.json").read_text())
    assert set(saved) == set(rows) and all(len(saved[k]["H2O"]) == 2 for k in saved)
    record = json.loads((tmp_path / "f" / "nh1" / "run.json").read_text())["config"]
    assert record["thermostat"] == "nose-hoover" and record["collision_frequency_per_ps"] == 1.0
    assert example.ratio(2.0, 0.2, 4.0, 0.0) == pytest.approx((0.5, 0.05))
    assert all(np.isnan(example.ratio(2.0, 0.2, 0.0, 0.1)))
    assert example.main(args + ["--reference", "0.1"]) == 0
    captured = capsys.readouterr()
    assert "to the run 'Langevin 0.1'" in captured.out
    assert "[friction]" not in captured.err and "[simulate]" not in captured.err  # read, not run again
    with pytest.raises(ConfigError, match="two or more different values > 0"):
        example.main(["--frictions", "1", "1"])
    with pytest.raises(ConfigError, match="two or more different values > 0"):
        example.main(["--frictions", "1", "0"])
    with pytest.raises(ConfigError, match=r"--reference: expected one of --frictions \[1.0, 0.1\] \(found 0.5\)"):
        example.main(["--frictions", "1", "0.1", "--reference", "0.5"])


def test_replica_statistics_compares_scatter_with_block_errors_and_box_sizes(tmp_path, capsys):
    """Tiny real replicas of the fixed-charge baseline in two boxes (each replica its own box and seed): one row
    per quantity with each box's mean, the honesty table of the first box; measured once, read back on a
    rerun; the statistics are those of the replicas' numbers."""
    from polarff.errors import ConfigError

    example = load("replica_statistics")
    args = ["--out", str(tmp_path / "r"), "--box", "32", "1", "2", "--box", "64", "2", "1", "--length-ps", "2",
            "--report-interval-fs", "20", "--cutoff", "0.45"]
    assert example.main(args) == 0
    out = capsys.readouterr().out
    means = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
             if line.startswith("| D(") or line.startswith("| Λ")}
    assert set(means) == set(example.QUANTITIES.values())
    assert all(len(cells) == 5 for cells in means.values())  # two boxes, their ratio, 1/L → ∞ and ∞ / first
    measured = [json.loads((tmp_path / "r" / f"32w1p-s{s}" / "measured.json").read_text()) for s in (100, 101)]
    water = [m["H2O"][0] for m in measured]
    assert all(0.5 < d < 15.0 for d in water)  # TIP3P diffuses, fast in 2 ps
    assert means["D(H₂O)"][0].strip() == f"{np.mean(water):.3f} ± {np.std(water, ddof=1) / np.sqrt(2):.3f}"
    for m in measured:  # the Yeh–Hummer-scaled conductivity: Λ times (ΣD corrected) / (ΣD periodic)
        assert m["Lambda_YH"][0] > m["Lambda"][0] > 0
        assert m["Lambda_EH_over_NE_pbc"][0] == pytest.approx(m["Lambda"][0] / m["Lambda_NE_pbc"][0])
    large = json.loads((tmp_path / "r" / "64w2p-s100" / "measured.json").read_text())
    assert large["box_nm"] == pytest.approx(measured[0]["box_nm"] * 2 ** (1 / 3), rel=0.02)  # twice the contents
    honesty = [line for line in out.splitlines() if line.startswith("| 32 H₂O + 1 NaCl |")]
    assert len(honesty) == 4 and not any(line.startswith("| 64 H₂O") for line in out.splitlines())  # n = 1: none
    record = json.loads((tmp_path / "r" / "32w1p-s101" / "run" / "run.json").read_text())["config"]
    assert record["thermostat"] == "nose-hoover" and record["seed"] == 101
    assert example.main(args) == 0
    captured = capsys.readouterr()
    assert "[replicas]" not in captured.err and "[simulate]" not in captured.err  # read, not run again
    assert captured.out == out
    stats = example.statistics([{"x": [1.0, 0.1]}, {"x": [2.0, 0.3]}, {"x": [3.0, 0.2]}], "x")
    assert stats["mean"] == pytest.approx(2.0) and stats["std"] == pytest.approx(1.0)
    assert stats["standard_error"] == pytest.approx(1 / np.sqrt(3)) and stats["mean_block_error"] == pytest.approx(0.2)
    assert stats["replicas_for_10_percent"] == 25  # (1 / 0.2)²
    with pytest.raises(ConfigError, match="the first box needs at least 2 replicas"):
        example.main(["--box", "64", "1", "1"])
    with pytest.raises(ConfigError, match="WATERS, PAIRS and REPLICAS >= 1"):
        example.main(["--box", "64", "0", "4"])


def _brownian_run(folder: Path, seed: int, symbols: list[str], diffusion_nm2_ps: list[float],
                  n_frames: int = 4000, dt_ps: float = 0.05, box_nm: float = 1.25) -> None:
    """A run folder whose merged trajectory is free Brownian motion with set diffusion coefficients."""
    rng = np.random.default_rng(seed)
    step_size = np.sqrt(2 * np.array(diffusion_nm2_ps) * dt_ps)  # nm per Cartesian component
    steps = rng.normal(size=(n_frames, len(symbols), 3)) * step_size[None, :, None]
    folder.mkdir(parents=True)
    np.savez(folder / "trajectory.npz", time=dt_ps * np.arange(1, n_frames + 1), positions=np.cumsum(steps, axis=0),
             box=np.tile(np.eye(3) * box_nm, (n_frames, 1, 1)), symbols=np.array(symbols), temperature_k=298.15)


def test_fit_window_sensitivity_recovers_the_known_conductivity_of_brownian_ions(tmp_path, capsys):
    """Independent Brownian Na⁺ and Cl⁻: every lag window gives the Nernst–Einstein Λ (exact here), and the
    paired differences between windows vanish within their error; bad input is refused clearly."""
    from polarff.errors import ConfigError, InputError

    example = load("fit_window_sensitivity")
    d_na, d_cl = 1.33e-3, 2.03e-3  # nm²/ps, i.e. 1.33 and 2.03 × 1e-9 m²/s
    runs = []
    for seed in range(8):
        run = tmp_path / f"run{seed}"
        _brownian_run(run, seed, ["Na", "Cl", "O", "H", "H"], [d_na, d_cl, 2.3e-3, 2.3e-3, 2.3e-3])
        runs.append(str(run))
    windows = [example.parse_window(w) for w in ("2-10", "1-5", "4-19")]
    values = np.array([example.formal_conductivities(run, windows, 5) for run in runs])
    faraday, gas = 96485.33212, 8.314462618
    expected = faraday ** 2 / (gas * 298.15) * (d_na + d_cl) * 1e-6 * 1e4  # nm²/ps = 1e-6 m²/s; S cm² mol⁻¹
    rows = example.summarize(values, windows)
    for row in rows:
        assert row["mean"] == pytest.approx(expected, rel=0.25)
    assert rows[0]["difference"] == 0.0
    for row in rows[1:]:
        assert abs(row["difference"]) < 3 * row["difference_error"] + 0.02
    assert rows[1]["relative_scatter"] < rows[2]["relative_scatter"]  # the longer window is the noisier one
    assert example.main(runs + ["--windows", "2-10", "1-5"]) == 0
    assert "| 1–5 ps |" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="START-END"):
        example.parse_window("2to10")
    with pytest.raises(ConfigError, match="START < END"):
        example.parse_window("5-2")
    water = tmp_path / "water"
    _brownian_run(water, 0, ["O", "H", "H"], [2.3e-3] * 3, n_frames=200)
    with pytest.raises(InputError, match="no cation or no anion") as info:
        example.formal_conductivities(str(water), windows[:1], 5)
    assert str(water) in str(info.value)


def test_ion_pairing_windows_follow_two_cations_coming_together():
    """Two Na+ approach at a set speed: per window the nearest distance is the mean of the set distances, the
    contact fraction counts the frames under 0.40 nm, and an energy term that is zero throughout is left out."""
    from polarff.errors import InputError

    example = load("ion_pairing")
    edge, n_frames = 2.0, 2000  # frames every 0.01 ps: 20 ps
    time = np.arange(n_frames) * 0.01
    separation = 0.9 - 0.03 * time  # nm: 0.90 at 0 ps, 0.30 at 20 ps
    positions = np.zeros((n_frames, 3, 3))
    positions[:, 0] = [0.2, 1.0, 1.0]
    positions[:, 1, 0] = 0.2 + separation
    positions[:, 1, 1:] = 1.0
    positions[:, 2] = [1.2, 0.2, 0.2]  # Cl-, far away
    energy_time = time[::10]
    traj = {"symbols": np.array(["Na", "Na", "Cl"]), "time": time, "positions": positions,
            "box": np.repeat(np.eye(3)[None] * edge, n_frames, axis=0), "energy_time": energy_time,
            "potential_energy": -100.0 - energy_time, "polarff_induction_energy": np.zeros_like(energy_time)}
    rows = example.pairing_windows(traj, 10.0, stride=1)
    assert [(r["start_ps"], r["end_ps"]) for r in rows] == [(0.0, 10.0), (10.0, pytest.approx(19.99))]
    first, second = rows[0]["pairing"]["Na-Na"], rows[1]["pairing"]["Na-Na"]
    assert first["nearest_nm"] == pytest.approx(separation[time < 10].mean())
    assert first["contact_fraction"] == 0.0
    assert second["contact_fraction"] == pytest.approx(np.mean(separation[time >= 10] < 0.40))
    assert set(rows[0]["pairing"]) == {"Na-Na", "Na-Cl"}  # one Cl-: no Cl-Cl column
    assert rows[0]["energies"] == {"potential_energy": pytest.approx(-100.0 - energy_time[energy_time < 10].mean())}
    table = example.window_table("run", rows)
    assert "| 10–20 | 0.45 |" in table and "E ind" not in table
    with pytest.raises(InputError, match="at most the run's length"):
        example.pairing_windows(traj, 30.0)
