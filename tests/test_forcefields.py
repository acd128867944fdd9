"""Shipped force-field XML: loading, charges, and agreement with OpenMM's own TIP3P/Joung–Cheatham set."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402
from openmm.app import PME, ForceField  # noqa: E402

from polarff.build import build_ion_box, forcefield_path  # noqa: E402
from polarff.errors import ConfigError  # noqa: E402

FORMAL = {"O": -0.834, "H": 0.417, "Li": 1.0, "Na": 1.0, "K": 1.0, "Cl": -1.0}


def _system(xml: str, topology, box_nm: float):
    forcefield = ForceField(xml)
    return forcefield.createSystem(topology, nonbondedMethod=PME, nonbondedCutoff=0.45 * box_nm * unit.nanometer,
                                   rigidWater=True, constraints=None)


def _nonbonded(system):
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    params = [force.getParticleParameters(i) for i in range(force.getNumParticles())]
    charge = np.array([p[0].value_in_unit(unit.elementary_charge) for p in params])
    sigma = np.array([p[1].value_in_unit(unit.nanometer) for p in params])
    epsilon = np.array([p[2].value_in_unit(unit.kilojoule_per_mole) for p in params])
    return force, charge, sigma, epsilon


def _energy(system, positions_nm) -> float:
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_nm * unit.nanometer)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def test_forcefield_path_finds_both_files_and_rejects_unknown_names():
    for name in ("fixed_charge_baseline", "polarff_fixed_terms.xml"):
        assert forcefield_path(name).endswith(".xml")
    with pytest.raises(ConfigError, match="expected one of"):
        forcefield_path("amber99")


@pytest.mark.parametrize("ion", ["NaCl", "KCl", "LiCl"])
def test_baseline_has_formal_charges_and_fixed_terms_have_none(ion):
    topology, positions, box = build_ion_box(ion, 2, 24, seed=1)
    symbols = [a.element.symbol for a in topology.atoms()]
    baseline = _system(forcefield_path("fixed_charge_baseline"), topology, box)
    fixed = _system(forcefield_path("polarff_fixed_terms"), topology, box)
    _, q_base, sig_base, eps_base = _nonbonded(baseline)
    _, q_fixed, sig_fixed, eps_fixed = _nonbonded(fixed)
    np.testing.assert_allclose(q_base, [FORMAL[s] for s in symbols], atol=1e-12)
    assert abs(q_base.sum()) < 1e-9
    np.testing.assert_array_equal(q_fixed, 0.0)
    np.testing.assert_array_equal(sig_fixed, sig_base)
    np.testing.assert_array_equal(eps_fixed, eps_base)
    # rigid water: O-H, O-H and H-H distances constrained, nothing else
    for system in (baseline, fixed):
        assert system.getNumConstraints() == 3 * 24


@pytest.mark.parametrize("ion", ["NaCl", "KCl", "LiCl"])
def test_baseline_matches_openmm_amber14_tip3p_joung_cheatham(ion):
    """OpenMM ships JC/TIP3P ions in amber14/tip3p.xml (from AMBER frcmod.ionsjc_tip3p): same parameters."""
    topology, positions, box = build_ion_box(ion, 2, 24, seed=2)
    ours = _system(forcefield_path("fixed_charge_baseline"), topology, box)
    reference = _system("amber14/tip3p.xml", topology, box)
    for a, b in zip(_nonbonded(ours)[1:], _nonbonded(reference)[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    e_ours, e_ref = _energy(ours, positions), _energy(reference, positions)
    assert e_ours == pytest.approx(e_ref, rel=1e-6, abs=1e-3)


def test_fixed_terms_energy_is_the_baseline_without_coulomb():
    topology, positions, box = build_ion_box("NaCl", 1, 24, seed=3)
    baseline = _system(forcefield_path("fixed_charge_baseline"), topology, box)
    fixed = _system(forcefield_path("polarff_fixed_terms"), topology, box)
    force, charge, sigma, epsilon = _nonbonded(baseline)
    for i in range(force.getNumParticles()):
        force.setParticleParameters(i, 0.0, sigma[i], epsilon[i])
    for i in range(force.getNumExceptions()):
        p1, p2, _, sig, eps = force.getExceptionParameters(i)
        force.setExceptionParameters(i, p1, p2, 0.0, sig, eps)
    e_fixed = _energy(fixed, positions)
    assert e_fixed == pytest.approx(_energy(baseline, positions), rel=1e-9, abs=1e-6)
    # and the Coulomb part the baseline adds is large and negative for a real box (sanity of the signs)
    full = _system(forcefield_path("fixed_charge_baseline"), topology, box)
    assert _energy(full, positions) - e_fixed < -100.0


@pytest.mark.parametrize("name", ["polarff_nacl_gfn2_fixed_terms", "polarff_nacl_gfn2_esp_fixed_terms",
                                  "polarff_nacl_gfn2_dipole_fixed_terms", "polarff_nacl_gfn2_water111_fixed_terms",
                                  "polarff_nacl_gfn2_dipole_chi_fixed_terms", "polarff_nacl_gfn2_water113_fixed_terms",
                                  "polarff_nacl_gfn2_water126_fixed_terms"])
def test_rebalanced_nacl_fixed_terms_differ_from_tip3p_only_in_the_fitted_radii(name):
    """Rebalanced fixed terms: zero charges, TIP3P geometry and masses, new sigma for O and Cl only."""
    topology, positions, box = build_ion_box("NaCl", 2, 24, seed=1)
    symbols = [a.element.symbol for a in topology.atoms()]
    tip3p = _system(forcefield_path("polarff_fixed_terms"), topology, box)
    fitted = _system(forcefield_path(name), topology, box)
    _, q_old, sig_old, eps_old = _nonbonded(tip3p)
    _, q_new, sig_new, eps_new = _nonbonded(fitted)
    np.testing.assert_array_equal(q_new, 0.0)
    np.testing.assert_array_equal(eps_new, eps_old)
    changed = {s for s, a, b in zip(symbols, sig_old, sig_new) if a != b}
    assert changed == {"O", "Cl"}
    assert [tip3p.getParticleMass(i) for i in range(tip3p.getNumParticles())] == \
        [fitted.getParticleMass(i) for i in range(fitted.getNumParticles())]
    assert fitted.getNumConstraints() == tip3p.getNumConstraints() == 3 * 24


def test_model_card_names_its_fixed_terms():
    from polarff.artifact import load_model
    from polarff.openmm.system import model_fixed_terms

    for variant in ("esp", "dipole", "water111"):
        path = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", f"nacl_gfn2_{variant}.pff")
        calibrated = load_model(path)
        assert model_fixed_terms(calibrated) == [forcefield_path(f"polarff_nacl_gfn2_{variant}_fixed_terms")]
        assert "charge_scale" in calibrated.card["label_scaling"]
    shipped = load_model(forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "nacl_gfn2.pff"))
    assert model_fixed_terms(shipped) == [forcefield_path("polarff_nacl_gfn2_fixed_terms")]
    shipped.card.pop("fixed_terms")
    assert model_fixed_terms(shipped) == [forcefield_path("polarff_fixed_terms")]


@pytest.mark.parametrize("variant", ["water111", "dipole"])
def test_shipped_electronegativity_models_keep_their_base_model(variant):
    """nacl_gfn2_<variant>_chi.pff: the base model's network and fixed terms plus a fitted χ for every species."""
    from polarff.artifact import load_model

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    base, chi = load_model(folder + f"nacl_gfn2_{variant}.pff"), load_model(folder + f"nacl_gfn2_{variant}_chi.pff")
    assert base.electronegativity is None
    for name, weights in base.weights.items():
        np.testing.assert_array_equal(chi.weights[name], weights)
    assert chi.card["fixed_terms"] == base.card["fixed_terms"] == f"polarff_nacl_gfn2_{variant}_fixed_terms"
    term = chi.electronegativity
    assert set(term["chi_kj_mol_e"]) == set(term["reference_charges_e"]) == {"H", "O", "Na", "Cl"}
    assert term["reference_charges_e"]["Na"] == 1.0 and term["reference_charges_e"]["Cl"] == -1.0
    # the fit lowered the held-out charge-gradient force of every species
    rms = term["rms_charge_gradient_force_kj_mol_nm"]
    assert all(rms["held_out_after"][s] < rms["held_out_before"][s] for s in term["chi_kj_mol_e"])


@pytest.mark.parametrize("name, water_factor, fixed_terms", [
    ("nacl_gfn2_water111_hardness", 1.11, "polarff_nacl_gfn2_water111_fixed_terms"),
    ("nacl_gfn2_water113_hardness", 1.13, "polarff_nacl_gfn2_water113_fixed_terms"),
    ("nacl_gfn2_water126_clthole", 1.26, "polarff_nacl_gfn2_water126_fixed_terms"),
    ("nacl_gfn2_water126_ionradii", 1.26, "polarff_nacl_gfn2_water126_ionradii_fixed_terms"),
    ("nacl_gfn2_water126_molecular", 1.26, "polarff_nacl_gfn2_water126_molecular_fixed_terms")])
def test_shipped_hardness_models_have_one_water_chi_and_positive_water_hardness(name, water_factor, fixed_terms):
    """nacl_gfn2_water1xx_hardness.pff: water labels scaled by the named factor, one χ for O and H, a positive
    hardness J for O and H only, the card naming its fixed terms; the fit lowered every species' held-out
    charge-gradient force."""
    from polarff.artifact import load_model
    from polarff.openmm.system import model_fixed_terms

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    model = load_model(folder + f"{name}.pff")
    assert model.card["fixed_terms"] == fixed_terms
    assert model_fixed_terms(model) == [forcefield_path(fixed_terms)]
    assert f"H:{water_factor:g} " in model.card["label_scaling"]["charge_scale"]["factors"]
    assert f"water: fixed factor {water_factor:g}" in model.card["label_scaling"]["charge_scale"]["source"]
    term = model.electronegativity
    assert term["chi_kj_mol_e"]["O"] == term["chi_kj_mol_e"]["H"]
    assert set(term["hardness_kj_mol_e2"]) == {"H", "O"} and min(term["hardness_kj_mol_e2"].values()) > 0
    assert model.card["electronegativity"]["hardness_kj_mol_e2"] == term["hardness_kj_mol_e2"]
    rms = term["rms_charge_gradient_force_kj_mol_nm"]
    assert all(rms["held_out_after"][s] < rms["held_out_before"][s] for s in term["chi_kj_mol_e"])


def test_water111_hardness_model_keeps_the_water111_network():
    from polarff.artifact import load_model

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    base, model = load_model(folder + "nacl_gfn2_water111.pff"), load_model(folder + "nacl_gfn2_water111_hardness.pff")
    for name, weights in base.weights.items():
        np.testing.assert_array_equal(model.weights[name], weights)


def test_clthole_model_is_the_water113_model_with_a_damped_chloride():
    """nacl_gfn2_water113_clthole.pff: the same network, classes, electronegativity term and fixed terms as
    nacl_gfn2_water113_hardness.pff; only Cl⁻'s Thole strength differs (0.16, with its basis)."""
    from polarff.artifact import load_model

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    base = load_model(folder + "nacl_gfn2_water113_hardness.pff")
    damped = load_model(folder + "nacl_gfn2_water113_clthole.pff")
    for name, weights in base.weights.items():
        np.testing.assert_array_equal(damped.weights[name], weights)
    for target, binning in base.bins.items():
        np.testing.assert_array_equal(damped.bins[target].centres, binning.centres)
    assert damped.electronegativity == base.electronegativity
    assert damped.card["fixed_terms"] == base.card["fixed_terms"]
    assert base.thole is None and damped.thole["a"] == {"Cl": 0.16} and "B3LYP" in damped.thole["basis"]
    assert damped.thole_per_atom(["O", "H", "Na", "Cl"]) == [0.39, 0.39, 0.39, 0.16]


def test_water126_model_records_the_full_field_and_the_chloride_damping():
    """nacl_gfn2_water126_clthole.pff, the first model set with the full polarising field: its card says so,
    Cl⁻ keeps the DFT-fitted Thole strength, and its fixed terms carry the refitted water radius."""
    from polarff.artifact import load_model

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    model = load_model(folder + "nacl_gfn2_water126_clthole.pff")
    assert model.card["induction_field"] == "full" and "docs/induction-field.md" in model.card["variant"]
    assert model.thole["a"] == {"Cl": 0.16}
    topology, _, box = build_ion_box("NaCl", 1, 8, seed=1)
    fitted = _system(forcefield_path("polarff_nacl_gfn2_water126_fixed_terms"), topology, box)
    _, _, sigma, _ = _nonbonded(fitted)
    symbols = [a.element.symbol for a in topology.atoms()]
    assert {round(float(s), 6) for s, e in zip(sigma, symbols) if e == "O"} == {0.328}
    assert {round(float(s), 6) for s, e in zip(sigma, symbols) if e == "Cl"} == {0.466}


def test_ionradii_model_is_the_water126_model_with_the_ion_radii_set_again():
    """nacl_gfn2_water126_ionradii.pff: the water-1.26 network, electronegativity term and Thole strengths; its
    fixed terms differ from the water-1.26 ones only in the Na⁺ and Cl⁻ radii (2.27 and 4.33 Å), ε kept."""
    from polarff.artifact import load_model
    from polarff.openmm.system import model_fixed_terms

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    base = load_model(folder + "nacl_gfn2_water126_clthole.pff")
    model = load_model(folder + "nacl_gfn2_water126_ionradii.pff")
    for name, weights in base.weights.items():
        np.testing.assert_array_equal(model.weights[name], weights)
    assert model.electronegativity == base.electronegativity and model.thole == base.thole
    assert model.card["induction_field"] == "full"
    assert model_fixed_terms(model) == [forcefield_path("polarff_nacl_gfn2_water126_ionradii_fixed_terms")]
    assert _changed_sigmas("polarff_nacl_gfn2_water126_fixed_terms", model.card["fixed_terms"]) == {
        "Na": 0.227, "Cl": 0.433}


def _changed_sigmas(base_xml: str, new_xml: str) -> dict[str, float]:
    """{element: new σ (nm)} of the atoms whose σ differs between two fixed-terms files; asserts that both keep
    zero charges and the same ε."""
    topology, _, box = build_ion_box("NaCl", 1, 8, seed=1)
    symbols = [a.element.symbol for a in topology.atoms()]
    _, q_old, sig_old, eps_old = _nonbonded(_system(forcefield_path(base_xml), topology, box))
    _, q_new, sig_new, eps_new = _nonbonded(_system(forcefield_path(new_xml), topology, box))
    np.testing.assert_array_equal(q_new, 0.0)
    np.testing.assert_array_equal(eps_new, eps_old)
    return {s: round(float(b), 6) for s, a, b in zip(symbols, sig_old, sig_new) if a != b}


def test_molecular_model_is_the_ionradii_model_without_charge_transfer():
    """nacl_gfn2_water126_molecular.pff: the ion-radii model's network and Thole strengths with the molecular
    charge constraint; its electronegativity term has only the water hardness (χ cannot act), and its fixed
    terms differ only in the ion radii (2.51 and 4.49 Å). In a salt box every molecule carries its formal
    charge exactly."""
    import torch

    from polarff.artifact import load_model
    from polarff.openmm.system import build_potential, electrostatics_options

    folder = forcefield_path("polarff_fixed_terms").replace("polarff_fixed_terms.xml", "")
    base = load_model(folder + "nacl_gfn2_water126_ionradii.pff")
    model = load_model(folder + "nacl_gfn2_water126_molecular.pff")
    for name, weights in base.weights.items():
        np.testing.assert_array_equal(model.weights[name], weights)
    assert model.thole == base.thole and model.card["induction_field"] == "full"
    assert base.charge_constraint == "total" and model.charge_constraint == "molecular"
    term = model.electronegativity
    assert set(term["chi_kj_mol_e"].values()) == {0.0}
    assert set(term["hardness_kj_mol_e2"]) == {"H", "O"} and min(term["hardness_kj_mol_e2"].values()) > 0
    assert _changed_sigmas(base.card["fixed_terms"], model.card["fixed_terms"]) == {"Na": 0.251, "Cl": 0.449}
    topology, positions, box = build_ion_box("NaCl", 1, 16, seed=2)
    potential = build_potential(model, topology, electrostatics=electrostatics_options(0.39))
    q = potential.charges_and_polarizabilities(torch.tensor(positions), torch.eye(3, dtype=torch.float64) * box)[0]
    for residue in topology.residues():
        total = float(q[[a.index for a in residue.atoms()]].sum())
        assert total == pytest.approx({"NA": 1.0, "CL": -1.0}.get(residue.name, 0.0), abs=1e-12)
