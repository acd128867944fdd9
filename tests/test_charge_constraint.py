"""The molecular charge constraint: each molecule's predicted charges sum exactly to its formal charge, the
force stays −∇E, the default is unchanged, the electronegativity fit copes with χ that cannot act, and bad
settings give clear errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openmm")

from polarff.errors import ModelError  # noqa: E402

from conftest import assert_force_is_minus_gradient  # noqa: E402


@pytest.fixture(scope="module")
def salt(trained_model, tmp_path_factory):
    """16 waters + NaCl: (topology, positions nm, box vectors nm) and the small model with the molecular
    constraint (its path)."""
    import copy

    from polarff.build import build_ion_box

    topology, positions, box = build_ion_box("NaCl", 1, 16, seed=5)
    molecular = copy.deepcopy(trained_model[0])
    molecular.card["charge_constraint"] = "molecular"
    path = tmp_path_factory.mktemp("molecular") / "molecular.pff"
    molecular.save(path)
    return topology, np.asarray(positions), np.eye(3) * box, path


def _potential(model, topology):
    from polarff.openmm.system import build_potential, electrostatics_options

    return build_potential(model, topology, electrostatics=electrostatics_options(0.39))


def _charges(potential, x, box):
    props = potential.properties(torch.tensor(x), torch.tensor(box))
    return props["charges"].detach().numpy()


def test_each_molecule_carries_its_formal_charge_exactly(salt, trained_model):
    from polarff.artifact import load_model

    topology, x, box, path = salt
    q = _charges(_potential(load_model(path), topology), x, box)
    assert q.sum() == pytest.approx(0.0, abs=1e-12)
    for residue in topology.residues():
        index = [a.index for a in residue.atoms()]
        expected = {"NA": 1.0, "CL": -1.0}.get(residue.name, 0.0)
        assert q[index].sum() == pytest.approx(expected, abs=1e-12), residue.name
    # the default (no card key) moves charge between molecules, as in training: the first waters are not neutral
    q_total = _charges(_potential(trained_model[0], topology), x, box)
    assert trained_model[0].charge_constraint == "total"
    assert q_total.sum() == pytest.approx(0.0, abs=1e-12)
    na = [a.index for a in topology.atoms() if a.element.symbol == "Na"]
    assert abs(q_total[na[0]] - 1.0) > 1e-4
    # within a water molecule the constraint is one uniform shift of the network's charges
    water = [a.index for a in next(r for r in topology.residues() if r.name == "HOH").atoms()]
    shift = q[water] - q_total[water]
    assert np.ptp(shift) < 1e-12


def test_forces_are_minus_the_gradient_with_the_molecular_constraint(salt):
    from polarff.artifact import load_model

    topology, x, box, path = salt
    assert_force_is_minus_gradient(_potential(load_model(path), topology), x, box, seed=8)


def test_molecules_are_the_groups_linked_by_intramolecular_pairs():
    from polarff.openmm.potential import molecular_charge_targets

    molecules, charges = molecular_charge_targets(["Na", "O", "H", "H", "Cl", "O", "H", "H"],
                                                  [(1, 2), (1, 3), (2, 3), (5, 6), (6, 7)])
    assert molecules == [0, 1, 1, 1, 2, 3, 3, 3]
    assert charges == [1.0, 0.0, -1.0, 0.0]


def test_clear_errors_for_bad_settings(salt, trained_model):
    import copy

    from polarff.runtime.network import ChargeModel

    model = copy.deepcopy(trained_model[0])
    model.card["charge_constraint"] = "per-atom"
    with pytest.raises(ModelError, match="charge_constraint.*'total', 'molecular'.*per-atom"):
        _ = model.charge_constraint
    symbols = ["O", "H", "H", "Na"]
    with pytest.raises(ModelError, match="sum to 0 e.*total charge is 1 e"):
        ChargeModel(trained_model[0], symbols, 1.0, molecules=[0, 0, 0, 1], molecule_charges=[0.0, 0.0])
    with pytest.raises(ModelError, match="one index per atom \\(4\\), found 3"):
        ChargeModel(trained_model[0], symbols, 1.0, molecules=[0, 0, 1], molecule_charges=[0.0, 1.0])
    with pytest.raises(ModelError, match="molecule_charges"):
        ChargeModel(trained_model[0], symbols, 1.0, molecules=[0, 0, 0, 1])


def test_electronegativity_fit_under_the_constraint_keeps_chi_that_cannot_act_at_zero(salt, trained_model,
                                                                                        tmp_path):
    """Under the molecular constraint Na⁺ and Cl⁻ keep ±1 and tied O/H χ moves no charge: their columns are
    round-off, which the fit must not turn into huge χ; the hardness J is still fitted and refits keep it."""
    from polarff.artifact import load_model
    from polarff.build import write_topology_pdb
    from polarff.electronegativity import fit_electronegativity, with_electronegativity
    from polarff.simulate import SimulationConfig, run_simulation

    topology, x, box, path = salt
    write_topology_pdb(topology, x, box[0, 0], tmp_path / "salt.pdb")
    cfg = SimulationConfig(topology=str(tmp_path / "salt.pdb"), model=str(path), cutoff_nm=0.39, length_ps=0.04,
                           report_interval_fs=4.0, energy_interval_fs=8.0, checkpoint_interval_ps=0.04,
                           equilibration_ps=0.0, minimize=True, minimize_iterations=5, seed=2)
    run_simulation(cfg, tmp_path / "run", progress=False)
    model = load_model(path)
    term = fit_electronegativity(model, [tmp_path / "run"], n_frames=8, progress=False, tied=("O", "H"),
                                 hardness=("O", "H"))
    assert all(chi == 0.0 for chi in term["chi_kj_mol_e"].values())
    assert all(np.isfinite(j) and j != 0.0 for j in term["hardness_kj_mol_e2"].values())
    again = fit_electronegativity(with_electronegativity(model, term, "test"), [tmp_path / "run"], n_frames=8,
                                  progress=False, tied=("O", "H"), hardness=("O", "H"))
    for s, j in term["hardness_kj_mol_e2"].items():
        assert again["hardness_kj_mol_e2"][s] == pytest.approx(j, rel=1e-6)


def test_info_names_the_constraint(salt, trained_model, capsys):
    from polarff.cli import main

    assert main(["info", str(salt[3])]) == 0
    assert "molecular: each molecule sums to its formal charge" in capsys.readouterr().out
    assert main(["info", str(trained_model[2])]) == 0
    assert "molecular" not in capsys.readouterr().out


def test_native_mode_uses_the_molecular_constraint(salt):
    from polarff.openmm.native import create_native_system

    topology, x, box, path = salt
    native = create_native_system(path, topology, x, mode="amoeba", nonbonded_cutoff_nm=0.39)
    q, _ = native.updater.evaluate(x, box)
    na = [a.index for a in topology.atoms() if a.element.symbol == "Na"]
    assert q[na[0]] == pytest.approx(1.0, abs=1e-12)


def test_fit_electronegativity_command_sets_the_constraint_and_drops_the_old_term(salt, trained_model, tmp_path,
                                                                                   capsys):
    from polarff.artifact import load_model
    from polarff.build import write_topology_pdb
    from polarff.cli import main
    from polarff.electronegativity import fit_electronegativity, with_electronegativity
    from polarff.simulate import SimulationConfig, run_simulation

    topology, x, box, _ = salt
    write_topology_pdb(topology, x, box[0, 0], tmp_path / "salt.pdb")
    cfg = SimulationConfig(topology=str(tmp_path / "salt.pdb"), model=str(trained_model[2]), cutoff_nm=0.39,
                           length_ps=0.02, report_interval_fs=4.0, energy_interval_fs=8.0,
                           checkpoint_interval_ps=0.02, equilibration_ps=0.0, minimize=True, minimize_iterations=5,
                           seed=3)
    run_simulation(cfg, tmp_path / "run", progress=False)
    with_term = with_electronegativity(trained_model[0], fit_electronegativity(
        trained_model[0], [tmp_path / "run"], n_frames=4, progress=False), "total")
    with_term.save(tmp_path / "total.pff")
    assert main(["fit-electronegativity", str(tmp_path / "total.pff"), str(tmp_path / "run"), "-o",
                 str(tmp_path / "molecular.pff"), "--frames", "4", "--tie", "O", "H", "--hardness", "O", "H",
                 "--charge-constraint", "molecular"]) == 0
    assert "is dropped" in capsys.readouterr().out
    out = load_model(tmp_path / "molecular.pff")
    assert out.charge_constraint == "molecular"
    assert out.card["variant"].endswith("charge constraint set to 'molecular', the electronegativity term fitted "
                                        "afresh under it")
    assert set(out.electronegativity["chi_kj_mol_e"].values()) == {0.0}  # the old χ did not carry over
    assert set(out.electronegativity["hardness_kj_mol_e2"]) == {"O", "H"}
