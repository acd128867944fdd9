"""The electronegativity term: fitted χ make the learned charges nearly stationary, the force stays −∇E,
isolated molecules keep zero energy, and the term survives a save/load round trip."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openmm")

from polarff.electronegativity import (fit_electronegativity, potential_for_run,  # noqa: E402
                                       with_electronegativity)
from polarff.errors import InputError, ModelError  # noqa: E402

from conftest import assert_force_is_minus_gradient  # noqa: E402


@pytest.fixture(scope="module")
def salt_run(trained_model, tmp_path_factory):
    """A 0.04 ps polarff run of 16 waters + NaCl with the small test model: its folder."""
    from polarff.build import build_ion_box, write_topology_pdb
    from polarff.simulate import SimulationConfig, run_simulation

    folder = tmp_path_factory.mktemp("chi")
    topology, positions, box = build_ion_box("NaCl", 1, 16, seed=5)
    write_topology_pdb(topology, positions, box, folder / "salt.pdb")
    cfg = SimulationConfig(topology=str(folder / "salt.pdb"), model=str(trained_model[2]), cutoff_nm=0.39,
                           length_ps=0.04, report_interval_fs=4.0, energy_interval_fs=8.0,
                           checkpoint_interval_ps=0.04, equilibration_ps=0.0, minimize=True,
                           minimize_iterations=5, seed=2)
    run_simulation(cfg, folder / "run", progress=False)
    return folder / "run"


@pytest.fixture(scope="module")
def fitted(trained_model, salt_run):
    model = trained_model[0]
    term = fit_electronegativity(model, [salt_run], n_frames=8, progress=False)
    return model, term, with_electronegativity(model, term, "test")


@pytest.fixture(scope="module")
def fitted_hardness(trained_model, salt_run):
    """The term with O and H tied and a hardness J for O and H."""
    model = trained_model[0]
    term = fit_electronegativity(model, [salt_run], n_frames=8, progress=False, tied=("O", "H"), hardness=("O", "H"))
    return model, term, with_electronegativity(model, term, "test")


def _total_rms(rms: dict) -> float:
    return float(np.sqrt(np.mean(np.square(list(rms.values())))))


def test_fit_lowers_the_charge_gradient_force_and_a_refit_leaves_chi_unchanged(fitted, salt_run):
    model, term, with_term = fitted
    assert set(term["chi_kj_mol_e"]) == {"H", "O", "Na", "Cl"}
    rms = term["rms_charge_gradient_force_kj_mol_nm"]
    assert _total_rms(rms["held_out_after"]) < _total_rms(rms["held_out_before"])
    # ions alone keep their formal charge; the χ are the minimum-norm solution (the common constant is free)
    assert term["reference_charges_e"]["Na"] == pytest.approx(1.0) and term["reference_charges_e"]["Cl"] == -1.0
    assert sum(term["chi_kj_mol_e"].values()) == pytest.approx(0.0, abs=1e-6 * max(map(abs, term["chi_kj_mol_e"].values())))
    # the refit sees the term in ∂E/∂q: on the same frames it has nothing left to change
    again = fit_electronegativity(with_term, [salt_run], n_frames=8, progress=False)
    for s, chi in term["chi_kj_mol_e"].items():
        assert again["chi_kj_mol_e"][s] == pytest.approx(chi, rel=1e-6, abs=1e-6)
    assert _total_rms(again["rms_charge_gradient_force_kj_mol_nm"]["held_out_before"]) == pytest.approx(
        _total_rms(rms["held_out_after"]), rel=1e-6)


@pytest.mark.parametrize("variant", ["fitted", "fitted_hardness"])
def test_forces_are_minus_the_gradient_and_the_term_is_sum_chi_dq(variant, salt_run, request):
    from polarff.simulate import load_trajectory

    _, term, with_term = request.getfixturevalue(variant)
    potential, _, symbols = potential_for_run(salt_run, with_term)
    traj = load_trajectory(str(salt_run))
    x, box = traj["positions"][-1], traj["box"][-1]
    energy = assert_force_is_minus_gradient(potential, x, box, seed=4)
    props = potential.properties(torch.tensor(x), torch.tensor(box))
    q = props["charges"].detach().numpy()
    chi = np.array([term["chi_kj_mol_e"][s] for s in symbols])
    q_ref = np.array([term["reference_charges_e"][s] for s in symbols])
    hardness = np.array([term.get("hardness_kj_mol_e2", {}).get(s, 0.0) for s in symbols])
    expected = np.sum(chi * (q - q_ref) + 0.5 * hardness * (q - q_ref) ** 2)
    assert float(props["electronegativity_energy"].detach()) == pytest.approx(float(expected), rel=1e-10)
    parts = props["permanent_energy"] + props["induction_energy"] + props["electronegativity_energy"]
    assert float(parts.detach()) == pytest.approx(energy, rel=1e-10)


@pytest.mark.parametrize("variant", ["fitted", "fitted_hardness"])
def test_isolated_molecules_and_ions_have_zero_electronegativity_energy(variant, salt_run, request):
    from openmm import app

    from polarff.openmm.system import build_potential
    from polarff.simulate import load_trajectory

    _, _, with_term = request.getfixturevalue(variant)
    _, topology, symbols = potential_for_run(salt_run)
    first_water = [a.index for a in next(r for r in topology.residues() if r.name == "HOH").atoms()]
    water_xyz = load_trajectory(str(salt_run))["positions"][3][first_water]  # rigid: the reference geometry
    for names, xyz in ((["O", "H", "H"], water_xyz), (["Na"], [[0, 0, 0]]), (["Cl"], [[0.1, 0.2, 0.3]])):
        topology = app.Topology()
        residue = topology.addResidue("HOH" if len(names) == 3 else names[0].upper(), topology.addChain())
        for n in names:
            topology.addAtom(n, app.Element.getBySymbol(n), residue)
        potential = build_potential(with_term, topology)
        props = potential.properties(torch.tensor(np.asarray(xyz), dtype=torch.float64), None)
        assert abs(float(props["electronegativity_energy"].detach())) < 1e-9, names


def test_round_trip_and_clear_errors(fitted, salt_run, tmp_path, trained_model, capsys):
    from polarff.artifact import load_model
    from polarff.cli import main

    model, term, with_term = fitted
    path = tmp_path / "chi.pff"
    with_term.save(path)
    back = load_model(path)
    assert back.electronegativity["chi_kj_mol_e"] == term["chi_kj_mol_e"]
    assert back.card["electronegativity"]["note"] == "test"
    assert load_model(trained_model[2]).electronegativity is None
    # a term without χ for a species of the topology: ModelError naming it
    partial = with_electronegativity(model, {**term, "chi_kj_mol_e": {"H": 1.0, "O": -1.0}})
    with pytest.raises(ModelError, match=r"\['Cl', 'Na'\]"):
        potential_for_run(salt_run, partial)
    with pytest.raises(InputError, match="run.json"):
        fit_electronegativity(model, [tmp_path], n_frames=4, progress=False)
    # the command line writes the model and prints the fit
    out = tmp_path / "cli.pff"
    assert main(["fit-electronegativity", str(trained_model[2]), str(salt_run), "-o", str(out), "--frames", "4"]) == 0
    assert load_model(out).electronegativity["chi_kj_mol_e"].keys() == term["chi_kj_mol_e"].keys()
    assert main(["fit-electronegativity", str(trained_model[2]), str(salt_run), "-o", str(out), "--frames", "1"]) == 2
    assert main(["info", str(out)]) == 0
    assert "electronegativity term: χ (kJ/mol/e) " in capsys.readouterr().out


def test_tied_species_share_one_chi(trained_model, salt_run, fitted):
    from polarff.errors import ConfigError

    model, _, with_term = fitted
    tied = fit_electronegativity(model, [salt_run], n_frames=8, progress=False, tied=("O", "H"))
    chi = tied["chi_kj_mol_e"]
    assert chi["O"] == chi["H"] and chi["Na"] != chi["O"] and tied["tied"] == ["H", "O"]
    with pytest.raises(ConfigError, match=r"\['Xx'\]"):
        fit_electronegativity(model, [salt_run], n_frames=8, progress=False, tied=("Xx",))
    with pytest.raises(ConfigError, match="different χ"):  # an existing untied term cannot be refitted tied
        fit_electronegativity(with_term, [salt_run], n_frames=8, progress=False, tied=("O", "H"))


def test_hardness_is_fitted_for_the_named_species_and_a_refit_leaves_it_unchanged(fitted_hardness, trained_model,
                                                                                  salt_run, tmp_path, capsys):
    from polarff.cli import main
    from polarff.errors import ConfigError

    model, term, with_term = fitted_hardness
    assert set(term["hardness_kj_mol_e2"]) == {"H", "O"}  # monatomic ions get none
    assert term["chi_kj_mol_e"]["O"] == term["chi_kj_mol_e"]["H"]
    tied_only = fit_electronegativity(model, [salt_run], n_frames=8, progress=False, tied=("O", "H"))
    assert "hardness_kj_mol_e2" not in tied_only
    # J adds freedom only for the water atoms' charge changes: their held-out force does not get worse
    after, without = (t["rms_charge_gradient_force_kj_mol_nm"]["held_out_after"] for t in (term, tied_only))
    assert _total_rms(after) < _total_rms(term["rms_charge_gradient_force_kj_mol_nm"]["held_out_before"])
    assert after["O"] <= 1.05 * without["O"] and after["H"] <= 1.05 * without["H"]
    # a refit on the same frames keeps χ, J and q_ref
    again = fit_electronegativity(with_term, [salt_run], n_frames=8, progress=False, tied=("O", "H"),
                                  hardness=("O", "H"))
    for key in ("chi_kj_mol_e", "hardness_kj_mol_e2"):
        for s, value in term[key].items():
            assert again[key][s] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, s)
    assert again["reference_charges_e"] == term["reference_charges_e"]
    with pytest.raises(ConfigError, match=r"--hardness: species \['Xx'\]"):
        fit_electronegativity(model, [salt_run], n_frames=8, progress=False, hardness=("Xx",))
    # command line and model card
    out = tmp_path / "hardness.pff"
    capsys.readouterr()
    assert main(["fit-electronegativity", str(trained_model[2]), str(salt_run), "-o", str(out), "--frames", "4",
                 "--tie", "O", "H", "--hardness", "O", "H"]) == 0
    assert "J (kJ/mol/e²)" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "J (kJ/mol/e²) H " in capsys.readouterr().out



def test_run_potential_is_eager_so_gradients_do_not_depend_on_earlier_calls(trained_model, salt_run):
    """potential_for_run returns the eager module: in one process, after test_openmm_system's Keras/TorchScript
    calls, a scripted module of the same type returned charges cut from the positions' graph and the
    charge-gradient fit failed ("One of the differentiated Tensors appears to not have been used")."""
    from polarff.electronegativity import charge_gradient_forces
    from polarff.openmm.potential import PolarffPotential
    from polarff.simulate import load_trajectory

    potential, _, symbols = potential_for_run(salt_run, trained_model[0])
    assert isinstance(potential, PolarffPotential) and not isinstance(potential, torch.jit.ScriptModule)
    traj = load_trajectory(salt_run)
    masks = np.array([symbols == s for s in ("H", "O", "Na", "Cl")])
    force, chi_columns, _ = charge_gradient_forces(potential, traj["positions"][3], traj["box"][3], masks,
                                                   np.zeros(len(symbols)))
    assert np.abs(force).max() > 0.0 and np.abs(chi_columns).max() > 0.0
