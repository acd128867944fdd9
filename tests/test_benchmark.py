"""polarff benchmark: transport analysis on known random walks, dipole conventions, sampling plan, report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import water_box
from polarff.benchmark import (agreement, analyze_transport, compare_dipole_series, error_scaling,
                               geometric_water_dipole, molecular_translational_dipole, required_length,
                               sampling_plan)

#: 1e-9 m²/s expressed in nm²/ps.
D_UNIT_NM2_PS = 1e-3


def random_walk_trajectory(seed: int = 0, n_waters: int = 24, n_pairs: int = 4, n_frames: int = 4000,
                           dt_ps: float = 0.01, box_nm: float = 1.6) -> tuple[dict, dict]:
    """A trajectory dict in the simulate format: rigid waters and ions doing independent Brownian motion.

    Waters move as a whole (O, H, H share the displacement), so every molecule stays whole; the true
    diffusion coefficients are returned (1e-9 m²/s).
    """
    rng = np.random.default_rng(seed)
    true_d = {"H2O": 2.3, "Na+": 1.3, "Cl-": 2.0}
    n_mol = n_waters + 2 * n_pairs
    d_mol = np.array([true_d["H2O"]] * n_waters + [true_d["Na+"]] * n_pairs + [true_d["Cl-"]] * n_pairs)
    steps = rng.normal(size=(n_frames, n_mol, 3)) * np.sqrt(2 * d_mol * D_UNIT_NM2_PS * dt_ps)[None, :, None]
    centres = rng.uniform(0, box_nm, size=(n_mol, 3)) + np.cumsum(steps, axis=0)
    template = np.array([[0.0, 0.0, 0.0], [0.0757, 0.0586, 0.0], [-0.0757, 0.0586, 0.0]])
    positions = np.concatenate([(centres[:, :n_waters, None, :] + template).reshape(n_frames, -1, 3),
                                centres[:, n_waters:]], axis=1)
    symbols = ["O", "H", "H"] * n_waters + ["Na"] * n_pairs + ["Cl"] * n_pairs
    charges = np.array([-0.834, 0.417, 0.417] * n_waters + [1.0] * n_pairs + [-1.0] * n_pairs)
    residue_index = np.concatenate([np.repeat(np.arange(n_waters), 3), n_waters + np.arange(2 * n_pairs)])
    traj = {"time": dt_ps * np.arange(1, n_frames + 1), "positions": positions,
            "box": np.tile(np.eye(3) * box_nm, (n_frames, 1, 1)), "charges": np.tile(charges, (n_frames, 1)),
            "symbols": np.array(symbols), "residue_names": np.array(["HOH"] * 3 * n_waters + ["NA"] * n_pairs
                                                                    + ["CL"] * n_pairs),
            "residue_index": residue_index, "masses": np.array([15.999, 1.008, 1.008] * n_waters
                                                                + [22.99] * n_pairs + [35.45] * n_pairs),
            "temperature_k": np.float64(298.15), "timestep_ps": np.float64(0.002)}
    traj["dipole"] = np.einsum("tnk,tn->tk", positions, traj["charges"])
    return traj, true_d


def test_transport_analysis_recovers_known_diffusion_and_uncorrelated_conductivity():
    traj, true_d = random_walk_trajectory()
    summary, curves = analyze_transport(traj, n_blocks=5)
    for label, d in summary["diffusion"].items():
        assert abs(d["pbc"] - true_d[label]) < max(4 * d["error"], 0.08 * true_d[label]), (label, d)
        assert d["corrected"] == pytest.approx(d["pbc"] + d["yh_correction"])
    assert summary["diffusion"]["Na+"]["n_atoms"] == 4 and summary["diffusion"]["H2O"]["n_atoms"] == 24
    cond = summary["conductivity"]
    # independent ions: Einstein–Helfand equals Nernst–Einstein (Haven ratio 1) within the error bars;
    # water is neutral and rigid, so the molecular translational dipole is the formal ion dipole
    assert abs(cond["eh"]["sigma"] - cond["ne"]["sigma"]) < 3 * np.hypot(cond["eh"]["error"], cond["ne"]["error"])
    assert cond["eh"]["sigma"] == pytest.approx(cond["eh_formal"]["sigma"], rel=1e-9)
    assert cond["gk"]["sigma"] > 0
    # NE by hand: σ = e² / (V k_B T) Σ N z² D  (V = 1.6³ nm³)
    e, kb = 1.602176634e-19, 1.380649e-23
    d_true_si = (4 * true_d["Na+"] + 4 * true_d["Cl-"]) * 1e-9
    sigma_true = e ** 2 / (1.6e-9 ** 3 * kb * 298.15) * d_true_si
    assert cond["ne"]["sigma"] == pytest.approx(sigma_true, rel=0.15)
    assert summary["concentration_mol_l"] == pytest.approx(4 / (6.02214076e23 * 1.6 ** 3 * 1e-24), rel=1e-6)
    assert cond["molar_conductivity"]["value"] == pytest.approx(10 * cond["eh"]["sigma"] / summary["concentration_mol_l"])
    # the box-size estimate: Λ times (ΣD corrected) / (ΣD periodic) of the ions, its error at least Λ's relative one
    ions = [summary["diffusion"][s] for s in ("Na+", "Cl-")]
    factor = sum(d["corrected"] for d in ions) / sum(d["pbc"] for d in ions)
    scaled = cond["molar_conductivity_yh_scaled"]
    assert scaled["factor"] == pytest.approx(factor) and factor > 1
    assert scaled["value"] == pytest.approx(cond["molar_conductivity"]["value"] * factor)
    assert scaled["error"] / scaled["value"] >= cond["molar_conductivity"]["error"] / cond["molar_conductivity"]["value"]


def test_molecular_translational_dipole_drops_only_the_bounded_rotational_part():
    traj, _ = random_walk_trajectory(n_frames=50)
    pos, masses, residues = traj["positions"], traj["masses"], traj["residue_index"]
    charges = traj["charges"].copy()
    charges[:, 0] += 0.05  # a water molecule with net charge +0.05 and an ion with -0.05: charge transfer
    charges[:, -1] -= 0.05
    m_trans = molecular_translational_dipole(pos, charges, masses, residues)
    full = np.einsum("tnk,tn->tk", pos, charges)
    # waters translate rigidly here, so Σ q r − Σ Q R is constant in time (the fixed molecular dipoles)
    difference = full - m_trans
    np.testing.assert_allclose(difference, np.broadcast_to(difference[0], difference.shape), atol=1e-10)
    # and it changes with a rotation of a molecule, which leaves Σ Q R unchanged
    rotated = pos.copy()
    rotated[:, 1:3] = 2 * rotated[:, [0]] - rotated[:, 1:3]  # reflect the H atoms of water 0 through O
    m_rot = molecular_translational_dipole(rotated, charges, masses, residues)
    centre_shift = (masses[1:3].sum() * 2 * (pos[:, 0] - pos[:, 1:3].mean(axis=1))) / masses[:3].sum()
    np.testing.assert_allclose(m_rot - m_trans, 0.05 * centre_shift, atol=1e-10)


def test_tnep_dipole_convention_round_trip():
    """M = Σ (r_H1 + r_H2 − 2 r_O) − 2 Σ adipole inverts polarff.tnep.gpumd_dipole_from_molecular."""
    from polarff.tnep import gpumd_dipole_from_molecular

    frame = water_box(n_side=2, seed=4)
    mu = np.random.default_rng(2).normal(size=(8, 3))
    adipole_sum = gpumd_dipole_from_molecular(frame, mu)  # Å
    from polarff.data import unwrap_molecules

    whole_nm = unwrap_molecules(frame)[None] / 10.0
    geometric = geometric_water_dipole(whole_nm, frame.symbols, None)[0]
    np.testing.assert_allclose(geometric - 2 * adipole_sum, mu.sum(axis=0), atol=1e-9)


def test_dipole_series_comparison_and_error_scaling():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(500, 3)) + 5.0
    same = compare_dipole_series(reference + 2.0, reference)
    assert same["correlation"] == pytest.approx(1.0) and same["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert same["std_ratio"] == pytest.approx(1.0) and same["mean_difference"] == pytest.approx(np.sqrt(12))
    half = compare_dipole_series(0.5 * reference, reference)
    assert half["std_ratio"] == pytest.approx(0.5) and half["correlation"] == pytest.approx(1.0)
    lengths = np.array([10.0, 20.0, 40.0, 80.0])
    assert error_scaling(lengths, 3.0 / np.sqrt(lengths)) == pytest.approx(3.0)
    assert required_length(3.0, 0.3) == pytest.approx(100.0)
    assert agreement(1.0, 0.05, 1.1).endswith("within 15 %")
    assert "outside" in agreement(2.0, 0.1, 1.0)
    assert "undetermined" in agreement(1.1, 0.5, 1.0)


def test_sampling_plan_errors_shrink_with_run_length():
    traj, _ = random_walk_trajectory(n_frames=4000, seed=5)
    plan = sampling_plan(traj, fractions=(1 / 16, 1.0), n_blocks=4)
    assert set(plan) == {"D(H2O)", "D(Na+)", "D(Cl-)", "sigma_EH"}
    water = plan["D(H2O)"]
    assert water["lengths_ps"] == pytest.approx([2.5, 40.0])
    assert water["fit_window_ps"] == pytest.approx([0.061, 0.305])  # of 62-frame blocks
    # 16 times longer: the error bar shrinks about 4-fold (a 4-block error estimate scatters by ~40 %)
    assert 1.5 < water["errors"][0] / water["errors"][1] < 12
    assert water["length_for_5pct"] == pytest.approx(4 * water["length_for_10pct"])


@pytest.mark.slow
def test_benchmark_report_on_tiny_runs(trained_model, tmp_path, capsys):
    """The whole command on tiny boxes and sub-ps runs: every section, plot and result is written."""
    from polarff.cli import main

    _, _, model_path = trained_model
    out, report = tmp_path / "bench", tmp_path / "docs" / "tiny.md"
    argv = ["benchmark", str(model_path), "-o", str(out), "--report", str(report), "--waters", "16",
            "--pairs", "1", "--pure-waters", "16", "--length-ps", "0.24", "--water-length-ps", "0.24",
            "--equilibration-ps", "0.02", "--report-interval-fs", "4", "--blocks", "4", "--minimize-iterations", "10"]
    assert main(argv) == 0
    text = report.read_text()
    for section in ("## Command", "## What ran", "## Self-diffusion at 298 K", "## Ionic conductivity",
                    "## IR spectrum", "## polarff dipoles vs the TNEP dipole model", "## Sampling plan",
                    "## Sources"):
        assert section in text, section
    for run in ("polarff-nacl", "formal-nacl", "scaled-nacl", "polarff-water", "tip3p-water"):
        assert f"| {run} |" in text
    assert "polarff benchmark" in text and "±" in text and "Chambers" in text and "Bertie" in text
    assert "**Ion hydration.**" in text and "polarff-nacl -" in text and "formal-nacl -" in text
    # one ion pair: only the Na–Cl pairing column, and the report says like-ion correlations cannot show
    assert "Ion pairing:" in text and "Na-Na nearest" not in text and "like-ion correlations cannot show" in text
    for name in ("msd", "conductivity", "ir"):
        png = report.parent / "img" / f"tiny-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"img/tiny-{name}.png" in text
    results = json.loads((out / "results.json").read_text())
    assert set(results["ions"]["polarff-nacl"]["pairing"]) == {"Na-Cl"}
    # the measured mean kinetic temperature of every run, in the results and in the "What ran" table
    for name, transport in results["transport"].items():
        temperature = transport["kinetic_temperature_k"]
        assert 150.0 < temperature < 450.0, name  # 16 waters over 0.24 ps: a wide window around 298 K
        assert f" | {temperature:.1f} | " in text
    scaled, formal = (results["transport"][k]["conductivity"] for k in ("scaled-nacl", "formal-nacl"))
    assert scaled["ne"]["ion_charges"]["Na"] == pytest.approx(0.75)
    assert formal["eh"]["sigma"] == pytest.approx(formal["eh_formal"]["sigma"])  # neutral rigid TIP3P waters
    # the ion-environment charge: exactly the fixed ion charge with neutral TIP3P waters, at every radius
    for run, z in (("formal-nacl", 1.0), ("scaled-nacl", 0.75)):
        for species, sign in (("Na", 1), ("Cl", -1)):
            for value, _ in results["ions"][run][species]["environment_charge_e"]["charge"]:
                assert value == pytest.approx(sign * z)
    assert "Net charge of each ion together with the molecules" in text
    tnep = results["tnep"]
    assert "skipped" in tnep or tnep["runs"]["polarff-water"]["n_frames"] == 60
    capsys.readouterr()
    assert main(argv) == 0  # finished runs are read, not rerun
    assert "reading the finished run" in capsys.readouterr().err
    # ... but never those of other settings: another thermostat is refused, naming the folder and the key
    assert main(argv + ["--thermostat", "langevin"]) == 2
    err = capsys.readouterr().err
    assert "polarff-nacl: holds a run with other settings (thermostat: expected 'nose-hoover'" in err


def test_benchmark_cli_errors(tmp_path, capsys):
    from polarff.cli import main

    assert main(["benchmark", str(tmp_path / "missing.pff"), "-o", str(tmp_path / "b")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_benchmark_cutoff_and_field_options_reach_the_runs_and_are_checked(trained_model, tmp_path):
    """--cutoff fixes the cutoff of all runs (to compare box sizes at one cutoff); too long for the box: error.
    --induction-field reaches the polarff runs' electrostatics options."""
    from polarff.benchmark import BenchmarkConfig, command_line, plan_runs
    from polarff.errors import ConfigError
    from polarff.simulate import read_pdb

    _, _, model_path = trained_model
    cfg = BenchmarkConfig(model=str(model_path), out=str(tmp_path / "b"), n_waters=16, n_waters_pure=16,
                          baselines=["formal"], cutoff_nm=0.35)
    runs = plan_runs(cfg)
    assert set(runs) == {"polarff-nacl", "formal-nacl", "polarff-water", "tip3p-water"}
    assert {run.cutoff_nm for run in runs.values()} == {0.35}
    assert "--cutoff 0.35" in command_line(cfg)
    default = plan_runs(BenchmarkConfig(model=str(model_path), out=str(tmp_path / "b"), n_waters=16,
                                        n_waters_pure=0, baselines=[]))
    _, _, box = read_pdb(default["polarff-nacl"].topology)
    assert default["polarff-nacl"].cutoff_nm == round(min(0.9, 0.49 * float(box[0, 0])), 3)
    assert "--cutoff" not in command_line(BenchmarkConfig(model=str(model_path)))
    with pytest.raises(ConfigError, match=r"cutoff_nm: 0.6 nm needs a box edge above 1.2 nm.*found a box of"):
        plan_runs(BenchmarkConfig(model=str(model_path), out=str(tmp_path / "b"), n_waters=16, n_waters_pure=0,
                                  baselines=[], cutoff_nm=0.6))
    with pytest.raises(ConfigError, match=r"cutoff_nm must be > 0 nm \(found -1"):
        BenchmarkConfig(model=str(model_path), cutoff_nm=-1.0).validate()
    # the polarising field of earlier versions, for the polarff runs only
    legacy = BenchmarkConfig(model=str(model_path), out=str(tmp_path / "b"), n_waters=16, n_waters_pure=16,
                             baselines=["formal"], induction_field="switched")
    runs = plan_runs(legacy)
    assert runs["polarff-nacl"].electrostatics == runs["polarff-water"].electrostatics == {"induction_field": "switched"}
    assert not runs["formal-nacl"].electrostatics and "--induction-field switched" in command_line(legacy)
    assert not default["polarff-nacl"].electrostatics  # the default: Electrostatics' own (full)
    with pytest.raises(ConfigError, match=r"induction_field: expected 'full' or 'switched' \(found 'ewald'\)"):
        BenchmarkConfig(model=str(model_path), induction_field="ewald").validate()


def test_benchmark_thermostat_reaches_every_run_the_command_and_the_report(trained_model, tmp_path):
    """--thermostat and its coupling reach the polarff and the baseline runs alike; the reproducing command
    always names them (reports made before Nosé–Hoover was the default ran Langevin at 1/ps); the report
    says what the thermostat does to transport; bad values are refused."""
    from polarff.benchmark import BenchmarkConfig, _thermostat_sentence, command_line, plan_runs
    from polarff.errors import ConfigError

    _, _, model_path = trained_model
    default = BenchmarkConfig(model=str(model_path), out=str(tmp_path / "b"), n_waters=16, n_waters_pure=16,
                              baselines=["formal"])
    runs = plan_runs(default)
    assert {(r.thermostat, r.collision_frequency_per_ps) for r in runs.values()} == {("nose-hoover", 1.0)}
    assert "--thermostat nose-hoover --collision-frequency 1 " in command_line(default)
    assert "as in NVE" in _thermostat_sentence(runs["polarff-nacl"])
    legacy = BenchmarkConfig(model=str(model_path), out=str(tmp_path / "b"), n_waters=16, n_waters_pure=16,
                             baselines=["formal"], thermostat="langevin", friction_per_ps=0.5)
    runs = plan_runs(legacy)
    assert {(r.thermostat, r.friction_per_ps) for r in runs.values()} == {("langevin", 0.5)}
    assert "--thermostat langevin --friction 0.5 " in command_line(legacy)
    assert "slows diffusion" in _thermostat_sentence(runs["formal-nacl"])
    with pytest.raises(ConfigError, match=r"friction_per_ps must be a finite number >= 0 \(1/ps; found -1"):
        BenchmarkConfig(model=str(model_path), friction_per_ps=-1.0).validate()
    with pytest.raises(ConfigError, match=r"thermostat: expected one of \('langevin', 'nose-hoover'\)"):
        BenchmarkConfig(model=str(model_path), thermostat="andersen").validate()
    with pytest.raises(ConfigError, match="collision_frequency_per_ps must be a finite number > 0"):
        BenchmarkConfig(model=str(model_path), collision_frequency_per_ps=0.0).validate()


def test_report_never_calls_a_hand_set_water_factor_a_prediction():
    from polarff.benchmark import _labels_sentence

    calibrated = _labels_sentence({"source": "B3LYP/def2-svpd (pyscf) ESP; water: dipole"})
    hand_set = _labels_sentence({"source": "B3LYP/def2-svpd (pyscf) ESP; water: fixed factor 1.11"})
    assert "not fitted to transport" in _labels_sentence(None) and "not fitted to transport" in calibrated
    assert "not fitted to transport" not in hand_set and "1.11" in hand_set and "fitted parameter" in hand_set


def test_report_names_the_electronegativity_term_and_its_runs():
    from polarff.benchmark import _electronegativity_sentence

    assert _electronegativity_sentence({}) == ""
    text = _electronegativity_sentence({"electronegativity": {"chi_kj_mol_e": {"O": -107.14, "Na": 626.3},
                                                              "fitted_on": ["a/polarff-nacl"], "note": ""}})
    assert "O -107.1, Na 626.3" in text and "a/polarff-nacl" in text
    text = _electronegativity_sentence({"electronegativity": {"chi_kj_mol_e": {"O": -59.3, "Na": 679.8},
                                                              "hardness_kj_mol_e2": {"O": 931.7},
                                                              "fitted_on": ["a/polarff-nacl"], "note": ""}})
    assert "½ J (q − q_ref)²" in text and "J (kJ/mol/e²) O 931.7" in text and "a/polarff-nacl" in text


def test_report_names_a_charge_constraint_other_than_the_default():
    from polarff.benchmark import _charge_constraint_sentence

    assert _charge_constraint_sentence({}) == "" == _charge_constraint_sentence({"charge_constraint": "total"})
    text = _charge_constraint_sentence({"charge_constraint": "molecular"})
    assert "Charge constraint molecular: every molecule carries exactly its formal charge" in text


def test_report_names_per_species_thole_strengths_and_their_basis():
    from polarff.artifact import read_thole
    from polarff.benchmark import _thole_sentence
    from polarff.build import forcefield_path

    assert _thole_sentence(None) == ""
    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    text = _thole_sentence(read_thole(folder + "nacl_gfn2_water113_clthole.pff"))
    assert "Thole damping strength a: Cl 0.16, 0.39 for the other species" in text and "B3LYP" in text


def test_pair_hydration_energy_is_the_difference_of_block_means_split_by_term():
    from polarff.analysis.structure import pair_hydration_energy
    from polarff.errors import InputError

    rng = np.random.default_rng(0)
    symbols_water, symbols_salt = ["O", "H", "H"] * 4, ["O", "H", "H"] * 4 + ["Na", "Cl"]
    n = 500
    water = {"symbols": symbols_water, "potential_energy": -100 + rng.normal(0, 1, n),
             "polarff_permanent_energy": np.full(n, -80.0), "polarff_induction_energy": np.full(n, -30.0)}
    salt = {"symbols": symbols_salt, "potential_energy": -600 + rng.normal(0, 1, n),
            "polarff_permanent_energy": np.full(n, -500.0), "polarff_induction_energy": np.full(n, -60.0)}
    result = pair_hydration_energy(salt, water)
    assert result["total"][0] == pytest.approx(-500, abs=0.5) and 0 < result["total"][1] < 0.3
    assert result["permanent"] == (-420.0, 0.0) and result["induction"] == (-30.0, 0.0)
    assert result["rest"][0] == pytest.approx(result["total"][0] + 450.0)
    # with an electronegativity term, the Lennard-Jones rest excludes it too
    chi = pair_hydration_energy({**salt, "polarff_electronegativity_energy": np.full(n, -250.0)},
                                {**water, "polarff_electronegativity_energy": np.full(n, 20.0)})
    assert chi["electronegativity"] == (-270.0, 0.0)
    assert chi["rest"][0] == pytest.approx(result["rest"][0] + 270.0)
    fixed_charge = {**salt, "polarff_permanent_energy": np.zeros(n), "polarff_induction_energy": np.zeros(n)}
    assert set(pair_hydration_energy(fixed_charge, water)) == {"total"}
    with pytest.raises(InputError, match="4 in the water box"):
        pair_hydration_energy({**salt, "symbols": symbols_salt[3:]}, water)


def test_ion_water_peak_reads_every_frame():
    """One Na⁺ and four O whose Na–O distance is 0.25 nm except in every 20th frame (0.22 nm): a peak read from
    every 20th frame (as for O–O in a large run) would sit at 2.2 Å; the ion–water peak reads all frames."""
    from polarff.benchmark import first_peaks

    n_frames = 10_000
    rng = np.random.default_rng(0)
    distance = np.where(np.arange(n_frames) % 20 == 0, 0.22, 0.25) + rng.normal(0.0, 0.005, n_frames)
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=float)
    positions = np.empty((n_frames, 5, 3))
    positions[:, 0] = 1.5
    positions[:, 1:] = 1.5 + distance[:, None, None] * directions[None]
    traj = {"symbols": np.array(["Na", "O", "O", "O", "O"]), "positions": positions,
            "box": np.repeat(np.eye(3)[None] * 3.0, n_frames, axis=0)}
    peaks = first_peaks(traj)
    assert peaks["Na-O"]["position_A"] == pytest.approx(2.50, abs=0.03)
    assert set(peaks) == {"Na-O", "O-O"}
